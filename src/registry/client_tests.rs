//! Behaviour of [`RegistryClient`] against the FAKE registry of [`super::fake_registry`]: request
//! counts, authentication flows, limits and failure classification that a real registry cannot
//! be made to show on demand. The fake serves plain HTTP, so calls are `insecure`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use serde_json::json;
use sha2::{Digest, Sha256};

use super::fake_registry::{FakeRegistry, FakeReply, SeenRequest};
use super::manifest::{DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST};
use super::*;
use crate::domain::credential::RegistryCredential;

fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

fn config() -> RegistryClientConfig {
    let _ = rustls::crypto::ring::default_provider().install_default();
    RegistryClientConfig {
        request_timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(2),
        limits: LimitsConfig {
            max_concurrency_per_host: 8,
            backoff_base: Duration::from_millis(200),
            backoff_max: Duration::from_secs(1),
            retry_after_max: Duration::from_secs(600),
            max_wait: Duration::from_secs(3),
            max_requests_per_second: 0,
        },
        ..RegistryClientConfig::default()
    }
}

fn client() -> RegistryClient {
    RegistryClient::new(config()).unwrap()
}

fn target(fake: &FakeRegistry, reference: &str) -> ManifestTarget {
    ManifestTarget {
        host: fake.host.clone(),
        repository: "library/nginx".into(),
        reference: reference.into(),
    }
}

fn anonymous() -> Access {
    Access {
        insecure: true,
        credentials: vec![],
    }
}

fn with(credentials: &[&RegistryCredential]) -> Access {
    Access {
        insecure: true,
        credentials: credentials.iter().map(|c| (*c).clone()).collect(),
    }
}

fn credential(user: &str, password: &str) -> RegistryCredential {
    RegistryCredential {
        username: user.into(),
        password: password.into(),
        identity_token: None,
        source: format!("ns/{user}-secret"),
    }
}

fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

fn manifest_bytes() -> Vec<u8> {
    serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 2,
                   "digest": digest_of(b"{}")},
        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": 10,
                    "digest": format!("sha256:{}", "1".repeat(64))}]
    }))
    .unwrap()
}

/// A fake registry that serves one manifest for any reference under `/v2/`.
async fn serving_manifest(bytes: Vec<u8>, media_type: &'static str) -> FakeRegistry {
    let digest = digest_of(&bytes);
    FakeRegistry::start(move |_| {
        FakeReply::status(200)
            .header("content-type", media_type)
            .header("docker-content-digest", digest.clone())
            .body(bytes.clone())
    })
    .await
}

#[tokio::test]
async fn head_asks_for_all_four_manifest_types_and_returns_the_top_level_digest() {
    let index =
        serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}))
            .unwrap();
    let fake = serving_manifest(index.clone(), OCI_INDEX).await;
    let head = client()
        .head_manifest(&target(&fake, "1.25"), &anonymous())
        .await
        .unwrap();
    assert_eq!(
        head,
        ManifestHead {
            digest: digest_of(&index),
            media_type: Some(OCI_INDEX.into()),
            size: Some(index.len() as u64),
        }
    );
    let requests = fake.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(
        (requests[0].method.as_str(), requests[0].path.as_str()),
        ("HEAD", "/v2/library/nginx/manifests/1.25")
    );
    let accept = requests[0].accept.clone().unwrap();
    for media_type in [
        OCI_INDEX,
        DOCKER_MANIFEST_LIST,
        OCI_MANIFEST,
        DOCKER_MANIFEST,
    ] {
        assert!(accept.contains(media_type), "{accept}");
    }
}

#[tokio::test]
async fn a_failed_head_is_never_retried_as_a_get() {
    for (status, reason, transient) in [
        (404, "NotFound", false),
        (401, "Unauthorized", false),
        (403, "Forbidden", false),
        (400, "BadRequest", false),
        (500, "InternalError", true),
        (503, "ServiceUnavailable", true),
        (429, "TooManyRequests", true),
    ] {
        let fake = FakeRegistry::start(move |_| FakeReply::status(status)).await;
        let error = client()
            .head_manifest(&target(&fake, "latest"), &anonymous())
            .await
            .unwrap_err();
        assert_eq!(
            (error.reason(), error.is_transient()),
            (reason, transient),
            "{status}"
        );
        assert_eq!(fake.count("HEAD", "/"), 1, "{status}");
        assert_eq!(fake.count("GET", "/"), 0, "{status}");
        assert!(error.to_string().contains(&fake.host), "{error}");
        assert!(
            error.to_string().contains("library/nginx:latest"),
            "{error}"
        );
    }
}

#[tokio::test]
async fn a_large_error_page_is_read_to_its_end_so_the_connection_is_reused() {
    // 300 KiB of error page: more than is kept for the message, less than is drained.
    let page = format!(
        "{{\"errors\":[{{\"code\":\"MANIFEST_UNKNOWN\",\"message\":\"no such manifest\"}}]}}{}",
        " ".repeat(300 * 1024)
    );
    let fake = FakeRegistry::start(move |_| {
        FakeReply::status(404)
            .header("content-type", "application/json")
            .body(page.clone())
    })
    .await;
    let client = client();
    let mut connections = Vec::new();
    for digest in [digest_of(b"a"), digest_of(b"b"), digest_of(b"c")] {
        let error = client
            .get_manifest(&target(&fake, &digest), &anonymous())
            .await
            .unwrap_err();
        assert_eq!(error.reason(), "NotFound");
        assert!(error.to_string().contains("no such manifest"), "{error}");
        connections.push(fake.connections());
    }
    assert_eq!(fake.count("GET", "/"), 3);
    // The first call may open more than one (an insecure call tries HTTPS first); the later ones
    // reuse the connection the first answer left clean.
    assert_eq!(
        connections[2], connections[0],
        "connections opened after each call: {connections:?}"
    );
}

#[tokio::test]
async fn a_head_without_a_digest_header_is_an_invalid_response() {
    let fake = FakeRegistry::start(|_| FakeReply::status(200)).await;
    let error = client()
        .head_manifest(&target(&fake, "latest"), &anonymous())
        .await
        .unwrap_err();
    assert_eq!(error.reason(), "InvalidResponse");
    assert_eq!(fake.count("GET", "/"), 0);
}

#[tokio::test]
async fn a_head_by_digest_answered_with_another_digest_is_a_mismatch() {
    let fake = serving_manifest(manifest_bytes(), DOCKER_MANIFEST).await;
    let other = format!("sha256:{}", "f".repeat(64));
    let error = client()
        .head_manifest(&target(&fake, &other), &anonymous())
        .await
        .unwrap_err();
    assert_eq!(error.reason(), "DigestMismatch");
}

#[tokio::test]
async fn get_manifest_verifies_the_digest_and_parses_the_manifest() {
    let bytes = manifest_bytes();
    let fake = serving_manifest(bytes.clone(), DOCKER_MANIFEST).await;
    let client = client();
    let fetched = client
        .get_manifest(&target(&fake, &digest_of(&bytes)), &anonymous())
        .await
        .unwrap();
    assert_eq!(fetched.media_type, DOCKER_MANIFEST);
    assert_eq!(fetched.bytes, bytes);
    let ParsedManifest::Image(image) = fetched.parsed else {
        panic!("expected an image manifest");
    };
    assert_eq!(image.config.digest, digest_of(b"{}"));
    assert_eq!(image.layers.len(), 1);

    let wrong = format!("sha256:{}", "e".repeat(64));
    let error = client
        .get_manifest(&target(&fake, &wrong), &anonymous())
        .await
        .unwrap_err();
    assert_eq!(error.reason(), "DigestMismatch");
    assert!(error.to_string().contains(&wrong), "{error}");
    assert_eq!(fake.count("GET", "/v2/library/nginx/manifests/sha256:"), 2);
}

