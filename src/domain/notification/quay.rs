//! Quay "Repository Push" notifications sent to a webhook, from quay.io or a self-hosted Quay.
//!
//! Shape from Red Hat Quay's documentation, "Repository Notifications", section "Repository Push"
//! (<https://docs.redhat.com/en/documentation/red_hat_quay/3.8/html/use_red_hat_quay/repository_notifications>):
//! `{"name", "repository", "namespace", "docker_url": "quay.io/ns/repo", "homepage",
//! "updated_tags": ["latest"]}`. `docker_url` names the registry host and repository. Older Quay
//! sent `updated_tags` as an object from tag to image id, so both forms are read. Quay's other
//! notifications (builds, scans) carry no `updated_tags` and are ignored.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde::de::IgnoredAny;

use super::validate::{Location, invalid, named_tag, push, shown};
use super::{Event, Ignored, MAX_EVENTS, ParseError, Parsed, collect, from_json};

#[derive(Deserialize)]
struct Payload {
    docker_url: Option<String>,
    updated_tags: Option<UpdatedTags>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum UpdatedTags {
    /// Current Quay: the tag names.
    Names(Vec<String>),
    /// Early Quay: tag name to image id.
    ImageIds(BTreeMap<String, IgnoredAny>),
}

impl UpdatedTags {
    fn names(&self) -> Vec<&str> {
        match self {
            UpdatedTags::Names(names) => {
                names.iter().map(String::as_str).take(MAX_EVENTS).collect()
            }
            UpdatedTags::ImageIds(ids) => ids.keys().map(String::as_str).take(MAX_EVENTS).collect(),
        }
    }
}

/// One push per updated tag; a notification without `updated_tags` is not a push.
pub(super) fn parse(body: &[u8]) -> Result<Parsed, ParseError> {
    let payload: Payload = from_json(body)?;
    let Some(updated_tags) = &payload.updated_tags else {
        return collect([Ok(Event::Ignored(Ignored::OtherAction))]);
    };
    let names = updated_tags.names();
    if names.is_empty() {
        return collect([Ok(Event::Ignored(Ignored::Untagged))]);
    }
    let docker_url = payload
        .docker_url
        .as_deref()
        .ok_or_else(|| invalid("push notification has no docker_url".to_owned()))?;
    let location = Location::split(docker_url)?;
    if location.tag.is_some() || location.digest.is_some() {
        return Err(invalid(format!(
            "docker_url {:?} is not a repository",
            shown(docker_url)
        )));
    }
    collect(names.into_iter().map(|tag| pushed(&location, tag)))
}

fn pushed(location: &Location<'_>, tag: &str) -> Result<Event, ParseError> {
    match named_tag(Some(tag)) {
        Some(tag) => push(location.host, location.repository, tag, None).map(Event::Push),
        None => Ok(Event::Ignored(Ignored::Untagged)),
    }
}

#[cfg(test)]
mod tests {
    use super::super::Push;
    use super::*;
    use pretty_assertions::assert_eq;

    /// A payload like Quay's documented "Repository Push" example.
    fn payload(docker_url: &str, updated_tags: &str) -> Vec<u8> {
        format!(
            r#"{{
                "name": "repository",
                "repository": "dgangaia/test",
                "namespace": "dgangaia",
                "docker_url": "{docker_url}",
                "homepage": "https://quay.io/repository/dgangaia/repository",
                "updated_tags": {updated_tags}
            }}"#
        )
        .into_bytes()
    }

    fn pushed(registry: &str, tag: &str) -> Push {
        Push {
            registry: registry.to_owned(),
            repository: "dgangaia/test".to_owned(),
            tag: tag.to_owned(),
            digest: None,
        }
    }

    #[test]
    fn each_updated_tag_is_a_push() {
        let body = payload("quay.io/dgangaia/test", r#"["latest", "v1", "latest"]"#);
        assert_eq!(
            parse(&body),
            Ok(Parsed {
                pushes: vec![pushed("quay.io", "latest"), pushed("quay.io", "v1")],
                ignored: vec![],
            })
        );
    }

    #[test]
    fn the_early_object_form_of_updated_tags_is_read() {
        let body = payload(
            "quay.example.com:8443/dgangaia/test",
            r#"{"latest": "b750fe79269d2ec9a3c593ef05b4332b1d1a02a62b4accb2c21d589ff2f5f2dc"}"#,
        );
        assert_eq!(
            parse(&body).map(|parsed| parsed.pushes),
            Ok(vec![pushed("quay.example.com:8443", "latest")])
        );
    }

    #[test]
    fn notifications_without_updated_tags_are_not_pushes() {
        let build_queued = br#"{
            "build_id": "296ec063-5f86-4706-a469-f0a400bf9df2",
            "name": "test",
            "repository": "dgangaia/test",
            "namespace": "dgangaia",
            "docker_url": "quay.io/dgangaia/test",
            "docker_tags": ["master", "latest"],
            "repo": "test"
        }"#;
        assert_eq!(
            parse(build_queued),
            Ok(Parsed {
                pushes: vec![],
                ignored: vec![Ignored::OtherAction],
            })
        );
        assert_eq!(
            parse(&payload("quay.io/dgangaia/test", "[]")).map(|parsed| parsed.ignored),
            Ok(vec![Ignored::Untagged])
        );
    }

    #[test]
    fn a_docker_url_that_is_not_host_and_repository_is_invalid() {
        let cases = [
            "evil.com/x/../dgangaia/test",
            "https://quay.io/dgangaia/test",
            "user@quay.io/dgangaia/test",
            "quay.io/dgangaia/test:latest",
            "quay.io",
            "quay/dgangaia/test",
        ];
        for docker_url in cases {
            let body = payload(docker_url, r#"["latest"]"#);
            assert!(
                matches!(parse(&body), Err(ParseError::Invalid(_))),
                "{docker_url}"
            );
        }
    }

    #[test]
    fn a_push_without_docker_url_is_invalid() {
        assert!(matches!(
            parse(br#"{"updated_tags": ["latest"]}"#),
            Err(ParseError::Invalid(_))
        ));
    }

    #[test]
    fn payloads_of_the_wrong_shape_are_malformed() {
        let cases: [&[u8]; 3] = [
            b"\"quay\"",
            br#"{"docker_url": "quay.io/a/b", "updated_tags": "latest"}"#,
            br#"{"docker_url": 5, "updated_tags": ["latest"]}"#,
        ];
        for body in cases {
            assert!(
                matches!(parse(body), Err(ParseError::Malformed(_))),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }
}
