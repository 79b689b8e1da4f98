//! Scrubbing credentials out of text a registry or token service sent back. Registries and the
//! proxies in front of them have been seen echoing the `Authorization` header in error bodies, and
//! that text ends up in conditions, Events and logs that people who cannot read Secrets can read.
//! Pure: [`Secrets`] lists every form in which a request carried a credential, and [`redact`]
//! replaces each of them.

use std::borrow::Cow;
use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};

use crate::domain::credential::RegistryCredential;

/// What a secret is replaced with.
pub const REDACTED: &str = "<redacted>";

/// What a whole text is replaced with when it contains a secret too short to cut out: a password
/// of three letters occurs inside ordinary words, and replacing it there would still show where it
/// was while leaving a garbled message.
pub const WITHHELD: &str = "<withheld: may contain a credential>";

/// Secrets shorter than this withhold the whole text they occur in instead of being replaced.
const MIN_REPLACED_CHARS: usize = 6;

/// The secrets of one call, in every form a request carried them: passwords and tokens as they
/// are, `user:password`, its base64 (standard and URL-safe alphabets, with and without padding,
/// as sent in `Authorization: Basic`), and the form-urlencoded form of each secret (as sent in a
/// query or a refresh-token grant). Its `Debug` shows only how many there are.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secrets {
    /// Longest first, so a form that contains another is replaced whole.
    forms: Vec<String>,
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secrets({} forms)", self.forms.len())
    }
}

impl Secrets {
    /// The secrets of every credential in `credentials`.
    pub fn of_credentials<'a>(
        credentials: impl IntoIterator<Item = &'a RegistryCredential>,
    ) -> Self {
        let mut secrets = Self::default();
        for credential in credentials {
            secrets.add_credential(credential);
        }
        secrets
    }

    /// Adds a credential's password, `user:password` with its base64 forms, and identity token.
    pub fn add_credential(&mut self, credential: &RegistryCredential) {
        self.add(&credential.password);
        if !credential.password.is_empty() {
            let pair = format!("{}:{}", credential.username, credential.password);
            for engine in [STANDARD, URL_SAFE] {
                self.push(engine.encode(&pair));
            }
            for engine in [STANDARD_NO_PAD, URL_SAFE_NO_PAD] {
                self.push(engine.encode(&pair));
            }
            self.add(&pair);
        }
        if let Some(token) = &credential.identity_token {
            self.add(token);
        }
    }

    /// Adds a secret (a bearer or refresh token, a password) and its form-urlencoded form.
    pub fn add(&mut self, secret: &str) {
        self.push(secret.to_owned());
        self.push(form_urlencoded(secret));
    }

    /// Whether there is nothing to scrub.
    pub fn is_empty(&self) -> bool {
        self.forms.is_empty()
    }

    fn push(&mut self, form: String) {
        if form.is_empty() || self.forms.contains(&form) {
            return;
        }
        let at = self
            .forms
            .partition_point(|known| known.chars().count() >= form.chars().count());
        self.forms.insert(at, form);
    }
}

/// `text` without any of `secrets`: each occurrence of a secret is replaced with [`REDACTED`]; a
/// text that contains a secret shorter than six characters is replaced whole with [`WITHHELD`].
pub fn redact<'a>(text: &'a str, secrets: &Secrets) -> Cow<'a, str> {
    let mut scrubbed = Cow::Borrowed(text);
    for form in &secrets.forms {
        if !scrubbed.contains(form.as_str()) {
            continue;
        }
        if form.chars().count() < MIN_REPLACED_CHARS {
            return Cow::Borrowed(WITHHELD);
        }
        scrubbed = Cow::Owned(scrubbed.replace(form.as_str(), REDACTED));
    }
    scrubbed
}

/// `application/x-www-form-urlencoded` of `text`, as reqwest encodes queries and forms.
fn form_urlencoded(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => {
                encoded.push(char::from(byte));
            }
            b' ' => encoded.push('+'),
            other => encoded.push_str(&format!("%{other:02X}")),
        }
    }
    encoded
}

#[cfg(test)]
mod tests {
    use super::*;

    fn credential(user: &str, password: &str, identity_token: Option<&str>) -> RegistryCredential {
        RegistryCredential {
            username: user.into(),
            password: password.into(),
            identity_token: identity_token.map(Into::into),
            source: "ns/secret".into(),
        }
    }

