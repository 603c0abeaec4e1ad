//! The registry's views as a deterministic function of the log.
//!
//! Every entry goes through the same two steps, on the primary and (later) on replicas:
//!
//! 1. [`check`]: may this entry be appended at this index, against the membership and
//!    incidents as of the entries before it? It returns what the entry will do to the views
//!    (its [`Effect`]); for an admin action that is the changed member, computed once by
//!    `Directory::apply`, for an incident statement the changed incident. Then, for a
//!    statement about a hash (submission, opinion, retraction, withdrawal), does the hash's
//!    record allow it (`record::change`)?
//! 2. [`Pending::append`]: append the leaf and stage the effect in the group's `WriteBatch`.
//!
//! [`Pending::apply`] is the two together for one entry. The sequencer checks a whole job first
//! with [`Pending::check_job`] (a job is all or nothing), then appends the job's entries with
//! the effects the check computed, so what is checked is exactly what is applied. Nothing here
//! decides *when* to commit or signs anything.
//!
//! Invariant: after a commit, the log holds exactly indexes `0..size` and every view equals
//! the fold of these two steps over those entries.

mod directory;
mod incidents;
mod record;

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use ed25519_dalek::VerifyingKey;
use prost::Message;

pub use directory::{roles, Caller, Directory};
pub use incidents::Incidents;
pub use record::{decode_record, status, tallies, StoredRecord};

use crate::entry::{Author, Body, IncidentAction, ParsedEntry};
use crate::error::ServiceError;
use crate::log;
use crate::log::checkpoint::TreeHead;
use crate::log::tree::{self, Frontier, MemoryHashes};
use crate::pb;
use crate::pdq::index::PdqChange;
use crate::storage::{Batch, StorageError, Store};
use crate::types::{ContentHash, HashType, LeafHash, Role, StatementDigest};

/// Where an entry landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// Its log index.
    pub index: u64,
    /// Its RFC 6962 leaf hash.
    pub leaf_hash: LeafHash,
    /// Whether it was already in the log (then index and hash are the original's).
    pub duplicate: bool,
}

/// What a checked entry does to the views.
#[derive(Debug, Clone)]
pub enum Effect {
    /// Adds or supersedes the author's submission of a hash.
    Submission,
    /// Adds or supersedes the author's opinion of a hash.
    Opinion,
    /// Marks the author's submission of a hash retracted.
    Retraction,
    /// Marks a hash withdrawn.
    Withdrawal,
    /// Replaces a member's record: the member as changed by the admin action.
    Member(Box<pb::Member>),
    /// Replaces an incident: the incident as declared or closed.
    Incident(Box<pb::Incident>),
    /// Creates the forum's first members.
    Genesis,
}

/// A refused job: which entry (if one in particular) and why.
#[derive(Debug)]
pub struct Refusal {
    /// Position of the refused entry in the job, if the error is about one entry.
    pub position: Option<usize>,
    /// The error.
    pub error: ServiceError,
}

impl Refusal {
    /// A refusal of the whole job.
    pub fn whole(error: ServiceError) -> Self {
        Self {
            position: None,
            error,
        }
    }

    /// The error, its field prefixed with the refused entry's path (`field(position)`, such as
    /// `envelopes[3]`) when it is about one entry.
    pub fn in_field(self, field: impl Fn(usize) -> String) -> ServiceError {
        match self.position {
            Some(i) => self.error.in_field(&field(i)),
            None => self.error,
        }
    }
}

/// One step of a checked job, in the job's order.
// Nearly every step is `New`: boxing it would allocate once per entry for nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Step {
    /// The statement is already in the log, or earlier in the job: it gets that receipt.
    Duplicate,
    /// A new entry, with its author's key and its effect.
    New {
        /// The key its signature must verify with.
        key: VerifyingKey,
        /// What it does to the views.
        effect: Effect,
    },
}

/// A job that passed its checks.
#[derive(Debug)]
pub struct JobPlan<'d> {
    /// The membership after the job: borrowed when the job changes none.
    pub directory: Cow<'d, Directory>,
    /// One step per entry.
    pub steps: Vec<Step>,
}

