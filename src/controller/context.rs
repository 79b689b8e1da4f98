//! What every reconcile shares: the API client, the registry client, the shared caches (streams,
//! Images, pull secrets, the mirror index), the Event publisher, the import engine, and per-stream
//! memory (when a generation or an import request was first seen, mirror changes, the last status
//! write) that is cheap to lose on restart.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::runtime::reflector::Store;
use tokio::time::Instant;

use super::engine::ImportEngine;
use super::events::EventPublisher;
use super::stores::ImageCache;
use crate::api::ImageStream;
use crate::domain::keyring::{Keyring, PullSecret, should_use};
use crate::domain::mirror_plan::MirrorIndex;
use crate::domain::platform::Platform;
use crate::registry::RegistryClient;
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
    /// How many workers bound the controllers.
    pub concurrency: Concurrency,
    /// Manifest-list entries and image layers one Image may record (`--max-manifest-list-children`,
    /// `--max-image-layers`).
    pub import_limits: super::importer::ImportLimits,
}

/// How much the operator does at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Concurrency {
    /// ImageStream reconciles in flight (each writes at most one status and two Events).
    pub image_streams: usize,
    /// Trigger reconciles in flight, per workload kind.
    pub triggers: usize,
    /// Distinct tags resolved at a time, over every registry.
    pub imports: usize,
    /// Distinct tags resolved at a time against one registry host (the registry client's own
    /// per-host limit).
    pub imports_per_host: usize,
}

impl Default for Concurrency {
    fn default() -> Self {
        Self {
            image_streams: 16,
            triggers: 8,
            imports: 64,
            imports_per_host: 8,
        }
    }
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
    /// The stream's generation, and when this process first saw it.
    pub generation_seen: Option<(i64, Instant)>,
    /// The unserved import request, and when this process first saw it.
    pub request_seen: Option<(String, Instant)>,
    /// The last value of the import-request annotation that was served.
    pub served_request: Option<String>,
    /// Tags whose mirror plan changed, and when, until they are imported again.
    pub mirrors_changed: HashMap<String, Instant>,
    /// The resourceVersion the stream got from the operator's last status write: until the cache
    /// has caught up with it, the cached status is older than what was written.
    pub written_version: Option<String>,
    /// Consecutive reconciles that refused a cross-namespace copy, for the recheck delay.
    pub access_refusals: u32,
}

/// The current mirror index, swapped whole when a mirror object changes.
#[derive(Default)]
pub struct MirrorState {
    index: RwLock<Arc<MirrorIndex>>,
}

impl MirrorState {
    /// A state holding `index`.
    pub fn new(index: MirrorIndex) -> Self {
        Self {
            index: RwLock::new(Arc::new(index)),
        }
    }

