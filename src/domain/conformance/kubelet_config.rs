//! Cases of kubernetes `pkg/credentialprovider/config_test.go`: how the kubelet reads a
//! `.dockercfg` or `.dockerconfigjson` payload and the `auth` field of its entries. Read from the
//! 1.33-era master (the table with the non-UTF-8 `auth` case, stored as janisz/kubernetes@8789f17b;
//! the code under test is `config.go`'s `DockerConfigEntry.UnmarshalJSON` and
//! `decodeDockerConfigFieldAuth`). Every case goes through [`PullSecret::parse`], the one place
//! this crate reads a pull secret. Not ported: `TestDockerConfigEntryJSONCompatibleEncode` (this
//! crate never writes a pull secret) and the file-search part of `TestReadDockerConfigFile` (pull
//! secrets come from the API server, never from disk).

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};

use crate::domain::keyring::{KeyringError, PullSecret, PullSecretFormat};

/// `<namespace>/<name>` of the secret every case parses.
const SECRET: &str = "team-a/pull";

fn parse(format: PullSecretFormat, payload: &str) -> Result<PullSecret, KeyringError> {
    PullSecret::parse("team-a", "pull", format, payload.as_bytes())
}

/// (key as written, normalised key, user name, password) of every entry, in key order.
fn entries(secret: &PullSecret) -> Vec<(&str, String, &str, &str)> {
    secret
        .entries
        .iter()
        .map(|entry| {
            (
                entry.key.as_str(),
                entry.pattern.to_string(),
                entry.credential.username.as_str(),
                entry.credential.password.as_str(),
            )
        })
        .collect()
}

