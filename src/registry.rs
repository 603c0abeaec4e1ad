//! The registry core, between the thin gRPC adapters and the sequencer and store.
//!
//! Submissions are parsed, authorized against the current membership snapshot and signature
//! checked here, in parallel and outside the single writer; the sequencer then re-checks state
//! at each entry's place in the log and commits. Lookups read RocksDB directly.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use prost::Message;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::crypto;
use crate::entry::{action_name, Author, ParsedEntry};
use crate::error::ServiceError;
use crate::log::checkpoint::{LogSigner, LogVerifier, SignedCheckpoint};
use crate::log::{self, now_ms, StoredEntry};
use crate::pb;
use crate::pdq::index::PdqIndex;
use crate::sequencer::{Committed, Sequencer};
use crate::state::{self, Caller, Directory, Step};
use crate::storage::Store;
use crate::types::{CertFingerprint, ContentHash, MemberId, StatementDigest};
use crate::wire::RawRecord;

pub use crate::wire::{MAX_LOOKUP_BATCH, MAX_MATCH_BATCH, MAX_SUBMIT_BATCH};

mod control;
mod cosigned;
mod log_reads;
mod matching;
mod provenance;
mod status;
pub use log_reads::{check_range, ENTRY_CHUNK};
pub use matching::{MatchOptions, MAX_MATCHES, MAX_WIDE_MATCH_BATCH};
pub use provenance::PROVENANCE_PAGE;
/// Largest lookup reply, in bytes: a reply that would be larger is refused with
/// `RESOURCE_EXHAUSTED` before it is built. 10,000 records with a few submissions each fit.
pub const MAX_REPLY_BYTES: usize = 16 << 20;

/// The default of [`Policy::admin_freshness`].
pub const ADMIN_FRESHNESS: Duration = Duration::from_secs(10 * 60);

/// The forum's admission rules that are not a function of the log.
#[derive(Debug, Clone)]
pub struct Policy {
    /// The forum's origin line: every statement must name it.
    pub origin: String,
    /// How far an admin statement's `issued_at_unix_ms` may be from the server's clock.
    pub admin_freshness: Duration,
    /// Blocking tasks (admission, lookups, history) running at once. A task holds its slot
    /// until it ends, also when its call was cancelled meanwhile, so a client that resets its
    /// calls cannot pile work up behind the server's per-call limits.
    pub max_blocking: usize,
    /// Answer a write only once this many replicas hold it (cosigned a checkpoint that covers
    /// it); 0: once it is durable here.
    pub write_quorum: usize,
    /// How long a write waits for that quorum.
    pub cosignature_timeout: Duration,
}

/// Who appends to the log this registry serves.
enum Writer {
    /// This server: the primary, with its sequencer.
    Primary(Sequencer),
    /// Another server (a replica's primary), or nobody (a local copy): writes are refused.
    ReadOnly {
        /// Where writes go, named in the refusal.
        primary: Option<String>,
        /// The latest verified checkpoint, advanced by the follower.
        checkpoints: tokio::sync::watch::Receiver<Arc<SignedCheckpoint>>,
        /// Cancelled when the server must stop (the follower's store failed).
        failed: CancellationToken,
        /// The follower's status, when one advances this copy.
        follow: Option<FollowWatch>,
    },
}

/// What a replica's follower reports, for `GetStatus`.
pub struct FollowWatch {
    /// The follower's status.
    pub status: tokio::sync::watch::Receiver<crate::follow::source::FollowStatus>,
    /// Where it keeps evidence.
    pub evidence_dir: std::path::PathBuf,
}

