//! The image-lookup admission webhook, registered with the real API server by URL (the test API
//! server has no Service network) and served by the operator binary with a certificate it issues
//! itself and publishes as the configuration's `caBundle`.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::support::*;
use imagestream_operator::api::ImageStream;
use imagestream_testenv::free_port;
use imagestream_testenv::images::{ImagePusher, ManifestFormat};
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Pod, ServiceAccount};
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;

/// The operator binary, killed when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn pod(name: &str, image: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"automountServiceAccountToken": false, "containers": [{"name": "app", "image": image}]},
    }))
    .unwrap()
}

fn stream_with_lookup(name: &str, from: &str, local: bool) -> ImageStream {
    let mut stream = ImageStream::new(
        name,
        imagestream_operator::api::image_stream::ImageStreamSpec {
            tags: vec![docker_tag("latest", from, false)],
            ..Default::default()
        },
    );
    stream.spec.lookup_policy =
        Some(imagestream_operator::api::image_stream::ImageLookupPolicy { local });
    stream
}

#[tokio::test]
async fn pods_and_workloads_naming_a_local_stream_are_stored_with_its_digest() {
    let env = crate::support::env().await;
    let ns = env.namespace("admission").await;
    let client = env.client().await;
    // Only this test's namespace is sent to this test's webhook.
    let label = format!("admission-{}", rand::random::<u32>());
    Api::<Namespace>::all(client.clone())
        .patch(
            &ns,
            &PatchParams::default(),
            &Patch::Merge(&json!({"metadata": {"labels": {"imagestream-operator-test": label}}})),
        )
        .await
        .unwrap();
    let account: ServiceAccount =
        serde_json::from_value(json!({"metadata": {"name": "default"}})).unwrap();
    let _ = Api::<ServiceAccount>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &account)
        .await;

    let port = free_port().unwrap();
    let configuration_name = format!("imagestream-operator-{label}");
    let configuration: MutatingWebhookConfiguration = serde_json::from_value(json!({
        "metadata": {"name": configuration_name},
        "webhooks": [{
            "name": "image-lookup.imagestream-operator.io",
            "clientConfig": {"url": format!("https://127.0.0.1:{port}/admission/image-lookup")},
            "rules": [
                {"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"], "resources": ["pods"]},
                {"apiGroups": ["apps"], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"], "resources": ["deployments"]},
            ],
            "namespaceSelector": {"matchLabels": {"imagestream-operator-test": label}},
            "failurePolicy": "Ignore",
            "sideEffects": "None",
            "timeoutSeconds": 5,
            "reinvocationPolicy": "IfNeeded",
            "admissionReviewVersions": ["v1"],
        }],
    }))
    .unwrap();
    let configurations = Api::<MutatingWebhookConfiguration>::all(client.clone());
    configurations
        .create(&PostParams::default(), &configuration)
        .await
        .unwrap();

    let repository = unique("lookup");
    let pushed = ImagePusher::for_registry(env.registry())
        .push_random(&repository, "latest", ManifestFormat::Oci)
        .await
        .unwrap();
    let from = format!("{}/{repository}:latest", env.registry().host());
    let streams = Api::<ImageStream>::namespaced(client.clone(), &ns);
    streams
        .create(
            &PostParams::default(),
            &stream_with_lookup("web", &from, true),
        )
        .await
        .unwrap();
    streams
        .create(
            &PostParams::default(),
            &stream_with_lookup("plain", &from, false),
        )
        .await
        .unwrap();

    let running = Running(
        Command::new(env!("CARGO_BIN_EXE_imagestream-operator"))
            .args([
                "run",
                "--leader-elect=false",
                "--namespace",
                &ns,
                "--http-addr",
                &format!("127.0.0.1:{}", free_port().unwrap()),
                "--admission-addr",
                &format!("127.0.0.1:{port}"),
                "--admission-secret",
                &format!("{ns}/admission-certificate"),
                "--admission-webhook-configuration",
                &configuration_name,
            ])
            .env("KUBECONFIG", env.kubeconfig())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    for name in ["web", "plain"] {
        wait_for(&streams, name, "the import", |s| {
            current_image(s, "latest").is_some()
        })
        .await;
    }
    eventually("the published CA", Duration::from_secs(30), || async {
        let configuration = configurations
            .get(&configuration_name)
            .await
            .map_err(|e| e.to_string())?;
        let webhooks = configuration.webhooks.unwrap_or_default();
        webhooks[0]
            .client_config
            .ca_bundle
            .as_ref()
            .map(|_| ())
            .ok_or("no caBundle".to_owned())
    })
    .await;
    let digest_reference = format!("{}/{repository}@{}", env.registry().host(), pushed.digest);

    let pods = Api::<Pod>::namespaced(client.clone(), &ns);
    let stored_image = |pod: Pod| pod.spec.unwrap().containers[0].image.clone().unwrap();
    // The webhook may take a moment to answer after the operator starts its controllers.
    let resolved = eventually("a resolved Pod", Duration::from_secs(30), || async {
        let name = format!("web-{:08x}", rand::random::<u32>());
        let created = pods
            .create(&PostParams::default(), &pod(&name, "web:latest"))
            .await
            .map_err(|e| e.to_string())?;
        let image = stored_image(created);
        (image != "web:latest")
            .then_some(image.clone())
            .ok_or(image)
    })
    .await;
    assert_eq!(resolved, digest_reference);
    // Lookup off: unchanged. A registry host, an unknown stream: unchanged, and admitted.
    for (name, image) in [
        ("plain", "plain:latest"),
        ("hosted", "quay.io/team/web:latest"),
        ("unknown", "nothing-here:v1"),
    ] {
        let created = pods
            .create(&PostParams::default(), &pod(name, image))
            .await
            .unwrap();
        assert_eq!(stored_image(created), image);
    }
    // The resolve-names annotation on a pod template resolves any stream of the namespace.
    let deployment: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "api"},
        "spec": {
            "selector": {"matchLabels": {"app": "api"}},
            "template": {
                "metadata": {"labels": {"app": "api"}, "annotations": {"alpha.image.policy.openshift.io/resolve-names": "*"}},
                "spec": {"containers": [{"name": "app", "image": "plain:latest"}]},
            },
        },
    }))
    .unwrap();
    let created = Api::<Deployment>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &deployment)
        .await
        .unwrap();
    assert_eq!(
        created.spec.unwrap().template.spec.unwrap().containers[0]
            .image
            .as_deref(),
        Some(digest_reference.as_str())
    );

    // The operator gone: objects are still admitted (failurePolicy Ignore), unchanged.
    drop(running);
    let created = pods
        .create(&PostParams::default(), &pod("after", "web:latest"))
        .await
        .unwrap();
    assert_eq!(stored_image(created), "web:latest");
    configurations
        .delete(&configuration_name, &DeleteParams::default())
        .await
        .unwrap();
}
