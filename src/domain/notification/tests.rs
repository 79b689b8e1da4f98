//! Rules every format shares: size and event bounds, deduplication, and that no input makes a
//! parser panic or produce a push whose parts are not valid.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use pretty_assertions::assert_eq;
use proptest::prelude::*;
use serde_json::json;

use super::*;
use crate::domain::reference::ImageReference;

const HEX: &str = "0155e28bdf2a1c6d3fd8a1bf1a8f9c09c2b9cde2e8e0fbc4c7bf5c1c6a6d8a71";
const OTHER_HEX: &str = "9a9e2c2e0ba1bb0a1e5a06fa5bc8ea4a3d1bbd31a6db8d7d6c1e4c0a3f5e8d11";

fn distribution_push(tag: &str, digest_hex: &str) -> serde_json::Value {
    json!({
        "action": "push",
        "target": {"repository": "team/app", "tag": tag, "digest": format!("sha256:{digest_hex}")},
        "request": {"host": "registry.local:5000"}
    })
}

#[test]
fn format_names_round_trip_through_paths() {
    for format in Format::ALL {
        assert_eq!(Format::from_path(format.as_str()), Some(format));
        assert_eq!(format.to_string(), format.as_str());
    }
    for segment in [
        "",
        "Distribution",
        "docker-hub",
        "ghcr",
        "../harbor",
        "harbor/",
    ] {
        assert_eq!(Format::from_path(segment), None, "{segment}");
    }
}

#[test]
fn a_body_over_the_limit_is_too_large_for_every_format() {
    let body = vec![b' '; MAX_BODY + 1];
    for format in Format::ALL {
        assert_eq!(parse(format, &body), Err(ParseError::TooLarge), "{format}");
    }
    let at_limit = vec![b' '; MAX_BODY];
    assert!(matches!(
        parse(Format::Distribution, &at_limit),
        Err(ParseError::Malformed(_))
    ));
}

#[test]
fn only_the_first_max_events_are_read() {
    let mut events: Vec<_> = (0..MAX_EVENTS)
        .map(|n| distribution_push(&format!("v{n}"), HEX))
        .collect();
    // Past the bound even an invalid event is not read.
    events.push(
        json!({"action": "push", "target": {"repository": "a", "tag": "x"},
                       "request": {"host": "evil.com/x"}}),
    );
    let body = json!({ "events": events }).to_string();
    let parsed = parse(Format::Distribution, body.as_bytes()).expect("first events are valid");
    assert_eq!(parsed.pushes.len(), MAX_EVENTS);
    assert_eq!(
        parsed.pushes.last().map(|push| push.tag.as_str()),
        Some("v999")
    );
}

#[test]
fn repeated_pushes_keep_a_digest_only_when_all_agree() {
    let body = json!({ "events": [
        distribution_push("same", HEX),
        distribution_push("same", HEX),
        distribution_push("moved", HEX),
        distribution_push("moved", OTHER_HEX),
        distribution_push("moved", HEX),
    ]})
    .to_string();
    let parsed = parse(Format::Distribution, body.as_bytes()).expect("valid envelope");
    let tags_and_digests: Vec<_> = parsed
        .pushes
        .iter()
        .map(|push| (push.tag.as_str(), push.digest.clone()))
        .collect();
    assert_eq!(
        tags_and_digests,
        vec![("same", Some(format!("sha256:{HEX}"))), ("moved", None)]
    );
}

#[test]
fn gitlab_reads_the_distribution_envelope() {
    let body = json!({ "events": [distribution_push("v1", HEX)] }).to_string();
    assert_eq!(
        parse(Format::Gitlab, body.as_bytes()),
        parse(Format::Distribution, body.as_bytes())
    );
}

