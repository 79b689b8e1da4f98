//! `convert deploymentconfig` against the real kube-apiserver: every DeploymentConfig of the
//! openshift/library corpus converts, and the API server accepts every Deployment (with strict field
//! validation, and through `kubectl` from the YAML output); one converted ImageChange trigger gets the
//! image its stream imports from the test registry; and bad input is skipped or refused by name.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::support::*;
use imagestream_operator::api::ImageStream;
use imagestream_operator::api::triggers::TRIGGERS_ANNOTATION;
use imagestream_operator::domain::deployment_config::PLACEHOLDER_REGISTRY;
use imagestream_operator::domain::trigger_annotation::{
    WorkloadKind, locate_containers, parse_annotation,
};
use imagestream_operator::oc::convert::{ConvertSummary, OutputFormat, convert};
use imagestream_testenv::images::{ImagePusher, ManifestFormat};
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::{Api, Client};
use serde_json::Value;

/// The corpus of DeploymentConfigs taken from openshift/library's Templates.
fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/corpus/openshift-library-deploymentconfigs")
}

/// How many DeploymentConfigs the corpus index lists.
fn corpus_size() -> usize {
    let index: Value =
        serde_json::from_str(&std::fs::read_to_string(corpus().join("INDEX.json")).unwrap())
            .unwrap();
    index["extracted"].as_array().unwrap().len()
}

/// Converts `inputs`, returning the result, the output and the warnings stream.
fn run(
    inputs: &[PathBuf],
    output: OutputFormat,
) -> (
    Result<ConvertSummary, imagestream_operator::oc::convert::ConvertError>,
    String,
    String,
) {
    let (mut out, mut warnings) = (Vec::new(), Vec::new());
    let result = convert(inputs, output, &mut out, &mut warnings);
    (
        result,
        String::from_utf8(out).unwrap(),
        String::from_utf8(warnings).unwrap(),
    )
}

/// The Deployments of a JSON output: one object, or the items of a List.
fn deployments(json: &str) -> Vec<Value> {
    let value: Value = serde_json::from_str(json).unwrap();
    match value["kind"].as_str() {
        Some("List") => value["items"].as_array().unwrap().clone(),
        _ => vec![value],
    }
}

fn name_of(object: &Value) -> String {
    object["metadata"]["name"].as_str().unwrap().to_owned()
}

fn deployment_api(client: &Client, namespace: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("apps", "v1", "Deployment");
    Api::namespaced_with(client.clone(), namespace, &ApiResource::from_gvk(&gvk))
}

