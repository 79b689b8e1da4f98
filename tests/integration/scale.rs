//! The import engine at a size that runs in CI, counted rather than timed: registry requests from
//! the real registry's access log, API writes from a client that records every call the operator
//! sends to the real API server.
//!
//! - 200 streams over 20 distinct tags and 50 triggered Deployments: the first import costs one
//!   HEAD per distinct tag, one manifest and one config GET per digest, one Image create per
//!   digest (no 409), one status write per stream and at most one Event per stream; a restart
//!   sends nothing to the registry and writes nothing.
//! - A tag moved under ten scheduled streams moves all ten with one answer.
//! - Status writes refused by RBAC are retried as writes: no registry request is repeated.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use crate::support::api_log::{ApiLog, recording_client};
use crate::support::*;
use futures::StreamExt;
use imagestream_operator::api::ImageStream;
use imagestream_testenv::TestEnv;
use imagestream_testenv::images::{ImagePusher, ManifestFormat, PushedImage};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule};
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use serde_json::json;

const STREAMS: usize = 200;
const DISTINCT: usize = 20;
const WORKLOADS: usize = 50;

/// Pushes one image to each of `count` repositories under `prefix` (tag `v1`).
async fn push_distinct(env: &TestEnv, prefix: &str, count: usize) -> Vec<PushedImage> {
    let pusher = &ImagePusher::for_registry(env.registry());
    futures::stream::iter(0..count)
        .map(|i| {
            let repository = format!("{prefix}/repo-{i}");
            async move {
                pusher
                    .push_random(&repository, "v1", ManifestFormat::Oci)
                    .await
                    .unwrap()
            }
        })
        .buffered(8)
        .collect()
        .await
}

/// Creates streams `app-0`… each with one tag `v1` tracking `<prefix>/repo-<i % distinct>:v1`.
async fn create_streams(
    env: &TestEnv,
    api: &Api<ImageStream>,
    prefix: &str,
    streams: usize,
    distinct: usize,
    scheduled: bool,
) {
    let host = env.registry().host().to_owned();
    futures::stream::iter(0..streams)
        .for_each_concurrent(16, |i| {
            let from = format!("{host}/{prefix}/repo-{}:v1", i % distinct);
            async move {
                create_stream(
                    api,
                    &format!("app-{i}"),
                    vec![docker_tag("v1", &from, scheduled)],
                )
                .await;
            }
        })
        .await;
}

/// The streams of `api` that have an image on every tag, by name, with their current image.
async fn imported(api: &Api<ImageStream>) -> HashMap<String, String> {
    api.list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|s| {
            let image = current_image(&s, "v1")?;
            Some((s.metadata.name.clone().unwrap(), image))
        })
        .collect()
}

/// The operator's registry requests for the repositories under `prefix`, by method and kind.
fn registry_counts(env: &TestEnv, prefix: &str) -> (usize, usize, usize) {
    let requests: Vec<_> = env
        .registry()
        .requests_for(prefix)
        .into_iter()
        .filter(|r| r.user_agent.starts_with("imagestream-operator/"))
        .collect();
    let heads = requests.iter().filter(|r| r.method == "HEAD").count();
    let manifests = requests
        .iter()
        .filter(|r| r.method == "GET" && r.path.contains("/manifests/"))
        .count();
    let blobs = requests
        .iter()
        .filter(|r| r.method == "GET" && r.path.contains("/blobs/"))
        .count();
    (heads, manifests, blobs)
}

/// Waits until the operator's own stream watch is open: from then on it is running.
async fn wait_until_watching(log: &ApiLog) {
    eventually(
        "the operator's watch of image streams",
        Duration::from_secs(30),
        || async {
            let watching = log
                .calls()
                .iter()
                .any(|c| c.watch && c.path.ends_with("/imagestreams") && c.status == 200);
            watching
                .then_some(())
                .ok_or_else(|| "no watch yet".to_owned())
        },
    )
    .await;
}

