//! Imports through mirror policies against real registries on loopback (and a port where nothing
//! listens): ImageContentSourcePolicy and ImageDigestMirrorSet for digests, ImageTagMirrorSet for
//! tags, NeverContactSource, wildcard sources, merged order, mirror credentials, and the reaction to
//! a mirror object going away.

use std::time::Duration;

use crate::support::*;
use imagestream_operator::api::{
    ImageContentSourcePolicy, ImageDigestMirrorSet, ImageStream, ImageTagMirrorSet,
};
use imagestream_testenv::images::{ImagePusher, ManifestFormat, TestIndex};
use imagestream_testenv::{Registry, RegistryOptions, free_port};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{DeleteParams, PostParams};
use kube::{Api, Client};
use serde::de::DeserializeOwned;
use serde_json::json;

/// Creates a cluster-scoped mirror object from JSON; it is deleted when the returned guard drops.
async fn create_mirror_object<K>(client: &Client, manifest: serde_json::Value) -> Cleanup<K>
where
    K: kube::Resource<Scope = kube::core::ClusterResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug
        + 'static,
{
    let object: K = serde_json::from_value(manifest).unwrap();
    let api = Api::<K>::all(client.clone());
    let created = api.create(&PostParams::default(), &object).await.unwrap();
    Cleanup {
        api,
        name: created.meta().name.clone().unwrap(),
    }
}

/// Deletes a cluster-scoped object when dropped (best effort, in the background).
struct Cleanup<
    K: kube::Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug + 'static,
> {
    api: Api<K>,
    name: String,
}

impl<K> Cleanup<K>
where
    K: kube::Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug + 'static,
{
    async fn delete(&self) {
        let _ = self.api.delete(&self.name, &DeleteParams::default()).await;
    }
}

impl<K> Drop for Cleanup<K>
where
    K: kube::Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug + 'static,
{
    fn drop(&mut self) {
        let api = self.api.clone();
        let name = self.name.clone();
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                let _ = api.delete(&name, &DeleteParams::default()).await;
            });
        }
    }
}

fn object_name(prefix: &str) -> String {
    format!("{prefix}-{:08x}", rand::random::<u32>())
}

fn operator_requests(registry: &Registry, repository: &str) -> usize {
    registry
        .requests_for(repository)
        .iter()
        .filter(|r| r.user_agent.starts_with("imagestream-operator/"))
        .count()
}

#[tokio::test]
async fn a_digest_import_uses_an_icsp_mirror_while_the_source_is_down_and_records_the_source() {
    let env = crate::support::env().await;
    let ns = env.namespace("mirrors").await;
    let client = env.client().await;
    let mirror = env.registry();
    let repository = unique("icsp");
    let pushed = ImagePusher::for_registry(mirror)
        .push_random(&repository, "v1", ManifestFormat::Oci)
        .await
        .unwrap();
    let down = format!("127.0.0.1:{}", free_port().unwrap());
    let icsp_name = object_name("icsp");
    // One malformed entry beside the good one: it is reported and skipped, the good one applies.
    let _icsp = create_mirror_object::<ImageContentSourcePolicy>(
        &client,
        json!({"apiVersion": "operator.openshift.io/v1alpha1", "kind": "ImageContentSourcePolicy",
               "metadata": {"name": icsp_name},
               "spec": {"repositoryDigestMirrors": [
                   {"source": "Not A/Valid Source", "mirrors": ["mirror.example.com/x"]},
                   {"source": format!("{down}/{repository}"), "mirrors": [format!("{}/{repository}", mirror.host())]}]}}),
    )
    .await;
    let _operator = start_operator(client.clone(), &ns, config(Duration::from_secs(900))).await;
    let api = Api::<ImageStream>::namespaced(client.clone(), &ns);
    let source = format!("{down}/{repository}@{}", pushed.digest);
    create_stream(&api, "app", vec![docker_tag("pinned", &source, false)]).await;
    let stream = wait_for(&api, "app", "the mirrored import", |s| {
        current_image(s, "pinned").is_some() || condition_reason(s, "pinned").is_some()
    })
    .await;
    assert_eq!(
        current_image(&stream, "pinned"),
        Some(pushed.digest.clone()),
        "{:?}",
        stream.status
    );
    let event = &stream.status.as_ref().unwrap().tag("pinned").unwrap().items[0];
    assert_eq!(
        event.docker_image_reference, source,
        "the reference must name the source"
    );

    // The stream's Event names the mirror; the policy's Event names the skipped entry.
    let served = wait_for_event(&client, &ns, |e| {
        e.reason.as_deref() == Some("Imported")
            && e.note
                .as_deref()
                .is_some_and(|n| n.contains(&format!("served by mirror {}", mirror.host())))
    })
    .await;
    assert!(served, "no Imported Event names the mirror");
    let reported = wait_for_event(&client, "default", |e| {
        e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(icsp_name.as_str())
            && e.type_.as_deref() == Some("Warning")
            && e.note
                .as_deref()
                .is_some_and(|n| n.contains("Not A/Valid Source"))
    })
    .await;
    assert!(
        reported,
        "the malformed ICSP entry was not reported on the ICSP"
    );
}

