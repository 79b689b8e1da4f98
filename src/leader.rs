//! Leader election on a `coordination.k8s.io/v1` Lease (with kube-lease-manager): only the holder
//! runs the controllers. A standby takes the Lease when the holder stops renewing it (within the
//! lease duration) or at once when the holder releases it on shutdown. A leader that loses the Lease
//! stops its controllers and ends with [`ElectionError::LeadershipLost`], so the process exits
//! non-zero and its pod restarts as a standby with fresh caches.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder};
use thiserror::Error;
use tokio::sync::{Notify, oneshot, watch};
use tokio::time::Instant;

use crate::metrics::Metrics;
use crate::server::{ElectionStatus, Health};

/// The Lease's name unless `--leader-election-lease-name` says otherwise.
pub const DEFAULT_LEASE_NAME: &str = "imagestream-operator";

/// Where Kubernetes mounts the namespace of the pod's service account.
pub const SERVICE_ACCOUNT_NAMESPACE_FILE: &str =
    "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

/// The namespace of the Lease: the flag, else the pod's namespace (`POD_NAMESPACE`, from the
/// downward API), else the service account's namespace file, else `default`. Blank values count as
/// unset.
pub fn lease_namespace(
    flag: Option<&str>,
    pod_namespace: Option<&str>,
    service_account_namespace: Option<&str>,
) -> String {
    [flag, pod_namespace, service_account_namespace]
        .into_iter()
        .flatten()
        .map(str::trim)
        .find(|namespace| !namespace.is_empty())
        .unwrap_or("default")
        .to_owned()
}

/// The holder identity written into the Lease: the pod's name (unique among the replicas, and kept
/// by a restarted container, which then takes its own still-valid Lease back at once), else the host
/// name plus a random `suffix` so two processes on one host differ.
pub fn holder_identity(pod_name: Option<&str>, host_name: Option<&str>, suffix: &str) -> String {
    if let Some(pod) = pod_name.map(str::trim).filter(|p| !p.is_empty()) {
        return pod.to_owned();
    }
    let host = host_name
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .unwrap_or(DEFAULT_LEASE_NAME);
    format!("{host}-{suffix}")
}

/// How the Lease is held, derived from its duration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseTiming {
    /// How long the Lease is valid after a renewal (whole seconds, at least 2).
    pub duration: Duration,
    /// How long before expiry the holder renews: half the duration, so a failed renewal leaves half
    /// the duration to retry in.
    pub grace: Duration,
    /// Timeout of each Lease request, so a hung request cannot outlive the Lease.
    pub request_timeout: Duration,
}

impl LeaseTiming {
    /// The shortest lease duration accepted.
    pub const MIN_DURATION: Duration = Duration::from_secs(2);

    /// Timing for `duration`, rounded down to whole seconds (the Lease stores seconds) and raised to
    /// [`Self::MIN_DURATION`].
    pub fn for_duration(duration: Duration) -> Self {
        let seconds = duration.as_secs().max(Self::MIN_DURATION.as_secs());
        let grace = Duration::from_secs((seconds / 2).max(1));
        Self {
            duration: Duration::from_secs(seconds),
            grace,
            request_timeout: grace / 5,
        }
    }

    /// How long a leader keeps retrying failed renewals before it gives up. A renewal is first tried
    /// `grace` before expiry and a failed attempt takes up to two requests, so giving up after
    /// `grace - 3 × request_timeout` leaves one request timeout before any standby may take over.
    pub fn renew_retry_budget(&self) -> Duration {
        self.grace.saturating_sub(self.request_timeout * 3)
    }

    /// The longest pause between a standby's attempts after failures: half the duration, so a
    /// standby that keeps failing stays unready.
    pub fn max_standby_pause(&self) -> Duration {
        self.duration / 2
    }
}

/// A client configuration for the Lease requests: `config` with every timeout at the request
/// timeout and no automatic retries, so a renewal fails in time instead of hanging or retrying past
/// the Lease's expiry.
pub fn lease_client_config(mut config: kube::Config, timing: &LeaseTiming) -> kube::Config {
    config.connect_timeout = Some(timing.request_timeout);
    config.read_timeout = Some(timing.request_timeout);
    config.write_timeout = Some(timing.request_timeout);
    config.reset_reader_on_write = true;
    config.default_retry = false;
    config
}

