//! The follow loop: a [`Follower`] fed from a primary's Log API over gRPC.
//!
//! The loop learns of new checkpoints from `WatchCheckpoints` and, when the stream is silent or
//! broken, by polling `GetCheckpoint`. For each larger checkpoint it fetches the entries in
//! units of at most [`MAX_UNIT`] entries, each ending at a checkpoint the primary kept, and
//! applies them; the next unit is fetched while one is applied. Network errors are retried; a
//! refusal ends the loop with the evidence.

use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::{Evidence, EvidenceKind, FollowError, Follower, MAX_UNIT};
use crate::client::Client;
use crate::log::checkpoint::{LogVerifier, SignedCheckpoint};
use crate::log::tree::Hash;
use crate::pb;

/// Makes a follower's cosignature line on a checkpoint it verified.
pub type Cosign = Box<dyn Fn(&SignedCheckpoint) -> String + Send + Sync>;

/// How a follow loop runs.
pub struct Options {
    /// Keep following once caught up (a replica), or return then (`hashforum sync`).
    pub follow: bool,
    /// Retry when the source cannot be reached or fails, or return the error.
    pub retry: bool,
    /// How long a silent checkpoint stream is waited on before polling.
    pub poll: Duration,
    /// Cosigns each verified checkpoint, sent to the primary (replicas).
    pub cosign: Option<Cosign>,
}

/// Where a follower stands, for status and progress.
#[derive(Debug, Clone, Default)]
pub struct FollowStatus {
    /// The primary's address.
    pub primary: String,
    /// Verified entries held.
    pub size: u64,
    /// The largest size the primary has shown.
    pub primary_size: u64,
    /// Since when the follower holds less than the primary showed (`None`: caught up).
    pub behind_since: Option<SystemTime>,
    /// Set when following stopped on evidence: why.
    pub halted: Option<String>,
    /// Since when the primary cannot be reached (`None`: it answers).
    pub unreachable_since: Option<SystemTime>,
}

impl FollowStatus {
    /// Entries behind the primary.
    pub fn lag_entries(&self) -> u64 {
        self.primary_size.saturating_sub(self.size)
    }

    /// Seconds since the follower last held everything the primary had shown it, or since
    /// the primary last answered, whichever is longer: a replica cut off from its primary lags
    /// by as long as it cannot know.
    pub fn lag_seconds(&self) -> u64 {
        [self.behind_since, self.unreachable_since]
            .into_iter()
            .flatten()
            .filter_map(|t| t.elapsed().ok())
            .map(|d| d.as_secs())
            .max()
            .unwrap_or(0)
    }
}

/// Follows `client`'s log until `stop` (or, without `opts.follow`, until caught up with the
/// latest checkpoint seen first). Reports progress on `status`. Returns the follower.
///
/// # Errors
/// `Refused` with the evidence (keep it, stop advancing); `Storage` when the local store
/// fails; `Source` when the source fails and `opts.retry` is off (or a unit's task failed).
pub async fn run(
    mut follower: Follower,
    client: Client,
    opts: Options,
    status: watch::Sender<FollowStatus>,
    stop: CancellationToken,
) -> Result<Follower, FollowError> {
    let mut latest = Latest {
        client: client.clone(),
        stream: None,
        poll: opts.poll,
    };
    status.send_modify(|s| s.size = follower.size());
    let mut failures = 0u32;
    loop {
        let note = tokio::select! {
            () = stop.cancelled() => return Ok(follower),
            note = latest.next() => note,
        };
        let note = match note {
            Ok(note) => {
                failures = 0;
                status.send_modify(|s| s.unreachable_since = None);
                note
            }
            Err(e) if opts.retry => {
                failures += 1;
                status.send_modify(|s| {
                    s.unreachable_since.get_or_insert_with(SystemTime::now);
                });
                if failures == 1 || failures % 30 == 0 {
                    tracing::warn!(error = %e, "cannot reach the primary; retrying");
                }
                tokio::select! {
                    () = stop.cancelled() => return Ok(follower),
                    () = tokio::time::sleep(backoff(failures, opts.poll)) => {}
                }
                continue;
            }
            Err(e) => return Err(FollowError::Source(e)),
        };
        let examined = match follower.examine_latest(&note) {
            // A smaller checkpoint may be a stale message of the stream: only a fresh poll
            // that says the same is a rollback.
            Err(FollowError::Refused(e)) if e.kind == EvidenceKind::Rollback => {
                match latest.poll().await {
                    Ok(fresh) => follower.examine_latest(&fresh),
                    Err(_) => Ok(None),
                }
            }
            other => other,
        };
        let target = match examined {
            Ok(Some(target)) => target,
            Ok(None) => {
                status.send_modify(|s| {
                    s.primary_size = s.primary_size.max(follower.size());
                    if follower.size() >= s.primary_size {
                        s.behind_since = None;
                    }
                });
                if !opts.follow {
                    return Ok(follower);
                }
                continue;
            }
            Err(FollowError::Refused(evidence)) => {
                // The primary must learn that its log contradicts what it signed before.
                if matches!(
                    evidence.kind,
                    EvidenceKind::Rollback | EvidenceKind::Fork | EvidenceKind::RootMismatch
                ) {
                    tell_primary(&follower, &client, opts.cosign.as_ref()).await;
                }
                return Err(FollowError::Refused(evidence));
            }
            Err(e) => return Err(e),
        };
        // The source's own consistency proof from what is verified: a fork it shows is proven.
        if let Err(FollowError::Refused(evidence)) =
            check_consistency(&follower, &mut latest.client, &target).await
        {
            tell_primary(&follower, &client, opts.cosign.as_ref()).await;
            return Err(FollowError::Refused(evidence));
        }
        status.send_modify(|s| {
            s.primary_size = s.primary_size.max(target.head.size);
            s.behind_since.get_or_insert_with(SystemTime::now);
        });
        follower = match catch_up(follower, &client, &target, &opts, &status, &stop).await {
            Ok(follower) => follower,
            Err((Some(follower), FollowError::Source(e))) if opts.retry => {
                failures += 1;
                if failures == 1 || failures % 30 == 0 {
                    tracing::warn!(error = %e, "fetching entries failed; retrying");
                }
                tokio::select! {
                    () = stop.cancelled() => return Ok(follower),
                    () = tokio::time::sleep(backoff(failures, opts.poll)) => {}
                }
                follower
            }
            Err((Some(follower), FollowError::Refused(evidence))) => {
                if evidence.kind == EvidenceKind::RootMismatch {
                    tell_primary(&follower, &client, opts.cosign.as_ref()).await;
                }
                return Err(FollowError::Refused(evidence));
            }
            Err((_, e)) => return Err(e),
        };
        if follower.size() >= target.head.size {
            status.send_modify(|s| {
                if follower.size() >= s.primary_size {
                    s.behind_since = None;
                }
            });
            if !opts.follow {
                return Ok(follower);
            }
        }
    }
}

