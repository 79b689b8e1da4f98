//! Bearer tokens: parsing a token service's answer, and a cache keyed by (realm, service, scope,
//! credential identity) that keeps each token until shortly before it expires and lets only one
//! fetch per key be in flight, so a poll of many streams costs one token request, not many.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use serde::Deserialize;
use tokio::time::Instant;

/// The identity of requests made without credentials. Credential identities are hex digests, so
/// this can never collide with one.
pub const ANONYMOUS_IDENTITY: &str = "anonymous";

/// What a token is for: (realm, service, scope, credential identity), and whether it was fetched
/// over unverified TLS. Tokens are never shared between keys, so two credentials (or a credential
/// and anonymous access) never use each other's tokens.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TokenKey {
    /// The token service URL from the challenge.
    pub realm: String,
    /// The challenge's `service`, empty when there is none.
    pub service: String,
    /// The scope requested, e.g. `repository:library/nginx:pull`.
    pub scope: String,
    /// [`crate::domain::credential::RegistryCredential::identity`], or [`ANONYMOUS_IDENTITY`].
    pub identity: String,
    /// Fetched for an insecure call: such a fetch may have sent the credential over unverified
    /// TLS, so a secure call never joins or reuses it.
    pub insecure: bool,
}

/// A bearer token. Its `Debug` never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct BearerToken(String);

impl BearerToken {
    /// Wraps a token string.
    pub fn new(token: String) -> Self {
        Self(token)
    }

    /// The secret, for the `Authorization` header only.
    pub fn secret(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BearerToken(<redacted>)")
    }
}

/// A token service's answer: the token and how long it is valid from now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenGrant {
    /// The token.
    pub token: BearerToken,
    /// How long the token is valid from the moment it was received.
    pub lifetime: Duration,
}

/// Why a token service's answer could not be used. Never contains the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenResponseError {
    /// The body is not the JSON the Docker token protocol describes.
    #[error("the token service answered with malformed JSON: {0}")]
    Malformed(String),
    /// Neither `token` nor `access_token` is set.
    #[error("the token service answered without a token")]
    NoToken,
}

/// The lifetime the distribution spec assumes when `expires_in` is missing.
pub const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(60);

/// Parses a token response (`GET` token protocol or OAuth2 `POST`): `token` or `access_token`,
/// `expires_in` (default 60 s) and `issued_at`. When `issued_at` is given and `now` is later, the
/// time already elapsed is subtracted, but never more than `expires_in` is granted: a skewed
/// registry clock must not make a token live longer than it says.
pub fn parse_token_response(
    body: &[u8],
    now: SystemTime,
) -> Result<TokenGrant, TokenResponseError> {
    #[derive(Deserialize)]
    struct Wire {
        token: Option<String>,
        access_token: Option<String>,
        expires_in: Option<i64>,
        issued_at: Option<String>,
    }
    let wire: Wire = serde_json::from_slice(body).map_err(|e| {
        // serde's message can quote the input, which is the token itself; keep only the position.
        TokenResponseError::Malformed(format!(
            "{} at line {} column {}",
            match e.classify() {
                serde_json::error::Category::Io => "read error",
                serde_json::error::Category::Syntax => "syntax error",
                serde_json::error::Category::Data => "unexpected field type",
                serde_json::error::Category::Eof => "unexpected end",
            },
            e.line(),
            e.column()
        ))
    })?;
    let token = wire
        .token
        .filter(|t| !t.is_empty())
        .or(wire.access_token.filter(|t| !t.is_empty()))
        .ok_or(TokenResponseError::NoToken)?;
    let expires_in = match wire.expires_in {
        Some(seconds) if seconds > 0 => Duration::from_secs(seconds.unsigned_abs()),
        _ => DEFAULT_TOKEN_LIFETIME,
    };
    let elapsed = wire
        .issued_at
        .and_then(|issued| humantime::parse_rfc3339_weak(issued.trim()).ok())
        .and_then(|issued| now.duration_since(issued).ok())
        .unwrap_or(Duration::ZERO);
    Ok(TokenGrant {
        token: BearerToken::new(token),
        lifetime: expires_in.saturating_sub(elapsed),
    })
}

