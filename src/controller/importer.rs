//! One tag's import: a HEAD of the manifest (shared between streams that track the same tag with the
//! same credentials), then — only for digests that have no Image yet — the manifest and config GETs
//! and the Image objects. Returns the TagEvent to record, naming the source repository in the
//! user's spelling.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::Api;
use kube::api::PostParams;
use kube::runtime::reflector::ObjectRef;
use thiserror::Error;
use tokio::time::Instant;

use super::Context;
use super::context::HeadKey;
use super::image_object::{image_for_index, image_for_manifest};
use super::mirrors::import_kind;
use crate::api::Image;
use crate::api::image_stream::{IMPORT_MODE_PRESERVE_ORIGINAL, TagEvent, TagReference};
use crate::domain::image_name::{ImageNameError, image_name_for_digest};
use crate::domain::keyring::Keyring;
use crate::domain::platform::{
    PREFER_ARCH_ANNOTATION, PREFER_OS_ANNOTATION, Platform, choose_child,
};
use crate::domain::reference::ImageReference;
use crate::domain::schedule::{ImportCause, shared_answer_is_fresh};
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
    /// by `NeverContactSource` is named as such.
    #[error("{}", all_sources_failed(tried, *source_fenced))]
    AllSourcesFailed {
        /// Each source tried, with its error.
        tried: Vec<(String, RegistryError)>,
        /// Whether the source repository itself was not tried because of `NeverContactSource`.
        source_fenced: bool,
    },
    /// The mirror plan has no source to try: the source is fenced with `NeverContactSource` and no
    /// mirror is usable.
    #[error(
        "{reference}: the source may not be contacted (NeverContactSource) and no mirror is usable"
    )]
    NoUsableSource { reference: String },
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
            ImportError::NoUsableSource { .. } => "NoUsableSource",
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

fn all_sources_failed(tried: &[(String, RegistryError)], source_fenced: bool) -> String {
    let listed = tried
        .iter()
        .map(|(source, err)| format!("{source}: {err}"))
        .collect::<Vec<_>>()
        .join("; ");
    if source_fenced {
        format!("no mirror answered ({listed}); the source is not contacted (NeverContactSource)")
    } else {
        format!("no source answered: {listed}")
    }
}

impl From<RegistryError> for ImportError {
    fn from(source: RegistryError) -> Self {
        ImportError::Registry { source }
    }
}

/// One tag to import.
pub struct TagImport<'a> {
    /// The stream's namespace: only its pull secrets are used.
    pub namespace: &'a str,
    /// The tag's spec.
    pub tag: &'a TagReference,
    /// The parsed `from.name`.
    pub reference: &'a ImageReference,
    /// Why it is imported now.
    pub cause: ImportCause,
    /// The stream's generation, recorded on the event.
    pub generation: i64,
    /// The time recorded as `created` on a new event.
    pub created: Time,
    /// When this check is due: its schedule slot for a scheduled check, else now. A shared registry
    /// answer is reused when it was asked for less than one import interval before this.
    pub asked_at: Instant,
}

/// The result of a successful import.
pub struct Imported {
    /// The event to record.
    pub event: TagEvent,
    /// The mirror that served the import, when it was not the source.
    pub served_by: Option<String>,
}

