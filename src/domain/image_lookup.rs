//! Image lookup for workloads: which container images of a Pod or pod template an ImageStream stands
//! in for, and what each is rewritten to, as OpenShift's image policy admission plugin does for short
//! names (`app:latest`) when the stream has `lookupPolicy.local` or the object asks for it.
//!
//! Pure: the caller answers stream lookups (from an in-memory store) and sends the JSON Patch.

use std::sync::Arc;

use serde_json::Value;

use crate::api::ImageStream;
use crate::api::image_stream::{REFERENCE_POLICY_LOCAL, TagEvent};
use crate::domain::reference::ImageReference;

/// Annotation, on the object or on its pod template, under which every stream of the namespace
/// resolves short names, whether or not the stream has `lookupPolicy.local`. Only the value `*` counts.
pub const RESOLVE_NAMES_ANNOTATION: &str = "alpha.image.policy.openshift.io/resolve-names";

/// Where Docker Hub images live when a recorded reference omits the registry; written out so that
/// every rewritten image carries a host and is never a lookup candidate again.
const DOCKER_HUB: &str = "docker.io";

/// The kinds whose containers are looked up: a Pod, or a workload that holds a pod template.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PodHolder {
    /// `v1` Pod: `spec`, including `ephemeralContainers`.
    Pod,
    /// `apps/v1` Deployment: `spec.template`.
    Deployment,
    /// `apps/v1` StatefulSet: `spec.template`.
    StatefulSet,
    /// `apps/v1` DaemonSet: `spec.template`.
    DaemonSet,
    /// `apps/v1` ReplicaSet: `spec.template`.
    ReplicaSet,
    /// `v1` ReplicationController: `spec.template`.
    ReplicationController,
    /// `batch/v1` Job: `spec.template`.
    Job,
    /// `batch/v1` CronJob: `spec.jobTemplate.spec.template`.
    CronJob,
}

impl PodHolder {
    /// The kind for an API group (`""` for the core group) and kind, or `None` for anything that
    /// holds no pod spec.
    pub fn from_kind(group: &str, kind: &str) -> Option<Self> {
        match (group, kind) {
            ("", "Pod") => Some(Self::Pod),
            ("", "ReplicationController") => Some(Self::ReplicationController),
            ("apps", "Deployment") => Some(Self::Deployment),
            ("apps", "StatefulSet") => Some(Self::StatefulSet),
            ("apps", "DaemonSet") => Some(Self::DaemonSet),
            ("apps", "ReplicaSet") => Some(Self::ReplicaSet),
            ("batch", "Job") => Some(Self::Job),
            ("batch", "CronJob") => Some(Self::CronJob),
            _ => None,
        }
    }

    /// JSON Pointer of the pod template (`None` for a Pod, which is its own pod).
    fn template_pointer(self) -> Option<&'static str> {
        match self {
            Self::Pod => None,
            Self::CronJob => Some("/spec/jobTemplate/spec/template"),
            _ => Some("/spec/template"),
        }
    }

    /// JSON Pointer of the pod spec.
    fn pod_spec_pointer(self) -> &'static str {
        match self {
            Self::Pod => "/spec",
            Self::CronJob => "/spec/jobTemplate/spec/template/spec",
            _ => "/spec/template/spec",
        }
    }

    /// The container lists of the pod spec. Ephemeral containers exist only on running Pods; a
    /// template cannot hold them.
    fn container_lists(self) -> &'static [&'static str] {
        match self {
            Self::Pod => &["initContainers", "containers", "ephemeralContainers"],
            _ => &["initContainers", "containers"],
        }
    }
}

/// Answers "the stream `name` in `namespace`", typically from a reflector store.
pub trait StreamLookup {
    /// The stream, or `None` when the namespace has no stream of that name.
    fn stream(&self, namespace: &str, name: &str) -> Option<Arc<ImageStream>>;
}

impl<F> StreamLookup for F
where
    F: Fn(&str, &str) -> Option<Arc<ImageStream>>,
{
    fn stream(&self, namespace: &str, name: &str) -> Option<Arc<ImageStream>> {
        self(namespace, name)
    }
}

