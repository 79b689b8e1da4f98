//! The trigger controller: keeps the container images named by `image.openshift.io/triggers` on apps/v1
//! Deployments, StatefulSets, DaemonSets and batch/v1 CronJobs at the current image of their
//! ImageStream tags. Per workload: fetch (the workload and the streams from caches, a
//! SubjectAccessReview for streams of other namespaces) → plan (`domain::trigger_resolution`) → apply
//! (server-side apply of the image fields only) → Events.
//!
//! One watch of ImageStreams fills a cache shared by every workload kind and wakes, through an index
//! from `namespace/stream` to the workloads whose triggers name it, only the workloads of a changed
//! stream. Each kind runs in its own kube-runtime [`applier`] (the stable form of `Controller` that
//! takes a custom queue) fed by its own watch, which keeps only objects that carry the annotation.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::future::Future;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::channel::mpsc;
use futures::{FutureExt, Stream, StreamExt, future, stream};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::{ObjectReference, PodSpec};
use kube::api::{Patch, PatchParams};
use kube::core::{DeserializeGuard, NamespaceResourceScope};
use kube::runtime::controller::{self, Action, ReconcileReason, ReconcileRequest, trigger_self};
use kube::runtime::events::{Event, EventType, Reporter};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, applier, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use thiserror::Error;

use super::FIELD_MANAGER;
use super::access::ACCESS_RECHECK;
use super::access::{lookup_stream, service_account_may_get_image_streams};
use super::events::EventPublisher;
use super::stores::{
    StreamCache, StreamChange, trim_metadata_keeping_own_fields, wait_until_listed,
};
use crate::api::ImageStream;
use crate::api::triggers::TRIGGERS_ANNOTATION;
use crate::domain::backoff::Backoff;
use crate::domain::trigger_annotation::{
    ContainerList, ImageTrigger, WorkloadKind, locate_containers, parse_annotation,
};
use crate::domain::trigger_resolution::{
    ContainerImage, ImagesApply, PodImages, WantedImage, apply_body, owned_container_images,
    plan_image_apply, resolve_trigger,
};

/// The Event reason of a trigger's image write.
pub const IMAGE_UPDATED_REASON: &str = "ImageUpdated";

/// The Event reason of a cross-namespace trigger whose pod service account may not read the stream.
pub const FORBIDDEN_REASON: &str = "Forbidden";

/// The Event reason of an image write the API server refused (validation, admission).
pub const APPLY_REJECTED_REASON: &str = "ApplyRejected";

/// The wait before a workload whose reconcile failed is tried again.
const RETRY: Backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(300));

/// Transient failures of a trigger reconcile; the workload is retried with per-object backoff.
#[derive(Debug, Error)]
pub enum ReconcileError {
    /// The server-side apply of the images failed for a reason that may pass (network, 5xx, 429).
    #[error("could not write the triggered images of {workload}: {source}")]
    ApplyImages {
        /// `Kind namespace/name` of the workload.
        workload: String,
        /// The API error.
        source: kube::Error,
    },
    /// The SubjectAccessReview for a cross-namespace trigger could not be made.
    #[error(
        "could not check whether service account {service_account} may get image stream \
         {namespace}/{stream}: {source}"
    )]
    AccessReview {
        /// `namespace:name` of the pod service account.
        service_account: String,
        /// The stream's namespace.
        namespace: String,
        /// The stream's name.
        stream: String,
        /// The API error.
        source: kube::Error,
    },
    /// The reconcile panicked (a bug): this workload is retried with backoff, the others go on.
    #[error("the triggers of {workload} failed on an internal error: {message}")]
    Panicked {
        /// `Kind namespace/name` of the workload.
        workload: String,
        /// The panic message.
        message: String,
    },
}

impl ReconcileError {
    /// The PascalCase word for logs, Events and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::ApplyImages { .. } => "ApplyFailed",
            Self::AccessReview { .. } => "AccessReviewFailed",
            Self::Panicked { .. } => "InternalError",
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// Workload kinds
// ---------------------------------------------------------------------------------------------------

/// A workload type the controller keeps triggers on: its [`WorkloadKind`] and where its pod spec is.
pub trait TriggeredWorkload:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + DeserializeOwned
    + fmt::Debug
    + Send
    + Sync
    + 'static
{
    /// The kind, which fixes the pod spec path of trigger field paths.
    const KIND: WorkloadKind;

    /// The spec of the pod template, if the object has one.
    fn pod_spec(&self) -> Option<&PodSpec>;

    /// The same, to change.
    fn pod_spec_mut(&mut self) -> Option<&mut PodSpec>;

    /// Drops the status, which the controller never reads.
    fn drop_status(&mut self);
}

impl TriggeredWorkload for Deployment {
    const KIND: WorkloadKind = WorkloadKind::Deployment;

    fn pod_spec(&self) -> Option<&PodSpec> {
        self.spec.as_ref()?.template.spec.as_ref()
    }

    fn pod_spec_mut(&mut self) -> Option<&mut PodSpec> {
        self.spec.as_mut()?.template.spec.as_mut()
    }