/// How long a token of `lifetime` is reused: its lifetime minus a safety `margin`, but at least half
/// the lifetime, so a short-lived (60 s) token is still reused rather than fetched per request.
pub fn usable_lifetime(lifetime: Duration, margin: Duration) -> Duration {
    lifetime.saturating_sub(margin.min(lifetime / 2))
}

/// A token from [`TokenCache::get_or_fetch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObtainedToken {
    /// The token.
    pub token: BearerToken,
    /// Whether it was issued for this call (fetched by it, or by a fetch it joined) rather than
    /// taken from the cache. A fresh token the registry refuses means the credential lacks
    /// access, so fetching yet another one is pointless.
    pub fresh: bool,
}

/// Why a token could not be obtained. Cloned to every caller waiting on the same fetch.
pub type SharedFetchError<E> = Arc<E>;

type FetchFuture<E> = Shared<BoxFuture<'static, Result<TokenGrant, SharedFetchError<E>>>>;

enum Slot<E> {
    Ready { token: BearerToken, until: Instant },
    Fetching(FetchFuture<E>),
}

/// Tokens per [`TokenKey`], with one fetch in flight per key. `E` is the fetch error type.
pub struct TokenCache<E> {
    margin: Duration,
    slots: Mutex<HashMap<TokenKey, Slot<E>>>,
}

/// Beyond this many keys, expired tokens are dropped on insert so the cache cannot grow without
/// bound as streams come and go.
const PRUNE_ABOVE: usize = 1024;

