//! The CNCF distribution notification envelope (`application/vnd.docker.distribution.events.v1+json`),
//! sent by the distribution registry and by GitLab's container registry.
//!
//! Shape from the distribution documentation, "Work with notifications"
//! (<https://distribution.github.io/distribution/about/notifications/>) and its `notifications/event.go`:
//! `{"events": [{"action", "target": {"mediaType", "digest", "repository", "tag", "url"},
//! "request": {"host", …}, …}]}`. The registry is `request.host`, the Host header the pushing client
//! used. A manifest push by tag carries `target.tag`; layer pushes and pushes by digest do not.

use serde::Deserialize;

use super::validate::{invalid, named_tag, push};
use super::{Event, Ignored, ParseError, Parsed, collect, from_json};

#[derive(Deserialize)]
struct Envelope {
    events: Vec<RegistryEvent>,
}

#[derive(Deserialize)]
struct RegistryEvent {
    action: String,
    #[serde(default)]
    target: Target,
    #[serde(default)]
    request: Request,
}

/// An event's target, as the distribution envelope and ACR's webhook both write it.
#[derive(Deserialize, Default)]
pub(super) struct Target {
    repository: Option<String>,
    tag: Option<String>,
    digest: Option<String>,
}

/// An event's request: the host the pushing client addressed.
#[derive(Deserialize, Default)]
pub(super) struct Request {
    host: Option<String>,
}

/// The pushes of an envelope; `pull`, `delete` and `mount` events are ignored.
pub(super) fn parse(body: &[u8]) -> Result<Parsed, ParseError> {
    let envelope: Envelope = from_json(body)?;
    collect(envelope.events.iter().map(event))
}

fn event(event: &RegistryEvent) -> Result<Event, ParseError> {
    match event.action.as_str() {
        "push" => pushed(&event.target, &event.request),
        "pull" => Ok(Event::Ignored(Ignored::Pull)),
        "delete" => Ok(Event::Ignored(Ignored::Delete)),
        _ => Ok(Event::Ignored(Ignored::OtherAction)),
    }
}

/// The push a `push` event reports: untagged without a tag, invalid without a host or repository.
pub(super) fn pushed(target: &Target, request: &Request) -> Result<Event, ParseError> {
    let Some(tag) = named_tag(target.tag.as_deref()) else {
        return Ok(Event::Ignored(Ignored::Untagged));
    };
    let host = request
        .host
        .as_deref()
        .ok_or_else(|| invalid("push event has no request.host naming the registry".to_owned()))?;
    let repository = target
        .repository
        .as_deref()
        .ok_or_else(|| invalid("push event has no target.repository".to_owned()))?;
    push(host, repository, tag, target.digest.as_deref()).map(Event::Push)
}

#[cfg(test)]
mod tests {
    use super::super::Push;
    use super::*;
    use pretty_assertions::assert_eq;

    const HEX: &str = "fc6a51919cfeb2e6763f62b6d9e8815acbf7cd2e476ea353743570610737b752";

    /// One event as the distribution documentation's example shows it, with the fields that vary.
    fn event(action: &str, tag: Option<&str>, host: &str) -> String {
        let tag = tag.map_or(String::new(), |tag| format!(r#""tag": "{tag}","#));
        format!(
            r#"{{
                "id": "asdf-asdf-asdf-asdf-0",
                "timestamp": "2006-01-02T15:04:05Z",
                "action": "{action}",
                "target": {{
                    "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                    "size": 1,
                    "digest": "sha256:{HEX}",
                    "length": 1,
                    "repository": "library/test",
                    {tag}
                    "url": "https://{host}/v2/library/test/manifests/sha256:{HEX}"
                }},
                "request": {{
                    "id": "asdfasdf",
                    "addr": "client.local",
                    "host": "{host}",
                    "method": "PUT",
                    "useragent": "test/0.1"
                }},
                "actor": {{"name": "test-actor"}},
                "source": {{"addr": "hostname.local:port"}}
            }}"#
        )
    }

