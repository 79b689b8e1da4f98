//! Registry push notifications, parsed and authenticated without any I/O: the receiver at
//! `POST /notifications/<format>` hands the body and headers here and gets back the pushed tags, each
//! with a validated registry host, repository and tag, ready to move a distinct tag to "import now".
//!
//! One submodule per payload format, each naming the vendor documentation its shape comes from;
//! `validate` holds the host, repository and tag rules they share; `auth` checks the shared secret.
//!
//! Rules common to every format:
//! - A body over [`MAX_BODY`] is refused before it is read as JSON.
//! - Only the first [`MAX_EVENTS`] events of a payload are read; the rest are dropped unread. Polling
//!   stays the safety net for whatever they named.
//! - An event that is not a push of a tag (a pull, a delete, a push by digest only, an event type
//!   the operator has no use for) is counted in [`Parsed::ignored`], never an error, so a registry
//!   that sends every event it has is still answered with success.
//! - A push whose registry host, repository or tag is not valid rejects the whole payload with
//!   [`ParseError::Invalid`]: a sender that names `evil.com/x` as a host is misconfigured or
//!   hostile, and a partial answer would hide that.
//! - Pushes are deduplicated by registry, repository and tag; when duplicates disagree on the
//!   digest, the digest hint is dropped.

use std::collections::HashMap;
use std::fmt;

use serde::de::DeserializeOwned;
use thiserror::Error;

mod acr;
pub mod auth;
mod distribution;
mod dockerhub;
mod ecr;
mod gar;
mod generic;
mod github;
mod harbor;
mod quay;
mod validate;

/// The largest body a notification may have: 1 MiB.
pub const MAX_BODY: usize = 1 << 20;

/// How many events of one payload are read; later events are dropped unread.
pub const MAX_EVENTS: usize = 1000;

/// Payload text quoted in a [`ParseError::Malformed`] message is cut to this many characters.
const MALFORMED_SHOWN_CHARS: usize = 80;

/// The sources, one per receiver path `POST /notifications/<format>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// The CNCF distribution (Docker registry) notification envelope.
    Distribution,
    /// Harbor webhooks, in the Default or the CloudEvents payload format.
    Harbor,
    /// Docker Hub repository webhooks.
    DockerHub,
    /// Quay "Repository Push" notifications sent to a webhook.
    Quay,
    /// GitHub `package` and `registry_package` webhook events for container packages (GHCR).
    Github,
    /// GitLab's container registry, which sends the distribution envelope.
    Gitlab,
    /// Azure Container Registry webhooks.
    Acr,
    /// Google Artifact Registry notifications from the `gcr` Pub/Sub topic, via a push subscription.
    Gar,
    /// Amazon ECR "ECR Image Action" events from EventBridge, via an API destination.
    Ecr,
    /// The operator's own small form, for anything that can send a templated JSON body.
    Generic,
}

impl Format {
    /// Every format, in the order of the receiver paths' documentation.
    pub const ALL: [Format; 10] = [
        Format::Distribution,
        Format::Harbor,
        Format::DockerHub,
        Format::Quay,
        Format::Github,
        Format::Gitlab,
        Format::Acr,
        Format::Gar,
        Format::Ecr,
        Format::Generic,
    ];

    /// The format a receiver path segment names (`distribution`, `dockerhub`, …), if any.
    pub fn from_path(segment: &str) -> Option<Format> {
        Format::ALL
            .into_iter()
            .find(|format| format.as_str() == segment)
    }

    /// The format's path segment, which is also its key in the notification Secret and its metric
    /// label.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Distribution => "distribution",
            Format::Harbor => "harbor",
            Format::DockerHub => "dockerhub",
            Format::Quay => "quay",
            Format::Github => "github",
            Format::Gitlab => "gitlab",
            Format::Acr => "acr",
            Format::Gar => "gar",
            Format::Ecr => "ecr",
            Format::Generic => "generic",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One pushed tag, as the payload names it, every field validated.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Push {
    /// `host[:port]` in lower case, as image references name it: `docker.io` for Docker Hub
    /// (also when the payload says `index.docker.io` or `registry-1.docker.io`), `ghcr.io`,
    /// `127.0.0.1:5000`, `[::1]:5000`.
    pub registry: String,
    /// The repository path as the registry API knows it: `library/nginx` for Docker Hub's `nginx`.
    pub repository: String,
    /// The pushed tag.
    pub tag: String,
    /// The manifest digest the payload gives, if it is a well-formed sha256 or sha512 digest. A hint
    /// only: the import resolves the tag itself.
    pub digest: Option<String>,
}

/// Why an event of an accepted payload was not a push of a tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Ignored {
    /// A pull (the distribution registry reports one for every HEAD the poller sends).
    Pull,
    /// A deletion of a tag, manifest or repository.
    Delete,
    /// Any other event: a blob mount, a scan result, a build, a failed push, a test ping.
    OtherAction,
    /// A push that names no tag: a push by digest, a layer upload.
    Untagged,
}