impl<E: Send + Sync + 'static> TokenCache<E> {
    /// An empty cache that stops using a token `margin` before it expires.
    pub fn new(margin: Duration) -> Self {
        Self {
            margin,
            slots: Mutex::new(HashMap::new()),
        }
    }

    /// The cached token for `key` if it is still usable.
    pub fn cached(&self, key: &TokenKey) -> Option<BearerToken> {
        let slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        match slots.get(key) {
            Some(Slot::Ready { token, until }) if *until > Instant::now() => Some(token.clone()),
            _ => None,
        }
    }

    /// The usable token for `key`, or the result of the fetch for it: the one already in flight,
    /// else a new one started with `fetch`. Every caller waiting on one fetch gets its result;
    /// a failed fetch is not cached.
    pub async fn get_or_fetch(
        &self,
        key: &TokenKey,
        fetch: impl FnOnce() -> BoxFuture<'static, Result<TokenGrant, E>>,
    ) -> Result<ObtainedToken, SharedFetchError<E>> {
        let in_flight = {
            let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
            match slots.get(key) {
                Some(Slot::Ready { token, until }) if *until > Instant::now() => {
                    return Ok(ObtainedToken {
                        token: token.clone(),
                        fresh: false,
                    });
                }
                Some(Slot::Fetching(in_flight)) => in_flight.clone(),
                _ => {
                    let in_flight = fetch().map(|r| r.map_err(Arc::new)).boxed().shared();
                    slots.insert(key.clone(), Slot::Fetching(in_flight.clone()));
                    in_flight
                }
            }
        };
        let result = in_flight.clone().await;
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        // Only the first waiter to come back settles the slot; later ones find it settled.
        if matches!(slots.get(key), Some(Slot::Fetching(f)) if f.ptr_eq(&in_flight)) {
            match &result {
                Ok(grant) => {
                    let until = Instant::now() + usable_lifetime(grant.lifetime, self.margin);
                    if slots.len() > PRUNE_ABOVE {
                        let now = Instant::now();
                        slots.retain(|_, slot| match slot {
                            Slot::Ready { until, .. } => *until > now,
                            Slot::Fetching(_) => true,
                        });
                    }
                    slots.insert(
                        key.clone(),
                        Slot::Ready {
                            token: grant.token.clone(),
                            until,
                        },
                    );
                }
                Err(_) => {
                    slots.remove(key);
                }
            }
        }
        result.map(|grant| ObtainedToken {
            token: grant.token,
            fresh: true,
        })
    }

    /// Forgets `token` for `key` after the registry refused it, unless the slot has moved on to
    /// another token (a concurrent caller may have fetched a fresh one already).
    pub fn invalidate(&self, key: &TokenKey, token: &BearerToken) {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        if matches!(slots.get(key), Some(Slot::Ready { token: cached, .. }) if cached == token) {
            slots.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    fn key(identity: &str) -> TokenKey {
        TokenKey {
            realm: "https://auth.example/token".into(),
            service: "registry.example".into(),
            scope: "repository:library/nginx:pull".into(),
            identity: identity.into(),
            insecure: false,
        }
    }

    fn grant(token: &str, seconds: u64) -> TokenGrant {
        TokenGrant {
            token: BearerToken::new(token.into()),
            lifetime: Duration::from_secs(seconds),
        }
    }

    #[test]
    fn token_response_reads_token_expiry_and_issue_time() {
        let now = humantime::parse_rfc3339("2024-01-01T00:00:10Z").unwrap();
        let body = br#"{"token":"abc","expires_in":300,"issued_at":"2024-01-01T00:00:00Z"}"#;
        let parsed = parse_token_response(body, now).unwrap();
        assert_eq!(parsed.token.secret(), "abc");
        assert_eq!(parsed.lifetime, Duration::from_secs(290));
    }

    #[test]
    fn access_token_is_accepted_when_token_is_absent() {
        let parsed = parse_token_response(
            br#"{"access_token":"xyz","expires_in":120}"#,
            SystemTime::now(),
        )
        .unwrap();
        assert_eq!(parsed.token.secret(), "xyz");
        assert_eq!(parsed.lifetime, Duration::from_secs(120));
    }

    #[test]
    fn missing_or_nonsense_expiry_defaults_to_sixty_seconds() {
        for body in [
            &br#"{"token":"t"}"#[..],
            br#"{"token":"t","expires_in":0}"#,
            br#"{"token":"t","expires_in":-5}"#,
        ] {
            let parsed = parse_token_response(body, SystemTime::now()).unwrap();
            assert_eq!(parsed.lifetime, DEFAULT_TOKEN_LIFETIME);
        }
    }

    #[test]
    fn issue_time_in_the_future_or_unparseable_does_not_extend_the_lifetime() {
        let now = humantime::parse_rfc3339("2024-01-01T00:00:00Z").unwrap();
        for issued in ["2024-01-01T01:00:00Z", "yesterday"] {
            let body = format!(r#"{{"token":"t","expires_in":300,"issued_at":"{issued}"}}"#);
            assert_eq!(
                parse_token_response(body.as_bytes(), now).unwrap().lifetime,
                Duration::from_secs(300)
            );
        }
    }

    #[test]
    fn a_response_without_a_token_or_with_bad_json_is_an_error_that_does_not_echo_the_body() {
        assert_eq!(
            parse_token_response(br#"{"expires_in":60}"#, SystemTime::now()),
            Err(TokenResponseError::NoToken)
        );
        assert_eq!(
            parse_token_response(br#"{"token":""}"#, SystemTime::now()),
            Err(TokenResponseError::NoToken)
        );
        let error = parse_token_response(
            br#"{"token": 12345678901234567890secret"#,
            SystemTime::now(),
        )
        .unwrap_err();
        assert!(!error.to_string().contains("secret"), "{error}");
    }

    #[test]
    fn usable_lifetime_subtracts_the_margin_but_keeps_at_least_half() {
        let margin = Duration::from_secs(30);
        assert_eq!(
            usable_lifetime(Duration::from_secs(300), margin),
            Duration::from_secs(270)
        );
        assert_eq!(
            usable_lifetime(Duration::from_secs(40), margin),
            Duration::from_secs(20)
        );
        assert_eq!(usable_lifetime(Duration::ZERO, margin), Duration::ZERO);
    }

    #[test]
    fn tokens_never_appear_in_debug_output() {
        let printed = format!("{:?}", grant("s3cr3t", 60));
        assert!(!printed.contains("s3cr3t"), "{printed}");
    }

    #[test]
    fn keys_differ_by_identity_and_transport_security() {
        assert_ne!(key("a"), key("b"));
        assert_ne!(key("a"), key(ANONYMOUS_IDENTITY));
        assert_ne!(
            key("a"),
            TokenKey {
                insecure: true,
                ..key("a")
            }
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_cached_token_is_reused_until_its_expiry_minus_the_margin() {
        let cache: TokenCache<String> = TokenCache::new(Duration::from_secs(30));
        let fetches = Arc::new(AtomicUsize::new(0));
        let fetch = |name: &'static str| {
            let fetches = fetches.clone();
            move || -> BoxFuture<'static, Result<TokenGrant, String>> {
                fetches.fetch_add(1, Ordering::SeqCst);
                async move { Ok(grant(name, 300)) }.boxed()
            }
        };
        let first = cache.get_or_fetch(&key("a"), fetch("one")).await.unwrap();
        tokio::time::advance(Duration::from_secs(269)).await;
        let second = cache.get_or_fetch(&key("a"), fetch("two")).await.unwrap();
        assert_eq!(
            (first.token.secret(), second.token.secret()),
            ("one", "one")
        );
        assert_eq!((first.fresh, second.fresh), (true, false));
        assert_eq!(fetches.load(Ordering::SeqCst), 1);

        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(cache.cached(&key("a")), None);
        let third = cache.get_or_fetch(&key("a"), fetch("three")).await.unwrap();
        assert_eq!((third.token.secret(), third.fresh), ("three", true));
        assert_eq!(fetches.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_callers_share_one_fetch_per_key() {
        let cache: Arc<TokenCache<String>> = Arc::new(TokenCache::new(Duration::from_secs(30)));
        let fetches = Arc::new(AtomicUsize::new(0));
        let callers = (0..20).map(|_| {
            let cache = cache.clone();
            let fetches = fetches.clone();
            tokio::spawn(async move {
                cache
                    .get_or_fetch(&key("a"), move || {
                        fetches.fetch_add(1, Ordering::SeqCst);
                        async {
                            tokio::time::sleep(Duration::from_secs(1)).await;
                            Ok(grant("shared", 300))
                        }
                        .boxed()
                    })
                    .await
            })
        });
        for caller in futures::future::join_all(callers).await {
            let obtained = caller.unwrap().unwrap();
            // Every waiter of the one fetch got a token issued for it just now.
            assert_eq!((obtained.token.secret(), obtained.fresh), ("shared", true));
        }
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_fetch_reaches_every_waiter_and_is_not_cached() {
        let cache: Arc<TokenCache<String>> = Arc::new(TokenCache::new(Duration::from_secs(30)));
        let fetches = Arc::new(AtomicUsize::new(0));
        let failing = |fetches: Arc<AtomicUsize>| {
            move || -> BoxFuture<'static, Result<TokenGrant, String>> {
                fetches.fetch_add(1, Ordering::SeqCst);
                async {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    Err("denied".to_owned())
                }
                .boxed()
            }
        };
        let shared_key = key("a");
        let (a, b) = tokio::join!(
            cache.get_or_fetch(&shared_key, failing(fetches.clone())),
            cache.get_or_fetch(&shared_key, failing(fetches.clone())),
        );
        assert_eq!(a.unwrap_err().as_str(), "denied");
        assert_eq!(b.unwrap_err().as_str(), "denied");
        assert_eq!(fetches.load(Ordering::SeqCst), 1);

        let again = cache
            .get_or_fetch(&key("a"), || async { Ok(grant("later", 60)) }.boxed())
            .await;
        assert_eq!(again.unwrap().token.secret(), "later");
    }

    #[tokio::test(start_paused = true)]
    async fn identities_never_share_tokens() {
        let cache: TokenCache<String> = TokenCache::new(Duration::from_secs(30));
        cache
            .get_or_fetch(&key("alice"), || {
                async { Ok(grant("alice-token", 300)) }.boxed()
            })
            .await
            .unwrap();
        assert_eq!(cache.cached(&key("bob")), None);
        assert_eq!(cache.cached(&key(ANONYMOUS_IDENTITY)), None);
        let bob = cache
            .get_or_fetch(&key("bob"), || {
                async { Ok(grant("bob-token", 300)) }.boxed()
            })
            .await
            .unwrap();
        assert_eq!(bob.token.secret(), "bob-token");
    }

    #[tokio::test(start_paused = true)]
    async fn invalidate_drops_only_the_token_that_was_refused() {
        let cache: TokenCache<String> = TokenCache::new(Duration::from_secs(30));
        let old = cache
            .get_or_fetch(&key("a"), || async { Ok(grant("old", 300)) }.boxed())
            .await
            .unwrap()
            .token;
        cache.invalidate(&key("a"), &BearerToken::new("other".into()));
        assert_eq!(cache.cached(&key("a")), Some(old.clone()));
        cache.invalidate(&key("a"), &old);
        assert_eq!(cache.cached(&key("a")), None);
    }
}
