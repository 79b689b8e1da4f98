//! One distinct tag's import: a HEAD of the manifest through the pull plan, then — only for digests
//! that have no Image yet, one fetch per digest at a time — the manifest and config GETs and the
//! Image objects. Returns the digest the tag records; the stream reconcile turns it into a
//! TagEvent in each subscriber's spelling.

use std::time::Duration;

use kube::Api;
use kube::api::PostParams;
use kube::runtime::reflector::ObjectRef;
use thiserror::Error;
use tokio::time::Instant;

use super::Context;
use super::engine::{AnswerOutcome, Resolution, TagJob};
use super::image_object::{image_for_index, image_for_manifest};
use crate::api::Image;
use crate::domain::distinct_tag::Selection;
use crate::domain::history::ImportFailure;
use crate::domain::image_name::{ImageNameError, image_name_for_digest};
use crate::domain::mirror_plan::{ImportKind, SourceFence};
use crate::domain::platform::{Platform, choose_child};
use crate::domain::reference::ImageReference;
use crate::registry::manifest::{ManifestError, ParsedManifest, parse_image_config};
use crate::registry::{Access, ManifestHead, ManifestTarget, RegistryError};

/// Largest config blob read from a registry.
const MAX_CONFIG_BYTES: u64 = 8 * 1024 * 1024;

/// The shortest retry delay a registry's wait sets: a backoff about to end is not worth a
/// reconcile in a tight loop.
const RETRY_AFTER_MIN: Duration = Duration::from_secs(1);

/// The longest retry delay a registry's wait sets (the client's default cut of `Retry-After`).
/// A longer backoff is met again then, and refused with the time still left.
const RETRY_AFTER_MAX: Duration = Duration::from_secs(3600);

/// Why a tag could not be imported.
#[derive(Debug, Error)]
pub enum ImportError {
    /// The registry refused or failed a request.
    #[error("{source}")]
    Registry { source: RegistryError },
    /// The image config blob is not valid JSON of the expected shape.
    #[error("the config of {reference} is invalid: {source}")]
    InvalidConfig {
        reference: String,
        source: ManifestError,
    },
    /// A manifest list has no entries.
    #[error("the manifest list {reference} has no images")]
    EmptyManifestList { reference: String },
    /// The registry returned a digest that cannot name an Image.
    #[error("the registry returned an unusable digest for {reference}: {source}")]
    BadDigest {
        reference: String,
        source: ImageNameError,
    },
    /// Every source of the mirror plan failed; each is listed with its error, and a source left out
    /// by `NeverContactSource` is named as such, with the objects that fence it.
    #[error("{}", all_sources_failed(tried, fence.as_ref()))]
    AllSourcesFailed {
        /// Each source tried, with its error.
        tried: Vec<(String, RegistryError)>,
        /// Why the source repository itself was not tried, when `NeverContactSource` fenced it.
        fence: Option<SourceFence>,
    },
    /// The mirror plan has nothing to try: the source is fenced with `NeverContactSource` (by an
    /// object of either mirror kind) and no mirror of the import's kind can serve the reference.
    #[error("{}", source_blocked(reference, *kind, fence, unusable_mirrors))]
    SourceBlocked {
        /// The reference as the stream wrote it.
        reference: String,
        /// Whether the import was by tag or by digest, which decides the mirror kinds that apply.
        kind: ImportKind,
        /// The fenced source and the objects that fence it.
        fence: SourceFence,
        /// Mirrors that matched but cannot form a reference for this image, with why.
        unusable_mirrors: Vec<String>,
    },
    /// Creating an Image object failed.
    #[error("could not create Image {name}: {source}")]
    CreateImage { name: String, source: kube::Error },
}

impl ImportError {
    /// The PascalCase reason recorded on the tag's condition.
    pub fn reason(&self) -> &str {
        match self {
            ImportError::Registry { source } => source.reason(),
            ImportError::InvalidConfig { .. } | ImportError::EmptyManifestList { .. } => {
                "InvalidResponse"
            }
            ImportError::BadDigest { .. } => "InvalidResponse",
            ImportError::CreateImage { .. } => "InternalError",
            // The source's own answer says most about the image; mirrors are stand-ins.
            ImportError::AllSourcesFailed { tried, .. } => tried
                .last()
                .map(|(_, err)| err.reason())
                .unwrap_or("InternalError"),
            ImportError::SourceBlocked { .. } => "SourceBlocked",
        }
    }

