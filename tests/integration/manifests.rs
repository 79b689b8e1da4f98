//! OpenShift manifests, as users write them, applied with kubectl to the real kube-apiserver with the
//! generated CRDs installed: every example under `examples/` is accepted and stored as written.

use std::path::Path;
use std::time::Duration;

use crate::support::eventually;

use imagestream_operator::api::triggers;
use imagestream_operator::api::{
    ImageContentSourcePolicy, ImageDigestMirrorSet, ImageStream, ImageTagMirrorSet,
};
use imagestream_operator::domain::trigger_annotation;
use imagestream_testenv::TestEnv;
use k8s_openapi::api::apps::v1::Deployment;
use kube::{Api, CustomResourceExt};
use serde_json::{Value, json};

fn example(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name)
        .display()
        .to_string()
}

/// Runs kubectl with `args`, feeding `stdin`; returns stdout, or panics with kubectl's stderr.
fn kubectl(env: &TestEnv, args: &[&str], stdin: Option<&str>) -> String {
    use std::io::Write;
    use std::process::Stdio;
    let mut cmd = env.kubectl();
    cmd.args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("run kubectl");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "kubectl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test]
async fn an_imagestream_as_users_write_it_is_stored_field_for_field() {
    let env = crate::support::env().await;
    let ns = env.namespace("manifests").await;
    kubectl(
        env,
        &["apply", "-n", &ns, "-f", &example("imagestream.yaml")],
        None,
    );

    let stream = Api::<ImageStream>::namespaced(env.client().await, &ns)
        .get("web")
        .await
        .unwrap();
    let json = serde_json::to_value(&stream).unwrap();
    assert_eq!(
        json.pointer("/spec/lookupPolicy/local"),
        Some(&Value::Bool(true))
    );
    let tags = json.pointer("/spec/tags").unwrap().as_array().unwrap();
    let names: Vec<&str> = tags.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["latest", "1.0", "stable", "upstream", "multiarch"]);
    assert_eq!(tags[0]["from"]["kind"], "DockerImage");
    assert_eq!(tags[0]["from"]["name"], "quay.io/example/web:latest");
    assert_eq!(tags[0]["importPolicy"]["scheduled"], true);
    assert_eq!(tags[0]["importPolicy"]["importMode"], "Legacy");
    assert_eq!(tags[0]["referencePolicy"]["type"], "Source");
    assert_eq!(tags[1]["annotations"]["description"], "first release");
    assert_eq!(tags[1]["referencePolicy"]["type"], "Local");
    assert_eq!(tags[2]["from"]["kind"], "ImageStreamTag");
    assert_eq!(tags[3]["reference"], true);
    assert_eq!(tags[4]["importPolicy"]["importMode"], "PreserveOriginal");
    assert_eq!(tags[4]["importPolicy"]["insecure"], true);
}

#[tokio::test]
async fn an_exported_imagestream_with_status_applies_and_its_status_is_ignored() {
    let env = crate::support::env().await;
    let ns = env.namespace("manifests").await;
    kubectl(
        env,
        &[
            "apply",
            "-n",
            &ns,
            "-f",
            &example("imagestream-exported.yaml"),
        ],
        None,
    );
    let stream = Api::<ImageStream>::namespaced(env.client().await, &ns)
        .get("ruby")
        .await
        .unwrap();
    let json = serde_json::to_value(&stream).unwrap();
    let annotations = json.pointer("/metadata/annotations").unwrap();
    assert_eq!(
        annotations["openshift.io/image.dockerRepositoryCheck"],
        "2024-05-14T09:12:31Z"
    );
    assert_eq!(json.pointer("/spec/tags/0/name").unwrap(), "3.1-ubi8");
    assert_eq!(json.pointer("/spec/tags/0/generation").unwrap(), 2);
    assert_eq!(json.pointer("/spec/tags/1/from/name").unwrap(), "3.1-ubi8");
    // The status subresource owns status: what the manifest carried was not stored.
    let tags_in_status = json
        .pointer("/status/tags")
        .and_then(Value::as_array)
        .map(Vec::len)
        .unwrap_or(0);
    assert_eq!(
        tags_in_status, 0,
        "status was stored from the manifest: {json}"
    );
}

#[tokio::test]
async fn fields_unknown_to_this_release_apply_with_kubectls_validation_and_are_kept() {
    let env = crate::support::env().await;
    let ns = env.namespace("manifests").await;
    let manifest = r#"
apiVersion: image.openshift.io/v1
kind: ImageStream
metadata:
  name: future
spec:
  someFutureStreamField: true
  tags:
  - name: latest
    someFutureTagField: {nested: 1}
    from:
      kind: DockerImage
      name: quay.io/example/future:latest
      someFutureReferenceField: x
    importPolicy:
      scheduled: false
      someFuturePolicyField: 2
    referencePolicy:
      type: Source
      someFutureTypeField: z
"#;
    kubectl(env, &["apply", "-n", &ns, "-f", "-"], Some(manifest));
    let stored: Value = serde_json::from_str(&kubectl(
        env,
        &["get", "-n", &ns, "imagestream", "future", "-o", "json"],
        None,
    ))
    .unwrap();
    for (pointer, value) in [
        ("/spec/someFutureStreamField", json!(true)),
        ("/spec/tags/0/someFutureTagField", json!({"nested": 1})),
        ("/spec/tags/0/from/someFutureReferenceField", json!("x")),
        ("/spec/tags/0/importPolicy/someFuturePolicyField", json!(2)),
        (
            "/spec/tags/0/referencePolicy/someFutureTypeField",
            json!("z"),
        ),
        (
            "/spec/tags/0/from/name",
            json!("quay.io/example/future:latest"),
        ),
    ] {
        assert_eq!(
            stored.pointer(pointer),
            Some(&value),
            "{pointer} in {stored}"
        );
    }
    // The typed client still reads the stream.
    let typed = Api::<ImageStream>::namespaced(env.client().await, &ns)
        .get("future")
        .await
        .unwrap();
    assert_eq!(typed.spec.tags[0].name, "latest");
}