#[tokio::test]
async fn two_hundred_streams_over_twenty_tags_cost_one_request_per_tag_and_one_write_per_stream() {
    let env = crate::support::env().await;
    let ns = env.namespace("scale").await;
    let client = env.client().await;
    let prefix = unique("scale");
    let pushed = push_distinct(env, &prefix, DISTINCT).await;
    let api = Api::<ImageStream>::namespaced(client.clone(), &ns);
    create_streams(env, &api, &prefix, STREAMS, DISTINCT, false).await;
    let deployments = Api::<Deployment>::namespaced(client.clone(), &ns);
    for w in 0..WORKLOADS {
        deployments
            .create(
                &PostParams::default(),
                &triggered_deployment(&format!("web-{w}"), &format!("app-{w}")),
            )
            .await
            .unwrap();
    }

    let (operator_client, log) = recording_client(env.kubeconfig()).await;
    let operator = start_operator(operator_client, &ns, config(Duration::from_secs(900))).await;
    let all = eventually(
        "every stream imported",
        Duration::from_secs(120),
        || async {
            let done = imported(&api).await;
            if done.len() == STREAMS {
                Ok(done)
            } else {
                Err(format!("{} of {STREAMS} imported", done.len()))
            }
        },
    )
    .await;
    for (name, image) in &all {
        let i: usize = name.trim_start_matches("app-").parse().unwrap();
        assert_eq!(image, &pushed[i % DISTINCT].digest, "{name}");
    }
    eventually(
        "every Deployment on its stream's digest",
        Duration::from_secs(60),
        || async {
            let rolled = deployments
                .list(&Default::default())
                .await
                .unwrap()
                .items
                .iter()
                .filter(|d| {
                    let image = d
                        .spec
                        .as_ref()
                        .unwrap()
                        .template
                        .spec
                        .as_ref()
                        .unwrap()
                        .containers[0]
                        .image
                        .clone()
                        .unwrap_or_default();
                    image.contains("@sha256:")
                })
                .count();
            (rolled == WORKLOADS)
                .then_some(())
                .ok_or(format!("{rolled} of {WORKLOADS} patched"))
        },
    )
    .await;
    // Let Events and trigger writes that are still in flight land before counting.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let (heads, manifests, blobs) = registry_counts(env, &prefix);
    assert_eq!(heads, DISTINCT, "one HEAD per distinct tag");
    assert!(
        manifests <= DISTINCT,
        "{manifests} manifest GETs for {DISTINCT} digests"
    );
    assert!(
        blobs <= DISTINCT,
        "{blobs} config GETs for {DISTINCT} digests"
    );

    let writes = log.writes();
    let image_creates: Vec<_> = writes
        .iter()
        .filter(|c| c.method == "POST" && c.path.ends_with("/images"))
        .collect();
    let digests: BTreeSet<&str> = pushed.iter().map(|p| p.digest.as_str()).collect();
    assert_eq!(digests.len(), DISTINCT);
    assert_eq!(image_creates.len(), DISTINCT, "one Image create per digest");
    assert!(
        image_creates.iter().all(|c| c.status == 201),
        "an Image create was refused: {image_creates:?}"
    );
    let status_writes: Vec<_> = writes
        .iter()
        .filter(|c| c.method == "PATCH" && c.path.ends_with("/status"))
        .collect();
    assert_eq!(status_writes.len(), STREAMS, "one status write per stream");
    let status_paths: BTreeSet<&str> = status_writes.iter().map(|c| c.path.as_str()).collect();
    assert_eq!(status_paths.len(), STREAMS);
    let deployment_writes = writes
        .iter()
        .filter(|c| c.method == "PATCH" && c.path.contains("/deployments/"))
        .count();
    assert_eq!(deployment_writes, WORKLOADS, "one write per workload");
    // Events about this test's streams and workloads; mirror objects of tests running beside
    // this one are cluster-scoped, and their Events go to `default`.
    let events_here = format!("/namespaces/{ns}/events");
    let events = writes
        .iter()
        .filter(|c| c.path.contains(&events_here))
        .count();
    if events > STREAMS + WORKLOADS {
        let mut reasons: HashMap<String, usize> = HashMap::new();
        for reason in event_reasons(&client, &ns).await {
            *reasons.entry(reason).or_default() += 1;
        }
        panic!(
            "{events} Event writes for {STREAMS} streams and {WORKLOADS} workloads: {reasons:?}; {:?}",
            writes
                .iter()
                .filter(|c| c.path.contains("/events"))
                .map(|c| (&c.method, c.status))
                .collect::<Vec<_>>()
        );
    }
    let refused: Vec<_> = writes
        .iter()
        .filter(|c| c.status >= 300 && !c.path.contains("/namespaces/default/events"))
        .collect();
    assert!(refused.is_empty(), "refused writes: {refused:?}");
    let elsewhere = writes
        .iter()
        .filter(|c| c.path.contains("/namespaces/default/events"))
        .count();
    assert_eq!(
        writes.len(),
        DISTINCT + STREAMS + WORKLOADS + events + elsewhere,
        "only Images, statuses, workloads and Events are written"
    );

    // A restart: nothing to import, nothing to write.
    drop(operator);
    let before = registry_counts(env, &prefix);
    let (restarted_client, restarted) = recording_client(env.kubeconfig()).await;
    let _operator = start_operator(restarted_client, &ns, config(Duration::from_secs(900))).await;
    wait_until_watching(&restarted).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        registry_counts(env, &prefix),
        before,
        "a restart asked a registry"
    );
    let restart_writes: Vec<_> = restarted
        .writes()
        .into_iter()
        .filter(|c| !c.path.contains("/namespaces/default/events"))
        .collect();
    assert_eq!(restart_writes, Vec::new(), "a restart wrote");
}

