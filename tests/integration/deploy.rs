//! The install manifests against the real apiserver: `kubectl apply -k deploy/` installs everything,
//! the operator runs with nothing but the deploy/ ServiceAccount's rights and still imports, and a
//! missing rule is reported clearly.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::support::*;
use imagestream_operator::api::ImageStream;
use imagestream_operator::api::triggers::TRIGGERS_ANNOTATION;
use imagestream_operator::controller::triggers::IMAGE_UPDATED_REASON;
use imagestream_testenv::TestEnv;
use imagestream_testenv::images::{ImagePusher, ManifestFormat};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use kube::Api;
use kube::api::PostParams;

const OPERATOR_NAMESPACE: &str = "imagestream-operator";

/// The operator binary, killed when dropped; its output goes to a file the test can read.
struct Running {
    child: Child,
    log: std::path::PathBuf,
}

impl Running {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn kubectl(env: &TestEnv, args: &[&str]) -> String {
    let out = env.kubectl().args(args).output().unwrap();
    assert!(
        out.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn start_binary(kubeconfig: &std::path::Path, args: &[&str], dir: &std::path::Path) -> Running {
    let log = dir.join(format!("operator-{:08x}.log", rand::random::<u32>()));
    let output = std::fs::File::create(&log).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_imagestream-operator"))
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .env("POD_NAMESPACE", OPERATOR_NAMESPACE)
        .env("RUST_LOG", "imagestream_operator=info")
        .stdin(Stdio::null())
        .stdout(output.try_clone().unwrap())
        .stderr(output)
        .spawn()
        .unwrap();
    Running { child, log }
}

/// Applies deploy/ once per test binary (two tests applying it at once race on creating the same
/// objects).
async fn install(env: &TestEnv) {
    static INSTALLED: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    INSTALLED
        .get_or_init(|| async {
            let root = env!("CARGO_MANIFEST_DIR");
            let out = kubectl(env, &["apply", "-k", &format!("{root}/deploy")]);
            for object in [
                "customresourcedefinition.apiextensions.k8s.io/imagestreams.image.openshift.io",
                "namespace/imagestream-operator",
                "serviceaccount/imagestream-operator",
                "clusterrole.rbac.authorization.k8s.io/imagestream-operator",
                "deployment.apps/imagestream-operator",
                "service/imagestream-operator",
                "service/imagestream-operator-admission",
                "mutatingwebhookconfiguration.admissionregistration.k8s.io/imagestream-operator",
            ] {
                assert!(
                    out.contains(object),
                    "kubectl apply -k deploy/ did not apply {object}:\n{out}"
                );
            }
            // No operator Pod runs behind the webhook's Service here (no kubelet, no Service
            // network), so the configuration would send every later Pod and workload of this
            // shared API server to a Service that cannot answer. tests/integration/admission.rs
            // registers the webhook by URL instead.
            kubectl(
                env,
                &[
                    "delete",
                    "mutatingwebhookconfiguration",
                    "imagestream-operator",
                ],
            );
        })
        .await;
}

#[tokio::test]
async fn the_operator_imports_and_triggers_with_only_the_deploy_service_account_rights() {
    let env = crate::support::env().await;
    install(env).await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig =
        service_account_kubeconfig(env, OPERATOR_NAMESPACE, "imagestream-operator", dir.path())
            .await;
    let ns = env.namespace("deploy").await;
    // Leader election as deployed: the Lease in the operator's namespace, under the Role of deploy/.
    let http = format!("127.0.0.1:{}", imagestream_testenv::free_port().unwrap());
    let running = start_binary(
        &kubeconfig,
        &["run", "--namespace", &ns, "--http-addr", &http],
        dir.path(),
    );
    let registry = env.registry();
    let repository = unique("deploy");
    let pushed = ImagePusher::for_registry(registry)
        .push_random(&repository, "v1", ManifestFormat::Oci)
        .await
        .unwrap();
    let api = Api::<ImageStream>::namespaced(env.client().await, &ns);
    create_stream(
        &api,
        "app",
        vec![docker_tag(
            "v1",
            &format!("{}/{repository}:v1", registry.host()),
            false,
        )],
    )
    .await;
    let client = env.client().await;
    let deployment: Deployment = serde_json::from_value(serde_json::json!({
        "metadata": {
            "name": "web",
            "annotations": {
                TRIGGERS_ANNOTATION: r#"[{"from":{"kind":"ImageStreamTag","name":"app:v1"},"fieldPath":"spec.template.spec.containers[?(@.name==\"web\")].image"}]"#
            }
        },
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": " "}]}
            }
        }
    }))
    .unwrap();
    let deployments = Api::<Deployment>::namespaced(client.clone(), &ns);
    deployments
        .create(&PostParams::default(), &deployment)
        .await
        .unwrap();
    let expected = format!("{}/{repository}@{}", registry.host(), pushed.digest);
    eventually(
        "an import and a trigger under the deploy/ ServiceAccount",
        Duration::from_secs(60),
        || async {
            let stream = api.get("app").await.unwrap();
            let image = deployments
                .get("web")
                .await
                .unwrap()
                .spec
                .and_then(|s| s.template.spec)
                .and_then(|s| s.containers.into_iter().next())
                .and_then(|c| c.image);
            if current_image(&stream, "v1") == Some(pushed.digest.clone())
                && image.as_deref() == Some(expected.as_str())
            {
                return Ok(());
            }
            Err(format!(
                "web's image {image:?}; operator log:\n{}",
                running.log()
            ))
        },
    )
    .await;
    // The Events of both controllers are written under the same rights.
    eventually(
        "Imported and ImageUpdated Events",
        Duration::from_secs(30),
        || async {
            let reasons = event_reasons(&client, &ns).await;
            if ["Imported", IMAGE_UPDATED_REASON]
                .iter()
                .all(|r| reasons.iter().any(|seen| seen == r))
            {
                return Ok(());
            }
            Err(format!("{reasons:?}; operator log:\n{}", running.log()))
        },
    )
    .await;
    assert!(!running.log().contains("forbidden"), "{}", running.log());
}

#[tokio::test]
async fn a_missing_rbac_rule_is_reported_with_the_resource_and_verb() {
    let env = crate::support::env().await;
    install(env).await;
    let client = env.client().await;
    // The deploy/ ClusterRole without the rule that lets the operator write stream status.
    let mut role = Api::<ClusterRole>::all(client.clone())
        .get("imagestream-operator")
        .await
        .unwrap();
    let name = format!("imagestream-operator-partial-{:08x}", rand::random::<u32>());
    role.metadata = kube::api::ObjectMeta {
        name: Some(name.clone()),
        ..Default::default()
    };
    role.rules.as_mut().unwrap().retain(|rule| {
        !rule
            .resources
            .as_ref()
            .is_some_and(|r| r.iter().any(|r| r == "imagestreams/status"))
    });
    Api::<ClusterRole>::all(client.clone())
        .create(&PostParams::default(), &role)
        .await
        .unwrap();
    let sa_name = "partial";
    let ns = env.namespace("deploy").await;
    let sa: ServiceAccount =
        serde_json::from_value(serde_json::json!({"metadata": {"name": sa_name}})).unwrap();
    Api::<ServiceAccount>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &sa)
        .await
        .unwrap();
    let binding: ClusterRoleBinding = serde_json::from_value(serde_json::json!({
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": sa_name, "namespace": ns}]
    }))
    .unwrap();
    Api::<ClusterRoleBinding>::all(client.clone())
        .create(&PostParams::default(), &binding)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = service_account_kubeconfig(env, &ns, sa_name, dir.path()).await;
    let running = start_binary(
        &kubeconfig,
        &[
            "run",
            "--namespace",
            &ns,
            "--leader-elect=false",
            "--http-addr",
            &format!("127.0.0.1:{}", imagestream_testenv::free_port().unwrap()),
        ],
        dir.path(),
    );
    let registry = env.registry();
    let repository = unique("partial");
    ImagePusher::for_registry(registry)
        .push_random(&repository, "v1", ManifestFormat::Oci)
        .await
        .unwrap();
    let api = Api::<ImageStream>::namespaced(client.clone(), &ns);
    create_stream(
        &api,
        "app",
        vec![docker_tag(
            "v1",
            &format!("{}/{repository}:v1", registry.host()),
            false,
        )],
    )
    .await;
    eventually(
        "the missing rule to be reported",
        Duration::from_secs(60),
        || async {
            let log = running.log();
            if log.contains("forbidden") && log.contains("imagestreams/status") {
                return Ok(());
            }
            Err(format!("operator log:\n{log}"))
        },
    )
    .await;
    assert!(api.get("app").await.unwrap().status.is_none());
}
