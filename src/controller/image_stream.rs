//! The ImageStream controller: fetch (the stream, pull secrets, other streams from the cache) →
//! plan (what each tag is and needs: `domain::tag_source`, `domain::tag_need`; the distinct tag of
//! each `DockerImage` tag) → apply (subscriptions to the [`super::engine`], which answers from the
//! registry once per distinct tag and wakes the stream when its answer changes) → status
//! (`domain::stream_status`, a pure function of the stream and the answers, written only when it
//! differs, with server-side apply on the status subresource) → at most one Event per kind.
//!
//! A reconcile never calls a registry: a failed status write is retried as a write, from the
//! answers the engine keeps.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use kube::api::{Patch, PatchParams};
use kube::core::DeserializeGuard;
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::{Api, Resource, ResourceExt};
use thiserror::Error;
use tokio::time::Instant;

use super::access::{ACCESS_RECHECK, lookup_stream, service_account_may_get_image_streams};
use super::context::object_key;
use super::engine::{AnswerOutcome, Subscription, TagJob};
use super::mirrors::import_kind;
use super::stores::stream_ref;
use super::{Context, FIELD_MANAGER, IMPORT_REQUESTED_ANNOTATION, now_time};
use crate::api::ImageStream;
use crate::api::image_stream::{NamedTagEventList, TagEvent};
use crate::domain::backoff::Backoff;
use crate::domain::distinct_tag::{DistinctTag, Selection};
use crate::domain::history::ImportFailure;
use crate::domain::reference::ImageReference;
use crate::domain::stream_status::{
    StatusSettings, StreamIdentity, TagChange, TagOutcome, next_status, status_differs,
};
use crate::domain::tag_need::{NeedInputs, TagNeed, keeps_polling, tag_need, unserved_request};
use crate::domain::tag_source::{TagSource, copy_source_event, stream_image_event, tag_source};
use crate::domain::text::shorten;
use crate::registry::Access;

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
    /// The reconcile panicked (a bug): this stream is retried with backoff, the others go on.
    #[error("the reconcile of image stream {stream} failed on an internal error: {message}")]
    Panicked { stream: String, message: String },
}

impl ReconcileError {
    /// The PascalCase word for Events and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            ReconcileError::WriteStatus { .. } => "StatusWriteFailed",
            ReconcileError::AccessReview { .. } => "AccessReviewFailed",
            ReconcileError::Panicked { .. } => "InternalError",
        }
    }
}

/// The backoff of a stream whose reconcile failed (a status write, an access review): 1 s, 2 s,
/// 4 s … up to 5 minutes. Only the write is retried; the answers it writes are in the engine.
pub const RECONCILE_RETRY: Backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(300));

/// How soon a reconcile looks again when the cache has not caught up with the operator's own last
/// status write.
const CACHE_CATCH_UP: Duration = Duration::from_millis(200);

/// The longest Event note, in characters.
const MAX_NOTE_CHARS: usize = 1024;

/// Whether the cached copy of a stream (at `cached`) is older than the status the operator wrote
/// last (which got `written`). Kubernetes resourceVersions of one object grow; when they are not
/// numbers, only equality is known and the cache is trusted.
pub fn cache_is_behind(cached: Option<&str>, written: &str) -> bool {
    match (
        cached.and_then(|v| v.parse::<u64>().ok()),
        written.parse::<u64>(),
    ) {
        (Some(cached), Ok(written)) => cached < written,
        _ => false,
    }
}

/// A `DockerImage` tag subscribed to the engine this round.
struct Subscribed {
    tag: String,
    reference: ImageReference,
    need: TagNeed,
}