#[tokio::test]
async fn get_manifest_requires_a_digest() {
    let fake = serving_manifest(manifest_bytes(), DOCKER_MANIFEST).await;
    let error = client()
        .get_manifest(&target(&fake, "latest"), &anonymous())
        .await
        .unwrap_err();
    assert_eq!(error.reason(), "InvalidImageReference");
    assert!(fake.requests().is_empty());
}

#[tokio::test]
async fn a_manifest_over_the_limit_is_an_error_not_a_truncation() {
    let big = vec![b' '; 4096];
    let digest = digest_of(&big);
    for trickle in [false, true] {
        let body = big.clone();
        let fake = FakeRegistry::start(move |_| {
            let reply = FakeReply::status(200)
                .header("content-type", DOCKER_MANIFEST)
                .body(body.clone());
            if trickle {
                reply.trickle(8, Duration::from_millis(1))
            } else {
                reply
            }
        })
        .await;
        let client = RegistryClient::new(RegistryClientConfig {
            max_manifest_bytes: 1024,
            ..config()
        })
        .unwrap();
        let error = client
            .get_manifest(&target(&fake, &digest), &anonymous())
            .await
            .unwrap_err();
        assert_eq!(error.reason(), "ResponseTooLarge", "trickle: {trickle}");
        assert!(!error.is_transient());
        assert!(error.to_string().contains("1024 bytes"), "{error}");
    }
}

#[tokio::test]
async fn malformed_manifest_json_is_an_invalid_response() {
    let bytes = b"{\"schemaVersion\": 2, \"mediaType\": ".to_vec();
    let fake = serving_manifest(bytes.clone(), DOCKER_MANIFEST).await;
    let error = client()
        .get_manifest(&target(&fake, &digest_of(&bytes)), &anonymous())
        .await
        .unwrap_err();
    assert_eq!(error.reason(), "InvalidResponse");
    assert!(error.to_string().contains("malformed manifest"), "{error}");
}

#[tokio::test]
async fn get_image_config_reads_verifies_and_parses_the_config_blob() {
    let config_bytes = serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux", "created": "2024-01-02T03:04:05Z",
        "config": {"Env": ["A=1"], "Labels": {"k": "v"}}
    }))
    .unwrap();
    let digest = digest_of(&config_bytes);
    let served = config_bytes.clone();
    let fake = FakeRegistry::start(move |_| FakeReply::status(200).body(served.clone())).await;
    let fetched = client()
        .get_image_config(&fake.host, "library/nginx", &digest, &anonymous())
        .await
        .unwrap();
    assert_eq!(fetched.bytes, config_bytes);
    assert_eq!(fetched.config.architecture.as_deref(), Some("amd64"));
    assert_eq!(fetched.config.config.env, ["A=1"]);
    let requests = fake.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(
        requests[0].path,
        format!("/v2/library/nginx/blobs/{digest}")
    );
}

#[tokio::test]
async fn a_blob_larger_than_max_bytes_is_refused() {
    let fake = FakeRegistry::start(|_| FakeReply::status(200).body(vec![0u8; 100])).await;
    let error = client()
        .get_blob(
            &fake.host,
            "library/nginx",
            &digest_of(&[0u8; 100]),
            &anonymous(),
            99,
        )
        .await
        .unwrap_err();
    assert_eq!(error.reason(), "ResponseTooLarge");
}

