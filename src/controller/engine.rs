//! The import engine: registry requests follow distinct tags, not streams. Stream reconciles
//! subscribe their `DockerImage` tags to [`DistinctTag`]s and say how fresh an answer each needs;
//! the engine asks the registry once per distinct tag — at its phase of the interval when a
//! subscriber polls, at once when one needs a fresher answer — through [`super::importer`], keeps
//! the latest answer, and wakes exactly the streams that waited for it or whose answer changed.
//! An unchanged answer wakes nobody, so an idle cycle costs one HEAD per distinct tag and no
//! reconcile at all.
//!
//! The state is one mutex-guarded map and a pure [`PollSchedule`]; the driver task takes due tags
//! from the schedule, resolves at most `import_concurrency` of them at a time (and no more per
//! registry host than the host's budget), and records each answer.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::channel::mpsc::UnboundedSender;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::core::DeserializeGuard;
use kube::runtime::reflector::ObjectRef;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::api::ImageStream;
use crate::domain::backoff::Backoff;
use crate::domain::distinct_tag::{DistinctTag, Selection};
use crate::domain::history::ImportFailure;
use crate::domain::mirror_plan::MirrorPlan;
use crate::domain::poll_schedule::{AskOutcome, LONGEST_RETRY, PollSchedule, TagId};
use crate::domain::reference::ImageReference;
use crate::domain::tag_need::Freshness;
use crate::metrics::{ImportResult, Metrics};
use crate::registry::Access;

/// A stream, as the controller's queue takes it.
pub type StreamRef = ObjectRef<DeserializeGuard<ImageStream>>;

/// A subscribed stream, as the engine's maps name it: four bytes rather than a reference's
/// strings, for every subscription of every stream.
type StreamId = u32;

/// The retry of a distinct tag after a transient failure: 5 s, 10 s, 20 s … up to 5 minutes,
/// unless the registry (or its host's backoff) says how long to wait; either way never longer than
/// the interval's recovery bound (the schedule cuts it), so a registry that is back is asked again
/// within `max(interval, 30 s)`.
pub const IMPORT_RETRY: Backoff = Backoff::new(Duration::from_secs(5), LONGEST_RETRY);

/// The shortest time between two asks of one distinct tag caused by push notifications: a burst of
/// notifications for one tag costs at most one HEAD per window (and the digest they name, when the
/// answer already has it, none).
pub const NOTIFY_WINDOW: Duration = Duration::from_secs(1);

/// How long after a push notification its distinct tags are asked. The distribution registry
/// queues a manifest's `push` event before it has moved the tag to the manifest, so a HEAD sent
/// the moment the notification lands can still see the old digest.
pub const NOTIFY_SETTLE: Duration = Duration::from_millis(250);

/// What a push notification did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NotifyOutcome {
    /// Distinct tags whose pull plan includes the pushed reference.
    pub tracked: usize,
    /// Of those, the ones moved to "import now" (or to right after the ask in flight).
    pub asked: usize,
    /// Of those, the ones whose latest answer already is the digest the notification named.
    pub current: usize,
}

/// Push notifications for one distinct tag that no ask has answered yet.
#[derive(Debug, Clone)]
struct PendingPush {
    /// When the first arrived (push → import latency is counted from it).
    first: Instant,
    /// When the last arrived: only an ask started after it covers them all.
    last: Instant,
    /// The digest every one of them named, if they all named the same one.
    digest: Option<String>,
    /// An ask after them all found another digest than they named, and the tag was asked once
    /// more: a second disagreement ends the matter (polling goes on as usual).
    rechecked: bool,
}

/// What the registry said about a distinct tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnswerOutcome {
    /// The tag records this digest (the list, or the child `Legacy` mode chose).
    Image {
        /// The recorded digest.
        digest: String,
        /// The mirror that served it, when it was not the source.
        served_by: Option<String>,
    },
    /// The import failed.
    Failed {
        /// Reason and message for the tag's condition.
        failure: ImportFailure,
        /// No registry was contacted: every source's host was backing off after an earlier
        /// failure, which the condition already describes.
        not_contacted: bool,
    },
}

