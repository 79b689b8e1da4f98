//! One distinct tag's import: a HEAD of the manifest through the pull plan, then — only for digests
//! that have no Image yet, one fetch per digest at a time — the manifest and config GETs and the
//! Image objects. Returns the digest the tag records; the stream reconcile turns it into a
//! TagEvent in each subscriber's spelling. Imports keep to [`ImportLimits`], and a digest a limit
//! refused is remembered ([`Refusals`]) rather than downloaded again every interval.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use kube::Api;
use kube::api::PostParams;
use kube::runtime::reflector::ObjectRef;
use thiserror::Error;
use tokio::time::Instant;

use super::Context;
use super::engine::{AnswerOutcome, Resolution, TagJob};
use super::image_object::{ImageObjectError, image_for_index, image_for_manifest};
use crate::api::Image;
use crate::domain::distinct_tag::Selection;
use crate::domain::history::ImportFailure;
use crate::domain::image_name::{ImageNameError, image_name_for_digest};
use crate::domain::mirror_plan::{ImportKind, SourceFence};
use crate::domain::platform::{Platform, choose_child};
use crate::domain::reference::ImageReference;
use crate::registry::manifest::{ImageConfig, ManifestError, ParsedManifest, parse_image_config};
use crate::registry::{Access, FetchedManifest, ManifestHead, ManifestTarget, RegistryError};

/// Largest config blob read from a registry.
const MAX_CONFIG_BYTES: u64 = 8 * 1024 * 1024;

/// The shortest retry delay a registry's wait sets: a backoff about to end is not worth a
/// reconcile in a tight loop.
const RETRY_AFTER_MIN: Duration = Duration::from_secs(1);

/// The longest retry delay a registry's wait sets (the client's default cut of `Retry-After`).
/// A longer backoff is met again then, and refused with the time still left.
const RETRY_AFTER_MAX: Duration = Duration::from_secs(3600);

/// How long a refusal is remembered for a digest. The content behind a digest never changes and
/// the limits are flags of this process, so only the API server's own size limit can change the
/// outcome: a day notices a raised limit at the cost of one download a day, not one per interval.
const REFUSAL_MEMORY: Duration = Duration::from_secs(24 * 3600);

/// Refused digests remembered at most; the oldest is forgotten first.
const MAX_REMEMBERED_REFUSALS: usize = 1024;

/// The longest API server message quoted in an `ImageTooLarge` refusal.
const MAX_API_DETAIL_CHARS: usize = 200;

/// The bounds one import keeps to, so that one tenant's tag can neither fill the cluster with
/// Images nor spend the registry budget every tenant shares (`--max-manifest-list-children`,
/// `--max-image-layers`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImportLimits {
    /// Entries of a manifest list an Image may record, and so children a `PreserveOriginal`
    /// import creates Images for.
    pub max_manifest_list_children: usize,
    /// Layers of one image manifest an Image may record.
    pub max_image_layers: usize,
}

impl ImportLimits {
    /// Default of `--max-manifest-list-children`: the busiest public multi-arch images list
    /// about eight platforms, twice that with BuildKit's attestation manifests; 64 is four times
    /// that, and caps one tag at 65 Images and about 130 GETs.
    pub const DEFAULT_MAX_MANIFEST_LIST_CHILDREN: usize = 64;
    /// Default of `--max-image-layers`: twice the 128 layers Docker's overlay2 driver can mount, so
    /// every image a node can run passes, and an Image stays near 40 KB, far below etcd's 1.5 MiB.
    pub const DEFAULT_MAX_IMAGE_LAYERS: usize = 256;
}

impl Default for ImportLimits {
    fn default() -> Self {
        Self {
            max_manifest_list_children: Self::DEFAULT_MAX_MANIFEST_LIST_CHILDREN,
            max_image_layers: Self::DEFAULT_MAX_IMAGE_LAYERS,
        }
    }
}

/// Which limit refused an import: the condition reason, and the `reason` label of
/// `imagestream_operator_import_refusals_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RefusalReason {
    /// A manifest list with more entries than `--max-manifest-list-children`.
    ManifestListTooLarge,
    /// An image manifest with more layers than `--max-image-layers`.
    TooManyLayers,
    /// The API server refused to store the Image because of its size.
    ImageTooLarge,
}

