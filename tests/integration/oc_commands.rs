//! The `oc`-style commands against the real API server, with the in-process operator importing
//! from a real registry: `import-image` (the tutorial lines, with this binary in place of `oc`),
//! `tag`, `set triggers` and `set image-lookup`, including the bad input each refuses.

use std::time::Duration;
use tokio::process::Command;

use crate::support::*;
use imagestream_operator::api::ImageStream;
use imagestream_operator::api::triggers::TRIGGERS_ANNOTATION;
use imagestream_operator::domain::import_image::{ImportRequest, PolicyFlags};
use imagestream_operator::domain::oc_tag::{SourceKind, TagFlags};
use imagestream_operator::domain::trigger_edit::TriggerChange;
use imagestream_operator::oc::tag::TagArgs;
use imagestream_operator::oc::{Cluster, OcError};
use imagestream_operator::registry::RegistryClientConfig;
use imagestream_testenv::images::{ImagePusher, ManifestFormat};
use imagestream_testenv::{Registry, RegistryOptions, TestCa, TestEnv};
use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;
use kube::api::PostParams;
use serde_json::json;

const NEVER: Duration = Duration::from_secs(3600);

/// A registry serving HTTPS with a certificate of `ca`, so `--from` needs no `--insecure`.
async fn tls_registry(env: &TestEnv, ca: &TestCa) -> Registry {
    env.start_registry(
        "oc",
        &RegistryOptions {
            tls: Some(ca.issue(&["127.0.0.1"]).unwrap()),
            ..RegistryOptions::default()
        },
    )
    .await
    .unwrap()
}

fn trusting(ca: &TestCa) -> RegistryClientConfig {
    RegistryClientConfig {
        extra_ca_pem: Some(ca.cert_pem().as_bytes().to_vec()),
        ..Default::default()
    }
}

/// Runs the binary without blocking the runtime the in-process operator runs on.
async fn binary(env: &TestEnv, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_imagestream-operator"))
        .args(args)
        .env("KUBECONFIG", env.kubeconfig())
        .output()
        .await
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test]
async fn the_tutorial_import_image_lines_create_import_and_print_the_result() {
    let env = crate::support::env().await;
    let ns = env.namespace("oc-import").await;
    let client = env.client().await;
    let ca = TestCa::new("oc-import-ca").unwrap();
    let registry = tls_registry(env, &ca).await;
    let pusher = ImagePusher::for_registry(&registry)
        .with_root_certificate(ca.cert_pem())
        .unwrap();
    let node = pusher
        .push_random("my-node-app", "v1", ManifestFormat::Oci)
        .await
        .unwrap();
    let apache = pusher
        .push_random("apache", "2.4", ManifestFormat::Docker)
        .await
        .unwrap();
    let _operator = start_operator_with(client.clone(), &ns, config(NEVER), trusting(&ca)).await;
    let host = registry.host();

    // oc import-image my-node-app:v1 --from=myregistry.com/my-node-app:v1 --confirm
    let from = format!("--from={host}/my-node-app:v1");
    let first = binary(
        env,
        &[
            "import-image",
            "my-node-app:v1",
            &from,
            "--confirm",
            "-n",
            &ns,
        ],
    )
    .await;
    let stdout = text(&first.stdout);
    assert!(first.status.success(), "{stdout}\n{}", text(&first.stderr));
    assert!(
        stdout.starts_with("imagestream.image.openshift.io/my-node-app imported"),
        "{stdout}"
    );
    assert!(stdout.contains(&node.digest), "{stdout}");
    // oc import-image test-imagestream:1.0 --from=quay.io/apache:2.4 --confirm
    let from = format!("--from={host}/apache:2.4");
    let second = binary(
        env,
        &[
            "import-image",
            "test-imagestream:1.0",
            &from,
            "--confirm",
            "-n",
            &ns,
        ],
    )
    .await;
    let stdout = text(&second.stdout);
    assert!(
        second.status.success(),
        "{stdout}\n{}",
        text(&second.stderr)
    );
    assert!(stdout.contains(&apache.digest), "{stdout}");

    let streams = Api::<ImageStream>::namespaced(client.clone(), &ns);
    let created = streams.get("test-imagestream").await.unwrap();
    assert_eq!(created.spec.tags.len(), 1);
    assert_eq!(current_image(&created, "1.0"), Some(apache.digest.clone()));

    // Re-importing the existing tag: no --from, no --confirm; the result again.
    let again = binary(env, &["import-image", "my-node-app:v1", "-n", &ns]).await;
    assert!(again.status.success(), "{}", text(&again.stderr));
    assert!(text(&again.stdout).contains(&node.digest));
}

