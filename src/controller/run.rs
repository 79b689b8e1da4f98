//! Starts the controllers on shared caches — one watch per kind: Images, pull secrets, the three
//! mirror kinds and ImageStreams — with the import engine, the ImageStream controller, the trigger
//! controller, the Image collector and the housekeeping, until a shutdown signal. What they count
//! and whether their caches have synced is reported through [`Telemetry`] to the HTTP server.

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::core::DeserializeGuard;
use kube::runtime::controller::{self, Action, ReconcileReason, ReconcileRequest};
use kube::runtime::events::Reporter;
use kube::runtime::{applier, watcher};
use kube::{Api, Client};

use super::context::Caches;
use super::engine::StreamRef;
use super::engine::{AnswerOutcome, Resolution};
use super::image_stream::{ReconcileError, error_policy, reconcile};
use super::mirrors::MirrorStores;
use super::stores::{StreamCache, StreamChange, spawn_reflector, wait_until_listed};
use super::supervisor::{ControllersEnded, Supervised, catch_panic};
use super::triggers::TriggerSettings;
use super::{Context, ControllerConfig};
use crate::api::image::ImageSummary;
use crate::api::{ImageContentSourcePolicy, ImageDigestMirrorSet, ImageStream, ImageTagMirrorSet};
use crate::domain::history::ImportFailure;
use crate::domain::keyring::PullSecretFormat;
use crate::metrics::{IMAGE_STREAM_CONTROLLER, Metrics};
use crate::registry::RegistryClient;
use crate::server::Health;

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
    /// Holds the import engine while the controllers run, for the push-notification receiver.
    pub engine: Arc<super::engine::EngineSlot>,
    /// This process's Pod (`namespace`, `name`), labelled [`LEADER_LABEL`] while the controllers
    /// run, so a Service selecting the label routes push notifications to the replica importing.
    pub pod: Option<(String, String)>,
}

/// The label (`imagestream-operator/role: leader`) on the Pod whose controllers run.
pub const LEADER_LABEL: (&str, &str) = ("imagestream-operator/role", "leader");

/// Sets (or, with `leading` false, removes) [`LEADER_LABEL`] on the Pod `namespace/name`.
pub async fn label_pod(client: &Client, (namespace, name): &(String, String), leading: bool) {
    let value = leading.then_some(LEADER_LABEL.1);
    let patch = serde_json::json!({"metadata": {"labels": {LEADER_LABEL.0: value}}});
    let pods = Api::<k8s_openapi::api::core::v1::Pod>::namespaced(client.clone(), namespace);
    match pods
        .patch(
            name,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&patch),
        )
        .await
    {
        Ok(_) => {
            tracing::info!(pod = %format!("{namespace}/{name}"), leading, "leader label updated")
        }
        Err(err) => {
            tracing::warn!(pod = %format!("{namespace}/{name}"), error = %err, "could not update the leader label; push notifications may reach a standby (which answers 503)")
        }
    }
}

/// Runs the controllers until `shutdown` resolves, reporting to a [`Telemetry`] nobody reads
/// (tests; `run` uses [`run_controllers_reporting`]).
pub async fn run_controllers(
    client: Client,
    registry: RegistryClient,
    config: ControllerConfig,
    namespace: Option<String>,
    instance: Option<String>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) -> Result<(), ControllersEnded> {
    run_controllers_reporting(
        client,
        registry,
        config,
        namespace,
        instance,
        Telemetry::default(),
        shutdown,
    )
    .await
}

