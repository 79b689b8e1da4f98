//! What one `DockerImage` tag of a stream needs from the answer of its distinct tag: nothing (it
//! keeps its status), every answer as it comes (scheduled tags, and tags waiting for a failed import
//! to be retried), or an answer fresh enough before its status is written — any recent one for a
//! first import, one asked after the change for a spec change, an import request or a mirror policy
//! change. The rule that decides whether an import request is still unserved is here too.

use std::time::{Duration, Instant};

use crate::api::image_stream::{CONDITION_IMPORT_SUCCESS, NamedTagEventList, TagReference};
use crate::domain::history::observed_generation;

/// How fresh an answer must be: asked at or after this instant. Answers asked before do not count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Freshness {
    /// The earliest start of an ask that counts.
    pub asked_since: Instant,
}

impl Freshness {
    /// Whether an answer asked at `asked_at` is fresh enough.
    pub fn satisfied_by(self, asked_at: Instant) -> bool {
        asked_at >= self.asked_since
    }
}

/// What a tag takes from its distinct tag's answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagNeed {
    /// Nothing: the tag keeps its status until its spec changes or an import is requested.
    Keep,
    /// Every answer, as it comes: the tag is scheduled, or its last import failed and waits for the
    /// retry.
    Follow,
    /// An answer at least this fresh, before the stream's status is written.
    Answer(Freshness),
}

/// What is known about one `DockerImage` tag that is not `reference: true`.
#[derive(Debug, Clone, Copy)]
pub struct NeedInputs<'a> {
    /// The tag's spec.
    pub spec: &'a TagReference,
    /// The tag's status entry, if any.
    pub status: Option<&'a NamedTagEventList>,
    /// The stream's `metadata.generation`.
    pub stream_generation: i64,
    /// Whether `from.name` pins a digest.
    pub digest_pinned: bool,
    /// When this process first saw the stream at its current generation (on a first import: when
    /// it first saw the stream).
    pub generation_seen_at: Instant,
    /// When this process first saw the stream's unserved import request, if there is one.
    pub requested_at: Option<Instant>,
    /// When a mirror policy change altered the tag's pull sources, if it has not been imported
    /// since.
    pub mirrors_changed_at: Option<Instant>,
    /// The import interval: a first import may take an answer asked up to one interval before the
    /// stream was seen.
    pub interval: Duration,
}

/// Decides what the tag needs.
pub fn tag_need(inputs: &NeedInputs<'_>) -> TagNeed {
    let never_processed = inputs
        .status
        .is_none_or(|tag| tag.items.is_empty() && tag.conditions.is_empty());
    let spec_changed = !never_processed
        && observed_generation(inputs.status).is_none_or(|seen| inputs.stream_generation > seen);
    let since = [
        inputs.requested_at,
        inputs.mirrors_changed_at,
        spec_changed.then_some(inputs.generation_seen_at),
    ]
    .into_iter()
    .flatten()
    .max();
    if let Some(asked_since) = since {
        return TagNeed::Answer(Freshness { asked_since });
    }
    if never_processed {
        let seen = inputs.generation_seen_at;
        return TagNeed::Answer(Freshness {
            asked_since: seen.checked_sub(inputs.interval).unwrap_or(seen),
        });
    }
    let has_history = inputs.status.is_some_and(|tag| !tag.items.is_empty());
    let failing = inputs.status.is_some_and(|tag| {
        tag.conditions
            .iter()
            .any(|c| c.type_ == CONDITION_IMPORT_SUCCESS && c.status == "False")
    });
    // A digest never moves: once imported, scheduling it can change nothing.
    let polled = inputs.spec.is_scheduled() && !(inputs.digest_pinned && has_history);
    if polled || failing {
        TagNeed::Follow
    } else {
        TagNeed::Keep
    }
}

/// Whether a stream should be periodically polled on behalf of this tag: scheduled, and not a
/// digest that was imported already.
pub fn keeps_polling(spec: &TagReference, digest_pinned: bool, imported: bool) -> bool {
    spec.is_scheduled() && !(digest_pinned && imported)
}

