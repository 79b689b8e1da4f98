//! Image references as users write them (`nginx:1.25`, `localhost:5000/a/b@sha256:…`): parsed with the
//! full Docker grammar on top of oci-client's `Reference`, normalised for contacting registries and for
//! matching mirror sources and credentials, and rendered back in the user's own spelling.

use std::borrow::Cow;
use std::fmt;
use std::net::Ipv6Addr;
use std::str::FromStr;

use oci_client::{ParseError, Reference};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The canonical name of Docker Hub, used for mirror sources and credentials.
const DOCKER_HUB: &str = "docker.io";
/// A host name OpenShift takes for a registry even without a `.` or a port.
const LOCALHOST: &str = "localhost";
/// The legacy name of Docker Hub, which Docker treats as `docker.io`.
const DOCKER_HUB_LEGACY: &str = "index.docker.io";
/// The host that serves Docker Hub's registry API.
const DOCKER_HUB_API_HOST: &str = "registry-1.docker.io";
/// Docker Hub's namespace for one-segment ("official") image names.
const DOCKER_HUB_OFFICIAL_PREFIX: &str = "library/";
const DEFAULT_TAG: &str = "latest";
/// Docker's limit on the length of a name (registry and repository path).
const NAME_MAX_LEN: usize = 255;
const TAG_MAX_LEN: usize = 128;
/// User input quoted in error messages is cut to this many characters.
const SHOWN_MAX_CHARS: usize = 100;
/// oci-client's grammar has no IPv6 literals, so a bracketed address is swapped for this host while
/// oci-client checks the rest. `.invalid` is reserved (RFC 2606), so it never names a real registry.
const IPV6_STAND_IN: &str = "ipv6-literal.invalid";

/// Why a string is not a usable image reference, or why a mirror cannot be applied to one.
///
/// Every variant keeps the offending input, cut to a length that fits in a condition message.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ReferenceError {
    /// The reference is the empty string.
    #[error("image reference is empty")]
    Empty,
    /// The reference contains a space, tab, newline or other whitespace.
    #[error("image reference {input:?} contains whitespace")]
    ContainsWhitespace {
        /// The reference as written.
        input: String,
    },
    /// Nothing names a repository: the reference is only a registry (`quay.io`, `localhost:5000`),
    /// a tag or a digest.
    #[error("image reference {input:?} names no repository")]
    MissingRepository {
        /// The reference as written.
        input: String,
    },
    /// The registry is not a host name or bracketed IPv6 address with an optional numeric port.
    #[error(
        "registry {registry:?} in image reference {input:?} is not a host name or [IPv6 address] \
         with an optional numeric port"
    )]
    InvalidRegistry {
        /// The reference as written.
        input: String,
        /// The registry part as written.
        registry: String,
    },
    /// The registry's port is not a number from 1 to 65535 (`localhost:0`, `127.0.0.1:99999`).
    #[error(
        "port {port:?} of registry {registry:?} in image reference {input:?} is not a number from \
         1 to 65535"
    )]
    PortOutOfRange {
        /// The reference as written.
        input: String,
        /// The registry part as written.
        registry: String,
        /// The port as written.
        port: String,
    },
    /// The repository path contains upper-case letters.
    #[error("repository {repository:?} in image reference {input:?} must be lower-case")]
    UppercaseRepository {
        /// The reference as written.
        input: String,
        /// The repository path as written.
        repository: String,
    },
    /// The repository path breaks the component grammar.
    #[error(
        "repository {repository:?} in image reference {input:?} is not valid: it is one or more \
         '/'-separated components of lower-case letters and digits, joined inside a component by \
         '.', '_', '__' or dashes"
    )]
    InvalidRepository {
        /// The reference as written.
        input: String,
        /// The repository path as written.
        repository: String,
    },
    /// The name (registry and repository, with Docker Hub's `library/` added) is longer than 255
    /// characters.
    #[error("image name in {input:?} is {length} characters long; at most 255 are allowed")]
    NameTooLong {
        /// The reference as written.
        input: String,
        /// The length of the name.
        length: usize,
    },
    /// The tag breaks the tag grammar `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
    #[error(
        "tag {tag:?} in image reference {input:?} is not valid: it is 1 to 128 letters, digits, \
         '_', '.' or '-', and does not start with '.' or '-'"
    )]
    InvalidTag {
        /// The reference as written.
        input: String,
        /// The tag as written (empty for a trailing `:`).
        tag: String,
    },
    /// The digest is not a sha256 or sha512 digest in lower-case hex of the right length.
    #[error(
        "digest {digest:?} in image reference {input:?} is not sha256:<64 lower-case hex digits> \
         or sha512:<128 lower-case hex digits>"
    )]
    InvalidDigest {
        /// The reference as written.
        input: String,
        /// The digest as written (empty for a trailing `@`).
        digest: String,
    },
    /// oci-client rejected a reference that passed every specific check above.
    #[error(
        "image reference {input:?} does not follow the grammar \
         [registry[:port]/]repository[:tag][@digest]"
    )]
    InvalidFormat {
        /// The reference as written.
        input: String,
    },
    /// A mirror was applied to a reference that its source prefix does not match.
    #[error("image {reference:?} is not under mirror source {source_prefix:?}")]
    SourcePrefixNotMatched {
        /// The reference being mirrored.
        reference: String,
        /// The source prefix that was expected to match it.
        source_prefix: String,
    },
    /// A mirror prefix does not start with a registry host, so it would be read as a Docker Hub name.
    #[error(
        "mirror {mirror_prefix:?} does not start with a registry host (a name containing '.' or \
         ':', or localhost)"
    )]
    MirrorPrefixWithoutHost {
        /// The mirror prefix.
        mirror_prefix: String,
    },
    /// A mirror prefix that is only a host replaced the whole repository, leaving no repository.
    #[error(
        "mirror {mirror_prefix:?} names only a registry, and source {source_prefix:?} covers all of \
         {reference:?}, so no repository is left"
    )]
    MirrorLeavesNoRepository {
        /// The reference being mirrored.
        reference: String,
        /// The source prefix that matched it.
        source_prefix: String,
        /// The mirror prefix.
        mirror_prefix: String,
    },
    /// Replacing the source prefix with the mirror prefix gives a string that is not a reference.
    #[error("mirror {mirror_prefix:?} gives an invalid reference for {reference:?}: {source}")]
    InvalidMirroredReference {
        /// The reference being mirrored.
        reference: String,
        /// The mirror prefix.
        mirror_prefix: String,
        /// Why the mirrored reference is invalid.
        #[source]
        source: Box<ReferenceError>,
    },
}

impl ReferenceError {
    /// The PascalCase reason used for conditions, Events and metric labels.
    pub fn reason(&self) -> &'static str {
        "InvalidImageReference"
    }
}

/// User input cut to [`SHOWN_MAX_CHARS`] characters, so one huge field cannot flood a message.
fn shown(s: &str) -> String {
    super::text::shorten(s, SHOWN_MAX_CHARS)
}

/// A parsed image reference that remembers how the user wrote it.
///
/// Two references are equal when they were written the same way; compare [`Self::canonical_name`],
/// [`Self::tag`] and [`Self::digest`] to ask whether they name the same image.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ImageReference {
    written: String,
    /// Registry and repository path exactly as written: `docker.io/nginx`, `nginx`.
    name_as_written: String,
    registry_as_written: Option<String>,
    /// `docker.io` for Docker Hub, else the written host[:port] in lower case.
    registry: String,
    /// The repository path, with `library/` for one-segment Docker Hub names.
    repository: String,
    tag: Option<String>,
    digest: Option<String>,
}

impl ImageReference {
    /// Parses a reference with the full Docker grammar: `[host[:port]/]path[:tag][@digest]`, where the
    /// host is a DNS name, `localhost` or a bracketed IPv6 address. A first path segment is the host
    /// only when it contains `.` or `:` or is `localhost`, as in Docker; registry hosts are
    /// case-insensitive. A name without `/` that has a `.` or starts with `localhost` is a registry
    /// alone, as OpenShift reads it, and is rejected for naming no repository. A port must be 1 to
    /// 65535.
    pub fn parse(input: &str) -> Result<Self, ReferenceError> {
        let parts = WrittenParts::split(input)?;
        parts.check()?;
        let oci: Reference = parts
            .for_oci()
            .parse()
            .map_err(|error| parts.oci_error(error))?;
        let registry = match parts.registry {
            Some(written) if oci.registry() != DOCKER_HUB => written.to_ascii_lowercase(),
            _ => DOCKER_HUB.to_owned(),
        };
        Ok(Self {
            written: input.to_owned(),
            name_as_written: parts.name.to_owned(),
            registry_as_written: parts.registry.map(str::to_owned),
            registry,
            repository: oci.repository().to_owned(),
            tag: parts.tag.map(str::to_owned),
            digest: parts.digest.map(str::to_owned),
        })
    }