    fn drop_status(&mut self) {
        self.status = None;
    }
}

impl TriggeredWorkload for StatefulSet {
    const KIND: WorkloadKind = WorkloadKind::StatefulSet;

    fn pod_spec(&self) -> Option<&PodSpec> {
        self.spec.as_ref()?.template.spec.as_ref()
    }

    fn pod_spec_mut(&mut self) -> Option<&mut PodSpec> {
        self.spec.as_mut()?.template.spec.as_mut()
    }

    fn drop_status(&mut self) {
        self.status = None;
    }
}

impl TriggeredWorkload for DaemonSet {
    const KIND: WorkloadKind = WorkloadKind::DaemonSet;

    fn pod_spec(&self) -> Option<&PodSpec> {
        self.spec.as_ref()?.template.spec.as_ref()
    }

    fn pod_spec_mut(&mut self) -> Option<&mut PodSpec> {
        self.spec.as_mut()?.template.spec.as_mut()
    }

    fn drop_status(&mut self) {
        self.status = None;
    }
}

impl TriggeredWorkload for CronJob {
    const KIND: WorkloadKind = WorkloadKind::CronJob;

    fn pod_spec(&self) -> Option<&PodSpec> {
        self.spec
            .as_ref()?
            .job_template
            .spec
            .as_ref()?
            .template
            .spec
            .as_ref()
    }

    fn pod_spec_mut(&mut self) -> Option<&mut PodSpec> {
        self.spec
            .as_mut()?
            .job_template
            .spec
            .as_mut()?
            .template
            .spec
            .as_mut()
    }

    fn drop_status(&mut self) {
        self.status = None;
    }
}

/// Cuts a cached pod spec down to what triggers read: the names and images of containers and
/// init containers, and the service account. A workload's cache entry then costs its triggers,
/// not its environment, volumes and probes.
fn slim_pod_spec(spec: &mut PodSpec) {
    let keep =
        |container: &k8s_openapi::api::core::v1::Container| k8s_openapi::api::core::v1::Container {
            name: container.name.clone(),
            image: container.image.clone(),
            ..Default::default()
        };
    *spec = PodSpec {
        containers: spec.containers.iter().map(keep).collect(),
        init_containers: spec
            .init_containers
            .as_ref()
            .map(|containers| containers.iter().map(keep).collect()),
        service_account_name: spec.service_account_name.take(),
        service_account: spec.service_account.take(),
        ..PodSpec::default()
    };
}

/// The names and images of a pod spec's containers.
fn pod_images(spec: Option<&PodSpec>) -> PodImages {
    let images = |containers: &[k8s_openapi::api::core::v1::Container]| {
        containers
            .iter()
            .map(|c| ContainerImage {
                name: c.name.clone(),
                image: c.image.clone().unwrap_or_default(),
            })
            .collect()
    };
    PodImages {
        containers: spec.map(|s| images(&s.containers)).unwrap_or_default(),
        init_containers: spec
            .and_then(|s| s.init_containers.as_deref())
            .map(images)
            .unwrap_or_default(),
    }
}

/// Whether the API server serves batch/v1 CronJob (Kubernetes 1.21 and later), asked by discovery.
pub async fn serves_cron_jobs(client: &Client) -> Result<bool, kube::Error> {
    match client.list_api_group_resources("batch/v1").await {
        Ok(list) => Ok(list.resources.iter().any(|r| r.name == "cronjobs")),
        Err(kube::Error::Api(status)) if status.is_not_found() => Ok(false),
        Err(err) => Err(err),
    }
}

// ---------------------------------------------------------------------------------------------------
// The index from streams to workloads
// ---------------------------------------------------------------------------------------------------

/// One workload, as the index and the logs name it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct WorkloadKey {
    kind: WorkloadKind,
    namespace: String,
    name: String,
}

impl fmt::Display for WorkloadKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
    }
}

/// Which workloads name which streams (`namespace/stream`) in their acting triggers.
#[derive(Debug, Default)]
struct StreamIndex {
    by_stream: HashMap<String, HashSet<WorkloadKey>>,
    by_workload: HashMap<WorkloadKey, HashSet<String>>,
}

impl StreamIndex {
    /// Records that `workload` follows exactly `streams` now.
    fn set(&mut self, workload: &WorkloadKey, streams: HashSet<String>) {
        if self.by_workload.get(workload) == Some(&streams) {
            return;
        }
        self.remove(workload);
        if streams.is_empty() {
            return;
        }
        for stream in &streams {
            self.by_stream
                .entry(stream.clone())
                .or_default()
                .insert(workload.clone());
        }
        self.by_workload.insert(workload.clone(), streams);
    }

    /// Forgets `workload`.
    fn remove(&mut self, workload: &WorkloadKey) {
        for stream in self.by_workload.remove(workload).unwrap_or_default() {
            if let Some(workloads) = self.by_stream.get_mut(&stream) {
                workloads.remove(workload);
                if workloads.is_empty() {
                    self.by_stream.remove(&stream);
                }
            }
        }
    }