/// Checks that `entry`, sent by `caller`, may be appended at log index `index`, sequenced at
/// `time_ms`, against `dir` (the membership and incidents as of the entries before it): its
/// author is an active member with a needed role signing with a registered, unrevoked key; a
/// caller other than the author is an active admin relaying it; an admin action makes sense
/// in this state; a submission names an open incident, if any. An admin action or incident
/// statement is applied to `dir`, so that the next entry is checked after it.
///
/// The hash records are not read here: [`Pending::check_job`] checks them.
///
/// # Errors
/// `PERMISSION_DENIED` or `INVALID_ARGUMENT` as [`Directory::check_author`] and
/// [`Directory::active_key`]; for admin actions, as [`Directory::apply`]; for incidents, as
/// [`Incidents::apply`] and [`Incidents::check_open`] (fields relative to the envelope).
pub fn check(
    dir: &mut Cow<'_, Directory>,
    entry: &ParsedEntry,
    index: u64,
    time_ms: u64,
    caller: &str,
) -> Result<(VerifyingKey, Effect), ServiceError> {
    let Author::Member(author) = &entry.author else {
        return Err(ServiceError::invalid(
            "payload.author",
            "INVALID_STATEMENT",
            "only entry 0 is authored by the forum",
        ));
    };
    if author.as_str() != caller && dir.check_author(caller, &[Role::Admin]).is_err() {
        return Err(ServiceError::denied(
            "AUTHOR_MISMATCH",
            format!("the statement is authored by {author} but the caller is {caller}"),
        ));
    }
    dir.check_author(author.as_str(), entry.body.required_roles())?;
    let key = dir.active_key(author.as_str(), &entry.keyid)?;
    let effect = match &entry.body {
        Body::HashSubmission(s) => {
            if let Some(incident) = &s.incident {
                dir.incidents()
                    .check_open(incident)
                    .map_err(|e| e.in_field("payload.hash_submission.incident_id"))?;
            }
            Effect::Submission
        }
        Body::Opinion(_) => Effect::Opinion,
        Body::Retraction(_) => Effect::Retraction,
        Body::Withdrawal(_) => Effect::Withdrawal,
        Body::Incident(action) => {
            let field = match action {
                IncidentAction::Declare { .. } => "payload.incident_declared",
                IncidentAction::Close { .. } => "payload.incident_closed",
            };
            let incident = dir
                .to_mut()
                .incidents_mut()
                .apply(action, author, index, time_ms)
                .map_err(|e| e.in_field(field))?;
            Effect::Incident(Box::new(incident))
        }
        Body::Admin(action) => Effect::Member(Box::new(
            dir.to_mut()
                .apply(action, index)
                .map_err(|e| e.in_field("payload"))?,
        )),
        Body::Genesis(_) => {
            return Err(ServiceError::invalid(
                "payload.genesis",
                "INVALID_STATEMENT",
                "only entry 0 is a genesis statement",
            ))
        }
    };
    Ok((key, effect))
}

/// Checks a job's entries in order, exactly as they will be appended: a statement already in
/// the log (`known`) or earlier in the job is a [`Step::Duplicate`], whoever sends it; every
/// other entry is [`check`]ed against the membership as changed by the job's earlier entries,
/// at the index it will get (`next_index` for the first new entry), sequenced at `time_ms`,
/// and then by `record` (given the entry and its index), which checks it against the hash
/// records as changed by the job's earlier entries: [`Pending::check_job`] does, admission
/// (which does not read records) passes a check that accepts everything.
///
/// # Errors
/// The outer error when `known` fails; the inner one names the first refused entry.
pub fn check_job<'d>(
    dir: &'d Directory,
    caller: &str,
    entries: &[ParsedEntry],
    mut known: impl FnMut(&ParsedEntry) -> Result<bool, StorageError>,
    next_index: u64,
    time_ms: u64,
    mut record: impl FnMut(&ParsedEntry, u64) -> Result<Result<(), ServiceError>, StorageError>,
) -> Result<Result<JobPlan<'d>, Refusal>, StorageError> {
    let mut directory = Cow::Borrowed(dir);
    // The new entries so far: their digests, and so the index of the next one.
    let mut new: HashSet<StatementDigest, foldhash::fast::RandomState> = HashSet::default();
    let mut steps = Vec::with_capacity(entries.len());
    for (position, entry) in entries.iter().enumerate() {
        if new.contains(&entry.digest) || known(entry)? {
            steps.push(Step::Duplicate);
            continue;
        }
        let index = next_index + new.len() as u64;
        new.insert(entry.digest);
        let checked = check(&mut directory, entry, index, time_ms, caller);
        let checked = match checked {
            Ok(step) => record(entry, index)?.map(|()| step),
            Err(error) => Err(error),
        };
        match checked {
            Ok((key, effect)) => steps.push(Step::New { key, effect }),
            Err(error) => {
                return Ok(Err(Refusal {
                    position: Some(position),
                    error,
                }))
            }
        }
    }
    Ok(Ok(JobPlan { directory, steps }))
}

