//! Trigger resolution: which image string an image trigger writes, decided from the ImageStream it
//! names, and which container images of a workload one server-side apply must carry. Pure: the trigger
//! controller (`crate::controller::triggers`) fetches the objects, applies the plan and publishes Events.

use std::collections::HashSet;
use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;
use serde_json::{Map, Value, json};
use thiserror::Error;

use crate::api::ImageStream;
use crate::api::image_stream::{REFERENCE_POLICY_LOCAL, TagEvent, TagReference};
use crate::domain::trigger_annotation::{
    ContainerList, ContainerLocation, ImageTrigger, WorkloadKind,
};

/// Why a trigger has no image to write yet. Not an error of the workload: the stream may be created,
/// or its tag imported, later; the trigger is skipped until then while the others still apply.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Unresolvable {
    /// The image stream does not exist (or could not be read as one).
    #[error("image stream {namespace}/{stream} does not exist")]
    StreamNotFound {
        /// The stream's namespace.
        namespace: String,
        /// The stream's name.
        stream: String,
    },
    /// The stream has the tag neither in its spec nor in its status.
    #[error("image stream {namespace}/{stream} has no tag {tag:?}")]
    TagNotFound {
        /// The stream's namespace.
        namespace: String,
        /// The stream's name.
        stream: String,
        /// The tag asked for.
        tag: String,
    },
    /// The tag exists but has no image yet (never imported, or every import failed).
    #[error("tag {tag:?} of image stream {namespace}/{stream} has no image yet")]
    NoHistory {
        /// The stream's namespace.
        namespace: String,
        /// The stream's name.
        stream: String,
        /// The tag.
        tag: String,
    },
}

impl Unresolvable {
    /// The PascalCase word for logs and metric labels.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::StreamNotFound { .. } => "StreamNotFound",
            Self::TagNotFound { .. } => "TagNotFound",
            Self::NoHistory { .. } => "NoHistory",
        }
    }
}

/// The image a trigger writes, given the stream it names (`None` when there is no such stream) and the
/// operator's internal registry host (`--internal-registry-hostname`); see [`resolve_tag_image`].
pub fn resolve_trigger(
    trigger: &ImageTrigger,
    stream: Option<&ImageStream>,
    internal_registry_host: Option<&str>,
) -> Result<String, Unresolvable> {
    let Some(stream) = stream else {
        return Err(Unresolvable::StreamNotFound {
            namespace: trigger.namespace.clone(),
            stream: trigger.stream.clone(),
        });
    };
    let spec = stream.spec.tag(&trigger.tag);
    let status = stream.status.as_ref().and_then(|s| s.tag(&trigger.tag));
    if spec.is_none() && status.is_none() {
        return Err(Unresolvable::TagNotFound {
            namespace: trigger.namespace.clone(),
            stream: trigger.stream.clone(),
            tag: trigger.tag.clone(),
        });
    }
    let current = status.and_then(|s| s.current());
    resolve_tag_image(
        &trigger.namespace,
        &trigger.stream,
        spec,
        current,
        internal_registry_host,
    )
    .ok_or_else(|| Unresolvable::NoHistory {
        namespace: trigger.namespace.clone(),
        stream: trigger.stream.clone(),
        tag: trigger.tag.clone(),
    })
}

/// The image string for a tag of stream `namespace/stream` with spec `spec` (absent for a tag that
/// exists only in the status) and current event `current` (`status.tags[].items[0]`); `None` without
/// a current image.
///
/// - `referencePolicy.type: Source` (the default): the event's `dockerImageReference`, a digest
///   reference to the source registry.
/// - `Local`: `<internal host>/<namespace>/<stream>@<digest>` when a host is configured, else the
///   source reference as for `Source`.
/// - `reference: true` tags (and any event without a digest): the event's reference as written, for
///   there is no digest to point a local path at.
pub fn resolve_tag_image(
    namespace: &str,
    stream: &str,
    spec: Option<&TagReference>,
    current: Option<&TagEvent>,
    internal_registry_host: Option<&str>,
) -> Option<String> {
    let event = current.filter(|event| !event.docker_image_reference.trim().is_empty())?;
    let literal = spec.is_some_and(TagReference::is_reference) || event.image.is_empty();
    let local = spec.is_some_and(|tag| tag.reference_policy_type() == REFERENCE_POLICY_LOCAL);
    match internal_registry_host.filter(|host| !host.is_empty()) {
        Some(host) if local && !literal => {
            Some(format!("{host}/{namespace}/{stream}@{}", event.image))
        }
        _ => Some(event.docker_image_reference.clone()),
    }
}

