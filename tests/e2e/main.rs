//! End to end, as users run it: a real node (containerd, kubelet, kube-proxy, scheduler), the
//! operator's release build as an OCI image in the node registry, installed with `kubectl apply -k`
//! on an overlay of `deploy/` that only overrides the image, and real pods rolling after pushes:
//!
//! 1. two replicas Ready, exactly one Lease holder (the one Pod labelled leader);
//! 2. a triggered Deployment tracking `demo:v1` of an ImageStream runs a pod printing `demo v1`.
//!    A second Deployment naming `demo:v1` (the stream's `lookupPolicy.local`) is rewritten by the
//!    image-lookup admission webhook (deploy/'s, called by the API server through its Service with
//!    the CA the operator published) to the digest, and its pod runs it; each replica, asked
//!    directly, resolves `demo:v1` too;
//! 3. `demo v2` pushed to the same tag (and the push notified to the webhook Service, as a
//!    registry does): the pod is replaced by one running the new digest, whose log says `demo v2`;
//! 4. the leader Pod is deleted (gracefully: it releases the Lease on SIGTERM): the standby takes
//!    the Lease, and `demo v3` still rolls out (the webhook Service follows the leader label); a
//!    Deployment naming `demo:v1` now is stored with v3's digest and runs it;
//! 5. no operator container restarted or was OOM-killed, and they ran with deploy/'s security
//!    context and limits.
//!
//! On the way it checks that the kubelet's API refuses anonymous requests (while `kubectl logs`,
//! through the API server's client certificate, works).
//!
//! The node needs root and `make provision-node`, and changes machine-wide state (a bridge,
//! iptables chains), so these tests run only with `IMAGESTREAM_E2E=1`, which `make test` and
//! `make e2e` set; a plain `cargo test` records a skip. The whole flow runs in one test, which tears
//! the node down at its end and checks that nothing is left on the machine; a second test kills a
//! run with its node running and checks that the next node cleans up after it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use imagestream_testenv::pods::{first_image_id, is_ready};
use imagestream_testenv::skip::skip;
use imagestream_testenv::{Node, NodeOptions, TestEnv};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::ListParams;
use serde_json::json;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

const OPERATOR_NAMESPACE: &str = "imagestream-operator";
const LEASE: &str = "imagestream-operator";
const LEADER_LABEL: &str = "imagestream-operator/role=leader";
const OPERATOR_SELECTOR: &str = "app.kubernetes.io/name=imagestream-operator";
const NAMESPACE: &str = "e2e-demo";
/// The key of the `generic` push-notification format in the Secret deploy/ names.
const WEBHOOK_KEY: &str = "e2e-generic-notification-key";

/// Whether the end-to-end tests run here; records the skip when not.
fn enabled() -> bool {
    if std::env::var("IMAGESTREAM_E2E").as_deref() == Ok("1") {
        return true;
    }
    skip(
        "needs a real node (root, `make provision-node`); runs with IMAGESTREAM_E2E=1 (`make test`, `make e2e`)",
    );
    false
}

fn step(text: &str) {
    eprintln!("\n==> {text}");
}

/// Runs kubectl against the environment; its stdout, or an error with its stderr.
fn kubectl(env: &TestEnv, args: &[&str]) -> Result<String> {
    Ok(env.run_kubectl(args, None)?)
}

/// `kubectl apply -f -` of one object.
fn apply(env: &TestEnv, object: &serde_json::Value) -> Result<String> {
    Ok(env.run_kubectl(&["apply", "-f", "-"], Some(&object.to_string()))?)
}

