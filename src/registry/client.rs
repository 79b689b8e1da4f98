//! The registry client the importer uses: `HEAD` a manifest to detect changes, `GET` a manifest or
//! blob by digest and verify it. Authentication follows the 401 challenge of the real request
//! (Basic, or Bearer tokens from the realm), tried per candidate credential, never across tenants.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use futures::FutureExt;
use reqwest::header::{
    ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HeaderMap, HeaderValue, WWW_AUTHENTICATE,
};
use reqwest::{Method, StatusCode, Url};
use sha2::{Digest, Sha256, Sha512};

use super::challenge::{Challenge, parse_challenges};
use super::error::{RegistryError, RequestFailure, error_body_message};
use super::limits::{HostLimits, LimitsConfig};
use super::manifest::{
    ImageConfig, MANIFEST_ACCEPT, ParsedManifest, effective_media_type, is_valid_digest,
    parse_image_config, parse_manifest,
};
use super::metrics::RegistryMetrics;
use super::redact::{Secrets, redact};
use super::token_cache::{
    ANONYMOUS_IDENTITY, BearerToken, ObtainedToken, TokenCache, TokenGrant, TokenKey,
    parse_token_response,
};
use super::transport::{Exchange, Outgoing, Transport, TransportConfig, authority, requested_wait};
use crate::domain::credential::RegistryCredential;
use crate::domain::text::shorten;

/// The largest manifest accepted by default (Docker Hub's own limit is 4 MiB).
pub const DEFAULT_MAX_MANIFEST_BYTES: u64 = 4 * 1024 * 1024;
/// The largest image config blob accepted by default.
pub const DEFAULT_MAX_CONFIG_BYTES: u64 = 8 * 1024 * 1024;
/// The largest token service answer accepted.
const MAX_TOKEN_RESPONSE_BYTES: u64 = 1024 * 1024;
/// How many (host, repository) entries of accepted candidates are kept.
const MAX_REMEMBERED_CANDIDATES: usize = 4096;
/// How many origins' challenges, and hosts' schemes, are kept.
const MAX_REMEMBERED_ORIGINS: usize = 4096;
/// The OAuth2 `client_id` of refresh-token grants.
const OAUTH_CLIENT_ID: &str = "imagestream-operator";

/// Settings of the registry client. `Default` gives the operator's defaults.
#[derive(Debug, Clone)]
pub struct RegistryClientConfig {
    /// The limit on one whole request, from connecting to the last body byte.
    pub request_timeout: Duration,
    /// The limit on establishing a connection.
    pub connect_timeout: Duration,
    /// Per-host concurrency and backoff.
    pub limits: LimitsConfig,
    /// PEM certificates trusted for all registries in addition to the system roots.
    pub extra_ca_pem: Option<Vec<u8>>,
    /// The largest manifest accepted.
    pub max_manifest_bytes: u64,
    /// The largest image config accepted by [`RegistryClient::get_image_config`].
    pub max_config_bytes: u64,
    /// How long before its expiry a bearer token stops being used.
    pub token_expiry_margin: Duration,
    /// Refuse link-local and cloud metadata addresses (hosts, realms, redirects, DNS answers).
    pub refuse_link_local: bool,
    /// The `User-Agent` sent.
    pub user_agent: String,
    /// Where request metrics are recorded.
    pub metrics: RegistryMetrics,
}

impl Default for RegistryClientConfig {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            limits: LimitsConfig::default(),
            extra_ca_pem: None,
            max_manifest_bytes: DEFAULT_MAX_MANIFEST_BYTES,
            max_config_bytes: DEFAULT_MAX_CONFIG_BYTES,
            token_expiry_margin: Duration::from_secs(30),
            refuse_link_local: true,
            user_agent: concat!("imagestream-operator/", env!("CARGO_PKG_VERSION")).to_owned(),
            metrics: RegistryMetrics::new(),
        }
    }
}

/// A manifest in a registry: host, repository and tag or digest, as plain strings.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ManifestTarget {
    /// The registry API host, `host[:port]` (`registry-1.docker.io`, `127.0.0.1:5000`).
    pub host: String,
    /// The repository path (`library/nginx`).
    pub repository: String,
    /// A tag (`1.25`) or digest (`sha256:…`).
    pub reference: String,
}

/// How one call may reach the registry: its transport security and the candidate credentials.
#[derive(Debug, Clone, Default)]
pub struct Access {
    /// Plain HTTP and unverified TLS are allowed for this call (`importPolicy.insecure`):
    /// HTTPS without verification is tried first, then plain HTTP; the scheme a host answered on is
    /// remembered, and a failure is reported as that scheme's.
    pub insecure: bool,
    /// Candidate credentials, in the order the kubelet would try them (`Keyring::lookup`). The
    /// next is tried when the registry refuses one (401/403); no credentials means anonymous access.
    pub credentials: Vec<RegistryCredential>,
}

/// The answer to a manifest `HEAD`: what the reference currently points to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestHead {
    /// The top-level manifest digest (`Docker-Content-Digest`): of the index or list for a
    /// multi-arch image.
    pub digest: String,
    /// The manifest media type (`Content-Type`), if the registry sent one.
    pub media_type: Option<String>,
    /// The manifest size in bytes (`Content-Length`), if the registry sent one.
    pub size: Option<u64>,
}

/// A manifest fetched by digest, verified and parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedManifest {
    /// The digest the manifest was requested by, which its bytes hash to.
    pub digest: String,
    /// The manifest media type.
    pub media_type: String,
    /// The manifest bytes.
    pub bytes: Vec<u8>,
    /// The parsed manifest.
    pub parsed: ParsedManifest,
}

