//! The in-memory caches the controllers read: one watch and one store per kind, shared by every
//! controller that needs the kind, with what the operator never reads (`managedFields`, the
//! `last-applied-configuration` copy of the whole object) dropped before an object is stored.
//!
//! ImageStreams are watched once for the whole operator: the [`StreamCache`] feeds the ImageStream
//! controller (only changes that matter for imports: a new spec generation, an import request,
//! deletion), the trigger controller (every change, status included), the Image collector and the
//! mirror index.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use futures::channel::mpsc::{UnboundedReceiver, UnboundedSender, unbounded};
use kube::core::DeserializeGuard;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};

use super::IMPORT_REQUESTED_ANNOTATION;
use crate::api::ImageStream;
use crate::api::image::ImageSummary;
use crate::domain::backoff::Backoff;

/// The annotation `kubectl apply` keeps a whole copy of the object in.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Drops from an object's metadata what no controller reads: managed fields and kubectl's copy
/// of the last applied object.
pub fn trim_metadata<K: Resource>(object: &mut K) {
    let meta = object.meta_mut();
    meta.managed_fields = None;
    if let Some(annotations) = meta.annotations.as_mut() {
        annotations.remove(LAST_APPLIED);
    }
}

/// Like [`trim_metadata`], but keeps the operator's own managed-fields entry, which the trigger
/// controller compares with to know which images it owns.
pub fn trim_metadata_keeping_own_fields<K: Resource>(object: &mut K) {
    let meta = object.meta_mut();
    if let Some(fields) = meta.managed_fields.as_mut() {
        fields.retain(|entry| entry.manager.as_deref() == Some(super::FIELD_MANAGER));
        if fields.is_empty() {
            meta.managed_fields = None;
        }
    }
    if let Some(annotations) = meta.annotations.as_mut() {
        annotations.remove(LAST_APPLIED);
    }
}

/// A stream's reference without the resourceVersion and uid an object's own reference carries:
/// what the operator's maps and queues keep.
pub fn stream_ref(namespace: &str, name: &str) -> StreamRef {
    ObjectRef::new(name).within(namespace)
}

/// The retry budget of every watch the operator runs (streams, Images, pull secrets, mirror sets,
/// workloads): 0.5 s doubling up to 5 s, with up to 50% jitter so that watches do not reconnect in
/// lockstep. After an API server outage every cache and controller is watching again within about
/// 7.5 s of its return, whichever kind it watches (kube's default backoff waits up to 30 s, and drew
/// different waits for different watches).
pub const WATCH_RETRY: Backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(5));

/// [`WATCH_RETRY`] as a watch stream's backoff: the attempt count restarts with every event the
/// watch delivers.
#[derive(Debug, Default)]
pub struct WatchBackoff {
    attempt: u32,
}

impl Iterator for WatchBackoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let delay = WATCH_RETRY.delay(self.attempt);
        self.attempt = self.attempt.saturating_add(1);
        Some(delay.mul_f64(1.0 + rand::random::<f64>() * 0.5))
    }
}

impl kube::runtime::utils::Backoff for WatchBackoff {
    fn reset(&mut self) {
        self.attempt = 0;
    }
}

/// Spawns a trimmed reflector for `api` filtered by `config` and returns its store. `changed` is
/// told after every change the store takes in.
pub fn spawn_reflector<K>(
    api: Api<K>,
    config: watcher::Config,
    what: &'static str,
    changed: Option<UnboundedSender<()>>,
) -> Store<K>
where
    K: Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let (store, writer) = reflector::store();
    let stream = reflector::reflector(
        writer,
        watcher(api, config)
            .backoff(WatchBackoff::default())
            .modify(trim_metadata::<K>),
    )
    .touched_objects();
    tokio::spawn(async move {
        stream
            .for_each(|event| {
                let changed = changed.clone();
                async move {
                    match event {
                        Err(err) => tracing::warn!(cache = what, error = %err, "watch error"),
                        Ok(_) => {
                            if let Some(changed) = changed {
                                let _ = changed.unbounded_send(());
                            }
                        }
                    }
                }
            })
            .await;
    });
    store
}

