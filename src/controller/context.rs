//! What every reconcile shares: the API client, the registry client, in-memory stores of Images and
//! pull secrets, the Event recorder, per-stream memory (schedule phase, served import requests,
//! retries) and the cache that lets many streams tracking one tag share one registry answer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::runtime::events::Recorder;
use kube::runtime::reflector::Store;
use tokio::time::Instant;

use crate::api::{Image, ImageStream};
use crate::domain::keyring::{Keyring, PullSecret, should_use};
use crate::domain::platform::Platform;
use crate::registry::{ManifestHead, RegistryClient};
use kube::core::DeserializeGuard;

/// Operator-wide settings of the ImageStream controller (from the `run` flags).
#[derive(Debug, Clone)]
pub struct ControllerConfig {
    /// How often scheduled tags are checked.
    pub import_interval: Duration,
    /// History entries kept per tag (0: no limit).
    pub max_tag_history: usize,
    /// The platform chosen from a manifest list in `Legacy` mode when the tag does not say.
    pub default_platform: Platform,
    /// Internal registry host name for `status.dockerImageRepository` and `Local` references.
    pub internal_registry_host: Option<String>,
    /// Public registry host name for `status.publicDockerImageRepository`.
    pub public_registry_host: Option<String>,
    /// How long an Image must be unreferenced (and old) before it is deleted; `None` keeps every
    /// Image.
    pub image_gc_grace: Option<Duration>,
    /// Registries image streams may import from (empty: all).
    pub allowed_registries: crate::domain::registry_allowlist::RegistryAllowlist,
}

/// `namespace/name` of an object: the key of per-stream memory and failure counts (streams) and of
/// parsed pull secrets (Secrets), so the code that fills these maps and the housekeeping that
/// trims them agree.
pub fn object_key(object: &impl kube::ResourceExt) -> String {
    format!(
        "{}/{}",
        object.namespace().unwrap_or_default(),
        object.name_any()
    )
}

/// Per-stream memory that does not belong in the API: it is cheap to lose on restart.
#[derive(Debug, Clone, Default)]
pub struct StreamMemory {
    /// When the stream's scheduled tags are checked next.
    pub next_scheduled_check: Option<Instant>,
    /// The last value of the import-request annotation that was served.
    pub served_request: Option<String>,
    /// Tags whose last import failed transiently: attempt count and when to retry.
    pub retries: HashMap<String, (u32, Instant)>,
    /// Tags whose mirror plan changed since they were last imported.
    pub mirror_pending: std::collections::HashSet<String>,
}

/// Key of the shared registry-answer cache: one registry, repository and tag, asked with one set of
/// credentials and one transport setting. Streams whose keys are equal share a HEAD; streams with
/// other credentials never see each other's answers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HeadKey {
    /// API host.
    pub host: String,
    /// Repository path.
    pub repository: String,
    /// Tag or digest.
    pub reference: String,
    /// Whether plain HTTP / unverified TLS was allowed.
    pub insecure: bool,
    /// Identities of the credentials offered, in order (empty: anonymous).
    pub credentials: Vec<String>,
}

/// One cached registry answer; the mutex makes concurrent askers wait for the first one.
pub type HeadSlot = Arc<tokio::sync::Mutex<Option<(Instant, ManifestHead)>>>;

/// Everything reconciles share.
pub struct Context {
    /// API client.
    pub client: Client,
    /// Registry client.
    pub registry: RegistryClient,
    /// Settings.
    pub config: ControllerConfig,
    /// All Image objects.
    pub images: Store<Image>,
    /// All ImageStreams (the controller's own cache), for copies from other streams.
    pub streams: Store<DeserializeGuard<ImageStream>>,
    /// Pull secrets of every namespace (only those of a stream's own namespace are ever used for it).
    pub secrets: Vec<Store<Secret>>,
    /// Event recorder.
    pub recorder: Recorder,
    /// The mirror index imports plan with.
    pub mirrors: super::mirrors::MirrorState,
    /// Per-stream memory, by `namespace/name`.
    pub memory: Mutex<HashMap<String, StreamMemory>>,
    /// Recent registry answers shared between streams.
    pub heads: Mutex<HashMap<HeadKey, HeadSlot>>,
    /// Manifest-list digest and platform → the child chosen in `Legacy` mode and when that choice
    /// was last used, so an unchanged list costs a HEAD only.
    pub list_children: Mutex<HashMap<(String, String), (String, Instant)>>,
    /// Reconcile failure counts per stream, for exponential backoff.
    pub failures: Mutex<HashMap<String, u32>>,
    /// Parsed pull secrets by `namespace/name`, with the resourceVersion they were parsed at, so a
    /// rotated Secret is parsed again and an unchanged one is not.
    pub pull_secrets: Mutex<HashMap<String, (String, Option<PullSecret>)>>,
    /// Reconcile and import counts.
    pub metrics: Arc<crate::metrics::Metrics>,
}

impl Context {
    /// The memory of one stream, created on first use.
    pub fn with_memory<T>(&self, key: &str, f: impl FnOnce(&mut StreamMemory) -> T) -> T {
        let mut memory = self.memory.lock().unwrap_or_else(|p| p.into_inner());
        f(memory.entry(key.to_owned()).or_default())
    }