    fn envelope(events: &[String]) -> Vec<u8> {
        format!(r#"{{"events": [{}]}}"#, events.join(",")).into_bytes()
    }

    fn pushed(registry: &str, repository: &str, tag: &str) -> Push {
        Push {
            registry: registry.to_owned(),
            repository: repository.to_owned(),
            tag: tag.to_owned(),
            digest: Some(format!("sha256:{HEX}")),
        }
    }

    #[test]
    fn a_tagged_manifest_push_names_the_request_host() {
        let body = envelope(&[event("push", Some("latest"), "registry.local:5000")]);
        assert_eq!(
            parse(&body),
            Ok(Parsed {
                pushes: vec![pushed("registry.local:5000", "library/test", "latest")],
                ignored: vec![],
            })
        );
    }

    #[test]
    fn pulls_deletes_mounts_and_untagged_pushes_are_ignored() {
        let body = envelope(&[
            event("pull", Some("latest"), "registry.local:5000"),
            event("delete", None, "registry.local:5000"),
            event("mount", None, "registry.local:5000"),
            event("push", None, "registry.local:5000"),
            event("push", Some(""), "registry.local:5000"),
        ]);
        assert_eq!(
            parse(&body),
            Ok(Parsed {
                pushes: vec![],
                ignored: vec![
                    Ignored::Pull,
                    Ignored::Delete,
                    Ignored::OtherAction,
                    Ignored::Untagged,
                    Ignored::Untagged,
                ],
            })
        );
    }

    #[test]
    fn several_events_give_several_pushes_and_repeats_once() {
        let body = envelope(&[
            event("push", Some("v1"), "registry.local:5000"),
            event("pull", Some("v1"), "registry.local:5000"),
            event("push", Some("v2"), "registry.local:5000"),
            event("push", Some("v1"), "registry.local:5000"),
        ]);
        let parsed = parse(&body).expect("valid envelope");
        assert_eq!(
            parsed.pushes,
            vec![
                pushed("registry.local:5000", "library/test", "v1"),
                pushed("registry.local:5000", "library/test", "v2"),
            ]
        );
        assert_eq!(parsed.ignored, vec![Ignored::Pull]);
    }

    #[test]
    fn docker_hub_host_aliases_become_docker_io() {
        let body = envelope(&[event("push", Some("v1"), "registry-1.docker.io")]);
        let parsed = parse(&body).expect("valid envelope");
        assert_eq!(
            parsed.pushes,
            vec![pushed("docker.io", "library/test", "v1")]
        );
    }

    #[test]
    fn a_push_naming_a_bad_host_rejects_the_envelope() {
        for host in [
            "evil.com/x",
            "user@registry.local",
            "http://registry.local",
            "registry",
        ] {
            let body = envelope(&[
                event("push", Some("v1"), "registry.local"),
                event("push", Some("v2"), host),
            ]);
            assert!(
                matches!(parse(&body), Err(ParseError::Invalid(_))),
                "{host}"
            );
        }
    }

    #[test]
    fn a_push_without_host_or_repository_is_invalid() {
        let no_host = br#"{"events":[{"action":"push","target":{"repository":"a","tag":"v1"}}]}"#;
        let no_repository =
            br#"{"events":[{"action":"push","target":{"tag":"v1"},"request":{"host":"r.local"}}]}"#;
        assert!(matches!(parse(no_host), Err(ParseError::Invalid(_))));
        assert!(matches!(parse(no_repository), Err(ParseError::Invalid(_))));
    }

    #[test]
    fn bodies_that_are_not_an_envelope_are_malformed() {
        let cases: [&[u8]; 6] = [
            b"",
            b"{",
            b"[]",
            br#"{"events": {}}"#,
            br#"{"events": [{"action": 7}]}"#,
            br#"{"events": [{"action": "push", "target": {"tag": ["v1"]}}]}"#,
        ];
        for body in cases {
            assert!(
                matches!(parse(body), Err(ParseError::Malformed(_))),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn an_empty_envelope_holds_nothing() {
        assert_eq!(parse(br#"{"events": []}"#), Ok(Parsed::default()));
    }
}
