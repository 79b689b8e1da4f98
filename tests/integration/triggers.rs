//! Image triggers against the real kube-apiserver: each test runs the trigger controller in-process,
//! scoped to its own namespace, and asserts on the stored workloads, their ReplicaSets, their managed
//! fields and their Events. Rollout tests also run the ImageStream controller against the real test
//! registry and the real kube-controller-manager; the others write ImageStream status directly.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::support::*;
use imagestream_operator::api::ImageStream;
use imagestream_operator::api::triggers::TRIGGERS_ANNOTATION;
use imagestream_operator::controller::triggers::{
    FORBIDDEN_REASON, IMAGE_UPDATED_REASON, TriggerSettings, TriggeredWorkload,
    run_trigger_controller, serves_cron_jobs,
};
use imagestream_operator::controller::{FIELD_MANAGER, IMPORT_REQUESTED_ANNOTATION};
use imagestream_testenv::images::{ImagePusher, ManifestFormat, sha256_digest};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::sync::oneshot;

/// How long a test waits for something the controllers should do in a few seconds.
const WAIT: Duration = Duration::from_secs(60);

/// The trigger controller, running until dropped.
struct Triggers {
    stop: Option<oneshot::Sender<()>>,
}

impl Drop for Triggers {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

fn start_triggers(client: Client, namespace: &str) -> Triggers {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(run_trigger_controller(
        client,
        TriggerSettings {
            namespace: Some(namespace.to_owned()),
            instance: Some("test".into()),
            ..TriggerSettings::default()
        },
        None,
        None,
        async move {
            let _ = stopped.await;
        },
    ));
    Triggers { stop: Some(stop) }
}

/// Runs the whole operator (`support::start_operator` runs `run_controllers`, which starts the
/// ImageStream and trigger controllers) in `namespace`, until dropped.
async fn start_imports_and_triggers(
    client: Client,
    namespace: &str,
    config: imagestream_operator::controller::ControllerConfig,
) -> Operator {
    start_operator(client, namespace, config).await
}

// ---------------------------------------------------------------------------------------------------
// Building workloads and annotations
// ---------------------------------------------------------------------------------------------------

/// One trigger entry as `oc set triggers` writes it.
fn trigger(stream_tag: &str, list: &str, container: &str) -> Value {
    json!({
        "from": {"kind": "ImageStreamTag", "name": stream_tag},
        "fieldPath": format!("spec.template.spec.{list}[?(@.name==\"{container}\")].image"),
    })
}

fn annotation(triggers: &[Value]) -> String {
    serde_json::to_string(triggers).unwrap()
}

fn containers(items: &[(&str, &str)]) -> Value {
    items
        .iter()
        .map(|(name, image)| json!({"name": name, "image": image}))
        .collect()
}

fn pod_template(name: &str, main: &[(&str, &str)], init: &[(&str, &str)]) -> Value {
    let mut spec = json!({"containers": containers(main)});
    if !init.is_empty() {
        spec["initContainers"] = containers(init);
    }
    json!({"metadata": {"labels": {"app": name}}, "spec": spec})
}

fn workload<K: DeserializeOwned>(kind: &str, name: &str, triggers: &str, spec: Value) -> K {
    let api_version = if kind == "CronJob" {
        "batch/v1"
    } else {
        "apps/v1"
    };
    serde_json::from_value(json!({
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {"name": name, "annotations": {TRIGGERS_ANNOTATION: triggers}},
        "spec": spec,
    }))
    .unwrap()
}

fn deployment_with(
    name: &str,
    triggers: &str,
    main: &[(&str, &str)],
    init: &[(&str, &str)],
    replicas: i32,
) -> Deployment {
    workload(
        "Deployment",
        name,
        triggers,
        json!({
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": pod_template(name, main, init),
        }),
    )
}

fn deployment(name: &str, triggers: &str, main: &[(&str, &str)]) -> Deployment {
    deployment_with(name, triggers, main, &[], 1)
}

async fn create<K>(client: &Client, namespace: &str, object: &K) -> K
where
    K: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug,
{
    Api::<K>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), object)
        .await
        .unwrap()
}

/// The image of container `name` in either container list.
fn image_of<K: TriggeredWorkload>(workload: &K, name: &str) -> Option<String> {
    let spec = workload.pod_spec()?;
    spec.containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .find(|c| c.name == name)
        .and_then(|c| c.image.clone())
}