/// Polls `check` every 250 ms until it gives `Some`; an error naming `what` and the last state
/// after `timeout`.
async fn wait<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = std::result::Result<Option<T>, String>>,
{
    let deadline = Instant::now() + timeout;
    let mut last = String::new();
    loop {
        match check().await {
            Ok(Some(value)) => return Ok(value),
            Ok(None) => {}
            Err(state) => last = state,
        }
        if Instant::now() > deadline {
            return Err(
                format!("timed out after {timeout:?} waiting for {what}; last: {last}").into(),
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The release build of the operator: `IMAGESTREAM_E2E_OPERATOR_BIN` when set (`make e2e` builds
/// it first), else built now if stale and found from cargo's own report.
fn build_operator() -> Result<PathBuf> {
    if let Some(binary) = std::env::var_os("IMAGESTREAM_E2E_OPERATOR_BIN") {
        return Ok(PathBuf::from(binary));
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    // Without the variables cargo sets for this test (CARGO_PKG_*, CARGO_MANIFEST_DIR, ...):
    // build scripts that watch them would rebuild, and `make e2e`'s own build would redo it.
    let kept = [
        "CARGO_HOME",
        "CARGO_TARGET_DIR",
        "CARGO_INCREMENTAL",
        "CARGO_BUILD_",
        "CARGO_PROFILE_",
        "CARGO_NET_",
        "CARGO_REGISTR",
        "CARGO_TERM_",
        "CARGO_HTTP_",
    ];
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy().into_owned();
        let set_by_cargo = (name == "CARGO" || name.starts_with("CARGO_"))
            && !kept.iter().any(|k| name.starts_with(k));
        if set_by_cargo || name == "OUT_DIR" {
            command.env_remove(&name);
        }
    }
    let out = command
        .args([
            "build",
            "--release",
            "--bin",
            "imagestream-operator",
            "--message-format=json-render-diagnostics",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stderr(Stdio::inherit())
        .output()?;
    if !out.status.success() {
        return Err("cargo build --release --bin imagestream-operator failed".into());
    }
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(message) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if message["reason"] == "compiler-artifact"
            && message["target"]["name"] == "imagestream-operator"
            && let Some(executable) = message["executable"].as_str()
        {
            return Ok(PathBuf::from(executable));
        }
    }
    Err("cargo did not report the imagestream-operator executable".into())
}

fn pod_name(pod: &Pod) -> String {
    pod.metadata.name.clone().unwrap_or_default()
}

/// Restarts and OOM kills of the operator's containers: `Err` names them.
fn check_operator_pods(pods: &[Pod]) -> std::result::Result<(), String> {
    let mut problems = Vec::new();
    for pod in pods {
        let statuses = pod
            .status
            .as_ref()
            .and_then(|s| s.container_statuses.clone())
            .unwrap_or_default();
        for status in statuses {
            if status.restart_count != 0 {
                problems.push(format!(
                    "{}: restartCount {} (last state {:?})",
                    pod_name(pod),
                    status.restart_count,
                    status.last_state
                ));
            }
            let terminated = [status.state.as_ref(), status.last_state.as_ref()]
                .into_iter()
                .flatten()
                .filter_map(|s| s.terminated.as_ref())
                .any(|t| t.reason.as_deref() == Some("OOMKilled"));
            if terminated {
                problems.push(format!("{}: OOMKilled", pod_name(pod)));
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

/// What the flow measured, printed at the end.
#[derive(Default)]
struct Timings(Vec<(String, Duration)>);

impl Timings {
    fn record(&mut self, what: &str, took: Duration) {
        eprintln!("    {what}: {took:.2?}");
        self.0.push((what.to_owned(), took));
    }
}

/// The state of the operator: its pods, the Lease holder, the leader-labelled pods.
async fn leader(env: &TestEnv) -> std::result::Result<Option<String>, String> {
    let client = env.client().await;
    let lease = Api::<Lease>::namespaced(client.clone(), OPERATOR_NAMESPACE)
        .get_opt(LEASE)
        .await
        .map_err(|e| e.to_string())?;
    let holder = lease
        .and_then(|l| l.spec)
        .and_then(|s| s.holder_identity)
        .unwrap_or_default();
    let pods = Api::<Pod>::namespaced(client, OPERATOR_NAMESPACE);
    let labelled: Vec<String> = pods
        .list(&ListParams::default().labels(LEADER_LABEL))
        .await
        .map_err(|e| e.to_string())?
        .items
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .map(pod_name)
        .collect();
    let ready: Vec<String> = pods
        .list(&ListParams::default().labels(OPERATOR_SELECTOR))
        .await
        .map_err(|e| e.to_string())?
        .items
        .iter()
        .filter(|p| is_ready(p))
        .map(pod_name)
        .collect();
    if !holder.is_empty() && ready.contains(&holder) && labelled == [holder.clone()] {
        Ok(Some(holder))
    } else {
        Err(format!(
            "Lease holder {holder:?}, leader-labelled pods {labelled:?}, Ready pods {ready:?}"
        ))
    }
}

/// Waits until both replicas of the operator are Ready (and no third pod is left).
async fn operator_ready(env: &TestEnv) -> Result<Vec<Pod>> {
    let pods: Api<Pod> = Api::namespaced(env.client().await, OPERATOR_NAMESPACE);
    wait(
        "2/2 operator replicas Ready",
        Duration::from_secs(180),
        || {
            let pods = pods.clone();
            async move {
                let list = pods
                    .list(&ListParams::default().labels(OPERATOR_SELECTOR))
                    .await
                    .map_err(|e| e.to_string())?
                    .items;
                let ready = list.iter().filter(|p| is_ready(p)).count();
                // A restart fails at once: it will not heal by waiting.
                if let Err(problem) = check_operator_pods(&list) {
                    return Ok(Some(Err(problem)));
                }
                if ready == 2 && list.len() == 2 {
                    Ok(Some(Ok(list)))
                } else {
                    let states: Vec<String> = list
                        .iter()
                        .map(|p| {
                            format!(
                                "{} {:?} ready={}",
                                pod_name(p),
                                p.status.as_ref().and_then(|s| s.phase.clone()),
                                is_ready(p)
                            )
                        })
                        .collect();
                    Err(format!("{states:?}"))
                }
            }
        },
    )
    .await?
    .map_err(|problem| format!("an operator container restarted: {problem}").into())
}

/// Sends the push of `repository:tag` to the webhook Service as a registry would (the `generic`
/// format), until a leader accepts it for at least one tracked tag.
async fn notify_push(env: &TestEnv, repository: &str, tag: &str, digest: &str) -> Result<()> {
    let ip = kubectl(
        env,
        &[
            "get",
            "service",
            "-n",
            OPERATOR_NAMESPACE,
            "imagestream-operator-webhook",
            "-o",
            "jsonpath={.spec.clusterIP}",
        ],
    )?;
    let url = format!("http://{}:8443/notifications/generic", ip.trim());
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?;
    let body = json!({"repository": repository, "tag": tag, "digest": digest});
    wait(
        &format!("the webhook Service to accept the push ({url})"),
        Duration::from_secs(60),
        || {
            let request = http.post(&url).bearer_auth(WEBHOOK_KEY).json(&body).send();
            async move {
                let answer = request.await.map_err(|e| e.to_string())?;
                let status = answer.status();
                let from = answer
                    .remote_addr()
                    .map(|a| a.to_string())
                    .unwrap_or_default();
                let text = answer.text().await.unwrap_or_default();
                let accepted = serde_json::from_str::<serde_json::Value>(&text)
                    .ok()
                    .and_then(|v| v["accepted"].as_u64())
                    .unwrap_or(0);
                if status.as_u16() == 202 && accepted > 0 {
                    Ok(Some(()))
                } else {
                    Err(format!("{status} from {from}: {:?}", text.trim()))
                }
            }
        },
    )
    .await
}

/// Waits until the demo Deployment's only pod runs `digest` and says `message`; returns its name.
async fn rolled_out(env: &TestEnv, digest: &str, message: &str) -> Result<String> {
    runs_alone(env, "demo", digest, message).await
}

/// Waits until the only pod labelled `app=<app>` runs `digest` and says `message`; returns its name.
async fn runs_alone(env: &TestEnv, app: &str, digest: &str, message: &str) -> Result<String> {
    let pods: Api<Pod> = Api::namespaced(env.client().await, NAMESPACE);
    let selector = format!("app={app}");
    let name = wait(
        &format!("the {app} pod to run {digest} alone"),
        Duration::from_secs(120),
        || {
            let pods = pods.clone();
            let selector = selector.clone();
            async move {
                let list = pods
                    .list(&ListParams::default().labels(&selector))
                    .await
                    .map_err(|e| e.to_string())?
                    .items;
                let states: Vec<String> = list
                    .iter()
                    .map(|p| {
                        format!(
                            "{} ready={} {}",
                            pod_name(p),
                            is_ready(p),
                            first_image_id(p)
                        )
                    })
                    .collect();
                match list.as_slice() {
                    [pod] if is_ready(pod) && first_image_id(pod).ends_with(digest) => {
                        Ok(Some(pod_name(pod)))
                    }
                    _ => Err(format!("{states:?}")),
                }
            }
        },
    )
    .await?;
    let logs = wait(
        &format!("`{message}` in the log of {name}"),
        Duration::from_secs(30),
        || {
            let logs = kubectl(env, &["logs", "-n", NAMESPACE, &name]);
            async move {
                let logs = logs.map_err(|e| e.to_string())?;
                if logs.contains(message) {
                    Ok(Some(logs))
                } else {
                    Err(format!("{logs:?}"))
                }
            }
        },
    )
    .await?;
    eprintln!("    kubectl logs {name}: {}", logs.trim());
    Ok(name)
}

/// A Deployment `name` of the demo namespace whose container names the stream tag `demo:v1`
/// (resolved by the image-lookup admission webhook, the stream having `lookupPolicy.local`).
fn lookup_deployment(name: &str) -> serde_json::Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "terminationGracePeriodSeconds": 1,
                    "containers": [{"name": "lookup", "image": "demo:v1"}]
                }
            }
        }
    })
}

/// Asks the admission webhook of the operator pod at `ip` directly (as the API server would, over
/// TLS) to admit a Pod of the demo namespace naming `demo:v1`, until it answers with a patch
/// writing `want`.
async fn lookup_answered(ip: &str, want: &str) -> Result<()> {
    use base64::Engine as _;
    let http = reqwest::Client::builder()
        // The serving certificate names the Service, not the pod's address.
        .danger_accept_invalid_certs(true)
        .timeout(Duration::from_secs(5))
        .build()?;
    let url = format!("https://{ip}:9443/admission/image-lookup");
    let review = json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "e2e",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": NAMESPACE,
            "operation": "CREATE",
            "object": {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "asked-directly", "namespace": NAMESPACE},
                "spec": {"containers": [{"name": "c", "image": "demo:v1"}]}
            }
        }
    });
    wait(
        &format!("{url} to resolve demo:v1 to {want}"),
        Duration::from_secs(20),
        || {
            let request = http.post(&url).json(&review).send();
            async move {
                let answer: serde_json::Value = request
                    .await
                    .map_err(|e| e.to_string())?
                    .json()
                    .await
                    .map_err(|e| e.to_string())?;
                let patch = answer["response"]["patch"].as_str().unwrap_or_default();
                let patch = base64::engine::general_purpose::STANDARD
                    .decode(patch)
                    .map_err(|e| e.to_string())?;
                let patch = String::from_utf8_lossy(&patch).into_owned();
                if patch.contains(want) {
                    Ok(Some(()))
                } else {
                    Err(format!("answer {answer}"))
                }
            }
        },
    )
    .await
}