/// Asks the source for its consistency proof from the verified checkpoint to `target`, and
/// examines it. A proof that cannot be had, or does not lead to the target, proves nothing:
/// the entries are checked against the target's root anyway.
async fn check_consistency(
    follower: &Follower,
    client: &mut Client,
    target: &SignedCheckpoint,
) -> Result<(), FollowError> {
    let Some(held) = follower.latest().filter(|h| h.head.size > 0) else {
        return Ok(());
    };
    let request = pb::GetConsistencyProofRequest {
        old_size: held.head.size,
        new_size: target.head.size,
    };
    let Ok(reply) = deadline(client.log.get_consistency_proof(request)).await else {
        return Ok(());
    };
    let proof: Option<Vec<Hash>> = reply
        .into_inner()
        .hashes
        .into_iter()
        .map(|h| <[u8; 32]>::try_from(h).ok().map(Hash))
        .collect();
    match proof {
        Some(proof) => follower.examine_consistency(target, &proof),
        None => Ok(()),
    }
}

/// A unit to apply: a checkpoint note and the entries up to its size.
type Unit = Result<(Vec<u8>, Vec<Vec<u8>>), FollowError>;

/// Fetches and applies units up to `target`, fetching the next while one is applied.
async fn catch_up(
    mut follower: Follower,
    client: &Client,
    target: &SignedCheckpoint,
    opts: &Options,
    status: &watch::Sender<FollowStatus>,
    stop: &CancellationToken,
) -> Result<Follower, (Option<Follower>, FollowError)> {
    let (tx, mut rx) = mpsc::channel::<Unit>(1);
    let fetcher = tokio::spawn(fetch_units(
        client.clone(),
        follower.verifier().clone(),
        follower.size(),
        target.clone(),
        tx,
    ));
    let mut outcome = Ok(());
    loop {
        let unit = tokio::select! {
            () = stop.cancelled() => break,
            unit = rx.recv() => unit,
        };
        let Some(unit) = unit else { break };
        let (note, leaves) = match unit {
            Ok(unit) => unit,
            Err(e) => {
                outcome = Err(e);
                break;
            }
        };
        let checkpoint = match follower.examine_unit(&note) {
            Ok(c) => c,
            Err(e) => {
                outcome = Err(e);
                break;
            }
        };
        let applied = tokio::task::spawn_blocking(move || {
            let applied = follower.apply(&checkpoint, leaves);
            (follower, checkpoint, applied)
        })
        .await;
        let (back, checkpoint, applied) = match applied {
            Ok(done) => done,
            Err(e) => {
                // The follower is lost with the task; its unit was not committed.
                fetcher.abort();
                let reason = format!("applying a unit failed: {e}");
                return Err((None, FollowError::Source(reason)));
            }
        };
        follower = back;
        match applied {
            Ok(applied) => {
                status.send_modify(|s| s.size = applied.head.size);
                // A cosignature says "the largest tree I have seen": only the target's.
                if let Some(cosign) = opts.cosign.as_ref().filter(|_| applied.head == target.head) {
                    send_cosignature(client, &checkpoint, cosign(&checkpoint));
                }
                if target.head.size - applied.head.size > MAX_UNIT {
                    tracing::info!(
                        size = applied.head.size,
                        target = target.head.size,
                        "unit verified, catching up"
                    );
                }
            }
            Err(e) => {
                outcome = Err(e);
                break;
            }
        }
    }
    fetcher.abort();
    match outcome {
        Ok(()) => Ok(follower),
        Err(e) => Err((Some(follower), e)),
    }
}