#[tokio::test]
async fn a_restarted_operator_polls_scheduled_tags_at_their_phase_again() {
    let env = crate::support::env().await;
    let ns = env.namespace("scale").await;
    let client = env.client().await;
    let prefix = unique("restarted");
    let first = push_distinct(env, &prefix, 1).await.remove(0);
    let api = Api::<ImageStream>::namespaced(client.clone(), &ns);
    create_streams(env, &api, &prefix, 2, 1, true).await;
    let operator = start_operator(client.clone(), &ns, config(Duration::from_secs(2))).await;
    eventually("two imports", Duration::from_secs(60), || async {
        let done = imported(&api).await;
        (done.len() == 2 && done.values().all(|d| *d == first.digest))
            .then_some(())
            .ok_or(format!("{done:?}"))
    })
    .await;
    drop(operator);
    let (restarted_client, restarted) = recording_client(env.kubeconfig()).await;
    let _operator = start_operator(restarted_client, &ns, config(Duration::from_secs(2))).await;
    wait_until_watching(&restarted).await;

    // Nothing needs an answer after the restart: only the schedule asks, and it finds the move.
    let moved = ImagePusher::for_registry(env.registry())
        .push_random(&format!("{prefix}/repo-0"), "v1", ManifestFormat::Oci)
        .await
        .unwrap();
    eventually("both streams moved", Duration::from_secs(30), || async {
        let done = imported(&api).await;
        (done.len() == 2 && done.values().all(|d| *d == moved.digest))
            .then_some(())
            .ok_or(format!("{done:?}"))
    })
    .await;
}

#[tokio::test]
async fn a_tag_moved_under_ten_scheduled_streams_moves_all_ten_with_one_answer() {
    let env = crate::support::env().await;
    let ns = env.namespace("scale").await;
    let client = env.client().await;
    let prefix = unique("shared");
    let first = push_distinct(env, &prefix, 1).await.remove(0);
    let api = Api::<ImageStream>::namespaced(client.clone(), &ns);
    create_streams(env, &api, &prefix, 10, 1, true).await;
    let _operator = start_operator(client.clone(), &ns, config(Duration::from_secs(2))).await;
    eventually("ten imports", Duration::from_secs(60), || async {
        let done = imported(&api).await;
        (done.len() == 10 && done.values().all(|d| *d == first.digest))
            .then_some(())
            .ok_or(format!("{done:?}"))
    })
    .await;

    let moved = ImagePusher::for_registry(env.registry())
        .push_random(&format!("{prefix}/repo-0"), "v1", ManifestFormat::Oci)
        .await
        .unwrap();
    let streams = eventually("ten moves", Duration::from_secs(60), || async {
        let streams = api.list(&Default::default()).await.unwrap().items;
        let moved_count = streams
            .iter()
            .filter(|s| current_image(s, "v1").as_deref() == Some(moved.digest.as_str()))
            .count();
        (moved_count == 10)
            .then_some(streams.clone())
            .ok_or(format!("{moved_count} of 10 moved"))
    })
    .await;
    // One answer: the same `created` on every stream's new event, and the new digest fetched once.
    let created: BTreeSet<String> = streams
        .iter()
        .map(|s| {
            let event = &s.status.as_ref().unwrap().tag("v1").unwrap().items[0];
            serde_json::to_string(&event.created).unwrap()
        })
        .collect();
    assert_eq!(created.len(), 1, "{created:?}");
    let manifest_gets = env
        .registry()
        .requests_for(&format!("{prefix}/repo-0"))
        .into_iter()
        .filter(|r| r.method == "GET" && r.path.ends_with(&format!("/manifests/{}", moved.digest)))
        .count();
    assert_eq!(manifest_gets, 1);
}