/// The registry: store, membership snapshot and sequencer.
pub struct Registry {
    store: Store,
    policy: Policy,
    /// Slots for blocking tasks: see [`Policy::max_blocking`].
    work: Arc<Semaphore>,
    directory: Arc<ArcSwap<Directory>>,
    /// The PDQ matching index, kept current by the sequencer.
    pdq: PdqIndex,
    writer: Writer,
    /// The log's verifier key.
    verifier: LogVerifier,
    /// Replicas' cosignatures on recent checkpoints (primary).
    cosigned: std::sync::Mutex<cosigned::Cosignatures>,
    /// Told of each cosignature taken, for writes waiting on a quorum.
    cosigned_sizes: tokio::sync::watch::Sender<()>,
    /// Set when a replica showed this primary that its log contradicts a checkpoint its key
    /// signed (rolled back or forked): the reason code and why. Kept in the store.
    halted: std::sync::OnceLock<(&'static str, String)>,
    /// The size of a store restored from a backup, until the operator confirmed that the log
    /// key signed no larger checkpoint: writes are refused meanwhile (`backup::restore`).
    restored: std::sync::Mutex<Option<u64>>,
}

impl Registry {
    /// Opens the registry over a bootstrapped store and starts its sequencer, which signs
    /// checkpoints with `signer`.
    ///
    /// # Errors
    /// When the store cannot be read or the sequencer thread cannot start.
    pub fn start(store: Store, policy: Policy, signer: LogSigner) -> std::io::Result<Self> {
        let (directory, pdq) = views(&store, true)?;
        let verifier = signer.verifier();
        let halted = store.halted().map_err(std::io::Error::other)?;
        let restored = store.restored().map_err(std::io::Error::other)?;
        if store.verified_copy().map_err(std::io::Error::other)? {
            // A promoted replica's store: what this primary appends is not a follower's.
            let mut batch = store.batch();
            batch.clear_verified_copy();
            store.commit(batch).map_err(std::io::Error::other)?;
        }
        let sequencer = Sequencer::start(store.clone(), directory.clone(), pdq.clone(), signer)?;
        let registry = Self::new(
            store,
            policy,
            directory,
            pdq,
            Writer::Primary(sequencer),
            verifier,
        );
        if let Some((reason, why)) = halted {
            let reason = cosigned::halt_reason(&reason);
            tracing::error!(reason, "{why}");
            let _ = registry.halted.set((reason, why));
        }
        if let Some(size) = restored {
            tracing::warn!(
                size,
                "restored from a backup: no writes until `hashforum restore --confirm`"
            );
            *registry.restored_at() = Some(size);
        }
        Ok(registry)
    }

    fn new(
        store: Store,
        policy: Policy,
        directory: Arc<ArcSwap<Directory>>,
        pdq: PdqIndex,
        writer: Writer,
        verifier: LogVerifier,
    ) -> Self {
        Self {
            store,
            work: Arc::new(Semaphore::new(policy.max_blocking.max(1))),
            policy,
            directory,
            pdq,
            writer,
            verifier,
            cosigned: std::sync::Mutex::default(),
            cosigned_sizes: tokio::sync::watch::channel(()).0,
            halted: std::sync::OnceLock::new(),
            restored: std::sync::Mutex::new(None),
        }
    }

    /// Opens a read-only registry over a verified copy of the log whose latest verified
    /// checkpoint is `latest`: a replica (`primary` names where writes go) or a member's local
    /// copy. Returns it with the views a [`Follower`](crate::follow::Follower) advances.
    ///
    /// # Errors
    /// When the store cannot be read.
    pub fn read_only(
        store: Store,
        policy: Policy,
        verifier: LogVerifier,
        latest: SignedCheckpoint,
        primary: Option<String>,
        follow: Option<FollowWatch>,
    ) -> std::io::Result<(Self, crate::follow::Views)> {
        let (directory, pdq) = views(&store, primary.is_some())?;
        let (tx, checkpoints) = tokio::sync::watch::channel(Arc::new(latest));
        let views = crate::follow::Views {
            directory: directory.clone(),
            pdq: pdq.clone(),
            checkpoints: tx,
        };
        let writer = Writer::ReadOnly {
            primary,
            checkpoints,
            failed: CancellationToken::new(),
            follow,
        };
        let registry = Self::new(store, policy, directory, pdq, writer, verifier);
        Ok((registry, views))
    }

