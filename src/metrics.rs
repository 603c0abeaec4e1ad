//! Prometheus metrics: what the server counts, and the `/metrics` endpoint that serves them.
//!
//! Counters and histograms that code paths update as they run (calls, commits) are
//! process-wide, in [`global`]: a process serves one registry, and the sequencer and the call
//! layer need no handle passed down to them. Gauges of state (log size, checkpoint age, PDQ
//! index, RocksDB, replica lag) are read from the served [`Registry`] at each scrape, so they
//! cost nothing between scrapes.
//!
//! The endpoint is plain HTTP on its own address (`[metrics] listen`), off unless configured:
//! it carries no secrets (member ids, method names, counts), but it is for the operator's
//! Prometheus, not for members, so keep it on loopback or a management network. The format is
//! OpenMetrics text, which Prometheus scrapes natively. `docs/operations.md` lists every
//! metric and suggests alerts.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry as MetricRegistry;
use tokio_util::sync::CancellationToken;

use crate::registry::Registry;

/// The labels of a call: which method, who called, and how it ended.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    /// `Service/Method`, without the package: `RegistryService/SubmitEntries`.
    pub rpc: String,
    /// The gRPC status code name (`OK`, `INVALID_ARGUMENT`, ...), `CANCELLED` when the client
    /// went away before the reply ended.
    pub code: &'static str,
    /// The calling member, or empty for calls refused before the caller was known and for
    /// health and reflection.
    pub member: String,
}

/// The labels of a quota refusal.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QuotaLabels {
    /// The member refused.
    pub member: String,
    /// Which quota: `entries`, `lookups` or `calls`.
    pub quota: &'static str,
}

/// The labels of a RocksDB figure.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RocksLabels {
    /// The RocksDB property, without its `rocksdb.` prefix.
    property: &'static str,
    /// The column family, or empty for database-wide figures.
    cf: &'static str,
}

type SecondsHistogram = fn() -> Histogram;

/// Everything the server counts.
pub struct Metrics {
    registry: MetricRegistry,
    /// Calls by method, status code and member.
    pub calls: Family<CallLabels, Counter>,
    /// Call latency, from arrival to the reply's last byte, by method, code and member.
    pub call_seconds: Family<CallLabels, Histogram, SecondsHistogram>,
    /// Calls refused by a member's quota.
    pub quota_refusals: Family<QuotaLabels, Counter>,
    /// Calls refused because the server was at its call budget for too long.
    pub overloaded: Counter,
    /// Entries appended to the log by this process (the sequencer, or a replica's follower).
    pub entries_appended: Counter,
    /// Entries per group commit.
    pub group_entries: Histogram,
    /// A group commit: one synced RocksDB write batch (write-ahead log append and fsync).
    pub commit_seconds: Histogram,
    queue_jobs: Gauge,
    queue_bytes: Gauge,
    log_size: Gauge,
    checkpoint_age: Gauge<f64, AtomicU64>,
    pdq_hashes: Gauge,
    members: Gauge,
    rocksdb: Family<RocksLabels, Gauge>,
    replica_lag_entries: Gauge,
    replica_lag_seconds: Gauge,
    halted: Gauge,
    disk_full: Gauge,
}

/// The process's metrics.
pub fn global() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

fn seconds_histogram() -> Histogram {
    // 100 µs to about 105 s.
    Histogram::new(exponential_buckets(0.0001, 4.0, 11))
}

