//! Imports from registries that want credentials or TLS, against the real kube-apiserver, real
//! distribution registries (htpasswd, `auth: token` with the test token server, HTTPS with a test
//! CA) and pull Secrets: which Secret serves which namespace, rotation and exclusion, and what the
//! registry and token service saw. Also: a cross-stream tag copy does not follow its source.

use std::path::PathBuf;
use std::time::Duration;

use crate::support::*;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use imagestream_operator::api::ImageStream;
use imagestream_operator::api::image_stream::{TagImportPolicy, TagReference, TagSource};
use imagestream_operator::controller::IMPORT_REQUESTED_ANNOTATION;
use imagestream_operator::registry::{RegistryClient, RegistryClientConfig};
use imagestream_testenv::images::{ImagePusher, ManifestFormat};
use imagestream_testenv::token_server::{
    Grant, TokenOutcome, TokenRequest, TokenServer, TokenServerConfig,
};
use imagestream_testenv::{
    Registry, RegistryOptions, RegistryRequest, TestCa, TestEnv, write_htpasswd,
};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;

/// Long enough that no scheduled check happens during a test that does not want one.
const NEVER: Duration = Duration::from_secs(900);

/// How long a Secret change is given to reach the operator's cache before an import is requested.
const SECRET_PROPAGATION: Duration = Duration::from_secs(2);

/// A registry with Basic auth from an htpasswd file; the directory lives as long as the registry.
async fn basic_auth_registry(
    env: &TestEnv,
    name: &str,
    users: &[(&str, &str)],
) -> (Registry, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let htpasswd: PathBuf = dir.path().join("htpasswd");
    write_htpasswd(&htpasswd, users).unwrap();
    let registry = env
        .start_registry(
            name,
            &RegistryOptions {
                htpasswd: Some(htpasswd),
                ..RegistryOptions::default()
            },
        )
        .await
        .unwrap();
    (registry, dir)
}

/// A registry in `auth: token` mode that trusts `server`.
async fn token_registry(env: &TestEnv, name: &str, server: &TokenServer) -> Registry {
    env.start_registry(
        name,
        &RegistryOptions {
            token_auth: Some(server.token_auth()),
            ..RegistryOptions::default()
        },
    )
    .await
    .unwrap()
}

/// A `.dockerconfigjson` payload with one entry for `host`.
fn docker_config_json(host: &str, username: &str, password: &str) -> String {
    let auth = BASE64.encode(format!("{username}:{password}"));
    json!({
        "auths": {
            host: { "username": username, "password": password, "auth": auth }
        }
    })
    .to_string()
}

/// Creates a `kubernetes.io/dockerconfigjson` Secret in `namespace` for `host`.
async fn create_pull_secret(
    client: &Client,
    namespace: &str,
    name: &str,
    host: &str,
    (username, password): (&str, &str),
    excluded: bool,
) -> Secret {
    let mut metadata = ObjectMeta {
        name: Some(name.into()),
        ..ObjectMeta::default()
    };
    if excluded {
        metadata.annotations = Some(
            [(
                "openshift.io/image.excludeSecret".to_owned(),
                "true".to_owned(),
            )]
            .into(),
        );
    }
    let secret = Secret {
        metadata,
        type_: Some("kubernetes.io/dockerconfigjson".into()),
        string_data: Some(
            [(
                ".dockerconfigjson".to_owned(),
                docker_config_json(host, username, password),
            )]
            .into(),
        ),
        ..Secret::default()
    };
    Api::<Secret>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &secret)
        .await
        .unwrap()
}

/// Merge-patches a Secret (its data or annotations).
async fn patch_secret(client: &Client, namespace: &str, name: &str, patch: serde_json::Value) {
    Api::<Secret>::namespaced(client.clone(), namespace)
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
}

/// Asks for an immediate import of `name` the documented way: a new value of the annotation.
async fn request_import(api: &Api<ImageStream>, name: &str) {
    let value = format!("request-{:08x}", rand::random::<u32>());
    let patch = json!({ "metadata": { "annotations": { IMPORT_REQUESTED_ANNOTATION: value } } });
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
}

