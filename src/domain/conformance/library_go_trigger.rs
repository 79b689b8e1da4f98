//! openshift/library-go `pkg/image/trigger/annotations_test.go` (TestAnnotationJSONPath,
//! TestAnnotationsReactor), over [`crate::domain::trigger_annotation`] and
//! [`crate::domain::trigger_resolution`].
//!
//! [`react`] stands in for library-go's `AnnotationReactor.ImageChanged`: parse the annotation, find
//! each trigger's container, skip paused triggers, look the tag up in a fake tag retriever and plan
//! the write. Upstream's reactor cases use a StatefulSet; each runs here on all four workload kinds,
//! with the kind's pod spec path, as library-go's `GetPodSpecV1` gives each of them its own.
//!
//! The later tables pin behaviour of `annotations.go` (`CalculateAnnotationTriggers`,
//! `ContainerForObjectFieldPath`, `UpdateObjectFromImages`) and `referencemutator/pods.go`
//! (`GetPodSpecV1`, `GetContainerByName`, `GetContainerByIndex`) that the upstream tests reach but do
//! not pin. Upstream has no test of its own for them: each such case cites the function whose code
//! gives its expected outcome.

use std::collections::HashSet;

use crate::domain::trigger_annotation::{
    ContainerList, ContainerLocation, ContainerSelector, FieldPathProblem, ImageFieldPath,
    TagReferenceProblem, TriggerError, UnknownContainer, WorkloadKind, locate_containers,
    parse_annotation,
};
use crate::domain::trigger_resolution::{ContainerImage, PodImages, WantedImage, plan_image_apply};

use ContainerList::{Containers, InitContainers};

/// The namespace of upstream's test StatefulSet.
const WORKLOAD_NAMESPACE: &str = "default";

/// What the fake tag retriever knows: `(namespace, "<stream>:<tag>", image reference)`.
type Tags = &'static [(&'static str, &'static str, &'static str)];

/// Upstream's one resolvable tag: `other/stream-1:1` → `image-lookup-1`.
const STREAM_1: Tags = &[("other", "stream-1:1", "image-lookup-1")];

/// A pod spec in the notation of upstream's `testStatefulSet`: container name → image, a leading `-`
/// marking an init container; each list sorted by name, as upstream sorts it.
fn pod(containers: &[(&str, &str)]) -> PodImages {
    let mut pod = PodImages::default();
    let mut sorted = containers.to_vec();
    sorted.sort();
    for (name, image) in sorted {
        let (list, name) = match name.strip_prefix('-') {
            Some(init) => (&mut pod.init_containers, init),
            None => (&mut pod.containers, name),
        };
        list.push(ContainerImage {
            name: name.to_owned(),
            image: image.to_owned(),
        });
    }
    pod
}

/// The annotation value with `{podSpec}` replaced by the pod spec path of `kind`.
fn for_kind(annotation: &str, kind: WorkloadKind) -> String {
    annotation.replace("{podSpec}", kind.pod_spec_path())
}

/// library-go's `AnnotationReactor.ImageChanged` over this crate's rules: the pod spec after the
/// update, `None` when nothing is written, or why the annotation is refused.
fn react(
    kind: WorkloadKind,
    annotation: &str,
    pod: &PodImages,
    tags: Tags,
) -> Result<Option<PodImages>, TriggerError> {
    let triggers = parse_annotation(annotation, kind, WORKLOAD_NAMESPACE)?;
    let locations = locate_containers(
        &triggers,
        &pod.names(Containers),
        &pod.names(InitContainers),
    )?;
    let wanted: Vec<WantedImage> = triggers
        .iter()
        .zip(locations)
        .filter(|(trigger, _)| !trigger.paused)
        .filter_map(|(trigger, location)| {
            let name = trigger.image_stream_tag();
            let (_, _, image) = tags
                .iter()
                .find(|(namespace, tag, _)| *namespace == trigger.namespace && *tag == name)?;
            Some(WantedImage {
                location,
                image: (*image).to_owned(),
            })
        })
        .collect();
    let Some(plan) = plan_image_apply(pod, &wanted, &HashSet::new()) else {
        return Ok(None);
    };
    let mut updated = pod.clone();
    for change in plan.changes {
        let list = match change.list {
            Containers => &mut updated.containers,
            InitContainers => &mut updated.init_containers,
        };
        if let Some(container) = list.iter_mut().find(|c| c.name == change.container) {
            container.image = change.to;
        }
    }
    Ok(Some(updated))
}

