//! The operator's HTTP endpoints: `/metrics` (OpenMetrics text of [`Metrics`]), `/healthz` (the
//! process answers) and `/readyz` (caches synced and, under leader election, leading or standing by
//! healthily). [`Health`] is the state the controllers and the leader election report into.

use std::future::Future;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::time::Instant;

use crate::metrics::{Metrics, OPENMETRICS_CONTENT_TYPE};

/// Where this instance stands in leader election.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ElectionStatus {
    /// Leader election is off: this instance always runs the controllers.
    Disabled,
    /// Leader election is on and the Lease has not been read yet.
    Candidate,
    /// Waiting for the Lease. `failure` is the last time reading or taking the Lease failed.
    Standby {
        /// The last failure to read or take the Lease, if any.
        failure: Option<LeaseFailure>,
    },
    /// Holding the Lease and running the controllers.
    Leading,
}

/// A failed attempt to read or take the Lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseFailure {
    /// When it failed.
    pub at: Instant,
    /// Why.
    pub message: String,
}

/// What `/readyz` reports on: filled in by the controllers (cache sync), the leader election and the
/// shutdown signal.
#[derive(Debug)]
pub struct Health {
    caches_synced: AtomicBool,
    shutting_down: AtomicBool,
    /// Why the controllers stopped on their own, if they did: the process is then unhealthy and
    /// exits so that it is restarted.
    failed: Mutex<Option<String>>,
    election: Mutex<ElectionStatus>,
    standby_tolerance: Duration,
}

impl Default for Health {
    fn default() -> Self {
        Self::new(Duration::from_secs(15))
    }
}

impl Health {
    /// Health of an instance whose standby counts as unhealthy while reading the Lease has failed
    /// within the last `standby_tolerance` (the lease duration: a standby that cannot read the
    /// Lease for that long could not take over in time).
    pub fn new(standby_tolerance: Duration) -> Self {
        Self {
            caches_synced: AtomicBool::new(false),
            shutting_down: AtomicBool::new(false),
            failed: Mutex::new(None),
            election: Mutex::new(ElectionStatus::Disabled),
            standby_tolerance,
        }
    }

    /// Records that every cache the controllers read has been listed once.
    pub fn set_caches_synced(&self) {
        self.caches_synced.store(true, Ordering::Release);
    }

    /// Records that the process is shutting down: it is no longer ready.
    pub fn set_shutting_down(&self) {
        self.shutting_down.store(true, Ordering::Release);
    }

    /// Records that the controllers stopped without being asked to (a task ended or panicked):
    /// from now on `/healthz` and `/readyz` fail with `why`.
    pub fn set_failed(&self, why: String) {
        *self.failed.lock().unwrap_or_else(|p| p.into_inner()) = Some(why);
    }

    /// Why the controllers stopped on their own, if they did.
    pub fn failure(&self) -> Option<String> {
        self.failed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Records where this instance stands in leader election.
    pub fn set_election(&self, status: ElectionStatus) {
        *self.election.lock().unwrap_or_else(|p| p.into_inner()) = status;
    }

    /// Records a failure to read or take the Lease while standing by.
    pub fn standby_failed(&self, message: String) {
        self.set_election(ElectionStatus::Standby {
            failure: Some(LeaseFailure {
                at: Instant::now(),
                message,
            }),
        });
    }

    /// Records that the Lease was read: a candidate is now a standby.
    pub fn lease_read(&self) {
        let mut election = self.election.lock().unwrap_or_else(|p| p.into_inner());
        if *election == ElectionStatus::Candidate {
            *election = ElectionStatus::Standby { failure: None };
        }
    }

    /// Where this instance stands in leader election.
    pub fn election(&self) -> ElectionStatus {
        self.election
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// `Ok(what)` when ready, `Err(why not)` otherwise.
    pub fn readiness(&self) -> Result<String, String> {
        readiness(&ReadinessInputs {
            failure: self.failure(),
            caches_synced: self.caches_synced.load(Ordering::Acquire),
            shutting_down: self.shutting_down.load(Ordering::Acquire),
            election: &self.election(),
            standby_tolerance: self.standby_tolerance,
            now: Instant::now(),
        })
    }
}

/// What readiness is decided from.
#[derive(Debug)]
pub struct ReadinessInputs<'a> {
    /// Why the controllers stopped on their own, if they did.
    pub failure: Option<String>,
    /// Every cache of the controllers has been listed once.
    pub caches_synced: bool,
    /// SIGTERM (or Ctrl-C) arrived.
    pub shutting_down: bool,
    /// Where the instance stands in leader election.
    pub election: &'a ElectionStatus,
    /// How long a Lease failure keeps a standby unready.
    pub standby_tolerance: Duration,
    /// The current time.
    pub now: Instant,
}

/// Whether the instance is ready: a leader (or an instance without election) once its caches are
/// synced; a standby — which runs no controllers and so has no caches — while it can read the Lease.
pub fn readiness(inputs: &ReadinessInputs<'_>) -> Result<String, String> {
    if let Some(why) = &inputs.failure {
        return Err(format!("the controllers stopped: {why}"));
    }
    if inputs.shutting_down {
        return Err("shutting down".into());
    }
    match inputs.election {
        ElectionStatus::Disabled | ElectionStatus::Leading if !inputs.caches_synced => {
            Err("caches not synced yet".into())
        }
        ElectionStatus::Candidate => Err("the leader Lease has not been read yet".into()),
        ElectionStatus::Disabled => Ok("ready".into()),
        ElectionStatus::Leading => Ok("ready: leading".into()),
        ElectionStatus::Standby {
            failure: Some(failure),
        } if inputs.now.saturating_duration_since(failure.at) < inputs.standby_tolerance => {
            Err(format!(
                "standing by, but the leader Lease could not be read: {}",
                failure.message
            ))
        }
        ElectionStatus::Standby { .. } => Ok("ready: standing by".into()),
    }
}

/// What the handlers share.
#[derive(Debug, Clone)]
pub struct ServerState {
    /// The metrics `/metrics` serves.
    pub metrics: Arc<Metrics>,
    /// The health `/readyz` reports.
    pub health: Arc<Health>,
}

/// The operator's routes.
pub fn router(state: ServerState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(state)
}

/// Serves [`router`] on `listener` until `shutdown` resolves, then finishes the requests in flight.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: ServerState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

async fn metrics(State(state): State<ServerState>) -> Response {
    match state.metrics.encode() {
        Ok(text) => ([(header::CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE)], text).into_response(),
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "could not encode the metrics\n",
        )
            .into_response(),
    }
}