/// Polls the workload until `done` holds; panics with the last state after `timeout`.
async fn wait_for_workload<K>(
    client: &Client,
    namespace: &str,
    name: &str,
    what: &str,
    timeout: Duration,
    done: impl Fn(&K) -> bool,
) -> K
where
    K: TriggeredWorkload + serde::Serialize,
{
    let api = Api::<K>::namespaced(client.clone(), namespace);
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let workload = api.get(name).await.unwrap();
        if done(&workload) {
            return workload;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}; the workload's pod spec: {}",
            serde_json::to_string(&workload.pod_spec()).unwrap()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until container `container` of the workload has `image`.
async fn wait_for_image<K>(
    client: &Client,
    namespace: &str,
    name: &str,
    container: &str,
    image: &str,
) -> K
where
    K: TriggeredWorkload + serde::Serialize,
{
    wait_for_workload(
        client,
        namespace,
        name,
        &format!("container {container} to get {image}"),
        WAIT,
        |w: &K| image_of(w, container).as_deref() == Some(image),
    )
    .await
}

// ---------------------------------------------------------------------------------------------------
// Streams written directly (no registry)
// ---------------------------------------------------------------------------------------------------

fn fake_digest() -> String {
    sha256_digest(&rand::random::<[u8; 32]>())
}

fn fake_reference(digest: &str) -> String {
    format!("registry.example.com/team/app@{digest}")
}

/// Creates a stream with one tag whose history is `references`, newest first, as the ImageStream
/// controller would record it; only the trigger controller runs in these tests, so nothing else writes
/// the status.
async fn stream_with_history(
    client: &Client,
    namespace: &str,
    name: &str,
    tag: &str,
    references: &[String],
) {
    let api = Api::<ImageStream>::namespaced(client.clone(), namespace);
    if api.get_opt(name).await.unwrap().is_none() {
        create_stream(
            &api,
            name,
            vec![docker_tag(
                tag,
                "registry.example.com/team/app:latest",
                false,
            )],
        )
        .await;
    }
    set_history(client, namespace, name, tag, references).await;
}

async fn set_history(
    client: &Client,
    namespace: &str,
    name: &str,
    tag: &str,
    references: &[String],
) {
    let items: Vec<Value> = references
        .iter()
        .map(|reference| {
            json!({
                "created": "2024-01-01T00:00:00Z",
                "dockerImageReference": reference,
                "image": reference.rsplit_once('@').map(|(_, d)| d).unwrap_or_default(),
                "generation": 1,
            })
        })
        .collect();
    let status = json!({
        "apiVersion": "image.openshift.io/v1",
        "kind": "ImageStream",
        "status": {"tags": [{"tag": tag, "items": items}]},
    });
    Api::<ImageStream>::namespaced(client.clone(), namespace)
        .patch_status(
            name,
            &PatchParams::apply("trigger-test").force(),
            &Patch::Apply(&status),
        )
        .await
        .unwrap();
}

// ---------------------------------------------------------------------------------------------------
// Events and ReplicaSets
// ---------------------------------------------------------------------------------------------------

/// The Events the operator published about Deployment `name` (other controllers' Events, and Events
/// about a stream of the same name, left out).
async fn events_about(client: &Client, namespace: &str, name: &str) -> Vec<Event> {
    Api::<Event>::namespaced(client.clone(), namespace)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.reporting_controller.as_deref() == Some(FIELD_MANAGER))
        .filter(|e| {
            e.regarding.as_ref().is_some_and(|r| {
                r.kind.as_deref() == Some("Deployment") && r.name.as_deref() == Some(name)
            })
        })
        .collect()
}

