//! Objects the operator's types cannot read — stored under an older or looser schema, or exported
//! from OpenShift — never stall a cache: the rest of the kind is still read and served.

use std::time::Duration;

use crate::support::*;
use imagestream_operator::api::{Image, ImageStream};
use imagestream_testenv::images::{ImagePusher, ManifestFormat};
use kube::Api;
use kube::api::{ApiResource, DeleteParams, DynamicObject, GroupVersionKind};
use serde_json::json;

fn images_api(client: &kube::Client) -> Api<DynamicObject> {
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("image.openshift.io", "v1", "Image"),
        "images",
    );
    Api::all_with(client.clone(), &resource)
}

#[tokio::test]
async fn an_unreadable_image_does_not_stall_the_image_cache() {
    let env = crate::support::env().await;
    let client = env.client().await;
    let registry = env.registry();
    let repository = unique("unreadable");
    let pushed = ImagePusher::for_registry(registry)
        .push_random(&repository, "v1", ManifestFormat::Oci)
        .await
        .unwrap();
    let from = format!("{}/{repository}:v1", registry.host());

    // A first operator imports the tag, so the digest's Image exists.
    let first = env.namespace("unreadable").await;
    {
        let _operator =
            start_operator(client.clone(), &first, config(Duration::from_secs(900))).await;
        let api = Api::<ImageStream>::namespaced(client.clone(), &first);
        create_stream(&api, "app", vec![docker_tag("v1", &from, false)]).await;
        wait_for(&api, "app", "the first import", |s| {
            current_image(s, "v1").is_some()
        })
        .await;
    }

    // An Image whose manifest list is not a list, as an older schema let it be stored.
    let hex: String = (0..32)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect();
    let unreadable = format!("sha256.{hex}");
    let object = json!({
        "apiVersion": "image.openshift.io/v1",
        "kind": "Image",
        "metadata": {
            "name": unreadable,
            "uid": "0b8f6a52-4d8e-4c1e-9a57-6f1d2c3b4a59",
            "creationTimestamp": "2024-03-02T08:00:01Z",
        },
        "dockerImageReference": "registry.example.com/team/app@sha256:0000",
        "dockerImageManifests": "not a list",
    });
    if !env
        .store_unvalidated("image.openshift.io", "images", &object)
        .await
        .unwrap()
    {
        imagestream_testenv::skip::skip(
            "this environment has no etcd of its own to store an unvalidated Image in",
        );
        return;
    }
    let served = eventually(
        "the apiserver to serve the unreadable Image",
        Duration::from_secs(10),
        || async {
            images_api(&client)
                .get(&unreadable)
                .await
                .map_err(|e| e.to_string())
        },
    )
    .await;
    assert_eq!(served.data["dockerImageManifests"], "not a list");
    assert!(
        Api::<Image>::all(client.clone())
            .get(&unreadable)
            .await
            .is_err(),
        "the typed client reads the Image, so this test would prove nothing"
    );

    // A second operator starts with it in the Image list: its cache still knows the readable
    // Image, so the import of the same digest sends one HEAD and no manifest or blob GET.
    let mark = registry.requests_for(&repository).len();
    let second = env.namespace("unreadable").await;
    let _operator = start_operator(client.clone(), &second, config(Duration::from_secs(900))).await;
    let api = Api::<ImageStream>::namespaced(client.clone(), &second);
    create_stream(&api, "app", vec![docker_tag("v1", &from, false)]).await;
    let stream = wait_for(&api, "app", "the import next to an unreadable Image", |s| {
        current_image(s, "v1").is_some()
    })
    .await;
    assert_eq!(current_image(&stream, "v1"), Some(pushed.digest.clone()));
    let requests: Vec<String> = requests_since(registry, &repository, mark)
        .into_iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert_eq!(
        requests,
        vec![format!("HEAD /v2/{repository}/manifests/v1")],
        "the Image cache did not know the digest's Image"
    );

    // The unreadable Image is left as it was.
    let kept = images_api(&client).get(&unreadable).await.unwrap();
    assert_eq!(kept.data["dockerImageManifests"], "not a list");
    images_api(&client)
        .delete(&unreadable, &DeleteParams::default())
        .await
        .unwrap();
}
