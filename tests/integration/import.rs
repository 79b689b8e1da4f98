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

use crate::fake_registry;

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

// Limits that protect what tenants share (issue 14, items 1 and 6): hand-written manifests over
// real blobs in the real registry, and the Images the real API server stores or refuses.

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// A blob as a hand-written manifest names it: digest and the size the manifest claims.
#[derive(Clone)]
struct Blob {
    digest: String,
    size: i64,
}

/// Pushes a small image config blob to `repository`.
async fn push_config(pusher: &ImagePusher, repository: &str) -> Blob {
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Env": ["PATH=/usr/bin"]},
        "rootfs": {"type": "layers", "diff_ids": []},
    }))
    .unwrap();
    Blob {
        digest: pusher.push_blob(repository, &config).await.unwrap(),
        size: config.len() as i64,
    }
}

/// Pushes `count` distinct small layer blobs to `repository`.
async fn push_layers(pusher: &ImagePusher, repository: &str, count: usize) -> Vec<Blob> {
    let mut layers = Vec::new();
    for n in 0..count {
        let bytes = format!("layer {n} of {repository}").into_bytes();
        layers.push(Blob {
            digest: pusher.push_blob(repository, &bytes).await.unwrap(),
            size: bytes.len() as i64,
        });
    }
    layers
}

/// An OCI image manifest over `config` and `layers` (with the sizes they claim); `name` goes into
/// an annotation, so manifests over the same blobs get distinct digests.
fn image_manifest(config: &Blob, layers: &[Blob], name: &str) -> Vec<u8> {
    let layers: Vec<serde_json::Value> = layers
        .iter()
        .map(|l| serde_json::json!({"mediaType": OCI_LAYER, "digest": l.digest, "size": l.size}))
        .collect();
    serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config.digest, "size": config.size},
        "layers": layers,
        "annotations": {"org.example.name": name},
    }))
    .unwrap()
}

/// Pushes `manifest` (of `media_type`) by its digest, and under `tag` when given; returns the
/// digest and the manifest's size.
async fn push_manifest(
    pusher: &ImagePusher,
    repository: &str,
    tag: Option<&str>,
    media_type: &str,
    manifest: &[u8],
) -> Blob {
    let digest = imagestream_testenv::images::sha256_digest(manifest);
    let reference = tag.unwrap_or(&digest);
    let pushed = pusher
        .put_manifest(repository, reference, media_type, manifest)
        .await
        .unwrap();
    assert_eq!(pushed, digest);
    Blob {
        digest,
        size: manifest.len() as i64,
    }
}

/// Pushes an OCI index over `children` (all linux/amd64) as `repository:tag`.
async fn push_index(pusher: &ImagePusher, repository: &str, tag: &str, children: &[Blob]) -> Blob {
    let entries: Vec<serde_json::Value> = children
        .iter()
        .map(|c| {
            serde_json::json!({
                "mediaType": OCI_MANIFEST,
                "digest": c.digest,
                "size": c.size,
                "platform": {"architecture": "amd64", "os": "linux"},
            })
        })
        .collect();
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": entries,
    }))
    .unwrap();
    push_manifest(pusher, repository, Some(tag), OCI_INDEX, &index).await
}

/// Pushes `count` child manifests that share one config blob and one layer blob.
async fn push_children_sharing_blobs(
    pusher: &ImagePusher,
    repository: &str,
    count: usize,
) -> (Blob, Vec<Blob>) {
    let config = push_config(pusher, repository).await;
    let layers = push_layers(pusher, repository, 1).await;
    let mut children = Vec::new();
    for n in 0..count {
        let manifest = image_manifest(&config, &layers, &format!("child-{n}"));
        children.push(push_manifest(pusher, repository, None, OCI_MANIFEST, &manifest).await);
    }
    (config, children)
}

/// The requests the operator sent for `repository` (the pusher's agent is
/// `imagestream-operator-testenv`, the operator's `imagestream-operator/<version>`).
fn operator_requests(
    registry: &imagestream_testenv::Registry,
    repository: &str,
) -> Vec<RegistryRequest> {
    registry
        .requests_for(repository)
        .into_iter()
        .filter(|r| r.user_agent.starts_with("imagestream-operator/"))
        .collect()
}

