//! Starts and stops a real server over a dev forum made in a temporary directory, reads what a
//! refusal carries, and runs the `hashforum` binary with a deadline.
//!
//! The server runs on a runtime of its own, and so do the clients made here. Stopping it (also
//! in `drop`) waits for tonic to close every connection: if those connections were driven by
//! the test's runtime, which `drop` blocks, the wait could never end.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use hashforum::client::Client;
use hashforum::config::Config;
use hashforum::forum::{self, ForumSpec, DEV_ORIGIN};
use hashforum::identity::Identity;
use hashforum::types::HashType;
use hashforum::{crypto, pb};
use tokio::sync::oneshot;
use tonic::transport::{Certificate, Channel, ClientTlsConfig};
use tonic::{Code, Status};

/// How long a server may take to stop (drain its calls, commit, close the database).
pub(crate) const STOP_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a `hashforum` child process may take before the test fails.
pub(crate) const CHILD_TIMEOUT: Duration = Duration::from_secs(60);

/// A running server and the forum it serves.
pub(crate) struct TestServer {
    pub(crate) addr: String,
    /// The runtime of the server and of the clients made by [`TestServer::connect`].
    rt: Option<tokio::runtime::Runtime>,
    running: Option<Running>,
    /// The config it runs, relative to the forum's directory.
    config: &'static str,
    /// For a replica: its primary's address, replacing the config's.
    primary: Option<String>,
    /// The port it listens on once started, kept across [`TestServer::restart_in_place`].
    port: u16,
    /// Declared last, and removed only once every server of the forum has stopped and closed
    /// its database (replicas share their primary's forum).
    dir: Arc<tempfile::TempDir>,
}

/// The configs `init --dev --replicas N` writes, by replica number (1-based).
const REPLICA_CONFIGS: [&str; 3] = [
    "replica-1/hashforum.toml",
    "replica-2/hashforum.toml",
    "replica-3/hashforum.toml",
];

/// The server task: how to stop it and where its result arrives.
struct Running {
    stop: oneshot::Sender<()>,
    done: mpsc::Receiver<anyhow::Result<()>>,
}

/// A dev forum with `admin` and `members` in a new temporary directory, made in process
/// (`forum::init_dev`); its config is `DIR/server/hashforum.toml`.
pub(crate) fn dev_forum(members: &[&str]) -> tempfile::TempDir {
    dev_forum_with_replicas(members, 0)
}

/// A dev forum with `admin`, `members` and `replicas` replicas (`init_dev`).
fn dev_forum_with_replicas(members: &[&str], replicas: u16) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let spec = ForumSpec {
        dir: dir.path().to_owned(),
        listen: "127.0.0.1:0".parse().unwrap(),
        origin: DEV_ORIGIN.into(),
    };
    let members: Vec<String> = members.iter().map(|m| (*m).to_owned()).collect();
    forum::init_dev(&spec, &members, replicas).unwrap();
    dir
}

impl TestServer {
    /// Creates a dev forum with `admin` and `members`, and starts its server.
    pub(crate) async fn start(members: &[&str]) -> Self {
        Self::start_with_replicas(members, 0).await
    }

    /// Creates a dev forum with `admin`, `members` and the members `replica-1`..`replica-N`
    /// (each with its replica config), and starts its primary.
    pub(crate) async fn start_with_replicas(members: &[&str], replicas: u16) -> Self {
        let dir = Arc::new(dev_forum_with_replicas(members, replicas));
        let mut server = Self::new(dir, "server/hashforum.toml", None);
        server.boot();
        server
    }

    /// Starts replica `n` (1-based) of this forum, following this server. An empty replica
    /// catches up before it serves; calls made meanwhile wait.
    pub(crate) fn start_replica(&self, n: usize) -> Self {
        let mut replica = Self::new(
            self.dir.clone(),
            REPLICA_CONFIGS[n - 1],
            Some(self.addr.clone()),
        );
        replica.boot();
        replica
    }