/// Waits up to 30 seconds for an events.k8s.io Event in `namespace` that satisfies `matches`.
async fn wait_for_event(
    client: &Client,
    namespace: &str,
    matches: impl Fn(&k8s_openapi::api::events::v1::Event) -> bool,
) -> bool {
    let events = Api::<k8s_openapi::api::events::v1::Event>::namespaced(client.clone(), namespace);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while tokio::time::Instant::now() < deadline {
        if events
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .iter()
            .any(&matches)
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    false
}

#[tokio::test]
async fn a_tag_import_uses_an_itms_mirror_but_not_an_icsp_or_idms_mirror() {
    let env = crate::support::env().await;
    let ns = env.namespace("mirrors").await;
    let client = env.client().await;
    let mirror = env.registry();
    let tagged = unique("itms");
    let digest_only = unique("idms");
    let icsp_only = unique("icsp");
    let pusher = ImagePusher::for_registry(mirror);
    for repository in [&tagged, &digest_only, &icsp_only] {
        pusher
            .push_random(repository, "v1", ManifestFormat::Oci)
            .await
            .unwrap();
    }
    let down = format!("127.0.0.1:{}", free_port().unwrap());
    let _itms = create_mirror_object::<ImageTagMirrorSet>(
        &client,
        json!({"apiVersion": "config.openshift.io/v1", "kind": "ImageTagMirrorSet",
               "metadata": {"name": object_name("itms")},
               "spec": {"imageTagMirrors": [
                   {"source": format!("{down}/{tagged}"), "mirrors": [format!("{}/{tagged}", mirror.host())]}]}}),
    )
    .await;
    let _idms = create_mirror_object::<ImageDigestMirrorSet>(
        &client,
        json!({"apiVersion": "config.openshift.io/v1", "kind": "ImageDigestMirrorSet",
               "metadata": {"name": object_name("idms")},
               "spec": {"imageDigestMirrors": [
                   {"source": format!("{down}/{digest_only}"), "mirrors": [format!("{}/{digest_only}", mirror.host())]}]}}),
    )
    .await;
    let _icsp = create_mirror_object::<ImageContentSourcePolicy>(
        &client,
        json!({"apiVersion": "operator.openshift.io/v1alpha1", "kind": "ImageContentSourcePolicy",
               "metadata": {"name": object_name("icsp")},
               "spec": {"repositoryDigestMirrors": [
                   {"source": format!("{down}/{icsp_only}"), "mirrors": [format!("{}/{icsp_only}", mirror.host())]}]}}),
    )
    .await;
    let _operator = start_operator(client.clone(), &ns, config(Duration::from_secs(900))).await;
    let api = Api::<ImageStream>::namespaced(client.clone(), &ns);
    create_stream(
        &api,
        "app",
        vec![
            docker_tag("via-itms", &format!("{down}/{tagged}:v1"), false),
            docker_tag("not-via-idms", &format!("{down}/{digest_only}:v1"), false),
            docker_tag("not-via-icsp", &format!("{down}/{icsp_only}:v1"), false),
        ],
    )
    .await;
    let stream = wait_for(&api, "app", "all three outcomes", |s| {
        current_image(s, "via-itms").is_some()
            && condition_reason(s, "not-via-idms").is_some()
            && condition_reason(s, "not-via-icsp").is_some()
    })
    .await;
    assert_eq!(
        stream
            .status
            .as_ref()
            .unwrap()
            .tag("via-itms")
            .unwrap()
            .items[0]
            .docker_image_reference
            .split('@')
            .next(),
        Some(format!("{down}/{tagged}").as_str())
    );
    assert_eq!(
        operator_requests(mirror, &digest_only),
        0,
        "a tag import used a digest mirror"
    );
    assert_eq!(
        operator_requests(mirror, &icsp_only),
        0,
        "a tag import used an ImageContentSourcePolicy mirror"
    );
}

#[tokio::test]
async fn never_contact_source_fails_the_import_without_a_request_to_the_source() {
    let env = crate::support::env().await;
    let ns = env.namespace("mirrors").await;
    let client = env.client().await;
    let source = env.registry();
    let empty_mirror = env
        .start_registry("empty-mirror", &RegistryOptions::default())
        .await
        .unwrap();
    let repository = unique("fenced");
    let pushed = ImagePusher::for_registry(source)
        .push_random(&repository, "v1", ManifestFormat::Oci)
        .await
        .unwrap();
    let _idms = create_mirror_object::<ImageDigestMirrorSet>(
        &client,
        json!({"apiVersion": "config.openshift.io/v1", "kind": "ImageDigestMirrorSet",
               "metadata": {"name": object_name("fence")},
               "spec": {"imageDigestMirrors": [
                   {"source": format!("{}/{repository}", source.host()),
                    "mirrors": [format!("{}/{repository}", empty_mirror.host())],
                    "mirrorSourcePolicy": "NeverContactSource"}]}}),
    )
    .await;
    let _operator = start_operator(client.clone(), &ns, config(Duration::from_secs(900))).await;
    let api = Api::<ImageStream>::namespaced(client.clone(), &ns);
    let reference = format!("{}/{repository}@{}", source.host(), pushed.digest);
    create_stream(&api, "app", vec![docker_tag("pinned", &reference, false)]).await;
    let stream = wait_for(&api, "app", "the failure", |s| {
        condition_reason(s, "pinned").is_some()
    })
    .await;
    assert_eq!(
        condition_reason(&stream, "pinned").as_deref(),
        Some("NotFound")
    );
    let message = condition_message(&stream, "pinned");
    assert!(
        message.contains(empty_mirror.host()) && message.contains("NeverContactSource"),
        "the condition does not say what was tried and what was not: {message}"
    );
    assert!(
        operator_requests(&empty_mirror, &repository) >= 1,
        "the mirror was not tried"
    );
    assert_eq!(
        operator_requests(source, &repository),
        0,
        "the fenced source was contacted"
    );
}

#[tokio::test]
async fn never_contact_source_on_a_digest_mirror_set_blocks_a_tag_import_with_no_tag_mirror() {
    let env = crate::support::env().await;
    let ns = env.namespace("mirrors").await;
    let client = env.client().await;
    let source = env.registry();
    let repository = unique("blocked");
    let digest_mirror = unique("blocked-digest");
    // Both hold the tag, so contacting either by tag would import something.
    let pusher = ImagePusher::for_registry(source);
    for pushed_to in [&repository, &digest_mirror] {
        pusher
            .push_random(pushed_to, "v1", ManifestFormat::Oci)
            .await
            .unwrap();
    }
    let idms_name = object_name("blocks-tags");
    let _idms = create_mirror_object::<ImageDigestMirrorSet>(
        &client,
        json!({"apiVersion": "config.openshift.io/v1", "kind": "ImageDigestMirrorSet",
               "metadata": {"name": idms_name},
               "spec": {"imageDigestMirrors": [
                   {"source": format!("{}/{repository}", source.host()),
                    "mirrors": [format!("{}/{digest_mirror}", source.host())],
                    "mirrorSourcePolicy": "NeverContactSource"}]}}),
    )
    .await;
    let _operator = start_operator(client.clone(), &ns, config(Duration::from_secs(900))).await;
    let api = Api::<ImageStream>::namespaced(client.clone(), &ns);
    let reference = format!("{}/{repository}:v1", source.host());
    create_stream(&api, "app", vec![docker_tag("v1", &reference, false)]).await;
    let stream = wait_for(&api, "app", "the failure", |s| {
        current_image(s, "v1").is_some() || condition_reason(s, "v1").is_some()
    })
    .await;
    assert_eq!(
        condition_reason(&stream, "v1").as_deref(),
        Some("SourceBlocked"),
        "{:?}",
        stream.status
    );
    assert_eq!(current_image(&stream, "v1"), None);
    let message = condition_message(&stream, "v1");
    assert!(
        message.contains(&format!("ImageDigestMirrorSet/{idms_name}"))
            && message.contains("NeverContactSource")
            && message.contains("ImageTagMirrorSet"),
        "the condition does not say what blocks the source: {message}"
    );
    assert_eq!(
        operator_requests(source, &repository),
        0,
        "the blocked source was contacted"
    );
    assert_eq!(
        operator_requests(source, &digest_mirror),
        0,
        "a digest mirror was asked for a tag"
    );
}

#[tokio::test]
async fn a_tag_import_of_a_source_blocked_by_a_digest_mirror_set_uses_the_tag_mirror_only() {
    let env = crate::support::env().await;
    let ns = env.namespace("mirrors").await;
    let client = env.client().await;
    let source = env.registry();
    let repository = unique("blocked");
    let tag_mirror = unique("blocked-tags");
    // The same tag names different images on the source and the mirror, so the test can tell
    // who served the import.
    let pusher = ImagePusher::for_registry(source);
    let on_source = pusher
        .push_random(&repository, "v1", ManifestFormat::Oci)
        .await
        .unwrap();
    let on_mirror = pusher
        .push_random(&tag_mirror, "v1", ManifestFormat::Oci)
        .await
        .unwrap();
    assert_ne!(on_mirror.digest, on_source.digest);
    let idms_name = object_name("blocks-tags");
    let _idms = create_mirror_object::<ImageDigestMirrorSet>(
        &client,
        json!({"apiVersion": "config.openshift.io/v1", "kind": "ImageDigestMirrorSet",
               "metadata": {"name": idms_name},
               "spec": {"imageDigestMirrors": [
                   {"source": format!("{}/{repository}", source.host()),
                    "mirrors": [format!("{}/{}", source.host(), unique("unused-digest"))],
                    "mirrorSourcePolicy": "NeverContactSource"}]}}),
    )
    .await;
    // The tag mirror set itself allows the source: the digest mirror set's fence still holds.
    let _itms = create_mirror_object::<ImageTagMirrorSet>(
        &client,
        json!({"apiVersion": "config.openshift.io/v1", "kind": "ImageTagMirrorSet",
               "metadata": {"name": object_name("tags")},
               "spec": {"imageTagMirrors": [
                   {"source": format!("{}/{repository}", source.host()),
                    "mirrors": [format!("{}/{tag_mirror}", source.host())]}]}}),
    )
    .await;
    let _operator = start_operator(client.clone(), &ns, config(Duration::from_secs(1))).await;
    let api = Api::<ImageStream>::namespaced(client.clone(), &ns);
    let reference = format!("{}/{repository}:v1", source.host());
    create_stream(&api, "app", vec![docker_tag("v1", &reference, true)]).await;
    let stream = wait_for(&api, "app", "the mirrored import", |s| {
        current_image(s, "v1").is_some() || condition_reason(s, "v1").is_some()
    })
    .await;
    assert_eq!(
        current_image(&stream, "v1"),
        Some(on_mirror.digest.clone()),
        "{:?}",
        stream.status
    );
    let event = &stream.status.as_ref().unwrap().tag("v1").unwrap().items[0];
    assert_eq!(
        event.docker_image_reference,
        format!("{}/{repository}@{}", source.host(), on_mirror.digest),
        "the reference must name the source"
    );
    assert!(operator_requests(source, &tag_mirror) >= 1);

    // The mirror loses the tag: the next scheduled import may not fall back to the source.
    let deleted = reqwest::Client::new()
        .delete(format!(
            "{}/v2/{tag_mirror}/manifests/{}",
            source.base_url(),
            on_mirror.digest
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status().as_u16(), 202, "{deleted:?}");
    let stream = wait_for(&api, "app", "the failed re-import", |s| {
        condition_reason(s, "v1").is_some()
    })
    .await;
    assert_eq!(condition_reason(&stream, "v1").as_deref(), Some("NotFound"));
    let message = condition_message(&stream, "v1");
    assert!(
        message.contains(&format!("ImageDigestMirrorSet/{idms_name}")),
        "the condition does not say what blocks the source: {message}"
    );
    assert_eq!(
        history(&stream, "v1"),
        std::slice::from_ref(&on_mirror.digest)
    );
    assert_eq!(
        operator_requests(source, &repository),
        0,
        "the blocked source was contacted"
    );
}

#[tokio::test]
async fn a_wildcard_source_sends_any_subdomain_to_the_mirror() {
    let env = crate::support::env().await;
    let ns = env.namespace("mirrors").await;
    let client = env.client().await;
    let mirror = env.registry();
    let path = unique("wild");
    let pushed = ImagePusher::for_registry(mirror)
        .push_random(&format!("mirrored/{path}"), "v1", ManifestFormat::Oci)
        .await
        .unwrap();
    let domain = format!("w{:08x}.example.test", rand::random::<u32>());
    let _itms = create_mirror_object::<ImageTagMirrorSet>(
        &client,
        json!({"apiVersion": "config.openshift.io/v1", "kind": "ImageTagMirrorSet",
               "metadata": {"name": object_name("wild")},
               "spec": {"imageTagMirrors": [
                   {"source": format!("*.{domain}"), "mirrors": [format!("{}/mirrored", mirror.host())],
                    "mirrorSourcePolicy": "NeverContactSource"}]}}),
    )
    .await;
    let _operator = start_operator(client.clone(), &ns, config(Duration::from_secs(900))).await;
    let api = Api::<ImageStream>::namespaced(client.clone(), &ns);
    let reference = format!("registry.{domain}/{path}:v1");
    create_stream(&api, "app", vec![docker_tag("wild", &reference, false)]).await;
    let stream = wait_for(&api, "app", "the wildcard import", |s| {
        current_image(s, "wild").is_some() || condition_reason(s, "wild").is_some()
    })
    .await;
    assert_eq!(
        current_image(&stream, "wild"),
        Some(pushed.digest.clone()),
        "{:?}",
        stream.status
    );
}

#[tokio::test]
async fn mirror_lists_of_two_objects_merge_in_order_and_the_first_answer_wins() {
    let env = crate::support::env().await;
    let ns = env.namespace("mirrors").await;
    let client = env.client().await;
    let first = env
        .start_registry("first", &RegistryOptions::default())
        .await
        .unwrap();
    let second = env
        .start_registry("second", &RegistryOptions::default())
        .await
        .unwrap();
    let third = env
        .start_registry("third", &RegistryOptions::default())
        .await
        .unwrap();
    let repository = unique("merged");
    let pushed = ImagePusher::for_registry(&second)
        .push_random(&repository, "v1", ManifestFormat::Oci)
        .await
        .unwrap();
    let down = format!("127.0.0.1:{}", free_port().unwrap());
    let source = format!("{down}/{repository}");
    let at = |r: &Registry| format!("{}/{repository}", r.host());
    // [first, second] + [second, third] → first, second, third, then the source.
    let _a = create_mirror_object::<ImageTagMirrorSet>(
        &client,
        json!({"apiVersion": "config.openshift.io/v1", "kind": "ImageTagMirrorSet",
               "metadata": {"name": object_name("a-merge")},
               "spec": {"imageTagMirrors": [{"source": source, "mirrors": [at(&first), at(&second)]}]}}),
    )
    .await;
    let _b = create_mirror_object::<ImageTagMirrorSet>(
        &client,
        json!({"apiVersion": "config.openshift.io/v1", "kind": "ImageTagMirrorSet",
               "metadata": {"name": object_name("b-merge")},
               "spec": {"imageTagMirrors": [{"source": source, "mirrors": [at(&second), at(&third)]}]}}),
    )
    .await;
    let _operator = start_operator(client.clone(), &ns, config(Duration::from_secs(900))).await;
    let api = Api::<ImageStream>::namespaced(client.clone(), &ns);
    create_stream(
        &api,
        "app",
        vec![docker_tag("v1", &format!("{source}:v1"), false)],
    )
    .await;
    let stream = wait_for(&api, "app", "the merged import", |s| {
        current_image(s, "v1").is_some() || condition_reason(s, "v1").is_some()
    })
    .await;
    assert_eq!(
        current_image(&stream, "v1"),
        Some(pushed.digest.clone()),
        "{:?}",
        stream.status
    );
    let asked_first: Vec<_> = first.requests_for(&repository);
    assert!(
        asked_first
            .iter()
            .any(|r| r.method == "HEAD" && r.status == 404),
        "{asked_first:?}"
    );
    assert!(operator_requests(&second, &repository) >= 1);
    assert_eq!(
        operator_requests(&third, &repository),
        0,
        "a later mirror was asked after an answer"
    );
}

#[tokio::test]
async fn a_mirror_needing_basic_auth_uses_the_secret_matched_on_the_mirror_host() {
    let env = crate::support::env().await;
    let ns = env.namespace("mirrors").await;
    let client = env.client().await;
    let dir = tempfile::tempdir().unwrap();
    let htpasswd = dir.path().join("htpasswd");
    imagestream_testenv::write_htpasswd(&htpasswd, &[("mirror-user", "mirror-pass")]).unwrap();
    let mirror = env
        .start_registry(
            "auth-mirror",
            &RegistryOptions {
                htpasswd: Some(htpasswd),
                ..RegistryOptions::default()
            },
        )
        .await
        .unwrap();
    let repository = unique("authmirror");
    let pushed = ImagePusher::for_registry(&mirror)
        .with_credentials("mirror-user", "mirror-pass")
        .push_random(&repository, "v1", ManifestFormat::Oci)
        .await
        .unwrap();
    let down = format!("127.0.0.1:{}", free_port().unwrap());
    let _itms = create_mirror_object::<ImageTagMirrorSet>(
        &client,
        json!({"apiVersion": "config.openshift.io/v1", "kind": "ImageTagMirrorSet",
               "metadata": {"name": object_name("auth")},
               "spec": {"imageTagMirrors": [
                   {"source": format!("{down}/{repository}"), "mirrors": [format!("{}/{repository}", mirror.host())]}]}}),
    )
    .await;
    let auth = base64_encode("mirror-user:mirror-pass");
    let config_json = json!({"auths": {mirror.host(): {"auth": auth}}}).to_string();
    let secret: Secret = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "mirror-pull"},
        "type": "kubernetes.io/dockerconfigjson",
        "data": {".dockerconfigjson": base64_encode(&config_json)}
    }))
    .unwrap();
    Api::<Secret>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    let _operator = start_operator(client.clone(), &ns, config(Duration::from_secs(900))).await;
    let api = Api::<ImageStream>::namespaced(client.clone(), &ns);
    create_stream(
        &api,
        "app",
        vec![docker_tag("v1", &format!("{down}/{repository}:v1"), false)],
    )
    .await;
    let stream = wait_for(&api, "app", "the authenticated mirror import", |s| {
        current_image(s, "v1").is_some() || condition_reason(s, "v1").is_some()
    })
    .await;
    assert_eq!(
        current_image(&stream, "v1"),
        Some(pushed.digest.clone()),
        "{:?}",
        stream.status
    );
}