/// `METHOD path-after-the-repository` of each request, for readable assertions.
fn request_lines(requests: &[RegistryRequest], repository: &str) -> Vec<String> {
    let prefix = format!("/v2/{repository}/");
    requests
        .iter()
        .map(|r| format!("{} {}", r.method, r.path.trim_start_matches(&prefix)))
        .collect()
}

/// Which of `digests` have an Image.
async fn existing_images(client: &kube::Client, digests: &[&str]) -> Vec<String> {
    let images = Api::<Image>::all(client.clone());
    let mut existing = Vec::new();
    for digest in digests {
        let name = image_name_for_digest(digest).unwrap();
        if images.get_opt(&name).await.unwrap().is_some() {
            existing.push((*digest).to_owned());
        }
    }
    existing
}

/// A `PreserveOriginal` tag of `from`.
fn preserve_original_tag(
    name: &str,
    from: &str,
) -> imagestream_operator::api::image_stream::TagReference {
    let mut tag = docker_tag(name, from, false);
    tag.import_policy.as_mut().unwrap().import_mode = Some("PreserveOriginal".into());
    tag
}

/// Asks for an immediate import of `name` with a new value of the annotation, and waits until
/// the stream records that it served it.
async fn request_import_and_wait(api: &Api<ImageStream>, name: &str) {
    use imagestream_operator::controller::IMPORT_REQUESTED_ANNOTATION;
    let value = format!("request-{:08x}", rand::random::<u32>());
    let patch = serde_json::json!({ "metadata": { "annotations": { IMPORT_REQUESTED_ANNOTATION: value } } });
    api.patch(
        name,
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(&patch),
    )
    .await
    .unwrap();
    wait_for(api, name, "the import request to be served", |s| {
        s.status
            .as_ref()
            .and_then(|s| s.served_import_request.as_deref())
            == Some(value.as_str())
    })
    .await;
}

#[tokio::test]
async fn a_manifest_whose_layer_sizes_overflow_is_a_permanent_invalid_response_and_other_streams_still_import()
 {
    let env = crate::support::env().await;
    let ns = env.namespace("import").await;
    let client = env.client().await;
    let registry = env.registry();
    let pusher = ImagePusher::for_registry(registry);
    let repository = unique("overflow");
    let config = push_config(&pusher, &repository).await;
    // Three real layers whose manifest claims 2^62 bytes each: the sum overflows an i64.
    let layers: Vec<Blob> = push_layers(&pusher, &repository, 3)
        .await
        .into_iter()
        .map(|l| Blob { size: 1 << 62, ..l })
        .collect();
    let manifest = image_manifest(&config, &layers, "overflow");
    let bad = push_manifest(&pusher, &repository, Some("v1"), OCI_MANIFEST, &manifest).await;
    let _operator = start_operator(client.clone(), &ns, config_with_interval()).await;
    let api = Api::<ImageStream>::namespaced(client.clone(), &ns);
    let from = format!("{}/{repository}:v1", registry.host());
    create_stream(&api, "bad", vec![docker_tag("v1", &from, false)]).await;

    let stream = wait_for(&api, "bad", "the overflowing manifest to fail", |s| {
        condition_reason(s, "v1").is_some()
    })
    .await;
    // Not InternalError: nothing panicked, the manifest was judged invalid.
    assert_eq!(
        condition_reason(&stream, "v1").as_deref(),
        Some("InvalidResponse")
    );
    let message = condition_message(&stream, "v1");
    assert!(
        message.contains(&bad.digest)
            && message.contains(
                "the sizes of its config and layers add up to more than 9223372036854775807 bytes"
            ),
        "{message}"
    );
    assert!(history(&stream, "v1").is_empty());
    assert!(existing_images(&client, &[&bad.digest]).await.is_empty());

    // The same operator goes on importing another stream.
    let good_repository = unique("overflow-neighbour");
    let good = pusher
        .push_random(&good_repository, "v1", ManifestFormat::Oci)
        .await
        .unwrap();
    let good_from = format!("{}/{good_repository}:v1", registry.host());
    create_stream(&api, "good", vec![docker_tag("v1", &good_from, false)]).await;
    wait_for(&api, "good", "the neighbour's import", |s| {
        current_image(s, "v1") == Some(good.digest.clone())
    })
    .await;

    // A permanent failure is not retried: the bad manifest was read once.
    let gets = operator_requests(registry, &repository)
        .into_iter()
        .filter(|r| r.method == "GET")
        .count();
    assert_eq!(
        gets,
        1,
        "{:?}",
        request_lines(&operator_requests(registry, &repository), &repository)
    );
}

