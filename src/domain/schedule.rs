//! When a tag is imported: on first sight, after a spec change, on request, after a transient
//! failure, and — for scheduled tags — once per import interval, with each stream's checks placed at
//! its own fixed phase of the interval so that many streams do not poll in the same second.

use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::api::image_stream::{KIND_DOCKER_IMAGE, NamedTagEventList, TagReference};
use crate::domain::history::observed_generation;

/// Why a tag is imported now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportCause {
    /// The tag has never been imported (no history, no condition).
    FirstImport,
    /// The stream's spec changed since the tag was last processed.
    SpecChanged,
    /// Someone asked for an immediate import of the stream.
    Requested,
    /// The last attempt failed transiently and its backoff has passed.
    Retry,
    /// A mirror policy change altered where the tag is pulled from.
    MirrorsChanged,
    /// A scheduled tag's interval has passed.
    Scheduled,
}

impl ImportCause {
    /// Whether a recent answer from the registry for the same tag may be reused. Only periodic
    /// checks may: a user who changed the spec or asked for an import wants a fresh answer.
    pub fn may_use_recent_answer(self) -> bool {
        matches!(self, ImportCause::Scheduled)
    }
}

/// What is known about one `DockerImage` tag when deciding whether to import it.
#[derive(Debug, Clone, Copy)]
pub struct ImportInputs<'a> {
    /// The tag's spec.
    pub spec: &'a TagReference,
    /// The tag's status entry, if any.
    pub status: Option<&'a NamedTagEventList>,
    /// The stream's `metadata.generation`.
    pub stream_generation: i64,
    /// Whether `from.name` pins a digest (`repo@sha256:…`).
    pub digest_pinned: bool,
    /// Whether an immediate import of the stream was requested and not yet served.
    pub requested: bool,
    /// Whether a transient failure of this tag is waiting for its retry.
    pub retry_due: bool,
    /// Whether the stream's periodic check is due.
    pub schedule_due: bool,
    /// Whether a mirror policy change altered this tag's pull sources since its last import.
    pub mirrors_changed: bool,
}

/// Decides whether a `DockerImage` tag that is not `reference: true` is imported now, and why.
/// Returns `None` for every other kind of tag.
pub fn import_cause(inputs: &ImportInputs<'_>) -> Option<ImportCause> {
    let spec = inputs.spec;
    let is_docker_image = spec
        .from
        .as_ref()
        .is_some_and(|from| from.kind.as_deref() == Some(KIND_DOCKER_IMAGE));
    if !is_docker_image || spec.is_reference() {
        return None;
    }
    let never_processed = inputs
        .status
        .is_none_or(|tag| tag.items.is_empty() && tag.conditions.is_empty());
    if never_processed {
        return Some(ImportCause::FirstImport);
    }
    if observed_generation(inputs.status).is_none_or(|seen| inputs.stream_generation > seen) {
        return Some(ImportCause::SpecChanged);
    }
    if inputs.requested {
        return Some(ImportCause::Requested);
    }
    if inputs.retry_due {
        return Some(ImportCause::Retry);
    }
    if inputs.mirrors_changed {
        return Some(ImportCause::MirrorsChanged);
    }
    let has_history = inputs.status.is_some_and(|tag| !tag.items.is_empty());
    // A digest never moves: once imported, scheduling it can change nothing.
    if spec.is_scheduled() && inputs.schedule_due && !(inputs.digest_pinned && has_history) {
        return Some(ImportCause::Scheduled);
    }
    None
}

/// Whether a registry answer asked for at `answered_for` may serve a scheduled check due at
/// `due`: only if it was asked for less than one interval before. Both instants are schedule slots
/// (not when the work happened to run), so a stream alone on its tag asks the registry exactly once
/// per interval, and streams sharing a tag share that one answer.
pub fn shared_answer_is_fresh(answered_for: Instant, due: Instant, interval: Duration) -> bool {
    due.saturating_duration_since(answered_for) < interval
}