    fn new(dir: Arc<tempfile::TempDir>, config: &'static str, primary: Option<String>) -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("test-server")
            .enable_all()
            .build()
            .unwrap();
        Self {
            addr: String::new(),
            rt: Some(rt),
            running: None,
            config,
            primary,
            port: 0,
            dir,
        }
    }

    fn rt(&self) -> &tokio::runtime::Runtime {
        self.rt.as_ref().expect("the server's runtime")
    }

    /// Starts serving on a new port. The port is bound before this returns, so clients may
    /// connect at once.
    fn boot(&mut self) {
        let mut config = Config::load(&self.dir.path().join(self.config)).unwrap();
        if let (hashforum::config::Mode::Replica(replica), Some(primary)) =
            (&mut config.mode, &self.primary)
        {
            replica.primary = primary.clone();
        }
        let listener = std::net::TcpListener::bind(("127.0.0.1", self.port)).unwrap();
        listener.set_nonblocking(true).unwrap();
        self.port = listener.local_addr().unwrap().port();
        self.addr = format!("https://{}", listener.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel();
        let (done_tx, done) = mpsc::sync_channel(1);
        self.rt().spawn(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let result = hashforum::server::serve(config, listener, async {
                let _ = stopped.await;
            })
            .await;
            let _ = done_tx.send(result);
        });
        self.running = Some(Running { stop, done });
    }

    /// Asks the server to stop, without waiting: what a signal does.
    pub(crate) fn begin_stop(&mut self) {
        if let Some(running) = &mut self.running {
            let (dummy, _) = oneshot::channel();
            let _ = std::mem::replace(&mut running.stop, dummy).send(());
        }
    }

    /// Stops the server and waits (at most [`STOP_TIMEOUT`]) until it has closed its database;
    /// fails the test if it does not stop in time or stops with an error.
    pub(crate) async fn stop(&mut self) {
        let Some(running) = self.running.take() else {
            return;
        };
        let _ = running.stop.send(());
        let result = tokio::task::spawn_blocking(move || running.done.recv_timeout(STOP_TIMEOUT))
            .await
            .unwrap();
        match result {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("the server stopped with an error: {e:#}"),
            Err(_) => panic!("the server did not stop within {STOP_TIMEOUT:?}"),
        }
    }

    /// Stops and starts the server again over the same data directory (on a new port).
    pub(crate) async fn restart(&mut self) {
        self.stop().await;
        self.port = 0;
        self.boot();
    }

    /// Stops and starts the server again over the same data directory, on the same port (so
    /// that its replicas find it again).
    pub(crate) async fn restart_in_place(&mut self) {
        self.stop().await;
        self.boot();
    }

    /// Waits for a server that stops by itself with an error; returns the error.
    pub(crate) async fn stopped_with_error(&mut self) -> String {
        let running = self.running.take().expect("a started server");
        let result =
            tokio::task::spawn_blocking(move || running.done.recv_timeout(STOP_TIMEOUT * 6))
                .await
                .unwrap();
        match result {
            Ok(Err(e)) => format!("{e:#}"),
            Ok(Ok(())) => panic!("the server stopped without an error"),
            Err(_) => panic!("the server did not stop"),
        }
    }

    /// Starts a stopped server again, on the same port.
    pub(crate) fn start_again(&mut self) {
        self.boot();
    }

    /// The data directory of the server (its config's `data`).
    pub(crate) fn data_dir(&self) -> PathBuf {
        self.dir
            .path()
            .join(self.config)
            .parent()
            .unwrap()
            .join("data")
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
        let ca = self.dev_ca();
        let dir = self.identity_dir(name);
        let (cert_der, _) = forum::issue_identity(&ca, name, &self.addr, DEV_ORIGIN, &dir).unwrap();
        (
            Identity::load(&dir).unwrap(),
            crypto::cert_fingerprint(&cert_der).as_bytes().to_vec(),
        )
    }