impl Metrics {
    fn new() -> Self {
        let mut registry = MetricRegistry::with_prefix("hashforum");
        let calls = Family::<CallLabels, Counter>::default();
        registry.register(
            "calls",
            "gRPC calls by method, status code and member",
            calls.clone(),
        );
        let call_seconds: Family<CallLabels, Histogram, SecondsHistogram> =
            Family::new_with_constructor(seconds_histogram);
        registry.register(
            "call_seconds",
            "gRPC call latency, from arrival to the reply's last byte",
            call_seconds.clone(),
        );
        let quota_refusals = Family::<QuotaLabels, Counter>::default();
        registry.register(
            "quota_refusals",
            "calls refused with RESOURCE_EXHAUSTED by a member's quota",
            quota_refusals.clone(),
        );
        let overloaded = Counter::default();
        registry.register(
            "overloaded",
            "calls refused with UNAVAILABLE because the server stayed at its call budget",
            overloaded.clone(),
        );
        let entries_appended = Counter::default();
        registry.register(
            "entries_appended",
            "log entries appended by this process",
            entries_appended.clone(),
        );
        let group_entries = Histogram::new(exponential_buckets(1.0, 4.0, 9));
        registry.register(
            "group_entries",
            "entries per group commit",
            group_entries.clone(),
        );
        let commit_seconds = seconds_histogram();
        registry.register(
            "commit_seconds",
            "group commit latency: one synced write batch (WAL append and fsync)",
            commit_seconds.clone(),
        );
        let queue_jobs = Gauge::default();
        registry.register(
            "queue_jobs",
            "submissions queued for the sequencer or being committed",
            queue_jobs.clone(),
        );
        let queue_bytes = Gauge::default();
        registry.register(
            "queue_bytes",
            "payload bytes of the submissions queued for the sequencer",
            queue_bytes.clone(),
        );
        let log_size = Gauge::default();
        registry.register(
            "log_size",
            "entries in the log (the latest checkpoint's size)",
            log_size.clone(),
        );
        let checkpoint_age = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "checkpoint_age_seconds",
            "seconds since this server published its latest checkpoint (signed on a primary, verified on a replica)",
            checkpoint_age.clone(),
        );
        let pdq_hashes = Gauge::default();
        registry.register(
            "pdq_index_hashes",
            "PDQ hashes in the matching index",
            pdq_hashes.clone(),
        );
        let members = Gauge::default();
        registry.register(
            "members",
            "members in the directory, active or not",
            members.clone(),
        );
        let rocksdb = Family::<RocksLabels, Gauge>::default();
        registry.register(
            "rocksdb",
            "RocksDB integer properties, by column family",
            rocksdb.clone(),
        );
        let replica_lag_entries = Gauge::default();
        registry.register(
            "replica_lag_entries",
            "entries the primary has shown this replica that it does not hold yet",
            replica_lag_entries.clone(),
        );
        let replica_lag_seconds = Gauge::default();
        registry.register(
            "replica_lag_seconds",
            "seconds since this replica last held all the primary had, or last heard from it",
            replica_lag_seconds.clone(),
        );
        let halted = Gauge::default();
        registry.register(
            "halted",
            "1 when this server stopped advancing (or writing) on evidence of a rollback or fork",
            halted.clone(),
        );
        let disk_full = Gauge::default();
        registry.register(
            "disk_full",
            "1 while the primary refuses writes because its disk is full",
            disk_full.clone(),
        );
        Self {
            registry,
            calls,
            call_seconds,
            quota_refusals,
            overloaded,
            entries_appended,
            group_entries,
            commit_seconds,
            queue_jobs,
            queue_bytes,
            log_size,
            checkpoint_age,
            pdq_hashes,
            members,
            rocksdb,
            replica_lag_entries,
            replica_lag_seconds,
            halted,
            disk_full,
        }
    }

    /// Records one ended call.
    pub fn call(&self, labels: CallLabels, elapsed: Duration) {
        self.call_seconds
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
        self.calls.get_or_create(&labels).inc();
    }

    /// Reads the gauges of state from `registry`, then renders everything.
    fn render(&self, registry: &Registry, published: &Published) -> String {
        let status = registry.status();
        let size = i64::try_from(status.size).unwrap_or(i64::MAX);
        self.log_size.set(size);
        self.checkpoint_age.set(published.age().as_secs_f64());
        let (jobs, bytes) = registry.queued();
        self.queue_jobs.set(i64::try_from(jobs).unwrap_or(i64::MAX));
        self.queue_bytes
            .set(i64::try_from(bytes).unwrap_or(i64::MAX));
        self.pdq_hashes
            .set(i64::try_from(registry.pdq_len()).unwrap_or(i64::MAX));
        self.members
            .set(i64::try_from(registry.directory().members().count()).unwrap_or(i64::MAX));
        for (property, cf, value) in registry.store().figures() {
            self.rocksdb
                .get_or_create(&RocksLabels { property, cf })
                .set(i64::try_from(value).unwrap_or(i64::MAX));
        }
        self.replica_lag_entries
            .set(i64::try_from(status.lag_entries).unwrap_or(i64::MAX));
        self.replica_lag_seconds
            .set(i64::try_from(status.lag_seconds).unwrap_or(i64::MAX));
        self.halted.set(i64::from(!status.halted.is_empty()));
        self.disk_full.set(i64::from(registry.disk_full()));
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

/// When the served registry last published a new checkpoint.
#[derive(Default)]
struct Published {
    unix_ms: AtomicU64,
}

impl Published {
    fn now() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    fn age(&self) -> Duration {
        Duration::from_millis(Self::now().saturating_sub(self.unix_ms.load(Ordering::Relaxed)))
    }
}

/// Serves `/metrics` for `registry` on `listener` until `stop`. It holds the registry weakly:
/// a scrape in progress at shutdown does not keep the registry from closing (it gets a 503).
pub fn spawn(
    listener: tokio::net::TcpListener,
    registry: &Arc<Registry>,
    stop: CancellationToken,
) -> std::io::Result<SocketAddr> {
    let addr = listener.local_addr()?;
    let published = Arc::new(Published::default());
    published.unix_ms.store(Published::now(), Ordering::Relaxed);
    {
        // The checkpoint's age: reset each time the registry publishes a new one.
        let published = published.clone();
        let mut checkpoints = registry.checkpoints();
        let stop = stop.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    changed = checkpoints.changed() => {
                        if changed.is_err() {
                            return;
                        }
                        published.unix_ms.store(Published::now(), Ordering::Relaxed);
                    }
                }
            }
        });
    }
    let registry = Arc::downgrade(registry);
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let registry = registry.clone();
            let published = published.clone();
            async move {
                // RocksDB property reads are quick but blocking: off the async threads.
                let text = tokio::task::spawn_blocking(move || {
                    let registry = registry.upgrade()?;
                    Some(global().render(&registry, &published))
                })
                .await
                .ok()
                .flatten();
                match text {
                    Some(text) => (
                        http::StatusCode::OK,
                        [(
                            http::header::CONTENT_TYPE,
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        )],
                        text,
                    ),
                    None => (
                        http::StatusCode::SERVICE_UNAVAILABLE,
                        [(http::header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                        "the server is shutting down\n".to_owned(),
                    ),
                }
            }
        }),
    );
    tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await;
        if let Err(err) = served {
            tracing::error!(%err, "the metrics endpoint failed");
        }
    });
    Ok(addr)
}
