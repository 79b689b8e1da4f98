//! The operator's Prometheus metrics: one registry, prefixed `imagestream_operator`, holding the
//! reconcile, import, trigger-write and leadership series and the registry client's own series.
//! Labels name controllers, results, reasons, workload kinds and registry hosts — never objects.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::registry::RegistryMetrics;

/// The prefix of every metric name.
pub const METRICS_PREFIX: &str = "imagestream_operator";

/// The `controller` label of the ImageStream controller.
pub const IMAGE_STREAM_CONTROLLER: &str = "imagestream";

/// The `controller` label of the trigger controller.
pub const TRIGGER_CONTROLLER: &str = "triggers";

/// The workload kinds image-change triggers write to, the values of the `kind` label.
pub const TRIGGER_WORKLOAD_KINDS: [&str; 4] = ["Deployment", "StatefulSet", "DaemonSet", "CronJob"];

/// The content type of [`Metrics::encode`]'s text.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Labels of per-controller samples.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ControllerLabels {
    /// Which controller reconciled: `imagestream` or `triggers`.
    pub controller: String,
}

/// Labels of a failed reconcile.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct FailureLabels {
    /// Which controller reconciled.
    pub controller: String,
    /// The error's PascalCase reason, e.g. `StatusWriteFailed`.
    pub reason: String,
}

/// Labels of an import.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ImportLabels {
    /// One of [`ImportResult`]'s labels.
    pub result: String,
}

/// Labels of an import refused by a limit.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct RefusalLabels {
    /// One of [`IMPORT_REFUSAL_REASONS`].
    pub reason: String,
}

/// The `reason` label of a refused import: a manifest list with more entries than
/// `--max-manifest-list-children`, an image with more layers than `--max-image-layers`, and an
/// Image the API server refused to store for its size.
pub const IMPORT_REFUSAL_REASONS: [&str; 3] =
    ["ManifestListTooLarge", "TooManyLayers", "ImageTooLarge"];

/// Labels of a trigger write.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct TriggerWriteLabels {
    /// The kind of the workload written: `Deployment`, `StatefulSet`, `DaemonSet` or `CronJob`.
    pub kind: String,
}

/// Labels of a push notification received.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct NotificationLabels {
    /// The format (the path of the receiver): `distribution`, `harbor`, … or `unknown`.
    pub source: String,
    /// One of [`NOTIFICATION_RESULTS`].
    pub result: String,
}

/// The `result` label of a notification: a push that moved tags to "import now" (`accepted`), an
/// event with nothing to do (`ignored`: pulls, deletes, other actions, repositories nobody tracks),
/// a request without valid credentials (`unauthenticated`), a body that is not the format's
/// (`malformed`, including too large), a format with no key in the Secret (`disabled`) and a
/// request received while this instance does not import (`unavailable`: standing by).
pub const NOTIFICATION_RESULTS: [&str; 6] = [
    "accepted",
    "ignored",
    "unauthenticated",
    "malformed",
    "disabled",
    "unavailable",
];

/// Labels of an in-memory cache's size.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct CacheLabels {
    /// One of [`REMEMBERED_CACHES`].
    pub cache: String,
}

/// The in-memory caches whose sizes are exported: per-stream memory, shared registry answers,
/// manifest-list child choices, and parsed pull secrets.
pub const REMEMBERED_CACHES: [&str; 4] = [
    "stream_memory",
    "registry_answers",
    "list_choices",
    "pull_secrets",
];

/// How one tag's import ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportResult {
    /// The tag now points at an image it did not point at before.
    Imported,
    /// The registry answered with the image the tag already had.
    Unchanged,
    /// The import failed (the tag's condition says why).
    Failed,
}

impl ImportResult {
    /// The `result` label.
    pub fn label(self) -> &'static str {
        match self {
            ImportResult::Imported => "imported",
            ImportResult::Unchanged => "unchanged",
            ImportResult::Failed => "failed",
        }
    }
}

fn reconcile_histogram() -> Histogram {
    // 5 ms … ~82 s: a reconcile served from caches up to one waiting on slow registries.
    Histogram::new(exponential_buckets(0.005, 2.0, 15))
}

