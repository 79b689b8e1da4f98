//! `cargo run --example node`: proves a real node works in the test environment. Starts the control
//! plane and a node (containerd, kubelet, kube-proxy, kube-scheduler, kube-controller-manager),
//! pushes a busybox test image to the node registry, runs it as a pod, prints `kubectl get nodes`,
//! `kubectl get pods` and the pod's `kubectl logs`, checks that the pod reaches the API server through
//! the `kubernetes` Service with its service-account token, then tears everything down and checks
//! that nothing is left on the machine (no `KUBE-*`/`CNI-*` iptables chains, no mounts, no bridge).
//! Needs root and `hack/provision-node.sh`.
//!
//! `--abandon` stops short, the way a crash would: once the first pod runs, the process kills itself
//! with SIGKILL, leaving containerd's shims, the pod, mounts, iptables chains, the bridge and the
//! node's record behind for the next node to clean up (the end-to-end tests check that it does).

use std::time::{Duration, Instant};

use imagestream_testenv::{NodeOptions, TestEnv};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::PostParams;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn kubectl(env: &TestEnv, args: &[&str]) -> Result<String> {
    Ok(env.run_kubectl(args, None)?)
}

fn step(text: &str) {
    println!("\n==> {text}");
}

fn pod_phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

/// Creates `pod` in `default` and waits until it runs; prints how long scheduling and starting took.
async fn run_pod(env: &TestEnv, pod: serde_json::Value) -> Result<()> {
    let pods: Api<Pod> = Api::namespaced(env.client().await, "default");
    let pod: Pod = serde_json::from_value(pod)?;
    let name = pod.metadata.name.clone().unwrap_or_default();
    let created = Instant::now();
    pods.create(&PostParams::default(), &pod).await?;
    let mut scheduled = None;
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let pod = pods.get(&name).await?;
        let on_node = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_ref())
            .is_some();
        if on_node && scheduled.is_none() {
            scheduled = Some(Instant::now());
            println!("scheduled {:.2?} after creation", created.elapsed());
        }
        if pod_phase(&pod) == "Running" {
            let after = scheduled.map(|s| s.elapsed()).unwrap_or_default();
            println!(
                "Running {:.2?} after scheduling ({:.2?} after creation)",
                after,
                created.elapsed()
            );
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "pod not Running after 90 s: {:?}",
                pod.status.map(|s| s.container_statuses)
            )
            .into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Pushes a busybox test image printing `demo v1` to the node registry and runs it as the pod
/// `hello`; returns the image.
async fn run_hello(env: &TestEnv, node: &imagestream_testenv::Node) -> Result<String> {
    let image = format!("{}/demo/hello:v1", node.registry_host());
    let digest = node.push_test_image("demo v1", &image)?;
    println!("{image} {digest}");
    step("running it as a pod");
    run_pod(
        env,
        serde_json::json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "hello"},
            "spec": {
                "terminationGracePeriodSeconds": 1,
                "containers": [{"name": "hello", "image": image}]
            }
        }),
    )
    .await?;
    Ok(image)
}

