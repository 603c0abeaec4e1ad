//! Starts and stops a real server over a dev forum made in a temporary directory.

use std::path::{Path, PathBuf};

use hashforum::client::Client;
use hashforum::config::Config;
use hashforum::forum::{self, ForumSpec, DEV_ORIGIN};
use hashforum::identity::Identity;
use hashforum::types::HashType;
use hashforum::{crypto, pb};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A running server and the forum it serves.
pub(crate) struct TestServer {
    dir: tempfile::TempDir,
    pub(crate) addr: String,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

impl TestServer {
    /// Creates a dev forum with `admin` and `members`, and starts its server.
    pub(crate) async fn start(members: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let spec = ForumSpec {
            dir: dir.path().to_owned(),
            listen: "127.0.0.1:0".parse().unwrap(),
            origin: DEV_ORIGIN.into(),
        };
        let members: Vec<String> = members.iter().map(|m| (*m).to_owned()).collect();
        forum::init_dev(&spec, &members).unwrap();
        let mut server = Self {
            dir,
            addr: String::new(),
            stop: None,
            task: None,
        };
        server.boot().await;
        server
    }

    async fn boot(&mut self) {
        let config = Config::load(&self.dir.path().join("server/hashforum.toml")).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        self.addr = format!("https://{}", listener.local_addr().unwrap());
        let (tx, rx) = oneshot::channel();
        self.stop = Some(tx);
        self.task = Some(tokio::spawn(hashforum::server::serve(
            config,
            listener,
            async {
                let _ = rx.await;
            },
        )));
    }

    /// Stops the server and waits until it has closed its database.
    pub(crate) async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }

    /// Stops and starts the server again over the same data directory.
    pub(crate) async fn restart(&mut self) {
        self.stop().await;
        self.boot().await;
    }

    /// The forum's directory.
    pub(crate) fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The identity directory of a member.
    pub(crate) fn identity_dir(&self, name: &str) -> PathBuf {
        self.dir.path().join("identities").join(name)
    }

    /// Issues a new identity from the forum's dev CA (not yet a member): returns it with the
    /// SHA-256 of its certificate.
    pub(crate) fn issue_identity(&self, name: &str) -> (Identity, Vec<u8>) {
        let ca_dir = self.dir().join("ca");
        let ca = hashforum::pki::Ca::load(
            &std::fs::read_to_string(ca_dir.join("ca.crt")).unwrap(),
            &std::fs::read_to_string(ca_dir.join("ca.key")).unwrap(),
        )
        .unwrap();
        let dir = self.identity_dir(name);
        let (cert_der, _) = forum::issue_identity(&ca, name, &self.addr, DEV_ORIGIN, &dir).unwrap();
        (
            Identity::load(&dir).unwrap(),
            crypto::cert_fingerprint(&cert_der).as_bytes().to_vec(),
        )
    }

    /// The identity of a member.
    pub(crate) fn identity(&self, name: &str) -> Identity {
        Identity::load(&self.identity_dir(name)).unwrap()
    }

    /// A signer for a member's identity.
    pub(crate) fn signer(&self, name: &str) -> hashforum::statement::Signer {
        hashforum::statement::Signer::of(&self.identity(name))
    }

    /// A connected client for a member.
    pub(crate) async fn client(&self, name: &str) -> Client {
        Client::connect(&self.identity(name), Some(&self.addr))
            .await
            .unwrap()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A hash submission statement.
pub(crate) fn submission(author: &str, hash_type: HashType, value: &str) -> pb::Statement {
    pb::Statement {
        author: author.into(),
        issued_at_unix_ms: 0,
        origin: DEV_ORIGIN.into(),
        body: Some(pb::statement::Body::HashSubmission(pb::HashSubmission {
            hash_type: hash_type.to_pb() as i32,
            value: value.into(),
            labels: Some(pb::Labels {
                entity: "un-qde.115".into(),
                behaviour: "glorification".into(),
                content_type: "video".into(),
            }),
            tags: vec!["incident-2026-11".into()],
            quality: None,
        })),
    }
}

/// An admin statement by `author`, issued now (strictly later than the previous one, so that
/// repeated actions are new statements).
pub(crate) fn admin_statement(author: &str, body: pb::statement::Body) -> pb::Statement {
    pb::Statement {
        author: author.into(),
        issued_at_unix_ms: hashforum::statement::fresh_ms(),
        origin: DEV_ORIGIN.into(),
        body: Some(body),
    }
}

/// The envelope of `statement` signed with `identity`'s key.
pub(crate) fn signed(identity: &Identity, statement: &pb::Statement) -> pb::Envelope {
    crypto::sign_statement(&identity.signing_key, statement)
}

/// A distinct valid SHA-256 value.
pub(crate) fn sha256_value(n: u64) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(n.to_be_bytes()))
}

/// Submits one envelope.
pub(crate) async fn submit(
    client: &mut Client,
    envelope: pb::Envelope,
) -> Result<pb::Receipt, tonic::Status> {
    client
        .registry
        .submit_entry(pb::SubmitEntryRequest {
            envelope: Some(envelope),
        })
        .await
        .map(|r| r.into_inner().receipt.unwrap())
}

/// Looks one hash up.
pub(crate) async fn lookup(
    client: &mut Client,
    hash_type: HashType,
    value: &str,
    include_envelopes: bool,
) -> Result<pb::HashRecord, tonic::Status> {
    client
        .registry
        .lookup_hash(pb::LookupHashRequest {
            query: Some(pb::HashQuery {
                hash_type: hash_type.to_pb() as i32,
                value: value.into(),
            }),
            include_envelopes,
        })
        .await
        .map(|r| r.into_inner().record.unwrap())
}

/// The `BadRequest` field and `ErrorInfo` reason of an error.
pub(crate) fn details(status: &tonic::Status) -> (String, String) {
    use tonic_types::StatusExt;
    let field = status
        .get_details_bad_request()
        .and_then(|b| b.field_violations.first().map(|v| v.field.clone()))
        .unwrap_or_default();
    let reason = status
        .get_details_error_info()
        .map(|i| i.reason)
        .unwrap_or_default();
    (field, reason)
}
