//! The checks every format's pushes go through: the registry host (a host name, IPv4 address or
//! bracketed IPv6 address with an optional port, and nothing else), then repository and tag by the
//! image reference grammar, with Docker Hub's names normalised as in a pull spec.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::{ParseError, Push};
use crate::domain::reference::{ImageReference, is_valid_digest};
use crate::domain::text::shorten;

/// A host name is at most 253 characters (RFC 1035); the port is counted too, to keep it simple.
const HOST_MAX_LEN: usize = 253;
const LABEL_MAX_LEN: usize = 63;
/// Payload values quoted in a [`ParseError::Invalid`] message are cut to this many characters.
const SHOWN_MAX_CHARS: usize = 80;
const DOCKER_HUB: &str = "docker.io";
/// Other names of Docker Hub that payloads use; image references call it `docker.io`.
const DOCKER_HUB_ALIASES: [&str; 2] = ["index.docker.io", "registry-1.docker.io"];

/// A location as vendors write it (Harbor's `resource_url`, Quay's `docker_url`, GitHub's
/// `package_url`, Artifact Registry's references): `host/repository`, then an optional `:tag` and
/// an optional `@digest`. The host is always the first segment, whatever it looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Location<'a> {
    pub(super) host: &'a str,
    pub(super) repository: &'a str,
    pub(super) tag: Option<&'a str>,
    pub(super) digest: Option<&'a str>,
}

impl<'a> Location<'a> {
    /// Splits `location`; only a location without a `/` after the host is refused here, the parts
    /// are checked by [`push`].
    pub(super) fn split(location: &'a str) -> Result<Self, ParseError> {
        let (host, rest) = location.split_once('/').ok_or_else(|| {
            invalid(format!(
                "location {:?} names no repository after the registry host",
                shown(location)
            ))
        })?;
        let (name_and_tag, digest) = match rest.split_once('@') {
            Some((name_and_tag, digest)) => (name_and_tag, Some(digest)),
            None => (rest, None),
        };
        let (repository, tag) = match name_and_tag.rsplit_once(':') {
            Some((repository, tag)) if !tag.contains('/') => (repository, Some(tag)),
            _ => (name_and_tag, None),
        };
        Ok(Self {
            host,
            repository,
            tag,
            digest,
        })
    }
}

/// A push of `tag` to `repository` on `registry`, each part checked: the host by
/// [`registry_host`], repository and tag by [`ImageReference::parse`] of `registry/repository:tag`,
/// which also adds Docker Hub's `library/`. A digest that is not well-formed is dropped.
pub(super) fn push(
    registry: &str,
    repository: &str,
    tag: &str,
    digest: Option<&str>,
) -> Result<Push, ParseError> {
    let registry = registry_host(registry)?;
    let written = format!("{registry}/{repository}:{tag}");
    let reference = ImageReference::parse(&written).map_err(|error| invalid(error.to_string()))?;
    // `repository` or `tag` with a `:`, `@` or `/` in it could make the joined text split elsewhere.
    let split_as_joined = reference.registry_as_written() == Some(registry.as_str())
        && reference.tag() == Some(tag)
        && reference.digest().is_none();
    if !split_as_joined {
        return Err(invalid(format!(
            "repository {:?} with tag {:?} is not a repository path and a tag",
            shown(repository),
            shown(tag)
        )));
    }
    Ok(Push {
        registry: reference.canonical_registry().to_owned(),
        repository: reference.repository().to_owned(),
        tag: tag.to_owned(),
        digest: digest_hint(digest),
    })
}

/// A push named by a pull spec (`nginx`, `quay.io/org/app`): the registry is the first segment
/// only when it looks like a host, as in Docker, so a bare name is on Docker Hub. The spec must
/// not carry its own tag or digest.
pub(super) fn push_of_pull_spec(
    pull_spec: &str,
    tag: &str,
    digest: Option<&str>,
) -> Result<Push, ParseError> {
    let reference = ImageReference::parse(pull_spec).map_err(|error| invalid(error.to_string()))?;
    if reference.tag().is_some() || reference.digest().is_some() {
        return Err(invalid(format!(
            "repository {:?} carries a tag or digest; give them in their own fields",
            shown(pull_spec)
        )));
    }
    let registry = reference
        .registry_as_written()
        .unwrap_or(DOCKER_HUB)
        .to_owned();
    push(&registry, reference.repository_as_written(), tag, digest)
}