/// How to ask for one distinct tag: the reference, its pull plan and the access of each place.
#[derive(Debug, Clone)]
pub struct TagJob {
    /// The source reference (a subscriber's spelling; every subscriber's names the same image).
    pub reference: ImageReference,
    /// Where to pull it from, in order.
    pub plan: MirrorPlan,
    /// The transport and credentials of each place of the plan, in the same order.
    pub access: Vec<Access>,
    /// Which digest of a manifest list is recorded.
    pub selection: Selection,
}

impl TagJob {
    /// The registry host asked first, whose budget the ask counts against.
    pub fn first_host(&self) -> &str {
        self.plan
            .sources
            .first()
            .map_or(self.reference.api_host(), |pull| pull.reference.api_host())
    }
}

/// How one ask of a distinct tag ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution {
    /// What the registry said.
    pub outcome: AnswerOutcome,
    /// For a failure: whether asking again later may succeed, and when the registry said to.
    pub retry: Option<Option<Duration>>,
}

/// The latest answer for a distinct tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagAnswer {
    /// What it said.
    pub outcome: AnswerOutcome,
    /// When the ask that produced it started.
    pub asked_at: Instant,
    /// When this outcome was first seen (whole seconds): the `created` of the events recorded
    /// from it, the same for every subscriber.
    pub seen: Time,
}

impl TagAnswer {
    /// The digest the tag records, when the answer is an image.
    pub fn digest(&self) -> Option<&str> {
        match &self.outcome {
            AnswerOutcome::Image { digest, .. } => Some(digest),
            AnswerOutcome::Failed { .. } => None,
        }
    }
}

/// One tag of a stream, subscribed to its distinct tag.
pub struct Subscription {
    /// The distinct tag.
    pub key: DistinctTag,
    /// How to ask for it, used when the distinct tag is new to the engine.
    pub job: TagJob,
    /// Whether this tag wants the distinct tag polled every interval.
    pub polls: bool,
    /// The freshness of answer the tag needs before the stream's status is written, if any.
    pub need: Option<Freshness>,
}

/// What the engine knows for one subscription.
#[derive(Debug, Clone, Default)]
pub struct SubscriptionState {
    /// The latest answer, if there is one.
    pub answer: Option<Arc<TagAnswer>>,
    /// The tag needs a fresher answer than the latest; the stream is woken when it comes.
    pub pending: bool,
}

/// The sizes the engine reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EngineSize {
    /// Distinct tags tracked.
    pub distinct_tags: usize,
    /// Streams with at least one subscription.
    pub streams: usize,
}

struct Tracked {
    key: DistinctTag,
    job: Arc<TagJob>,
    /// Subscribed streams, with how many of their tags subscribe and how many of those poll.
    subscribers: HashMap<StreamId, (u32, u32)>,
    /// Streams waiting for a fresher answer.
    waiters: HashSet<StreamId>,
    /// Push notifications waiting for an ask that covers them.
    pushed: Option<PendingPush>,
    answer: Option<Arc<TagAnswer>>,
}

impl Tracked {
    fn polls(&self) -> bool {
        self.subscribers.values().any(|(_, polling)| *polling > 0)
    }
}

struct State {
    ids: HashMap<DistinctTag, TagId>,
    /// The distinct tags each normalised reference is pulled for (the source, and every place of
    /// the pull plan): who a push notification concerns.
    pulls: HashMap<String, Vec<TagId>>,
    tags: HashMap<TagId, Tracked>,
    /// Subscribed streams: their id and their tags' distinct tags (and whether each polls).
    streams: HashMap<StreamRef, (StreamId, Vec<(TagId, bool)>)>,
    /// The reference of each subscribed stream, to wake it.
    stream_refs: HashMap<StreamId, StreamRef>,
    next_stream: StreamId,
    schedule: PollSchedule,
    next_id: TagId,
}