    /// The forum's dev CA.
    pub(crate) fn dev_ca(&self) -> hashforum::pki::Ca {
        let ca_dir = self.dir().join("ca");
        hashforum::pki::Ca::load(
            &std::fs::read_to_string(ca_dir.join("ca.crt")).unwrap(),
            &std::fs::read_to_string(ca_dir.join("ca.key")).unwrap(),
        )
        .unwrap()
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
        self.connect(&self.identity(name)).await
    }

    /// A client for `identity` (as loaded or changed in memory), connected on the server's
    /// runtime.
    pub(crate) async fn connect(&self, identity: &Identity) -> Client {
        let identity = copy(identity);
        let addr = self.addr.clone();
        self.rt()
            .spawn(async move { Client::connect(&identity, Some(&addr)).await })
            .await
            .unwrap()
            .unwrap()
    }

    /// A plain channel for `identity`, for other services (health, reflection). A lazy
    /// channel connects at its first call, so that a failed handshake shows as that call's
    /// status.
    pub(crate) async fn channel(&self, identity: &Identity, lazy: bool) -> Channel {
        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&identity.ca_cert))
            .identity(tonic::transport::Identity::from_pem(
                &identity.tls_cert,
                &identity.tls_key,
            ))
            .domain_name(identity.file.server_name.clone());
        self.channel_with(tls, lazy).await
    }

    /// A channel with this TLS configuration, on the server's runtime.
    pub(crate) async fn channel_with(&self, tls: ClientTlsConfig, lazy: bool) -> Channel {
        let endpoint = Channel::from_shared(self.addr.clone())
            .unwrap()
            .tls_config(tls)
            .unwrap();
        self.rt()
            .spawn(async move {
                if lazy {
                    endpoint.connect_lazy()
                } else {
                    endpoint.connect().await.unwrap()
                }
            })
            .await
            .unwrap()
    }
}