/// An image config blob fetched by digest, verified and parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedConfig {
    /// The config digest, which its bytes hash to.
    pub digest: String,
    /// The config bytes.
    pub bytes: Vec<u8>,
    /// The parsed config.
    pub config: ImageConfig,
}

/// The registry client. Cheap to clone; clones share connections, tokens, limits and metrics,
/// so one client serves every reconciler.
#[derive(Clone)]
pub struct RegistryClient {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for RegistryClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryClient").finish_non_exhaustive()
    }
}

struct Inner {
    transport: Transport,
    tokens: TokenCache<RequestFailure>,
    /// The last challenge seen per origin, so later requests authenticate up front instead of
    /// collecting a 401 each time. A challenge is public (any client gets it), so sharing it
    /// between tenants reveals nothing; it is keyed by `insecure` too, so a challenge received
    /// over unverified TLS never sends a secure call's credentials to a realm it names.
    challenges: Mutex<HashMap<OriginKey, KnownChallenge>>,
    /// For insecure calls: the scheme each host last answered on (bounded). It is tried first
    /// next time, and its failures are the ones reported: the other scheme is only a check
    /// whether the host moved.
    insecure_schemes: Mutex<HashMap<String, &'static str>>,
    /// For insecure calls to a host whose scheme is not known yet: the first call finds it out
    /// while the others wait, so a burst of first calls to a plain-HTTP registry does not start
    /// with a failed TLS handshake each.
    scheme_probes: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// The identity of the candidate credential last accepted per (insecure, host, repository).
    /// Used only to reorder a call's own candidates, so it never lends a credential to anyone.
    accepted: Mutex<HashMap<(bool, String, String), String>>,
    max_manifest_bytes: u64,
    max_config_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct OriginKey {
    insecure: bool,
    origin: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum KnownChallenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

/// What a request carries in `Authorization`.
enum Authorization {
    None,
    Basic,
    Bearer {
        key: TokenKey,
        token: BearerToken,
        fresh: bool,
    },
}

/// How a request starts out, from the host's known challenge.
struct UpFront {
    /// What the first request carries.
    authorization: Authorization,
    /// The token request for the known challenge that failed, which made the client forget it.
    failed: Option<(TokenKey, RequestFailure)>,
}

/// A request to the registry API, before scheme and authentication are chosen.
struct RegistryRequest<'a> {
    method: Method,
    host: &'a str,
    repository: &'a str,
    path: String,
    accept: Option<&'static str>,
    body_limit: u64,
}

impl RegistryClient {
    /// Builds the client (its secure and insecure HTTP clients). Fails on a bad CA bundle or TLS
    /// set-up, and when no process-wide rustls crypto provider is installed (`main` and the test
    /// harness install ring), rather than panicking at the first TLS connection.
    pub fn new(config: RegistryClientConfig) -> Result<Self, RegistryError> {
        if rustls::crypto::CryptoProvider::get_default().is_none() {
            return Err(RegistryError::BuildClient {
                detail: "no rustls crypto provider is installed for this process".into(),
            });
        }
        let transport = Transport::new(
            TransportConfig {
                request_timeout: config.request_timeout,
                connect_timeout: config.connect_timeout,
                extra_ca_pem: config.extra_ca_pem,
                refuse_link_local: config.refuse_link_local,
                user_agent: config.user_agent,
            },
            HostLimits::new(config.limits),
            config.metrics,
        )
        .map_err(|e| RegistryError::BuildClient {
            detail: e.to_string(),
        })?;
        Ok(Self {
            inner: Arc::new(Inner {
                transport,
                tokens: TokenCache::new(config.token_expiry_margin),
                challenges: Mutex::default(),
                insecure_schemes: Mutex::default(),
                scheme_probes: Mutex::default(),
                accepted: Mutex::default(),
                max_manifest_bytes: config.max_manifest_bytes,
                max_config_bytes: config.max_config_bytes,
            }),
        })
    }

    /// The metrics this client records into.
    pub fn metrics(&self) -> &RegistryMetrics {
        self.inner.transport.metrics()
    }

    /// What `target` points to now, by one `HEAD` with all four manifest types in `Accept`. A
    /// failed `HEAD` is never retried as a `GET` (a `GET` is a counted pull on Docker Hub).
    pub async fn head_manifest(
        &self,
        target: &ManifestTarget,
        access: &Access,
    ) -> Result<ManifestHead, RegistryError> {
        validate_host(&target.host)?;
        validate_repository(&target.repository)?;
        validate_reference(&target.reference)?;
        let secrets = Secrets::of_credentials(&access.credentials);
        let fail = |source: RequestFailure| RegistryError::HeadManifest {
            registry: target.host.clone(),
            repository: target.repository.clone(),
            reference: target.reference.clone(),
            source: source.redacted(&secrets),
        };
        let exchange = self
            .registry_call(
                RegistryRequest {
                    method: Method::HEAD,
                    host: &target.host,
                    repository: &target.repository,
                    path: format!("/v2/{}/manifests/{}", target.repository, target.reference),
                    accept: Some(MANIFEST_ACCEPT),
                    body_limit: 0,
                },
                access,
                &secrets,
            )
            .await
            .map_err(fail)?;
        let digest = header(&exchange.headers, "docker-content-digest")
            .filter(|d| is_valid_digest(d))
            .ok_or_else(|| {
                fail(RequestFailure::InvalidResponse {
                    detail: "no valid Docker-Content-Digest header in the HEAD response".into(),
                })
            })?;
        if is_valid_digest(&target.reference) && digest != target.reference {
            return Err(fail(RequestFailure::DigestMismatch {
                expected: target.reference.clone(),
                actual: digest,
            }));
        }
        Ok(ManifestHead {
            digest,
            media_type: header(&exchange.headers, CONTENT_TYPE.as_str())
                .map(|v| media_type_of(&v))
                .filter(|v| !v.is_empty()),
            size: header(&exchange.headers, CONTENT_LENGTH.as_str()).and_then(|v| v.parse().ok()),
        })
    }

