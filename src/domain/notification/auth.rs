//! Who may post a notification: the sender proves it knows the source's shared secret, either by
//! sending it (as a bearer token, or verbatim as Harbor does) or by signing the body with it
//! (HMAC-SHA256, as GitHub and Artifactory do). Every comparison is constant-time, and nothing here
//! keeps, prints or returns the secret.
//!
//! Registries that can add neither a header nor a signature (Docker Hub, Quay, a Pub/Sub push
//! subscription without OIDC) cannot pass these checks; the receiver has to take their secret from
//! the URL.

use ring::hmac;
use thiserror::Error;

use super::Format;

const AUTHORIZATION: &str = "authorization";
const HUB_SIGNATURE_256: &str = "x-hub-signature-256";
const JFROG_EVENT_AUTH: &str = "x-jfrog-event-auth";
const SIGNATURE_256: &str = "x-signature-256";
const SHA256_PREFIX: &str = "sha256=";

/// A way a sender proves it knows the secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// `Authorization: Bearer <secret>`: the token a distribution registry's `notifications.endpoints
    /// [].headers`, an ACR webhook's custom headers, GitLab's registry configuration or an
    /// EventBridge connection (API key `Authorization` = `Bearer <secret>`) sends. The word
    /// `Bearer` is matched case-insensitively.
    Bearer,
    /// `X-Hub-Signature-256: sha256=<hex>`: GitHub's HMAC-SHA256 of the raw body keyed with the
    /// webhook secret.
    HubSignature256,
    /// `Authorization: <secret>`: Harbor sends a webhook policy's "auth header" value verbatim, so
    /// the whole header value is the secret.
    HarborAuthorization,
    /// `X-JFrog-Event-Auth: <hex>`: Artifactory's HMAC-SHA256 of the raw body keyed with the
    /// webhook secret, sent when "use secret for payload signing" is on (without it, Artifactory
    /// sends the secret itself in this header, which is not accepted). The same hex, optionally
    /// prefixed `sha256=`, is also read from `X-Signature-256` for other signing senders.
    ArtifactoryHmac,
}

impl Scheme {
    /// The snake_case word used as a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Bearer => "bearer",
            Scheme::HubSignature256 => "hub_signature_256",
            Scheme::HarborAuthorization => "harbor_authorization",
            Scheme::ArtifactoryHmac => "artifactory_hmac",
        }
    }
}

/// Why a notification was not authenticated. Neither variant says anything about the secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Error)]
pub enum AuthError {
    /// The request carries no credential in any header the format's schemes read.
    #[error("the notification carries no credential")]
    Missing,
    /// The request carries a credential, and none matches the secret.
    #[error("the notification's credential does not match the secret")]
    Wrong,
}

impl AuthError {
    /// The PascalCase reason used for metric labels and log fields.
    pub fn reason(self) -> &'static str {
        match self {
            AuthError::Missing => "MissingCredential",
            AuthError::Wrong => "WrongCredential",
        }
    }
}

/// The schemes a format accepts, in the order they are tried: every format takes
/// [`Scheme::Bearer`]; GitHub also [`Scheme::HubSignature256`], Harbor also
/// [`Scheme::HarborAuthorization`], the generic form also [`Scheme::ArtifactoryHmac`].
pub fn scheme_of(format: Format) -> &'static [Scheme] {
    match format {
        Format::Github => &[Scheme::HubSignature256, Scheme::Bearer],
        Format::Harbor => &[Scheme::Bearer, Scheme::HarborAuthorization],
        Format::Generic => &[Scheme::Bearer, Scheme::ArtifactoryHmac],
        Format::Distribution
        | Format::DockerHub
        | Format::Quay
        | Format::Gitlab
        | Format::Acr
        | Format::Gar
        | Format::Ecr => &[Scheme::Bearer],
    }
}

/// The scheme by which a request proves it knows `secret`, trying [`scheme_of`]`(format)` in
/// order. `header` looks a header up by its lower-case name, case-insensitively, as `http`'s
/// `HeaderMap` does; `body` is the raw body the signatures cover. An empty secret accepts nothing.
pub fn authenticate<'h>(
    format: Format,
    header: impl Fn(&str) -> Option<&'h str>,
    body: &[u8],
    secret: &[u8],
) -> Result<Scheme, AuthError> {
    let mut presented = false;
    for &scheme in scheme_of(format) {
        match check(scheme, &header, body, secret) {
            Check::Passed => return Ok(scheme),
            Check::Failed => presented = true,
            Check::Absent => {}
        }
    }
    Err(if presented {
        AuthError::Wrong
    } else {
        AuthError::Missing
    })
}