#[tokio::test]
async fn deleting_the_mirror_object_fails_the_tag_over_to_the_source() {
    let env = crate::support::env().await;
    let ns = env.namespace("mirrors").await;
    let client = env.client().await;
    let source = env.registry();
    let mirror = env
        .start_registry("failover-mirror", &RegistryOptions::default())
        .await
        .unwrap();
    let repository = unique("failover");
    // The same tag names different images on the mirror and the source, so the test can tell who
    // served each import.
    let on_source = ImagePusher::for_registry(source)
        .push_random(&repository, "v1", ManifestFormat::Oci)
        .await
        .unwrap();
    let on_mirror = ImagePusher::for_registry(&mirror)
        .push_random(&repository, "v1", ManifestFormat::Oci)
        .await
        .unwrap();
    let itms = create_mirror_object::<ImageTagMirrorSet>(
        &client,
        json!({"apiVersion": "config.openshift.io/v1", "kind": "ImageTagMirrorSet",
               "metadata": {"name": object_name("failover")},
               "spec": {"imageTagMirrors": [
                   {"source": format!("{}/{repository}", source.host()),
                    "mirrors": [format!("{}/{repository}", mirror.host())]}]}}),
    )
    .await;
    let _operator = start_operator(client.clone(), &ns, config(Duration::from_secs(1))).await;
    let api = Api::<ImageStream>::namespaced(client.clone(), &ns);
    let reference = format!("{}/{repository}:v1", source.host());
    create_stream(&api, "app", vec![docker_tag("v1", &reference, true)]).await;
    wait_for(&api, "app", "the import from the mirror", |s| {
        current_image(s, "v1") == Some(on_mirror.digest.clone())
    })
    .await;
    assert_eq!(operator_requests(source, &repository), 0);
    itms.delete().await;
    let stream = wait_for(&api, "app", "the import from the source", |s| {
        current_image(s, "v1") == Some(on_source.digest.clone())
    })
    .await;
    assert_eq!(
        history(&stream, "v1"),
        [on_source.digest.clone(), on_mirror.digest.clone()]
    );
}