/// A `DockerImage` tag that does not allow plain HTTP or unverified TLS.
fn verified_docker_tag(name: &str, from: &str) -> TagReference {
    TagReference {
        name: name.into(),
        from: Some(TagSource {
            kind: Some("DockerImage".into()),
            name: Some(from.into()),
            ..TagSource::default()
        }),
        import_policy: Some(TagImportPolicy {
            scheduled: Some(false),
            insecure: Some(false),
            ..TagImportPolicy::default()
        }),
        ..TagReference::default()
    }
}

/// A tag that copies `stream:tag` of the same namespace.
fn stream_tag(name: &str, source: &str) -> TagReference {
    TagReference {
        name: name.into(),
        from: Some(TagSource {
            kind: Some("ImageStreamTag".into()),
            name: Some(source.into()),
            ..TagSource::default()
        }),
        ..TagReference::default()
    }
}

/// The requests the operator sent for `repository` (the pusher's agent is
/// `imagestream-operator-testenv`, the operator's `imagestream-operator/<version>`).
fn operator_requests(registry: &Registry, repository: &str) -> Vec<RegistryRequest> {
    registry
        .requests_for(repository)
        .into_iter()
        .filter(|r| r.user_agent.starts_with("imagestream-operator/"))
        .collect()
}

/// Waits for the tag's failure condition and returns its reason.
async fn failure_reason(api: &Api<ImageStream>, stream: &str, tag: &str) -> (String, ImageStream) {
    let failed = wait_for(api, stream, "the failure condition", |s| {
        condition_reason(s, tag).is_some()
    })
    .await;
    (condition_reason(&failed, tag).unwrap(), failed)
}

/// Whether a token request asked about `repository`.
fn asks_for(request: &TokenRequest, repository: &str) -> bool {
    let prefix = format!("repository:{repository}:");
    request.scopes.iter().any(|s| s.starts_with(&prefix))
}

/// Whether a token request was answered with some access to `repository`.
fn grants_access_to(request: &TokenRequest, repository: &str) -> bool {
    match &request.outcome {
        TokenOutcome::Issued { access } => access
            .iter()
            .any(|a| a.name == repository && !a.actions.is_empty()),
        _ => false,
    }
}

#[tokio::test]
async fn basic_auth_imports_with_a_dockerconfigjson_secret_and_is_unauthorized_without_one() {
    let env = crate::support::env().await;
    let with_secret = env.namespace("creds-basic").await;
    let without_secret = env.namespace("creds-basic").await;
    let client = env.client().await;
    let (registry, _dir) =
        basic_auth_registry(env, "basic", &[("alice", "wonderland"), ("pusher", "push")]).await;
    let repository = unique("basic");
    let pushed = ImagePusher::for_registry(&registry)
        .with_credentials("pusher", "push")
        .push_random(&repository, "v1", ManifestFormat::Oci)
        .await
        .unwrap();
    create_pull_secret(
        &client,
        &with_secret,
        "registry-alice",
        registry.host(),
        ("alice", "wonderland"),
        false,
    )
    .await;
    let _with = start_operator(client.clone(), &with_secret, config(NEVER)).await;
    let _without = start_operator(client.clone(), &without_secret, config(NEVER)).await;
    let from = format!("{}/{repository}:v1", registry.host());

    let api = Api::<ImageStream>::namespaced(client.clone(), &with_secret);
    create_stream(&api, "app", vec![docker_tag("v1", &from, false)]).await;
    let stream = wait_for(&api, "app", "the import with the secret", |s| {
        current_image(s, "v1").is_some() || condition_reason(s, "v1").is_some()
    })
    .await;
    assert_eq!(
        current_image(&stream, "v1"),
        Some(pushed.digest.clone()),
        "{}",
        condition_message(&stream, "v1")
    );
    assert_eq!(condition_reason(&stream, "v1"), None);
    let seen = operator_requests(&registry, &repository);
    assert!(
        seen.iter().any(|r| r.method == "HEAD" && r.status == 200),
        "no authenticated HEAD: {seen:?}"
    );

    let api = Api::<ImageStream>::namespaced(client.clone(), &without_secret);
    create_stream(&api, "app", vec![docker_tag("v1", &from, false)]).await;
    let (reason, failed) = failure_reason(&api, "app", "v1").await;
    assert_eq!(
        reason,
        "Unauthorized",
        "{}",
        condition_message(&failed, "v1")
    );
    assert!(history(&failed, "v1").is_empty());
    let message = condition_message(&failed, "v1");
    assert!(!message.contains("wonderland"), "{message}");
}