#[tokio::test]
async fn import_image_refuses_what_oc_refuses_and_exits_non_zero_on_a_failed_import() {
    let env = crate::support::env().await;
    let ns = env.namespace("oc-import-bad").await;
    let client = env.client().await;
    let ca = TestCa::new("oc-import-bad-ca").unwrap();
    let registry = tls_registry(env, &ca).await;
    ImagePusher::for_registry(&registry)
        .with_root_certificate(ca.cert_pem())
        .unwrap()
        .push_random("team/app", "v1", ManifestFormat::Oci)
        .await
        .unwrap();
    let cluster = Cluster::new(client.clone(), Some(ns.clone()));
    let host = registry.host();
    let request = |name: &str, tag: &str, from: Option<String>, confirm: bool| ImportRequest {
        stream: name.into(),
        tag: Some(tag.into()),
        from,
        confirm,
        all: false,
        policy: PolicyFlags::default(),
    };
    let run = |request: ImportRequest, timeout: Duration| {
        let cluster = &cluster;
        async move {
            let mut out = Vec::new();
            let result = imagestream_operator::oc::import_image::import_image(
                cluster, &request, timeout, &mut out,
            )
            .await;
            (result, text(&out))
        }
    };

    // Without the operator: a clear timeout, not a hang.
    let (waited, _) = run(
        request("app", "v1", Some(format!("{host}/team/app:v1")), true),
        Duration::from_secs(2),
    )
    .await;
    let message = waited.unwrap_err().to_string();
    assert!(
        message.contains("is imagestream-operator running"),
        "{message}"
    );

    let _operator = start_operator_with(client.clone(), &ns, config(NEVER), trusting(&ca)).await;
    // A new stream without --confirm.
    let (refused, _) = run(
        request("other", "v1", Some(format!("{host}/team/app:v1")), false),
        Duration::from_secs(30),
    )
    .await;
    assert!(refused.unwrap_err().to_string().contains("--confirm"));
    // An unknown stream, nothing to import from.
    let (unknown, _) = run(request("nope", "v1", None, false), Duration::from_secs(30)).await;
    assert!(
        unknown
            .unwrap_err()
            .to_string()
            .contains("no image stream named \"nope\"")
    );
    // Another source for an existing tag is `tag`'s job.
    let (moved, _) = run(
        request("app", "v1", Some(format!("{host}/team/other:v1")), true),
        Duration::from_secs(30),
    )
    .await;
    assert!(
        moved
            .unwrap_err()
            .to_string()
            .contains("use the 'tag' command")
    );
    // A tag that fails to import: the condition, and a failure.
    let (failed, printed) = run(
        request(
            "app",
            "missing",
            Some(format!("{host}/team/missing:v1")),
            false,
        ),
        Duration::from_secs(60),
    )
    .await;
    match failed {
        Err(OcError::ImportFailed { reason, .. }) => assert_eq!(reason, "NotFound", "{printed}"),
        other => panic!("expected a failed import, got {other:?}"),
    }
    assert!(
        printed.contains("! error: Import failed (NotFound)"),
        "{printed}"
    );
    // A malformed reference, through the binary: non-zero exit, the reason on stderr.
    let bad = binary(
        env,
        &[
            "import-image",
            "app:bad",
            "--from=Not A Reference",
            "-n",
            &ns,
            "--timeout=60s",
        ],
    )
    .await;
    assert!(!bad.status.success());
    assert!(
        text(&bad.stderr).contains("import of app:bad failed"),
        "{}",
        text(&bad.stderr)
    );
}

