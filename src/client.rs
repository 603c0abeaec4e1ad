//! A gRPC client over mTLS for an identity: what the CLI, the tests and the bench use.

use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity as TlsIdentity};

use crate::identity::Identity;
use crate::pb;
use crate::pb::admin_service_client::AdminServiceClient;
use crate::pb::log_service_client::LogServiceClient;
use crate::pb::registry_service_client::RegistryServiceClient;
use crate::server::{MAX_REPLY, MAX_REQUEST};

/// Clients for every service, over one connection.
#[derive(Clone)]
pub struct Client {
    /// The registry.
    pub registry: RegistryServiceClient<Channel>,
    /// The directory.
    pub admin: AdminServiceClient<Channel>,
    /// The log.
    pub log: LogServiceClient<Channel>,
    channel: Channel,
}

impl Client {
    /// Connects to `server` (or the identity's server) as `identity`.
    ///
    /// # Errors
    /// When the address is invalid, or the connection or TLS handshake fails.
    pub async fn connect(identity: &Identity, server: Option<&str>) -> Result<Self, ClientError> {
        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&identity.ca_cert))
            .identity(TlsIdentity::from_pem(&identity.tls_cert, &identity.tls_key))
            .domain_name(identity.file.server_name.clone());
        let addr = server.unwrap_or(&identity.file.server);
        // `host:port` as people type it: TLS is the only way in.
        let addr = if addr.contains("://") {
            addr.to_owned()
        } else {
            format!("https://{addr}")
        };
        let endpoint = Channel::from_shared(addr.clone())
            .map_err(|e| ClientError::Address(format!("{addr:?}: {e}")))?;
        let channel = endpoint
            .tls_config(tls)?
            .initial_stream_window_size(crate::server::WINDOW)
            .initial_connection_window_size(crate::server::CONNECTION_WINDOW)
            .connect()
            .await?;
        Ok(Self::from_channel(channel))
    }

    /// Clients over an open channel (an in-process one, for a local copy).
    pub fn from_channel(channel: Channel) -> Self {
        Self {
            registry: RegistryServiceClient::new(channel.clone())
                .max_decoding_message_size(MAX_REPLY)
                .max_encoding_message_size(MAX_REQUEST),
            admin: AdminServiceClient::new(channel.clone()),
            log: LogServiceClient::new(channel.clone()),
            channel,
        }
    }

    /// The connection, for other services (health) or hand-made calls.
    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }
}

/// Splits envelopes, in order, into `SubmitEntries` calls of at most `max_count` envelopes and
/// at most [`MAX_REQUEST`] bytes encoded: the server refuses a larger request before reading it.
pub fn batches(envelopes: Vec<pb::Envelope>, max_count: usize) -> Vec<Vec<pb::Envelope>> {
    split(envelopes, max_count, MAX_REQUEST)
}

fn split(
    envelopes: Vec<pb::Envelope>,
    max_count: usize,
    max_bytes: usize,
) -> Vec<Vec<pb::Envelope>> {
    let mut out = Vec::new();
    let mut batch = Vec::new();
    let mut bytes = 0;
    for envelope in envelopes {
        // As a `SubmitEntriesRequest.envelopes` element: key, length, body.
        let len = prost::encoding::message::encoded_len(1, &envelope);
        if !batch.is_empty() && (batch.len() == max_count || bytes + len > max_bytes) {
            out.push(std::mem::take(&mut batch));
            bytes = 0;
        }
        bytes += len;
        batch.push(envelope);
    }
    if !batch.is_empty() {
        out.push(batch);
    }
    out
}

/// Failure to connect.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server address is not a valid URI.
    #[error("invalid server address {0}")]
    Address(String),
    /// The connection or TLS handshake failed.
    #[error("cannot connect: {0}")]
    Transport(#[from] tonic::transport::Error),
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;

    fn envelope(payload_len: usize) -> pb::Envelope {
        pb::Envelope {
            payload: vec![7; payload_len].into(),
            ..pb::Envelope::default()
        }
    }

    #[test]
    fn batches_respect_count_and_bytes_and_keep_order() {
        // Each envelope encodes to 1 + 1 + (1 + 1 + 100) = 104 bytes in the request.
        let all: Vec<_> = (0..10).map(|_| envelope(100)).collect();
        assert_eq!(prost::encoding::message::encoded_len(1, &all[0]), 104);
        let sizes = |b: &[Vec<pb::Envelope>]| b.iter().map(Vec::len).collect::<Vec<_>>();
        assert_eq!(sizes(&batches(all.clone(), 4)), [4, 4, 2]);
        assert_eq!(sizes(&split(all.clone(), 100, 3 * 104)), [3, 3, 3, 1]);
        assert_eq!(sizes(&split(all.clone(), 100, 50)), [1; 10]);
        for batch in split(all.clone(), 100, 3 * 104) {
            let request = pb::SubmitEntriesRequest { envelopes: batch };
            assert!(request.encoded_len() <= 3 * 104);
        }
        assert_eq!(batches(all.clone(), 3).concat(), all);
        assert!(batches(Vec::new(), 3).is_empty());
    }
}
