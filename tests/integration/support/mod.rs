//! Shared pieces of the integration tests that run the operator: starting it in-process scoped to
//! a test's namespace, creating streams, and waiting for and reading their status.

use std::time::Duration;

use futures::StreamExt;
use imagestream_operator::api::ImageStream;
use imagestream_operator::api::image_stream::{
    ImageStreamSpec, TagImportPolicy, TagReference, TagSource,
};
use imagestream_operator::api::triggers::TRIGGERS_ANNOTATION;
use imagestream_operator::controller::ControllerConfig;
use imagestream_operator::domain::platform::Platform;
use imagestream_operator::registry::{RegistryClient, RegistryClientConfig};
use imagestream_testenv::{Registry, RegistryRequest, TestEnv};
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{PostParams, WatchEvent, WatchParams};
use kube::{Api, Client};
use serde_json::json;
use tokio::sync::oneshot;

pub mod api_log;

/// The environment of this test binary (one control plane and registry for all tests), with the
/// operator's CustomResourceDefinitions installed.
pub async fn env() -> &'static TestEnv {
    TestEnv::global(imagestream_operator::api::crds).await
}

/// The operator, running until dropped.
pub struct Operator {
    stop: Option<oneshot::Sender<()>>,
}

impl Drop for Operator {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

pub fn config(interval: Duration) -> ControllerConfig {
    ControllerConfig {
        import_interval: interval,
        max_tag_history: 10,
        default_platform: Platform::linux_amd64(),
        internal_registry_host: None,
        public_registry_host: None,
        image_gc_grace: None,
        allowed_registries: Default::default(),
        concurrency: Default::default(),
        import_limits: Default::default(),
    }
}

pub async fn start_operator(client: Client, namespace: &str, config: ControllerConfig) -> Operator {
    start_operator_with(client, namespace, config, RegistryClientConfig::default()).await
}

/// Starts the operator with a registry client of its own settings (extra CA, timeouts).
pub async fn start_operator_with(
    client: Client,
    namespace: &str,
    config: ControllerConfig,
    registry: RegistryClientConfig,
) -> Operator {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let registry = RegistryClient::new(registry).expect("registry client");
    let (stop, stopped) = oneshot::channel::<()>();
    let namespace = namespace.to_owned();
    tokio::spawn(imagestream_operator::controller::run::run_controllers(
        client,
        registry,
        config,
        Some(namespace),
        Some("test".into()),
        async move {
            let _ = stopped.await;
        },
    ));
    Operator { stop: Some(stop) }
}

pub fn unique(prefix: &str) -> String {
    format!("{prefix}/r{:08x}", rand::random::<u32>())
}

pub fn docker_tag(name: &str, from: &str, scheduled: bool) -> TagReference {
    TagReference {
        name: name.into(),
        from: Some(TagSource {
            kind: Some("DockerImage".into()),
            name: Some(from.into()),
            ..TagSource::default()
        }),
        // The test registries serve plain HTTP, which a tag must allow explicitly.
        import_policy: Some(TagImportPolicy {
            scheduled: Some(scheduled),
            insecure: Some(true),
            ..TagImportPolicy::default()
        }),
        ..TagReference::default()
    }
}

pub async fn create_stream(
    api: &Api<ImageStream>,
    name: &str,
    tags: Vec<TagReference>,
) -> ImageStream {
    let stream = ImageStream::new(
        name,
        ImageStreamSpec {
            tags,
            ..ImageStreamSpec::default()
        },
    );
    api.create(&PostParams::default(), &stream).await.unwrap()
}

/// Polls the stream until `done` holds; panics with the last state after a generous timeout.
pub async fn wait_for(
    api: &Api<ImageStream>,
    name: &str,
    what: &str,
    done: impl Fn(&ImageStream) -> bool,
) -> ImageStream {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let stream = api.get(name).await.unwrap();
        if done(&stream) {
            return stream;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}; stream status: {}",
            serde_json::to_string_pretty(&stream.status).unwrap()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub fn current_image(stream: &ImageStream, tag: &str) -> Option<String> {
    stream
        .status
        .as_ref()?
        .tag(tag)?
        .items
        .first()
        .map(|e| e.image.clone())
}

pub fn history(stream: &ImageStream, tag: &str) -> Vec<String> {
    stream
        .status
        .as_ref()
        .and_then(|s| s.tag(tag))
        .map(|t| t.items.iter().map(|e| e.image.clone()).collect())
        .unwrap_or_default()
}

pub fn condition_reason(stream: &ImageStream, tag: &str) -> Option<String> {
    stream
        .status
        .as_ref()?
        .tag(tag)?
        .conditions
        .first()?
        .reason
        .clone()
}

/// The message of the tag's condition, or an empty string.
pub fn condition_message(stream: &ImageStream, tag: &str) -> String {
    stream
        .status
        .as_ref()
        .and_then(|s| s.tag(tag))
        .and_then(|t| t.conditions.first())
        .and_then(|c| c.message.clone())
        .unwrap_or_default()
}

/// The tag's conditions as stored (none when the tag has no status).
pub fn conditions(
    stream: &ImageStream,
    tag: &str,
) -> Vec<imagestream_operator::api::image_stream::TagEventCondition> {
    stream
        .status
        .as_ref()
        .and_then(|s| s.tag(tag))
        .map(|t| t.conditions.clone())
        .unwrap_or_default()
}

/// The Warning Events about the object `name` in `namespace`.
pub async fn warnings_on(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Vec<k8s_openapi::api::events::v1::Event> {
    Api::<k8s_openapi::api::events::v1::Event>::namespaced(client.clone(), namespace)
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| {
            e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name)
                && e.type_.as_deref() == Some("Warning")
        })
        .collect()
}

pub fn requests_since(registry: &Registry, repository: &str, mark: usize) -> Vec<RegistryRequest> {
    registry
        .requests_for(repository)
        .into_iter()
        .skip(mark)
        .collect()
}

/// Counts the modifications of `name` after `resource_version`, over `window`.
pub async fn modifications_after(
    api: &Api<ImageStream>,
    name: &str,
    resource_version: &str,
    window: Duration,
) -> usize {
    let params = WatchParams::default()
        .fields(&format!("metadata.name={name}"))
        .timeout(window.as_secs().max(1) as u32);
    let mut stream = api.watch(&params, resource_version).await.unwrap().boxed();
    let mut count = 0;
    let deadline = tokio::time::sleep(window);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            _ = &mut deadline => break,
            event = stream.next() => match event {
                Some(Ok(WatchEvent::Modified(_))) => count += 1,
                Some(Ok(_)) => {}
                _ => break,
            }
        }
    }
    count
}

