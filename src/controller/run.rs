//! Starts the controllers: the caches they read (Images, pull secrets, ImageStreams) and the
//! ImageStream controller, until a shutdown signal. What they count and whether their caches have
//! synced is reported through [`Telemetry`] to the HTTP server.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::core::DeserializeGuard;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{Controller, WatchStreamExt, watcher};
use kube::{Api, Client};

use super::image_stream::{ReconcileError, error_policy, reconcile};
use super::mirrors::{MirrorState, MirrorStores};
use super::{Context, ControllerConfig};
use crate::api::{
    Image, ImageContentSourcePolicy, ImageDigestMirrorSet, ImageStream, ImageTagMirrorSet,
};
use crate::domain::keyring::PullSecretFormat;
use crate::metrics::{IMAGE_STREAM_CONTROLLER, Metrics};
use crate::registry::RegistryClient;
use crate::server::Health;
use futures::channel::mpsc::UnboundedSender;

/// Spawns a reflector for `api` filtered by `config` and returns its store.
fn spawn_reflector<K>(api: Api<K>, config: watcher::Config, what: &'static str) -> Store<K>
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    spawn_reflector_notifying(api, config, what, None)
}

/// Like [`spawn_reflector`], and sends on `changed` after every change the store takes in.
fn spawn_reflector_notifying<K>(
    api: Api<K>,
    config: watcher::Config,
    what: &'static str,
    changed: Option<UnboundedSender<()>>,
) -> Store<K>
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let (store, writer) = reflector::store();
    let stream = reflector::reflector(writer, watcher(api, config))
        .default_backoff()
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

/// An API for `K` in `namespace`, or in every namespace.
fn scoped_api<K>(client: Client, namespace: Option<&str>) -> Api<K>
where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>,
{
    match namespace {
        Some(ns) => Api::namespaced(client, ns),
        None => Api::all(client),
    }
}

/// Where the controllers report: the metrics they count into and the health `/readyz` reads.
#[derive(Debug, Clone, Default)]
pub struct Telemetry {
    /// Reconcile and import counts (give the registry client the same registry metrics).
    pub metrics: Arc<Metrics>,
    /// Told when every cache has synced.
    pub health: Arc<Health>,
}

/// Runs the ImageStream controller until `shutdown` resolves, reporting to a [`Telemetry`] nobody
/// reads (tests; `run` uses [`run_controllers_reporting`]).
pub async fn run_controllers(
    client: Client,
    registry: RegistryClient,
    config: ControllerConfig,
    namespace: Option<String>,
    instance: Option<String>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    run_controllers_reporting(
        client,
        registry,
        config,
        namespace,
        instance,
        Telemetry::default(),
        shutdown,
    )
    .await;
}