/// The image of the first container of Deployment `name`'s pod template.
async fn template_image_of(
    deployments: &Api<Deployment>,
    name: &str,
) -> std::result::Result<String, String> {
    let deployment = deployments.get(name).await.map_err(|e| e.to_string())?;
    Ok(deployment
        .spec
        .and_then(|s| s.template.spec)
        .and_then(|s| s.containers.first().and_then(|c| c.image.clone()))
        .unwrap_or_default())
}

/// Prints what helps to understand a failure.
fn diagnostics(env: &TestEnv, node: &Node) {
    for args in [
        &["get", "pods", "-A", "-o", "wide", "--show-labels"][..],
        &["get", "endpoints", "-n", OPERATOR_NAMESPACE, "-o", "wide"][..],
        &["get", "deployments", "-A"][..],
        &["get", "imagestreams", "-n", NAMESPACE, "-o", "yaml"][..],
        &["get", "lease", "-n", OPERATOR_NAMESPACE, "-o", "yaml"][..],
        &["get", "events", "-A", "--sort-by=.lastTimestamp"][..],
        &[
            "logs",
            "-n",
            OPERATOR_NAMESPACE,
            "-l",
            OPERATOR_SELECTOR,
            "--tail=40",
            "--prefix",
        ][..],
    ] {
        eprintln!("\n--- kubectl {}", args.join(" "));
        match kubectl(env, args) {
            Ok(out) => eprintln!("{out}"),
            Err(err) => eprintln!("{err}"),
        }
    }
    // The log of each operator container that restarted, before its restart.
    let restarted = kubectl(
        env,
        &[
            "get",
            "pods",
            "-n",
            OPERATOR_NAMESPACE,
            "-o",
            "jsonpath={range .items[?(@.status.containerStatuses[0].restartCount>0)]}{.metadata.name}{\"\\n\"}{end}",
        ],
    )
    .unwrap_or_default();
    for pod in restarted.lines().filter(|l| !l.trim().is_empty()) {
        eprintln!("\n--- kubectl logs --previous -n {OPERATOR_NAMESPACE} {pod}");
        match kubectl(
            env,
            &[
                "logs",
                "--previous",
                "-n",
                OPERATOR_NAMESPACE,
                pod.trim(),
                "--tail=40",
            ],
        ) {
            Ok(out) => eprintln!("{out}"),
            Err(err) => eprintln!("{err}"),
        }
    }
    eprintln!("node logs in {}", node.dir().display());
}