// ---------------------------------------------------------------------------------------------------
// What to write into the workload
// ---------------------------------------------------------------------------------------------------

/// One container of a pod spec as the workload has it now: its name and image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerImage {
    /// The container name (the key of the pod spec's container lists).
    pub name: String,
    /// The container image.
    pub image: String,
}

/// The names and images of a pod spec's `containers` and `initContainers`, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodImages {
    /// `containers`.
    pub containers: Vec<ContainerImage>,
    /// `initContainers`.
    pub init_containers: Vec<ContainerImage>,
}

impl PodImages {
    /// The containers of one list.
    pub fn list(&self, list: ContainerList) -> &[ContainerImage] {
        match list {
            ContainerList::Containers => &self.containers,
            ContainerList::InitContainers => &self.init_containers,
        }
    }

    /// The container at `location`, if the pod spec has it.
    pub fn get(&self, location: ContainerLocation) -> Option<&ContainerImage> {
        self.list(location.list).get(location.index)
    }

    /// The container names of one list, in order, as [`ImageFieldPath::find_container`] takes them.
    ///
    /// [`ImageFieldPath::find_container`]: crate::domain::trigger_annotation::ImageFieldPath::find_container
    pub fn names(&self, list: ContainerList) -> Vec<&str> {
        self.list(list).iter().map(|c| c.name.as_str()).collect()
    }
}

/// The image one acting trigger wants in the container it located.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WantedImage {
    /// Where the container is.
    pub location: ContainerLocation,
    /// The resolved image.
    pub image: String,
}

/// One container image that a write changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageChange {
    /// The list the container is in.
    pub list: ContainerList,
    /// The container name.
    pub container: String,
    /// The image before.
    pub from: String,
    /// The image after.
    pub to: String,
}

impl fmt::Display for ImageChange {
    /// `container web: <old> -> <new>` (`init container …` for init containers); a blank placeholder
    /// shows as `""`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.list {
            ContainerList::Containers => "container",
            ContainerList::InitContainers => "init container",
        };
        if self.from.trim().is_empty() {
            write!(
                f,
                "{what} {}: {:?} -> {}",
                self.container, self.from, self.to
            )
        } else {
            write!(f, "{what} {}: {} -> {}", self.container, self.from, self.to)
        }
    }
}

/// The container images one server-side apply of the workload carries, and the changes among them.
///
/// The apply carries every image the operator's field manager should own after it, not only the
/// changed ones: server-side apply releases (and, with no other owner, deletes) every field a manager
/// owned before and leaves out now, and a container without an image is invalid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImagesApply {
    /// Images of `containers`, in pod spec order.
    pub containers: Vec<ContainerImage>,
    /// Images of `initContainers`, in pod spec order.
    pub init_containers: Vec<ContainerImage>,
    /// The images that differ from the workload's, in pod spec order (containers first); never empty.
    pub changes: Vec<ImageChange>,
}