    /// Whether trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            ImportError::Registry { source } => source.is_transient(),
            ImportError::CreateImage { .. } => true,
            ImportError::AllSourcesFailed { tried, .. } => {
                tried.iter().any(|(_, err)| err.is_transient())
            }
            _ => false,
        }
    }

    /// Whether no registry was asked at all: every source was refused by its host's backoff after
    /// an earlier failure, which the tag's condition already describes.
    pub fn contacted_nobody(&self) -> bool {
        let refused = |err: &RegistryError| {
            matches!(
                err.failure(),
                Some(crate::registry::RequestFailure::BackingOff { .. })
            )
        };
        match self {
            ImportError::Registry { source } => refused(source),
            ImportError::AllSourcesFailed { tried, .. } => {
                !tried.is_empty() && tried.iter().all(|(_, err)| refused(err))
            }
            _ => false,
        }
    }

    /// When to try again, when the registry said: at the end of the host's backoff (after its
    /// `Retry-After` or repeated failures), so a retry neither comes back early only to be refused
    /// nor waits longer than asked. Kept between `RETRY_AFTER_MIN` and `RETRY_AFTER_MAX`;
    /// `None` leaves the retry to the caller's own schedule.
    pub fn retry_after(&self) -> Option<Duration> {
        let wait = match self {
            ImportError::Registry { source } => source.retry_after(),
            // The first source that may answer again is worth asking then; a source that may be
            // asked at once leaves the timing to the caller.
            ImportError::AllSourcesFailed { tried, .. } => tried
                .iter()
                .filter(|(_, err)| err.is_transient())
                .map(|(_, err)| err.retry_after())
                .collect::<Option<Vec<_>>>()
                .and_then(|waits| waits.into_iter().min()),
            _ => None,
        };
        wait.map(|wait| wait.clamp(RETRY_AFTER_MIN, RETRY_AFTER_MAX))
    }
}

fn all_sources_failed(tried: &[(String, RegistryError)], fence: Option<&SourceFence>) -> String {
    let listed = tried
        .iter()
        .map(|(source, err)| format!("{source}: {err}"))
        .collect::<Vec<_>>()
        .join("; ");
    match fence {
        Some(fence) => {
            format!("no mirror answered ({listed}); the source is not contacted: {fence}")
        }
        None => format!("no source answered: {listed}"),
    }
}

/// The message of [`ImportError::SourceBlocked`]: which source is blocked, by which objects, and
/// why no mirror stands in for it.
fn source_blocked(
    reference: &str,
    kind: ImportKind,
    fence: &SourceFence,
    unusable_mirrors: &[String],
) -> String {
    if unusable_mirrors.is_empty() {
        let kinds = kind
            .mirror_kinds()
            .iter()
            .map(|kind| kind.as_str())
            .collect::<Vec<_>>()
            .join(" or ");
        format!(
            "{reference}: the source {fence}, and no {kinds} mirror applies to an import {kind}; \
             the source is not contacted"
        )
    } else {
        format!(
            "{reference}: the source {fence}, and none of its mirrors can serve this image ({}); \
             the source is not contacted",
            unusable_mirrors.join("; ")
        )
    }
}

impl From<RegistryError> for ImportError {
    fn from(source: RegistryError) -> Self {
        ImportError::Registry { source }
    }
}

/// The places of `job`'s plan as the registry client addresses them.
fn target(job: &TagJob, position: usize) -> (ManifestTarget, &Access) {
    let pull = &job.plan.sources[position].reference;
    let target = ManifestTarget {
        host: pull.api_host().to_owned(),
        repository: pull.repository().to_owned(),
        reference: pull.manifest_reference().to_owned(),
    };
    (target, &job.access[position])
}

/// What a distinct tag resolved to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The digest the tag records.
    pub digest: String,
    /// The mirror that served it, when it was not the source.
    pub served_by: Option<String>,
}

