//! Publishing Kubernetes Events (`events.k8s.io/v1`). An Event is new when its object, type, reason,
//! action or note is; the same Event again within [`SERIES_WINDOW`] becomes a series of the first
//! (`series.count`, `series.lastObservedTime`: one PATCH, shown by `kubectl describe` as "x3 over
//! 5m") instead of another object. kube's own recorder leaves the note out of that comparison, so a
//! second image change would read as the first; this one does not. The memory of published Events
//! is bounded by age and by count.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event as K8sEvent;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::events::{Event, EventType, Reporter};
use kube::{Api, Client};
use tokio::time::Instant;

/// How long a published Event can be continued as a series (kube and client-go use six minutes).
pub const SERIES_WINDOW: Duration = Duration::from_secs(6 * 60);

/// The most Events remembered for series; past it the oldest half is forgotten.
const MAX_REMEMBERED: usize = 20_000;

/// What makes two Events the same; remembered as its hash only.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct EventKey {
    regarding: (
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
    ),
    warning: bool,
    reason: String,
    action: String,
    note: Option<String>,
}

#[derive(Debug, Clone)]
struct Published {
    namespace: String,
    name: String,
    count: i32,
    last: Instant,
}

/// Publishes Events for one reporting controller and instance. Cheap to share by reference.
pub struct EventPublisher {
    client: Client,
    reporter: Reporter,
    /// Published Events by the hash of their [`EventKey`]: 64 bits keep two different Events
    /// apart as surely as a string would, for a fraction of the memory.
    published: Mutex<HashMap<u64, Published>>,
}

impl EventPublisher {
    /// A publisher writing with `client` as `reporter`.
    pub fn new(client: Client, reporter: Reporter) -> Self {
        Self {
            client,
            reporter,
            published: Mutex::new(HashMap::new()),
        }
    }

    /// Publishes `event` about `regarding`: a new Event, or the next count of the same Event's
    /// series. Cluster-scoped objects' Events go to `default`.
    pub async fn publish(
        &self,
        event: &Event,
        regarding: &ObjectReference,
    ) -> Result<(), kube::Error> {
        let key = EventKey {
            regarding: (
                regarding.kind.clone(),
                regarding.namespace.clone(),
                regarding.name.clone(),
                regarding.field_path.clone(),
            ),
            warning: matches!(event.type_, EventType::Warning),
            reason: event.reason.clone(),
            action: event.action.clone(),
            note: event.note.clone(),
        };
        let key = {
            let mut hasher = std::hash::DefaultHasher::new();
            std::hash::Hash::hash(&key, &mut hasher);
            std::hash::Hasher::finish(&hasher)
        };
        let now = Instant::now();
        let repeat = {
            let mut published = self.published.lock().unwrap_or_else(|p| p.into_inner());
            match published.get_mut(&key) {
                Some(entry) if now.duration_since(entry.last) < SERIES_WINDOW => {
                    entry.count += 1;
                    entry.last = now;
                    Some(entry.clone())
                }
                _ => None,
            }
        };
        let timestamp = k8s_openapi::jiff::Timestamp::now();
        if let Some(series) = repeat {
            let patch = serde_json::json!({
                "series": {
                    "count": series.count,
                    "lastObservedTime": MicroTime(timestamp),
                }
            });
            let api = Api::<K8sEvent>::namespaced(self.client.clone(), &series.namespace);
            match api
                .patch(&series.name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => return Ok(()),
                // The Event expired or was deleted: start a new one.
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(err) => return Err(err),
            }
        }
        let namespace = regarding
            .namespace
            .clone()
            .unwrap_or_else(|| "default".to_owned());
        let name = format!(
            "{}.{:x}",
            regarding
                .name
                .as_deref()
                .unwrap_or(&self.reporter.controller),
            timestamp.as_nanosecond()
        );
        let object = K8sEvent {
            action: Some(event.action.clone()),
            reason: Some(event.reason.clone()),
            event_time: Some(MicroTime(timestamp)),
            regarding: Some(regarding.clone()),
            related: event.secondary.clone(),
            note: event.note.clone(),
            metadata: ObjectMeta {
                namespace: Some(namespace.clone()),
                name: Some(name.clone()),
                ..ObjectMeta::default()
            },
            reporting_controller: Some(self.reporter.controller.clone()),
            reporting_instance: Some(
                self.reporter
                    .instance
                    .clone()
                    .unwrap_or_else(|| self.reporter.controller.clone()),
            ),
            type_: Some(
                match event.type_ {
                    EventType::Normal => "Normal",
                    EventType::Warning => "Warning",
                }
                .to_owned(),
            ),
            ..K8sEvent::default()
        };
        Api::<K8sEvent>::namespaced(self.client.clone(), &namespace)
            .create(&PostParams::default(), &object)
            .await?;
        let mut published = self.published.lock().unwrap_or_else(|p| p.into_inner());
        if published.len() >= MAX_REMEMBERED {
            forget_oldest(&mut published, now);
        }
        published.insert(
            key,
            Published {
                namespace,
                name,
                count: 1,
                last: now,
            },
        );
        Ok(())
    }

    /// How many published Events are remembered for series.
    pub fn remembered(&self) -> usize {
        self.published
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }

    /// Forgets the Events whose series window has passed.
    pub fn forget_expired(&self) {
        let now = Instant::now();
        self.published
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, entry| now.duration_since(entry.last) < SERIES_WINDOW);
    }
}

/// Forgets expired Events, and when that is not enough, the older half.
fn forget_oldest(published: &mut HashMap<u64, Published>, now: Instant) {
    published.retain(|_, entry| now.duration_since(entry.last) < SERIES_WINDOW);
    if published.len() >= MAX_REMEMBERED {
        let mut ages: Vec<Instant> = published.values().map(|e| e.last).collect();
        ages.sort();
        let cut = ages[ages.len() / 2];
        published.retain(|_, entry| entry.last > cut);
    }
}
