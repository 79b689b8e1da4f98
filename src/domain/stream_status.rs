//! The next status of an ImageStream, computed in memory from the current status, the spec and the
//! outcome of this round's imports: history rules, conditions, same-stream aliases (which follow
//! their source in the same write), removal of tags no longer in the spec, and the list of changes
//! worth an Event.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::api::image_stream::{
    CONDITION_IMPORT_SUCCESS, ImageStreamStatus, NamedTagEventList, TagEvent, TagReference,
};
use crate::domain::history::{
    HistoryChange, ImportFailure, record_import_failure, record_import_success, record_tag_event,
};
use crate::domain::tag_source::{TagSource, alias_root, tag_source};

/// What this round did for one tag that is not a same-stream alias.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagOutcome {
    /// A new event for the tag (an import, a reference, a copy).
    Event(TagEvent),
    /// The tag could not be imported; history stays as it is.
    Failure(ImportFailure),
    /// The tag was not imported because its registry was not asked (the host is backing off after
    /// an earlier failure). A failure condition of the same generation stands as it is, so the
    /// condition and its Warning do not alternate between the failure and the refusals after it;
    /// without one, this failure is recorded.
    NotContacted(ImportFailure),
}

/// A change to one tag that deserves an Event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagChange {
    /// The tag's current image changed (or it got its first one).
    Moved {
        /// The tag.
        tag: String,
        /// The previous current image reference, if any.
        from: Option<String>,
        /// The new current image reference.
        to: String,
    },
    /// The tag's import failed with a new reason or message.
    Failed {
        /// The tag.
        tag: String,
        /// The failure.
        failure: ImportFailure,
    },
}

/// Settings that shape the status.
#[derive(Debug, Clone, Default)]
pub struct StatusSettings {
    /// History entries kept per tag (0: no limit).
    pub max_history: usize,
    /// `status.dockerImageRepository`: `<internal host>/<namespace>/<name>` or empty.
    pub docker_image_repository: Option<String>,
    /// `status.publicDockerImageRepository`: `<public host>/<namespace>/<name>` or empty.
    pub public_docker_image_repository: Option<String>,
}

/// The stream the status belongs to.
#[derive(Debug, Clone, Copy)]
pub struct StreamIdentity<'a> {
    /// Its namespace.
    pub namespace: &'a str,
    /// Its name.
    pub name: &'a str,
    /// Its `metadata.generation`.
    pub generation: i64,
}

/// Computes the next status. `outcomes` holds this round's results for non-alias tags; tags with no
/// outcome keep their entry as it is. Same-stream aliases take their source's current event.
pub fn next_status(
    current: Option<&ImageStreamStatus>,
    spec_tags: &[TagReference],
    outcomes: &[(String, TagOutcome)],
    stream: StreamIdentity<'_>,
    settings: &StatusSettings,
    now: &Time,
) -> (ImageStreamStatus, Vec<TagChange>) {
    let mut tags: Vec<NamedTagEventList> = current.map(|s| s.tags.clone()).unwrap_or_default();
    // Tags removed from the spec lose their status, as on OpenShift.
    tags.retain(|t| spec_tags.iter().any(|s| s.name == t.tag));
    let mut changes = Vec::new();

    for (tag, outcome) in outcomes {
        apply_outcome(
            &mut tags,
            tag,
            outcome.clone(),
            stream.generation,
            settings,
            now,
            &mut changes,
        );
    }

    for spec in spec_tags {
        if !matches!(
            tag_source(spec, stream.namespace, stream.name),
            Ok(TagSource::SameStreamTag { .. })
        ) {
            continue;
        }
        let outcome = match alias_root(spec_tags, &spec.name, stream.namespace, stream.name) {
            Ok(root) => match tags
                .iter()
                .find(|t| t.tag == root.name)
                .and_then(|t| t.items.first())
            {
                Some(event) => TagOutcome::Event(event.clone()),
                // The source has no image yet: nothing to follow.
                None => continue,
            },
            Err(failure) => TagOutcome::Failure(failure),
        };
        apply_outcome(
            &mut tags,
            &spec.name,
            outcome,
            stream.generation,
            settings,
            now,
            &mut changes,
        );
    }

    for tag in &mut tags {
        crate::domain::history::cap_history(&mut tag.items, settings.max_history);
    }
    tags.sort_by(|a, b| a.tag.cmp(&b.tag));
    let status = ImageStreamStatus {
        docker_image_repository: settings.docker_image_repository.clone(),
        public_docker_image_repository: settings.public_docker_image_repository.clone(),
        tags,
        served_import_request: current.and_then(|s| s.served_import_request.clone()),
    };
    (status, changes)
}