async fn exercise(env: &TestEnv, node: &imagestream_testenv::Node) -> Result<()> {
    step("pushing a busybox test image to the node registry");
    let image = run_hello(env, node).await?;

    step("the same image with deploy/'s security context and limits");
    run_pod(
        env,
        serde_json::json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "restricted"},
            "spec": {
                "terminationGracePeriodSeconds": 1,
                "securityContext": {
                    "runAsNonRoot": true,
                    "runAsUser": 65532,
                    "runAsGroup": 65532,
                    "seccompProfile": {"type": "RuntimeDefault"}
                },
                "containers": [{
                    "name": "restricted",
                    "image": image,
                    "resources": {
                        "requests": {"cpu": "10m", "memory": "16Mi"},
                        "limits": {"cpu": "100m", "memory": "32Mi"}
                    },
                    "securityContext": {
                        "allowPrivilegeEscalation": false,
                        "readOnlyRootFilesystem": true,
                        "capabilities": {"drop": ["ALL"]}
                    }
                }]
            }
        }),
    )
    .await?;
    let limits = kubectl(
        env,
        &[
            "exec",
            "restricted",
            "--",
            "sh",
            "-c",
            "id; cat /proc/self/status | grep -E '^(Seccomp|CapEff):'; cat /sys/fs/cgroup/memory/memory.limit_in_bytes; touch /x 2>&1 || true",
        ],
    )?;
    print!("{limits}");
    if !limits.contains("uid=65532") || !limits.contains("33554432") {
        return Err("the restricted pod does not run as 65532 with its memory limit".into());
    }

    step("kubectl get nodes -o wide");
    print!("{}", kubectl(env, &["get", "nodes", "-o", "wide"])?);
    step("kubectl get pods -A -o wide");
    print!("{}", kubectl(env, &["get", "pods", "-A", "-o", "wide"])?);
    step("kubectl logs hello");
    let mut logs = String::new();
    for _ in 0..50 {
        logs = kubectl(env, &["logs", "hello"])?;
        if !logs.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    print!("{logs}");
    if !logs.contains("demo v1") {
        return Err(format!("the pod's log does not show `demo v1`: {logs:?}").into());
    }

    step("in-cluster access: the pod calls the API server through the kubernetes Service");
    let script = "TOKEN=$(cat /var/run/secrets/kubernetes.io/serviceaccount/token); \
                  echo token: ${#TOKEN} bytes; \
                  echo KUBERNETES_SERVICE_HOST=$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT; \
                  wget -q -O- --no-check-certificate --header \"Authorization: Bearer $TOKEN\" \
                  https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT/version 2>&1 | head -c 300; echo";
    let out = kubectl(env, &["exec", "hello", "--", "sh", "-c", script])?;
    print!("{out}");
    if !out.contains("gitVersion") {
        return Err("the pod could not call the API server through the kubernetes Service".into());
    }

    step("a Service: endpoints, kube-proxy and hairpin traffic (the pod calls itself through it)");
    kubectl(env, &["label", "pod", "hello", "app=hello"])?;
    kubectl(
        env,
        &["create", "service", "clusterip", "hello", "--tcp=80:8080"],
    )?;
    kubectl(
        env,
        &[
            "exec",
            "hello",
            "--",
            "sh",
            "-c",
            "mkdir -p /tmp/www && echo served by $(hostname) > /tmp/www/index.html && httpd -p 8080 -h /tmp/www",
        ],
    )?;
    let ip = kubectl(
        env,
        &[
            "get",
            "service",
            "hello",
            "-o",
            "jsonpath={.spec.clusterIP}",
        ],
    )?;
    // (`wget -T` of Debian's busybox-static 1.35 segfaults; `nc -w` has a timeout that works.)
    let fetch = format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 {ip} 80 2>&1 | tail -n 1");
    let mut answer = String::new();
    for _ in 0..40 {
        answer = kubectl(env, &["exec", "hello", "--", "sh", "-c", &fetch]).unwrap_or_default();
        if answer.contains("served by") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    print!("{}", kubectl(env, &["get", "endpoints", "hello"])?);
    println!("GET http://{ip}/ from the pod: {}", answer.trim());
    if !answer.contains("served by") {
        return Err("the Service did not answer".into());
    }
    Ok(())
}

/// Runs a pod, then ends the process with SIGKILL: no teardown, no destructors.
async fn abandon(env: &TestEnv, node: &imagestream_testenv::Node) -> Result<()> {
    run_hello(env, node).await?;
    println!(
        "abandoning the node: SIGKILL to process {}",
        std::process::id()
    );
    use std::io::Write;
    std::io::stdout().flush()?;
    std::process::Command::new("kill")
        .args(["-KILL", &std::process::id().to_string()])
        .status()?;
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let options = NodeOptions::default();
    let start = Instant::now();
    step("starting the control plane and a node");
    // Ctrl-C drops the start (a half-started node tears itself down when dropped) or ends the
    // exercise early; the teardown below runs either way.
    let (env, mut node) = tokio::select! {
        started = TestEnv::start_with_node(&[], &options) => started?,
        _ = tokio::signal::ctrl_c() => return Err("interrupted while starting".into()),
    };
    println!("node {} Ready after {:.2?}", node.name(), start.elapsed());
    for (what, took) in node.timings() {
        println!("  {what}: {took:.2?}");
    }
    println!("logs in {}", node.dir().display());
    if std::env::args().any(|a| a == "--abandon") {
        return abandon(&env, &node).await;
    }

    let result = tokio::select! {
        result = exercise(&env, &node) => result,
        _ = tokio::signal::ctrl_c() => Err("interrupted".into()),
    };
    if let Err(err) = &result {
        println!("FAILED: {err}");
    }

    step("tearing down");
    let since = Instant::now();
    let log = node.teardown().await;
    println!("teardown took {:.2?}", since.elapsed());
    for done in &log.done {
        println!("  {done}");
    }
    for problem in &log.problems {
        println!("  PROBLEM: {problem}");
    }
    drop(env);
    let left = imagestream_testenv::node::host_leftovers(&options.bridge);
    if left.is_empty() {
        println!("nothing left on the machine (iptables, mounts, directories, bridge)");
    } else {
        for l in &left {
            println!("  left: {l}");
        }
    }
    println!("\ntotal {:.2?}", start.elapsed());
    result?;
    if !left.is_empty() {
        return Err("the teardown left something behind".into());
    }
    Ok(())
}