    /// The credentials of `namespace`: every usable pull secret of that namespace and of no other.
    /// A malformed secret is skipped, with one Warning Event on it per resourceVersion.
    pub fn keyring(&self, namespace: &str) -> Keyring {
        let mut parsed = Vec::new();
        let mut malformed = Vec::new();
        {
            let mut cache = self.pull_secrets.lock().unwrap_or_else(|p| p.into_inner());
            for store in &self.secrets {
                for secret in store.state() {
                    if secret.metadata.namespace.as_deref() != Some(namespace)
                        || !should_use(&secret)
                    {
                        continue;
                    }
                    let version = secret.metadata.resource_version.clone().unwrap_or_default();
                    let key = object_key(secret.as_ref());
                    if let Some((seen, entry)) = cache.get(&key)
                        && *seen == version
                    {
                        parsed.extend(entry.clone());
                        continue;
                    }
                    let entry = match PullSecret::from_secret(&secret) {
                        Ok(entry) => entry,
                        Err(err) => {
                            malformed.push((secret.clone(), err.to_string(), err.reason()));
                            None
                        }
                    };
                    parsed.extend(entry.clone());
                    cache.insert(key, (version, entry));
                }
            }
        }
        for (secret, message, reason) in malformed {
            tracing::warn!(secret = %format!("{namespace}/{}", secret.metadata.name.as_deref().unwrap_or_default()), %message, "skipping a malformed pull secret");
            let recorder = self.recorder.clone();
            tokio::spawn(async move {
                let event = kube::runtime::events::Event {
                    type_: kube::runtime::events::EventType::Warning,
                    reason: reason.to_owned(),
                    note: Some(format!("skipped for image imports: {message}")),
                    action: "ReadPullSecret".into(),
                    secondary: None,
                };
                let reference = kube::Resource::object_ref(secret.as_ref(), &());
                let _ = recorder.publish(&event, &reference).await;
            });
        }
        Keyring::new(namespace, parsed)
    }

    /// Counts a failed reconcile of `key` and returns the number of failures before this one.
    pub fn record_failure(&self, key: &str) -> u32 {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let count = failures.entry(key.to_owned()).or_insert(0);
        *count += 1;
        *count - 1
    }

    /// Forgets the failures of `key` after a successful reconcile.
    pub fn reset_failures(&self, key: &str) {
        self.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
    }

    /// The shared slot for one registry answer.
    pub fn head_slot(&self, key: HeadKey) -> HeadSlot {
        let mut heads = self.heads.lock().unwrap_or_else(|p| p.into_inner());
        heads.entry(key).or_default().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::mirror_plan::MirrorIndex;
    use crate::registry::RegistryClientConfig;
    use kube::runtime::events::Reporter;
    use kube::runtime::reflector;
    use kube::runtime::watcher;

    fn pull_secret(namespace: &str, name: &str, user: &str) -> Secret {
        use base64::Engine;
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:pw"));
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": namespace, "resourceVersion": "1"},
            "type": "kubernetes.io/dockerconfigjson",
            "data": {
                ".dockerconfigjson": base64::engine::general_purpose::STANDARD.encode(
                    serde_json::json!({"auths": {"registry.example.com": {"auth": auth}}}).to_string()
                )
            }
        }))
        .unwrap()
    }

    /// A context as a cluster-wide operator has it: one secret cache holding every namespace's
    /// pull secrets. No request is sent: the client points at a closed port and is never used.
    fn cluster_wide(secrets: &[Secret]) -> Context {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let config = kube::Config::new("http://127.0.0.1:9".parse().unwrap());
        let client = Client::try_from(config).unwrap();
        let (store, mut writer) = reflector::store::<Secret>();
        writer.apply_watcher_event(&watcher::Event::Init);
        for secret in secrets {
            writer.apply_watcher_event(&watcher::Event::InitApply(secret.clone()));
        }
        writer.apply_watcher_event(&watcher::Event::InitDone);
        Context {
            client: client.clone(),
            registry: RegistryClient::new(RegistryClientConfig::default()).unwrap(),
            config: ControllerConfig {
                import_interval: Duration::from_secs(900),
                max_tag_history: 10,
                default_platform: Platform::linux_amd64(),
                internal_registry_host: None,
                public_registry_host: None,
                image_gc_grace: None,
                allowed_registries: Default::default(),
            },
            images: reflector::store::<Image>().0,
            streams: reflector::store::<DeserializeGuard<ImageStream>>().0,
            secrets: vec![store],
            recorder: Recorder::new(
                client,
                Reporter {
                    controller: "test".into(),
                    instance: None,
                },
            ),
            mirrors: super::super::mirrors::MirrorState::new(MirrorIndex::default()),
            memory: Mutex::new(HashMap::new()),
            heads: Mutex::new(HashMap::new()),
            list_children: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
            pull_secrets: Mutex::new(HashMap::new()),
            metrics: Arc::new(crate::metrics::Metrics::new()),
        }
    }

    #[tokio::test]
    async fn one_cluster_wide_cache_never_lends_a_namespace_anothers_credentials() {
        let ctx = cluster_wide(&[
            pull_secret("team-a", "pull", "alice"),
            pull_secret("team-b", "pull", "bob"),
        ]);
        let users = |namespace: &str| {
            ctx.keyring(namespace)
                .lookup("registry.example.com/app")
                .into_iter()
                .map(|c| c.username)
                .collect::<Vec<_>>()
        };
        assert_eq!(users("team-a"), ["alice"]);
        assert_eq!(users("team-b"), ["bob"]);
        assert!(users("team-c").is_empty());
    }
}