#[tokio::test]
async fn tag_writes_pull_specs_snapshots_aliases_and_deletes_like_oc_tag() {
    let env = crate::support::env().await;
    let ns = env.namespace("oc-tag").await;
    let client = env.client().await;
    let repository = unique("tag");
    let pushed = ImagePusher::for_registry(env.registry())
        .push_random(&repository, "v1", ManifestFormat::Oci)
        .await
        .unwrap();
    let reference = format!("{}/{repository}:v1", env.registry().host());
    let _operator = start_operator(client.clone(), &ns, config(NEVER)).await;
    let cluster = Cluster::new(client.clone(), Some(ns.clone()));
    let streams = Api::<ImageStream>::namespaced(client.clone(), &ns);
    let tag = |names: &[&str], source: Option<SourceKind>, alias: bool, delete: bool| TagArgs {
        names: names.iter().map(|n| n.to_string()).collect(),
        source_kind: source,
        alias,
        flags: TagFlags {
            insecure: true,
            ..TagFlags::default()
        },
        delete,
    };
    let run = |args: TagArgs| {
        let cluster = &cluster;
        async move {
            let mut out = Vec::new();
            let result = imagestream_operator::oc::tag::tag(cluster, &args, &mut out).await;
            result.map(|()| text(&out))
        }
    };

    // A pull spec creates the stream.
    let printed = run(tag(
        &[&reference, "app:v1"],
        Some(SourceKind::Docker),
        false,
        false,
    ))
    .await
    .unwrap();
    assert_eq!(printed, format!("Tag app:v1 set to {reference}.\n"));
    let stream = wait_for(&streams, "app", "the import", |s| {
        current_image(s, "v1").is_some()
    })
    .await;
    assert_eq!(current_image(&stream, "v1"), Some(pushed.digest.clone()));

    // A stream tag, guessed: a snapshot of its current image.
    let printed = run(tag(&["app:v1", "app:prod"], None, false, false))
        .await
        .unwrap();
    assert_eq!(
        printed,
        format!("Tag app:prod set to app@{}.\n", pushed.digest)
    );
    // With --alias: it follows the tag.
    run(tag(&["app:v1", "app:latest"], None, true, false))
        .await
        .unwrap();
    let stream = streams.get("app").await.unwrap();
    let kind_of = |name: &str| {
        let tag = stream.spec.tag(name).unwrap().from.clone().unwrap();
        (tag.kind.unwrap(), tag.name.unwrap())
    };
    assert_eq!(
        kind_of("prod"),
        ("ImageStreamImage".into(), format!("app@{}", pushed.digest))
    );
    assert_eq!(
        kind_of("latest"),
        ("ImageStreamTag".into(), "app:v1".into())
    );
    let stream = wait_for(&streams, "app", "the snapshot", |s| {
        current_image(s, "prod").is_some()
    })
    .await;
    assert_eq!(current_image(&stream, "prod"), Some(pushed.digest.clone()));

    // Bad input.
    let no_image = run(tag(
        &["app:nothing", "app:x"],
        Some(SourceKind::Imagestreamtag),
        false,
        false,
    ))
    .await;
    assert!(
        no_image
            .unwrap_err()
            .to_string()
            .contains("not currently pointing to an image")
    );
    assert!(
        run(tag(&["app:v1", "app"], None, false, false))
            .await
            .is_err()
    );
    assert!(run(tag(&["app:v1"], None, false, false)).await.is_err());

    // Delete.
    let printed = run(tag(&["app:prod"], None, false, true)).await.unwrap();
    assert_eq!(printed, format!("Deleted tag {ns}/app:prod.\n"));
    assert!(streams.get("app").await.unwrap().spec.tag("prod").is_none());
    let missing = run(tag(&["app:prod"], None, false, true)).await;
    assert!(missing.unwrap_err().to_string().contains("not found"));
}