/// The engine, shared by the ImageStream controller and its driver ([`ImportEngine::drive`]).
pub struct ImportEngine {
    state: Mutex<State>,
    work: Notify,
    wakes: UnboundedSender<StreamRef>,
    metrics: Arc<Metrics>,
    import_concurrency: usize,
}

impl ImportEngine {
    /// An engine polling every `interval`, resolving at most `import_concurrency` distinct tags at a
    /// time and `per_host` per registry host, and sending the streams to reconcile to `wakes`.
    pub fn new(
        interval: Duration,
        import_concurrency: usize,
        per_host: usize,
        wakes: UnboundedSender<StreamRef>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            state: Mutex::new(State {
                ids: HashMap::new(),
                pulls: HashMap::new(),
                tags: HashMap::new(),
                streams: HashMap::new(),
                stream_refs: HashMap::new(),
                next_stream: 0,
                schedule: PollSchedule::new(
                    interval,
                    Instant::now().into_std(),
                    IMPORT_RETRY,
                    per_host,
                ),
                next_id: 0,
            }),
            work: Notify::new(),
            wakes,
            metrics,
            import_concurrency: import_concurrency.max(1),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Replaces the subscriptions of `stream` with `subscriptions` and returns, for each, the
    /// latest answer and whether the tag still waits for a fresher one (the stream is then woken
    /// when it comes). Distinct tags nobody subscribes to any more are forgotten.
    pub fn sync_stream(
        &self,
        stream: &StreamRef,
        subscriptions: Vec<Subscription>,
    ) -> Vec<SubscriptionState> {
        let now = Instant::now();
        let mut wake_driver = false;
        let states = {
            let mut state = self.state();
            let state = &mut *state;
            let due_before = state.schedule.next_due();
            let mut subscribed = Vec::with_capacity(subscriptions.len());
            let mut needs = Vec::with_capacity(subscriptions.len());
            for subscription in subscriptions {
                let id = state.track(subscription.key, subscription.job);
                subscribed.push((id, subscription.polls));
                needs.push((id, subscription.need));
            }
            let (stream_id, before) = state.set_subscriptions(stream, subscribed.clone());
            state.resubscribe(stream_id, &before, &subscribed, now);
            // A tag that now polls may be due before anything the driver sleeps for.
            wake_driver |= state.schedule.next_due() != due_before;
            needs
                .into_iter()
                .map(|(id, need)| {
                    let tracked = state
                        .tags
                        .get_mut(&id)
                        .expect("subscribed tags are tracked");
                    let fresh = |need: Freshness| {
                        tracked
                            .answer
                            .as_ref()
                            .is_some_and(|answer| need.satisfied_by(answer.asked_at.into_std()))
                    };
                    let pending = need.is_some_and(|need| !fresh(need));
                    if let Some(need) = need.filter(|_| pending) {
                        tracked.waiters.insert(stream_id);
                        state.schedule.want(id, need.asked_since, now.into_std());
                        wake_driver = true;
                    }
                    SubscriptionState {
                        answer: tracked.answer.clone(),
                        pending,
                    }
                })
                .collect()
        };
        if wake_driver {
            self.work.notify_one();
        }
        states
    }

    /// Forgets every subscription of `stream` (deleted, or no longer served).
    pub fn forget_stream(&self, stream: &StreamRef) {
        let mut state = self.state();
        let (stream_id, before) = state.set_subscriptions(stream, Vec::new());
        state.resubscribe(stream_id, &before, &[], Instant::now());
    }

    /// Forgets the streams for which `keep` says no; returns how many were forgotten.
    pub fn retain_streams(&self, keep: impl Fn(&StreamRef) -> bool) -> usize {
        let gone: Vec<StreamRef> = {
            let state = self.state();
            state.streams.keys().filter(|s| !keep(s)).cloned().collect()
        };
        for stream in &gone {
            self.forget_stream(stream);
        }
        gone.len()
    }

    /// How many distinct tags and subscribed streams the engine holds.
    pub fn size(&self) -> EngineSize {
        let state = self.state();
        EngineSize {
            distinct_tags: state.tags.len(),
            streams: state.streams.len(),
        }
    }

    /// A push of `pulled` (a normalised `registry/repository:tag`) was notified, naming `digest`
    /// if the payload did: every distinct tag pulled from there is asked now (or, after an ask
    /// in the last [`NOTIFY_WINDOW`], when the window ends), except those whose latest answer is
    /// that digest already. The digest is only a hint: it can spare an ask, never replace one.
    pub fn notify(&self, pulled: &str, digest: Option<&str>) -> NotifyOutcome {
        let now = Instant::now();
        let mut outcome = NotifyOutcome::default();
        {
            let mut state = self.state();
            let state = &mut *state;
            let Some(ids) = state.pulls.get(pulled) else {
                return outcome;
            };
            for id in ids {
                let Some(tracked) = state.tags.get_mut(id) else {
                    continue;
                };
                outcome.tracked += 1;
                let answered = tracked.answer.as_ref().and_then(|a| a.digest());
                if digest.is_some() && answered == digest && tracked.pushed.is_none() {
                    outcome.current += 1;
                    continue;
                }
                outcome.asked += 1;
                tracked.pushed = Some(match tracked.pushed.take() {
                    None => PendingPush {
                        first: now,
                        last: now,
                        digest: digest.map(str::to_owned),
                        rechecked: false,
                    },
                    Some(pending) => PendingPush {
                        first: pending.first,
                        last: now,
                        digest: pending.digest.filter(|d| Some(d.as_str()) == digest),
                        rechecked: pending.rechecked,
                    },
                });
                // An ask in flight started before this push: when it ends, `finish` decides
                // whether its answer covers it.
                if state.schedule.in_flight(*id).is_none() {
                    let earliest = (now + NOTIFY_SETTLE).into_std();
                    state.schedule.notify(*id, earliest, NOTIFY_WINDOW);
                }
            }
        }
        if outcome.asked > 0 {
            self.work.notify_one();
        }
        outcome
    }

    /// The jobs due now, marked in flight.
    fn take_due(&self, capacity: usize) -> (Vec<(TagId, Arc<TagJob>)>, Option<Instant>) {
        let mut state = self.state();
        let now = Instant::now().into_std();
        let due = state.schedule.take_due(now, capacity);
        let jobs = due
            .into_iter()
            .filter_map(|id| state.tags.get(&id).map(|t| (id, t.job.clone())))
            .collect();
        let next = state.schedule.next_due().map(Instant::from_std);
        (jobs, next)
    }

    /// Records the answer of an ask of `id` that started at `asked_at`, and wakes who needs to know.
    fn finish(&self, id: TagId, asked_at: Instant, resolution: Resolution) {
        let now = Instant::now();
        let ask = match resolution.retry {
            Some(retry_after) => AskOutcome::Transient { retry_after },
            None => AskOutcome::Answered,
        };
        let outcome = resolution.outcome;
        let wake: Vec<StreamRef> = {
            let mut state = self.state();
            let state = &mut *state;
            state.schedule.finish(id, ask, now.into_std());
            let Some(tracked) = state.tags.get_mut(&id) else {
                return;
            };
            let previous = tracked.answer.as_ref().map(|a| &a.outcome);
            let changed = previous != Some(&outcome);
            self.metrics.count_import(match (&outcome, previous) {
                (AnswerOutcome::Failed { .. }, _) => ImportResult::Failed,
                (_, _) if changed => ImportResult::Imported,
                _ => ImportResult::Unchanged,
            });
            if let AnswerOutcome::Failed { failure, .. } = &outcome {
                tracing::info!(tag = %tracked.key.reference, reason = %failure.reason, message = %failure.message, "import failed");
            } else if changed {
                tracing::debug!(tag = %tracked.key.reference, outcome = ?outcome, "distinct tag moved");
            }
            let seen = match (&tracked.answer, changed) {
                (Some(answer), false) => answer.seen.clone(),
                _ => super::now_time(),
            };
            tracked.answer = Some(Arc::new(TagAnswer {
                outcome,
                asked_at,
                seen,
            }));
            if let Some(mut pending) = tracked.pushed.take() {
                let found = tracked.answer.as_ref().and_then(|a| a.digest());
                let named = pending.digest.is_some() && pending.digest.as_deref() == found;
                let after_all = asked_at >= pending.last;
                if named || (after_all && pending.digest.is_none()) {
                    self.metrics.observe_push_import(now - pending.first);
                } else if !after_all || !pending.rechecked {
                    // Asked before the last push, or the registry had not moved the tag yet:
                    // once more, a window after this ask.
                    pending.rechecked |= after_all;
                    tracked.pushed = Some(pending);
                    state.schedule.notify(id, now.into_std(), NOTIFY_WINDOW);
                }
            }
            let mut wake: HashSet<StreamId> = tracked.waiters.drain().collect();
            if changed {
                wake.extend(tracked.subscribers.keys().copied());
            }
            wake.iter()
                .filter_map(|id| state.stream_refs.get(id).cloned())
                .collect()
        };
        for stream in wake {
            let _ = self.wakes.unbounded_send(stream);
        }
    }
}

impl State {
    /// Records `subscribed` as the subscriptions of `stream` (none: forgets the stream) and returns
    /// the stream's id with the subscriptions it had before.
    fn set_subscriptions(
        &mut self,
        stream: &StreamRef,
        subscribed: Vec<(TagId, bool)>,
    ) -> (StreamId, Vec<(TagId, bool)>) {
        if subscribed.is_empty() {
            return match self.streams.remove(stream) {
                Some((id, before)) => {
                    self.stream_refs.remove(&id);
                    (id, before)
                }
                None => (StreamId::MAX, Vec::new()),
            };
        }
        if let Some((id, tags)) = self.streams.get_mut(stream) {
            return (*id, std::mem::replace(tags, subscribed));
        }
        let id = self.next_stream;
        self.next_stream = self.next_stream.wrapping_add(1);
        self.streams.insert(stream.clone(), (id, subscribed));
        self.stream_refs.insert(id, stream.clone());
        (id, Vec::new())
    }