#[tokio::test]
async fn the_committed_crds_apply_with_minus_k_and_with_minus_f() {
    // deploy/ (which includes crds/) is applied for real, namespace and all, by tests/deploy.rs; a
    // server-side dry run cannot create the namespace its other objects need.
    let env = crate::support::env().await;
    let root = env!("CARGO_MANIFEST_DIR");
    let crds = format!("{root}/crds");
    for args in [["-k", crds.as_str()], ["-f", crds.as_str()]] {
        let out = kubectl(env, &["apply", "--dry-run=server", args[0], args[1]], None);
        let dir = args.join(" ");
        for name in [
            "imagestreams.image.openshift.io",
            "images.image.openshift.io",
            "imagecontentsourcepolicies.operator.openshift.io",
            "imagedigestmirrorsets.config.openshift.io",
            "imagetagmirrorsets.config.openshift.io",
        ] {
            assert!(
                out.contains(name),
                "kubectl apply -k {dir} did not apply {name}:\n{out}"
            );
        }
    }
}

#[tokio::test]
async fn mirror_policies_of_all_three_kinds_are_accepted() {
    let env = crate::support::env().await;
    for file in [
        "image-content-source-policy.yaml",
        "image-digest-mirror-set.yaml",
        "image-tag-mirror-set.yaml",
    ] {
        kubectl(env, &["apply", "-f", &example(file)], None);
    }
    let client = env.client().await;
    let icsp = Api::<ImageContentSourcePolicy>::all(client.clone())
        .get("example-mirrors")
        .await
        .unwrap();
    let icsp = serde_json::to_value(&icsp).unwrap();
    assert_eq!(
        icsp.pointer("/spec/repositoryDigestMirrors/1/mirrors/1")
            .unwrap(),
        "backup-mirror.example.com/busybox"
    );
    let idms = Api::<ImageDigestMirrorSet>::all(client.clone())
        .get("ubi-mirrors")
        .await
        .unwrap();
    let idms = serde_json::to_value(&idms).unwrap();
    assert_eq!(
        idms.pointer("/spec/imageDigestMirrors/0/mirrorSourcePolicy")
            .unwrap(),
        "NeverContactSource"
    );
    assert_eq!(
        idms.pointer("/spec/imageDigestMirrors/1/source").unwrap(),
        "*.quay.io"
    );
    let itms = Api::<ImageTagMirrorSet>::all(client)
        .get("dockerhub-cache")
        .await
        .unwrap();
    let itms = serde_json::to_value(&itms).unwrap();
    assert_eq!(
        itms.pointer("/spec/imageTagMirrors/0/mirrors/0").unwrap(),
        "cache.internal.example.com/dockerhub/library"
    );
}

#[tokio::test]
async fn short_names_work_with_kubectl() {
    let env = crate::support::env().await;
    let ns = env.namespace("manifests").await;
    kubectl(
        env,
        &["apply", "-n", &ns, "-f", &example("imagestream.yaml")],
        None,
    );
    let out = kubectl(env, &["get", "is", "-n", &ns], None);
    assert!(out.contains("web"), "{out}");
    assert!(out.contains("IMAGE REPOSITORY"), "{out}");
    for short in ["icsp", "idms", "itms"] {
        kubectl(env, &["get", short], None);
    }
}

#[tokio::test]
async fn a_deployment_with_the_trigger_annotation_is_accepted_and_the_annotation_parses() {
    let env = crate::support::env().await;
    let ns = env.namespace("manifests").await;
    kubectl(
        env,
        &[
            "apply",
            "-n",
            &ns,
            "-f",
            &example("deployment-with-trigger.yaml"),
        ],
        None,
    );
    let deployment = Api::<Deployment>::namespaced(env.client().await, &ns)
        .get("web")
        .await
        .unwrap();
    let annotation = &deployment.metadata.annotations.unwrap()[triggers::TRIGGERS_ANNOTATION];
    let parsed = trigger_annotation::parse_annotation(
        annotation,
        trigger_annotation::WorkloadKind::Deployment,
        &ns,
    )
    .expect("the stored annotation parses");
    assert_eq!(parsed.len(), 1);
}

/// Collapses runs of white space, so text wrapped by `kubectl explain` compares with the source.
fn words(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[tokio::test]
async fn kubectl_explain_shows_the_field_documentation() {
    let env = crate::support::env().await;
    let crd = serde_json::to_value(ImageStream::crd()).unwrap();
    // An OpenAPI v2 apiserver (this one is 1.20) publishes no fields below objects that keep
    // unknown fields, so explain shows the spec's own description; v3 apiservers show every level.
    let schema = crd
        .pointer("/spec/versions/0/schema/openAPIV3Schema/properties/spec/description")
        .and_then(Value::as_str)
        .expect("spec has a description")
        .to_owned();
    assert!(!schema.is_empty());
    // The apiserver publishes CRD schemas to its OpenAPI document shortly after they are
    // established; retry until it has.
    eventually(
        "kubectl explain to show the spec's description",
        Duration::from_secs(60),
        || async {
            let out = env
                .kubectl()
                .args(["explain", "imagestream.spec"])
                .output()
                .unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout);
            if out.status.success() && words(&stdout).contains(&words(&schema)) {
                return Ok(());
            }
            Err(format!(
                "it printed:\n{stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            ))
        },
    )
    .await;
}