impl RefusalReason {
    /// The PascalCase reason.
    pub fn as_str(self) -> &'static str {
        match self {
            RefusalReason::ManifestListTooLarge => "ManifestListTooLarge",
            RefusalReason::TooManyLayers => "TooManyLayers",
            RefusalReason::ImageTooLarge => "ImageTooLarge",
        }
    }
}

/// An import refused by a limit that protects what tenants share. The message is made once and
/// remembered with the digest, so that the answer from memory is the same condition (and writes
/// nothing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Which limit.
    pub reason: RefusalReason,
    /// What exceeded it, for the condition message.
    pub message: String,
}

impl Refusal {
    fn manifest_list_too_large(list: &str, entries: usize, limit: usize) -> Self {
        Self {
            reason: RefusalReason::ManifestListTooLarge,
            message: format!(
                "the manifest list {list} has {entries} images, more than the {limit} an Image \
                 may record (--max-manifest-list-children); no Image was created"
            ),
        }
    }

    fn too_many_layers(image: &str, layers: usize, limit: usize) -> Self {
        Self {
            reason: RefusalReason::TooManyLayers,
            message: format!(
                "the image {image} has {layers} layers, more than the {limit} an Image may \
                 record (--max-image-layers); no Image was created"
            ),
        }
    }

    fn image_too_large(image: &str, detail: &str) -> Self {
        Self {
            reason: RefusalReason::ImageTooLarge,
            message: format!(
                "the Image of {image} is too large for the API server to store: {}",
                crate::domain::text::shorten(detail.trim(), MAX_API_DETAIL_CHARS)
            ),
        }
    }

    /// This refusal of a child, as the refusal of the `PreserveOriginal` import of `list`.
    fn in_list(&self, list: &str) -> Self {
        Self {
            reason: self.reason,
            message: format!("the manifest list {list} is not imported: {}", self.message),
        }
    }
}

/// What a remembered refusal covers: the Image of one digest, or a `PreserveOriginal` import of a
/// list digest with its children (refused also when a child is).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RefusalScope {
    /// Creating the Image of the digest.
    Image,
    /// Creating the Images of the list digest and of all its children.
    ListWithChildren,
}

/// Digests whose import a limit refused, with when: a refused digest is answered from here
/// instead of being downloaded again at every ask. Bounded by `MAX_REMEMBERED_REFUSALS`, each
/// entry kept for `REFUSAL_MEMORY`; a new digest (the tag moved) is read as usual.
#[derive(Debug, Default)]
pub struct Refusals {
    entries: Mutex<HashMap<(String, RefusalScope), (Refusal, Instant)>>,
}

impl Refusals {
    /// The refusal remembered for `digest` in `scope`, unless it has expired.
    pub fn get(&self, digest: &str, scope: RefusalScope) -> Option<Refusal> {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let key = (digest.to_owned(), scope);
        match entries.get(&key) {
            Some((refusal, at)) if at.elapsed() < REFUSAL_MEMORY => Some(refusal.clone()),
            Some(_) => {
                entries.remove(&key);
                None
            }
            None => None,
        }
    }