    /// The id of `key`, tracked from now on if it was not.
    fn track(&mut self, key: DistinctTag, job: TagJob) -> TagId {
        if let Some(id) = self.ids.get(&key) {
            return *id;
        }
        let id = self.next_id;
        self.next_id += 1;
        self.schedule
            .track(id, Arc::from(job.first_host()), key.seed());
        for pulled in key.pulled_references() {
            self.pulls.entry(pulled.to_owned()).or_default().push(id);
        }
        self.ids.insert(key.clone(), id);
        self.tags.insert(
            id,
            Tracked {
                key,
                job: Arc::new(job),
                subscribers: HashMap::new(),
                waiters: HashSet::new(),
                pushed: None,
                answer: None,
            },
        );
        id
    }

    /// Moves `stream` from the distinct tags of `before` to those of `after`.
    fn resubscribe(
        &mut self,
        stream: StreamId,
        before: &[(TagId, bool)],
        after: &[(TagId, bool)],
        now: Instant,
    ) {
        let mut touched: HashSet<TagId> = HashSet::new();
        for (id, polls) in before {
            if let Some(tracked) = self.tags.get_mut(id)
                && let Some((count, polling)) = tracked.subscribers.get_mut(&stream)
            {
                *count = count.saturating_sub(1);
                *polling = polling.saturating_sub(u32::from(*polls));
                if *count == 0 {
                    tracked.subscribers.remove(&stream);
                    tracked.waiters.remove(&stream);
                }
            }
            touched.insert(*id);
        }
        for (id, polls) in after {
            if let Some(tracked) = self.tags.get_mut(id) {
                let entry = tracked.subscribers.entry(stream).or_insert((0, 0));
                entry.0 += 1;
                entry.1 += u32::from(*polls);
            }
            touched.insert(*id);
        }
        for id in touched {
            let Some(tracked) = self.tags.get(&id) else {
                continue;
            };
            if tracked.subscribers.is_empty() {
                let tracked = self.tags.remove(&id).expect("present");
                for pulled in tracked.key.pulled_references() {
                    if let Some(ids) = self.pulls.get_mut(pulled) {
                        ids.retain(|other| *other != id);
                        if ids.is_empty() {
                            self.pulls.remove(pulled);
                        }
                    }
                }
                self.ids.remove(&tracked.key);
                self.schedule.untrack(id);
            } else {
                let polls = tracked.polls();
                self.schedule.set_periodic(id, polls, now.into_std());
            }
        }
    }
}

impl ImportEngine {
    /// Runs the engine until `stop` resolves: takes due distinct tags, asks for them with
    /// `resolve` (at most `--import-concurrency` at a time), and records their answers.
    pub async fn drive<F, Fut>(
        self: Arc<Self>,
        resolve: F,
        stop: impl std::future::Future<Output = ()>,
    ) where
        F: Fn(Arc<TagJob>) -> Fut,
        Fut: std::future::Future<Output = Resolution>,
    {
        let mut flights = FuturesUnordered::new();
        // One timer, moved rather than made anew on every turn of the loop.
        let timer = tokio::time::sleep_until(Instant::now());
        tokio::pin!(stop, timer);
        let mut timer_armed = false;
        loop {
            let capacity = self.import_concurrency.saturating_sub(flights.len());
            let (due, next) = self.take_due(capacity);
            for (id, job) in due {
                let asked_at = Instant::now();
                let flight = resolve(job);
                flights.push(async move { (id, asked_at, flight.await) });
            }
            timer_armed = match next {
                Some(at) if flights.len() < self.import_concurrency => {
                    if !timer_armed || timer.deadline() != at {
                        timer.as_mut().reset(at);
                    }
                    true
                }
                _ => false,
            };
            tokio::select! {
                _ = &mut stop => return,
                _ = self.work.notified() => {}
                _ = &mut timer, if timer_armed => timer_armed = false,
                Some((id, asked_at, resolution)) = flights.next(), if !flights.is_empty() => {
                    self.finish(id, asked_at, resolution);
                    // Record every other answer that is in too before looking for more work.
                    while let Some(Some((id, asked_at, resolution))) = flights.next().now_or_never() {
                        self.finish(id, asked_at, resolution);
                    }
                }
            }
        }
    }
}

/// The engine of the controllers running in this process, if they run: push notifications are
/// received on every replica, and only the leader's engine imports.
pub type EngineSlot = super::slot::Slot<ImportEngine>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::poll_schedule::recovery_bound;
    use std::sync::atomic::{AtomicUsize, Ordering};

