//! Amazon ECR "ECR Image Action" events from EventBridge, delivered by a rule whose target is an
//! API destination posting the whole event.
//!
//! Shape from AWS's documentation, "Amazon ECR events and EventBridge", section "Event for a
//! completed image push" (<https://docs.aws.amazon.com/AmazonECR/latest/userguide/ecr-eventbridge.html>):
//! `{"version", "id", "detail-type": "ECR Image Action", "source": "aws.ecr", "account", "time",
//! "region", "resources", "detail": {"result": "SUCCESS", "repository-name", "image-digest",
//! "action-type": "PUSH" | "DELETE", "image-tag"}}`. The event names no host: a private registry is
//! `<account>.dkr.ecr.<region>.amazonaws.com` (`.amazonaws.com.cn` in the China regions). Other
//! ECR events (scans, pull-through cache, replication) are ignored.

use serde::Deserialize;

use super::validate::{invalid, named_tag, push, shown};
use super::{Event, Ignored, ParseError, Parsed, collect, from_json};

const IMAGE_ACTION: &str = "ECR Image Action";
const ACCOUNT_ID_LEN: usize = 12;
const REGION_MAX_LEN: usize = 32;

#[derive(Deserialize)]
struct ImageAction {
    #[serde(rename = "detail-type")]
    detail_type: String,
    account: Option<String>,
    region: Option<String>,
    #[serde(default)]
    detail: Detail,
}

#[derive(Deserialize, Default)]
struct Detail {
    result: Option<String>,
    #[serde(rename = "repository-name")]
    repository_name: Option<String>,
    #[serde(rename = "image-digest")]
    image_digest: Option<String>,
    #[serde(rename = "action-type")]
    action_type: Option<String>,
    #[serde(rename = "image-tag")]
    image_tag: Option<String>,
}

/// The push one EventBridge event reports, if it is a successful push by tag.
pub(super) fn parse(body: &[u8]) -> Result<Parsed, ParseError> {
    let event: ImageAction = from_json(body)?;
    collect([outcome(&event)])
}

fn outcome(event: &ImageAction) -> Result<Event, ParseError> {
    let detail = &event.detail;
    if event.detail_type != IMAGE_ACTION || detail.result.as_deref() != Some("SUCCESS") {
        return Ok(Event::Ignored(Ignored::OtherAction));
    }
    match detail.action_type.as_deref() {
        Some("PUSH") => pushed(event),
        Some("DELETE") => Ok(Event::Ignored(Ignored::Delete)),
        _ => Ok(Event::Ignored(Ignored::OtherAction)),
    }
}

fn pushed(event: &ImageAction) -> Result<Event, ParseError> {
    let detail = &event.detail;
    let Some(tag) = named_tag(detail.image_tag.as_deref()) else {
        return Ok(Event::Ignored(Ignored::Untagged));
    };
    let repository = detail
        .repository_name
        .as_deref()
        .ok_or_else(|| invalid("push event has no detail.repository-name".to_owned()))?;
    let registry = registry(event.account.as_deref(), event.region.as_deref())?;
    push(&registry, repository, tag, detail.image_digest.as_deref()).map(Event::Push)
}

/// The private registry of `account` in `region`, both checked so neither can smuggle in a host.
fn registry(account: Option<&str>, region: Option<&str>) -> Result<String, ParseError> {
    let account = account.unwrap_or_default();
    if account.len() != ACCOUNT_ID_LEN || !account.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid(format!(
            "account {:?} is not a 12-digit AWS account id",
            shown(account)
        )));
    }
    let region = region.unwrap_or_default();
    if !is_region(region) {
        return Err(invalid(format!(
            "region {:?} is not an AWS region",
            shown(region)
        )));
    }
    let domain = if region.starts_with("cn-") {
        "amazonaws.com.cn"
    } else {
        "amazonaws.com"
    };
    Ok(format!("{account}.dkr.ecr.{region}.{domain}"))
}

/// Lower-case letters, digits and inner dashes, starting with a letter: `us-west-2`,
/// `us-gov-east-1`.
fn is_region(region: &str) -> bool {
    let bytes = region.as_bytes();
    (1..=REGION_MAX_LEN).contains(&bytes.len())
        && bytes.first().is_some_and(u8::is_ascii_lowercase)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
}

#[cfg(test)]
mod tests {
    use super::super::Push;
    use super::*;
    use pretty_assertions::assert_eq;