    /// Remembers that `digest` was refused in `scope`, forgetting the oldest entry when full.
    pub fn remember(&self, digest: &str, scope: RefusalScope, refusal: Refusal) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let key = (digest.to_owned(), scope);
        if !entries.contains_key(&key) && entries.len() >= MAX_REMEMBERED_REFUSALS {
            entries.retain(|_, (_, at)| at.elapsed() < REFUSAL_MEMORY);
            let oldest = entries
                .iter()
                .min_by_key(|(_, (_, at))| *at)
                .map(|(key, _)| key.clone());
            if entries.len() >= MAX_REMEMBERED_REFUSALS
                && let Some(oldest) = oldest
            {
                entries.remove(&oldest);
            }
        }
        entries.insert(key, (refusal, Instant::now()));
    }

    /// How many refusals are remembered.
    pub fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether no refusal is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

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
    /// The manifest has no valid size (a negative size, or sizes whose sum overflows `i64`).
    #[error("the manifest of {reference} is invalid: {source}")]
    InvalidManifest {
        reference: String,
        source: ManifestError,
    },
    /// A limit that protects what tenants share refused the import (see [`ImportLimits`]).
    #[error("{}", refusal.message)]
    Refused {
        /// Which limit, and what exceeded it.
        refusal: Refusal,
        /// The refusal was answered from [`Refusals`], without reading the content again.
        remembered: bool,
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
            ImportError::BadDigest { .. } | ImportError::InvalidManifest { .. } => {
                "InvalidResponse"
            }
            ImportError::Refused { refusal, .. } => refusal.reason.as_str(),
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
            // Writing the Image failed, or a limit refused the content, which is the same at
            // every place (it has the same digest): no other place helps.
            Err(err @ (ImportError::CreateImage { .. } | ImportError::Refused { .. })) => {
                count_refusal(ctx, &err);
                return Err(err);
            }
            Err(err) => {
                tracing::debug!(source = %pull.reference, error = %err, "pull source could not serve the content");
                first_failure.get_or_insert(err);
            }
        }
    }
    Err(first_failure.expect("the plan has the answering source"))
}

/// Counts a refusal decided by this import (one answered from memory was counted when decided).
fn count_refusal(ctx: &Context, err: &ImportError) {
    if let ImportError::Refused {
        refusal,
        remembered: false,
    } = err
    {
        tracing::info!(reason = refusal.reason.as_str(), message = %refusal.message, "import refused by a limit");
        ctx.metrics.count_import_refusal(refusal.reason.as_str());
    }
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

/// The refusal remembered for `digest` in one of `scopes`, as the error of this import.
fn remembered_refusal(ctx: &Context, digest: &str, scopes: &[RefusalScope]) -> Option<ImportError> {
    scopes
        .iter()
        .find_map(|scope| ctx.refusals.get(digest, *scope))
        .map(|refusal| ImportError::Refused {
            refusal,
            remembered: true,
        })
}

/// Remembers `err` for `digest` in `scope` when it is a refusal, and passes it on.
fn remember_refusal(
    ctx: &Context,
    digest: &str,
    scope: RefusalScope,
    err: ImportError,
) -> ImportError {
    if let ImportError::Refused { refusal, .. } = &err {
        ctx.refusals.remember(digest, scope, refusal.clone());
    }
    err
}

/// The limit `fetched` exceeds, if any: an image manifest's layers, or a list's entries (an
/// Image records every one of either).
fn check_limits(
    limits: &ImportLimits,
    shown: &str,
    fetched: &FetchedManifest,
) -> Result<(), Refusal> {
    match &fetched.parsed {
        ParsedManifest::Image(manifest) if manifest.layers.len() > limits.max_image_layers => Err(
            Refusal::too_many_layers(shown, manifest.layers.len(), limits.max_image_layers),
        ),
        ParsedManifest::Index(index)
            if index.manifests.len() > limits.max_manifest_list_children =>
        {
            Err(Refusal::manifest_list_too_large(
                shown,
                index.manifests.len(),
                limits.max_manifest_list_children,
            ))
        }
        _ => Ok(()),
    }
}

/// Whether the API server refused to store an object because of its size: its own request body
/// limit (413, "request entity too large"), etcd's request limit ("etcdserver: request is too
/// large"), or the gRPC message limit between the two ("trying to send message larger than max").
/// Retrying such a write can never succeed.
fn is_too_large_to_store(status: &kube::core::Status) -> bool {
    let message = status.message.to_ascii_lowercase();
    status.code == 413
        || message.contains("request is too large")
        || message.contains("request entity too large")
        || message.contains("message larger than max")
}

/// Creates `image` unless it exists: the first writer wins, later ones find it there. A created
/// Image is remembered until the Image cache has it, so no second import of the digest in between
/// creates it again. An Image too large to store is refused (`shown` names its image).
async fn create_image(ctx: &Context, image: Image, shown: &str) -> Result<(), ImportError> {
    let name = image.metadata.name.clone().unwrap_or_default();
    match Api::<Image>::all(ctx.client.clone())
        .create(&PostParams::default(), &image)
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.code == 409 => {}
        Err(kube::Error::Api(status)) if is_too_large_to_store(&status) => {
            let detail = match status.message.trim() {
                "" => format!("HTTP {}", status.code),
                message => message.to_owned(),
            };
            return Err(ImportError::Refused {
                refusal: Refusal::image_too_large(shown, &detail),
                remembered: false,
            });
        }
        Err(source) => return Err(ImportError::CreateImage { name, source }),
    }
    ctx.remember_created(name);
    Ok(())
}

