//! The registry client's errors: [`RegistryError`] names the operation and what it was about,
//! [`RequestFailure`] says what went wrong on the wire. Both give the PascalCase condition reason
//! and whether a retry may help. Messages never contain credentials or tokens: 401 and 403 bodies
//! are never echoed, and every other text a registry sent is scrubbed of the call's secrets
//! ([`super::redact`]) before it becomes part of an error.

use std::time::Duration;

use oci_client::errors::OciEnvelope;

use super::manifest::ManifestError;
use super::redact::{Secrets, redact};
use crate::domain::text::shorten;

/// A failed registry operation.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// `HEAD` of a manifest by tag or digest (change detection).
    #[error("cannot check {}: {source}", image(registry, repository, reference))]
    HeadManifest {
        /// The registry host (`host[:port]`).
        registry: String,
        /// The repository path.
        repository: String,
        /// The tag or digest.
        reference: String,
        /// What went wrong.
        source: RequestFailure,
    },
    /// `GET` of a manifest by digest.
    #[error(
        "cannot fetch manifest {}: {source}",
        image(registry, repository, digest)
    )]
    GetManifest {
        /// The registry host.
        registry: String,
        /// The repository path.
        repository: String,
        /// The manifest digest.
        digest: String,
        /// What went wrong.
        source: RequestFailure,
    },
    /// `GET` of a blob (an image config) by digest.
    #[error("cannot fetch blob {}: {source}", image(registry, repository, digest))]
    GetBlob {
        /// The registry host.
        registry: String,
        /// The repository path.
        repository: String,
        /// The blob digest.
        digest: String,
        /// What went wrong.
        source: RequestFailure,
    },
    /// The host, repository, tag or digest cannot be put into a registry URL.
    #[error("invalid {what} {value:?}: {detail}")]
    InvalidTarget {
        /// `registry host`, `repository`, `reference` or `digest`.
        what: &'static str,
        /// The offending value, shortened.
        value: String,
        /// Why it is invalid.
        detail: &'static str,
    },
    /// The HTTP clients could not be built (bad CA bundle, TLS set-up).
    #[error("cannot build the registry HTTP client: {detail}")]
    BuildClient {
        /// What failed.
        detail: String,
    },
}

impl RegistryError {
    /// The PascalCase reason for conditions, Events and metric labels.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::HeadManifest { source, .. }
            | Self::GetManifest { source, .. }
            | Self::GetBlob { source, .. } => source.reason(),
            Self::InvalidTarget { .. } => "InvalidImageReference",
            Self::BuildClient { .. } => "InternalError",
        }
    }

    /// Whether retrying later may succeed without anyone changing anything (server errors,
    /// timeouts, rate limits), as opposed to answers that stay the same until a user acts.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::HeadManifest { source, .. }
            | Self::GetManifest { source, .. }
            | Self::GetBlob { source, .. } => source.is_transient(),
            Self::InvalidTarget { .. } | Self::BuildClient { .. } => false,
        }
    }

    /// How long the registry host asked not to be contacted, when the failure says
    /// (see [`RequestFailure::retry_after`]).
    pub fn retry_after(&self) -> Option<Duration> {
        self.failure().and_then(RequestFailure::retry_after)
    }

    /// The wire-level failure, when the operation reached the point of sending requests.
    pub fn failure(&self) -> Option<&RequestFailure> {
        match self {
            Self::HeadManifest { source, .. }
            | Self::GetManifest { source, .. }
            | Self::GetBlob { source, .. } => Some(source),
            Self::InvalidTarget { .. } | Self::BuildClient { .. } => None,
        }
    }
}

fn image(registry: &str, repository: &str, reference: &str) -> String {
    let separator = if reference.contains(':') { '@' } else { ':' };
    format!("{registry}/{repository}{separator}{reference}")
}