    /// PDQ hashes in the matching index.
    pub fn pdq_len(&self) -> usize {
        self.pdq.len()
    }

    /// Whether the primary refuses writes because its disk is full (until a probe commits).
    pub fn disk_full(&self) -> bool {
        match &self.writer {
            Writer::Primary(sequencer) => sequencer.disk_full(),
            Writer::ReadOnly { .. } => false,
        }
    }

    /// Submissions queued for the sequencer or being committed, and their payload bytes
    /// (none on a read-only registry).
    pub fn queued(&self) -> (usize, usize) {
        match &self.writer {
            Writer::Primary(sequencer) => sequencer.queued(),
            Writer::ReadOnly { .. } => (0, 0),
        }
    }

    /// The primary's address when this registry is a replica (`None` on the primary and on
    /// a local copy).
    pub fn primary(&self) -> Option<&str> {
        match &self.writer {
            Writer::Primary(_) => None,
            Writer::ReadOnly { primary, .. } => primary.as_deref(),
        }
    }

    /// Whether this registry appends (the primary).
    pub fn is_primary(&self) -> bool {
        matches!(self.writer, Writer::Primary(_))
    }

    /// The current membership snapshot.
    pub fn directory(&self) -> Arc<Directory> {
        self.directory.load_full()
    }

    /// Cancelled when the store failed and the registry can append nothing more.
    pub fn failed(&self) -> &CancellationToken {
        match &self.writer {
            Writer::Primary(sequencer) => sequencer.failed(),
            Writer::ReadOnly { failed, .. } => failed,
        }
    }

    /// The caller holding the certificate with this SHA-256 fingerprint.
    ///
    /// # Errors
    /// `UNAUTHENTICATED` when it is bound to no active member.
    pub fn caller(&self, cert_sha256: &CertFingerprint) -> Result<Caller, ServiceError> {
        self.directory.load().caller(cert_sha256)
    }

    /// Verifies and appends envelopes, all or none. `field(i)` names envelope `i` in errors
    /// (`envelope` or `envelopes[i]`).
    ///
    /// Checks run in this order, each over the whole batch: form (parsing); resubmissions,
    /// which get their original receipt whoever sends them and whatever has changed since;
    /// freshness of admin statements; authorization of the rest against the current
    /// membership (the sequencer repeats it at each entry's place in the log); signatures.
    ///
    /// # Errors
    /// `INVALID_ARGUMENT` for a malformed envelope, a stale admin statement, an unknown or
    /// revoked key or a bad signature; `PERMISSION_DENIED` when the caller may not submit
    /// it.
    ///
    /// Each receipt carries a `tlog-proof` under the checkpoint that covers the entry.
    pub async fn submit<F>(
        &self,
        caller: &Caller,
        envelopes: Vec<pb::Envelope>,
        field: F,
    ) -> Result<Vec<pb::Receipt>, ServiceError>
    where
        F: Fn(usize) -> String + Copy + Send + 'static,
    {
        let sequencer = match &self.writer {
            Writer::Primary(sequencer) => sequencer,
            Writer::ReadOnly { primary, .. } => {
                return Err(ServiceError::FailedPrecondition {
                    reason: "READ_ONLY_REPLICA",
                    message: match primary {
                        Some(primary) => format!(
                            "this server is a read-only replica: send writes to the primary, \
                             {primary}"
                        ),
                        None => "this is a read-only copy of the log".into(),
                    },
                })
            }
        };
        if let Some((reason, why)) = self.halted.get() {
            return Err(ServiceError::FailedPrecondition {
                reason,
                message: why.clone(),
            });
        }
        self.check_confirmed()?;
        let admission = Admission {
            store: self.store.clone(),
            policy: self.policy.clone(),
            directory: self.directory.load_full(),
            caller: caller.member_id.clone(),
        };
        let entries = self
            .blocking(move || admission.admit(envelopes, field))
            .await?;
        let relayed: Vec<bool> = entries
            .iter()
            .map(|e| matches!(&e.author, Author::Member(author) if *author != caller.member_id))
            .collect();
        let mut committed = sequencer
            .submit(&caller.member_id, entries)
            .await
            .map_err(|e| e.in_field(field))?;
        if self.policy.write_quorum > 0 {
            committed.checkpoint = self.wait_for_quorum(&committed.checkpoint).await?;
        }
        let store = self.store.clone();
        let relayer = caller.member_id.clone();
        self.blocking(move || receipts(&store, &committed, &relayed, relayer.as_str()))
            .await
    }