async fn exercise(env: &TestEnv, node: &Node, binary: &Path, timings: &mut Timings) -> Result<()> {
    let registry = node.registry_host().to_owned();
    step(
        "operator image (hack/oci_image.py operator) in the node registry; kubectl apply -k <overlay of deploy/ with the image>",
    );
    let since = Instant::now();
    let install = node.install_operator(env, binary, "e2e", &[])?;
    timings.record("image built and pushed, deploy/ applied", since.elapsed());
    eprintln!("    {}", install.image());
    eprint!("{}", install.applied);
    let since = Instant::now();
    // The push-notification receiver's Secret (README, "Push notifications"): the generic format.
    kubectl(
        env,
        &[
            "create",
            "secret",
            "generic",
            "-n",
            OPERATOR_NAMESPACE,
            "imagestream-operator-webhook",
            &format!("--from-literal=generic={WEBHOOK_KEY}"),
        ],
    )?;
    let pods = operator_ready(env).await?;
    timings.record("apply -k to 2/2 Ready", since.elapsed());
    for pod in &pods {
        let spec = pod.spec.as_ref().ok_or("a pod without spec")?;
        let container = spec.containers.first().ok_or("a pod without containers")?;
        let image = container.image.clone().unwrap_or_default();
        if image != install.image() {
            return Err(format!("{} runs {image}, not the built image", pod_name(pod)).into());
        }
        let limits = container
            .resources
            .as_ref()
            .and_then(|r| r.limits.as_ref())
            .and_then(|l| l.get("memory"))
            .map(|q| q.0.clone());
        let read_only = container
            .security_context
            .as_ref()
            .and_then(|s| s.read_only_root_filesystem);
        let non_root = spec
            .security_context
            .as_ref()
            .and_then(|s| s.run_as_non_root);
        if limits.as_deref() != Some("256Mi") || read_only != Some(true) || non_root != Some(true) {
            return Err(format!(
                "{} lacks deploy/'s limits or security context: memory limit {limits:?}, \
                 readOnlyRootFilesystem {read_only:?}, runAsNonRoot {non_root:?}",
                pod_name(pod)
            )
            .into());
        }
    }
    let since = Instant::now();
    let first_leader = wait("one Lease holder", Duration::from_secs(60), || leader(env)).await?;
    timings.record("2/2 Ready to one Lease holder", since.elapsed());
    eprintln!("    leader {first_leader}");

    step("the kubelet's API (on the address pods reach) refuses anonymous requests");
    let node_object = Api::<k8s_openapi::api::core::v1::Node>::all(env.client().await)
        .get(node.name())
        .await?;
    let port = node_object
        .status
        .and_then(|s| s.daemon_endpoints)
        .and_then(|d| d.kubelet_endpoint)
        .map(|e| e.port)
        .ok_or("the Node reports no kubelet endpoint")?;
    let host = registry.split(':').next().unwrap_or_default();
    let url = format!("https://{host}:{port}/pods");
    let answer = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .timeout(Duration::from_secs(5))
        .build()?
        .get(&url)
        .send()
        .await?;
    if answer.status() != reqwest::StatusCode::UNAUTHORIZED {
        return Err(format!("an anonymous GET {url} got {}", answer.status()).into());
    }
    eprintln!("    anonymous GET {url}: {}", answer.status());

    step("a triggered Deployment tracking demo:v1 of an ImageStream");
    let source = format!("{registry}/e2e/demo");
    let v1 = node.push_test_image("demo v1", &format!("{source}:v1"))?;
    kubectl(env, &["create", "namespace", NAMESPACE])?;
    apply(
        env,
        &json!({
            "apiVersion": "image.openshift.io/v1",
            "kind": "ImageStream",
            "metadata": {"name": "demo", "namespace": NAMESPACE},
            "spec": {
                // Workloads of the namespace may name `demo:v1` (image lookup at admission).
                "lookupPolicy": {"local": true},
                "tags": [{
                    "name": "v1",
                    "from": {"kind": "DockerImage", "name": format!("{source}:v1")},
                    // The node registry speaks plain HTTP.
                    "importPolicy": {"scheduled": true, "insecure": true},
                }]
            }
        }),
    )?;
    let since = Instant::now();
    wait("the stream to import v1", Duration::from_secs(60), || {
        let out = kubectl(
            env,
            &[
                "get",
                "imagestream",
                "-n",
                NAMESPACE,
                "demo",
                "-o",
                "jsonpath={.status.tags[0].items[0].image}",
            ],
        );
        let v1 = v1.clone();
        async move {
            let out = out.map_err(|e| e.to_string())?;
            if out.trim() == v1 {
                Ok(Some(()))
            } else {
                Err(out)
            }
        }
    })
    .await?;
    timings.record("stream imported v1", since.elapsed());
    // Paused until the trigger has set the image, so the first pod already runs v1.
    apply(
        env,
        &json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "name": "demo",
                "namespace": NAMESPACE,
                "annotations": {
                    "image.openshift.io/triggers": json!([{
                        "from": {"kind": "ImageStreamTag", "name": "demo:v1"},
                        "fieldPath": "spec.template.spec.containers[?(@.name==\"demo\")].image"
                    }]).to_string()
                }
            },
            "spec": {
                "paused": true,
                "replicas": 1,
                "selector": {"matchLabels": {"app": "demo"}},
                "template": {
                    "metadata": {"labels": {"app": "demo"}},
                    "spec": {
                        "terminationGracePeriodSeconds": 1,
                        "containers": [{"name": "demo", "image": format!("{source}:v1")}]
                    }
                }
            }
        }),
    )?;
    let deployments: Api<Deployment> = Api::namespaced(env.client().await, NAMESPACE);
    let template_image = || template_image_of(&deployments, "demo");
    let since = Instant::now();
    wait("the trigger to set v1", Duration::from_secs(60), || {
        let image = template_image();
        let want = format!("@{v1}");
        async move {
            let image = image.await?;
            if image.ends_with(&want) {
                Ok(Some(()))
            } else {
                Err(image)
            }
        }
    })
    .await?;
    timings.record("trigger set v1 in the template", since.elapsed());
    kubectl(
        env,
        &["rollout", "resume", "-n", NAMESPACE, "deployment/demo"],
    )?;
    let since = Instant::now();
    let mut pod = rolled_out(env, &v1, "demo v1").await?;
    timings.record("v1 pod Running", since.elapsed());

    step("image lookup at admission: a Deployment naming `demo:v1` runs the stream's digest");
    // The API server calls the webhook Service over TLS with the CA the operator published.
    let since = Instant::now();
    apply(env, &lookup_deployment("lookup"))?;
    let image = template_image_of(&deployments, "lookup").await?;
    if image != format!("{source}@{v1}") {
        return Err(
            format!("admission left the Deployment's image {image:?}, not {source}@{v1}").into(),
        );
    }
    runs_alone(env, "lookup", &v1, "demo v1").await?;
    timings.record("lookup: created to its pod Running v1", since.elapsed());
    // Not only the replica the Service happened to pick: each answers from its own stream cache.
    let since = Instant::now();
    let operator_pods = Api::<Pod>::namespaced(env.client().await, OPERATOR_NAMESPACE)
        .list(&ListParams::default().labels(OPERATOR_SELECTOR))
        .await?
        .items;
    for pod in &operator_pods {
        let ip = pod
            .status
            .as_ref()
            .and_then(|s| s.pod_ip.clone())
            .ok_or_else(|| format!("{} has no IP", pod_name(pod)))?;
        lookup_answered(&ip, &format!("{source}@{v1}")).await?;
        eprintln!("    {} ({ip}) resolves demo:v1 at admission", pod_name(pod));
    }
    timings.record("every replica resolves at admission", since.elapsed());

    let mut leader_name = first_leader;
    let mut last_digest = v1.clone();
    for (round, version) in ["v2", "v3"].into_iter().enumerate() {
        if round == 1 {
            step(&format!(
                "the leader {leader_name} deleted: the standby takes the Lease"
            ));
            let before = Api::<Pod>::namespaced(env.client().await, OPERATOR_NAMESPACE)
                .list(&ListParams::default().labels(OPERATOR_SELECTOR))
                .await?
                .items;
            check_operator_pods(&before)?;
            let old = leader_name.clone();
            let since = Instant::now();
            kubectl(
                env,
                &[
                    "delete",
                    "pod",
                    "-n",
                    OPERATOR_NAMESPACE,
                    &old,
                    "--wait=false",
                ],
            )?;
            leader_name = wait("another Lease holder", Duration::from_secs(60), || {
                let state = leader(env);
                let old = old.clone();
                async move {
                    match state.await? {
                        Some(holder) if holder != old => Ok(Some(holder)),
                        other => Err(format!("holder {other:?}")),
                    }
                }
            })
            .await?;
            timings.record("leader deleted to new Lease holder", since.elapsed());
            eprintln!("    new leader {leader_name}");
        }
        let message = format!("demo {version}");
        step(&format!("`{message}` pushed to demo:v1"));
        let digest = node.push_test_image(&message, &format!("{source}:v1"))?;
        let since = Instant::now();
        notify_push(env, &source, "v1", &digest).await?;
        timings.record(
            &format!("{version}: push notification accepted"),
            since.elapsed(),
        );
        let new_pod = rolled_out(env, &digest, &message).await?;
        timings.record(
            &format!("{version}: pushed to the new pod Running alone with its log"),
            since.elapsed(),
        );
        if new_pod == pod {
            return Err(format!("{pod} was not replaced").into());
        }
        pod = new_pod;
        last_digest = digest;
    }

    let current = last_digest;
    step(&format!(
        "image lookup at admission after the handover: a Deployment naming `demo:v1` runs {current}"
    ));
    apply(env, &lookup_deployment("lookup-after"))?;
    let image = template_image_of(&deployments, "lookup-after").await?;
    if image != format!("{source}@{current}") {
        return Err(format!(
            "admission left the Deployment's image {image:?}, not {source}@{current}"
        )
        .into());
    }
    runs_alone(env, "lookup-after", &current, "demo v3").await?;

    step("the operator pods: Ready, never restarted, never OOM-killed");
    let pods = operator_ready(env).await?;
    for pod in &pods {
        eprintln!(
            "    {} Ready, restarts 0, {}",
            pod_name(pod),
            if pod_name(pod) == leader_name {
                "leader"
            } else {
                "standby"
            }
        );
    }
    eprint!(
        "{}",
        kubectl(env, &["get", "pods", "-A", "-o", "wide"]).unwrap_or_default()
    );
    Ok(())
}

