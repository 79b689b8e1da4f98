//! Imports against the real kube-apiserver and the real distribution registry: each test runs the
//! operator in-process, scoped to its own namespace, pushes images from the test, and asserts on the
//! stored ImageStream, the Image objects and the registry's request log.

use std::time::Duration;

use crate::support::*;
use imagestream_operator::api::{Image, ImageStream};
use imagestream_operator::domain::image_name::image_name_for_digest;
use imagestream_testenv::images::{ImagePusher, ManifestFormat, TestIndex};
use imagestream_testenv::{RegistryOptions, RegistryRequest};
use kube::Api;

/// The FAKE registry of the client's unit tests, used here only for what a real registry cannot
/// do on demand (answer 429 with a long `Retry-After`). Everything else runs against the real one.
#[allow(dead_code)]
#[path = "../../src/registry/fake_registry.rs"]
mod fake_registry;

#[tokio::test]
async fn a_first_import_records_the_digest_in_the_users_spelling_and_creates_the_image() {
    let env = crate::support::env().await;
    let ns = env.namespace("import").await;
    let client = env.client().await;
    let registry = env.registry();
    let repository = unique("first");
    let pushed = ImagePusher::for_registry(registry)
        .push_random(&repository, "v1", ManifestFormat::Oci)
        .await
        .unwrap();
    let _operator = start_operator(client.clone(), &ns, config(Duration::from_secs(900))).await;
    let api = Api::<ImageStream>::namespaced(client.clone(), &ns);
    let from = format!("{}/{repository}:v1", registry.host());
    create_stream(&api, "app", vec![docker_tag("v1", &from, false)]).await;

    let stream = wait_for(&api, "app", "the first import", |s| {
        current_image(s, "v1").is_some()
    })
    .await;
    let event = &stream.status.as_ref().unwrap().tag("v1").unwrap().items[0];
    assert_eq!(event.image, pushed.digest);
    assert_eq!(
        event.docker_image_reference,
        format!("{}/{repository}@{}", registry.host(), pushed.digest)
    );
    assert_eq!(event.generation, stream.metadata.generation.unwrap());

    let image = Api::<Image>::all(client.clone())
        .get(&image_name_for_digest(&pushed.digest).unwrap())
        .await
        .unwrap();
    assert_eq!(
        image.docker_image_manifest_media_type.as_deref(),
        Some(pushed.media_type.as_str())
    );
    let layers: Vec<&str> = image
        .docker_image_layers
        .iter()
        .map(|l| l.name.as_str())
        .collect();
    let pushed_layers: Vec<&str> = pushed.layers.iter().map(|l| l.digest.as_str()).collect();
    assert_eq!(layers, pushed_layers);
    let events = Api::<k8s_openapi::api::events::v1::Event>::namespaced(client.clone(), &ns);
    eventually(
        "one Imported Event on the stream",
        Duration::from_secs(30),
        || async {
            let imported = events
                .list(&Default::default())
                .await
                .unwrap()
                .items
                .into_iter()
                .filter(|e| {
                    e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("app")
                        && e.reason.as_deref() == Some("Imported")
                })
                .count();
            match imported {
                1 => Ok(()),
                other => Err(format!("{other} Imported Events")),
            }
        },
    )
    .await;
    let metadata = image.docker_image_metadata.unwrap();
    let expected_size =
        (pushed.config.len() as u64 + pushed.layers.iter().map(|l| l.size).sum::<u64>()) as i64;
    assert_eq!(metadata.size, Some(expected_size));
    assert_eq!(metadata.architecture.as_deref(), Some("amd64"));
}

