//! The ImageStream controller: fetch (the stream, pull secrets, other streams from the cache) →
//! plan (which tags to import and why: `domain::schedule`, `domain::tag_source`) → apply (imports via
//! [`super::importer`]) → status (`domain::stream_status`, written only when it differs, with
//! server-side apply on the status subresource) → Events and the next wake-up.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Patch, PatchParams};
use kube::core::DeserializeGuard;
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::{Api, Resource, ResourceExt};
use thiserror::Error;
use tokio::time::Instant;

use super::access::{lookup_stream, service_account_may_get_image_streams};
use super::context::object_key;
use super::importer::{self, ImportError, TagImport};
use super::{Context, FIELD_MANAGER, IMPORT_REQUESTED_ANNOTATION};
use crate::api::ImageStream;
use crate::api::image_stream::TagEvent;
use crate::domain::history::ImportFailure;
use crate::domain::reference::ImageReference;
use crate::domain::schedule::{ImportCause, ImportInputs, import_cause, schedule_phase};
use crate::domain::stream_status::{
    StatusSettings, StreamIdentity, TagChange, TagOutcome, next_status, status_differs,
};
use crate::domain::tag_source::{TagSource, copy_source_event, stream_image_event, tag_source};
use crate::metrics::ImportResult;

/// Transient failures of a reconcile; the stream is retried with backoff.
#[derive(Debug, Error)]
pub enum ReconcileError {
    /// Writing the stream's status failed.
    #[error("could not write the status of image stream {stream}: {source}")]
    WriteStatus { stream: String, source: kube::Error },
    /// Asking the API server whether a cross-namespace copy is allowed failed.
    #[error("could not check access to image streams in namespace {namespace}: {source}")]
    AccessReview {
        namespace: String,
        source: kube::Error,
    },
}

impl ReconcileError {
    /// The PascalCase word for Events and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            ReconcileError::WriteStatus { .. } => "StatusWriteFailed",
            ReconcileError::AccessReview { .. } => "AccessReviewFailed",
        }
    }
}

/// The shortest and longest wait before a transiently failed tag is tried again.
const RETRY_BASE: Duration = Duration::from_secs(5);
const RETRY_MAX: Duration = Duration::from_secs(300);

/// Backoff after `attempts` consecutive transient failures: 5s, 10s, 20s, … up to 5 minutes.
pub fn retry_delay(attempts: u32) -> Duration {
    RETRY_BASE
        .saturating_mul(1u32 << attempts.min(10))
        .min(RETRY_MAX)
}

/// The current time as the API stores it (whole seconds), so that a written and re-read event
/// compares equal.
fn now_time() -> Time {
    let now = k8s_openapi::jiff::Timestamp::now();
    Time(k8s_openapi::jiff::Timestamp::from_second(now.as_second()).unwrap_or(now))
}