    /// The latest durable signed checkpoint, updated as the log grows.
    pub fn checkpoints(&self) -> tokio::sync::watch::Receiver<Arc<SignedCheckpoint>> {
        match &self.writer {
            Writer::Primary(sequencer) => sequencer.checkpoints(),
            Writer::ReadOnly { checkpoints, .. } => checkpoints.clone(),
        }
    }

    /// The store, for the log's read API.
    pub fn store(&self) -> &Store {
        &self.store
    }
    /// Looks hashes up. Each result is `None` when the hash is not in the registry; a found
    /// record keeps its submissions encoded as stored (with envelopes attached on request).
    /// Each distinct hash is read once, however often it is asked for.
    ///
    /// # Errors
    /// `RESOURCE_EXHAUSTED` (`REPLY_TOO_LARGE`) when the reply would exceed
    /// [`MAX_REPLY_BYTES`], found before the reply is built; `INTERNAL` when the store fails.
    pub async fn lookup(
        &self,
        hashes: Vec<ContentHash>,
        include_envelopes: bool,
    ) -> Result<Vec<Option<RawRecord>>, ServiceError> {
        let store = self.store.clone();
        self.blocking(move || lookup(&store, &hashes, include_envelopes))
            .await
    }

    /// Every incident, open and closed, in order of declaration, as the directory sees it now.
    pub fn incidents(&self) -> Vec<pb::Incident> {
        self.directory().incidents().list()
    }

    /// A member, as the directory sees it now.
    ///
    /// # Errors
    /// `INVALID_ARGUMENT` for a malformed member id (never echoed); `NOT_FOUND` for an unknown
    /// member.
    pub fn member(&self, member: &str) -> Result<pb::Member, ServiceError> {
        let id = MemberId::parse(member)
            .map_err(|e| ServiceError::invalid("member_id", "INVALID_MEMBER_ID", e.0))?;
        self.directory()
            .member(id.as_str())
            .cloned()
            .ok_or_else(|| ServiceError::NotFound {
                reason: "UNKNOWN_MEMBER",
                message: format!("no member {id}"),
            })
    }

    /// Every entry that changed `member`, oldest first. Entries are read back as stored,
    /// without today's admission rules.
    ///
    /// # Errors
    /// `INVALID_ARGUMENT` for a malformed member id; `NOT_FOUND` for an unknown member;
    /// `INTERNAL` when the store fails.
    pub async fn member_history(&self, member: &str) -> Result<Vec<pb::MemberEvent>, ServiceError> {
        let id = MemberId::parse(&self.member(member)?.member_id)
            .map_err(|e| ServiceError::Internal(format!("stored member id: {e}")))?;
        let store = self.store.clone();
        self.blocking(move || member_history(&store, id.as_str()))
            .await
    }

    /// Stops the sequencer after it has committed everything queued.
    pub async fn close(self) {
        if let Writer::Primary(sequencer) = self.writer {
            sequencer.close().await;
        }
    }