/// Maps keyed by hashes and digests: uniformly distributed keys, no need for SipHash.
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// What a committing group wrote to the views the next group reads: its hash records and
/// resubmission index. The sequencer stages the next group while the previous one commits, and
/// reads through this until that commit is done.
#[derive(Debug, Default)]
pub struct Overlay {
    records: FastMap<ContentHash, Vec<u8>>,
    landed: FastMap<StatementDigest, Appended>,
}

/// A staged group, ready to commit.
pub struct Finished {
    /// Every write of the group, to commit atomically.
    pub batch: Batch,
    /// The log size once committed.
    pub size: u64,
    /// The tree once committed: its frontier, and its size and root.
    pub frontier: Frontier,
    /// The tree's size and root once committed.
    pub head: TreeHead,
    /// The group's tree hashes and the frontier it started from: enough for the inclusion
    /// proof of every entry it appended, at its size, without reads.
    pub hashes: MemoryHashes,
    /// The sequencing time of the group's entries.
    pub time_ms: u64,
    /// The new membership, if the group changed it.
    pub directory: Option<Directory>,
    /// The group's view writes, for staging the next group before this one is committed.
    pub overlay: Overlay,
    /// Each PDQ hash whose record the group changed, with the record's new status
    /// (`pb::RecordStatus` as a byte), in hash order: for the matching index, once committed.
    pub pdq: Vec<PdqChange>,
}

/// One group commit in the making.
pub struct Pending<'s> {
    store: &'s Store,
    /// The previous group, if it may not be committed yet.
    prev: Option<&'s Overlay>,
    batch: Batch,
    /// Hash records read or staged, as stored bytes, and whether this group changed them.
    records: FastMap<ContentHash, (Vec<u8>, bool)>,
    /// Receipts of statements in the log or staged, by statement digest.
    landed: FastMap<StatementDigest, Appended>,
    /// Digests the prefetch found in neither the store nor the previous group.
    known_new: HashSet<StatementDigest, foldhash::fast::RandomState>,
    dir: Directory,
    dir_changed: bool,
    size: u64,
    time_ms: u64,
    /// The tree as of the entries staged so far.
    frontier: Frontier,
    hashes: MemoryHashes,
    /// The entries about each hash (the `about` index), written sorted by `finish`.
    about: Vec<(ContentHash, u64)>,
    /// The latest status of each PDQ hash whose record the group changed.
    pdq: FastMap<crate::pdq::Bits, PdqChange>,
}

impl<'s> Pending<'s> {
    /// Starts a group on the log whose tree is `frontier` (its size is the log's), stamping
    /// entries with `time_ms`. `prev` is the previous group's overlay while it may still be
    /// committing.
    pub fn new(
        store: &'s Store,
        prev: Option<&'s Overlay>,
        dir: Directory,
        frontier: Frontier,
        time_ms: u64,
    ) -> Self {
        let mut hashes = MemoryHashes::default();
        hashes.extend(frontier.stored());
        Self {
            store,
            prev,
            batch: store.batch(),
            records: FastMap::default(),
            landed: FastMap::default(),
            known_new: HashSet::default(),
            dir,
            dir_changed: false,
            size: frontier.size(),
            time_ms,
            frontier,
            hashes,
            about: Vec::new(),
            pdq: FastMap::default(),
        }
    }