    /// The workloads that follow `stream`.
    fn workloads_of(&self, stream: &str) -> Vec<WorkloadKey> {
        self.by_stream
            .get(stream)
            .map(|workloads| workloads.iter().cloned().collect())
            .unwrap_or_default()
    }
}

// ---------------------------------------------------------------------------------------------------
// Shared state
// ---------------------------------------------------------------------------------------------------

/// What the controller remembers about one workload (by uid); cheap to lose on restart.
#[derive(Debug, Default)]
struct WorkloadMemory {
    /// Fingerprints of the problems present at the last reconcile, each already reported once.
    reported: HashSet<u64>,
    /// Consecutive failed reconciles, for backoff.
    failures: u32,
    /// Consecutive reconciles with a refused cross-namespace trigger, for the recheck delay.
    refusals: u32,
}

/// A problem with a workload's triggers, reported as one Warning Event while it lasts.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Problem {
    reason: String,
    note: String,
    /// The trigger's field path when the problem is one trigger's.
    field_path: Option<String>,
}

/// Everything the reconciles of every kind share.
struct Shared {
    client: Client,
    events: EventPublisher,
    /// Where trigger writes are counted, when the operator exports metrics.
    metrics: Option<Arc<crate::metrics::Metrics>>,
    internal_registry_host: Option<String>,
    streams: Store<DeserializeGuard<ImageStream>>,
    index: Mutex<StreamIndex>,
    memory: Mutex<HashMap<String, WorkloadMemory>>,
    /// Reconciles in flight per workload kind.
    concurrency: usize,
}

impl Shared {
    fn index(&self) -> MutexGuard<'_, StreamIndex> {
        self.index.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn memory(&self) -> MutexGuard<'_, HashMap<String, WorkloadMemory>> {
        self.memory.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Forgets a workload that was deleted or lost its annotation.
    fn forget(&self, key: &WorkloadKey, uid: Option<&str>) {
        self.index().remove(key);
        if let Some(uid) = uid {
            self.memory().remove(uid);
        }
    }

    /// Counts a failed reconcile and returns the number of failures before it.
    fn record_failure(&self, uid: &str) -> u32 {
        let mut memory = self.memory();
        let entry = memory.entry(uid.to_owned()).or_default();
        entry.failures += 1;
        entry.failures - 1
    }

    /// The delay before a refused cross-namespace trigger is checked again (or `None` when no trigger
    /// was refused, which resets the delay).
    fn access_recheck(&self, uid: &str, refused: bool) -> Option<Duration> {
        let mut memory = self.memory();
        if !refused {
            if let Some(entry) = memory.get_mut(uid) {
                entry.refusals = 0;
            }
            return None;
        }
        let entry = memory.entry(uid.to_owned()).or_default();
        let delay = ACCESS_RECHECK.delay(entry.refusals);
        entry.refusals = entry.refusals.saturating_add(1);
        Some(delay)
    }