/// Runs the controllers until `shutdown` resolves. With `namespace`, only streams, pull secrets and
/// workloads of that namespace are served (Images are cluster-scoped, and streams of every
/// namespace are watched, because triggers and Image collection may read any).
///
/// If one of the controllers' long-lived tasks ends before `shutdown` (a panic outside the
/// handling of one object, or a loop that returned), every task is stopped, the health turns
/// failed and this returns the error: the process must exit so that it is restarted.
pub async fn run_controllers_reporting(
    client: Client,
    registry: RegistryClient,
    config: ControllerConfig,
    namespace: Option<String>,
    instance: Option<String>,
    telemetry: Telemetry,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) -> Result<(), ControllersEnded> {
    // One shutdown signal, fanned out to every task.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let stop_rx_for_slot = stop_rx.clone();

    let images = spawn_reflector(
        Api::<DeserializeGuard<ImageSummary>>::all(client.clone()),
        watcher::Config::default(),
        "images",
        None,
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
            None,
        )
    })
    .collect::<Vec<_>>();
    // Mirror policies: three caches, one index, rebuilt on every change.
    let (mirrors_changed, mirror_changes) = futures::channel::mpsc::unbounded::<()>();
    let mirror_stores = MirrorStores {
        icsp: spawn_reflector(
            Api::<DeserializeGuard<ImageContentSourcePolicy>>::all(client.clone()),
            watcher::Config::default(),
            "imagecontentsourcepolicies",
            Some(mirrors_changed.clone()),
        ),
        idms: spawn_reflector(
            Api::<DeserializeGuard<ImageDigestMirrorSet>>::all(client.clone()),
            watcher::Config::default(),
            "imagedigestmirrorsets",
            Some(mirrors_changed.clone()),
        ),
        itms: spawn_reflector(
            Api::<DeserializeGuard<ImageTagMirrorSet>>::all(client.clone()),
            watcher::Config::default(),
            "imagetagmirrorsets",
            Some(mirrors_changed),
        ),
    };
    for store in &secrets {
        let _ = wait_until_listed(store).await;
    }
    let _ = wait_until_listed(&images).await;
    let _ = wait_until_listed(&mirror_stores.icsp).await;
    let _ = wait_until_listed(&mirror_stores.idms).await;
    let _ = wait_until_listed(&mirror_stores.itms).await;

    // The one stream cache: every consumer subscribes before it starts, so all see the first list.
    let streams = StreamCache::new();
    let stream_changes = streams.subscribe();

    // Image triggers: workloads of `namespace` (or all), image streams of every namespace.
    let (triggers_synced, triggers_listed) = tokio::sync::oneshot::channel();
    let mut supervised = Supervised::default();
    supervised.spawn(
        "trigger controller",
        super::triggers::run_trigger_controller(
            client.clone(),
            TriggerSettings {
                namespace: namespace.clone(),
                internal_registry_host: config.internal_registry_host.clone(),
                instance: instance.clone(),
                metrics: Some(telemetry.metrics.clone()),
                concurrency: config.concurrency.triggers,
            },
            Some(streams.clone()),
            Some(triggers_synced),
            stopped(stop_rx.clone()),
        ),
    );

    let (wakes, woken) = futures::channel::mpsc::unbounded::<StreamRef>();
    let ctx = Arc::new(Context::new(
        client.clone(),
        registry,
        config.clone(),
        Caches {
            images: images.clone(),
            streams: streams.clone(),
            secrets,
            mirrors: mirror_stores.index(),
            namespace: namespace.clone(),
        },
        Reporter {
            controller: super::FIELD_MANAGER.into(),
            instance,
        },
        telemetry.metrics.clone(),
        wakes.clone(),
    ));
    streams.start(client.clone());

    if let Some(grace) = config.image_gc_grace {
        supervised.spawn(
            "Image collector",
            super::image_gc::run_image_gc(
                client.clone(),
                images.clone(),
                streams.store(),
                grace,
                stopped(stop_rx.clone()),
            ),
        );
    }

    // Ready once the trigger controller has listed its caches and the stream cache has too.
    let stream_store = streams.store();
    let health = telemetry.health.clone();
    tokio::spawn(async move {
        if triggers_listed.await.is_err() {
            tracing::warn!("the trigger controller stopped before its caches synced");
            return;
        }
        if wait_until_listed(&stream_store).await {
            tracing::info!("caches synced");
            health.set_caches_synced();
        } else {
            tracing::warn!("the image stream cache stopped before it synced");
        }
    });
    supervised.spawn(
        "housekeeping",
        super::housekeeping::run_housekeeping(ctx.clone(), stopped(stop_rx.clone())),
    );
    supervised.spawn(
        "mirror index",
        super::mirrors::maintain_index(ctx.clone(), mirror_stores, mirror_changes, wakes),
    );
    let resolving = ctx.clone();
    telemetry.engine.set(Some(ctx.engine.clone()));
    if let Some(pod) = &telemetry.pod {
        label_pod(&client, pod, true).await;
    }
    let slot = telemetry.engine.clone();
    let (label_client, pod) = (client.clone(), telemetry.pod.clone());
    tokio::spawn(async move {
        stopped(stop_rx_for_slot).await;
        slot.set(None);
        if let Some(pod) = pod {
            label_pod(&label_client, &pod, false).await;
        }
    });
    supervised.spawn(
        "import engine",
        ctx.engine.clone().drive(
            move |job| {
                let ctx = resolving.clone();
                async move {
                    match catch_panic(super::importer::resolve(&ctx, &job)).await {
                        Ok(result) => super::importer::resolution(result),
                        Err(message) => {
                            tracing::error!(tag = %job.reference, panic = %message, "an import panicked; the tag fails with InternalError");
                            internal_error(&message)
                        }
                    }
                }
            },
            stopped(stop_rx.clone()),
        ),
    );

    // The ImageStream controller: reconciles on changes that matter for imports and on the
    // engine's wake-ups, never more than the configured number at once.
    let _ = wait_until_listed(&ctx.streams).await;
    tracing::info!("image stream controller started");
    let scope_ctx = ctx.clone();
    let own_changes = stream_changes.filter_map(move |change| {
        let ctx = scope_ctx.clone();
        async move {
            match change {
                StreamChange::Applied {
                    stream,
                    for_import: true,
                } if ctx.serves(stream.namespace.as_deref()) => {
                    Some(request(stream, "image stream changed"))
                }
                StreamChange::Deleted { stream } => {
                    ctx.engine.forget_stream(&stream);
                    None
                }
                StreamChange::Applied { .. } => None,
            }
        }
    });
    let answers = woken.map(|stream| request(stream, "import answer"));
    let queue = futures::stream::select(own_changes, answers).map(Ok::<_, watcher::Error>);
    let stream_store = ctx.streams.clone();
    let controller = applier(
        |guard, ctx| Box::pin(counted_reconcile(guard, ctx)),
        error_policy,
        ctx.clone(),
        stream_store,
        queue.take_until(stopped(stop_rx.clone())),
        controller::Config::default().concurrency(config.concurrency.image_streams as u16),
    )
    .for_each(|result| async move {
        match result {
            Ok(_) | Err(controller::Error::ObjectNotFound(_)) => {}
            Err(err) => tracing::debug!(error = %err, "reconcile round ended with an error"),
        }
    });
    tokio::pin!(controller);
    let ended = tokio::select! {
        () = &mut controller => return Ok(()),
        ended = supervised.first_ended() => ended,
    };
    if *stop_rx.borrow() {
        // Stopping: the tasks end one by one; let the reconciles in flight finish.
        controller.await;
        return Ok(());
    }
    tracing::error!(task = ended.task, why = %ended.why, "a controller task ended on its own; stopping so that the process is restarted");
    telemetry.health.set_failed(ended.to_string());
    supervised.abort_all();
    Err(ended)
}