fn base64_encode(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(text)
}

#[tokio::test]
async fn a_child_missing_from_the_mirror_is_fetched_from_the_next_source_of_the_plan() {
    let env = crate::support::env().await;
    let ns = env.namespace("mirrors").await;
    let client = env.client().await;
    let registry = env.registry();
    let source = unique("children-source");
    let mirror = unique("children-mirror");
    // The same index in both repositories; then the mirror loses the arm64 child.
    let index = TestIndex::random(ManifestFormat::Oci, &TestIndex::common_platforms());
    let pusher = ImagePusher::for_registry(registry);
    let pushed = pusher.push_index(&source, "v1", &index).await.unwrap();
    pusher.push_index(&mirror, "v1", &index).await.unwrap();
    let arm64 = pushed
        .children
        .iter()
        .find(|c| c.platform.architecture == "arm64")
        .unwrap()
        .digest
        .clone();
    let deleted = reqwest::Client::new()
        .delete(format!(
            "{}/v2/{mirror}/manifests/{arm64}",
            registry.base_url()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status().as_u16(), 202, "{deleted:?}");

    let _itms = create_mirror_object::<ImageTagMirrorSet>(
        &client,
        json!({"apiVersion": "config.openshift.io/v1", "kind": "ImageTagMirrorSet",
               "metadata": {"name": object_name("children")},
               "spec": {"imageTagMirrors": [
                   {"source": format!("{}/{source}", registry.host()),
                    "mirrors": [format!("{}/{mirror}", registry.host())]}]}}),
    )
    .await;
    let mut cfg = config(Duration::from_secs(900));
    cfg.default_platform = "linux/arm64".parse().unwrap();
    let _operator = start_operator(client.clone(), &ns, cfg).await;
    let api = Api::<ImageStream>::namespaced(client.clone(), &ns);
    let from = format!("{}/{source}:v1", registry.host());
    create_stream(&api, "app", vec![docker_tag("v1", &from, false)]).await;
    let stream = wait_for(&api, "app", "the import", |s| {
        current_image(s, "v1").is_some() || condition_reason(s, "v1").is_some()
    })
    .await;
    assert_eq!(
        current_image(&stream, "v1"),
        Some(arm64.clone()),
        "condition: {:?}",
        condition_reason(&stream, "v1")
    );
    // The mirror answered the tag and the list; the source served the child the mirror lacks.
    let child_path = format!("/manifests/{arm64}");
    let from_mirror: Vec<_> = registry
        .requests_for(&mirror)
        .into_iter()
        .filter(|r| r.user_agent.starts_with("imagestream-operator/"))
        .collect();
    assert!(
        from_mirror
            .iter()
            .any(|r| r.method == "HEAD" && r.path.ends_with("/manifests/v1")),
        "{from_mirror:?}"
    );
    assert!(
        from_mirror
            .iter()
            .any(|r| r.path.ends_with(&child_path) && r.status == 404),
        "{from_mirror:?}"
    );
    let from_source: Vec<_> = registry
        .requests_for(&source)
        .into_iter()
        .filter(|r| r.user_agent.starts_with("imagestream-operator/"))
        .collect();
    assert!(
        from_source
            .iter()
            .all(|r| r.path.ends_with(&child_path) || r.path.contains("/blobs/")),
        "the source was asked for more than the missing child: {from_source:?}"
    );
    assert!(
        from_source
            .iter()
            .any(|r| r.method == "GET" && r.path.ends_with(&child_path) && r.status == 200),
        "{from_source:?}"
    );
}

#[tokio::test]
async fn a_mirror_at_a_metadata_address_is_reported_on_its_object_and_the_next_mirror_serves() {
    let env = crate::support::env().await;
    let ns = env.namespace("mirrors").await;
    let client = env.client().await;
    let mirror = env.registry();
    let repository = unique("metadata");
    let pushed = ImagePusher::for_registry(mirror)
        .push_random(&repository, "v1", ManifestFormat::Oci)
        .await
        .unwrap();
    let down = format!("127.0.0.1:{}", free_port().unwrap());
    let idms_name = object_name("idms-metadata");
    let _idms = create_mirror_object::<ImageDigestMirrorSet>(
        &client,
        json!({"apiVersion": "config.openshift.io/v1", "kind": "ImageDigestMirrorSet",
        "metadata": {"name": idms_name},
        "spec": {"imageDigestMirrors": [{
            "source": format!("{down}/{repository}"),
            "mirrors": [
                format!("169.254.169.254/{repository}"),
                format!("{}/{repository}", mirror.host()),
            ]}]}}),
    )
    .await;
    let _operator = start_operator(client.clone(), &ns, config(Duration::from_secs(900))).await;
    let reported = wait_for_event(&client, "default", |e| {
        e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(idms_name.as_str())
            && e.type_.as_deref() == Some("Warning")
            && e.note
                .as_deref()
                .is_some_and(|n| n.contains("169.254.169.254") && n.contains("never contacted"))
    })
    .await;
    assert!(
        reported,
        "the IDMS was not told about its metadata-address mirror"
    );

    let api = Api::<ImageStream>::namespaced(client.clone(), &ns);
    let source = format!("{down}/{repository}@{}", pushed.digest);
    create_stream(&api, "app", vec![docker_tag("pinned", &source, false)]).await;
    let stream = wait_for(&api, "app", "the mirrored import", |s| {
        current_image(s, "pinned").is_some() || condition_reason(s, "pinned").is_some()
    })
    .await;
    assert_eq!(
        current_image(&stream, "pinned"),
        Some(pushed.digest.clone()),
        "{:?}",
        stream.status
    );
    let served = wait_for_event(&client, &ns, |e| {
        e.reason.as_deref() == Some("Imported")
            && e.note
                .as_deref()
                .is_some_and(|n| n.contains(&format!("served by mirror {}", mirror.host())))
    })
    .await;
    assert!(served, "the usable mirror did not serve the import");
}
