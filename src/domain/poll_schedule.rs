//! When each distinct registry tag is asked next. Every tracked tag has a fixed phase in the import
//! interval (from a hash of what it is, so phases spread evenly and stay put); a periodic tag is
//! asked once per interval at its phase, a tag someone needs an answer for is asked now, a tag
//! whose ask failed transiently is retried after a backoff or the registry's `Retry-After` — never
//! later than the interval's [`recovery_bound`] — and no host has more asks in flight than its
//! budget, and a push notification asks at once, at most once per window. Time is passed in,
//! never read, so the whole schedule is tested with made-up instants.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::backoff::Backoff;

/// The shortest recovery bound, whatever the interval: a failing registry is not asked again
/// more often than every 15–30 s (its host's backoff, see `registry::limits`), and one that is back
/// is noticed within 30 s.
pub const RECOVERY_FLOOR: Duration = Duration::from_secs(30);

/// The longest wait before a transient failure is retried (a tag's or a registry host's), however
/// long the interval.
pub const LONGEST_RETRY: Duration = Duration::from_secs(300);

/// How long after a registry's return from an outage every tag tracked from it has been asked
/// again: one import interval, and never less than [`RECOVERY_FLOOR`]. A retry after a transient
/// failure, and a registry's `Retry-After`, never wait longer.
pub fn recovery_bound(interval: Duration) -> Duration {
    interval.max(RECOVERY_FLOOR)
}

/// The schedule's name for one distinct tag.
pub type TagId = u64;

/// How an ask ended, for the schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AskOutcome {
    /// The registry answered (an image, or a failure that asking again soon will not change).
    Answered,
    /// A failure that may pass: retried after the backoff, or after `retry_after` when the registry
    /// said how long to wait.
    Transient {
        /// The registry's own wait (`Retry-After`, or the end of its host's backoff).
        retry_after: Option<Duration>,
    },
}

#[derive(Debug, Clone)]
struct Entry {
    host: Arc<str>,
    phase: Duration,
    periodic: bool,
    /// When the tag is due, if it is: in `timers` until then, in its host's ready queue after.
    due: Option<Instant>,
    /// Whether the tag is in its host's ready queue (due, waiting for the host's budget).
    ready: bool,
    /// When the ask in flight started.
    flight: Option<Instant>,
    /// Someone needs an answer asked after the one in flight started: ask again when it ends.
    again: bool,
    /// Consecutive transient failures.
    failures: u32,
    /// When the last ask started.
    last_started: Option<Instant>,
}

/// The poll schedule of every distinct tag. Tags wait in a timer queue until they are due, then in
/// a queue per registry host until the host has budget, so taking the due tags costs what is
/// taken, not what waits.
#[derive(Debug)]
pub struct PollSchedule {
    interval: Duration,
    /// The interval's [`recovery_bound`]: the longest wait of a retry.
    recovery: Duration,
    epoch: Instant,
    retry: Backoff,
    per_host: usize,
    entries: HashMap<TagId, Entry>,
    timers: BTreeSet<(Instant, TagId)>,
    /// Due tags per host, in the order they fell due; an entry no longer ready is skipped.
    ready: HashMap<Arc<str>, VecDeque<TagId>>,
    /// Hosts with ready tags, served round-robin.
    ready_hosts: VecDeque<Arc<str>>,
    in_flight: HashMap<Arc<str>, usize>,
}

impl PollSchedule {
    /// An empty schedule for `interval`, with phases counted from `epoch`, transient failures
    /// retried after `retry` (at most the interval's [`recovery_bound`]), and at most `per_host`
    /// asks in flight on one registry host.
    pub fn new(interval: Duration, epoch: Instant, retry: Backoff, per_host: usize) -> Self {
        Self {
            interval: interval.max(Duration::from_millis(1)),
            recovery: recovery_bound(interval),
            epoch,
            retry,
            per_host: per_host.max(1),
            entries: HashMap::new(),
            timers: BTreeSet::new(),
            ready: HashMap::new(),
            ready_hosts: VecDeque::new(),
            in_flight: HashMap::new(),
        }
    }

