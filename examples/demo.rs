//! `make demo`: the whole product on a local cluster with a real node. Starts etcd, kube-apiserver, a
//! registry and a node (containerd, kubelet, kube-proxy, kube-scheduler, kube-controller-manager);
//! builds the operator's image from its release build and installs it from `deploy/` with
//! `kubectl apply -k` (an overlay that only sets the image and a 2 s import interval); pushes a
//! busybox image printing `web v1`, creates an ImageStream and a Deployment with an
//! `image.openshift.io/triggers` annotation, and shows the pod running v1 and its log; then pushes
//! `web v2` to the same tag and shows the tag history and the pod replaced by one printing `web v2`.
//! Everything it started stops when it exits (also on Ctrl-C), and the node's changes to the
//! machine are undone.
//!
//! Needs root and `make provision-node`; `make demo` builds the release binary and passes it in
//! `IMAGESTREAM_DEMO_OPERATOR_BIN` (default: target/release/imagestream-operator).

use std::path::PathBuf;
use std::time::Duration;

use imagestream_operator::api::ImageStream;
use imagestream_operator::api::image_stream::{
    ImageStreamSpec, TagImportPolicy, TagReference, TagSource,
};
use imagestream_testenv::pods::{first_image_id, is_ready};
use imagestream_testenv::{Node, NodeOptions, TestEnv};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, PostParams};
use kube::{Api, ResourceExt};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

const NAMESPACE: &str = "demo";
const OPERATOR_NAMESPACE: &str = "imagestream-operator";

fn step(text: &str) {
    println!("\n==> {text}");
}

