//! Protection of registries from the operator: a concurrency limit per registry host, and a
//! per-host "not before" time set by `Retry-After` (429/503) or by exponential backoff with
//! jitter after transient failures. Also the pure parsers of `Retry-After` and `ratelimit-remaining`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use rand::Rng;

use crate::domain::backoff::Backoff;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// How hard the client may use each registry host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitsConfig {
    /// Requests in flight to one host at a time.
    pub max_concurrency_per_host: usize,
    /// The backoff after the first transient failure; it doubles with each further one.
    pub backoff_base: Duration,
    /// The longest backoff after repeated transient failures.
    pub backoff_max: Duration,
    /// The longest `Retry-After` honoured; longer requests are cut to this.
    pub retry_after_max: Duration,
    /// The longest a call waits for a host's backoff to end. Calls that would wait longer fail
    /// at once with [`BackingOff`], so a reconcile is never parked for minutes, and the registry
    /// is not contacted before the time it asked for.
    pub max_wait: Duration,
    /// Requests started per second to one host at most (0: no budget). Calls beyond the budget
    /// queue for their slot rather than fail, so a burst of imports is spread out, not refused.
    pub max_requests_per_second: u32,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_concurrency_per_host: 8,
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(300),
            retry_after_max: Duration::from_secs(3600),
            max_wait: Duration::from_secs(30),
            max_requests_per_second: 0,
        }
    }
}

/// How a request to a host ended, as far as the host's backoff is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostOutcome {
    /// The host answered with something other than a transient failure: backoff is reset.
    Answered,
    /// A transient failure (429, 5xx, timeout, connection failure) with the condition reason it
    /// gives, and the delay the host asked for with `Retry-After`, if any.
    Transient {
        /// The PascalCase reason of the failure, kept to explain later refusals.
        reason: &'static str,
        /// The host's `Retry-After`, when it sent one on a 429 or 503.
        retry_after: Option<Duration>,
    },
}

/// A call that was not sent because the host is backing off for longer than the client may wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackingOff {
    /// How long until the host may be contacted again.
    pub remaining: Duration,
    /// The reason of the failure that started the backoff.
    pub reason: &'static str,
}

/// What [`HostLimits::admit`] did before letting a call through; reported as a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// The host was not backing off.
    Immediate,
    /// The call waited for the host's backoff to end.
    Waited,
}

/// Per-host concurrency and backoff state, shared by every clone of the client.
#[derive(Debug, Clone)]
pub struct HostLimits {
    config: LimitsConfig,
    hosts: Arc<Mutex<HashMap<String, Arc<HostState>>>>,
}

#[derive(Debug)]
struct HostState {
    permits: Arc<Semaphore>,
    backoff: Mutex<HostBackoff>,
    /// The earliest start of the next request under the rate budget.
    next_slot: Mutex<Option<Instant>>,
}

#[derive(Debug, Default)]
struct HostBackoff {
    consecutive_failures: u32,
    not_before: Option<Instant>,
    reason: &'static str,
}

impl HostLimits {
    /// Limits with the given configuration and no state yet.
    pub fn new(config: LimitsConfig) -> Self {
        Self {
            config,
            hosts: Arc::default(),
        }
    }

    fn host(&self, host: &str) -> Arc<HostState> {
        let mut hosts = self.hosts.lock().unwrap_or_else(|e| e.into_inner());
        hosts
            .entry(host.to_owned())
            .or_insert_with(|| {
                Arc::new(HostState {
                    permits: Arc::new(Semaphore::new(self.config.max_concurrency_per_host.max(1))),
                    backoff: Mutex::new(HostBackoff::default()),
                    next_slot: Mutex::new(None),
                })
            })
            .clone()
    }