    /// The manifest `target.reference` (a digest) names, read completely (at most
    /// `max_manifest_bytes`), verified against the digest, and parsed.
    pub async fn get_manifest(
        &self,
        target: &ManifestTarget,
        access: &Access,
    ) -> Result<FetchedManifest, RegistryError> {
        validate_host(&target.host)?;
        validate_repository(&target.repository)?;
        validate_digest(&target.reference)?;
        let secrets = Secrets::of_credentials(&access.credentials);
        let fail = |source: RequestFailure| RegistryError::GetManifest {
            registry: target.host.clone(),
            repository: target.repository.clone(),
            digest: target.reference.clone(),
            source: source.redacted(&secrets),
        };
        let exchange = self
            .registry_call(
                RegistryRequest {
                    method: Method::GET,
                    host: &target.host,
                    repository: &target.repository,
                    path: format!("/v2/{}/manifests/{}", target.repository, target.reference),
                    accept: Some(MANIFEST_ACCEPT),
                    body_limit: self.inner.max_manifest_bytes,
                },
                access,
                &secrets,
            )
            .await
            .map_err(fail)?;
        verify_digest(&target.reference, &exchange.body).map_err(fail)?;
        let declared = header(&exchange.headers, CONTENT_TYPE.as_str()).unwrap_or_default();
        let media_type = effective_media_type(&declared, &exchange.body)
            .map_err(|e| fail(RequestFailure::invalid(e)))?;
        let parsed = parse_manifest(&media_type, &exchange.body)
            .map_err(|e| fail(RequestFailure::invalid(e)))?;
        Ok(FetchedManifest {
            digest: target.reference.clone(),
            media_type,
            bytes: exchange.body,
            parsed,
        })
    }

    /// The blob `digest` of `repository` on `host`, read completely (at most `max_bytes`) and
    /// verified against the digest. Redirects (to a CDN) are followed without credentials.
    pub async fn get_blob(
        &self,
        host: &str,
        repository: &str,
        digest: &str,
        access: &Access,
        max_bytes: u64,
    ) -> Result<Vec<u8>, RegistryError> {
        validate_host(host)?;
        validate_repository(repository)?;
        validate_digest(digest)?;
        let secrets = Secrets::of_credentials(&access.credentials);
        let fail = |source: RequestFailure| RegistryError::GetBlob {
            registry: host.to_owned(),
            repository: repository.to_owned(),
            digest: digest.to_owned(),
            source: source.redacted(&secrets),
        };
        let exchange = self
            .registry_call(
                RegistryRequest {
                    method: Method::GET,
                    host,
                    repository,
                    path: format!("/v2/{repository}/blobs/{digest}"),
                    accept: None,
                    body_limit: max_bytes,
                },
                access,
                &secrets,
            )
            .await
            .map_err(fail)?;
        verify_digest(digest, &exchange.body).map_err(fail)?;
        Ok(exchange.body)
    }

    /// The image config blob `digest` (at most `max_config_bytes`), verified and parsed.
    pub async fn get_image_config(
        &self,
        host: &str,
        repository: &str,
        digest: &str,
        access: &Access,
    ) -> Result<FetchedConfig, RegistryError> {
        let bytes = self
            .get_blob(
                host,
                repository,
                digest,
                access,
                self.inner.max_config_bytes,
            )
            .await?;
        let config = parse_image_config(&bytes).map_err(|e| RegistryError::GetBlob {
            registry: host.to_owned(),
            repository: repository.to_owned(),
            digest: digest.to_owned(),
            source: RequestFailure::invalid(e)
                .redacted(&Secrets::of_credentials(&access.credentials)),
        })?;
        Ok(FetchedConfig {
            digest: digest.to_owned(),
            bytes,
            config,
        })
    }

    /// Sends `request` with each candidate credential in turn until one is not refused. The
    /// candidate that was accepted last for this repository goes first, so a stale, more specific
    /// secret does not cost a refused request on every poll. Failures, and what is logged of
    /// them, are scrubbed of `secrets` (every candidate's) and of the tokens the call used.
    async fn registry_call(
        &self,
        request: RegistryRequest<'_>,
        access: &Access,
        secrets: &Secrets,
    ) -> Result<Exchange, RequestFailure> {
        let mut candidates: Vec<(Option<&RegistryCredential>, String)> =
            if access.credentials.is_empty() {
                vec![(None, ANONYMOUS_IDENTITY.to_owned())]
            } else {
                access
                    .credentials
                    .iter()
                    .map(|c| (Some(c), c.identity()))
                    .collect()
            };
        let memory_key = (
            access.insecure,
            request.host.to_owned(),
            request.repository.to_owned(),
        );
        if candidates.len() > 1 {
            let accepted = self
                .inner
                .accepted
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&memory_key)
                .cloned();
            if let Some(position) =
                accepted.and_then(|identity| candidates.iter().position(|(_, id)| *id == identity))
            {
                let preferred = candidates.remove(position);
                candidates.insert(0, preferred);
            }
        }
        let last = candidates.len() - 1;
        for (index, (credential, identity)) in candidates.iter().enumerate() {
            let result = self
                .authorized_call(&request, access.insecure, *credential, identity, secrets)
                .await;
            let refused = matches!(
                &result,
                Err(failure) if matches!(failure.status(), Some(401 | 403))
            );
            if refused && index < last {
                tracing::debug!(
                    registry = request.host,
                    credential = credential.map(|c| c.source.as_str()),
                    error = %result.as_ref().err().map(ToString::to_string).unwrap_or_default(),
                    "credential refused, trying the next one"
                );
                continue;
            }
            if !refused && last > 0 {
                let mut accepted = self
                    .inner
                    .accepted
                    .lock()
                    .unwrap_or_else(|e| e.into_inner());
                // Bounded: forgetting only costs one refused request per repository.
                if accepted.len() >= MAX_REMEMBERED_CANDIDATES {
                    accepted.clear();
                }
                accepted.insert(memory_key, identity.clone());
            }
            return result;
        }
        unreachable!("the last candidate always returns")
    }