/// One image field to rewrite: its JSON Pointer in the object, the value found and the value to write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImagePatch {
    /// JSON Pointer of the `image` field, e.g. `/spec/template/spec/containers/0/image`.
    pub path: String,
    /// The image as written in the object.
    pub from: String,
    /// The digest-pinned pull spec the stream resolves it to.
    pub to: String,
}

/// The RFC 6902 JSON Patch that applies `patches`: one `replace` per image field. The old value is
/// not tested (`test` op) because the patch is computed from the very object it is applied to.
pub fn json_patch(patches: &[ImagePatch]) -> Value {
    Value::Array(
        patches
            .iter()
            .map(
                |patch| serde_json::json!({"op": "replace", "path": patch.path, "value": patch.to}),
            )
            .collect(),
    )
}

/// The image fields of `object` (of kind `kind`, admitted into `namespace`) that a stream of the
/// namespace resolves, with what each becomes. Images that are not short names, or that no stream
/// resolves, are left alone; a malformed object yields no patches. `internal_registry` is the
/// internal registry's host (`image-registry.example:5000`) that `Local` reference policies point at.
pub fn resolve(
    kind: PodHolder,
    object: &Value,
    namespace: &str,
    streams: &dyn StreamLookup,
    internal_registry: Option<&str>,
) -> Vec<ImagePatch> {
    let resolve_all = requests_resolution_of_all_names(kind, object);
    let pod_spec_pointer = kind.pod_spec_pointer();
    let Some(pod_spec) = object.pointer(pod_spec_pointer) else {
        return Vec::new();
    };
    let context = Resolution {
        namespace,
        streams,
        internal_registry: internal_registry.filter(|host| !host.is_empty()),
        resolve_all,
    };
    let mut patches = Vec::new();
    for list in kind.container_lists() {
        let Some(containers) = pod_spec.get(*list).and_then(Value::as_array) else {
            continue;
        };
        for (index, container) in containers.iter().enumerate() {
            let Some(image) = container.get("image").and_then(Value::as_str) else {
                continue;
            };
            if let Some(to) = context.resolve_image(image).filter(|to| to != image) {
                patches.push(ImagePatch {
                    path: format!("{pod_spec_pointer}/{list}/{index}/image"),
                    from: image.to_owned(),
                    to,
                });
            }
        }
    }
    patches
}

/// Whether the object or its pod template carries `resolve-names: "*"`; the template is asked
/// first, as OpenShift does, though either is enough.
fn requests_resolution_of_all_names(kind: PodHolder, object: &Value) -> bool {
    let asks = |metadata: Option<&Value>| {
        metadata
            .and_then(|metadata| metadata.pointer("/annotations"))
            .and_then(|annotations| annotations.get(RESOLVE_NAMES_ANNOTATION))
            .and_then(Value::as_str)
            == Some("*")
    };
    let template_metadata = kind
        .template_pointer()
        .and_then(|template| object.pointer(template))
        .and_then(|template| template.get("metadata"));
    asks(template_metadata) || asks(object.get("metadata"))
}

/// What one admission request resolves against.
struct Resolution<'a> {
    namespace: &'a str,
    streams: &'a dyn StreamLookup,
    internal_registry: Option<&'a str>,
    resolve_all: bool,
}

impl Resolution<'_> {
    /// The pull spec `image` resolves to, or `None` when it is left unchanged.
    fn resolve_image(&self, image: &str) -> Option<String> {
        let reference = ImageReference::parse(image).ok()?;
        let stream_name = lookup_candidate(&reference)?;
        let stream = self.streams.stream(self.namespace, stream_name)?;
        let local_lookup = stream
            .spec
            .lookup_policy
            .as_ref()
            .is_some_and(|policy| policy.local);
        if !(local_lookup || self.resolve_all) {
            return None;
        }
        let (tag, event) = match reference.digest() {
            Some(digest) => event_with_image(&stream, digest)?,
            None => {
                let tag = reference.tag_or_latest();
                (tag, current_event(&stream, tag)?)
            }
        };
        self.pull_spec(&stream, stream_name, tag, event)
    }

    /// The location of `event`'s image under the tag's reference policy, always pinned by digest.
    fn pull_spec(
        &self,
        stream: &ImageStream,
        stream_name: &str,
        tag: &str,
        event: &TagEvent,
    ) -> Option<String> {
        // A `reference: true` tag records no digest: there is nothing to pin, so the name stays.
        if event.image.is_empty() {
            return None;
        }
        let policy = stream
            .spec
            .tag(tag)
            .map(|tag| tag.reference_policy_type())
            .unwrap_or_default();
        if let (REFERENCE_POLICY_LOCAL, Some(registry)) = (policy, self.internal_registry) {
            return Some(format!(
                "{registry}/{}/{stream_name}@{}",
                self.namespace, event.image
            ));
        }
        let source = ImageReference::parse(&event.docker_image_reference).ok()?;
        Some(match source.registry_as_written() {
            Some(_) => source.with_digest(&event.image),
            None => format!("{DOCKER_HUB}/{}@{}", source.repository(), event.image),
        })
    }
}