#[tokio::test]
async fn idle_scheduled_cycles_send_only_heads_and_write_nothing_and_a_move_costs_one_head_two_gets_one_write()
 {
    let env = crate::support::env().await;
    let ns = env.namespace("import").await;
    let client = env.client().await;
    let registry = env.registry();
    let repository = unique("idle");
    let pusher = ImagePusher::for_registry(registry);
    let a = pusher
        .push_random(&repository, "latest", ManifestFormat::Docker)
        .await
        .unwrap();
    let _operator = start_operator(client.clone(), &ns, config(Duration::from_secs(1))).await;
    let api = Api::<ImageStream>::namespaced(client.clone(), &ns);
    let from = format!("{}/{repository}:latest", registry.host());
    create_stream(&api, "app", vec![docker_tag("latest", &from, true)]).await;
    let settled = wait_for(&api, "app", "the first import", |s| {
        current_image(s, "latest") == Some(a.digest.clone())
    })
    .await;

    // Several idle cycles: HEADs only, and the stream is not written.
    let mark = registry.requests_for(&repository).len();
    let version = settled.metadata.resource_version.clone().unwrap();
    let writes = modifications_after(&api, "app", &version, Duration::from_secs(4)).await;
    assert_eq!(writes, 0, "an idle cycle wrote the stream");
    assert_eq!(
        api.get("app")
            .await
            .unwrap()
            .metadata
            .resource_version
            .unwrap(),
        version
    );
    let idle = requests_since(registry, &repository, mark);
    assert!(
        idle.len() >= 2,
        "expected at least two scheduled checks in 4s: {idle:?}"
    );
    assert!(
        idle.iter().all(|r| r.method == "HEAD"),
        "an idle cycle sent more than HEADs: {idle:?}"
    );

    // The tag moves: one manifest GET and one config GET, and one write of the stream.
    let mark = registry.requests_for(&repository).len();
    let b = pusher
        .push_random(&repository, "latest", ManifestFormat::Docker)
        .await
        .unwrap();
    let push_requests = registry.requests_for(&repository).len() - mark;
    let moved = wait_for(&api, "app", "the move", |s| {
        current_image(s, "latest") == Some(b.digest.clone())
    })
    .await;
    assert_eq!(
        history(&moved, "latest"),
        [b.digest.clone(), a.digest.clone()]
    );
    let writes = modifications_after(&api, "app", &version, Duration::from_secs(3)).await;
    assert_eq!(writes, 1, "a move should cost exactly one status write");
    let after: Vec<RegistryRequest> = requests_since(registry, &repository, mark + push_requests)
        .into_iter()
        .filter(|r| r.user_agent.starts_with("imagestream-operator/"))
        .collect();
    let gets: Vec<&RegistryRequest> = after.iter().filter(|r| r.method == "GET").collect();
    assert_eq!(
        gets.len(),
        2,
        "expected one manifest GET and one config GET: {after:?}"
    );
    assert!(
        gets.iter()
            .any(|r| r.path.ends_with(&format!("/manifests/{}", b.digest))),
        "{gets:?}"
    );
    assert!(gets.iter().any(|r| r.path.contains("/blobs/")), "{gets:?}");
    assert!(
        after
            .iter()
            .all(|r| r.method == "HEAD" || r.method == "GET"),
        "{after:?}"
    );
    // The move is one HEAD that sees the new digest, then the two GETs right after it.
    let first_get = after.iter().position(|r| r.method == "GET").unwrap();
    assert!(
        first_get >= 1
            && after[first_get - 1].method == "HEAD"
            && after.get(first_get + 1).is_some_and(|r| r.method == "GET"),
        "expected HEAD, GET, GET for the move: {after:?}"
    );
}

#[tokio::test]
async fn a_tag_moving_a_to_b_to_a_keeps_three_history_entries() {
    let env = crate::support::env().await;
    let ns = env.namespace("import").await;
    let client = env.client().await;
    let registry = env.registry();
    let repository = unique("aba");
    let pusher = ImagePusher::for_registry(registry);
    let a = pusher
        .push_random(&repository, "latest", ManifestFormat::Oci)
        .await
        .unwrap();
    let _operator = start_operator(client.clone(), &ns, config(Duration::from_secs(1))).await;
    let api = Api::<ImageStream>::namespaced(client.clone(), &ns);
    let from = format!("{}/{repository}:latest", registry.host());
    create_stream(&api, "app", vec![docker_tag("latest", &from, true)]).await;
    wait_for(&api, "app", "A", |s| {
        current_image(s, "latest") == Some(a.digest.clone())
    })
    .await;
    let b = pusher
        .push_random(&repository, "latest", ManifestFormat::Oci)
        .await
        .unwrap();
    wait_for(&api, "app", "B", |s| {
        current_image(s, "latest") == Some(b.digest.clone())
    })
    .await;
    pusher
        .put_manifest(&repository, "latest", &a.media_type, &a.manifest)
        .await
        .unwrap();
    let stream = wait_for(&api, "app", "A again", |s| history(s, "latest").len() == 3).await;
    assert_eq!(
        history(&stream, "latest"),
        [a.digest.clone(), b.digest.clone(), a.digest.clone()]
    );
}