/// Config blobs read by one import, by digest: children of a list often share one.
type ConfigMemo = HashMap<String, ImageConfig>;

/// The Image of the manifest `fetched` (already checked against the limits): for an image, with
/// its config, read from the registry unless `configs` has it.
async fn image_of(
    ctx: &Context,
    reference: &ImageReference,
    target: &ManifestTarget,
    access: &Access,
    fetched: &FetchedManifest,
    configs: &mut ConfigMemo,
) -> Result<Image, ImportError> {
    let digest = &fetched.digest;
    let shown = reference.with_digest(digest);
    let built = match &fetched.parsed {
        ParsedManifest::Image(manifest) => {
            let config_digest = &manifest.config.digest;
            let config = match configs.get(config_digest) {
                Some(config) => config.clone(),
                None => {
                    let bytes = ctx
                        .registry
                        .get_blob(
                            &target.host,
                            &target.repository,
                            config_digest,
                            access,
                            MAX_CONFIG_BYTES,
                        )
                        .await?;
                    let config = parse_image_config(&bytes).map_err(|source| {
                        ImportError::InvalidConfig {
                            reference: shown.clone(),
                            source,
                        }
                    })?;
                    configs.insert(config_digest.clone(), config.clone());
                    config
                }
            };
            image_for_manifest(digest, &shown, &fetched.media_type, manifest, &config)
        }
        ParsedManifest::Index(index) => {
            image_for_index(digest, &shown, &fetched.media_type, index).map_err(Into::into)
        }
    };
    built.map_err(|err| match err {
        ImageObjectError::Name(source) => bad_digest(reference, source),
        ImageObjectError::Manifest(source) => ImportError::InvalidManifest {
            reference: shown,
            source,
        },
    })
}

/// Records the manifest `fetched`, whose digest has no Image (the caller holds its content
/// flight): the limits, the config, the Image. A refusal is remembered for the digest.
async fn record_fetched(
    ctx: &Context,
    reference: &ImageReference,
    target: &ManifestTarget,
    access: &Access,
    fetched: &FetchedManifest,
) -> Result<(), ImportError> {
    let digest = &fetched.digest;
    let shown = reference.with_digest(digest);
    let recorded = async {
        check_limits(&ctx.config.import_limits, &shown, fetched).map_err(|refusal| {
            ImportError::Refused {
                refusal,
                remembered: false,
            }
        })?;
        let image = image_of(
            ctx,
            reference,
            target,
            access,
            fetched,
            &mut ConfigMemo::new(),
        )
        .await?;
        create_image(ctx, image, &shown).await
    };
    recorded
        .await
        .map_err(|err| remember_refusal(ctx, digest, RefusalScope::Image, err))
}

/// The manifest of `digest` to record, read while this import holds the digest's content flight
/// (returned with it, for the recording): `None` when the digest has an Image, before or after
/// waiting for another import of it; a refusal remembered in one of `scopes` is the error.
async fn claim_unrecorded(
    ctx: &Context,
    reference: &ImageReference,
    target: &ManifestTarget,
    access: &Access,
    digest: &str,
    scopes: &[RefusalScope],
) -> Result<Option<(FetchedManifest, tokio::sync::OwnedMutexGuard<()>)>, ImportError> {
    // Checked before taking the flight, and again once held: one fetch per digest at a time, so
    // a second import of it waits and then finds the Image (or the refusal).
    let mut flight = None;
    loop {
        if has_image(ctx, digest).map_err(|e| bad_digest(reference, e))? {
            return Ok(None);
        }
        if let Some(refused) = remembered_refusal(ctx, digest, scopes) {
            return Err(refused);
        }
        match flight {
            None => flight = Some(ctx.content_flight(digest).lock_owned().await),
            Some(flight) => {
                let fetched = ctx
                    .registry
                    .get_manifest(&at_digest(target, digest), access)
                    .await?;
                return Ok(Some((fetched, flight)));
            }
        }
    }
}

