//! `describe imagestream`, `describe istag` and `get istag` against the real kube-apiserver: the
//! operator runs in-process to import an image pushed to the real test registry (and to fail on a
//! repository that does not exist), and the output is checked for what the cluster holds.

use std::time::Duration;

use crate::support::*;
use imagestream_operator::api::ImageStream;
use imagestream_operator::domain::describe_text::ImageStreamTagNameError;
use imagestream_operator::oc::describe::{
    DescribeError, describe_istag, describe_stream, get_istags,
};
use imagestream_testenv::images::{ImagePusher, ManifestFormat, PushedImage};
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::PostParams;
use kube::{Api, Client};

/// A namespace with stream `app`: tag `v1` imported from a pushed image, tag `broken` failing on
/// a repository that was never pushed, and Deployment `web` following `app:v1`.
struct Imported {
    ns: String,
    client: Client,
    pushed: PushedImage,
    /// `<registry>/<repository>`.
    repository: String,
    /// `from.name` of the failing tag.
    missing: String,
    _operator: Operator,
}

async fn imported_stream() -> Imported {
    let env = crate::support::env().await;
    let ns = env.namespace("describe").await;
    let client = env.client().await;
    let registry = env.registry();
    let repository = unique("describe");
    let pushed = ImagePusher::for_registry(registry)
        .push_random(&repository, "v1", ManifestFormat::Oci)
        .await
        .unwrap();
    let operator = start_operator(client.clone(), &ns, config(Duration::from_secs(900))).await;
    let api = Api::<ImageStream>::namespaced(client.clone(), &ns);
    let repository = format!("{}/{repository}", registry.host());
    let missing = format!("{}/{}:v1", registry.host(), unique("missing"));
    create_stream(
        &api,
        "app",
        vec![
            docker_tag("v1", &format!("{repository}:v1"), false),
            docker_tag("broken", &missing, false),
        ],
    )
    .await;
    wait_for(&api, "app", "the import and the failure", |s| {
        current_image(s, "v1").is_some() && condition_reason(s, "broken").is_some()
    })
    .await;
    Api::<Deployment>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &triggered_deployment("web", "app"))
        .await
        .unwrap();
    Imported {
        ns,
        client,
        pushed,
        repository,
        missing,
        _operator: operator,
    }
}

#[tokio::test]
async fn describe_imagestream_shows_the_digest_the_failure_and_the_workload_that_follows_the_tag() {
    let setup = imported_stream().await;
    let text = describe_stream(&setup.client, &setup.ns, "app")
        .await
        .unwrap();

    assert!(text.starts_with("Name:                   app\n"), "{text}");
    assert!(
        text.contains(&format!("Namespace:              {}\n", setup.ns)),
        "{text}"
    );
    assert!(
        text.contains("Unique Images:          1\nTags:                   2\n"),
        "{text}"
    );
    let broken = format!(
        "\nbroken\n  tagged from {}\n    will use insecure HTTPS or HTTP connections\n\n  ! error: Import failed (NotFound): ",
        setup.missing
    );
    let v1 = format!(
        "\nv1\n  tagged from {repository}:v1\n    will use insecure HTTPS or HTTP connections\n  triggers deployment/web (container app)\n\n  * {repository}@{digest}\n      ",
        repository = setup.repository,
        digest = setup.pushed.digest
    );
    let broken_at = text
        .find(&broken)
        .unwrap_or_else(|| panic!("no failing tag:\n{text}"));
    let v1_at = text
        .find(&v1)
        .unwrap_or_else(|| panic!("no imported tag:\n{text}"));
    assert!(broken_at < v1_at, "tags out of oc's order:\n{text}");
    assert!(text.ends_with(" ago\n"), "{text}");
}