/// An interval long enough that only first imports and requests ask the registry.
fn config_with_interval() -> imagestream_operator::controller::ControllerConfig {
    config(Duration::from_secs(900))
}

#[tokio::test]
async fn a_manifest_list_over_the_children_bound_is_refused_with_no_image_and_two_requests() {
    let env = crate::support::env().await;
    let ns = env.namespace("import").await;
    let client = env.client().await;
    let registry = env.registry();
    let pusher = ImagePusher::for_registry(registry);
    let repository = unique("wide-list");
    let (_, children) = push_children_sharing_blobs(&pusher, &repository, 100).await;
    let list = push_index(&pusher, &repository, "v1", &children).await;
    let mut cfg = config_with_interval();
    cfg.import_limits.max_manifest_list_children = 10;
    let (_operator, metrics) = start_operator_reporting(client.clone(), &ns, cfg).await;
    let api = Api::<ImageStream>::namespaced(client.clone(), &ns);
    let from = format!("{}/{repository}:v1", registry.host());
    create_stream(&api, "wide", vec![preserve_original_tag("whole", &from)]).await;

    let stream = wait_for(&api, "wide", "the list to be refused", |s| {
        condition_reason(s, "whole").is_some()
    })
    .await;
    assert_eq!(
        condition_reason(&stream, "whole").as_deref(),
        Some("ManifestListTooLarge")
    );
    assert_eq!(
        condition_message(&stream, "whole"),
        format!(
            "the manifest list {}/{repository}@{} has 100 images, more than the 10 an Image may \
             record (--max-manifest-list-children); no Image was created",
            registry.host(),
            list.digest
        )
    );
    let mut digests: Vec<&str> = children.iter().map(|c| c.digest.as_str()).collect();
    digests.push(&list.digest);
    assert_eq!(
        existing_images(&client, &digests).await,
        Vec::<String>::new()
    );
    // One HEAD of the tag and one GET of the list; no child was read.
    assert_eq!(
        request_lines(&operator_requests(registry, &repository), &repository),
        [
            "HEAD manifests/v1".to_owned(),
            format!("GET manifests/{}", list.digest)
        ]
    );
    assert_eq!(metrics.import_refusal_count("ManifestListTooLarge"), 1);

    // Asked again, the refusal is remembered for the digest: one HEAD, no download.
    request_import_and_wait(&api, "wide").await;
    let requests = request_lines(&operator_requests(registry, &repository), &repository);
    assert_eq!(requests.len(), 3, "{requests:?}");
    assert_eq!(requests[2], "HEAD manifests/v1");
    let stream = api.get("wide").await.unwrap();
    assert_eq!(
        condition_reason(&stream, "whole").as_deref(),
        Some("ManifestListTooLarge")
    );
    assert_eq!(metrics.import_refusal_count("ManifestListTooLarge"), 1);
}

#[tokio::test]
async fn children_of_a_list_sharing_one_config_blob_fetch_it_once() {
    let env = crate::support::env().await;
    let ns = env.namespace("import").await;
    let client = env.client().await;
    let registry = env.registry();
    let pusher = ImagePusher::for_registry(registry);
    let repository = unique("shared-config");
    let (config, children) = push_children_sharing_blobs(&pusher, &repository, 6).await;
    let list = push_index(&pusher, &repository, "v1", &children).await;
    let _operator = start_operator(client.clone(), &ns, config_with_interval()).await;
    let api = Api::<ImageStream>::namespaced(client.clone(), &ns);
    let from = format!("{}/{repository}:v1", registry.host());
    create_stream(&api, "shared", vec![preserve_original_tag("whole", &from)]).await;

    wait_for(&api, "shared", "the list import", |s| {
        current_image(s, "whole") == Some(list.digest.clone())
    })
    .await;
    let mut digests: Vec<&str> = children.iter().map(|c| c.digest.as_str()).collect();
    digests.push(&list.digest);
    assert_eq!(existing_images(&client, &digests).await.len(), 7);
    let requests = request_lines(&operator_requests(registry, &repository), &repository);
    let config_gets = requests
        .iter()
        .filter(|r| **r == format!("GET blobs/{}", config.digest))
        .count();
    assert_eq!(config_gets, 1, "{requests:?}");
    for child in &children {
        let gets = requests
            .iter()
            .filter(|r| **r == format!("GET manifests/{}", child.digest))
            .count();
        assert_eq!(gets, 1, "{}: {requests:?}", child.digest);
    }
    // HEAD, the list, six children, one config.
    assert_eq!(requests.len(), 9, "{requests:?}");
}

