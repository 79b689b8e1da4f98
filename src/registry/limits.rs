//! Protection of registries from the operator: a concurrency limit per registry host, and a
//! per-host "not before" time set by `Retry-After` (429/503) or by exponential backoff with
//! jitter after transient failures. Both are capped by the recovery bound of the import interval,
//! and when a failing host's wait ends one probe goes to it first (half-open, as in a circuit
//! breaker): its success lets every call through, its failure backs off again. So a dead host sees
//! one request per backoff, and a host that is back is noticed within the bound. Also the pure
//! parsers of `Retry-After` and `ratelimit-remaining`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use rand::Rng;

use crate::domain::backoff::Backoff;
use crate::domain::poll_schedule::{LONGEST_RETRY, recovery_bound};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// The import interval [`LimitsConfig::default`] is made for (the `--import-interval` default).
const DEFAULT_INTERVAL: Duration = Duration::from_secs(15 * 60);

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
    /// The longest a call waits for a host's backoff to end (or for its probe's outcome). Calls
    /// that would wait longer fail at once with [`BackingOff`], so a reconcile is never parked for
    /// minutes, and the registry is not contacted before the time it asked for.
    pub max_wait: Duration,
    /// Requests started per second to one host at most (0: no budget). Calls beyond the budget
    /// queue for their slot rather than fail, so a burst of imports is spread out, not refused.
    pub max_requests_per_second: u32,
}

impl LimitsConfig {
    /// The limits for tags imported every `interval`: a host's backoff is at most the import
    /// retry schedule's longest wait and the interval's recovery bound (`max(interval, 30 s)`),
    /// and a `Retry-After` is honoured up to that bound, so a host that is back is contacted
    /// again within the bound.
    pub fn for_interval(interval: Duration) -> Self {
        let bound = recovery_bound(interval);
        Self {
            max_concurrency_per_host: 8,
            backoff_base: Duration::from_secs(1),
            backoff_max: LONGEST_RETRY.min(bound),
            retry_after_max: bound,
            max_wait: Duration::from_secs(30),
            max_requests_per_second: 0,
        }
    }
}

impl Default for LimitsConfig {
    /// The limits for the default import interval of 15 minutes.
    fn default() -> Self {
        Self::for_interval(DEFAULT_INTERVAL)
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
    /// The call waited for the host's backoff to end, or for its probe's outcome.
    Waited,
}

/// The right to send one request to a host: one of its concurrency permits and, while the host
/// is failing, its one probe. Held until the response body has been read; dropping it lets the
/// next call probe if this probe's outcome was never recorded (a scheme fallback, a cancelled
/// call).
#[derive(Debug)]
pub struct HostPermit {
    _permit: OwnedSemaphorePermit,
    probe: Option<(Arc<HostState>, u64)>,
}

impl HostPermit {
    /// Whether this call is the probe of a failing host.
    pub fn is_probe(&self) -> bool {
        self.probe.is_some()
    }
}

impl Drop for HostPermit {
    fn drop(&mut self) {
        if let Some((state, id)) = self.probe.take() {
            let mut backoff = state.backoff();
            if backoff.probe == Some(id) {
                backoff.probe = None;
            }
            drop(backoff);
            state.changed.notify_waiters();
        }
    }
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
    /// Told when the backoff changes or a probe ends, so calls waiting for it look again.
    changed: Notify,
    /// The earliest start of the next request under the rate budget.
    next_slot: Mutex<Option<Instant>>,
}

#[derive(Debug, Default)]
struct HostBackoff {
    consecutive_failures: u32,
    not_before: Option<Instant>,
    reason: &'static str,
    /// The probe in flight, by number: set by the call that takes it, cleared only when that
    /// call's permit is dropped, so two probes are never in flight at once.
    probe: Option<u64>,
    probes: u64,
}

/// What a call to a host may do at a given moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Gate {
    /// Send: the host is not failing.
    Send,
    /// Send as the host's probe: it is failing, its wait is over and no probe is in flight.
    Probe,
    /// Look again at this time at the latest (the wait ends, or the caller's patience does),
    /// or when the host's state changes.
    Wait(Instant),
    /// Refuse without contacting the host.
    Refuse(BackingOff),
}

