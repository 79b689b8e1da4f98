//! The operator's own notification form, for senders that can template a JSON body (Artifactory
//! custom webhooks, CI jobs, scripts).
//!
//! Either `{"repository": "quay.io/org/app", "tag": "v1", "digest": "sha256:…"}`, where
//! `repository` is written as in a pull spec (a first segment with a `.` or `:`, or `localhost`, is
//! the registry; `nginx` is Docker Hub's `library/nginx`) and `digest` is optional; or
//! `{"image": "quay.io/org/app:v1"}`, a whole reference with an optional `@digest`. Giving both
//! `repository` and `image` is refused. A form that names no tag is a push by digest and is
//! ignored.

use serde::Deserialize;

use super::validate::{invalid, named_tag, push_of_pull_spec};
use super::{Event, Ignored, ParseError, Parsed, collect, from_json, malformed};
use crate::domain::reference::ImageReference;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Payload {
    repository: Option<String>,
    image: Option<String>,
    tag: Option<String>,
    digest: Option<String>,
}

/// The one push a generic notification names.
pub(super) fn parse(body: &[u8]) -> Result<Parsed, ParseError> {
    let payload: Payload = from_json(body)?;
    collect([event(&payload)])
}

fn event(payload: &Payload) -> Result<Event, ParseError> {
    match (&payload.repository, &payload.image) {
        (Some(repository), None) => named(
            repository,
            payload.tag.as_deref(),
            payload.digest.as_deref(),
        ),
        (None, Some(image)) if payload.tag.is_none() && payload.digest.is_none() => {
            referenced(image)
        }
        (None, Some(_)) => Err(malformed(
            "give tag and digest inside image, or use repository",
        )),
        (Some(_), Some(_)) => Err(malformed("give either repository or image, not both")),
        (None, None) => Err(malformed("payload names neither repository nor image")),
    }
}

fn named(repository: &str, tag: Option<&str>, digest: Option<&str>) -> Result<Event, ParseError> {
    match named_tag(tag) {
        Some(tag) => push_of_pull_spec(repository, tag, digest).map(Event::Push),
        None => Ok(Event::Ignored(Ignored::Untagged)),
    }
}

fn referenced(image: &str) -> Result<Event, ParseError> {
    let reference = ImageReference::parse(image).map_err(|error| invalid(error.to_string()))?;
    match reference.tag() {
        Some(tag) => {
            let pull_spec = match reference.registry_as_written() {
                Some(registry) => format!("{registry}/{}", reference.repository_as_written()),
                None => reference.repository_as_written().to_owned(),
            };
            push_of_pull_spec(&pull_spec, tag, reference.digest()).map(Event::Push)
        }
        None => Ok(Event::Ignored(Ignored::Untagged)),
    }
}

#[cfg(test)]
mod tests {
    use super::super::Push;
    use super::*;
    use pretty_assertions::assert_eq;

    const HEX: &str = "0155e28bdf2a1c6d3fd8a1bf1a8f9c09c2b9cde2e8e0fbc4c7bf5c1c6a6d8a71";

    fn pushed(registry: &str, repository: &str, tag: &str, digest: Option<String>) -> Push {
        Push {
            registry: registry.to_owned(),
            repository: repository.to_owned(),
            tag: tag.to_owned(),
            digest,
        }
    }

    #[test]
    fn repository_and_tag_name_a_push_as_a_pull_spec_would() {
        let digest = format!("sha256:{HEX}");
        let with_digest =
            format!(r#"{{"repository": "quay.io/org/app", "tag": "v1", "digest": "{digest}"}}"#);
        let cases = [
            (
                with_digest,
                pushed("quay.io", "org/app", "v1", Some(digest.clone())),
            ),
            (
                r#"{"repository": "nginx", "tag": "1.27"}"#.to_owned(),
                pushed("docker.io", "library/nginx", "1.27", None),
            ),
            (
                r#"{"repository": "docker.io/bitnami/redis", "tag": "7"}"#.to_owned(),
                pushed("docker.io", "bitnami/redis", "7", None),
            ),
            (
                r#"{"repository": "127.0.0.1:5000/team/app", "tag": "v1"}"#.to_owned(),
                pushed("127.0.0.1:5000", "team/app", "v1", None),
            ),
        ];
        for (body, push) in cases {
            assert_eq!(
                parse(body.as_bytes()),
                Ok(Parsed {
                    pushes: vec![push],
                    ignored: vec![],
                }),
                "{body}"
            );
        }
    }

    #[test]
    fn an_image_reference_names_a_push_with_its_tag_and_digest() {
        let digest = format!("sha256:{HEX}");
        let cases = [
            (
                "quay.io/org/app:v1".to_owned(),
                pushed("quay.io", "org/app", "v1", None),
            ),
            (
                format!("localhost:5000/app:v1@{digest}"),
                pushed("localhost:5000", "app", "v1", Some(digest.clone())),
            ),
            (
                "nginx:1.27".to_owned(),
                pushed("docker.io", "library/nginx", "1.27", None),
            ),
        ];
        for (image, push) in cases {
            let body = format!(r#"{{"image": "{image}"}}"#);
            assert_eq!(
                parse(body.as_bytes()).map(|parsed| parsed.pushes),
                Ok(vec![push]),
                "{image}"
            );
        }
    }

    #[test]
    fn a_form_without_tag_is_untagged() {
        let digest = format!("sha256:{HEX}");
        let cases = [
            format!(r#"{{"repository": "quay.io/org/app", "digest": "{digest}"}}"#),
            format!(r#"{{"image": "quay.io/org/app@{digest}"}}"#),
            r#"{"image": "quay.io/org/app"}"#.to_owned(),
        ];
        for body in cases {
            assert_eq!(
                parse(body.as_bytes()),
                Ok(Parsed {
                    pushes: vec![],
                    ignored: vec![Ignored::Untagged],
                }),
                "{body}"
            );
        }
    }

    #[test]
    fn bad_hosts_repositories_and_tags_are_invalid() {
        let cases = [
            r#"{"repository": "user@quay.io/org/app", "tag": "v1"}"#,
            r#"{"repository": "http://quay.io/org/app", "tag": "v1"}"#,
            r#"{"repository": "quay.io/org/app:v0", "tag": "v1"}"#,
            r#"{"repository": "Quay.io/Org/App", "tag": "v1"}"#,
            r#"{"repository": "quay.io/org/app", "tag": "v1/x"}"#,
            r#"{"repository": "my_host.local:5000/app", "tag": "v1"}"#,
            r#"{"image": "user@quay.io/org/app:v1"}"#,
            r#"{"image": "quay.io/org/app:v1 "}"#,
        ];
        for body in cases {
            assert!(
                matches!(parse(body.as_bytes()), Err(ParseError::Invalid(_))),
                "{body}"
            );
        }
    }

    #[test]
    fn forms_that_are_ambiguous_or_incomplete_are_malformed() {
        let cases = [
            r#"{"repository": "quay.io/org/app", "image": "quay.io/org/app:v1"}"#,
            r#"{"image": "quay.io/org/app:v1", "tag": "v2"}"#,
            r#"{"tag": "v1"}"#,
            r#"{"repository": "quay.io/org/app", "tag": "v1", "tags": ["v2"]}"#,
            r#"{"repository": ["quay.io/org/app"], "tag": "v1"}"#,
            "{}",
        ];
        for body in cases {
            assert!(
                matches!(parse(body.as_bytes()), Err(ParseError::Malformed(_))),
                "{body}"
            );
        }
    }
}