/// Waits until an Event about workload `name` has exactly `note`, and returns the notes of all of
/// them: an Event is published right after the write it reports.
async fn wait_for_note(client: &Client, namespace: &str, name: &str, note: &str) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let notes = notes(&events_about(client, namespace, name).await);
        if notes.iter().any(|n| n == note) {
            return notes;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for an Event {note:?} on {name}; Events: {notes:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn warnings_about(client: &Client, namespace: &str, name: &str) -> Vec<Event> {
    events_about(client, namespace, name)
        .await
        .into_iter()
        .filter(|e| e.type_.as_deref() == Some("Warning"))
        .collect()
}

async fn wait_for_warning(client: &Client, namespace: &str, name: &str) -> Vec<Event> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let warnings = warnings_about(client, namespace, name).await;
        if !warnings.is_empty() {
            return warnings;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for a Warning Event on {name}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn notes(events: &[Event]) -> Vec<String> {
    events.iter().filter_map(|e| e.note.clone()).collect()
}

/// Waits for a ReplicaSet of Deployment `name` whose pod template runs `image` in container `web`.
async fn wait_for_replica_set(
    client: &Client,
    namespace: &str,
    name: &str,
    image: &str,
) -> ReplicaSet {
    let api = Api::<ReplicaSet>::namespaced(client.clone(), namespace);
    let params = ListParams::default().labels(&format!("app={name}"));
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let sets = api.list(&params).await.unwrap().items;
        let found = sets.iter().find(|rs| {
            rs.spec
                .as_ref()
                .and_then(|s| s.template.as_ref())
                .and_then(|t| t.spec.as_ref())
                .is_some_and(|p| {
                    p.containers
                        .iter()
                        .any(|c| c.name == "web" && c.image.as_deref() == Some(image))
                })
        });
        if let Some(found) = found {
            return found.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for a ReplicaSet running {image}; ReplicaSets: {:?}",
            sets.iter()
                .map(|rs| rs.metadata.name.clone())
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The fields the operator's field manager owns on the object.
fn operator_fields<K: Resource>(object: &K) -> Option<Value> {
    object
        .meta()
        .managed_fields
        .iter()
        .flatten()
        .find(|e| e.manager.as_deref() == Some(FIELD_MANAGER))
        .and_then(|e| e.fields_v1.as_ref())
        .map(|f| f.0.clone())
}

// ---------------------------------------------------------------------------------------------------
// Rollouts, through real imports
// ---------------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_placeholder_image_is_replaced_by_the_imported_digest_and_rolled_out() {
    let env = crate::support::env().await;
    env.start_controller_manager().unwrap();
    let ns = env.namespace("triggers").await;
    let client = env.client().await;
    let registry = env.registry();
    let repository = unique("trigger-first");
    let pushed = ImagePusher::for_registry(registry)
        .push_random(&repository, "latest", ManifestFormat::Oci)
        .await
        .unwrap();
    let _controllers =
        start_imports_and_triggers(client.clone(), &ns, config(Duration::from_secs(900))).await;
    let streams = Api::<ImageStream>::namespaced(client.clone(), &ns);
    let from = format!("{}/{repository}:latest", registry.host());
    create_stream(&streams, "web", vec![docker_tag("latest", &from, false)]).await;
    let placeholder = deployment(
        "web",
        &annotation(&[trigger("web:latest", "containers", "web")]),
        &[("web", " "), ("sidecar", "busybox:1.36")],
    );
    create(&client, &ns, &placeholder).await;

    let expected = format!("{}/{repository}@{}", registry.host(), pushed.digest);
    let resolved: Deployment = wait_for_image(&client, &ns, "web", "web", &expected).await;
    assert_eq!(
        image_of(&resolved, "sidecar").as_deref(),
        Some("busybox:1.36")
    );
    wait_for_replica_set(&client, &ns, "web", &expected).await;

    // The operator owns exactly that one image field.
    assert_eq!(
        operator_fields(&resolved),
        Some(
            json!({"f:spec": {"f:template": {"f:spec": {"f:containers": {
                "k:{\"name\":\"web\"}": {".": {}, "f:image": {}, "f:name": {}}
            }}}}})
        )
    );
    let note = format!("container web: \" \" -> {expected}");
    wait_for_note(&client, &ns, "web", &note).await;
    let events = events_about(&client, &ns, "web").await;
    let updated: Vec<&Event> = events
        .iter()
        .filter(|e| e.reason.as_deref() == Some(IMAGE_UPDATED_REASON))
        .collect();
    assert_eq!(updated.len(), 1, "{:?}", notes(&events));
    assert_eq!(updated[0].type_.as_deref(), Some("Normal"));
    assert_eq!(updated[0].note.as_deref(), Some(note.as_str()));
    let regarding = updated[0].regarding.clone().unwrap();
    assert_eq!(
        regarding.field_path.as_deref(),
        Some(r#"spec.template.spec.containers[?(@.name=="web")].image"#)
    );
    let related = updated[0].related.clone().unwrap();
    assert_eq!(
        (related.kind.as_deref(), related.name.as_deref()),
        (Some("ImageStream"), Some("web"))
    );
}

#[tokio::test]
async fn a_tag_move_rolls_the_deployment_to_a_new_replica_set_with_the_new_digest() {
    let env = crate::support::env().await;
    env.start_controller_manager().unwrap();
    let ns = env.namespace("triggers").await;
    let client = env.client().await;
    let registry = env.registry();
    let repository = unique("trigger-move");
    let pusher = ImagePusher::for_registry(registry);
    let a = pusher
        .push_random(&repository, "latest", ManifestFormat::Docker)
        .await
        .unwrap();
    let _controllers =
        start_imports_and_triggers(client.clone(), &ns, config(Duration::from_secs(1))).await;
    let streams = Api::<ImageStream>::namespaced(client.clone(), &ns);
    let from = format!("{}/{repository}:latest", registry.host());
    create_stream(&streams, "web", vec![docker_tag("latest", &from, true)]).await;
    create(
        &client,
        &ns,
        &deployment(
            "web",
            &annotation(&[trigger("web:latest", "containers", "web")]),
            &[("web", " ")],
        ),
    )
    .await;
    let first = format!("{}/{repository}@{}", registry.host(), a.digest);
    let _: Deployment = wait_for_image(&client, &ns, "web", "web", &first).await;
    let old = wait_for_replica_set(&client, &ns, "web", &first).await;

    let b = pusher
        .push_random(&repository, "latest", ManifestFormat::Docker)
        .await
        .unwrap();
    let second = format!("{}/{repository}@{}", registry.host(), b.digest);
    let _: Deployment = wait_for_image(&client, &ns, "web", "web", &second).await;
    let new = wait_for_replica_set(&client, &ns, "web", &second).await;
    assert_ne!(new.metadata.name, old.metadata.name);
    let notes = wait_for_note(
        &client,
        &ns,
        "web",
        &format!("container web: {first} -> {second}"),
    )
    .await;
    assert_eq!(notes.len(), 2, "{notes:?}");
}

#[tokio::test]
async fn nothing_is_written_to_the_workload_while_the_tag_stays_put() {
    let env = crate::support::env().await;
    let ns = env.namespace("triggers").await;
    let client = env.client().await;
    let registry = env.registry();
    let repository = unique("trigger-idle");
    ImagePusher::for_registry(registry)
        .push_random(&repository, "latest", ManifestFormat::Oci)
        .await
        .unwrap();
    let (operator_client, log) = crate::support::api_log::recording_client(env.kubeconfig()).await;
    let _controllers =
        start_imports_and_triggers(operator_client, &ns, config(Duration::from_secs(1))).await;
    let streams = Api::<ImageStream>::namespaced(client.clone(), &ns);
    let from = format!("{}/{repository}:latest", registry.host());
    create_stream(&streams, "web", vec![docker_tag("latest", &from, true)]).await;
    let quiet = deployment_with(
        "web",
        &annotation(&[trigger("web:latest", "containers", "web")]),
        &[("web", " ")],
        &[],
        0,
    );
    create(&client, &ns, &quiet).await;
    let _: Deployment = wait_for_workload(
        &client,
        &ns,
        "web",
        "the first resolution",
        WAIT,
        |d: &Deployment| image_of(d, "web").is_some_and(|i| i.contains('@')),
    )
    .await;
    let workload_writes = || {
        log.writes()
            .into_iter()
            .filter(|c| {
                c.path
                    .contains(&format!("/namespaces/{ns}/deployments/web"))
            })
            .count()
    };
    let written = workload_writes();

    // Several scheduled import cycles, and import requests that change the stream and so wake the
    // trigger controller for this workload.
    let mark = registry.requests_for(&repository).len();
    for round in 0..3 {
        let request = json!({"metadata": {"annotations": {IMPORT_REQUESTED_ANNOTATION: format!("round-{round}")}}});
        streams
            .patch("web", &PatchParams::default(), &Patch::Merge(&request))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let heads = requests_since(registry, &repository, mark)
        .into_iter()
        .filter(|r| r.method == "HEAD")
        .count();
    assert!(
        heads >= 3,
        "expected at least three import cycles, saw {heads} HEADs"
    );
    // The operator sent nothing to the workload (kube-controller-manager, when another test has
    // started it, may still write its status).
    assert_eq!(workload_writes(), written);
    let updates = events_about(&client, &ns, "web")
        .await
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some(IMAGE_UPDATED_REASON))
        .count();
    assert_eq!(updates, 1);
}

// ---------------------------------------------------------------------------------------------------
// Triggers, with stream status written directly
// ---------------------------------------------------------------------------------------------------

#[tokio::test]
async fn an_init_container_trigger_writes_only_the_init_container_image() {
    let env = crate::support::env().await;
    let ns = env.namespace("triggers").await;
    let client = env.client().await;
    let reference = fake_reference(&fake_digest());
    stream_with_history(
        &client,
        &ns,
        "migrate",
        "latest",
        std::slice::from_ref(&reference),
    )
    .await;
    let _triggers = start_triggers(client.clone(), &ns);
    create(
        &client,
        &ns,
        &deployment_with(
            "web",
            &annotation(&[trigger("migrate:latest", "initContainers", "migrate")]),
            &[("web", "nginx:1.25")],
            &[("migrate", " ")],
            1,
        ),
    )
    .await;
    let resolved: Deployment = wait_for_image(&client, &ns, "web", "migrate", &reference).await;
    assert_eq!(image_of(&resolved, "web").as_deref(), Some("nginx:1.25"));
    assert_eq!(
        operator_fields(&resolved),
        Some(
            json!({"f:spec": {"f:template": {"f:spec": {"f:initContainers": {
                "k:{\"name\":\"migrate\"}": {".": {}, "f:image": {}, "f:name": {}}
            }}}}})
        )
    );
    let note = format!("init container migrate: \" \" -> {reference}");
    assert_eq!(wait_for_note(&client, &ns, "web", &note).await, [note]);
}

#[tokio::test]
async fn a_paused_trigger_writes_nothing_until_it_is_resumed() {
    let env = crate::support::env().await;
    let ns = env.namespace("triggers").await;
    let client = env.client().await;
    let reference = fake_reference(&fake_digest());
    stream_with_history(
        &client,
        &ns,
        "web",
        "latest",
        std::slice::from_ref(&reference),
    )
    .await;
    let _triggers = start_triggers(client.clone(), &ns);
    let mut paused = trigger("web:latest", "containers", "web");
    paused["paused"] = json!(true);
    let acting = trigger("web:latest", "containers", "sidecar");
    create(
        &client,
        &ns,
        &deployment(
            "web",
            &annotation(&[paused, acting.clone()]),
            &[("web", " "), ("sidecar", " ")],
        ),
    )
    .await;
    // The acting trigger shows the controller has been through the object.
    let _: Deployment = wait_for_image(&client, &ns, "web", "sidecar", &reference).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let api = Api::<Deployment>::namespaced(client.clone(), &ns);
    assert_eq!(
        image_of(&api.get("web").await.unwrap(), "web").as_deref(),
        Some(" ")
    );

    let resumed = annotation(&[trigger("web:latest", "containers", "web"), acting]);
    let patch = json!({"metadata": {"annotations": {TRIGGERS_ANNOTATION: resumed}}});
    api.patch("web", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let _: Deployment = wait_for_image(&client, &ns, "web", "web", &reference).await;
}

#[tokio::test]
async fn pausing_a_trigger_keeps_the_image_it_wrote_while_another_trigger_moves() {
    let env = crate::support::env().await;
    let ns = env.namespace("triggers").await;
    let client = env.client().await;
    let web = fake_reference(&fake_digest());
    let side = fake_reference(&fake_digest());
    stream_with_history(&client, &ns, "web", "latest", std::slice::from_ref(&web)).await;
    stream_with_history(&client, &ns, "side", "latest", std::slice::from_ref(&side)).await;
    let _triggers = start_triggers(client.clone(), &ns);
    let sidecar = trigger("side:latest", "containers", "sidecar");
    create(
        &client,
        &ns,
        &deployment(
            "web",
            &annotation(&[trigger("web:latest", "containers", "web"), sidecar.clone()]),
            &[("web", " "), ("sidecar", " ")],
        ),
    )
    .await;
    let _: Deployment = wait_for_image(&client, &ns, "web", "web", &web).await;
    let _: Deployment = wait_for_image(&client, &ns, "web", "sidecar", &side).await;

    // Pause the web trigger, then move the sidecar's tag: the write for the sidecar must keep the
    // web image the operator set (and still owns), not release it.
    let mut paused = trigger("web:latest", "containers", "web");
    paused["paused"] = json!(true);
    let patch =
        json!({"metadata": {"annotations": {TRIGGERS_ANNOTATION: annotation(&[paused, sidecar])}}});
    let api = Api::<Deployment>::namespaced(client.clone(), &ns);
    api.patch("web", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let moved = fake_reference(&fake_digest());
    set_history(
        &client,
        &ns,
        "side",
        "latest",
        &[moved.clone(), side.clone()],
    )
    .await;
    let after: Deployment = wait_for_image(&client, &ns, "web", "sidecar", &moved).await;
    assert_eq!(image_of(&after, "web").as_deref(), Some(web.as_str()));
    let owned = operator_fields(&after).unwrap().to_string();
    assert!(owned.contains(r#"k:{\"name\":\"web\"}"#), "{owned}");
    assert!(warnings_about(&client, &ns, "web").await.is_empty());
}

#[tokio::test]
async fn the_string_paused_false_is_honoured_as_not_paused() {
    let env = crate::support::env().await;
    let ns = env.namespace("triggers").await;
    let client = env.client().await;
    let reference = fake_reference(&fake_digest());
    stream_with_history(
        &client,
        &ns,
        "web",
        "latest",
        std::slice::from_ref(&reference),
    )
    .await;
    let _triggers = start_triggers(client.clone(), &ns);
    // As OpenShift's documentation printed it: single quotes and a string "false".
    let lenient = r#"[{"from":{"kind":"ImageStreamTag","name":"web:latest"},"fieldPath":"spec.template.spec.containers[?(@.name=='web')].image","paused":"false"}]"#;
    create(&client, &ns, &deployment("web", lenient, &[("web", " ")])).await;
    let _: Deployment = wait_for_image(&client, &ns, "web", "web", &reference).await;
    assert!(warnings_about(&client, &ns, "web").await.is_empty());
}

#[tokio::test]
async fn an_edited_image_is_restored_to_the_tags_image() {
    let env = crate::support::env().await;
    let ns = env.namespace("triggers").await;
    let client = env.client().await;
    let reference = fake_reference(&fake_digest());
    stream_with_history(
        &client,
        &ns,
        "web",
        "latest",
        std::slice::from_ref(&reference),
    )
    .await;
    let _triggers = start_triggers(client.clone(), &ns);
    create(
        &client,
        &ns,
        &deployment(
            "web",
            &annotation(&[trigger("web:latest", "containers", "web")]),
            &[("web", " "), ("sidecar", "busybox:1.36")],
        ),
    )
    .await;
    let _: Deployment = wait_for_image(&client, &ns, "web", "web", &reference).await;

    // What `kubectl set image deployment/web web=nginx:edited sidecar=busybox:edited` does.
    let edit = json!({"spec": {"template": {"spec": {"containers": [
        {"name": "web", "image": "nginx:edited"},
        {"name": "sidecar", "image": "busybox:edited"},
    ]}}}});
    let api = Api::<Deployment>::namespaced(client.clone(), &ns);
    let edited = api
        .patch(
            "web",
            &PatchParams {
                field_manager: Some("kubectl-set".into()),
                ..PatchParams::default()
            },
            &Patch::Strategic(&edit),
        )
        .await
        .unwrap();
    assert_eq!(image_of(&edited, "web").as_deref(), Some("nginx:edited"));
    let restored: Deployment = wait_for_image(&client, &ns, "web", "web", &reference).await;
    assert_eq!(
        image_of(&restored, "sidecar").as_deref(),
        Some("busybox:edited")
    );
    let note = format!("container web: nginx:edited -> {reference}");
    wait_for_note(&client, &ns, "web", &note).await;
}

#[tokio::test]
async fn a_stateful_set_trigger_writes_its_container_image() {
    let env = crate::support::env().await;
    let ns = env.namespace("triggers").await;
    let client = env.client().await;
    let reference = fake_reference(&fake_digest());
    stream_with_history(
        &client,
        &ns,
        "db",
        "latest",
        std::slice::from_ref(&reference),
    )
    .await;
    let _triggers = start_triggers(client.clone(), &ns);
    let stateful: StatefulSet = workload(
        "StatefulSet",
        "db",
        &annotation(&[trigger("db:latest", "containers", "db")]),
        json!({
            "serviceName": "db",
            "replicas": 1,
            "selector": {"matchLabels": {"app": "db"}},
            "template": pod_template("db", &[("db", " ")], &[]),
        }),
    );
    create(&client, &ns, &stateful).await;
    let _: StatefulSet = wait_for_image(&client, &ns, "db", "db", &reference).await;
}

#[tokio::test]
async fn a_daemon_set_trigger_writes_its_container_image() {
    let env = crate::support::env().await;
    let ns = env.namespace("triggers").await;
    let client = env.client().await;
    let reference = fake_reference(&fake_digest());
    stream_with_history(
        &client,
        &ns,
        "agent",
        "latest",
        std::slice::from_ref(&reference),
    )
    .await;
    let _triggers = start_triggers(client.clone(), &ns);
    let daemon: DaemonSet = workload(
        "DaemonSet",
        "agent",
        &annotation(&[trigger("agent:latest", "containers", "agent")]),
        json!({
            "selector": {"matchLabels": {"app": "agent"}},
            "template": pod_template("agent", &[("agent", " ")], &[]),
        }),
    );
    create(&client, &ns, &daemon).await;
    let _: DaemonSet = wait_for_image(&client, &ns, "agent", "agent", &reference).await;
}

#[tokio::test]
async fn a_cron_job_trigger_writes_the_job_templates_image_where_batch_v1_cron_jobs_are_served() {
    let env = crate::support::env().await;
    let client = env.client().await;
    if !serves_cron_jobs(&client).await.unwrap() {
        imagestream_testenv::skip::skip(
            "this API server does not serve batch/v1 CronJob (Kubernetes 1.21 and later do), so the trigger controller does not watch CronJobs here",
        );
        return;
    }
    let ns = env.namespace("triggers").await;
    let reference = fake_reference(&fake_digest());
    stream_with_history(
        &client,
        &ns,
        "report",
        "latest",
        std::slice::from_ref(&reference),
    )
    .await;
    let _triggers = start_triggers(client.clone(), &ns);
    let path = r#"spec.jobTemplate.spec.template.spec.containers[?(@.name=="report")].image"#;
    let triggers = annotation(&[json!({
        "from": {"kind": "ImageStreamTag", "name": "report:latest"},
        "fieldPath": path,
    })]);
    let mut template = pod_template("report", &[("report", " ")], &[]);
    template["spec"]["restartPolicy"] = json!("Never");
    let cron: CronJob = workload(
        "CronJob",
        "report",
        &triggers,
        json!({"schedule": "@daily", "jobTemplate": {"spec": {"template": template}}}),
    );
    create(&client, &ns, &cron).await;
    let _: CronJob = wait_for_image(&client, &ns, "report", "report", &reference).await;
}

#[tokio::test]
async fn an_unresolvable_trigger_is_skipped_while_the_others_on_the_object_apply() {
    let env = crate::support::env().await;
    let ns = env.namespace("triggers").await;
    let client = env.client().await;
    let reference = fake_reference(&fake_digest());
    stream_with_history(
        &client,
        &ns,
        "web",
        "latest",
        std::slice::from_ref(&reference),
    )
    .await;
    let _triggers = start_triggers(client.clone(), &ns);
    create(
        &client,
        &ns,
        &deployment(
            "web",
            &annotation(&[
                trigger("web:latest", "containers", "web"),
                trigger("later:latest", "containers", "sidecar"),
            ]),
            &[("web", " "), ("sidecar", " ")],
        ),
    )
    .await;
    let resolved: Deployment = wait_for_image(&client, &ns, "web", "web", &reference).await;
    assert_eq!(image_of(&resolved, "sidecar").as_deref(), Some(" "));
    assert!(warnings_about(&client, &ns, "web").await.is_empty());

    // The missing stream appears: the index wakes the workload and the second trigger applies too,
    // keeping the first image.
    let later = fake_reference(&fake_digest());
    stream_with_history(
        &client,
        &ns,
        "later",
        "latest",
        std::slice::from_ref(&later),
    )
    .await;
    let both: Deployment = wait_for_image(&client, &ns, "web", "sidecar", &later).await;
    assert_eq!(image_of(&both, "web").as_deref(), Some(reference.as_str()));
}

#[tokio::test]
async fn each_malformed_annotation_gives_exactly_one_warning_event_and_leaves_the_workload_alone() {
    let env = crate::support::env().await;
    let ns = env.namespace("triggers").await;
    let client = env.client().await;
    let first = fake_reference(&fake_digest());
    stream_with_history(&client, &ns, "web", "latest", std::slice::from_ref(&first)).await;
    let _triggers = start_triggers(client.clone(), &ns);
    let web = trigger("web:latest", "containers", "web");
    let cases = [
        (
            "bad-json",
            r#"[{"from":{"kind":"ImageStreamTag","name":"web:latest"}"#.to_owned(),
            "InvalidJSON",
        ),
        (
            "no-tag",
            annotation(&[trigger("web", "containers", "web")]),
            "InvalidTagReference",
        ),
        (
            "unknown-container",
            annotation(&[trigger("web:latest", "containers", "api")]),
            "UnknownContainer",
        ),
        (
            "duplicate",
            annotation(&[web.clone(), web.clone()]),
            "DuplicateFieldPath",
        ),
    ];
    for (name, value, _) in &cases {
        create(&client, &ns, &deployment(name, value, &[("web", " ")])).await;
    }
    create(
        &client,
        &ns,
        &deployment("canary", &annotation(&[web]), &[("web", " ")]),
    )
    .await;
    for (name, _, _) in &cases {
        wait_for_warning(&client, &ns, name).await;
    }
    let _: Deployment = wait_for_image(&client, &ns, "canary", "web", &first).await;

    // Unrelated updates of each workload and moves of the stream they name: none repeats a warning.
    let api = Api::<Deployment>::namespaced(client.clone(), &ns);
    let mut latest = first.clone();
    for round in 0..3 {
        for (name, _, _) in &cases {
            let label = json!({"metadata": {"labels": {"round": round.to_string()}}});
            api.patch(name, &PatchParams::default(), &Patch::Merge(&label))
                .await
                .unwrap();
        }
        latest = fake_reference(&fake_digest());
        set_history(
            &client,
            &ns,
            "web",
            "latest",
            &[latest.clone(), first.clone()],
        )
        .await;
        let _: Deployment = wait_for_image(&client, &ns, "canary", "web", &latest).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;

    for (name, _, reason) in &cases {
        let warnings = warnings_about(&client, &ns, name).await;
        assert_eq!(warnings.len(), 1, "{name}: {:?}", notes(&warnings));
        let warning = &warnings[0];
        assert_eq!(warning.reason.as_deref(), Some(*reason), "{name}");
        assert!(warning.series.is_none(), "{name}: the warning was repeated");
        assert!(
            warning
                .note
                .as_deref()
                .unwrap_or_default()
                .contains(TRIGGERS_ANNOTATION),
            "{name}: {:?}",
            warning.note
        );
        let workload = api.get(name).await.unwrap();
        assert_eq!(image_of(&workload, "web").as_deref(), Some(" "), "{name}");
        assert_eq!(operator_fields(&workload), None, "{name}");
    }
    // The valid workload beside them followed every move and has nothing to warn about.
    let canary = api.get("canary").await.unwrap();
    assert_eq!(image_of(&canary, "web"), Some(latest));
    assert!(warnings_about(&client, &ns, "canary").await.is_empty());
}

#[tokio::test]
async fn a_cross_namespace_trigger_is_honoured_only_when_the_pod_service_account_may_get_the_stream()
 {
    let env = crate::support::env().await;
    let ns = env.namespace("triggers").await;
    let source = env.namespace("triggers-source").await;
    let client = env.client().await;
    let reference = fake_reference(&fake_digest());
    stream_with_history(
        &client,
        &source,
        "base",
        "latest",
        std::slice::from_ref(&reference),
    )
    .await;
    let _triggers = start_triggers(client.clone(), &ns);
    let mut shared = trigger("base:latest", "containers", "web");
    shared["from"]["namespace"] = json!(source);
    create(
        &client,
        &ns,
        &deployment("web", &annotation(&[shared]), &[("web", " ")]),
    )
    .await;

    let warnings = wait_for_warning(&client, &ns, "web").await;
    assert_eq!(warnings[0].reason.as_deref(), Some(FORBIDDEN_REASON));
    let note = warnings[0].note.clone().unwrap_or_default();
    assert!(note.contains(&format!("{ns}/default")), "{note}");
    // The refusal is checked again after 5s: still refused, still one warning, nothing written.
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert_eq!(warnings_about(&client, &ns, "web").await.len(), 1);
    let api = Api::<Deployment>::namespaced(client.clone(), &ns);
    assert_eq!(
        image_of(&api.get("web").await.unwrap(), "web").as_deref(),
        Some(" ")
    );

    // Grant the pod service account `get imagestreams` in the source namespace.
    let role: Role = serde_json::from_value(json!({
        "metadata": {"name": "read-image-streams"},
        "rules": [{"apiGroups": ["image.openshift.io"], "resources": ["imagestreams"], "verbs": ["get"]}],
    }))
    .unwrap();
    create(&client, &source, &role).await;
    let binding: RoleBinding = serde_json::from_value(json!({
        "metadata": {"name": format!("{ns}-reads-image-streams")},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "read-image-streams"},
        "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": ns}],
    }))
    .unwrap();
    create(&client, &source, &binding).await;
    let _: Deployment = wait_for_workload(
        &client,
        &ns,
        "web",
        "the granted cross-namespace trigger to apply",
        Duration::from_secs(90),
        |d: &Deployment| image_of(d, "web").as_deref() == Some(reference.as_str()),
    )
    .await;
    assert_eq!(warnings_about(&client, &ns, "web").await.len(), 1);
}

#[tokio::test]
async fn workloads_without_the_annotation_are_never_written() {
    let env = crate::support::env().await;
    let ns = env.namespace("triggers").await;
    let client = env.client().await;
    let reference = fake_reference(&fake_digest());
    stream_with_history(
        &client,
        &ns,
        "web",
        "latest",
        std::slice::from_ref(&reference),
    )
    .await;
    let _triggers = start_triggers(client.clone(), &ns);
    let mut plain = deployment("plain", "", &[("web", " ")]);
    plain.metadata.annotations = Some(BTreeMap::new());
    create(&client, &ns, &plain).await;
    create(
        &client,
        &ns,
        &deployment(
            "canary",
            &annotation(&[trigger("web:latest", "containers", "web")]),
            &[("web", " ")],
        ),
    )
    .await;
    let _: Deployment = wait_for_image(&client, &ns, "canary", "web", &reference).await;
    let api = Api::<Deployment>::namespaced(client.clone(), &ns);
    let untouched = api.get("plain").await.unwrap();
    assert_eq!(image_of(&untouched, "web").as_deref(), Some(" "));
    assert_eq!(operator_fields(&untouched), None);
    assert!(events_about(&client, &ns, "plain").await.is_empty());
}