/// Waits until `store` has been filled by its first list; `false` if its watch stopped before.
/// kube's ready signal wakes only the last waiter of a store, so this asks again every 250 ms
/// rather than wait once.
pub async fn wait_until_listed<K>(store: &Store<K>) -> bool
where
    K: Resource + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    loop {
        let ready = store.wait_until_ready();
        match tokio::time::timeout(std::time::Duration::from_millis(250), ready).await {
            Ok(Ok(())) => return true,
            Ok(Err(_)) => return false,
            Err(_) => {}
        }
    }
}

/// Every Image of the cluster, as much of each as imports and the collector read. Guarded like every
/// watched kind: an Image the summary cannot be read from (one stored under an older or looser
/// schema, an export from OpenShift) is kept as an error entry instead of failing the whole list.
pub type ImageCache = Store<DeserializeGuard<ImageSummary>>;

/// A stream as the caches and queues name it.
pub type StreamRef = ObjectRef<DeserializeGuard<ImageStream>>;

/// One change of the stream cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamChange {
    /// The stream was created or changed. `for_import` says whether what imports depend on
    /// changed: its spec generation, its import request, its deletion timestamp (or it is new).
    Applied {
        /// The stream.
        stream: StreamRef,
        /// Whether the ImageStream controller must look at it again.
        for_import: bool,
    },
    /// The stream was deleted.
    Deleted {
        /// The stream.
        stream: StreamRef,
    },
}

impl StreamChange {
    /// The stream that changed.
    pub fn stream(&self) -> &StreamRef {
        match self {
            StreamChange::Applied { stream, .. } | StreamChange::Deleted { stream } => stream,
        }
    }
}

/// Per stream: the fingerprint of what imports depend on, and when the watch first saw it.
type Fingerprints = HashMap<StreamRef, (u64, tokio::time::Instant)>;

/// The one cache of ImageStreams, and its fan-out of changes.
#[derive(Clone)]
pub struct StreamCache {
    store: Store<DeserializeGuard<ImageStream>>,
    writer: Arc<Mutex<Option<reflector::store::Writer<DeserializeGuard<ImageStream>>>>>,
    subscribers: Arc<Mutex<Vec<UnboundedSender<StreamChange>>>>,
    fingerprints: Arc<Mutex<Fingerprints>>,
}

impl Default for StreamCache {
    fn default() -> Self {
        Self::new()
    }
}

impl StreamCache {
    /// A cache that fills once [`Self::start`] runs its watch.
    pub fn new() -> Self {
        let (store, writer) = reflector::store();
        Self {
            store,
            writer: Arc::new(Mutex::new(Some(writer))),
            subscribers: Arc::default(),
            fingerprints: Arc::default(),
        }
    }

    /// When the watch first saw what imports depend on in `stream` as it is now (its spec
    /// generation, import request and deletion), if it has seen the stream: the moment a spec
    /// change or a request reached the operator, however long the stream then waited for its
    /// reconcile.
    pub fn changed_at(&self, stream: &StreamRef) -> Option<tokio::time::Instant> {
        self.fingerprints
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(stream)
            .map(|(_, at)| *at)
    }

    /// The store (every stream the watch sees).
    pub fn store(&self) -> Store<DeserializeGuard<ImageStream>> {
        self.store.clone()
    }

    /// A receiver of every change from now on. Subscribe before [`Self::start`] to see the first
    /// list too.
    pub fn subscribe(&self) -> UnboundedReceiver<StreamChange> {
        let (sender, receiver) = unbounded();
        self.subscribers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(sender);
        receiver
    }