/// Reconciles one ImageStream.
pub async fn reconcile(
    guard: Arc<DeserializeGuard<ImageStream>>,
    ctx: Arc<Context>,
) -> Result<Action, ReconcileError> {
    let stream_ref = stream_ref(
        guard.meta().namespace.as_deref().unwrap_or_default(),
        guard.meta().name.as_deref().unwrap_or_default(),
    );
    let stream = match &guard.0 {
        Ok(stream) => stream,
        Err(invalid) => {
            tracing::warn!(error = %invalid, "skipping an ImageStream that does not match the schema");
            ctx.engine.forget_stream(&stream_ref);
            return Ok(Action::await_change());
        }
    };
    if stream.metadata.deletion_timestamp.is_some() {
        ctx.engine.forget_stream(&stream_ref);
        return Ok(Action::await_change());
    }
    let namespace = stream.namespace().unwrap_or_default();
    let name = stream.name_any();
    let key = object_key(stream);
    let generation = stream.metadata.generation.unwrap_or(0);
    let now = Instant::now();
    let interval = ctx.config.import_interval;
    let status = stream.status.as_ref();

    // Fetch what the plan needs from memory.
    let annotation = stream
        .annotations()
        .get(IMPORT_REQUESTED_ANNOTATION)
        .map(String::as_str);
    // When the watch first saw the stream as it is now: a spec change or request counts from
    // then, however long the stream waited for this reconcile.
    let seen = ctx
        .stream_cache
        .changed_at(&stream_ref)
        .map_or(now, |at| at.min(now));
    let remembered = ctx.with_memory(&key, |memory| {
        if let Some(written) = &memory.written_version {
            if cache_is_behind(stream.resource_version().as_deref(), written) {
                return None;
            }
            memory.written_version = None;
        }
        let generation_seen_at = match memory.generation_seen {
            Some((seen, at)) if seen == generation => at,
            _ => {
                memory.generation_seen = Some((generation, seen));
                seen
            }
        };
        let request = unserved_request(
            annotation,
            memory.served_request.as_deref(),
            status.and_then(|s| s.served_import_request.as_deref()),
        )
        .map(str::to_owned);
        let requested_at = request.as_ref().map(|request| match &memory.request_seen {
            Some((seen, at)) if seen == request => *at,
            _ => {
                memory.request_seen = Some((request.clone(), seen));
                seen
            }
        });
        Some((
            generation_seen_at,
            request,
            requested_at,
            memory.mirrors_changed.clone(),
        ))
    });
    let Some((generation_seen_at, request, requested_at, mirrors_changed)) = remembered else {
        return Ok(Action::requeue(CACHE_CATCH_UP));
    };
    let requested = request.is_some();

    // Plan: what each tag is and needs; subscribe the `DockerImage` tags to their distinct tags.
    let mut outcomes: Vec<(String, TagOutcome)> = Vec::new();
    let mut subscribed: Vec<Subscribed> = Vec::new();
    let mut subscriptions: Vec<Subscription> = Vec::new();
    let mut keyring = None;
    let mut refused = false;
    let mirrors = ctx.mirrors.current();
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
                            created: now_time(),
                            docker_image_reference: from,
                            image: String::new(),
                            generation,
                            platforms: Vec::new(),
                        }),
                    ));
                    continue;
                }
                let need = tag_need(&NeedInputs {
                    spec,
                    status: tag_status,
                    stream_generation: generation,
                    digest_pinned: reference.is_digest_pinned(),
                    generation_seen_at: generation_seen_at.into_std(),
                    requested_at: requested_at.map(Instant::into_std),
                    mirrors_changed_at: mirrors_changed.get(&spec.name).map(|t| t.into_std()),
                    interval,
                });
                let keyring = keyring.get_or_insert_with(|| ctx.keyring(&namespace));
                let plan = mirrors.plan(&reference, import_kind(&reference));
                let access: Vec<Access> = plan
                    .sources
                    .iter()
                    .map(|pull| Access {
                        insecure: spec.is_insecure(),
                        credentials: keyring.lookup(&pull.reference.canonical_name()),
                    })
                    .collect();
                let identities = access
                    .iter()
                    .map(|a| a.credentials.iter().map(|c| c.identity()).collect())
                    .collect();
                let selection = Selection::of(spec);
                let imported = tag_status.is_some_and(|t| !t.items.is_empty());
                subscriptions.push(Subscription {
                    key: DistinctTag::new(
                        &reference,
                        spec.is_insecure(),
                        selection.clone(),
                        &plan,
                        identities,
                    ),
                    job: TagJob {
                        reference: reference.clone(),
                        plan,
                        access,
                        selection,
                    },
                    polls: keeps_polling(spec, reference.is_digest_pinned(), imported),
                    need: match need {
                        TagNeed::Answer(freshness) => Some(freshness),
                        TagNeed::Keep | TagNeed::Follow => None,
                    },
                });
                subscribed.push(Subscribed {
                    tag: spec.name.clone(),
                    reference,
                    need,
                });
            }
            TagSource::SameStreamTag { .. } => {}
            TagSource::OtherStreamTag {
                namespace: source_ns,
                stream: source_stream,
                tag: source_tag,
            } if refresh || was_refused(tag_status) => {
                let outcome = match may_read_streams(&ctx, &namespace, &source_ns).await? {
                    false => {
                        refused = true;
                        Err(cross_namespace_refused(&namespace, &source_ns))
                    }
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
            } if refresh || was_refused(tag_status) => {
                let outcome = match may_read_streams(&ctx, &namespace, &source_ns).await? {
                    false => {
                        refused = true;
                        Err(cross_namespace_refused(&namespace, &source_ns))
                    }
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

    // Apply: the engine's answers. A tag that needs a fresher answer than there is holds the
    // whole status back, so the stream is written once, when every answer it waits for is in.
    let states = ctx.engine.sync_stream(&stream_ref, subscriptions);
    if states.iter().any(|state| state.pending) {
        return Ok(Action::await_change());
    }
    let mut served_by: HashMap<String, String> = HashMap::new();
    for (tag, state) in subscribed.iter().zip(states) {
        if tag.need == TagNeed::Keep {
            continue;
        }
        let Some(answer) = state.answer else {
            continue;
        };
        let outcome = match &answer.outcome {
            AnswerOutcome::Image {
                digest,
                served_by: mirror,
            } => {
                if let Some(mirror) = mirror {
                    served_by.insert(tag.tag.clone(), mirror.clone());
                }
                TagOutcome::Event(TagEvent {
                    created: answer.seen.clone(),
                    docker_image_reference: tag.reference.with_digest(digest),
                    image: digest.clone(),
                    generation,
                    platforms: Vec::new(),
                })
            }
            AnswerOutcome::Failed {
                failure,
                not_contacted: true,
            } => TagOutcome::NotContacted(failure.clone()),
            AnswerOutcome::Failed { failure, .. } => TagOutcome::Failure(failure.clone()),
        };
        outcomes.push((tag.tag.clone(), outcome));
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
        &now_time(),
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
        let written = api
            .patch_status(
                &name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&patch),
            )
            .await
            .map_err(|source| ReconcileError::WriteStatus {
                stream: key.clone(),
                source,
            })?;
        ctx.with_memory(&key, |memory| {
            memory.written_version = written.resource_version();
        });
    }
    for event in round_events(&changes, &served_by) {
        if let Err(err) = ctx.events.publish(&event, &stream.object_ref(&())).await {
            tracing::warn!(stream = %key, error = %err, "could not publish an Event");
        }
    }

    // Remember what was served.
    ctx.with_memory(&key, |memory| {
        if requested {
            memory.served_request = request.clone();
        }
        memory
            .mirrors_changed
            .retain(|tag, at| mirrors_changed.get(tag) != Some(at));
    });
    ctx.reset_failures(&key);
    // A refused cross-namespace copy is asked again on its own schedule: a grant needs no change
    // to the stream.
    let recheck = ctx.with_memory(&key, |memory| {
        if refused {
            let delay = ACCESS_RECHECK.delay(memory.access_refusals);
            memory.access_refusals = memory.access_refusals.saturating_add(1);
            Some(delay)
        } else {
            memory.access_refusals = 0;
            None
        }
    });
    Ok(recheck.map_or_else(Action::await_change, Action::requeue))
}

/// Whether the tag's import was refused for lack of access to another namespace.
fn was_refused(tag_status: Option<&NamedTagEventList>) -> bool {
    tag_status.is_some_and(|tag| {
        tag.conditions
            .iter()
            .any(|c| c.reason.as_deref() == Some(CROSS_NAMESPACE_REFUSED))
    })
}

/// The Events of one round of a stream: at most one `Imported` listing the tags that moved, and at
/// most one Warning listing the tags whose import newly failed (its reason is theirs when they
/// share one, else `ImportFailed`).
pub fn round_events(changes: &[TagChange], served_by: &HashMap<String, String>) -> Vec<Event> {
    let mut moved = Vec::new();
    let mut failed = Vec::new();
    for change in changes {
        match change {
            TagChange::Moved { tag, from, to } => {
                let line = match from {
                    Some(from) => format!("tag {tag}: {from} -> {to}"),
                    None => format!("tag {tag}: {to}"),
                };
                moved.push(match served_by.get(tag) {
                    Some(mirror) => format!("{line} (served by mirror {mirror})"),
                    None => line,
                });
            }
            TagChange::Failed { tag, failure } => failed.push((tag, failure)),
        }
    }
    let mut events = Vec::new();
    if !moved.is_empty() {
        events.push(Event {
            type_: EventType::Normal,
            reason: "Imported".into(),
            note: Some(shorten(&moved.join("; "), MAX_NOTE_CHARS)),
            action: "Import".into(),
            secondary: None,
        });
    }
    if let Some((_, first)) = failed.first() {
        let reason = if failed.iter().all(|(_, f)| f.reason == first.reason) {
            first.reason.clone()
        } else {
            "ImportFailed".to_owned()
        };
        let note = failed
            .iter()
            .map(|(tag, failure)| format!("tag {tag}: {}", failure.message))
            .collect::<Vec<_>>()
            .join("; ");
        events.push(Event {
            type_: EventType::Warning,
            reason,
            note: Some(shorten(&note, MAX_NOTE_CHARS)),
            action: "Import".into(),
            secondary: None,
        });
    }
    events
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

/// The reason of a tag whose source is in a namespace its stream's service accounts may not read.
const CROSS_NAMESPACE_REFUSED: &str = "Forbidden";

fn cross_namespace_refused(namespace: &str, source_namespace: &str) -> ImportFailure {
    ImportFailure {
        reason: CROSS_NAMESPACE_REFUSED.into(),
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
    Action::requeue(RECONCILE_RETRY.delay(attempts))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_is_behind_only_when_its_version_is_older_than_the_write() {
        assert!(cache_is_behind(Some("41"), "42"));
        assert!(!cache_is_behind(Some("42"), "42"));
        assert!(!cache_is_behind(Some("43"), "42"));
        assert!(!cache_is_behind(None, "42"));
        assert!(!cache_is_behind(Some("opaque"), "42"));
    }

    fn failure(reason: &str, message: &str) -> ImportFailure {
        ImportFailure {
            reason: reason.into(),
            message: message.into(),
        }
    }

    #[test]
    fn one_round_gives_at_most_one_event_per_kind_listing_its_tags() {
        let changes = vec![
            TagChange::Moved {
                tag: "a".into(),
                from: None,
                to: "r/x@sha256:1".into(),
            },
            TagChange::Moved {
                tag: "b".into(),
                from: Some("r/y@sha256:1".into()),
                to: "r/y@sha256:2".into(),
            },
            TagChange::Failed {
                tag: "c".into(),
                failure: failure("NotFound", "gone"),
            },
            TagChange::Failed {
                tag: "d".into(),
                failure: failure("NotFound", "also gone"),
            },
        ];
        let served_by = HashMap::from([("b".to_owned(), "mirror.local/y".to_owned())]);
        let events = round_events(&changes, &served_by);
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].reason, "Imported");
        assert_eq!(
            events[0].note.as_deref(),
            Some(
                "tag a: r/x@sha256:1; tag b: r/y@sha256:1 -> r/y@sha256:2 (served by mirror mirror.local/y)"
            )
        );
        assert_eq!(events[1].reason, "NotFound");
        assert_eq!(
            events[1].note.as_deref(),
            Some("tag c: gone; tag d: also gone")
        );
        let mixed = vec![
            TagChange::Failed {
                tag: "c".into(),
                failure: failure("NotFound", "gone"),
            },
            TagChange::Failed {
                tag: "d".into(),
                failure: failure("Unauthorized", "no"),
            },
        ];
        let events = round_events(&mixed, &HashMap::new());
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].reason, "ImportFailed");
        assert!(round_events(&[], &HashMap::new()).is_empty());
    }
}