#[tokio::test]
async fn an_image_over_the_layer_bound_is_refused_alone_or_in_a_list_and_creates_no_image() {
    let env = crate::support::env().await;
    let ns = env.namespace("import").await;
    let client = env.client().await;
    let registry = env.registry();
    let pusher = ImagePusher::for_registry(registry);
    let repository = unique("layers");
    let config = push_config(&pusher, &repository).await;
    let layers = push_layers(&pusher, &repository, 6).await;
    let deep = image_manifest(&config, &layers, "deep");
    let deep = push_manifest(&pusher, &repository, Some("deep"), OCI_MANIFEST, &deep).await;
    let mut children = Vec::new();
    for n in 0..2 {
        let shallow = image_manifest(&config, &layers[..2], &format!("shallow-{n}"));
        children.push(push_manifest(&pusher, &repository, None, OCI_MANIFEST, &shallow).await);
    }
    children.push(deep.clone());
    let list = push_index(&pusher, &repository, "list", &children).await;
    let mut cfg = config_with_interval();
    cfg.import_limits.max_image_layers = 5;
    let (_operator, metrics) = start_operator_reporting(client.clone(), &ns, cfg).await;
    let api = Api::<ImageStream>::namespaced(client.clone(), &ns);
    let host = registry.host();
    create_stream(
        &api,
        "deep",
        vec![docker_tag(
            "v1",
            &format!("{host}/{repository}:deep"),
            false,
        )],
    )
    .await;

    let stream = wait_for(&api, "deep", "the deep image to be refused", |s| {
        condition_reason(s, "v1").is_some()
    })
    .await;
    assert_eq!(
        condition_reason(&stream, "v1").as_deref(),
        Some("TooManyLayers")
    );
    let deep_shown = format!("{host}/{repository}@{}", deep.digest);
    assert_eq!(
        condition_message(&stream, "v1"),
        format!(
            "the image {deep_shown} has 6 layers, more than the 5 an Image may record \
             (--max-image-layers); no Image was created"
        )
    );
    // The manifest was read; its config was not.
    assert_eq!(
        request_lines(&operator_requests(registry, &repository), &repository),
        [
            "HEAD manifests/deep".to_owned(),
            format!("GET manifests/{}", deep.digest)
        ]
    );

    // In a PreserveOriginal list, the deep child refuses the whole list before any Image exists.
    let mark = operator_requests(registry, &repository).len();
    create_stream(
        &api,
        "list",
        vec![preserve_original_tag(
            "whole",
            &format!("{host}/{repository}:list"),
        )],
    )
    .await;
    let stream = wait_for(&api, "list", "the list to be refused", |s| {
        condition_reason(s, "whole").is_some()
    })
    .await;
    assert_eq!(
        condition_reason(&stream, "whole").as_deref(),
        Some("TooManyLayers")
    );
    assert_eq!(
        condition_message(&stream, "whole"),
        format!(
            "the manifest list {host}/{repository}@{} is not imported: the image {deep_shown} \
             has 6 layers, more than the 5 an Image may record (--max-image-layers); no Image \
             was created",
            list.digest
        )
    );
    let mut digests: Vec<&str> = children.iter().map(|c| c.digest.as_str()).collect();
    digests.push(&list.digest);
    assert_eq!(
        existing_images(&client, &digests).await,
        Vec::<String>::new()
    );
    // The list and the two shallow children were read (the deep one is remembered as refused);
    // no config was.
    let requests = request_lines(
        &operator_requests(registry, &repository)[mark..],
        &repository,
    );
    assert_eq!(
        requests,
        [
            "HEAD manifests/list".to_owned(),
            format!("GET manifests/{}", list.digest),
            format!("GET manifests/{}", children[0].digest),
            format!("GET manifests/{}", children[1].digest),
        ]
    );
    assert_eq!(metrics.import_refusal_count("TooManyLayers"), 2);
}