fn apply_outcome(
    tags: &mut Vec<NamedTagEventList>,
    tag: &str,
    outcome: TagOutcome,
    generation: i64,
    settings: &StatusSettings,
    now: &Time,
    changes: &mut Vec<TagChange>,
) {
    let index = match tags.iter().position(|t| t.tag == tag) {
        Some(i) => i,
        None => {
            tags.push(NamedTagEventList {
                tag: tag.to_owned(),
                ..NamedTagEventList::default()
            });
            tags.len() - 1
        }
    };
    let entry = &mut tags[index];
    match outcome {
        TagOutcome::Event(event) => {
            let before = entry
                .items
                .first()
                .map(|e| (e.docker_image_reference.clone(), e.image.clone()));
            let to = event.docker_image_reference.clone();
            let change = record_tag_event(&mut entry.items, event, settings.max_history);
            record_import_success(&mut entry.conditions);
            let after = entry
                .items
                .first()
                .map(|e| (e.docker_image_reference.clone(), e.image.clone()));
            if change != HistoryChange::Unchanged && before != after {
                changes.push(TagChange::Moved {
                    tag: tag.to_owned(),
                    from: before.map(|(reference, _)| reference),
                    to,
                });
            }
        }
        TagOutcome::NotContacted(_)
            if entry.conditions.iter().any(|c| {
                c.type_ == CONDITION_IMPORT_SUCCESS
                    && c.status == "False"
                    && c.generation == generation
            }) =>
        {
            // The condition from the failure that started the backoff stands.
        }
        TagOutcome::Failure(failure) | TagOutcome::NotContacted(failure) => {
            if record_import_failure(&mut entry.conditions, &failure, generation, now) {
                changes.push(TagChange::Failed {
                    tag: tag.to_owned(),
                    failure,
                });
            }
        }
    }
    if entry.items.is_empty() && entry.conditions.is_empty() {
        tags.remove(index);
    }
}

/// Whether two statuses are the same for the purpose of writing: the operator writes only when they
/// differ, so steady state costs no API writes.
pub fn status_differs(current: Option<&ImageStreamStatus>, next: &ImageStreamStatus) -> bool {
    let empty = ImageStreamStatus::default();
    let current = current.unwrap_or(&empty);
    normalise(current) != normalise(next)
}

