//! What never appears in what the operator writes: the credentials of a pull secret, whatever a
//! registry echoes back. The API server is real; the registry is the in-process FAKE registry,
//! because the real one cannot be made to echo the `Authorization` header into its answers (which
//! proxies and misconfigured registries do).

use std::time::Duration;

use crate::support::*;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use imagestream_operator::api::ImageStream;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::{ObjectMeta, PostParams};
use serde_json::json;

use crate::fake_registry;

const USER: &str = "deployer";
const PASSWORD: &str = "Marker-Pa55word-7f3c";

/// Every form of the credential that must not appear anywhere.
fn secret_forms() -> Vec<String> {
    let pair = format!("{USER}:{PASSWORD}");
    vec![
        PASSWORD.to_owned(),
        pair.clone(),
        STANDARD.encode(&pair),
        STANDARD_NO_PAD.encode(&pair),
        URL_SAFE.encode(&pair),
        URL_SAFE_NO_PAD.encode(&pair),
    ]
}

/// FAKE registry: asks for Basic credentials, then echoes the `Authorization` header it got in the
/// body of a 401, a 403 or a 500 error envelope, by repository.
async fn echoing_registry() -> fake_registry::FakeRegistry {
    fake_registry::FakeRegistry::start(|request| {
        let Some(authorization) = request.authorization.clone() else {
            return fake_registry::FakeReply::status(401)
                .header("www-authenticate", r#"Basic realm="fake""#);
        };
        let envelope = json!({"errors": [{
            "code": "DENIED",
            "message": format!("request carried {authorization}"),
            "detail": {"authorization": authorization},
        }]})
        .to_string();
        let status = if request.path.contains("/unauthorized/") {
            401
        } else if request.path.contains("/forbidden/") {
            403
        } else {
            500
        };
        fake_registry::FakeReply::status(status)
            .header("content-type", "application/json")
            .header("www-authenticate", r#"Basic realm="fake""#)
            .body(envelope)
    })
    .await
}

#[tokio::test]
async fn credentials_a_registry_echoes_back_appear_in_no_condition_event_or_metric() {
    let env = crate::support::env().await;
    let ns = env.namespace("security").await;
    let client = env.client().await;
    let fake = echoing_registry().await;
    let auths = json!({"auths": {fake.host.clone(): {
        "username": USER,
        "password": PASSWORD,
        "auth": STANDARD.encode(format!("{USER}:{PASSWORD}")),
    }}});
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some("registry-credentials".into()),
            ..ObjectMeta::default()
        },
        type_: Some("kubernetes.io/dockerconfigjson".into()),
        string_data: Some([(".dockerconfigjson".to_owned(), auths.to_string())].into()),
        ..Secret::default()
    };
    Api::<Secret>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    let (_operator, metrics) =
        start_operator_reporting(client.clone(), &ns, config(Duration::from_secs(900))).await;
    let api = Api::<ImageStream>::namespaced(client.clone(), &ns);
    let tags = ["unauthorized", "forbidden", "broken"]
        .map(|kind| docker_tag(kind, &format!("{}/team/{kind}/app:v1", fake.host), false));
    create_stream(&api, "app", tags.to_vec()).await;
    let failed = wait_for(&api, "app", "every tag to fail", |s| {
        ["unauthorized", "forbidden", "broken"]
            .iter()
            .all(|tag| condition_reason(s, tag).is_some())
    })
    .await;
    assert!(
        fake.requests().iter().any(|r| r
            .authorization
            .as_deref()
            .is_some_and(|a| a.starts_with("Basic "))),
        "the credentials were never sent, so this test would prove nothing"
    );

    let mut written = Vec::new();
    for tag in ["unauthorized", "forbidden", "broken"] {
        let reason = condition_reason(&failed, tag).unwrap();
        let message = condition_message(&failed, tag);
        assert!(!message.is_empty(), "{tag}");
        written.push(format!("condition of {tag} ({reason}): {message}"));
    }
    assert_eq!(
        ["unauthorized", "forbidden", "broken"].map(|tag| condition_reason(&failed, tag).unwrap()),
        ["Unauthorized", "Forbidden", "InternalError"]
    );
    let events = eventually("the Warning Event", Duration::from_secs(30), || async {
        let events = event_notes(&client, &ns).await;
        if events.is_empty() {
            Err("none yet".to_owned())
        } else {
            Ok(events)
        }
    })
    .await;
    written.extend(events.into_iter().map(|note| format!("event: {note}")));
    written.push(format!("metrics: {}", metrics.encode().unwrap()));
    written.push(format!(
        "status: {}",
        serde_json::to_string(&api.get("app").await.unwrap().status).unwrap()
    ));

    for text in &written {
        for form in secret_forms() {
            assert!(!text.contains(&form), "{form:?} leaked into {text}");
        }
    }
}
