//! An in-process token service for a registry in `auth: token` mode (the Docker token protocol):
//! `GET /token` with Basic or no credentials and `POST /token` (OAuth2 password and refresh-token
//! grants), ES256 JWTs the registry verifies against [`TokenServer::root_cert_bundle`], per-user
//! grants on repository patterns, and a log of every token request so tests can count fetches.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::{Form, Query, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD as BASE64, URL_SAFE_NO_PAD as BASE64URL};
use rcgen::{CertificateParams, DnType, KeyPair, PublicKeyData};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use serde::Serialize;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::TestEnvError;
use super::registry::TokenAuth;

/// How the token's JOSE header names the key that signed it; distribution 2.8 accepts both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeyReference {
    /// `x5c`: the signing certificate itself, verified against the root bundle.
    #[default]
    CertificateChain,
    /// `kid`: the libtrust key ID (`ABCD:EFGH:…`) of the key, looked up among the bundle's keys.
    LibtrustKeyId,
}

/// Who a [`Grant`] applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grantee {
    /// Requests without credentials.
    Anonymous,
    /// One authenticated user.
    User(String),
    /// Every authenticated user.
    AnyUser,
}

/// Actions a grantee may get on the repositories matching a pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// Who gets the actions.
    pub grantee: Grantee,
    /// A repository name, or a prefix ending in `*` (`team/*`; `*` alone matches every repository).
    pub repository: String,
    /// `pull`, `push`, `delete`, `*`.
    pub actions: Vec<String>,
}

impl Grant {
    /// `actions` on `repository` for the user `username`.
    pub fn user(username: &str, repository: &str, actions: &[&str]) -> Self {
        Self::new(Grantee::User(username.into()), repository, actions)
    }

    /// `actions` on `repository` for requests without credentials.
    pub fn anonymous(repository: &str, actions: &[&str]) -> Self {
        Self::new(Grantee::Anonymous, repository, actions)
    }

    /// `actions` on `repository` for every authenticated user.
    pub fn any_user(repository: &str, actions: &[&str]) -> Self {
        Self::new(Grantee::AnyUser, repository, actions)
    }

    fn new(grantee: Grantee, repository: &str, actions: &[&str]) -> Self {
        Self {
            grantee,
            repository: repository.into(),
            actions: actions.iter().map(|a| (*a).to_owned()).collect(),
        }
    }

    fn applies_to(&self, user: Option<&str>, repository: &str) -> bool {
        let grantee = match (&self.grantee, user) {
            (Grantee::Anonymous, None) | (Grantee::AnyUser, Some(_)) => true,
            (Grantee::User(name), Some(user)) => name == user,
            _ => false,
        };
        let matches = match self.repository.strip_suffix('*') {
            Some(prefix) => repository.starts_with(prefix),
            None => self.repository == repository,
        };
        grantee && matches
    }
}

/// How a token server is set up.
#[derive(Debug, Clone)]
pub struct TokenServerConfig {
    /// The `service` (the token's `aud`) the registry is configured with.
    pub service: String,
    /// The `iss` of every token.
    pub issuer: String,
    /// The tokens' lifetime, and the `expires_in` of the answer.
    pub expires_in: Duration,
    /// Moves `iat`, `nbf` and `exp` this far into the past. Distribution accepts a token up to 60
    /// seconds after its `exp`, so a backdate beyond `expires_in` + 60 s yields tokens the registry
    /// refuses as expired from the start.
    pub backdate: Duration,
    /// Users and their passwords, checked against Basic credentials and password grants.
    pub users: Vec<(String, String)>,
    /// What each grantee may do; a requested action no grant gives is left out of the token.
    pub grants: Vec<Grant>,
    /// How the header names the signing key.
    pub key_reference: KeyReference,
}

impl Default for TokenServerConfig {
    fn default() -> Self {
        Self {
            service: "testenv-registry".into(),
            issuer: "testenv-token-server".into(),
            expires_in: Duration::from_secs(300),
            backdate: Duration::ZERO,
            users: Vec::new(),
            grants: Vec::new(),
            key_reference: KeyReference::default(),
        }
    }
}