#[tokio::test]
async fn the_bearer_flow_imports_with_a_pull_secret_and_idle_cycles_send_only_heads_and_fetch_no_token()
 {
    let env = crate::support::env().await;
    let ns = env.namespace("creds-bearer").await;
    let client = env.client().await;
    let repository = unique("bearer");
    let server = TokenServer::start(
        TokenServerConfig::default()
            .user("pusher", "push")
            .user("alice", "wonderland")
            .grant(Grant::user("pusher", "*", &["pull", "push"]))
            .grant(Grant::user("alice", &repository, &["pull"])),
    )
    .await
    .unwrap();
    let registry = token_registry(env, "bearer", &server).await;
    let pushed = ImagePusher::for_registry(&registry)
        .with_credentials("pusher", "push")
        .push_random(&repository, "latest", ManifestFormat::Docker)
        .await
        .unwrap();
    create_pull_secret(
        &client,
        &ns,
        "registry-alice",
        registry.host(),
        ("alice", "wonderland"),
        false,
    )
    .await;
    let token_mark = server.requests().len();
    let _operator = start_operator(client.clone(), &ns, config(Duration::from_secs(1))).await;
    let api = Api::<ImageStream>::namespaced(client.clone(), &ns);
    let from = format!("{}/{repository}:latest", registry.host());
    create_stream(&api, "app", vec![docker_tag("latest", &from, true)]).await;
    let settled = wait_for(&api, "app", "the first import", |s| {
        current_image(s, "latest").is_some() || condition_reason(s, "latest").is_some()
    })
    .await;
    assert_eq!(
        current_image(&settled, "latest"),
        Some(pushed.digest.clone()),
        "{}",
        condition_message(&settled, "latest")
    );
    // The operator got its token as alice, for pulling this repository.
    let fetched: Vec<_> = server.requests().into_iter().skip(token_mark).collect();
    assert!(
        fetched
            .iter()
            .any(|r| r.user.as_deref() == Some("alice") && grants_access_to(r, &repository)),
        "{fetched:?}"
    );
    assert!(
        fetched.iter().all(|r| r.user.as_deref() == Some("alice")),
        "a token request without alice's credentials: {fetched:?}"
    );

    // Idle cycles: HEADs with the cached token, no new token.
    let request_mark = operator_requests(&registry, &repository).len();
    let token_mark = server.requests().len();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let idle: Vec<RegistryRequest> = operator_requests(&registry, &repository)
        .into_iter()
        .skip(request_mark)
        .collect();
    assert!(
        idle.iter().filter(|r| r.method == "HEAD").count() >= 2,
        "expected at least two scheduled checks in 4s: {idle:?}"
    );
    assert!(
        idle.iter().all(|r| r.method == "HEAD"),
        "an idle cycle sent more than HEADs: {idle:?}"
    );
    let new_tokens: Vec<_> = server.requests().into_iter().skip(token_mark).collect();
    assert!(
        new_tokens.is_empty(),
        "idle cycles fetched tokens while the cached one was valid: {new_tokens:?}"
    );
    let stream = api.get("app").await.unwrap();
    assert_eq!(history(&stream, "latest"), vec![pushed.digest.clone()]);
    assert_eq!(condition_reason(&stream, "latest"), None);
}