/// Alive unless the controllers stopped on their own: then the kubelet's liveness probe restarts
/// the process even if it has not exited yet.
async fn healthz(State(state): State<ServerState>) -> Response {
    match state.health.failure() {
        None => (StatusCode::OK, "ok\n").into_response(),
        Some(why) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the controllers stopped: {why}\n"),
        )
            .into_response(),
    }
}

async fn readyz(State(state): State<ServerState>) -> Response {
    match state.health.readiness() {
        Ok(what) => (StatusCode::OK, format!("{what}\n")).into_response(),
        Err(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {why}\n"),
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(caches_synced: bool, election: &ElectionStatus) -> ReadinessInputs<'_> {
        ReadinessInputs {
            failure: None,
            caches_synced,
            shutting_down: false,
            election,
            standby_tolerance: Duration::from_secs(15),
            now: Instant::now(),
        }
    }

    #[test]
    fn readiness_follows_cache_sync_leadership_and_lease_health() {
        let now = Instant::now();
        let recent = ElectionStatus::Standby {
            failure: Some(LeaseFailure {
                at: now,
                message: "connection refused".into(),
            }),
        };
        let healthy = ElectionStatus::Standby { failure: None };
        let cases: [(bool, &ElectionStatus, bool); 9] = [
            (true, &ElectionStatus::Candidate, false),
            (false, &ElectionStatus::Disabled, false),
            (true, &ElectionStatus::Disabled, true),
            (false, &ElectionStatus::Leading, false),
            (true, &ElectionStatus::Leading, true),
            // A standby runs no controllers, so it has no caches to wait for.
            (false, &healthy, true),
            (true, &healthy, true),
            (false, &recent, false),
            (true, &recent, false),
        ];
        for (caches_synced, election, ready) in cases {
            let mut inputs = inputs(caches_synced, election);
            inputs.now = now;
            assert_eq!(
                readiness(&inputs).is_ok(),
                ready,
                "caches_synced={caches_synced} election={election:?}"
            );
        }
    }

    #[test]
    fn a_standby_recovers_once_its_last_lease_failure_is_older_than_the_tolerance() {
        let at = Instant::now();
        let election = ElectionStatus::Standby {
            failure: Some(LeaseFailure {
                at,
                message: "timed out".into(),
            }),
        };
        let mut inputs = inputs(false, &election);
        inputs.now = at + Duration::from_secs(14);
        assert!(readiness(&inputs).unwrap_err().contains("timed out"));
        inputs.now = at + Duration::from_secs(15);
        assert!(readiness(&inputs).is_ok());
    }

    #[test]
    fn nothing_is_ready_while_shutting_down() {
        let mut inputs = inputs(true, &ElectionStatus::Leading);
        inputs.shutting_down = true;
        assert_eq!(readiness(&inputs), Err("shutting down".into()));
    }

    #[test]
    fn controllers_that_stopped_on_their_own_make_any_instance_unready() {
        for election in [ElectionStatus::Leading, ElectionStatus::Disabled] {
            let mut inputs = inputs(true, &election);
            inputs.failure = Some("the import engine ended".into());
            assert_eq!(
                readiness(&inputs),
                Err("the controllers stopped: the import engine ended".into())
            );
        }
    }

    #[tokio::test]
    async fn the_endpoints_answer_with_metrics_liveness_and_readiness() {
        let metrics = Arc::new(Metrics::new());
        let health = Arc::new(Health::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(
            listener,
            ServerState {
                metrics: metrics.clone(),
                health: health.clone(),
            },
            async move {
                let _ = stopped.await;
            },
        ));
        let get = |path: &'static str| async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
            socket
                .write_all(format!("GET {path} HTTP/1.0\r\nHost: test\r\n\r\n").as_bytes())
                .await
                .unwrap();
            let mut answer = String::new();
            socket.read_to_string(&mut answer).await.unwrap();
            answer
        };
        assert!(get("/healthz").await.starts_with("HTTP/1.0 200"));
        let not_ready = get("/readyz").await;
        assert!(not_ready.starts_with("HTTP/1.0 503"), "{not_ready}");
        assert!(not_ready.contains("caches not synced"), "{not_ready}");
        health.set_caches_synced();
        assert!(get("/readyz").await.starts_with("HTTP/1.0 200"));
        metrics.set_leader(true);
        let text = get("/metrics").await;
        assert!(text.contains("application/openmetrics-text"), "{text}");
        assert!(text.contains("imagestream_operator_leader 1"), "{text}");
        health.set_failed("the import engine panicked: boom".into());
        let dead = get("/healthz").await;
        assert!(dead.starts_with("HTTP/1.0 500"), "{dead}");
        assert!(dead.contains("the import engine panicked: boom"), "{dead}");
        assert!(get("/readyz").await.starts_with("HTTP/1.0 503"));
        stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .expect("the server stops on shutdown")
            .unwrap()
            .unwrap();
    }
}
