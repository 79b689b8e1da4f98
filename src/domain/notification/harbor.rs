//! Harbor webhooks, in both payload formats a Harbor 2.x webhook policy offers.
//!
//! Shape from Harbor's documentation, "Configure Webhook Notifications"
//! (<https://goharbor.io/docs/main/working-with-projects/project-configuration/configure-webhooks/>):
//! the Default format is `{"type": "PUSH_ARTIFACT", "occur_at", "operator", "event_data":
//! {"resources": [{"digest", "tag", "resource_url"}], "repository": {"name", "namespace",
//! "repo_full_name", …}}}`; the CloudEvents format carries the same `resources` and `repository`
//! under `data`, with `type` `harbor.artifact.pushed`. `resource_url` is `host/project/repo:tag`,
//! the only field that names the registry host. A push by digest puts the digest in `tag`.

use serde::Deserialize;

use super::validate::{Location, invalid, named_tag, push, shown};
use super::{Event, Ignored, ParseError, Parsed, collect, from_json};

/// Only the event type, read first so that events the operator ignores need no particular shape.
#[derive(Deserialize)]
struct Kind {
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Deserialize)]
struct PushPayload {
    /// The Default format's event data.
    event_data: Option<EventData>,
    /// The CloudEvents format's event data.
    data: Option<EventData>,
}

#[derive(Deserialize)]
struct EventData {
    #[serde(default)]
    resources: Vec<Resource>,
    repository: Option<Repository>,
}

#[derive(Deserialize)]
struct Resource {
    tag: Option<String>,
    digest: Option<String>,
    resource_url: Option<String>,
}

#[derive(Deserialize)]
struct Repository {
    repo_full_name: Option<String>,
}

/// The pushes of one webhook call; pulls, deletions, scans, quota and replication events are
/// ignored.
pub(super) fn parse(body: &[u8]) -> Result<Parsed, ParseError> {
    let Kind { kind } = from_json(body)?;
    let ignored = match kind.as_str() {
        "PUSH_ARTIFACT" | "harbor.artifact.pushed" => return pushes(body),
        "PULL_ARTIFACT" | "harbor.artifact.pulled" => Ignored::Pull,
        "DELETE_ARTIFACT" | "harbor.artifact.deleted" => Ignored::Delete,
        _ => Ignored::OtherAction,
    };
    collect([Ok(Event::Ignored(ignored))])
}

fn pushes(body: &[u8]) -> Result<Parsed, ParseError> {
    let payload: PushPayload = from_json(body)?;
    let data = payload
        .event_data
        .or(payload.data)
        .ok_or_else(|| invalid("push event has neither event_data nor data".to_owned()))?;
    let repo_full_name = data
        .repository
        .and_then(|repository| repository.repo_full_name);
    collect(
        data.resources
            .iter()
            .map(|resource| pushed(resource, repo_full_name.as_deref())),
    )
}

fn pushed(resource: &Resource, repo_full_name: Option<&str>) -> Result<Event, ParseError> {
    let tag = named_tag(resource.tag.as_deref()).filter(|tag| !is_digest_in_tag(tag));
    let Some(tag) = tag else {
        return Ok(Event::Ignored(Ignored::Untagged));
    };
    let resource_url = resource.resource_url.as_deref().ok_or_else(|| {
        invalid("pushed resource has no resource_url naming the registry host".to_owned())
    })?;
    let location = Location::split(resource_url)?;
    if let Some(full_name) = repo_full_name.filter(|name| *name != location.repository) {
        return Err(invalid(format!(
            "resource_url {:?} names another repository than repo_full_name {:?}",
            shown(resource_url),
            shown(full_name)
        )));
    }
    push(
        location.host,
        location.repository,
        tag,
        resource.digest.as_deref(),
    )
    .map(Event::Push)
}

/// Harbor reports a push by digest with the digest as the tag.
fn is_digest_in_tag(tag: &str) -> bool {
    tag.starts_with("sha256:") || tag.starts_with("sha512:")
}

#[cfg(test)]
mod tests {
    use super::super::Push;
    use super::*;
    use pretty_assertions::assert_eq;

    const HEX: &str = "8a9e9863dbb6e10edb5adfe917c00da84e1700fa76e7ed02476aa6e6fb8ee0d8";