/// What the reactor must do with a case.
enum Reaction {
    /// No error and no update (upstream: neither `expected` nor `expectedErr`).
    Unchanged,
    /// The pod spec after the update, in [`pod`] notation (upstream: `expected`).
    Updated(&'static [(&'static str, &'static str)]),
    /// The annotation is refused with this error (upstream: `expectedErr`).
    Refused(fn(&TriggerError) -> bool),
}

struct ReactorCase {
    name: &'static str,
    /// The annotation, `{podSpec}` standing for the workload's pod spec path.
    annotation: &'static str,
    containers: &'static [(&'static str, &'static str)],
    tags: Tags,
    expected: Reaction,
}

fn assert_reactions(cases: &[ReactorCase]) {
    for case in cases {
        for kind in WorkloadKind::ALL {
            let annotation = for_kind(case.annotation, kind);
            let before = pod(case.containers);
            let outcome = react(kind, &annotation, &before, case.tags);
            let context = format!("{} on a {kind}: {annotation}", case.name);
            match (&case.expected, outcome) {
                (Reaction::Unchanged, Ok(None)) => {}
                (Reaction::Updated(after), Ok(Some(updated))) => {
                    assert_eq!(updated, pod(after), "{context}")
                }
                (Reaction::Refused(is_expected), Err(error)) => {
                    assert!(is_expected(&error), "{context}: refused with {error:?}")
                }
                (_, outcome) => panic!("{context}: unexpected outcome {outcome:?}"),
            }
        }
    }
}

/// One trigger on `stream-1:1` in namespace `other` writing `{podSpec}.<path>`, as upstream marshals it.
macro_rules! other_stream_1 {
    ($path:literal) => {
        concat!(
            r#"[{"from":{"kind":"ImageStreamTag","name":"stream-1:1","namespace":"other"},"fieldPath":"{podSpec}."#,
            $path,
            r#""}]"#
        )
    };
}

#[test]
fn the_json_path_of_a_named_container_image_parses() {
    // annotations_test.go TestAnnotationJSONPath
    let path = r#"spec.template.spec.containers[?(@.name=="test")].image"#;
    let parsed = ImageFieldPath::parse(path, WorkloadKind::StatefulSet);
    assert_eq!(
        parsed,
        Ok(ImageFieldPath {
            workload: WorkloadKind::StatefulSet,
            list: Containers,
            selector: ContainerSelector::Name("test".to_owned()),
        })
    );
    assert_eq!(parsed.map(|p| p.to_string()).as_deref(), Ok(path));
}

#[test]
fn the_reactor_cases_of_library_go_agree() {
    // annotations_test.go TestAnnotationsReactor, in upstream order. Upstream's object is an
    // apps/v1beta1 StatefulSet, an API version Kubernetes no longer serves: apps/v1 stands in for it.
    // Upstream's triggers name namespace "other" from a workload in "default"; the trigger controller
    // additionally checks that the workload may read that namespace (README), which is not a parsing
    // rule and is left out here.
    assert_reactions(&[
        ReactorCase {
            // Upstream's object has no annotation at all; `null` is what `oc set triggers` leaves
            // after removing the last trigger, the nearest an annotated object comes to that.
            name: "an object without triggers",
            annotation: "null",
            containers: &[],
            tags: &[],
            expected: Reaction::Unchanged,
        },
        ReactorCase {
            name: "no container, expect error",
            annotation: other_stream_1!(r#"containers[?(@.name==\"test\")].image"#),
            containers: &[],
            tags: STREAM_1,
            expected: Reaction::Refused(|error| {
                matches!(
                    error,
                    TriggerError::UnknownContainer {
                        index: 0,
                        source: UnknownContainer::NoSuchName { name, .. },
                        ..
                    } if name == "test"
                )
            }),
        },
        ReactorCase {
            name: "container, but the path stops at the container",
            annotation: other_stream_1!(r#"containers[?(@.name==\"test\")]"#),
            containers: &[("test", "")],
            tags: STREAM_1,
            expected: Reaction::Refused(|error| {
                matches!(
                    error,
                    TriggerError::InvalidFieldPath { index: 0, problem: FieldPathProblem::NotImage { rest }, .. }
                        if rest.is_empty()
                )
            }),
        },
        ReactorCase {
            name: "container, but the selector is never closed",
            annotation: other_stream_1!(r#"containers[?(@.name==\"test\").image"#),
            containers: &[("test", "")],
            tags: STREAM_1,
            expected: Reaction::Refused(|error| {
                matches!(
                    error,
                    TriggerError::InvalidFieldPath {
                        index: 0,
                        problem: FieldPathProblem::UnclosedSelector,
                        ..
                    }
                )
            }),
        },
        ReactorCase {
            name: "container, but the selector is no filter",
            annotation: other_stream_1!("containers[@.name=test].image"),
            containers: &[("test", "")],
            tags: STREAM_1,
            expected: Reaction::Refused(|error| {
                matches!(
                    error,
                    TriggerError::InvalidFieldPath { index: 0, problem: FieldPathProblem::InvalidSelector { selector }, .. }
                        if selector == "@.name=test"
                )
            }),
        },
        ReactorCase {
            name: "no ref, no change",
            annotation: other_stream_1!(r#"containers[?(@.name==\"test\")].image"#),
            containers: &[("test", "")],
            tags: &[],
            expected: Reaction::Unchanged,
        },
        ReactorCase {
            name: "resolved without a change in another namespace",
            annotation: other_stream_1!(r#"containers[?(@.name==\"test\")].image"#),
            containers: &[("test", "")],
            tags: STREAM_1,
            expected: Reaction::Updated(&[("test", "image-lookup-1")]),
        },
        ReactorCase {
            name: "resolved for init containers",
            annotation: other_stream_1!(r#"initContainers[?(@.name==\"test\")].image"#),
            containers: &[("-test", "")],
            tags: STREAM_1,
            expected: Reaction::Updated(&[("-test", "image-lookup-1")]),
        },
        ReactorCase {
            name: "will not resolve if not automatic",
            annotation: r#"[{"from":{"kind":"ImageStreamTag","name":"stream-1:1","namespace":"other"},"fieldPath":"{podSpec}.containers[?(@.name==\"test\")].image","paused":true}]"#,
            containers: &[("test", "")],
            tags: STREAM_1,
            expected: Reaction::Unchanged,
        },
        ReactorCase {
            name: "will fire if only one trigger resolves",
            annotation: r#"[{"from":{"kind":"ImageStreamTag","name":"stream-1:1","namespace":"other"},"fieldPath":"{podSpec}.containers[?(@.name==\"test\")].image"},{"from":{"kind":"ImageStreamTag","name":"stream-2:1","namespace":"other"},"fieldPath":"{podSpec}.containers[?(@.name==\"test2\")].image"}]"#,
            containers: &[("test", ""), ("test2", "")],
            tags: STREAM_1,
            expected: Reaction::Updated(&[("test", "image-lookup-1"), ("test2", "")]),
        },
        ReactorCase {
            name: "will fire if a trigger has already been resolved before",
            annotation: r#"[{"from":{"kind":"ImageStreamTag","name":"stream-1:1","namespace":"other"},"fieldPath":"{podSpec}.containers[?(@.name==\"test\")].image"},{"from":{"kind":"ImageStreamTag","name":"stream-2:1","namespace":"other"},"fieldPath":"{podSpec}.containers[?(@.name==\"test2\")].image"}]"#,
            containers: &[("test", ""), ("test2", "old-image")],
            tags: STREAM_1,
            expected: Reaction::Updated(&[("test", "image-lookup-1"), ("test2", "old-image")]),
        },
        ReactorCase {
            name: "will fire if both triggers are resolved",
            annotation: r#"[{"from":{"kind":"ImageStreamTag","name":"stream-1:1","namespace":"other"},"fieldPath":"{podSpec}.containers[?(@.name==\"test\")].image"},{"from":{"kind":"ImageStreamTag","name":"stream-1:1","namespace":"other"},"fieldPath":"{podSpec}.containers[?(@.name==\"test2\")].image"}]"#,
            containers: &[("test", ""), ("test2", "")],
            tags: STREAM_1,
            expected: Reaction::Updated(&[("test", "image-lookup-1"), ("test2", "image-lookup-1")]),
        },
    ]);
}

#[test]
fn the_reactor_decodes_annotations_as_calculate_annotation_triggers_does() {
    // annotations.go CalculateAnnotationTriggers and UpdateObjectFromImages (no upstream test).
    assert_reactions(&[
        ReactorCase {
            name: "two triggers with the same fieldPath",
            annotation: r#"[{"from":{"kind":"ImageStreamTag","name":"stream-1:1","namespace":"other"},"fieldPath":"{podSpec}.containers[0].image"},{"from":{"kind":"ImageStreamTag","name":"stream-2:1","namespace":"other"},"fieldPath":"{podSpec}.containers[0].image"}]"#,
            containers: &[("test", "")],
            tags: STREAM_1,
            expected: Reaction::Refused(|error| {
                matches!(
                    error,
                    TriggerError::DuplicateFieldPath {
                        first: 0,
                        second: 1,
                        ..
                    }
                )
            }),
        },
        ReactorCase {
            name: "not JSON",
            annotation: "[{",
            containers: &[("test", "")],
            tags: STREAM_1,
            expected: Reaction::Refused(|error| matches!(error, TriggerError::InvalidJson { .. })),
        },
        ReactorCase {
            name: "paused: false",
            annotation: r#"[{"from":{"kind":"ImageStreamTag","name":"stream-1:1","namespace":"other"},"fieldPath":"{podSpec}.containers[0].image","paused":false}]"#,
            containers: &[("test", "")],
            tags: STREAM_1,
            expected: Reaction::Updated(&[("test", "image-lookup-1")]),
        },
        ReactorCase {
            // A trigger follows its tag into the other list by name: GetContainerByName looks in
            // both lists whatever list the path names.
            name: "a containers[...] path naming an init container",
            annotation: other_stream_1!(r#"containers[?(@.name==\"test\")].image"#),
            containers: &[("-test", ""), ("app", "")],
            tags: STREAM_1,
            expected: Reaction::Updated(&[("-test", "image-lookup-1"), ("app", "")]),
        },
        ReactorCase {
            name: "an initContainers[...] index",
            annotation: other_stream_1!("initContainers[1].image"),
            containers: &[("-a", "x"), ("-b", "y"), ("b", "z")],
            tags: STREAM_1,
            expected: Reaction::Updated(&[("-a", "x"), ("-b", "image-lookup-1"), ("b", "z")]),
        },
        ReactorCase {
            name: "the image is already the tag's",
            annotation: other_stream_1!("containers[0].image"),
            containers: &[("test", "image-lookup-1")],
            tags: STREAM_1,
            expected: Reaction::Unchanged,
        },
    ]);
}

#[test]
fn where_the_reactor_ignores_or_refuses_we_deliberately_differ() {
    // annotations.go CalculateAnnotationTriggers and UpdateObjectFromImages (no upstream test). Each
    // case keeps upstream's outcome in its comment; the expected value is ours. README, "Where it
    // deliberately differs": OpenShift skips what it cannot use without a word, this operator refuses
    // the whole annotation with a Warning Event and changes nothing, so a typo is seen.
    assert_reactions(&[
        ReactorCase {
            // Upstream: json.Unmarshal of "" fails, the reactor returns the error. Ours: no triggers,
            // as an emptied annotation means no triggers.
            name: "an empty annotation value",
            annotation: "",
            containers: &[("test", "")],
            tags: STREAM_1,
            expected: Reaction::Unchanged,
        },
        ReactorCase {
            // Upstream: a fieldPath outside the workload's pod spec is skipped (`continue`).
            name: "a fieldPath outside the pod spec",
            annotation: r#"[{"from":{"kind":"ImageStreamTag","name":"stream-1:1","namespace":"other"},"fieldPath":"spec.containers[0].image"}]"#,
            containers: &[("test", "")],
            tags: STREAM_1,
            expected: Reaction::Refused(|error| {
                matches!(
                    error,
                    TriggerError::InvalidFieldPath {
                        problem: FieldPathProblem::WrongPodSpec { .. },
                        ..
                    }
                )
            }),
        },
        ReactorCase {
            // Upstream: the tag lookup of a name without `:tag` finds nothing; skipped.
            name: "a from.name without a tag",
            annotation: r#"[{"from":{"kind":"ImageStreamTag","name":"stream-1","namespace":"other"},"fieldPath":"{podSpec}.containers[0].image"}]"#,
            containers: &[("test", "")],
            tags: STREAM_1,
            expected: Reaction::Refused(|error| {
                matches!(
                    error,
                    TriggerError::InvalidTagReference {
                        problem: TagReferenceProblem::MissingTag,
                        ..
                    }
                )
            }),
        },
        ReactorCase {
            // Upstream: `from.kind` is never read; the name is looked up as a tag and written.
            name: "a from.kind other than ImageStreamTag",
            annotation: r#"[{"from":{"kind":"DockerImage","name":"stream-1:1","namespace":"other"},"fieldPath":"{podSpec}.containers[0].image"}]"#,
            containers: &[("test", "")],
            tags: STREAM_1,
            expected: Reaction::Refused(
                |error| matches!(error, TriggerError::UnsupportedSourceKind { kind, .. } if kind == "DockerImage"),
            ),
        },
        ReactorCase {
            // Upstream: duplicates are only equal strings; both triggers write, the last one wins.
            name: "two paths to the same container",
            annotation: r#"[{"from":{"kind":"ImageStreamTag","name":"stream-1:1","namespace":"other"},"fieldPath":"{podSpec}.containers[0].image"},{"from":{"kind":"ImageStreamTag","name":"stream-1:1","namespace":"other"},"fieldPath":"{podSpec}.containers[?(@.name==\"test\")].image"}]"#,
            containers: &[("test", "")],
            tags: STREAM_1,
            expected: Reaction::Refused(|error| {
                matches!(
                    error,
                    TriggerError::DuplicateFieldPath {
                        first: 0,
                        second: 1,
                        ..
                    }
                )
            }),
        },
        ReactorCase {
            // Upstream: Go decodes `paused` into a bool and fails on a string. Ours: OpenShift's docs
            // printed the string form, so it is read as the boolean it spells.
            name: "paused: \"true\"",
            annotation: r#"[{"from":{"kind":"ImageStreamTag","name":"stream-1:1","namespace":"other"},"fieldPath":"{podSpec}.containers[0].image","paused":"true"}]"#,
            containers: &[("test", "")],
            tags: STREAM_1,
            expected: Reaction::Unchanged,
        },
        ReactorCase {
            // Upstream: as above, a decode error.
            name: "paused: \"false\"",
            annotation: r#"[{"from":{"kind":"ImageStreamTag","name":"stream-1:1","namespace":"other"},"fieldPath":"{podSpec}.containers[0].image","paused":"false"}]"#,
            containers: &[("test", "")],
            tags: STREAM_1,
            expected: Reaction::Updated(&[("test", "image-lookup-1")]),
        },
    ]);
}

/// Where a field path leads in a pod spec, or why it leads nowhere.
#[derive(Debug, PartialEq)]
enum Resolved {
    At(ContainerList, usize),
    BadPath(FieldPathProblem),
    Missing(UnknownContainer),
}

/// The field path `{podSpec}.<rest>` on a `kind` whose pod spec is `pod`.
fn resolve(kind: WorkloadKind, path: &str, pod: &PodImages) -> Resolved {
    let path = for_kind(path, kind);
    match ImageFieldPath::parse(&path, kind) {
        Err(problem) => Resolved::BadPath(problem),
        Ok(path) => match path.find_container(&pod.names(Containers), &pod.names(InitContainers)) {
            Ok(ContainerLocation { list, index }) => Resolved::At(list, index),
            Err(missing) => Resolved::Missing(missing),
        },
    }
}

#[test]
fn field_paths_lead_to_the_container_library_go_finds() {
    // annotations.go ContainerForObjectFieldPath and UpdateObjectFromImages with pods.go
    // GetContainerByName / GetContainerByIndex (no upstream test): on every kind, the same pod.
    let containers = [("web", "a"), ("sidecar", "b"), ("-migrate", "c")];
    let pod = pod(&containers);
    let no_such_name = |name: &str| {
        Resolved::Missing(UnknownContainer::NoSuchName {
            name: name.to_owned(),
            containers: vec!["sidecar".to_owned(), "web".to_owned()],
            init_containers: vec!["migrate".to_owned()],
        })
    };
    let invalid_selector = |selector: &str| {
        Resolved::BadPath(FieldPathProblem::InvalidSelector {
            selector: selector.to_owned(),
        })
    };
    let not_image = |rest: &str| {
        Resolved::BadPath(FieldPathProblem::NotImage {
            rest: rest.to_owned(),
        })
    };
    let cases = [
        (
            r#"{podSpec}.containers[?(@.name=="web")].image"#,
            Resolved::At(Containers, 1),
        ),
        ("{podSpec}.containers[0].image", Resolved::At(Containers, 0)),
        (
            "{podSpec}.initContainers[0].image",
            Resolved::At(InitContainers, 0),
        ),
        (
            r#"{podSpec}.initContainers[?(@.name=="migrate")].image"#,
            Resolved::At(InitContainers, 0),
        ),
        // GetContainerByName looks in both lists, whatever list the path names.
        (
            r#"{podSpec}.containers[?(@.name=="migrate")].image"#,
            Resolved::At(InitContainers, 0),
        ),
        (
            r#"{podSpec}.initContainers[?(@.name=="web")].image"#,
            Resolved::At(Containers, 1),
        ),
        // strconv.Atoi reads leading zeros.
        (
            "{podSpec}.containers[01].image",
            Resolved::At(Containers, 1),
        ),
        // GetContainerByIndex: out of range, no such container.
        (
            "{podSpec}.containers[2].image",
            Resolved::Missing(UnknownContainer::IndexOutOfRange {
                list: Containers,
                index: 2,
                len: 2,
            }),
        ),
        (
            "{podSpec}.initContainers[1].image",
            Resolved::Missing(UnknownContainer::IndexOutOfRange {
                list: InitContainers,
                index: 1,
                len: 1,
            }),
        ),
        (
            r#"{podSpec}.containers[?(@.name=="api")].image"#,
            no_such_name("api"),
        ),
        // Refused upstream as "no such container" (a negative index, an empty or spaced selector);
        // refused here as a selector that is not one.
        ("{podSpec}.containers[-1].image", invalid_selector("-1")),
        ("{podSpec}.containers[].image", invalid_selector("")),
        (
            r#"{podSpec}.containers[?(@.name == "web")].image"#,
            invalid_selector(r#"?(@.name == "web")"#),
        ),
        (
            r#"{podSpec}.containers[?(@.name=="")].image"#,
            Resolved::BadPath(FieldPathProblem::InvalidContainerName {
                name: String::new(),
            }),
        ),
        // parseContainerReference: neither `containers[` nor `initContainers[`.
        (
            "{podSpec}.volumes[0].image",
            Resolved::BadPath(FieldPathProblem::NoContainerList),
        ),
        (
            "{podSpec}.ephemeralContainers[0].image",
            Resolved::BadPath(FieldPathProblem::NoContainerList),
        ),
        (
            "{podSpec}.containers[0.image",
            Resolved::BadPath(FieldPathProblem::UnclosedSelector),
        ),
        // UpdateObjectFromImages: the rest after the selector must be `image`.
        ("{podSpec}.containers[0].env", not_image(".env")),
        ("{podSpec}.containers[0].image.tag", not_image(".image.tag")),
        ("{podSpec}.containers[0]", not_image("")),
    ];
    for kind in WorkloadKind::ALL {
        for (path, expected) in &cases {
            assert_eq!(&resolve(kind, path, &pod), expected, "{path} on a {kind}");
        }
    }
}

#[test]
fn field_paths_library_go_reads_differently_on_purpose() {
    // annotations.go parseContainerReference / findContainerBySelector (no upstream test). Each
    // case keeps upstream's outcome in its comment; the expected value is ours (README, "Where it
    // deliberately differs").
    let pod = pod(&[("web", "a"), ("sidecar", "b")]);
    let cases = [
        // Upstream: the `.` after `]` is optional, so `]image` writes container 0. Ours: only the
        // form every writer writes, `].image`.
        (
            "{podSpec}.containers[0]image",
            Resolved::BadPath(FieldPathProblem::NotImage {
                rest: "image".to_owned(),
            }),
        ),
        // Upstream: the index is whatever strconv.Atoi reads, signs included, so these write
        // containers 1 and 0. Ours: a JSONPath index, plain digits.
        (
            "{podSpec}.containers[+1].image",
            Resolved::BadPath(FieldPathProblem::InvalidSelector {
                selector: "+1".to_owned(),
            }),
        ),
        (
            "{podSpec}.containers[-0].image",
            Resolved::BadPath(FieldPathProblem::InvalidSelector {
                selector: "-0".to_owned(),
            }),
        ),
        // Upstream: only `"` quotes a name; this is "no such container". Ours: JSONPath's single
        // quotes too, as OpenShift's docs printed them (spec §4).
        (
            r#"{podSpec}.containers[?(@.name=='web')].image"#,
            Resolved::At(Containers, 1),
        ),
    ];
    for kind in WorkloadKind::ALL {
        for (path, expected) in &cases {
            assert_eq!(&resolve(kind, path, &pod), expected, "{path} on a {kind}");
        }
    }
}

#[test]
fn a_path_into_another_kinds_pod_spec_is_refused() {
    // annotations.go ContainerForObjectFieldPath ("field path is not valid") and
    // UpdateObjectFromImages (skipped: "did not match base path"); pods.go GetPodSpecV1 for the
    // paths (no upstream test). Upstream refuses or silently skips; ours refuses, as every path
    // here leads nowhere on the kind it is written on.
    let pod = pod(&[("web", "a")]);
    let template = "spec.template.spec.containers[0].image";
    let cron_job = "spec.jobTemplate.spec.template.spec.containers[0].image";
    let cases = [
        (WorkloadKind::Deployment, cron_job),
        (WorkloadKind::StatefulSet, cron_job),
        (WorkloadKind::DaemonSet, cron_job),
        (WorkloadKind::CronJob, template),
        // A Pod's own pod spec path.
        (WorkloadKind::Deployment, "spec.containers[0].image"),
        // No pod spec prefix at all.
        (WorkloadKind::Deployment, "containers[0].image"),
        // ContainerForObjectFieldPath trims the pod spec path without its `.` and so reads this as
        // container 0; UpdateObjectFromImages requires the `.` and skips it.
        (
            WorkloadKind::Deployment,
            "spec.template.speccontainers[0].image",
        ),
        (WorkloadKind::Deployment, ""),
    ];
    for (kind, path) in cases {
        let expected = if path.is_empty() {
            FieldPathProblem::Empty
        } else {
            FieldPathProblem::WrongPodSpec { workload: kind }
        };
        assert_eq!(
            resolve(kind, path, &pod),
            Resolved::BadPath(expected),
            "{path} on a {kind}"
        );
    }
}

#[test]
fn workload_kinds_have_library_go_pod_spec_paths() {
    // pods.go GetPodSpecV1 (no upstream test): the pod spec path of each kind this crate triggers.
    let cases = [
        ("apps/v1", "Deployment", "spec.template.spec"),
        ("apps/v1", "StatefulSet", "spec.template.spec"),
        ("apps/v1", "DaemonSet", "spec.template.spec"),
        ("batch/v1", "CronJob", "spec.jobTemplate.spec.template.spec"),
    ];
    for (api_version, kind, pod_spec) in cases {
        let workload = WorkloadKind::from_type_meta(api_version, kind)
            .unwrap_or_else(|error| panic!("{api_version} {kind}: {error}"));
        assert_eq!(workload.pod_spec_path(), pod_spec, "{api_version} {kind}");
    }
}

#[test]
fn kinds_without_triggers_are_refused() {
    // pods.go GetPodSpecReferenceMutator (no upstream test). Kinds without a pod spec are refused
    // upstream too ("no PodSpec available").
    let refused_everywhere = [
        ("v1", "Service"),
        ("v1", "ConfigMap"),
        ("apps/v1", "ControllerRevision"),
    ];
    // Deliberate difference (README): library-go finds a pod spec in these, so its reactor would
    // write them, but OpenShift's trigger controller registers annotation triggers for Deployments,
    // StatefulSets, DaemonSets and CronJobs only, and Kubernetes no longer serves the old versions
    // (upstream's own test object is an apps/v1beta1 StatefulSet). Ours: refused.
    let refused_here = [
        ("v1", "Pod"),
        ("v1", "PodTemplate"),
        ("v1", "ReplicationController"),
        ("apps/v1", "ReplicaSet"),
        ("batch/v1", "Job"),
        ("apps/v1beta1", "StatefulSet"),
        ("apps/v1beta2", "Deployment"),
        ("extensions/v1beta1", "DaemonSet"),
        ("batch/v1beta1", "CronJob"),
        ("apps.openshift.io/v1", "DeploymentConfig"),
    ];
    for (api_version, kind) in refused_everywhere.into_iter().chain(refused_here) {
        let error = WorkloadKind::from_type_meta(api_version, kind).unwrap_err();
        assert!(
            matches!(
                &error,
                TriggerError::UnsupportedWorkload { api_version: v, kind: k } if v == api_version && k == kind
            ),
            "{api_version} {kind}: {error:?}"
        );
    }
}