/// Makes sure the image `digest` (a single-platform image, or a list recorded without its
/// children) has an Image: GETs its manifest and config only when it has none and no limit
/// refused it before.
async fn ensure_image(
    ctx: &Context,
    reference: &ImageReference,
    target: &ManifestTarget,
    access: &Access,
    digest: &str,
) -> Result<(), ImportError> {
    let scopes = [RefusalScope::Image];
    let Some((fetched, _flight)) =
        claim_unrecorded(ctx, reference, target, access, digest, &scopes).await?
    else {
        return Ok(());
    };
    record_fetched(ctx, reference, target, access, &fetched).await
}

/// `PreserveOriginal`: an Image for the index and one for every child. Every child manifest is
/// read and checked against the limits before any Image is created, so a list a limit refuses
/// leaves no Images behind; each config blob is read once however many children share it. One
/// failing child fails the tag, and a refusal is remembered for the list as well as the child.
async fn ensure_index_and_children(
    ctx: &Context,
    reference: &ImageReference,
    target: &ManifestTarget,
    access: &Access,
    digest: &str,
) -> Result<(), ImportError> {
    let scopes = [RefusalScope::ListWithChildren, RefusalScope::Image];
    let Some((fetched, _flight)) =
        claim_unrecorded(ctx, reference, target, access, digest, &scopes).await?
    else {
        return Ok(());
    };
    record_list(ctx, reference, target, access, &fetched)
        .await
        .map_err(|err| remember_refusal(ctx, digest, RefusalScope::ListWithChildren, err))
}