#[tokio::test]
async fn two_namespaces_with_different_credentials_for_one_registry_never_borrow_each_others() {
    let env = crate::support::env().await;
    let ns_a = env.namespace("creds-tenant-a").await;
    let ns_b = env.namespace("creds-tenant-b").await;
    let client = env.client().await;
    let repo_a = unique("tenant-a");
    let repo_b = unique("tenant-b");
    let server = TokenServer::start(
        TokenServerConfig::default()
            .user("user-a", "secret-a")
            .user("user-b", "secret-b")
            .grant(Grant::user("user-a", &repo_a, &["pull", "push"]))
            .grant(Grant::user("user-b", &repo_b, &["pull", "push"])),
    )
    .await
    .unwrap();
    let registry = token_registry(env, "tenants", &server).await;
    let image_a = ImagePusher::for_registry(&registry)
        .with_credentials("user-a", "secret-a")
        .push_random(&repo_a, "latest", ManifestFormat::Oci)
        .await
        .unwrap();
    let image_b = ImagePusher::for_registry(&registry)
        .with_credentials("user-b", "secret-b")
        .push_random(&repo_b, "latest", ManifestFormat::Oci)
        .await
        .unwrap();
    create_pull_secret(
        &client,
        &ns_a,
        "registry",
        registry.host(),
        ("user-a", "secret-a"),
        false,
    )
    .await;
    create_pull_secret(
        &client,
        &ns_b,
        "registry",
        registry.host(),
        ("user-b", "secret-b"),
        false,
    )
    .await;
    // One registry client for both, as one operator serving both namespaces has: its token cache
    // and connections are shared, the credentials must not be.
    let shared = RegistryClient::new(RegistryClientConfig::default()).unwrap();
    let _a = start_operator_sharing(client.clone(), &ns_a, config(NEVER), shared.clone()).await;
    let _b = start_operator_sharing(client.clone(), &ns_b, config(NEVER), shared).await;
    let api_a = Api::<ImageStream>::namespaced(client.clone(), &ns_a);
    let api_b = Api::<ImageStream>::namespaced(client.clone(), &ns_b);
    let from_a = format!("{}/{repo_a}:latest", registry.host());
    let from_b = format!("{}/{repo_b}:latest", registry.host());

    create_stream(&api_a, "app", vec![docker_tag("own", &from_a, false)]).await;
    create_stream(&api_b, "app", vec![docker_tag("own", &from_b, false)]).await;
    for (api, digest) in [(&api_a, &image_a.digest), (&api_b, &image_b.digest)] {
        let stream = wait_for(api, "app", "each tenant's own import", |s| {
            current_image(s, "own").is_some() || condition_reason(s, "own").is_some()
        })
        .await;
        assert_eq!(
            current_image(&stream, "own").as_ref(),
            Some(digest),
            "{}",
            condition_message(&stream, "own")
        );
    }

    // Tenant A now points at B's repository, whose token for user-b is in the shared cache.
    let token_mark = server.requests().len();
    let request_mark = operator_requests(&registry, &repo_b).len();
    create_stream(&api_a, "borrow", vec![docker_tag("theirs", &from_b, false)]).await;
    let (reason, failed) = failure_reason(&api_a, "borrow", "theirs").await;
    assert!(
        reason == "Unauthorized" || reason == "Forbidden",
        "{reason}: {}",
        condition_message(&failed, "theirs")
    );
    assert!(history(&failed, "theirs").is_empty());
    // A's import asked for B's repository with A's credentials only, and B's repository never
    // answered the operator with content on A's behalf.
    let since: Vec<_> = server.requests().into_iter().skip(token_mark).collect();
    assert!(
        since.iter().any(|r| asks_for(r, &repo_b)),
        "A's import asked for no token: {since:?}"
    );
    assert!(
        since
            .iter()
            .filter(|r| asks_for(r, &repo_b))
            .all(|r| r.user.as_deref() == Some("user-a")),
        "a token request for A's import was not made as user-a: {since:?}"
    );
    let answered: Vec<RegistryRequest> = operator_requests(&registry, &repo_b)
        .into_iter()
        .skip(request_mark)
        .collect();
    assert!(!answered.is_empty(), "A's import never asked the registry");
    assert!(
        answered.iter().all(|r| r.status == 401 || r.status == 403),
        "B's repository answered A's import: {answered:?}"
    );
    // Over the whole test, every token that opened B's repository went to user-b.
    let log = server.requests();
    assert!(
        log.iter()
            .filter(|r| grants_access_to(r, &repo_b))
            .all(|r| r.user.as_deref() == Some("user-b")),
        "{log:?}"
    );
    assert!(
        log.iter()
            .filter(|r| grants_access_to(r, &repo_a))
            .all(|r| r.user.as_deref() == Some("user-a")),
        "{log:?}"
    );
    // B's own stream is untouched.
    let b = api_b.get("app").await.unwrap();
    assert_eq!(history(&b, "own"), vec![image_b.digest.clone()]);
}