/// The rules of deploy/'s ClusterRole, with or without the status write.
fn operator_rules(with_status: bool) -> Vec<PolicyRule> {
    let rbac =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/rbac.yaml")).unwrap();
    let first = rbac.split("\n---\n").next().unwrap();
    let role: ClusterRole = serde_saphyr::from_str(first).unwrap();
    role.rules
        .unwrap()
        .into_iter()
        .filter(|rule| {
            with_status
                || !rule
                    .resources
                    .as_ref()
                    .is_some_and(|r| r.iter().any(|r| r == "imagestreams/status"))
        })
        .collect()
}

#[tokio::test]
async fn status_writes_refused_by_rbac_are_retried_as_writes_without_asking_a_registry_again() {
    let env = crate::support::env().await;
    let ns = env.namespace("scale").await;
    let client = env.client().await;
    let prefix = unique("refused");
    push_distinct(env, &prefix, 2).await;
    let api = Api::<ImageStream>::namespaced(client.clone(), &ns);
    create_streams(env, &api, &prefix, 20, 2, false).await;

    // The operator's rights as deploy/ grants them, but for the status write.
    let name = format!("scale-{ns}");
    Api::<ServiceAccount>::namespaced(client.clone(), &ns)
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "operator"}})).unwrap(),
        )
        .await
        .unwrap();
    let roles = Api::<ClusterRole>::all(client.clone());
    let role = |with_status| ClusterRole {
        metadata: kube::api::ObjectMeta {
            name: Some(name.clone()),
            ..Default::default()
        },
        rules: Some(operator_rules(with_status)),
        ..Default::default()
    };
    roles
        .create(&PostParams::default(), &role(false))
        .await
        .unwrap();
    let bindings = Api::<ClusterRoleBinding>::all(client.clone());
    bindings
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": name},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
                "subjects": [{"kind": "ServiceAccount", "name": "operator", "namespace": ns}],
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = service_account_kubeconfig(env, &ns, "operator", dir.path()).await;
    let (operator_client, log) = recording_client(&kubeconfig).await;
    let _operator = start_operator(operator_client, &ns, config(Duration::from_secs(900))).await;

    // Every stream's write is refused, and refused again on retry.
    let refused = |log: &ApiLog| {
        log.calls()
            .iter()
            .filter(|c| c.method == "PATCH" && c.path.ends_with("/status") && c.status == 403)
            .count()
    };
    eventually(
        "every status write refused twice",
        Duration::from_secs(60),
        || async {
            let count = refused(&log);
            (count >= 40)
                .then_some(())
                .ok_or(format!("{count} refused writes"))
        },
    )
    .await;
    let during = registry_counts(env, &prefix);
    assert_eq!(during.0, 2, "one HEAD per distinct tag");

    roles
        .replace(&name, &PostParams::default(), &{
            let mut granted = role(true);
            granted.metadata.resource_version =
                roles.get(&name).await.unwrap().metadata.resource_version;
            granted
        })
        .await
        .unwrap();
    eventually(
        "every stream imported",
        Duration::from_secs(120),
        || async {
            let done = imported(&api).await.len();
            (done == 20).then_some(()).ok_or(format!("{done} of 20"))
        },
    )
    .await;
    assert_eq!(
        registry_counts(env, &prefix),
        during,
        "a retried write asked the registry again"
    );
    bindings
        .delete(&name, &DeleteParams::default())
        .await
        .unwrap();
    roles.delete(&name, &DeleteParams::default()).await.unwrap();
}