    /// Waits until a request to `host` may be sent: the host's backoff has ended (waiting at most
    /// `max_wait`) and one of its concurrency permits is free. The permit is held until the
    /// response body has been read.
    pub async fn admit(&self, host: &str) -> Result<(OwnedSemaphorePermit, Admission), BackingOff> {
        let state = self.host(host);
        let deadline = Instant::now() + self.config.max_wait;
        let mut admission = Admission::Immediate;
        loop {
            if let Some((not_before, reason)) = state.blocked_until(Instant::now()) {
                if not_before > deadline {
                    return Err(BackingOff {
                        remaining: not_before - Instant::now(),
                        reason,
                    });
                }
                admission = Admission::Waited;
                tokio::time::sleep_until(not_before).await;
                continue;
            }
            let permit = state
                .permits
                .clone()
                .acquire_owned()
                .await
                .expect("host semaphores are never closed");
            // Another call may have failed while this one queued for a permit.
            if state.blocked_until(Instant::now()).is_none() {
                if self.config.max_requests_per_second > 0 {
                    let spacing = Duration::from_secs(1) / self.config.max_requests_per_second;
                    let slot = {
                        let mut next = state.next_slot.lock().unwrap_or_else(|e| e.into_inner());
                        let (slot, following) = rate_slot(Instant::now(), *next, spacing);
                        *next = Some(following);
                        slot
                    };
                    if slot > Instant::now() {
                        admission = Admission::Waited;
                        tokio::time::sleep_until(slot).await;
                    }
                }
                return Ok((permit, admission));
            }
        }
    }

    /// Records how a request to `host` ended and sets the host's next allowed time.
    pub fn record(&self, host: &str, outcome: HostOutcome) {
        let state = self.host(host);
        let mut backoff = state.backoff.lock().unwrap_or_else(|e| e.into_inner());
        match outcome {
            HostOutcome::Answered => *backoff = HostBackoff::default(),
            HostOutcome::Transient {
                reason,
                retry_after,
            } => {
                backoff.consecutive_failures = backoff.consecutive_failures.saturating_add(1);
                let delay = match retry_after {
                    Some(asked) => asked.min(self.config.retry_after_max),
                    None => jittered(backoff_delay(
                        backoff.consecutive_failures,
                        self.config.backoff_base,
                        self.config.backoff_max,
                    )),
                };
                let candidate = Instant::now() + delay;
                backoff.not_before =
                    Some(backoff.not_before.map_or(candidate, |t| t.max(candidate)));
                backoff.reason = reason;
            }
        }
    }
}

impl HostState {
    fn blocked_until(&self, now: Instant) -> Option<(Instant, &'static str)> {
        let backoff = self.backoff.lock().unwrap_or_else(|e| e.into_inner());
        backoff
            .not_before
            .filter(|&t| t > now)
            .map(|t| (t, backoff.reason))
    }
}

/// The rate budget's pacing: a request asking at `now`, with the host's next free slot at `next`,
/// starts at the returned slot; the slot after it is one `spacing` later.
pub fn rate_slot(now: Instant, next: Option<Instant>, spacing: Duration) -> (Instant, Instant) {
    let slot = next.map_or(now, |next| next.max(now));
    (slot, slot + spacing)
}

/// The un-jittered backoff after `failures` consecutive transient failures: `base`, doubling, at
/// most `max`.
pub fn backoff_delay(failures: u32, base: Duration, max: Duration) -> Duration {
    Backoff::new(base, max).delay(failures.saturating_sub(1))
}

/// "Equal jitter": between half and all of `delay`, so hosts that failed together do not all
/// retry in the same instant, while the backoff still grows.
fn jittered(delay: Duration) -> Duration {
    let half = delay / 2;
    let spread = u64::try_from(half.as_millis()).unwrap_or(u64::MAX);
    half + Duration::from_millis(rand::rng().random_range(0..=spread))
}