fn normalise(status: &ImageStreamStatus) -> ImageStreamStatus {
    let mut status = status.clone();
    status.docker_image_repository = status.docker_image_repository.filter(|s| !s.is_empty());
    status.public_docker_image_repository = status
        .public_docker_image_repository
        .filter(|s| !s.is_empty());
    status.tags.sort_by(|a, b| a.tag.cmp(&b.tag));
    status
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::image_stream::TagSource as FromRef;

    fn time(s: i64) -> Time {
        Time(k8s_openapi::jiff::Timestamp::from_second(1_700_000_000 + s).unwrap())
    }

    fn tag(name: &str, kind: &str, from: &str) -> TagReference {
        TagReference {
            name: name.into(),
            from: Some(FromRef {
                kind: Some(kind.into()),
                name: Some(from.into()),
                ..FromRef::default()
            }),
            ..TagReference::default()
        }
    }

    fn event(image: &str, generation: i64) -> TagEvent {
        TagEvent {
            created: time(0),
            docker_image_reference: format!("example.com/app@{image}"),
            image: image.into(),
            generation,
            platforms: Vec::new(),
        }
    }

    const STREAM: StreamIdentity<'static> = StreamIdentity {
        namespace: "ns",
        name: "web",
        generation: 1,
    };

    fn settings() -> StatusSettings {
        StatusSettings {
            max_history: 10,
            ..StatusSettings::default()
        }
    }

    #[test]
    fn an_alias_follows_its_source_in_the_same_status() {
        let spec = vec![
            tag("latest", "DockerImage", "example.com/app:latest"),
            tag("stable", "ImageStreamTag", "latest"),
        ];
        let outcomes = vec![(
            "latest".to_string(),
            TagOutcome::Event(event("sha256:aa", 1)),
        )];
        let (status, changes) = next_status(None, &spec, &outcomes, STREAM, &settings(), &time(1));
        let names: Vec<&str> = status.tags.iter().map(|t| t.tag.as_str()).collect();
        assert_eq!(names, ["latest", "stable"]);
        assert_eq!(status.tags[1].items, vec![event("sha256:aa", 1)]);
        assert_eq!(changes.len(), 2);

        // The source moves: the alias moves with it, in the same computation.
        let outcomes = vec![(
            "latest".to_string(),
            TagOutcome::Event(event("sha256:bb", 1)),
        )];
        let (status, _) = next_status(
            Some(&status),
            &spec,
            &outcomes,
            STREAM,
            &settings(),
            &time(2),
        );
        let images: Vec<&str> = status.tags[1]
            .items
            .iter()
            .map(|e| e.image.as_str())
            .collect();
        assert_eq!(images, ["sha256:bb", "sha256:aa"]);
    }

    #[test]
    fn a_refusal_by_backoff_leaves_the_failure_that_started_it_standing() {
        let spec = vec![tag("latest", "DockerImage", "example.com/app:latest")];
        let failure = |outcome: fn(ImportFailure) -> TagOutcome, message: &str| {
            vec![(
                "latest".to_string(),
                outcome(ImportFailure {
                    reason: "ConnectionFailed".into(),
                    message: message.into(),
                }),
            )]
        };
        let refused = failure(
            TagOutcome::NotContacted,
            "not contacted: backing off after ConnectionFailed",
        );
        // Without a condition, the refusal is what there is to say.
        let (first, changes) = next_status(None, &spec, &refused, STREAM, &settings(), &time(1));
        assert_eq!(changes.len(), 1);
        assert_eq!(
            first.tags[0].conditions[0].message.as_deref(),
            Some("not contacted: backing off after ConnectionFailed")
        );
        // A real failure replaces it; refusals after it change nothing.
        let real = failure(TagOutcome::Failure, "connection refused");
        let (failed, changes) =
            next_status(Some(&first), &spec, &real, STREAM, &settings(), &time(2));
        assert_eq!(changes.len(), 1);
        let (after, changes) = next_status(
            Some(&failed),
            &spec,
            &refused,
            STREAM,
            &settings(),
            &time(3),
        );
        assert!(changes.is_empty());
        assert!(!status_differs(Some(&failed), &after));
        // A new generation is a new question: the refusal is recorded for it.
        let newer = StreamIdentity {
            generation: STREAM.generation + 1,
            ..STREAM
        };
        let (renewed, changes) =
            next_status(Some(&after), &spec, &refused, newer, &settings(), &time(4));
        assert_eq!(changes.len(), 1);
        assert_eq!(
            renewed.tags[0].conditions[0].generation,
            STREAM.generation + 1
        );
    }

    #[test]
    fn a_failure_keeps_history_and_is_reported_once() {
        let spec = vec![tag("latest", "DockerImage", "example.com/app:latest")];
        let ok = vec![(
            "latest".to_string(),
            TagOutcome::Event(event("sha256:aa", 1)),
        )];
        let (status, _) = next_status(None, &spec, &ok, STREAM, &settings(), &time(1));
        let failure = TagOutcome::Failure(ImportFailure {
            reason: "InternalError".into(),
            message: "down".into(),
        });
        let failed = vec![("latest".to_string(), failure)];
        let (status, changes) =
            next_status(Some(&status), &spec, &failed, STREAM, &settings(), &time(2));
        assert_eq!(status.tags[0].items, vec![event("sha256:aa", 1)]);
        assert_eq!(status.tags[0].conditions.len(), 1);
        assert!(matches!(changes.as_slice(), [TagChange::Failed { .. }]));
        let (again, changes) =
            next_status(Some(&status), &spec, &failed, STREAM, &settings(), &time(3));
        assert!(changes.is_empty());
        assert!(!status_differs(Some(&status), &again));
        // Recovery clears the condition.
        let (recovered, _) = next_status(Some(&again), &spec, &ok, STREAM, &settings(), &time(4));
        assert!(recovered.tags[0].conditions.is_empty());
    }

    #[test]
    fn a_no_op_import_changes_nothing() {
        let spec = vec![tag("latest", "DockerImage", "example.com/app:latest")];
        let ok = vec![(
            "latest".to_string(),
            TagOutcome::Event(event("sha256:aa", 1)),
        )];
        let (status, _) = next_status(None, &spec, &ok, STREAM, &settings(), &time(1));
        let mut same = event("sha256:aa", 1);
        same.created = time(100);
        let again = vec![("latest".to_string(), TagOutcome::Event(same))];
        let (next, changes) = next_status(
            Some(&status),
            &spec,
            &again,
            STREAM,
            &settings(),
            &time(100),
        );
        assert!(changes.is_empty());
        assert!(!status_differs(Some(&status), &next));
    }

    #[test]
    fn tags_removed_from_the_spec_leave_the_status_and_tags_stay_sorted() {
        let spec = vec![
            tag("b", "DockerImage", "x:b"),
            tag("a", "DockerImage", "x:a"),
        ];
        let outcomes = vec![
            ("b".to_string(), TagOutcome::Event(event("sha256:bb", 1))),
            ("a".to_string(), TagOutcome::Event(event("sha256:aa", 1))),
        ];
        let (status, _) = next_status(None, &spec, &outcomes, STREAM, &settings(), &time(1));
        assert_eq!(
            status
                .tags
                .iter()
                .map(|t| t.tag.as_str())
                .collect::<Vec<_>>(),
            ["a", "b"]
        );
        let (status, _) = next_status(
            Some(&status),
            &spec[..1],
            &[],
            STREAM,
            &settings(),
            &time(2),
        );
        assert_eq!(
            status
                .tags
                .iter()
                .map(|t| t.tag.as_str())
                .collect::<Vec<_>>(),
            ["b"]
        );
    }

    #[test]
    fn an_alias_cycle_becomes_a_condition_on_each_tag_in_it() {
        let spec = vec![
            tag("a", "ImageStreamTag", "b"),
            tag("b", "ImageStreamTag", "a"),
        ];
        let (status, changes) = next_status(None, &spec, &[], STREAM, &settings(), &time(1));
        assert_eq!(status.tags.len(), 2);
        assert!(
            status
                .tags
                .iter()
                .all(|t| t.conditions[0].reason.as_deref() == Some("TagCycle"))
        );
        assert_eq!(changes.len(), 2);
    }

    #[test]
    fn the_history_cap_applies_to_existing_histories_too() {
        let spec = vec![tag("latest", "DockerImage", "x:latest")];
        let current = ImageStreamStatus {
            tags: vec![NamedTagEventList {
                tag: "latest".into(),
                items: (0..5).map(|i| event(&format!("sha256:{i}"), 1)).collect(),
                conditions: Vec::new(),
            }],
            ..ImageStreamStatus::default()
        };
        let settings = StatusSettings {
            max_history: 2,
            ..StatusSettings::default()
        };
        let (status, _) = next_status(Some(&current), &spec, &[], STREAM, &settings, &time(1));
        assert_eq!(status.tags[0].items.len(), 2);
    }
}