    /// A Default-format payload like the Harbor documentation's push example.
    fn default_payload(kind: &str, resources: &str) -> Vec<u8> {
        format!(
            r#"{{
                "type": "{kind}",
                "occur_at": 1586922308,
                "operator": "admin",
                "event_data": {{
                    "resources": [{resources}],
                    "repository": {{
                        "date_created": 1586922308,
                        "name": "debian",
                        "namespace": "test-webhook",
                        "repo_full_name": "test-webhook/debian",
                        "repo_type": "private"
                    }}
                }}
            }}"#
        )
        .into_bytes()
    }

    fn resource(tag: &str, resource_url: &str) -> String {
        format!(r#"{{"digest": "sha256:{HEX}", "tag": "{tag}", "resource_url": "{resource_url}"}}"#)
    }

    fn debian(tag: &str) -> Push {
        Push {
            registry: "hub.harbor.com".to_owned(),
            repository: "test-webhook/debian".to_owned(),
            tag: tag.to_owned(),
            digest: Some(format!("sha256:{HEX}")),
        }
    }

    #[test]
    fn a_default_format_push_names_the_host_of_the_resource_url() {
        let body = default_payload(
            "PUSH_ARTIFACT",
            &resource("latest", "hub.harbor.com/test-webhook/debian:latest"),
        );
        assert_eq!(
            parse(&body),
            Ok(Parsed {
                pushes: vec![debian("latest")],
                ignored: vec![],
            })
        );
    }

    #[test]
    fn a_cloudevents_push_is_read_from_data() {
        let body = format!(
            r#"{{
                "specversion": "1.0",
                "id": "66e18103-09c1-41f6-982f-37df223f3eeb",
                "source": "/projects/2/webhook/policies/15",
                "type": "harbor.artifact.pushed",
                "datacontenttype": "application/json",
                "time": "2023-04-03T06:04:46Z",
                "data": {{
                    "resources": [{}],
                    "repository": {{"name": "debian", "namespace": "test-webhook",
                                    "repo_full_name": "test-webhook/debian"}}
                }},
                "operator": "admin"
            }}"#,
            resource("stable", "hub.harbor.com/test-webhook/debian:stable")
        );
        assert_eq!(
            parse(body.as_bytes()).map(|p| p.pushes),
            Ok(vec![debian("stable")])
        );
    }

    #[test]
    fn several_resources_give_several_pushes_and_digest_pushes_are_untagged() {
        let resources = [
            resource("v1", "hub.harbor.com/test-webhook/debian:v1"),
            resource("v2", "hub.harbor.com/test-webhook/debian:v2"),
            resource(
                &format!("sha256:{HEX}"),
                &format!("hub.harbor.com/test-webhook/debian@sha256:{HEX}"),
            ),
            r#"{"digest": "sha256:0", "resource_url": "hub.harbor.com/test-webhook/debian"}"#
                .to_owned(),
        ];
        let body = default_payload("PUSH_ARTIFACT", &resources.join(","));
        assert_eq!(
            parse(&body),
            Ok(Parsed {
                pushes: vec![debian("v1"), debian("v2")],
                ignored: vec![Ignored::Untagged, Ignored::Untagged],
            })
        );
    }

    #[test]
    fn pulls_deletions_and_other_event_types_are_ignored() {
        let cases = [
            ("PULL_ARTIFACT", Ignored::Pull),
            ("harbor.artifact.pulled", Ignored::Pull),
            ("DELETE_ARTIFACT", Ignored::Delete),
            ("harbor.artifact.deleted", Ignored::Delete),
            ("SCANNING_COMPLETED", Ignored::OtherAction),
            ("SCANNING_FAILED", Ignored::OtherAction),
            ("QUOTA_EXCEED", Ignored::OtherAction),
            ("REPLICATION", Ignored::OtherAction),
        ];
        for (kind, why) in cases {
            // Event data of another shape does not matter for an ignored event.
            let body = format!(r#"{{"type": "{kind}", "event_data": {{"resources": "n/a"}}}}"#);
            assert_eq!(
                parse(body.as_bytes()),
                Ok(Parsed {
                    pushes: vec![],
                    ignored: vec![why],
                }),
                "{kind}"
            );
        }
    }

    #[test]
    fn a_resource_url_with_a_bad_host_or_another_repository_is_invalid() {
        let cases = [
            "evil.com/x/test-webhook/debian:v1",
            "https://hub.harbor.com/test-webhook/debian:v1",
            "user@hub.harbor.com/test-webhook/debian:v1",
            "hub.harbor.com/other/debian:v1",
            "hub.harbor.com",
        ];
        for url in cases {
            let body = default_payload("PUSH_ARTIFACT", &resource("v1", url));
            assert!(matches!(parse(&body), Err(ParseError::Invalid(_))), "{url}");
        }
    }

    #[test]
    fn a_tagged_resource_without_resource_url_is_invalid() {
        let body = default_payload("PUSH_ARTIFACT", r#"{"tag": "v1"}"#);
        assert!(matches!(parse(&body), Err(ParseError::Invalid(_))));
    }

    #[test]
    fn payloads_of_the_wrong_shape_are_malformed() {
        let cases: [&[u8]; 4] = [
            b"null",
            br#"{"event_data": {}}"#,
            br#"{"type": 1}"#,
            br#"{"type": "PUSH_ARTIFACT", "event_data": {"resources": [{"tag": 1}]}}"#,
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