fn request(stream: StreamRef, reason: &str) -> ReconcileRequest<DeserializeGuard<ImageStream>> {
    ReconcileRequest {
        obj_ref: stream,
        reason: ReconcileReason::Custom {
            reason: reason.into(),
        },
    }
}

/// The answer for a tag whose import panicked: a failure every stream of the tag shows, asked
/// again on the retry schedule (the panic is a bug; the other tags go on).
fn internal_error(panic: &str) -> Resolution {
    Resolution {
        outcome: AnswerOutcome::Failed {
            failure: ImportFailure {
                reason: INTERNAL_ERROR.to_owned(),
                message: format!(
                    "the import failed on an internal error of the operator (please report it): {panic}"
                ),
            },
            not_contacted: false,
        },
        retry: Some(None),
    }
}

/// The reason of a failure that is a bug of the operator (a caught panic).
pub const INTERNAL_ERROR: &str = "InternalError";

/// [`reconcile`], counted and timed in the metrics; a panic fails this stream's reconcile only.
async fn counted_reconcile(
    guard: Arc<DeserializeGuard<ImageStream>>,
    ctx: Arc<Context>,
) -> Result<Action, ReconcileError> {
    let started = std::time::Instant::now();
    let stream = super::context::object_key(&*guard);
    let result = match catch_panic(reconcile(guard, ctx.clone())).await {
        Ok(result) => result,
        Err(message) => Err(ReconcileError::Panicked { stream, message }),
    };
    ctx.metrics.observe_reconcile(
        IMAGE_STREAM_CONTROLLER,
        started.elapsed(),
        result.as_ref().err().map(ReconcileError::reason),
    );
    result
}
