//! The operator as deployed by default: one process serving every namespace (`namespace: None`),
//! against the real kube-apiserver and registry. A cluster-wide operator acts on every stream of the
//! control plane, so these tests have a control plane of their own (this binary) and run one at a
//! time; each stops its operators before the next starts.

use std::time::Duration;

use imagestream_operator::api::ImageStream;
use imagestream_operator::api::image_stream::{TagReference, TagSource};
use imagestream_operator::controller::ControllerConfig;
use imagestream_operator::controller::IMPORT_REQUESTED_ANNOTATION;
use imagestream_operator::controller::supervisor::ControllersEnded;
use imagestream_operator::registry::{RegistryClient, RegistryClientConfig};
use imagestream_testenv::images::{ImagePusher, ManifestFormat};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;
use tokio::sync::{Mutex, oneshot};

// The integration binary's helpers; this binary uses some of them.
#[allow(dead_code)]
#[path = "../integration/support/mod.rs"]
mod support;

use support::*;

/// One test at a time: a cluster-wide operator would act on another test's streams.
static ONE_AT_A_TIME: Mutex<()> = Mutex::const_new(());

/// An operator task that [`RunningOperator::stop`] ends and waits for.
struct RunningOperator {
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), ControllersEnded>>,
}

impl RunningOperator {
    /// Starts the controllers for `namespace` (`None`: every namespace).
    fn start(client: Client, namespace: Option<&str>, config: ControllerConfig) -> Self {
        let registry =
            RegistryClient::new(RegistryClientConfig::default()).expect("registry client");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(imagestream_operator::controller::run::run_controllers(
            client,
            registry,
            config,
            namespace.map(str::to_owned),
            Some("cluster-wide-test".into()),
            async move {
                let _ = stopped.await;
            },
        ));
        Self { stop, task }
    }

    /// Stops the controllers and waits until they have.
    async fn stop(self) {
        let _ = self.stop.send(());
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("the operator did not stop within 30 s")
            .expect("the operator task panicked")
            .expect("the controllers ended on their own");
    }
}

fn stream_tag(name: &str, namespace: &str, source: &str) -> TagReference {
    TagReference {
        name: name.into(),
        from: Some(TagSource {
            kind: Some("ImageStreamTag".into()),
            namespace: Some(namespace.into()),
            name: Some(source.into()),
            ..TagSource::default()
        }),
        ..TagReference::default()
    }
}

/// Lets the `default` service account of `reader` get image streams in `source`, as a user grants
/// a cross-namespace copy.
async fn grant_stream_reads(client: &Client, source: &str, reader: &str) {
    let role: Role = serde_json::from_value(json!({
        "metadata": {"name": "read-image-streams"},
        "rules": [{"apiGroups": ["image.openshift.io"], "resources": ["imagestreams"], "verbs": ["get"]}],
    }))
    .unwrap();
    Api::<Role>::namespaced(client.clone(), source)
        .create(&PostParams::default(), &role)
        .await
        .unwrap();
    let binding: RoleBinding = serde_json::from_value(json!({
        "metadata": {"name": format!("{reader}-reads-image-streams")},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "read-image-streams"},
        "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": reader}],
    }))
    .unwrap();
    Api::<RoleBinding>::namespaced(client.clone(), source)
        .create(&PostParams::default(), &binding)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_cluster_wide_operator_imports_every_namespace_with_one_head_per_distinct_tag() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let env = env().await;
    let client = env.client().await;
    let registry = env.registry();
    let repository = unique("everywhere");
    let pushed = ImagePusher::for_registry(registry)
        .push_random(&repository, "v1", ManifestFormat::Oci)
        .await
        .unwrap();
    let mark = registry.requests_for(&repository).len();
    let from = format!("{}/{repository}:v1", registry.host());
    let namespaces = [env.namespace("east").await, env.namespace("west").await];
    let operator = RunningOperator::start(client.clone(), None, config(Duration::from_secs(900)));
    for ns in &namespaces {
        let api = Api::<ImageStream>::namespaced(client.clone(), ns);
        create_stream(&api, "app", vec![docker_tag("v1", &from, false)]).await;
    }
    for ns in &namespaces {
        let api = Api::<ImageStream>::namespaced(client.clone(), ns);
        let stream = wait_for(&api, "app", &format!("the import in {ns}"), |s| {
            current_image(s, "v1").is_some()
        })
        .await;
        assert_eq!(
            current_image(&stream, "v1"),
            Some(pushed.digest.clone()),
            "{ns}"
        );
    }
    operator.stop().await;
    // Both namespaces asked for the same registry tag: one HEAD, one manifest GET, one config GET.
    let mut requests: Vec<String> = requests_since(registry, &repository, mark)
        .into_iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    requests.sort();
    assert_eq!(
        requests,
        vec![
            format!("GET /v2/{repository}/blobs/{}", pushed.config_digest),
            format!("GET /v2/{repository}/manifests/{}", pushed.digest),
            format!("HEAD /v2/{repository}/manifests/v1"),
        ]
    );
}

