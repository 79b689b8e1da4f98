//! GitHub `package` and `registry_package` webhook events for container packages on the GitHub
//! Container Registry (GHCR).
//!
//! Shape from GitHub's documentation, "Webhook events and payloads", sections `package` and
//! `registry_package` (<https://docs.github.com/en/webhooks/webhook-events-and-payloads#package>),
//! and the payload examples in `octokit/webhooks` (`payload-examples/api.github.com/package/
//! published.docker.payload.json`): `{"action": "published" | "updated", "package" |
//! "registry_package": {"name", "package_type", "ecosystem", "owner": {"login"},
//! "package_version": {"container_metadata": {"tag": {"name", "digest"}}, "package_url":
//! "ghcr.io/owner/name:tag"}, "registry": {"type": "CONTAINER"}}}`. GitHub spells owners in their
//! display case, while GHCR names are lower-case, so the location is lower-cased. Any other event
//! sent to the same hook (the `ping` on creation, other package types) is ignored.

use serde::Deserialize;

use super::validate::{Location, named_tag, push};
use super::{Event, Ignored, ParseError, Parsed, collect, from_json};

const GHCR: &str = "ghcr.io";

#[derive(Deserialize)]
struct Payload {
    action: Option<String>,
    package: Option<Package>,
    registry_package: Option<Package>,
}

#[derive(Deserialize)]
struct Package {
    name: Option<String>,
    package_type: Option<String>,
    ecosystem: Option<String>,
    owner: Option<Owner>,
    package_version: Option<PackageVersion>,
    registry: Option<Registry>,
}

#[derive(Deserialize)]
struct Owner {
    login: String,
}

#[derive(Deserialize)]
struct PackageVersion {
    container_metadata: Option<ContainerMetadata>,
    package_url: Option<String>,
}

#[derive(Deserialize)]
struct ContainerMetadata {
    tag: Option<Tag>,
}

#[derive(Deserialize)]
struct Tag {
    name: Option<String>,
    digest: Option<String>,
}

#[derive(Deserialize)]
struct Registry {
    #[serde(rename = "type")]
    kind: Option<String>,
}

/// The push a package event reports, if it is a published or updated container version.
pub(super) fn parse(body: &[u8]) -> Result<Parsed, ParseError> {
    let payload: Payload = from_json(body)?;
    collect([event(&payload)])
}

fn event(payload: &Payload) -> Result<Event, ParseError> {
    let Some(package) = payload
        .registry_package
        .as_ref()
        .or(payload.package.as_ref())
    else {
        return Ok(Event::Ignored(Ignored::OtherAction));
    };
    let published = matches!(payload.action.as_deref(), Some("published" | "updated"));
    if !published || !is_container(package) {
        return Ok(Event::Ignored(Ignored::OtherAction));
    }
    let tag = package
        .package_version
        .as_ref()
        .and_then(|version| version.container_metadata.as_ref())
        .and_then(|metadata| metadata.tag.as_ref());
    let Some(name) = named_tag(tag.and_then(|tag| tag.name.as_deref())) else {
        return Ok(Event::Ignored(Ignored::Untagged));
    };
    let digest = tag.and_then(|tag| tag.digest.as_deref());
    let location = location(package);
    let Location {
        host, repository, ..
    } = Location::split(&location)?;
    push(host, repository, name, digest).map(Event::Push)
}

/// Container packages are typed `CONTAINER` today and `docker` in older payloads, in any of three
/// fields.
fn is_container(package: &Package) -> bool {
    let registry_type = package
        .registry
        .as_ref()
        .and_then(|registry| registry.kind.as_deref());
    [
        package.package_type.as_deref(),
        package.ecosystem.as_deref(),
        registry_type,
    ]
    .into_iter()
    .flatten()
    .any(|kind| kind.eq_ignore_ascii_case("container") || kind.eq_ignore_ascii_case("docker"))
}