    /// Starts tracking `id`, asked on `host`. `seed` fixes its phase (a hash of the tag spreads the
    /// phases evenly). A new tag is not periodic and not due.
    pub fn track(&mut self, id: TagId, host: Arc<str>, seed: u64) {
        let phase = phase_of(seed, self.interval);
        self.entries.entry(id).or_insert(Entry {
            host,
            phase,
            periodic: false,
            due: None,
            ready: false,
            flight: None,
            again: false,
            failures: 0,
            last_started: None,
        });
    }

    /// Stops tracking `id`. An ask in flight for it still ends with [`Self::finish`].
    pub fn untrack(&mut self, id: TagId) {
        self.set_due(id, None);
        if let Some(entry) = self.entries.remove(&id)
            && entry.flight.is_some()
        {
            self.release_host(&entry.host);
        }
    }

    /// Whether `id` is tracked.
    pub fn tracks(&self, id: TagId) -> bool {
        self.entries.contains_key(&id)
    }

    /// The number of tracked tags.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no tag is tracked.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Makes `id` periodic (asked once per interval at its phase) or not. A tag that becomes
    /// periodic is first asked at its next phase, not at once: whoever needs an answer now says so
    /// with [`Self::want`].
    pub fn set_periodic(&mut self, id: TagId, periodic: bool, now: Instant) {
        let Some(entry) = self.entries.get_mut(&id) else {
            return;
        };
        if entry.periodic == periodic {
            return;
        }
        entry.periodic = periodic;
        let (phase, busy, failing) = (
            entry.phase,
            entry.flight.is_some() || entry.due.is_some(),
            entry.failures > 0,
        );
        if periodic && !busy {
            let next = self.next_slot(phase, now, Duration::ZERO);
            self.set_due(id, Some(next));
        } else if !periodic && !failing {
            self.set_due(id, None);
        }
    }

    /// Someone needs an answer for `id` asked at or after `after`: asks now, unless an ask that
    /// started at or after `after` is already in flight. An ask in flight that started earlier is
    /// followed by another as soon as it ends.
    pub fn want(&mut self, id: TagId, after: Instant, now: Instant) {
        let Some(entry) = self.entries.get_mut(&id) else {
            return;
        };
        match entry.flight {
            Some(started) if started >= after => {}
            Some(_) => entry.again = true,
            None if entry.due.is_none_or(|due| due > now) => self.set_due(id, Some(now)),
            None => {}
        }
    }

    /// A push notification for `id` at `now`: asked as soon as no ask of it has started within
    /// `window` — at once, or when the window since the last ask ends — so a burst of
    /// notifications costs at most one ask per window. An ask in flight is left alone:
    /// whoever notifies decides, when it ends, whether its answer already covers the push.
    pub fn notify(&mut self, id: TagId, now: Instant, window: Duration) {
        let Some(entry) = self.entries.get_mut(&id) else {
            return;
        };
        if entry.flight.is_some() {
            return;
        }
        let at = entry
            .last_started
            .map_or(now, |started| (started + window).max(now));
        if entry.due.is_some_and(|due| due <= at) {
            return;
        }
        self.set_due(id, Some(at));
    }

    /// When the ask in flight for `id` started, if one is.
    pub fn in_flight(&self, id: TagId) -> Option<Instant> {
        self.entries.get(&id).and_then(|e| e.flight)
    }