    #[test]
    fn every_form_of_a_credential_is_replaced() {
        // base64("alice:s3cret+pass/word") is YWxpY2U6czNjcmV0K3Bhc3Mvd29yZA== (22 bytes, so the
        // padded and unpadded forms differ).
        let secrets = Secrets::of_credentials([&credential(
            "alice",
            "s3cret+pass/word",
            Some("refresh-0123456789"),
        )]);
        let table = [
            ("password: s3cret+pass/word", "password: <redacted>"),
            ("alice:s3cret+pass/word", "<redacted>"),
            (
                "Authorization: Basic YWxpY2U6czNjcmV0K3Bhc3Mvd29yZA==",
                "Authorization: Basic <redacted>",
            ),
            (
                "got Basic YWxpY2U6czNjcmV0K3Bhc3Mvd29yZA, want more",
                "got Basic <redacted>, want more",
            ),
            (
                "query password=s3cret%2Bpass%2Fword",
                "query password=<redacted>",
            ),
            (
                "refresh_token=refresh-0123456789",
                "refresh_token=<redacted>",
            ),
            (
                "twice: s3cret+pass/word s3cret+pass/word",
                "twice: <redacted> <redacted>",
            ),
            ("manifest unknown", "manifest unknown"),
            // The user name alone is not a secret, and says whose credential was refused.
            ("user alice is not allowed", "user alice is not allowed"),
        ];
        for (text, expected) in table {
            assert_eq!(redact(text, &secrets), expected, "{text}");
        }
    }

    #[test]
    fn url_safe_base64_forms_are_replaced() {
        // base64("bob:??>>??") has `/` and `+` in the standard alphabet, `_` and `-` in the
        // URL-safe one.
        let secrets = Secrets::of_credentials([&credential("bob", "??>>??", None)]);
        let standard = STANDARD.encode("bob:??>>??");
        let url_safe = URL_SAFE_NO_PAD.encode("bob:??>>??");
        assert_ne!(standard.trim_end_matches('='), url_safe);
        for text in [standard, url_safe] {
            assert_eq!(redact(&format!("x {text} y"), &secrets), "x <redacted> y");
        }
    }

    #[test]
    fn tokens_are_replaced_and_the_longest_form_goes_first() {
        let mut secrets = Secrets::default();
        secrets.add("tok-abcdef");
        secrets.add("tok-abcdef-longer");
        assert_eq!(
            redact("Bearer tok-abcdef-longer and tok-abcdef", &secrets),
            "Bearer <redacted> and <redacted>"
        );
    }

    #[test]
    fn a_text_with_a_secret_too_short_to_cut_out_is_withheld_whole() {
        let secrets = Secrets::of_credentials([&credential("alice", "ab1", None)]);
        assert_eq!(redact("denied: ab1", &secrets), WITHHELD);
        assert_eq!(redact("denied", &secrets), "denied");
        // The long forms of the same credential are still cut out, not withheld.
        let basic = STANDARD.encode("alice:ab1");
        assert_eq!(
            redact(&format!("Basic {basic}"), &secrets),
            "Basic <redacted>"
        );
    }

    #[test]
    fn nothing_is_replaced_without_secrets_or_for_empty_ones() {
        let empty = Secrets::of_credentials([&credential("alice", "", None)]);
        assert!(empty.is_empty());
        assert_eq!(redact("alice: anything", &empty), "alice: anything");
        assert!(matches!(
            redact("text", &Secrets::default()),
            Cow::Borrowed("text")
        ));
    }

    #[test]
    fn debug_output_shows_no_secret() {
        let secrets = Secrets::of_credentials([&credential("alice", "hunter22", None)]);
        let printed = format!("{secrets:?}");
        assert!(!printed.contains("hunter22"), "{printed}");
        assert!(printed.starts_with("Secrets("), "{printed}");
    }

    #[test]
    fn form_urlencoding_matches_what_reqwest_sends() {
        assert_eq!(form_urlencoded("a b+c/d=e~f"), "a+b%2Bc%2Fd%3De%7Ef");
        assert_eq!(form_urlencoded("Az09*-._"), "Az09*-._");
    }
}