    /// Publishes one Warning Event per problem that was not present at the previous reconcile of the
    /// workload with the same annotation value, and remembers the present ones: a resync or an
    /// unrelated update never repeats an Event; a problem that goes away and comes back is reported
    /// again.
    async fn report<K: Resource<DynamicType = ()>>(
        &self,
        workload: &K,
        uid: &str,
        annotation: &str,
        problems: Vec<Problem>,
    ) {
        let present: Vec<(u64, Problem)> = problems
            .into_iter()
            .map(|problem| {
                let mut hasher = DefaultHasher::new();
                (annotation, &problem).hash(&mut hasher);
                (hasher.finish(), problem)
            })
            .collect();
        let fresh: Vec<(u64, Problem)> = {
            let mut memory = self.memory();
            if present.is_empty() && !memory.contains_key(uid) {
                return;
            }
            let entry = memory.entry(uid.to_owned()).or_default();
            let fresh = present
                .iter()
                .filter(|(fingerprint, _)| !entry.reported.contains(fingerprint))
                .cloned()
                .collect();
            entry.reported = present
                .iter()
                .map(|(fingerprint, _)| *fingerprint)
                .collect();
            fresh
        };
        for (fingerprint, problem) in fresh {
            let mut reference = workload.object_ref(&());
            reference.field_path = problem.field_path.clone();
            let event = Event {
                type_: EventType::Warning,
                reason: problem.reason.clone(),
                note: Some(problem.note.clone()),
                action: "ApplyTriggers".into(),
                secondary: None,
            };
            if let Err(err) = self.events.publish(&event, &reference).await {
                tracing::warn!(error = %err, reason = %problem.reason, "could not publish a Warning Event; it is tried again at the next reconcile");
                if let Some(entry) = self.memory().get_mut(uid) {
                    entry.reported.remove(&fingerprint);
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// Running
// ---------------------------------------------------------------------------------------------------

/// Settings of the trigger controller.
#[derive(Debug, Clone, Default)]
pub struct TriggerSettings {
    /// Watch only this namespace's workloads (streams are always watched in every namespace).
    pub namespace: Option<String>,
    /// The operator's `--internal-registry-hostname`, for `referencePolicy: Local` tags.
    pub internal_registry_host: Option<String>,
    /// This replica's name in the Events it publishes.
    pub instance: Option<String>,
    /// Where trigger writes are counted, when the operator exports metrics.
    pub metrics: Option<Arc<crate::metrics::Metrics>>,
    /// Reconciles in flight per workload kind (0: the default).
    pub concurrency: usize,
}

/// Runs the trigger controller until `shutdown` resolves.
///
/// With `settings.namespace`, only workloads of that namespace are watched; ImageStreams are
/// always watched in every namespace, because a trigger may name a stream of another namespace
/// (honoured only when the workload's pod service account may `get` it). `streams` is the
/// operator's shared stream cache (started by its owner); without one the controller watches
/// streams itself. batch/v1 CronJobs are watched only when the API server serves them (discovery
/// at start). `synced` is told once every cache has been listed.
pub async fn run_trigger_controller(
    client: Client,
    settings: TriggerSettings,
    streams: Option<StreamCache>,
    synced: Option<tokio::sync::oneshot::Sender<()>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    // One shutdown signal, fanned out to the stream watch and every workload kind.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }
    };

    let cron_jobs = match serves_cron_jobs(&client).await {
        Ok(served) => served,
        Err(err) => {
            tracing::warn!(error = %err, "could not discover whether the API server serves batch/v1 CronJob");
            false
        }
    };
    if !cron_jobs {
        tracing::info!(
            "CronJob triggers are off: the API server does not serve batch/v1 CronJob (Kubernetes 1.21 and later do)"
        );
    }

    let own_cache = streams.is_none();
    let cache = streams.unwrap_or_default();
    let stream_changes = cache.subscribe();
    if own_cache {
        cache.start(client.clone());
    }
    let streams = cache.store();
    let concurrency = match settings.concurrency {
        0 => crate::controller::context::Concurrency::default().triggers,
        n => n,
    };
    let shared = Arc::new(Shared {
        events: EventPublisher::new(
            client.clone(),
            Reporter {
                controller: FIELD_MANAGER.into(),
                instance: settings.instance,
            },
        ),
        client,
        metrics: settings.metrics,
        internal_registry_host: settings.internal_registry_host,
        streams: streams.clone(),
        index: Mutex::new(StreamIndex::default()),
        memory: Mutex::new(HashMap::new()),
        concurrency,
    });

    let mut wakers = HashMap::new();
    let mut listed = Vec::new();
    let ns = settings.namespace.as_deref();
    let mut kinds = vec![
        run_kind::<Deployment>(&shared, ns, &mut wakers, &mut listed, stopped()).boxed(),
        run_kind::<StatefulSet>(&shared, ns, &mut wakers, &mut listed, stopped()).boxed(),
        run_kind::<DaemonSet>(&shared, ns, &mut wakers, &mut listed, stopped()).boxed(),
    ];
    if cron_jobs {
        kinds.push(run_kind::<CronJob>(&shared, ns, &mut wakers, &mut listed, stopped()).boxed());
    }
    tokio::spawn(wake_on_stream_changes(
        stream_changes,
        shared.clone(),
        wakers,
        stopped(),
    ));
    // Workloads are first reconciled against a complete stream cache, so that no trigger looks
    // unresolvable only because its stream has not been listed yet.
    tokio::select! {
        _ = wait_until_listed(&streams) => {}
        _ = stopped() => return,
    }
    tracing::info!(
        namespace = ns.unwrap_or("*"),
        cron_jobs,
        "trigger controller started"
    );
    if let Some(synced) = synced {
        tokio::spawn(async move {
            future::join_all(listed).await;
            let _ = synced.send(());
        });
    }
    future::join_all(kinds).await;
}

/// Wakes, for every changed (or deleted) ImageStream, the workloads whose triggers name it.
async fn wake_on_stream_changes(
    changes: impl Stream<Item = StreamChange>,
    shared: Arc<Shared>,
    wakers: HashMap<WorkloadKind, mpsc::UnboundedSender<(String, String)>>,
    stop: impl Future<Output = ()>,
) {
    let mut changes = std::pin::pin!(changes.take_until(stop));
    while let Some(change) = changes.next().await {
        let stream = change.stream();
        let key = format!(
            "{}/{}",
            stream.namespace.as_deref().unwrap_or_default(),
            stream.name
        );
        for workload in shared.index().workloads_of(&key) {
            if let Some(waker) = wakers.get(&workload.kind) {
                let _ = waker.unbounded_send((workload.namespace, workload.name));
            }
        }
    }
}

/// The reconcile loop of one workload kind: its watch (annotated objects only) and the wake-ups from
/// stream changes, into one applier.
fn run_kind<K: TriggeredWorkload>(
    shared: &Arc<Shared>,
    namespace: Option<&str>,
    wakers: &mut HashMap<WorkloadKind, mpsc::UnboundedSender<(String, String)>>,
    listed: &mut Vec<future::BoxFuture<'static, ()>>,
    stop: impl Future<Output = ()> + Send + 'static,
) -> impl Future<Output = ()> + Send + 'static {
    let (waker, woken) = mpsc::unbounded::<(String, String)>();
    wakers.insert(K::KIND, waker);
    let api: Api<DeserializeGuard<K>> = match namespace {
        Some(ns) => Api::namespaced(shared.client.clone(), ns),
        None => Api::all(shared.client.clone()),
    };
    let (store, writer) = reflector::store();
    let listed_store = store.clone();
    listed.push(
        async move {
            wait_until_listed(&listed_store).await;
        }
        .boxed(),
    );
    let filter_shared = shared.clone();
    let own_changes = watcher(api, watcher::Config::default())
        .backoff(super::stores::WatchBackoff::default())
        .filter_map(move |event| {
            future::ready(match event {
                Ok(event) => keep_triggered(&filter_shared, event).map(Ok),
                Err(err) => Some(Err(err)),
            })
        })
        .reflect(writer)
        .applied_objects();
    let index_shared = shared.clone();
    let woken_store = store.clone();
    let stream_wakes = woken.filter_map(move |(namespace, name)| {
        let obj_ref = ObjectRef::<DeserializeGuard<K>>::new(&name).within(&namespace);
        let request = if woken_store.get(&obj_ref).is_some() {
            Some(Ok(ReconcileRequest {
                obj_ref,
                reason: ReconcileReason::Custom {
                    reason: "image stream changed".into(),
                },
            }))
        } else {
            // Deleted while the index still named it.
            index_shared.index().remove(&WorkloadKey {
                kind: K::KIND,
                namespace,
                name,
            });
            None
        };
        future::ready(request)
    });
    let queue = stream::select(trigger_self(own_changes, ()), stream_wakes).take_until(stop);
    let concurrency = shared.concurrency;
    let shared = shared.clone();
    async move {
        applier(
            |workload, shared| Box::pin(counted_reconcile::<K>(workload, shared)),
            error_policy::<K>,
            shared,
            store,
            queue,
            controller::Config::default().concurrency(concurrency as u16),
        )
        .for_each(|result| async move {
            match result {
                Ok(_) | Err(controller::Error::ObjectNotFound(_)) => {}
                Err(controller::Error::QueueError(err)) => {
                    tracing::warn!(kind = %K::KIND, error = %err, "workload watch error")
                }
                Err(err) => tracing::debug!(kind = %K::KIND, error = %err, "trigger reconcile ended with an error"),
            }
        })
        .await;
    }
}

/// Keeps the watch events of objects that carry the trigger annotation, with only the operator's own
/// managed-fields entry, so the cache holds what the reconcile reads and no more. An object that lost
/// the annotation leaves the cache as if deleted.
fn keep_triggered<K: TriggeredWorkload>(
    shared: &Shared,
    event: watcher::Event<DeserializeGuard<K>>,
) -> Option<watcher::Event<DeserializeGuard<K>>> {
    use watcher::Event::*;
    let has_triggers = |object: &DeserializeGuard<K>| {
        object
            .meta()
            .annotations
            .as_ref()
            .is_some_and(|a| a.contains_key(TRIGGERS_ANNOTATION))
    };
    let slim = |mut object: DeserializeGuard<K>| {
        trim_metadata_keeping_own_fields(&mut object);
        if let Ok(workload) = object.0.as_mut() {
            workload.drop_status();
            if let Some(spec) = workload.pod_spec_mut() {
                slim_pod_spec(spec);
            }
        }
        object
    };
    match event {
        Apply(object) if has_triggers(&object) => Some(Apply(slim(object))),
        InitApply(object) if has_triggers(&object) => Some(InitApply(slim(object))),
        InitApply(_) => None,
        Apply(object) | Delete(object) => {
            let key = WorkloadKey {
                kind: K::KIND,
                namespace: object.namespace().unwrap_or_default(),
                name: object.name_any(),
            };
            shared.forget(&key, object.meta().uid.as_deref());
            Some(Delete(object))
        }
        Init => Some(Init),
        InitDone => Some(InitDone),
    }
}

// ---------------------------------------------------------------------------------------------------
// Reconcile
// ---------------------------------------------------------------------------------------------------

/// [`reconcile`], timed and counted in the operator's metrics.
async fn counted_reconcile<K: TriggeredWorkload>(
    guard: Arc<DeserializeGuard<K>>,
    shared: Arc<Shared>,
) -> Result<Action, ReconcileError> {
    let started = std::time::Instant::now();
    let workload = format!("{} {}", K::KIND, super::context::object_key(&*guard));
    let result = match super::supervisor::catch_panic(reconcile::<K>(guard, shared.clone())).await {
        Ok(result) => result,
        Err(message) => Err(ReconcileError::Panicked { workload, message }),
    };
    if let Some(metrics) = &shared.metrics {
        metrics.observe_reconcile(
            crate::metrics::TRIGGER_CONTROLLER,
            started.elapsed(),
            result.as_ref().err().map(|err| err.reason()),
        );
    }
    result
}

/// Reconciles the triggers of one workload.
async fn reconcile<K: TriggeredWorkload>(
    guard: Arc<DeserializeGuard<K>>,
    shared: Arc<Shared>,
) -> Result<Action, ReconcileError> {
    let key = WorkloadKey {
        kind: K::KIND,
        namespace: guard.namespace().unwrap_or_default(),
        name: guard.name_any(),
    };
    let workload = match &guard.0 {
        Ok(workload) => workload,
        Err(invalid) => {
            tracing::warn!(workload = %key, error = %invalid, "skipping a workload that does not match its schema");
            return Ok(Action::await_change());
        }
    };
    if workload.meta().deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let uid = workload.uid().unwrap_or_else(|| key.to_string());
    let Some(annotation) = workload.annotations().get(TRIGGERS_ANNOTATION) else {
        shared.forget(&key, Some(&uid));
        return Ok(Action::await_change());
    };

    // Plan: parse and locate. A malformed annotation changes nothing on the workload.
    let pod = pod_images(workload.pod_spec());
    let located = parse_annotation(annotation, K::KIND, &key.namespace).and_then(|triggers| {
        let locations = locate_containers(
            &triggers,
            &pod.names(ContainerList::Containers),
            &pod.names(ContainerList::InitContainers),
        )?;
        Ok(triggers.into_iter().zip(locations).collect::<Vec<_>>())
    });
    let triggers = match located {
        Ok(triggers) => triggers,
        Err(error) => {
            shared.index().remove(&key);
            let problem = Problem {
                reason: error.reason().to_owned(),
                note: format!("{TRIGGERS_ANNOTATION} is ignored: {error}"),
                field_path: None,
            };
            tracing::info!(workload = %key, reason = error.reason(), %error, "malformed trigger annotation");
            shared
                .report(workload, &uid, annotation, vec![problem])
                .await;
            shared.access_recheck(&uid, false);
            reset_failures(&shared, &uid);
            return Ok(Action::await_change());
        }
    };
    let acting: Vec<&(ImageTrigger, _)> = triggers.iter().filter(|(t, _)| !t.paused).collect();
    shared.index().set(
        &key,
        acting
            .iter()
            .map(|(t, _)| format!("{}/{}", t.namespace, t.stream))
            .collect(),
    );

    // Fetch and resolve: streams from the cache, access to other namespaces from the API server.
    let service_account = workload
        .pod_spec()
        .and_then(|spec| {
            spec.service_account_name
                .clone()
                .or_else(|| spec.service_account.clone())
        })
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "default".to_owned());
    let mut problems = Vec::new();
    let mut access: HashMap<(String, String), bool> = HashMap::new();
    let mut wanted: Vec<(WantedImage, &ImageTrigger)> = Vec::new();
    for (trigger, location) in acting {
        if trigger.namespace != key.namespace {
            let stream_key = (trigger.namespace.clone(), trigger.stream.clone());
            let allowed = match access.get(&stream_key) {
                Some(allowed) => *allowed,
                None => {
                    let allowed =
                        may_get_stream(&shared.client, &key.namespace, &service_account, trigger)
                            .await?;
                    access.insert(stream_key, allowed);
                    allowed
                }
            };
            if !allowed {
                problems.push(Problem {
                    reason: FORBIDDEN_REASON.into(),
                    note: format!(
                        "trigger on {}:{} in namespace {} is skipped: service account {}/{service_account} may not get imagestreams there",
                        trigger.stream, trigger.tag, trigger.namespace, key.namespace
                    ),
                    field_path: Some(trigger.field_path.to_string()),
                });
                continue;
            }
        }
        let stream = lookup_stream(&shared.streams, &trigger.namespace, &trigger.stream);
        match resolve_trigger(
            trigger,
            stream.as_ref(),
            shared.internal_registry_host.as_deref(),
        ) {
            Ok(image) => wanted.push((
                WantedImage {
                    location: *location,
                    image,
                },
                trigger,
            )),
            Err(why) => {
                tracing::debug!(workload = %key, reason = why.reason(), "trigger skipped: {why}")
            }
        }
    }
    let refused = problems.iter().any(|p| p.reason == FORBIDDEN_REASON);

    // Apply: only when an image differs; the apply carries every image the operator owns.
    let owned = owned_container_images(
        workload
            .meta()
            .managed_fields
            .as_deref()
            .unwrap_or_default(),
        FIELD_MANAGER,
        K::KIND,
    );
    let images: Vec<WantedImage> = wanted.iter().map(|(w, _)| w.clone()).collect();
    let mut action = Action::await_change();
    if let Some(plan) = plan_image_apply(&pod, &images, &owned) {
        match apply_images::<K>(&shared, &key, workload, &plan).await {
            Ok(()) => publish_changes(&shared, workload, &plan, &pod, &wanted).await,
            Err(kube::Error::Api(status)) if status.is_conflict() => {
                // The workload changed since it was cached; the watch brings the new version.
                tracing::debug!(workload = %key, "workload changed while its images were planned");
                action = Action::requeue(Duration::from_secs(1));
            }
            Err(kube::Error::Api(status)) if status.is_not_found() => {
                return Ok(Action::await_change());
            }
            Err(kube::Error::Api(status))
                if (400..500).contains(&status.code) && status.code != 429 =>
            {
                tracing::warn!(workload = %key, code = status.code, message = %status.message, "the API server refused the image write");
                problems.push(Problem {
                    reason: APPLY_REJECTED_REASON.into(),
                    note: format!(
                        "could not write {}: {}",
                        plan.changes
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join(", "),
                        status.message
                    ),
                    field_path: None,
                });
            }
            Err(source) => {
                return Err(ReconcileError::ApplyImages {
                    workload: key.to_string(),
                    source,
                });
            }
        }
    }
    shared.report(workload, &uid, annotation, problems).await;
    if let Some(recheck) = shared.access_recheck(&uid, refused) {
        action = Action::requeue(recheck);
    }
    reset_failures(&shared, &uid);
    Ok(action)
}

/// Writes `plan` with server-side apply under the operator's field manager, forcing ownership of the
/// image fields, on the version of the workload the plan was made from.
async fn apply_images<K: TriggeredWorkload>(
    shared: &Shared,
    key: &WorkloadKey,
    workload: &K,
    plan: &ImagesApply,
) -> Result<(), kube::Error> {
    let body = apply_body(
        K::KIND,
        &key.name,
        workload.meta().resource_version.as_deref(),
        plan,
    );
    // The answer is read through the guard: a response our types cannot read is still a success.
    Api::<DeserializeGuard<K>>::namespaced(shared.client.clone(), &key.namespace)
        .patch(
            &key.name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&body),
        )
        .await?;
    if let Some(metrics) = &shared.metrics {
        metrics.count_trigger_write(K::KIND.kind());
    }
    tracing::info!(
        workload = %key,
        changes = %plan.changes.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "),
        "triggered images written"
    );
    Ok(())
}

/// One Normal Event per changed image, on the workload's field path of that container, related to the
/// image stream.
async fn publish_changes<K: TriggeredWorkload>(
    shared: &Shared,
    workload: &K,
    plan: &ImagesApply,
    pod: &PodImages,
    wanted: &[(WantedImage, &ImageTrigger)],
) {
    for change in &plan.changes {
        let trigger = wanted.iter().find_map(|(want, trigger)| {
            let container = pod.get(want.location)?;
            (want.location.list == change.list && container.name == change.container)
                .then_some(*trigger)
        });
        let mut regarding = workload.object_ref(&());
        regarding.field_path = trigger.map(|t| t.field_path.to_string());
        let secondary = trigger.map(|t| ObjectReference {
            api_version: Some("image.openshift.io/v1".into()),
            kind: Some("ImageStream".into()),
            namespace: Some(t.namespace.clone()),
            name: Some(t.stream.clone()),
            ..ObjectReference::default()
        });
        let event = Event {
            type_: EventType::Normal,
            reason: IMAGE_UPDATED_REASON.into(),
            note: Some(change.to_string()),
            action: "ApplyTriggers".into(),
            secondary,
        };
        if let Err(err) = shared.events.publish(&event, &regarding).await {
            tracing::warn!(error = %err, "could not publish an Event");
        }
    }
}

fn reset_failures(shared: &Shared, uid: &str) {
    if let Some(entry) = shared.memory().get_mut(uid) {
        entry.failures = 0;
    }
}

/// Whether the workload's pod service account may `get` the trigger's image stream (in another
/// namespace): the rights the pods would need to read it themselves. OpenShift skips this check and
/// acts with the controller's own rights; a tenant could then follow any namespace's streams.
async fn may_get_stream(
    client: &Client,
    namespace: &str,
    service_account: &str,
    trigger: &ImageTrigger,
) -> Result<bool, ReconcileError> {
    service_account_may_get_image_streams(
        client,
        namespace,
        service_account,
        &trigger.namespace,
        Some(&trigger.stream),
    )
    .await
    .map_err(|source| ReconcileError::AccessReview {
        service_account: format!("{namespace}:{service_account}"),
        namespace: trigger.namespace.clone(),
        stream: trigger.stream.clone(),
        source,
    })
}

/// Backoff for reconciles that returned an error: 1s, 2s, 4s, … up to 5 minutes, per workload.
fn error_policy<K: TriggeredWorkload>(
    guard: Arc<DeserializeGuard<K>>,
    error: &ReconcileError,
    shared: Arc<Shared>,
) -> Action {
    let uid = guard.meta().uid.clone().unwrap_or_default();
    let attempts = shared.record_failure(&uid);
    let delay = RETRY.delay(attempts);
    tracing::warn!(
        workload = %format!("{} {}/{}", K::KIND, guard.namespace().unwrap_or_default(), guard.name_any()),
        reason = error.reason(),
        %error,
        attempts,
        retry_in = ?delay,
        "trigger reconcile failed"
    );
    Action::requeue(delay)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workload(name: &str) -> WorkloadKey {
        WorkloadKey {
            kind: WorkloadKind::Deployment,
            namespace: "app".into(),
            name: name.into(),
        }
    }

    fn streams(names: &[&str]) -> HashSet<String> {
        names.iter().map(|n| (*n).to_owned()).collect()
    }

    #[test]
    fn a_stream_wakes_only_the_workloads_that_follow_it() {
        let mut index = StreamIndex::default();
        index.set(&workload("a"), streams(&["app/web", "shared/base"]));
        index.set(&workload("b"), streams(&["app/web"]));
        let mut woken = index.workloads_of("app/web");
        woken.sort_by(|x, y| x.name.cmp(&y.name));
        assert_eq!(woken, vec![workload("a"), workload("b")]);
        assert_eq!(index.workloads_of("shared/base"), vec![workload("a")]);
        assert!(index.workloads_of("app/other").is_empty());
    }

    #[test]
    fn changing_or_removing_triggers_updates_the_index() {
        let mut index = StreamIndex::default();
        index.set(&workload("a"), streams(&["app/web"]));
        index.set(&workload("a"), streams(&["app/api"]));
        assert!(index.workloads_of("app/web").is_empty());
        assert_eq!(index.workloads_of("app/api"), vec![workload("a")]);
        index.set(&workload("a"), HashSet::new());
        assert!(index.workloads_of("app/api").is_empty());
        index.set(&workload("b"), streams(&["app/web"]));
        index.remove(&workload("b"));
        assert!(index.by_stream.is_empty() && index.by_workload.is_empty());
    }

    #[test]
    fn the_same_kind_and_name_in_two_namespaces_are_two_workloads() {
        let mut index = StreamIndex::default();
        let other = WorkloadKey {
            namespace: "other".into(),
            ..workload("a")
        };
        let stateful = WorkloadKey {
            kind: WorkloadKind::StatefulSet,
            ..workload("a")
        };
        index.set(&workload("a"), streams(&["shared/web"]));
        index.set(&other, streams(&["shared/web"]));
        index.set(&stateful, streams(&["shared/web"]));
        assert_eq!(index.workloads_of("shared/web").len(), 3);
        index.remove(&other);
        assert_eq!(index.workloads_of("shared/web").len(), 2);
    }

    #[test]
    fn retries_and_access_rechecks_double_up_to_their_caps() {
        let delays: Vec<u64> = (0..12).map(|a| RETRY.delay(a).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]);
        assert_eq!(ACCESS_RECHECK.delay(u32::MAX), ACCESS_RECHECK.max);
    }