/// Every metric of the operator, registered in one registry. Share it as `Arc<Metrics>`.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    reconciles: Family<ControllerLabels, Counter>,
    reconcile_failures: Family<FailureLabels, Counter>,
    reconcile_duration: Family<ControllerLabels, Histogram, fn() -> Histogram>,
    imports: Family<ImportLabels, Counter>,
    import_refusals: Family<RefusalLabels, Counter>,
    trigger_writes: Family<TriggerWriteLabels, Counter>,
    leader: Gauge,
    remembered: Family<CacheLabels, Gauge>,
    notifications: Family<NotificationLabels, Counter>,
    push_import_latency: Histogram,
    registry_client: RegistryMetrics,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// New metrics with fresh registry-client metrics.
    pub fn new() -> Self {
        Self::with_registry_metrics(RegistryMetrics::new())
    }

    /// New metrics that also expose `registry_client`; give the same instance to the
    /// `RegistryClientConfig` so the client records into what is scraped.
    pub fn with_registry_metrics(registry_client: RegistryMetrics) -> Self {
        let mut registry = Registry::with_prefix(METRICS_PREFIX);
        let reconciles = Family::<ControllerLabels, Counter>::default();
        let reconcile_failures = Family::<FailureLabels, Counter>::default();
        let reconcile_duration =
            Family::<ControllerLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                reconcile_histogram,
            );
        let imports = Family::<ImportLabels, Counter>::default();
        let import_refusals = Family::<RefusalLabels, Counter>::default();
        let trigger_writes = Family::<TriggerWriteLabels, Counter>::default();
        let leader = Gauge::default();
        let remembered = Family::<CacheLabels, Gauge>::default();
        let notifications = Family::<NotificationLabels, Counter>::default();
        // 1 ms … ~33 s: a HEAD on a local registry up to a push deferred by a registry's wait.
        let push_import_latency = Histogram::new(exponential_buckets(0.001, 2.0, 16));
        registry.register(
            "notifications",
            "Push notifications received, per source (format) and result (accepted, ignored, unauthenticated, malformed, disabled, unavailable)",
            notifications.clone(),
        );
        registry.register(
            "push_import_latency_seconds",
            "Time from a push notification to the answer of the ask it caused, per distinct tag",
            push_import_latency.clone(),
        );
        registry.register(
            "reconciles",
            "Reconciles run, per controller",
            reconciles.clone(),
        );
        registry.register(
            "reconcile_failures",
            "Reconciles that ended with a transient error and will be retried, per controller and reason",
            reconcile_failures.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Time one reconcile took, per controller",
            reconcile_duration.clone(),
        );
        registry.register(
            "imports",
            "Tag imports from registries, by result (imported, unchanged, failed)",
            imports.clone(),
        );
        registry.register(
            "import_refusals",
            "Imports refused by a limit that protects shared resources, by reason (ManifestListTooLarge, TooManyLayers, ImageTooLarge); counted when decided, not when a remembered refusal answers again",
            import_refusals.clone(),
        );
        registry.register(
            "trigger_writes",
            "Image fields written to workloads by image-change triggers, per workload kind",
            trigger_writes.clone(),
        );
        registry.register(
            "leader",
            "1 while this instance holds the leader Lease (or runs without leader election), else 0",
            leader.clone(),
        );
        registry.register(
            "remembered_entries",
            "Entries held in memory after the last housekeeping round, per cache (stream_memory, registry_answers, list_choices, pull_secrets)",
            remembered.clone(),
        );
        registry_client.register(&mut registry);
        // Every controller's series exist from the start, so a dashboard shows 0, not "no data".
        for controller in [IMAGE_STREAM_CONTROLLER, TRIGGER_CONTROLLER] {
            let labels = ControllerLabels {
                controller: controller.to_owned(),
            };
            let _ = reconciles.get_or_create(&labels);
        }
        for result in [
            ImportResult::Imported,
            ImportResult::Unchanged,
            ImportResult::Failed,
        ] {
            let _ = imports.get_or_create(&ImportLabels {
                result: result.label().to_owned(),
            });
        }
        for reason in IMPORT_REFUSAL_REASONS {
            let _ = import_refusals.get_or_create(&RefusalLabels {
                reason: reason.to_owned(),
            });
        }
        for cache in REMEMBERED_CACHES {
            let _ = remembered.get_or_create(&CacheLabels {
                cache: cache.to_owned(),
            });
        }
        for kind in TRIGGER_WORKLOAD_KINDS {
            let _ = trigger_writes.get_or_create(&TriggerWriteLabels {
                kind: kind.to_owned(),
            });
        }
        Self {
            registry,
            reconciles,
            reconcile_failures,
            reconcile_duration,
            imports,
            import_refusals,
            trigger_writes,
            leader,
            remembered,
            notifications,
            push_import_latency,
            registry_client,
        }
    }

    /// Counts one notification (or one event of it) from `source` with `result`, one of
    /// [`NOTIFICATION_RESULTS`].
    pub fn count_notification(&self, source: &str, result: &str, events: u64) {
        self.notifications
            .get_or_create(&NotificationLabels {
                source: source.to_owned(),
                result: result.to_owned(),
            })
            .inc_by(events);
    }

    /// Notifications counted from `source` with `result`.
    pub fn notification_count(&self, source: &str, result: &str) -> u64 {
        self.notifications
            .get(&NotificationLabels {
                source: source.to_owned(),
                result: result.to_owned(),
            })
            .map_or(0, |c| c.get())
    }

    /// Records the time from a push notification to the answer of the ask it caused.
    pub fn observe_push_import(&self, elapsed: Duration) {
        self.push_import_latency.observe(elapsed.as_secs_f64());
    }

    /// The registry client's metrics, for `RegistryClientConfig { metrics, .. }`.
    pub fn registry_client(&self) -> &RegistryMetrics {
        &self.registry_client
    }

    /// Records that `cache` (one of [`REMEMBERED_CACHES`]) holds `entries` entries.
    pub fn set_remembered(&self, cache: &str, entries: usize) {
        let labels = CacheLabels {
            cache: cache.to_owned(),
        };
        let _ = self
            .remembered
            .get_or_create(&labels)
            .set(i64::try_from(entries).unwrap_or(i64::MAX));
    }

    /// The size of `cache` last recorded by [`Metrics::set_remembered`].
    pub fn remembered(&self, cache: &str) -> i64 {
        let labels = CacheLabels {
            cache: cache.to_owned(),
        };
        self.remembered.get_or_create(&labels).get()
    }

    /// Counts one reconcile of `controller` that took `elapsed`; `failure` is the error's reason
    /// when it returned an error.
    pub fn observe_reconcile(&self, controller: &str, elapsed: Duration, failure: Option<&str>) {
        let labels = ControllerLabels {
            controller: controller.to_owned(),
        };
        self.reconciles.get_or_create(&labels).inc();
        self.reconcile_duration
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
        if let Some(reason) = failure {
            self.reconcile_failures
                .get_or_create(&FailureLabels {
                    controller: controller.to_owned(),
                    reason: reason.to_owned(),
                })
                .inc();
        }
    }

    /// Counts one tag import.
    pub fn count_import(&self, result: ImportResult) {
        self.imports
            .get_or_create(&ImportLabels {
                result: result.label().to_owned(),
            })
            .inc();
    }

    /// Counts one import refused by a limit, with the refusal's `reason` (one of
    /// [`IMPORT_REFUSAL_REASONS`]).
    pub fn count_import_refusal(&self, reason: &str) {
        self.import_refusals
            .get_or_create(&RefusalLabels {
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// Refused imports counted with `reason`.
    pub fn import_refusal_count(&self, reason: &str) -> u64 {
        self.import_refusals
            .get(&RefusalLabels {
                reason: reason.to_owned(),
            })
            .map_or(0, |c| c.get())
    }

    /// Counts one write of image fields to a workload of `kind` (`Deployment`, `StatefulSet`, …).
    pub fn count_trigger_write(&self, kind: &str) {
        self.trigger_writes
            .get_or_create(&TriggerWriteLabels {
                kind: kind.to_owned(),
            })
            .inc();
    }

    /// Records whether this instance leads.
    pub fn set_leader(&self, leading: bool) {
        self.leader.set(i64::from(leading));
    }

    /// Reconciles counted for `controller`.
    pub fn reconcile_count(&self, controller: &str) -> u64 {
        self.reconciles
            .get(&ControllerLabels {
                controller: controller.to_owned(),
            })
            .map_or(0, |c| c.get())
    }

    /// Imports counted with `result`.
    pub fn import_count(&self, result: ImportResult) -> u64 {
        self.imports
            .get(&ImportLabels {
                result: result.label().to_owned(),
            })
            .map_or(0, |c| c.get())
    }

    /// Trigger writes counted for `kind`.
    pub fn trigger_write_count(&self, kind: &str) -> u64 {
        self.trigger_writes
            .get(&TriggerWriteLabels {
                kind: kind.to_owned(),
            })
            .map_or(0, |c| c.get())
    }

    /// Every metric as OpenMetrics text (served with [`OPENMETRICS_CONTENT_TYPE`]).
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::metrics::RequestOutcome;

    #[test]
    fn reconciles_are_counted_and_timed_per_controller_with_failures_by_reason() {
        let metrics = Metrics::new();
        metrics.observe_reconcile(IMAGE_STREAM_CONTROLLER, Duration::from_millis(12), None);
        metrics.observe_reconcile(
            IMAGE_STREAM_CONTROLLER,
            Duration::from_millis(40),
            Some("StatusWriteFailed"),
        );
        let text = metrics.encode().unwrap();
        assert!(
            text.contains(r#"imagestream_operator_reconciles_total{controller="imagestream"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"imagestream_operator_reconcile_failures_total{controller="imagestream",reason="StatusWriteFailed"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(
                r#"imagestream_operator_reconcile_duration_seconds_count{controller="imagestream"} 2"#
            ),
            "{text}"
        );
        assert_eq!(metrics.reconcile_count(IMAGE_STREAM_CONTROLLER), 2);
    }

    #[test]
    fn every_import_result_and_controller_is_exported_before_it_happens() {
        let text = Metrics::new().encode().unwrap();
        for result in ["imported", "unchanged", "failed"] {
            assert!(
                text.contains(&format!(
                    r#"imagestream_operator_imports_total{{result="{result}"}} 0"#
                )),
                "{text}"
            );
        }
        assert!(
            text.contains(r#"imagestream_operator_reconciles_total{controller="triggers"} 0"#),
            "{text}"
        );
        assert!(
            text.contains(r#"imagestream_operator_trigger_writes_total{kind="CronJob"} 0"#),
            "{text}"
        );
    }

    #[test]
    fn imports_trigger_writes_and_leadership_are_counted() {
        let metrics = Metrics::new();
        metrics.count_import(ImportResult::Imported);
        metrics.count_import(ImportResult::Unchanged);
        metrics.count_import(ImportResult::Unchanged);
        metrics.count_trigger_write("Deployment");
        metrics.set_leader(true);
        assert_eq!(metrics.import_count(ImportResult::Unchanged), 2);
        assert_eq!(metrics.import_count(ImportResult::Failed), 0);
        assert_eq!(metrics.trigger_write_count("Deployment"), 1);
        let text = metrics.encode().unwrap();
        assert!(
            text.contains(r#"imagestream_operator_trigger_writes_total{kind="Deployment"} 1"#),
            "{text}"
        );
        assert!(text.contains("imagestream_operator_leader 1"), "{text}");
    }

    #[test]
    fn import_refusals_are_counted_by_reason_and_every_reason_exists_from_the_start() {
        let metrics = Metrics::new();
        let text = metrics.encode().unwrap();
        for reason in IMPORT_REFUSAL_REASONS {
            assert!(
                text.contains(&format!(
                    r#"imagestream_operator_import_refusals_total{{reason="{reason}"}} 0"#
                )),
                "{text}"
            );
        }
        metrics.count_import_refusal("TooManyLayers");
        metrics.count_import_refusal("TooManyLayers");
        assert_eq!(metrics.import_refusal_count("TooManyLayers"), 2);
        assert_eq!(metrics.import_refusal_count("ImageTooLarge"), 0);
        let text = metrics.encode().unwrap();
        assert!(
            text.contains(
                r#"imagestream_operator_import_refusals_total{reason="TooManyLayers"} 2"#
            ),
            "{text}"
        );
    }

    #[test]
    fn the_registry_clients_metrics_are_exported_from_the_shared_instance() {
        let client_metrics = RegistryMetrics::new();
        let metrics = Metrics::with_registry_metrics(client_metrics.clone());
        client_metrics.observe_request(
            "r.example",
            "HEAD",
            RequestOutcome::Status(200),
            Duration::from_millis(3),
        );
        let text = metrics.encode().unwrap();
        assert!(
            text.contains(r#"imagestream_operator_registry_requests_total{registry="r.example",method="HEAD",result="2xx"} 1"#),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