/// `host[:port]` in lower case with Docker Hub's aliases turned into `docker.io`, if `raw` is a
/// host name, IPv4 address or bracketed IPv6 address with an optional port that an image reference
/// can name: no scheme, path, userinfo or whitespace, and (as Docker tells hosts from repository
/// namespaces) a `.` or `:` in it, or `localhost`.
pub(super) fn registry_host(raw: &str) -> Result<String, ParseError> {
    let host = raw.to_ascii_lowercase();
    if !is_host_and_port(&host) {
        return Err(invalid(format!(
            "registry host {:?} is not a host name, IPv4 address or [IPv6 address] with an \
             optional port",
            shown(raw)
        )));
    }
    if !looks_like_registry(&host) {
        return Err(invalid(format!(
            "registry host {:?} has no '.' or port and is not localhost, so an image reference \
             would read it as a Docker Hub namespace",
            shown(raw)
        )));
    }
    if DOCKER_HUB_ALIASES.contains(&host.as_str()) {
        return Ok(DOCKER_HUB.to_owned());
    }
    Ok(host)
}

/// The tag a payload names, or `None` when the field is absent or empty.
pub(super) fn named_tag(tag: Option<&str>) -> Option<&str> {
    tag.filter(|tag| !tag.is_empty())
}

/// `digest` if it is a sha256 or sha512 digest in lower-case hex, the forms references accept.
pub(super) fn digest_hint(digest: Option<&str>) -> Option<String> {
    digest
        .filter(|digest| is_valid_digest(digest))
        .map(str::to_owned)
}

/// A [`ParseError::Invalid`] with `reason`, cut to a length fit for a log line.
pub(super) fn invalid(reason: String) -> ParseError {
    ParseError::Invalid(shorten(&reason, 4 * SHOWN_MAX_CHARS))
}

/// Payload text cut for quoting in a message.
pub(super) fn shown(text: &str) -> String {
    shorten(text, SHOWN_MAX_CHARS)
}

fn is_host_and_port(host: &str) -> bool {
    if host.is_empty() || host.len() > HOST_MAX_LEN {
        return false;
    }
    if let Some(bracketed) = host.strip_prefix('[') {
        let Some((address, after)) = bracketed.split_once(']') else {
            return false;
        };
        let port_ok = after.is_empty() || after.strip_prefix(':').is_some_and(is_port);
        return port_ok && address.parse::<Ipv6Addr>().is_ok();
    }
    let (name, port) = match host.split_once(':') {
        Some((name, port)) => (name, Some(port)),
        None => (host, None),
    };
    port.is_none_or(is_port) && is_host_name_or_ipv4(name)
}

/// DNS labels joined by dots; when every label is numeric, it must be a dotted IPv4 address.
fn is_host_name_or_ipv4(name: &str) -> bool {
    let labels_ok = name.split('.').all(is_dns_label);
    let all_numeric = name.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    labels_ok && (!all_numeric || name.parse::<Ipv4Addr>().is_ok())
}

/// Letters, digits and inner dashes, 1 to 63 characters.
fn is_dns_label(label: &str) -> bool {
    let bytes = label.as_bytes();
    (1..=LABEL_MAX_LEN).contains(&bytes.len())
        && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
}

/// A TCP port, 1 to 65535, in decimal.
fn is_port(port: &str) -> bool {
    port.len() <= 5
        && port.bytes().all(|b| b.is_ascii_digit())
        && port.parse::<u16>().is_ok_and(|port| port != 0)
}

