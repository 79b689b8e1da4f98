//! Push notifications end to end: the real distribution registry notifies the operator's receiver
//! (its `notifications.endpoints` entry sends a bearer token), with polling effectively off (a one
//! hour interval). Counted from the registry's access log, not timed.
//!
//! - A push reaches the stream and its triggered Deployment with exactly one HEAD, one manifest GET
//!   and one config GET; the `pull` events the registry sends for those requests are ignored.
//! - A hundred notifications of one pushed tag cost one HEAD.
//! - Notifications without the token are refused and import nothing.

use std::sync::Arc;
use std::time::Duration;

use crate::support::*;
use imagestream_operator::api::ImageStream;
use imagestream_operator::controller::run::Telemetry;
use imagestream_operator::domain::notification::Format;
use imagestream_operator::metrics::Metrics;
use imagestream_operator::registry::{RegistryClient, RegistryClientConfig};
use imagestream_operator::webhook::{Keys, Receiver};
use imagestream_testenv::images::{ImagePusher, ManifestFormat};
use imagestream_testenv::{NotificationEndpoint, Registry, RegistryOptions};
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::PostParams;
use kube::{Api, Client};
use serde_json::json;
use tokio::sync::oneshot;

const TOKEN: &str = "notify-t0ken";
const POLLING_OFF: Duration = Duration::from_secs(3600);

/// The operator with its receiver on `listener`, accepting `keys`, until dropped.
struct NotifiedOperator {
    _stop: oneshot::Sender<()>,
    metrics: Arc<Metrics>,
}

async fn start_notified_operator(
    client: Client,
    namespace: &str,
    listener: tokio::net::TcpListener,
    keys: Keys,
) -> NotifiedOperator {
    let telemetry = Telemetry::default();
    let metrics = telemetry.metrics.clone();
    let receiver = Receiver {
        keys: Arc::new(keys),
        engine: telemetry.engine.clone(),
        metrics: metrics.clone(),
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let stopped = futures::FutureExt::shared(stopped);
    let server_stopped = stopped.clone();
    tokio::spawn(imagestream_operator::webhook::serve(
        listener,
        None,
        receiver,
        async move {
            let _ = server_stopped.await;
        },
    ));
    let registry = RegistryClient::new(RegistryClientConfig::default()).expect("registry client");
    tokio::spawn(
        imagestream_operator::controller::run::run_controllers_reporting(
            client,
            registry,
            config(POLLING_OFF),
            Some(namespace.to_owned()),
            Some("test".into()),
            telemetry,
            async move {
                let _ = stopped.await;
            },
        ),
    );
    NotifiedOperator {
        _stop: stop,
        metrics,
    }
}

/// The operator's requests for `repository` after the first `mark`: (HEAD, manifest GET, blob GET).
fn operator_requests(registry: &Registry, repository: &str, mark: usize) -> (usize, usize, usize) {
    let requests: Vec<_> = requests_since(registry, repository, mark)
        .into_iter()
        .filter(|r| r.user_agent.starts_with("imagestream-operator/"))
        .collect();
    let count = |method: &str, part: &str| {
        requests
            .iter()
            .filter(|r| r.method == method && r.path.contains(part))
            .count()
    };
    (
        count("HEAD", "/manifests/"),
        count("GET", "/manifests/"),
        count("GET", "/blobs/"),
    )
}

async fn bound_listener() -> (tokio::net::TcpListener, u16) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    (listener, port)
}