    /// Runs blocking work (RocksDB reads, parsing, signature checks) on the blocking pool, in
    /// one of the registry's work slots, which the task keeps until it ends.
    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, ServiceError> + Send + 'static,
    ) -> Result<T, ServiceError> {
        let slot = self
            .work
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| ServiceError::ShuttingDown)?;
        tokio::task::spawn_blocking(move || {
            let _slot = slot;
            work()
        })
        .await
        .map_err(|e| ServiceError::Internal(format!("blocking task: {e}")))?
    }
}

/// The membership snapshot and the PDQ index of a store. A server logs the index's size and
/// build time (`announce`); a `--local` command says nothing unless asked.
fn views(store: &Store, announce: bool) -> std::io::Result<(Arc<ArcSwap<Directory>>, PdqIndex)> {
    let directory = Directory::load(store).map_err(std::io::Error::other)?;
    let directory = Arc::new(ArcSwap::from_pointee(directory));
    let started = std::time::Instant::now();
    let pdq = PdqIndex::build(state::pdq_view(store).map_err(std::io::Error::other)?);
    let (hashes, bytes, ms) = (
        pdq.len(),
        pdq.memory_bytes(),
        started.elapsed().as_millis() as u64,
    );
    let kernel = crate::pdq::index::level().name();
    if announce {
        tracing::info!(hashes, bytes, kernel, ms, "PDQ index built");
    } else {
        tracing::debug!(hashes, bytes, kernel, ms, "PDQ index built");
    }
    Ok((directory, pdq))
}

/// The receipts of a committed job: where each entry is, and its `tlog-proof` under the
/// job's checkpoint. `relayed[i]` says whether `relayer` relayed entry `i` (then its leaf names
/// the relayer); a resubmission's receipt is the original's, read from the store.
fn receipts(
    store: &Store,
    committed: &Committed,
    relayed: &[bool],
    relayer: &str,
) -> Result<Vec<pb::Receipt>, ServiceError> {
    let internal = |e: &dyn std::fmt::Display| ServiceError::Internal(format!("receipt: {e}"));
    let note = &committed.checkpoint.note;
    // New entries share one suffix per relaying: the group's time, and the relayer or none.
    let own = log::leaf_suffix(committed.time_ms, None);
    let relayed_suffix = log::leaf_suffix(committed.time_ms, Some(relayer));
    committed
        .with_prover(store, |prover| {
            committed
                .appended
                .iter()
                .zip(relayed)
                .map(|(appended, &relayed)| {
                    let stored_suffix;
                    let suffix = if appended.duplicate {
                        let leaf = store
                            .entry(appended.index)
                            .map_err(|e| internal(&e))?
                            .ok_or_else(|| {
                                internal(&format!("entry {} is missing", appended.index))
                            })?;
                        let stored = StoredEntry::decode(&leaf).map_err(|e| internal(&e))?;
                        stored_suffix =
                            log::leaf_suffix(stored.sequenced_at_unix_ms, Some(&stored.relayed_by));
                        &stored_suffix
                    } else if relayed {
                        &relayed_suffix
                    } else {
                        &own
                    };
                    let proof = prover.prove(appended.index).map_err(|e| internal(&e))?;
                    Ok(pb::Receipt {
                        log_index: appended.index,
                        entry_hash: appended.leaf_hash.as_bytes().to_vec(),
                        duplicate: appended.duplicate,
                        tlog_proof: log::proof::encode(Some(suffix), appended.index, &proof, note),
                    })
                })
                .collect()
        })
        .map_err(|e| internal(&e))?
}

/// What a submission is checked against, outside the single writer: the store (for
/// resubmissions), the forum's policy and the membership snapshot of the call.
struct Admission {
    store: Store,
    policy: Policy,
    directory: Arc<Directory>,
    caller: MemberId,
}