/// Sends the units from `from` up to `target` on `tx`: each ends at the largest checkpoint
/// the source kept within [`MAX_UNIT`] entries (or at `target`).
async fn fetch_units(
    mut client: Client,
    verifier: LogVerifier,
    mut from: u64,
    target: SignedCheckpoint,
    tx: mpsc::Sender<Unit>,
) {
    while from < target.head.size {
        let unit = async {
            let (note, size) = if target.head.size - from <= MAX_UNIT {
                (target.note.clone(), target.head.size)
            } else {
                let note = deadline(client.log.get_checkpoint(pb::GetCheckpointRequest {
                    size: from + MAX_UNIT,
                    at_most: true,
                }))
                .await
                .map_err(|s| source("GetCheckpoint", &s))?
                .into_inner()
                .note;
                match verifier.verify(&note) {
                    // The applier refuses it with the evidence.
                    Err(_) => return Ok((note, Vec::new())),
                    Ok(c) if c.head.size > from && c.head.size <= from + MAX_UNIT => {
                        (note, c.head.size)
                    }
                    // Units are bounded: a source that kept no checkpoint within one is not
                    // followed (a primary keeps one per group commit, a replica one per unit).
                    Ok(c) => {
                        return Err(FollowError::Source(format!(
                            "asked for a checkpoint of at most {} entries past {from}, the \
                             source answered size {}",
                            MAX_UNIT, c.head.size
                        )))
                    }
                }
            };
            let leaves = entries(&mut client, from, size).await?;
            Ok((note, leaves))
        }
        .await;
        let next = match &unit {
            Ok((_, leaves)) if !leaves.is_empty() => from + leaves.len() as u64,
            _ => target.head.size,
        };
        if tx.send(unit).await.is_err() {
            return;
        }
        from = next;
    }
}

/// The entries `start..end`, from as many `GetEntries` chunks as it takes.
async fn entries(client: &mut Client, start: u64, end: u64) -> Result<Vec<Vec<u8>>, FollowError> {
    let mut leaves = Vec::with_capacity((end - start).min(MAX_UNIT) as usize);
    let mut stream = deadline(client.log.get_entries(pb::GetEntriesRequest { start, end }))
        .await
        .map_err(|s| source("GetEntries", &s))?
        .into_inner();
    while let Some(chunk) = deadline(stream.message())
        .await
        .map_err(|s| source("GetEntries", &s))?
    {
        if chunk.start != start + leaves.len() as u64 {
            return Err(FollowError::Source(format!(
                "GetEntries sent a chunk at {}, expected {}",
                chunk.start,
                start + leaves.len() as u64
            )));
        }
        leaves.extend(chunk.entries);
        if start + leaves.len() as u64 > end {
            return Err(FollowError::Source(
                "GetEntries sent more entries than asked".into(),
            ));
        }
    }
    if start + leaves.len() as u64 != end {
        return Err(FollowError::Source(format!(
            "GetEntries ended at {}, expected {end}",
            start + leaves.len() as u64
        )));
    }
    Ok(leaves)
}

/// The source's latest checkpoints: from its stream, or polled.
struct Latest {
    client: Client,
    stream: Option<tonic::Streaming<pb::WatchCheckpointsResponse>>,
    poll: Duration,
}

impl Latest {
    /// The next latest checkpoint note: the stream's next, or a poll when the stream is
    /// silent for `poll` or broken.
    async fn next(&mut self) -> Result<Vec<u8>, String> {
        if self.stream.is_none() {
            match deadline(
                self.client
                    .log
                    .watch_checkpoints(pb::WatchCheckpointsRequest {}),
            )
            .await
            {
                Ok(stream) => self.stream = Some(stream.into_inner()),
                Err(status) => {
                    tracing::debug!(code = ?status.code(), message = status.message(), "no checkpoint stream; polling");
                    // Without a stream, poll at the poll interval, not in a loop.
                    tokio::time::sleep(self.poll).await;
                }
            }
        }
        if let Some(stream) = &mut self.stream {
            match tokio::time::timeout(self.poll, stream.message()).await {
                Ok(Ok(Some(m))) => return Ok(m.note),
                Ok(_) => self.stream = None,
                Err(_) => {}
            }
        }
        self.poll().await
    }