    /// Sizes the group for about `entries` entries and a write batch of about `bytes` (before
    /// anything is staged), so that neither its maps nor its batch are copied as they grow.
    #[must_use]
    pub fn with_capacity(mut self, entries: usize, bytes: usize) -> Self {
        self.batch = self.store.batch_with_capacity(bytes);
        self.records.reserve(entries);
        self.landed.reserve(entries);
        self.known_new.reserve(entries);
        // A leaf adds two stored hashes on average: itself, and the parents it completes.
        self.hashes.reserve(2 * entries);
        self
    }

    /// The directory as of the entries staged so far.
    pub fn directory(&self) -> &Directory {
        &self.dir
    }

    /// Replaces the directory with the one a checked job computed (see [`check_job`]).
    pub fn set_directory(&mut self, dir: Directory) {
        self.dir = dir;
        self.dir_changed = true;
    }

    /// The log size as of the entries staged so far: the index of the next entry.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Loads, in two multi-gets, the resubmission index and hash records the entries touch.
    ///
    /// # Errors
    /// When the store fails.
    pub fn prefetch(&mut self, entries: &[&ParsedEntry]) -> Result<(), StorageError> {
        let mut digests = Vec::with_capacity(entries.len());
        for entry in entries {
            let d = entry.digest;
            if self.landed.contains_key(&d) || self.known_new.contains(&d) {
                continue;
            }
            match self.prev.and_then(|p| p.landed.get(&d)) {
                Some(found) => {
                    // Appended by the previous group, not by this one.
                    let found = Appended {
                        duplicate: true,
                        ..*found
                    };
                    self.landed.insert(d, found);
                }
                None => digests.push(d),
            }
        }
        digests.sort_unstable();
        digests.dedup();
        for (digest, value) in digests.iter().zip(self.store.landed(&digests)?) {
            match value {
                Some((index, leaf_hash)) => {
                    let appended = Appended {
                        index,
                        leaf_hash,
                        duplicate: true,
                    };
                    self.landed.insert(*digest, appended);
                }
                None => {
                    self.known_new.insert(*digest);
                }
            }
        }
        let mut hashes = Vec::with_capacity(entries.len());
        for entry in entries {
            let Some(hash) = entry.body.hash() else {
                continue;
            };
            if self.records.contains_key(hash) {
                continue;
            }
            match self.prev.and_then(|p| p.records.get(hash)) {
                Some(record) => {
                    self.records.insert(hash.clone(), (record.clone(), false));
                }
                None => hashes.push(hash),
            }
        }
        hashes.sort_unstable();
        hashes.dedup();
        for (hash, value) in hashes.iter().zip(self.store.records(&hashes)?) {
            self.records
                .insert((*hash).clone(), (value.unwrap_or_default(), false));
        }
        Ok(())
    }

    /// The original receipt if this statement is already in the log (or staged).
    ///
    /// # Errors
    /// When the store fails.
    pub fn existing(&self, entry: &ParsedEntry) -> Result<Option<Appended>, StorageError> {
        let digest = &entry.digest;
        let found = match self.landed.get(digest) {
            Some(found) => Some(*found),
            None if self.known_new.contains(digest) => None,
            None => match self.prev.and_then(|p| p.landed.get(digest)) {
                Some(found) => Some(*found),
                None => self
                    .store
                    .landed(std::slice::from_ref(digest))?
                    .pop()
                    .flatten()
                    .map(|(index, leaf_hash)| Appended {
                        index,
                        leaf_hash,
                        duplicate: true,
                    }),
            },
        };
        Ok(found.map(|found| Appended {
            duplicate: true,
            ..found
        }))
    }

    /// The stored record of `hash` as staged so far: this group's, else the previous
    /// group's, else the store's; empty when the hash is not in the registry.
    fn record(&self, hash: &ContentHash) -> Result<Vec<u8>, StorageError> {
        if let Some((record, _)) = self.records.get(hash) {
            return Ok(record.clone());
        }
        if let Some(record) = self.prev.and_then(|p| p.records.get(hash)) {
            return Ok(record.clone());
        }
        Ok(self
            .store
            .records(&[hash])?
            .pop()
            .flatten()
            .unwrap_or_default())
    }