    /// The reference exactly as written.
    pub fn as_str(&self) -> &str {
        &self.written
    }

    /// The registry as written (`docker.io`, `Quay.IO`, `localhost:5000`), or `None` when the user
    /// omitted it and Docker Hub is meant.
    pub fn registry_as_written(&self) -> Option<&str> {
        self.registry_as_written.as_deref()
    }

    /// The repository path as written, without registry, tag or digest: `nginx` for `nginx:1.25`.
    pub fn repository_as_written(&self) -> &str {
        match &self.registry_as_written {
            Some(registry) => &self.name_as_written[registry.len() + 1..],
            None => &self.name_as_written,
        }
    }

    /// Whether the image is on Docker Hub (written as `docker.io`, `index.docker.io` or not at all).
    pub fn is_docker_hub(&self) -> bool {
        self.registry == DOCKER_HUB
    }

    /// The `host[:port]` whose registry API serves this image: `registry-1.docker.io` for Docker Hub,
    /// otherwise the registry as written, in lower case.
    pub fn api_host(&self) -> &str {
        if self.is_docker_hub() {
            DOCKER_HUB_API_HOST
        } else {
            &self.registry
        }
    }

    /// The registry as mirror sources and credentials name it: `docker.io` for Docker Hub, otherwise
    /// the registry as written, in lower case.
    pub fn canonical_registry(&self) -> &str {
        &self.registry
    }

    /// The repository path as the registry API knows it: `library/nginx` for `nginx`.
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The canonical registry and repository, `docker.io/library/nginx`: the form mirror sources are
    /// matched against.
    pub fn canonical_name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The tag as written, or `None` when there is none (see [`Self::tag_or_latest`]).
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The tag as written, or `latest` when none was written (also for a digest-only reference).
    pub fn tag_or_latest(&self) -> &str {
        self.tag.as_deref().unwrap_or(DEFAULT_TAG)
    }

    /// The digest as written, if any.
    pub fn digest(&self) -> Option<&str> {
        self.digest.as_deref()
    }

    /// Whether the reference names a digest, which then wins over any tag.
    pub fn is_digest_pinned(&self) -> bool {
        self.digest.is_some()
    }

    /// What to ask the registry's manifest endpoint for: the digest when there is one, else the tag
    /// (`latest` when none was written).
    pub fn manifest_reference(&self) -> &str {
        self.digest
            .as_deref()
            .unwrap_or_else(|| self.tag_or_latest())
    }

    /// The reference in the user's spelling with tag and digest replaced by `@digest`:
    /// `nginx:1.25` becomes `nginx@sha256:…`, `localhost:5000/a/b:c` becomes
    /// `localhost:5000/a/b@sha256:…`.
    ///
    /// `digest` is used as given; pass a digest that satisfies [`is_valid_digest`] (as registries'
    /// digests are once checked), or the result will not parse.
    pub fn with_digest(&self, digest: &str) -> String {
        format!("{}@{digest}", self.name_as_written)
    }

    /// Whether a mirror source prefix in canonical form (`docker.io/library/busybox`, `quay.io`,
    /// `*.example.com`) covers this image: the canonical name equals the source or starts with it
    /// followed by `/`. A `*.example.com` host matches any subdomain of `example.com` but not
    /// `example.com` itself; the port must be equal (both absent, or `*.example.com:5000`).
    pub fn matches_source_prefix(&self, source: &str) -> bool {
        self.source_match_len(source).is_some()
    }

    /// The same image on a mirror: the part of the canonical name matched by `matched_source_prefix`
    /// is replaced by `mirror_prefix` (both in canonical form), keeping tag and digest. For
    /// `docker.io/library/busybox:1.36`, source `docker.io` and mirror
    /// `mirror.example.com:5000/dockerhub` give `mirror.example.com:5000/dockerhub/library/busybox:1.36`.
    /// A wildcard source matches the whole registry host.
    pub fn with_repository_prefix_replaced(
        &self,
        matched_source_prefix: &str,
        mirror_prefix: &str,
    ) -> Result<Self, ReferenceError> {
        let matched_len = self
            .source_match_len(matched_source_prefix)
            .ok_or_else(|| ReferenceError::SourcePrefixNotMatched {
                reference: shown(&self.written),
                source_prefix: shown(matched_source_prefix),
            })?;
        let mirror_host = mirror_prefix.split('/').next().unwrap_or_default();
        if !is_registry_host_like(mirror_host) {
            return Err(ReferenceError::MirrorPrefixWithoutHost {
                mirror_prefix: shown(mirror_prefix),
            });
        }
        let canonical_name = self.canonical_name();
        let name = format!("{mirror_prefix}{}", &canonical_name[matched_len..]);
        if !name.contains('/') {
            // `mirror.local` + `:tag` would read as the Docker Hub image `library/mirror.local`.
            return Err(ReferenceError::MirrorLeavesNoRepository {
                reference: shown(&self.written),
                source_prefix: shown(matched_source_prefix),
                mirror_prefix: shown(mirror_prefix),
            });
        }
        let tag = self.tag.as_ref().map(|tag| format!(":{tag}"));
        let digest = self.digest.as_ref().map(|digest| format!("@{digest}"));
        let mirrored = format!(
            "{name}{}{}",
            tag.unwrap_or_default(),
            digest.unwrap_or_default()
        );
        Self::parse(&mirrored).map_err(|source| ReferenceError::InvalidMirroredReference {
            reference: shown(&self.written),
            mirror_prefix: shown(mirror_prefix),
            source: Box::new(source),
        })
    }

    /// How many leading bytes of the canonical name `source` matches, if it matches at all.
    fn source_match_len(&self, source: &str) -> Option<usize> {
        let (host_pattern, path) = match source.split_once('/') {
            Some((host, path)) => (host, Some(path)),
            None => (source, None),
        };
        if !host_pattern_matches(host_pattern, &self.registry) {
            return None;
        }
        let host_len = self.registry.len();
        match path {
            None => Some(host_len),
            Some("") => None,
            Some(path) => {
                let rest = self.repository.strip_prefix(path)?;
                (rest.is_empty() || rest.starts_with('/')).then_some(host_len + 1 + path.len())
            }
        }
    }
}

impl fmt::Display for ImageReference {
    /// The reference exactly as the user wrote it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.written)
    }
}

impl FromStr for ImageReference {
    type Err = ReferenceError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        Self::parse(input)
    }
}

impl TryFrom<String> for ImageReference {
    type Error = ReferenceError;

    fn try_from(input: String) -> Result<Self, Self::Error> {
        Self::parse(&input)
    }
}

impl From<ImageReference> for String {
    fn from(reference: ImageReference) -> Self {
        reference.written
    }
}

/// Whether `digest` is `sha256:<64 lower-case hex>` or `sha512:<128 lower-case hex>`, the digests
/// references and Image names accept.
pub fn is_valid_digest(digest: &str) -> bool {
    let Some((algorithm, hex)) = digest.split_once(':') else {
        return false;
    };
    let expected_len = match algorithm {
        "sha256" => 64,
        "sha512" => 128,
        _ => return false,
    };
    hex.len() == expected_len
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Whether a host pattern (`quay.io`, `localhost:5000`, `*.example.com`) matches a canonical registry.
fn host_pattern_matches(pattern: &str, registry: &str) -> bool {
    let Some(domain_pattern) = pattern.strip_prefix("*.") else {
        return pattern.eq_ignore_ascii_case(registry);
    };
    let (pattern_host, pattern_port) = split_port(domain_pattern);
    let (host, port) = split_port(registry);
    if pattern_host.is_empty() || pattern_port != port {
        return false;
    }
    // At least one label before the domain: `a.example.com`, never `example.com` itself.
    let Some(label_end) = host.len().checked_sub(pattern_host.len() + 1) else {
        return false;
    };
    label_end > 0
        && host.as_bytes()[label_end] == b'.'
        && host
            .get(label_end + 1..)
            .is_some_and(|domain| domain.eq_ignore_ascii_case(pattern_host))
}

/// Splits `host:port` into host and port; the host keeps its brackets if it is an IPv6 address.
fn split_port(registry: &str) -> (&str, Option<&str>) {
    match registry.rsplit_once(':') {
        Some((host, port)) if !port.contains(']') => (host, Some(port)),
        _ => (registry, None),
    }
}

/// Docker's rule for telling a registry from the first path segment.
fn is_registry_host_like(segment: &str) -> bool {
    segment.contains(['.', ':']) || segment == LOCALHOST || segment.starts_with('[')
}

/// A DNS label as Docker's grammar has it: letters, digits and inner dashes.
fn is_domain_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    match (bytes.first(), bytes.last()) {
        (Some(first), Some(last)) => {
            first.is_ascii_alphanumeric()
                && last.is_ascii_alphanumeric()
                && bytes
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
        }
        _ => false,
    }
}