/// Everything about this instance's candidacy.
#[derive(Debug, Clone)]
pub struct ElectionSettings {
    /// The Lease's name.
    pub lease_name: String,
    /// The Lease's namespace.
    pub namespace: String,
    /// The holder identity of this instance.
    pub identity: String,
    /// Lease timing.
    pub timing: LeaseTiming,
    /// How long a leader waits for its controllers to finish the reconciles in flight on shutdown
    /// before it releases the Lease anyway.
    pub drain_timeout: Duration,
}

/// How leading ended other than by shutdown.
#[derive(Debug, Error)]
pub enum ElectionError {
    /// Another instance holds the Lease, or renewals failed until it was about to expire.
    #[error("lost the leader Lease {namespace}/{name}: {why}")]
    LeadershipLost {
        namespace: String,
        name: String,
        why: String,
    },
    /// The controllers returned while this instance led (and the Lease was released).
    #[error("the controllers stopped on their own while this instance was the leader")]
    ControllersStopped,
}

impl ElectionError {
    /// The PascalCase word for logs and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            ElectionError::LeadershipLost { .. } => "LeadershipLost",
            ElectionError::ControllersStopped => "ControllersStopped",
        }
    }
}

/// The clients leader election uses.
#[derive(Clone)]
pub struct ElectionClients {
    /// For Lease reads and writes, made with [`lease_client_config`].
    pub lease: Client,
    /// For watching the Lease (no read timeout: a watch is long-lived).
    pub watch: Client,
}

/// Stands by until this instance holds the Lease, then runs `work` until `shutdown` turns true,
/// then stops it (waiting up to the drain timeout while still renewing) and releases the Lease.
/// `work` is given a receiver that resolves when it should stop.
pub async fn run_elected<W, F>(
    clients: ElectionClients,
    settings: &ElectionSettings,
    health: Arc<Health>,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
    work: W,
) -> Result<(), ElectionError>
where
    W: FnOnce(oneshot::Receiver<()>) -> F,
    F: Future<Output = ()> + Send + 'static,
{
    health.set_election(ElectionStatus::Candidate);
    metrics.set_leader(false);
    let released = Arc::new(Notify::new());
    let lease_watch = tokio::spawn(watch_for_release(
        Api::namespaced(clients.watch.clone(), &settings.namespace),
        settings.lease_name.clone(),
        released.clone(),
    ));
    let result = match stand_by(&clients.lease, settings, &health, &released, &mut shutdown).await {
        Some(manager) => lead(manager, settings, &health, &metrics, &mut shutdown, work).await,
        None => Ok(()),
    };
    lease_watch.abort();
    result
}

/// Resolves once `shutdown` is true (or its sender is gone).
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

async fn build_manager(
    client: &Client,
    settings: &ElectionSettings,
) -> kube_lease_manager::Result<LeaseManager> {
    LeaseManagerBuilder::new(client.clone(), &settings.lease_name)
        .with_namespace(&settings.namespace)
        .with_identity(&settings.identity)
        .with_duration(settings.timing.duration.as_secs())
        .with_grace(settings.timing.grace.as_secs())
        .build()
        .await
}

/// Waits for the Lease; `None` when `shutdown` came first. A fresh manager is built after every
/// failure and whenever the Lease is seen without a holder: the manager only rereads a Lease it
/// believes held when that hold expires, so a released Lease would otherwise wait out the full
/// duration.
async fn stand_by(
    client: &Client,
    settings: &ElectionSettings,
    health: &Health,
    released: &Notify,
    shutdown: &mut watch::Receiver<bool>,
) -> Option<LeaseManager> {
    let timing = settings.timing;
    let first_pause = Duration::from_millis(500).min(timing.max_standby_pause());
    let mut pause = first_pause;
    tracing::info!(
        identity = %settings.identity,
        lease = %format!("{}/{}", settings.namespace, settings.lease_name),
        "standing by for the leader Lease"
    );
    loop {
        let started = Instant::now();
        let failure = tokio::select! {
            _ = stopped(shutdown) => return None,
            _ = released.notified() => {
                tracing::debug!("the leader Lease has no holder; trying to take it");
                continue;
            }
            outcome = wait_for_lease(client, settings, health) => match outcome {
                Ok(manager) => return Some(manager),
                Err(message) => message,
            },
        };
        if started.elapsed() >= timing.max_standby_pause() {
            pause = first_pause;
        }
        tracing::warn!(error = %failure, retry_in = ?pause, "could not read or take the leader Lease");
        health.standby_failed(failure);
        tokio::select! {
            _ = stopped(shutdown) => return None,
            _ = tokio::time::sleep(pause) => {}
        }
        pause = (pause * 2).min(timing.max_standby_pause());
    }
}