#[tokio::test]
async fn an_excluded_secret_is_not_used() {
    let env = crate::support::env().await;
    let ns = env.namespace("creds-excluded").await;
    let client = env.client().await;
    let (registry, _dir) = basic_auth_registry(env, "excluded", &[("alice", "wonderland")]).await;
    let repository = unique("excluded");
    let pushed = ImagePusher::for_registry(&registry)
        .with_credentials("alice", "wonderland")
        .push_random(&repository, "v1", ManifestFormat::Oci)
        .await
        .unwrap();
    create_pull_secret(
        &client,
        &ns,
        "registry-alice",
        registry.host(),
        ("alice", "wonderland"),
        true,
    )
    .await;
    let _operator = start_operator(client.clone(), &ns, config(NEVER)).await;
    let api = Api::<ImageStream>::namespaced(client.clone(), &ns);
    let from = format!("{}/{repository}:v1", registry.host());
    create_stream(&api, "app", vec![docker_tag("v1", &from, false)]).await;
    let (reason, failed) = failure_reason(&api, "app", "v1").await;
    assert_eq!(
        reason,
        "Unauthorized",
        "{}",
        condition_message(&failed, "v1")
    );
    assert!(history(&failed, "v1").is_empty());

    // The same Secret without the exclusion serves the import: it was the exclusion that counted.
    patch_secret(
        &client,
        &ns,
        "registry-alice",
        json!({ "metadata": { "annotations": { "openshift.io/image.excludeSecret": null } } }),
    )
    .await;
    tokio::time::sleep(SECRET_PROPAGATION).await;
    request_import(&api, "app").await;
    let imported = wait_for(&api, "app", "the import once the secret is included", |s| {
        current_image(s, "v1").is_some()
    })
    .await;
    assert_eq!(current_image(&imported, "v1"), Some(pushed.digest.clone()));
    assert_eq!(condition_reason(&imported, "v1"), None);
}

#[tokio::test]
async fn a_secret_in_another_namespace_is_never_used() {
    let env = crate::support::env().await;
    let owner = env.namespace("creds-owner").await;
    let other = env.namespace("creds-other").await;
    let client = env.client().await;
    let (registry, _dir) = basic_auth_registry(env, "foreign", &[("alice", "wonderland")]).await;
    let repository = unique("foreign");
    let pushed = ImagePusher::for_registry(&registry)
        .with_credentials("alice", "wonderland")
        .push_random(&repository, "v1", ManifestFormat::Oci)
        .await
        .unwrap();
    create_pull_secret(
        &client,
        &owner,
        "registry-alice",
        registry.host(),
        ("alice", "wonderland"),
        false,
    )
    .await;
    let shared = RegistryClient::new(RegistryClientConfig::default()).unwrap();
    let _owner_op =
        start_operator_sharing(client.clone(), &owner, config(NEVER), shared.clone()).await;
    let _other_op = start_operator_sharing(client.clone(), &other, config(NEVER), shared).await;
    let from = format!("{}/{repository}:v1", registry.host());

    // The Secret is good: its own namespace imports with it.
    let owner_api = Api::<ImageStream>::namespaced(client.clone(), &owner);
    create_stream(&owner_api, "app", vec![docker_tag("v1", &from, false)]).await;
    let imported = wait_for(&owner_api, "app", "the owner's import", |s| {
        current_image(s, "v1").is_some() || condition_reason(s, "v1").is_some()
    })
    .await;
    assert_eq!(
        current_image(&imported, "v1"),
        Some(pushed.digest.clone()),
        "{}",
        condition_message(&imported, "v1")
    );

    let mark = operator_requests(&registry, &repository).len();
    let other_api = Api::<ImageStream>::namespaced(client.clone(), &other);
    create_stream(&other_api, "app", vec![docker_tag("v1", &from, false)]).await;
    let (reason, failed) = failure_reason(&other_api, "app", "v1").await;
    assert_eq!(
        reason,
        "Unauthorized",
        "{}",
        condition_message(&failed, "v1")
    );
    assert!(history(&failed, "v1").is_empty());
    let since: Vec<RegistryRequest> = operator_requests(&registry, &repository)
        .into_iter()
        .skip(mark)
        .collect();
    assert!(
        !since.is_empty(),
        "the other namespace's import sent nothing"
    );
    assert!(
        since.iter().all(|r| r.status == 401),
        "a request for the other namespace was let in: {since:?}"
    );
}