#[tokio::test]
async fn set_triggers_and_image_lookup_write_what_oc_set_writes() {
    let env = crate::support::env().await;
    let ns = env.namespace("oc-set").await;
    let client = env.client().await;
    let cluster = Cluster::new(client.clone(), Some(ns.clone()));
    let deployments = Api::<Deployment>::namespaced(client.clone(), &ns);
    let deployment: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [
                    {"name": "app", "image": "placeholder"},
                    {"name": "side", "image": "placeholder"},
                ]},
            },
        },
    }))
    .unwrap();
    deployments
        .create(&PostParams::default(), &deployment)
        .await
        .unwrap();
    let set = |change: TriggerChange| {
        let cluster = &cluster;
        async move {
            let mut out = Vec::new();
            imagestream_operator::oc::set::triggers(cluster, "deployment/web", &change, &mut out)
                .await
                .map(|()| text(&out))
        }
    };
    let change = |image: Option<&str>, containers: &[&str]| TriggerChange {
        from_image: image.map(str::to_owned),
        containers: containers.iter().map(|c| c.to_string()).collect(),
        ..TriggerChange::default()
    };

    let printed = set(change(Some("app:v1"), &["app"])).await.unwrap();
    assert_eq!(printed, "deployment.apps/web triggers updated\n");
    let annotation = deployments
        .get("web")
        .await
        .unwrap()
        .metadata
        .annotations
        .unwrap()[TRIGGERS_ANNOTATION]
        .clone();
    assert_eq!(
        annotation,
        r#"[{"from":{"kind":"ImageStreamTag","name":"app:v1"},"fieldPath":"spec.template.spec.containers[?(@.name==\"app\")].image"}]"#
    );
    let listed = set(TriggerChange::default()).await.unwrap();
    assert!(
        listed.contains("deployments/web   image     app:v1 (app)   true"),
        "{listed}"
    );
    // Several containers and none named; a container that does not exist.
    assert!(
        set(change(Some("app:v1"), &[]))
            .await
            .unwrap_err()
            .to_string()
            .contains("--containers")
    );
    assert!(
        set(change(Some("app:v1"), &["nope"]))
            .await
            .unwrap_err()
            .to_string()
            .contains("does not exist")
    );
    let manual = TriggerChange {
        manual: Some(true),
        ..change(Some("side:v2"), &["side"])
    };
    set(manual).await.unwrap();
    let listed = set(TriggerChange::default()).await.unwrap();
    assert!(listed.contains("side:v2 (side)   false"), "{listed}");
    let all = TriggerChange {
        remove_all: true,
        ..TriggerChange::default()
    };
    set(all).await.unwrap();
    let annotations = deployments
        .get("web")
        .await
        .unwrap()
        .metadata
        .annotations
        .unwrap_or_default();
    assert!(!annotations.contains_key(TRIGGERS_ANNOTATION));
    assert!(
        imagestream_operator::oc::set::triggers(
            &cluster,
            "deployment/absent",
            &TriggerChange::default(),
            &mut Vec::new()
        )
        .await
        .unwrap_err()
        .to_string()
        .contains("NotFound")
    );

    // Image lookup on a stream and on a workload.
    let streams = Api::<ImageStream>::namespaced(client.clone(), &ns);
    create_stream(
        &streams,
        "app",
        vec![docker_tag("v1", "quay.io/team/app:v1", false)],
    )
    .await;
    let mut out = Vec::new();
    imagestream_operator::oc::set::image_lookup(
        &cluster,
        &["app".to_owned(), "deployment/web".to_owned()],
        true,
        &mut out,
    )
    .await
    .unwrap();
    assert_eq!(
        text(&out),
        "imagestream.image.openshift.io/app image lookup updated\ndeployment.apps/web image lookup updated\n"
    );
    let stream = streams.get("app").await.unwrap();
    assert!(stream.spec.lookup_policy.unwrap().local);
    let template = deployments
        .get("web")
        .await
        .unwrap()
        .spec
        .unwrap()
        .template
        .metadata
        .unwrap();
    assert_eq!(
        template.annotations.unwrap()[imagestream_operator::oc::set::RESOLVE_NAMES_ANNOTATION],
        "*"
    );
    let mut out = Vec::new();
    imagestream_operator::oc::set::image_lookup(&cluster, &[], true, &mut out)
        .await
        .unwrap();
    assert_eq!(text(&out), "NAME      LOCAL\napp       true\n");
}