/// One node per machine: the tests of this binary take turns.
static ONE_NODE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The whole flow on one node: install, two replicas and one leader, rollouts after pushes,
/// failover, no restarts. Tears the node down at its end and checks nothing is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_in_pods_rolls_out_pushes_and_fails_over() -> Result<()> {
    if !enabled() {
        return Ok(());
    }
    let _turn = ONE_NODE_AT_A_TIME.lock().await;
    let start = Instant::now();
    let mut timings = Timings::default();

    step("cargo build --release --bin imagestream-operator");
    let since = Instant::now();
    let binary = build_operator()?;
    timings.record("release build", since.elapsed());

    step("starting the control plane and a node");
    let options = NodeOptions::default();
    let since = Instant::now();
    let (env, mut node) = TestEnv::start_with_node(&[], &options).await?;
    timings.record("node Ready", since.elapsed());

    let result = exercise(&env, &node, &binary, &mut timings).await;
    if let Err(err) = &result {
        eprintln!("\nFAILED: {err}");
        diagnostics(&env, &node);
    }

    step("tearing down");
    let since = Instant::now();
    let log = node.teardown().await;
    timings.record("teardown", since.elapsed());
    drop(env);
    for problem in &log.problems {
        eprintln!("    PROBLEM: {problem}");
    }
    let left = imagestream_testenv::node::host_leftovers(&options.bridge);
    for l in &left {
        eprintln!("    left: {l}");
    }
    timings.record("total", start.elapsed());
    result?;
    if !log.problems.is_empty() || !left.is_empty() {
        return Err("the teardown left something behind".into());
    }
    Ok(())
}