/// The delay a `Retry-After` header asks for: delta-seconds (`120`) or an HTTP date, relative to
/// `now`. A date in the past means "now"; anything unparseable is `None`.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let date = httpdate::parse_http_date(value).ok()?;
    Some(date.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The remaining request budget from a `ratelimit-remaining` header: Docker Hub sends
/// `97;w=21600` (count; window in seconds), the IETF draft a bare number.
pub fn parse_ratelimit_remaining(value: &str) -> Option<i64> {
    value.split(';').next()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> LimitsConfig {
        LimitsConfig {
            max_concurrency_per_host: 2,
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            retry_after_max: Duration::from_secs(600),
            max_wait: Duration::from_secs(30),
            max_requests_per_second: 0,
        }
    }

    #[test]
    fn retry_after_in_delta_seconds_is_that_many_seconds() {
        let now = SystemTime::now();
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
    }

    #[test]
    fn retry_after_as_http_date_is_the_time_until_that_date() {
        let now = httpdate::parse_http_date("Wed, 21 Oct 2015 07:28:00 GMT").unwrap();
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:29:30 GMT", now),
            Some(Duration::from_secs(90))
        );
        // The obsolete RFC 850 and asctime forms are HTTP dates too.
        assert_eq!(
            parse_retry_after("Wednesday, 21-Oct-15 07:28:10 GMT", now),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            parse_retry_after("Wed Oct 21 07:28:05 2015", now),
            Some(Duration::from_secs(5))
        );
    }

    #[test]
    fn retry_after_date_in_the_past_means_now_and_garbage_means_nothing() {
        let now = httpdate::parse_http_date("Wed, 21 Oct 2015 07:28:00 GMT").unwrap();
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
        assert_eq!(parse_retry_after("", now), None);
    }

    #[test]
    fn ratelimit_remaining_reads_the_count_before_the_window() {
        assert_eq!(parse_ratelimit_remaining("97;w=21600"), Some(97));
        assert_eq!(parse_ratelimit_remaining("0;w=21600"), Some(0));
        assert_eq!(parse_ratelimit_remaining(" 42 "), Some(42));
        assert_eq!(parse_ratelimit_remaining("many"), None);
        assert_eq!(parse_ratelimit_remaining(""), None);
    }

    #[test]
    fn backoff_doubles_per_failure_up_to_the_maximum() {
        let base = Duration::from_secs(1);
        let max = Duration::from_secs(60);
        let delays: Vec<u64> = (1..=8)
            .map(|n| backoff_delay(n, base, max).as_secs())
            .collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(backoff_delay(u32::MAX, base, max), max);
    }

    #[test]
    fn jitter_keeps_the_delay_between_half_and_all_of_it() {
        for _ in 0..200 {
            let delay = jittered(Duration::from_secs(8));
            assert!(delay >= Duration::from_secs(4) && delay <= Duration::from_secs(8));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_host_without_failures_admits_at_once() {
        let limits = HostLimits::new(config());
        let (_permit, admission) = limits.admit("r.example").await.unwrap();
        assert_eq!(admission, Admission::Immediate);
    }

    #[tokio::test(start_paused = true)]
    async fn after_a_transient_failure_the_next_call_waits_for_the_jittered_backoff() {
        let limits = HostLimits::new(config());
        limits.record(
            "r.example",
            HostOutcome::Transient {
                reason: "ServiceUnavailable",
                retry_after: None,
            },
        );
        let start = Instant::now();
        let (_permit, admission) = limits.admit("r.example").await.unwrap();
        assert_eq!(admission, Admission::Waited);
        let waited = start.elapsed();
        assert!(
            waited >= Duration::from_millis(500) && waited <= Duration::from_secs(1),
            "waited {waited:?}"
        );
        // Other hosts are not affected.
        let start = Instant::now();
        let _permit = limits.admit("other.example").await.unwrap();
        assert_eq!(start.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_is_honoured_exactly() {
        let limits = HostLimits::new(config());
        limits.record(
            "r.example",
            HostOutcome::Transient {
                reason: "TooManyRequests",
                retry_after: Some(Duration::from_secs(7)),
            },
        );
        let start = Instant::now();
        let _permit = limits.admit("r.example").await.unwrap();
        assert_eq!(start.elapsed(), Duration::from_secs(7));
    }

    #[tokio::test(start_paused = true)]
    async fn a_wait_longer_than_max_wait_is_refused_at_once_with_the_reason() {
        let limits = HostLimits::new(config());
        limits.record(
            "r.example",
            HostOutcome::Transient {
                reason: "TooManyRequests",
                retry_after: Some(Duration::from_secs(21600)),
            },
        );
        let start = Instant::now();
        let refusal = limits.admit("r.example").await.unwrap_err();
        assert_eq!(start.elapsed(), Duration::ZERO);
        assert_eq!(refusal.reason, "TooManyRequests");
        // Cut to `retry_after_max`.
        assert_eq!(refusal.remaining, Duration::from_secs(600));
    }

    #[tokio::test(start_paused = true)]
    async fn an_answer_resets_the_backoff() {
        let limits = HostLimits::new(config());
        for _ in 0..5 {
            limits.record(
                "r.example",
                HostOutcome::Transient {
                    reason: "InternalError",
                    retry_after: None,
                },
            );
        }
        limits.record("r.example", HostOutcome::Answered);
        let start = Instant::now();
        let (_permit, admission) = limits.admit("r.example").await.unwrap();
        assert_eq!(
            (admission, start.elapsed()),
            (Admission::Immediate, Duration::ZERO)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn consecutive_failures_grow_the_backoff() {
        let limits = HostLimits::new(config());
        for _ in 0..4 {
            limits.record(
                "r.example",
                HostOutcome::Transient {
                    reason: "Timeout",
                    retry_after: None,
                },
            );
        }
        // The fourth failure backs off 4..=8 s (the earlier, shorter ones are superseded).
        let start = Instant::now();
        let _permit = limits.admit("r.example").await.unwrap();
        let waited = start.elapsed();
        assert!(
            waited >= Duration::from_secs(4) && waited <= Duration::from_secs(8),
            "waited {waited:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn concurrency_per_host_is_limited_to_the_configured_permits() {
        let limits = HostLimits::new(config());
        let (first, _) = limits.admit("r.example").await.unwrap();
        let (_second, _) = limits.admit("r.example").await.unwrap();
        let third = tokio::time::timeout(Duration::from_secs(5), limits.admit("r.example")).await;
        assert!(third.is_err(), "a third permit must not be granted");
        drop(first);
        let third = tokio::time::timeout(Duration::from_secs(5), limits.admit("r.example")).await;
        assert!(third.is_ok());
    }

    #[test]
    fn the_rate_budget_spaces_requests_and_never_schedules_into_the_past() {
        let t0 = Instant::now();
        let spacing = Duration::from_millis(100);
        let (first, next) = rate_slot(t0, None, spacing);
        assert_eq!(first, t0);
        let (second, next) = rate_slot(t0, Some(next), spacing);
        assert_eq!(second, t0 + spacing);
        let (third, _) = rate_slot(t0 + Duration::from_secs(5), Some(next), spacing);
        assert_eq!(third, t0 + Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_beyond_the_rate_budget_waits_for_its_slots() {
        let limits = HostLimits::new(LimitsConfig {
            max_requests_per_second: 10,
            ..LimitsConfig::default()
        });
        let start = Instant::now();
        for _ in 0..5 {
            let (permit, _) = limits.admit("registry.example.com").await.unwrap();
            drop(permit);
        }
        // Five requests at ten per second: the fifth starts 400ms after the first.
        assert_eq!(Instant::now() - start, Duration::from_millis(400));
        // Another host has its own budget.
        let before = Instant::now();
        let _permit = limits.admit("other.example.com").await.unwrap();
        assert_eq!(Instant::now(), before);
    }
}
