//! Tag history and import conditions: how a new TagEvent joins a tag's history (OpenShift's rule: it
//! is compared with `items[0]` only), how long the history may grow, and how a failed import is
//! recorded without ever touching history.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::api::image_stream::{
    CONDITION_IMPORT_SUCCESS, NamedTagEventList, TagEvent, TagEventCondition,
};

/// What recording an event did to a tag's history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistoryChange {
    /// Nothing: the event equals `items[0]`.
    Unchanged,
    /// The history was empty; it now holds the event.
    Started,
    /// `items[0]` was updated in place (generation, image or reference); `created` kept.
    UpdatedInPlace,
    /// The event was added in front of the history: the tag moved.
    Prepended,
}

impl HistoryChange {
    /// Whether the tag's current image (or reference) changed, which is what triggers act on.
    pub fn moved_current_image(self) -> bool {
        !matches!(self, HistoryChange::Unchanged)
    }
}

/// Records `event` in `items` by OpenShift's rule, comparing with `items[0]` only:
///
/// | `items[0]` vs event | action |
/// |---|---|
/// | no history | `[event]` |
/// | same reference, image and generation | nothing |
/// | same reference and image, other generation | update the generation in place |
/// | same reference, other image | update image and generation in place |
/// | same image, other reference | update reference and generation in place |
/// | both differ | prepend |
///
/// An empty `image` counts as an image like any other, as on OpenShift: a `reference: true` tag
/// whose `from` changes keeps one entry, updated in place. Then the history is cut to `max_history` entries (0 keeps everything), oldest dropped first.
pub fn record_tag_event(
    items: &mut Vec<TagEvent>,
    event: TagEvent,
    max_history: usize,
) -> HistoryChange {
    let change = match items.first_mut() {
        None => {
            items.push(event);
            HistoryChange::Started
        }
        Some(current) => {
            let same_reference = current.docker_image_reference == event.docker_image_reference;
            let same_image = current.image == event.image;
            if same_reference && same_image {
                if current.generation == event.generation {
                    HistoryChange::Unchanged
                } else {
                    current.generation = event.generation;
                    HistoryChange::UpdatedInPlace
                }
            } else if same_reference {
                current.image = event.image;
                current.generation = event.generation;
                HistoryChange::UpdatedInPlace
            } else if same_image {
                current.docker_image_reference = event.docker_image_reference;
                current.generation = event.generation;
                HistoryChange::UpdatedInPlace
            } else {
                items.insert(0, event);
                HistoryChange::Prepended
            }
        }
    };
    cap_history(items, max_history);
    change
}

/// Cuts `items` to at most `max_history` entries, newest kept; 0 means no limit.
pub fn cap_history(items: &mut Vec<TagEvent>, max_history: usize) {
    if max_history > 0 && items.len() > max_history {
        items.truncate(max_history);
    }
}

/// The newest stream generation a tag has been processed for: the larger of its current event's
/// and its condition's generation. A stream whose `metadata.generation` is newer has a spec the tag
/// has not been imported for yet.
pub fn observed_generation(tag: Option<&NamedTagEventList>) -> Option<i64> {
    let tag = tag?;
    let from_event = tag.items.first().map(|e| e.generation);
    let from_condition = tag.conditions.iter().map(|c| c.generation).max();
    from_event.max(from_condition)
}

/// A failed import, as it is recorded on the tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportFailure {
    /// PascalCase reason (`NotFound`, `Unauthorized`, …).
    pub reason: String,
    /// Human-readable message, free of credentials.
    pub message: String,
}