/// The stream a short name stands for: `name`, `name:tag` or `name@digest`, with no registry host
/// and a single path component. Anything else already names a repository and is never looked up.
fn lookup_candidate(reference: &ImageReference) -> Option<&str> {
    let repository = reference.repository_as_written();
    (reference.registry_as_written().is_none() && !repository.contains('/')).then_some(repository)
}

/// The tag's current image, `status.tags[tag].items[0]`.
fn current_event<'a>(stream: &'a ImageStream, tag: &str) -> Option<&'a TagEvent> {
    stream
        .status
        .as_ref()?
        .tags
        .iter()
        .find(|history| history.tag == tag)?
        .items
        .first()
}

/// The first entry, in status order, of any tag's history that recorded `digest`, with its tag.
fn event_with_image<'a>(stream: &'a ImageStream, digest: &str) -> Option<(&'a str, &'a TagEvent)> {
    stream.status.as_ref()?.tags.iter().find_map(|history| {
        history
            .items
            .iter()
            .find(|event| event.image == digest)
            .map(|event| (history.tag.as_str(), event))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    const NS: &str = "team";
    const REGISTRY: &str = "image-registry.example:5000";
    const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";
    const D3: &str = "sha256:3333333333333333333333333333333333333333333333333333333333333333";

    fn event(reference: &str, image: &str) -> Value {
        json!({
            "created": "2024-01-01T00:00:00Z",
            "dockerImageReference": reference,
            "image": image,
            "generation": 1,
        })
    }

    /// Stream `app`: `latest` → D1 (older D2), `1.0` with `Local` policy → D3, `empty` with no
    /// history, `ref` a reference tag without digest, `dangling` in spec only.
    fn app_stream(local_lookup: bool) -> Arc<ImageStream> {
        Arc::new(
            serde_json::from_value(json!({
                "apiVersion": "image.openshift.io/v1",
                "kind": "ImageStream",
                "metadata": {"name": "app", "namespace": NS},
                "spec": {
                    "lookupPolicy": {"local": local_lookup},
                    "tags": [
                        {"name": "latest", "from": {"kind": "DockerImage", "name": "quay.io/org/app:latest"}},
                        {"name": "1.0", "referencePolicy": {"type": "Local"},
                         "from": {"kind": "DockerImage", "name": "quay.io/org/app:1.0"}},
                        {"name": "dangling", "from": {"kind": "DockerImage", "name": "quay.io/org/app:x"}},
                    ],
                },
                "status": {"tags": [
                    {"tag": "1.0", "items": [event(&format!("quay.io/org/app@{D3}"), D3)]},
                    {"tag": "empty", "items": []},
                    {"tag": "latest", "items": [
                        event(&format!("quay.io/org/app@{D1}"), D1),
                        event(&format!("quay.io/org/app@{D2}"), D2),
                    ]},
                    {"tag": "ref", "items": [event("quay.io/org/app:ref", "")]},
                ]},
            }))
            .unwrap(),
        )
    }

    /// Stream `nginx` tracking Docker Hub, recorded without a registry host, lookup on.
    fn nginx_stream() -> Arc<ImageStream> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": "nginx", "namespace": NS},
                "spec": {"lookupPolicy": {"local": true}, "tags": [{"name": "1.25"}]},
                "status": {"tags": [{"tag": "1.25", "items": [event(&format!("nginx@{D2}"), D2)]}]},
            }))
            .unwrap(),
        )
    }

    fn store(local_lookup: bool) -> impl Fn(&str, &str) -> Option<Arc<ImageStream>> {
        move |namespace: &str, name: &str| match (namespace, name) {
            (NS, "app") => Some(app_stream(local_lookup)),
            (NS, "nginx") => Some(nginx_stream()),
            _ => None,
        }
    }

    fn pod(images: &[&str]) -> Value {
        let containers: Vec<Value> = images
            .iter()
            .map(|image| json!({"name": "c", "image": image}))
            .collect();
        json!({"metadata": {"name": "p"}, "spec": {"containers": containers}})
    }

    /// The single rewrite of `image` in a Pod, or `None`.
    fn rewrite(image: &str, local_lookup: bool, registry: Option<&str>) -> Option<String> {
        let patches = resolve(
            PodHolder::Pod,
            &pod(&[image]),
            NS,
            &store(local_lookup),
            registry,
        );
        assert!(patches.len() <= 1, "{patches:?}");
        patches.into_iter().next().map(|patch| patch.to)
    }

    #[test]
    fn kinds_are_recognised_by_group_and_kind() {
        let table = [
            ("", "Pod", Some(PodHolder::Pod)),
            (
                "",
                "ReplicationController",
                Some(PodHolder::ReplicationController),
            ),
            ("apps", "Deployment", Some(PodHolder::Deployment)),
            ("apps", "StatefulSet", Some(PodHolder::StatefulSet)),
            ("apps", "DaemonSet", Some(PodHolder::DaemonSet)),
            ("apps", "ReplicaSet", Some(PodHolder::ReplicaSet)),
            ("batch", "Job", Some(PodHolder::Job)),
            ("batch", "CronJob", Some(PodHolder::CronJob)),
            ("", "Deployment", None),
            ("apps", "Pod", None),
            ("", "ConfigMap", None),
            ("apps.openshift.io", "DeploymentConfig", None),
        ];
        for (group, kind, expected) in table {
            assert_eq!(
                PodHolder::from_kind(group, kind),
                expected,
                "{group}/{kind}"
            );
        }
    }

    #[test]
    fn every_kind_patches_the_image_paths_of_its_pod_spec() {
        let spec = json!({
            "initContainers": [{"image": "app"}],
            "containers": [{"image": "busybox"}, {"image": "app:latest"}],
            "ephemeralContainers": [{"image": "app"}],
        });
        let template = json!({"spec": spec});
        let table: [(PodHolder, Value, &[&str]); 8] = [
            (
                PodHolder::Pod,
                json!({"spec": spec}),
                &[
                    "/spec/initContainers/0/image",
                    "/spec/containers/1/image",
                    "/spec/ephemeralContainers/0/image",
                ],
            ),
            (
                PodHolder::Deployment,
                json!({"spec": {"template": template}}),
                &[
                    "/spec/template/spec/initContainers/0/image",
                    "/spec/template/spec/containers/1/image",
                ],
            ),
            (
                PodHolder::StatefulSet,
                json!({"spec": {"template": template}}),
                &[
                    "/spec/template/spec/initContainers/0/image",
                    "/spec/template/spec/containers/1/image",
                ],
            ),
            (
                PodHolder::DaemonSet,
                json!({"spec": {"template": template}}),
                &[
                    "/spec/template/spec/initContainers/0/image",
                    "/spec/template/spec/containers/1/image",
                ],
            ),
            (
                PodHolder::ReplicaSet,
                json!({"spec": {"template": template}}),
                &[
                    "/spec/template/spec/initContainers/0/image",
                    "/spec/template/spec/containers/1/image",
                ],
            ),
            (
                PodHolder::ReplicationController,
                json!({"spec": {"template": template}}),
                &[
                    "/spec/template/spec/initContainers/0/image",
                    "/spec/template/spec/containers/1/image",
                ],
            ),
            (
                PodHolder::Job,
                json!({"spec": {"template": template}}),
                &[
                    "/spec/template/spec/initContainers/0/image",
                    "/spec/template/spec/containers/1/image",
                ],
            ),
            (
                PodHolder::CronJob,
                json!({"spec": {"jobTemplate": {"spec": {"template": template}}}}),
                &[
                    "/spec/jobTemplate/spec/template/spec/initContainers/0/image",
                    "/spec/jobTemplate/spec/template/spec/containers/1/image",
                ],
            ),
        ];
        let expected_image = format!("quay.io/org/app@{D1}");
        for (kind, object, paths) in table {
            let patches = resolve(kind, &object, NS, &store(true), None);
            let got: Vec<&str> = patches.iter().map(|patch| patch.path.as_str()).collect();
            assert_eq!(got, paths, "{kind:?}");
            for patch in &patches {
                assert_eq!(patch.to, expected_image, "{kind:?}");
                assert_eq!(
                    object.pointer(&patch.path).and_then(Value::as_str),
                    Some(patch.from.as_str()),
                    "{kind:?}"
                );
            }
        }
    }

    #[test]
    fn only_short_names_are_lookup_candidates() {
        let table = [
            ("app", true),
            ("app:latest", true),
            (&*format!("app@{D2}"), true),
            ("app:1.0", true),
            ("library/app", false),
            ("docker.io/app", false),
            ("quay.io/org/app:latest", false),
            ("localhost:5000/app", false),
            ("localhost/app", false),
            (&*format!("quay.io/org/app@{D1}"), false),
            ("App", false),
            ("", false),
            ("app:", false),
        ];
        for (image, candidate) in table {
            assert_eq!(rewrite(image, true, None).is_some(), candidate, "{image:?}");
        }
    }

    #[test]
    fn names_resolve_to_the_current_image_of_their_tag_pinned_by_digest() {
        let table = [
            ("app", format!("quay.io/org/app@{D1}")),
            ("app:latest", format!("quay.io/org/app@{D1}")),
            ("app:1.0", format!("quay.io/org/app@{D3}")),
            // A Docker Hub image recorded without a host is written with it, so the result is never
            // a short name itself.
            ("nginx:1.25", format!("docker.io/library/nginx@{D2}")),
        ];
        for (image, expected) in table {
            assert_eq!(rewrite(image, true, None), Some(expected), "{image}");
        }
    }

    #[test]
    fn names_without_a_resolvable_image_stay_unchanged() {
        let table = [
            "missing",
            "missing:latest",
            "app:nosuchtag",
            "app:dangling",
            "app:empty",
            "app:ref",
            "nginx",
        ];
        for image in table {
            assert_eq!(rewrite(image, true, None), None, "{image}");
            assert_eq!(rewrite(image, true, Some(REGISTRY)), None, "{image}");
        }
    }

    #[test]
    fn streams_in_other_namespaces_are_not_consulted() {
        let patches = resolve(PodHolder::Pod, &pod(&["app"]), "other", &store(true), None);
        assert!(patches.is_empty(), "{patches:?}");
    }

    #[test]
    fn digest_names_resolve_only_to_images_in_the_stream_history() {
        // D2 is an older entry of `latest`: history counts, not just the current image.
        assert_eq!(
            rewrite(&format!("app@{D2}"), true, None),
            Some(format!("quay.io/org/app@{D2}"))
        );
        assert_eq!(
            rewrite(&format!("app:1.0@{D1}"), true, None),
            Some(format!("quay.io/org/app@{D1}")),
            "the digest wins over a tag written beside it"
        );
        let unknown = "sha256:4444444444444444444444444444444444444444444444444444444444444444";
        assert_eq!(rewrite(&format!("app@{unknown}"), true, None), None);
    }

    #[test]
    fn local_reference_policy_points_at_the_internal_registry_when_one_is_configured() {
        let table = [
            (
                "app:1.0",
                Some(REGISTRY),
                format!("{REGISTRY}/{NS}/app@{D3}"),
            ),
            ("app:1.0", None, format!("quay.io/org/app@{D3}")),
            ("app:1.0", Some(""), format!("quay.io/org/app@{D3}")),
            (
                &*format!("app@{D3}"),
                Some(REGISTRY),
                format!("{REGISTRY}/{NS}/app@{D3}"),
            ),
            (
                "app:latest",
                Some(REGISTRY),
                format!("quay.io/org/app@{D1}"),
            ),
        ];
        for (image, registry, expected) in table {
            assert_eq!(
                rewrite(image, true, registry),
                Some(expected),
                "{image} {registry:?}"
            );
        }
    }

    #[test]
    fn without_local_lookup_only_the_resolve_names_annotation_resolves() {
        assert_eq!(rewrite("app", false, None), None);

        let annotations = json!({RESOLVE_NAMES_ANNOTATION: "*"});
        let mut on_pod = pod(&["app"]);
        on_pod["metadata"]["annotations"] = annotations.clone();
        let patches = resolve(PodHolder::Pod, &on_pod, NS, &store(false), None);
        assert_eq!(patches.len(), 1, "{patches:?}");

        let deployment = |object_meta: Value, template_meta: Value| {
            json!({
                "metadata": object_meta,
                "spec": {"template": {"metadata": template_meta, "spec": {"containers": [{"image": "app"}]}}},
            })
        };
        let table = [
            (
                deployment(json!({"annotations": annotations}), json!({})),
                1,
            ),
            (
                deployment(json!({}), json!({"annotations": annotations})),
                1,
            ),
            (deployment(json!({}), json!({})), 0),
            (
                deployment(
                    json!({"annotations": {RESOLVE_NAMES_ANNOTATION: "true"}}),
                    json!({}),
                ),
                0,
            ),
            (
                deployment(
                    json!({"annotations": {RESOLVE_NAMES_ANNOTATION: "*"}}),
                    json!(null),
                ),
                1,
            ),
        ];
        for (object, count) in table {
            let patches = resolve(PodHolder::Deployment, &object, NS, &store(false), None);
            assert_eq!(patches.len(), count, "{object}");
        }

        let cron = json!({"spec": {"jobTemplate": {"spec": {"template": {
            "metadata": {"annotations": annotations},
            "spec": {"containers": [{"image": "app"}]},
        }}}}});
        assert_eq!(
            resolve(PodHolder::CronJob, &cron, NS, &store(false), None).len(),
            1
        );
    }

    #[test]
    fn the_annotation_still_needs_a_short_name_and_a_resolvable_tag() {
        let mut object = pod(&["library/app", "quay.io/org/app", "app:nosuchtag", "missing"]);
        object["metadata"]["annotations"] = json!({RESOLVE_NAMES_ANNOTATION: "*"});
        assert!(resolve(PodHolder::Pod, &object, NS, &store(false), None).is_empty());
    }

    #[test]
    fn reinvoking_on_the_patched_object_writes_nothing() {
        for registry in [None, Some(REGISTRY)] {
            let mut object = pod(&["app", "app:1.0", "nginx:1.25", &format!("app@{D2}")]);
            object["metadata"]["annotations"] = json!({RESOLVE_NAMES_ANNOTATION: "*"});
            let patches = resolve(PodHolder::Pod, &object, NS, &store(true), registry);
            assert_eq!(patches.len(), 4, "{patches:?}");
            for patch in &patches {
                *object.pointer_mut(&patch.path).unwrap() = Value::String(patch.to.clone());
            }
            let again = resolve(PodHolder::Pod, &object, NS, &store(true), registry);
            assert!(again.is_empty(), "{again:?}");
        }
    }

    #[test]
    fn malformed_objects_yield_no_patches() {
        let table = [
            json!(null),
            json!("Pod"),
            json!({"spec": []}),
            json!({"spec": {"containers": {"image": "app"}}}),
            json!({"spec": {"containers": [null, 3, {"image": 7}, {"image": null}, {}]}}),
            json!({"metadata": {"annotations": "x"}, "spec": {"containers": "app"}}),
        ];
        for object in table {
            assert!(
                resolve(PodHolder::Pod, &object, NS, &store(true), None).is_empty(),
                "{object}"
            );
        }
        let pod_shaped = json!({"spec": {"containers": [{"image": "app"}]}});
        assert!(resolve(PodHolder::Deployment, &pod_shaped, NS, &store(true), None).is_empty());
    }

    #[test]
    fn json_patch_replaces_each_image_field() {
        let patches = [
            ImagePatch {
                path: "/spec/containers/0/image".into(),
                from: "app".into(),
                to: format!("quay.io/org/app@{D1}"),
            },
            ImagePatch {
                path: "/spec/initContainers/1/image".into(),
                from: "app:1.0".into(),
                to: "x.example/a@sha256:9".into(),
            },
        ];
        assert_eq!(
            json_patch(&patches),
            json!([
                {"op": "replace", "path": "/spec/containers/0/image", "value": format!("quay.io/org/app@{D1}")},
                {"op": "replace", "path": "/spec/initContainers/1/image", "value": "x.example/a@sha256:9"},
            ])
        );
        assert_eq!(json_patch(&[]), json!([]));
    }

    fn any_image() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("app".to_owned()),
            Just("app:1.0".to_owned()),
            Just(format!("app@{D2}")),
            Just("nginx:1.25".to_owned()),
            Just("quay.io/org/app".to_owned()),
            "[a-z:/@.0-9]{0,12}",
        ]
    }

    fn any_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any_image().prop_map(Value::String),
        ];
        let key = prop_oneof![
            Just("spec".to_owned()),
            Just("template".to_owned()),
            Just("jobTemplate".to_owned()),
            Just("metadata".to_owned()),
            Just("annotations".to_owned()),
            Just(RESOLVE_NAMES_ANNOTATION.to_owned()),
            Just("containers".to_owned()),
            Just("initContainers".to_owned()),
            Just("ephemeralContainers".to_owned()),
            Just("image".to_owned()),
            "[a-z]{1,4}",
        ];
        leaf.prop_recursive(6, 64, 4, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map(key.clone(), inner, 0..4)
                    .prop_map(|map| Value::Object(map.into_iter().collect())),
            ]
        })
    }

    fn any_kind() -> impl Strategy<Value = PodHolder> {
        prop::sample::select(vec![
            PodHolder::Pod,
            PodHolder::Deployment,
            PodHolder::StatefulSet,
            PodHolder::DaemonSet,
            PodHolder::ReplicaSet,
            PodHolder::ReplicationController,
            PodHolder::Job,
            PodHolder::CronJob,
        ])
    }

    proptest! {
        #[test]
        fn any_object_yields_patches_of_existing_image_strings(
            kind in any_kind(),
            noise in any_json(),
            containers in prop::collection::vec(
                prop_oneof![3 => any_image().prop_map(Value::String), 1 => any_json()], 0..4),
            shaped in any::<bool>(),
            local_lookup in any::<bool>(),
            registry in prop::option::of(Just(REGISTRY)),
        ) {
            // Random JSON alone seldom reaches a pod spec, so half the cases put random containers
            // (and random metadata) where the kind keeps them.
            let object = if shaped {
                let containers: Vec<Value> = containers
                    .into_iter()
                    .map(|image| json!({"name": "c", "image": image}))
                    .collect();
                let mut object = json!({"metadata": noise.clone()});
                let mut pointer = String::new();
                for segment in kind.pod_spec_pointer().split('/').skip(1) {
                    pointer.push('/');
                    pointer.push_str(segment);
                    let parent = pointer.rsplit_once('/').map_or("", |(parent, _)| parent);
                    let parent = if parent.is_empty() {
                        &mut object
                    } else {
                        object.pointer_mut(parent).unwrap()
                    };
                    parent[segment] = json!({});
                }
                let spec = object.pointer_mut(kind.pod_spec_pointer()).unwrap();
                spec["containers"] = Value::Array(containers.clone());
                spec["initContainers"] = Value::Array(containers);
                spec["extra"] = noise;
                object
            } else {
                noise
            };
            let patches = resolve(kind, &object, NS, &store(local_lookup), registry);
            for patch in &patches {
                prop_assert!(patch.path.ends_with("/image"), "{}", patch.path);
                prop_assert_eq!(
                    object.pointer(&patch.path).and_then(Value::as_str),
                    Some(patch.from.as_str())
                );
                prop_assert_ne!(&patch.from, &patch.to);
            }
            let mut patched = object.clone();
            for patch in &patches {
                *patched.pointer_mut(&patch.path).unwrap() = Value::String(patch.to.clone());
            }
            prop_assert!(resolve(kind, &patched, NS, &store(local_lookup), registry).is_empty());
        }

        #[test]
        fn pod_shaped_objects_resolve_every_short_name_with_local_lookup(
            images in prop::collection::vec(
                prop::sample::select(vec!["app", "app:latest", "busybox", "quay.io/a/b"]), 0..6),
        ) {
            let patches = resolve(PodHolder::Pod, &pod(&images), NS, &store(true), None);
            let expected: Vec<String> = images
                .iter()
                .enumerate()
                .filter(|(_, image)| image.starts_with("app"))
                .map(|(index, _)| format!("/spec/containers/{index}/image"))
                .collect();
            let got: Vec<String> = patches.into_iter().map(|patch| patch.path).collect();
            prop_assert_eq!(got, expected);
        }
    }
}