/// Resolves one distinct tag, trying the places of its pull plan in order: a HEAD of the manifest
/// (the first that answers wins), then — only for digests without an Image — the manifest and
/// config GETs and the Image objects, from the answering place or the ones after it.
pub async fn resolve(ctx: &Context, job: &TagJob) -> Result<Resolved, ImportError> {
    let reference = &job.reference;
    if job.plan.sources.is_empty()
        && let Some(fence) = &job.plan.fence
    {
        return Err(ImportError::SourceBlocked {
            reference: reference.to_string(),
            kind: super::mirrors::import_kind(reference),
            fence: fence.clone(),
            unusable_mirrors: job
                .plan
                .unusable_mirrors
                .iter()
                .map(|unusable| format!("{}: {}", unusable.mirror, unusable.error))
                .collect(),
        });
    }
    let mut tried: Vec<(String, RegistryError)> = Vec::new();
    let mut answered = None;
    for (position, pull) in job.plan.sources.iter().enumerate() {
        let (target, access) = target(job, position);
        match ctx.registry.head_manifest(&target, access).await {
            Ok(head) => {
                answered = Some((position, head));
                break;
            }
            Err(err) => {
                tracing::debug!(source = %pull.reference, error = %err, "pull source did not answer");
                tried.push((pull.reference.to_string(), err));
            }
        }
    }
    let Some((answered_at, head)) = answered else {
        return Err(if tried.len() == 1 && !job.plan.source_fenced() {
            ImportError::Registry {
                source: tried.remove(0).1,
            }
        } else {
            ImportError::AllSourcesFailed {
                tried,
                fence: job.plan.fence.clone(),
            }
        });
    };
    // The content behind the digest comes from the place that answered, else from those after it
    // (those before it did not answer): a mirror may hold a manifest list without all of its
    // children. The digest is verified whichever place serves it; the error reported is the
    // answering place's.
    let mut first_failure = None;
    for position in job.plan.content_sources(answered_at) {
        let pull = &job.plan.sources[position];
        let (target, access) = target(job, position);
        match fetch_content(ctx, job, &target, access, &head).await {
            Ok(digest) => {
                if !pull.is_source {
                    tracing::debug!(reference = %reference, mirror = %pull.reference, "imported through a mirror");
                }
                return Ok(Resolved {
                    digest,
                    served_by: (!pull.is_source).then(|| pull.reference.to_string()),
                });
            }
            // Writing the Image failed, not reading from the registry: no other place helps.
            Err(err @ ImportError::CreateImage { .. }) => return Err(err),
            Err(err) => {
                tracing::debug!(source = %pull.reference, error = %err, "pull source could not serve the content");
                first_failure.get_or_insert(err);
            }
        }
    }
    Err(first_failure.expect("the plan has the answering source"))
}

/// The engine's record of an import: the digest, or the failure with its retry.
pub fn resolution(result: Result<Resolved, ImportError>) -> Resolution {
    match result {
        Ok(resolved) => Resolution {
            outcome: AnswerOutcome::Image {
                digest: resolved.digest,
                served_by: resolved.served_by,
            },
            retry: None,
        },
        Err(err) => Resolution {
            retry: err.is_transient().then(|| err.retry_after()),
            outcome: AnswerOutcome::Failed {
                failure: ImportFailure {
                    reason: err.reason().to_owned(),
                    message: err.to_string(),
                },
                not_contacted: err.contacted_nobody(),
            },
        },
    }
}

/// Reads and records what `head` names from one place: the manifest (and config) of an image, or a
/// manifest list with the child `Legacy` mode picks, or with every child in `PreserveOriginal`
/// mode. Returns the digest the tag records.
async fn fetch_content(
    ctx: &Context,
    job: &TagJob,
    target: &ManifestTarget,
    access: &Access,
    head: &ManifestHead,
) -> Result<String, ImportError> {
    let reference = &job.reference;
    let is_index = head
        .media_type
        .as_deref()
        .is_some_and(crate::registry::manifest::is_index_media_type);
    match (is_index, &job.selection) {
        (true, Selection::PreserveOriginal) => {
            ensure_index_and_children(ctx, reference, target, access, &head.digest).await?;
            Ok(head.digest.clone())
        }
        (true, Selection::Legacy { os, arch }) => {
            legacy_child(
                ctx,
                reference,
                (os.as_deref(), arch.as_deref()),
                target,
                access,
                &head.digest,
            )
            .await
        }
        (false, _) => {
            ensure_image(ctx, reference, target, access, &head.digest).await?;
            Ok(head.digest.clone())
        }
    }
}

fn has_image(ctx: &Context, digest: &str) -> Result<bool, ImageNameError> {
    let name = image_name_for_digest(digest)?;
    Ok(ctx.images.get(&ObjectRef::new(&name)).is_some() || ctx.created_recently(&name))
}