/// What one scheme found in a request.
enum Check {
    /// None of the scheme's headers is present.
    Absent,
    /// A header is present and does not prove the secret.
    Failed,
    /// A header proves the secret.
    Passed,
}

fn check<'h>(
    scheme: Scheme,
    header: &impl Fn(&str) -> Option<&'h str>,
    body: &[u8],
    secret: &[u8],
) -> Check {
    match scheme {
        Scheme::Bearer => verdict(header(AUTHORIZATION), |value| {
            bearer_token(value).is_some_and(|token| is_secret(token.as_bytes(), secret))
        }),
        Scheme::HubSignature256 => verdict(header(HUB_SIGNATURE_256), |value| {
            value
                .strip_prefix(SHA256_PREFIX)
                .is_some_and(|hex| is_body_signature(hex, body, secret))
        }),
        Scheme::HarborAuthorization => verdict(header(AUTHORIZATION), |value| {
            is_secret(value.as_bytes(), secret)
        }),
        Scheme::ArtifactoryHmac => {
            let jfrog = verdict(header(JFROG_EVENT_AUTH), |value| {
                is_body_signature(value, body, secret)
            });
            let signature = verdict(header(SIGNATURE_256), |value| {
                let hex = value.strip_prefix(SHA256_PREFIX).unwrap_or(value);
                is_body_signature(hex, body, secret)
            });
            either(jfrog, signature)
        }
    }
}

fn verdict(value: Option<&str>, proves_secret: impl FnOnce(&str) -> bool) -> Check {
    match value {
        None => Check::Absent,
        Some(value) if proves_secret(value) => Check::Passed,
        Some(_) => Check::Failed,
    }
}

/// The better of two checks of one scheme: a pass wins, then a failure.
fn either(a: Check, b: Check) -> Check {
    match (a, b) {
        (Check::Passed, _) | (_, Check::Passed) => Check::Passed,
        (Check::Failed, _) | (_, Check::Failed) => Check::Failed,
        (Check::Absent, Check::Absent) => Check::Absent,
    }
}

/// The token of an `Authorization: Bearer <token>` value.
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim_start_matches(' '))
}

/// Whether `presented` equals `secret`, in time independent of where they differ: both are
/// HMAC'd with the secret as key and the tags compared by `ring`, so the comparison never sees the
/// secret itself.
fn is_secret(presented: &[u8], secret: &[u8]) -> bool {
    if secret.is_empty() {
        return false;
    }
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let expected = hmac::sign(&key, secret);
    hmac::verify(&key, presented, expected.as_ref()).is_ok()
}