#[tokio::test]
async fn a_cluster_wide_operator_copies_an_image_stream_tag_across_namespaces_once_granted() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let env = env().await;
    let client = env.client().await;
    let registry = env.registry();
    let repository = unique("shared-base");
    let pushed = ImagePusher::for_registry(registry)
        .push_random(&repository, "v1", ManifestFormat::Oci)
        .await
        .unwrap();
    let source = env.namespace("base-images").await;
    let team = env.namespace("team").await;
    let operator = RunningOperator::start(client.clone(), None, config(Duration::from_secs(900)));
    let sources = Api::<ImageStream>::namespaced(client.clone(), &source);
    let from = format!("{}/{repository}:v1", registry.host());
    create_stream(&sources, "base", vec![docker_tag("v1", &from, false)]).await;
    wait_for(&sources, "base", "the source import", |s| {
        current_image(s, "v1").is_some()
    })
    .await;

    // Without a grant the copy is refused, by name of the namespaces involved.
    let streams = Api::<ImageStream>::namespaced(client.clone(), &team);
    create_stream(
        &streams,
        "app",
        vec![stream_tag("base", &source, "base:v1")],
    )
    .await;
    let refused = wait_for(&streams, "app", "the refusal", |s| {
        condition_reason(s, "base").is_some()
    })
    .await;
    assert_eq!(
        condition_reason(&refused, "base").as_deref(),
        Some("Forbidden")
    );
    let message = condition_message(&refused, "base");
    assert!(
        message.contains(&team) && message.contains(&source),
        "{message}"
    );
    assert_eq!(current_image(&refused, "base"), None);

    // Granted, the next look copies the source tag's image.
    grant_stream_reads(&client, &source, &team).await;
    let copied = wait_for(&streams, "app", "the granted copy", |s| {
        current_image(s, "base").is_some()
    })
    .await;
    operator.stop().await;
    assert_eq!(current_image(&copied, "base"), Some(pushed.digest.clone()));
    let event = &copied.status.as_ref().unwrap().tag("base").unwrap().items[0];
    assert_eq!(
        event.docker_image_reference,
        format!("{}/{repository}@{}", registry.host(), pushed.digest)
    );
}

#[tokio::test]
async fn a_namespace_scoped_operator_copies_an_image_stream_tag_from_a_namespace_it_does_not_serve()
{
    let _turn = ONE_AT_A_TIME.lock().await;
    let env = env().await;
    let client = env.client().await;
    let registry = env.registry();
    let repository = unique("scoped-base");
    let pushed = ImagePusher::for_registry(registry)
        .push_random(&repository, "v1", ManifestFormat::Oci)
        .await
        .unwrap();
    let source = env.namespace("base-images").await;
    let team = env.namespace("team").await;
    grant_stream_reads(&client, &source, &team).await;

    // The source namespace's stream is imported by an operator that serves only that namespace.
    let importer = RunningOperator::start(
        client.clone(),
        Some(&source),
        config(Duration::from_secs(900)),
    );
    let sources = Api::<ImageStream>::namespaced(client.clone(), &source);
    let from = format!("{}/{repository}:v1", registry.host());
    create_stream(&sources, "base", vec![docker_tag("v1", &from, false)]).await;
    wait_for(&sources, "base", "the source import", |s| {
        current_image(s, "v1").is_some()
    })
    .await;
    importer.stop().await;

    // An operator started with `--namespace team` still reads the source stream to copy it.
    let operator = RunningOperator::start(
        client.clone(),
        Some(&team),
        config(Duration::from_secs(900)),
    );
    let streams = Api::<ImageStream>::namespaced(client.clone(), &team);
    create_stream(
        &streams,
        "app",
        vec![stream_tag("base", &source, "base:v1")],
    )
    .await;
    let copied = wait_for(&streams, "app", "the copy", |s| {
        current_image(s, "base").is_some() || condition_reason(s, "base").is_some()
    })
    .await;
    operator.stop().await;
    assert_eq!(
        current_image(&copied, "base"),
        Some(pushed.digest.clone()),
        "{:?}",
        condition_message(&copied, "base")
    );
    // The source stream was never written by the team's operator.
    let base = sources.get("base").await.unwrap();
    assert_eq!(
        base.status.as_ref().unwrap().tag("v1").unwrap().items.len(),
        1
    );
}