    /// The source's latest checkpoint, asked now (not from the stream).
    async fn poll(&mut self) -> Result<Vec<u8>, String> {
        deadline(self.client.log.get_checkpoint(pb::GetCheckpointRequest {
            size: 0,
            at_most: false,
        }))
        .await
        .map(|r| r.into_inner().note)
        .map_err(|s| format!("GetCheckpoint: {}", s.message()))
    }
}

/// How long one call to the source, or one message of a stream, may take.
const CALL_DEADLINE: Duration = Duration::from_secs(30);

/// `call`, or `DEADLINE_EXCEEDED` after [`CALL_DEADLINE`]: a source that stops answering
/// (a dead host, a partition without a reset) does not hang the follower.
async fn deadline<T>(
    call: impl std::future::Future<Output = Result<T, tonic::Status>>,
) -> Result<T, tonic::Status> {
    tokio::time::timeout(CALL_DEADLINE, call)
        .await
        .unwrap_or_else(|_| {
            Err(tonic::Status::deadline_exceeded(
                "the source did not answer",
            ))
        })
}

/// The wait before retry `n` (1-based): from a second, doubling, at most `poll` × 15.
fn backoff(n: u32, poll: Duration) -> Duration {
    let base = Duration::from_secs(1).min(poll.max(Duration::from_millis(100)));
    base.saturating_mul(1 << n.min(5).saturating_sub(1))
        .min(poll.max(Duration::from_secs(1)) * 15)
}

/// Sends a cosignature to the primary in the background; a failure is logged (the next
/// checkpoint's cosignature supersedes it).
fn send_cosignature(client: &Client, checkpoint: &SignedCheckpoint, line: String) {
    let mut client = client.clone();
    let request = pb::AddCosignatureRequest {
        checkpoint: checkpoint.note.clone(),
        cosignature: line,
    };
    tokio::spawn(async move {
        if let Err(status) = client.log.add_cosignature(request).await {
            use tonic::Code;
            // Refused for who the replica is or what it may do (a quota, a role): the
            // operator must act, or a write quorum waits in vain. Anything else (the primary
            // restarting, a checkpoint it moved past) passes with the next one.
            if matches!(
                status.code(),
                Code::ResourceExhausted | Code::PermissionDenied | Code::Unauthenticated
            ) {
                tracing::warn!(code = ?status.code(), message = status.message(), "cosignature refused");
            } else {
                tracing::debug!(code = ?status.code(), message = status.message(), "cosignature not taken");
            }
        }
    });
}

/// Tells the primary what the log had signed, when what it serves now contradicts it: the
/// follower's latest verified checkpoint with its cosignature. A primary whose log is smaller,
/// or has another root at that size, then refuses to take writes. Bounded in time: evidence
/// is kept whatever the primary does with it.
async fn tell_primary(follower: &Follower, client: &Client, cosign: Option<&Cosign>) {
    let (Some(held), Some(cosign)) = (follower.latest(), cosign) else {
        return;
    };
    let mut client = client.clone();
    let request = pb::AddCosignatureRequest {
        checkpoint: held.note.clone(),
        cosignature: cosign(held),
    };
    match tokio::time::timeout(Duration::from_secs(5), client.log.add_cosignature(request)).await {
        Ok(Ok(_)) => tracing::warn!("the primary took the replica's larger checkpoint"),
        Ok(Err(s)) => {
            tracing::info!(code = ?s.code(), message = s.message(), "told the primary its log contradicts what it signed")
        }
        Err(_) => tracing::warn!("the primary did not answer the replica's checkpoint"),
    }
}

fn source(call: &str, status: &tonic::Status) -> FollowError {
    FollowError::Source(format!("{call}: {:?}: {}", status.code(), status.message()))
}

/// Keeps `evidence` in `dir` and logs it; returns the file's path when it could be written.
pub fn keep_evidence(evidence: &Evidence, dir: &std::path::Path) -> Option<std::path::PathBuf> {
    match evidence.keep(dir) {
        Ok(path) => {
            tracing::error!(
                kind = evidence.kind.name(),
                reason = %evidence.reason,
                evidence = %path.display(),
                "refused the source's log; stopped advancing, evidence kept"
            );
            Some(path)
        }
        Err(e) => {
            tracing::error!(
                kind = evidence.kind.name(),
                reason = %evidence.reason,
                error = %e,
                "refused the source's log; stopped advancing, but the evidence could not be written"
            );
            None
        }
    }
}