/// Polls `probe` every 500 ms for up to two minutes.
async fn wait_until<T, F, Fut>(what: &str, mut probe: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(value) = probe().await {
            return Ok(value);
        }
        if tokio::time::Instant::now() > deadline {
            return Err(format!("timed out waiting for {what}").into());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn kubectl(env: &TestEnv, args: &[&str]) -> Result<String> {
    Ok(env.run_kubectl(args, None)?)
}

/// Prints `kubectl <args>`, indented, with the command line first.
fn show(env: &TestEnv, args: &[&str]) -> Result<()> {
    println!("    $ kubectl {}", args.join(" "));
    for line in kubectl(env, args)?.lines() {
        println!("    {line}");
    }
    Ok(())
}

fn print_history(stream: &ImageStream) {
    for tag in stream.status.iter().flat_map(|s| s.tags.iter()) {
        println!("    tag {}:", tag.tag);
        for (i, event) in tag.items.iter().enumerate() {
            let marker = if i == 0 { "current" } else { "earlier" };
            println!("      {marker:8} {}", event.docker_image_reference);
        }
    }
}

/// Waits until the pods selected by `labels` in `namespace` are `count` Ready ones, all running an
/// image that ends with `image` (when given); returns their names.
async fn pods_ready(
    env: &TestEnv,
    namespace: &str,
    labels: &str,
    count: usize,
    image: Option<&str>,
) -> Result<Vec<String>> {
    let pods: Api<Pod> = Api::namespaced(env.client().await, namespace);
    wait_until(
        &format!("{count} Ready pod(s) {labels} in {namespace}"),
        || {
            let pods = pods.clone();
            async move {
                let list = pods
                    .list(&ListParams::default().labels(labels))
                    .await
                    .ok()?
                    .items;
                let done = list.len() == count
                    && list.iter().all(|p| {
                        is_ready(p) && image.is_none_or(|image| first_image_id(p).ends_with(image))
                    });
                done.then(|| list.iter().map(|p| p.name_any()).collect())
            }
        },
    )
    .await
}

/// Waits until the log of `pod` in `namespace` has a line; prints it.
async fn show_log(env: &TestEnv, namespace: &str, pod: &str) -> Result<()> {
    let log = wait_until(&format!("the log of {pod}"), || async {
        let log = kubectl(env, &["logs", "-n", namespace, pod]).ok()?;
        (!log.trim().is_empty()).then_some(log)
    })
    .await?;
    println!("    $ kubectl logs -n {namespace} {pod}");
    for line in log.lines() {
        println!("    {line}");
    }
    Ok(())
}

fn operator_binary() -> Result<PathBuf> {
    let binary = std::env::var_os("IMAGESTREAM_DEMO_OPERATOR_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/release/imagestream-operator")
        });
    if binary.is_file() {
        Ok(binary)
    } else {
        Err(format!(
            "{} not found: build it with `cargo build --release --bin imagestream-operator` (make demo does)",
            binary.display()
        )
        .into())
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let binary = operator_binary()?;
    if !std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
    {
        return Err(
            "the demo starts a node (a bridge, containerd, kubelet): run it as root".into(),
        );
    }
    step(
        "Starting etcd, kube-apiserver, a registry and a node (containerd, kubelet, kube-proxy, \
         kube-scheduler, kube-controller-manager)",
    );
    // Ctrl-C while starting drops the start (a half-started node tears itself down when dropped).
    let options = NodeOptions::default();
    let (env, mut node) = tokio::select! {
        started = TestEnv::start_with_node(&[], &options) => started?,
        _ = tokio::signal::ctrl_c() => return Err("interrupted while starting".into()),
    };
    let result = tokio::select! {
        result = walk_through(&env, &node, &binary) => result,
        _ = tokio::signal::ctrl_c() => Err("interrupted".into()),
    };
    step("Stopping everything the demo started and undoing the node's changes to the machine");
    let teardown = node.teardown().await;
    drop(env);
    for problem in &teardown.problems {
        eprintln!("    could not undo: {problem}");
    }
    result?;
    println!("\nDone.");
    Ok(())
}

async fn walk_through(env: &TestEnv, node: &Node, binary: &std::path::Path) -> Result<()> {
    show(env, &["get", "nodes", "-o", "wide"])?;

    step(
        "Building the operator's image (hack/oci_image.py) into the node registry and installing \
         it: kubectl apply -k <deploy/ with that image and IMPORT_INTERVAL=2s>",
    );
    let install = node.install_operator(env, binary, "demo", &[("IMPORT_INTERVAL", "2s")])?;
    println!("    image {}", install.image());
    for line in install.applied.lines() {
        println!("    {line}");
    }
    pods_ready(
        env,
        OPERATOR_NAMESPACE,
        "app.kubernetes.io/name=imagestream-operator",
        2,
        Some(&install.digest),
    )
    .await?;
    let lease = wait_until("a Lease holder", || async {
        let out = kubectl(
            env,
            &[
                "get",
                "lease",
                "-n",
                OPERATOR_NAMESPACE,
                "imagestream-operator",
                "-o",
                "jsonpath={.spec.holderIdentity}",
            ],
        )
        .ok()?;
        (!out.trim().is_empty()).then_some(out)
    })
    .await?;
    show(
        env,
        &["get", "pods", "-n", OPERATOR_NAMESPACE, "-o", "wide"],
    )?;
    println!("    leader (Lease holder): {}", lease.trim());

    let client = env.client().await;
    let source = format!("{}/demo/web", node.registry_host());
    step(&format!(
        "Pushing {source}:v1 (a busybox image that prints `web v1`)"
    ));
    let v1 = node.push_test_image("web v1", &format!("{source}:v1"))?;
    println!("    {v1}");

    step("Creating ImageStream web, tag v1 tracking the registry (scheduled imports)");
    kubectl(env, &["create", "namespace", NAMESPACE])?;
    let streams = Api::<ImageStream>::namespaced(client.clone(), NAMESPACE);
    let stream = ImageStream::new(
        "web",
        ImageStreamSpec {
            tags: vec![TagReference {
                name: "v1".into(),
                from: Some(TagSource {
                    kind: Some("DockerImage".into()),
                    name: Some(format!("{source}:v1")),
                    ..TagSource::default()
                }),
                // The node registry speaks plain HTTP.
                import_policy: Some(TagImportPolicy {
                    scheduled: Some(true),
                    insecure: Some(true),
                    ..TagImportPolicy::default()
                }),
                ..TagReference::default()
            }],
            ..ImageStreamSpec::default()
        },
    );
    streams.create(&PostParams::default(), &stream).await?;
    let first = wait_until("the first import", || async {
        let s = streams.get("web").await.ok()?;
        s.status.as_ref()?.tag("v1")?.items.first()?;
        Some(s)
    })
    .await?;
    println!("    The operator imported v1:");
    print_history(&first);

    step("Creating Deployment web with an image.openshift.io/triggers annotation on web:v1");
    let manifest = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/deployment-with-trigger.yaml"
    ))?;
    let manifest = manifest.replace("web:latest", "web:v1");
    let deployment: Deployment = serde_saphyr::from_str(&manifest)?;
    println!(
        "    annotation: {}",
        deployment.annotations()["image.openshift.io/triggers"]
    );
    Api::<Deployment>::namespaced(client.clone(), NAMESPACE)
        .create(&PostParams::default(), &deployment)
        .await?;
    let pods = pods_ready(env, NAMESPACE, "app=web", 1, Some(&v1)).await?;
    println!("    The trigger set the image to web:v1's digest; the pod runs it:");
    show(env, &["get", "pods", "-n", NAMESPACE, "-o", "wide"])?;
    show_log(env, NAMESPACE, &pods[0]).await?;

    step(&format!(
        "Pushing a new image to the same tag, {source}:v1 (it prints `web v2`)"
    ));
    let v2 = node.push_test_image("web v2", &format!("{source}:v1"))?;
    println!("    {v2}");
    let moved = wait_until("the tag to move", || async {
        let s = streams.get("web").await.ok()?;
        (s.status.as_ref()?.tag("v1")?.items.first()?.image == v2).then_some(s)
    })
    .await?;
    println!("    The scheduled import saw the move; tag history, newest first:");
    print_history(&moved);
    let pods = pods_ready(env, NAMESPACE, "app=web", 1, Some(&v2)).await?;
    println!("    The trigger moved Deployment web to the new digest; its new pod:");
    show(env, &["get", "pods", "-n", NAMESPACE, "-o", "wide"])?;
    show_log(env, NAMESPACE, &pods[0]).await?;
    show(env, &["get", "replicasets", "-n", NAMESPACE, "-o", "wide"])?;
    Ok(())
}