/// Whether `hex` (either case) is the HMAC-SHA256 of `body` keyed with `secret`.
fn is_body_signature(hex: &str, body: &[u8], secret: &[u8]) -> bool {
    if secret.is_empty() {
        return false;
    }
    let Ok(tag) = hex::decode(hex.trim()) else {
        return false;
    };
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    hmac::verify(&key, body, &tag).is_ok()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use pretty_assertions::assert_eq;
    use proptest::prelude::*;

    const SECRET: &[u8] = b"s3cret-token";
    const BODY: &[u8] = br#"{"events":[]}"#;

    /// A request's headers, looked up case-insensitively as `HeaderMap` does.
    struct Headers(HashMap<String, String>);

    impl Headers {
        fn new(pairs: &[(&str, &str)]) -> Self {
            Self(
                pairs
                    .iter()
                    .map(|(name, value)| (name.to_ascii_lowercase(), (*value).to_owned()))
                    .collect(),
            )
        }

        fn get(&self, name: &str) -> Option<&str> {
            self.0.get(&name.to_ascii_lowercase()).map(String::as_str)
        }
    }

    fn authenticated(
        format: Format,
        pairs: &[(&str, &str)],
        body: &[u8],
        secret: &[u8],
    ) -> Result<Scheme, AuthError> {
        let headers = Headers::new(pairs);
        authenticate(format, |name| headers.get(name), body, secret)
    }

    fn signature(body: &[u8], secret: &[u8]) -> Vec<u8> {
        let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
        hmac::sign(&key, body).as_ref().to_vec()
    }

    fn signature_hex(body: &[u8], secret: &[u8]) -> String {
        hex::encode(signature(body, secret))
    }

    #[test]
    fn every_format_accepts_the_bearer_secret() {
        for format in Format::ALL {
            for value in [
                "Bearer s3cret-token",
                "bearer s3cret-token",
                "BEARER  s3cret-token",
            ] {
                assert_eq!(
                    authenticated(format, &[("Authorization", value)], BODY, SECRET),
                    Ok(Scheme::Bearer),
                    "{format} {value}"
                );
            }
        }
    }

    #[test]
    fn a_wrong_or_missing_bearer_secret_is_refused() {
        let cases = [
            (vec![], Err(AuthError::Missing)),
            (
                vec![("Authorization", "Bearer s3cret-tokem")],
                Err(AuthError::Wrong),
            ),
            (
                vec![("Authorization", "Bearer s3cret-token ")],
                Err(AuthError::Wrong),
            ),
            (
                vec![("Authorization", "Bearer s3cret")],
                Err(AuthError::Wrong),
            ),
            (vec![("Authorization", "Bearer ")], Err(AuthError::Wrong)),
            (
                vec![("Authorization", "Basic czNjcmV0LXRva2Vu")],
                Err(AuthError::Wrong),
            ),
            (
                vec![("Authorization", "s3cret-token")],
                Err(AuthError::Wrong),
            ),
            (
                vec![("X-Other", "Bearer s3cret-token")],
                Err(AuthError::Missing),
            ),
        ];
        for (headers, expected) in cases {
            assert_eq!(
                authenticated(Format::Distribution, &headers, BODY, SECRET),
                expected,
                "{headers:?}"
            );
        }
    }

    #[test]
    fn harbor_accepts_its_auth_header_verbatim_or_as_bearer() {
        let cases = [
            ("s3cret-token", Ok(Scheme::HarborAuthorization)),
            ("Bearer s3cret-token", Ok(Scheme::Bearer)),
            ("s3cret-tokenx", Err(AuthError::Wrong)),
            ("", Err(AuthError::Wrong)),
        ];
        for (value, expected) in cases {
            assert_eq!(
                authenticated(Format::Harbor, &[("Authorization", value)], BODY, SECRET),
                expected,
                "{value:?}"
            );
        }
        // Other formats do not take the bare secret.
        assert_eq!(
            authenticated(
                Format::Acr,
                &[("Authorization", "s3cret-token")],
                BODY,
                SECRET
            ),
            Err(AuthError::Wrong)
        );
    }

    #[test]
    fn github_accepts_a_correct_body_signature() {
        let value = format!("sha256={}", signature_hex(BODY, SECRET));
        assert_eq!(
            authenticated(
                Format::Github,
                &[("X-Hub-Signature-256", &value)],
                BODY,
                SECRET
            ),
            Ok(Scheme::HubSignature256)
        );
        let upper = format!("sha256={}", signature_hex(BODY, SECRET).to_uppercase());
        assert_eq!(
            authenticated(
                Format::Github,
                &[("X-Hub-Signature-256", &upper)],
                BODY,
                SECRET
            ),
            Ok(Scheme::HubSignature256)
        );
    }

    #[test]
    fn a_signature_one_bit_off_is_refused() {
        let good = signature(BODY, SECRET);
        for bit in 0..good.len() * 8 {
            let mut bad = good.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            let value = format!("sha256={}", hex::encode(&bad));
            assert_eq!(
                authenticated(
                    Format::Github,
                    &[("X-Hub-Signature-256", &value)],
                    BODY,
                    SECRET
                ),
                Err(AuthError::Wrong),
                "bit {bit}"
            );
        }
    }

    #[test]
    fn a_signature_of_another_body_or_in_another_form_is_refused() {
        let other_body = format!("sha256={}", signature_hex(b"{}", SECRET));
        let no_prefix = signature_hex(BODY, SECRET);
        let sha1_prefix = format!("sha1={}", signature_hex(BODY, SECRET));
        let truncated = format!("sha256={}", &signature_hex(BODY, SECRET)[..62]);
        for value in [
            other_body,
            no_prefix,
            sha1_prefix,
            truncated,
            "sha256=zz".to_owned(),
        ] {
            assert_eq!(
                authenticated(
                    Format::Github,
                    &[("X-Hub-Signature-256", &value)],
                    BODY,
                    SECRET
                ),
                Err(AuthError::Wrong),
                "{value}"
            );
        }
    }

    #[test]
    fn a_signature_header_is_ignored_by_formats_that_do_not_read_it() {
        let value = format!("sha256={}", signature_hex(BODY, SECRET));
        for format in [
            Format::Distribution,
            Format::Harbor,
            Format::Quay,
            Format::Generic,
        ] {
            assert_eq!(
                authenticated(format, &[("X-Hub-Signature-256", &value)], BODY, SECRET),
                Err(AuthError::Missing),
                "{format}"
            );
        }
    }

    #[test]
    fn generic_accepts_artifactory_and_x_signature_256_hmacs() {
        let hex = signature_hex(BODY, SECRET);
        let cases = [
            ("X-JFrog-Event-Auth", hex.clone()),
            ("X-JFrog-Event-Auth", hex.to_uppercase()),
            ("X-Signature-256", hex.clone()),
            ("X-Signature-256", format!("sha256={hex}")),
        ];
        for (name, value) in cases {
            assert_eq!(
                authenticated(Format::Generic, &[(name, &value)], BODY, SECRET),
                Ok(Scheme::ArtifactoryHmac),
                "{name}: {value}"
            );
        }
        // Artifactory without signing sends the secret itself: not accepted.
        assert_eq!(
            authenticated(
                Format::Generic,
                &[("X-JFrog-Event-Auth", "s3cret-token")],
                BODY,
                SECRET
            ),
            Err(AuthError::Wrong)
        );
        // One good header among bad ones is enough.
        assert_eq!(
            authenticated(
                Format::Generic,
                &[("X-JFrog-Event-Auth", "00"), ("X-Signature-256", &hex)],
                BODY,
                SECRET
            ),
            Ok(Scheme::ArtifactoryHmac)
        );
    }

    #[test]
    fn an_empty_secret_accepts_nothing() {
        let empty_signature = format!("sha256={}", signature_hex(BODY, b""));
        let cases = [
            vec![("Authorization", "Bearer ")],
            vec![("Authorization", "")],
            vec![("X-Hub-Signature-256", empty_signature.as_str())],
        ];
        for format in Format::ALL {
            for headers in &cases {
                assert!(
                    authenticated(format, headers, BODY, b"").is_err(),
                    "{format} {headers:?}"
                );
            }
        }
    }

    #[test]
    fn errors_say_nothing_about_the_secret() {
        let secret = "0123456789abcdef-very-secret";
        for error in [AuthError::Missing, AuthError::Wrong] {
            assert!(!format!("{error} {error:?} {}", error.reason()).contains(secret));
        }
    }

    /// Header values built from the pieces credentials are made of, so that some are close to right.
    fn header_value() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<String>(),
            "[ -~]{0,80}",
            "(Bearer|bearer|Basic) [ -~]{0,40}",
            "sha256=[0-9a-fA-F]{0,70}",
        ]
    }

    fn headers() -> impl Strategy<Value = Vec<(&'static str, String)>> {
        let name = prop_oneof![
            Just("authorization"),
            Just("x-hub-signature-256"),
            Just("x-jfrog-event-auth"),
            Just("x-signature-256"),
            Just("x-other"),
        ];
        proptest::collection::vec((name, header_value()), 0..4)
    }

    fn format() -> impl Strategy<Value = Format> {
        proptest::sample::select(Format::ALL.to_vec())
    }

    proptest! {
        #[test]
        fn authentication_never_panics(
            format in format(),
            headers in headers(),
            body in proptest::collection::vec(any::<u8>(), 0..256),
            secret in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let pairs: Vec<(&str, &str)> = headers.iter().map(|(name, value)| (*name, value.as_str())).collect();
            let _ = authenticated(format, &pairs, &body, &secret);
        }

        #[test]
        fn credentials_made_with_another_secret_are_never_accepted(
            format in format(),
            body in proptest::collection::vec(any::<u8>(), 0..256),
            secret in "[ -~]{1,40}",
            other in "[!-~][ -~]{0,39}",
        ) {
            // `Bearer  x` is the token `x`: a sender may put several spaces after the scheme.
            prop_assume!(secret != other);
            let hex = signature_hex(&body, other.as_bytes());
            let bearer = format!("Bearer {other}");
            let hub = format!("sha256={hex}");
            let attempts = [
                vec![("Authorization", bearer.as_str())],
                vec![("Authorization", other.as_str())],
                vec![("X-Hub-Signature-256", hub.as_str())],
                vec![("X-JFrog-Event-Auth", hex.as_str())],
                vec![("X-Signature-256", hub.as_str())],
            ];
            for pairs in &attempts {
                prop_assert!(authenticated(format, pairs, &body, secret.as_bytes()).is_err());
            }
        }

        #[test]
        fn credentials_made_with_the_secret_are_accepted_where_the_format_reads_them(
            body in proptest::collection::vec(any::<u8>(), 0..256),
            secret in "[!-~]{1,40}",
        ) {
            let bearer = format!("Bearer {secret}");
            for format in Format::ALL {
                prop_assert_eq!(
                    authenticated(format, &[("Authorization", bearer.as_str())], &body, secret.as_bytes()),
                    Ok(Scheme::Bearer)
                );
            }
            let hub = format!("sha256={}", signature_hex(&body, secret.as_bytes()));
            prop_assert_eq!(
                authenticated(Format::Github, &[("X-Hub-Signature-256", hub.as_str())], &body, secret.as_bytes()),
                Ok(Scheme::HubSignature256)
            );
        }
    }
}
