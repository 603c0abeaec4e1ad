//! A gRPC client over mTLS for an identity: what the CLI, the tests and the bench use.

use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity as TlsIdentity};

use crate::identity::Identity;
use crate::pb::admin_service_client::AdminServiceClient;
use crate::pb::registry_service_client::RegistryServiceClient;
use crate::server::{MAX_REPLY, MAX_REQUEST};

/// Clients for every service, over one connection.
#[derive(Clone)]
pub struct Client {
    /// The registry.
    pub registry: RegistryServiceClient<Channel>,
    /// The directory.
    pub admin: AdminServiceClient<Channel>,
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
        let addr = server.unwrap_or(&identity.file.server).to_owned();
        let endpoint = Channel::from_shared(addr.clone())
            .map_err(|e| ClientError::Address(format!("{addr:?}: {e}")))?;
        let channel = endpoint
            .tls_config(tls)?
            .initial_stream_window_size(crate::server::WINDOW)
            .initial_connection_window_size(crate::server::CONNECTION_WINDOW)
            .connect()
            .await?;
        Ok(Self {
            registry: RegistryServiceClient::new(channel.clone())
                .max_decoding_message_size(MAX_REPLY)
                .max_encoding_message_size(MAX_REQUEST),
            admin: AdminServiceClient::new(channel.clone()),
            channel,
        })
    }

    /// The connection, for other services (health) or hand-made calls.
    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }
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