/// What went wrong while talking to a registry (or its token service).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestFailure {
    /// The server answered with an error status.
    #[error("{}", status_text(*status, message.as_deref()))]
    Status {
        /// The HTTP status code.
        status: u16,
        /// The messages of the registry's error envelope, when it sent one (never for 401 and
        /// 403), scrubbed of the call's secrets.
        message: Option<String>,
        /// The wait in whole seconds (the header's resolution) that a 429 or 503 asked for with
        /// `Retry-After`, when it sent one. Seconds rather than a `Duration` keep the error small.
        retry_after_secs: Option<u32>,
    },
    /// No complete answer within the request timeout.
    #[error("no complete answer within {}", humantime::format_duration(*after))]
    Timeout {
        /// The timeout that expired.
        after: Duration,
    },
    /// The connection could not be made or broke (DNS, refused, reset).
    #[error("connection failed: {detail}")]
    Connection {
        /// The transport error.
        detail: String,
    },
    /// The TLS handshake failed, e.g. an untrusted certificate.
    #[error("TLS handshake failed: {detail}")]
    Tls {
        /// The TLS error.
        detail: String,
    },
    /// The body is longer than the client accepts for this kind of object.
    #[error("response body exceeds the limit of {limit} bytes")]
    ResponseTooLarge {
        /// The limit in bytes.
        limit: u64,
    },
    /// The content's digest differs from the digest it was requested by.
    #[error("content digest is {actual}, expected {expected}")]
    DigestMismatch {
        /// The requested digest.
        expected: String,
        /// The digest of the bytes received.
        actual: String,
    },
    /// The answer is not what the distribution API promises (missing digest header, bad JSON,
    /// unsupported media type).
    #[error("invalid response: {detail}")]
    InvalidResponse {
        /// What is wrong with it.
        detail: String,
    },
    /// The token service failed; `source` says how.
    #[error("token request to {realm_host} failed: {source}")]
    Token {
        /// The token service's host.
        realm_host: String,
        /// What went wrong there.
        source: Box<RequestFailure>,
    },
    /// Not sent: the host is backing off (after a 429's `Retry-After` or repeated failures)
    /// for longer than the client waits. The message names the cause only: it becomes a
    /// condition message, and a countdown in it would make every refusal a new failure.
    #[error("not contacted: backing off after {reason}")]
    BackingOff {
        /// How long until the host may be contacted again.
        remaining: Duration,
        /// The reason of the failure that started the backoff.
        reason: &'static str,
    },
    /// Not sent: the URL's host is a link-local or cloud metadata address.
    #[error("refused to contact {host}: a link-local or cloud metadata address")]
    AddressRefused {
        /// The host refused.
        host: String,
    },
}

