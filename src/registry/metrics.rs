//! Prometheus metrics of the registry client: requests and their latency per registry host and
//! method, rate-limit waits, and the registry's own `ratelimit-remaining`. Labels carry hosts,
//! never repositories or tags, and the number of distinct hosts is capped.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Hosts beyond this many distinct ones are reported as `other`: tenants name registry hosts, and
/// an unbounded label set would let them grow the operator's memory and every scrape.
pub const MAX_REGISTRY_LABELS: usize = 100;

/// The label of hosts beyond [`MAX_REGISTRY_LABELS`].
pub const OTHER_REGISTRY: &str = "other";

/// Labels of a request counter sample.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct RequestLabels {
    /// The host the request went to (registry or token service).
    pub registry: String,
    /// `HEAD`, `GET` or `POST`.
    pub method: String,
    /// `2xx`, `3xx`, `4xx`, `5xx`, `timeout` or `error` (no HTTP answer).
    pub result: String,
}

/// Labels of a latency sample.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct LatencyLabels {
    /// The host the request went to.
    pub registry: String,
    /// `HEAD`, `GET` or `POST`.
    pub method: String,
}

/// Labels of a rate-limit wait sample.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct WaitLabels {
    /// The host that was backing off.
    pub registry: String,
    /// `waited` (the call waited, then was sent) or `refused` (the wait was too long; not sent).
    pub action: String,
}

/// Labels of per-registry gauges.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct RegistryLabels {
    /// The registry host.
    pub registry: String,
}

fn latency_histogram() -> Histogram {
    // 5 ms … ~82 s: a HEAD on a local registry up to a timed-out pull of a large config.
    Histogram::new(exponential_buckets(0.005, 2.0, 15))
}

/// The client's metrics. Cheap to clone; clones share the same series.
#[derive(Debug, Clone)]
pub struct RegistryMetrics {
    requests: Family<RequestLabels, Counter>,
    latency: Family<LatencyLabels, Histogram, fn() -> Histogram>,
    rate_limit_waits: Family<WaitLabels, Counter>,
    ratelimit_remaining: Family<RegistryLabels, Gauge>,
    hosts: Arc<Mutex<HashSet<String>>>,
}

impl Default for RegistryMetrics {
    fn default() -> Self {
        Self {
            requests: Family::default(),
            latency: Family::new_with_constructor(latency_histogram),
            rate_limit_waits: Family::default(),
            ratelimit_remaining: Family::default(),
            hosts: Arc::default(),
        }
    }
}

impl RegistryMetrics {
    /// New metrics, not yet registered anywhere.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers the metrics in `registry` (names start with `registry_`; give `registry` a prefix
    /// such as `imagestream` for the full names).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "registry_requests",
            "HTTP requests sent to registries and token services, by result class",
            self.requests.clone(),
        );
        registry.register(
            "registry_request_duration_seconds",
            "Time from sending a registry request to having read its whole response",
            self.latency.clone(),
        );
        registry.register(
            "registry_rate_limit_waits",
            "Calls delayed or refused because a registry asked to wait (Retry-After) or is backing off after failures",
            self.rate_limit_waits.clone(),
        );
        registry.register(
            "registry_ratelimit_remaining",
            "The request budget the registry reported last in its ratelimit-remaining header",
            self.ratelimit_remaining.clone(),
        );
    }

    fn registry_label(&self, host: &str) -> String {
        let mut hosts = self.hosts.lock().unwrap_or_else(|e| e.into_inner());
        if hosts.contains(host) {
            return host.to_owned();
        }
        if hosts.len() < MAX_REGISTRY_LABELS {
            hosts.insert(host.to_owned());
            host.to_owned()
        } else {
            OTHER_REGISTRY.to_owned()
        }
    }

    /// Counts one request by how it ended, and its latency.
    pub fn observe_request(
        &self,
        host: &str,
        method: &str,
        outcome: RequestOutcome,
        elapsed: Duration,
    ) {
        let registry = self.registry_label(host);
        let result = match outcome {
            RequestOutcome::Status(status) => format!("{}xx", status / 100),
            RequestOutcome::Timeout => "timeout".to_owned(),
            RequestOutcome::Error => "error".to_owned(),
        };
        self.requests
            .get_or_create(&RequestLabels {
                registry: registry.clone(),
                method: method.to_owned(),
                result,
            })
            .inc();
        self.latency
            .get_or_create(&LatencyLabels {
                registry,
                method: method.to_owned(),
            })
            .observe(elapsed.as_secs_f64());
    }

    /// Counts a call that waited for, or was refused because of, a host's backoff.
    pub fn observe_wait(&self, host: &str, refused: bool) {
        self.rate_limit_waits
            .get_or_create(&WaitLabels {
                registry: self.registry_label(host),
                action: if refused { "refused" } else { "waited" }.to_owned(),
            })
            .inc();
    }

    /// Records the budget a registry reported in `ratelimit-remaining`.
    pub fn set_ratelimit_remaining(&self, host: &str, remaining: i64) {
        self.ratelimit_remaining
            .get_or_create(&RegistryLabels {
                registry: self.registry_label(host),
            })
            .set(remaining);
    }

    /// The number of requests counted for `host`, `method` and `result` (tests and diagnostics).
    pub fn request_count(&self, host: &str, method: &str, result: &str) -> u64 {
        self.requests
            .get(&RequestLabels {
                registry: host.to_owned(),
                method: method.to_owned(),
                result: result.to_owned(),
            })
            .map_or(0, |c| c.get())
    }

    /// The number of calls that waited (`refused = false`) or were refused for `host`.
    pub fn wait_count(&self, host: &str, refused: bool) -> u64 {
        self.rate_limit_waits
            .get(&WaitLabels {
                registry: host.to_owned(),
                action: if refused { "refused" } else { "waited" }.to_owned(),
            })
            .map_or(0, |c| c.get())
    }

    /// The last `ratelimit-remaining` of `host`, if it ever sent one.
    pub fn ratelimit_remaining(&self, host: &str) -> Option<i64> {
        self.ratelimit_remaining
            .get(&RegistryLabels {
                registry: host.to_owned(),
            })
            .map(|g| g.get())
    }
}