    const HEX: &str = "7f5b2640fe6fb4f46592dfd3410c4a79dac4f89e4782432e0378abcd12345678";

    /// An event like AWS's "completed image push" example, with the fields that vary.
    fn event(account: &str, region: &str, detail: &str) -> Vec<u8> {
        format!(
            r#"{{
                "version": "0",
                "id": "13cde686-328b-6117-af20-0e5566167482",
                "detail-type": "ECR Image Action",
                "source": "aws.ecr",
                "account": "{account}",
                "time": "2019-11-16T01:54:34Z",
                "region": "{region}",
                "resources": [],
                "detail": {detail}
            }}"#
        )
        .into_bytes()
    }

    fn detail(result: &str, action: &str, tag: Option<&str>) -> String {
        let tag = tag.map_or(String::new(), |tag| format!(r#", "image-tag": "{tag}""#));
        format!(
            r#"{{"result": "{result}", "repository-name": "my-repository-name",
                "image-digest": "sha256:{HEX}", "action-type": "{action}"{tag}}}"#
        )
    }

    #[test]
    fn a_successful_push_is_on_the_accounts_regional_registry() {
        let cases = [
            ("us-west-2", "123456789012.dkr.ecr.us-west-2.amazonaws.com"),
            (
                "cn-north-1",
                "123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn",
            ),
        ];
        for (region, registry) in cases {
            let body = event(
                "123456789012",
                region,
                &detail("SUCCESS", "PUSH", Some("latest")),
            );
            assert_eq!(
                parse(&body),
                Ok(Parsed {
                    pushes: vec![Push {
                        registry: registry.to_owned(),
                        repository: "my-repository-name".to_owned(),
                        tag: "latest".to_owned(),
                        digest: Some(format!("sha256:{HEX}")),
                    }],
                    ignored: vec![],
                }),
                "{region}"
            );
        }
    }

    #[test]
    fn failures_deletions_untagged_pushes_and_other_events_are_ignored() {
        let scan = br#"{"detail-type": "ECR Image Scan", "account": "123456789012",
            "region": "us-east-1", "detail": {"scan-status": "COMPLETE"}}"#
            .to_vec();
        let cases = [
            (
                event(
                    "123456789012",
                    "us-west-2",
                    &detail("FAILURE", "PUSH", Some("v1")),
                ),
                Ignored::OtherAction,
            ),
            (
                event(
                    "123456789012",
                    "us-west-2",
                    &detail("SUCCESS", "DELETE", Some("v1")),
                ),
                Ignored::Delete,
            ),
            (
                event(
                    "123456789012",
                    "us-west-2",
                    &detail("SUCCESS", "PUSH", None),
                ),
                Ignored::Untagged,
            ),
            (
                event(
                    "123456789012",
                    "us-west-2",
                    &detail("SUCCESS", "REPLICATE", Some("v1")),
                ),
                Ignored::OtherAction,
            ),
            (scan, Ignored::OtherAction),
        ];
        for (body, why) in cases {
            assert_eq!(
                parse(&body),
                Ok(Parsed {
                    pushes: vec![],
                    ignored: vec![why],
                }),
                "{}",
                String::from_utf8_lossy(&body)
            );
        }
    }

    #[test]
    fn an_account_or_region_that_could_smuggle_a_host_is_invalid() {
        let cases = [
            ("12345678901", "us-west-2"),
            ("1234567890123", "us-west-2"),
            ("12345678901a", "us-west-2"),
            ("evil.com/x12", "us-west-2"),
            ("123456789012", "us-west-2.evil.com"),
            ("123456789012", "evil.com/x"),
            ("123456789012", "US-WEST-2"),
            ("123456789012", ""),
            ("123456789012", "us-west-"),
        ];
        for (account, region) in cases {
            let body = event(account, region, &detail("SUCCESS", "PUSH", Some("v1")));
            assert!(
                matches!(parse(&body), Err(ParseError::Invalid(_))),
                "{account} {region}"
            );
        }
    }

    #[test]
    fn payloads_of_the_wrong_shape_are_malformed() {
        let cases: [&[u8]; 3] = [
            br#"{"detail": {}}"#,
            br#"{"detail-type": "ECR Image Action", "detail": {"image-tag": 1}}"#,
            br#"{"detail-type": "ECR Image Action", "account": 123456789012}"#,
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
