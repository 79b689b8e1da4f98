//! Google Artifact Registry (and Container Registry) notifications, published to the `gcr` Pub/Sub
//! topic and delivered by a push subscription.
//!
//! Shapes from Google's documentation: "Configuring Pub/Sub notifications"
//! (<https://cloud.google.com/artifact-registry/docs/configure-notifications>) for the
//! notification, `{"action": "INSERT" | "DELETE", "digest":
//! "LOCATION-docker.pkg.dev/PROJECT/REPO/IMAGE@sha256:…", "tag":
//! "LOCATION-docker.pkg.dev/PROJECT/REPO/IMAGE:TAG"}`, where `tag` is absent for a push by digest;
//! and "Push subscriptions" (<https://cloud.google.com/pubsub/docs/push>) for the wrapper, `{"message":
//! {"data": base64 of the notification, "messageId", "publishTime", "attributes"}, "subscription"}`.
//! A subscription with "payload unwrapping" enabled posts the notification itself; both are read.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::Deserialize;

use super::validate::{Location, invalid, named_tag, push, shown};
use super::{Event, Ignored, ParseError, Parsed, collect, from_json, malformed};

/// A push subscription's wrapped message, or (unwrapped) the notification itself.
#[derive(Deserialize)]
struct Body {
    message: Option<Message>,
    #[serde(flatten)]
    unwrapped: Notification,
}

#[derive(Deserialize)]
struct Message {
    data: Option<String>,
}

#[derive(Deserialize)]
struct Notification {
    action: Option<String>,
    digest: Option<String>,
    tag: Option<String>,
}

/// The push one Pub/Sub delivery reports, if it is an insert of a tag.
pub(super) fn parse(body: &[u8]) -> Result<Parsed, ParseError> {
    let body: Body = from_json(body)?;
    let notification = match body.message {
        Some(message) => notification_in(&message)?,
        None => body.unwrapped,
    };
    collect([event(&notification)])
}

/// The notification inside a Pub/Sub message's base64 `data`.
fn notification_in(message: &Message) -> Result<Notification, ParseError> {
    let data = message
        .data
        .as_deref()
        .ok_or_else(|| malformed("Pub/Sub message has no data"))?;
    let json = BASE64
        .decode(data)
        .map_err(|_| malformed("Pub/Sub message data is not base64"))?;
    from_json(&json)
}

fn event(notification: &Notification) -> Result<Event, ParseError> {
    match notification.action.as_deref() {
        Some("INSERT") => inserted(notification),
        Some("DELETE") => Ok(Event::Ignored(Ignored::Delete)),
        Some(_) => Ok(Event::Ignored(Ignored::OtherAction)),
        None => Err(malformed("notification has no action")),
    }
}

fn inserted(notification: &Notification) -> Result<Event, ParseError> {
    let Some(tagged) = named_tag(notification.tag.as_deref()) else {
        return Ok(Event::Ignored(Ignored::Untagged));
    };
    let location = Location::split(tagged)?;
    let Some(tag) = named_tag(location.tag).filter(|_| location.digest.is_none()) else {
        return Err(invalid(format!(
            "tag {:?} is not a repository and a tag",
            shown(tagged)
        )));
    };
    let digest = notification.digest.as_deref().and_then(|pinned| {
        let pinned = Location::split(pinned).ok()?;
        let same_image = pinned.host == location.host && pinned.repository == location.repository;
        same_image.then_some(pinned.digest).flatten()
    });
    push(location.host, location.repository, tag, digest).map(Event::Push)
}

#[cfg(test)]
mod tests {
    use super::super::Push;
    use super::*;
    use pretty_assertions::assert_eq;

    const HEX: &str = "17f4431497a07da98bc16e599ef9d38afb9817049b6e98b71b7e321b946a24d4";
    const IMAGE: &str = "us-west1-docker.pkg.dev/my-project/my-repo/hello-world";