/// Builds a manager and waits until it holds the Lease.
async fn wait_for_lease(
    client: &Client,
    settings: &ElectionSettings,
    health: &Health,
) -> Result<LeaseManager, String> {
    let manager = build_manager(client, settings)
        .await
        .map_err(|e| e.to_string())?;
    health.lease_read();
    loop {
        match manager.changed().await {
            Ok(true) => return Ok(manager),
            Ok(false) => continue,
            Err(err) => return Err(err.to_string()),
        }
    }
}

/// Signals `released` whenever the Lease is seen without a holder.
async fn watch_for_release(api: Api<Lease>, name: String, released: Arc<Notify>) {
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut leases = std::pin::pin!(
        watcher(api, config)
            .backoff(crate::controller::stores::WatchBackoff::default())
            .applied_objects()
    );
    while let Some(event) = leases.next().await {
        match event {
            Ok(lease) => {
                let holder = lease
                    .spec
                    .as_ref()
                    .and_then(|s| s.holder_identity.as_deref());
                if holder.is_none_or(str::is_empty) {
                    released.notify_one();
                }
            }
            Err(err) => tracing::debug!(error = %err, "watch of the leader Lease failed"),
        }
    }
}

/// How leading ended.
enum Ending {
    Shutdown,
    Lost(String),
    ControllersStopped,
}