#[tokio::test]
async fn a_body_slower_than_the_timeout_fails_with_timeout() {
    let bytes = manifest_bytes();
    let digest = digest_of(&bytes);
    let fake = FakeRegistry::start(move |_| {
        FakeReply::status(200)
            .header("content-type", DOCKER_MANIFEST)
            .body(bytes.clone())
            .trickle(10, Duration::from_millis(100))
    })
    .await;
    let client = RegistryClient::new(RegistryClientConfig {
        request_timeout: Duration::from_millis(300),
        ..config()
    })
    .unwrap();
    let start = Instant::now();
    let error = client
        .get_manifest(&target(&fake, &digest), &anonymous())
        .await
        .unwrap_err();
    assert_eq!((error.reason(), error.is_transient()), ("Timeout", true));
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn a_registry_that_does_not_answer_times_out() {
    let fake = FakeRegistry::start(|_| FakeReply::status(200).delay(Duration::from_secs(10))).await;
    let client = RegistryClient::new(RegistryClientConfig {
        request_timeout: Duration::from_millis(200),
        ..config()
    })
    .unwrap();
    let error = client
        .head_manifest(&target(&fake, "latest"), &anonymous())
        .await
        .unwrap_err();
    assert_eq!(error.reason(), "Timeout");
    assert!(error.to_string().contains("200ms"), "{error}");
}

#[tokio::test]
async fn too_many_requests_with_retry_after_stops_calls_to_that_registry_until_then() {
    let fake = FakeRegistry::start(|_| {
        FakeReply::status(429)
            .header("retry-after", "120")
            .header("content-type", "application/json")
            .body(r#"{"errors":[{"code":"TOOMANYREQUESTS","message":"You have reached your pull rate limit."}]}"#)
    })
    .await;
    let client = client();
    let first = client
        .get_manifest(&target(&fake, &digest_of(b"x")), &anonymous())
        .await
        .unwrap_err();
    assert_eq!(first.reason(), "TooManyRequests");
    assert!(
        first
            .to_string()
            .contains("You have reached your pull rate limit."),
        "{first}"
    );

    let start = Instant::now();
    for _ in 0..5 {
        let refused = client
            .head_manifest(&target(&fake, "latest"), &anonymous())
            .await
            .unwrap_err();
        assert_eq!(
            (refused.reason(), refused.is_transient()),
            ("TooManyRequests", true)
        );
        assert!(refused.to_string().contains("not contacted"), "{refused}");
    }
    // Refused at once: neither the 120 s asked for nor the client's 3 s max_wait was spent.
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    // The storm of calls reached the registry once.
    assert_eq!(fake.requests().len(), 1);
    assert_eq!(client.metrics().wait_count(&fake.host, true), 5);
}

#[tokio::test]
async fn service_unavailable_with_retry_after_delays_the_next_call_by_that_long() {
    let bytes = manifest_bytes();
    let digest = digest_of(&bytes);
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let fake = FakeRegistry::start(move |_| {
        if counter.fetch_add(1, Ordering::SeqCst) == 0 {
            FakeReply::status(503).header("retry-after", "1")
        } else {
            FakeReply::status(200)
                .header("docker-content-digest", digest.clone())
                .header("content-type", DOCKER_MANIFEST)
        }
    })
    .await;
    let client = client();
    let error = client
        .head_manifest(&target(&fake, "latest"), &anonymous())
        .await
        .unwrap_err();
    assert_eq!(error.reason(), "ServiceUnavailable");
    let start = Instant::now();
    client
        .head_manifest(&target(&fake, "latest"), &anonymous())
        .await
        .unwrap();
    assert!(
        start.elapsed() >= Duration::from_millis(900),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(fake.requests().len(), 2);
    assert_eq!(client.metrics().wait_count(&fake.host, false), 1);
}

#[tokio::test]
async fn retry_after_as_an_http_date_is_honoured() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let fake = FakeRegistry::start(move |_| {
        if counter.fetch_add(1, Ordering::SeqCst) == 0 {
            let later = SystemTime::now() + Duration::from_secs(2);
            FakeReply::status(429).header("retry-after", httpdate::fmt_http_date(later))
        } else {
            FakeReply::status(404)
        }
    })
    .await;
    let client = client();
    client
        .head_manifest(&target(&fake, "latest"), &anonymous())
        .await
        .unwrap_err();
    let start = Instant::now();
    let second = client
        .head_manifest(&target(&fake, "latest"), &anonymous())
        .await
        .unwrap_err();
    assert_eq!(second.reason(), "NotFound");
    // HTTP dates have whole seconds, so "2 s from now" is more than 1 s.
    assert!(
        start.elapsed() >= Duration::from_millis(1000),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn after_a_server_error_the_next_call_to_that_registry_backs_off_with_jitter() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let fake = FakeRegistry::start(move |_| {
        if counter.fetch_add(1, Ordering::SeqCst) == 0 {
            FakeReply::status(500)
        } else {
            FakeReply::status(404)
        }
    })
    .await;
    let client = client();
    client
        .head_manifest(&target(&fake, "latest"), &anonymous())
        .await
        .unwrap_err();
    let start = Instant::now();
    client
        .head_manifest(&target(&fake, "latest"), &anonymous())
        .await
        .unwrap_err();
    let waited = start.elapsed();
    // backoff_base is 200 ms; equal jitter waits 100..=200 ms.
    assert!(
        waited >= Duration::from_millis(90) && waited < Duration::from_millis(1500),
        "{waited:?}"
    );
}

#[tokio::test]
async fn the_concurrency_limit_per_registry_is_respected() {
    let fake =
        FakeRegistry::start(|_| FakeReply::status(404).delay(Duration::from_millis(100))).await;
    let client = RegistryClient::new(RegistryClientConfig {
        limits: LimitsConfig {
            max_concurrency_per_host: 2,
            ..config().limits
        },
        ..config()
    })
    .unwrap();
    // Learn the scheme first, so the concurrent calls go straight to plain HTTP.
    client
        .head_manifest(&target(&fake, "warmup"), &anonymous())
        .await
        .unwrap_err();
    let calls = (0..6).map(|i| {
        let client = client.clone();
        let target = target(&fake, &format!("t{i}"));
        async move { client.head_manifest(&target, &anonymous()).await }
    });
    for result in futures::future::join_all(calls).await {
        assert_eq!(result.unwrap_err().reason(), "NotFound");
    }
    assert_eq!(fake.requests().len(), 7);
    assert_eq!(fake.max_in_flight(), 2);
}

/// A FAKE registry in token mode: `/v2/` requires `Bearer <token>` with a token the fake's own
/// `/token` endpoint issued (one per fetch, `tok-<n>-<who>`), and counts token fetches.
struct FakeTokenRegistry {
    fake: FakeRegistry,
    fetches: Arc<AtomicUsize>,
    /// When set, only the most recently issued token is accepted.
    only_latest: Arc<AtomicBool>,
}

async fn token_registry(expires_in: u64) -> FakeTokenRegistry {
    let fetches = Arc::new(AtomicUsize::new(0));
    let only_latest = Arc::new(AtomicBool::new(false));
    let issued = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let (f, latest) = (fetches.clone(), only_latest.clone());
    let fake = FakeRegistry::start(move |request: &SeenRequest| {
        if request.path.starts_with("/token") {
            let n = f.fetch_add(1, Ordering::SeqCst) + 1;
            let who = match request.authorization.as_deref() {
                Some(a) if a == basic("alice", "wonderland") => "alice",
                Some(a) if a == basic("bob", "builder") => "bob",
                Some(_) => {
                    return FakeReply::status(401)
                        .body(r#"{"details":"incorrect username or password"}"#);
                }
                None if request.method == "POST" => "oauth",
                None => "anonymous",
            };
            let token = format!("tok-{n}-{who}");
            issued.lock().unwrap().push(token.clone());
            return FakeReply::status(200).body(
                json!({"token": token, "expires_in": expires_in, "issued_at": humantime::format_rfc3339(SystemTime::now()).to_string()})
                    .to_string(),
            );
        }
        let issued = issued.lock().unwrap();
        let accepted = match request.authorization.as_deref().and_then(|a| a.strip_prefix("Bearer ")) {
            Some(token) if latest.load(Ordering::SeqCst) => issued.last().is_some_and(|t| t == token),
            Some(token) => issued.iter().any(|t| t == token),
            None => false,
        };
        if accepted {
            FakeReply::status(404)
        } else {
            FakeReply::status(401).header(
                "www-authenticate",
                format!(
                    r#"Bearer realm="http://{}/token",service="fake-registry",scope="repository:library/nginx:pull""#,
                    request.host
                ),
            )
        }
    })
    .await;
    FakeTokenRegistry {
        fake,
        fetches,
        only_latest,
    }
}

#[tokio::test]
async fn bearer_tokens_are_fetched_once_for_concurrent_calls_and_then_reused() {
    let registry = token_registry(300).await;
    let fake = &registry.fake;
    let client = client();
    let calls = (0..10).map(|i| {
        let client = client.clone();
        let target = target(fake, &format!("t{i}"));
        async move { client.head_manifest(&target, &anonymous()).await }
    });
    for result in futures::future::join_all(calls).await {
        assert_eq!(result.unwrap_err().reason(), "NotFound");
    }
    // Nothing is known at first, so each call collects a 401 and retries with the token; the
    // token is fetched once for all of them.
    assert_eq!(fake.count("HEAD", "/v2/"), 20);
    assert_eq!(registry.fetches.load(Ordering::SeqCst), 1);

    // Later calls send the cached token up front: one request each, no token request.
    for i in 0..3 {
        client
            .head_manifest(&target(fake, &format!("again{i}")), &anonymous())
            .await
            .unwrap_err();
    }
    assert_eq!(fake.count("HEAD", "/v2/"), 23);
    assert_eq!(registry.fetches.load(Ordering::SeqCst), 1);
    let last = fake.requests().last().cloned().unwrap();
    assert_eq!(
        last.authorization.as_deref(),
        Some("Bearer tok-1-anonymous")
    );
    let token_request = fake
        .requests()
        .into_iter()
        .find(|r| r.path.starts_with("/token"))
        .unwrap();
    assert_eq!(
        token_request.path,
        "/token?service=fake-registry&scope=repository%3Alibrary%2Fnginx%3Apull"
    );
}

#[tokio::test]
async fn an_expired_token_is_fetched_again_up_front_without_a_401() {
    // expires_in 2 s; the margin keeps at least half, so the token is used for 1 s.
    let registry = token_registry(2).await;
    let fake = &registry.fake;
    let client = client();
    client
        .head_manifest(&target(fake, "a"), &anonymous())
        .await
        .unwrap_err();
    assert_eq!(fake.count("HEAD", "/v2/"), 2);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    client
        .head_manifest(&target(fake, "a"), &anonymous())
        .await
        .unwrap_err();
    assert_eq!(registry.fetches.load(Ordering::SeqCst), 2);
    assert_eq!(
        fake.count("HEAD", "/v2/"),
        3,
        "no 401 round trip after expiry"
    );
}

#[tokio::test]
async fn a_cached_token_the_registry_refuses_is_dropped_and_fetched_again_once() {
    let registry = token_registry(300).await;
    let fake = &registry.fake;
    let client = client();
    client
        .head_manifest(&target(fake, "a"), &anonymous())
        .await
        .unwrap_err();
    // The registry now accepts only a token issued after this point.
    registry.only_latest.store(true, Ordering::SeqCst);
    let seen_before = fake.requests().len();
    // Make the cached token stale by having the fake issue a newer one behind the client's back.
    issue_newer_token(fake).await;
    let error = client
        .head_manifest(&target(fake, "a"), &anonymous())
        .await
        .unwrap_err();
    assert_eq!(error.reason(), "NotFound");
    let after: Vec<(String, Option<String>)> = fake.requests()[seen_before..]
        .iter()
        .map(|r| (r.path.clone(), r.authorization.clone()))
        .collect();
    let paths: Vec<&str> = after
        .iter()
        .map(|(p, _)| p.split('?').next().unwrap())
        .collect();
    assert_eq!(
        paths,
        [
            "/token",
            "/v2/library/nginx/manifests/a",
            "/token",
            "/v2/library/nginx/manifests/a"
        ],
        "outsider's token fetch, refused HEAD, new token, accepted HEAD"
    );
    assert_eq!(after[1].1.as_deref(), Some("Bearer tok-1-anonymous"));
    assert_eq!(after[3].1.as_deref(), Some("Bearer tok-3-anonymous"));
}

/// Fetches a token directly from the fake's `/token`, so the fake issues a newer one.
async fn issue_newer_token(fake: &FakeRegistry) {
    let response = reqwest::Client::new()
        .get(format!("http://{}/token", fake.host))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());
}

#[tokio::test]
async fn a_registry_that_refuses_every_token_ends_in_unauthorized_after_one_retry() {
    let fake = FakeRegistry::start(|request: &SeenRequest| {
        if request.path.starts_with("/token") {
            FakeReply::status(200).body(r#"{"token":"never-good"}"#)
        } else {
            FakeReply::status(401).header(
                "www-authenticate",
                format!(
                    r#"Bearer realm="http://{}/token",service="x""#,
                    request.host
                ),
            )
        }
    })
    .await;
    let error = client()
        .head_manifest(&target(&fake, "a"), &anonymous())
        .await
        .unwrap_err();
    assert_eq!(
        (error.reason(), error.is_transient()),
        ("Unauthorized", false)
    );
    assert_eq!(fake.count("HEAD", "/v2/"), 2);
    assert_eq!(fake.count("GET", "/token"), 1);
    assert!(!error.to_string().contains("never-good"), "{error}");
}

#[tokio::test]
async fn a_freshly_issued_token_that_is_refused_is_not_fetched_again_in_the_same_call() {
    let fake = FakeRegistry::start(|request: &SeenRequest| {
        if request.path.starts_with("/token") {
            FakeReply::status(200).body(r#"{"token":"no-access"}"#)
        } else {
            FakeReply::status(401).header(
                "www-authenticate",
                format!(
                    r#"Bearer realm="http://{}/token",service="x",error="insufficient_scope""#,
                    request.host
                ),
            )
        }
    })
    .await;
    let client = client();
    for _ in 0..2 {
        let error = client
            .head_manifest(&target(&fake, "a"), &anonymous())
            .await
            .unwrap_err();
        assert_eq!(error.reason(), "Unauthorized");
    }
    // First call: anonymous 401, token, 401. Second call: the challenge is known, so the token
    // comes first, and its refusal ends the call.
    assert_eq!(fake.count("HEAD", "/v2/"), 3);
    assert_eq!(fake.count("GET", "/token"), 2);
}

#[tokio::test]
async fn tokens_are_never_shared_between_credentials_or_with_anonymous_access() {
    let registry = token_registry(300).await;
    let fake = &registry.fake;
    let client = client();
    let alice = credential("alice", "wonderland");
    let bob = credential("bob", "builder");
    for access in [with(&[&alice]), with(&[&bob]), anonymous(), with(&[&alice])] {
        client
            .head_manifest(&target(fake, "a"), &access)
            .await
            .unwrap_err();
    }
    assert_eq!(registry.fetches.load(Ordering::SeqCst), 3);
    let token_auth: Vec<Option<String>> = fake
        .requests()
        .iter()
        .filter(|r| r.path.starts_with("/token"))
        .map(|r| r.authorization.clone())
        .collect();
    assert_eq!(
        token_auth,
        [
            Some(basic("alice", "wonderland")),
            Some(basic("bob", "builder")),
            None
        ]
    );
    let head_auth: Vec<String> = fake
        .requests()
        .iter()
        .filter(|r| r.method == "HEAD")
        .filter_map(|r| r.authorization.clone())
        .collect();
    assert_eq!(
        head_auth,
        [
            "Bearer tok-1-alice",
            "Bearer tok-2-bob",
            "Bearer tok-3-anonymous",
            "Bearer tok-1-alice"
        ]
    );
}

#[tokio::test]
async fn an_identity_token_is_exchanged_with_an_oauth2_refresh_grant() {
    let registry = token_registry(300).await;
    let fake = &registry.fake;
    let mut credential = credential("<token>", "");
    credential.identity_token = Some("refresh-xyz".into());
    client()
        .head_manifest(&target(fake, "a"), &with(&[&credential]))
        .await
        .unwrap_err();
    let token_requests: Vec<SeenRequest> = fake
        .requests()
        .into_iter()
        .filter(|r| r.path.starts_with("/token"))
        .collect();
    assert_eq!(token_requests.len(), 1);
    assert_eq!(token_requests[0].method, "POST");
    assert_eq!(token_requests[0].path, "/token");
    let body = &token_requests[0].body;
    for field in [
        "grant_type=refresh_token",
        "refresh_token=refresh-xyz",
        "scope=repository%3Alibrary%2Fnginx%3Apull",
        "service=fake-registry",
        "client_id=imagestream-operator",
    ] {
        assert!(body.contains(field), "{body}");
    }
}

#[tokio::test]
async fn a_rejected_token_request_names_the_reason_but_never_the_password() {
    let registry = token_registry(300).await;
    let wrong = credential("alice", "not-the-password");
    let error = client()
        .head_manifest(&target(&registry.fake, "a"), &with(&[&wrong]))
        .await
        .unwrap_err();
    assert_eq!(error.reason(), "Unauthorized");
    let message = error.to_string();
    assert!(
        message.ends_with(
            "token request to {host} failed: authentication required or credentials rejected \
             (HTTP 401 Unauthorized)"
                .replace("{host}", &registry.fake.host)
                .as_str()
        ),
        "{message}"
    );
    // A 401 body is never echoed, not even a harmless-looking one: it is where registries and
    // proxies echo the credentials they refused.
    assert!(
        !message.contains("incorrect username or password"),
        "{message}"
    );
    for shown in [message, format!("{error:?}")] {
        assert!(!shown.contains("not-the-password"), "{shown}");
        assert!(
            !shown.contains(&basic("alice", "not-the-password")),
            "{shown}"
        );
    }
}

/// A FAKE registry that demands Basic credentials `alice:wonderland`.
async fn basic_registry() -> FakeRegistry {
    FakeRegistry::start(|request: &SeenRequest| {
        if request.authorization.as_deref() == Some(basic("alice", "wonderland").as_str()) {
            FakeReply::status(404)
        } else {
            FakeReply::status(401).header("www-authenticate", r#"Basic realm="fake""#)
        }
    })
    .await
}

#[tokio::test]
async fn a_basic_challenge_leads_to_basic_credentials_on_every_later_request() {
    let fake = basic_registry().await;
    let client = client();
    let alice = credential("alice", "wonderland");
    for _ in 0..3 {
        let error = client
            .head_manifest(&target(&fake, "a"), &with(&[&alice]))
            .await
            .unwrap_err();
        assert_eq!(error.reason(), "NotFound");
    }
    let auth: Vec<Option<String>> = fake
        .requests()
        .into_iter()
        .map(|r| r.authorization)
        .collect();
    let alice_header = Some(basic("alice", "wonderland"));
    assert_eq!(
        auth,
        [
            None,
            alice_header.clone(),
            alice_header.clone(),
            alice_header
        ]
    );
}

#[tokio::test]
async fn wrong_basic_credentials_are_unauthorized_after_one_retry() {
    let fake = basic_registry().await;
    let wrong = credential("alice", "guess");
    let error = client()
        .head_manifest(&target(&fake, "a"), &with(&[&wrong]))
        .await
        .unwrap_err();
    assert_eq!(error.reason(), "Unauthorized");
    assert_eq!(fake.requests().len(), 2);
    assert!(!error.to_string().contains("guess"));
}

#[tokio::test]
async fn a_refused_credential_makes_way_for_the_next_candidate_and_anonymous_is_not_tried() {
    let fake = basic_registry().await;
    let bob = credential("bob", "builder");
    let alice = credential("alice", "wonderland");
    let error = client()
        .head_manifest(&target(&fake, "a"), &with(&[&bob, &alice]))
        .await
        .unwrap_err();
    assert_eq!(error.reason(), "NotFound");
    let auth: Vec<Option<String>> = fake
        .requests()
        .into_iter()
        .map(|r| r.authorization)
        .collect();
    assert_eq!(
        auth,
        [
            None,
            Some(basic("bob", "builder")),
            Some(basic("alice", "wonderland"))
        ]
    );
}

#[tokio::test]
async fn the_candidate_accepted_last_is_tried_first_next_time() {
    let fake = basic_registry().await;
    let bob = credential("bob", "builder");
    let alice = credential("alice", "wonderland");
    let client = client();
    for _ in 0..3 {
        client
            .head_manifest(&target(&fake, "a"), &with(&[&bob, &alice]))
            .await
            .unwrap_err();
    }
    let auth: Vec<Option<String>> = fake
        .requests()
        .into_iter()
        .map(|r| r.authorization)
        .collect();
    let alice_header = Some(basic("alice", "wonderland"));
    assert_eq!(
        auth,
        [
            None,
            Some(basic("bob", "builder")),
            alice_header.clone(),
            alice_header.clone(),
            alice_header
        ]
    );
    // Another repository starts again from the order given.
    client
        .head_manifest(
            &ManifestTarget {
                repository: "other/repo".into(),
                ..target(&fake, "a")
            },
            &with(&[&bob, &alice]),
        )
        .await
        .unwrap_err();
    assert_eq!(fake.requests().len(), 7);
}

#[tokio::test]
async fn without_credentials_a_basic_registry_is_unauthorized_after_one_request() {
    let fake = basic_registry().await;
    let error = client()
        .head_manifest(&target(&fake, "a"), &anonymous())
        .await
        .unwrap_err();
    assert_eq!(error.reason(), "Unauthorized");
    assert_eq!(fake.requests().len(), 1);
}

#[tokio::test]
async fn ratelimit_remaining_is_exported_per_registry() {
    let fake = FakeRegistry::start(|_| {
        FakeReply::status(404)
            .header("ratelimit-limit", "100;w=21600")
            .header("ratelimit-remaining", "97;w=21600")
    })
    .await;
    let client = client();
    client
        .head_manifest(&target(&fake, "a"), &anonymous())
        .await
        .unwrap_err();
    assert_eq!(client.metrics().ratelimit_remaining(&fake.host), Some(97));
    assert_eq!(client.metrics().request_count(&fake.host, "HEAD", "4xx"), 1);
}

#[tokio::test]
async fn an_insecure_call_falls_back_to_plain_http_once_and_remembers_it() {
    let fake = FakeRegistry::start(|_| FakeReply::status(404)).await;
    let client = client();
    for _ in 0..3 {
        client
            .head_manifest(&target(&fake, "a"), &anonymous())
            .await
            .unwrap_err();
    }
    let metrics = client.metrics();
    assert_eq!(
        metrics.request_count(&fake.host, "HEAD", "error"),
        1,
        "one HTTPS probe"
    );
    assert_eq!(metrics.request_count(&fake.host, "HEAD", "4xx"), 3);
    assert_eq!(fake.requests().len(), 3);
    // The failed probe did not make the host back off.
    assert_eq!(metrics.wait_count(&fake.host, false), 0);
}

#[tokio::test]
async fn a_burst_of_first_insecure_calls_probes_https_once() {
    let fake = FakeRegistry::start(|_| FakeReply::status(404)).await;
    let client = client();
    let calls = (0..16).map(|i| {
        let client = client.clone();
        let target = target(&fake, &format!("tag-{i}"));
        async move { client.head_manifest(&target, &anonymous()).await }
    });
    for result in futures::future::join_all(calls).await {
        assert_eq!(result.unwrap_err().reason(), "NotFound");
    }
    let metrics = client.metrics();
    assert_eq!(
        metrics.request_count(&fake.host, "HEAD", "error"),
        1,
        "one HTTPS probe for sixteen calls"
    );
    assert_eq!(metrics.request_count(&fake.host, "HEAD", "4xx"), 16);
}

#[tokio::test]
async fn a_secure_call_never_falls_back_to_plain_http() {
    let fake = FakeRegistry::start(|_| FakeReply::status(404)).await;
    let error = client()
        .head_manifest(
            &target(&fake, "a"),
            &Access {
                insecure: false,
                credentials: vec![],
            },
        )
        .await
        .unwrap_err();
    assert_eq!(error.reason(), "TLSError", "{error}");
    assert!(fake.requests().is_empty());
}

#[tokio::test]
async fn a_closed_port_is_a_transient_service_unavailable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let host = listener.local_addr().unwrap().to_string();
    drop(listener);
    let error = client()
        .head_manifest(
            &ManifestTarget {
                host,
                repository: "a".into(),
                reference: "b".into(),
            },
            &anonymous(),
        )
        .await
        .unwrap_err();
    assert_eq!(
        (error.reason(), error.is_transient()),
        ("ServiceUnavailable", true)
    );
}

#[tokio::test]
async fn link_local_registries_and_realms_are_refused_without_a_request() {
    let error = client()
        .head_manifest(
            &ManifestTarget {
                host: "169.254.169.254".into(),
                repository: "latest".into(),
                reference: "meta-data".into(),
            },
            &anonymous(),
        )
        .await
        .unwrap_err();
    assert_eq!(error.reason(), "AddressRefused");

    let fake = FakeRegistry::start(|_| {
        FakeReply::status(401).header(
            "www-authenticate",
            r#"Bearer realm="http://169.254.169.254/latest/meta-data/",service="x""#,
        )
    })
    .await;
    let error = client()
        .head_manifest(&target(&fake, "a"), &anonymous())
        .await
        .unwrap_err();
    assert_eq!(error.reason(), "AddressRefused", "{error}");
}

#[tokio::test]
async fn blob_redirects_are_followed_without_credentials_except_to_link_local_addresses() {
    let blob = b"blob-bytes".to_vec();
    let digest = digest_of(&blob);
    let served = blob.clone();
    let fake = FakeRegistry::start(move |request: &SeenRequest| {
        let port = request.host.rsplit(':').next().unwrap().to_owned();
        if request.path.starts_with("/cdn/") {
            FakeReply::status(200).body(served.clone())
        } else if request.path.contains("/blobs/") && request.authorization.is_none() {
            FakeReply::status(401).header("www-authenticate", r#"Basic realm="fake""#)
        } else if request.path.contains("nginx") {
            // Another host name for the same server: a cross-host redirect, like to a CDN.
            FakeReply::status(307).header("location", format!("http://localhost:{port}/cdn/blob"))
        } else {
            FakeReply::status(307).header("location", "http://169.254.169.254/latest/")
        }
    })
    .await;
    let alice = credential("alice", "wonderland");
    let client = client();
    let bytes = client
        .get_blob(&fake.host, "library/nginx", &digest, &with(&[&alice]), 1024)
        .await
        .unwrap();
    assert_eq!(bytes, blob);
    let cdn = fake
        .requests()
        .into_iter()
        .find(|r| r.path.starts_with("/cdn/"))
        .unwrap();
    assert_eq!(
        cdn.authorization, None,
        "credentials must not follow a cross-host redirect"
    );

    let error = client
        .get_blob(&fake.host, "evil/repo", &digest, &with(&[&alice]), 1024)
        .await
        .unwrap_err();
    // The address guard's own refusal, as for a registry host at that address.
    assert_eq!(
        (error.reason(), error.is_transient()),
        ("AddressRefused", false),
        "{error}"
    );
    assert!(
        error.to_string().ends_with(
            "refused to contact 169.254.169.254: a link-local or cloud metadata address"
        ),
        "{error}"
    );
}

#[tokio::test]
async fn an_error_envelope_message_is_part_of_the_error() {
    let fake = FakeRegistry::start(|_| {
        FakeReply::status(404)
            .header("content-type", "application/json")
            .body(r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{"Tag":"nope"}}]}"#)
    })
    .await;
    let error = client()
        .get_manifest(&target(&fake, &digest_of(b"x")), &anonymous())
        .await
        .unwrap_err();
    assert_eq!(error.reason(), "NotFound");
    assert!(
        error
            .to_string()
            .ends_with("not found (HTTP 404 Not Found): MANIFEST_UNKNOWN: manifest unknown"),
        "{error}"
    );
}

#[test]
fn an_extra_ca_bundle_that_is_not_pem_is_refused() {
    let error = RegistryClient::new(RegistryClientConfig {
        extra_ca_pem: Some(b"not a certificate".to_vec()),
        ..config()
    })
    .unwrap_err();
    assert_eq!(error.reason(), "InternalError");
    assert!(error.to_string().contains("CA bundle"), "{error}");
}

/// A marker password, and every form a request carries it in. `alice:<marker>` is 25 bytes, so
/// its base64 has padding, and the padded and unpadded forms differ.
const MARKER_PASSWORD: &str = "Marker-Pa55w0rd-Q7x";
const MARKER_REFRESH_TOKEN: &str = "refresh-Marker-7d1c";

fn marker_forms() -> Vec<String> {
    use base64::Engine;
    let pair = format!("alice:{MARKER_PASSWORD}");
    let padded = base64::engine::general_purpose::STANDARD.encode(&pair);
    assert!(padded.ends_with('='), "{padded}");
    vec![
        MARKER_PASSWORD.to_owned(),
        pair.clone(),
        padded.clone(),
        padded.trim_end_matches('=').to_owned(),
        MARKER_REFRESH_TOKEN.to_owned(),
        // The bearer tokens the echoing token service issues.
        "tok-Marker".to_owned(),
    ]
}

/// An error envelope whose message and detail echo `text`.
fn echo_envelope(code: &str, text: &str) -> String {
    json!({"errors": [{
        "code": code,
        "message": format!("request carried {text} (password {MARKER_PASSWORD}, \
                            pair alice:{MARKER_PASSWORD})"),
        "detail": {"Authorization": text}
    }]})
    .to_string()
}

/// A FAKE registry that echoes the `Authorization` header of every request back: in 401 and 403
/// bodies, in 404 and 500 error envelopes, in a token realm, and in its token service's errors.
/// The repository `echo/<case>` says what it does: `denied` (401), `forbidden` (403), `missing`
/// (404), `broken` (500), `realm-echo` (a Bearer challenge whose realm is the header), `bearer`
/// (a token flow ending in a 404 that echoes the token), `refresh` (a refresh-token grant refused
/// with a 400 that echoes the grant).
async fn echoing_registry() -> FakeRegistry {
    FakeRegistry::start(|request: &SeenRequest| {
        let auth = request.authorization.clone().unwrap_or_default();
        if request.path.starts_with("/token") {
            if request.method == "POST" {
                return FakeReply::status(400).body(
                    json!({"error": "invalid_grant",
                           "error_description": format!("bad grant: {}", request.body)})
                    .to_string(),
                );
            }
            return FakeReply::status(200)
                .body(json!({"token": "tok-Marker-0001", "expires_in": 300}).to_string());
        }
        let case = request.path.split('/').nth(3).unwrap_or_default();
        let envelope = |status: u16, code: &str| {
            FakeReply::status(status)
                .header("content-type", "application/json")
                .body(echo_envelope(code, &auth))
        };
        let basic_challenge = r#"Basic realm="echo""#.to_owned();
        let token_challenge = format!(
            r#"Bearer realm="http://{}/token",service="echo""#,
            request.host
        );
        match case {
            "bearer" | "refresh" if !auth.starts_with("Bearer ") => {
                envelope(401, "UNAUTHORIZED").header("www-authenticate", token_challenge)
            }
            _ if auth.is_empty() => {
                envelope(401, "UNAUTHORIZED").header("www-authenticate", basic_challenge)
            }
            "denied" => envelope(401, "UNAUTHORIZED").header("www-authenticate", basic_challenge),
            "forbidden" => envelope(403, "DENIED"),
            "missing" | "bearer" => envelope(404, "MANIFEST_UNKNOWN"),
            "broken" => envelope(500, "UNKNOWN"),
            "realm-echo" => envelope(401, "UNAUTHORIZED").header(
                "www-authenticate",
                format!(r#"Bearer realm="{auth} {MARKER_PASSWORD}""#),
            ),
            _ => FakeReply::status(404),
        }
    })
    .await
}

/// A writer into a shared buffer, for capturing log output.
#[derive(Clone, Default)]
struct LogBuffer(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl LogBuffer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// Every event logged at trace level on this thread while the guard lives (the test runtime and
/// the fake registry run on it), by the text and the JSON formatter the operator uses.
fn capture_logs() -> (LogBuffer, LogBuffer, tracing::subscriber::DefaultGuard) {
    use tracing_subscriber::layer::SubscriberExt;
    let (text, json) = (LogBuffer::default(), LogBuffer::default());
    let (text_writer, json_writer) = (text.clone(), json.clone());
    let subscriber = tracing_subscriber::registry()
        .with(tracing_subscriber::filter::LevelFilter::TRACE)
        .with(
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(move || text_writer.clone()),
        )
        .with(
            tracing_subscriber::fmt::layer()
                .json()
                .with_writer(move || json_writer.clone()),
        );
    let guard = tracing::subscriber::set_default(subscriber);
    (text, json, guard)
}

#[tokio::test]
async fn credentials_a_registry_echoes_appear_in_no_error_and_no_log_line() {
    let (text_log, json_log, _guard) = capture_logs();
    let fake = echoing_registry().await;
    let alice = credential("alice", MARKER_PASSWORD);
    let mut refresh = credential("alice", MARKER_PASSWORD);
    refresh.identity_token = Some(MARKER_REFRESH_TOKEN.into());
    // The last error of `calls` fetches from `echo/<case>` by a fresh client.
    let fetch = |case: &str, credential: &RegistryCredential, calls: usize| {
        let target = ManifestTarget {
            repository: format!("echo/{case}"),
            ..target(&fake, &digest_of(case.as_bytes()))
        };
        let access = with(&[credential]);
        async move {
            let client = client();
            let mut last = None;
            for _ in 0..calls {
                last = client.get_manifest(&target, &access).await.err();
            }
            last.expect("the echoing registry never serves a manifest")
        }
    };
    let echoed = "request carried {scheme} <redacted> (password <redacted>, pair <redacted>)";
    let cases = [
        (
            fetch("denied", &alice, 1).await,
            "Unauthorized",
            "(HTTP 401 Unauthorized)".to_owned(),
        ),
        (
            fetch("forbidden", &alice, 1).await,
            "Forbidden",
            "(HTTP 403 Forbidden)".to_owned(),
        ),
        (
            fetch("missing", &alice, 1).await,
            "NotFound",
            format!(
                "(HTTP 404 Not Found): MANIFEST_UNKNOWN: {}",
                echoed.replace("{scheme}", "Basic")
            ),
        ),
        (
            fetch("broken", &alice, 1).await,
            "InternalError",
            format!(
                "(HTTP 500 Internal Server Error): UNKNOWN: {}",
                echoed.replace("{scheme}", "Basic")
            ),
        ),
        (
            fetch("bearer", &alice, 1).await,
            "NotFound",
            format!(
                "(HTTP 404 Not Found): MANIFEST_UNKNOWN: {}",
                echoed.replace("{scheme}", "Bearer")
            ),
        ),
        (
            fetch("refresh", &refresh, 1).await,
            "BadRequest",
            "(HTTP 400 Bad Request): bad grant: grant_type=refresh_token&refresh_token=<redacted>"
                .to_owned(),
        ),
        // The first call learns the Basic challenge, so the second sends Basic up front and the
        // 401 names a realm made of it.
        (
            fetch("realm-echo", &alice, 2).await,
            "InvalidResponse",
            "token request to Basic <redacted> <redacted> failed: invalid response: \
             the registry's token realm is not a URL"
                .to_owned(),
        ),
    ];
    for (error, reason, says) in &cases {
        let shown = [error.to_string(), format!("{error:?}")];
        for form in marker_forms() {
            for text in &shown {
                assert!(!text.contains(&form), "{form} in {text}");
            }
        }
        // Still says what failed.
        assert_eq!(error.reason(), *reason, "{error}");
        assert!(shown[0].contains(says.as_str()), "{error}");
    }
    let (text, json) = (text_log.text(), json_log.text());
    for log in [&text, &json] {
        // The capture works: the client's own request lines are in both.
        assert!(log.contains("registry request"), "{log}");
        for form in marker_forms() {
            assert!(!log.contains(&form), "{form} in the log:\n{log}");
        }
    }
    // The fake did get them, so without scrubbing they would be there.
    let sent = fake
        .requests()
        .iter()
        .map(|r| format!("{:?} {}", r.authorization, r.body))
        .collect::<Vec<_>>()
        .join(" ");
    for form in [&marker_forms()[2], "tok-Marker", MARKER_REFRESH_TOKEN] {
        assert!(sent.contains(form), "{form} not in {sent}");
    }
}

/// A FAKE registry that serves a manifest over plain HTTP and answers the request numbered
/// `broken_at` (counting from 0) with `broken`.
async fn breaking_once(broken_at: usize, broken: fn(Vec<u8>) -> FakeReply) -> FakeRegistry {
    let bytes = manifest_bytes();
    let digest = digest_of(&bytes);
    let calls = Arc::new(AtomicUsize::new(0));
    FakeRegistry::start(move |_| {
        let reply = FakeReply::status(200)
            .header("content-type", DOCKER_MANIFEST)
            .header("docker-content-digest", digest.clone());
        if calls.fetch_add(1, Ordering::SeqCst) == broken_at {
            broken(bytes.clone())
        } else {
            reply.body(bytes.clone())
        }
    })
    .await
}

#[tokio::test]
async fn a_reset_or_cut_off_answer_of_a_plain_http_registry_is_a_transient_failure_not_a_tls_error()
{
    let bytes = manifest_bytes();
    let digest = digest_of(&bytes);
    let reset: fn(Vec<u8>) -> FakeReply = |_| FakeReply::reset();
    let cut_off: fn(Vec<u8>) -> FakeReply = |bytes| {
        FakeReply::status(200)
            .header("content-type", DOCKER_MANIFEST)
            .body(bytes)
            .truncated(10)
    };
    // (what breaks, the scheme already known from an earlier answer)
    for (name, broken, known) in [
        ("reset", reset, true),
        ("cut off", cut_off, true),
        ("reset", reset, false),
    ] {
        let fake = breaking_once(usize::from(known), broken).await;
        let client = client();
        if known {
            client
                .head_manifest(&target(&fake, "latest"), &anonymous())
                .await
                .unwrap();
        }
        let error = client
            .get_manifest(&target(&fake, &digest), &anonymous())
            .await
            .unwrap_err();
        assert_eq!(
            (error.reason(), error.is_transient()),
            ("ServiceUnavailable", true),
            "{name}, scheme known: {known}: {error}"
        );
        assert!(
            error.to_string().contains("connection failed"),
            "{name}: {error}"
        );
        // The retry the schedule makes finds the registry back.
        let fetched = client
            .get_manifest(&target(&fake, &digest), &anonymous())
            .await
            .unwrap();
        assert_eq!(fetched.bytes, bytes, "{name}");
    }
}

#[tokio::test]
async fn a_failure_of_a_plain_http_registry_makes_its_host_back_off_like_any_transient_failure() {
    let fake = breaking_once(1, |_| FakeReply::reset()).await;
    let client = client();
    client
        .head_manifest(&target(&fake, "latest"), &anonymous())
        .await
        .unwrap();
    client
        .head_manifest(&target(&fake, "latest"), &anonymous())
        .await
        .unwrap_err();
    let start = Instant::now();
    client
        .head_manifest(&target(&fake, "latest"), &anonymous())
        .await
        .unwrap();
    let waited = start.elapsed();
    // backoff_base is 200 ms; equal jitter waits 100..=200 ms.
    assert!(
        waited >= Duration::from_millis(90) && waited < Duration::from_millis(1500),
        "{waited:?}"
    );
}

#[tokio::test]
async fn a_redirect_to_a_metadata_address_on_an_insecure_registry_is_the_guards_refusal_not_a_tls_error()
 {
    let fake = FakeRegistry::start(|request: &SeenRequest| {
        if request.path.ends_with("/first") {
            FakeReply::status(404)
        } else {
            FakeReply::status(307).header("location", "http://169.254.169.254/latest/meta-data/")
        }
    })
    .await;
    for known in [false, true] {
        let client = client();
        if known {
            client
                .head_manifest(&target(&fake, "first"), &anonymous())
                .await
                .unwrap_err();
        }
        let error = client
            .head_manifest(&target(&fake, "latest"), &anonymous())
            .await
            .unwrap_err();
        assert_eq!(
            (error.reason(), error.is_transient()),
            ("AddressRefused", false),
            "scheme known: {known}: {error}"
        );
        assert!(
            error
                .to_string()
                .contains("refused to contact 169.254.169.254"),
            "{error}"
        );
    }
}

/// A FAKE registry whose token service moves: realms `/realm-a` and `/realm-b` issue tokens
/// `a-<n>` and `b-<n>`; the registry challenges with the realm `challenge` names and accepts
/// only that realm's tokens; `/realm-a` answers 404 once `a_gone` is set.
struct MovingRealmRegistry {
    fake: FakeRegistry,
    challenge: Arc<std::sync::Mutex<&'static str>>,
    a_gone: Arc<AtomicBool>,
}

async fn moving_realm_registry() -> MovingRealmRegistry {
    let challenge = Arc::new(std::sync::Mutex::new("a"));
    let a_gone = Arc::new(AtomicBool::new(false));
    let issued = Arc::new(AtomicUsize::new(0));
    let (current, gone) = (challenge.clone(), a_gone.clone());
    let bytes = manifest_bytes();
    let digest = digest_of(&bytes);
    let fake = FakeRegistry::start(move |request: &SeenRequest| {
        let realm = *current.lock().unwrap();
        for name in ["a", "b"] {
            if request.path.starts_with(&format!("/realm-{name}")) {
                if name == "a" && gone.load(Ordering::SeqCst) {
                    return FakeReply::status(404).body(r#"{"details":"no such endpoint"}"#);
                }
                let n = issued.fetch_add(1, Ordering::SeqCst);
                return FakeReply::status(200)
                    .body(json!({"token": format!("{name}-{n}"), "expires_in": 300}).to_string());
            }
        }
        let accepted = request
            .authorization
            .as_deref()
            .and_then(|a| a.strip_prefix("Bearer "))
            .is_some_and(|token| token.starts_with(&format!("{realm}-")));
        if accepted {
            FakeReply::status(200)
                .header("content-type", DOCKER_MANIFEST)
                .header("docker-content-digest", digest.clone())
        } else {
            FakeReply::status(401).header(
                "www-authenticate",
                format!(
                    r#"Bearer realm="http://{}/realm-{realm}",service="moving""#,
                    request.host
                ),
            )
        }
    })
    .await;
    MovingRealmRegistry {
        fake,
        challenge,
        a_gone,
    }
}

/// The requests seen since `from`: method, path without the query, and the token sent.
fn seen_since(fake: &FakeRegistry, from: usize) -> Vec<String> {
    fake.requests()[from..]
        .iter()
        .map(|r| {
            let path = r.path.split('?').next().unwrap_or_default();
            match r.authorization.as_deref() {
                Some(auth) => format!("{} {path} {auth}", r.method),
                None => format!("{} {path}", r.method),
            }
        })
        .collect()
}

#[tokio::test]
async fn a_token_realm_that_stops_working_is_learned_again_from_the_registrys_next_challenge() {
    let registry = moving_realm_registry().await;
    let fake = &registry.fake;
    let client = client();
    // Each phase asks for a tag of another repository, so no cached token stands in for the
    // realm: like a token that expired while the challenge stayed remembered.
    let head = |repository: &str| {
        let target = ManifestTarget {
            repository: repository.into(),
            ..target(fake, "latest")
        };
        let client = client.clone();
        async move { client.head_manifest(&target, &anonymous()).await }
    };

    // Realm A works.
    head("team/one").await.unwrap();

    // A's endpoint is gone while the registry still names it: the failure is the token
    // endpoint's, worth retrying, and never NotFound (which says the tag is gone).
    registry.a_gone.store(true, Ordering::SeqCst);
    let before = fake.requests().len();
    let error = head("team/two").await.unwrap_err();
    assert_eq!(
        (error.reason(), error.is_transient()),
        ("TokenEndpointFailed", true),
        "{error}"
    );
    assert!(error.to_string().contains("token request to"), "{error}");
    assert_eq!(
        seen_since(fake, before),
        ["GET /realm-a", "HEAD /v2/team/two/manifests/latest",],
        "the known realm up front, then the registry's challenge, which names the same realm"
    );

    // The registry now names realm B: the next call learns it, without a restart.
    *registry.challenge.lock().unwrap() = "b";
    let before = fake.requests().len();
    head("team/three").await.unwrap();
    let seen = seen_since(fake, before);
    assert_eq!(
        seen[..3],
        [
            "HEAD /v2/team/three/manifests/latest",
            "GET /realm-b",
            "HEAD /v2/team/three/manifests/latest Bearer b-1",
        ],
        "{seen:?}"
    );
    assert_eq!(seen.len(), 3, "{seen:?}");
}

#[tokio::test]
async fn a_token_realm_that_fails_while_the_registry_names_a_new_one_is_replaced_within_the_call() {
    let registry = moving_realm_registry().await;
    let fake = &registry.fake;
    let client = client();
    let head = |repository: &str| {
        let target = ManifestTarget {
            repository: repository.into(),
            ..target(fake, "latest")
        };
        let client = client.clone();
        async move { client.head_manifest(&target, &anonymous()).await }
    };
    head("team/one").await.unwrap();
    registry.a_gone.store(true, Ordering::SeqCst);
    *registry.challenge.lock().unwrap() = "b";
    let before = fake.requests().len();
    head("team/two").await.unwrap();
    assert_eq!(
        seen_since(fake, before),
        [
            "GET /realm-a",
            "HEAD /v2/team/two/manifests/latest",
            "GET /realm-b",
            "HEAD /v2/team/two/manifests/latest Bearer b-1",
        ]
    );
}