    /// A push subscription's request body around `notification`, as Pub/Sub documents it.
    fn wrapped(notification: &str) -> Vec<u8> {
        format!(
            r#"{{
                "message": {{
                    "attributes": {{}},
                    "data": "{}",
                    "messageId": "2070443601311540",
                    "publishTime": "2021-02-26T19:13:55.749Z"
                }},
                "subscription": "projects/my-project/subscriptions/imagestream-operator"
            }}"#,
            BASE64.encode(notification)
        )
        .into_bytes()
    }

    fn hello_world(tag: &str, digest: Option<String>) -> Push {
        Push {
            registry: "us-west1-docker.pkg.dev".to_owned(),
            repository: "my-project/my-repo/hello-world".to_owned(),
            tag: tag.to_owned(),
            digest,
        }
    }

    #[test]
    fn an_insert_with_a_tag_is_a_push_with_the_digest_hint() {
        let notification =
            format!(r#"{{"action":"INSERT","digest":"{IMAGE}@sha256:{HEX}","tag":"{IMAGE}:1.1"}}"#);
        let expected = Parsed {
            pushes: vec![hello_world("1.1", Some(format!("sha256:{HEX}")))],
            ignored: vec![],
        };
        assert_eq!(parse(&wrapped(&notification)), Ok(expected.clone()));
        assert_eq!(
            parse(notification.as_bytes()),
            Ok(expected),
            "unwrapped delivery"
        );
    }

    #[test]
    fn a_digest_of_another_image_is_not_a_hint() {
        let notification = format!(
            r#"{{"action":"INSERT","digest":"gcr.io/other/image@sha256:{HEX}","tag":"{IMAGE}:1.1"}}"#
        );
        assert_eq!(
            parse(&wrapped(&notification)).map(|parsed| parsed.pushes),
            Ok(vec![hello_world("1.1", None)])
        );
    }

    #[test]
    fn container_registry_hosts_are_read_too() {
        let notification =
            r#"{"action":"INSERT","tag":"gcr.io/freshly-docker/freshly:pig-267-refactor"}"#;
        let pushes = parse(&wrapped(notification)).map(|parsed| parsed.pushes);
        assert_eq!(
            pushes,
            Ok(vec![Push {
                registry: "gcr.io".to_owned(),
                repository: "freshly-docker/freshly".to_owned(),
                tag: "pig-267-refactor".to_owned(),
                digest: None,
            }])
        );
    }

    #[test]
    fn inserts_by_digest_deletions_and_other_actions_are_ignored() {
        let by_digest = format!(r#"{{"action":"INSERT","digest":"{IMAGE}@sha256:{HEX}"}}"#);
        let cases = [
            (by_digest, Ignored::Untagged),
            (
                format!(r#"{{"action":"DELETE","tag":"{IMAGE}:1.1"}}"#),
                Ignored::Delete,
            ),
            (
                format!(r#"{{"action":"DELETE","digest":"{IMAGE}@sha256:{HEX}"}}"#),
                Ignored::Delete,
            ),
            (r#"{"action":"UPDATE"}"#.to_owned(), Ignored::OtherAction),
        ];
        for (notification, why) in cases {
            assert_eq!(
                parse(&wrapped(&notification)),
                Ok(Parsed {
                    pushes: vec![],
                    ignored: vec![why],
                }),
                "{notification}"
            );
        }
    }

    #[test]
    fn a_tag_reference_that_is_not_host_repository_and_tag_is_invalid() {
        let cases = [
            "evil.com/x@y:1",
            "http://us-west1-docker.pkg.dev/p/r/i:1",
            "user@us-west1-docker.pkg.dev/p/r/i:1",
            "us-west1-docker.pkg.dev/p/r/i",
            "us-west1-docker.pkg.dev/p/r/i:",
            "us-west1-docker.pkg.dev",
        ];
        for tag in cases {
            let notification = format!(r#"{{"action":"INSERT","tag":"{tag}"}}"#);
            assert!(
                matches!(parse(&wrapped(&notification)), Err(ParseError::Invalid(_))),
                "{tag}"
            );
        }
    }

    #[test]
    fn bodies_that_are_neither_wrapped_nor_a_notification_are_malformed() {
        let not_base64 = br#"{"message": {"data": "not base64!"}}"#.to_vec();
        let no_data = br#"{"message": {"attributes": {"a": "b"}}}"#.to_vec();
        let not_json = wrapped("INSERT gcr.io/a/b:c");
        let neither = br#"{"subscription": "projects/p/subscriptions/s"}"#.to_vec();
        let wrong_type = br#"{"action": "INSERT", "tag": 1}"#.to_vec();
        for body in [not_base64, no_data, not_json, neither, wrong_type] {
            assert!(
                matches!(parse(&body), Err(ParseError::Malformed(_))),
                "{}",
                String::from_utf8_lossy(&body)
            );
        }
    }
}