/// The `node` example's program, from `IMAGESTREAM_E2E_NODE_EXAMPLE` (`make test` and `make e2e`
/// build it with `cargo build --example node`; `cargo test` builds examples only as test
/// harnesses).
fn node_example() -> Result<PathBuf> {
    let path = std::env::var_os("IMAGESTREAM_E2E_NODE_EXAMPLE").ok_or(
        "IMAGESTREAM_E2E_NODE_EXAMPLE is not set: build `cargo build --example node` and point it at \
         target/debug/examples/node (make e2e does)",
    )?;
    let path = PathBuf::from(path);
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!("{} not found: `cargo build --example node`", path.display()).into())
    }
}

/// A run killed while its node runs (the `node` example with `--abandon` kills itself with SIGKILL
/// once a pod runs) leaves its shim, the pod's processes, mounts, iptables chains, the bridge and its
/// record behind; the next node restores the machine from that record before it starts, and after
/// its own teardown nothing of either is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_before_its_teardown_is_cleaned_up_by_the_next() -> Result<()> {
    use std::os::unix::process::ExitStatusExt;
    if !enabled() {
        return Ok(());
    }
    let _turn = ONE_NODE_AT_A_TIME.lock().await;
    let options = NodeOptions::default();
    let example = node_example()?;

    step("the node example with --abandon: a node running a pod, then SIGKILL");
    let out = Command::new(&example)
        .arg("--abandon")
        .stdin(Stdio::null())
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if out.status.signal() != Some(SIGKILL) {
        return Err(format!(
            "the example was not killed by SIGKILL but ended with {}:\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    let node_dir = stdout
        .lines()
        .find_map(|l| l.strip_prefix("logs in "))
        .map(PathBuf::from)
        .ok_or("the example did not say where its node lived")?;
    let scratch = node_dir
        .parent()
        .ok_or("the node directory has no parent")?
        .to_owned();
    let left = imagestream_testenv::node::host_leftovers(&options.bridge);
    for l in &left {
        eprintln!("    left: {}", l.chars().take(160).collect::<String>());
    }
    for expected in [
        format!("bridge {}", options.bridge),
        "record ".to_owned(),
        "containerd-shim".to_owned(),
    ] {
        if !left.iter().any(|l| l.contains(&expected)) {
            return Err(format!("the killed run left no {expected:?}: {left:?}").into());
        }
    }
    if !scratch.exists() {
        return Err(format!("the killed run's {} is already gone", scratch.display()).into());
    }

    step("a new node: restores the machine from the record, then starts");
    let (env, mut node) = TestEnv::start_with_node(&[], &options).await?;
    let reclaimed = node
        .reclaimed()
        .cloned()
        .ok_or("the new node found no record of the killed run")?;
    for done in &reclaimed.done {
        eprintln!(
            "    reclaimed: {}",
            done.chars().take(160).collect::<String>()
        );
    }
    let did = |what: &str| reclaimed.done.iter().any(|d| d.contains(what));
    let missing: Vec<&str> = [
        "killed leftover shim",
        "deleted bridge",
        "removed iptables chains",
        "unmounting",
    ]
    .into_iter()
    .filter(|what| !did(what))
    .collect();
    let scratch_left = scratch.exists();
    let ready = kubectl(&env, &["get", "nodes", "--no-headers"]);

    step("tearing down the new node");
    let log = node.teardown().await;
    drop(env);
    let left = imagestream_testenv::node::host_leftovers(&options.bridge);
    if !missing.is_empty() {
        return Err(format!("the reclaim did not do {missing:?}: {:?}", reclaimed.done).into());
    }
    if scratch_left {
        return Err(format!("the killed run's {} was not removed", scratch.display()).into());
    }
    let ready = ready?;
    if !ready.contains(" Ready ") {
        return Err(format!("the new node is not Ready: {ready}").into());
    }
    if !log.problems.is_empty() || !left.is_empty() {
        return Err(format!(
            "the teardown left something behind: {:?} {left:?}",
            log.problems
        )
        .into());
    }
    Ok(())
}

/// SIGKILL's number (9 on every Linux architecture).
const SIGKILL: i32 = 9;