    /// Takes the tags due at `now`, earliest first per host and hosts in turn: at most `max` of
    /// them, and no more than the per-host budget in flight on any host (a tag over its host's
    /// budget stays due). Each taken tag is in flight from `now` until [`Self::finish`].
    pub fn take_due(&mut self, now: Instant, max: usize) -> Vec<TagId> {
        while let Some(&(due, id)) = self.timers.first() {
            if due > now {
                break;
            }
            self.timers.pop_first();
            let entry = self.entries.get_mut(&id).expect("timed tags are tracked");
            entry.ready = true;
            let queue = self.ready.entry(entry.host.clone()).or_default();
            if queue.is_empty() {
                self.ready_hosts.push_back(entry.host.clone());
            }
            queue.push_back(id);
        }
        let mut taken = Vec::new();
        for _ in 0..self.ready_hosts.len() {
            if taken.len() >= max {
                break;
            }
            let Some(host) = self.ready_hosts.pop_front() else {
                break;
            };
            let busy = self.in_flight.entry(host.clone()).or_insert(0);
            let queue = self.ready.get_mut(&host).expect("ready hosts have a queue");
            while taken.len() < max && *busy < self.per_host {
                let Some(id) = queue.pop_front() else {
                    break;
                };
                let Some(entry) = self.entries.get_mut(&id).filter(|e| e.ready) else {
                    continue;
                };
                entry.ready = false;
                entry.due = None;
                entry.flight = Some(now);
                entry.last_started = Some(now);
                *busy += 1;
                taken.push(id);
            }
            if *busy == 0 {
                self.in_flight.remove(&host);
            }
            if queue.is_empty() {
                self.ready.remove(&host);
            } else {
                self.ready_hosts.push_back(host);
            }
        }
        taken
    }

    /// Records how the ask of `id` started at its flight ended at `now`, and schedules the next:
    /// at once when someone asked for a newer answer meanwhile; after the backoff (or the
    /// registry's wait), at most the recovery bound, after a transient failure; else, if the tag is periodic, at the first
    /// phase at least nine tenths of an interval after the ask started — one interval later in
    /// steady state, at most 1.9 intervals after an ask off the phase.
    pub fn finish(&mut self, id: TagId, outcome: AskOutcome, now: Instant) {
        let Some(entry) = self.entries.get_mut(&id) else {
            return;
        };
        let Some(started) = entry.flight.take() else {
            return;
        };
        let host = entry.host.clone();
        let again = std::mem::take(&mut entry.again);
        let (periodic, phase) = (entry.periodic, entry.phase);
        let gap = self.interval / 10;
        let at = match outcome {
            // Never asked twice within (nine tenths of) an interval: a tag asked off its phase (a
            // first import, a request) skips the phase that comes too soon after.
            AskOutcome::Answered => {
                entry.failures = 0;
                periodic.then(|| self.next_slot(phase, started, self.interval - gap))
            }
            AskOutcome::Transient { retry_after } => {
                let backoff = self.retry.delay(entry.failures);
                entry.failures = entry.failures.saturating_add(1);
                // The registry's own wait is honoured up to the recovery bound (where the host's
                // limits cut it too), so a registry that is back is asked within the bound; a
                // plain backoff never pushes a periodic tag past its next phase either.
                let retry_at = now + retry_after.unwrap_or(backoff).min(self.recovery);
                Some(match retry_after {
                    None if periodic => retry_at.min(self.next_slot(phase, now, gap)),
                    _ => retry_at,
                })
            }
        };
        self.release_host(&host);
        self.set_due(id, if again { Some(now) } else { at });
    }

    /// The earliest time a tag is due, if any is: the past when a due tag's host has budget.
    pub fn next_due(&self) -> Option<Instant> {
        let ready_now = self
            .ready_hosts
            .iter()
            .any(|host| self.in_flight.get(host).copied().unwrap_or(0) < self.per_host);
        if ready_now {
            return Some(self.epoch);
        }
        self.timers.first().map(|(at, _)| *at)
    }

    /// When `id` is due next, if it is.
    pub fn due_at(&self, id: TagId) -> Option<Instant> {
        self.entries.get(&id).and_then(|e| e.due)
    }

    /// The first instant of `phase` in the interval grid at least `gap` after `after`.
    fn next_slot(&self, phase: Duration, after: Instant, gap: Duration) -> Instant {
        let earliest = after + gap;
        let first = self.epoch + phase;
        if earliest <= first {
            return first;
        }
        let since = earliest.duration_since(first).as_nanos();
        let interval = self.interval.as_nanos();
        let periods = since.div_ceil(interval);
        let offset = interval.saturating_mul(periods);
        first + Duration::from_nanos(u64::try_from(offset).unwrap_or(u64::MAX))
    }