    /// Checks a job, sent by `caller`, at the next index on top of everything staged:
    /// [`check_job`] against the staged membership and incidents, then every new statement
    /// about a hash against that hash's record as changed by the job's earlier entries (on
    /// copies: nothing is staged). The result is what [`Pending::apply`] would do entry by
    /// entry.
    ///
    /// # Errors
    /// The outer error when the store fails; the inner one names the first refused entry.
    pub fn check_job(
        &self,
        caller: &str,
        entries: &[ParsedEntry],
    ) -> Result<Result<JobPlan<'_>, Refusal>, StorageError> {
        let known = |entry: &ParsedEntry| Ok(self.existing(entry)?.is_some());
        // Copies of the records the job changes, as changed by its entries so far.
        let mut records: FastMap<ContentHash, Vec<u8>> = FastMap::default();
        let record = |entry: &ParsedEntry, index: u64| {
            let Some((hash, change, field)) = record::change_for(entry, index, self.time_ms) else {
                return Ok(Ok(()));
            };
            let record = match records.entry(hash.clone()) {
                std::collections::hash_map::Entry::Occupied(slot) => slot.into_mut(),
                std::collections::hash_map::Entry::Vacant(slot) => slot.insert(self.record(hash)?),
            };
            Ok(record::change(record, change)?
                .map(|_| ())
                .map_err(|e| e.in_field(field)))
        };
        check_job(
            &self.dir,
            caller,
            entries,
            known,
            self.size,
            self.time_ms,
            record,
        )
    }

    /// `state::apply`: checks one entry, sent by `caller`, at the next index against the
    /// staged state, and appends it; or refuses it and stages nothing. A statement already in
    /// the log gets its original receipt.
    ///
    /// # Errors
    /// The outer error when the store fails; the inner one when the entry is refused.
    pub fn apply(
        &mut self,
        entry: ParsedEntry,
        caller: &str,
    ) -> Result<Result<Appended, ServiceError>, StorageError> {
        let step = match self.check_one(caller, &entry)? {
            Ok(step) => step,
            Err(error) => return Ok(Err(error)),
        };
        match step {
            Some(Step::New { effect, .. }) => Ok(Ok(self.append(entry, effect, caller)?)),
            Some(Step::Duplicate) | None => Ok(self.existing(&entry)?.ok_or_else(|| {
                ServiceError::Internal("a statement checked as a duplicate was not found".into())
            })),
        }
    }

    /// Checks one entry with [`Pending::check_job`] and installs the membership it produces.
    fn check_one(
        &mut self,
        caller: &str,
        entry: &ParsedEntry,
    ) -> Result<Result<Option<Step>, ServiceError>, StorageError> {
        let (dir, step) = match self.check_job(caller, std::slice::from_ref(entry))? {
            Ok(JobPlan { directory, steps }) => (
                match directory {
                    Cow::Owned(dir) => Some(dir),
                    Cow::Borrowed(_) => None,
                },
                steps.into_iter().next(),
            ),
            Err(refusal) => return Ok(Err(refusal.error)),
        };
        if let Some(dir) = dir {
            self.set_directory(dir);
        }
        Ok(Ok(step))
    }

    /// Replays a stored leaf at the next index, as a verifier or a replica does: the checks of
    /// [`Pending::apply`] (a repeated statement is refused: the log never holds one twice),
    /// with `caller` its relayer or its author; then the leaf is appended verbatim, its views
    /// stamped with its own sequencing time `time_ms`. Returns the key its signature must
    /// verify with; the caller verifies it.
    ///
    /// # Errors
    /// The outer error when the store fails; the inner one when the entry could not be at
    /// this index.
    pub fn replay(
        &mut self,
        entry: ParsedEntry,
        caller: &str,
        leaf: &[u8],
        time_ms: u64,
    ) -> Result<Result<VerifyingKey, ServiceError>, StorageError> {
        if let Some(earlier) = self.existing(&entry)? {
            return Ok(Err(ServiceError::invalid(
                "payload",
                "REPEATED_STATEMENT",
                format!("the statement is already in the log at {}", earlier.index),
            )));
        }
        self.time_ms = time_ms;
        let step = match self.check_one(caller, &entry)? {
            Ok(step) => step,
            Err(error) => return Ok(Err(error)),
        };
        match step {
            Some(Step::New { key, effect }) => {
                self.append_leaf(entry, effect, leaf)?;
                Ok(Ok(key))
            }
            Some(Step::Duplicate) | None => Err(StorageError::Corrupt {
                cf: "-",
                reason: "a statement checked as new was found again".into(),
            }),
        }
    }

    /// Appends a checked, verified, new entry sent by `caller` and stages its `effect` (as
    /// [`check`] computed it) on the views.
    ///
    /// # Errors
    /// When the store fails.
    pub fn append(
        &mut self,
        entry: ParsedEntry,
        effect: Effect,
        caller: &str,
    ) -> Result<Appended, StorageError> {
        let relayed_by = match &entry.author {
            Author::Member(author) if author.as_str() != caller => Some(caller),
            _ => None,
        };
        let leaf = log::leaf_bytes(&entry.leaf_prefix, self.time_ms, relayed_by);
        self.append_leaf(entry, effect, &leaf)
    }

    /// Appends an entry whose leaf bytes were made elsewhere (the genesis entry, made by
    /// `init`, or entries a replica received), stored verbatim.
    ///
    /// # Errors
    /// When the store fails.
    pub fn append_leaf(
        &mut self,
        entry: ParsedEntry,
        effect: Effect,
        leaf: &[u8],
    ) -> Result<Appended, StorageError> {
        let index = self.size;
        let appended = Appended {
            index,
            leaf_hash: log::leaf_hash(leaf),
            duplicate: false,
        };
        self.batch.put_entry(index, leaf);
        let first = tree::stored_hash_index(0, index);
        let new = self.frontier.append(appended.leaf_hash);
        self.batch.put_tree_hashes(first, &new);
        self.hashes.extend((first..).zip(new));
        self.landed.insert(entry.digest, appended);
        self.size += 1;
        match (effect, &entry.body) {
            (Effect::Submission, Body::HashSubmission(_))
            | (Effect::Opinion, Body::Opinion(_))
            | (Effect::Retraction, Body::Retraction(_))
            | (Effect::Withdrawal, Body::Withdrawal(_)) => self.apply_record(&entry, index)?,
            (Effect::Member(member), _) => {
                self.batch
                    .put_member(&member.member_id, &member.encode_to_vec(), index);
            }
            (Effect::Incident(incident), _) => {
                self.batch
                    .put_incident(&incident.incident_id, &incident.encode_to_vec());
            }
            (Effect::Genesis, Body::Genesis(g)) => self.apply_genesis(g),
            (effect, _) => {
                return Err(StorageError::Corrupt {
                    cf: "-",
                    reason: format!(
                        "entry {index} by {}: effect {effect:?} does not fit",
                        entry.author
                    ),
                })
            }
        }
        Ok(appended)
    }

    /// Stages the change a checked statement about a hash makes to its record.
    fn apply_record(&mut self, entry: &ParsedEntry, index: u64) -> Result<(), StorageError> {
        let Some((hash, change, _)) = record::change_for(entry, index, self.time_ms) else {
            return Ok(());
        };
        if !self.records.contains_key(hash) {
            let stored = self.record(hash)?;
            self.records.insert(hash.clone(), (stored, false));
        }
        let Some((record, dirty)) = self.records.get_mut(hash) else {
            return Ok(());
        };
        let first = record.is_empty();
        let status = match record::change(record, change)? {
            Ok(status) => status,
            // Checked before it was appended, so only a log that was never checked (or a bug)
            // gets here: a replica must stop rather than diverge.
            Err(refused) => {
                return Err(StorageError::Corrupt {
                    cf: "records",
                    reason: format!("entry {index} does not apply to its hash record: {refused}"),
                })
            }
        };
        *dirty = true;
        if hash.hash_type() == HashType::Pdq {
            if let Ok(bits) = <[u8; 32]>::try_from(hash.as_bytes()) {
                // `new` stays what the group's first change of the hash said.
                self.pdq
                    .entry(bits)
                    .and_modify(|c| c.status = status as u8)
                    .or_insert(PdqChange {
                        bits,
                        status: status as u8,
                        new: first,
                    });
            }
        }
        self.about.push((hash.clone(), index));
        Ok(())
    }

    fn apply_genesis(&mut self, genesis: &pb::Genesis) {
        for added in &genesis.members {
            let keys = genesis
                .keys
                .iter()
                .filter(|k| k.member_id == added.member_id)
                .map(|k| registered_key(k, 0))
                .collect();
            let member = pb::Member {
                member_id: added.member_id.clone(),
                display_name: added.display_name.clone(),
                roles: added.roles.clone(),
                status: pb::MemberStatus::Active as i32,
                keys,
                added_at_log_index: 0,
                cert_sha256: added.cert_sha256.clone(),
                retired_cert_sha256: Vec::new(),
            };
            self.batch
                .put_member(&member.member_id, &member.encode_to_vec(), 0);
            self.dir.upsert(member);
        }
        self.dir_changed = true;
    }

    /// Finishes the group: its batch, the new size and directory, and the overlay the next
    /// group reads through until this one is committed. Keys are written in ascending order.
    pub fn finish(mut self) -> Finished {
        let overlay = Overlay {
            landed: self
                .landed
                .into_iter()
                .filter(|(_, a)| !a.duplicate)
                .collect(),
            records: self
                .records
                .into_iter()
                .filter(|(_, (_, dirty))| *dirty)
                .map(|(hash, (record, _))| (hash, record))
                .collect(),
        };
        let mut new: Vec<(&StatementDigest, &Appended)> = overlay.landed.iter().collect();
        new.sort_unstable_by_key(|(digest, _)| *digest);
        for (digest, appended) in new {
            self.batch
                .put_landed(digest, appended.index, &appended.leaf_hash);
        }
        let mut dirty: Vec<(&ContentHash, &Vec<u8>)> = overlay.records.iter().collect();
        dirty.sort_unstable_by_key(|(hash, _)| *hash);
        for (hash, record) in dirty {
            self.batch.put_record(hash, record);
        }
        self.about.sort_unstable();
        for (hash, index) in &self.about {
            self.batch.put_about(hash, *index);
        }
        let mut pdq: Vec<PdqChange> = self.pdq.into_values().collect();
        pdq.sort_unstable_by_key(|c| c.bits);
        for c in &pdq {
            self.batch.put_pdq(&c.bits, c.status);
        }
        self.batch.put_size(self.size);
        let head = TreeHead {
            size: self.size,
            root: self.frontier.root(),
        };
        Finished {
            batch: self.batch,
            size: self.size,
            frontier: self.frontier,
            head,
            hashes: self.hashes,
            time_ms: self.time_ms,
            directory: self.dir_changed.then_some(self.dir),
            overlay,
            pdq,
        }
    }
}