#[tokio::test]
async fn a_rotated_secret_takes_effect_on_a_requested_import_without_a_spec_change() {
    let env = crate::support::env().await;
    let ns = env.namespace("creds-rotate").await;
    let client = env.client().await;
    let (registry, _dir) = basic_auth_registry(env, "rotate", &[("alice", "wonderland")]).await;
    let repository = unique("rotate");
    let pushed = ImagePusher::for_registry(&registry)
        .with_credentials("alice", "wonderland")
        .push_random(&repository, "v1", ManifestFormat::Oci)
        .await
        .unwrap();
    create_pull_secret(
        &client,
        &ns,
        "registry-alice",
        registry.host(),
        ("alice", "expired-password"),
        false,
    )
    .await;
    let _operator = start_operator(client.clone(), &ns, config(NEVER)).await;
    let api = Api::<ImageStream>::namespaced(client.clone(), &ns);
    let from = format!("{}/{repository}:v1", registry.host());
    create_stream(&api, "app", vec![docker_tag("v1", &from, false)]).await;
    let (reason, failed) = failure_reason(&api, "app", "v1").await;
    assert_eq!(
        reason,
        "Unauthorized",
        "{}",
        condition_message(&failed, "v1")
    );
    let generation = failed.metadata.generation;

    patch_secret(
        &client,
        &ns,
        "registry-alice",
        json!({ "stringData": {
            ".dockerconfigjson": docker_config_json(registry.host(), "alice", "wonderland")
        } }),
    )
    .await;
    tokio::time::sleep(SECRET_PROPAGATION).await;
    request_import(&api, "app").await;
    let imported = wait_for(&api, "app", "the import with the rotated secret", |s| {
        current_image(s, "v1").is_some()
    })
    .await;
    assert_eq!(current_image(&imported, "v1"), Some(pushed.digest.clone()));
    assert_eq!(condition_reason(&imported, "v1"), None);
    assert_eq!(imported.metadata.generation, generation, "the spec changed");
}

#[tokio::test]
async fn a_tls_registry_signed_by_a_test_ca_imports_with_that_ca_and_fails_with_tls_error_without()
{
    let env = crate::support::env().await;
    let trusting = env.namespace("creds-tls-ca").await;
    let default = env.namespace("creds-tls-default").await;
    let client = env.client().await;
    let ca = TestCa::new("import-credentials-ca").unwrap();
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
    let repository = unique("tls");
    let pushed = ImagePusher::for_registry(&registry)
        .with_root_certificate(ca.cert_pem())
        .unwrap()
        .push_random(&repository, "v1", ManifestFormat::Oci)
        .await
        .unwrap();
    let with_ca = RegistryClientConfig {
        extra_ca_pem: Some(ca.cert_pem().as_bytes().to_vec()),
        ..Default::default()
    };
    let _trusting = start_operator_with(client.clone(), &trusting, config(NEVER), with_ca).await;
    let _default = start_operator(client.clone(), &default, config(NEVER)).await;
    let from = format!("{}/{repository}:v1", registry.host());

    let api = Api::<ImageStream>::namespaced(client.clone(), &trusting);
    create_stream(&api, "app", vec![verified_docker_tag("v1", &from)]).await;
    let stream = wait_for(&api, "app", "the import over verified TLS", |s| {
        current_image(s, "v1").is_some() || condition_reason(s, "v1").is_some()
    })
    .await;
    assert_eq!(
        current_image(&stream, "v1"),
        Some(pushed.digest.clone()),
        "{}",
        condition_message(&stream, "v1")
    );
    let seen = operator_requests(&registry, &repository);
    assert!(
        seen.iter().any(|r| r.method == "HEAD" && r.status == 200),
        "{seen:?}"
    );

    let api = Api::<ImageStream>::namespaced(client.clone(), &default);
    create_stream(&api, "app", vec![verified_docker_tag("v1", &from)]).await;
    let (reason, failed) = failure_reason(&api, "app", "v1").await;
    assert_eq!(reason, "TLSError", "{}", condition_message(&failed, "v1"));
    assert!(history(&failed, "v1").is_empty());
}