impl Ignored {
    /// The snake_case word used as a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Ignored::Pull => "pull",
            Ignored::Delete => "delete",
            Ignored::OtherAction => "other_action",
            Ignored::Untagged => "untagged",
        }
    }
}

/// What a payload held: the pushed tags (deduplicated) and why each other event was skipped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parsed {
    /// The pushed tags, in payload order, each once.
    pub pushes: Vec<Push>,
    /// One entry per event that was not a push of a tag.
    pub ignored: Vec<Ignored>,
}

/// Why a payload was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ParseError {
    /// The body is larger than [`MAX_BODY`].
    #[error("notification body is larger than {MAX_BODY} bytes")]
    TooLarge,
    /// The body is not the JSON shape of its format. The message quotes at most about 80
    /// characters of the payload.
    #[error("notification payload is malformed: {0}")]
    Malformed(String),
    /// A push names a registry host, repository or tag that is not valid: a host with a path,
    /// userinfo or scheme in it, an upper-case repository, a tag with a `/`.
    #[error("notification payload names an invalid image: {0}")]
    Invalid(String),
}

impl ParseError {
    /// The PascalCase reason used for metric labels and log fields.
    pub fn reason(&self) -> &'static str {
        match self {
            ParseError::TooLarge => "TooLarge",
            ParseError::Malformed(_) => "Malformed",
            ParseError::Invalid(_) => "Invalid",
        }
    }
}

/// The pushed tags a notification body of `format` names.
pub fn parse(format: Format, body: &[u8]) -> Result<Parsed, ParseError> {
    if body.len() > MAX_BODY {
        return Err(ParseError::TooLarge);
    }
    match format {
        Format::Distribution | Format::Gitlab => distribution::parse(body),
        Format::Harbor => harbor::parse(body),
        Format::DockerHub => dockerhub::parse(body),
        Format::Quay => quay::parse(body),
        Format::Github => github::parse(body),
        Format::Acr => acr::parse(body),
        Format::Gar => gar::parse(body),
        Format::Ecr => ecr::parse(body),
        Format::Generic => generic::parse(body),
    }
}

/// What one event of a payload turned out to be, before deduplication.
#[derive(Debug)]
enum Event {
    Push(Push),
    Ignored(Ignored),
}

/// The first [`MAX_EVENTS`] events gathered into a [`Parsed`], pushes deduplicated; the first
/// invalid event fails the whole payload.
fn collect(
    events: impl IntoIterator<Item = Result<Event, ParseError>>,
) -> Result<Parsed, ParseError> {
    let mut parsed = Parsed::default();
    let mut index_of: HashMap<(String, String, String), usize> = HashMap::new();
    for event in events.into_iter().take(MAX_EVENTS) {
        match event? {
            Event::Ignored(why) => parsed.ignored.push(why),
            Event::Push(push) => {
                let key = (
                    push.registry.clone(),
                    push.repository.clone(),
                    push.tag.clone(),
                );
                match index_of
                    .get(&key)
                    .and_then(|&index| parsed.pushes.get_mut(index))
                {
                    Some(kept) => merge_digest(kept, push.digest),
                    None => {
                        index_of.insert(key, parsed.pushes.len());
                        parsed.pushes.push(push);
                    }
                }
            }
        }
    }
    Ok(parsed)
}

/// Keeps the digest hint of a repeated push only when every mention agrees on it.
fn merge_digest(kept: &mut Push, digest: Option<String>) {
    if kept.digest != digest {
        kept.digest = None;
    }
}

/// The body read as `T`, or [`ParseError::Malformed`] with a short reason.
fn from_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ParseError> {
    serde_json::from_slice(body).map_err(|error| malformed(&error.to_string()))
}

/// A [`ParseError::Malformed`] whose message is cut to a length that cannot echo the payload.
fn malformed(reason: &str) -> ParseError {
    ParseError::Malformed(super::text::shorten(reason, MALFORMED_SHOWN_CHARS))
}

#[cfg(test)]
mod tests;
