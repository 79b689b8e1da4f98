//! Docker Hub repository webhooks, which fire on a push and only on a push.
//!
//! Shape from Docker's documentation, "Webhooks", section "Example webhook payload"
//! (<https://docs.docker.com/docker-hub/repos/manage/webhooks/>): `{"callback_url", "push_data":
//! {"pushed_at", "pusher", "tag"}, "repository": {"repo_name", "namespace", "name", …}}`. The
//! registry is always Docker Hub; `repo_name` is `namespace/name`.

use serde::Deserialize;

use super::validate::{named_tag, push};
use super::{Event, Ignored, ParseError, Parsed, collect, from_json};

const DOCKER_HUB: &str = "docker.io";

#[derive(Deserialize)]
struct Payload {
    push_data: PushData,
    repository: Repository,
}

#[derive(Deserialize)]
struct PushData {
    tag: Option<String>,
}

#[derive(Deserialize)]
struct Repository {
    repo_name: String,
}

/// The one push a Docker Hub webhook call reports.
pub(super) fn parse(body: &[u8]) -> Result<Parsed, ParseError> {
    let payload: Payload = from_json(body)?;
    collect([event(&payload)])
}

fn event(payload: &Payload) -> Result<Event, ParseError> {
    match named_tag(payload.push_data.tag.as_deref()) {
        Some(tag) => push(DOCKER_HUB, &payload.repository.repo_name, tag, None).map(Event::Push),
        None => Ok(Event::Ignored(Ignored::Untagged)),
    }
}

#[cfg(test)]
mod tests {
    use super::super::Push;
    use super::*;
    use pretty_assertions::assert_eq;

    /// A payload like the Docker documentation's example, with the fields that vary.
    fn payload(repo_name: &str, tag: Option<&str>) -> Vec<u8> {
        let tag = tag.map_or(String::new(), |tag| format!(r#", "tag": "{tag}""#));
        format!(
            r#"{{
                "callback_url": "https://registry.hub.docker.com/u/svendowideit/testhook/hook/2141b5bi5i5b02bec211i4eeih0242eg11000a/",
                "push_data": {{"pushed_at": 1417566161, "pusher": "trustedbuilder"{tag}}},
                "repository": {{
                    "comment_count": 0,
                    "date_created": 1417494799,
                    "description": "",
                    "is_official": false,
                    "is_private": true,
                    "is_trusted": true,
                    "name": "testhook",
                    "namespace": "svendowideit",
                    "owner": "svendowideit",
                    "repo_name": "{repo_name}",
                    "repo_url": "https://registry.hub.docker.com/u/svendowideit/testhook/",
                    "star_count": 0,
                    "status": "Active"
                }}
            }}"#
        )
        .into_bytes()
    }

    fn on_docker_hub(repository: &str, tag: &str) -> Push {
        Push {
            registry: "docker.io".to_owned(),
            repository: repository.to_owned(),
            tag: tag.to_owned(),
            digest: None,
        }
    }

    #[test]
    fn a_push_is_on_docker_io() {
        let body = payload("svendowideit/testhook", Some("latest"));
        assert_eq!(
            parse(&body),
            Ok(Parsed {
                pushes: vec![on_docker_hub("svendowideit/testhook", "latest")],
                ignored: vec![],
            })
        );
    }

    #[test]
    fn a_repository_without_namespace_is_in_library() {
        let body = payload("nginx", Some("1.27"));
        assert_eq!(
            parse(&body).map(|parsed| parsed.pushes),
            Ok(vec![on_docker_hub("library/nginx", "1.27")])
        );
    }

    #[test]
    fn a_push_without_tag_is_untagged() {
        for tag in [None, Some("")] {
            let body = payload("svendowideit/testhook", tag);
            assert_eq!(
                parse(&body),
                Ok(Parsed {
                    pushes: vec![],
                    ignored: vec![Ignored::Untagged],
                })
            );
        }
    }

    #[test]
    fn a_host_in_repo_name_stays_a_path_on_docker_hub() {
        let body = payload("evil.com/x", Some("v1"));
        assert_eq!(
            parse(&body).map(|parsed| parsed.pushes),
            Ok(vec![on_docker_hub("evil.com/x", "v1")])
        );
    }

    #[test]
    fn a_repository_or_tag_that_is_not_valid_is_invalid() {
        let cases = [
            ("svendowideit/TestHook", "v1"),
            ("svendowideit/testhook", "v1/x"),
            ("svendowideit/testhook", "-v1"),
            ("user@svendowideit/testhook", "v1"),
            ("", "v1"),
        ];
        for (repo_name, tag) in cases {
            let body = payload(repo_name, Some(tag));
            assert!(
                matches!(parse(&body), Err(ParseError::Invalid(_))),
                "{repo_name} {tag}"
            );
        }
    }

    #[test]
    fn payloads_of_the_wrong_shape_are_malformed() {
        let cases: [&[u8]; 4] = [
            b"{}",
            br#"{"push_data": {"tag": "v1"}}"#,
            br#"{"push_data": {"tag": 1}, "repository": {"repo_name": "a/b"}}"#,
            br#"{"push_data": [], "repository": {"repo_name": "a/b"}}"#,
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