impl HostBackoff {
    /// What a call that may wait until `deadline` may do at `now`. A call refused while a probe
    /// is in flight is told to come back in one (un-jittered) backoff step.
    fn gate(&self, now: Instant, deadline: Instant, config: &LimitsConfig) -> Gate {
        if self.consecutive_failures == 0 {
            return Gate::Send;
        }
        let refuse = |remaining| {
            Gate::Refuse(BackingOff {
                remaining,
                reason: self.reason,
            })
        };
        match self.not_before {
            Some(until) if until > now && until > deadline => refuse(until - now),
            Some(until) if until > now => Gate::Wait(until),
            _ if self.probe.is_none() => Gate::Probe,
            _ if now < deadline => Gate::Wait(deadline),
            _ => refuse(backoff_delay(
                self.consecutive_failures,
                config.backoff_base,
                config.backoff_max,
            )),
        }
    }
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
                    changed: Notify::new(),
                    next_slot: Mutex::new(None),
                })
            })
            .clone()
    }

    /// Waits until a request to `host` may be sent: the host's backoff has ended (waiting at most
    /// `max_wait`), the host is not failing or this call is its one probe, and one of its
    /// concurrency permits is free. The permit is held until the response body has been read.
    pub async fn admit(&self, host: &str) -> Result<(HostPermit, Admission), BackingOff> {
        let state = self.host(host);
        let deadline = Instant::now() + self.config.max_wait;
        let mut admission = Admission::Immediate;
        loop {
            // Registered before looking, so a change made in between still wakes this call.
            let changed = state.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let gate = state.backoff().gate(Instant::now(), deadline, &self.config);
            match gate {
                Gate::Refuse(refusal) => return Err(refusal),
                Gate::Wait(until) => {
                    admission = Admission::Waited;
                    tokio::select! {
                        _ = &mut changed => {}
                        _ = tokio::time::sleep_until(until) => {}
                    }
                    continue;
                }
                Gate::Send | Gate::Probe => {}
            }
            let permit = state
                .permits
                .clone()
                .acquire_owned()
                .await
                .expect("host semaphores are never closed");
            // Another call may have failed, or taken the probe, while this one queued for a
            // permit: look again, and take the probe under the same lock.
            let probe = {
                let mut backoff = state.backoff();
                match backoff.gate(Instant::now(), deadline, &self.config) {
                    Gate::Send => None,
                    Gate::Probe => {
                        backoff.probes += 1;
                        backoff.probe = Some(backoff.probes);
                        Some((state.clone(), backoff.probes))
                    }
                    Gate::Wait(_) | Gate::Refuse(_) => continue,
                }
            };
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
            let permit = HostPermit {
                _permit: permit,
                probe,
            };
            return Ok((permit, admission));
        }
    }

    /// Records how a request to `host` ended and sets the host's next allowed time: an answer
    /// resets the backoff; a transient failure waits the host's `Retry-After` (at most
    /// `retry_after_max`) or the next jittered backoff step (at most `backoff_max`).
    pub fn record(&self, host: &str, outcome: HostOutcome) {
        let state = self.host(host);
        {
            let mut backoff = state.backoff();
            match outcome {
                HostOutcome::Answered => {
                    backoff.consecutive_failures = 0;
                    backoff.not_before = None;
                    backoff.reason = "";
                }
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
        state.changed.notify_waiters();
    }
}

impl HostState {
    fn backoff(&self) -> MutexGuard<'_, HostBackoff> {
        self.backoff.lock().unwrap_or_else(|e| e.into_inner())
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

    #[test]
    fn limits_for_an_interval_cap_backoff_and_retry_after_by_its_recovery_bound() {
        let secs = Duration::from_secs;
        // (interval, longest backoff, longest Retry-After honoured)
        let cases = [
            (secs(2), secs(30), secs(30)),
            (secs(15), secs(30), secs(30)),
            (secs(60), secs(60), secs(60)),
            (secs(15 * 60), secs(300), secs(15 * 60)),
            (secs(3600), secs(300), secs(3600)),
        ];
        for (interval, backoff_max, retry_after_max) in cases {
            let config = LimitsConfig::for_interval(interval);
            assert_eq!(
                (config.backoff_max, config.retry_after_max),
                (backoff_max, retry_after_max),
                "{interval:?}"
            );
        }
        assert_eq!(
            LimitsConfig::default(),
            LimitsConfig::for_interval(secs(15 * 60))
        );
    }

    fn failure() -> HostOutcome {
        HostOutcome::Transient {
            reason: "ServiceUnavailable",
            retry_after: None,
        }
    }

    /// Starts `n` calls to `r.example` and lets them run as far as they can without time passing.
    async fn calls(limits: &HostLimits, n: usize) -> Vec<tokio::task::JoinHandle<Admitted>> {
        let handles = (0..n)
            .map(|_| {
                let limits = limits.clone();
                tokio::spawn(async move { limits.admit("r.example").await })
            })
            .collect();
        settle().await;
        handles
    }

    type Admitted = Result<(HostPermit, Admission), BackingOff>;

    async fn settle() {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn when_a_backoff_ends_one_probe_goes_and_the_other_calls_wait_for_its_outcome() {
        let limits = HostLimits::new(config());
        limits.record("r.example", failure());
        let mut waiting = calls(&limits, 5).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        settle().await;
        let (done, pending): (Vec<_>, Vec<_>) = waiting.drain(..).partition(|h| h.is_finished());
        assert_eq!((done.len(), pending.len()), (1, 4));
        let (probe, admission) = done.into_iter().next().unwrap().await.unwrap().unwrap();
        assert!(probe.is_probe());
        assert_eq!(admission, Admission::Waited);
        // The probe's success lets the others through at once, as ordinary calls.
        limits.record("r.example", HostOutcome::Answered);
        drop(probe);
        let sent = Instant::now();
        for handle in pending {
            let (permit, _) = handle.await.unwrap().unwrap();
            assert!(!permit.is_probe());
        }
        assert_eq!(Instant::now(), sent);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_probe_backs_off_again_and_calls_that_cannot_wait_so_long_are_refused() {
        let limits = HostLimits::new(LimitsConfig {
            max_wait: Duration::from_secs(5),
            ..config()
        });
        for _ in 0..10 {
            limits.record("r.example", failure());
        }
        // The tenth failure backs off 30..=60 s: longer than a call waits.
        let refused = limits.admit("r.example").await.unwrap_err();
        assert!(refused.remaining >= Duration::from_secs(29), "{refused:?}");
        tokio::time::sleep(refused.remaining).await;
        let (probe, _) = limits.admit("r.example").await.unwrap();
        assert!(probe.is_probe());
        let waiting = calls(&limits, 3).await;
        limits.record("r.example", failure());
        drop(probe);
        let refused_at = Instant::now();
        for handle in waiting {
            let refusal = handle.await.unwrap().unwrap_err();
            assert_eq!(refusal.reason, "ServiceUnavailable");
            assert!(refusal.remaining >= Duration::from_secs(29), "{refusal:?}");
        }
        assert_eq!(Instant::now(), refused_at, "refused without waiting");
    }

    #[tokio::test(start_paused = true)]
    async fn a_probe_ended_without_an_outcome_lets_the_next_call_probe() {
        let limits = HostLimits::new(config());
        limits.record("r.example", failure());
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (probe, _) = limits.admit("r.example").await.unwrap();
        let mut next = calls(&limits, 1).await;
        assert!(
            !next[0].is_finished(),
            "a second probe while one is in flight"
        );
        // A scheme fallback, or a cancelled call: the permit is dropped, nothing is recorded.
        drop(probe);
        let (second, _) = next.pop().unwrap().await.unwrap().unwrap();
        assert!(second.is_probe());
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_waiting_longer_than_it_may_for_a_probe_is_refused_for_one_backoff_step() {
        let limits = HostLimits::new(LimitsConfig {
            max_wait: Duration::from_secs(3),
            ..config()
        });
        for _ in 0..3 {
            limits.record("r.example", failure());
        }
        tokio::time::sleep(Duration::from_secs(4)).await;
        let (_probe, _) = limits.admit("r.example").await.unwrap();
        let start = Instant::now();
        let refusal = limits.admit("r.example").await.unwrap_err();
        assert_eq!(start.elapsed(), Duration::from_secs(3));
        // Three failures: the step is 4 s.
        assert_eq!(refusal.remaining, Duration::from_secs(4));
    }

    #[tokio::test(start_paused = true)]
    async fn a_retry_after_longer_than_the_recovery_bound_is_cut_to_it_then_one_probe_goes() {
        let limits = HostLimits::new(LimitsConfig::for_interval(Duration::from_secs(60)));
        limits.record(
            "r.example",
            HostOutcome::Transient {
                reason: "TooManyRequests",
                retry_after: Some(Duration::from_secs(3600)),
            },
        );
        let refusal = limits.admit("r.example").await.unwrap_err();
        assert_eq!(
            refusal,
            BackingOff {
                remaining: Duration::from_secs(60),
                reason: "TooManyRequests"
            }
        );
        tokio::time::sleep(Duration::from_secs(59)).await;
        let start = Instant::now();
        let (probe, admission) = limits.admit("r.example").await.unwrap();
        assert_eq!(start.elapsed(), Duration::from_secs(1));
        assert_eq!((probe.is_probe(), admission), (true, Admission::Waited));
    }

    /// What a simulated outage showed.
    #[derive(Debug, Default)]
    struct Outage {
        /// The host is failing: a failure was recorded and no success since.
        failing: bool,
        probes_in_flight: usize,
        most_probes_in_flight: usize,
        /// Calls sent as ordinary calls while the host was failing.
        unguarded_while_failing: usize,
        /// Requests that reached the host while it was down.
        sent_while_down: usize,
        /// When each caller's first successful request started.
        recovered: Vec<Instant>,
    }

    /// `callers` tags of one host, each retrying like the poll schedule (5 s, 10 s … at most the
    /// recovery bound, or when the host's refusal says), against a host that fails every request
    /// until `outage` has passed and answers after. Failures are immediate (a stopped registry
    /// refuses connections; a 429 storm answers at once); a success takes 10 ms.
    async fn simulate(interval: Duration, outage: Duration, fails_with: HostOutcome) -> Outage {
        let limits = HostLimits::new(LimitsConfig::for_interval(interval));
        let bound = recovery_bound(interval);
        let returns = Instant::now() + outage;
        let seen = Arc::new(Mutex::new(Outage::default()));
        let callers = (0..20).map(|_| {
            let (limits, seen) = (limits.clone(), seen.clone());
            tokio::spawn(async move {
                let mut failures = 0;
                loop {
                    let (permit, _) = match limits.admit("r.example").await {
                        Ok(admitted) => admitted,
                        Err(refusal) => {
                            tokio::time::sleep(refusal.remaining.min(bound)).await;
                            continue;
                        }
                    };
                    let started = Instant::now();
                    {
                        let mut seen = seen.lock().unwrap();
                        if permit.is_probe() {
                            seen.probes_in_flight += 1;
                            seen.most_probes_in_flight =
                                seen.most_probes_in_flight.max(seen.probes_in_flight);
                        } else if seen.failing {
                            seen.unguarded_while_failing += 1;
                        }
                    }
                    // Give every other caller the chance to send meanwhile.
                    settle().await;
                    let up = started >= returns;
                    if up {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    {
                        let mut seen = seen.lock().unwrap();
                        seen.probes_in_flight -= usize::from(permit.is_probe());
                        seen.failing = !up;
                        if up {
                            seen.recovered.push(started);
                        } else {
                            seen.sent_while_down += 1;
                        }
                        limits.record(
                            "r.example",
                            if up {
                                HostOutcome::Answered
                            } else {
                                fails_with
                            },
                        );
                    }
                    drop(permit);
                    if up {
                        return;
                    }
                    tokio::time::sleep(IMPORT_RETRY.delay(failures).min(bound)).await;
                    failures += 1;
                }
            })
        });
        for caller in callers.collect::<Vec<_>>() {
            caller.await.unwrap();
        }
        Arc::try_unwrap(seen).unwrap().into_inner().unwrap()
    }

    /// The engine's retry of a failed tag (5 s, 10 s … 5 min).
    const IMPORT_RETRY: Backoff = Backoff::new(Duration::from_secs(5), LONGEST_RETRY);

    #[tokio::test(start_paused = true)]
    async fn after_an_outage_every_call_reaches_the_host_within_the_recovery_bound_of_its_return() {
        let secs = Duration::from_secs;
        let too_many = |retry_after| HostOutcome::Transient {
            reason: "TooManyRequests",
            retry_after,
        };
        // (outage, interval, how the host fails)
        let cases = [
            (secs(60), secs(60), failure()),
            (secs(600), secs(60), failure()),
            (secs(60), secs(15), failure()),
            (secs(600), secs(15), failure()),
            // A 429 storm without Retry-After.
            (secs(60), secs(60), too_many(None)),
            (secs(600), secs(60), too_many(None)),
            (secs(600), secs(15), too_many(None)),
            // A 429 storm asking for an hour: honoured up to the bound.
            (secs(600), secs(60), too_many(Some(secs(3600)))),
        ];
        for (outage, interval, fails_with) in cases {
            let returns = Instant::now() + outage;
            let seen = simulate(interval, outage, fails_with).await;
            let bound = recovery_bound(interval);
            let case = format!("{outage:?} outage, {interval:?} interval, {fails_with:?}");
            let first = *seen.recovered.iter().min().unwrap();
            let last = *seen.recovered.iter().max().unwrap();
            assert!(
                first - returns <= bound,
                "{case}: first after {:?}",
                first - returns
            );
            assert!(
                last - returns <= bound,
                "{case}: last after {:?}",
                last - returns
            );
            assert_eq!(seen.recovered.len(), 20, "{case}");
            assert_eq!(seen.most_probes_in_flight, 1, "{case}");
            assert_eq!(seen.unguarded_while_failing, 0, "{case}");
            // A dead host sees the first burst, then about one probe per backoff: at least half
            // the cap after the first few doublings.
            let cap = LimitsConfig::for_interval(interval).backoff_max;
            let most = 20 + outage.as_secs() / (cap / 2).as_secs() + 10;
            assert!(
                seen.sent_while_down as u64 <= most,
                "{case}: {} sent",
                seen.sent_while_down
            );
        }
    }
}