/// Runs the ImageStream controller until `shutdown` resolves. With `namespace`, only streams and pull
/// secrets of that namespace are watched (Images are cluster-scoped and always watched whole).
pub async fn run_controllers_reporting(
    client: Client,
    registry: RegistryClient,
    config: ControllerConfig,
    namespace: Option<String>,
    instance: Option<String>,
    telemetry: Telemetry,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let images = spawn_reflector(
        Api::<Image>::all(client.clone()),
        watcher::Config::default(),
        "images",
    );
    let secrets = [
        PullSecretFormat::DockerConfigJson,
        PullSecretFormat::DockerCfg,
    ]
    .into_iter()
    .map(|format| {
        let selector = format!("type={}", format.secret_type());
        spawn_reflector(
            scoped_api::<Secret>(client.clone(), namespace.as_deref()),
            watcher::Config::default().fields(&selector),
            "pull-secrets",
        )
    })
    .collect::<Vec<_>>();
    for store in &secrets {
        let _ = store.wait_until_ready().await;
    }
    let _ = images.wait_until_ready().await;

    // One shutdown signal, fanned out to the controller and the collector.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };

    // Image triggers: workloads of `namespace` (or all), image streams of every namespace.
    let (triggers_synced, triggers_listed) = tokio::sync::oneshot::channel();
    tokio::spawn(super::triggers::run_trigger_controller(
        client.clone(),
        namespace.clone(),
        config.internal_registry_host.clone(),
        instance.clone(),
        Some(telemetry.metrics.clone()),
        Some(triggers_synced),
        stopped(stop_rx.clone()),
    ));

    if let Some(grace) = config.image_gc_grace {
        // The collector reads every stream of the cluster, also when imports are scoped to one
        // namespace: an Image may be referenced from anywhere.
        let all_streams = spawn_reflector(
            Api::<DeserializeGuard<ImageStream>>::all(client.clone()),
            watcher::Config::default(),
            "image-streams-for-gc",
        );
        tokio::spawn(super::image_gc::run_image_gc(
            client.clone(),
            images.clone(),
            all_streams,
            grace,
            stopped(stop_rx.clone()),
        ));
    }

    // Mirror policies: three caches, one index, rebuilt on every change.
    let (mirrors_changed, mirror_changes) = futures::channel::mpsc::unbounded::<()>();
    let mirror_stores = MirrorStores {
        icsp: spawn_reflector_notifying(
            Api::<DeserializeGuard<ImageContentSourcePolicy>>::all(client.clone()),
            watcher::Config::default(),
            "imagecontentsourcepolicies",
            Some(mirrors_changed.clone()),
        ),
        idms: spawn_reflector_notifying(
            Api::<DeserializeGuard<ImageDigestMirrorSet>>::all(client.clone()),
            watcher::Config::default(),
            "imagedigestmirrorsets",
            Some(mirrors_changed.clone()),
        ),
        itms: spawn_reflector_notifying(
            Api::<DeserializeGuard<ImageTagMirrorSet>>::all(client.clone()),
            watcher::Config::default(),
            "imagetagmirrorsets",
            Some(mirrors_changed),
        ),
    };
    let _ = mirror_stores.icsp.wait_until_ready().await;
    let _ = mirror_stores.idms.wait_until_ready().await;
    let _ = mirror_stores.itms.wait_until_ready().await;
    let (wake_streams, streams_woken) = futures::channel::mpsc::unbounded::<()>();

    let streams_api =
        scoped_api::<DeserializeGuard<ImageStream>>(client.clone(), namespace.as_deref());
    let controller =
        Controller::new(streams_api, watcher::Config::default()).reconcile_all_on(streams_woken);
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: super::FIELD_MANAGER.into(),
            instance,
        },
    );
    let ctx = Arc::new(Context {
        client,
        registry,
        config,
        images,
        streams: controller.store(),
        secrets,
        recorder,
        mirrors: MirrorState::new(mirror_stores.index()),
        memory: Mutex::new(HashMap::new()),
        heads: Mutex::new(HashMap::new()),
        list_children: Mutex::new(HashMap::new()),
        failures: Mutex::new(HashMap::new()),
        pull_secrets: Mutex::new(HashMap::new()),
        metrics: telemetry.metrics.clone(),
    });
    // Ready once the trigger controller has listed its caches and the ImageStream controller's own
    // cache of streams, the last to sync, has too.
    let streams = ctx.streams.clone();
    let health = telemetry.health.clone();
    tokio::spawn(async move {
        if triggers_listed.await.is_err() {
            tracing::warn!("the trigger controller stopped before its caches synced");
            return;
        }
        if wait_until_listed(&streams).await {
            tracing::info!("caches synced");
            health.set_caches_synced();
        } else {
            tracing::warn!("the image stream cache stopped before it synced");
        }
    });
    tokio::spawn(super::housekeeping::run_housekeeping(
        ctx.clone(),
        stopped(stop_rx.clone()),
    ));
    tokio::spawn(super::mirrors::maintain_index(
        ctx.clone(),
        mirror_stores,
        mirror_changes,
        wake_streams,
    ));
    tracing::info!("image stream controller started");
    controller
        .graceful_shutdown_on(stopped(stop_rx))
        .run(counted_reconcile, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(err) = result {
                tracing::debug!(error = %err, "reconcile round ended with an error");
            }
        })
        .await;
}

/// Waits until `store` has been filled by its first list; `false` if its watch stopped before. The
/// controllers wait on their stores too, and kube's ready signal wakes only the last waiter of a
/// store, so this asks again every 250 ms rather than wait once.
pub(crate) async fn wait_until_listed<K>(store: &Store<K>) -> bool
where
    K: kube::Resource + Clone + 'static,
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

/// [`reconcile`], counted and timed in the metrics.
async fn counted_reconcile(
    guard: Arc<DeserializeGuard<ImageStream>>,
    ctx: Arc<Context>,
) -> Result<kube::runtime::controller::Action, ReconcileError> {
    let started = std::time::Instant::now();
    let result = reconcile(guard, ctx.clone()).await;
    ctx.metrics.observe_reconcile(
        IMAGE_STREAM_CONTROLLER,
        started.elapsed(),
        result.as_ref().err().map(ReconcileError::reason),
    );
    result
}