impl RequestFailure {
    /// The PascalCase reason for conditions, Events and metric labels.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Status { status, .. } => status_reason(*status),
            Self::Timeout { .. } => "Timeout",
            Self::Connection { .. } => "ServiceUnavailable",
            Self::Tls { .. } => "TLSError",
            Self::ResponseTooLarge { .. } => "ResponseTooLarge",
            Self::DigestMismatch { .. } => "DigestMismatch",
            Self::InvalidResponse { .. } => "InvalidResponse",
            Self::Token { source, .. } if source.is_token_endpoint_failure() => {
                "TokenEndpointFailed"
            }
            Self::Token { source, .. } => source.reason(),
            Self::BackingOff { reason, .. } => reason,
            Self::AddressRefused { .. } => "AddressRefused",
        }
    }

    /// Whether retrying later may help without a change by anyone.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Status { status, .. } => status_is_transient(*status),
            Self::Timeout { .. } | Self::Connection { .. } | Self::BackingOff { .. } => true,
            Self::Token { source, .. } => {
                source.is_token_endpoint_failure() || source.is_transient()
            }
            Self::Tls { .. }
            | Self::ResponseTooLarge { .. }
            | Self::DigestMismatch { .. }
            | Self::InvalidResponse { .. }
            | Self::AddressRefused { .. } => false,
        }
    }

    /// How long the host asked not to be contacted: a 429's or 503's `Retry-After`, or the rest
    /// of the backoff that refused this call.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Status {
                retry_after_secs, ..
            } => retry_after_secs.map(|secs| Duration::from_secs(secs.into())),
            Self::BackingOff { remaining, .. } => Some(*remaining),
            Self::Token { source, .. } => source.retry_after(),
            _ => None,
        }
    }

    /// The HTTP status, when the failure is an error answer (of the registry or token service).
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Status { status, .. } => Some(*status),
            Self::Token { source, .. } => source.status(),
            _ => None,
        }
    }

    /// Whether this failure of a token request says the token endpoint itself is not working
    /// (404, 405, 410 and other answers that are neither about the credential nor the request
    /// rate), rather than the credential (401, 403, 400) or the load (429, 408, 5xx). Such an
    /// answer says nothing about the image, so it is never `NotFound`; it is worth retrying,
    /// since the client then learns the registry's challenge again and may find a new realm.
    fn is_token_endpoint_failure(&self) -> bool {
        matches!(
            self,
            Self::Status { status, .. }
                if (402..500).contains(status) && !matches!(status, 403 | 408 | 429)
        )
    }

    /// Whether the client should forget the challenge whose token request failed like this: any
    /// failure but a refusal of the credential (401, 403), a rate limit (429) or the client's
    /// own backoff, which a new challenge would not change.
    pub fn discredits_challenge(&self) -> bool {
        match self {
            Self::Token { source, .. } => {
                !matches!(source.status(), Some(401 | 403 | 429))
                    && !matches!(**source, Self::BackingOff { .. })
            }
            _ => false,
        }
    }

    /// This failure with every text in it scrubbed of `secrets`: envelope messages, transport
    /// details, and the hosts a registry named (a token realm).
    pub fn redacted(self, secrets: &Secrets) -> Self {
        if secrets.is_empty() {
            return self;
        }
        let scrub = |text: String| match redact(&text, secrets) {
            std::borrow::Cow::Borrowed(_) => text,
            std::borrow::Cow::Owned(scrubbed) => scrubbed,
        };
        match self {
            Self::Status {
                status,
                message,
                retry_after_secs,
            } => Self::Status {
                status,
                message: message.map(scrub),
                retry_after_secs,
            },
            Self::Connection { detail } => Self::Connection {
                detail: scrub(detail),
            },
            Self::Tls { detail } => Self::Tls {
                detail: scrub(detail),
            },
            Self::InvalidResponse { detail } => Self::InvalidResponse {
                detail: scrub(detail),
            },
            Self::Token { realm_host, source } => Self::Token {
                realm_host: scrub(realm_host),
                source: Box::new(source.redacted(secrets)),
            },
            Self::AddressRefused { host } => Self::AddressRefused { host: scrub(host) },
            // The client's own text: digests it asked for and computed, limits, durations.
            other @ (Self::DigestMismatch { .. }
            | Self::Timeout { .. }
            | Self::ResponseTooLarge { .. }
            | Self::BackingOff { .. }) => other,
        }
    }

    /// A failure to parse a manifest or config the registry sent.
    pub fn invalid(error: ManifestError) -> Self {
        Self::InvalidResponse {
            detail: error.to_string(),
        }
    }
}

/// The condition reason of an error status.
pub fn status_reason(status: u16) -> &'static str {
    match status {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 | 410 => "NotFound",
        408 | 504 => "Timeout",
        429 => "TooManyRequests",
        502 | 503 => "ServiceUnavailable",
        500..=599 => "InternalError",
        _ => "BadRequest",
    }
}

/// Whether a status is worth retrying later: rate limits, request timeouts and server errors.
pub fn status_is_transient(status: u16) -> bool {
    matches!(status, 408 | 429 | 500..=599)
}

fn status_text(status: u16, message: Option<&str>) -> String {
    let phrase = http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    let headline = match status {
        401 => "authentication required or credentials rejected",
        403 => "access denied",
        404 => "not found",
        429 => "rate limited by the registry",
        500..=599 => "registry server error",
        _ => "request failed",
    };
    match message {
        Some(message) => format!("{headline} (HTTP {status} {phrase}): {message}"),
        None => format!("{headline} (HTTP {status} {phrase})"),
    }
}