/// A repository path component: `[a-z0-9]+` runs joined by `.`, `_`, `__` or any number of `-`.
fn is_path_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    let is_alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let mut i = 0;
    loop {
        let run_start = i;
        while i < bytes.len() && is_alnum(bytes[i]) {
            i += 1;
        }
        if i == run_start {
            return false;
        }
        if i == bytes.len() {
            return true;
        }
        let separator_start = i;
        while i < bytes.len() && !is_alnum(bytes[i]) {
            i += 1;
        }
        let separator = &bytes[separator_start..i];
        let allowed =
            matches!(separator, b"." | b"_" | b"__") || separator.iter().all(|b| *b == b'-');
        if !allowed {
            return false;
        }
    }
}

/// A registry: a DNS name with an optional port, or a bracketed IPv6 address with an optional port.
fn is_registry(registry: &str) -> bool {
    if let Some(bracketed) = registry.strip_prefix('[') {
        let Some((address, after)) = bracketed.split_once(']') else {
            return false;
        };
        let port_ok = after.is_empty() || after.strip_prefix(':').is_some_and(is_port);
        return port_ok
            && address.bytes().all(|b| b.is_ascii_hexdigit() || b == b':')
            && address.parse::<Ipv6Addr>().is_ok();
    }
    let (host, port) = match registry.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (registry, None),
    };
    match port {
        Some(port) => is_port(port) && host.split('.').all(is_domain_component),
        // Docker also accepts a port-less first segment with a `.` that its path grammar allows
        // (`my_host.local/x`), because the whole name then matches as a path.
        None => host.split('.').all(is_domain_component) || is_path_component(host),
    }
}

/// A port as the grammar has it: one or more digits. Its range is checked on its own, so that an
/// out-of-range port gets an error saying so.
fn is_port(port: &str) -> bool {
    !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit())
}

/// Whether a port is one a registry can listen on. Docker's grammar takes any digits; a port of 0 or
/// above 65535 could only fail later, at connection time, with a less helpful error.
fn is_port_in_range(port: &str) -> bool {
    port.parse::<u16>().is_ok_and(|port| port != 0)
}

/// Checks the registry part: its grammar, then the range of its port.
fn check_registry(registry: &str, input: impl Fn() -> String) -> Result<(), ReferenceError> {
    if !is_registry(registry) {
        return Err(ReferenceError::InvalidRegistry {
            input: input(),
            registry: shown(registry),
        });
    }
    match split_port(registry) {
        (_, Some(port)) if !is_port_in_range(port) => Err(ReferenceError::PortOutOfRange {
            input: input(),
            registry: shown(registry),
            port: shown(port),
        }),
        _ => Ok(()),
    }
}

/// `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`, in ASCII (oci-client's `\w` would also take Unicode letters).
fn is_tag(tag: &str) -> bool {
    let is_word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let bytes = tag.as_bytes();
    bytes.len() <= TAG_MAX_LEN
        && bytes.first().is_some_and(|b| is_word(*b))
        && bytes
            .iter()
            .all(|b| is_word(*b) || *b == b'.' || *b == b'-')
}

/// A reference cut into the parts the user wrote, before any normalisation.
struct WrittenParts<'a> {
    input: &'a str,
    /// Registry and repository path.
    name: &'a str,
    registry: Option<&'a str>,
    path: &'a str,
    tag: Option<&'a str>,
    digest: Option<&'a str>,
}

impl<'a> WrittenParts<'a> {
    /// Splits from the right, as Docker does: the digest follows `@`; the tag follows the last `:`
    /// that has no `/` or `]` after it (so a port is never taken for a tag); the first path segment
    /// is the registry when it looks like a host.
    fn split(input: &'a str) -> Result<Self, ReferenceError> {
        if input.is_empty() {
            return Err(ReferenceError::Empty);
        }
        if input.chars().any(char::is_whitespace) {
            return Err(ReferenceError::ContainsWhitespace {
                input: shown(input),
            });
        }
        let (name_and_tag, digest) = match input.split_once('@') {
            Some((name_and_tag, digest)) => (name_and_tag, Some(digest)),
            None => (input, None),
        };
        let tag_colon = name_and_tag
            .rfind(':')
            .filter(|&colon| !name_and_tag[colon + 1..].contains(['/', ']']));
        let (name, tag) = match tag_colon {
            Some(colon) => (&name_and_tag[..colon], Some(&name_and_tag[colon + 1..])),
            None => (name_and_tag, None),
        };
        let (registry, path) = match name.split_once('/') {
            Some((first, rest)) if is_registry_host_like(first) => (Some(first), rest),
            _ => (None, name),
        };
        Ok(Self {
            input,
            name,
            registry,
            path,
            tag,
            digest,
        })
    }

    /// Checks every part, so that a bad reference gets an error naming the part that is wrong.
    fn check(&self) -> Result<(), ReferenceError> {
        let input = || shown(self.input);
        if self.path.is_empty() {
            return Err(ReferenceError::MissingRepository { input: input() });
        }
        if let Some(registry) = self.registry {
            check_registry(registry, input)?;
        }
        if self.path.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(ReferenceError::UppercaseRepository {
                input: input(),
                repository: shown(self.path),
            });
        }
        if !self.path.split('/').all(is_path_component) {
            return Err(ReferenceError::InvalidRepository {
                input: input(),
                repository: shown(self.path),
            });
        }
        let length = self.name.len().max(self.normalised_repository_len());
        if length > NAME_MAX_LEN {
            return Err(ReferenceError::NameTooLong {
                input: input(),
                length,
            });
        }
        if let Some(tag) = self.tag.filter(|tag| !is_tag(tag)) {
            return Err(ReferenceError::InvalidTag {
                input: input(),
                tag: shown(tag),
            });
        }
        if let Some(digest) = self.digest.filter(|digest| !is_valid_digest(digest)) {
            return Err(ReferenceError::InvalidDigest {
                input: input(),
                digest: shown(digest),
            });
        }
        if self.names_only_a_registry() {
            return Err(ReferenceError::MissingRepository { input: input() });
        }
        Ok(())
    }

    /// OpenShift's rule (library-go `reference.Parse`) for a name without `/`: with a `.`, or
    /// starting with `localhost`, it is a registry (`quay.io`, `localhost:5000`), not a Docker Hub
    /// image, so nothing names a repository. Docker would pull `docker.io/library/quay.io` instead;
    /// OpenShift is followed because this parser reads what OpenShift's users wrote for it.
    fn names_only_a_registry(&self) -> bool {
        self.registry.is_none()
            && !self.path.contains('/')
            && (self.path.contains('.') || self.path.starts_with(LOCALHOST))
    }

    fn is_docker_hub(&self) -> bool {
        self.registry.is_none_or(|registry| {
            registry.eq_ignore_ascii_case(DOCKER_HUB)
                || registry.eq_ignore_ascii_case(DOCKER_HUB_LEGACY)
        })
    }

    /// The repository length once Docker Hub's `library/` is added, which registries also limit.
    fn normalised_repository_len(&self) -> usize {
        if self.is_docker_hub() && !self.path.contains('/') {
            DOCKER_HUB_OFFICIAL_PREFIX.len() + self.path.len()
        } else {
            self.path.len()
        }
    }

    /// The input as oci-client should see it: the registry host in lower case (so `Docker.IO` is
    /// Docker Hub too) and an IPv6 literal replaced by a stand-in host that its grammar accepts.
    fn for_oci(&self) -> Cow<'a, str> {
        let Some(registry) = self.registry else {
            return Cow::Borrowed(self.input);
        };
        let after_registry = &self.input[registry.len()..];
        match registry.split_once(']') {
            Some((_, port)) => Cow::Owned(format!("{IPV6_STAND_IN}{port}{after_registry}")),
            None if registry.bytes().any(|b| b.is_ascii_uppercase()) => {
                Cow::Owned(format!("{}{after_registry}", registry.to_ascii_lowercase()))
            }
            None => Cow::Borrowed(self.input),
        }
    }

    /// Maps a rejection by oci-client (of input that passed [`Self::check`]) to our errors.
    fn oci_error(&self, error: ParseError) -> ReferenceError {
        let input = shown(self.input);
        match error {
            ParseError::NameEmpty => ReferenceError::MissingRepository { input },
            ParseError::NameTooLong => ReferenceError::NameTooLong {
                input,
                length: self.name.len().max(self.normalised_repository_len()),
            },
            ParseError::NameContainsUppercase => ReferenceError::UppercaseRepository {
                input,
                repository: shown(self.path),
            },
            ParseError::TagInvalidFormat => ReferenceError::InvalidTag {
                input,
                tag: shown(self.tag.unwrap_or_default()),
            },
            ParseError::DigestInvalidFormat
            | ParseError::DigestInvalidLength
            | ParseError::DigestUnsupported => ReferenceError::InvalidDigest {
                input,
                digest: shown(self.digest.unwrap_or_default()),
            },
            ParseError::ReferenceInvalidFormat => ReferenceError::InvalidFormat { input },
        }
    }
}

