//! The operator binary as it runs in a cluster, against the real apiserver and registry: its
//! `/metrics`, `/healthz` and `/readyz` endpoints, and leader election between two instances —
//! one leader, failover after the leader is killed, and a Lease handed over at once on SIGTERM.

use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use crate::support::*;
use imagestream_operator::api::ImageStream;
use imagestream_operator::leader::DEFAULT_LEASE_NAME;
use imagestream_testenv::images::{ImagePusher, ManifestFormat};
use imagestream_testenv::{TestEnv, free_port};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::Api;
use kube::api::{Patch, PatchParams};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

/// One operator process with its HTTP port and log file; killed when dropped.
struct Instance {
    child: Child,
    port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Instance {
    fn start(env: &TestEnv, pod_name: &str, args: &[&str]) -> Instance {
        let port = free_port().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("operator.log");
        let out = std::fs::File::create(&log).unwrap();
        let addr = format!("127.0.0.1:{port}");
        let child = Command::new(env!("CARGO_BIN_EXE_imagestream-operator"))
            .arg("run")
            .args(["--http-addr", &addr, "--image-gc-grace", "0s"])
            .args(args)
            .env("KUBECONFIG", env.kubeconfig())
            .env(
                "RUST_LOG",
                "imagestream_operator=debug,kube_lease_manager=debug",
            )
            .env("POD_NAME", pod_name)
            .env_remove("POD_NAMESPACE")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        Instance {
            child,
            port,
            log,
            _dir: dir,
        }
    }

    /// The last lines of the process's log, for failure messages.
    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(60)..].join("\n")
    }

    /// `GET path` → status code and body; `None` while nothing answers.
    async fn get(&self, path: &str) -> Option<(u16, String)> {
        let mut socket = tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .ok()?;
        socket
            .write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
            .await
            .ok()?;
        let mut answer = String::new();
        tokio::time::timeout(Duration::from_secs(5), socket.read_to_string(&mut answer))
            .await
            .ok()?
            .ok()?;
        let status = answer.split_whitespace().nth(1)?.parse().ok()?;
        let body = answer.split_once("\r\n\r\n").map(|(_, b)| b.to_owned())?;
        Some((status, body))
    }

    /// Polls `path` until it answers 200; panics with the last answer and the log after `within`.
    async fn wait_until_ok(&self, path: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            let answer = self.get(path).await;
            if let Some((200, body)) = &answer {
                return body.clone();
            }
            assert!(
                Instant::now() < deadline,
                "{path} did not answer 200 within {within:?}; last answer: {answer:?}\nlog:\n{}",
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Polls `/readyz` until it answers 200 with `body` (`ready: leading`, `ready: standing by`).
    async fn wait_until_ready_as(&self, body: &str, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let answer = self.get("/readyz").await;
            if matches!(&answer, Some((200, b)) if b.trim_end() == body) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "/readyz did not answer 200 {body:?} within {within:?}; last answer: {answer:?}\nlog:\n{}",
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn metrics(&self) -> String {
        let (status, body) = self.get("/metrics").await.expect("/metrics answers");
        assert_eq!(status, 200, "{body}");
        body
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn terminate(&self) {
        imagestream_testenv::send_sigterm(self.child.id())
            .unwrap_or_else(|err| panic!("could not send SIGTERM: {err}"));
    }

    /// Waits for the process to exit on its own.
    async fn wait_for_exit(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the operator did not exit within {within:?}\nlog:\n{}",
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The value of the sample `series` (name and labels exactly as exposed), if exposed.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
}

fn holder(lease: &Lease) -> Option<String> {
    lease
        .spec
        .as_ref()?
        .holder_identity
        .clone()
        .filter(|h| !h.is_empty())
}

/// Polls the operator's Lease until `done` holds for its holder; returns the holder.
async fn wait_for_holder(
    leases: &Api<Lease>,
    what: &str,
    within: Duration,
    done: impl Fn(Option<&str>) -> bool,
) -> Option<String> {
    let deadline = Instant::now() + within;
    loop {
        let lease = leases.get_opt(DEFAULT_LEASE_NAME).await.unwrap();
        let current = lease.as_ref().and_then(holder);
        if lease.is_some() && done(current.as_deref()) {
            return current;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}; lease: {lease:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

const IMAGESTREAM_RECONCILES: &str =
    r#"imagestream_operator_reconciles_total{controller="imagestream"}"#;
const IMPORTED: &str = r#"imagestream_operator_imports_total{result="imported"}"#;

#[tokio::test]
async fn the_binary_answers_healthz_readyz_and_metrics_with_reconcile_and_registry_series_after_an_import()
 {
    let env = crate::support::env().await;
    let ns = env.namespace("ops-http").await;
    let registry = env.registry();
    let repository = unique("ops-http");
    let pushed = ImagePusher::for_registry(registry)
        .push_random(&repository, "v1", ManifestFormat::Oci)
        .await
        .unwrap();
    let mut operator = Instance::start(
        env,
        "ops-http",
        &["--namespace", &ns, "--leader-elect=false"],
    );

    assert_eq!(
        operator
            .wait_until_ok("/healthz", Duration::from_secs(30))
            .await,
        "ok\n"
    );
    operator
        .wait_until_ready_as("ready", Duration::from_secs(30))
        .await;

    let api = Api::<ImageStream>::namespaced(env.client().await, &ns);
    let stream_name = "metrics-probe-stream";
    let from = format!("{}/{repository}:v1", registry.host());
    create_stream(&api, stream_name, vec![docker_tag("v1", &from, false)]).await;
    wait_for(&api, stream_name, "the import", |s| {
        current_image(s, "v1") == Some(pushed.digest.clone())
    })
    .await;

    // The reconcile is counted when it returns, after the status write and the Events.
    let deadline = Instant::now() + Duration::from_secs(10);
    let text = loop {
        let text = operator.metrics().await;
        let counted = sample(&text, IMPORTED).unwrap_or(0.0) >= 1.0
            && sample(&text, IMAGESTREAM_RECONCILES).unwrap_or(0.0) >= 1.0;
        if counted || Instant::now() > deadline {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(sample(&text, IMPORTED), Some(1.0), "{text}");
    assert!(
        sample(&text, IMAGESTREAM_RECONCILES).unwrap_or(0.0) >= 1.0,
        "{text}"
    );
    assert!(
        text.contains(
            r#"imagestream_operator_reconcile_duration_seconds_count{controller="imagestream"}"#
        ),
        "{text}"
    );
    let host = registry.host();
    assert!(
        sample(
            &text,
            &format!(
                r#"imagestream_operator_registry_requests_total{{registry="{host}",method="HEAD",result="2xx"}}"#
            )
        )
        .unwrap_or(0.0)
            >= 1.0,
        "the registry client's requests are not in the served metrics:\n{text}"
    );
    assert!(
        text.contains(&format!(
            r#"imagestream_operator_registry_request_duration_seconds_count{{registry="{host}",method="HEAD"}}"#
        )),
        "{text}"
    );
    assert_eq!(
        sample(&text, "imagestream_operator_leader"),
        Some(1.0),
        "{text}"
    );
    // Labels name controllers, results and hosts — never the objects.
    for name in [stream_name, ns.as_str(), repository.as_str()] {
        assert!(
            !text.contains(name),
            "{name:?} appears in the metrics:\n{text}"
        );
    }

    operator.terminate();
    let status = operator.wait_for_exit(Duration::from_secs(30)).await;
    assert!(
        status.success(),
        "SIGTERM ended the operator with {status}\nlog:\n{}",
        operator.log_tail()
    );
}

#[tokio::test]
async fn two_instances_elect_one_leader_and_the_standby_takes_over_within_the_lease_duration_after_the_leader_is_killed()
 {
    let env = crate::support::env().await;
    let ns = env.namespace("ops-failover").await;
    let registry = env.registry();
    let repository = unique("ops-failover");
    let pusher = ImagePusher::for_registry(registry);
    let pushed = pusher
        .push_random(&repository, "v1", ManifestFormat::Oci)
        .await
        .unwrap();
    let lease_duration = Duration::from_secs(4);
    let args = [
        "--namespace",
        &ns,
        "--leader-elect=true",
        "--leader-election-namespace",
        &ns,
        "--leader-election-lease-duration",
        "4s",
    ];
    let mut instances = [
        Instance::start(env, "operator-a", &args),
        Instance::start(env, "operator-b", &args),
    ];
    let client = env.client().await;
    let leases = Api::<Lease>::namespaced(client.clone(), &ns);
    let leader_name = wait_for_holder(&leases, "a leader", Duration::from_secs(30), |h| {
        matches!(h, Some("operator-a" | "operator-b"))
    })
    .await
    .unwrap();
    let (leader, standby) = if leader_name == "operator-a" {
        (0, 1)
    } else {
        (1, 0)
    };
    instances[leader]
        .wait_until_ready_as("ready: leading", Duration::from_secs(30))
        .await;
    instances[standby]
        .wait_until_ready_as("ready: standing by", Duration::from_secs(30))
        .await;

    let api = Api::<ImageStream>::namespaced(client.clone(), &ns);
    let from = format!("{}/{repository}:v1", registry.host());
    create_stream(&api, "before", vec![docker_tag("v1", &from, false)]).await;
    wait_for(&api, "before", "the leader's import", |s| {
        current_image(s, "v1") == Some(pushed.digest.clone())
    })
    .await;
    let leader_metrics = instances[leader].metrics().await;
    let standby_metrics = instances[standby].metrics().await;
    assert_eq!(
        sample(&leader_metrics, "imagestream_operator_leader"),
        Some(1.0)
    );
    assert_eq!(
        sample(&standby_metrics, "imagestream_operator_leader"),
        Some(0.0)
    );
    assert_eq!(
        sample(&standby_metrics, IMAGESTREAM_RECONCILES),
        Some(0.0),
        "the standby reconciled:\n{standby_metrics}"
    );
    assert_eq!(sample(&standby_metrics, IMPORTED), Some(0.0));
    assert_eq!(
        leases
            .get(DEFAULT_LEASE_NAME)
            .await
            .ok()
            .as_ref()
            .and_then(holder),
        Some(leader_name.clone()),
        "the Lease changed hands while both instances ran"
    );

    instances[leader].kill();
    let killed = Instant::now();
    let standby_name = if leader == 0 {
        "operator-b"
    } else {
        "operator-a"
    };
    wait_for_holder(
        &leases,
        "the standby to take the Lease",
        lease_duration + Duration::from_secs(10),
        |h| h == Some(standby_name),
    )
    .await;
    let took = killed.elapsed();
    eprintln!("the standby took the Lease {took:?} after the leader was killed");
    // The Lease expires at most one lease duration after the leader's last renewal; the standby
    // then waits up to a second (kube-lease-manager's jitter) before it takes it.
    assert!(
        took <= lease_duration + Duration::from_secs(2),
        "the standby took {took:?} to take over a {lease_duration:?} Lease\nlog:\n{}",
        instances[standby].log_tail()
    );

    let moved = pusher
        .push_random(&repository, "v2", ManifestFormat::Oci)
        .await
        .unwrap();
    let from = format!("{}/{repository}:v2", registry.host());
    create_stream(&api, "after", vec![docker_tag("v2", &from, false)]).await;
    wait_for(&api, "after", "the new leader's import", |s| {
        current_image(s, "v2") == Some(moved.digest.clone())
    })
    .await;
    instances[standby]
        .wait_until_ready_as("ready: leading", Duration::from_secs(10))
        .await;
}

#[tokio::test]
async fn a_leader_stopped_with_sigterm_releases_the_lease_and_the_standby_takes_over_at_once() {
    let env = crate::support::env().await;
    let ns = env.namespace("ops-release").await;
    let registry = env.registry();
    let repository = unique("ops-release");
    let pushed = ImagePusher::for_registry(registry)
        .push_random(&repository, "v1", ManifestFormat::Oci)
        .await
        .unwrap();
    // A long Lease: a handover within seconds can only come from the release.
    let lease_duration = Duration::from_secs(30);
    let args = [
        "--namespace",
        &ns,
        "--leader-elect",
        "--leader-election-namespace",
        &ns,
        "--leader-election-lease-duration",
        "30s",
    ];
    let mut first = Instance::start(env, "operator-first", &args);
    let leases = Api::<Lease>::namespaced(env.client().await, &ns);
    wait_for_holder(
        &leases,
        "the first instance to lead",
        Duration::from_secs(30),
        |h| h == Some("operator-first"),
    )
    .await;
    first
        .wait_until_ready_as("ready: leading", Duration::from_secs(30))
        .await;
    let second = Instance::start(env, "operator-second", &args);
    second
        .wait_until_ready_as("ready: standing by", Duration::from_secs(30))
        .await;

    first.terminate();
    let signalled = Instant::now();
    let status = first.wait_for_exit(Duration::from_secs(30)).await;
    assert!(
        status.success(),
        "a SIGTERM'd leader exited with {status}\nlog:\n{}",
        first.log_tail()
    );
    wait_for_holder(
        &leases,
        "the standby to take the released Lease",
        Duration::from_secs(10),
        |h| h == Some("operator-second"),
    )
    .await;
    let took = signalled.elapsed();
    eprintln!("the standby took the Lease {took:?} after the leader was sent SIGTERM");
    assert!(
        took < lease_duration / 3,
        "the handover took {took:?}, as if the Lease had expired rather than been released\nlog:\n{}",
        second.log_tail()
    );

    let api = Api::<ImageStream>::namespaced(env.client().await, &ns);
    let from = format!("{}/{repository}:v1", registry.host());
    create_stream(&api, "handed-over", vec![docker_tag("v1", &from, false)]).await;
    wait_for(&api, "handed-over", "the new leader's import", |s| {
        current_image(s, "v1") == Some(pushed.digest.clone())
    })
    .await;
}

#[tokio::test]
async fn a_leader_whose_lease_is_taken_by_another_holder_stops_and_exits_non_zero() {
    let env = crate::support::env().await;
    let ns = env.namespace("ops-lost").await;
    let mut leader = Instance::start(
        env,
        "operator-lost",
        &[
            "--namespace",
            &ns,
            "--leader-election-namespace",
            &ns,
            "--leader-election-lease-duration",
            "4s",
        ],
    );
    let leases = Api::<Lease>::namespaced(env.client().await, &ns);
    wait_for_holder(
        &leases,
        "the instance to lead",
        Duration::from_secs(30),
        |h| h == Some("operator-lost"),
    )
    .await;
    leader
        .wait_until_ready_as("ready: leading", Duration::from_secs(30))
        .await;

    // Another holder appears, as after a partition that outlasted the Lease.
    let patch = serde_json::json!({
        "spec": {
            "holderIdentity": "operator-elsewhere",
            "renewTime": MicroTime(k8s_openapi::jiff::Timestamp::now()),
        }
    });
    leases
        .patch(
            DEFAULT_LEASE_NAME,
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
        .unwrap();
    let status = leader.wait_for_exit(Duration::from_secs(15)).await;
    assert!(
        !status.success(),
        "an instance that lost the Lease exited with {status}\nlog:\n{}",
        leader.log_tail()
    );
    assert!(
        leader.log_tail().contains("lost the leader Lease"),
        "{}",
        leader.log_tail()
    );
}