/// The messages of an error body, when it is the distribution spec's error envelope
/// (`{"errors":[{"code":…,"message":…}]}`) or a token service's `{"details":…}` /
/// OAuth2 `{"error_description":…}`. Anything else (HTML from a proxy, an unknown document) is
/// not echoed, so arbitrary response bytes never reach a condition message. The message is
/// scrubbed of `secrets` before it is shortened, so a cut never leaves part of a secret behind.
pub fn error_body_message(body: &[u8], secrets: &Secrets) -> Option<String> {
    const MAX_CHARS: usize = 300;
    let clean = |text: &str| -> String {
        let single_line: String = redact(text, secrets)
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        shorten(single_line.trim(), MAX_CHARS)
    };
    if let Ok(envelope) = serde_json::from_slice::<OciEnvelope>(body) {
        let messages: Vec<String> = envelope
            .errors
            .iter()
            .map(|e| {
                let code = serde_json::to_value(&e.code)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default();
                match (code.is_empty(), e.message.is_empty()) {
                    (false, false) => format!("{code}: {}", e.message),
                    (false, true) => code,
                    (true, _) => e.message.clone(),
                }
            })
            .filter(|m| !m.is_empty())
            .collect();
        if !messages.is_empty() {
            return Some(clean(&messages.join("; ")));
        }
    }
    #[derive(serde::Deserialize)]
    struct TokenServiceError {
        details: Option<String>,
        error_description: Option<String>,
        error: Option<String>,
    }
    let token_error: TokenServiceError = serde_json::from_slice(body).ok()?;
    token_error
        .details
        .or(token_error.error_description)
        .or(token_error.error)
        .filter(|m| !m.trim().is_empty())
        .map(|m| clean(&m))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(source: RequestFailure) -> RegistryError {
        RegistryError::HeadManifest {
            registry: "registry-1.docker.io".into(),
            repository: "library/nginx".into(),
            reference: "1.25".into(),
            source,
        }
    }

    fn status(status: u16) -> RequestFailure {
        RequestFailure::Status {
            status,
            message: None,
            retry_after_secs: None,
        }
    }

    #[test]
    fn statuses_map_to_the_condition_reasons_of_the_spec() {
        let table = [
            (400, "BadRequest", false),
            (401, "Unauthorized", false),
            (403, "Forbidden", false),
            (404, "NotFound", false),
            (405, "BadRequest", false),
            (408, "Timeout", true),
            (429, "TooManyRequests", true),
            (500, "InternalError", true),
            (502, "ServiceUnavailable", true),
            (503, "ServiceUnavailable", true),
            (504, "Timeout", true),
        ];
        for (code, reason, transient) in table {
            let error = head(status(code));
            assert_eq!(
                (error.reason(), error.is_transient()),
                (reason, transient),
                "{code}"
            );
        }
    }

    #[test]
    fn non_status_failures_have_their_own_reasons() {
        let table = [
            (
                RequestFailure::Timeout {
                    after: Duration::from_secs(30),
                },
                "Timeout",
                true,
            ),
            (
                RequestFailure::Connection {
                    detail: "refused".into(),
                },
                "ServiceUnavailable",
                true,
            ),
            (
                RequestFailure::Tls {
                    detail: "unknown issuer".into(),
                },
                "TLSError",
                false,
            ),
            (
                RequestFailure::ResponseTooLarge { limit: 10 },
                "ResponseTooLarge",
                false,
            ),
            (
                RequestFailure::DigestMismatch {
                    expected: "sha256:a".into(),
                    actual: "sha256:b".into(),
                },
                "DigestMismatch",
                false,
            ),
            (
                RequestFailure::InvalidResponse {
                    detail: "bad".into(),
                },
                "InvalidResponse",
                false,
            ),
            (
                RequestFailure::BackingOff {
                    remaining: Duration::from_secs(60),
                    reason: "TooManyRequests",
                },
                "TooManyRequests",
                true,
            ),
            (
                RequestFailure::Token {
                    realm_host: "auth.docker.io".into(),
                    source: Box::new(status(401)),
                },
                "Unauthorized",
                false,
            ),
            (
                RequestFailure::AddressRefused {
                    host: "169.254.169.254".into(),
                },
                "AddressRefused",
                false,
            ),
        ];
        for (failure, reason, transient) in table {
            let error = head(failure);
            assert_eq!(
                (error.reason(), error.is_transient()),
                (reason, transient),
                "{error}"
            );
        }
        let invalid = RegistryError::InvalidTarget {
            what: "repository",
            value: "A".into(),
            detail: "upper case",
        };
        assert_eq!(
            (invalid.reason(), invalid.is_transient()),
            ("InvalidImageReference", false)
        );
    }

    #[test]
    fn messages_name_the_registry_repository_and_reference_and_the_envelope_message() {
        let error = head(RequestFailure::Status {
            status: 404,
            message: Some("MANIFEST_UNKNOWN: manifest unknown".into()),
            retry_after_secs: None,
        });
        assert_eq!(
            error.to_string(),
            "cannot check registry-1.docker.io/library/nginx:1.25: not found \
             (HTTP 404 Not Found): MANIFEST_UNKNOWN: manifest unknown"
        );
        let by_digest = RegistryError::GetManifest {
            registry: "127.0.0.1:5000".into(),
            repository: "a/b".into(),
            digest: "sha256:abc".into(),
            source: status(500),
        };
        assert_eq!(
            by_digest.to_string(),
            "cannot fetch manifest 127.0.0.1:5000/a/b@sha256:abc: registry server error \
             (HTTP 500 Internal Server Error)"
        );
    }

    #[test]
    fn backing_off_message_names_the_cause_and_not_the_time_left() {
        let refusal = |remaining| {
            head(RequestFailure::BackingOff {
                remaining,
                reason: "TooManyRequests",
            })
        };
        let early = refusal(Duration::from_millis(90_400));
        let later = refusal(Duration::from_secs(31));
        assert_eq!(
            early.to_string(),
            "cannot check registry-1.docker.io/library/nginx:1.25: \
             not contacted: backing off after TooManyRequests"
        );
        // Refusals while one backoff runs down are one failure: same message, same reason as the
        // 429 that started it.
        assert_eq!(later.to_string(), early.to_string());
        assert_eq!(early.reason(), head(status(429)).reason());
    }

    #[test]
    fn a_retry_after_answer_and_a_refusal_by_backoff_say_how_long_to_wait() {
        let backing_off = RequestFailure::BackingOff {
            remaining: Duration::from_secs(90),
            reason: "TooManyRequests",
        };
        let table = [
            (backing_off.clone(), Some(Duration::from_secs(90))),
            (
                RequestFailure::Token {
                    realm_host: "auth.docker.io".into(),
                    source: Box::new(backing_off),
                },
                Some(Duration::from_secs(90)),
            ),
            (
                RequestFailure::Status {
                    status: 429,
                    message: None,
                    retry_after_secs: Some(120),
                },
                Some(Duration::from_secs(120)),
            ),
            (status(429), None),
            (
                RequestFailure::Connection {
                    detail: "refused".into(),
                },
                None,
            ),
        ];
        for (failure, wait) in table {
            assert_eq!(head(failure.clone()).retry_after(), wait, "{failure}");
        }
        let invalid = RegistryError::InvalidTarget {
            what: "repository",
            value: "A".into(),
            detail: "upper case",
        };
        assert_eq!(invalid.retry_after(), None);
    }

    #[test]
    fn envelope_messages_are_extracted_with_their_codes() {
        let body = br#"{"errors":[{"code":"TOOMANYREQUESTS","message":"You have reached your pull rate limit."},{"code":"DENIED","message":""}]}"#;
        assert_eq!(
            error_body_message(body, &Secrets::default()).as_deref(),
            Some("TOOMANYREQUESTS: You have reached your pull rate limit.; DENIED")
        );
        let unknown_code = br#"{"errors":[{"code":"ARTIFACT_LOCKED","message":"locked"}]}"#;
        assert_eq!(
            error_body_message(unknown_code, &Secrets::default()).as_deref(),
            Some("ARTIFACT_LOCKED: locked")
        );
    }

    #[test]
    fn token_service_error_bodies_are_extracted() {
        assert_eq!(
            error_body_message(
                br#"{"details":"incorrect username or password"}"#,
                &Secrets::default()
            )
            .as_deref(),
            Some("incorrect username or password")
        );
        assert_eq!(
            error_body_message(
                br#"{"error":"invalid_grant","error_description":"expired"}"#,
                &Secrets::default()
            )
            .as_deref(),
            Some("expired")
        );
    }

    #[test]
    fn other_bodies_are_not_echoed_and_long_ones_are_cut() {
        let none = Secrets::default();
        assert_eq!(
            error_body_message(b"<html>502 Bad Gateway</html>", &none),
            None
        );
        assert_eq!(
            error_body_message(br#"{"AccessKeyId":"AKIA"}"#, &none),
            None
        );
        assert_eq!(error_body_message(b"", &none), None);
        let long = format!(
            r#"{{"errors":[{{"code":"DENIED","message":"{}\n{}"}}]}}"#,
            "x".repeat(500),
            "y"
        );
        let message = error_body_message(long.as_bytes(), &none).unwrap();
        assert!(message.chars().count() <= 301 && !message.contains('\n'));
    }

    fn token(source: RequestFailure) -> RequestFailure {
        RequestFailure::Token {
            realm_host: "auth.example".into(),
            source: Box::new(source),
        }
    }

    #[test]
    fn a_token_endpoint_failure_is_never_not_found_and_is_worth_retrying() {
        let table = [
            (token(status(404)), "TokenEndpointFailed", true),
            (token(status(410)), "TokenEndpointFailed", true),
            (token(status(405)), "TokenEndpointFailed", true),
            (token(status(401)), "Unauthorized", false),
            (token(status(403)), "Forbidden", false),
            (token(status(400)), "BadRequest", false),
            (token(status(408)), "Timeout", true),
            (token(status(429)), "TooManyRequests", true),
            (token(status(500)), "InternalError", true),
            (token(status(503)), "ServiceUnavailable", true),
            (
                token(RequestFailure::Connection {
                    detail: "refused".into(),
                }),
                "ServiceUnavailable",
                true,
            ),
            (
                token(RequestFailure::InvalidResponse {
                    detail: "no token".into(),
                }),
                "InvalidResponse",
                false,
            ),
            // The registry's own 404 still means the tag is gone.
            (status(404), "NotFound", false),
        ];
        for (failure, reason, transient) in table {
            let error = head(failure);
            assert_eq!(
                (error.reason(), error.is_transient()),
                (reason, transient),
                "{error}"
            );
        }
    }

    #[test]
    fn a_token_failure_discredits_the_challenge_unless_it_is_about_the_credential_or_the_load() {
        let backing_off = RequestFailure::BackingOff {
            remaining: Duration::from_secs(9),
            reason: "ServiceUnavailable",
        };
        let table = [
            (token(status(404)), true),
            (token(status(500)), true),
            (token(status(400)), true),
            (
                token(RequestFailure::Connection {
                    detail: "refused".into(),
                }),
                true,
            ),
            (
                token(RequestFailure::Timeout {
                    after: Duration::from_secs(30),
                }),
                true,
            ),
            (token(status(401)), false),
            (token(status(403)), false),
            (token(status(429)), false),
            (token(backing_off), false),
            // Not a token request at all.
            (status(404), false),
        ];
        for (failure, discredits) in table {
            assert_eq!(failure.discredits_challenge(), discredits, "{failure}");
        }
    }

    #[test]
    fn redaction_scrubs_every_text_of_a_failure_and_keeps_its_kind() {
        let mut secrets = Secrets::default();
        secrets.add("s3cret-token");
        let table = [
            (
                token(RequestFailure::Status {
                    status: 404,
                    message: Some("no s3cret-token here".into()),
                    retry_after_secs: Some(5),
                }),
                "token request to auth.example failed: not found (HTTP 404 Not Found): \
                 no <redacted> here",
            ),
            (
                RequestFailure::Token {
                    realm_host: "s3cret-token.example".into(),
                    source: Box::new(status(500)),
                },
                "token request to <redacted>.example failed: registry server error \
                 (HTTP 500 Internal Server Error)",
            ),
            (
                RequestFailure::Connection {
                    detail: "reset after s3cret-token".into(),
                },
                "connection failed: reset after <redacted>",
            ),
            (
                RequestFailure::Tls {
                    detail: "s3cret-token".into(),
                },
                "TLS handshake failed: <redacted>",
            ),
            (
                RequestFailure::InvalidResponse {
                    detail: "bad s3cret-token".into(),
                },
                "invalid response: bad <redacted>",
            ),
            (
                RequestFailure::AddressRefused {
                    host: "s3cret-token.internal".into(),
                },
                "refused to contact <redacted>.internal: a link-local or cloud metadata address",
            ),
        ];
        for (failure, expected) in table {
            let reason = failure.reason();
            let retry_after = failure.retry_after();
            let redacted = failure.redacted(&secrets);
            assert_eq!(redacted.to_string(), expected);
            assert_eq!(
                (redacted.reason(), redacted.retry_after()),
                (reason, retry_after)
            );
        }
    }

    #[test]
    fn an_envelope_message_is_scrubbed_before_it_is_cut_so_no_part_of_a_secret_remains() {
        let secret = "Zm9vYmFyYmF6cXV4cXV1eDEyMzQ1Njc4OTA";
        let mut secrets = Secrets::default();
        secrets.add(secret);
        // The secret straddles the 300th character, where the message is cut.
        let body = format!(
            r#"{{"errors":[{{"code":"DENIED","message":"{} {secret} tail"}}]}}"#,
            "x".repeat(280)
        );
        let message = error_body_message(body.as_bytes(), &secrets).unwrap();
        assert!(!message.contains(&secret[..8]), "{message}");
        assert!(message.contains("<redacted>"), "{message}");
    }
}
