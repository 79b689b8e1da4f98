//! Keeps the ImageStream controller's in-memory caches bounded by what still exists: memory and
//! engine subscriptions of deleted streams (their watch events forget them at once; this catches
//! deletions a re-list hid), parsed copies of deleted pull secrets, manifest-list choices nobody
//! asked for in a while, created Images the Image cache now holds, and Events past their series
//! window are forgotten once per round, and the size of each cache is exported as
//! `imagestream_operator_remembered_entries`.
//!
//! Forgetting changes no decision: every entry dropped is one the controller would not read again
//! (its stream or secret is gone), or one it can rebuild with a single registry request.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::Context;
use super::context::object_key;
use crate::metrics::REMEMBERED_CACHES;

/// How often the caches are trimmed: once per import interval, at least once a second and at most
/// every ten minutes.
pub fn housekeeping_period(import_interval: Duration) -> Duration {
    import_interval.clamp(Duration::from_secs(1), Duration::from_secs(600))
}

/// How long a registry answer or a manifest-list choice is kept after it was last useful: two import
/// intervals, so a check that runs late still finds the answer of its slot.
pub fn keep_for(import_interval: Duration) -> Duration {
    import_interval.saturating_mul(2)
}

/// Whether something last useful at `at` is worth keeping at `now`.
pub fn still_useful(at: Instant, now: Instant, import_interval: Duration) -> bool {
    now.saturating_duration_since(at) < keep_for(import_interval)
}

/// Drops every entry of `map` whose key is not in `known`.
pub fn retain_known<V>(map: &mut HashMap<String, V>, known: &HashSet<String>) {
    map.retain(|key, _| known.contains(key));
}

/// Drops every entry of `map` for which `keep` says no.
fn retain_where<K: Eq + Hash, V>(map: &mut HashMap<K, V>, mut keep: impl FnMut(&V) -> bool) {
    map.retain(|_, value| keep(value));
}

/// The sizes of the caches after one round, in [`crate::metrics::REMEMBERED_CACHES`] order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Remembered {
    /// Streams with per-stream memory (schedule, served requests, retries).
    pub stream_memory: usize,
    /// Distinct registry tags (each with its latest answer).
    pub registry_answers: usize,
    /// Manifest-list digests with a remembered child.
    pub list_choices: usize,
    /// Parsed pull secrets.
    pub pull_secrets: usize,
}

impl Remembered {
    /// The sizes in [`REMEMBERED_CACHES`] order.
    pub fn sizes(&self) -> [usize; 4] {
        [
            self.stream_memory,
            self.registry_answers,
            self.list_choices,
            self.pull_secrets,
        ]
    }
}

/// One round: forgets what is no longer needed at `now` and returns what is left.
pub fn forget_unused(ctx: &Context, now: Instant) -> Remembered {
    let interval = ctx.config.import_interval;
    let live_streams: HashSet<String> = ctx
        .streams
        .state()
        .iter()
        .map(|stream| object_key(stream.as_ref()))
        .collect();
    let live_secrets: HashSet<String> = ctx
        .secrets
        .iter()
        .flat_map(|store| store.state())
        .map(|secret| object_key(secret.as_ref()))
        .collect();

    let stream_memory = {
        let mut memory = ctx.memory.lock().unwrap_or_else(|p| p.into_inner());
        retain_known(&mut memory, &live_streams);
        memory.len()
    };
    {
        let mut failures = ctx.failures.lock().unwrap_or_else(|p| p.into_inner());
        retain_known(&mut failures, &live_streams);
    }
    let pull_secrets = {
        let mut parsed = ctx.pull_secrets.lock().unwrap_or_else(|p| p.into_inner());
        retain_known(&mut parsed, &live_secrets);
        parsed.len()
    };
    ctx.engine.retain_streams(|stream| {
        live_streams.contains(&format!(
            "{}/{}",
            stream.namespace.as_deref().unwrap_or_default(),
            stream.name
        ))
    });
    let registry_answers = ctx.engine.size().distinct_tags;
    {
        let mut created = ctx.created_images.lock().unwrap_or_else(|p| p.into_inner());
        created.retain(|name| {
            ctx.images
                .get(&kube::runtime::reflector::ObjectRef::new(name))
                .is_none()
        });
    }
    ctx.events.forget_expired();
    let list_choices = {
        let mut choices = ctx.list_children.lock().unwrap_or_else(|p| p.into_inner());
        retain_where(&mut choices, |(_, used)| still_useful(*used, now, interval));
        choices.len()
    };
    let remembered = Remembered {
        stream_memory,
        registry_answers,
        list_choices,
        pull_secrets,
    };
    for (cache, entries) in REMEMBERED_CACHES.iter().zip(remembered.sizes()) {
        ctx.metrics.set_remembered(cache, entries);
    }
    remembered
}

/// Runs [`forget_unused`] every [`housekeeping_period`] until `stop` resolves.
pub async fn run_housekeeping(ctx: Arc<Context>, stop: impl std::future::Future<Output = ()>) {
    let mut ticker = tokio::time::interval(housekeeping_period(ctx.config.import_interval));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => return,
            _ = ticker.tick() => {
                let left = forget_unused(&ctx, Instant::now());
                tracing::debug!(?left, "housekeeping round");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_period_follows_the_import_interval_within_bounds() {
        assert_eq!(
            housekeeping_period(Duration::from_millis(200)),
            Duration::from_secs(1)
        );
        assert_eq!(
            housekeeping_period(Duration::from_secs(90)),
            Duration::from_secs(90)
        );
        assert_eq!(
            housekeeping_period(Duration::from_secs(15 * 60)),
            Duration::from_secs(600)
        );
    }

    #[test]
    fn answers_are_kept_for_two_intervals() {
        let interval = Duration::from_secs(60);
        let t0 = Instant::now();
        assert!(still_useful(t0, t0 + Duration::from_secs(119), interval));
        assert!(!still_useful(t0, t0 + Duration::from_secs(120), interval));
        // An answer recorded for a slot later than now is useful.
        assert!(still_useful(t0 + Duration::from_secs(30), t0, interval));
    }

    #[test]
    fn only_known_keys_are_retained() {
        let mut map: HashMap<String, u32> = [("a/x".to_owned(), 1), ("a/y".to_owned(), 2)]
            .into_iter()
            .collect();
        let known: HashSet<String> = ["a/y".to_owned(), "b/z".to_owned()].into_iter().collect();
        retain_known(&mut map, &known);
        assert_eq!(map.keys().collect::<Vec<_>>(), vec!["a/y"]);
    }
}