/// Records the list `fetched` and its children: the list's entries against the limit; then every
/// child without an Image, its manifest read and checked; then the configs and the Images,
/// children first. A child's refusal is remembered for the child and becomes the list's.
///
/// Child manifests are read without holding their content flights (holding several at once
/// could deadlock with another list that shares children); an import of one child at the same
/// moment may read it twice, and the second create finds the Image there.
async fn record_list(
    ctx: &Context,
    reference: &ImageReference,
    target: &ManifestTarget,
    access: &Access,
    fetched: &FetchedManifest,
) -> Result<(), ImportError> {
    let limits = &ctx.config.import_limits;
    let list = reference.with_digest(&fetched.digest);
    let refused = |refusal: Refusal| ImportError::Refused {
        refusal,
        remembered: false,
    };
    let ParsedManifest::Index(index) = &fetched.parsed else {
        // Not a list after all: recorded as the image it is, under the flight already held.
        return record_fetched(ctx, reference, target, access, fetched).await;
    };
    check_limits(limits, &list, fetched).map_err(refused)?;
    let mut children = Vec::new();
    let mut seen = HashSet::new();
    for entry in &index.manifests {
        let child = entry.digest.as_str();
        if !seen.insert(child) || has_image(ctx, child).map_err(|e| bad_digest(reference, e))? {
            continue;
        }
        if let Some(refusal) = ctx.refusals.get(child, RefusalScope::Image) {
            return Err(refused(refusal.in_list(&list)));
        }
        let manifest = ctx
            .registry
            .get_manifest(&at_digest(target, child), access)
            .await?;
        if let Err(refusal) = check_limits(limits, &reference.with_digest(child), &manifest) {
            ctx.refusals
                .remember(child, RefusalScope::Image, refusal.clone());
            return Err(refused(refusal.in_list(&list)));
        }
        children.push(manifest);
    }
    let mut configs = ConfigMemo::new();
    for child in &children {
        let image = image_of(ctx, reference, target, access, child, &mut configs).await?;
        match create_image(ctx, image, &reference.with_digest(&child.digest)).await {
            Ok(()) => {}
            Err(ImportError::Refused { refusal, .. }) => {
                ctx.refusals
                    .remember(&child.digest, RefusalScope::Image, refusal.clone());
                return Err(refused(refusal.in_list(&list)));
            }
            Err(other) => return Err(other),
        }
    }
    let image = image_of(ctx, reference, target, access, fetched, &mut configs).await?;
    create_image(ctx, image, &list).await
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

    fn status(code: u16, message: &str) -> kube::core::Status {
        kube::core::Status {
            code,
            message: message.into(),
            ..kube::core::Status::default()
        }
    }

    #[test]
    fn only_size_refusals_of_the_api_server_count_as_too_large_to_store() {
        let table = [
            // kube-apiserver's own body limit (3 MiB).
            (413, "Request entity too large: limit is 3145728", true),
            (413, "", true),
            // etcd's --max-request-bytes (1.5 MiB by default), passed on as a 500.
            (500, "etcdserver: request is too large", true),
            // The apiserver's gRPC client limit between the two.
            (
                500,
                "rpc error: code = ResourceExhausted desc = trying to send message larger than \
                 max (2098312 vs. 2097152)",
                true,
            ),
            (
                500,
                "Internal error occurred: etcdserver: leader changed",
                false,
            ),
            (
                409,
                "images.image.openshift.io \"sha256.x\" already exists",
                false,
            ),
            (422, "Image.image.openshift.io is invalid", false),
            (
                503,
                "the server is currently unable to handle the request",
                false,
            ),
        ];
        for (code, message, too_large) in table {
            assert_eq!(
                is_too_large_to_store(&status(code, message)),
                too_large,
                "{code} {message}"
            );
        }
    }

    fn digest(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    fn fetched(parsed: ParsedManifest) -> FetchedManifest {
        FetchedManifest {
            digest: digest('f'),
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            bytes: Vec::new(),
            parsed,
        }
    }

    fn image_with_layers(layers: usize) -> FetchedManifest {
        let descriptor = |c: char| crate::registry::manifest::Descriptor {
            digest: digest(c),
            size: 1,
            media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
        };
        fetched(ParsedManifest::Image(
            crate::registry::manifest::ImageManifest {
                config: descriptor('c'),
                layers: (0..layers).map(|_| descriptor('a')).collect(),
            },
        ))
    }

    fn list_with_entries(entries: usize) -> FetchedManifest {
        let entry = crate::registry::manifest::IndexEntry {
            digest: digest('e'),
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            size: 500,
            platform: None,
        };
        fetched(ParsedManifest::Index(
            crate::registry::manifest::ManifestIndex {
                manifests: vec![entry; entries],
            },
        ))
    }

    #[test]
    fn a_manifest_over_a_limit_is_refused_with_the_limit_named_and_one_at_it_passes() {
        let limits = ImportLimits {
            max_manifest_list_children: 10,
            max_image_layers: 5,
        };
        let shown = "registry.local/app@sha256:ff";
        type Case = (
            &'static str,
            FetchedManifest,
            Option<(RefusalReason, String)>,
        );
        let table: [Case; 4] = [
            ("an image at the layer limit", image_with_layers(5), None),
            (
                "an image over the layer limit (a layer listed twice counts twice)",
                image_with_layers(6),
                Some((
                    RefusalReason::TooManyLayers,
                    "the image registry.local/app@sha256:ff has 6 layers, more than the 5 an \
                     Image may record (--max-image-layers); no Image was created"
                        .into(),
                )),
            ),
            ("a list at the entry limit", list_with_entries(10), None),
            (
                "a list over the entry limit",
                list_with_entries(100),
                Some((
                    RefusalReason::ManifestListTooLarge,
                    "the manifest list registry.local/app@sha256:ff has 100 images, more than \
                     the 10 an Image may record (--max-manifest-list-children); no Image was \
                     created"
                        .into(),
                )),
            ),
        ];
        for (case, manifest, expected) in table {
            let refused = check_limits(&limits, shown, &manifest)
                .err()
                .map(|refusal| (refusal.reason, refusal.message));
            assert_eq!(refused, expected, "{case}");
        }
    }

    #[test]
    fn refusals_are_permanent_with_their_own_reasons_and_a_childs_names_its_list() {
        let child = Refusal::too_many_layers("r.local/app@sha256:cc", 300, 256);
        let in_list = child.in_list("r.local/app@sha256:11");
        assert_eq!(
            in_list.message,
            "the manifest list r.local/app@sha256:11 is not imported: the image \
             r.local/app@sha256:cc has 300 layers, more than the 256 an Image may record \
             (--max-image-layers); no Image was created"
        );
        let too_large = Refusal::image_too_large(
            "r.local/app@sha256:cc",
            &format!("etcdserver: request is too large{}", " ".repeat(500)),
        );
        assert_eq!(
            too_large.message,
            "the Image of r.local/app@sha256:cc is too large for the API server to store: \
             etcdserver: request is too large"
        );
        for (refusal, reason) in [
            (in_list, "TooManyLayers"),
            (too_large, "ImageTooLarge"),
            (
                Refusal::manifest_list_too_large("r.local/app@sha256:11", 65, 64),
                "ManifestListTooLarge",
            ),
        ] {
            assert!(
                crate::metrics::IMPORT_REFUSAL_REASONS.contains(&reason),
                "{reason} has no metric series"
            );
            let error = ImportError::Refused {
                refusal: refusal.clone(),
                remembered: false,
            };
            assert_eq!(error.reason(), reason);
            assert_eq!(error.to_string(), refusal.message);
            assert!(!error.is_transient(), "{reason}");
            assert_eq!(error.retry_after(), None, "{reason}");
            assert!(
                !error.contacted_nobody(),
                "{reason}: the condition must be written"
            );
        }
    }

    #[test]
    fn a_manifest_whose_sizes_overflow_is_a_permanent_invalid_response() {
        let error = ImportError::InvalidManifest {
            reference: "r.local/app@sha256:cc".into(),
            source: ManifestError::SizeOverflow,
        };
        assert_eq!(error.reason(), "InvalidResponse");
        assert!(!error.is_transient());
        assert_eq!(
            error.to_string(),
            "the manifest of r.local/app@sha256:cc is invalid: malformed manifest: the sizes of \
             its config and layers add up to more than 9223372036854775807 bytes"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_refusal_is_remembered_per_digest_and_scope_for_a_day() {
        let refusals = Refusals::default();
        let refusal = Refusal::too_many_layers("r.local/app@sha256:aa", 300, 256);
        refusals.remember(&digest('a'), RefusalScope::Image, refusal.clone());
        assert_eq!(
            refusals.get(&digest('a'), RefusalScope::Image),
            Some(refusal)
        );
        assert_eq!(
            refusals.get(&digest('a'), RefusalScope::ListWithChildren),
            None
        );
        assert_eq!(refusals.get(&digest('b'), RefusalScope::Image), None);
        tokio::time::advance(REFUSAL_MEMORY - Duration::from_secs(1)).await;
        assert!(refusals.get(&digest('a'), RefusalScope::Image).is_some());
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(refusals.get(&digest('a'), RefusalScope::Image), None);
        assert!(refusals.is_empty(), "an expired refusal is dropped");
    }

    #[tokio::test(start_paused = true)]
    async fn remembered_refusals_are_bounded_and_the_oldest_goes_first() {
        let refusals = Refusals::default();
        let refusal = Refusal::image_too_large("r.local/app@sha256:aa", "too large");
        for n in 0..MAX_REMEMBERED_REFUSALS + 1 {
            refusals.remember(
                &format!("sha256:{n:064x}"),
                RefusalScope::Image,
                refusal.clone(),
            );
            tokio::time::advance(Duration::from_millis(1)).await;
        }
        assert_eq!(refusals.len(), MAX_REMEMBERED_REFUSALS);
        assert_eq!(
            refusals.get(&format!("sha256:{:064x}", 0), RefusalScope::Image),
            None
        );
        assert!(
            refusals
                .get(
                    &format!("sha256:{:064x}", MAX_REMEMBERED_REFUSALS),
                    RefusalScope::Image
                )
                .is_some()
        );
    }
}