#[tokio::test]
async fn a_cross_stream_copy_does_not_follow_its_source_until_an_import_is_requested() {
    let env = crate::support::env().await;
    let ns = env.namespace("creds-copy").await;
    let client = env.client().await;
    let registry = env.registry();
    let repository = unique("copy");
    let pusher = ImagePusher::for_registry(registry);
    let first = pusher
        .push_random(&repository, "latest", ManifestFormat::Oci)
        .await
        .unwrap();
    let _operator = start_operator(client.clone(), &ns, config(Duration::from_secs(1))).await;
    let api = Api::<ImageStream>::namespaced(client.clone(), &ns);
    let from = format!("{}/{repository}:latest", registry.host());
    create_stream(&api, "a", vec![docker_tag("latest", &from, true)]).await;
    wait_for(&api, "a", "a:latest", |s| {
        current_image(s, "latest") == Some(first.digest.clone())
    })
    .await;
    create_stream(&api, "b", vec![stream_tag("copy", "a:latest")]).await;
    let copied = wait_for(&api, "b", "the copy", |s| {
        current_image(s, "copy").is_some() || condition_reason(s, "copy").is_some()
    })
    .await;
    assert_eq!(
        current_image(&copied, "copy"),
        Some(first.digest.clone()),
        "{}",
        condition_message(&copied, "copy")
    );
    let generation = copied.metadata.generation;

    let second = pusher
        .push_random(&repository, "latest", ManifestFormat::Oci)
        .await
        .unwrap();
    wait_for(&api, "a", "a:latest to move", |s| {
        current_image(s, "latest") == Some(second.digest.clone())
    })
    .await;
    // Several scheduled cycles later the copy still holds the first image.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let b = api.get("b").await.unwrap();
    assert_eq!(history(&b, "copy"), vec![first.digest.clone()]);

    request_import(&api, "b").await;
    let refreshed = wait_for(&api, "b", "the refreshed copy", |s| {
        current_image(s, "copy") == Some(second.digest.clone())
    })
    .await;
    assert_eq!(
        history(&refreshed, "copy"),
        vec![second.digest.clone(), first.digest.clone()]
    );
    assert_eq!(refreshed.metadata.generation, generation);
}

#[tokio::test]
async fn a_pull_secret_larger_than_256_kib_is_refused_with_a_warning_and_the_others_still_serve() {
    let env = crate::support::env().await;
    let ns = env.namespace("creds-large").await;
    let client = env.client().await;
    let (registry, _dir) = basic_auth_registry(env, "large", &[("alice", "wonderland")]).await;
    let repository = unique("large");
    let pushed = ImagePusher::for_registry(&registry)
        .with_credentials("alice", "wonderland")
        .push_random(&repository, "v1", ManifestFormat::Oci)
        .await
        .unwrap();
    // 3,000 made-up registries beside the real one: about 300 KiB, well under the API server's
    // limit for a Secret.
    let mut auths = serde_json::Map::new();
    for n in 0..3000 {
        auths.insert(
            format!("registry-{n:04}.example.com"),
            json!({"auth": BASE64.encode(format!("user{n}:password-{n:04}-padding-padding"))}),
        );
    }
    auths.insert(
        registry.host().to_owned(),
        json!({"auth": BASE64.encode("alice:wonderland")}),
    );
    let payload = json!({ "auths": auths }).to_string();
    assert!(payload.len() > 256 * 1024 && payload.len() < 1024 * 1024);
    let large = Secret {
        metadata: ObjectMeta {
            name: Some("everything".into()),
            ..ObjectMeta::default()
        },
        type_: Some("kubernetes.io/dockerconfigjson".into()),
        string_data: Some([(".dockerconfigjson".to_owned(), payload)].into()),
        ..Secret::default()
    };
    Api::<Secret>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &large)
        .await
        .unwrap();
    create_pull_secret(
        &client,
        &ns,
        "registry-alice",
        registry.host(),
        ("alice", "wonderland"),
        false,
    )
    .await;
    let _operator = start_operator(client.clone(), &ns, config(NEVER)).await;
    let api = Api::<ImageStream>::namespaced(client.clone(), &ns);
    let from = format!("{}/{repository}:v1", registry.host());
    create_stream(&api, "app", vec![docker_tag("v1", &from, false)]).await;
    let imported = wait_for(&api, "app", "the import with the small secret", |s| {
        current_image(s, "v1").is_some() || condition_reason(s, "v1").is_some()
    })
    .await;
    assert_eq!(
        current_image(&imported, "v1"),
        Some(pushed.digest.clone()),
        "{}",
        condition_message(&imported, "v1")
    );
    let warnings = eventually(
        "a Warning Event on the large secret",
        Duration::from_secs(30),
        || async {
            let warnings = warnings_on(&client, &ns, "everything").await;
            if warnings.is_empty() {
                Err("none yet".to_owned())
            } else {
                Ok(warnings)
            }
        },
    )
    .await;
    assert_eq!(warnings.len(), 1);
    assert_eq!(warnings[0].reason.as_deref(), Some("PullSecretTooLarge"));
    let note = warnings[0].note.clone().unwrap_or_default();
    assert!(note.contains("262144"), "{note}");
    assert!(
        !note.contains("wonderland") && !note.contains("padding"),
        "{note}"
    );
}