    /// Sends `request` with one credential (or none): authenticated up front when the host's
    /// challenge is known, else after its 401; at most one retry after a 401. The failure is
    /// scrubbed of `secrets` and of every token the call obtained.
    async fn authorized_call(
        &self,
        request: &RegistryRequest<'_>,
        insecure: bool,
        credential: Option<&RegistryCredential>,
        identity: &str,
        secrets: &Secrets,
    ) -> Result<Exchange, RequestFailure> {
        let mut secrets = secrets.clone();
        self.authenticated_exchange(request, insecure, credential, identity, &mut secrets)
            .await
            .map_err(|failure| failure.redacted(&secrets))
    }

    /// The body of [`Self::authorized_call`]; adds each token it sends to `secrets`.
    async fn authenticated_exchange(
        &self,
        request: &RegistryRequest<'_>,
        insecure: bool,
        credential: Option<&RegistryCredential>,
        identity: &str,
        secrets: &mut Secrets,
    ) -> Result<Exchange, RequestFailure> {
        let UpFront {
            mut authorization,
            failed,
        } = self
            .authorize_up_front(request, insecure, credential, identity)
            .await?;
        let mut retried = false;
        loop {
            if let Authorization::Bearer { token, .. } = &authorization {
                secrets.add(token.secret());
            }
            let (exchange, origin) = self
                .send_to_registry(request, insecure, credential, &authorization, secrets)
                .await?;
            if exchange.status != StatusCode::UNAUTHORIZED {
                return success(exchange, secrets);
            }
            let refused = status_failure(&exchange, secrets);
            // A refused token is useless to every caller of its key.
            let refused_token = match &authorization {
                Authorization::Bearer {
                    key, token, fresh, ..
                } => {
                    self.inner.tokens.invalidate(key, token);
                    Some((key.clone(), *fresh))
                }
                _ => None,
            };
            if retried {
                return Err(refused);
            }
            retried = true;
            let challenge = parse_challenges(
                exchange
                    .headers
                    .get_all(WWW_AUTHENTICATE)
                    .iter()
                    .filter_map(|v| v.to_str().ok()),
            )
            .into_iter()
            .next();
            authorization = match challenge {
                None => return Err(refused),
                Some(Challenge::Basic) => {
                    self.remember(origin, KnownChallenge::Basic);
                    match (credential, &authorization) {
                        (None, _) | (Some(_), Authorization::Basic) => return Err(refused),
                        (Some(_), _) => Authorization::Basic,
                    }
                }
                Some(Challenge::Bearer(challenge)) => {
                    let known = KnownChallenge::Bearer {
                        realm: challenge.realm.clone(),
                        service: challenge.service.clone(),
                    };
                    self.remember(origin.clone(), known.clone());
                    let key = token_key(
                        &challenge.realm,
                        challenge.service.as_deref(),
                        request.repository,
                        identity,
                        insecure,
                    );
                    // A token issued just now for exactly this was refused: the credential lacks
                    // access, and another token would say the same.
                    if refused_token == Some((key.clone(), true)) {
                        return Err(refused);
                    }
                    // The realm failed up front in this very call, and the registry still names
                    // it: asking again would fail the same way.
                    if let Some((failed_key, failure)) = &failed
                        && *failed_key == key
                    {
                        self.forget(&origin, &known);
                        return Err(failure.clone());
                    }
                    let obtained = match self.token(&key, credential).await {
                        Ok(obtained) => obtained,
                        Err(failure) => {
                            if failure.discredits_challenge() {
                                self.forget(&origin, &known);
                            }
                            return Err(failure);
                        }
                    };
                    Authorization::Bearer {
                        key,
                        token: obtained.token,
                        fresh: obtained.fresh,
                    }
                }
            };
        }
    }

