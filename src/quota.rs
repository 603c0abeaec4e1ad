//! Per-member quotas: entries and lookups per second, and calls in progress.
//!
//! Rates are token buckets that may go into debt: a call is admitted when its member's bucket
//! is not in debt, and then charged its full cost (a batch of 10,000 entries against a quota of
//! 1,000 a second passes, and the next call waits about 9 s). So a batch is never refused for
//! being larger than a second's worth, a member at its rate gets exactly its rate, and the wait
//! a refusal names (`RetryInfo`) is when the debt is paid. The bucket holds at most one
//! second's worth, so an idle member cannot save up a burst.
//!
//! The server applies calls-in-progress in its budget layer, before a call takes one of the
//! server-wide slots, and the rates in the handlers, once the request's count is known and
//! before any work is done for it: a refused call changes nothing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::{Quota, QuotaConfig};
use crate::error::ServiceError;
use crate::state::Caller;
use crate::types::Role;

/// What a quota counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Entries submitted.
    Entries,
    /// Hashes looked up or matched.
    Lookups,
    /// Calls in progress.
    Calls,
}

impl Kind {
    /// The name used in refusals and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Entries => "entries",
            Kind::Lookups => "lookups",
            Kind::Calls => "calls",
        }
    }
}

/// How long a member over its calls-in-progress quota is told to wait.
const CALLS_RETRY: Duration = Duration::from_millis(100);

/// Every member's quotas, made as members first call.
pub struct Quotas {
    config: QuotaConfig,
    members: Mutex<HashMap<String, Arc<MemberQuota>>>,
}

impl Quotas {
    /// Quotas as configured; `None` when none is set.
    pub fn new(config: QuotaConfig) -> Option<Arc<Self>> {
        (!config.is_empty()).then(|| {
            Arc::new(Self {
                config,
                members: Mutex::default(),
            })
        })
    }

    /// `caller`'s quotas. Made on first use and again when the caller's roles changed.
    pub fn of(&self, caller: &Caller) -> Arc<MemberQuota> {
        let id = caller.member_id.as_str();
        let mut members = self
            .members
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(quota) = members.get(id) {
            // Same roles, or other roles with the same limits: the same buckets and slots,
            // so that a role change cannot pay a member's debt or free its slots.
            if quota.roles == caller.roles || quota.limits == self.resolve(id, &caller.roles) {
                return quota.clone();
            }
        }
        let limits = self.resolve(id, &caller.roles);
        let quota = Arc::new(MemberQuota::new(id, caller.roles.clone(), limits));
        members.insert(id.to_owned(), quota.clone());
        quota
    }

    /// The effective limits of member `id` with `roles`: for each, the member's own, else the
    /// most generous of its roles', else the default.
    fn resolve(&self, id: &str, roles: &[Role]) -> Quota {
        let own = self.config.members.get(id).copied().unwrap_or_default();
        let by_role: Vec<Quota> = roles
            .iter()
            .filter_map(|role| self.config.roles.get(role.name()).copied())
            .collect();
        let pick = |field: fn(&Quota) -> Option<u32>| {
            field(&own)
                .or_else(|| by_role.iter().filter_map(field).max())
                .or_else(|| field(&self.config.default))
        };
        Quota {
            entries_per_second: pick(|q| q.entries_per_second),
            lookups_per_second: pick(|q| q.lookups_per_second),
            concurrent_calls: pick(|q| q.concurrent_calls),
        }
    }
}

/// One member's quotas.
pub struct MemberQuota {
    member: String,
    /// The roles these were resolved for, and what they came to.
    roles: Vec<Role>,
    limits: Quota,
    entries: Option<Mutex<Bucket>>,
    lookups: Option<Mutex<Bucket>>,
    calls: Option<Arc<Semaphore>>,
    calls_limit: u32,
}

impl MemberQuota {
    fn new(member: &str, roles: Vec<Role>, limits: Quota) -> Self {
        let now = Instant::now();
        Self {
            member: member.to_owned(),
            roles,
            limits,
            entries: limits
                .entries_per_second
                .map(|rate| Mutex::new(Bucket::new(rate, now))),
            lookups: limits
                .lookups_per_second
                .map(|rate| Mutex::new(Bucket::new(rate, now))),
            calls: limits
                .concurrent_calls
                .map(|n| Arc::new(Semaphore::new(n as usize))),
            calls_limit: limits.concurrent_calls.unwrap_or(0),
        }
    }

    /// Charges `n` entries or lookups.
    ///
    /// # Errors
    /// `RESOURCE_EXHAUSTED` (`QUOTA_EXCEEDED`) with how long to wait, charging nothing.
    pub fn charge(&self, kind: Kind, n: usize) -> Result<(), ServiceError> {
        let bucket = match kind {
            Kind::Entries => &self.entries,
            Kind::Lookups => &self.lookups,
            Kind::Calls => return Ok(()),
        };
        let Some(bucket) = bucket else {
            return Ok(());
        };
        let mut bucket = bucket
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        #[allow(clippy::cast_precision_loss)] // n is at most a batch: 10,000
        bucket
            .take(n as f64, Instant::now())
            .map_err(|wait| self.refused(kind, bucket.rate, wait))
    }