/// A stream `app` tracking `reference` (scheduled, so only the interval or a push re-imports it),
/// imported once.
async fn imported_stream(client: &Client, ns: &str, reference: &str, digest: &str) {
    let streams = Api::<ImageStream>::namespaced(client.clone(), ns);
    create_stream(&streams, "app", vec![docker_tag("v1", reference, true)]).await;
    eventually("the first import", Duration::from_secs(60), || async {
        let stream = streams.get("app").await.map_err(|e| e.to_string())?;
        match current_image(&stream, "v1") {
            Some(current) if current == digest => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
}

#[tokio::test]
async fn a_push_notified_by_the_registry_reaches_the_stream_and_its_deployment_with_one_head() {
    let env = crate::support::env().await;
    let (listener, port) = bound_listener().await;
    let registry = env
        .start_registry(
            "notifying",
            &RegistryOptions {
                notifications: Some(NotificationEndpoint {
                    url: format!("http://127.0.0.1:{port}/notifications/distribution"),
                    bearer_token: Some(TOKEN.into()),
                    // The operator's own HEADs and GETs come back as pull events: ignored.
                    ignore_pulls: false,
                }),
                ..RegistryOptions::default()
            },
        )
        .await
        .unwrap();
    let ns = env.namespace("notify").await;
    let client = env.client().await;
    let operator = start_notified_operator(
        client.clone(),
        &ns,
        listener,
        Keys::from_pairs([(Format::Distribution, TOKEN.as_bytes())]),
    )
    .await;
    let pusher = ImagePusher::for_registry(&registry);
    let repository = unique("pushed");
    let first = pusher
        .push_random(&repository, "v1", ManifestFormat::Oci)
        .await
        .unwrap();
    let reference = format!("{}/{repository}:v1", registry.host());
    imported_stream(&client, &ns, &reference, &first.digest).await;
    let deployments = Api::<Deployment>::namespaced(client.clone(), &ns);
    deployments
        .create(&PostParams::default(), &triggered_deployment("web", "app"))
        .await
        .unwrap();

    let mark = registry.requests_for(&repository).len();
    let moved = pusher
        .push_random(&repository, "v1", ManifestFormat::Oci)
        .await
        .unwrap();
    eventually(
        "the Deployment on the pushed digest",
        Duration::from_secs(30),
        || async {
            let deployment = deployments.get("web").await.map_err(|e| e.to_string())?;
            let image = deployment.spec.unwrap().template.spec.unwrap().containers[0]
                .image
                .clone()
                .unwrap_or_default();
            image.ends_with(&moved.digest).then_some(()).ok_or(image)
        },
    )
    .await;
    let streams = Api::<ImageStream>::namespaced(client.clone(), &ns);
    let stream = streams.get("app").await.unwrap();
    assert_eq!(
        current_image(&stream, "v1").as_deref(),
        Some(moved.digest.as_str())
    );
    // The pull events for the operator's own requests arrive too, and are ignored.
    eventually(
        "the pull events, ignored",
        Duration::from_secs(20),
        || async {
            let ignored = operator
                .metrics
                .notification_count("distribution", "ignored");
            (ignored >= 2)
                .then_some(())
                .ok_or(format!("{ignored} ignored"))
        },
    )
    .await;
    let accepted = operator
        .metrics
        .notification_count("distribution", "accepted");
    assert!(accepted >= 1, "{accepted} accepted");
    assert_eq!(
        operator_requests(&registry, &repository, mark),
        (1, 1, 1),
        "one HEAD, one manifest GET and one config GET for the push"
    );
}

#[tokio::test]
async fn a_hundred_notifications_of_one_push_cost_one_head_and_forged_ones_none() {
    let env = crate::support::env().await;
    let (listener, port) = bound_listener().await;
    let ns = env.namespace("notify").await;
    let client = env.client().await;
    let operator = start_notified_operator(
        client.clone(),
        &ns,
        listener,
        Keys::from_pairs([(Format::Generic, TOKEN.as_bytes())]),
    )
    .await;
    let registry = env.registry();
    let pusher = ImagePusher::for_registry(registry);
    let repository = unique("burst");
    let first = pusher
        .push_random(&repository, "v1", ManifestFormat::Oci)
        .await
        .unwrap();
    let reference = format!("{}/{repository}:v1", registry.host());
    imported_stream(&client, &ns, &reference, &first.digest).await;

    let url = format!("http://127.0.0.1:{port}/notifications/generic");
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::new();
    let mark = registry.requests_for(&repository).len();
    // Without the token: refused, counted, nothing asked.
    let forged = http
        .post(&url)
        .header("Authorization", "Bearer wrong")
        .json(&json!({"repository": format!("{}/{repository}", registry.host()), "tag": "v1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 401);
    assert_eq!(
        operator
            .metrics
            .notification_count("generic", "unauthenticated"),
        1
    );

    let moved = pusher
        .push_random(&repository, "v1", ManifestFormat::Oci)
        .await
        .unwrap();
    let body = json!({
        "repository": format!("{}/{repository}", registry.host()),
        "tag": "v1",
        "digest": moved.digest,
    });
    let answers = futures::future::join_all((0..100).map(|_| {
        http.post(&url)
            .header("Authorization", format!("Bearer {TOKEN}"))
            .json(&body)
            .send()
    }))
    .await;
    assert!(
        answers
            .iter()
            .all(|a| a.as_ref().is_ok_and(|a| a.status() == 202))
    );
    let streams = Api::<ImageStream>::namespaced(client.clone(), &ns);
    eventually("the pushed digest", Duration::from_secs(30), || async {
        let stream = streams.get("app").await.map_err(|e| e.to_string())?;
        let current = current_image(&stream, "v1");
        (current.as_deref() == Some(moved.digest.as_str()))
            .then_some(())
            .ok_or(format!("{current:?}"))
    })
    .await;
    // Anything a later notification could still cause has had its window.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(operator_requests(registry, &repository, mark), (1, 1, 1));
    assert_eq!(
        operator.metrics.notification_count("generic", "accepted"),
        100
    );
}

#[tokio::test]
async fn the_replica_running_the_controllers_labels_its_pod_for_the_webhook_service() {
    use imagestream_operator::controller::run::LEADER_LABEL;
    use k8s_openapi::api::core::v1::{Pod, ServiceAccount};
    let env = crate::support::env().await;
    let ns = env.namespace("leader-label").await;
    let client = env.client().await;
    let account: ServiceAccount =
        serde_json::from_value(json!({"metadata": {"name": "operator"}})).unwrap();
    Api::<ServiceAccount>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &account)
        .await
        .unwrap();
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "operator-0", "labels": {"app.kubernetes.io/name": "imagestream-operator"}},
        "spec": {
            "serviceAccountName": "operator",
            "automountServiceAccountToken": false,
            "containers": [{"name": "operator", "image": "imagestream-operator"}],
        },
    }))
    .unwrap();
    let pods = Api::<Pod>::namespaced(client.clone(), &ns);
    pods.create(&PostParams::default(), &pod).await.unwrap();
    let label = || async {
        let pod = pods.get("operator-0").await.map_err(|e| e.to_string())?;
        Ok::<_, String>(
            pod.metadata
                .labels
                .unwrap_or_default()
                .get(LEADER_LABEL.0)
                .cloned(),
        )
    };
    assert_eq!(label().await.unwrap(), None);

    let telemetry = Telemetry {
        pod: Some((ns.clone(), "operator-0".into())),
        ..Telemetry::default()
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let registry = RegistryClient::new(RegistryClientConfig::default()).expect("registry client");
    let controllers = tokio::spawn(
        imagestream_operator::controller::run::run_controllers_reporting(
            client.clone(),
            registry,
            config(POLLING_OFF),
            Some(ns.clone()),
            Some("test".into()),
            telemetry,
            async move {
                let _ = stopped.await;
            },
        ),
    );
    eventually("the leader label", Duration::from_secs(60), || async {
        match label().await? {
            Some(value) if value == LEADER_LABEL.1 => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    let _ = stop.send(());
    let _ = tokio::time::timeout(Duration::from_secs(30), controllers).await;
    eventually("the label removed", Duration::from_secs(30), || async {
        match label().await? {
            None => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
}