/// Imports one tag, trying the sources of its mirror plan in order: the first that answers wins,
/// and the recorded reference still names the source repository.
pub async fn import_tag(
    ctx: &Context,
    keyring: &Keyring,
    job: &TagImport<'_>,
) -> Result<Imported, ImportError> {
    let reference = job.reference;
    let plan = ctx
        .mirrors
        .current()
        .plan(reference, import_kind(reference));
    if plan.sources.is_empty() {
        return Err(ImportError::NoUsableSource {
            reference: reference.to_string(),
        });
    }
    let source_of = |pull: &crate::domain::mirror_plan::PullSource| {
        let access = Access {
            insecure: job.tag.is_insecure(),
            credentials: keyring.lookup(&pull.reference.canonical_name()),
        };
        let target = ManifestTarget {
            host: pull.reference.api_host().to_owned(),
            repository: pull.reference.repository().to_owned(),
            reference: pull.reference.manifest_reference().to_owned(),
        };
        (target, access)
    };
    let mut tried: Vec<(String, RegistryError)> = Vec::new();
    let mut answered = None;
    for (position, pull) in plan.sources.iter().enumerate() {
        let (target, access) = source_of(pull);
        match head(ctx, &target, &access, job.cause, job.asked_at).await {
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
        return Err(if tried.len() == 1 && !plan.source_fenced {
            ImportError::Registry {
                source: tried.remove(0).1,
            }
        } else {
            ImportError::AllSourcesFailed {
                tried,
                source_fenced: plan.source_fenced,
            }
        });
    };
    // The content behind the digest comes from the source that answered, else from the sources
    // after it in the plan (those before it did not answer): a mirror may hold a manifest list
    // without all of its children. The digest is verified whichever source serves it. The error
    // reported is the answering source's.
    let mut first_failure = None;
    for pull in &plan.sources[answered_at..] {
        let (target, access) = source_of(pull);
        match fetch_content(ctx, job, &target, &access, &head).await {
            Ok(image) => {
                if !pull.is_source {
                    tracing::debug!(reference = %reference, mirror = %pull.reference, "imported through a mirror");
                }
                return Ok(Imported {
                    event: TagEvent {
                        created: job.created.clone(),
                        docker_image_reference: reference.with_digest(&image),
                        image,
                        generation: job.generation,
                        platforms: Vec::new(),
                    },
                    served_by: (!pull.is_source).then(|| pull.reference.to_string()),
                });
            }
            // Writing the Image failed, not reading from the registry: no other source helps.
            Err(err @ ImportError::CreateImage { .. }) => return Err(err),
            Err(err) => {
                tracing::debug!(source = %pull.reference, error = %err, "pull source could not serve the content");
                first_failure.get_or_insert(err);
            }
        }
    }
    Err(first_failure.expect("the plan has the answering source"))
}

/// Reads and records what `head` names from one source: the manifest (and config) of an image, or a
/// manifest list with the child `Legacy` mode picks, or with every child in `PreserveOriginal`
/// mode. Returns the digest the tag records.
async fn fetch_content(
    ctx: &Context,
    job: &TagImport<'_>,
    target: &ManifestTarget,
    access: &Access,
    head: &ManifestHead,
) -> Result<String, ImportError> {
    let reference = job.reference;
    let is_index = head
        .media_type
        .as_deref()
        .is_some_and(crate::registry::manifest::is_index_media_type);
    let preserve = job.tag.import_mode() == IMPORT_MODE_PRESERVE_ORIGINAL;
    if is_index {
        if preserve {
            ensure_index_and_children(ctx, reference, target, access, &head.digest).await?;
            Ok(head.digest.clone())
        } else {
            legacy_child(ctx, job, target, access, &head.digest).await
        }
    } else {
        ensure_image(ctx, reference, target, access, &head.digest).await?;
        Ok(head.digest.clone())
    }
}

/// The HEAD of the tag's manifest. Scheduled checks reuse an answer asked for less than one import
/// interval before them for the same key, so streams tracking one tag cost one HEAD per interval; everything
/// else asks afresh. Concurrent askers of one key wait for the first.
async fn head(
    ctx: &Context,
    target: &ManifestTarget,
    access: &Access,
    cause: ImportCause,
    asked_at: Instant,
) -> Result<ManifestHead, RegistryError> {
    let key = HeadKey {
        host: target.host.clone(),
        repository: target.repository.clone(),
        reference: target.reference.clone(),
        insecure: access.insecure,
        credentials: access.credentials.iter().map(|c| c.identity()).collect(),
    };
    let slot = ctx.head_slot(key);
    let mut cached = slot.lock().await;
    if cause.may_use_recent_answer()
        && let Some((at, head)) = cached.as_ref()
        && shared_answer_is_fresh(
            at.into_std(),
            asked_at.into_std(),
            ctx.config.import_interval,
        )
    {
        return Ok(head.clone());
    }
    let head = ctx.registry.head_manifest(target, access).await?;
    *cached = Some((asked_at, head.clone()));
    Ok(head)
}

fn has_image(ctx: &Context, digest: &str) -> Result<bool, ImageNameError> {
    let name = image_name_for_digest(digest)?;
    Ok(ctx.images.get(&ObjectRef::new(&name)).is_some())
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

/// Creates `image` unless it exists: the first writer wins, later ones find it there.
async fn create_image(ctx: &Context, image: Image) -> Result<(), ImportError> {
    let name = image.metadata.name.clone().unwrap_or_default();
    match Api::<Image>::all(ctx.client.clone())
        .create(&PostParams::default(), &image)
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
        Err(source) => Err(ImportError::CreateImage { name, source }),
    }
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

/// `Legacy`: the child of the list for the preferred platform, with its Image. The choice is
/// remembered per list digest and platform, so an unchanged list costs no GET.
async fn legacy_child(
    ctx: &Context,
    job: &TagImport<'_>,
    target: &ManifestTarget,
    access: &Access,
    list_digest: &str,
) -> Result<String, ImportError> {
    let reference = job.reference;
    let annotations = &job.tag.annotations;
    let prefer_os = annotations.get(PREFER_OS_ANNOTATION).map(String::as_str);
    let prefer_arch = annotations.get(PREFER_ARCH_ANNOTATION).map(String::as_str);
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
            source_fenced: false,
        }
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
            (
                "no usable source",
                ImportError::NoUsableSource {
                    reference: "r".into(),
                },
                None,
            ),
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
            source_fenced: false,
        };
        assert!(all_refused.contacted_nobody());
        let one_answered = ImportError::AllSourcesFailed {
            tried: vec![
                ("mirror.local/a".into(), backing_off(30)),
                ("quay.io/a".into(), answered(503)),
            ],
            source_fenced: false,
        };
        assert!(!one_answered.contacted_nobody());
    }
}