    #[test]
    fn a_cached_pod_spec_keeps_only_what_triggers_read() {
        let mut spec: PodSpec = serde_json::from_value(serde_json::json!({
            "serviceAccountName": "app",
            "initContainers": [{"name": "migrate", "image": "m", "command": ["migrate"]}],
            "containers": [{
                "name": "web", "image": "w",
                "env": [{"name": "A", "value": "1"}],
                "ports": [{"containerPort": 80}],
            }],
            "volumes": [{"name": "data", "emptyDir": {}}],
            "nodeSelector": {"disk": "ssd"},
        }))
        .unwrap();
        slim_pod_spec(&mut spec);
        assert_eq!(
            serde_json::to_value(&spec).unwrap(),
            serde_json::json!({
                "serviceAccountName": "app",
                "initContainers": [{"name": "migrate", "image": "m"}],
                "containers": [{"name": "web", "image": "w"}],
            })
        );
    }

    #[test]
    fn pod_images_read_both_container_lists_in_order() {
        let spec: PodSpec = serde_json::from_value(serde_json::json!({
            "initContainers": [{"name": "migrate", "image": "m"}],
            "containers": [{"name": "web", "image": " "}, {"name": "sidecar"}]
        }))
        .unwrap();
        let pod = pod_images(Some(&spec));
        assert_eq!(pod.names(ContainerList::Containers), ["web", "sidecar"]);
        assert_eq!(pod.containers[0].image, " ");
        assert_eq!(pod.containers[1].image, "");
        assert_eq!(pod.names(ContainerList::InitContainers), ["migrate"]);
        assert_eq!(pod_images(None), PodImages::default());
    }

    #[test]
    fn every_kind_finds_its_pod_spec() {
        let pod = serde_json::json!({"containers": [{"name": "web", "image": "x"}]});
        let template = serde_json::json!({"spec": pod});
        let deployment: Deployment = serde_json::from_value(
            serde_json::json!({"spec": {"selector": {}, "template": template}}),
        )
        .unwrap();
        let stateful: StatefulSet = serde_json::from_value(serde_json::json!({
            "spec": {"selector": {}, "serviceName": "s", "template": template}
        }))
        .unwrap();
        let daemon: DaemonSet = serde_json::from_value(
            serde_json::json!({"spec": {"selector": {}, "template": template}}),
        )
        .unwrap();
        let cron: CronJob = serde_json::from_value(serde_json::json!({
            "spec": {"schedule": "@daily", "jobTemplate": {"spec": {"template": template}}}
        }))
        .unwrap();
        for spec in [
            deployment.pod_spec(),
            stateful.pod_spec(),
            daemon.pod_spec(),
            cron.pod_spec(),
        ] {
            assert_eq!(spec.unwrap().containers[0].name, "web");
        }
        assert!(Deployment::default().pod_spec().is_none());
        assert!(CronJob::default().pod_spec().is_none());
    }
}