#[tokio::test]
async fn many_streams_tracking_one_tag_cost_one_head_per_cycle() {
    let env = crate::support::env().await;
    let ns = env.namespace("import").await;
    let client = env.client().await;
    let registry = env.registry();
    let repository = unique("shared");
    let pushed = ImagePusher::for_registry(registry)
        .push_random(&repository, "latest", ManifestFormat::Oci)
        .await
        .unwrap();
    let interval = Duration::from_secs(3);
    let _operator = start_operator(client.clone(), &ns, config(interval)).await;
    let api = Api::<ImageStream>::namespaced(client.clone(), &ns);
    let from = format!("{}/{repository}:latest", registry.host());
    let streams = 5;
    for i in 0..streams {
        create_stream(
            &api,
            &format!("app{i}"),
            vec![docker_tag("latest", &from, true)],
        )
        .await;
    }
    for i in 0..streams {
        wait_for(&api, &format!("app{i}"), "every stream imported", |s| {
            current_image(s, "latest") == Some(pushed.digest.clone())
        })
        .await;
    }
    let mark = registry.requests_for(&repository).len();
    let window = Duration::from_secs(9);
    tokio::time::sleep(window).await;
    let heads = requests_since(registry, &repository, mark)
        .into_iter()
        .filter(|r| r.method == "HEAD")
        .count();
    // Three intervals fit in the window; per-stream polling would have sent about fifteen HEADs.
    let cycles = (window.as_secs() / interval.as_secs()) as usize;
    assert!(heads >= 1, "no scheduled check happened");
    assert!(
        heads <= cycles + 1,
        "{heads} HEADs for {streams} streams over {cycles} cycles"
    );
}

#[tokio::test]
async fn an_unreachable_registry_sets_one_condition_keeps_history_and_recovery_clears_it() {
    let env = crate::support::env().await;
    let ns = env.namespace("import").await;
    let client = env.client().await;
    let mut own = env
        .start_registry("flaky", &RegistryOptions::default())
        .await
        .unwrap();
    let repository = unique("flaky");
    let pushed = ImagePusher::for_registry(&own)
        .push_random(&repository, "latest", ManifestFormat::Oci)
        .await
        .unwrap();
    let _operator = start_operator(client.clone(), &ns, config(Duration::from_secs(1))).await;
    let api = Api::<ImageStream>::namespaced(client.clone(), &ns);
    let from = format!("{}/{repository}:latest", own.host());
    create_stream(&api, "app", vec![docker_tag("latest", &from, true)]).await;
    wait_for(&api, "app", "the first import", |s| {
        current_image(s, "latest").is_some()
    })
    .await;

    own.stop();
    let failed = wait_for(&api, "app", "the failure condition", |s| {
        condition_reason(s, "latest").is_some()
    })
    .await;
    assert_eq!(history(&failed, "latest"), vec![pushed.digest.clone()]);
    let conditions = &conditions(&failed, "latest");
    assert_eq!(conditions.len(), 1);
    assert_eq!(conditions[0].type_, "ImportSuccess");
    assert_eq!(conditions[0].status, "False");
    // The same failure again writes nothing.
    let version = failed.metadata.resource_version.clone().unwrap();
    assert_eq!(
        modifications_after(&api, "app", &version, Duration::from_secs(3)).await,
        0
    );

    own.restart().await.unwrap();
    let recovered = wait_for(&api, "app", "recovery", |s| {
        condition_reason(s, "latest").is_none()
    })
    .await;
    assert_eq!(history(&recovered, "latest"), vec![pushed.digest.clone()]);
}