    /// The index in force now.
    pub fn current(&self) -> Arc<MirrorIndex> {
        self.index.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Puts `index` in force and returns the one it replaces.
    pub fn replace(&self, index: MirrorIndex) -> Arc<MirrorIndex> {
        let mut guard = self.index.write().unwrap_or_else(|p| p.into_inner());
        std::mem::replace(&mut *guard, Arc::new(index))
    }
}

/// Everything reconciles share.
pub struct Context {
    /// API client.
    pub client: Client,
    /// Registry client.
    pub registry: RegistryClient,
    /// Settings.
    pub config: ControllerConfig,
    /// The namespace whose streams this operator serves, or `None` for every namespace (the
    /// stream cache holds every namespace's streams either way).
    pub namespace: Option<String>,
    /// Every Image, as much of each as imports and the collector read.
    pub images: ImageCache,
    /// Every ImageStream (the operator's one cache of them).
    pub streams: Store<DeserializeGuard<ImageStream>>,
    /// The stream cache itself, for when it first saw each stream's current spec and request.
    pub stream_cache: super::stores::StreamCache,
    /// Pull secrets of every namespace (only those of a stream's own namespace are ever used for it).
    pub secrets: Vec<Store<Secret>>,
    /// Event publisher.
    pub events: Arc<EventPublisher>,
    /// The mirror index imports plan with.
    pub mirrors: MirrorState,
    /// The import engine: distinct tags, their schedule and answers.
    pub engine: Arc<ImportEngine>,
    /// Per-stream memory, by `namespace/name`.
    pub memory: Mutex<HashMap<String, StreamMemory>>,
    /// Manifest-list digest and platform → the child chosen in `Legacy` mode and when that choice
    /// was last used, so an unchanged list costs a HEAD only.
    pub list_children: Mutex<HashMap<(String, String), (String, Instant)>>,
    /// Reconcile failure counts per stream, for exponential backoff.
    pub failures: Mutex<HashMap<String, u32>>,
    /// Parsed pull secrets by `namespace/name`, with the resourceVersion they were parsed at, so a
    /// rotated Secret is parsed again and an unchanged one is not.
    pub pull_secrets: Mutex<HashMap<String, (String, Option<PullSecret>)>>,
    /// Names of Images created that the Image cache may not have yet.
    pub created_images: Mutex<HashSet<String>>,
    /// One lock per digest whose content is being fetched, so it is fetched once.
    pub content_flights: Mutex<HashMap<String, Weak<tokio::sync::Mutex<()>>>>,
    /// Digests whose import a limit refused, so they are not downloaded again at every ask.
    pub refusals: super::importer::Refusals,
    /// Reconcile and import counts.
    pub metrics: Arc<crate::metrics::Metrics>,
}

/// The caches a [`Context`] reads.
pub struct Caches {
    /// Every Image.
    pub images: ImageCache,
    /// The stream cache.
    pub streams: super::stores::StreamCache,
    /// Pull secrets, one store per secret type.
    pub secrets: Vec<Store<Secret>>,
    /// The mirror index as the mirror caches hold it now.
    pub mirrors: MirrorIndex,
    /// The namespace whose streams are served, or `None` for all.
    pub namespace: Option<String>,
}

impl Context {
    /// A context with empty memory, publishing Events as `reporter` and waking the streams the
    /// import engine answers on `wakes`.
    pub fn new(
        client: Client,
        registry: RegistryClient,
        config: ControllerConfig,
        caches: Caches,
        reporter: kube::runtime::events::Reporter,
        metrics: Arc<crate::metrics::Metrics>,
        wakes: futures::channel::mpsc::UnboundedSender<super::engine::StreamRef>,
    ) -> Self {
        let engine = Arc::new(ImportEngine::new(
            config.import_interval,
            config.concurrency.imports,
            config.concurrency.imports_per_host,
            wakes,
            metrics.clone(),
        ));
        Self {
            events: Arc::new(EventPublisher::new(client.clone(), reporter)),
            client,
            registry,
            config,
            namespace: caches.namespace,
            images: caches.images,
            streams: caches.streams.store(),
            stream_cache: caches.streams,
            secrets: caches.secrets,
            mirrors: MirrorState::new(caches.mirrors),
            engine,
            memory: Mutex::new(HashMap::new()),
            list_children: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
            pull_secrets: Mutex::new(HashMap::new()),
            created_images: Mutex::new(HashSet::new()),
            content_flights: Mutex::new(HashMap::new()),
            refusals: super::importer::Refusals::default(),
            metrics,
        }
    }

    /// Whether this operator serves the streams of `namespace`.
    pub fn serves(&self, namespace: Option<&str>) -> bool {
        self.namespace
            .as_deref()
            .is_none_or(|served| namespace == Some(served))
    }

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
            let events = self.events.clone();
            tokio::spawn(async move {
                let event = kube::runtime::events::Event {
                    type_: kube::runtime::events::EventType::Warning,
                    reason: reason.to_owned(),
                    note: Some(format!("skipped for image imports: {message}")),
                    action: "ReadPullSecret".into(),
                    secondary: None,
                };
                let reference = kube::Resource::object_ref(secret.as_ref(), &());
                let _ = events.publish(&event, &reference).await;
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

    /// The lock that makes one fetch of `digest`'s content at a time.
    pub fn content_flight(&self, digest: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut flights = self
            .content_flights
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(flight) = flights.get(digest).and_then(Weak::upgrade) {
            return flight;
        }
        if flights.len() >= 1024 {
            flights.retain(|_, flight| flight.strong_count() > 0);
        }
        let flight = Arc::new(tokio::sync::Mutex::new(()));
        flights.insert(digest.to_owned(), Arc::downgrade(&flight));
        flight
    }

    /// Remembers that the Image `name` exists, until the Image cache has it.
    pub fn remember_created(&self, name: String) {
        self.created_images
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name);
    }

    /// Whether the Image `name` was created (or found to exist) by this process.
    pub fn created_recently(&self, name: &str) -> bool {
        self.created_images
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::image::ImageSummary;
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
        Context::new(
            client,
            RegistryClient::new(RegistryClientConfig::default()).unwrap(),
            ControllerConfig {
                import_interval: Duration::from_secs(900),
                max_tag_history: 10,
                default_platform: Platform::linux_amd64(),
                internal_registry_host: None,
                public_registry_host: None,
                image_gc_grace: None,
                allowed_registries: Default::default(),
                concurrency: Concurrency::default(),
                import_limits: Default::default(),
            },
            Caches {
                images: reflector::store::<DeserializeGuard<ImageSummary>>().0,
                streams: crate::controller::stores::StreamCache::new(),
                secrets: vec![store],
                mirrors: MirrorIndex::default(),
                namespace: None,
            },
            Reporter {
                controller: "test".into(),
                instance: None,
            },
            Arc::new(crate::metrics::Metrics::new()),
            futures::channel::mpsc::unbounded().0,
        )
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