#[tokio::test]
async fn describe_istag_shows_the_digest_the_layers_and_the_history() {
    let setup = imported_stream().await;
    let text = describe_istag(&setup.client, &setup.ns, "app:v1")
        .await
        .unwrap();

    let digest = &setup.pushed.digest;
    assert!(
        text.starts_with(&format!("Image Name:     {digest}\n")),
        "{text}"
    );
    let reference = format!("{}@{digest}", setup.repository);
    assert!(
        text.contains(&format!("Docker Image:   {reference}\n")),
        "{text}"
    );
    assert!(
        text.contains(&format!("Name:           sha256.{}\n", &digest[7..])),
        "{text}"
    );
    let layers = setup.pushed.layers.len();
    assert!(text.contains(&format!(" in {layers} layers\n")), "{text}");
    for layer in &setup.pushed.layers {
        assert!(text.contains(&format!(" {}\n", layer.digest)), "{text}");
    }
    assert!(text.contains("Arch:           amd64\n"), "{text}");
    assert!(
        text.contains(&format!("\nHistory:\n  * {reference}\n")),
        "{text}"
    );

    let failing = describe_istag(&setup.client, &setup.ns, "app:broken").await;
    match failing {
        Err(error @ DescribeError::TagHasNoImage { .. }) => {
            let message = error.to_string();
            assert!(
                message.starts_with(r#"imagestreamtags.image.openshift.io "app:broken" not found"#),
                "{message}"
            );
            assert!(message.contains("Import failed (NotFound)"), "{message}");
        }
        other => panic!("a failing tag was described: {other:?}"),
    }
}

#[tokio::test]
async fn get_istag_lists_both_tags_in_the_namespace_and_across_namespaces() {
    let setup = imported_stream().await;
    let reference = format!("{}@{}", setup.repository, setup.pushed.digest);

    let table = get_istags(&setup.client, Some(&setup.ns)).await.unwrap();
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["NAME", "IMAGE", "REFERENCE", "UPDATED"]
    );
    assert_eq!(
        lines[1].split_whitespace().collect::<Vec<_>>(),
        ["app:broken", "<none>", "<none>"]
    );
    assert!(lines[2].starts_with("app:v1 "), "{table}");
    assert!(lines[2].contains(&format!("   {reference}   ")), "{table}");
    assert!(lines[2].ends_with(" ago"), "{table}");

    let everywhere = get_istags(&setup.client, None).await.unwrap();
    assert!(everywhere.starts_with("NAMESPACE "), "{everywhere}");
    let ours: Vec<&str> = everywhere
        .lines()
        .filter(|line| line.starts_with(&format!("{} ", setup.ns)))
        .collect();
    assert_eq!(ours.len(), 2, "{everywhere}");
    assert!(ours[1].contains(&reference), "{everywhere}");
}

#[tokio::test]
async fn unknown_streams_and_tags_and_malformed_names_are_errors() {
    let env = crate::support::env().await;
    let ns = env.namespace("describe").await;
    let client = env.client().await;
    let api = Api::<ImageStream>::namespaced(client.clone(), &ns);
    create_stream(
        &api,
        "app",
        vec![docker_tag("v1", "registry.invalid/app:v1", false)],
    )
    .await;

    let missing = describe_stream(&client, &ns, "nope").await.unwrap_err();
    assert_eq!(
        missing.to_string(),
        r#"imagestreams.image.openshift.io "nope" not found"#
    );
    let missing = describe_istag(&client, &ns, "nope:v1").await.unwrap_err();
    assert!(
        matches!(missing, DescribeError::StreamNotFound { .. }),
        "{missing}"
    );
    let no_tag = describe_istag(&client, &ns, "app:v2").await.unwrap_err();
    assert_eq!(
        no_tag.to_string(),
        r#"imagestreamtags.image.openshift.io "app:v2" not found"#
    );
    // No operator runs here: the tag has never been imported.
    let not_imported = describe_istag(&client, &ns, "app:v1").await.unwrap_err();
    assert!(
        matches!(not_imported, DescribeError::TagHasNoImage { .. }),
        "{not_imported}"
    );
    for malformed in ["app", "app:v1:extra", ":v1", "app@sha256:abc"] {
        let error = describe_istag(&client, &ns, malformed).await.unwrap_err();
        assert!(
            matches!(error, DescribeError::InvalidTagName(_)),
            "{malformed}: {error}"
        );
    }
    let error = describe_istag(&client, &ns, "app").await.unwrap_err();
    assert!(matches!(
        error,
        DescribeError::InvalidTagName(ImageStreamTagNameError::Delimiter { .. })
    ));
    assert_eq!(
        get_istags(&client, Some(&format!("{ns}-empty")))
            .await
            .unwrap(),
        format!("No resources found in {ns}-empty namespace.\n")
    );
}