/// Records a failed import as the tag's single `ImportSuccess=False` condition. History is not
/// touched. Returns whether anything changed: an identical failure for the same generation changes
/// nothing, and `lastTransitionTime` is kept while the condition stays `False` (only reason,
/// message or generation are rewritten).
pub fn record_import_failure(
    conditions: &mut Vec<TagEventCondition>,
    failure: &ImportFailure,
    generation: i64,
    now: &Time,
) -> bool {
    let previous = conditions
        .iter()
        .find(|c| c.type_ == CONDITION_IMPORT_SUCCESS && c.status == "False");
    let desired = TagEventCondition {
        type_: CONDITION_IMPORT_SUCCESS.to_owned(),
        status: "False".to_owned(),
        last_transition_time: Some(
            previous
                .and_then(|c| c.last_transition_time.clone())
                .unwrap_or_else(|| now.clone()),
        ),
        reason: Some(failure.reason.clone()),
        message: Some(failure.message.clone()),
        generation,
    };
    if conditions.len() == 1 && conditions[0] == desired {
        return false;
    }
    *conditions = vec![desired];
    true
}

/// Records a successful import: the tag's conditions are cleared. Returns whether anything changed.
pub fn record_import_success(conditions: &mut Vec<TagEventCondition>) -> bool {
    let changed = !conditions.is_empty();
    conditions.clear();
    changed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn time(seconds: i64) -> Time {
        Time(k8s_openapi::jiff::Timestamp::from_second(1_700_000_000 + seconds).unwrap())
    }

    fn event(reference: &str, image: &str, generation: i64, created: i64) -> TagEvent {
        TagEvent {
            created: time(created),
            docker_image_reference: reference.to_owned(),
            image: image.to_owned(),
            generation,
            platforms: Vec::new(),
        }
    }

    #[test]
    fn the_history_table_is_applied_against_items_zero_only() {
        // (name, history before, new event, expected history after, expected change)
        type Case = (
            &'static str,
            Vec<TagEvent>,
            TagEvent,
            Vec<TagEvent>,
            HistoryChange,
        );
        let cases: Vec<Case> = vec![
            (
                "no history",
                vec![],
                event("r@a", "a", 1, 10),
                vec![event("r@a", "a", 1, 10)],
                HistoryChange::Started,
            ),
            (
                "same reference, image and generation",
                vec![event("r@a", "a", 1, 0)],
                event("r@a", "a", 1, 10),
                vec![event("r@a", "a", 1, 0)],
                HistoryChange::Unchanged,
            ),
            (
                "same reference and image, other generation",
                vec![event("r@a", "a", 1, 0)],
                event("r@a", "a", 2, 10),
                vec![event("r@a", "a", 2, 0)],
                HistoryChange::UpdatedInPlace,
            ),
            (
                "same reference, other image",
                vec![event("r:latest", "a", 1, 0)],
                event("r:latest", "b", 2, 10),
                vec![event("r:latest", "b", 2, 0)],
                HistoryChange::UpdatedInPlace,
            ),
            (
                "other reference, same image",
                vec![event("old@a", "a", 1, 0)],
                event("new@a", "a", 2, 10),
                vec![event("new@a", "a", 2, 0)],
                HistoryChange::UpdatedInPlace,
            ),
            (
                "both differ",
                vec![event("r@a", "a", 1, 0)],
                event("r@b", "b", 1, 10),
                vec![event("r@b", "b", 1, 10), event("r@a", "a", 1, 0)],
                HistoryChange::Prepended,
            ),
            (
                "older entries are not compared",
                vec![event("r@b", "b", 1, 5), event("r@a", "a", 1, 0)],
                event("r@a", "a", 1, 10),
                vec![
                    event("r@a", "a", 1, 10),
                    event("r@b", "b", 1, 5),
                    event("r@a", "a", 1, 0),
                ],
                HistoryChange::Prepended,
            ),
            (
                // openshift-apiserver AddTagEventToImageStream: "" equals "" like any image.
                "a reference-only entry whose reference changes is updated in place",
                vec![event("nginx:1.24", "", 1, 0)],
                event("nginx:1.25", "", 2, 10),
                vec![event("nginx:1.25", "", 2, 0)],
                HistoryChange::UpdatedInPlace,
            ),
            (
                "a reference-only event after an imported one is prepended",
                vec![event("nginx@a", "a", 1, 0)],
                event("nginx:1.25", "", 2, 10),
                vec![event("nginx:1.25", "", 2, 10), event("nginx@a", "a", 1, 0)],
                HistoryChange::Prepended,
            ),
        ];
        for (name, before, new, after, change) in cases {
            let mut items = before;
            assert_eq!(record_tag_event(&mut items, new, 0), change, "{name}");
            assert_eq!(items, after, "{name}");
        }
    }

    #[test]
    fn a_to_b_to_a_gives_three_entries() {
        let mut items = Vec::new();
        record_tag_event(&mut items, event("r@a", "a", 1, 0), 10);
        record_tag_event(&mut items, event("r@b", "b", 1, 1), 10);
        record_tag_event(&mut items, event("r@a", "a", 1, 2), 10);
        let images: Vec<&str> = items.iter().map(|e| e.image.as_str()).collect();
        assert_eq!(images, ["a", "b", "a"]);
    }

    #[test]
    fn the_history_cap_drops_the_oldest_entries() {
        let mut items = Vec::new();
        for i in 0..5 {
            record_tag_event(
                &mut items,
                event(&format!("r@{i}"), &i.to_string(), 1, i),
                3,
            );
        }
        let images: Vec<&str> = items.iter().map(|e| e.image.as_str()).collect();
        assert_eq!(images, ["4", "3", "2"]);
    }

    #[test]
    fn a_cap_of_zero_keeps_everything() {
        let mut items = Vec::new();
        for i in 0..25 {
            record_tag_event(
                &mut items,
                event(&format!("r@{i}"), &i.to_string(), 1, i),
                0,
            );
        }
        assert_eq!(items.len(), 25);
    }

    #[test]
    fn observed_generation_is_the_newest_of_event_and_condition() {
        let mut tag = NamedTagEventList {
            tag: "latest".into(),
            items: vec![event("r@a", "a", 3, 0)],
            conditions: Vec::new(),
        };
        assert_eq!(observed_generation(Some(&tag)), Some(3));
        record_import_failure(
            &mut tag.conditions,
            &ImportFailure {
                reason: "NotFound".into(),
                message: "gone".into(),
            },
            5,
            &time(0),
        );
        assert_eq!(observed_generation(Some(&tag)), Some(5));
        assert_eq!(observed_generation(None), None);
    }

    #[test]
    fn an_identical_failure_is_not_rewritten_and_keeps_its_transition_time() {
        let failure = ImportFailure {
            reason: "InternalError".into(),
            message: "registry down".into(),
        };
        let mut conditions = Vec::new();
        assert!(record_import_failure(
            &mut conditions,
            &failure,
            1,
            &time(0)
        ));
        assert!(!record_import_failure(
            &mut conditions,
            &failure,
            1,
            &time(60)
        ));
        assert_eq!(conditions.len(), 1);
        assert_eq!(conditions[0].last_transition_time, Some(time(0)));
    }

    #[test]
    fn a_new_failure_message_is_rewritten_but_keeps_the_transition_time() {
        let mut conditions = Vec::new();
        let first = ImportFailure {
            reason: "InternalError".into(),
            message: "registry down".into(),
        };
        let second = ImportFailure {
            reason: "NotFound".into(),
            message: "tag gone".into(),
        };
        record_import_failure(&mut conditions, &first, 1, &time(0));
        assert!(record_import_failure(
            &mut conditions,
            &second,
            2,
            &time(60)
        ));
        assert_eq!(conditions.len(), 1);
        assert_eq!(conditions[0].reason.as_deref(), Some("NotFound"));
        assert_eq!(conditions[0].generation, 2);
        assert_eq!(conditions[0].last_transition_time, Some(time(0)));
    }

    #[test]
    fn success_clears_conditions_and_reports_whether_there_were_any() {
        let mut conditions = Vec::new();
        assert!(!record_import_success(&mut conditions));
        record_import_failure(
            &mut conditions,
            &ImportFailure {
                reason: "Timeout".into(),
                message: "slow".into(),
            },
            1,
            &time(0),
        );
        assert!(record_import_success(&mut conditions));
        assert!(conditions.is_empty());
    }
}