    /// Starts the watch of every stream `client` may list (once; later calls do nothing).
    pub fn start(&self, client: Client) {
        let Some(writer) = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take() else {
            return;
        };
        let api = Api::<DeserializeGuard<ImageStream>>::all(client);
        let subscribers = self.subscribers.clone();
        let store = self.store.clone();
        let fingerprints = self.fingerprints.clone();
        let events = reflector::reflector(
            writer,
            watcher(api, watcher::Config::default())
                .backoff(WatchBackoff::default())
                .modify(trim_metadata::<DeserializeGuard<ImageStream>>),
        );
        tokio::spawn(async move {
            let mut events = std::pin::pin!(events);
            while let Some(event) = events.next().await {
                let changes: Vec<StreamChange> = match event {
                    Err(err) => {
                        tracing::warn!(cache = "image-streams", error = %err, "watch error");
                        continue;
                    }
                    Ok(watcher::Event::Apply(stream) | watcher::Event::InitApply(stream)) => {
                        let key = lean_ref(&stream);
                        let fingerprint = import_fingerprint(&stream);
                        let mut fingerprints =
                            fingerprints.lock().unwrap_or_else(|p| p.into_inner());
                        let for_import =
                            fingerprints.get(&key).map(|(f, _)| *f) != Some(fingerprint);
                        if for_import {
                            let seen = tokio::time::Instant::now();
                            fingerprints.insert(key.clone(), (fingerprint, seen));
                        }
                        vec![StreamChange::Applied {
                            stream: key,
                            for_import,
                        }]
                    }
                    Ok(watcher::Event::Delete(stream)) => {
                        let key = lean_ref(&stream);
                        fingerprints
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .remove(&key);
                        vec![StreamChange::Deleted { stream: key }]
                    }
                    Ok(watcher::Event::Init) => Vec::new(),
                    // Streams deleted while the watch was down are gone from the store now.
                    Ok(watcher::Event::InitDone) => {
                        let mut gone = Vec::new();
                        let mut fingerprints =
                            fingerprints.lock().unwrap_or_else(|p| p.into_inner());
                        fingerprints.retain(|key, _| {
                            let kept = store.get(key).is_some();
                            if !kept {
                                gone.push(key.clone());
                            }
                            kept
                        });
                        gone.into_iter()
                            .map(|stream| StreamChange::Deleted { stream })
                            .collect()
                    }
                };
                let mut subscribers = subscribers.lock().unwrap_or_else(|p| p.into_inner());
                subscribers.retain(|subscriber| {
                    changes
                        .iter()
                        .all(|change| subscriber.unbounded_send(change.clone()).is_ok())
                });
            }
        });
    }
}

fn lean_ref(stream: &DeserializeGuard<ImageStream>) -> StreamRef {
    stream_ref(
        stream.meta().namespace.as_deref().unwrap_or_default(),
        stream.meta().name.as_deref().unwrap_or_default(),
    )
}

/// What the ImageStream controller's decisions depend on, apart from status: a stream whose
/// fingerprint is unchanged needs no reconcile of its own (answers wake it when they change).
fn import_fingerprint(stream: &DeserializeGuard<ImageStream>) -> u64 {
    let mut hasher = DefaultHasher::new();
    match &stream.0 {
        Ok(stream) => {
            stream.uid().hash(&mut hasher);
            stream.metadata.generation.hash(&mut hasher);
            stream
                .metadata
                .deletion_timestamp
                .is_some()
                .hash(&mut hasher);
            stream
                .annotations()
                .get(IMPORT_REQUESTED_ANNOTATION)
                .hash(&mut hasher);
        }
        Err(_) => stream.resource_version().hash(&mut hasher),
    }
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::runtime::utils::Backoff as _;

    #[test]
    fn every_watch_retries_within_five_seconds_and_a_half_again_for_jitter_and_starts_over_after_an_event()
     {
        let mut backoff = WatchBackoff::default();
        let waits: Vec<Duration> = backoff.by_ref().take(8).collect();
        for (attempt, wait) in waits.iter().enumerate() {
            let floor = WATCH_RETRY.delay(attempt as u32);
            assert!(
                *wait >= floor && *wait <= floor.mul_f64(1.5),
                "{attempt}: {wait:?}"
            );
        }
        assert!(waits[7] <= Duration::from_millis(7500));
        backoff.reset();
        assert!(backoff.next().unwrap() <= Duration::from_millis(750));
    }
}