/// `host/owner/name` in lower case: from `package_url` (which also names a GitHub Enterprise
/// Server's container host), else `ghcr.io/<owner>/<name>`.
fn location(package: &Package) -> String {
    let package_url = package
        .package_version
        .as_ref()
        .and_then(|version| version.package_url.as_deref());
    let location = match package_url {
        Some(url) => url.to_owned(),
        None => {
            let owner = package
                .owner
                .as_ref()
                .map_or("", |owner| owner.login.as_str());
            let name = package.name.as_deref().unwrap_or_default();
            format!("{GHCR}/{owner}/{name}")
        }
    };
    location.to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::super::Push;
    use super::*;
    use pretty_assertions::assert_eq;

    const HEX: &str = "3da1996a8115d7616457760d9920b815241d0a03b34cf5f04e9a0e9d8de37498";

    /// A package event like GitHub's container example, trimmed to the fields that matter.
    fn payload(event: &str, action: &str, package_type: &str, tag: &str, digest: &str) -> Vec<u8> {
        format!(
            r#"{{
                "action": "{action}",
                "{event}": {{
                    "id": 10696,
                    "name": "hello-world",
                    "namespace": "Codertocat/hello-world",
                    "description": null,
                    "ecosystem": "{package_type}",
                    "package_type": "{package_type}",
                    "html_url": "https://github.com/Codertocat/hello-world/packages/10696",
                    "owner": {{"login": "Codertocat", "id": 21031067, "type": "User"}},
                    "package_version": {{
                        "id": 57755790,
                        "version": "sha256:{HEX}",
                        "name": "sha256:{HEX}",
                        "metadata": [],
                        "container_metadata": {{
                            "tag": {{"name": "{tag}", "digest": "{digest}"}},
                            "labels": {{"description": "Hello-World in a docker container"}},
                            "manifest": {{}}
                        }},
                        "package_files": [],
                        "installation_command": "docker pull ghcr.io/Codertocat/hello-world:{tag}",
                        "package_url": "ghcr.io/Codertocat/hello-world:{tag}"
                    }},
                    "registry": {{
                        "name": "GitHub CONTAINER registry",
                        "type": "{package_type}",
                        "url": "https://CONTAINER.pkg.github.com/Codertocat",
                        "vendor": "GitHub Inc"
                    }}
                }},
                "repository": {{"full_name": "Codertocat/hello-world"}},
                "sender": {{"login": "Codertocat"}}
            }}"#
        )
        .into_bytes()
    }

    fn hello_world(tag: &str, digest: Option<String>) -> Push {
        Push {
            registry: "ghcr.io".to_owned(),
            repository: "codertocat/hello-world".to_owned(),
            tag: tag.to_owned(),
            digest,
        }
    }

    #[test]
    fn a_published_container_version_is_a_push_in_lower_case() {
        let digest = format!("sha256:{HEX}");
        for event in ["package", "registry_package"] {
            for action in ["published", "updated"] {
                let body = payload(event, action, "CONTAINER", "v1.2", &digest);
                assert_eq!(
                    parse(&body),
                    Ok(Parsed {
                        pushes: vec![hello_world("v1.2", Some(digest.clone()))],
                        ignored: vec![],
                    }),
                    "{event} {action}"
                );
            }
        }
    }

    #[test]
    fn a_short_digest_as_in_githubs_example_is_dropped() {
        let body = payload(
            "package",
            "published",
            "docker",
            "latest",
            "sha256:6c62fb45fe66bfb1ea9a66abc38f6a0cc974292b",
        );
        assert_eq!(
            parse(&body).map(|parsed| parsed.pushes),
            Ok(vec![hello_world("latest", None)])
        );
    }

    #[test]
    fn a_version_without_tag_is_untagged() {
        let body = payload("package", "published", "CONTAINER", "", "sha256:0");
        assert_eq!(
            parse(&body),
            Ok(Parsed {
                pushes: vec![],
                ignored: vec![Ignored::Untagged],
            })
        );
    }

    #[test]
    fn other_package_types_actions_and_events_are_ignored() {
        let npm = payload("package", "published", "npm", "1.0.0", "");
        let deleted = payload("registry_package", "deleted", "CONTAINER", "v1", "");
        let ping = br#"{"zen": "Keep it logically awesome.", "hook_id": 1, "hook": {}}"#.to_vec();
        for body in [npm, deleted, ping] {
            assert_eq!(
                parse(&body),
                Ok(Parsed {
                    pushes: vec![],
                    ignored: vec![Ignored::OtherAction],
                }),
                "{}",
                String::from_utf8_lossy(&body)
            );
        }
    }

    #[test]
    fn without_package_url_the_location_is_ghcr_owner_and_name() {
        let body = br#"{
            "action": "published",
            "package": {
                "name": "Hello-World",
                "package_type": "container",
                "owner": {"login": "Codertocat"},
                "package_version": {"container_metadata": {"tag": {"name": "v1"}}}
            }
        }"#;
        assert_eq!(
            parse(body).map(|parsed| parsed.pushes),
            Ok(vec![hello_world("v1", None)])
        );
    }

    #[test]
    fn a_package_url_with_a_bad_host_is_invalid() {
        for url in [
            "ghcr.io:443@evil.com/a/b:v1",
            "https://ghcr.io/a/b:v1",
            "user@ghcr.io/a/b:v1",
            "ghcr.io",
        ] {
            let body = format!(
                r#"{{"action": "published", "package": {{"package_type": "container",
                    "package_version": {{"package_url": "{url}",
                        "container_metadata": {{"tag": {{"name": "v1"}}}}}}}}}}"#
            );
            assert!(
                matches!(parse(body.as_bytes()), Err(ParseError::Invalid(_))),
                "{url}"
            );
        }
    }

    #[test]
    fn payloads_of_the_wrong_shape_are_malformed() {
        let cases: [&[u8]; 3] = [
            b"[1]",
            br#"{"action": 1}"#,
            br#"{"action": "published", "package": {"owner": {"login": 1}}}"#,
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