/// Plans the write of `wanted` images into `pod`, or `None` when every wanted image is already there
/// (then nothing is written at all).
///
/// `owned` names the containers whose `image` the operator's field manager owns now (see
/// [`owned_container_images`]); those still in the pod spec are carried at their current image, so
/// ownership of images set earlier by a trigger that is now paused, unresolvable or removed is kept
/// instead of released. A wanted location outside the pod spec is ignored.
pub fn plan_image_apply(
    pod: &PodImages,
    wanted: &[WantedImage],
    owned: &HashSet<(ContainerList, String)>,
) -> Option<ImagesApply> {
    let mut changes = Vec::new();
    let mut lists = [Vec::new(), Vec::new()];
    for (slot, list) in [ContainerList::Containers, ContainerList::InitContainers]
        .into_iter()
        .enumerate()
    {
        for (index, container) in pod.list(list).iter().enumerate() {
            let want = wanted
                .iter()
                .find(|w| w.location == ContainerLocation { list, index });
            let image = match want {
                Some(want) => {
                    if want.image != container.image {
                        changes.push(ImageChange {
                            list,
                            container: container.name.clone(),
                            from: container.image.clone(),
                            to: want.image.clone(),
                        });
                    }
                    want.image.clone()
                }
                None if owned.contains(&(list, container.name.clone())) => container.image.clone(),
                None => continue,
            };
            lists[slot].push(ContainerImage {
                name: container.name.clone(),
                image,
            });
        }
    }
    if changes.is_empty() {
        return None;
    }
    let [containers, init_containers] = lists;
    Some(ImagesApply {
        containers,
        init_containers,
        changes,
    })
}

/// The containers whose `image` field `manager` owns through server-side apply on a workload of kind
/// `workload`, read from the object's `metadata.managedFields`.
///
/// Only `Apply` entries of the main resource count: those are the fields a later apply by the same
/// manager would release by leaving them out.
pub fn owned_container_images(
    managed_fields: &[ManagedFieldsEntry],
    manager: &str,
    workload: WorkloadKind,
) -> HashSet<(ContainerList, String)> {
    let mut owned = HashSet::new();
    let entries = managed_fields.iter().filter(|entry| {
        entry.manager.as_deref() == Some(manager)
            && entry.operation.as_deref() == Some("Apply")
            && entry.subresource.as_deref().unwrap_or_default().is_empty()
    });
    for entry in entries {
        let Some(fields) = entry.fields_v1.as_ref() else {
            continue;
        };
        let pod_spec = workload
            .pod_spec_path()
            .split('.')
            .try_fold(&fields.0, |node, segment| node.get(format!("f:{segment}")));
        let Some(pod_spec) = pod_spec else {
            continue;
        };
        for list in [ContainerList::Containers, ContainerList::InitContainers] {
            let Some(items) = pod_spec
                .get(format!("f:{}", list.field_name()))
                .and_then(Value::as_object)
            else {
                continue;
            };
            for (key, item) in items {
                if item.get("f:image").is_none() {
                    continue;
                }
                let name = key
                    .strip_prefix("k:")
                    .and_then(|k| serde_json::from_str::<Value>(k).ok())
                    .and_then(|k| k.get("name").and_then(Value::as_str).map(str::to_owned));
                if let Some(name) = name {
                    owned.insert((list, name));
                }
            }
        }
    }
    owned
}

