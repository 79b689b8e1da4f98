//! The `imagestream-operator` binary itself against the real apiserver and registry: `run` imports,
//! and `import-image` asks for an immediate import without touching the spec.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::support::*;
use imagestream_operator::api::ImageStream;
use imagestream_operator::controller::IMPORT_REQUESTED_ANNOTATION;
use imagestream_testenv::TestEnv;
use imagestream_testenv::images::{ImagePusher, ManifestFormat};
use kube::{Api, ResourceExt};

/// The operator binary, killed when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn operator(env: &TestEnv, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_imagestream-operator"));
    cmd.args(args)
        .env("KUBECONFIG", env.kubeconfig())
        .env("RUST_LOG", "imagestream_operator=info")
        .stdin(Stdio::null());
    cmd
}

#[tokio::test]
async fn the_binary_imports_and_import_image_requests_a_fresh_import_without_a_spec_change() {
    let env = crate::support::env().await;
    let ns = env.namespace("binary").await;
    let registry = env.registry();
    let repository = unique("binary");
    let pusher = ImagePusher::for_registry(registry);
    let first = pusher
        .push_random(&repository, "v1", ManifestFormat::Oci)
        .await
        .unwrap();
    let start = |http_addr: &str| {
        Running(
            operator(
                env,
                &[
                    "run",
                    "--namespace",
                    &ns,
                    "--image-gc-grace",
                    "0s",
                    "--leader-elect=false",
                    "--http-addr",
                    http_addr,
                ],
            )
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
        )
    };
    let address = || format!("127.0.0.1:{}", imagestream_testenv::free_port().unwrap());
    let running = start(&address());
    let api = Api::<ImageStream>::namespaced(env.client().await, &ns);
    let from = format!("{}/{repository}:v1", registry.host());
    // Not scheduled: only a spec change or a request imports it again.
    create_stream(&api, "app", vec![docker_tag("v1", &from, false)]).await;
    let stream = wait_for(&api, "app", "the first import", |s| {
        current_image(s, "v1") == Some(first.digest.clone())
    })
    .await;
    let generation = stream.metadata.generation;

    let moved = pusher
        .push_random(&repository, "v1", ManifestFormat::Oci)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        current_image(&api.get("app").await.unwrap(), "v1"),
        Some(first.digest.clone()),
        "an unscheduled tag moved without a request"
    );
    let out = operator(env, &["import-image", "app:v1", "-n", &ns])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stream = wait_for(&api, "app", "the requested import", |s| {
        current_image(s, "v1") == Some(moved.digest.clone())
    })
    .await;
    assert_eq!(
        stream.metadata.generation, generation,
        "the request changed the spec"
    );
    let request = stream
        .annotations()
        .get(IMPORT_REQUESTED_ANNOTATION)
        .cloned();
    assert!(request.is_some());
    let stream = wait_for(&api, "app", "the request recorded as served", |s| {
        s.status
            .as_ref()
            .and_then(|s| s.served_import_request.clone())
            == request
    })
    .await;

    // A restarted operator does not serve the same request again: no registry request at all for
    // this unscheduled tag, and no status write.
    drop(running);
    let mark = registry.requests_for(&repository).len();
    let restarted_at = address();
    let _restarted = start(&restarted_at);
    // Ready means its caches are synced, so every stream has been handed to a reconcile.
    eventually(
        "the restarted operator to be ready",
        Duration::from_secs(30),
        || async {
            match reqwest::get(format!("http://{restarted_at}/readyz")).await {
                Ok(answer) if answer.status().is_success() => Ok(()),
                Ok(answer) => Err(answer.status().to_string()),
                Err(err) => Err(err.to_string()),
            }
        },
    )
    .await;
    let writes = modifications_after(
        &api,
        "app",
        stream.metadata.resource_version.as_deref().unwrap(),
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(writes, 0, "the restarted operator wrote the stream");
    let sent = requests_since(registry, &repository, mark);
    assert!(
        sent.is_empty(),
        "the restarted operator served the request again: {sent:?}"
    );
}

#[tokio::test]
async fn the_crds_command_prints_every_crd() {
    let env = crate::support::env().await;
    let out = operator(env, &["crds"]).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.matches("kind: CustomResourceDefinition").count(), 5);
}