impl Admission {
    /// Parses, authorizes and verifies a call's envelopes, on the blocking pool (see
    /// [`Registry::submit`] for the order of the checks).
    fn admit(
        &self,
        envelopes: Vec<pb::Envelope>,
        field: impl Fn(usize) -> String,
    ) -> Result<Vec<ParsedEntry>, ServiceError> {
        let mut entries = Vec::with_capacity(envelopes.len());
        for (i, envelope) in envelopes.into_iter().enumerate() {
            let entry = ParsedEntry::parse(envelope, &self.policy.origin)
                .map_err(|e| e.in_field(&field(i)))?;
            entries.push(entry);
        }
        let known = self.landed(&entries)?;
        let now = now_ms();
        for (i, entry) in entries.iter().enumerate() {
            if !known.contains_key(&entry.digest) {
                self.check_fresh(entry, now)
                    .map_err(|e| e.in_field(&field(i)))?;
            }
        }
        let plan = state::check_job(
            &self.directory,
            self.caller.as_str(),
            &entries,
            |entry| Ok(known.contains_key(&entry.digest)),
            self.store.size()?,
            now,
            // Records are checked by the sequencer, at each entry's place in the log.
            |_, _| Ok(Ok(())),
        )?
        .map_err(|e| e.in_field(&field))?;
        let keys: Vec<_> = plan
            .steps
            .iter()
            .map(|step| match step {
                Step::New { key, .. } => Some(*key),
                Step::Duplicate => None,
            })
            .collect();
        verify(&entries, &keys).map_err(|i| {
            ServiceError::invalid(
                format!("{}.signatures[0].sig", field(i)),
                "BAD_SIGNATURE",
                "the signature does not verify over the envelope's payload",
            )
        })?;
        Ok(entries)
    }

    /// Where the statements already in the log landed, by digest.
    fn landed(
        &self,
        entries: &[ParsedEntry],
    ) -> Result<HashMap<StatementDigest, (u64, crate::types::LeafHash)>, ServiceError> {
        let mut digests: Vec<StatementDigest> = entries.iter().map(|e| e.digest).collect();
        digests.sort_unstable();
        digests.dedup();
        let found = self.store.landed(&digests)?;
        Ok(digests
            .into_iter()
            .zip(found)
            .filter_map(|(d, f)| Some((d, f?)))
            .collect())
    }

    /// Refuses an admin statement (membership, keys, withdrawals, incidents) issued too far
    /// from now: a signed action that was never delivered cannot be replayed months later.
    /// Members' statements (submissions, opinions, retractions) are not held to a window.
    fn check_fresh(&self, entry: &ParsedEntry, now: u64) -> Result<(), ServiceError> {
        if !entry.body.is_admin() {
            return Ok(());
        }
        let window = u64::try_from(self.policy.admin_freshness.as_millis()).unwrap_or(u64::MAX);
        let issued = entry.issued_at_unix_ms;
        if issued.abs_diff(now) <= window {
            return Ok(());
        }
        Err(ServiceError::invalid(
            "payload.issued_at_unix_ms",
            "STALE_STATEMENT",
            format!(
                "an admin statement must be issued within {} of the server's clock; this one \
                 is {} ms off (sign it again)",
                humantime::format_duration(self.policy.admin_freshness),
                issued.abs_diff(now)
            ),
        ))
    }
}

