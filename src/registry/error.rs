//! The registry client's errors: [`RegistryError`] names the operation and what it was about,
//! [`RequestFailure`] says what went wrong on the wire. Both give the PascalCase condition reason
//! and whether a retry may help. Messages never contain credentials or tokens.

use std::time::Duration;

use oci_client::errors::OciEnvelope;

use super::manifest::ManifestError;
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
        /// The messages of the registry's error envelope, when it sent one.
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
            Self::Token { source, .. } => source.is_transient(),
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
/// not echoed, so arbitrary response bytes never reach a condition message.
pub fn error_body_message(body: &[u8]) -> Option<String> {
    const MAX_CHARS: usize = 300;
    let clean = |text: &str| -> String {
        let single_line: String = text
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
            error_body_message(body).as_deref(),
            Some("TOOMANYREQUESTS: You have reached your pull rate limit.; DENIED")
        );
        let unknown_code = br#"{"errors":[{"code":"ARTIFACT_LOCKED","message":"locked"}]}"#;
        assert_eq!(
            error_body_message(unknown_code).as_deref(),
            Some("ARTIFACT_LOCKED: locked")
        );
    }

    #[test]
    fn token_service_error_bodies_are_extracted() {
        assert_eq!(
            error_body_message(br#"{"details":"incorrect username or password"}"#).as_deref(),
            Some("incorrect username or password")
        );
        assert_eq!(
            error_body_message(br#"{"error":"invalid_grant","error_description":"expired"}"#)
                .as_deref(),
            Some("expired")
        );
    }

    #[test]
    fn other_bodies_are_not_echoed_and_long_ones_are_cut() {
        assert_eq!(error_body_message(b"<html>502 Bad Gateway</html>"), None);
        assert_eq!(error_body_message(br#"{"AccessKeyId":"AKIA"}"#), None);
        assert_eq!(error_body_message(b""), None);
        let long = format!(
            r#"{{"errors":[{{"code":"DENIED","message":"{}\n{}"}}]}}"#,
            "x".repeat(500),
            "y"
        );
        let message = error_body_message(long.as_bytes()).unwrap();
        assert!(message.chars().count() <= 301 && !message.contains('\n'));
    }
}