impl Drop for TestServer {
    /// Stops the server and waits for it before the directory goes; a server that does not
    /// stop fails the test (unless it is failing already).
    fn drop(&mut self) {
        if let Some(running) = self.running.take() {
            let _ = running.stop.send(());
            let outcome = match running.done.recv_timeout(STOP_TIMEOUT) {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(format!("the server stopped with an error: {e:#}")),
                Err(_) => Some(format!("the server did not stop within {STOP_TIMEOUT:?}")),
            };
            if let Some(problem) = outcome {
                if std::thread::panicking() {
                    eprintln!("{problem}");
                } else {
                    panic!("{problem}");
                }
            }
        }
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

/// A copy of an identity (the type is not `Clone`).
pub(crate) fn copy(identity: &Identity) -> Identity {
    Identity {
        dir: identity.dir.clone(),
        file: identity.file.clone(),
        tls_cert: identity.tls_cert.clone(),
        tls_key: identity.tls_key.clone(),
        ca_cert: identity.ca_cert.clone(),
        signing_key: identity.signing_key.clone(),
    }
}

/// A hash submission statement by `author`, labelled as a member would label it.
pub(crate) fn submission(author: &str, hash_type: HashType, value: &str) -> pb::Statement {
    submission_with(author, hash_type, value, |_| {})
}

/// A hash submission statement like [`submission`], changed by `edit` (labels, tags, quality,
/// hash type) before it is returned.
pub(crate) fn submission_with(
    author: &str,
    hash_type: HashType,
    value: &str,
    edit: impl FnOnce(&mut pb::HashSubmission),
) -> pb::Statement {
    let mut s = hashforum::statement::hash_submission(hash_type, value);
    s.labels = Some(pb::Labels {
        entity: "un-qde.115".into(),
        behaviour: "glorification".into(),
        content_type: "video".into(),
    });
    s.tags = vec!["incident-2026-11".into()];
    edit(&mut s);
    pb::Statement {
        author: author.into(),
        issued_at_unix_ms: 0,
        origin: DEV_ORIGIN.into(),
        body: Some(pb::statement::Body::HashSubmission(s)),
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
) -> Result<pb::Receipt, Status> {
    client
        .registry
        .submit_entry(pb::SubmitEntryRequest {
            envelope: Some(envelope),
        })
        .await
        .map(|r| r.into_inner().receipt.unwrap())
}

/// Submits envelopes in one call.
pub(crate) async fn submit_all(
    client: &mut Client,
    envelopes: Vec<pb::Envelope>,
) -> Result<Vec<pb::Receipt>, Status> {
    client
        .registry
        .submit_entries(pb::SubmitEntriesRequest { envelopes })
        .await
        .map(|r| r.into_inner().receipts)
}

/// Looks one hash up.
pub(crate) async fn lookup(
    client: &mut Client,
    hash_type: HashType,
    value: &str,
    include_envelopes: bool,
) -> Result<pb::HashRecord, Status> {
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

/// Looks up the SHA-256 hashes `values` in one `LookupHashes` call: a result each, in order.
pub(crate) async fn lookup_sha256(
    client: &mut Client,
    values: impl IntoIterator<Item = String>,
) -> Vec<pb::LookupResult> {
    let queries = values
        .into_iter()
        .map(|value| pb::HashQuery {
            hash_type: HashType::Sha256.to_pb() as i32,
            value,
        })
        .collect();
    client
        .registry
        .lookup_hashes(pb::LookupHashesRequest {
            queries,
            include_envelopes: false,
        })
        .await
        .unwrap()
        .into_inner()
        .results
}

/// Fetches the server's proof that the tree of `old_size` with root `old_root` is a prefix of
/// the tree `new`, and verifies it; panics, naming both sizes, when it does not verify.
pub(crate) async fn assert_consistent(
    client: &mut Client,
    old_size: u64,
    old_root: hashforum::log::tree::Hash,
    new: &hashforum::log::checkpoint::TreeHead,
) {
    use hashforum::log::tree::{self, Hash};
    let proof = client
        .log
        .get_consistency_proof(pb::GetConsistencyProofRequest {
            old_size,
            new_size: new.size,
        })
        .await
        .unwrap()
        .into_inner();
    let hashes: Vec<Hash> = proof
        .hashes
        .iter()
        .map(|h| Hash(h.as_slice().try_into().expect("32 bytes")))
        .collect();
    tree::verify_consistency(&hashes, old_size, old_root, new.size, new.root)
        .unwrap_or_else(|e| panic!("{old_size} -> {}: {e}", new.size));
}

/// The latest checkpoint note the server serves (with the cosignatures it holds on it).
pub(crate) async fn latest_note(client: &mut Client) -> Vec<u8> {
    client
        .log
        .get_checkpoint(pb::GetCheckpointRequest::default())
        .await
        .unwrap()
        .into_inner()
        .note
}

/// The forum's log verifier (`forum.vkey` in its directory).
pub(crate) fn forum_verifier(forum: &Path) -> hashforum::log::checkpoint::LogVerifier {
    let vkey = std::fs::read_to_string(forum.join("forum.vkey")).unwrap();
    hashforum::log::checkpoint::LogVerifier::from_vkey(&vkey).unwrap()
}

/// The member directory.
pub(crate) async fn members(client: &mut Client) -> Vec<pb::Member> {
    client
        .admin
        .list_members(pb::ListMembersRequest {})
        .await
        .unwrap()
        .into_inner()
        .members
}

/// Checks an envelope's signature with the key of `member` that it names, taken from the
/// directory (`ListMembers`), as any member can.
pub(crate) fn verify_with_directory(
    directory: &[pb::Member],
    member: &str,
    envelope: &pb::Envelope,
) {
    assert_eq!(envelope.signatures.len(), 1, "one signature");
    let sig = &envelope.signatures[0];
    let key = directory
        .iter()
        .find(|m| m.member_id == member)
        .unwrap_or_else(|| panic!("{member} is in the directory"))
        .keys
        .iter()
        .find(|k| k.keyid == sig.keyid)
        .unwrap_or_else(|| panic!("{member} holds key {}", sig.keyid));
    let vk = hashforum::entry::parse_public_key(&key.public_key).unwrap();
    let sig = ed25519_dalek::Signature::from_slice(&sig.sig).unwrap();
    vk.verify_strict(
        &crypto::pae(&envelope.payload_type, &envelope.payload),
        &sig,
    )
    .expect("the envelope verifies with the directory's key");
}

/// What a refusal carries besides its code: `None` where the detail is absent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Details {
    /// `ErrorInfo.reason`.
    pub(crate) reason: Option<String>,
    /// `ErrorInfo.domain`.
    pub(crate) domain: Option<String>,
    /// The field of the first `BadRequest` violation.
    pub(crate) field: Option<String>,
    /// How many field violations the `BadRequest` holds.
    pub(crate) violations: Option<usize>,
}

/// The `ErrorInfo` and `BadRequest` of an error.
pub(crate) fn details(status: &Status) -> Details {
    use tonic_types::StatusExt;
    let info = status.get_details_error_info();
    let bad = status.get_details_bad_request();
    Details {
        reason: info.as_ref().map(|i| i.reason.clone()),
        domain: info.map(|i| i.domain),
        field: bad
            .as_ref()
            .and_then(|b| b.field_violations.first().map(|v| v.field.clone())),
        violations: bad.map(|b| b.field_violations.len()),
    }
}

/// The domain of every hashforum error.
pub(crate) const DOMAIN: &str = "hashforum.v1";

/// Asserts an `INVALID_ARGUMENT` with `reason` in the hashforum domain and exactly one field
/// violation, naming `field`.
#[track_caller]
pub(crate) fn assert_invalid(status: &Status, field: &str, reason: &str) {
    assert_eq!(
        (status.code(), details(status)),
        (
            Code::InvalidArgument,
            Details {
                reason: Some(reason.into()),
                domain: Some(DOMAIN.into()),
                field: Some(field.into()),
                violations: Some(1),
            }
        ),
        "{status:?}"
    );
}

/// Asserts a refusal with `code` and `reason` in the hashforum domain, without a
/// `BadRequest` (only `INVALID_ARGUMENT` names a field).
#[track_caller]
pub(crate) fn assert_refused(status: &Status, code: Code, reason: &str) {
    assert_eq!(
        (status.code(), details(status)),
        (
            code,
            Details {
                reason: Some(reason.into()),
                domain: Some(DOMAIN.into()),
                field: None,
                violations: None,
            }
        ),
        "{status:?}"
    );
}

/// The `FileDescriptorSet` messages needed to list services and methods (prost's own types
/// are not a dependency).
pub(crate) mod descriptor {
    /// `google.protobuf.FileDescriptorSet`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub(crate) struct FileDescriptorSet {
        #[prost(message, repeated, tag = "1")]
        pub(crate) file: Vec<FileDescriptorProto>,
    }

    /// `google.protobuf.FileDescriptorProto`: name, package and services.
    #[derive(Clone, PartialEq, prost::Message)]
    pub(crate) struct FileDescriptorProto {
        #[prost(string, tag = "1")]
        pub(crate) name: String,
        #[prost(string, tag = "2")]
        pub(crate) package: String,
        #[prost(message, repeated, tag = "6")]
        pub(crate) service: Vec<ServiceDescriptorProto>,
    }

    /// `google.protobuf.ServiceDescriptorProto`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub(crate) struct ServiceDescriptorProto {
        #[prost(string, tag = "1")]
        pub(crate) name: String,
        #[prost(message, repeated, tag = "2")]
        pub(crate) method: Vec<MethodDescriptorProto>,
    }

    /// `google.protobuf.MethodDescriptorProto`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub(crate) struct MethodDescriptorProto {
        #[prost(string, tag = "1")]
        pub(crate) name: String,
    }