/// [`Registry::lookup`], on the blocking pool. Each distinct hash is read once; records are
/// read in sorted chunks and charged to the reply's budget as they are read, as often as they
/// are asked for, so that a reply too large is refused before much of it is held.
fn lookup(
    store: &Store,
    hashes: &[ContentHash],
    include_envelopes: bool,
) -> Result<Vec<Option<RawRecord>>, ServiceError> {
    /// Records read per `multi_get`.
    const CHUNK: usize = 512;
    let mut sorted: Vec<&ContentHash> = hashes.iter().collect();
    sorted.sort_unstable();
    let mut unique: Vec<(&ContentHash, usize)> = Vec::with_capacity(sorted.len());
    for hash in sorted {
        match unique.last_mut() {
            Some((last, times)) if *last == hash => *times += 1,
            _ => unique.push((hash, 1)),
        }
    }
    let mut budget = ReplyBudget::default();
    let mut found: HashMap<&ContentHash, Vec<u8>> = HashMap::with_capacity(unique.len());
    for chunk in unique.chunks(CHUNK) {
        let keys: Vec<&ContentHash> = chunk.iter().map(|(hash, _)| *hash).collect();
        for (&(hash, times), record) in chunk.iter().zip(store.records(&keys)?) {
            let Some(mut record) = record else { continue };
            if include_envelopes {
                let mut decoded = pb::HashRecord::decode(record.as_slice())
                    .map_err(|e| ServiceError::Internal(format!("stored record: {e}")))?;
                attach_envelopes(store, &mut decoded.submissions)?;
                record = RawRecord::encode_rest(&decoded);
            }
            // The record, its hash and the result's framing, once per time it is asked for.
            budget.take((record.len() + 96).saturating_mul(times))?;
            found.insert(hash, record);
        }
    }
    Ok(hashes
        .iter()
        .map(|hash| {
            found.get(hash).map(|rest| RawRecord {
                hash_type: hash.hash_type().to_pb() as i32,
                value: hash.to_hex(),
                rest: rest.clone(),
            })
        })
        .collect())
}

fn attach_envelopes(store: &Store, submissions: &mut [pb::Submission]) -> Result<(), ServiceError> {
    let indexes: Vec<u64> = submissions.iter().map(|s| s.log_index).collect();
    for (s, leaf) in submissions.iter_mut().zip(store.entries(&indexes)?) {
        let leaf = leaf.ok_or_else(|| {
            ServiceError::Internal(format!("log entry {} is missing", s.log_index))
        })?;
        let stored = StoredEntry::decode(&leaf)
            .map_err(|e| ServiceError::Internal(format!("log entry {}: {e}", s.log_index)))?;
        s.envelope = Some(stored.envelope);
    }
    Ok(())
}

/// [`Registry::member_history`], on the blocking pool.
fn member_history(store: &Store, member: &str) -> Result<Vec<pb::MemberEvent>, ServiceError> {
    let indexes = store.history(member)?;
    let leaves = store.entries(&indexes)?;
    indexes
        .iter()
        .zip(leaves)
        .map(|(&index, leaf)| {
            let corrupt = |why: String| {
                ServiceError::Internal(format!("log entry {index} (history of {member}): {why}"))
            };
            let leaf = leaf.ok_or_else(|| corrupt("missing".into()))?;
            let stored = StoredEntry::decode(&leaf).map_err(|e| corrupt(e.to_string()))?;
            let body = stored
                .statement
                .body
                .as_ref()
                .ok_or_else(|| corrupt("a statement without a body".into()))?;
            Ok(pb::MemberEvent {
                log_index: index,
                sequenced_at_unix_ms: stored.sequenced_at_unix_ms,
                author: stored.statement.author.clone(),
                action: action_name(body).into(),
                envelope: Some(stored.envelope),
            })
        })
        .collect()
}

/// A running total of reply bytes, refused past [`MAX_REPLY_BYTES`].
#[derive(Default)]
struct ReplyBudget(usize);

impl ReplyBudget {
    fn take(&mut self, bytes: usize) -> Result<(), ServiceError> {
        self.0 = self.0.saturating_add(bytes);
        if self.0 > MAX_REPLY_BYTES {
            return Err(ServiceError::ResourceExhausted {
                reason: "REPLY_TOO_LARGE",
                message: format!(
                    "the reply would exceed {} MiB: ask for fewer hashes per call, or without \
                     envelopes",
                    MAX_REPLY_BYTES >> 20
                ),
            });
        }
        Ok(())
    }
}