/// Starts the operator scoped to `namespace` with a registry client made by the caller. Operators
/// given clones of one client share its connections, challenges and token cache, as the namespaces
/// served by one operator do: the way to test that tenants never borrow each other's credentials.
pub async fn start_operator_sharing(
    client: Client,
    namespace: &str,
    config: ControllerConfig,
    registry: RegistryClient,
) -> Operator {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(imagestream_operator::controller::run::run_controllers(
        client,
        registry,
        config,
        Some(namespace.to_owned()),
        Some("test".into()),
        async move {
            let _ = stopped.await;
        },
    ));
    Operator { stop: Some(stop) }
}

/// Starts the operator scoped to `namespace` and returns the metrics it reports into.
pub async fn start_operator_reporting(
    client: Client,
    namespace: &str,
    config: ControllerConfig,
) -> (
    Operator,
    std::sync::Arc<imagestream_operator::metrics::Metrics>,
) {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let telemetry = imagestream_operator::controller::run::Telemetry::default();
    let metrics = telemetry.metrics.clone();
    let registry = RegistryClient::new(RegistryClientConfig::default()).expect("registry client");
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(
        imagestream_operator::controller::run::run_controllers_reporting(
            client,
            registry,
            config,
            Some(namespace.to_owned()),
            Some("test".into()),
            telemetry,
            async move {
                let _ = stopped.await;
            },
        ),
    );
    (Operator { stop: Some(stop) }, metrics)
}

/// Asks `check` every 200 ms until it answers `Ok`, and returns that value. `Err` says what was
/// seen instead; after `timeout` the test fails with `what` and the last of those answers.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match check().await {
            Ok(value) => return value,
            Err(seen) => assert!(
                tokio::time::Instant::now() < deadline,
                "timed out after {timeout:?} waiting for {what}; last seen: {seen}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The reasons of the Events in `namespace`, in the order the API server lists them.
pub async fn event_reasons(client: &Client, namespace: &str) -> Vec<String> {
    events_in(client, namespace)
        .await
        .into_iter()
        .filter_map(|e| e.reason)
        .collect()
}

/// The notes of every Event in `namespace`.
pub async fn event_notes(client: &Client, namespace: &str) -> Vec<String> {
    events_in(client, namespace)
        .await
        .into_iter()
        .filter_map(|e| e.note)
        .collect()
}

async fn events_in(client: &Client, namespace: &str) -> Vec<k8s_openapi::api::events::v1::Event> {
    Api::<k8s_openapi::api::events::v1::Event>::namespaced(client.clone(), namespace)
        .list(&Default::default())
        .await
        .unwrap()
        .items
}

/// A kubeconfig that authenticates as `service_account` with a token from the TokenRequest API.
pub async fn service_account_kubeconfig(
    env: &imagestream_testenv::TestEnv,
    namespace: &str,
    service_account: &str,
    dir: &std::path::Path,
) -> std::path::PathBuf {
    let api = Api::<k8s_openapi::api::core::v1::ServiceAccount>::namespaced(
        env.client().await,
        namespace,
    );
    let request = k8s_openapi::api::authentication::v1::TokenRequest {
        spec: k8s_openapi::api::authentication::v1::TokenRequestSpec {
            audiences: vec![],
            expiration_seconds: Some(3600),
            ..Default::default()
        },
        ..Default::default()
    };
    let token = api
        .create_token_request(service_account, &PostParams::default(), &request)
        .await
        .unwrap()
        .status
        .unwrap()
        .token;
    let admin = std::fs::read_to_string(env.kubeconfig()).unwrap();
    let mut config = String::new();
    for line in admin.lines() {
        if line.trim_start().starts_with("token:") {
            config.push_str(&format!("    token: {token}\n"));
        } else {
            config.push_str(line);
            config.push('\n');
        }
    }
    let path = dir.join(format!("{service_account}.kubeconfig"));
    std::fs::write(&path, config).unwrap();
    path
}

/// A Deployment whose container `app` follows `stream:v1`.
pub fn triggered_deployment(name: &str, stream: &str) -> Deployment {
    let triggers = json!([{
        "from": {"kind": "ImageStreamTag", "name": format!("{stream}:v1")},
        "fieldPath": "spec.template.spec.containers[?(@.name==\"app\")].image",
    }]);
    serde_json::from_value(json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "annotations": {TRIGGERS_ANNOTATION: triggers.to_string()}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": "placeholder"}]},
            },
        },
    }))
    .unwrap()
}