#[tokio::test]
async fn a_missing_tag_is_not_found_and_a_protected_registry_is_unauthorized() {
    let env = crate::support::env().await;
    let ns = env.namespace("import").await;
    let client = env.client().await;
    let dir = tempfile::tempdir().unwrap();
    let htpasswd = dir.path().join("htpasswd");
    imagestream_testenv::write_htpasswd(&htpasswd, &[("alice", "secret")]).unwrap();
    let protected = env
        .start_registry(
            "basic",
            &RegistryOptions {
                htpasswd: Some(htpasswd),
                ..RegistryOptions::default()
            },
        )
        .await
        .unwrap();
    let _operator = start_operator(client.clone(), &ns, config(Duration::from_secs(900))).await;
    let api = Api::<ImageStream>::namespaced(client.clone(), &ns);
    let missing = format!("{}/{}:nope", env.registry().host(), unique("missing"));
    let locked = format!("{}/{}:v1", protected.host(), unique("locked"));
    create_stream(
        &api,
        "app",
        vec![
            docker_tag("missing", &missing, false),
            docker_tag("locked", &locked, false),
        ],
    )
    .await;
    let stream = wait_for(&api, "app", "both failures", |s| {
        condition_reason(s, "missing").is_some() && condition_reason(s, "locked").is_some()
    })
    .await;
    assert_eq!(
        condition_reason(&stream, "missing").as_deref(),
        Some("NotFound")
    );
    assert_eq!(
        condition_reason(&stream, "locked").as_deref(),
        Some("Unauthorized")
    );
    let message = conditions(&stream, "locked")[0].message.clone().unwrap();
    assert!(!message.contains("secret"), "{message}");
}

#[tokio::test]
async fn a_same_stream_alias_follows_its_source_in_the_same_write() {
    let env = crate::support::env().await;
    let ns = env.namespace("import").await;
    let client = env.client().await;
    let registry = env.registry();
    let repository = unique("alias");
    let pusher = ImagePusher::for_registry(registry);
    let a = pusher
        .push_random(&repository, "latest", ManifestFormat::Oci)
        .await
        .unwrap();
    let _operator = start_operator(client.clone(), &ns, config(Duration::from_secs(1))).await;
    let api = Api::<ImageStream>::namespaced(client.clone(), &ns);
    let from = format!("{}/{repository}:latest", registry.host());
    let mut alias = docker_tag("stable", "latest", false);
    alias.from.as_mut().unwrap().kind = Some("ImageStreamTag".into());
    alias.import_policy = None;
    create_stream(&api, "app", vec![docker_tag("latest", &from, true), alias]).await;
    let first = wait_for(&api, "app", "alias", |s| {
        current_image(s, "stable") == Some(a.digest.clone())
    })
    .await;
    let b = pusher
        .push_random(&repository, "latest", ManifestFormat::Oci)
        .await
        .unwrap();
    let version = first.metadata.resource_version.clone().unwrap();
    let moved = wait_for(&api, "app", "the move", |s| {
        current_image(s, "latest") == Some(b.digest.clone())
    })
    .await;
    // Both tags moved in the one write that recorded the move.
    assert_eq!(current_image(&moved, "stable"), Some(b.digest.clone()));
    assert_eq!(
        modifications_after(&api, "app", &version, Duration::from_secs(2)).await,
        1
    );
}