/// The server-side apply body that writes `apply` into workload `name` of kind `workload`: apiVersion,
/// kind, name, and the pod spec path down to `containers: [{name, image}]` (and `initContainers`), so
/// that the operator's field manager owns those image fields and nothing else.
///
/// With `resource_version`, the apply only succeeds on that version of the object (a 409 Conflict
/// otherwise), so a plan made from a stale copy can never add a container that has since been renamed.
pub fn apply_body(
    workload: WorkloadKind,
    name: &str,
    resource_version: Option<&str>,
    apply: &ImagesApply,
) -> Value {
    let entries = |containers: &[ContainerImage]| -> Value {
        containers
            .iter()
            .map(|c| json!({ "name": c.name, "image": c.image }))
            .collect()
    };
    let mut pod_spec = Map::new();
    if !apply.containers.is_empty() {
        pod_spec.insert("containers".into(), entries(&apply.containers));
    }
    if !apply.init_containers.is_empty() {
        pod_spec.insert("initContainers".into(), entries(&apply.init_containers));
    }
    let mut nested = Value::Object(pod_spec);
    for segment in workload.pod_spec_path().rsplit('.') {
        let mut parent = Map::new();
        parent.insert(segment.to_owned(), nested);
        nested = Value::Object(parent);
    }
    let mut metadata = Map::new();
    metadata.insert("name".into(), name.into());
    if let Some(version) = resource_version {
        metadata.insert("resourceVersion".into(), version.into());
    }
    let mut body = nested;
    if let Value::Object(object) = &mut body {
        object.insert("apiVersion".into(), workload.api_version().into());
        object.insert("kind".into(), workload.kind().into());
        object.insert("metadata".into(), Value::Object(metadata));
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::image_stream::{
        ImageStreamSpec, ImageStreamStatus, NamedTagEventList, TagReferencePolicy, TagSource,
    };
    use crate::domain::trigger_annotation::{ContainerSelector, ImageFieldPath};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, Time};
    use pretty_assertions::assert_eq;

    const DIGEST: &str = "sha256:0155e28b01db3f28b4e59bc6bf7a33d0b2df5aa1e4e4d4d0d9c2ba7dbd6cd1b8";
    const SOURCE: &str = "registry.example.com/team/web@sha256:0155e28b01db3f28b4e59bc6bf7a33d0b2df5aa1e4e4d4d0d9c2ba7dbd6cd1b8";

    fn event(reference: &str, image: &str) -> TagEvent {
        TagEvent {
            created: Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
            docker_image_reference: reference.into(),
            image: image.into(),
            generation: 1,
            platforms: Vec::new(),
        }
    }

    fn spec_tag(name: &str, policy: Option<&str>, reference: bool) -> TagReference {
        TagReference {
            name: name.into(),
            from: Some(TagSource {
                kind: Some("DockerImage".into()),
                name: Some("registry.example.com/team/web:latest".into()),
                ..TagSource::default()
            }),
            reference: reference.then_some(true),
            reference_policy: policy.map(|p| TagReferencePolicy {
                type_: Some(p.into()),
            }),
            ..TagReference::default()
        }
    }

    fn stream(spec: Vec<TagReference>, status: Vec<(&str, Vec<TagEvent>)>) -> ImageStream {
        let mut stream = ImageStream::new(
            "web",
            ImageStreamSpec {
                tags: spec,
                ..ImageStreamSpec::default()
            },
        );
        stream.metadata.namespace = Some("app".into());
        stream.status = Some(ImageStreamStatus {
            tags: status
                .into_iter()
                .map(|(tag, items)| NamedTagEventList {
                    tag: tag.into(),
                    items,
                    conditions: Vec::new(),
                })
                .collect(),
            ..ImageStreamStatus::default()
        });
        stream
    }

    fn trigger(tag: &str) -> ImageTrigger {
        ImageTrigger {
            namespace: "app".into(),
            stream: "web".into(),
            tag: tag.into(),
            field_path: ImageFieldPath {
                workload: WorkloadKind::Deployment,
                list: ContainerList::Containers,
                selector: ContainerSelector::Name("web".into()),
            },
            paused: false,
        }
    }

    #[test]
    fn the_written_image_follows_the_reference_policy_table() {
        let host = Some("registry.internal:5000");
        let local_ref = format!("registry.internal:5000/app/web@{DIGEST}");
        // (case, spec tag, current event, internal registry host, image written)
        type Case<'a> = (
            &'a str,
            Option<TagReference>,
            TagEvent,
            Option<&'a str>,
            String,
        );
        let cases: Vec<Case> = vec![
            (
                "Source policy writes the source digest reference",
                Some(spec_tag("latest", Some("Source"), false)),
                event(SOURCE, DIGEST),
                host,
                SOURCE.into(),
            ),
            (
                "no policy is Source",
                Some(spec_tag("latest", None, false)),
                event(SOURCE, DIGEST),
                host,
                SOURCE.into(),
            ),
            (
                "Local policy with a host writes the internal path by digest",
                Some(spec_tag("latest", Some("Local"), false)),
                event(SOURCE, DIGEST),
                host,
                local_ref.clone(),
            ),
            (
                "Local policy without a host falls back to the source",
                Some(spec_tag("latest", Some("Local"), false)),
                event(SOURCE, DIGEST),
                None,
                SOURCE.into(),
            ),
            (
                "an empty host is no host",
                Some(spec_tag("latest", Some("Local"), false)),
                event(SOURCE, DIGEST),
                Some(""),
                SOURCE.into(),
            ),
            (
                "a reference tag writes the literal reference, even with Local",
                Some(spec_tag("latest", Some("Local"), true)),
                event("registry.example.com/team/web:latest", ""),
                host,
                "registry.example.com/team/web:latest".into(),
            ),
            (
                "a reference tag is literal even when its event carries a digest",
                Some(spec_tag("latest", Some("Local"), true)),
                event(SOURCE, DIGEST),
                host,
                SOURCE.into(),
            ),
            (
                "an event without a digest is written as is",
                Some(spec_tag("latest", Some("Local"), false)),
                event("registry.example.com/team/web:latest", ""),
                host,
                "registry.example.com/team/web:latest".into(),
            ),
            (
                "a status-only tag resolves with the Source policy",
                None,
                event(SOURCE, DIGEST),
                host,
                SOURCE.into(),
            ),
        ];
        for (name, spec, current, host, expected) in cases {
            assert_eq!(
                resolve_tag_image("app", "web", spec.as_ref(), Some(&current), host),
                Some(expected),
                "{name}"
            );
        }
    }

    #[test]
    fn a_tag_without_a_current_image_resolves_to_nothing() {
        let spec = spec_tag("latest", None, false);
        assert_eq!(
            resolve_tag_image("app", "web", Some(&spec), None, None),
            None
        );
        let blank = event("  ", DIGEST);
        assert_eq!(
            resolve_tag_image("app", "web", Some(&spec), Some(&blank), None),
            None
        );
    }

    #[test]
    fn triggers_resolve_from_the_current_event_only() {
        let older = event("registry.example.com/team/web@sha256:old", "sha256:old");
        let stream = stream(
            vec![spec_tag("latest", None, false)],
            vec![("latest", vec![event(SOURCE, DIGEST), older])],
        );
        assert_eq!(
            resolve_trigger(&trigger("latest"), Some(&stream), None),
            Ok(SOURCE.to_owned())
        );
    }

    #[test]
    fn missing_streams_tags_and_history_are_unresolvable_with_their_reason() {
        let stream = stream(
            vec![
                spec_tag("latest", None, false),
                spec_tag("failing", None, false),
            ],
            vec![("failing", Vec::new())],
        );
        let cases = [
            (None, "latest", "StreamNotFound"),
            (Some(&stream), "nope", "TagNotFound"),
            (Some(&stream), "latest", "NoHistory"),
            (Some(&stream), "failing", "NoHistory"),
        ];
        for (stream, tag, reason) in cases {
            let error = resolve_trigger(&trigger(tag), stream, None).unwrap_err();
            assert_eq!(error.reason(), reason, "{tag}: {error}");
            assert!(error.to_string().contains("app/web"), "{error}");
        }
    }

    fn pod(containers: &[(&str, &str)], init: &[(&str, &str)]) -> PodImages {
        let list = |items: &[(&str, &str)]| {
            items
                .iter()
                .map(|(name, image)| ContainerImage {
                    name: (*name).into(),
                    image: (*image).into(),
                })
                .collect()
        };
        PodImages {
            containers: list(containers),
            init_containers: list(init),
        }
    }

    fn at(list: ContainerList, index: usize) -> ContainerLocation {
        ContainerLocation { list, index }
    }

    fn want(list: ContainerList, index: usize, image: &str) -> WantedImage {
        WantedImage {
            location: at(list, index),
            image: image.into(),
        }
    }

    fn image(name: &str, image: &str) -> ContainerImage {
        ContainerImage {
            name: name.into(),
            image: image.into(),
        }
    }

    #[test]
    fn nothing_is_written_when_every_wanted_image_is_in_place() {
        use ContainerList::*;
        let pod = pod(&[("web", "a"), ("sidecar", "b")], &[("migrate", "c")]);
        let owned = HashSet::from([(Containers, "web".to_owned())]);
        assert_eq!(plan_image_apply(&pod, &[], &owned), None);
        let wanted = [want(Containers, 0, "a"), want(InitContainers, 0, "c")];
        assert_eq!(plan_image_apply(&pod, &wanted, &owned), None);
    }

    #[test]
    fn a_changed_image_is_written_with_only_the_images_the_operator_owns() {
        use ContainerList::*;
        let pod = pod(
            &[("web", " "), ("sidecar", "b"), ("proxy", "p")],
            &[("migrate", "c")],
        );
        // The operator set the proxy image earlier; its trigger is paused now.
        let owned = HashSet::from([(Containers, "proxy".to_owned())]);
        let wanted = [
            want(Containers, 0, "web@sha256:1"),
            want(InitContainers, 0, "c"),
        ];
        let plan = plan_image_apply(&pod, &wanted, &owned).unwrap();
        assert_eq!(
            plan,
            ImagesApply {
                containers: vec![image("web", "web@sha256:1"), image("proxy", "p")],
                init_containers: vec![image("migrate", "c")],
                changes: vec![ImageChange {
                    list: Containers,
                    container: "web".into(),
                    from: " ".into(),
                    to: "web@sha256:1".into(),
                }],
            }
        );
        assert_eq!(
            plan.changes[0].to_string(),
            r#"container web: " " -> web@sha256:1"#
        );
    }

    #[test]
    fn owned_images_of_containers_that_are_gone_are_not_carried() {
        use ContainerList::*;
        let pod = pod(&[("web", "a")], &[]);
        let owned = HashSet::from([
            (Containers, "renamed".to_owned()),
            (InitContainers, "web".to_owned()),
        ]);
        let plan = plan_image_apply(&pod, &[want(Containers, 0, "b")], &owned).unwrap();
        assert_eq!(plan.containers, vec![image("web", "b")]);
        assert!(plan.init_containers.is_empty());
    }

    #[test]
    fn wanted_locations_outside_the_pod_spec_are_ignored() {
        let pod = pod(&[("web", "a")], &[]);
        let wanted = [want(ContainerList::InitContainers, 3, "b")];
        assert_eq!(plan_image_apply(&pod, &wanted, &HashSet::new()), None);
    }

    #[test]
    fn init_container_changes_read_as_such() {
        let change = ImageChange {
            list: ContainerList::InitContainers,
            container: "migrate".into(),
            from: "old@sha256:1".into(),
            to: "new@sha256:2".into(),
        };
        assert_eq!(
            change.to_string(),
            "init container migrate: old@sha256:1 -> new@sha256:2"
        );
    }

    fn entry(
        manager: &str,
        operation: &str,
        subresource: Option<&str>,
        fields: Value,
    ) -> ManagedFieldsEntry {
        ManagedFieldsEntry {
            api_version: Some("apps/v1".into()),
            fields_type: Some("FieldsV1".into()),
            fields_v1: Some(FieldsV1(fields)),
            manager: Some(manager.into()),
            operation: Some(operation.into()),
            subresource: subresource.map(str::to_owned),
            time: None,
        }
    }

    #[test]
    fn owned_images_are_read_from_the_managers_apply_entry_only() {
        use ContainerList::*;
        let ours = json!({"f:spec": {"f:template": {"f:spec": {
            "f:containers": {
                "k:{\"name\":\"web\"}": {".": {}, "f:image": {}, "f:name": {}},
                "k:{\"name\":\"named-only\"}": {".": {}, "f:name": {}}
            },
            "f:initContainers": {
                "k:{\"name\":\"migrate\"}": {".": {}, "f:image": {}, "f:name": {}}
            }
        }}}});
        let theirs = json!({"f:spec": {"f:template": {"f:spec": {"f:containers": {
            "k:{\"name\":\"sidecar\"}": {"f:image": {}, "f:name": {}}
        }}}}});
        let fields = [
            entry("imagestream-operator", "Apply", None, ours.clone()),
            entry("kubectl-edit", "Update", None, theirs.clone()),
            entry("imagestream-operator", "Update", None, theirs.clone()),
            entry("imagestream-operator", "Apply", Some("status"), theirs),
        ];
        let owned =
            owned_container_images(&fields, "imagestream-operator", WorkloadKind::Deployment);
        assert_eq!(
            owned,
            HashSet::from([
                (Containers, "web".to_owned()),
                (InitContainers, "migrate".to_owned())
            ])
        );
        // A CronJob keeps its pod spec deeper: the same fields do not match there.
        let owned = owned_container_images(
            &[entry("imagestream-operator", "Apply", None, ours)],
            "imagestream-operator",
            WorkloadKind::CronJob,
        );
        assert!(owned.is_empty());
    }

    #[test]
    fn odd_managed_fields_are_skipped_without_panicking() {
        let odd = [
            json!(null),
            json!({"f:spec": "x"}),
            json!({"f:spec": {"f:template": {"f:spec": {"f:containers": []}}}}),
            json!({"f:spec": {"f:template": {"f:spec": {"f:containers": {
                "k:not json": {"f:image": {}},
                "k:{\"name\":3}": {"f:image": {}},
                "v:\"x\"": {"f:image": {}}
            }}}}}),
        ];
        for fields in odd {
            let owned = owned_container_images(
                &[entry("imagestream-operator", "Apply", None, fields.clone())],
                "imagestream-operator",
                WorkloadKind::Deployment,
            );
            assert!(owned.is_empty(), "{fields}");
        }
    }

    #[test]
    fn the_apply_body_holds_only_identity_and_the_image_fields() {
        let apply = ImagesApply {
            containers: vec![image("web", "web@sha256:1")],
            init_containers: Vec::new(),
            changes: Vec::new(),
        };
        assert_eq!(
            apply_body(WorkloadKind::Deployment, "web", Some("42"), &apply),
            json!({
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "web", "resourceVersion": "42"},
                "spec": {"template": {"spec": {
                    "containers": [{"name": "web", "image": "web@sha256:1"}]
                }}}
            })
        );
    }

    #[test]
    fn a_cron_job_apply_body_nests_under_the_job_template() {
        let apply = ImagesApply {
            containers: Vec::new(),
            init_containers: vec![image("migrate", "m@sha256:2")],
            changes: Vec::new(),
        };
        assert_eq!(
            apply_body(WorkloadKind::CronJob, "nightly", None, &apply),
            json!({
                "apiVersion": "batch/v1",
                "kind": "CronJob",
                "metadata": {"name": "nightly"},
                "spec": {"jobTemplate": {"spec": {"template": {"spec": {
                    "initContainers": [{"name": "migrate", "image": "m@sha256:2"}]
                }}}}}
            })
        );
    }

    #[test]
    fn owned_fields_read_back_what_an_apply_body_claims() {
        // The apiserver records an apply of a list-map item as `k:{"name":…}` with the fields set.
        for workload in WorkloadKind::ALL {
            let apply = ImagesApply {
                containers: vec![image("web", "w")],
                init_containers: vec![image("migrate", "m")],
                changes: Vec::new(),
            };
            let body = apply_body(workload, "x", None, &apply);
            let mut fields = json!({});
            let mut node = &mut fields;
            let mut body_node = &body;
            for segment in workload.pod_spec_path().split('.') {
                node = node
                    .as_object_mut()
                    .unwrap()
                    .entry(format!("f:{segment}"))
                    .or_insert_with(|| json!({}));
                body_node = &body_node[segment];
            }
            for list in ["containers", "initContainers"] {
                for item in body_node[list].as_array().unwrap() {
                    let key = format!("k:{}", json!({"name": item["name"]}));
                    node.as_object_mut()
                        .unwrap()
                        .entry(format!("f:{list}"))
                        .or_insert_with(|| json!({}))[key] =
                        json!({".": {}, "f:image": {}, "f:name": {}});
                }
            }
            let owned = owned_container_images(
                &[entry("imagestream-operator", "Apply", None, fields)],
                "imagestream-operator",
                workload,
            );
            assert_eq!(
                owned,
                HashSet::from([
                    (ContainerList::Containers, "web".to_owned()),
                    (ContainerList::InitContainers, "migrate".to_owned())
                ]),
                "{workload}"
            );
        }
    }
}