    /// Every `package.Service/Method` described by `files`.
    pub(crate) fn methods(files: &[FileDescriptorProto]) -> Vec<String> {
        let mut out: Vec<String> = files
            .iter()
            .flat_map(|f| {
                f.service.iter().flat_map(move |s| {
                    s.method
                        .iter()
                        .map(move |m| format!("{}.{}/{}", f.package, s.name, m.name))
                })
            })
            .collect();
        out.sort();
        out
    }
}

/// Runs `cmd` to the end, feeding it `stdin`; kills it and fails the test after `timeout`.
pub(crate) fn run_with_timeout(mut cmd: Command, stdin: &[u8], timeout: Duration) -> Output {
    let what = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let pid = child.id();
    let mut input = child.stdin.take().unwrap();
    let stdin = stdin.to_vec();
    // On a thread of its own: a child that never reads its input must not block the test.
    std::thread::spawn(move || {
        let _ = input.write_all(&stdin);
    });
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(timeout) {
        Ok(output) => output.unwrap(),
        Err(_) => {
            signal(pid, "KILL");
            panic!("{what} did not finish within {timeout:?}");
        }
    }
}

/// The Python of the test suite's virtual environment, which `deploy/setup.sh --test` makes
/// (`HASHFORUM_PYENV`, or `/var/tmp/hashforum-pyenv`); fails the test when it is missing.
pub(crate) fn pyenv_python() -> PathBuf {
    let pyenv = std::env::var_os("HASHFORUM_PYENV")
        .map_or_else(|| PathBuf::from("/var/tmp/hashforum-pyenv"), PathBuf::from);
    let python = pyenv.join("bin/python");
    assert!(
        python.exists(),
        "{} is missing: run `bash deploy/setup.sh --test` first",
        python.display()
    );
    python
}