#[test]
fn malformed_messages_do_not_echo_the_payload() {
    let secretish = "x".repeat(500);
    let bodies = [
        format!(r#"{{"events": [{{"action": "{secretish}", "target": 5}}]}}"#),
        format!(r#"{{"type": ["{secretish}"]}}"#),
        format!("{secretish}{{"),
    ];
    for body in &bodies {
        for format in Format::ALL {
            if let Err(ParseError::Malformed(message)) = parse(format, body.as_bytes()) {
                assert!(message.chars().count() <= 81, "{format}: {message}");
            }
        }
    }
}

#[test]
fn every_error_and_ignored_reason_has_a_label() {
    let errors = [
        ParseError::TooLarge,
        ParseError::Malformed(String::new()),
        ParseError::Invalid(String::new()),
    ];
    let reasons: Vec<_> = errors.iter().map(ParseError::reason).collect();
    assert_eq!(reasons, ["TooLarge", "Malformed", "Invalid"]);
    let ignored = [
        Ignored::Pull,
        Ignored::Delete,
        Ignored::OtherAction,
        Ignored::Untagged,
    ];
    let labels: Vec<_> = ignored.iter().map(|why| why.as_str()).collect();
    assert_eq!(labels, ["pull", "delete", "other_action", "untagged"]);
}

/// A push is only ever one an image reference could name, with a host and nothing else before the
/// first `/`.
fn assert_valid(push: &Push) -> Result<(), TestCaseError> {
    let registry = push.registry.as_str();
    prop_assert!(
        !registry.contains(['/', '@']) && !registry.contains(char::is_whitespace),
        "registry {registry:?}"
    );
    prop_assert_eq!(registry.to_ascii_lowercase(), registry);
    let written = format!("{registry}/{}:{}", push.repository, push.tag);
    let reference = ImageReference::parse(&written);
    prop_assert!(reference.is_ok(), "{written}: {reference:?}");
    if let Ok(reference) = reference {
        prop_assert_eq!(reference.canonical_registry(), registry);
        prop_assert_eq!(reference.repository(), push.repository.as_str());
        prop_assert_eq!(reference.tag(), Some(push.tag.as_str()));
    }
    if let Some(digest) = &push.digest {
        prop_assert!(crate::domain::reference::is_valid_digest(digest));
    }
    Ok(())
}

/// Text close to what the fields hold, with the characters that could break a host or a path.
fn field() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        6 => "[a-z0-9]{1,6}",
        1 => "[A-Z]{1,2}",
        2 => Just(".".to_owned()),
        3 => Just("/".to_owned()),
        2 => Just(":".to_owned()),
        1 => Just("@".to_owned()),
        1 => Just("-".to_owned()),
        1 => Just("_".to_owned()),
        1 => Just(" ".to_owned()),
        1 => Just("http://".to_owned()),
        1 => Just("[::1]".to_owned()),
        1 => Just("localhost".to_owned()),
        1 => Just("docker.io".to_owned()),
        1 => Just(format!("sha256:{HEX}")),
        1 => "\\PC{1,3}",
    ];
    proptest::collection::vec(token, 0..8).prop_map(|tokens| tokens.concat())
}

fn format() -> impl Strategy<Value = Format> {
    proptest::sample::select(Format::ALL.to_vec())
}

/// A body of `format`'s shape with `host`, `repository` and `tag` in the fields that carry them.
fn shaped_body(format: Format, host: &str, repository: &str, tag: &str, action: &str) -> String {
    let location = format!("{host}/{repository}");
    match format {
        Format::Distribution | Format::Gitlab => json!({"events": [{
            "action": action,
            "target": {"repository": repository, "tag": tag, "digest": format!("sha256:{HEX}")},
            "request": {"host": host}
        }]}),
        Format::Harbor => json!({"type": action, "event_data": {
            "resources": [{"tag": tag, "resource_url": format!("{location}:{tag}")}],
            "repository": {"repo_full_name": repository}
        }}),
        Format::DockerHub => {
            json!({"push_data": {"tag": tag}, "repository": {"repo_name": repository}})
        }
        Format::Quay => json!({"docker_url": location, "updated_tags": [tag]}),
        Format::Github => json!({"action": action, "package": {
            "package_type": "container",
            "package_version": {
                "container_metadata": {"tag": {"name": tag, "digest": host}},
                "package_url": format!("{location}:{tag}")
            }
        }}),
        Format::Acr => json!({
            "action": action,
            "target": {"repository": repository, "tag": tag},
            "request": {"host": host}
        }),
        Format::Gar => {
            let notification = json!({"action": action, "tag": format!("{location}:{tag}")});
            json!({"message": {"data": BASE64.encode(notification.to_string())}})
        }
        Format::Ecr => json!({
            "detail-type": "ECR Image Action",
            "account": host,
            "region": repository,
            "detail": {"result": "SUCCESS", "action-type": action, "repository-name": repository,
                       "image-tag": tag}
        }),
        Format::Generic => json!({"repository": location, "tag": tag}),
    }
    .to_string()
}

