//! Replica mode: a verified copy of the primary's log, caught up before it serves, then
//! followed in the background (`crate::follow`). Writes are refused naming the primary (see
//! `Registry::read_only`); the follower cosigns each checkpoint it verified and sends the
//! cosignature to the primary.
//!
//! A replica that kept evidence against its primary does not follow it again until the
//! evidence is moved away: it serves what it verified, and reports the evidence in its status
//! and health.

use std::time::Duration;

use anyhow::Context;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::client::Client;
use crate::config::ReplicaConfig;
use crate::follow::source::{self, Cosign, FollowStatus, Options};
use crate::follow::{Evidence, FollowError, Follower};
use crate::log::cosignature::Cosigner;
use crate::registry::{FollowWatch, Policy, Registry};
use crate::storage::Store;

/// A replica's follower, ready to run once the server serves.
pub(super) struct Following {
    follower: Follower,
    replica: ReplicaSettings,
    status: watch::Sender<FollowStatus>,
    halted: Option<String>,
}

/// What the follow task needs of the config.
struct ReplicaSettings {
    primary: String,
    identity: crate::identity::Identity,
    evidence_dir: std::path::PathBuf,
    poll: Duration,
}

/// The running follow task.
pub(super) struct Running {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Stops following and waits for the task (a unit being applied is finished first).
    pub(super) async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

/// Opens a replica's store: catches an empty one up with the primary first (nothing is served
/// before a checkpoint is verified), then returns the read-only registry and its follower.
/// `None` when shut down before that.
///
/// # Errors
/// When the store is not a verified copy of this log, or the primary's log is refused before
/// anything was verified.
pub(super) async fn open(
    store: Store,
    policy: Policy,
    config: &ReplicaConfig,
    shutting: &CancellationToken,
) -> anyhow::Result<Option<(Registry, Following)>> {
    let settings = ReplicaSettings {
        primary: config.primary.clone(),
        identity: config.identity.clone(),
        evidence_dir: config.evidence_dir.clone(),
        poll: config.poll,
    };
    let kept = Evidence::kept(&settings.evidence_dir);
    let halted = (!kept.is_empty()).then(|| {
        format!(
            "evidence against the primary is kept in {} ({} file(s)): the replica serves what \
             it verified and does not follow until the evidence is moved away",
            settings.evidence_dir.display(),
            kept.len()
        )
    });
    let (status, status_rx) = watch::channel(FollowStatus {
        primary: settings.primary.clone(),
        ..FollowStatus::default()
    });
    let follower = Follower::open(
        store.clone(),
        config.verifier.clone(),
        &settings.primary,
        None,
    )
    .context("the replica's data directory")?;
    let follower = if follower.latest().is_some() {
        follower
    } else {
        if let Some(halted) = &halted {
            anyhow::bail!("the replica holds no verified data and {halted}");
        }
        tracing::info!(primary = %settings.primary, "catching up with the primary before serving");
        match follow_once(follower, &settings, &status, shutting, false).await? {
            Some(follower) => follower,
            None => return Ok(None),
        }
    };
    let Some(latest) = follower.latest().cloned() else {
        return Ok(None);
    };
    drop(follower);
    let watch = FollowWatch {
        status: status_rx,
        evidence_dir: settings.evidence_dir.clone(),
    };
    let (registry, views) = Registry::read_only(
        store.clone(),
        policy,
        config.verifier.clone(),
        latest,
        Some(settings.primary.clone()),
        Some(watch),
    )?;
    let follower = Follower::open(
        store,
        config.verifier.clone(),
        &settings.primary,
        Some(views),
    )?;
    tracing::info!(size = follower.size(), "replica ready");
    Ok(Some((
        registry,
        Following {
            follower,
            replica: settings,
            status,
            halted,
        },
    )))
}

impl Following {
    /// Follows the primary in the background until stopped. On evidence, keeps it, stops
    /// advancing and marks the server `NOT_SERVING`; when the store fails, cancels `failed`.
    pub(super) fn spawn(
        self,
        failed: CancellationToken,
        health: tonic_health::server::HealthReporter,
    ) -> Running {
        let stop = CancellationToken::new();
        let stopping = stop.clone();
        let task = tokio::spawn(async move {
            let Following {
                follower,
                replica,
                status,
                halted,
            } = self;
            if let Some(why) = halted {
                tracing::error!("{why}");
                status.send_modify(|s| s.halted = Some(why));
                super::not_serving(&health).await;
                return;
            }
            match follow_once(follower, &replica, &status, &stopping, true).await {
                Ok(_) => {}
                Err(e) => {
                    let why = e.to_string();
                    status.send_modify(|s| s.halted = Some(why));
                    if e.downcast_ref::<Halted>().is_some() {
                        super::not_serving(&health).await;
                    } else {
                        tracing::error!(error = %e, "the replica cannot follow; stopping");
                        failed.cancel();
                    }
                }
            }
        });
        Running { stop, task }
    }
}

/// Following stopped on evidence.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Halted(String);

/// Connects to the primary (retrying) and follows it: until caught up once, or until stopped
/// with `follow`. `None` when stopped first.
async fn follow_once(
    follower: Follower,
    replica: &ReplicaSettings,
    status: &watch::Sender<FollowStatus>,
    stop: &CancellationToken,
    follow: bool,
) -> anyhow::Result<Option<Follower>> {
    let mut attempts = 0u32;
    let client = loop {
        match Client::connect(&replica.identity, Some(&replica.primary)).await {
            Ok(client) => break client,
            Err(e) => {
                attempts += 1;
                if attempts == 1 || attempts % 30 == 0 {
                    tracing::warn!(primary = %replica.primary, error = %e, "cannot connect to the primary; retrying");
                }
                tokio::select! {
                    () = stop.cancelled() => return Ok(None),
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
    };
    let options = Options {
        follow,
        retry: true,
        poll: replica.poll,
        cosign: Some(cosigner(&replica.identity)?),
    };
    match source::run(follower, client, options, status.clone(), stop.clone()).await {
        Ok(back) if stop.is_cancelled() => {
            drop(back);
            Ok(None)
        }
        Ok(back) => Ok(Some(back)),
        Err(FollowError::Refused(evidence)) => {
            let kept = source::keep_evidence(&evidence, &replica.evidence_dir);
            let at = kept.map_or_else(|| "not written".into(), |p| p.display().to_string());
            Err(Halted(format!("{} (evidence: {at})", evidence.reason)).into())
        }
        Err(e) => Err(e.into()),
    }
}

/// The replica's cosigner: its member id as the cosigner name, its registered signing key.
fn cosigner(identity: &crate::identity::Identity) -> anyhow::Result<Cosign> {
    let cosigner = Cosigner::new(&identity.file.member, identity.signing_key.clone())
        .map_err(|e| anyhow::anyhow!("the replica's cosigner: {e}"))?;
    Ok(Box::new(move |checkpoint| {
        cosigner.cosign(checkpoint, crate::log::now_ms() / 1000)
    }))
}
