//! The operator's in-memory caches against the real apiserver and registry: what a stream, its
//! manifest-list tag and a pull secret leave in memory is forgotten once they are deleted, as the
//! `imagestream_operator_remembered_entries` gauges show.

use std::time::Duration;

use crate::support::*;
use imagestream_operator::api::ImageStream;
use imagestream_operator::metrics::{Metrics, REMEMBERED_CACHES};
use imagestream_testenv::images::{ImagePusher, ManifestFormat, TestIndex};
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use serde_json::json;

/// Waits until every cache's gauge satisfies `expected`.
async fn wait_for_caches(metrics: &Metrics, what: &str, expected: impl Fn(&str, i64) -> bool) {
    eventually(what, Duration::from_secs(30), || async {
        let sizes: Vec<(&str, i64)> = REMEMBERED_CACHES
            .iter()
            .map(|cache| (*cache, metrics.remembered(cache)))
            .collect();
        if sizes.iter().all(|(cache, size)| expected(cache, *size)) {
            return Ok(());
        }
        Err(format!("cache sizes {sizes:?}"))
    })
    .await;
}

#[tokio::test]
async fn what_a_deleted_stream_and_secret_left_in_memory_is_forgotten() {
    let env = crate::support::env().await;
    let ns = env.namespace("housekeeping").await;
    let client = env.client().await;
    let registry = env.registry();
    let repository = unique("remembered");
    ImagePusher::for_registry(registry)
        .push_random_index(
            &repository,
            "v1",
            ManifestFormat::Oci,
            &TestIndex::common_platforms(),
        )
        .await
        .unwrap();
    let secrets = Api::<Secret>::namespaced(client.clone(), &ns);
    let secret: Secret = serde_json::from_value(json!({
        "metadata": { "name": "pull" },
        "type": "kubernetes.io/dockerconfigjson",
        "stringData": {
            ".dockerconfigjson": json!({ "auths": { "elsewhere.example": { "auth": "dTpw" } } }).to_string()
        }
    }))
    .unwrap();
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();

    let (_operator, metrics) =
        start_operator_reporting(client.clone(), &ns, config(Duration::from_secs(1))).await;
    let api = Api::<ImageStream>::namespaced(client.clone(), &ns);
    let from = format!("{}/{repository}:v1", registry.host());
    create_stream(&api, "app", vec![docker_tag("v1", &from, true)]).await;
    wait_for(&api, "app", "the import", |s| {
        current_image(s, "v1").is_some()
    })
    .await;
    wait_for_caches(&metrics, "one entry in every cache", |_, size| size == 1).await;

    api.delete("app", &DeleteParams::default()).await.unwrap();
    secrets
        .delete("pull", &DeleteParams::default())
        .await
        .unwrap();
    wait_for_caches(&metrics, "every cache to be empty", |_, size| size == 0).await;
}