/// Parses a `.dockercfg` payload whose only registry, `quay.io`, holds `entry` (JSON text).
fn parse_entry(entry: &str) -> Result<PullSecret, KeyringError> {
    parse(
        PullSecretFormat::DockerCfg,
        &format!(r#"{{"quay.io": {entry}}}"#),
    )
}

/// The user name and password of the one entry of a parsed secret.
fn login(secret: &PullSecret) -> (&str, &str) {
    let [entry] = secret.entries.as_slice() else {
        panic!("expected one entry, found {}", secret.entries.len());
    };
    (&entry.credential.username, &entry.credential.password)
}

/// A case: its name (upstream's comment), its input and the login or error expected.
type Case<'a> = (&'a str, &'a str, Result<(&'a str, &'a str), KeyringError>);

fn auth_not_base64() -> KeyringError {
    KeyringError::AuthNotBase64 {
        secret: SECRET.into(),
        registry: "quay.io".into(),
    }
}

/// Asserts that neither the message nor the `Debug` output of `error` carries any of `secrets`.
fn assert_keeps_secrets(error: &KeyringError, secrets: &[&str]) {
    let (message, debug) = (error.to_string(), format!("{error:?}"));
    for secret in secrets {
        assert!(!message.contains(secret), "{secret:?} in {message}");
        assert!(!debug.contains(secret), "{secret:?} in {debug}");
    }
}

// config_test.go TestDockerConfigJsonJSONDecode, TestReadDockerConfigJSONFileFromBytes (valid input)
#[test]
fn a_dockerconfigjson_payload_yields_one_credential_per_auths_entry() {
    let input = r#"{"auths": {"http://foo.example.com":{"username": "foo", "password": "bar", "email": "foo@example.com"}, "http://bar.example.com":{"username": "bar", "password": "baz", "email": "bar@example.com"}}}"#;
    let parsed = parse(PullSecretFormat::DockerConfigJson, input).unwrap();
    assert_eq!(
        entries(&parsed),
        vec![
            (
                "http://bar.example.com",
                "bar.example.com".into(),
                "bar",
                "baz"
            ),
            (
                "http://foo.example.com",
                "foo.example.com".into(),
                "foo",
                "bar"
            ),
        ]
    );
    assert!(parsed.ignored_keys.is_empty());
}

// config_test.go TestDockerConfigJSONDecode, TestReadDockerConfigFileFromBytes (valid input)
#[test]
fn a_dockercfg_payload_is_the_same_map_without_the_auths_wrapper() {
    let input = r#"{"http://foo.example.com":{"username": "foo", "password": "bar", "email": "foo@example.com"}, "http://bar.example.com":{"username": "bar", "password": "baz", "email": "bar@example.com"}}"#;
    let parsed = parse(PullSecretFormat::DockerCfg, input).unwrap();
    assert_eq!(
        entries(&parsed),
        vec![
            (
                "http://bar.example.com",
                "bar.example.com".into(),
                "bar",
                "baz"
            ),
            (
                "http://foo.example.com",
                "foo.example.com".into(),
                "foo",
                "bar"
            ),
        ]
    );
}

// config_test.go TestDockerConfigEntryJSONDecode
#[test]
fn registry_entries_decode_or_fail_as_the_kubelet_decodes_them() {
    let cases: Vec<Case> = vec![
        (
            "simple case, just decode the fields",
            r#"{"username": "foo", "password": "bar", "email": "foo@example.com"}"#,
            Ok(("foo", "bar")),
        ),
        (
            "auth field decodes to username & password",
            r#"{"auth": "Zm9vOmJhcg==", "email": "foo@example.com"}"#,
            Ok(("foo", "bar")),
        ),
        (
            "auth field overrides username & password",
            r#"{"username": "foo", "password": "bar", "auth": "cGluZzpwb25n", "email": "foo@example.com"}"#,
            Ok(("ping", "pong")),
        ),
        (
            "poorly-formatted auth causes failure",
            r#"{"auth": "pants", "email": "foo@example.com"}"#,
            Err(auth_not_base64()),
        ),
        (
            "invalid JSON causes failure: an email that is not a string",
            r#"{"email": false}"#,
            Err(KeyringError::FieldNotString {
                secret: SECRET.into(),
                registry: "quay.io".into(),
                field: "email",
            }),
        ),
        (
            "auth field with non UTF-8 causes failure",
            r#"{"auth": "YcV6OmHFeg==", "email": "foo@example.com"}"#,
            Err(KeyringError::AuthNotUtf8 {
                secret: SECRET.into(),
                registry: "quay.io".into(),
            }),
        ),
    ];
    for (name, entry, expected) in cases {
        match (parse_entry(entry), expected) {
            (Ok(parsed), Ok(expected)) => {
                assert_eq!(login(&parsed), expected, "{name}");
                let debug = format!("{parsed:?}");
                assert!(!debug.contains(expected.1), "{name}: {debug}");
            }
            (Err(error), Err(expected)) => {
                assert_eq!(error, expected, "{name}");
                assert_keeps_secrets(&error, &["pants", "YcV6OmHFeg"]);
            }
            (got, expected) => panic!("{name}: expected {expected:?}, got {got:?}"),
        }
    }
}

// config_test.go TestDecodeDockerConfigFieldAuth
#[test]
fn the_auth_field_decodes_padded_unpadded_or_line_wrapped_base64_and_nothing_else() {
    let standard = STANDARD.encode("foo:bar");
    let raw = STANDARD_NO_PAD.encode("foo:bar");
    let without_colon = KeyringError::AuthWithoutColon {
        secret: SECRET.into(),
        registry: "quay.io".into(),
    };
    let cases: Vec<Case> = vec![
        (
            "auth field decodes to username & password",
            "Zm9vOmJhcg==",
            Ok(("foo", "bar")),
        ),
        (
            "some test as before but with field not well padded",
            "Zm9vOmJhcg",
            Ok(("foo", "bar")),
        ),
        (
            "some test as before but with new line characters",
            "Zm9vOm\nJhcg==\n",
            Ok(("foo", "bar")),
        ),
        (
            "standard encoding (with padding)",
            &standard,
            Ok(("foo", "bar")),
        ),
        ("raw encoding (without padding)", &raw, Ok(("foo", "bar"))),
        (
            "the input is encoded with encodeDockerConfigFieldAuth (standard encoding)",
            &standard,
            Ok(("foo", "bar")),
        ),
        (
            "good base64 data, but no colon separating username & password",
            "cGFudHM=",
            Err(without_colon),
        ),
        (
            "only new line characters are ignored",
            "Zm9vOmJhcg== ",
            Err(auth_not_base64()),
        ),
        ("bad base64 data", "pants", Err(auth_not_base64())),
    ];
    for (name, auth, expected) in cases {
        let entry = format!(r#"{{"auth": {}}}"#, serde_json::to_string(auth).unwrap());
        match (parse_entry(&entry), expected) {
            (Ok(parsed), Ok(expected)) => assert_eq!(login(&parsed), expected, "{name}"),
            (Err(error), Err(expected)) => {
                assert_eq!(error, expected, "{name}");
                assert_keeps_secrets(&error, &[auth.trim(), "pants", "bar"]);
            }
            (got, expected) => panic!("{name}: expected {expected:?}, got {got:?}"),
        }
    }
}

// config_test.go TestReadDockerConfigFile (the payload it writes to config.json)
#[test]
fn a_line_break_encoded_inside_auth_stays_in_the_password() {
    let input = r#"{ "auths": { "http://foo.example.com":{"auth":"Zm9vOmJhcgo=","email":"foo@example.com"}}}"#;
    let parsed = parse(PullSecretFormat::DockerConfigJson, input).unwrap();
    assert_eq!(
        entries(&parsed),
        vec![(
            "http://foo.example.com",
            "foo.example.com".into(),
            "foo",
            "bar\n"
        )]
    );
}

// config_test.go TestReadDockerConfigFileFromBytes, TestReadDockerConfigJSONFileFromBytes (invalid
// input). The kubelet's error names the problem but not the payload ("error occurred while trying
// to unmarshal json"); ours adds only the secret, the data key and the position.
#[test]
fn truncated_json_fails_without_echoing_the_payload() {
    let cases = [
        (
            PullSecretFormat::DockerCfg,
            r#"{"http://foo.example.com":{"username": "foo", "password": "bar", "email": "foo@example.com""#,
        ),
        (
            PullSecretFormat::DockerConfigJson,
            r#"{"auths": {"http://foo.example.com":{"username": "foo", "password": "bar", "email": "foo@example.com"}, "http://bar.example.com":{"username": "bar", "password": "baz", "email": "bar@example.com""#,
        ),
    ];
    for (format, input) in cases {
        let error = parse(format, input).unwrap_err();
        assert_eq!(
            error,
            KeyringError::InvalidJson {
                secret: SECRET.into(),
                key: format.data_key(),
                line: 1,
                column: input.len(),
            },
            "{format:?}"
        );
        assert_keeps_secrets(&error, &["foo", "bar", "baz"]);
    }
}
