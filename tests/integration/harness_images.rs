//! The harness's image pusher and token server against the real registry: what they push reads back
//! over plain HTTP with the pushed digests, and the registry enforces Basic and token auth on them.

use std::time::Duration;

use imagestream_testenv::images::{
    ImagePusher, MANIFEST_MEDIA_TYPES, ManifestFormat, Platform, PushError, TestIndex,
    basic_authorization,
};
use imagestream_testenv::token_server::{
    Access, Grant, KeyReference, TokenOutcome, TokenServer, TokenServerConfig,
};
use imagestream_testenv::{RegistryOptions, TestCa, write_htpasswd};
use reqwest::Url;

/// A repository name of its own for one test.
fn repository(prefix: &str) -> String {
    format!("{prefix}/r{:08x}", rand::random::<u32>())
}

fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

/// What a HEAD of a manifest answered: status, `Docker-Content-Digest`, `Content-Type`.
#[derive(Debug)]
struct Head {
    status: u16,
    digest: Option<String>,
    content_type: Option<String>,
}

async fn head_manifest(
    base_url: &str,
    repository: &str,
    reference: &str,
    authorization: Option<&str>,
) -> Head {
    let mut request = http()
        .head(format!("{base_url}/v2/{repository}/manifests/{reference}"))
        .header("Accept", MANIFEST_MEDIA_TYPES.join(", "));
    if let Some(authorization) = authorization {
        request = request.header("Authorization", authorization);
    }
    let response = request.send().await.unwrap();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    Head {
        status: response.status().as_u16(),
        digest: header("Docker-Content-Digest"),
        content_type: header("Content-Type"),
    }
}

async fn get_bytes(url: &str, accept: &str) -> Vec<u8> {
    let response = http()
        .get(url)
        .header("Accept", accept)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "GET {url}");
    response.bytes().await.unwrap().to_vec()
}