impl TokenServerConfig {
    /// Adds a user.
    pub fn user(mut self, username: &str, password: &str) -> Self {
        self.users.push((username.into(), password.into()));
        self
    }

    /// Adds a grant.
    pub fn grant(mut self, grant: Grant) -> Self {
        self.grants.push(grant);
        self
    }

    /// Sets the token lifetime.
    pub fn expires_in(mut self, expires_in: Duration) -> Self {
        self.expires_in = expires_in;
        self
    }
}

/// One resource and the actions a token allows on it (an entry of the `access` claim).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Access {
    /// `repository`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The repository name.
    pub name: String,
    /// The granted actions.
    pub actions: Vec<String>,
}

impl Access {
    /// `actions` on the repository `name`.
    pub fn repository(name: &str, actions: &[&str]) -> Self {
        Self {
            kind: "repository".into(),
            name: name.into(),
            actions: actions.iter().map(|a| (*a).to_owned()).collect(),
        }
    }
}

/// What the token server answered to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenOutcome {
    /// A token with this access (possibly none of what was asked).
    Issued {
        /// The `access` claim of the token.
        access: Vec<Access>,
    },
    /// 401: wrong credentials or an unknown refresh token.
    Unauthorized,
    /// 400: a request the server does not understand (wrong service, unknown grant type, …).
    Rejected {
        /// Why.
        reason: String,
    },
}

/// One request the token server answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRequest {
    /// `GET` or `POST`.
    pub method: String,
    /// The query string (GET) or form body (POST), with any `password` value replaced by `***`.
    pub query: String,
    /// The user the request authenticated as (Basic, password grant or refresh token); `None` when
    /// anonymous or refused.
    pub user: Option<String>,
    /// The requested scopes (`repository:team/app:pull,push`).
    pub scopes: Vec<String>,
    /// The answer.
    pub outcome: TokenOutcome,
}

impl TokenRequest {
    /// Whether a token was issued.
    pub fn issued(&self) -> bool {
        matches!(self.outcome, TokenOutcome::Issued { .. })
    }
}

/// A running token server on 127.0.0.1; it stops when dropped.
pub struct TokenServer {
    shared: Arc<Shared>,
    realm: String,
    root_cert_bundle: PathBuf,
    task: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

struct Shared {
    config: TokenServerConfig,
    signer: Signer,
    refresh_tokens: Mutex<HashMap<String, String>>,
    log: Mutex<Vec<TokenRequest>>,
}

impl TokenServer {
    /// Generates a signing key and its certificate, writes the bundle, and starts serving `/token`
    /// on a free port of 127.0.0.1 in the current tokio runtime.
    pub async fn start(config: TokenServerConfig) -> Result<Self, TestEnvError> {
        let (signer, cert_pem) = Signer::generate(config.key_reference)?;
        let dir = tempfile::Builder::new()
            .prefix("testenv-token-server-")
            .tempdir()
            .map_err(|source| TestEnvError::Io {
                what: "create a directory for the token server".into(),
                source,
            })?;
        let root_cert_bundle = dir.path().join("root-certs.pem");
        super::write_file(&root_cert_bundle, &cert_pem)?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|source| TestEnvError::Io {
                what: "listen on 127.0.0.1 for the token server".into(),
                source,
            })?;
        let address = listener.local_addr().map_err(|source| TestEnvError::Io {
            what: "read the token server's address".into(),
            source,
        })?;
        let shared = Arc::new(Shared {
            config,
            signer,
            refresh_tokens: Mutex::new(HashMap::new()),
            log: Mutex::new(Vec::new()),
        });
        let app = Router::new()
            .route("/token", get(get_token).post(post_token))
            .with_state(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self {
            shared,
            realm: format!("http://{address}/token"),
            root_cert_bundle,
            task,
            _dir: dir,
        })
    }