    /// The authorization a request starts with, from the host's known challenge. When the known
    /// realm fails to issue a token in a way a new challenge could change (not found, unreachable,
    /// a server error), the challenge is forgotten and the request goes without authorization,
    /// so the registry's 401 teaches the challenge it uses now; the failure comes back in
    /// [`UpFront::failed`] to end the call should the 401 name the same realm again.
    async fn authorize_up_front(
        &self,
        request: &RegistryRequest<'_>,
        insecure: bool,
        credential: Option<&RegistryCredential>,
        identity: &str,
    ) -> Result<UpFront, RequestFailure> {
        let scheme = self.schemes(request.host, insecure)[0];
        let origin = OriginKey {
            insecure,
            origin: format!("{scheme}://{}", request.host),
        };
        let known = self
            .inner
            .challenges
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&origin)
            .cloned();
        let authorization = match &known {
            None => Authorization::None,
            Some(KnownChallenge::Basic) if credential.is_some() => Authorization::Basic,
            Some(KnownChallenge::Basic) => Authorization::None,
            Some(bearer @ KnownChallenge::Bearer { realm, service }) => {
                let key = token_key(
                    realm,
                    service.as_deref(),
                    request.repository,
                    identity,
                    insecure,
                );
                match self.token(&key, credential).await {
                    Ok(obtained) => Authorization::Bearer {
                        key,
                        token: obtained.token,
                        fresh: obtained.fresh,
                    },
                    Err(failure) if failure.discredits_challenge() => {
                        tracing::debug!(
                            registry = request.host,
                            error = %failure,
                            "the known token realm failed; asking the registry for its challenge"
                        );
                        self.forget(&origin, bearer);
                        return Ok(UpFront {
                            authorization: Authorization::None,
                            failed: Some((key, failure)),
                        });
                    }
                    Err(failure) => return Err(failure),
                }
            }
        };
        Ok(UpFront {
            authorization,
            failed: None,
        })
    }

    fn remember(&self, origin: OriginKey, challenge: KnownChallenge) {
        let mut challenges = self
            .inner
            .challenges
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        // Bounded: forgetting only costs one 401 round trip per origin.
        if challenges.len() >= MAX_REMEMBERED_ORIGINS && !challenges.contains_key(&origin) {
            challenges.clear();
        }
        challenges.insert(origin, challenge);
    }

    /// Forgets the challenge of `origin` if it is still `challenge` (another call may have
    /// learned a newer one meanwhile).
    fn forget(&self, origin: &OriginKey, challenge: &KnownChallenge) {
        let mut challenges = self
            .inner
            .challenges
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if challenges.get(origin) == Some(challenge) {
            challenges.remove(origin);
        }
    }

    /// The scheme an insecure call to `host` last got an answer on.
    fn remembered_scheme(&self, host: &str) -> Option<&'static str> {
        self.inner
            .insecure_schemes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(host)
            .copied()
    }

    fn remember_scheme(&self, host: &str, scheme: &'static str) {
        let mut schemes = self
            .inner
            .insecure_schemes
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        // Bounded: forgetting only costs one failed HTTPS probe per plain-HTTP host.
        if schemes.len() >= MAX_REMEMBERED_ORIGINS && !schemes.contains_key(host) {
            schemes.clear();
        }
        schemes.insert(host.to_owned(), scheme);
    }

    /// The schemes to try for `host`, in order: HTTPS only for secure calls; for insecure ones
    /// the scheme that answered last, then the other.
    fn schemes(&self, host: &str, insecure: bool) -> &'static [&'static str] {
        if !insecure {
            return &["https"];
        }
        match self.remembered_scheme(host) {
            Some("http") => &["http", "https"],
            _ => &["https", "http"],
        }
    }

    /// Waits while another insecure call finds out the scheme of `host`, or finds it out itself
    /// (the guard is held until this call has its answer). `None` once the scheme is known.
    async fn scheme_probe(&self, host: &str) -> Option<tokio::sync::OwnedMutexGuard<()>> {
        if self.remembered_scheme(host).is_some() {
            return None;
        }
        let probe = {
            let mut probes = self
                .inner
                .scheme_probes
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if probes.len() >= MAX_REMEMBERED_ORIGINS {
                // Only probes some call still holds or waits for are worth keeping.
                probes.retain(|_, probe| Arc::strong_count(probe) > 1);
            }
            probes.entry(host.to_owned()).or_default().clone()
        };
        let guard = probe.lock_owned().await;
        // Found out by the call this one waited for: no need to hold the others.
        self.remembered_scheme(host).is_none().then_some(guard)
    }

    /// One request to the registry; for insecure calls over the scheme the host answered on last
    /// (HTTPS first while unknown), and over the other when that one cannot connect. A failure is
    /// reported as the scheme that applies saw it: the remembered scheme's, or while none is known
    /// plain HTTP's (an HTTPS handshake with a plain-HTTP server fails whatever the state of the
    /// server), so a reset or a cut-off body stays a transient connection failure and never
    /// becomes a TLS error. Returns the exchange and the origin that answered.
    async fn send_to_registry(
        &self,
        request: &RegistryRequest<'_>,
        insecure: bool,
        credential: Option<&RegistryCredential>,
        authorization: &Authorization,
        secrets: &Secrets,
    ) -> Result<(Exchange, OriginKey), RequestFailure> {
        let mut headers = HeaderMap::new();
        if let Some(accept) = request.accept {
            headers.insert(ACCEPT, HeaderValue::from_static(accept));
        }
        match (authorization, credential) {
            (Authorization::Basic, Some(credential)) => {
                headers.insert(AUTHORIZATION, basic_authorization(credential)?);
            }
            (Authorization::Bearer { token, .. }, _) => {
                headers.insert(AUTHORIZATION, bearer_authorization(token)?);
            }
            _ => {}
        }
        let _probing = if insecure {
            self.scheme_probe(request.host).await
        } else {
            None
        };
        let remembered = insecure
            .then(|| self.remembered_scheme(request.host))
            .flatten();
        let schemes = self.schemes(request.host, insecure);
        let mut first_failure = None;
        for (index, &scheme) in schemes.iter().enumerate() {
            let origin = format!("{scheme}://{}", request.host);
            let url = Url::parse(&format!("{origin}{}", request.path)).map_err(|e| {
                RequestFailure::InvalidResponse {
                    detail: format!("cannot build the request URL: {e}"),
                }
            })?;
            let result = self
                .inner
                .transport
                .send(Outgoing {
                    method: request.method.clone(),
                    url: url.clone(),
                    headers: headers.clone(),
                    form: None,
                    insecure,
                    body_limit: request.body_limit,
                    fallback_pending: insecure,
                    secrets: secrets.clone(),
                    host_named_by_registry: false,
                })
                .await;
            let failure = match result {
                Ok(exchange) => {
                    if insecure {
                        self.remember_scheme(request.host, scheme);
                    }
                    return Ok((exchange, OriginKey { insecure, origin }));
                }
                Err(failure) => (failure, authority(&url)),
            };
            if index + 1 < schemes.len() && tries_other_scheme(remembered, &failure.0) {
                first_failure = Some(failure);
                continue;
            }
            let (reported, host) = match (remembered, first_failure) {
                (Some(_), Some(remembered_failure)) => remembered_failure,
                _ => failure,
            };
            if insecure {
                self.inner.transport.record_failure(&host, &reported);
            }
            return Err(reported);
        }
        unreachable!("there is always at least one scheme")
    }

    /// The token for `key`: cached, or fetched once however many callers need it now.
    async fn token(
        &self,
        key: &TokenKey,
        credential: Option<&RegistryCredential>,
    ) -> Result<ObtainedToken, RequestFailure> {
        // Weak: the fetch sits in the cache inside `Inner`, and must not keep `Inner` alive.
        let inner = Arc::downgrade(&self.inner);
        let credential = credential.cloned();
        let fetch_key = key.clone();
        self.inner
            .tokens
            .get_or_fetch(key, move || {
                async move { fetch_token(inner, fetch_key, credential).await }.boxed()
            })
            .await
            .map_err(|shared| (*shared).clone())
    }
}