    const OLD: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000001";
    const NEW: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000002";
    const FORGED: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000003";

    /// An engine with one stream subscribed to `registry.example.com/team/app:v1`, driven by a
    /// registry whose answer is `answers[n]` for the n-th ask (the last one after that).
    struct Harness {
        engine: Arc<ImportEngine>,
        asks: Arc<Mutex<Vec<Instant>>>,
        _stop: tokio::sync::oneshot::Sender<()>,
    }

    const PULLED: &str = "registry.example.com/team/app:v1";

    fn harness(answers: &'static [&'static str]) -> Harness {
        let (wakes, _woken) = futures::channel::mpsc::unbounded();
        let engine = Arc::new(ImportEngine::new(
            Duration::from_secs(3600),
            4,
            4,
            wakes,
            Arc::new(Metrics::new()),
        ));
        let reference = ImageReference::parse(PULLED).unwrap();
        let plan = MirrorPlan::source_only(&reference);
        let selection = Selection::Legacy {
            os: None,
            arch: None,
        };
        let subscription = Subscription {
            key: DistinctTag::new(&reference, false, selection.clone(), &plan, vec![vec![]]),
            job: TagJob {
                reference,
                plan,
                access: vec![Access {
                    insecure: false,
                    credentials: vec![],
                }],
                selection,
            },
            // Not periodic: only the first import and notifications ask.
            polls: false,
            need: Some(Freshness {
                asked_since: Instant::now().into_std(),
            }),
        };
        engine.sync_stream(&ObjectRef::new("app").within("team"), vec![subscription]);
        let asks = Arc::new(Mutex::new(Vec::new()));
        let count = Arc::new(AtomicUsize::new(0));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let recorded = asks.clone();
        tokio::spawn(engine.clone().drive(
            move |_job| {
                recorded.lock().unwrap().push(Instant::now());
                let n = count.fetch_add(1, Ordering::SeqCst);
                let digest = answers[n.min(answers.len() - 1)].to_owned();
                async move {
                    Resolution {
                        outcome: AnswerOutcome::Image {
                            digest,
                            served_by: None,
                        },
                        retry: None,
                    }
                }
            },
            async move {
                let _ = stopped.await;
            },
        ));
        Harness {
            engine,
            asks,
            _stop: stop,
        }
    }

    impl Harness {
        async fn asks_after(&self, wait: Duration) -> Vec<Instant> {
            tokio::time::sleep(wait).await;
            self.asks.lock().unwrap().clone()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_notification_is_asked_after_the_settle_delay_and_its_digest_spares_the_rest() {
        let h = harness(&[OLD, NEW]);
        assert_eq!(
            h.asks_after(Duration::from_secs(1)).await.len(),
            1,
            "first import"
        );
        let notified = Instant::now();
        let outcome = h.engine.notify(PULLED, Some(NEW));
        assert_eq!((outcome.tracked, outcome.asked, outcome.current), (1, 1, 0));
        let asks = h.asks_after(Duration::from_secs(5)).await;
        assert_eq!(asks.len(), 2);
        assert!(asks[1] - notified >= NOTIFY_SETTLE);
        // The answer has the digest: the same notification again asks nothing.
        assert_eq!(h.engine.notify(PULLED, Some(NEW)).current, 1);
        assert_eq!(
            h.engine
                .notify("registry.example.com/team/other:v1", None)
                .tracked,
            0
        );
        assert_eq!(h.asks_after(Duration::from_secs(5)).await.len(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_tag_the_registry_has_not_moved_yet_is_asked_once_more_then_left_to_polling() {
        // The registry still answers the old digest at the first ask after the notification.
        let h = harness(&[OLD, OLD, NEW]);
        h.asks_after(Duration::from_secs(1)).await;
        h.engine.notify(PULLED, Some(NEW));
        let asks = h.asks_after(Duration::from_secs(5)).await;
        assert_eq!(asks.len(), 3, "asked again a window later");
        assert!(asks[2] - asks[1] >= NOTIFY_WINDOW);
        // A forged digest: two asks, then nothing more however long one waits.
        h.engine.notify(PULLED, Some(FORGED));
        assert_eq!(h.asks_after(Duration::from_secs(600)).await.len(), 5);
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_of_notifications_without_a_digest_costs_one_ask_per_window() {
        let h = harness(&[OLD]);
        h.asks_after(Duration::from_secs(1)).await;
        for _ in 0..100 {
            h.engine.notify(PULLED, None);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // 100 notifications over one second: the first ask, and one after the window.
        assert_eq!(h.asks_after(Duration::from_secs(5)).await.len(), 3);
    }

    /// An engine importing `tags` distinct tags of one registry host every `interval` (the even
    /// ones scheduled), through per-host limits made for that interval, from a registry that
    /// refuses connections until `outage` has passed. Returns how long after the registry's
    /// return each tag's first successful ask started.
    async fn recovery_after(interval: Duration, outage: Duration, tags: usize) -> Vec<Duration> {
        use crate::registry::limits::{HostLimits, LimitsConfig};

        let (wakes, _woken) = futures::channel::mpsc::unbounded();
        let engine = Arc::new(ImportEngine::new(
            interval,
            16,
            8,
            wakes,
            Arc::new(Metrics::new()),
        ));
        let selection = Selection::Legacy {
            os: None,
            arch: None,
        };
        for n in 0..tags {
            let reference =
                ImageReference::parse(&format!("registry.example.com/team/app{n}:v1")).unwrap();
            let plan = MirrorPlan::source_only(&reference);
            let subscription = Subscription {
                key: DistinctTag::new(&reference, false, selection.clone(), &plan, vec![vec![]]),
                job: TagJob {
                    reference,
                    plan,
                    access: vec![Access::default()],
                    selection: selection.clone(),
                },
                polls: n % 2 == 0,
                need: Some(Freshness {
                    asked_since: Instant::now().into_std(),
                }),
            };
            let stream = ObjectRef::new(&format!("app{n}")).within("team");
            engine.sync_stream(&stream, vec![subscription]);
        }
        let limits = HostLimits::new(LimitsConfig::for_interval(interval));
        let returns = Instant::now() + outage;
        let recovered: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let seen = recovered.clone();
        tokio::spawn(engine.clone().drive(
            move |job: Arc<TagJob>| {
                let (limits, seen) = (limits.clone(), seen.clone());
                async move { ask_flaky_registry(&limits, &job, returns, &seen).await }
            },
            async move {
                let _ = stopped.await;
            },
        ));
        tokio::time::sleep(outage + recovery_bound(interval) + Duration::from_secs(5)).await;
        drop(stop);
        let recovered = recovered.lock().unwrap();
        assert_eq!(recovered.len(), tags, "tags recovered: {recovered:?}");
        recovered.values().map(|at| *at - returns).collect()
    }

    /// One ask, as the importer makes it: refused by the host's limits (retried when they say), or
    /// sent to a registry that is down until `returns` and answers after.
    async fn ask_flaky_registry(
        limits: &crate::registry::limits::HostLimits,
        job: &TagJob,
        returns: Instant,
        recovered: &Mutex<HashMap<String, Instant>>,
    ) -> Resolution {
        use crate::registry::limits::HostOutcome;

        let host = job.first_host().to_owned();
        let failed = |not_contacted| AnswerOutcome::Failed {
            failure: ImportFailure {
                reason: "ServiceUnavailable".into(),
                message: "connection refused".into(),
            },
            not_contacted,
        };
        let (permit, _) = match limits.admit(&host).await {
            Ok(admitted) => admitted,
            Err(refusal) => {
                return Resolution {
                    outcome: failed(true),
                    retry: Some(Some(refusal.remaining.max(Duration::from_secs(1)))),
                };
            }
        };
        let started = Instant::now();
        if started < returns {
            limits.record(
                &host,
                HostOutcome::Transient {
                    reason: "ServiceUnavailable",
                    retry_after: None,
                },
            );
            return Resolution {
                outcome: failed(false),
                retry: Some(None),
            };
        }
        limits.record(&host, HostOutcome::Answered);
        drop(permit);
        recovered
            .lock()
            .unwrap()
            .entry(job.reference.to_string())
            .or_insert(started);
        Resolution {
            outcome: AnswerOutcome::Image {
                digest: OLD.into(),
                served_by: None,
            },
            retry: None,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn after_a_registry_outage_every_distinct_tag_is_answered_within_the_recovery_bound() {
        for interval in [Duration::from_secs(15), Duration::from_secs(60)] {
            for outage in [Duration::from_secs(60), Duration::from_secs(600)] {
                let late = recovery_after(interval, outage, 12).await;
                let latest = late.iter().max().unwrap();
                assert!(
                    *latest <= recovery_bound(interval),
                    "{interval:?} interval, {outage:?} outage: recovered after {late:?}"
                );
            }
        }
    }
}