fn bad_digest(reference: &ImageReference, source: ImageNameError) -> ImportError {
    ImportError::BadDigest {
        reference: reference.to_string(),
        source,
    }
}

fn at_digest(target: &ManifestTarget, digest: &str) -> ManifestTarget {
    ManifestTarget {
        reference: digest.to_owned(),
        ..target.clone()
    }
}

/// Creates `image` unless it exists: the first writer wins, later ones find it there. A created
/// Image is remembered until the Image cache has it, so no second import of the digest in between
/// creates it again.
async fn create_image(ctx: &Context, image: Image) -> Result<(), ImportError> {
    let name = image.metadata.name.clone().unwrap_or_default();
    match Api::<Image>::all(ctx.client.clone())
        .create(&PostParams::default(), &image)
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.code == 409 => {}
        Err(source) => return Err(ImportError::CreateImage { name, source }),
    }
    ctx.remember_created(name);
    Ok(())
}

/// Makes sure the single-platform image `digest` has an Image: GETs its manifest and config only
/// when it has none.
async fn ensure_image(
    ctx: &Context,
    reference: &ImageReference,
    target: &ManifestTarget,
    access: &Access,
    digest: &str,
) -> Result<(), ImportError> {
    if has_image(ctx, digest).map_err(|e| bad_digest(reference, e))? {
        return Ok(());
    }
    // One fetch per digest at a time: a second import of it waits and then finds the Image.
    let flight = ctx.content_flight(digest);
    let _guard = flight.lock().await;
    if has_image(ctx, digest).map_err(|e| bad_digest(reference, e))? {
        return Ok(());
    }
    let fetched = ctx
        .registry
        .get_manifest(&at_digest(target, digest), access)
        .await?;
    match &fetched.parsed {
        ParsedManifest::Image(manifest) => {
            let bytes = ctx
                .registry
                .get_blob(
                    &target.host,
                    &target.repository,
                    &manifest.config.digest,
                    access,
                    MAX_CONFIG_BYTES,
                )
                .await?;
            let config =
                parse_image_config(&bytes).map_err(|source| ImportError::InvalidConfig {
                    reference: reference.with_digest(digest),
                    source,
                })?;
            let image = image_for_manifest(
                digest,
                &reference.with_digest(digest),
                &fetched.media_type,
                manifest,
                &config,
            )
            .map_err(|e| bad_digest(reference, e))?;
            create_image(ctx, image).await
        }
        ParsedManifest::Index(index) => {
            create_index_image(ctx, reference, digest, &fetched.media_type, index).await
        }
    }
}

/// Creates the Image of a manifest list or OCI index (its children are recorded separately).
async fn create_index_image(
    ctx: &Context,
    reference: &ImageReference,
    digest: &str,
    media_type: &str,
    index: &crate::registry::manifest::ManifestIndex,
) -> Result<(), ImportError> {
    let image = image_for_index(digest, &reference.with_digest(digest), media_type, index)
        .map_err(|e| bad_digest(reference, e))?;
    create_image(ctx, image).await
}

/// `PreserveOriginal`: an Image for the index and one for every child; one failing child fails the
/// tag.
async fn ensure_index_and_children(
    ctx: &Context,
    reference: &ImageReference,
    target: &ManifestTarget,
    access: &Access,
    digest: &str,
) -> Result<(), ImportError> {
    if has_image(ctx, digest).map_err(|e| bad_digest(reference, e))? {
        return Ok(());
    }
    let flight = ctx.content_flight(digest);
    let _guard = flight.lock().await;
    if has_image(ctx, digest).map_err(|e| bad_digest(reference, e))? {
        return Ok(());
    }
    let fetched = ctx
        .registry
        .get_manifest(&at_digest(target, digest), access)
        .await?;
    let ParsedManifest::Index(index) = &fetched.parsed else {
        return ensure_image(ctx, reference, target, access, digest).await;
    };
    for child in &index.manifests {
        ensure_image(ctx, reference, target, access, &child.digest).await?;
    }
    create_index_image(ctx, reference, digest, &fetched.media_type, index).await
}