/// Gets a token from the realm: an OAuth2 refresh-token `POST` for an identity token, else a
/// `GET` with the credential's Basic authentication, or anonymously.
/// Its failures are scrubbed of the credential's secrets: the realm and the token service's
/// messages are registry text.
async fn fetch_token(
    inner: Weak<Inner>,
    key: TokenKey,
    credential: Option<RegistryCredential>,
) -> Result<TokenGrant, RequestFailure> {
    let secrets = Secrets::of_credentials(&credential);
    request_token(inner, key, credential, &secrets)
        .await
        .map_err(|failure| failure.redacted(&secrets))
}

async fn request_token(
    inner: Weak<Inner>,
    key: TokenKey,
    credential: Option<RegistryCredential>,
    secrets: &Secrets,
) -> Result<TokenGrant, RequestFailure> {
    let insecure = key.insecure;
    let url = Url::parse(&key.realm).map_err(|_| RequestFailure::Token {
        // Scrubbed before it is cut, so a cut never leaves part of a secret behind.
        realm_host: shorten(&redact(&key.realm, secrets), 100),
        source: Box::new(RequestFailure::InvalidResponse {
            detail: "the registry's token realm is not a URL".into(),
        }),
    })?;
    let realm_host = authority(&url);
    let fail = |source| RequestFailure::Token {
        realm_host: realm_host.clone(),
        source: Box::new(source),
    };
    match url.scheme() {
        "https" => {}
        "http" if insecure => {}
        "http" => {
            return Err(fail(RequestFailure::InvalidResponse {
                detail: "the token realm uses plain HTTP, allowed only for insecure imports".into(),
            }));
        }
        _ => {
            return Err(fail(RequestFailure::InvalidResponse {
                detail: "the token realm is not an HTTP(S) URL".into(),
            }));
        }
    }
    let Some(inner) = inner.upgrade() else {
        return Err(fail(RequestFailure::Connection {
            detail: "the registry client was shut down".into(),
        }));
    };
    let mut headers = HeaderMap::new();
    let mut outgoing_url = url;
    let (method, form) = match &credential {
        Some(RegistryCredential {
            identity_token: Some(refresh_token),
            ..
        }) => {
            let mut form = vec![
                ("grant_type", "refresh_token".to_owned()),
                ("refresh_token", refresh_token.clone()),
                ("client_id", OAUTH_CLIENT_ID.to_owned()),
                ("scope", key.scope.clone()),
            ];
            if !key.service.is_empty() {
                form.push(("service", key.service.clone()));
            }
            (Method::POST, Some(form))
        }
        other => {
            {
                let mut query = outgoing_url.query_pairs_mut();
                if !key.service.is_empty() {
                    query.append_pair("service", &key.service);
                }
                query.append_pair("scope", &key.scope);
            }
            if let Some(credential) = other
                && !(credential.username.is_empty() && credential.password.is_empty())
            {
                headers.insert(AUTHORIZATION, basic_authorization(credential)?);
            }
            (Method::GET, None)
        }
    };
    let exchange = inner
        .transport
        .send(Outgoing {
            method,
            url: outgoing_url,
            headers,
            form,
            insecure,
            body_limit: MAX_TOKEN_RESPONSE_BYTES,
            fallback_pending: false,
            secrets: secrets.clone(),
            host_named_by_registry: true,
        })
        .await
        .map_err(fail)?;
    if !exchange.status.is_success() {
        return Err(fail(status_failure(&exchange, secrets)));
    }
    let grant = parse_token_response(&exchange.body, SystemTime::now()).map_err(|e| {
        fail(RequestFailure::InvalidResponse {
            detail: e.to_string(),
        })
    })?;
    tracing::debug!(
        realm = %redact(&realm_host, secrets),
        scope = %key.scope,
        lifetime_s = grant.lifetime.as_secs(),
        "fetched a registry token"
    );
    Ok(grant)
}