    /// Moves `id` to be due at `at` (or not at all), out of the timer or ready queue it was in.
    fn set_due(&mut self, id: TagId, at: Option<Instant>) {
        let Some(entry) = self.entries.get_mut(&id) else {
            return;
        };
        if let Some(old) = entry.due.take() {
            if entry.ready {
                // Left in its host's queue, and skipped there.
                entry.ready = false;
            } else {
                self.timers.remove(&(old, id));
            }
        }
        if let Some(at) = at {
            entry.due = Some(at);
            self.timers.insert((at, id));
        }
    }

    fn release_host(&mut self, host: &Arc<str>) {
        if let Some(count) = self.in_flight.get_mut(host) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.in_flight.remove(host);
            }
        }
    }
}

/// A fixed point in `[0, interval)` from `seed`.
pub fn phase_of(seed: u64, interval: Duration) -> Duration {
    let nanos = interval.as_nanos().max(1);
    Duration::from_nanos((u128::from(seed) % nanos) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const INTERVAL: Duration = Duration::from_secs(60);

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn schedule(t0: Instant) -> PollSchedule {
        schedule_with_budget(t0, 8)
    }

    fn schedule_with_budget(t0: Instant, per_host: usize) -> PollSchedule {
        PollSchedule::new(INTERVAL, t0, Backoff::new(secs(5), secs(300)), per_host)
    }

    /// A seed whose phase is `s` seconds into the interval.
    fn at_phase(s: u64) -> u64 {
        secs(s).as_nanos() as u64
    }

    fn host() -> Arc<str> {
        Arc::from("registry.example.com")
    }

    #[test]
    fn a_periodic_tag_is_asked_once_per_interval_at_its_phase() {
        let t0 = Instant::now();
        let mut s = schedule(t0);
        s.track(1, host(), at_phase(20));
        s.set_periodic(1, true, t0);
        assert_eq!(s.next_due(), Some(t0 + secs(20)));
        assert!(s.take_due(t0 + secs(19), 10).is_empty());
        let mut asked = Vec::new();
        let mut now = t0;
        for _ in 0..4 {
            now = s.next_due().unwrap();
            assert_eq!(s.take_due(now, 10), vec![1]);
            asked.push(now.duration_since(t0).as_secs());
            s.finish(1, AskOutcome::Answered, now + Duration::from_millis(30));
        }
        assert_eq!(asked, [20, 80, 140, 200]);
        assert!(s.take_due(now + secs(59), 10).is_empty());
    }

    #[test]
    fn a_wanted_tag_is_asked_now_and_never_again_within_nine_tenths_of_an_interval() {
        let t0 = Instant::now();
        let mut s = schedule(t0);
        s.track(1, host(), at_phase(30));
        s.set_periodic(1, true, t0);
        s.want(1, t0 + secs(3), t0 + secs(3));
        assert_eq!(s.take_due(t0 + secs(3), 10), vec![1]);
        s.finish(1, AskOutcome::Answered, t0 + secs(3));
        // The phase at 30 s is too soon after the ask: the next is at 90 s.
        assert_eq!(s.next_due(), Some(t0 + secs(90)));
        // Asked at 89 s, just before its phase at 90 s: that phase is skipped, the next is at 150 s.
        s.want(1, t0 + secs(89), t0 + secs(89));
        assert_eq!(s.take_due(t0 + secs(89), 10), vec![1]);
        s.finish(1, AskOutcome::Answered, t0 + secs(89));
        assert_eq!(s.next_due(), Some(t0 + secs(150)));
        // A periodic ask that starts late (its host was busy) keeps the next phase.
        assert_eq!(s.take_due(t0 + secs(152), 10), vec![1]);
        s.finish(1, AskOutcome::Answered, t0 + secs(152));
        assert_eq!(s.next_due(), Some(t0 + secs(210)));
    }

    #[test]
    fn notifications_ask_at_once_then_at_most_once_per_window() {
        let t0 = Instant::now();
        let window = secs(1);
        let mut s = schedule(t0);
        s.track(1, host(), at_phase(30));
        s.set_periodic(1, true, t0);
        // The first notification is asked at once.
        s.notify(1, t0 + secs(10), window);
        assert_eq!(s.take_due(t0 + secs(10), 10), vec![1]);
        // During the ask: left to the caller.
        s.notify(1, t0 + secs(10), window);
        s.finish(1, AskOutcome::Answered, t0 + secs(10));
        // A burst right after: one ask, when the window since the last one ends.
        let later = t0 + secs(10) + Duration::from_millis(100);
        for step in 0..100 {
            s.notify(1, later + Duration::from_millis(step * 5), window);
        }
        assert!(
            s.take_due(later + Duration::from_millis(600), 10)
                .is_empty()
        );
        assert_eq!(s.take_due(t0 + secs(11), 10), vec![1]);
        s.finish(1, AskOutcome::Answered, t0 + secs(11));
        // Periodic polling goes on at the phase.
        assert_eq!(s.next_due(), Some(t0 + secs(90)));
    }

    #[test]
    fn a_tag_that_is_not_periodic_is_asked_only_when_wanted() {
        let t0 = Instant::now();
        let mut s = schedule(t0);
        s.track(1, host(), at_phase(10));
        assert_eq!(s.next_due(), None);
        s.want(1, t0, t0);
        assert_eq!(s.take_due(t0, 10), vec![1]);
        s.finish(1, AskOutcome::Answered, t0 + secs(1));
        assert_eq!(s.next_due(), None);
    }

    #[test]
    fn a_want_during_a_flight_is_served_by_it_or_by_one_more_ask_after_it() {
        let t0 = Instant::now();
        let mut s = schedule(t0);
        s.track(1, host(), at_phase(10));
        s.want(1, t0, t0);
        assert_eq!(s.take_due(t0, 10), vec![1]);
        // Needing an answer asked at t0 or later: the flight that started at t0 serves.
        s.want(1, t0, t0 + secs(1));
        s.finish(1, AskOutcome::Answered, t0 + secs(2));
        assert_eq!(s.next_due(), None);
        // Needing one asked after the flight started: asked again as soon as it ends.
        s.want(1, t0 + secs(3), t0 + secs(3));
        assert_eq!(s.take_due(t0 + secs(3), 10), vec![1]);
        s.want(1, t0 + secs(4), t0 + secs(4));
        assert!(
            s.take_due(t0 + secs(4), 10).is_empty(),
            "one flight at a time"
        );
        s.finish(1, AskOutcome::Answered, t0 + secs(5));
        assert_eq!(s.take_due(t0 + secs(5), 10), vec![1]);
    }

    #[test]
    fn transient_failures_back_off_and_a_registry_wait_is_honoured_up_to_the_recovery_bound() {
        let t0 = Instant::now();
        let mut s = schedule(t0);
        s.track(1, host(), at_phase(50));
        let mut now = t0;
        let mut waits = Vec::new();
        s.want(1, now, now);
        for _ in 0..4 {
            assert_eq!(s.take_due(now, 10), vec![1]);
            s.finish(1, AskOutcome::Transient { retry_after: None }, now);
            let due = s.next_due().unwrap();
            waits.push(due.duration_since(now).as_secs());
            now = due;
        }
        assert_eq!(waits, [5, 10, 20, 40]);
        // A wait within the bound (60 s here) is honoured as asked, a longer one cut to it.
        for (asked, waited) in [(45, 45), (600, 60), (3600, 60)] {
            assert_eq!(s.take_due(now, 10), vec![1]);
            s.finish(
                1,
                AskOutcome::Transient {
                    retry_after: Some(secs(asked)),
                },
                now,
            );
            assert_eq!(s.next_due(), Some(now + secs(waited)), "{asked} s asked");
            now += secs(waited);
        }
        // Success resets the backoff.
        assert_eq!(s.take_due(now, 10), vec![1]);
        s.finish(1, AskOutcome::Answered, now);
        s.want(1, now, now);
        assert_eq!(s.take_due(now, 10), vec![1]);
        s.finish(1, AskOutcome::Transient { retry_after: None }, now);
        assert_eq!(s.next_due(), Some(now + secs(5)));
    }

    #[test]
    fn the_recovery_bound_is_one_interval_and_never_less_than_thirty_seconds() {
        for (interval, bound) in [(1, 30), (15, 30), (30, 30), (60, 60), (900, 900)] {
            assert_eq!(recovery_bound(secs(interval)), secs(bound), "{interval} s");
        }
    }

    #[test]
    fn retries_of_a_failing_tag_never_wait_longer_than_the_recovery_bound() {
        let cases: [(u64, &[u64]); 3] = [
            (15, &[5, 10, 20, 30, 30, 30, 30, 30]),
            (60, &[5, 10, 20, 40, 60, 60, 60, 60]),
            (900, &[5, 10, 20, 40, 80, 160, 300, 300]),
        ];
        for (interval, expected) in cases {
            let t0 = Instant::now();
            let mut s =
                PollSchedule::new(secs(interval), t0, Backoff::new(secs(5), LONGEST_RETRY), 8);
            // Not periodic: no phase pulls the retry earlier.
            s.track(1, host(), at_phase(0));
            let mut now = t0;
            s.want(1, now, now);
            let mut waits = Vec::new();
            for _ in 0..expected.len() {
                assert_eq!(s.take_due(now, 10), vec![1]);
                s.finish(1, AskOutcome::Transient { retry_after: None }, now);
                let due = s.next_due().unwrap();
                waits.push(due.duration_since(now).as_secs());
                now = due;
            }
            assert_eq!(waits, expected, "{interval} s interval");
        }
    }

    /// A tag failing every ask until the registry returns at `returns`, answered after: when its
    /// first ask after the return starts. Each failure carries `wait` as the registry's (or its
    /// host's backoff's) wait.
    fn first_ask_after_return(
        interval: Duration,
        returns: Duration,
        periodic: bool,
        wait: Option<Duration>,
    ) -> Duration {
        let t0 = Instant::now();
        let mut s = PollSchedule::new(interval, t0, Backoff::new(secs(5), LONGEST_RETRY), 8);
        s.track(1, host(), at_phase(7));
        s.set_periodic(1, periodic, t0);
        s.want(1, t0, t0);
        loop {
            let now = s.next_due().expect("a failing tag is always due again");
            assert_eq!(s.take_due(now, 10), vec![1]);
            let back = now.duration_since(t0) >= returns;
            if back {
                s.finish(1, AskOutcome::Answered, now);
                return now.duration_since(t0) - returns;
            }
            s.finish(1, AskOutcome::Transient { retry_after: wait }, now);
        }
    }

    #[test]
    fn after_an_outage_a_tag_is_asked_within_the_recovery_bound_of_the_registry_return() {
        for interval in [secs(15), secs(60)] {
            for outage in [secs(60), secs(600)] {
                for periodic in [false, true] {
                    // No wait given; the longest backoff of a registry host (the old 5 minutes);
                    // an hour's Retry-After.
                    for wait in [None, Some(secs(300)), Some(secs(3600))] {
                        let late = first_ask_after_return(interval, outage, periodic, wait);
                        assert!(
                            late <= recovery_bound(interval),
                            "{interval:?} interval, {outage:?} outage, periodic {periodic}, \
                             wait {wait:?}: asked {late:?} after the return"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn a_periodic_tag_failing_without_a_registry_wait_is_back_at_its_phase_at_the_latest() {
        let t0 = Instant::now();
        let mut s = schedule(t0);
        s.track(1, host(), at_phase(10));
        s.set_periodic(1, true, t0);
        let mut now = t0 + secs(10);
        for _ in 0..8 {
            assert_eq!(s.take_due(now, 10), vec![1]);
            s.finish(1, AskOutcome::Transient { retry_after: None }, now);
            let due = s.next_due().unwrap();
            assert!(due.duration_since(now) <= INTERVAL + INTERVAL / 10);
            now = due;
        }
    }

    #[test]
    fn no_host_gets_more_asks_in_flight_than_its_budget_and_others_are_not_held_up() {
        let t0 = Instant::now();
        let mut s = schedule_with_budget(t0, 2);
        for id in 0..5 {
            s.track(id, host(), id);
            s.want(id, t0, t0);
        }
        s.track(9, Arc::from("other.example.com"), 9);
        s.want(9, t0, t0);
        let first = s.take_due(t0, 100);
        assert_eq!(first.len(), 3, "{first:?}");
        assert!(first.contains(&9));
        assert!(s.take_due(t0, 100).is_empty());
        s.finish(first[0], AskOutcome::Answered, t0);
        let next = s.take_due(t0, 100);
        assert_eq!(next.len(), 1);
        // At most `max` at a time.
        s.finish(next[0], AskOutcome::Answered, t0);
        s.finish(first[1], AskOutcome::Answered, t0);
        s.finish(first[2], AskOutcome::Answered, t0);
        assert_eq!(s.take_due(t0, 1).len(), 1);
    }

    #[test]
    fn ten_thousand_due_tags_of_one_host_are_asked_in_turn_within_its_budget() {
        let t0 = Instant::now();
        let mut s = schedule_with_budget(t0, 2);
        for id in 0..10_000 {
            s.track(id, host(), id);
            s.want(id, t0, t0);
        }
        let mut order = Vec::new();
        let mut now = t0;
        while order.len() < 10_000 {
            let taken = s.take_due(now, 64);
            assert!(taken.len() <= 2, "{taken:?}");
            assert!(!taken.is_empty(), "a due tag with budget was not taken");
            for id in taken {
                s.finish(id, AskOutcome::Answered, now);
                order.push(id);
            }
            now += Duration::from_millis(1);
        }
        assert_eq!(order, (0..10_000).collect::<Vec<_>>());
        assert_eq!(s.next_due(), None);
    }

    #[test]
    fn the_next_due_time_is_now_while_a_due_tag_has_budget() {
        let t0 = Instant::now();
        let mut s = schedule_with_budget(t0, 1);
        s.track(1, host(), 1);
        s.track(2, host(), 2);
        s.want(1, t0, t0);
        s.want(2, t0, t0);
        assert_eq!(s.take_due(t0, 10), vec![1]);
        // Tag 2 waits for the host's budget: nothing is due until tag 1's ask ends.
        assert_eq!(s.next_due(), None);
        s.finish(1, AskOutcome::Answered, t0 + secs(1));
        assert!(s.next_due().is_some_and(|due| due <= t0 + secs(1)));
        assert_eq!(s.take_due(t0 + secs(1), 10), vec![2]);
    }

    #[test]
    fn an_untracked_tag_is_never_due_and_frees_its_host() {
        let t0 = Instant::now();
        let mut s = schedule_with_budget(t0, 1);
        s.track(1, host(), 1);
        s.track(2, host(), 2);
        s.want(1, t0, t0);
        s.want(2, t0, t0);
        assert_eq!(s.take_due(t0, 10), vec![1]);
        s.untrack(1);
        s.finish(1, AskOutcome::Answered, t0);
        assert_eq!(s.take_due(t0, 10), vec![2]);
        s.untrack(2);
        assert_eq!(s.next_due(), None);
        assert!(s.is_empty());
    }

    #[test]
    fn phases_of_three_thousand_tags_leave_no_ten_seconds_with_a_quarter_of_the_asks() {
        use sha2::{Digest, Sha256};
        let t0 = Instant::now();
        let mut s = schedule_with_budget(t0, usize::MAX);
        for id in 0..3000u64 {
            let hash = Sha256::digest(format!(
                "registry.local/bench/repo-{}:tag-{}",
                id / 3,
                id % 3
            ));
            let seed = u64::from_be_bytes(hash[..8].try_into().unwrap());
            s.track(id, host(), seed);
            s.set_periodic(id, true, t0);
        }
        let mut per_second = [0usize; 60];
        while let Some(due) = s.next_due() {
            for id in s.take_due(due, usize::MAX) {
                per_second[due.duration_since(t0).as_secs() as usize] += 1;
                s.untrack(id);
            }
        }
        assert_eq!(per_second.iter().sum::<usize>(), 3000);
        let busiest = (0..60)
            .map(|start| {
                (start..start + 10)
                    .map(|i| per_second[i % 60])
                    .sum::<usize>()
            })
            .max()
            .unwrap();
        assert!(busiest * 4 <= 3000, "{busiest} of 3000 in ten seconds");
    }
}