/// The import request to serve, if any: the annotation's value when it is neither the request this
/// process served last nor the one recorded in `status.servedImportRequest` (which survives
/// restarts and leader changes).
pub fn unserved_request<'a>(
    annotation: Option<&'a str>,
    served_here: Option<&str>,
    served_in_status: Option<&str>,
) -> Option<&'a str> {
    annotation.filter(|value| Some(*value) != served_here && Some(*value) != served_in_status)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::image_stream::{TagEvent, TagEventCondition, TagImportPolicy, TagSource};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    const INTERVAL: Duration = Duration::from_secs(900);

    fn docker_tag(scheduled: bool) -> TagReference {
        TagReference {
            name: "latest".into(),
            from: Some(TagSource {
                kind: Some("DockerImage".into()),
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

    fn failed_at(generation: i64) -> NamedTagEventList {
        NamedTagEventList {
            tag: "latest".into(),
            items: Vec::new(),
            conditions: vec![TagEventCondition {
                type_: CONDITION_IMPORT_SUCCESS.into(),
                status: "False".into(),
                last_transition_time: None,
                reason: Some("NotFound".into()),
                message: Some("gone".into()),
                generation,
            }],
        }
    }

    fn inputs<'a>(
        spec: &'a TagReference,
        status: Option<&'a NamedTagEventList>,
        t0: Instant,
    ) -> NeedInputs<'a> {
        NeedInputs {
            spec,
            status,
            stream_generation: 1,
            digest_pinned: false,
            generation_seen_at: t0,
            requested_at: None,
            mirrors_changed_at: None,
            interval: INTERVAL,
        }
    }

    #[test]
    fn the_need_of_a_tag_by_its_state() {
        let t0 = Instant::now();
        let (t1, t2) = (t0 + Duration::from_secs(1), t0 + Duration::from_secs(2));
        let scheduled = docker_tag(true);
        let unscheduled = docker_tag(false);
        let imported = imported_at(1);
        let failed = failed_at(1);
        let fresh = |asked_since| TagNeed::Answer(Freshness { asked_since });
        type Case<'a> = (&'a str, NeedInputs<'a>, TagNeed);
        let mut cases: Vec<Case> = vec![
            (
                "never imported: any answer of the interval before the stream was seen",
                inputs(&unscheduled, None, t1 + INTERVAL),
                fresh(t1),
            ),
            (
                "imported, unscheduled: kept",
                inputs(&unscheduled, Some(&imported), t0),
                TagNeed::Keep,
            ),
            (
                "imported, scheduled: follows every answer",
                inputs(&scheduled, Some(&imported), t0),
                TagNeed::Follow,
            ),
            (
                "failed, unscheduled: follows until the retry succeeds",
                inputs(&unscheduled, Some(&failed), t0),
                TagNeed::Follow,
            ),
        ];
        let mut spec_changed = inputs(&scheduled, Some(&imported), t1);
        spec_changed.stream_generation = 2;
        cases.push((
            "spec changed: asked since the change was seen",
            spec_changed,
            fresh(t1),
        ));
        let mut requested = inputs(&unscheduled, Some(&imported), t0);
        requested.requested_at = Some(t2);
        cases.push(("requested: asked since the request", requested, fresh(t2)));
        let mut requested_first = inputs(&unscheduled, None, t0);
        requested_first.requested_at = Some(t1);
        cases.push((
            "a request bypasses the shared answer of a first import",
            requested_first,
            fresh(t1),
        ));
        let mut mirrored = inputs(&unscheduled, Some(&imported), t0);
        mirrored.mirrors_changed_at = Some(t1);
        mirrored.requested_at = Some(t2);
        cases.push(("the latest reason wins", mirrored, fresh(t2)));
        let mut pinned = inputs(&scheduled, Some(&imported), t0);
        pinned.digest_pinned = true;
        cases.push(("a pinned digest, imported: kept", pinned, TagNeed::Keep));
        let mut pinned_failed = inputs(&scheduled, Some(&failed), t0);
        pinned_failed.digest_pinned = true;
        cases.push((
            "a pinned digest that failed: follows the retry",
            pinned_failed,
            TagNeed::Follow,
        ));
        for (case, inputs, need) in cases {
            assert_eq!(tag_need(&inputs), need, "{case}");
        }
    }

    #[test]
    fn an_answer_is_fresh_from_the_instant_on() {
        let t0 = Instant::now();
        let since = Freshness {
            asked_since: t0 + Duration::from_secs(5),
        };
        assert!(!since.satisfied_by(t0 + Duration::from_secs(4)));
        assert!(since.satisfied_by(t0 + Duration::from_secs(5)));
    }

    #[test]
    fn a_request_is_served_once_here_and_once_across_restarts() {
        assert_eq!(unserved_request(Some("1"), None, None), Some("1"));
        assert_eq!(unserved_request(Some("1"), Some("1"), None), None);
        assert_eq!(unserved_request(Some("1"), None, Some("1")), None);
        assert_eq!(unserved_request(Some("2"), Some("1"), Some("1")), Some("2"));
        assert_eq!(unserved_request(None, None, None), None);
    }
}