/// Sends a signal (`TERM`, `KILL`) to a process; false if there was no such process.
pub(crate) fn signal(pid: u32, name: &str) -> bool {
    Command::new("kill")
        .args(["-s", name, &pid.to_string()])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// `hashforum serve` as a child process: its address, its exit and its stderr.
pub(crate) struct ServeProcess {
    pid: u32,
    /// The address it serves, `https://127.0.0.1:PORT`.
    pub(crate) addr: String,
    exited: mpsc::Receiver<ExitStatus>,
    status: Option<ExitStatus>,
    stderr: Arc<Mutex<String>>,
    /// Its stderr lines as they come; disconnected once the pipe is read to the end.
    lines: mpsc::Receiver<String>,
}

/// The `hashforum` binary.
pub(crate) fn hashforum_bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hashforum"));
    cmd.env_remove("HASHFORUM_IDENTITY")
        .env_remove("HASHFORUM_SERVER");
    cmd
}

impl ServeProcess {
    /// Runs `hashforum serve --config CONFIG --listen 127.0.0.1:0` and waits (at most
    /// [`CHILD_TIMEOUT`]) for the line that says where it listens. If it exits before,
    /// returns its exit status and stderr.
    pub(crate) fn start(config: &Path) -> Result<Self, (ExitStatus, String)> {
        Self::start_with(config, &[])
    }

    /// [`ServeProcess::start`] with more environment variables.
    pub(crate) fn start_with(
        config: &Path,
        env: &[(&str, &str)],
    ) -> Result<Self, (ExitStatus, String)> {
        let mut cmd = hashforum_bin();
        cmd.args(["serve", "--config"])
            .arg(config)
            .args(["--listen", "127.0.0.1:0"])
            .envs(env.iter().copied());
        Self::spawn(cmd)
    }

