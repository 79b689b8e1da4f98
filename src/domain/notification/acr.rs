//! Azure Container Registry webhooks: one event per call.
//!
//! Shape from Microsoft's documentation, "Azure Container Registry webhook reference"
//! (<https://learn.microsoft.com/azure/container-registry/container-registry-webhook-reference>):
//! `{"id", "timestamp", "action": "push" | "delete" | "chart_push" | "chart_delete" | "quarantine",
//! "target": {"mediaType", "size", "digest", "length", "repository", "tag"}, "request": {"id",
//! "host", "method", "useragent"}}`. The registry is `request.host` (`myregistry.azurecr.io`). The
//! "Ping" button sends action `ping`. Helm chart events concern ACR's legacy chart repositories,
//! not images, and are ignored.

use serde::Deserialize;

use super::distribution::{Request, Target, pushed};
use super::{Event, Ignored, ParseError, Parsed, collect, from_json};

#[derive(Deserialize)]
struct Payload {
    action: String,
    #[serde(default)]
    target: Target,
    #[serde(default)]
    request: Request,
}

/// The push an ACR webhook call reports, if it is an image push by tag.
pub(super) fn parse(body: &[u8]) -> Result<Parsed, ParseError> {
    let payload: Payload = from_json(body)?;
    collect([event(&payload)])
}

fn event(payload: &Payload) -> Result<Event, ParseError> {
    match payload.action.as_str() {
        "push" => pushed(&payload.target, &payload.request),
        "delete" | "chart_delete" => Ok(Event::Ignored(Ignored::Delete)),
        _ => Ok(Event::Ignored(Ignored::OtherAction)),
    }
}

#[cfg(test)]
mod tests {
    use super::super::Push;
    use super::*;
    use pretty_assertions::assert_eq;

    const HEX: &str = "7f5b2640fe6fb4f46592dfd3410c4a79dac4f89e4782432e0378abcd12345678";

    /// A push event like the one in Microsoft's webhook reference.
    fn push_event(tag: Option<&str>, host: &str) -> Vec<u8> {
        let tag = tag.map_or(String::new(), |tag| format!(r#", "tag": "{tag}""#));
        format!(
            r#"{{
                "id": "cb8c3971-9adc-488b-bdd8-43cbb4974ff5",
                "timestamp": "2017-11-17T16:52:01.343145347Z",
                "action": "push",
                "target": {{
                    "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                    "size": 524,
                    "digest": "sha256:{HEX}",
                    "length": 524,
                    "repository": "hello-world"{tag}
                }},
                "request": {{
                    "id": "3cbb6949-7549-4fa1-86cd-a6d5451dffc7",
                    "host": "{host}",
                    "method": "PUT",
                    "useragent": "docker/17.09.0-ce"
                }}
            }}"#
        )
        .into_bytes()
    }

    #[test]
    fn a_push_by_tag_names_the_request_host() {
        let body = push_event(Some("v1"), "myregistry.azurecr.io");
        assert_eq!(
            parse(&body),
            Ok(Parsed {
                pushes: vec![Push {
                    registry: "myregistry.azurecr.io".to_owned(),
                    repository: "hello-world".to_owned(),
                    tag: "v1".to_owned(),
                    digest: Some(format!("sha256:{HEX}")),
                }],
                ignored: vec![],
            })
        );
    }

    #[test]
    fn a_push_by_digest_is_untagged() {
        let body = push_event(None, "myregistry.azurecr.io");
        assert_eq!(
            parse(&body).map(|parsed| parsed.ignored),
            Ok(vec![Ignored::Untagged])
        );
    }

    #[test]
    fn deletions_chart_events_quarantine_and_ping_are_ignored() {
        let cases = [
            (
                r#"{"id": "a", "action": "delete", "target": {"mediaType": "m",
                    "digest": "sha256:0", "repository": "hello-world"},
                    "request": {"host": "myregistry.azurecr.io", "method": "DELETE"}}"#,
                Ignored::Delete,
            ),
            (
                r#"{"id": "b", "action": "chart_delete", "target": {"repository": "repo",
                    "tag": "wordpress-5.4.0.tgz", "name": "wordpress", "version": "5.4.0.tgz"}}"#,
                Ignored::Delete,
            ),
            (
                r#"{"id": "c", "action": "chart_push", "target": {"repository": "repo",
                    "tag": "wordpress-5.4.0.tgz", "name": "wordpress", "version": "5.4.0.tgz"}}"#,
                Ignored::OtherAction,
            ),
            (
                r#"{"id": "d", "action": "quarantine", "target": {"tag": "v1"}}"#,
                Ignored::OtherAction,
            ),
            (
                r#"{"id": "e", "timestamp": "2023-01-01T00:00:00Z", "action": "ping"}"#,
                Ignored::OtherAction,
            ),
        ];
        for (body, why) in cases {
            assert_eq!(
                parse(body.as_bytes()),
                Ok(Parsed {
                    pushes: vec![],
                    ignored: vec![why],
                }),
                "{body}"
            );
        }
    }

    #[test]
    fn a_push_with_a_bad_or_missing_host_is_invalid() {
        for host in [
            "evil.com/x",
            "user@myregistry.azurecr.io",
            "http://myregistry.azurecr.io",
            " ",
        ] {
            let body = push_event(Some("v1"), host);
            assert!(
                matches!(parse(&body), Err(ParseError::Invalid(_))),
                "{host}"
            );
        }
        let no_host = br#"{"action": "push", "target": {"repository": "a", "tag": "v1"}}"#;
        assert!(matches!(parse(no_host), Err(ParseError::Invalid(_))));
    }

    #[test]
    fn payloads_of_the_wrong_shape_are_malformed() {
        let cases: [&[u8]; 3] = [
            br#"{"target": {}}"#,
            br#"{"action": "push", "target": {"tag": 5}}"#,
            br#"{"action": "push", "request": "myregistry.azurecr.io"}"#,
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