#[tokio::test]
async fn legacy_mode_picks_the_configured_platform_and_preserve_original_records_the_index() {
    let env = crate::support::env().await;
    let ns = env.namespace("import").await;
    let client = env.client().await;
    let registry = env.registry();
    let repository = unique("multi");
    let index = ImagePusher::for_registry(registry)
        .push_random_index(
            &repository,
            "v1",
            ManifestFormat::Oci,
            &TestIndex::common_platforms(),
        )
        .await
        .unwrap();
    let mut cfg = config(Duration::from_secs(900));
    cfg.default_platform = "linux/arm64".parse().unwrap();
    let _operator = start_operator(client.clone(), &ns, cfg).await;
    let api = Api::<ImageStream>::namespaced(client.clone(), &ns);
    let from = format!("{}/{repository}:v1", registry.host());
    let mut preserve = docker_tag("whole", &from, false);
    preserve.import_policy.as_mut().unwrap().import_mode = Some("PreserveOriginal".into());
    let mut s390x = docker_tag("s390x", &from, false);
    s390x.annotations.insert(
        "importer.image.openshift.io/prefer-arch".into(),
        "s390x".into(),
    );
    create_stream(
        &api,
        "app",
        vec![docker_tag("legacy", &from, false), preserve, s390x],
    )
    .await;
    let stream = wait_for(&api, "app", "three imports", |s| {
        ["legacy", "whole", "s390x"]
            .iter()
            .all(|t| current_image(s, t).is_some())
    })
    .await;
    let child = |arch: &str| {
        index
            .children
            .iter()
            .find(|c| c.platform.architecture == arch)
            .unwrap()
            .digest
            .clone()
    };
    assert_eq!(current_image(&stream, "legacy"), Some(child("arm64")));
    assert_eq!(current_image(&stream, "s390x"), Some(child("s390x")));
    assert_eq!(current_image(&stream, "whole"), Some(index.digest.clone()));
    let images = Api::<Image>::all(client);
    let index_image = images
        .get(&image_name_for_digest(&index.digest).unwrap())
        .await
        .unwrap();
    assert_eq!(index_image.docker_image_manifests.len(), 3);
    for c in &index.children {
        images
            .get(&image_name_for_digest(&c.digest).unwrap())
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn history_is_capped_and_reference_tags_record_the_literal_reference() {
    let env = crate::support::env().await;
    let ns = env.namespace("import").await;
    let client = env.client().await;
    let registry = env.registry();
    let repository = unique("cap");
    let pusher = ImagePusher::for_registry(registry);
    let mut cfg = config(Duration::from_secs(1));
    cfg.max_tag_history = 2;
    let first = pusher
        .push_random(&repository, "latest", ManifestFormat::Oci)
        .await
        .unwrap();
    let _operator = start_operator(client.clone(), &ns, cfg).await;
    let api = Api::<ImageStream>::namespaced(client.clone(), &ns);
    let from = format!("{}/{repository}:latest", registry.host());
    let mut literal = docker_tag("upstream", "docker.io/library/nginx:1.25", false);
    literal.reference = Some(true);
    create_stream(
        &api,
        "app",
        vec![docker_tag("latest", &from, true), literal],
    )
    .await;
    let mut last = first.digest.clone();
    wait_for(&api, "app", "first", |s| {
        current_image(s, "latest") == Some(last.clone())
    })
    .await;
    for _ in 0..3 {
        last = pusher
            .push_random(&repository, "latest", ManifestFormat::Oci)
            .await
            .unwrap()
            .digest;
        wait_for(&api, "app", "a move", |s| {
            current_image(s, "latest") == Some(last.clone())
        })
        .await;
    }
    let stream = api.get("app").await.unwrap();
    assert_eq!(history(&stream, "latest").len(), 2);
    let upstream = &stream
        .status
        .as_ref()
        .unwrap()
        .tag("upstream")
        .unwrap()
        .items[0];
    assert_eq!(
        upstream.docker_image_reference,
        "docker.io/library/nginx:1.25"
    );
    assert_eq!(upstream.image, "");
    // No registry was asked about the reference tag.
    assert!(
        env.registry()
            .requests()
            .iter()
            .all(|r| !r.path.contains("nginx"))
    );
}

#[tokio::test]
async fn images_no_stream_references_are_deleted_after_the_grace_period() {
    let env = crate::support::env().await;
    let ns = env.namespace("import").await;
    let client = env.client().await;
    let registry = env.registry();
    let repository = unique("gc");
    let pusher = ImagePusher::for_registry(registry);
    let keep = pusher
        .push_random(&repository, "keep", ManifestFormat::Oci)
        .await
        .unwrap();
    let dropped = pusher
        .push_random(&repository, "drop", ManifestFormat::Oci)
        .await
        .unwrap();
    let mut cfg = config(Duration::from_secs(900));
    cfg.image_gc_grace = Some(Duration::from_secs(2));
    let _operator = start_operator(client.clone(), &ns, cfg).await;
    let api = Api::<ImageStream>::namespaced(client.clone(), &ns);
    let host = registry.host();
    create_stream(
        &api,
        "app",
        vec![
            docker_tag("keep", &format!("{host}/{repository}:keep"), false),
            docker_tag("drop", &format!("{host}/{repository}:drop"), false),
        ],
    )
    .await;
    wait_for(&api, "app", "both imports", |s| {
        current_image(s, "keep").is_some() && current_image(s, "drop").is_some()
    })
    .await;
    let images = Api::<Image>::all(client.clone());
    let dropped_name = image_name_for_digest(&dropped.digest).unwrap();
    let keep_name = image_name_for_digest(&keep.digest).unwrap();
    assert!(images.get_opt(&dropped_name).await.unwrap().is_some());

    // Remove the tag: its history goes, and with it the last reference to its image.
    let patch = serde_json::json!({"spec": {"tags": [
        {"name": "keep", "from": {"kind": "DockerImage", "name": format!("{host}/{repository}:keep")},
         "importPolicy": {"insecure": true}}
    ]}});
    api.patch(
        "app",
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(&patch),
    )
    .await
    .unwrap();
    eventually(
        "the unreferenced Image to be deleted",
        Duration::from_secs(60),
        || async {
            match images.get_opt(&dropped_name).await.unwrap() {
                None => Ok(()),
                Some(_) => Err("it still exists".to_owned()),
            }
        },
    )
    .await;
    assert!(
        images.get_opt(&keep_name).await.unwrap().is_some(),
        "a referenced Image was deleted"
    );
}

#[tokio::test]
async fn a_registry_outside_the_allowlist_is_refused_without_a_request() {
    let env = crate::support::env().await;
    let ns = env.namespace("import").await;
    let client = env.client().await;
    let registry = env.registry();
    let repository = unique("denied");
    ImagePusher::for_registry(registry)
        .push_random(&repository, "v1", ManifestFormat::Oci)
        .await
        .unwrap();
    let mut cfg = config(Duration::from_secs(900));
    cfg.allowed_registries =
        imagestream_operator::domain::registry_allowlist::RegistryAllowlist::new(["quay.io"]);
    let _operator = start_operator(client.clone(), &ns, cfg).await;
    let api = Api::<ImageStream>::namespaced(client.clone(), &ns);
    let from = format!("{}/{repository}:v1", registry.host());
    create_stream(&api, "app", vec![docker_tag("v1", &from, false)]).await;
    let stream = wait_for(&api, "app", "the refusal", |s| {
        condition_reason(s, "v1").is_some()
    })
    .await;
    assert_eq!(
        condition_reason(&stream, "v1").as_deref(),
        Some("RegistryNotAllowed")
    );
    assert!(
        registry
            .requests_for(&repository)
            .iter()
            .all(|r| !r.user_agent.starts_with("imagestream-operator/")),
        "the operator contacted a registry outside the allowlist"
    );
}

/// FAKE registry answering every request with 429 and `Retry-After: <retry_after>` seconds, as
/// Docker Hub does past its pull limit: the real distribution registry cannot do this on demand.
async fn rate_limited_registry(retry_after: u32) -> fake_registry::FakeRegistry {
    fake_registry::FakeRegistry::start(move |_| {
        fake_registry::FakeReply::status(429)
            .header("retry-after", retry_after.to_string())
            .header("content-type", "application/json")
            .body(r#"{"errors":[{"code":"TOOMANYREQUESTS","message":"You have reached your pull rate limit."}]}"#)
    })
    .await
}

/// FAKE registry: the real distribution registry cannot be made to answer 429 on demand, so
/// `src/registry/fake_registry.rs` plays a rate-limited registry (429, `Retry-After: 3600`) here;
/// the API server is real. Stream `first` meets the 429 and starts the host's backoff; the first
/// import of `app` after it is refused without contacting the registry, and its distinct tag then
/// waits for the end of that backoff rather than ask each interval. The refusal is one failure:
/// the condition keeps its message and lastTransitionTime, the stream is not written again, and
/// its Warning is published once.
#[tokio::test]
async fn refusals_while_a_registry_backs_off_after_429_keep_one_condition_and_one_warning() {
    use imagestream_operator::registry::{RegistryClient, RegistryClientConfig};

    let env = crate::support::env().await;
    let ns = env.namespace("import").await;
    let client = env.client().await;
    let fake = rate_limited_registry(3600).await;
    let registry = RegistryClient::new(RegistryClientConfig::default()).expect("registry client");
    let _operator = start_operator_sharing(
        client.clone(),
        &ns,
        config(Duration::from_secs(1)),
        registry.clone(),
    )
    .await;
    let api = Api::<ImageStream>::namespaced(client.clone(), &ns);

    let first = format!("{}/library/first:latest", fake.host);
    create_stream(&api, "first", vec![docker_tag("latest", &first, false)]).await;
    wait_for(&api, "first", "the 429", |s| {
        condition_reason(s, "latest").is_some()
    })
    .await;
    let contacted = fake.count("HEAD", "/v2/");
    assert_eq!(contacted, 1, "{:?}", fake.requests());

    let app = format!("{}/library/app:latest", fake.host);
    create_stream(&api, "app", vec![docker_tag("latest", &app, true)]).await;
    let failed = wait_for(&api, "app", "the refusal", |s| {
        condition_reason(s, "latest").is_some()
    })
    .await;
    let condition = conditions(&failed, "latest")[0].clone();
    let message = condition.message.clone().unwrap();
    // The same reason as the 429 answer itself.
    assert_eq!(condition.reason.as_deref(), Some("TooManyRequests"));
    assert!(message.contains("not contacted"), "{message}");

    let refused_before = registry.metrics().wait_count(&fake.host, true);
    let version = failed.metadata.resource_version.clone().unwrap();
    assert_eq!(
        modifications_after(&api, "app", &version, Duration::from_secs(5)).await,
        0,
        "a refusal rewrote the stream"
    );
    // The distinct tag waits for the host's backoff (the registry's Retry-After) instead of being
    // asked every interval only to be refused.
    let retries = registry.metrics().wait_count(&fake.host, true) - refused_before;
    assert_eq!(
        retries, 0,
        "the tag was asked before the registry's Retry-After"
    );
    let after = api.get("app").await.unwrap();
    assert_eq!(conditions(&after, "latest"), vec![condition]);
    assert_eq!(
        fake.count("HEAD", "/v2/"),
        contacted,
        "a refusal reached the registry"
    );

    let warnings = warnings_on(&client, &ns, "app").await;
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert_eq!(warnings[0].reason.as_deref(), Some("TooManyRequests"));
    assert_eq!(
        warnings[0].note.as_deref(),
        Some(format!("tag latest: {message}").as_str())
    );
    // A second publication would have turned the Event into a series.
    assert_eq!(warnings[0].series, None, "{:?}", warnings[0]);
}

/// FAKE registry: the real distribution registry cannot be made to answer 429 on demand, so
/// `src/registry/fake_registry.rs` answers every request with 429 and `Retry-After: 6` (longer
/// than the first default retry of 5 s, and than the client's wait of 1 s here); the API server
/// is real. The import is retried when the registry allows it, not earlier: each retry meets the
/// same 429, so the condition and its Warning stay as first recorded.
#[tokio::test]
async fn a_429_is_retried_after_its_retry_after_and_stays_one_condition_and_one_warning() {
    use imagestream_operator::registry::{LimitsConfig, RegistryClient, RegistryClientConfig};

    let env = crate::support::env().await;
    let ns = env.namespace("import").await;
    let client = env.client().await;
    let fake = rate_limited_registry(6).await;
    let registry = RegistryClient::new(RegistryClientConfig {
        limits: LimitsConfig {
            max_wait: Duration::from_secs(1),
            ..LimitsConfig::default()
        },
        ..RegistryClientConfig::default()
    })
    .expect("registry client");
    let _operator = start_operator_sharing(
        client.clone(),
        &ns,
        config(Duration::from_secs(900)),
        registry.clone(),
    )
    .await;
    let api = Api::<ImageStream>::namespaced(client.clone(), &ns);
    let from = format!("{}/library/app:latest", fake.host);
    create_stream(&api, "app", vec![docker_tag("latest", &from, false)]).await;
    let failed = wait_for(&api, "app", "the 429", |s| {
        condition_reason(s, "latest").is_some()
    })
    .await;
    let condition = conditions(&failed, "latest")[0].clone();
    assert_eq!(condition.reason.as_deref(), Some("TooManyRequests"));

    let version = failed.metadata.resource_version.clone().unwrap();
    assert_eq!(
        modifications_after(&api, "app", &version, Duration::from_secs(14)).await,
        0,
        "a retry rewrote the stream"
    );
    // Asked again at 6 s and 12 s, each time answered; never refused for coming back early.
    let heads = fake.count("HEAD", "/v2/");
    assert!((2..=3).contains(&heads), "{heads} HEADs in 14 s");
    assert_eq!(registry.metrics().wait_count(&fake.host, true), 0);
    let after = api.get("app").await.unwrap();
    assert_eq!(conditions(&after, "latest"), vec![condition]);
    let warnings = warnings_on(&client, &ns, "app").await;
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert_eq!(warnings[0].series, None, "{:?}", warnings[0]);
}