    /// [`ServeProcess::start`] of `cmd`: `hashforum serve --listen 127.0.0.1:0`, or a wrapper
    /// that runs it (for example under resource limits).
    pub(crate) fn spawn(mut cmd: Command) -> Result<Self, (ExitStatus, String)> {
        if cmd.get_envs().all(|(k, _)| k != "RUST_LOG") {
            cmd.env("RUST_LOG", "warn,hashforum=info");
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let pid = child.id();
        let stderr = Arc::new(Mutex::new(String::new()));
        let (lines_tx, lines) = mpsc::channel();
        let pipe = child.stderr.take().unwrap();
        let sink = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push_str(&line);
                sink.lock().unwrap().push('\n');
                let _ = lines_tx.send(line);
            }
        });
        let (exit_tx, exited) = mpsc::channel();
        std::thread::spawn(move || {
            if let Ok(status) = child.wait() {
                let _ = exit_tx.send(status);
            }
        });
        let mut process = Self {
            pid,
            addr: String::new(),
            exited,
            status: None,
            stderr,
            lines,
        };
        let deadline = Instant::now() + CHILD_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match process.lines.recv_timeout(left) {
                Ok(line) => {
                    if let Some(rest) = line.strip_prefix("hashforum serving ") {
                        let addr = rest.rsplit(" on ").next().unwrap();
                        process.addr = format!("https://{addr}");
                        return Ok(process);
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = process.wait(CHILD_TIMEOUT);
                    return Err((status, process.stderr()));
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    panic!(
                        "hashforum serve did not start within {CHILD_TIMEOUT:?}: {}",
                        process.stderr()
                    )
                }
            }
        }
    }

    /// Everything it wrote to stderr so far.
    /// Waits until its stderr shows a line containing `needle`: true, or false after
    /// `timeout` or when it exits first.
    pub(crate) fn wait_for_line(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while let Ok(line) = self
            .lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            if line.contains(needle) {
                return true;
            }
        }
        false
    }

    pub(crate) fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Sends it a signal (`TERM`, `KILL`).
    pub(crate) fn signal(&self, name: &str) {
        assert!(
            self.status.is_none() && signal(self.pid, name),
            "hashforum serve is not running: {}",
            self.stderr()
        );
    }

    /// Waits for it to exit; fails the test after `timeout`.
    pub(crate) fn wait(&mut self, timeout: Duration) -> ExitStatus {
        if let Some(status) = self.status {
            return status;
        }
        match self.exited.recv_timeout(timeout) {
            Ok(status) => {
                self.status = Some(status);
                // The child is gone, but the reader may not have read its last lines yet:
                // read the pipe to its end, so that `stderr()` holds everything.
                while let Ok(_line) = self.lines.recv_timeout(timeout) {}
                status
            }
            Err(_) => {
                signal(self.pid, "KILL");
                panic!(
                    "hashforum serve did not exit within {timeout:?}: {}",
                    self.stderr()
                );
            }
        }
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        if self.status.is_none() {
            signal(self.pid, "KILL");
            let _ = self.exited.recv_timeout(CHILD_TIMEOUT);
        }
    }
}

/// The server's `GetStatus`.
pub(crate) async fn status(client: &mut Client) -> pb::GetStatusResponse {
    client
        .log
        .get_status(pb::GetStatusRequest {})
        .await
        .unwrap()
        .into_inner()
}

/// The server's latest checkpoint, verified with `verifier`.
pub(crate) async fn latest_checkpoint(
    client: &mut Client,
    verifier: &hashforum::log::checkpoint::LogVerifier,
) -> hashforum::log::checkpoint::SignedCheckpoint {
    let note = client
        .log
        .get_checkpoint(pb::GetCheckpointRequest::default())
        .await
        .unwrap()
        .into_inner()
        .note;
    verifier.verify(&note).unwrap()
}