#[tokio::test]
async fn an_image_too_large_for_etcd_is_refused_as_image_too_large_and_not_downloaded_again_each_interval()
 {
    let env = crate::support::env().await;
    let ns = env.namespace("import").await;
    let client = env.client().await;
    let registry = env.registry();
    let pusher = ImagePusher::for_registry(registry);
    let repository = unique("huge");
    let config_blob = push_config(&pusher, &repository).await;
    // One real layer listed 15,000 times: a 2 MB manifest whose Image (every listed layer is
    // recorded) exceeds etcd's 1.5 MiB request limit.
    let layer = push_layers(&pusher, &repository, 1).await.remove(0);
    let layers = vec![layer; 15_000];
    let manifest = image_manifest(&config_blob, &layers, "huge");
    assert!(manifest.len() > 1_900_000, "{}", manifest.len());
    let huge = push_manifest(&pusher, &repository, Some("v1"), OCI_MANIFEST, &manifest).await;
    let mut cfg = config(Duration::from_secs(1));
    cfg.import_limits.max_image_layers = 20_000;
    let (_operator, metrics) = start_operator_reporting(client.clone(), &ns, cfg).await;
    let api = Api::<ImageStream>::namespaced(client.clone(), &ns);
    let from = format!("{}/{repository}:v1", registry.host());
    create_stream(&api, "huge", vec![docker_tag("v1", &from, true)]).await;

    let stream = wait_for(&api, "huge", "the huge image to be refused", |s| {
        condition_reason(s, "v1").is_some()
    })
    .await;
    assert_eq!(
        condition_reason(&stream, "v1").as_deref(),
        Some("ImageTooLarge")
    );
    let message = condition_message(&stream, "v1");
    assert!(
        message.starts_with(&format!(
            "the Image of {}/{repository}@{} is too large for the API server to store: ",
            registry.host(),
            huge.digest
        )),
        "{message}"
    );
    assert!(existing_images(&client, &[&huge.digest]).await.is_empty());

    // A smaller one passes the API server's gRPC limit (2 MiB) and is refused by etcd's own
    // (1.5 MiB): the same reason.
    let etcd_repository = unique("huge-etcd");
    let config_blob = push_config(&pusher, &etcd_repository).await;
    let layer = push_layers(&pusher, &etcd_repository, 1).await.remove(0);
    let manifest = image_manifest(&config_blob, &vec![layer; 12_000], "etcd");
    let for_etcd = push_manifest(
        &pusher,
        &etcd_repository,
        Some("v1"),
        OCI_MANIFEST,
        &manifest,
    )
    .await;
    let from = format!("{}/{etcd_repository}:v1", registry.host());
    create_stream(&api, "etcd", vec![docker_tag("v1", &from, false)]).await;
    let refused = wait_for(&api, "etcd", "etcd to refuse the Image", |s| {
        condition_reason(s, "v1").is_some()
    })
    .await;
    assert_eq!(
        condition_reason(&refused, "v1").as_deref(),
        Some("ImageTooLarge")
    );
    let message = condition_message(&refused, "v1");
    assert!(
        message.ends_with("etcdserver: request is too large"),
        "{message}"
    );
    assert!(
        existing_images(&client, &[&for_etcd.digest])
            .await
            .is_empty()
    );

    // Scheduled every second: each interval asks with a HEAD, and the refused digest is not
    // downloaded again, nor is the stream written.
    let mark = operator_requests(registry, &repository).len();
    let version = stream.metadata.resource_version.clone().unwrap();
    let writes = modifications_after(&api, "huge", &version, Duration::from_secs(4)).await;
    assert_eq!(writes, 0, "a remembered refusal wrote the stream");
    let after = request_lines(
        &operator_requests(registry, &repository)[mark..],
        &repository,
    );
    assert!(after.len() >= 2, "expected scheduled HEADs: {after:?}");
    assert!(
        after.iter().all(|r| r == "HEAD manifests/v1"),
        "the refused digest was downloaded again: {after:?}"
    );
    assert_eq!(metrics.import_refusal_count("ImageTooLarge"), 2);
}