#[tokio::test]
async fn linked_as_kubectl_imagestream_the_binary_is_a_kubectl_plugin() {
    let env = crate::support::env().await;
    let ns = env.namespace("oc-plugin").await;
    let client = env.client().await;
    let streams = Api::<ImageStream>::namespaced(client.clone(), &ns);
    create_stream(
        &streams,
        "app",
        vec![docker_tag("v1", "quay.io/team/app:v1", false)],
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(
        env!("CARGO_BIN_EXE_imagestream-operator"),
        dir.path().join("kubectl-imagestream"),
    )
    .unwrap();
    let path = format!(
        "{}:{}",
        dir.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut kubectl = Command::from(env.kubectl());
    let listed = kubectl
        .args(["imagestream", "set", "image-lookup", "-n", &ns])
        .env("PATH", &path)
        .output()
        .await
        .unwrap();
    assert!(listed.status.success(), "{}", text(&listed.stderr));
    assert_eq!(text(&listed.stdout), "NAME      LOCAL\napp       false\n");
    let mut kubectl = Command::from(env.kubectl());
    let help = kubectl
        .args(["imagestream", "--help"])
        .env("PATH", &path)
        .output()
        .await
        .unwrap();
    assert!(
        text(&help.stdout).contains("kubectl imagestream"),
        "{}",
        text(&help.stdout)
    );
}

#[tokio::test]
async fn the_binary_describes_lists_and_converts() {
    let env = crate::support::env().await;
    let ns = env.namespace("oc-binary").await;
    let client = env.client().await;
    let streams = Api::<ImageStream>::namespaced(client.clone(), &ns);
    create_stream(
        &streams,
        "app",
        vec![docker_tag("v1", "quay.io/team/app:v1", false)],
    )
    .await;

    let described = binary(env, &["describe", "is", "app", "-n", &ns]).await;
    assert!(described.status.success(), "{}", text(&described.stderr));
    assert!(text(&described.stdout).contains("tagged from quay.io/team/app:v1"));
    let listed = binary(env, &["get", "istag", "-n", &ns]).await;
    assert!(
        text(&listed.stdout).starts_with("NAME"),
        "{}",
        text(&listed.stdout)
    );
    assert!(text(&listed.stdout).contains("app:v1"));
    let missing = binary(env, &["describe", "istag", "nope:v1", "-n", &ns]).await;
    assert!(!missing.status.success());
    assert!(
        text(&missing.stderr).contains("not found"),
        "{}",
        text(&missing.stderr)
    );

    let corpus = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/corpus/openshift-library-deploymentconfigs"
    );
    let converted = binary(env, &["convert", "deploymentconfig", corpus, "-o", "json"]).await;
    assert!(converted.status.success(), "{}", text(&converted.stderr));
    let list: serde_json::Value = serde_json::from_slice(&converted.stdout).unwrap();
    assert_eq!(list["kind"], "List");
    assert_eq!(list["items"].as_array().unwrap().len(), 47);
    assert!(
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["kind"] == "Deployment")
    );
    let nothing = binary(env, &["convert", "deploymentconfig", "/dev/null"]).await;
    assert!(!nothing.status.success());
    assert!(
        text(&nothing.stderr).contains("no DeploymentConfig"),
        "{}",
        text(&nothing.stderr)
    );
}