/// Verifies the signatures of the entries that have a key (the new ones). Returns the
/// position of the first bad signature.
fn verify(
    entries: &[ParsedEntry],
    keys: &[Option<ed25519_dalek::VerifyingKey>],
) -> Result<(), usize> {
    let (positions, keys): (Vec<usize>, Vec<_>) = keys
        .iter()
        .enumerate()
        .filter_map(|(i, key)| Some((i, (*key)?)))
        .unzip();
    let messages: Vec<&[u8]> = positions
        .iter()
        .map(|&i| entries[i].signed.as_slice())
        .collect();
    let sigs: Vec<_> = positions.iter().map(|&i| entries[i].signature).collect();
    crypto::verify_all(&messages, &sigs, &keys).map_err(|bad| positions[bad])
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;
    use crate::genesis::{self, Founder};
    use crate::statement::{admin, Signer};
    use crate::types::Role;

    const ORIGIN: &str = "old.example/forum";

    /// L4: a member's history reads its entries as stored, without today's admission rules:
    /// an entry admitted under older, looser rules (here a display name with a zero-width
    /// space, refused today) stays readable.
    #[tokio::test]
    async fn history_reads_entries_that_todays_rules_would_refuse() {
        let dir = tempfile::tempdir().expect("dir");
        let store = Store::open(dir.path()).expect("open");
        let admin_key = ed25519_dalek::SigningKey::from_bytes(&[3; 32]);
        let log_key = ed25519_dalek::SigningKey::from_bytes(&[4; 32]);
        let founder = Founder {
            member_id: "admin".into(),
            display_name: "admin".into(),
            roles: vec![Role::Admin],
            cert_der: vec![1],
            signing_key: admin_key.verifying_key(),
        };
        let leaf = genesis::create(&log_key, ORIGIN, &[founder], 1);
        genesis::bootstrap(&store, &leaf, &log_key.verifying_key(), ORIGIN).expect("genesis");

        let old_rules = admin::add_member(
            "gamma",
            "Gamma\u{200B}Inc",
            &[Role::Reader],
            vec![vec![9; 32]],
        );
        let envelope = Signer::new(ORIGIN, "admin", admin_key).admin(old_rules);
        assert!(
            ParsedEntry::parse(envelope.clone(), ORIGIN).is_err(),
            "refused today"
        );
        let leaf = pb::LogEntry {
            envelope: Some(envelope.clone()),
            sequenced_at_unix_ms: 2,
            relayed_by: String::new(),
        }
        .encode_to_vec();
        let member = pb::Member {
            member_id: "gamma".into(),
            display_name: "Gamma\u{200B}Inc".into(),
            roles: vec![Role::Reader.to_pb() as i32],
            status: pb::MemberStatus::Active as i32,
            added_at_log_index: 1,
            cert_sha256: vec![vec![9; 32]],
            ..Default::default()
        };
        let mut batch = store.batch();
        batch.put_entry(1, &leaf);
        let mut tree = crate::log::tree::Frontier::load(1, &store).expect("tree");
        let hashes = tree.append(crate::log::leaf_hash(&leaf));
        batch.put_tree_hashes(crate::log::tree::stored_hash_index(0, 1), &hashes);
        batch.put_member("gamma", &member.encode_to_vec(), 1);
        batch.put_size(2);
        store.commit(batch).expect("commit");

        let policy = Policy {
            origin: ORIGIN.into(),
            admin_freshness: ADMIN_FRESHNESS,
            max_blocking: 4,
            write_quorum: 0,
            cosignature_timeout: Duration::from_secs(5),
        };
        let signer = LogSigner::new(ORIGIN, log_key).unwrap();
        let registry = Registry::start(store, policy, signer).expect("start");
        let events = registry.member_history("gamma").await.expect("readable");
        assert_eq!(events.len(), 1);
        assert_eq!(
            (events[0].log_index, events[0].action.as_str()),
            (1, "added")
        );
        assert_eq!(events[0].author, "admin");
        assert_eq!(events[0].envelope.as_ref(), Some(&envelope));
        registry.close().await;
    }
}
