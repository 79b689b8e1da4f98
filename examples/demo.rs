//! `make demo`: the whole product on a local control plane. Starts etcd, kube-apiserver,
//! kube-controller-manager and a registry on 127.0.0.1, installs deploy/ (CRDs, RBAC), runs the
//! operator as the deploy/ ServiceAccount, pushes `v1`, creates an ImageStream and a Deployment with
//! a trigger, pushes a new image to the same tag, and shows the tag history, the Deployment's image
//! moving to the new digest and the new ReplicaSet. Everything it started stops when it exits.

use std::process::{Command, Stdio};
use std::time::Duration;

use imagestream_operator::api::ImageStream;
use imagestream_operator::api::image_stream::{
    ImageStreamSpec, TagImportPolicy, TagReference, TagSource,
};
use imagestream_testenv::TestEnv;
use imagestream_testenv::images::{ImagePusher, ManifestFormat};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::{ListParams, PostParams};
use kube::{Api, ResourceExt};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

const NAMESPACE: &str = "demo";

fn step(text: &str) {
    println!("\n==> {text}");
}

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
    let out = env.kubectl().args(args).output()?;
    if !out.status.success() {
        return Err(format!(
            "kubectl {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(String::from_utf8(out.stdout)?)
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

fn deployment_image(deployment: &Deployment) -> String {
    deployment
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|p| p.containers.first())
        .and_then(|c| c.image.clone())
        .unwrap_or_default()
}

async fn replica_sets(api: &Api<ReplicaSet>) -> Result<Vec<(String, String)>> {
    Ok(api
        .list(&ListParams::default())
        .await?
        .items
        .iter()
        .map(|rs| {
            let image = rs
                .spec
                .as_ref()
                .and_then(|s| s.template.as_ref())
                .and_then(|t| t.spec.as_ref())
                .and_then(|p| p.containers.first())
                .and_then(|c| c.image.clone())
                .unwrap_or_default();
            (rs.name_any(), image)
        })
        .collect())
}

#[tokio::main]
async fn main() -> Result<()> {
    step("Starting etcd, kube-apiserver, kube-controller-manager and a registry on 127.0.0.1");
    let env = TestEnv::start(&imagestream_operator::api::crds()).await?;
    env.start_controller_manager()?;
    let registry = env.registry();
    println!("    registry at {}", registry.base_url());

    step("Installing deploy/ (CRDs, namespace, ServiceAccount, least-privilege RBAC)");
    let root = env!("CARGO_MANIFEST_DIR");
    kubectl(&env, &["apply", "-k", &format!("{root}/deploy")])?;
    kubectl(&env, &["create", "namespace", NAMESPACE])?;

    step("Running the operator as the deploy/ ServiceAccount");
    let token = Api::<ServiceAccount>::namespaced(env.client().await, "imagestream-operator")
        .create_token_request(
            "imagestream-operator",
            &PostParams::default(),
            &TokenRequest {
                spec: TokenRequestSpec {
                    expiration_seconds: Some(3600),
                    ..TokenRequestSpec::default()
                },
                ..TokenRequest::default()
            },
        )
        .await?
        .status
        .ok_or("no token")?
        .token;
    let admin = std::fs::read_to_string(env.kubeconfig())?;
    let operator_config: String = admin
        .lines()
        .map(|line| {
            if line.trim_start().starts_with("token:") {
                format!("    token: {token}\n")
            } else {
                format!("{line}\n")
            }
        })
        .collect();
    let dir = tempfile::tempdir()?;
    let kubeconfig = dir.path().join("operator.kubeconfig");
    std::fs::write(&kubeconfig, operator_config)?;
    let binary = std::path::Path::new(root).join("target/debug/imagestream-operator");
    let mut operator = Command::new(&binary)
        .args([
            "run",
            "--import-interval",
            "2s",
            "--http-addr",
            &format!("127.0.0.1:{}", imagestream_testenv::free_port()?),
        ])
        .env("KUBECONFIG", &kubeconfig)
        .env("POD_NAMESPACE", "imagestream-operator")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .spawn()
        .map_err(|e| format!("could not start {}: {e}", binary.display()))?;

    let result = walk_through(&env).await;
    let _ = operator.kill();
    let _ = operator.wait();
    step("Stopping everything the demo started");
    drop(env);
    result?;
    println!("\nDone.");
    Ok(())
}

async fn walk_through(env: &TestEnv) -> Result<()> {
    let client = env.client().await;
    let registry = env.registry();
    let pusher = ImagePusher::for_registry(registry);
    let repository = "demo/web";

    step(&format!("Pushing {}/{repository}:v1", registry.host()));
    let v1 = pusher
        .push_random(repository, "v1", ManifestFormat::Oci)
        .await?;
    println!("    {}", v1.digest);

    step("Creating ImageStream web, tag v1 tracking the registry (scheduled)");
    let streams = Api::<ImageStream>::namespaced(client.clone(), NAMESPACE);
    let stream = ImageStream::new(
        "web",
        ImageStreamSpec {
            tags: vec![TagReference {
                name: "v1".into(),
                from: Some(TagSource {
                    kind: Some("DockerImage".into()),
                    name: Some(format!("{}/{repository}:v1", registry.host())),
                    ..TagSource::default()
                }),
                // The demo registry speaks plain HTTP.
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

    step(
        "Creating Deployment web with an image.openshift.io/triggers annotation and a placeholder image",
    );
    let manifest = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/deployment-with-trigger.yaml"
    ))?;
    let manifest = manifest.replace("web:latest", "web:v1");
    let deployment: Deployment = serde_saphyr::from_str(&manifest)?;
    let deployments = Api::<Deployment>::namespaced(client.clone(), NAMESPACE);
    deployments
        .create(&PostParams::default(), &deployment)
        .await?;
    println!(
        "    annotation: {}",
        deployment.annotations()["image.openshift.io/triggers"]
    );

    let first = wait_until("the first import", || async {
        let s = streams.get("web").await.ok()?;
        s.status.as_ref()?.tag("v1")?.items.first()?;
        Some(s)
    })
    .await?;
    step("The operator imported v1:");
    print_history(&first);
    let resolved = wait_until("the trigger", || async {
        let d = deployments.get("web").await.ok()?;
        let image = deployment_image(&d);
        image.contains(&v1.digest).then_some(image)
    })
    .await?;
    println!("    Deployment web now runs {resolved}");

    step(&format!(
        "Pushing a new image to {}/{repository}:v1",
        registry.host()
    ));
    let v2 = pusher
        .push_random(repository, "v1", ManifestFormat::Oci)
        .await?;
    println!("    {}", v2.digest);

    let moved = wait_until("the tag to move", || async {
        let s = streams.get("web").await.ok()?;
        (s.status.as_ref()?.tag("v1")?.items.first()?.image == v2.digest).then_some(s)
    })
    .await?;
    step("The scheduled import saw the move; tag history, newest first:");
    print_history(&moved);
    let rolled = wait_until("the Deployment to roll", || async {
        let d = deployments.get("web").await.ok()?;
        let image = deployment_image(&d);
        image.contains(&v2.digest).then_some(image)
    })
    .await?;
    step("The trigger moved the Deployment to the new digest:");
    println!("    {rolled}");
    let sets = Api::<ReplicaSet>::namespaced(client, NAMESPACE);
    let listed = wait_until("a ReplicaSet for the new digest", || async {
        let sets = replica_sets(&sets).await.ok()?;
        sets.iter()
            .any(|(_, image)| image.contains(&v2.digest))
            .then_some(sets)
    })
    .await?;
    step("ReplicaSets (kube-controller-manager rolled out a new one):");
    for (name, image) in listed {
        println!("    {name:<28} {image}");
    }
    Ok(())
}