/// A token from the token server's GET endpoint, as `Bearer …`.
async fn bearer(server: &TokenServer, basic: Option<(&str, &str)>, scope: &str) -> String {
    let mut url = Url::parse(server.realm()).unwrap();
    url.query_pairs_mut()
        .append_pair("service", server.service())
        .append_pair("scope", scope);
    let mut request = http().get(url);
    if let Some((user, password)) = basic {
        request = request.header("Authorization", basic_authorization(user, password));
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    format!("Bearer {}", body["token"].as_str().unwrap())
}

/// `application/x-www-form-urlencoded` of `pairs`.
fn form(pairs: &[(&str, &str)]) -> String {
    let mut url = Url::parse("http://form.invalid/").unwrap();
    url.query_pairs_mut().extend_pairs(pairs);
    url.query().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn a_pushed_image_reads_back_under_its_digest_with_every_manifest_media_type_accepted() {
    let env = crate::support::env().await;
    let registry = env.registry();
    let pusher = ImagePusher::for_registry(registry);
    for format in [ManifestFormat::Docker, ManifestFormat::Oci] {
        let repo = repository("single");
        let pushed = pusher.push_random(&repo, "v1", format).await.unwrap();
        assert_eq!(pushed.media_type, format.manifest_media_type());
        assert_eq!(pushed.tag.as_deref(), Some("v1"));

        let head = head_manifest(&registry.base_url(), &repo, "v1", None).await;
        assert_eq!(head.status, 200, "{head:?}");
        assert_eq!(head.digest.as_deref(), Some(pushed.digest.as_str()));
        assert_eq!(
            head.content_type.as_deref(),
            Some(pushed.media_type.as_str())
        );

        let base = format!("{}/v2/{repo}", registry.base_url());
        let manifest = get_bytes(&format!("{base}/manifests/v1"), &pushed.media_type).await;
        assert_eq!(manifest, pushed.manifest);
        let config = get_bytes(&format!("{base}/blobs/{}", pushed.config_digest), "*/*").await;
        assert_eq!(config, pushed.config);
        let config: serde_json::Value = serde_json::from_slice(&config).unwrap();
        assert_eq!(config["architecture"], "amd64");
        assert_eq!(
            config["config"]["Labels"]["io.testenv.id"],
            pushed.image_config.labels["io.testenv.id"]
        );
        for layer in &pushed.layers {
            let blob = get_bytes(&format!("{base}/blobs/{}", layer.digest), "*/*").await;
            assert_eq!(blob.len() as u64, layer.size);
        }

        let log = registry.requests_for(&repo);
        assert!(
            log.iter().any(|r| r.method == "PUT"
                && r.path == format!("/v2/{repo}/manifests/v1")
                && r.status == 201),
            "{log:?}"
        );
    }
}

#[tokio::test]
async fn a_multi_arch_index_lists_every_child_with_its_platform() {
    let env = crate::support::env().await;
    let registry = env.registry();
    let pusher = ImagePusher::for_registry(registry);
    let platforms = TestIndex::common_platforms();
    for format in [ManifestFormat::Oci, ManifestFormat::Docker] {
        let repo = repository("multi");
        let index = pusher
            .push_random_index(&repo, "latest", format, &platforms)
            .await
            .unwrap();
        assert_eq!(index.media_type, format.index_media_type());

        let head = head_manifest(&registry.base_url(), &repo, "latest", None).await;
        assert_eq!(head.status, 200, "{head:?}");
        assert_eq!(head.digest.as_deref(), Some(index.digest.as_str()));
        assert_eq!(
            head.content_type.as_deref(),
            Some(index.media_type.as_str())
        );

        let body = get_bytes(
            &format!("{}/v2/{repo}/manifests/latest", registry.base_url()),
            &index.media_type,
        )
        .await;
        let listed: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let entries = listed["manifests"].as_array().unwrap();
        assert_eq!(entries.len(), platforms.len());
        for ((entry, child), platform) in entries.iter().zip(&index.children).zip(&platforms) {
            assert_eq!(entry["digest"], child.digest.as_str());
            assert_eq!(entry["mediaType"], format.manifest_media_type());
            assert_eq!(entry["platform"], platform.to_json());
            assert_eq!(&child.platform, platform);
            let child_head = head_manifest(&registry.base_url(), &repo, &child.digest, None).await;
            assert_eq!(child_head.status, 200, "{platform}: {child_head:?}");
            assert_eq!(child_head.digest.as_deref(), Some(child.digest.as_str()));
        }
        let arm = &index.children[1];
        let config: serde_json::Value = serde_json::from_slice(&arm.config).unwrap();
        assert_eq!(config["architecture"], "arm64");
        assert_eq!(config["variant"], "v8");
    }
}

#[tokio::test]
async fn pushing_another_image_to_a_tag_moves_it_and_an_earlier_manifest_can_move_it_back() {
    let env = crate::support::env().await;
    let registry = env.registry();
    let pusher = ImagePusher::for_registry(registry);
    let repo = repository("move");
    let a = pusher
        .push_random(&repo, "stable", ManifestFormat::Oci)
        .await
        .unwrap();
    let b = pusher
        .push_random(&repo, "stable", ManifestFormat::Oci)
        .await
        .unwrap();
    assert_ne!(a.digest, b.digest);
    let head = head_manifest(&registry.base_url(), &repo, "stable", None).await;
    assert_eq!(head.digest.as_deref(), Some(b.digest.as_str()));

    let back = pusher
        .put_manifest(&repo, "stable", &a.media_type, &a.manifest)
        .await
        .unwrap();
    assert_eq!(back, a.digest);
    assert_eq!(
        pusher.manifest_digest(&repo, "stable").await.unwrap(),
        Some(a.digest.clone())
    );
}

#[tokio::test]
async fn a_deleted_manifest_and_its_tag_answer_404() {
    let env = crate::support::env().await;
    let registry = env.registry();
    let pusher = ImagePusher::for_registry(registry);
    let repo = repository("delete");
    let kept = pusher
        .push_random(&repo, "kept", ManifestFormat::Docker)
        .await
        .unwrap();
    let gone = pusher
        .push_random(&repo, "gone", ManifestFormat::Docker)
        .await
        .unwrap();

    let deleted = pusher.delete_tag(&repo, "gone").await.unwrap();
    assert_eq!(deleted, gone.digest);
    assert_eq!(
        head_manifest(&registry.base_url(), &repo, "gone", None)
            .await
            .status,
        404
    );
    assert_eq!(
        head_manifest(&registry.base_url(), &repo, &gone.digest, None)
            .await
            .status,
        404
    );
    assert_eq!(pusher.manifest_digest(&repo, "gone").await.unwrap(), None);
    assert_eq!(
        pusher.manifest_digest(&repo, "kept").await.unwrap(),
        Some(kept.digest.clone())
    );

    pusher.delete_manifest(&repo, &kept.digest).await.unwrap();
    assert_eq!(
        head_manifest(&registry.base_url(), &repo, "kept", None)
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn a_basic_auth_registry_refuses_a_push_without_credentials_and_accepts_one_with_them() {
    let env = crate::support::env().await;
    let dir = tempfile::tempdir().unwrap();
    let htpasswd = dir.path().join("htpasswd");
    write_htpasswd(&htpasswd, &[("alice", "wonderland"), ("bob", "builder")]).unwrap();
    let registry = env
        .start_registry(
            "basic",
            &RegistryOptions {
                htpasswd: Some(htpasswd),
                ..RegistryOptions::default()
            },
        )
        .await
        .unwrap();
    let repo = repository("basic");

    let anonymous = ImagePusher::for_registry(&registry);
    let refused = anonymous
        .push_random(&repo, "v1", ManifestFormat::Oci)
        .await
        .unwrap_err();
    assert_eq!(refused.status(), Some(401), "{refused}");
    let wrong = ImagePusher::for_registry(&registry).with_credentials("alice", "nope");
    let refused = wrong
        .push_random(&repo, "v1", ManifestFormat::Oci)
        .await
        .unwrap_err();
    assert_eq!(refused.status(), Some(401), "{refused}");

    let alice = ImagePusher::for_registry(&registry).with_credentials("alice", "wonderland");
    let pushed = alice
        .push_random(&repo, "v1", ManifestFormat::Oci)
        .await
        .unwrap();

    let base = registry.base_url();
    assert_eq!(head_manifest(&base, &repo, "v1", None).await.status, 401);
    let head = head_manifest(
        &base,
        &repo,
        "v1",
        Some(&basic_authorization("bob", "builder")),
    )
    .await;
    assert_eq!(head.status, 200, "{head:?}");
    assert_eq!(head.digest.as_deref(), Some(pushed.digest.as_str()));
}

#[tokio::test]
async fn a_tls_registry_takes_pushes_from_a_client_that_trusts_its_ca() {
    let env = crate::support::env().await;
    let ca = TestCa::new("harness-images-ca").unwrap();
    let registry = env
        .start_registry(
            "tls",
            &RegistryOptions {
                tls: Some(ca.issue(&["127.0.0.1"]).unwrap()),
                ..RegistryOptions::default()
            },
        )
        .await
        .unwrap();
    assert!(registry.base_url().starts_with("https://"));
    let repo = repository("tls");

    let untrusting = ImagePusher::for_registry(&registry);
    let err = untrusting
        .push_random(&repo, "v1", ManifestFormat::Oci)
        .await
        .unwrap_err();
    assert!(matches!(err, PushError::Request { .. }), "{err}");

    let trusting = ImagePusher::for_registry(&registry)
        .with_root_certificate(ca.cert_pem())
        .unwrap();
    let pushed = trusting
        .push_random(&repo, "v1", ManifestFormat::Oci)
        .await
        .unwrap();
    assert_eq!(
        trusting.manifest_digest(&repo, "v1").await.unwrap(),
        Some(pushed.digest)
    );
}

/// A token server where alice owns `alice/*`, bob owns `bob/*`, and anyone may pull `public/*`.
async fn team_token_server(config: TokenServerConfig) -> TokenServer {
    TokenServer::start(
        config
            .user("alice", "wonderland")
            .user("bob", "builder")
            .grant(Grant::user("alice", "alice/*", &["pull", "push", "delete"]))
            .grant(Grant::user("alice", "public/*", &["pull", "push"]))
            .grant(Grant::user("bob", "bob/*", &["pull", "push"]))
            .grant(Grant::anonymous("public/*", &["pull"])),
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn a_token_registry_accepts_a_token_for_the_repository_and_refuses_one_for_another() {
    let env = crate::support::env().await;
    let server = team_token_server(TokenServerConfig::default()).await;
    let registry = env
        .start_registry(
            "token",
            &RegistryOptions {
                token_auth: Some(server.token_auth()),
                ..RegistryOptions::default()
            },
        )
        .await
        .unwrap();
    let base = registry.base_url();
    let mine = repository("alice");
    let theirs = repository("bob");

    let alice = ImagePusher::for_registry(&registry).with_credentials("alice", "wonderland");
    let pushed = alice
        .push_random(&mine, "v1", ManifestFormat::Oci)
        .await
        .unwrap();
    // One token, asked for pull and push at the first challenge, serves the whole push.
    let log = server.requests();
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(log[0].user.as_deref(), Some("alice"));
    assert_eq!(
        log[0].outcome,
        TokenOutcome::Issued {
            access: vec![Access::repository(&mine, &["pull", "push"])]
        }
    );
    let bob = ImagePusher::for_registry(&registry).with_credentials("bob", "builder");
    bob.push_random(&theirs, "v1", ManifestFormat::Oci)
        .await
        .unwrap();

    // Without a token the registry challenges with the server's realm.
    let challenge = http()
        .head(format!("{base}/v2/{mine}/manifests/v1"))
        .send()
        .await
        .unwrap();
    assert_eq!(challenge.status(), 401);
    let www = challenge.headers()["www-authenticate"].to_str().unwrap();
    assert!(
        www.starts_with("Bearer ") && www.contains(server.realm()),
        "{www}"
    );

    let for_mine = bearer(
        &server,
        Some(("alice", "wonderland")),
        &format!("repository:{mine}:pull"),
    )
    .await;
    let head = head_manifest(&base, &mine, "v1", Some(&for_mine)).await;
    assert_eq!(head.status, 200, "{head:?}");
    assert_eq!(head.digest.as_deref(), Some(pushed.digest.as_str()));

    // Alice's token for her own repository does not open bob's, and asking for bob's gets nothing.
    assert_eq!(
        head_manifest(&base, &theirs, "v1", Some(&for_mine))
            .await
            .status,
        401
    );
    let asked = bearer(
        &server,
        Some(("alice", "wonderland")),
        &format!("repository:{theirs}:pull"),
    )
    .await;
    assert_eq!(
        head_manifest(&base, &theirs, "v1", Some(&asked))
            .await
            .status,
        401
    );
    assert_eq!(
        server.requests().last().unwrap().outcome,
        TokenOutcome::Issued { access: vec![] }
    );
    // Bob cannot push into alice's repository either.
    let refused = bob
        .push_random(&mine, "v2", ManifestFormat::Oci)
        .await
        .unwrap_err();
    assert_eq!(refused.status(), Some(401), "{refused}");
    // A well-signed token for another repository is refused too.
    let minted = server.issue("alice", &[Access::repository(&theirs, &["pull"])]);
    let head = head_manifest(&base, &mine, "v1", Some(&format!("Bearer {minted}"))).await;
    assert_eq!(head.status, 401);

    // Wrong credentials get no token at all.
    let wrong = ImagePusher::for_registry(&registry).with_credentials("alice", "nope");
    let err = wrong
        .push_random(&mine, "v3", ManifestFormat::Oci)
        .await
        .unwrap_err();
    assert!(matches!(err, PushError::Token { .. }), "{err}");
    assert_eq!(
        server.requests().last().unwrap().outcome,
        TokenOutcome::Unauthorized
    );
}

#[tokio::test]
async fn an_anonymous_token_pulls_a_public_repository_but_cannot_push() {
    let env = crate::support::env().await;
    let server = team_token_server(TokenServerConfig::default()).await;
    let registry = env
        .start_registry(
            "token-anon",
            &RegistryOptions {
                token_auth: Some(server.token_auth()),
                ..RegistryOptions::default()
            },
        )
        .await
        .unwrap();
    let public = repository("public");
    let alice = ImagePusher::for_registry(&registry).with_credentials("alice", "wonderland");
    let pushed = alice
        .push_random_index(
            &public,
            "latest",
            ManifestFormat::Docker,
            &[Platform::linux("amd64"), Platform::linux("arm64")],
        )
        .await
        .unwrap();

    let anonymous = bearer(&server, None, &format!("repository:{public}:pull")).await;
    let head = head_manifest(&registry.base_url(), &public, "latest", Some(&anonymous)).await;
    assert_eq!(head.digest.as_deref(), Some(pushed.digest.as_str()));
    let last = server.requests().last().unwrap().clone();
    assert_eq!(last.user, None);

    let refused = ImagePusher::for_registry(&registry)
        .push_random(&public, "mine", ManifestFormat::Docker)
        .await
        .unwrap_err();
    assert_eq!(refused.status(), Some(401), "{refused}");
}

#[tokio::test]
async fn a_token_naming_its_key_by_libtrust_key_id_is_accepted() {
    let env = crate::support::env().await;
    let server = team_token_server(TokenServerConfig {
        key_reference: KeyReference::LibtrustKeyId,
        ..TokenServerConfig::default()
    })
    .await;
    let registry = env
        .start_registry(
            "token-kid",
            &RegistryOptions {
                token_auth: Some(server.token_auth()),
                ..RegistryOptions::default()
            },
        )
        .await
        .unwrap();
    let repo = repository("alice");
    let alice = ImagePusher::for_registry(&registry).with_credentials("alice", "wonderland");
    let pushed = alice
        .push_random(&repo, "v1", ManifestFormat::Oci)
        .await
        .unwrap();
    assert_eq!(
        alice.manifest_digest(&repo, "v1").await.unwrap(),
        Some(pushed.digest.clone())
    );

    // A delete needs the `delete` action: the pusher answers the new challenge with a new token.
    alice.delete_manifest(&repo, &pushed.digest).await.unwrap();
    assert_eq!(alice.manifest_digest(&repo, "v1").await.unwrap(), None);
    let issued: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| r.issued())
        .collect();
    assert_eq!(issued.len(), 2, "{issued:?}");
    assert!(
        issued[1]
            .scopes
            .contains(&format!("repository:{repo}:delete")),
        "{issued:?}"
    );
}

/// Pushes as alice to a new token registry whose tokens expired `expired_for` ago.
async fn push_with_tokens_expired_for(expired_for: Duration) -> Result<(), PushError> {
    let env = crate::support::env().await;
    let server = team_token_server(TokenServerConfig {
        expires_in: Duration::from_secs(1),
        backdate: expired_for + Duration::from_secs(1),
        ..TokenServerConfig::default()
    })
    .await;
    let registry = env
        .start_registry(
            "token-expiry",
            &RegistryOptions {
                token_auth: Some(server.token_auth()),
                ..RegistryOptions::default()
            },
        )
        .await
        .unwrap();
    let alice = ImagePusher::for_registry(&registry).with_credentials("alice", "wonderland");
    let pushed = alice
        .push_random(&repository("alice"), "v1", ManifestFormat::Oci)
        .await;
    assert!(server.issued_count() >= 1);
    pushed.map(|_| ())
}

#[tokio::test]
async fn a_token_past_its_expiry_and_the_registry_leeway_is_refused() {
    // Distribution accepts a token up to 60 seconds after its `exp`.
    push_with_tokens_expired_for(Duration::from_secs(20))
        .await
        .unwrap();
    let refused = push_with_tokens_expired_for(Duration::from_secs(120))
        .await
        .unwrap_err();
    assert_eq!(refused.status(), Some(401), "{refused}");
}

#[tokio::test]
async fn a_refresh_token_buys_access_tokens_without_the_password() {
    let env = crate::support::env().await;
    let server = team_token_server(TokenServerConfig::default()).await;
    let registry = env
        .start_registry(
            "token-refresh",
            &RegistryOptions {
                token_auth: Some(server.token_auth()),
                ..RegistryOptions::default()
            },
        )
        .await
        .unwrap();
    let repo = repository("alice");
    let pushed = ImagePusher::for_registry(&registry)
        .with_credentials("alice", "wonderland")
        .push_random(&repo, "v1", ManifestFormat::Oci)
        .await
        .unwrap();
    let scope = format!("repository:{repo}:pull");

    let mut offline = Url::parse(server.realm()).unwrap();
    offline
        .query_pairs_mut()
        .append_pair("service", server.service())
        .append_pair("offline_token", "true")
        .append_pair("scope", &scope);
    let body: serde_json::Value = http()
        .get(offline)
        .header("Authorization", basic_authorization("alice", "wonderland"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let refresh_token = body["refresh_token"].as_str().unwrap().to_owned();

    let post = |pairs: Vec<(&str, String)>| {
        let borrowed: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
        http()
            .post(server.realm())
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(form(&borrowed))
            .send()
    };
    let response = post(vec![
        ("grant_type", "refresh_token".into()),
        ("refresh_token", refresh_token.clone()),
        ("service", server.service().into()),
        ("scope", scope.clone()),
        ("client_id", "harness".into()),
    ])
    .await
    .unwrap();
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    let token = format!("Bearer {}", body["access_token"].as_str().unwrap());
    let head = head_manifest(&registry.base_url(), &repo, "v1", Some(&token)).await;
    assert_eq!(head.digest.as_deref(), Some(pushed.digest.as_str()));
    let last = server.requests().last().unwrap().clone();
    assert_eq!(
        (last.method.as_str(), last.user.as_deref()),
        ("POST", Some("alice"))
    );

    let unknown = post(vec![
        ("grant_type", "refresh_token".into()),
        ("refresh_token", "not-a-refresh-token".into()),
        ("service", server.service().into()),
        ("scope", scope.clone()),
    ])
    .await
    .unwrap();
    assert_eq!(unknown.status(), 401);

    let by_password = post(vec![
        ("grant_type", "password".into()),
        ("username", "alice".into()),
        ("password", "wonderland".into()),
        ("service", server.service().into()),
        ("scope", scope),
    ])
    .await
    .unwrap();
    assert_eq!(by_password.status(), 200);
    let logged = server.requests().last().unwrap().query.clone();
    assert!(
        logged.contains("password=***") && !logged.contains("wonderland"),
        "{logged}"
    );
}