    /// `http://127.0.0.1:<port>/token`: the realm of the registry's challenge.
    pub fn realm(&self) -> &str {
        &self.realm
    }

    /// The service (token audience) the registry must be configured with.
    pub fn service(&self) -> &str {
        &self.shared.config.service
    }

    /// The issuer the registry must trust.
    pub fn issuer(&self) -> &str {
        &self.shared.config.issuer
    }

    /// The PEM file with the certificate of the signing key: the registry's `rootcertbundle`.
    pub fn root_cert_bundle(&self) -> &Path {
        &self.root_cert_bundle
    }

    /// The registry settings that make it trust this server, for [`super::RegistryOptions::token_auth`].
    pub fn token_auth(&self) -> TokenAuth {
        TokenAuth {
            realm: self.realm.clone(),
            service: self.service().into(),
            issuer: self.issuer().into(),
            root_cert_bundle: self.root_cert_bundle.clone(),
        }
    }

    /// Every request answered so far, oldest first.
    pub fn requests(&self) -> Vec<TokenRequest> {
        self.shared
            .log
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The number of tokens issued so far.
    pub fn issued_count(&self) -> usize {
        self.requests().iter().filter(|r| r.issued()).count()
    }

    /// Signs a token for `subject` with exactly `access`, bypassing users and grants (for a token
    /// the registry must refuse, e.g. one for another repository).
    pub fn issue(&self, subject: &str, access: &[Access]) -> String {
        self.shared.sign(subject, access)
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Shared {
    fn record(&self, request: TokenRequest) {
        self.log
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(request);
    }

    fn check_password(&self, user: &str, password: &str) -> bool {
        self.config
            .users
            .iter()
            .any(|(u, p)| u == user && p == password)
    }

    /// The granted part of each requested scope; scopes of other types get nothing.
    fn access_for(&self, user: Option<&str>, scopes: &[String]) -> Vec<Access> {
        let mut granted: Vec<Access> = Vec::new();
        for scope in scopes {
            let Some((kind, name, actions)) = parse_scope(scope) else {
                continue;
            };
            if kind != "repository" {
                continue;
            }
            let allowed: Vec<&str> = self
                .config
                .grants
                .iter()
                .filter(|g| g.applies_to(user, name))
                .flat_map(|g| g.actions.iter().map(String::as_str))
                .collect();
            let actions: Vec<String> = actions
                .into_iter()
                .filter(|a| allowed.contains(a) || allowed.contains(&"*"))
                .map(str::to_owned)
                .collect();
            if actions.is_empty() {
                continue;
            }
            match granted.iter_mut().find(|a| a.name == name) {
                Some(existing) => {
                    for action in actions {
                        if !existing.actions.contains(&action) {
                            existing.actions.push(action);
                        }
                    }
                }
                None => granted.push(Access {
                    kind: kind.into(),
                    name: name.into(),
                    actions,
                }),
            }
        }
        granted
    }

    fn sign(&self, subject: &str, access: &[Access]) -> String {
        let now = unix_seconds(SystemTime::now()) - self.config.backdate.as_secs() as i64;
        let claims = json!({
            "iss": self.config.issuer,
            "sub": subject,
            "aud": self.config.service,
            "exp": now + self.config.expires_in.as_secs() as i64,
            "nbf": now,
            "iat": now,
            "jti": random_id(),
            "access": access,
        });
        self.signer.sign(&claims)
    }

    /// The JSON answer with a fresh token; `refresh_token` when one was asked for.
    fn token_response(
        &self,
        user: Option<&str>,
        access: &[Access],
        refresh_token: Option<String>,
    ) -> serde_json::Value {
        let token = self.sign(user.unwrap_or(""), access);
        let issued_at = SystemTime::now() - self.config.backdate;
        let mut body = json!({
            "token": token,
            "access_token": token,
            "expires_in": self.config.expires_in.as_secs(),
            "issued_at": humantime::format_rfc3339_seconds(issued_at).to_string(),
        });
        if let Some(refresh_token) = refresh_token {
            body["refresh_token"] = json!(refresh_token);
        }
        body
    }

    fn new_refresh_token(&self, user: &str) -> String {
        let token = random_id();
        self.refresh_tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(token.clone(), user.into());
        token
    }
}

/// The values of `key` in `pairs`, with space-separated values split (OAuth2 sends several scopes in
/// one `scope`, the Docker protocol repeats the parameter).
fn values(pairs: &[(String, String)], key: &str) -> Vec<String> {
    pairs
        .iter()
        .filter(|(k, _)| k == key)
        .flat_map(|(_, v)| v.split(' ').filter(|s| !s.is_empty()).map(str::to_owned))
        .collect()
}

fn value<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// `type:name:actions`, where the name may itself hold a `:`-free path and the type a `(class)`.
fn parse_scope(scope: &str) -> Option<(&str, &str, Vec<&str>)> {
    let (kind, rest) = scope.split_once(':')?;
    let (name, actions) = rest.rsplit_once(':')?;
    let kind = kind.split_once('(').map_or(kind, |(k, _)| k);
    Some((
        kind,
        name,
        actions.split(',').filter(|a| !a.is_empty()).collect(),
    ))
}

fn error_response(status: StatusCode, code: &str, message: &str) -> Response {
    let body = Json(json!({
        "errors": [{ "code": code, "message": message }],
        "error": code.to_ascii_lowercase(),
    }));
    if status == StatusCode::UNAUTHORIZED {
        (
            status,
            [(header::WWW_AUTHENTICATE, "Basic realm=\"testenv-token\"")],
            body,
        )
            .into_response()
    } else {
        (status, body).into_response()
    }
}

/// The Basic credentials of a request: `None` without an `Authorization` header, `Some(Err)` when
/// it is not well-formed Basic.
fn basic_credentials(headers: &HeaderMap) -> Option<Result<(String, String), ()>> {
    let value = headers.get(header::AUTHORIZATION)?;
    let parsed = value
        .to_str()
        .ok()
        .and_then(|v| {
            v.strip_prefix("Basic ")
                .or_else(|| v.strip_prefix("basic "))
        })
        .and_then(|encoded| BASE64.decode(encoded.trim()).ok())
        .and_then(|decoded| String::from_utf8(decoded).ok())
        .and_then(|text| {
            text.split_once(':')
                .map(|(u, p)| (u.to_owned(), p.to_owned()))
        });
    Some(parsed.ok_or(()))
}

async fn get_token(
    State(shared): State<Arc<Shared>>,
    RawQuery(raw): RawQuery,
    Query(pairs): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Response {
    let scopes = values(&pairs, "scope");
    let mut entry = TokenRequest {
        method: "GET".into(),
        query: raw.unwrap_or_default(),
        user: None,
        scopes: scopes.clone(),
        outcome: TokenOutcome::Unauthorized,
    };
    let user = match basic_credentials(&headers) {
        None => None,
        Some(Ok((user, password))) if shared.check_password(&user, &password) => Some(user),
        Some(_) => {
            shared.record(entry);
            return error_response(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", "bad credentials");
        }
    };
    entry.user = user.clone();
    if let Some(service) = value(&pairs, "service")
        && service != shared.config.service
    {
        let reason = format!("unknown service {service:?}");
        entry.outcome = TokenOutcome::Rejected {
            reason: reason.clone(),
        };
        shared.record(entry);
        return error_response(StatusCode::BAD_REQUEST, "DENIED", &reason);
    }
    let access = shared.access_for(user.as_deref(), &scopes);
    let refresh_token = match (&user, value(&pairs, "offline_token")) {
        (Some(user), Some("true")) => Some(shared.new_refresh_token(user)),
        _ => None,
    };
    let body = shared.token_response(user.as_deref(), &access, refresh_token);
    entry.outcome = TokenOutcome::Issued { access };
    shared.record(entry);
    Json(body).into_response()
}

async fn post_token(
    State(shared): State<Arc<Shared>>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Response {
    let scopes = values(&pairs, "scope");
    let query = pairs
        .iter()
        .map(|(k, v)| {
            let v = if k == "password" { "***" } else { v.as_str() };
            format!("{k}={v}")
        })
        .collect::<Vec<_>>()
        .join("&");
    let mut entry = TokenRequest {
        method: "POST".into(),
        query,
        user: None,
        scopes: scopes.clone(),
        outcome: TokenOutcome::Unauthorized,
    };
    let reject = |mut entry: TokenRequest, reason: String| {
        entry.outcome = TokenOutcome::Rejected {
            reason: reason.clone(),
        };
        shared.record(entry);
        error_response(StatusCode::BAD_REQUEST, "INVALID_REQUEST", &reason)
    };
    if let Some(service) = value(&pairs, "service")
        && service != shared.config.service
    {
        return reject(entry, format!("unknown service {service:?}"));
    }
    let (user, refresh_token) = match value(&pairs, "grant_type") {
        Some("refresh_token") => {
            let token = value(&pairs, "refresh_token").unwrap_or_default();
            let known = shared
                .refresh_tokens
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(token)
                .cloned();
            match known {
                Some(user) => (user, None),
                None => {
                    shared.record(entry);
                    return error_response(
                        StatusCode::UNAUTHORIZED,
                        "INVALID_GRANT",
                        "unknown refresh token",
                    );
                }
            }
        }
        Some("password") => {
            let user = value(&pairs, "username").unwrap_or_default();
            let password = value(&pairs, "password").unwrap_or_default();
            if !shared.check_password(user, password) {
                shared.record(entry);
                return error_response(
                    StatusCode::UNAUTHORIZED,
                    "INVALID_GRANT",
                    "bad credentials",
                );
            }
            let refresh = (value(&pairs, "access_type") == Some("offline"))
                .then(|| shared.new_refresh_token(user));
            (user.to_owned(), refresh)
        }
        other => return reject(entry, format!("unsupported grant_type {other:?}")),
    };
    entry.user = Some(user.clone());
    let access = shared.access_for(Some(&user), &scopes);
    let mut body = shared.token_response(Some(&user), &access, refresh_token);
    body["scope"] = json!(scopes.join(" "));
    entry.outcome = TokenOutcome::Issued { access };
    shared.record(entry);
    Json(body).into_response()
}

/// The ES256 key that signs tokens, and the encoded JOSE header that names it.
struct Signer {
    key: EcdsaKeyPair,
    rng: SystemRandom,
    encoded_header: String,
}

impl Signer {
    /// A fresh P-256 key and a self-signed certificate for it (PEM): distribution verifies an `x5c`
    /// chain against the bundle with any key usage, and a certificate in the roots is its own chain.
    fn generate(reference: KeyReference) -> Result<(Self, String), TestEnvError> {
        let cert_error = |source| TestEnvError::Certificate { source };
        let key_pair = KeyPair::generate().map_err(cert_error)?;
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(cert_error)?;
        params
            .distinguished_name
            .push(DnType::CommonName, "testenv token signer");
        let cert = params.self_signed(&key_pair).map_err(cert_error)?;
        let rng = SystemRandom::new();
        let key = EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            &key_pair.serialize_der(),
            &rng,
        )
        .map_err(|err| TestEnvError::Io {
            what: "load the token signing key".into(),
            source: std::io::Error::other(err.to_string()),
        })?;
        let header = match reference {
            KeyReference::CertificateChain => json!({
                "typ": "JWT",
                "alg": "ES256",
                "x5c": [BASE64.encode(cert.der())],
            }),
            KeyReference::LibtrustKeyId => json!({
                "typ": "JWT",
                "alg": "ES256",
                "kid": libtrust_key_id(&key_pair.subject_public_key_info()),
            }),
        };
        let encoded_header = BASE64URL.encode(header.to_string());
        Ok((
            Self {
                key,
                rng,
                encoded_header,
            },
            cert.pem(),
        ))
    }

    /// `header.claims.signature`, the signature being the JWS form (r‖s, 64 bytes).
    fn sign(&self, claims: &serde_json::Value) -> String {
        let signing_input = format!(
            "{}.{}",
            self.encoded_header,
            BASE64URL.encode(claims.to_string())
        );
        let signature = self
            .key
            .sign(&self.rng, signing_input.as_bytes())
            .expect("ECDSA signing with a valid key does not fail");
        format!("{signing_input}.{}", BASE64URL.encode(signature.as_ref()))
    }
}

/// libtrust's key ID: the first 240 bits of SHA-256 over the DER SubjectPublicKeyInfo, base32
/// without padding, in groups of four joined by `:` (`ABCD:EFGH:…`, twelve groups).
pub fn libtrust_key_id(spki_der: &[u8]) -> String {
    let hash = Sha256::digest(spki_der);
    let encoded = base32(&hash[..30]);
    encoded
        .as_bytes()
        .chunks(4)
        .map(|c| std::str::from_utf8(c).expect("base32 is ASCII"))
        .collect::<Vec<_>>()
        .join(":")
}

/// RFC 4648 base32 without padding.
fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::new();
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for &byte in bytes {
        buffer = (buffer << 8) | u32::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((buffer >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    out
}

fn unix_seconds(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn random_id() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base32_matches_the_rfc_4648_test_vectors() {
        for (input, expected) in [
            ("", ""),
            ("f", "MY"),
            ("fo", "MZXQ"),
            ("foo", "MZXW6"),
            ("foob", "MZXW6YQ"),
            ("fooba", "MZXW6YTB"),
            ("foobar", "MZXW6YTBOI"),
        ] {
            assert_eq!(base32(input.as_bytes()), expected, "{input:?}");
        }
    }

    #[test]
    fn a_libtrust_key_id_is_twelve_groups_of_four() {
        let id = libtrust_key_id(b"any key");
        let groups: Vec<&str> = id.split(':').collect();
        assert_eq!(groups.len(), 12, "{id}");
        assert!(groups.iter().all(|g| g.len() == 4), "{id}");
    }

    #[test]
    fn a_scope_splits_into_type_name_and_actions() {
        assert_eq!(
            parse_scope("repository:team/app:pull,push"),
            Some(("repository", "team/app", vec!["pull", "push"]))
        );
        assert_eq!(
            parse_scope("repository(plugin):team/app:pull"),
            Some(("repository", "team/app", vec!["pull"]))
        );
        assert_eq!(parse_scope("registry:catalog:*").unwrap().2, vec!["*"]);
        assert_eq!(parse_scope("nonsense"), None);
    }

    #[test]
    fn grants_match_their_grantee_and_repository_pattern() {
        let cases = [
            (
                Grant::user("alice", "alice/*", &["pull"]),
                Some("alice"),
                "alice/app",
                true,
            ),
            (
                Grant::user("alice", "alice/*", &["pull"]),
                Some("bob"),
                "alice/app",
                false,
            ),
            (
                Grant::user("alice", "alice/*", &["pull"]),
                None,
                "alice/app",
                false,
            ),
            (
                Grant::user("alice", "alice/app", &["pull"]),
                Some("alice"),
                "alice/app2",
                false,
            ),
            (
                Grant::anonymous("public/*", &["pull"]),
                None,
                "public/x",
                true,
            ),
            (
                Grant::anonymous("public/*", &["pull"]),
                Some("alice"),
                "public/x",
                false,
            ),
            (
                Grant::any_user("*", &["pull"]),
                Some("bob"),
                "anything/at/all",
                true,
            ),
            (Grant::any_user("*", &["pull"]), None, "anything", false),
        ];
        for (grant, user, repository, expected) in cases {
            assert_eq!(
                grant.applies_to(user, repository),
                expected,
                "{grant:?} {user:?} {repository}"
            );
        }
    }
}