    /// Takes a call-in-progress slot, held until the permit is dropped (`None` without that
    /// quota).
    ///
    /// # Errors
    /// `RESOURCE_EXHAUSTED` (`QUOTA_EXCEEDED`) when all the member's slots are taken.
    pub fn enter(&self) -> Result<Option<OwnedSemaphorePermit>, ServiceError> {
        let Some(calls) = &self.calls else {
            return Ok(None);
        };
        match calls.clone().try_acquire_owned() {
            Ok(permit) => Ok(Some(permit)),
            Err(_) => Err(self.refused(Kind::Calls, 0.0, CALLS_RETRY)),
        }
    }

    fn refused(&self, kind: Kind, rate: f64, retry_after: Duration) -> ServiceError {
        crate::metrics::global()
            .quota_refusals
            .get_or_create(&crate::metrics::QuotaLabels {
                member: self.member.clone(),
                quota: kind.name(),
            })
            .inc();
        let message = match kind {
            Kind::Calls => format!(
                "member {} has {} calls in progress, its quota; retry after one ends",
                self.member, self.calls_limit
            ),
            Kind::Entries | Kind::Lookups => format!(
                "member {} is over its quota of {rate} {} a second; retry in {} ms",
                self.member,
                kind.name(),
                retry_after.as_millis()
            ),
        };
        ServiceError::QuotaExceeded {
            quota: kind.name(),
            message,
            retry_after,
        }
    }
}

/// A token bucket that may go into debt (see the module docs).
#[derive(Debug)]
struct Bucket {
    /// Tokens a second, and the most the bucket holds.
    rate: f64,
    /// Tokens now; negative in debt.
    tokens: f64,
    /// When `tokens` was last brought up to date.
    at: Instant,
}

impl Bucket {
    fn new(rate: u32, now: Instant) -> Self {
        let rate = f64::from(rate);
        Self {
            rate,
            tokens: rate,
            at: now,
        }
    }

    /// Takes `n` tokens if the bucket is not in debt; else says how long until it is not.
    fn take(&mut self, n: f64, now: Instant) -> Result<(), Duration> {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate);
        self.at = now;
        if self.tokens < 0.0 {
            // At least a millisecond: a zero RetryInfo would invite an immediate retry.
            let wait = (-self.tokens / self.rate).max(0.001);
            return Err(Duration::from_secs_f64(wait));
        }
        self.tokens -= n;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_admits_a_large_batch_then_makes_the_member_wait_for_its_debt() {
        let t0 = Instant::now();
        let mut bucket = Bucket::new(1_000, t0);
        // A full bucket takes a batch ten times its rate.
        assert_eq!(bucket.take(10_000.0, t0), Ok(()));
        // Then 9,000 in debt: 9 s to wait.
        let wait = bucket.take(1.0, t0).unwrap_err();
        assert!((wait.as_secs_f64() - 9.0).abs() < 1e-6, "{wait:?}");
        // After 5 s, 4 s to go; refusals charge nothing.
        let wait = bucket.take(1.0, t0 + Duration::from_secs(5)).unwrap_err();
        assert!((wait.as_secs_f64() - 4.0).abs() < 1e-6, "{wait:?}");
        // After 9 s, out of debt: admitted.
        assert_eq!(bucket.take(1.0, t0 + Duration::from_secs(9)), Ok(()));
    }

    #[test]
    fn an_idle_bucket_saves_at_most_a_second() {
        let t0 = Instant::now();
        let mut bucket = Bucket::new(100, t0);
        let later = t0 + Duration::from_secs(3600);
        assert_eq!(bucket.take(100.0, later), Ok(()));
        assert_eq!(bucket.take(1.0, later), Ok(()));
        // 1 in debt at 100/s: 10 ms.
        let wait = bucket.take(1.0, later).unwrap_err();
        assert!((wait.as_secs_f64() - 0.01).abs() < 1e-6, "{wait:?}");
    }

    fn quotas(text: &str) -> Arc<Quotas> {
        Quotas::new(toml::from_str(text).unwrap()).unwrap()
    }

    #[test]
    fn a_members_own_quota_wins_then_its_most_generous_role_then_the_default() {
        let q = quotas(
            r#"
            default = { entries-per-second = 10, lookups-per-second = 100 }
            [roles.reader]
            lookups-per-second = 1000
            [roles.observer]
            lookups-per-second = 500
            concurrent-calls = 2
            [members.alpha]
            entries-per-second = 5
            "#,
        );
        let both = q.resolve("alpha", &[Role::Reader, Role::Observer]);
        assert_eq!(both.entries_per_second, Some(5));
        assert_eq!(both.lookups_per_second, Some(1000));
        assert_eq!(both.concurrent_calls, Some(2));
        let contributor = q.resolve("beta", &[Role::Contributor]);
        assert_eq!(contributor.entries_per_second, Some(10));
        assert_eq!(contributor.lookups_per_second, Some(100));
        assert_eq!(contributor.concurrent_calls, None);
        assert!(Quotas::new(QuotaConfig::default()).is_none());
    }
}