/// `Legacy`: the child of the list for the preferred platform (`prefer` is the tag's preferred os
/// and architecture), with its Image. The choice is remembered per list digest and platform, so
/// an unchanged list costs no GET.
async fn legacy_child(
    ctx: &Context,
    reference: &ImageReference,
    prefer: (Option<&str>, Option<&str>),
    target: &ManifestTarget,
    access: &Access,
    list_digest: &str,
) -> Result<String, ImportError> {
    let (prefer_os, prefer_arch) = prefer;
    let choice_key = (
        list_digest.to_owned(),
        format!(
            "{}|{}|{}",
            prefer_os.unwrap_or(""),
            prefer_arch.unwrap_or(""),
            ctx.config.default_platform
        ),
    );
    let remembered = ctx
        .list_children
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get_mut(&choice_key)
        .map(|(child, used)| {
            *used = Instant::now();
            child.clone()
        });
    let child = match remembered {
        Some(child) => child,
        None => {
            let fetched = ctx
                .registry
                .get_manifest(&at_digest(target, list_digest), access)
                .await?;
            let ParsedManifest::Index(index) = &fetched.parsed else {
                ensure_image(ctx, reference, target, access, list_digest).await?;
                return Ok(list_digest.to_owned());
            };
            let platforms: Vec<Platform> = index
                .manifests
                .iter()
                .map(|entry| match &entry.platform {
                    Some(p) => Platform {
                        os: p.os.clone(),
                        architecture: p.architecture.clone(),
                        variant: p.variant.clone(),
                    },
                    None => Platform {
                        os: String::new(),
                        architecture: String::new(),
                        variant: None,
                    },
                })
                .collect();
            let index_of = choose_child(
                &platforms,
                prefer_os,
                prefer_arch,
                &ctx.config.default_platform,
            )
            .ok_or_else(|| ImportError::EmptyManifestList {
                reference: reference.with_digest(list_digest),
            })?;
            let child = index.manifests[index_of].digest.clone();
            ctx.list_children
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(choice_key, (child.clone(), Instant::now()));
            child
        }
    };
    ensure_image(ctx, reference, target, access, &child).await?;
    Ok(child)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::mirror_plan::{MirrorKind, MirrorObjectRef};
    use crate::registry::RequestFailure;

    fn head(failure: RequestFailure) -> RegistryError {
        RegistryError::HeadManifest {
            registry: "registry-1.docker.io".into(),
            repository: "library/nginx".into(),
            reference: "1.25".into(),
            source: failure,
        }
    }

    fn backing_off(seconds: u64) -> RegistryError {
        head(RequestFailure::BackingOff {
            remaining: Duration::from_secs(seconds),
            reason: "TooManyRequests",
        })
    }

    fn answered(status: u16) -> RegistryError {
        head(RequestFailure::Status {
            status,
            message: None,
            retry_after_secs: None,
        })
    }

    fn connection_failed() -> RegistryError {
        head(RequestFailure::Connection {
            detail: "refused".into(),
        })
    }

    fn all_failed(tried: Vec<RegistryError>) -> ImportError {
        ImportError::AllSourcesFailed {
            tried: tried
                .into_iter()
                .enumerate()
                .map(|(i, err)| (format!("source-{i}"), err))
                .collect(),
            fence: None,
        }
    }

    fn fence() -> SourceFence {
        SourceFence {
            source: "quay.io/org".into(),
            by: vec![MirrorObjectRef::new(
                MirrorKind::ImageDigestMirrorSet,
                "disconnected",
            )],
        }
    }

    fn blocked(unusable_mirrors: Vec<String>) -> ImportError {
        ImportError::SourceBlocked {
            reference: "quay.io/org/app:v1".into(),
            kind: ImportKind::ByTag,
            fence: fence(),
            unusable_mirrors,
        }
    }

    #[test]
    fn a_blocked_source_says_which_object_blocks_it_and_is_not_retried() {
        let table = [
            (
                blocked(Vec::new()),
                "quay.io/org/app:v1: the source quay.io/org is blocked by mirrorSourcePolicy \
                 NeverContactSource in ImageDigestMirrorSet/disconnected, and no \
                 ImageTagMirrorSet mirror applies to an import by tag; the source is not contacted",
            ),
            (
                blocked(vec!["host.local: it leaves no repository".into()]),
                "quay.io/org/app:v1: the source quay.io/org is blocked by mirrorSourcePolicy \
                 NeverContactSource in ImageDigestMirrorSet/disconnected, and none of its mirrors \
                 can serve this image (host.local: it leaves no repository); the source is not \
                 contacted",
            ),
        ];
        for (error, message) in table {
            assert_eq!(error.reason(), "SourceBlocked");
            assert_eq!(error.to_string(), message);
            assert!(!error.is_transient());
            assert!(!error.contacted_nobody(), "the condition must be written");
        }
        let by_digest = ImportError::SourceBlocked {
            reference: "quay.io/org/app@sha256:0".into(),
            kind: ImportKind::ByDigest,
            fence: fence(),
            unusable_mirrors: Vec::new(),
        };
        assert!(
            by_digest.to_string().contains(
                "no ImageContentSourcePolicy or ImageDigestMirrorSet mirror applies to an \
                 import by digest"
            ),
            "{by_digest}"
        );
    }

    #[test]
    fn failed_mirrors_of_a_fenced_source_name_the_fence() {
        let error = ImportError::AllSourcesFailed {
            tried: vec![("mirror.local/org/app:v1".into(), answered(404))],
            fence: Some(fence()),
        };
        let message = error.to_string();
        assert!(message.starts_with("no mirror answered (mirror.local/org/app:v1: "));
        assert!(
            message.ends_with(
                "; the source is not contacted: quay.io/org is blocked by mirrorSourcePolicy \
                 NeverContactSource in ImageDigestMirrorSet/disconnected"
            ),
            "{message}"
        );
        assert_eq!(error.reason(), "NotFound");
    }

    #[test]
    fn the_retry_delay_is_the_registrys_wait_within_bounds() {
        let secs = Duration::from_secs;
        let table: Vec<(&str, ImportError, Option<Duration>)> = vec![
            ("backing off", backing_off(90).into(), Some(secs(90))),
            (
                "backing off past the maximum",
                backing_off(7200).into(),
                Some(RETRY_AFTER_MAX),
            ),
            (
                "backoff ending now",
                backing_off(0).into(),
                Some(RETRY_AFTER_MIN),
            ),
            (
                "token service backing off",
                head(RequestFailure::Token {
                    realm_host: "auth.docker.io".into(),
                    source: Box::new(RequestFailure::BackingOff {
                        remaining: secs(45),
                        reason: "TooManyRequests",
                    }),
                })
                .into(),
                Some(secs(45)),
            ),
            ("429 answer without Retry-After", answered(429).into(), None),
            (
                "429 answer with Retry-After",
                head(RequestFailure::Status {
                    status: 429,
                    message: None,
                    retry_after_secs: Some(120),
                })
                .into(),
                Some(secs(120)),
            ),
            ("connection failure", connection_failed().into(), None),
            ("not found", answered(404).into(), None),
            (
                "every source backing off: the earliest end",
                all_failed(vec![backing_off(120), backing_off(40)]),
                Some(secs(40)),
            ),
            (
                "a permanent failure beside a backoff: the backoff",
                all_failed(vec![answered(404), backing_off(40)]),
                Some(secs(40)),
            ),
            (
                "a source that may be asked at once: the caller's schedule",
                all_failed(vec![connection_failed(), backing_off(40)]),
                None,
            ),
            ("a blocked source", blocked(Vec::new()), None),
        ];
        for (case, error, wait) in table {
            assert_eq!(error.retry_after(), wait, "{case}");
        }
    }

    #[test]
    fn refusals_during_one_backoff_record_one_unchanging_failure() {
        let early = ImportError::from(backing_off(3599));
        let later = ImportError::from(backing_off(31));
        assert_eq!(
            (early.reason(), early.to_string()),
            (later.reason(), later.to_string())
        );
        // The 429 that started the backoff and the refusals it causes share the reason.
        assert_eq!(early.reason(), ImportError::from(answered(429)).reason());
    }

    #[test]
    fn only_refusals_by_every_source_count_as_contacting_nobody() {
        assert!(ImportError::from(backing_off(30)).contacted_nobody());
        assert!(!ImportError::from(answered(429)).contacted_nobody());
        let all_refused = ImportError::AllSourcesFailed {
            tried: vec![
                ("mirror.local/a".into(), backing_off(30)),
                ("quay.io/a".into(), backing_off(60)),
            ],
            fence: None,
        };
        assert!(all_refused.contacted_nobody());
        let one_answered = ImportError::AllSourcesFailed {
            tried: vec![
                ("mirror.local/a".into(), backing_off(30)),
                ("quay.io/a".into(), answered(503)),
            ],
            fence: None,
        };
        assert!(!one_answered.contacted_nobody());
    }
}