/// The action or event type that announces a push in `format`'s payloads.
fn push_action(format: Format) -> &'static str {
    match format {
        Format::Distribution | Format::Gitlab | Format::Acr => "push",
        Format::Harbor => "PUSH_ARTIFACT",
        Format::Github => "published",
        Format::Gar => "INSERT",
        Format::Ecr => "PUSH",
        Format::DockerHub | Format::Quay | Format::Generic => "",
    }
}

/// Mostly the format's push action, so the fields behind it are read; sometimes anything.
fn action() -> impl Strategy<Value = Option<String>> {
    prop_oneof![4 => Just(None), 1 => "\\PC{0,8}".prop_map(Some)]
}

/// Hosts that are valid (ECR's account id among them), or arbitrary text.
fn host() -> impl Strategy<Value = String> {
    let valid = proptest::sample::select(vec![
        "registry.local:5000",
        "127.0.0.1:5000",
        "[::1]:5000",
        "localhost",
        "docker.io",
        "index.docker.io",
        "ghcr.io",
        "123456789012",
    ])
    .prop_map(str::to_owned);
    prop_oneof![valid, field()]
}

/// Repository paths that are valid (and ECR's region), or arbitrary text.
fn repository() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => "[a-z0-9]{1,5}([._-][a-z0-9]{1,3})?(/[a-z0-9]{1,5}){0,2}",
        1 => Just("us-west-2".to_owned()),
        2 => field(),
    ]
}

/// Tags that are valid, or arbitrary text.
fn tag() -> impl Strategy<Value = String> {
    prop_oneof!["[A-Za-z0-9_][A-Za-z0-9_.-]{0,10}", field()]
}

#[test]
fn shaped_bodies_with_valid_fields_give_one_push_in_every_format() {
    for format in Format::ALL {
        let host = if format == Format::Ecr {
            "123456789012"
        } else {
            "registry.local:5000"
        };
        let body = shaped_body(format, host, "us-west-2", "v1", push_action(format));
        let pushes = parse(format, body.as_bytes()).map(|parsed| parsed.pushes.len());
        assert_eq!(pushes, Ok(1), "{format}: {body}");
    }
}

proptest! {
    #[test]
    fn parsing_any_bytes_never_panics(
        format in format(),
        body in proptest::collection::vec(any::<u8>(), 0..512),
    ) {
        let _ = parse(format, &body);
    }

    #[test]
    fn parsing_any_json_never_panics(
        format in format(),
        value in any_json(),
    ) {
        let _ = parse(format, value.to_string().as_bytes());
    }

    #[test]
    fn every_push_from_arbitrary_fields_is_a_valid_reference(
        format in format(),
        host in host(),
        repository in repository(),
        tag in tag(),
        action in action(),
    ) {
        let action = action.unwrap_or_else(|| push_action(format).to_owned());
        let body = shaped_body(format, &host, &repository, &tag, &action);
        if let Ok(parsed) = parse(format, body.as_bytes()) {
            for push in &parsed.pushes {
                assert_valid(push)?;
            }
        }
    }
}

/// Arbitrary JSON, nested a few levels, with the keys the formats read.
fn any_json() -> impl Strategy<Value = serde_json::Value> {
    let key = prop_oneof![
        Just("events".to_owned()),
        Just("action".to_owned()),
        Just("target".to_owned()),
        Just("tag".to_owned()),
        Just("repository".to_owned()),
        Just("request".to_owned()),
        Just("host".to_owned()),
        Just("type".to_owned()),
        Just("message".to_owned()),
        Just("data".to_owned()),
        "[a-z_-]{1,10}",
    ];
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        field().prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::from),
            proptest::collection::btree_map(key.clone(), inner, 0..6)
                .prop_map(|map| serde_json::Value::Object(map.into_iter().collect())),
        ]
    })
}