fn token_key(
    realm: &str,
    service: Option<&str>,
    repository: &str,
    identity: &str,
    insecure: bool,
) -> TokenKey {
    TokenKey {
        realm: realm.to_owned(),
        service: service.unwrap_or_default().to_owned(),
        // The client's own pull scope, not the challenge's: keys then match between the
        // up-front path and the 401 path, and a registry cannot widen what is asked for.
        scope: format!("repository:{repository}:pull"),
        identity: identity.to_owned(),
        insecure,
    }
}

fn basic_authorization(credential: &RegistryCredential) -> Result<HeaderValue, RequestFailure> {
    let encoded = BASE64.encode(format!("{}:{}", credential.username, credential.password));
    sensitive_header(&format!("Basic {encoded}"))
}

fn bearer_authorization(token: &BearerToken) -> Result<HeaderValue, RequestFailure> {
    sensitive_header(&format!("Bearer {}", token.secret())).map_err(|_| {
        RequestFailure::InvalidResponse {
            detail: "the token service returned a token that cannot be sent in a header".into(),
        }
    })
}

/// A header value that HTTP/2 never puts into its compression table and `Debug` never shows.
fn sensitive_header(value: &str) -> Result<HeaderValue, RequestFailure> {
    let mut header = HeaderValue::from_str(value).map_err(|_| RequestFailure::InvalidResponse {
        detail: "the credential contains characters that cannot be sent in a header".into(),
    })?;
    header.set_sensitive(true);
    Ok(header)
}

fn success(exchange: Exchange, secrets: &Secrets) -> Result<Exchange, RequestFailure> {
    if exchange.status.is_success() {
        Ok(exchange)
    } else {
        Err(status_failure(&exchange, secrets))
    }
}

/// The failure an error answer stands for. The body of a 401 or 403 is never read for a message:
/// it is where registries and proxies echo the credential they refused. Other messages are
/// scrubbed of `secrets`.
fn status_failure(exchange: &Exchange, secrets: &Secrets) -> RequestFailure {
    let status = exchange.status.as_u16();
    RequestFailure::Status {
        status,
        message: if matches!(status, 401 | 403) {
            None
        } else {
            error_body_message(&exchange.body, secrets)
        },
        retry_after_secs: requested_wait(exchange)
            .map(|wait| u32::try_from(wait.as_secs()).unwrap_or(u32::MAX)),
    }
}

/// Whether an insecure call tries its other scheme after `failure`. A TLS failure says the port
/// does not speak TLS (now). While no scheme is known, a connection failure of HTTPS may mean
/// only HTTP listens; once plain HTTP is known, the HTTPS check after its connection failure
/// notices a registry that moved to TLS. A host known to answer HTTPS is not asked over plain
/// HTTP after a broken connection: that is a broken connection, and a TLS port answers plain
/// HTTP with a 400 of its own that is not the registry's answer.
fn tries_other_scheme(remembered: Option<&str>, failure: &RequestFailure) -> bool {
    match failure {
        RequestFailure::Tls { .. } => true,
        RequestFailure::Connection { .. } => remembered != Some("https"),
        _ => false,
    }
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_owned())
}

fn media_type_of(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_owned()
}

/// Checks that `bytes` hash to `digest` (sha256 or sha512, validated before).
fn verify_digest(digest: &str, bytes: &[u8]) -> Result<(), RequestFailure> {
    let actual = match digest.split_once(':') {
        Some(("sha512", _)) => format!("sha512:{}", hex::encode(Sha512::digest(bytes))),
        _ => format!("sha256:{}", hex::encode(Sha256::digest(bytes))),
    };
    if actual == digest {
        Ok(())
    } else {
        Err(RequestFailure::DigestMismatch {
            expected: digest.to_owned(),
            actual,
        })
    }
}

fn invalid(what: &'static str, value: &str, detail: &'static str) -> RegistryError {
    RegistryError::InvalidTarget {
        what,
        value: shorten(value, 100),
        detail,
    }
}

/// The host becomes the authority of a URL; anything that could change the URL's meaning
/// (userinfo, path, query) is refused.
fn validate_host(host: &str) -> Result<(), RegistryError> {
    if host.is_empty() || host.len() > 255 {
        return Err(invalid(
            "registry host",
            host,
            "must be 1 to 255 characters",
        ));
    }
    if !host
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
    {
        return Err(invalid(
            "registry host",
            host,
            "must be a host name or IP address with an optional port",
        ));
    }
    match Url::parse(&format!("https://{host}/")) {
        Ok(url) if url.host_str().is_some() && url.path() == "/" => Ok(()),
        _ => Err(invalid("registry host", host, "is not a valid host[:port]")),
    }
}

/// Repository paths of the distribution spec: lower-case components separated by `/`.
fn validate_repository(repository: &str) -> Result<(), RegistryError> {
    let component_ok = |c: &str| {
        !c.is_empty()
            && c.bytes()
                .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'-'))
            && c.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
            && c.bytes().last().is_some_and(|b| b.is_ascii_alphanumeric())
    };
    if repository.is_empty() || repository.len() > 255 || !repository.split('/').all(component_ok) {
        return Err(invalid(
            "repository",
            repository,
            "must be lower-case path components of letters, digits and . _ -",
        ));
    }
    Ok(())
}

/// A tag (`[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`) or a digest.
fn validate_reference(reference: &str) -> Result<(), RegistryError> {
    if reference.contains(':') {
        return validate_digest(reference);
    }
    let tag_ok = !reference.is_empty()
        && reference.len() <= 128
        && reference
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        && !reference.starts_with(['.', '-']);
    if tag_ok {
        Ok(())
    } else {
        Err(invalid(
            "reference",
            reference,
            "a tag must be up to 128 letters, digits and _ . - (not starting with . or -)",
        ))
    }
}