/// Reconciles one ImageStream.
pub async fn reconcile(
    guard: Arc<DeserializeGuard<ImageStream>>,
    ctx: Arc<Context>,
) -> Result<Action, ReconcileError> {
    let stream = match &guard.0 {
        Ok(stream) => stream,
        Err(invalid) => {
            tracing::warn!(error = %invalid, "skipping an ImageStream that does not match the schema");
            return Ok(Action::await_change());
        }
    };
    if stream.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let namespace = stream.namespace().unwrap_or_default();
    let name = stream.name_any();
    let key = object_key(stream);
    let generation = stream.metadata.generation.unwrap_or(0);
    let now = Instant::now();
    let interval = ctx.config.import_interval;

    // Fetch what the plan needs from memory.
    let request = stream
        .annotations()
        .get(IMPORT_REQUESTED_ANNOTATION)
        .cloned();
    let uid = stream.uid().unwrap_or_else(|| key.clone());
    let (scheduled_at, requested, retry_due, mirror_pending) = ctx.with_memory(&key, |memory| {
        let next = *memory
            .next_scheduled_check
            .get_or_insert_with(|| now + schedule_phase(&uid, interval));
        let retry_due: HashSet<String> = memory
            .retries
            .iter()
            .filter(|(_, (_, at))| now >= *at)
            .map(|(tag, _)| tag.clone())
            .collect();
        let served_before_restart = stream
            .status
            .as_ref()
            .and_then(|s| s.served_import_request.as_ref());
        let requested = request.is_some()
            && memory.served_request != request
            && served_before_restart != request.as_ref();
        (next, requested, retry_due, memory.mirror_pending.clone())
    });
    let schedule_due = now >= scheduled_at;

    // Plan and apply, tag by tag.
    let created = now_time();
    let mut outcomes: Vec<(String, TagOutcome)> = Vec::new();
    let mut jobs = Vec::new();
    let status = stream.status.as_ref();
    for spec in &stream.spec.tags {
        let tag_status = status.and_then(|s| s.tag(&spec.name));
        let source = match tag_source(spec, &namespace, &name) {
            Ok(source) => source,
            Err(failure) => {
                outcomes.push((spec.name.clone(), TagOutcome::Failure(failure)));
                continue;
            }
        };
        // Tags that are not imported are refreshed on first sight, a spec change or a request.
        let refresh = tag_status.is_none_or(|t| t.items.is_empty() && t.conditions.is_empty())
            || crate::domain::history::observed_generation(tag_status)
                .is_none_or(|seen| generation > seen)
            || requested;
        match source {
            TagSource::DockerImage { name: from } => {
                let reference = match ImageReference::parse(&from) {
                    Ok(reference) => reference,
                    Err(err) => {
                        let failure = ImportFailure {
                            reason: err.reason().to_owned(),
                            message: format!("tag {:?}: {err}", spec.name),
                        };
                        outcomes.push((spec.name.clone(), TagOutcome::Failure(failure)));
                        continue;
                    }
                };
                if !ctx
                    .config
                    .allowed_registries
                    .allows(reference.canonical_registry())
                {
                    let failure = ImportFailure {
                        reason: "RegistryNotAllowed".into(),
                        message: format!(
                            "tag {:?}: registry {} is not in the operator's allowed registries ({})",
                            spec.name,
                            reference.canonical_registry(),
                            ctx.config.allowed_registries.patterns().join(", ")
                        ),
                    };
                    outcomes.push((spec.name.clone(), TagOutcome::Failure(failure)));
                    continue;
                }
                if spec.is_reference() {
                    outcomes.push((
                        spec.name.clone(),
                        TagOutcome::Event(TagEvent {
                            created: created.clone(),
                            docker_image_reference: from,
                            image: String::new(),
                            generation,
                            platforms: Vec::new(),
                        }),
                    ));
                    continue;
                }
                let cause = import_cause(&ImportInputs {
                    spec,
                    status: tag_status,
                    stream_generation: generation,
                    digest_pinned: reference.is_digest_pinned(),
                    requested,
                    retry_due: retry_due.contains(&spec.name),
                    schedule_due,
                    mirrors_changed: mirror_pending.contains(&spec.name),
                });
                if let Some(cause) = cause {
                    jobs.push((spec, reference, cause));
                }
            }
            TagSource::SameStreamTag { .. } => {}
            TagSource::OtherStreamTag {
                namespace: source_ns,
                stream: source_stream,
                tag: source_tag,
            } if refresh => {
                let outcome = match may_read_streams(&ctx, &namespace, &source_ns).await? {
                    false => Err(cross_namespace_refused(&namespace, &source_ns)),
                    true => copy_source_event(
                        &|ns, n| lookup_stream(&ctx.streams, ns, n),
                        (&namespace, &name, &spec.name),
                        (&source_ns, &source_stream, &source_tag),
                    ),
                };
                outcomes.push((spec.name.clone(), as_outcome(outcome, generation)));
            }
            TagSource::StreamImage {
                namespace: source_ns,
                stream: source_stream,
                digest,
            } if refresh => {
                let outcome = match may_read_streams(&ctx, &namespace, &source_ns).await? {
                    false => Err(cross_namespace_refused(&namespace, &source_ns)),
                    true => match lookup_stream(&ctx.streams, &source_ns, &source_stream) {
                        Some(source) => stream_image_event(&source, &digest),
                        None => Err(ImportFailure {
                            reason: "NotFound".into(),
                            message: format!(
                                "image stream {source_ns}/{source_stream} does not exist"
                            ),
                        }),
                    },
                };
                outcomes.push((spec.name.clone(), as_outcome(outcome, generation)));
            }
            TagSource::OtherStreamTag { .. } | TagSource::StreamImage { .. } => {}
        }
    }

    let mut transient: Vec<(String, Option<Duration>)> = Vec::new();
    let mut succeeded: Vec<String> = Vec::new();
    let mut served_by: std::collections::HashMap<String, String> = std::collections::HashMap::new();
    if !jobs.is_empty() {
        let keyring = ctx.keyring(&namespace);
        for (spec, reference, cause) in jobs {
            let import = TagImport {
                namespace: &namespace,
                tag: spec,
                reference: &reference,
                cause,
                generation,
                created: created.clone(),
                // A scheduled check is dated at its slot, so answers shared between streams age
                // by the schedule, not by how late each reconcile ran.
                asked_at: if cause == ImportCause::Scheduled {
                    scheduled_at
                } else {
                    now
                },
            };
            match importer::import_tag(&ctx, &keyring, &import).await {
                Ok(imported) => {
                    let before = status
                        .and_then(|s| s.tag(&spec.name))
                        .and_then(|t| t.items.first());
                    ctx.metrics.count_import(
                        if before.is_some_and(|e| e.image == imported.event.image) {
                            ImportResult::Unchanged
                        } else {
                            ImportResult::Imported
                        },
                    );
                    if let Some(mirror) = imported.served_by {
                        served_by.insert(spec.name.clone(), mirror);
                    }
                    succeeded.push(spec.name.clone());
                    outcomes.push((spec.name.clone(), TagOutcome::Event(imported.event)));
                }
                Err(err) => {
                    ctx.metrics.count_import(ImportResult::Failed);
                    if err.is_transient() {
                        transient.push((spec.name.clone(), err.retry_after()));
                    } else {
                        succeeded.push(spec.name.clone());
                    }
                    tracing::info!(stream = %key, tag = %spec.name, cause = ?cause, error = %err, "import failed");
                    let failure = failure_of(&err);
                    let outcome = if err.contacted_nobody() {
                        TagOutcome::NotContacted(failure)
                    } else {
                        TagOutcome::Failure(failure)
                    };
                    outcomes.push((spec.name.clone(), outcome));
                }
            }
        }
    }

    // Status: written only when it differs.
    let settings = StatusSettings {
        max_history: ctx.config.max_tag_history,
        docker_image_repository: ctx
            .config
            .internal_registry_host
            .as_ref()
            .map(|host| format!("{host}/{namespace}/{name}")),
        public_docker_image_repository: ctx
            .config
            .public_registry_host
            .as_ref()
            .map(|host| format!("{host}/{namespace}/{name}")),
    };
    let identity = StreamIdentity {
        namespace: &namespace,
        name: &name,
        generation,
    };
    let (mut next, changes) = next_status(
        status,
        &stream.spec.tags,
        &outcomes,
        identity,
        &settings,
        &created,
    );
    if requested {
        next.served_import_request = request.clone();
    }
    if status_differs(status, &next) {
        let api = Api::<ImageStream>::namespaced(ctx.client.clone(), &namespace);
        let patch = serde_json::json!({
            "apiVersion": "image.openshift.io/v1",
            "kind": "ImageStream",
            "status": next,
        });
        api.patch_status(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await
        .map_err(|source| ReconcileError::WriteStatus {
            stream: key.clone(),
            source,
        })?;
    }
    publish_changes(&ctx, stream, &changes, &served_by).await;

    // Remember what was served and when to wake up next.
    let wake = ctx.with_memory(&key, |memory| {
        if schedule_due {
            let mut next = memory.next_scheduled_check.unwrap_or(now);
            while next <= now {
                next += interval.max(Duration::from_secs(1));
            }
            memory.next_scheduled_check = Some(next);
        }
        if requested {
            memory.served_request = request.clone();
        }
        for tag in &succeeded {
            memory.retries.remove(tag);
        }
        // Served whatever the outcome: a failure is reported, and retried like any other.
        memory
            .mirror_pending
            .retain(|tag| !mirror_pending.contains(tag));
        memory
            .retries
            .retain(|tag, _| stream.spec.tags.iter().any(|t| &t.name == tag));
        for (tag, retry_after) in &transient {
            let attempts = memory.retries.get(tag).map(|(a, _)| *a + 1).unwrap_or(0);
            let delay = retry_after.unwrap_or_else(|| retry_delay(attempts));
            memory.retries.insert(tag.clone(), (attempts, now + delay));
        }
        let mut wake: Option<Instant> = memory.retries.values().map(|(_, at)| *at).min();
        if stream.spec.tags.iter().any(|t| t.is_scheduled()) {
            wake = wake.into_iter().chain(memory.next_scheduled_check).min();
        }
        wake
    });
    ctx.reset_failures(&key);
    Ok(match wake {
        Some(at) => Action::requeue(
            at.saturating_duration_since(Instant::now())
                .max(Duration::from_millis(100)),
        ),
        None => Action::await_change(),
    })
}

fn as_outcome(result: Result<TagEvent, ImportFailure>, generation: i64) -> TagOutcome {
    match result {
        Ok(mut event) => {
            event.generation = generation;
            TagOutcome::Event(event)
        }
        Err(failure) => TagOutcome::Failure(failure),
    }
}

fn failure_of(err: &ImportError) -> ImportFailure {
    ImportFailure {
        reason: err.reason().to_owned(),
        message: err.to_string(),
    }
}

fn cross_namespace_refused(namespace: &str, source_namespace: &str) -> ImportFailure {
    ImportFailure {
        reason: "Forbidden".into(),
        message: format!(
            "service accounts of namespace {namespace} may not get imagestreams in namespace {source_namespace}"
        ),
    }
}

/// Whether the service accounts of `namespace` may `get imagestreams` in `source_namespace`; always
/// true within one namespace. This is the check OpenShift makes for the user who tags across
/// namespaces; the operator has no user, so it asks on behalf of the namespace's service accounts.
async fn may_read_streams(
    ctx: &Context,
    namespace: &str,
    source_namespace: &str,
) -> Result<bool, ReconcileError> {
    if namespace == source_namespace {
        return Ok(true);
    }
    service_account_may_get_image_streams(&ctx.client, namespace, "default", source_namespace, None)
        .await
        .map_err(|source| ReconcileError::AccessReview {
            namespace: source_namespace.to_owned(),
            source,
        })
}

async fn publish_changes(
    ctx: &Context,
    stream: &ImageStream,
    changes: &[TagChange],
    served_by: &std::collections::HashMap<String, String>,
) {
    let reference = stream.object_ref(&());
    for change in changes {
        let event = match change {
            TagChange::Moved { tag, from, to } => Event {
                type_: EventType::Normal,
                reason: "Imported".into(),
                note: Some({
                    let moved = match from {
                        Some(from) => format!("tag {tag}: {from} -> {to}"),
                        None => format!("tag {tag}: {to}"),
                    };
                    match served_by.get(tag) {
                        Some(mirror) => format!("{moved} (served by mirror {mirror})"),
                        None => moved,
                    }
                }),
                action: "Import".into(),
                secondary: None,
            },
            TagChange::Failed { tag, failure } => Event {
                type_: EventType::Warning,
                reason: failure.reason.clone(),
                note: Some(format!("tag {tag}: {}", failure.message)),
                action: "Import".into(),
                secondary: None,
            },
        };
        if let Err(err) = ctx.recorder.publish(&event, &reference).await {
            tracing::warn!(error = %err, "could not publish an Event");
        }
    }
}

/// Backoff for reconciles that returned an error: 1s, 2s, 4s, … up to 5 minutes, per stream.
pub fn error_policy(
    guard: Arc<DeserializeGuard<ImageStream>>,
    err: &ReconcileError,
    ctx: Arc<Context>,
) -> Action {
    let key = match &guard.0 {
        Ok(stream) => object_key(stream),
        Err(_) => String::new(),
    };
    let attempts = ctx.record_failure(&key);
    tracing::warn!(stream = %key, reason = err.reason(), error = %err, attempts, "reconcile failed");
    Action::requeue(
        Duration::from_secs(1)
            .saturating_mul(1u32 << attempts.min(9))
            .min(Duration::from_secs(300)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_exponentially_up_to_five_minutes() {
        let delays: Vec<u64> = (0..8).map(|a| retry_delay(a).as_secs()).collect();
        assert_eq!(delays, [5, 10, 20, 40, 80, 160, 300, 300]);
        assert_eq!(retry_delay(u32::MAX), RETRY_MAX);
    }
}