/// Docker's rule for a first path segment that names a registry rather than a namespace.
fn looks_like_registry(host: &str) -> bool {
    host.contains(['.', ':']) || host == "localhost" || host.starts_with('[')
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    const HEX: &str = "0155e28bdf2a1c6d3fd8a1bf1a8f9c09c2b9cde2e8e0fbc4c7bf5c1c6a6d8a71";

    #[test]
    fn registry_hosts_are_lower_cased_and_docker_hub_aliases_normalised() {
        let cases = [
            ("docker.io", "docker.io"),
            ("Docker.IO", "docker.io"),
            ("index.docker.io", "docker.io"),
            ("registry-1.docker.io", "docker.io"),
            ("ghcr.io", "ghcr.io"),
            ("Registry.Example.com:5000", "registry.example.com:5000"),
            ("127.0.0.1:5000", "127.0.0.1:5000"),
            ("localhost", "localhost"),
            ("localhost:5000", "localhost:5000"),
            ("[::1]:5000", "[::1]:5000"),
            ("[FD00::1]", "[fd00::1]"),
            ("us-west1-docker.pkg.dev", "us-west1-docker.pkg.dev"),
            (
                "123456789012.dkr.ecr.us-west-2.amazonaws.com",
                "123456789012.dkr.ecr.us-west-2.amazonaws.com",
            ),
        ];
        for (raw, expected) in cases {
            assert_eq!(registry_host(raw), Ok(expected.to_owned()), "{raw}");
        }
    }

    #[test]
    fn registry_hosts_with_a_path_userinfo_scheme_or_bad_port_are_invalid() {
        let cases = [
            "",
            "evil.com/x",
            "user@host.example.com",
            "user:pass@host.example.com",
            "http://host.example.com",
            "https:",
            "host.example.com:",
            "host.example.com:0",
            "host.example.com:65536",
            "host.example.com:5000:1",
            "host.example.com:http",
            "host .example.com",
            "host.example.com\n",
            "-host.example.com",
            "host-.example.com",
            "host..example.com",
            "host.example.com.",
            "my_host.example.com",
            "999.1.1.1",
            "[::1",
            "[::1]x",
            "[::1]:",
            "[not-an-address]:5000",
            "[fe80::1%eth0]",
            "registry",
            "héllo.example.com",
        ];
        for raw in cases {
            assert!(
                matches!(registry_host(raw), Err(ParseError::Invalid(_))),
                "{raw:?} was accepted"
            );
        }
        let too_long = format!("{}.example.com", vec!["a".repeat(60); 4].join("."));
        assert!(registry_host(&too_long).is_err());
    }

    #[test]
    fn a_push_on_docker_hub_gets_the_library_namespace() {
        let push = push("index.docker.io", "nginx", "1.27", None);
        assert_eq!(
            push,
            Ok(Push {
                registry: "docker.io".to_owned(),
                repository: "library/nginx".to_owned(),
                tag: "1.27".to_owned(),
                digest: None,
            })
        );
    }

    #[test]
    fn a_repository_or_tag_that_would_split_elsewhere_is_invalid() {
        let cases = [
            ("app", "v1@sha256:abc"),
            ("app:v0", "v1"),
            ("app@sha256:x", "v1"),
            ("App", "v1"),
            ("app", "v1/x"),
            ("app", ".v1"),
            ("app", ""),
            ("", "v1"),
            ("app/", "v1"),
            ("app", &"v".repeat(129)),
        ];
        for (repository, tag) in cases {
            assert!(
                matches!(
                    push("registry.example.com", repository, tag, None),
                    Err(ParseError::Invalid(_))
                ),
                "{repository:?} {tag:?} was accepted"
            );
        }
    }

    #[test]
    fn a_digest_hint_that_is_not_well_formed_is_dropped() {
        let good = format!("sha256:{HEX}");
        let cases = [
            (Some(good.as_str()), Some(good.clone())),
            (
                Some("sha256:6c62fb45fe66bfb1ea9a66abc38f6a0cc974292b"),
                None,
            ),
            (Some("sha256:XYZ"), None),
            (Some(""), None),
            (None, None),
        ];
        for (digest, expected) in cases {
            let push = push("ghcr.io", "org/app", "v1", digest).map(|push| push.digest);
            assert_eq!(push, Ok(expected), "{digest:?}");
        }
    }

    #[test]
    fn locations_split_into_host_repository_tag_and_digest() {
        let digest = format!("sha256:{HEX}");
        let with_digest = format!("quay.io/org/app@{digest}");
        let cases = [
            ("quay.io/org/app", ("quay.io", "org/app", None, None)),
            (
                "quay.io/org/app:v1",
                ("quay.io", "org/app", Some("v1"), None),
            ),
            (
                "localhost:5000/app:v1",
                ("localhost:5000", "app", Some("v1"), None),
            ),
            ("ghcr.io/Org/App:", ("ghcr.io", "Org/App", Some(""), None)),
            (
                with_digest.as_str(),
                ("quay.io", "org/app", None, Some(digest.as_str())),
            ),
        ];
        for (location, (host, repository, tag, digest)) in cases {
            assert_eq!(
                Location::split(location),
                Ok(Location {
                    host,
                    repository,
                    tag,
                    digest
                }),
                "{location}"
            );
        }
        assert!(Location::split("quay.io").is_err());
    }

    #[test]
    fn pull_specs_without_a_host_are_on_docker_hub() {
        let cases = [
            ("nginx", ("docker.io", "library/nginx")),
            ("bitnami/redis", ("docker.io", "bitnami/redis")),
            ("quay.io/org/app", ("quay.io", "org/app")),
            ("localhost:5000/app", ("localhost:5000", "app")),
        ];
        for (spec, (registry, repository)) in cases {
            let push =
                push_of_pull_spec(spec, "v1", None).map(|push| (push.registry, push.repository));
            assert_eq!(
                push,
                Ok((registry.to_owned(), repository.to_owned())),
                "{spec}"
            );
        }
        assert!(push_of_pull_spec("nginx:1.27", "v1", None).is_err());
        assert!(push_of_pull_spec("my_host.example.com:5000/app", "v1", None).is_err());
    }
}