#[tokio::test]
async fn after_an_api_server_outage_streams_and_triggers_act_within_the_same_watch_budget() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let env = env().await;
    let client = env.client().await;
    let registry = env.registry();
    let repository = unique("outage");
    let pusher = ImagePusher::for_registry(registry);
    let first = pusher
        .push_random(&repository, "v1", ManifestFormat::Oci)
        .await
        .unwrap();
    let ns = env.namespace("outage").await;
    let operator = RunningOperator::start(client.clone(), None, config(Duration::from_secs(900)));
    let streams = Api::<ImageStream>::namespaced(client.clone(), &ns);
    let from = format!("{}/{repository}:v1", registry.host());
    create_stream(&streams, "app", vec![docker_tag("v1", &from, false)]).await;
    let deployments = Api::<Deployment>::namespaced(client.clone(), &ns);
    deployments
        .create(&PostParams::default(), &triggered_deployment("web", "app"))
        .await
        .unwrap();
    let first_reference = format!("{}/{repository}@{}", registry.host(), first.digest);
    wait_for_deployment_image(
        &deployments,
        "web",
        &first_reference,
        Duration::from_secs(60),
    )
    .await;

    // 30 s without an API server: every watch fails again and again and backs off.
    assert!(
        env.restart_apiserver(Duration::from_secs(30))
            .await
            .unwrap(),
        "this environment has an API server of its own"
    );
    let back = tokio::time::Instant::now();
    let second = pusher
        .push_random(&repository, "v1", ManifestFormat::Oci)
        .await
        .unwrap();
    let patch =
        json!({"metadata": {"annotations": {IMPORT_REQUESTED_ANNOTATION: "after-the-outage"}}});
    eventually(
        "the import request to be accepted",
        Duration::from_secs(30),
        || async {
            streams
                .patch("app", &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map_err(|e| e.to_string())
        },
    )
    .await;
    wait_for(&streams, "app", "the import after the outage", |s| {
        current_image(s, "v1") == Some(second.digest.clone())
    })
    .await;
    let stream_acted = back.elapsed();
    let second_reference = format!("{}/{repository}@{}", registry.host(), second.digest);
    wait_for_deployment_image(
        &deployments,
        "web",
        &second_reference,
        Duration::from_secs(60),
    )
    .await;
    let trigger_acted = back.elapsed();
    operator.stop().await;
    // Every watch retries within 5 s (+50% jitter, so 7.5 s) of its last failure. The budget is
    // two such rounds (a retry drawn while the API server was still starting fails once more;
    // 15.08 s was seen here) and the import and two writes. kube's default watch backoff (up to
    // 30 s, drawn per watch) made the trigger controller act 35 s after a restart where the
    // stream controller took 10 s.
    println!(
        "after the API server returned: stream moved in {stream_acted:?}, Deployment in {trigger_acted:?}"
    );
    let budget = Duration::from_secs(20);
    assert!(
        stream_acted < budget,
        "the stream moved {stream_acted:?} after the API server returned"
    );
    assert!(
        trigger_acted < budget,
        "the Deployment moved {trigger_acted:?} after the API server returned"
    );
}

async fn wait_for_deployment_image(
    api: &Api<Deployment>,
    name: &str,
    image: &str,
    within: Duration,
) {
    eventually(&format!("{name} to run {image}"), within, || async {
        let deployment = api.get(name).await.map_err(|e| e.to_string())?;
        let current = deployment
            .spec
            .and_then(|s| s.template.spec)
            .and_then(|s| s.containers.into_iter().next())
            .and_then(|c| c.image)
            .unwrap_or_default();
        if current == image {
            Ok(())
        } else {
            Err(current)
        }
    })
    .await;
}