fn validate_digest(digest: &str) -> Result<(), RegistryError> {
    if is_valid_digest(digest) {
        Ok(())
    } else {
        Err(invalid(
            "digest",
            digest,
            "must be sha256:<64 hex digits> or sha512:<128 hex digits>",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_with_ports_and_ip_literals_are_valid() {
        for host in [
            "registry-1.docker.io",
            "127.0.0.1:5000",
            "localhost",
            "[::1]:5000",
            "quay.io",
        ] {
            assert!(validate_host(host).is_ok(), "{host}");
        }
    }

    #[test]
    fn hosts_that_would_change_the_url_are_invalid() {
        for host in [
            "",
            "user@host",
            "host/path",
            "host?x",
            "host#x",
            "ho st",
            "host:port",
            "host:99999",
        ] {
            assert!(validate_host(host).is_err(), "{host}");
        }
    }

    #[test]
    fn repositories_must_be_lower_case_components() {
        for ok in ["library/nginx", "a", "a/b/c", "my-org/my_app.v2", "a__b"] {
            assert!(validate_repository(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "Library/nginx",
            "a//b",
            "/a",
            "a/",
            "../a",
            "a/./b",
            "a?b",
            "-a",
        ] {
            assert!(validate_repository(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn references_are_tags_or_digests() {
        let digest = format!("sha256:{}", "a".repeat(64));
        for ok in ["latest", "1.25", "v1.0-rc_1", "A", digest.as_str()] {
            assert!(validate_reference(ok).is_ok(), "{ok}");
        }
        let long = "a".repeat(129);
        for bad in [
            "",
            ".hidden",
            "-x",
            "a/b",
            "sha256:abc",
            long.as_str(),
            "a b",
        ] {
            assert!(validate_reference(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn digest_verification_accepts_matching_bytes_and_names_both_digests_otherwise() {
        let bytes = b"hello";
        let sha256 = format!("sha256:{}", hex::encode(Sha256::digest(bytes)));
        let sha512 = format!("sha512:{}", hex::encode(Sha512::digest(bytes)));
        assert_eq!(verify_digest(&sha256, bytes), Ok(()));
        assert_eq!(verify_digest(&sha512, bytes), Ok(()));
        assert_eq!(
            verify_digest(&sha256, b"other"),
            Err(RequestFailure::DigestMismatch {
                expected: sha256.clone(),
                actual: format!("sha256:{}", hex::encode(Sha256::digest(b"other"))),
            })
        );
    }

    #[test]
    fn token_keys_use_the_pull_scope_of_the_repository_the_identity_and_the_security() {
        let key = token_key(
            "https://auth/token",
            Some("svc"),
            "library/nginx",
            "abc",
            false,
        );
        assert_eq!(
            key,
            TokenKey {
                realm: "https://auth/token".into(),
                service: "svc".into(),
                scope: "repository:library/nginx:pull".into(),
                identity: "abc".into(),
                insecure: false,
            }
        );
    }

    #[test]
    fn authorization_headers_are_marked_sensitive() {
        let credential = RegistryCredential {
            username: "alice".into(),
            password: "hunter2".into(),
            identity_token: None,
            source: "ns/secret".into(),
        };
        let header = basic_authorization(&credential).unwrap();
        assert!(header.is_sensitive());
        assert_eq!(header.to_str().unwrap(), "Basic YWxpY2U6aHVudGVyMg==");
        assert!(!format!("{header:?}").contains("YWxp"));
    }

    #[test]
    fn the_other_scheme_is_tried_after_a_tls_failure_and_after_a_connection_failure_unless_https_is_known()
     {
        let tls = RequestFailure::Tls {
            detail: "received corrupt message".into(),
        };
        let reset = RequestFailure::Connection {
            detail: "connection reset".into(),
        };
        let timeout = RequestFailure::Timeout {
            after: Duration::from_secs(10),
        };
        let refused = RequestFailure::AddressRefused {
            host: "169.254.169.254".into(),
        };
        let table = [
            (None, &tls, true),
            (None, &reset, true),
            (None, &timeout, false),
            (None, &refused, false),
            (Some("http"), &reset, true),
            (Some("http"), &timeout, false),
            (Some("https"), &tls, true),
            (Some("https"), &reset, false),
            (Some("https"), &refused, false),
        ];
        for (remembered, failure, tries) in table {
            assert_eq!(
                tries_other_scheme(remembered, failure),
                tries,
                "{remembered:?} {failure}"
            );
        }
    }

    #[test]
    fn bodies_of_401_and_403_answers_are_never_read_for_a_message() {
        let body =
            br#"{"errors":[{"code":"DENIED","message":"you sent Basic YWxpY2U6aHVudGVyMg=="}]}"#;
        let answer = |status: u16| Exchange {
            status: StatusCode::from_u16(status).unwrap(),
            headers: HeaderMap::new(),
            body: body.to_vec(),
        };
        let secrets = Secrets::of_credentials([&RegistryCredential {
            username: "alice".into(),
            password: "hunter2".into(),
            identity_token: None,
            source: "ns/secret".into(),
        }]);
        let message = |status| match status_failure(&answer(status), &secrets) {
            RequestFailure::Status { message, .. } => message,
            other => panic!("{other}"),
        };
        assert_eq!(message(401), None);
        assert_eq!(message(403), None);
        assert_eq!(
            message(404).as_deref(),
            Some("DENIED: you sent Basic <redacted>")
        );
    }
}