/// How a request ended, for the `result` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestOutcome {
    /// An HTTP answer with this status.
    Status(u16),
    /// No complete answer within the timeout.
    Timeout,
    /// No HTTP answer (connection, TLS or read error).
    Error,
}

#[cfg(test)]
mod tests {
    use prometheus_client::encoding::text::encode;

    use super::*;

    #[test]
    fn requests_are_counted_by_host_method_and_status_class() {
        let metrics = RegistryMetrics::new();
        let d = Duration::from_millis(5);
        metrics.observe_request("r.example", "HEAD", RequestOutcome::Status(200), d);
        metrics.observe_request("r.example", "HEAD", RequestOutcome::Status(204), d);
        metrics.observe_request("r.example", "GET", RequestOutcome::Status(404), d);
        metrics.observe_request("r.example", "GET", RequestOutcome::Timeout, d);
        assert_eq!(metrics.request_count("r.example", "HEAD", "2xx"), 2);
        assert_eq!(metrics.request_count("r.example", "GET", "4xx"), 1);
        assert_eq!(metrics.request_count("r.example", "GET", "timeout"), 1);
    }

    #[test]
    fn registered_metrics_encode_with_registry_labels_only() {
        let metrics = RegistryMetrics::new();
        let mut registry = Registry::with_prefix("imagestream");
        metrics.register(&mut registry);
        metrics.observe_request(
            "registry-1.docker.io",
            "HEAD",
            RequestOutcome::Status(200),
            Duration::from_millis(20),
        );
        metrics.observe_wait("registry-1.docker.io", true);
        metrics.set_ratelimit_remaining("registry-1.docker.io", 97);
        let mut text = String::new();
        encode(&mut text, &registry).unwrap();
        assert!(text.contains(
            r#"imagestream_registry_requests_total{registry="registry-1.docker.io",method="HEAD",result="2xx"} 1"#
        ), "{text}");
        assert!(
            text.contains(
                r#"imagestream_registry_ratelimit_remaining{registry="registry-1.docker.io"} 97"#
            ),
            "{text}"
        );
        assert!(text.contains(
            r#"imagestream_registry_rate_limit_waits_total{registry="registry-1.docker.io",action="refused"} 1"#
        ), "{text}");
        assert!(text.contains("imagestream_registry_request_duration_seconds_bucket"));
    }

    #[test]
    fn hosts_beyond_the_cap_share_the_other_label() {
        let metrics = RegistryMetrics::new();
        let d = Duration::ZERO;
        for i in 0..MAX_REGISTRY_LABELS {
            metrics.observe_request(&format!("h{i}"), "HEAD", RequestOutcome::Status(200), d);
        }
        metrics.observe_request("one-too-many", "HEAD", RequestOutcome::Status(200), d);
        metrics.observe_request("h0", "HEAD", RequestOutcome::Status(200), d);
        assert_eq!(metrics.request_count("one-too-many", "HEAD", "2xx"), 0);
        assert_eq!(metrics.request_count(OTHER_REGISTRY, "HEAD", "2xx"), 1);
        assert_eq!(metrics.request_count("h0", "HEAD", "2xx"), 2);
    }
}