/// Runs `work` while holding the Lease.
async fn lead<W, F>(
    manager: LeaseManager,
    settings: &ElectionSettings,
    health: &Health,
    metrics: &Metrics,
    shutdown: &mut watch::Receiver<bool>,
    work: W,
) -> Result<(), ElectionError>
where
    W: FnOnce(oneshot::Receiver<()>) -> F,
    F: Future<Output = ()> + Send + 'static,
{
    let timing = settings.timing;
    health.set_election(ElectionStatus::Leading);
    metrics.set_leader(true);
    tracing::info!(identity = %settings.identity, "took the leader Lease; starting the controllers");
    let (stop, stop_requested) = oneshot::channel();
    let mut controllers = tokio::spawn(work(stop_requested));
    let mut controllers_done = false;
    let mut failing_since: Option<Instant> = None;
    let ending = loop {
        let started = Instant::now();
        tokio::select! {
            _ = stopped(shutdown) => break Ending::Shutdown,
            _ = &mut controllers => {
                controllers_done = true;
                break Ending::ControllersStopped;
            }
            changed = manager.changed() => match changed {
                Ok(true) => {}
                Ok(false) => break Ending::Lost("another instance holds it".into()),
                Err(err) => {
                    let now = Instant::now();
                    // A call that ran for a grace period slept between successful renewals: this
                    // failure starts a new run of failures.
                    if now.duration_since(started) >= timing.grace {
                        failing_since = None;
                    }
                    let since = *failing_since.get_or_insert(now);
                    if now.duration_since(since) >= timing.renew_retry_budget() {
                        break Ending::Lost(format!("renewals failed for {:?}: {err}", now.duration_since(since)));
                    }
                    tracing::warn!(error = %err, "could not renew the leader Lease; retrying");
                    tokio::time::sleep(timing.request_timeout).await;
                }
            },
        }
    };
    let _ = stop.send(());
    let lost = |why: String| ElectionError::LeadershipLost {
        namespace: settings.namespace.clone(),
        name: settings.lease_name.clone(),
        why,
    };
    if let Ending::Lost(why) = ending {
        // Another instance may already be importing: stop at once, and let the process exit.
        controllers.abort();
        metrics.set_leader(false);
        tracing::error!(reason = %why, "lost the leader Lease; stopping");
        return Err(lost(why));
    }

    // Let the reconciles in flight finish while the Lease is still renewed, then hand it over.
    if !controllers_done {
        tracing::info!("stopping the controllers");
        let deadline = tokio::time::sleep(settings.drain_timeout);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                _ = &mut controllers => break,
                _ = &mut deadline => {
                    tracing::warn!(timeout = ?settings.drain_timeout, "the controllers did not stop in time; releasing the Lease anyway");
                    controllers.abort();
                    break;
                }
                changed = manager.changed() => match changed {
                    Ok(false) => {
                        controllers.abort();
                        metrics.set_leader(false);
                        return Err(lost("another instance took it while the controllers stopped".into()));
                    }
                    Ok(true) => {}
                    Err(_) => tokio::time::sleep(timing.request_timeout).await,
                },
            }
        }
    }
    match tokio::time::timeout(timing.grace, manager.release()).await {
        Ok(Ok(())) => tracing::info!("released the leader Lease"),
        Ok(Err(err)) => {
            tracing::warn!(error = %err, "could not release the leader Lease; a standby takes it when it expires");
        }
        Err(_) => tracing::warn!(
            "releasing the leader Lease timed out; a standby takes it when it expires"
        ),
    }
    metrics.set_leader(false);
    match ending {
        Ending::ControllersStopped => Err(ElectionError::ControllersStopped),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lease_namespace_comes_from_the_flag_then_the_pod_then_the_service_account() {
        let cases = [
            ((Some("ops"), Some("pod-ns"), Some("sa-ns")), "ops"),
            ((None, Some("pod-ns"), Some("sa-ns")), "pod-ns"),
            ((None, None, Some("sa-ns\n")), "sa-ns"),
            ((Some(""), Some("  "), Some("sa-ns")), "sa-ns"),
            ((None, None, None), "default"),
            ((None, None, Some("")), "default"),
        ];
        for ((flag, pod, service_account), expected) in cases {
            assert_eq!(
                lease_namespace(flag, pod, service_account),
                expected,
                "{flag:?} {pod:?} {service_account:?}"
            );
        }
    }

    #[test]
    fn the_holder_is_the_pod_name_or_the_host_name_with_a_suffix() {
        assert_eq!(
            holder_identity(Some("operator-7d9f-abcde"), Some("node-1"), "x1"),
            "operator-7d9f-abcde"
        );
        assert_eq!(holder_identity(None, Some("laptop\n"), "x1"), "laptop-x1");
        assert_eq!(
            holder_identity(Some(""), None, "x1"),
            "imagestream-operator-x1"
        );
    }

    #[test]
    fn lease_timing_renews_at_half_the_duration_and_leaves_room_to_retry() {
        let timing = LeaseTiming::for_duration(Duration::from_secs(15));
        assert_eq!(timing.duration, Duration::from_secs(15));
        assert_eq!(timing.grace, Duration::from_secs(7));
        assert_eq!(timing.request_timeout, Duration::from_millis(1400));
        assert_eq!(timing.renew_retry_budget(), Duration::from_millis(2800));
        // A failed renewal (at most two requests) must end well inside the grace period, or it
        // could not be told from a call that slept between successful renewals.
        assert!(timing.request_timeout * 2 < timing.grace);

        let short = LeaseTiming::for_duration(Duration::from_millis(4500));
        assert_eq!(short.duration, Duration::from_secs(4));
        assert_eq!(short.grace, Duration::from_secs(2));
        let shortest = LeaseTiming::for_duration(Duration::from_secs(1));
        assert_eq!(shortest.duration, LeaseTiming::MIN_DURATION);
        assert!(shortest.grace < shortest.duration);
        assert!(!shortest.renew_retry_budget().is_zero());
    }

    #[test]
    fn lease_requests_time_out_and_are_not_retried_by_the_client() {
        let timing = LeaseTiming::for_duration(Duration::from_secs(15));
        let config = lease_client_config(
            kube::Config::new("https://127.0.0.1:6443".parse().unwrap()),
            &timing,
        );
        assert_eq!(config.read_timeout, Some(timing.request_timeout));
        assert_eq!(config.connect_timeout, Some(timing.request_timeout));
        assert!(!config.default_retry);
    }
}