#[tokio::test]
async fn a_token_realm_that_goes_away_is_learned_again_from_the_registrys_next_challenge() {
    let env = crate::support::env().await;
    let ns = env.namespace("creds-realm").await;
    let client = env.client().await;
    let repository = unique("realm");
    let token_server = || {
        TokenServer::start(
            TokenServerConfig::default()
                .user("pusher", "push")
                .user("alice", "wonderland")
                .grant(Grant::user("pusher", "*", &["pull", "push"]))
                .grant(Grant::user("alice", &repository, &["pull"])),
        )
    };
    let first_server = token_server().await.unwrap();
    let mut first_registry = token_registry(env, "realm-a", &first_server).await;
    let port: u16 = first_registry
        .host()
        .rsplit_once(':')
        .unwrap()
        .1
        .parse()
        .unwrap();
    let first = ImagePusher::for_registry(&first_registry)
        .with_credentials("pusher", "push")
        .push_random(&repository, "latest", ManifestFormat::Oci)
        .await
        .unwrap();
    create_pull_secret(
        &client,
        &ns,
        "registry-alice",
        first_registry.host(),
        ("alice", "wonderland"),
        false,
    )
    .await;
    let _operator = start_operator(client.clone(), &ns, config(Duration::from_secs(1))).await;
    let api = Api::<ImageStream>::namespaced(client.clone(), &ns);
    let from = format!("{}/{repository}:latest", first_registry.host());
    create_stream(&api, "app", vec![docker_tag("latest", &from, true)]).await;
    wait_for(&api, "app", "the import through the first realm", |s| {
        current_image(s, "latest") == Some(first.digest.clone())
    })
    .await;

    // The registry moves to another token service: the old realm is gone (connections refused)
    // and the registry, at the same address, now challenges with the new one.
    drop(first_server);
    first_registry.stop();
    let second_server = token_server().await.unwrap();
    let second_registry = env
        .start_registry(
            "realm-b",
            &RegistryOptions {
                token_auth: Some(second_server.token_auth()),
                port: Some(port),
                ..RegistryOptions::default()
            },
        )
        .await
        .unwrap();
    let second = ImagePusher::for_registry(&second_registry)
        .with_credentials("pusher", "push")
        .push_random(&repository, "latest", ManifestFormat::Oci)
        .await
        .unwrap();
    let mut reasons_seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let stream = api.get("app").await.unwrap();
        if let Some(reason) = condition_reason(&stream, "latest") {
            reasons_seen.push(reason);
        }
        if current_image(&stream, "latest") == Some(second.digest.clone()) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the new realm was never learned; conditions seen: {reasons_seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        !reasons_seen.iter().any(|r| r == "NotFound"),
        "a token failure read as a missing tag: {reasons_seen:?}"
    );
    assert!(
        second_server
            .requests()
            .iter()
            .any(|r| r.issued() && r.user.as_deref() == Some("alice")),
        "the operator never asked the new realm"
    );
}