/// The PDQ view: every PDQ hash with its record's status, what the matching index is built
/// from at start-up. A database where it was never filled (written before the view existed)
/// gets it filled from the hash records first, in batches of 100,000, the last one marking
/// it filled.
///
/// # Errors
/// When the store fails or a record does not decode.
pub fn pdq_view(store: &Store) -> Result<Vec<(crate::pdq::Bits, u8)>, StorageError> {
    /// Hashes per batch while filling.
    const CHUNK: usize = 100_000;
    if store.pdq_view_missing()? {
        tracing::info!("filling the PDQ view from the hash records");
        let mut batch = store.batch();
        let (mut staged, mut total) = (0usize, 0usize);
        store.each_pdq_record(|bits, record| {
            batch.put_pdq(bits, record::status(&decode_record(record)?) as u8);
            staged += 1;
            if staged == CHUNK {
                store.commit(std::mem::replace(&mut batch, store.batch()))?;
                total += staged;
                staged = 0;
            }
            Ok(())
        })?;
        // Marked filled with the last batch: an interrupted filling starts again.
        batch.put_pdq_view_filled();
        store.commit(batch)?;
        tracing::info!(hashes = total + staged, "PDQ view filled");
    }
    store.pdq_view()
}

fn registered_key(k: &pb::KeyRegistered, index: u64) -> pb::SigningKey {
    let keyid = <[u8; 32]>::try_from(k.public_key.as_slice())
        .ok()
        .and_then(|b| VerifyingKey::from_bytes(&b).ok())
        .map(|vk| crate::crypto::key_id(&vk))
        .unwrap_or_default();
    pb::SigningKey {
        keyid,
        public_key: k.public_key.clone(),
        valid_from_log_index: index,
        revoked_at_log_index: None,
    }
}

#[cfg(test)]
mod tests;