/// The delay before a stream's first periodic check after the operator starts: a fixed point in
/// `[0, interval)` derived from the stream's UID, so that a restart does not poll every stream at
/// once and each stream keeps the same phase.
pub fn schedule_phase(stream_uid: &str, interval: Duration) -> Duration {
    let millis = interval.as_millis();
    if millis == 0 {
        return Duration::ZERO;
    }
    let hash = Sha256::digest(stream_uid.as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&hash[..16]);
    let offset = u128::from_be_bytes(bytes) % millis;
    Duration::from_millis(offset as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::image_stream::{TagEvent, TagImportPolicy, TagSource};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn docker_tag(scheduled: bool) -> TagReference {
        TagReference {
            name: "latest".into(),
            from: Some(TagSource {
                kind: Some(KIND_DOCKER_IMAGE.into()),
                name: Some("example.com/app:latest".into()),
                ..TagSource::default()
            }),
            import_policy: Some(TagImportPolicy {
                scheduled: Some(scheduled),
                ..TagImportPolicy::default()
            }),
            ..TagReference::default()
        }
    }

    fn imported_at(generation: i64) -> NamedTagEventList {
        NamedTagEventList {
            tag: "latest".into(),
            items: vec![TagEvent {
                created: Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
                docker_image_reference: "example.com/app@sha256:aa".into(),
                image: "sha256:aa".into(),
                generation,
                platforms: Vec::new(),
            }],
            conditions: Vec::new(),
        }
    }

    fn inputs<'a>(
        spec: &'a TagReference,
        status: Option<&'a NamedTagEventList>,
    ) -> ImportInputs<'a> {
        ImportInputs {
            spec,
            status,
            stream_generation: 1,
            digest_pinned: false,
            requested: false,
            retry_due: false,
            schedule_due: false,
            mirrors_changed: false,
        }
    }

    #[test]
    fn a_tag_never_imported_is_imported() {
        let spec = docker_tag(false);
        assert_eq!(
            import_cause(&inputs(&spec, None)),
            Some(ImportCause::FirstImport)
        );
    }

    #[test]
    fn an_unchanged_unscheduled_tag_is_left_alone() {
        let spec = docker_tag(false);
        let status = imported_at(1);
        let mut i = inputs(&spec, Some(&status));
        i.schedule_due = true;
        assert_eq!(import_cause(&i), None);
    }

    #[test]
    fn a_newer_stream_generation_means_the_spec_changed() {
        let spec = docker_tag(false);
        let status = imported_at(1);
        let mut i = inputs(&spec, Some(&status));
        i.stream_generation = 2;
        assert_eq!(import_cause(&i), Some(ImportCause::SpecChanged));
    }

    #[test]
    fn a_scheduled_tag_is_imported_when_due_only() {
        let spec = docker_tag(true);
        let status = imported_at(1);
        let mut i = inputs(&spec, Some(&status));
        assert_eq!(import_cause(&i), None);
        i.schedule_due = true;
        assert_eq!(import_cause(&i), Some(ImportCause::Scheduled));
    }

    #[test]
    fn a_digest_pinned_tag_is_not_rescheduled_after_success() {
        let spec = docker_tag(true);
        let status = imported_at(1);
        let mut i = inputs(&spec, Some(&status));
        i.digest_pinned = true;
        i.schedule_due = true;
        assert_eq!(import_cause(&i), None);
    }

    #[test]
    fn requests_and_retries_import_an_unchanged_tag() {
        let spec = docker_tag(false);
        let status = imported_at(1);
        let mut i = inputs(&spec, Some(&status));
        i.requested = true;
        assert_eq!(import_cause(&i), Some(ImportCause::Requested));
        i.requested = false;
        i.retry_due = true;
        assert_eq!(import_cause(&i), Some(ImportCause::Retry));
        i.retry_due = false;
        i.mirrors_changed = true;
        assert_eq!(import_cause(&i), Some(ImportCause::MirrorsChanged));
    }

    #[test]
    fn reference_tags_and_other_kinds_are_never_imported() {
        let mut spec = docker_tag(true);
        spec.reference = Some(true);
        assert_eq!(import_cause(&inputs(&spec, None)), None);
        let mut alias = docker_tag(false);
        alias.from.as_mut().unwrap().kind = Some("ImageStreamTag".into());
        assert_eq!(import_cause(&inputs(&alias, None)), None);
    }

    #[test]
    fn only_scheduled_checks_may_reuse_a_recent_answer() {
        assert!(ImportCause::Scheduled.may_use_recent_answer());
        for cause in [
            ImportCause::FirstImport,
            ImportCause::SpecChanged,
            ImportCause::Requested,
            ImportCause::Retry,
            ImportCause::MirrorsChanged,
        ] {
            assert!(!cause.may_use_recent_answer(), "{cause:?}");
        }
    }

    #[test]
    fn a_shared_answer_serves_checks_due_within_one_interval_of_it() {
        let interval = Duration::from_secs(60);
        let t0 = Instant::now();
        // Another stream's check 20s later reuses it; the same stream's next slot does not.
        assert!(shared_answer_is_fresh(
            t0,
            t0 + Duration::from_secs(20),
            interval
        ));
        assert!(!shared_answer_is_fresh(t0, t0 + interval, interval));
        // An answer from a later slot than the check is fresh too.
        assert!(shared_answer_is_fresh(
            t0 + Duration::from_secs(5),
            t0,
            interval
        ));
    }

    #[test]
    fn schedule_phases_are_stable_within_the_interval_and_spread_out() {
        let interval = Duration::from_secs(900);
        let phases: Vec<Duration> = (0..1000)
            .map(|i| schedule_phase(&format!("uid-{i}"), interval))
            .collect();
        assert!(phases.iter().all(|p| *p < interval));
        assert_eq!(schedule_phase("uid-7", interval), phases[7]);
        // A thousand streams over 900 seconds: no second holds more than a handful.
        let mut per_second = std::collections::HashMap::new();
        for p in &phases {
            *per_second.entry(p.as_secs()).or_insert(0) += 1;
        }
        let busiest = per_second.values().max().copied().unwrap_or(0);
        assert!(busiest <= 8, "{busiest} streams in one second");
        assert_eq!(schedule_phase("x", Duration::ZERO), Duration::ZERO);
    }
}