/// What the conformance tables (`domain::conformance`) compare a parse against, so that each row
/// states one exact outcome: the parts the reference was split into, or the error variant with the
/// part it names. The echoed input is left out; every row would only repeat it.
#[cfg(test)]
pub(crate) mod test_support {
    use std::fmt::Debug;

    use super::{ImageReference, ReferenceError};

    /// A parse outcome: `T` is the table's view of a parsed reference.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub(crate) enum Outcome<T> {
        Parsed(T),
        Rejected(Rejection),
    }

    /// A [`ReferenceError`] of the parser without the echoed input.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub(crate) enum Rejection {
        Empty,
        ContainsWhitespace,
        MissingRepository,
        /// The registry as written.
        InvalidRegistry(String),
        /// The registry and the port as written.
        PortOutOfRange(String, String),
        /// The repository path as written.
        UppercaseRepository(String),
        /// The repository path as written.
        InvalidRepository(String),
        /// The length counted.
        NameTooLong(usize),
        /// The tag as written.
        InvalidTag(String),
        /// The digest as written.
        InvalidDigest(String),
        InvalidFormat,
        /// An error only mirroring produces; a parse never should.
        NotAParseError(ReferenceError),
    }

    impl From<ReferenceError> for Rejection {
        fn from(error: ReferenceError) -> Self {
            use ReferenceError as E;
            match error {
                E::Empty => Self::Empty,
                E::ContainsWhitespace { .. } => Self::ContainsWhitespace,
                E::MissingRepository { .. } => Self::MissingRepository,
                E::InvalidRegistry { registry, .. } => Self::InvalidRegistry(registry),
                E::PortOutOfRange { registry, port, .. } => Self::PortOutOfRange(registry, port),
                E::UppercaseRepository { repository, .. } => Self::UppercaseRepository(repository),
                E::InvalidRepository { repository, .. } => Self::InvalidRepository(repository),
                E::NameTooLong { length, .. } => Self::NameTooLong(length),
                E::InvalidTag { tag, .. } => Self::InvalidTag(tag),
                E::InvalidDigest { digest, .. } => Self::InvalidDigest(digest),
                E::InvalidFormat { .. } => Self::InvalidFormat,
                other => Self::NotAParseError(other),
            }
        }
    }

    /// Parses `input` and views the result through `view`.
    pub(crate) fn outcome<T>(input: &str, view: impl Fn(&ImageReference) -> T) -> Outcome<T> {
        match ImageReference::parse(input) {
            Ok(reference) => Outcome::Parsed(view(&reference)),
            Err(error) => Outcome::Rejected(error.into()),
        }
    }

    /// Checks every row and fails once, listing every row that disagrees, so one run shows the whole
    /// picture of a ported table.
    pub(crate) fn assert_table<T: Debug + PartialEq>(
        table: &str,
        rows: &[(String, Outcome<T>)],
        view: impl Fn(&ImageReference) -> T,
    ) {
        let mismatches: Vec<String> = rows
            .iter()
            .filter_map(|(input, expected)| {
                let actual = outcome(input, &view);
                (actual != *expected).then(|| {
                    format!("  {input:?}\n    expected {expected:?}\n    got      {actual:?}")
                })
            })
            .collect();
        assert!(
            mismatches.is_empty(),
            "{table}: {} of {} rows disagree:\n{}",
            mismatches.len(),
            rows.len(),
            mismatches.join("\n")
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;
    use proptest::prelude::*;

    const HEX: &str = "0155e28bdf2a1c6d3fd8a1bf1a8f9c09c2b9cde2e8e0fbc4c7bf5c1c6a6d8a71";
    const OTHER_HEX: &str = "9a9e2c2e0ba1bb0a1e5a06fa5bc8ea4a3d1bbd31a6db8d7d6c1e4c0a3f5e8d11";

    fn digest() -> String {
        format!("sha256:{HEX}")
    }

    fn parsed(input: &str) -> ImageReference {
        ImageReference::parse(input).unwrap_or_else(|error| panic!("{input}: {error}"))
    }

    /// What a parsed reference reports, for table comparison.
    #[derive(Debug, PartialEq)]
    struct Seen<'a> {
        registry_as_written: Option<&'a str>,
        api_host: &'a str,
        canonical_registry: &'a str,
        repository: &'a str,
        canonical_name: String,
        tag: Option<&'a str>,
        digest: Option<&'a str>,
    }

    fn seen(reference: &ImageReference) -> Seen<'_> {
        Seen {
            registry_as_written: reference.registry_as_written(),
            api_host: reference.api_host(),
            canonical_registry: reference.canonical_registry(),
            repository: reference.repository(),
            canonical_name: reference.canonical_name(),
            tag: reference.tag(),
            digest: reference.digest(),
        }
    }

    /// Input, registry as written, API host, canonical registry, repository, tag, digest.
    type ValidCase<'a> = (
        String,
        Option<&'a str>,
        &'a str,
        &'a str,
        &'a str,
        Option<&'a str>,
        Option<&'a str>,
    );

    #[test]
    fn valid_references_are_split_and_normalised_like_docker_does() {
        let d = digest();
        let d = d.as_str();
        let sha512 = format!("sha512:{}", "ab".repeat(64));
        let sha512 = sha512.as_str();
        #[rustfmt::skip]
        let cases: Vec<ValidCase> = vec![
            // input, registry as written, api host, canonical registry, repository, tag, digest
            ("localhost:5000/a/b:c".into(), Some("localhost:5000"), "localhost:5000", "localhost:5000", "a/b", Some("c"), None),
            (format!("a/b@{d}"), None, "registry-1.docker.io", "docker.io", "a/b", None, Some(d)),
            ("docker.io/nginx".into(), Some("docker.io"), "registry-1.docker.io", "docker.io", "library/nginx", None, None),
            ("index.docker.io/library/nginx:1".into(), Some("index.docker.io"), "registry-1.docker.io", "docker.io", "library/nginx", Some("1"), None),
            ("index.docker.io/nginx".into(), Some("index.docker.io"), "registry-1.docker.io", "docker.io", "library/nginx", None, None),
            ("nginx".into(), None, "registry-1.docker.io", "docker.io", "library/nginx", None, None),
            ("bitnami/nginx:1.25".into(), None, "registry-1.docker.io", "docker.io", "bitnami/nginx", Some("1.25"), None),
            ("quay.io/org/sub/repo:v1.2.3".into(), Some("quay.io"), "quay.io", "quay.io", "org/sub/repo", Some("v1.2.3"), None),
            ("registry:5000/x".into(), Some("registry:5000"), "registry:5000", "registry:5000", "x", None, None),
            ("localhost/x".into(), Some("localhost"), "localhost", "localhost", "x", None, None),
            ("127.0.0.1:5000/x".into(), Some("127.0.0.1:5000"), "127.0.0.1:5000", "127.0.0.1:5000", "x", None, None),
            ("[::1]:5000/x".into(), Some("[::1]:5000"), "[::1]:5000", "[::1]:5000", "x", None, None),
            ("[FE80::1]/team/x:v1".into(), Some("[FE80::1]"), "[fe80::1]", "[fe80::1]", "team/x", Some("v1"), None),
            (format!("nginx:tag@{d}"), None, "registry-1.docker.io", "docker.io", "library/nginx", Some("tag"), Some(d)),
            (format!("localhost:5000/a/b:c@{sha512}"), Some("localhost:5000"), "localhost:5000", "localhost:5000", "a/b", Some("c"), Some(sha512)),
            ("Quay.IO/org/repo".into(), Some("Quay.IO"), "quay.io", "quay.io", "org/repo", None, None),
            ("DOCKER.IO/nginx".into(), Some("DOCKER.IO"), "registry-1.docker.io", "docker.io", "library/nginx", None, None),
            // A lone name without `.` is a Docker Hub image, so `:5000` is its tag.
            ("registry:5000".into(), None, "registry-1.docker.io", "docker.io", "library/registry", Some("5000"), None),
            ("localhost:1/x".into(), Some("localhost:1"), "localhost:1", "localhost:1", "x", None, None),
            ("localhost:65535/x".into(), Some("localhost:65535"), "localhost:65535", "localhost:65535", "x", None, None),
            ("b.gcr.io/test.example.com/my-app:test.example.com".into(), Some("b.gcr.io"), "b.gcr.io", "b.gcr.io", "test.example.com/my-app", Some("test.example.com"), None),
            ("my_host.local/x".into(), Some("my_host.local"), "my_host.local", "my_host.local", "x", None, None),
            ("a/b__c.d---e_f".into(), None, "registry-1.docker.io", "docker.io", "a/b__c.d---e_f", None, None),
            // Only docker.io and index.docker.io are Docker Hub, as in Docker.
            ("registry-1.docker.io/library/nginx".into(), Some("registry-1.docker.io"), "registry-1.docker.io", "registry-1.docker.io", "library/nginx", None, None),
        ];
        for (input, registry_as_written, api_host, canonical_registry, repository, tag, digest) in
            &cases
        {
            let reference = parsed(input);
            assert_eq!(
                seen(&reference),
                Seen {
                    registry_as_written: *registry_as_written,
                    api_host,
                    canonical_registry,
                    repository,
                    canonical_name: format!("{canonical_registry}/{repository}"),
                    tag: *tag,
                    digest: *digest,
                },
                "{input}"
            );
            assert_eq!(reference.to_string(), *input);
        }
    }

    #[test]
    fn invalid_references_are_rejected_with_an_error_naming_the_bad_part() {
        use ReferenceError::*;
        let s = |v: &str| v.to_owned();
        let long_tag = "t".repeat(129);
        #[rustfmt::skip]
        let cases: Vec<(String, ReferenceError)> = vec![
            (s(""), Empty),
            (s(" nginx"), ContainsWhitespace { input: s(" nginx") }),
            (s("nginx :1"), ContainsWhitespace { input: s("nginx :1") }),
            (s("nginx\n"), ContainsWhitespace { input: s("nginx\n") }),
            (s("example.com/UPPER"), UppercaseRepository { input: s("example.com/UPPER"), repository: s("UPPER") }),
            (s("NGINX:1"), UppercaseRepository { input: s("NGINX:1"), repository: s("NGINX") }),
            // oci-client accepts this one (its own FIXME); Docker's grammar does not.
            (s("Uppercase/lowercase:tag"), UppercaseRepository { input: s("Uppercase/lowercase:tag"), repository: s("Uppercase/lowercase") }),
            (s("nginx:"), InvalidTag { input: s("nginx:"), tag: s("") }),
            (s("nginx:.hidden"), InvalidTag { input: s("nginx:.hidden"), tag: s(".hidden") }),
            (s("nginx:ünicode"), InvalidTag { input: s("nginx:ünicode"), tag: s("ünicode") }),
            (format!("nginx:{long_tag}"), InvalidTag { input: shown(&format!("nginx:{long_tag}")), tag: shown(&long_tag) }),
            (s("nginx@sha256:short"), InvalidDigest { input: s("nginx@sha256:short"), digest: s("sha256:short") }),
            (s("nginx@"), InvalidDigest { input: s("nginx@"), digest: s("") }),
            (format!("nginx@sha256:{}", HEX.to_uppercase()), InvalidDigest { input: format!("nginx@sha256:{}", HEX.to_uppercase()), digest: format!("sha256:{}", HEX.to_uppercase()) }),
            (format!("nginx@md5:{HEX}"), InvalidDigest { input: format!("nginx@md5:{HEX}"), digest: format!("md5:{HEX}") }),
            (format!("nginx@sha512:{HEX}"), InvalidDigest { input: format!("nginx@sha512:{HEX}"), digest: format!("sha512:{HEX}") }),
            (format!("nginx@sha256:{HEX}@sha256:{HEX}"), InvalidDigest { input: shown(&format!("nginx@sha256:{HEX}@sha256:{HEX}")), digest: shown(&format!("sha256:{HEX}@sha256:{HEX}")) }),
            (s(":tag"), MissingRepository { input: s(":tag") }),
            (format!("@sha256:{HEX}"), MissingRepository { input: format!("@sha256:{HEX}") }),
            (s("example.com/"), MissingRepository { input: s("example.com/") }),
            (s("exa$mple.com/x"), InvalidRegistry { input: s("exa$mple.com/x"), registry: s("exa$mple.com") }),
            (s("registry:port/x"), InvalidRegistry { input: s("registry:port/x"), registry: s("registry:port") }),
            (s("my_host:5000/x"), InvalidRegistry { input: s("my_host:5000/x"), registry: s("my_host:5000") }),
            (s("[::g]:5000/x"), InvalidRegistry { input: s("[::g]:5000/x"), registry: s("[::g]:5000") }),
            (s("[::ffff:1.2.3.4]/x"), InvalidRegistry { input: s("[::ffff:1.2.3.4]/x"), registry: s("[::ffff:1.2.3.4]") }),
            (s("[::1]:/x"), InvalidRegistry { input: s("[::1]:/x"), registry: s("[::1]:") }),
            (s("a//b"), InvalidRepository { input: s("a//b"), repository: s("a//b") }),
            (s("a/b-"), InvalidRepository { input: s("a/b-"), repository: s("a/b-") }),
            (s("a/.b"), InvalidRepository { input: s("a/.b"), repository: s("a/.b") }),
            (s("a/b..c"), InvalidRepository { input: s("a/b..c"), repository: s("a/b..c") }),
            (s("a/b___c"), InvalidRepository { input: s("a/b___c"), repository: s("a/b___c") }),
            (s("a:b:c"), InvalidRepository { input: s("a:b:c"), repository: s("a:b") }),
            // OpenShift (library-go) reads a lone name with a `.`, or starting with `localhost`, as
            // a registry; Docker would pull `docker.io/library/test.com:5000`.
            (s("test.com:5000"), MissingRepository { input: s("test.com:5000") }),
            (s("quay.io"), MissingRepository { input: s("quay.io") }),
            (s("localhost"), MissingRepository { input: s("localhost") }),
            (s("localhost:5000"), MissingRepository { input: s("localhost:5000") }),
            (s("127.0.0.1:99999/a/b"), PortOutOfRange { input: s("127.0.0.1:99999/a/b"), registry: s("127.0.0.1:99999"), port: s("99999") }),
            (s("localhost:0/x"), PortOutOfRange { input: s("localhost:0/x"), registry: s("localhost:0"), port: s("0") }),
            (s("localhost:65536/x"), PortOutOfRange { input: s("localhost:65536/x"), registry: s("localhost:65536"), port: s("65536") }),
            (s("[::1]:70000/x"), PortOutOfRange { input: s("[::1]:70000/x"), registry: s("[::1]:70000"), port: s("70000") }),
            (s("host.example:18446744073709551617/x"), PortOutOfRange { input: s("host.example:18446744073709551617/x"), registry: s("host.example:18446744073709551617"), port: s("18446744073709551617") }),
            (s("ngïnx"), InvalidRepository { input: s("ngïnx"), repository: s("ngïnx") }),
        ];
        for (input, expected) in cases {
            assert_eq!(ImageReference::parse(&input), Err(expected), "{input:?}");
        }
    }

    #[test]
    fn a_300_character_name_is_too_long_and_the_message_is_cut() {
        let input = format!("example.com/{}", "a".repeat(288));
        assert_eq!(input.len(), 300);
        let error = ImageReference::parse(&input).unwrap_err();
        assert_eq!(
            error,
            ReferenceError::NameTooLong {
                input: format!("{}…", &input[..SHOWN_MAX_CHARS]),
                length: 300,
            }
        );
        let message = error.to_string();
        assert!(message.contains("300 characters"), "{message}");
        assert!(message.len() < 200, "{message}");
    }

    #[test]
    fn a_one_segment_docker_hub_name_counts_its_library_prefix_towards_the_limit() {
        assert!(ImageReference::parse(&"a".repeat(247)).is_ok());
        assert_eq!(
            ImageReference::parse(&"a".repeat(248)),
            Err(ReferenceError::NameTooLong {
                input: shown(&"a".repeat(248)),
                length: 256
            })
        );
        // Elsewhere the name as written (registry included) is what counts, as in Docker.
        let at_limit = format!("quay.io/{}", "a".repeat(247));
        assert!(ImageReference::parse(&at_limit).is_ok());
        assert!(ImageReference::parse(&format!("{at_limit}a")).is_err());
    }

    #[test]
    fn every_error_has_the_invalid_image_reference_reason() {
        for input in [
            "",
            "nginx:",
            "example.com/UPPER",
            "nginx@sha256:short",
            "a b",
        ] {
            let error = ImageReference::parse(input).unwrap_err();
            assert_eq!(error.reason(), "InvalidImageReference", "{input}");
        }
    }

    #[test]
    fn messages_name_the_offending_part() {
        let message = ImageReference::parse("nginx@sha256:short")
            .unwrap_err()
            .to_string();
        assert!(message.contains("\"sha256:short\""), "{message}");
        let message = ImageReference::parse("example.com/UPPER")
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("\"UPPER\"") && message.contains("lower-case"),
            "{message}"
        );
        let message = ImageReference::parse("127.0.0.1:99999/a/b")
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("\"99999\"") && message.contains("1 to 65535"),
            "{message}"
        );
    }

    #[test]
    fn with_digest_keeps_the_users_spelling_and_drops_the_tag() {
        let d = digest();
        let cases = [
            ("nginx:1.25", format!("nginx@{d}")),
            ("docker.io/nginx:1.25", format!("docker.io/nginx@{d}")),
            ("localhost:5000/a/b:c", format!("localhost:5000/a/b@{d}")),
            ("a/b", format!("a/b@{d}")),
            (
                &format!("nginx:tag@sha256:{OTHER_HEX}"),
                format!("nginx@{d}"),
            ),
            ("Quay.IO/org/repo:v1", format!("Quay.IO/org/repo@{d}")),
            ("[::1]:5000/x:v1", format!("[::1]:5000/x@{d}")),
            (
                "index.docker.io/library/nginx",
                format!("index.docker.io/library/nginx@{d}"),
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(parsed(input).with_digest(&d), expected, "{input}");
        }
    }

    #[test]
    fn display_gives_the_reference_as_written() {
        for input in [
            "nginx",
            "docker.io/nginx:1.25",
            "Quay.IO/org/repo",
            "[::1]:5000/x",
        ] {
            assert_eq!(parsed(input).to_string(), input);
            assert_eq!(parsed(input).as_str(), input);
        }
    }

    #[test]
    fn the_repository_as_written_has_no_registry_tag_or_digest() {
        assert_eq!(parsed("nginx:1").repository_as_written(), "nginx");
        assert_eq!(parsed("docker.io/nginx").repository_as_written(), "nginx");
        assert_eq!(
            parsed(&format!("localhost:5000/a/b:c@{}", digest())).repository_as_written(),
            "a/b"
        );
    }

    #[test]
    fn a_missing_tag_means_latest_and_a_digest_wins_for_pulls() {
        let d = digest();
        let untagged = parsed("a/b");
        assert_eq!(untagged.tag(), None);
        assert_eq!(untagged.tag_or_latest(), "latest");
        assert_eq!(untagged.manifest_reference(), "latest");
        assert!(!untagged.is_digest_pinned());

        let tagged = parsed("nginx:1.25");
        assert_eq!(tagged.tag_or_latest(), "1.25");
        assert_eq!(tagged.manifest_reference(), "1.25");

        let both = parsed(&format!("nginx:1.25@{d}"));
        assert!(both.is_digest_pinned());
        assert_eq!(both.tag(), Some("1.25"));
        assert_eq!(both.manifest_reference(), d);

        let pinned = parsed(&format!("nginx@{d}"));
        assert!(pinned.is_digest_pinned());
        assert_eq!(pinned.manifest_reference(), d);
    }

    #[test]
    fn docker_hub_is_recognised_however_it_is_written() {
        for input in [
            "nginx",
            "docker.io/nginx",
            "index.docker.io/nginx",
            "Docker.io/library/nginx",
        ] {
            let reference = parsed(input);
            assert!(reference.is_docker_hub(), "{input}");
            assert_eq!(
                reference.canonical_name(),
                "docker.io/library/nginx",
                "{input}"
            );
        }
        for input in [
            "quay.io/nginx",
            "docker.io:443/nginx",
            "registry-1.docker.io/library/nginx",
        ] {
            assert!(!parsed(input).is_docker_hub(), "{input}");
        }
    }

    #[test]
    fn references_serialise_as_the_string_as_written() {
        let reference = parsed("docker.io/nginx:1.25");
        let json = serde_json::to_string(&reference).unwrap();
        assert_eq!(json, "\"docker.io/nginx:1.25\"");
        assert_eq!(
            serde_json::from_str::<ImageReference>(&json).unwrap(),
            reference
        );
        assert!(serde_json::from_str::<ImageReference>("\"nginx:\"").is_err());
    }

    #[test]
    fn valid_digests_are_sha256_or_sha512_in_lower_case_hex() {
        assert!(is_valid_digest(&digest()));
        assert!(is_valid_digest(&format!("sha512:{}", "0f".repeat(64))));
        for bad in [
            "",
            "sha256",
            "sha256:",
            &format!("sha256:{}", &HEX[..63]),
            &format!("sha256:{HEX}0"),
            &format!("sha256:{}", HEX.to_uppercase()),
            &format!("sha384:{}", "a".repeat(96)),
            &format!("sha256.{HEX}"),
        ] {
            assert!(!is_valid_digest(bad), "{bad}");
        }
    }

    #[test]
    fn source_prefixes_match_at_slash_boundaries_and_wildcards_match_subdomains() {
        let cases = [
            (
                "docker.io/library/busybox:1",
                "docker.io/library/busybox",
                true,
            ),
            ("busybox", "docker.io/library/busybox", true),
            ("busybox", "docker.io/library", true),
            ("busybox", "docker.io", true),
            ("index.docker.io/busybox", "docker.io/library/busybox", true),
            ("busybox-extra", "docker.io/library/busybox", false),
            ("busybox", "docker.io/library/busybox/sub", false),
            ("busybox", "docker.io/library/", false),
            ("busybox", "index.docker.io/library/busybox", false),
            ("busybox", "", false),
            ("a.example.com/x", "*.example.com", true),
            ("b.a.example.com/x", "*.example.com", true),
            ("A.Example.com/x", "*.example.com", true),
            ("example.com/x", "*.example.com", false),
            ("aexample.com/x", "*.example.com", false),
            ("a.example.com:5000/x", "*.example.com", false),
            ("a.example.com:5000/x", "*.example.com:5000", true),
            ("a.example.com/x", "*.example.com:5000", false),
            ("a.example.com/team/app", "*.example.com/team", true),
            ("a.example.com/other/app", "*.example.com/team", false),
            ("a.example.com/x", "*.", false),
            ("a.example.com/x", "*", false),
            ("localhost:5000/a/b", "localhost", false),
            ("localhost:5000/a/b", "localhost:5000", true),
            ("localhost:5000/a/b", "localhost:5000/a", true),
            ("localhost:5000/a/bc", "localhost:5000/a/b", false),
            ("Quay.IO/org/repo", "quay.io/org", true),
            ("quay.io/org/repo", "Quay.io/org", true),
            ("[::1]:5000/x", "[::1]:5000", true),
            ("[::1]:5000/x", "*.1]:5000", false),
        ];
        for (input, source, expected) in cases {
            assert_eq!(
                parsed(input).matches_source_prefix(source),
                expected,
                "{input} against {source}"
            );
        }
    }

    #[test]
    fn a_mirror_replaces_the_matched_prefix_and_keeps_tag_and_digest() {
        let d = digest();
        let cases = [
            (
                "busybox:1.36".to_owned(),
                "docker.io",
                "mirror.example.com:5000/dockerhub",
                "mirror.example.com:5000/dockerhub/library/busybox:1.36".to_owned(),
            ),
            (
                "busybox:1.36".to_owned(),
                "docker.io/library/busybox",
                "mirror.example.com:5000/dockerhub",
                "mirror.example.com:5000/dockerhub:1.36".to_owned(),
            ),
            (
                format!("busybox@{d}"),
                "docker.io/library",
                "mirror.local/lib",
                format!("mirror.local/lib/busybox@{d}"),
            ),
            (
                format!("quay.io/org/app:v1@{d}"),
                "quay.io/org",
                "localhost:5000",
                format!("localhost:5000/app:v1@{d}"),
            ),
            (
                "a.example.com/team/app".to_owned(),
                "*.example.com",
                "mirror.local",
                "mirror.local/team/app".to_owned(),
            ),
            (
                "Quay.IO/org/app:v1".to_owned(),
                "quay.io",
                "mirror.local",
                "mirror.local/org/app:v1".to_owned(),
            ),
        ];
        for (input, source, mirror, expected) in cases {
            let mirrored = parsed(&input)
                .with_repository_prefix_replaced(source, mirror)
                .unwrap_or_else(|error| panic!("{input}: {error}"));
            assert_eq!(
                mirrored.to_string(),
                expected,
                "{input} via {source} -> {mirror}"
            );
            assert_eq!(mirrored, parsed(&expected));
        }
        let mirrored = parsed("busybox:1.36")
            .with_repository_prefix_replaced("docker.io", "mirror.example.com:5000/dockerhub")
            .unwrap();
        assert_eq!(mirrored.api_host(), "mirror.example.com:5000");
        assert_eq!(mirrored.repository(), "dockerhub/library/busybox");
        assert_eq!(mirrored.tag(), Some("1.36"));
    }

    #[test]
    fn a_mirror_that_cannot_apply_is_an_error() {
        let busybox = parsed("busybox:1.36");
        assert_eq!(
            busybox.with_repository_prefix_replaced("quay.io", "mirror.local"),
            Err(ReferenceError::SourcePrefixNotMatched {
                reference: "busybox:1.36".into(),
                source_prefix: "quay.io".into(),
            })
        );
        assert_eq!(
            busybox.with_repository_prefix_replaced("docker.io/library/busybox", "mirror.local"),
            Err(ReferenceError::MirrorLeavesNoRepository {
                reference: "busybox:1.36".into(),
                source_prefix: "docker.io/library/busybox".into(),
                mirror_prefix: "mirror.local".into(),
            })
        );
        assert_eq!(
            busybox.with_repository_prefix_replaced("docker.io", "mirror/dockerhub"),
            Err(ReferenceError::MirrorPrefixWithoutHost {
                mirror_prefix: "mirror/dockerhub".into(),
            })
        );
        assert_eq!(
            busybox.with_repository_prefix_replaced("docker.io", "mirror.local/Hub"),
            Err(ReferenceError::InvalidMirroredReference {
                reference: "busybox:1.36".into(),
                mirror_prefix: "mirror.local/Hub".into(),
                source: Box::new(ReferenceError::UppercaseRepository {
                    input: "mirror.local/Hub/library/busybox:1.36".into(),
                    repository: "Hub/library/busybox".into(),
                }),
            })
        );
    }

    /// A reference built from valid parts, with the parts it must parse into.
    #[derive(Debug, Clone)]
    struct Built {
        input: String,
        registry: Option<String>,
        path: String,
        tag: Option<String>,
        digest: Option<String>,
    }

    impl Built {
        fn assemble(
            registry: Option<&str>,
            path: &str,
            tag: Option<&str>,
            digest: Option<&str>,
        ) -> String {
            let mut input = match registry {
                Some(registry) => format!("{registry}/{path}"),
                None => path.to_owned(),
            };
            if let Some(tag) = tag {
                input.push(':');
                input.push_str(tag);
            }
            if let Some(digest) = digest {
                input.push('@');
                input.push_str(digest);
            }
            input
        }

        fn new(
            registry: Option<String>,
            path: String,
            tag: Option<String>,
            digest: Option<String>,
        ) -> Self {
            let input = Self::assemble(
                registry.as_deref(),
                &path,
                tag.as_deref(),
                digest.as_deref(),
            );
            Self {
                input,
                registry,
                path,
                tag,
                digest,
            }
        }

        /// The same reference with other parts, as written.
        fn with(&self, registry: Option<&str>, path: &str, tag: Option<&str>) -> String {
            Self::assemble(registry, path, tag, self.digest.as_deref())
        }

        /// Docker Hub when no registry or a Docker Hub spelling without a port was written.
        fn expected_registry(&self) -> String {
            match self.registry.as_deref().map(str::to_ascii_lowercase) {
                None => DOCKER_HUB.to_owned(),
                Some(registry) if registry == DOCKER_HUB_LEGACY => DOCKER_HUB.to_owned(),
                Some(registry) => registry,
            }
        }

        fn expected_repository(&self) -> String {
            if self.expected_registry() == DOCKER_HUB && !self.path.contains('/') {
                format!("{DOCKER_HUB_OFFICIAL_PREFIX}{}", self.path)
            } else {
                self.path.clone()
            }
        }
    }

    /// A port from 1 to 65535, the ends drawn on purpose.
    fn any_valid_port() -> impl Strategy<Value = u16> {
        prop_oneof![4 => 1u16..=65535, 1 => Just(1u16), 1 => Just(65535u16)]
    }

    /// Registries of every kind the grammar has, with ports only in 1..=65535.
    fn valid_registry() -> impl Strategy<Value = Option<String>> {
        let port = || {
            proptest::option::of(any_valid_port()).prop_map(|port| match port {
                Some(port) => format!(":{port}"),
                None => String::new(),
            })
        };
        prop_oneof![
            3 => Just(None),
            1 => prop_oneof![Just("docker.io"), Just("index.docker.io"), Just("Docker.IO")]
                .prop_map(|registry| Some(registry.to_owned())),
            1 => port().prop_map(|port| Some(format!("localhost{port}"))),
            1 => ("[a-z][a-z0-9-]{0,8}[a-z0-9]", any_valid_port())
                .prop_map(|(host, port)| Some(format!("{host}:{port}"))),
            3 => ("[a-zA-Z][a-zA-Z0-9-]{0,8}[a-zA-Z0-9](\\.[a-z0-9]{1,5}){1,2}", port())
                .prop_map(|(host, port)| Some(format!("{host}{port}"))),
            1 => (any::<[u8; 4]>(), port()).prop_map(|(ip, port)| {
                Some(format!("{}.{}.{}.{}{port}", ip[0], ip[1], ip[2], ip[3]))
            }),
            1 => (prop_oneof![Just("[::1]"), Just("[2001:db8::1]"), Just("[FE80::1]")], port())
                .prop_map(|(host, port)| Some(format!("{host}{port}"))),
        ]
    }

    /// A path component: `[a-z0-9]` runs joined by `.`, `_`, `__` or dashes. Without a registry
    /// the first component has no `.`, or Docker would take it for a host.
    const COMPONENT: &str = "[a-z0-9]{1,5}((\\.|_|__|-{1,3})[a-z0-9]{1,5}){0,2}";
    const DOTLESS_COMPONENT: &str = "[a-z0-9]{1,5}((_|__|-{1,3})[a-z0-9]{1,5}){0,2}";

    fn built_reference() -> impl Strategy<Value = Built> {
        valid_registry().prop_flat_map(|registry| {
            let first = if registry.is_some() {
                COMPONENT
            } else {
                DOTLESS_COMPONENT
            };
            let path =
                (first, proptest::collection::vec(COMPONENT, 0..3)).prop_map(|(first, rest)| {
                    std::iter::once(first)
                        .chain(rest)
                        .collect::<Vec<_>>()
                        .join("/")
                });
            // The longest tag (128) is drawn on purpose: a uniform length would rarely reach it.
            let tag = proptest::option::of(prop_oneof![
                4 => "[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}",
                1 => "[A-Za-z0-9_][A-Za-z0-9_.-]{127}",
            ]);
            let digest = proptest::option::of(prop_oneof![
                "[0-9a-f]{64}".prop_map(|hex| format!("sha256:{hex}")),
                "[0-9a-f]{128}".prop_map(|hex| format!("sha512:{hex}")),
            ]);
            (Just(registry), path, tag, digest)
                .prop_map(|(registry, path, tag, digest)| Built::new(registry, path, tag, digest))
        })
    }

    /// One part of a valid reference broken in one way.
    #[derive(Debug, Clone)]
    enum Break {
        /// An upper-case letter at the start of path component `n` (modulo their number).
        UppercaseComponent(usize),
        /// Path component `n` made invalid: a trailing dash, a leading underscore, or empty.
        BadComponent(usize, u8),
        /// The tag replaced by one outside the grammar.
        BadTag(String),
        /// The digest replaced by one that is not sha256/sha512 in lower-case hex.
        BadDigest(String),
        /// The registry replaced by a host whose port is 0 or above 65535.
        PortOutOfRange(String, u64),
        /// Whitespace inserted at byte `n` (modulo the length).
        Whitespace(usize, char),
        /// A lone name that OpenShift reads as a registry, maybe with a tag or port: `quay.io:5000`,
        /// `localhost:1`.
        RegistryOnly(String, Option<String>),
    }

    fn a_break() -> impl Strategy<Value = Break> {
        let bad_tag = prop_oneof![
            Just(String::new()),
            "[.-][A-Za-z0-9_.-]{0,20}",
            "[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}[!#$%&'()*+,;<=>?^`{|}~é][a-z]{0,3}",
            "[A-Za-z0-9_]{129,140}",
        ];
        let upper_case_hex = ("[0-9a-f]{63}", "[A-F]", any::<prop::sample::Index>()).prop_map(
            |(mut hex, upper, at)| {
                hex.insert_str(at.index(hex.len() + 1), &upper);
                format!("sha256:{hex}")
            },
        );
        let bad_digest = prop_oneof![
            Just(String::new()),
            "sha256:[0-9a-f]{1,63}",
            "sha256:[0-9a-f]{65,70}",
            upper_case_hex,
            "(md5|sha384|sha1):[0-9a-f]{64}",
            "[0-9a-f]{64}",
            "sha512:[0-9a-f]{64}",
        ];
        let port_out_of_range = prop_oneof![
            Just(0u64),
            Just(65536u64),
            65536u64..=999_999,
            65536u64..=u64::MAX
        ];
        prop_oneof![
            any::<usize>().prop_map(Break::UppercaseComponent),
            (any::<usize>(), 0u8..3).prop_map(|(n, how)| Break::BadComponent(n, how)),
            bad_tag.prop_map(Break::BadTag),
            bad_digest.prop_map(Break::BadDigest),
            (
                "[a-z]{1,8}\\.example|localhost|\\[::1\\]",
                port_out_of_range
            )
                .prop_map(|(host, port)| Break::PortOutOfRange(host, port)),
            (
                any::<usize>(),
                prop_oneof![Just(' '), Just('\t'), Just('\n')]
            )
                .prop_map(|(n, c)| Break::Whitespace(n, c)),
            (
                "[a-z0-9]{1,8}(\\.[a-z0-9]{1,8}){1,2}|localhost[a-z0-9]{0,5}",
                proptest::option::of("[A-Za-z0-9_][A-Za-z0-9_.-]{0,10}"),
            )
                .prop_map(|(registry, tag)| Break::RegistryOnly(registry, tag)),
        ]
    }

    /// The broken reference and the error the parser must give for it.
    fn broken(built: &Built, broken: &Break) -> (String, test_support::Rejection) {
        use test_support::Rejection as R;
        let registry = built.registry.as_deref();
        let components: Vec<&str> = built.path.split('/').collect();
        let tag = built.tag.as_deref();
        let replace_component = |n: usize, with: String| {
            let mut components: Vec<String> = components.iter().map(|c| (*c).to_owned()).collect();
            let at = n % components.len();
            components[at] = with;
            components.join("/")
        };
        match broken {
            Break::UppercaseComponent(n) => {
                let component = components[n % components.len()];
                let path = replace_component(*n, format!("Q{component}"));
                (
                    built.with(registry, &path, tag),
                    R::UppercaseRepository(shown(&path)),
                )
            }
            Break::BadComponent(n, how) => {
                let component = components[n % components.len()];
                let bad = match how {
                    0 => format!("{component}-"),
                    1 => format!("_{component}"),
                    _ => String::new(),
                };
                let path = replace_component(*n, bad);
                let input = built.with(registry, &path, tag);
                // An empty first component without a registry leaves a path starting with `/`,
                // and a lone empty component leaves no path at all.
                let rejection = if path.is_empty() {
                    if registry.is_some() {
                        R::MissingRepository
                    } else {
                        // `:tag` / `@digest` / `` alone.
                        match (tag, &built.digest) {
                            (None, None) => R::Empty,
                            _ => R::MissingRepository,
                        }
                    }
                } else {
                    R::InvalidRepository(shown(&path))
                };
                (input, rejection)
            }
            Break::BadTag(bad) => (
                built.with(registry, &built.path, Some(bad)),
                R::InvalidTag(shown(bad)),
            ),
            Break::BadDigest(bad) => (
                Built::assemble(registry, &built.path, tag, Some(bad)),
                R::InvalidDigest(shown(bad)),
            ),
            Break::PortOutOfRange(host, port) => {
                let registry = format!("{host}:{port}");
                (
                    built.with(Some(&registry), &built.path, tag),
                    R::PortOutOfRange(registry, port.to_string()),
                )
            }
            Break::Whitespace(n, c) => {
                let mut input = built.input.clone();
                input.insert(n % (input.len() + 1), *c);
                (input, R::ContainsWhitespace)
            }
            Break::RegistryOnly(registry, tag) => (
                Built::assemble(None, registry, tag.as_deref(), None),
                R::MissingRepository,
            ),
        }
    }

    /// Strings built from the tokens references are made of, so many of them are valid.
    fn reference_like() -> impl Strategy<Value = String> {
        let token = prop_oneof![
            8 => "[a-z0-9]{1,4}",
            1 => "[A-Z]",
            1 => "[0-9]{1,4}",
            2 => Just(".".to_owned()),
            4 => Just("/".to_owned()),
            2 => Just(":".to_owned()),
            1 => Just("_".to_owned()),
            1 => Just("__".to_owned()),
            1 => Just("-".to_owned()),
            1 => Just("localhost".to_owned()),
            1 => Just("docker.io/".to_owned()),
            1 => Just("[::1]".to_owned()),
        ];
        let name = proptest::collection::vec(token, 1..10).prop_map(|tokens| tokens.concat());
        let digest = proptest::option::of(prop_oneof![
            3 => "@sha256:[0-9a-f]{64}",
            1 => "@sha(256|512|384):[0-9a-fA-F]{64,128}",
        ]);
        (name, digest).prop_map(|(name, digest)| name + &digest.unwrap_or_default())
    }

    proptest! {
        #[test]
        fn parse_never_panics_on_any_string(input in ".*") {
            let _ = ImageReference::parse(&input);
        }

        #[test]
        fn a_reference_built_from_valid_parts_parses_into_those_parts(built in built_reference()) {
            let reference = ImageReference::parse(&built.input)
                .map_err(|error| TestCaseError::fail(format!("{}: {error}", built.input)))?;
            prop_assert_eq!(reference.as_str(), built.input.as_str());
            prop_assert_eq!(reference.registry_as_written(), built.registry.as_deref());
            prop_assert_eq!(reference.repository_as_written(), built.path.as_str());
            prop_assert_eq!(reference.canonical_registry(), built.expected_registry());
            prop_assert_eq!(reference.repository(), built.expected_repository());
            prop_assert_eq!(reference.tag(), built.tag.as_deref());
            prop_assert_eq!(reference.digest(), built.digest.as_deref());
            prop_assert!(reference.matches_source_prefix(&reference.canonical_name()));
        }

        #[test]
        fn a_reference_with_one_broken_part_is_rejected_naming_that_part(
            built in built_reference(),
            broken_part in a_break(),
        ) {
            let (input, expected) = broken(&built, &broken_part);
            let outcome = ImageReference::parse(&input).map_err(test_support::Rejection::from);
            prop_assert_eq!(outcome, Err(expected), "{:?}", input);
        }

        /// Our own checks exist only to name the bad part; they may reject more than oci-client only
        /// where that is deliberate, and accept more only for IPv6 literals.
        #[test]
        fn parse_agrees_with_oci_client_except_where_deliberately_stricter(
            input in reference_like()
        ) {
            let ours = ImageReference::parse(&input);
            match (Reference::from_str(&input), &ours) {
                (Ok(_), Err(error)) => prop_assert!(
                    matches!(
                        error,
                        ReferenceError::UppercaseRepository { .. }
                            | ReferenceError::InvalidDigest { .. }
                            | ReferenceError::NameTooLong { .. }
                            | ReferenceError::PortOutOfRange { .. }
                    ) || (matches!(error, ReferenceError::MissingRepository { .. })
                        && !input.contains('/')),
                    "{} accepted by oci-client, rejected with {:?}", input, error
                ),
                (Err(_), Ok(_)) => prop_assert!(input.starts_with('['), "{}", input),
                (Ok(oci), Ok(reference)) => {
                    if !input.starts_with('[') && reference.canonical_registry() == oci.registry() {
                        prop_assert_eq!(reference.repository(), oci.repository());
                    }
                    prop_assert_eq!(reference.digest(), oci.digest());
                }
                (Err(_), Err(_)) => {}
            }
        }

        #[test]
        fn with_digest_round_trips_to_the_same_registry_and_repository(
            built in built_reference(),
            hex in "[0-9a-f]{64}",
        ) {
            let input = built.input;
            let reference = ImageReference::parse(&input)
                .map_err(|error| TestCaseError::fail(format!("{input}: {error}")))?;
            let digest = format!("sha256:{hex}");
            let pinned = ImageReference::parse(&reference.with_digest(&digest))
                .map_err(|error| TestCaseError::fail(format!("{input}: {error}")))?;
            prop_assert_eq!(pinned.api_host(), reference.api_host());
            prop_assert_eq!(pinned.repository(), reference.repository());
            prop_assert_eq!(pinned.registry_as_written(), reference.registry_as_written());
            prop_assert_eq!(pinned.digest(), Some(digest.as_str()));
            prop_assert_eq!(pinned.tag(), None);
        }

        #[test]
        fn mirroring_onto_the_canonical_name_itself_names_the_same_image(
            built in built_reference(),
        ) {
            let input = built.input;
            let reference = ImageReference::parse(&input)
                .map_err(|error| TestCaseError::fail(format!("{input}: {error}")))?;
            let canonical = reference.canonical_name();
            let mirrored = reference
                .with_repository_prefix_replaced(&canonical, &canonical)
                .map_err(|error| TestCaseError::fail(format!("{input}: {error}")))?;
            prop_assert_eq!(mirrored.canonical_name(), canonical);
            prop_assert_eq!(mirrored.api_host(), reference.api_host());
            prop_assert_eq!(mirrored.tag(), reference.tag());
            prop_assert_eq!(mirrored.digest(), reference.digest());
        }
    }
}