/// Names of the containers in `list` of a Deployment's pod template.
fn container_names(deployment: &Value, list: &str) -> Vec<String> {
    deployment["spec"]["template"]["spec"][list]
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|c| c["name"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Checks that the trigger controller accepts the Deployment's annotation, and returns the images of
/// the triggered containers.
fn triggered_images(deployment: &Value, namespace: &str) -> Vec<String> {
    let name = name_of(deployment);
    let annotation = deployment["metadata"]["annotations"][TRIGGERS_ANNOTATION]
        .as_str()
        .unwrap_or_else(|| panic!("{name} has no trigger annotation"));
    let triggers = parse_annotation(annotation, WorkloadKind::Deployment, namespace)
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let located = locate_containers(
        &triggers,
        &container_names(deployment, "containers"),
        &container_names(deployment, "initContainers"),
    )
    .unwrap_or_else(|e| panic!("{name}: {e}"));
    located
        .iter()
        .map(|at| {
            deployment["spec"]["template"]["spec"][at.list.field_name()][at.index]["image"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

#[tokio::test]
async fn every_corpus_deployment_config_converts_and_the_api_server_accepts_each_deployment() {
    let env = crate::support::env().await;
    let client = env.client().await;
    let (result, out, warnings) = run(&[corpus()], OutputFormat::Json);
    let summary = result.unwrap_or_else(|e| panic!("{e}\n{warnings}"));
    let expected = corpus_size();
    assert_eq!(summary.converted, expected, "{warnings}");
    // INDEX.json is no Kubernetes object.
    assert_eq!(summary.skipped, 1, "{warnings}");
    assert!(
        warnings.contains("INDEX.json: skipped: not a Kubernetes object"),
        "{warnings}"
    );
    let converted = deployments(&out);
    assert_eq!(converted.len(), expected);

    // Several Templates share a name (postgresql, sso, ...): the n-th Deployment of a name goes into
    // the n-th namespace, so each is created as converted, names and all.
    let mut namespaces: Vec<String> = Vec::new();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let params = PatchParams::apply("oc-convert-test").validation_strict();
    for deployment in &converted {
        let name = name_of(deployment);
        let occurrence = seen.entry(name.clone()).or_default();
        if namespaces.len() <= *occurrence {
            namespaces.push(env.namespace("oc-convert").await);
        }
        let namespace = &namespaces[*occurrence];
        *occurrence += 1;

        // Every corpus DeploymentConfig has an ImageChange trigger on a placeholder image.
        for image in triggered_images(deployment, namespace) {
            assert!(
                image.starts_with(&format!("{PLACEHOLDER_REGISTRY}/")),
                "{name}: {image}"
            );
        }
        let object: DynamicObject = serde_json::from_value(deployment.clone()).unwrap();
        let stored = deployment_api(&client, namespace)
            .patch(&name, &params, &Patch::Apply(&object))
            .await
            .unwrap_or_else(|e| panic!("the API server refused {name}: {e}"));
        let stored = serde_json::to_value(&stored).unwrap();
        assert_eq!(
            stored["metadata"]["annotations"][TRIGGERS_ANNOTATION],
            deployment["metadata"]["annotations"][TRIGGERS_ANNOTATION],
            "{name}"
        );
        assert_eq!(
            stored["spec"]["strategy"]["type"], deployment["spec"]["strategy"]["type"],
            "{name}"
        );
    }
    let created: usize = {
        let mut total = 0;
        for namespace in &namespaces {
            total += Api::<Deployment>::namespaced(client.clone(), namespace)
                .list(&Default::default())
                .await
                .unwrap()
                .items
                .len();
        }
        total
    };
    assert_eq!(created, expected);
}

#[tokio::test]
async fn the_yaml_output_of_the_corpus_passes_kubectl_server_side_validation() {
    let env = crate::support::env().await;
    let namespace = env.namespace("oc-convert-yaml").await;
    let (result, out, warnings) = run(&[corpus()], OutputFormat::Yaml);
    let summary = result.unwrap_or_else(|e| panic!("{e}\n{warnings}"));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("deployments.yaml");
    std::fs::write(&file, &out).unwrap();
    // A server dry run validates every document (strictly: kubectl's default) without storing it, so
    // Deployments of the same name do not collide.
    let output = env
        .kubectl()
        .args([
            "create",
            "--dry-run=server",
            "-o",
            "name",
            "-n",
            &namespace,
            "-f",
        ])
        .arg(&file)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let created = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|line| line.starts_with("deployment.apps/"))
        .count();
    assert_eq!(created, summary.converted, "{stderr}");
}

#[tokio::test]
async fn a_converted_image_change_trigger_gets_the_image_its_stream_imports() {
    let env = crate::support::env().await;
    let ns = env.namespace("oc-convert-trigger").await;
    let client = env.client().await;
    let dc = corpus().join("official-django-templates-django-example--django-example.json");
    let (result, out, warnings) = run(&[dc], OutputFormat::Json);
    result.unwrap_or_else(|e| panic!("{e}\n{warnings}"));
    let mut deployment = deployments(&out).remove(0);
    deployment["metadata"]["namespace"] = Value::String(ns.clone());
    let placeholder = format!("{PLACEHOLDER_REGISTRY}/django-example:latest");
    assert_eq!(triggered_images(&deployment, &ns), [placeholder]);

    let object: DynamicObject = serde_json::from_value(deployment).unwrap();
    deployment_api(&client, &ns)
        .patch(
            "django-example",
            &PatchParams::apply("oc-convert-test"),
            &Patch::Apply(&object),
        )
        .await
        .unwrap();
    let registry = env.registry();
    let repository = unique("oc-convert");
    let pushed = ImagePusher::for_registry(registry)
        .push_random(&repository, "latest", ManifestFormat::Oci)
        .await
        .unwrap();
    let _operator = start_operator(client.clone(), &ns, config(Duration::from_secs(900))).await;
    let streams = Api::<ImageStream>::namespaced(client.clone(), &ns);
    let from = format!("{}/{repository}:latest", registry.host());
    create_stream(
        &streams,
        "django-example",
        vec![docker_tag("latest", &from, false)],
    )
    .await;

    let expected = format!("{}/{repository}@{}", registry.host(), pushed.digest);
    let deployments = Api::<Deployment>::namespaced(client.clone(), &ns);
    let image = eventually(
        "the trigger controller to write the imported image",
        Duration::from_secs(60),
        || async {
            let stored = deployments.get("django-example").await.unwrap();
            let image = stored
                .spec
                .and_then(|s| s.template.spec)
                .and_then(|p| {
                    p.containers
                        .into_iter()
                        .find(|c| c.name == "django-example")
                })
                .and_then(|c| c.image)
                .unwrap_or_default();
            if image == expected {
                Ok(image)
            } else {
                Err(image)
            }
        },
    )
    .await;
    assert_eq!(image, expected);
    assert!(
        warnings_on(&client, &ns, "django-example").await.is_empty(),
        "the trigger controller found nothing wrong with the converted annotation"
    );
}

#[test]
fn a_file_that_is_not_a_deployment_config_is_skipped_with_a_note() {
    let dir = tempfile::tempdir().unwrap();
    let service = dir.path().join("service.yaml");
    std::fs::write(
        &service,
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  namespace: shop\nspec:\n  ports:\n  - port: 80\n",
    )
    .unwrap();
    let dc = corpus().join("official-django-templates-django-example--django-example.json");
    let (result, out, warnings) = run(&[service.clone(), dc], OutputFormat::Yaml);
    let summary = result.unwrap();
    assert_eq!((summary.converted, summary.skipped), (1, 1), "{warnings}");
    let note = format!(
        "Note: shop/web: skipped: v1 Service is not a DeploymentConfig (in {})",
        service.display()
    );
    assert!(warnings.lines().any(|line| line == note), "{warnings}");
    let written: Vec<Value> = serde_saphyr::from_multiple(&out).unwrap();
    assert_eq!(written.len(), 1);
    assert_eq!(written[0]["kind"], "Deployment");
    assert_eq!(written[0]["metadata"]["name"], "django-example");
}

#[test]
fn malformed_yaml_is_an_error_naming_the_file_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.yaml");
    std::fs::write(
        &broken,
        "apiVersion: apps.openshift.io/v1\nkind: DeploymentConfig\nmetadata: {name: [web\n",
    )
    .unwrap();
    let dc = corpus().join("official-django-templates-django-example--django-example.json");
    let (result, out, _) = run(&[dc, broken.clone()], OutputFormat::Yaml);
    let error = result.unwrap_err();
    assert_eq!(error.reason(), "InvalidManifest");
    let message = error.to_string();
    assert!(
        message.starts_with(&format!("{}: not valid YAML", broken.display())),
        "{message}"
    );
    assert_eq!(out, "", "a failed conversion writes no Deployment");
}
