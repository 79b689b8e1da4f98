//! The ImageStream kind (`image.openshift.io/v1`, namespaced, short name `is`): named tags that track
//! images in registries or in other streams (spec), and the per-tag history the operator records
//! (status). Field names and meanings are OpenShift's so its manifests apply unchanged; the import
//! rules themselves live in `crate::domain`.
//!
//! Every object of the schema keeps fields it does not know (`x-kubernetes-preserve-unknown-fields`),
//! so a manifest written for a newer OpenShift, with fields this operator has not heard of, applies
//! with kubectl's default validation (client-side on older kubectl, server-side `Strict` on 1.25 and
//! later) and keeps those fields. The known fields are still typed; a known field with a value the
//! operator cannot use gets a condition on its tag rather than a refusal of the whole stream. `kubectl explain` descends into every field wherever the apiserver publishes
//! OpenAPI v3 (Kubernetes 1.27 and later); apiservers that publish only OpenAPI v2 leave out the
//! fields of objects that keep unknown fields, so there it shows the top level only.

use std::borrow::Cow;
use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize};

/// `from.kind` of a tag that tracks an image in a registry (`from.name` is a pull spec).
pub const KIND_DOCKER_IMAGE: &str = "DockerImage";
/// `from.kind` of a tag that follows another tag (`from.name` is `stream:tag`, or `tag` in this stream).
pub const KIND_IMAGE_STREAM_TAG: &str = "ImageStreamTag";
/// `from.kind` of a tag that pins an image from a stream's history (`from.name` is `stream@digest`).
pub const KIND_IMAGE_STREAM_IMAGE: &str = "ImageStreamImage";

/// `importPolicy.importMode` that resolves a manifest list to one platform's image (the default).
pub const IMPORT_MODE_LEGACY: &str = "Legacy";
/// `importPolicy.importMode` that keeps a manifest list as it is, with an Image per child.
pub const IMPORT_MODE_PRESERVE_ORIGINAL: &str = "PreserveOriginal";

/// `referencePolicy.type` under which consumers get the image's source location (the default).
pub const REFERENCE_POLICY_SOURCE: &str = "Source";
/// `referencePolicy.type` under which consumers get the internal registry location when one is configured.
pub const REFERENCE_POLICY_LOCAL: &str = "Local";

/// The only tag condition type: present with status `False` when the tag's last import failed.
pub const CONDITION_IMPORT_SUCCESS: &str = "ImportSuccess";

/// Desired state of an ImageStream: which tags exist and what each one tracks.
// Clippy reads the repeated `type_ = "string"` of the printer columns as duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "image.openshift.io",
    version = "v1",
    kind = "ImageStream",
    doc = "An ImageStream object: metadata, [`ImageStreamSpec`] and [`ImageStreamStatus`].",
    namespaced,
    shortname = "is",
    status = "ImageStreamStatus",
    schema = "manual",
    derive = "Default",
    derive = "PartialEq",
    printcolumn(
        name = "Image Repository",
        type_ = "string",
        // A JSONPath union: the table convertor shows the first value found, so the public
        // repository wins when it is set and the internal one is the fallback, as in `oc get is`.
        json_path = ".status['publicDockerImageRepository','dockerImageRepository']",
        description = "Where the stream's images can be pulled from: the public repository when one is configured, else the internal one."
    ),
    printcolumn(
        name = "Tags",
        type_ = "string",
        json_path = ".status.tags[*].tag",
        description = "Tags with history; the table shows the first tag in alphabetical order."
    ),
    printcolumn(
        name = "Updated",
        type_ = "date",
        json_path = ".status.tags[0].items[0].created",
        description = "When the current image of the first tag was recorded."
    )
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-preserve-unknown-fields" = true))]
pub struct ImageStreamSpec {
    /// How Pods in this namespace may refer to the stream by its short name. With the operator's
    /// image-lookup admission webhook installed (`--admission-addr`), `local: true` makes Pods and
    /// pod templates that name `stream:tag` be stored with the tag's current digest reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    // Published without `nullable`, like every object in the spec (a null is read as absent).
    #[schemars(with = "ImageLookupPolicy")]
    pub lookup_policy: Option<ImageLookupPolicy>,

    /// Deprecated by OpenShift: a repository that backs the whole stream. Kept so that old
    /// manifests apply; the operator imports nothing from it. Set `spec.tags[].from` with kind
    /// `DockerImage` for each tag to import instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docker_image_repository: Option<String>,

    /// The tags of the stream, one entry per tag name. Server-side apply merges this list per
    /// `name`. A tag with an invalid entry gets a condition in status; the other tags are still served.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub tags: Vec<TagReference>,
}

/// Whether the stream may stand in for short image names used by Pods in its namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-preserve-unknown-fields" = true))]
pub struct ImageLookupPolicy {
    /// `true` lets Pods and workloads in this namespace name the stream (`app:latest`) instead of a
    /// full pull spec: the image-lookup admission webhook rewrites the name to the tag's current
    /// digest reference when the object is created or updated. Defaults to `false`.
    #[serde(default)]
    pub local: bool,
}

/// One tag of the stream: its name and the image it tracks.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-preserve-unknown-fields" = true))]
pub struct TagReference {
    /// The tag's name, unique within the stream (`latest`, `1.25`). Required.
    pub name: String,

    /// Free-form annotations of the tag. The operator reads
    /// `importer.image.openshift.io/prefer-arch` and `importer.image.openshift.io/prefer-os` to pick
    /// the platform when a manifest list is imported in `Legacy` mode.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "null_as_default"
    )]
    #[schemars(extend("nullable" = true))]
    pub annotations: BTreeMap<String, String>,

    /// What the tag tracks. Without it the tag has no source and records no history.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "TagSource")]
    pub from: Option<TagSource>,

    /// When `true`, a `DockerImage` tag is recorded as written without contacting the registry:
    /// its history gets one event whose reference is `from.name` and whose image is empty.
    /// Defaults to `false`, which imports the image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<bool>,

    /// On OpenShift the server sets this to the stream generation whenever the tag changes. This
    /// operator keeps the value as written and decides on re-imports from the stream's
    /// `metadata.generation` instead, so clients never need to set it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,

    /// How the tag's image is fetched from its registry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "TagImportPolicy")]
    pub import_policy: Option<TagImportPolicy>,

    /// Which location of the image is handed to workloads whose triggers follow this tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "TagReferencePolicy")]
    pub reference_policy: Option<TagReferencePolicy>,
}

/// The source of a tag. OpenShift uses a core ObjectReference here, so all of its fields are
/// accepted; only `kind`, `name` and `namespace` have a meaning.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-preserve-unknown-fields" = true))]
pub struct TagSource {
    /// `DockerImage` (name is a pull spec such as `docker.io/library/nginx:1.25` or
    /// `repo@sha256:…`), `ImageStreamTag` (name is `stream:tag`, or `tag` for this stream) or
    /// `ImageStreamImage` (name is `stream@sha256:…`, a unique digest prefix is enough). Any other
    /// value makes the tag invalid: it gets a condition and the rest of the stream is still served.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,

    /// The pull spec, `stream:tag` or `stream@digest`, depending on `kind`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,

    /// For `ImageStreamTag` and `ImageStreamImage`: the namespace of the referenced stream.
    /// Defaults to the namespace of this stream. Reading another namespace requires that this
    /// stream's namespace is allowed to read streams there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,

    /// Part of the ObjectReference shape OpenShift uses here; ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,

    /// Part of the ObjectReference shape OpenShift uses here; ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,

    /// Part of the ObjectReference shape OpenShift uses here; ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_version: Option<String>,

    /// Part of the ObjectReference shape OpenShift uses here; ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field_path: Option<String>,
}

/// How a tag's image is imported from its registry.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-preserve-unknown-fields" = true))]
pub struct TagImportPolicy {
    /// When `true`, the registry of this tag (and of its mirrors) may be reached over plain HTTP
    /// or with an unverified TLS certificate. Defaults to `false`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure: Option<bool>,

    /// When `true`, the registry is checked again once per import interval (15 minutes unless the
    /// operator is configured otherwise) and a new digest is recorded. Only valid on `DockerImage`
    /// tags; a digest-pinned tag is imported once whatever this says. Defaults to `false`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled: Option<bool>,

    /// What to record when the tag names a manifest list. `Legacy` (the default) records one
    /// child image, chosen by the tag's prefer-arch/prefer-os annotations, else the operator's
    /// platform setting, else linux/amd64, else the first entry. `PreserveOriginal` records the
    /// list itself and creates an Image for the list and for every child. An empty string means
    /// the default; any other value makes the tag invalid: it gets an `InvalidImportPolicy`
    /// condition, is not imported, and the rest of the stream is still served.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub import_mode: Option<String>,
}

/// Which location of the image consumers of the tag receive.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-preserve-unknown-fields" = true))]
pub struct TagReferencePolicy {
    /// `Source` (the default): triggers write the recorded `dockerImageReference`, a digest
    /// reference in the source registry. `Local`: triggers write the internal registry's path for
    /// the stream with `@digest`, or the source reference when the operator has no internal
    /// registry configured. An empty string means the default; any other value makes the tag
    /// invalid: it gets an `InvalidReferencePolicy` condition, is not imported, and the rest of the
    /// stream is still served.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
}

/// Observed state of an ImageStream, written by the operator through the status subresource.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-preserve-unknown-fields" = true))]
pub struct ImageStreamStatus {
    /// `<host>/<namespace>/<name>` in the internal registry when the operator is configured with
    /// an internal registry host name; unset otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docker_image_repository: Option<String>,

    /// `<host>/<namespace>/<name>` in the registry as reached from outside the cluster, when the
    /// operator is configured with a public registry host name; unset otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_docker_image_repository: Option<String>,

    /// The history of every tag, sorted by tag name. Server-side apply merges this list per `tag`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["tag"]))]
    pub tags: Vec<NamedTagEventList>,

    /// Not in OpenShift: the value of the `imagestream-operator/import-requested` annotation whose
    /// import the operator has served, so that a restarted or newly elected operator does not serve
    /// the same request again. Set the annotation to a new value to ask for another import.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub served_import_request: Option<String>,
}

/// The history and conditions of one tag.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-preserve-unknown-fields" = true))]
pub struct NamedTagEventList {
    /// The tag this history belongs to. Required.
    pub tag: String,

    /// The images the tag has pointed at, newest first: `items[0]` is the current image. A new
    /// entry is added only when both reference and image differ from `items[0]`; otherwise
    /// `items[0]` is updated in place. Unlike OpenShift, which keeps every entry until a pruner
    /// runs, the operator keeps at most `--max-tag-history` entries (10 by default, 0 for no limit).
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    #[schemars(extend("x-kubernetes-list-type" = "atomic", "nullable" = true))]
    pub items: Vec<TagEvent>,

    /// Set when the last import of the tag failed: a single `ImportSuccess` condition with status
    /// `False`. A failure leaves `items` untouched; a successful import removes the condition.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub conditions: Vec<TagEventCondition>,
}

/// One image a tag pointed at.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-preserve-unknown-fields" = true))]
pub struct TagEvent {
    /// When this entry was recorded. Not changed when the entry is updated in place.
    pub created: Time,

    /// The pull spec of the image by digest, spelled as the tag's source was written with the tag
    /// replaced by `@digest` (`nginx:1.25` becomes `nginx@sha256:…`). It always names the source
    /// repository, even when the image was fetched from a mirror. For `reference: true` tags it is
    /// `from.name` as written.
    pub docker_image_reference: String,

    /// The manifest digest (`sha256:…`); the matching Image object is named after it with the `:`
    /// replaced by `.`. Empty for `reference: true` tags.
    pub image: String,

    /// The stream's `metadata.generation` when this entry was recorded or last updated.
    pub generation: i64,

    /// The platforms the image provides, as `os/architecture`. Accepted for compatibility with
    /// newer OpenShift releases.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub platforms: Vec<String>,
}

/// A condition of one tag.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-preserve-unknown-fields" = true))]
pub struct TagEventCondition {
    /// The condition type; the operator only writes `ImportSuccess`.
    #[serde(rename = "type")]
    pub type_: String,

    /// `True`, `False` or `Unknown`; the operator only writes `False` (a success removes the condition).
    pub status: String,

    /// When type or status last changed. Kept when only the reason or message is rewritten.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,

    /// Why the import failed, one PascalCase word: `NotFound`, `Unauthorized`, `Forbidden`,
    /// `TooManyRequests`, `Timeout`, `InternalError`, `BadRequest` and the like.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,

    /// A human-readable description of the failure. Never contains credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,

    /// The stream's `metadata.generation` the failed import was attempted for.
    pub generation: i64,
}

impl JsonSchema for ImageStream {
    fn schema_name() -> Cow<'static, str> {
        "ImageStream".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let mut spec = generator.subschema_for::<ImageStreamSpec>();
        // OpenShift templates often declare a stream with metadata only. The derived root would
        // require `spec`; instead the apiserver fills in an empty one, so every stored stream
        // still deserialises into `ImageStream`.
        spec.insert("default".into(), serde_json::json!({}));
        let status = generator.subschema_for::<ImageStreamStatus>();
        json_schema!({
            "description": "A set of named tags, each tracking an image in a registry or in another stream, with the history of the images each tag has pointed at.",
            "type": "object",
            "properties": {
                "spec": spec,
                "status": status,
            },
        })
    }
}

impl ImageStreamSpec {
    /// The spec entry of a tag, by tag name.
    pub fn tag(&self, name: &str) -> Option<&TagReference> {
        self.tags.iter().find(|tag| tag.name == name)
    }
}

impl TagReference {
    /// `importPolicy.importMode` with OpenShift's default, `Legacy`, when unset.
    pub fn import_mode(&self) -> &str {
        self.import_policy
            .as_ref()
            .and_then(|policy| policy.import_mode.as_deref())
            .filter(|mode| !mode.is_empty())
            .unwrap_or(IMPORT_MODE_LEGACY)
    }

    /// `referencePolicy.type` with OpenShift's default, `Source`, when unset.
    pub fn reference_policy_type(&self) -> &str {
        self.reference_policy
            .as_ref()
            .and_then(|policy| policy.type_.as_deref())
            .filter(|kind| !kind.is_empty())
            .unwrap_or(REFERENCE_POLICY_SOURCE)
    }

    /// Whether `importPolicy.scheduled` is set to `true`.
    pub fn is_scheduled(&self) -> bool {
        self.import_policy
            .as_ref()
            .and_then(|policy| policy.scheduled)
            == Some(true)
    }

    /// Whether `importPolicy.insecure` is set to `true`.
    pub fn is_insecure(&self) -> bool {
        self.import_policy
            .as_ref()
            .and_then(|policy| policy.insecure)
            == Some(true)
    }

    /// Whether `reference` is set to `true`.
    pub fn is_reference(&self) -> bool {
        self.reference == Some(true)
    }
}

impl ImageStreamStatus {
    /// The status entry of a tag, by tag name.
    pub fn tag(&self, tag: &str) -> Option<&NamedTagEventList> {
        self.tags.iter().find(|entry| entry.tag == tag)
    }
}

impl NamedTagEventList {
    /// The tag's current image: the newest history entry.
    pub fn current(&self) -> Option<&TagEvent> {
        self.items.first()
    }
}

/// Reads an explicit JSON `null` as the type's default. OpenShift serialises some empty lists and
/// maps as `null` (`annotations: null` on spec tags, `items: null` on status tags); their schemas
/// are `nullable` too, because server-side apply validates the `null` instead of dropping it.
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// Asserts that a CRD's `openAPIV3Schema` is structural in the apiserver's sense: every node has a
/// `type` (unless it preserves unknown fields or is int-or-string), no node mixes `properties`
/// with `additionalProperties`, no `$ref` or logical combinators, and list-map keys are required.
#[cfg(test)]
pub(crate) fn assert_structural(schema: &serde_json::Value, path: &str) {
    use serde_json::Value;

    let node = schema
        .as_object()
        .unwrap_or_else(|| panic!("{path}: schema node is not an object"));
    for keyword in ["$ref", "anyOf", "oneOf", "allOf", "not"] {
        assert!(!node.contains_key(keyword), "{path}: uses {keyword}");
    }
    let preserves = node.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
    let int_or_string = node.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true));
    assert!(
        node.get("type")
            .and_then(Value::as_str)
            .is_some_and(|t| !t.is_empty())
            || preserves
            || int_or_string,
        "{path}: no type"
    );
    if let Some(properties) = node.get("properties") {
        assert!(
            !node.contains_key("additionalProperties"),
            "{path}: properties together with additionalProperties"
        );
        for (name, property) in properties.as_object().expect("properties is an object") {
            assert_structural(property, &format!("{path}.{name}"));
        }
    }
    if let Some(additional) = node.get("additionalProperties") {
        assert_structural(additional, &format!("{path}.*"));
    }
    if let Some(items) = node.get("items") {
        assert_structural(items, &format!("{path}[]"));
        if node.get("x-kubernetes-list-type") == Some(&Value::from("map")) {
            let required = items["required"].as_array().cloned().unwrap_or_default();
            for key in node["x-kubernetes-list-map-keys"]
                .as_array()
                .unwrap_or_else(|| panic!("{path}: list-map without keys"))
            {
                assert!(
                    required.contains(key),
                    "{path}: list-map key {key} not required"
                );
            }
        }
    }
}

/// Asserts that every property below `schema` has a non-empty description, the text
/// `kubectl explain` shows.
#[cfg(test)]
pub(crate) fn assert_described(schema: &serde_json::Value, path: &str) {
    use serde_json::Value;

    if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
        for (name, property) in properties {
            let here = format!("{path}.{name}");
            assert!(
                property
                    .get("description")
                    .and_then(Value::as_str)
                    .is_some_and(|d| !d.is_empty()),
                "{here} has no description"
            );
            assert_described(property, &here);
        }
    }
    if let Some(items) = schema.get("items") {
        assert_described(items, &format!("{path}[]"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    use kube::{CustomResourceExt, Resource};
    use pretty_assertions::assert_eq;
    use serde_json::{Value, json};

    /// An ImageStream as `oc get is -o json` prints it on OpenShift 4, status included, with the
    /// `null`s OpenShift writes for empty annotations, generations and histories.
    fn openshift_stream() -> Value {
        json!({
            "apiVersion": "image.openshift.io/v1",
            "kind": "ImageStream",
            "metadata": {
                "name": "web",
                "namespace": "shop",
                "generation": 3,
                "resourceVersion": "48213",
                "uid": "5b0f8f0e-3c1e-4f53-9d44-8f9b0c8f2a61",
                "creationTimestamp": "2024-03-01T10:00:00Z",
                "annotations": {"openshift.io/image.dockerRepositoryCheck": "2024-03-01T10:00:05Z"}
            },
            "spec": {
                "lookupPolicy": {"local": false},
                "tags": [
                    {
                        "name": "1.25",
                        "annotations": null,
                        "from": {"kind": "DockerImage", "name": "docker.io/library/nginx:1.25"},
                        "generation": 3,
                        "importPolicy": {"scheduled": true, "importMode": "Legacy"},
                        "referencePolicy": {"type": "Source"}
                    },
                    {
                        "name": "latest",
                        "annotations": {"description": "follows 1.25"},
                        "from": {"kind": "ImageStreamTag", "name": "1.25", "namespace": "shop"},
                        "generation": null,
                        "importPolicy": {"importMode": "PreserveOriginal", "insecure": true},
                        "referencePolicy": {"type": "Local"}
                    },
                    {
                        "name": "missing",
                        "from": {"kind": "DockerImage", "name": "quay.io/acme/missing:1"},
                        "reference": true,
                        "generation": 2,
                        "importPolicy": {},
                        "referencePolicy": {"type": "Source"}
                    }
                ]
            },
            "status": {
                "dockerImageRepository": "image-registry.openshift-image-registry.svc:5000/shop/web",
                "publicDockerImageRepository": "registry.apps.example.com/shop/web",
                "tags": [
                    {
                        "tag": "1.25",
                        "items": [
                            {
                                "created": "2024-03-02T08:00:00Z",
                                "dockerImageReference": "docker.io/library/nginx@sha256:0155e28bdf2a1c6d3fd8a1bf1a8f9c09c2b9cde2e8e0fbc4c7bf5c1c6a6d8a71",
                                "image": "sha256:0155e28bdf2a1c6d3fd8a1bf1a8f9c09c2b9cde2e8e0fbc4c7bf5c1c6a6d8a71",
                                "generation": 3
                            },
                            {
                                "created": "2024-03-01T10:00:05Z",
                                "dockerImageReference": "docker.io/library/nginx@sha256:9a9e2c2e0ba1bb0a1e5a06fa5bc8ea4a3d1bbd31a6db8d7d6c1e4c0a3f5e8d11",
                                "image": "sha256:9a9e2c2e0ba1bb0a1e5a06fa5bc8ea4a3d1bbd31a6db8d7d6c1e4c0a3f5e8d11",
                                "generation": 2,
                                "platforms": ["linux/amd64", "linux/arm64"]
                            }
                        ]
                    },
                    {
                        "tag": "missing",
                        "items": null,
                        "conditions": [
                            {
                                "type": "ImportSuccess",
                                "status": "False",
                                "lastTransitionTime": "2024-03-01T10:00:05Z",
                                "reason": "NotFound",
                                "message": "manifest unknown",
                                "generation": 2
                            }
                        ]
                    }
                ]
            }
        })
    }

    /// Drops `null` values, which mean the same as an absent field.
    fn without_nulls(value: Value) -> Value {
        match value {
            Value::Object(map) => Value::Object(
                map.into_iter()
                    .filter(|(_, v)| !v.is_null())
                    .map(|(k, v)| (k, without_nulls(v)))
                    .collect(),
            ),
            Value::Array(items) => Value::Array(items.into_iter().map(without_nulls).collect()),
            other => other,
        }
    }

    fn crd_json() -> Value {
        serde_json::to_value(ImageStream::crd()).unwrap()
    }

    fn schema_json() -> Value {
        crd_json()["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone()
    }

    #[test]
    fn an_openshift_stream_with_status_deserialises_into_typed_fields() {
        let stream: ImageStream = serde_json::from_value(openshift_stream()).unwrap();
        assert_eq!(stream.metadata.name.as_deref(), Some("web"));
        let spec_tag = stream.spec.tag("1.25").unwrap();
        assert!(spec_tag.annotations.is_empty());
        assert!(spec_tag.is_scheduled());
        assert_eq!(
            spec_tag.from.as_ref().unwrap().kind.as_deref(),
            Some(KIND_DOCKER_IMAGE)
        );
        let alias = stream.spec.tag("latest").unwrap();
        assert_eq!(alias.generation, None);
        assert_eq!(alias.import_mode(), IMPORT_MODE_PRESERVE_ORIGINAL);
        assert_eq!(alias.reference_policy_type(), REFERENCE_POLICY_LOCAL);
        assert!(alias.is_insecure());
        assert!(stream.spec.tag("missing").unwrap().is_reference());

        let status = stream.status.as_ref().unwrap();
        let history = status.tag("1.25").unwrap();
        assert_eq!(history.items.len(), 2);
        assert_eq!(history.current().unwrap().generation, 3);
        assert_eq!(history.items[1].platforms, ["linux/amd64", "linux/arm64"]);
        let failed = status.tag("missing").unwrap();
        assert!(failed.items.is_empty());
        assert_eq!(failed.current(), None);
        assert_eq!(failed.conditions[0].type_, CONDITION_IMPORT_SUCCESS);
        assert_eq!(failed.conditions[0].reason.as_deref(), Some("NotFound"));
    }

    #[test]
    fn an_openshift_stream_round_trips_unchanged_apart_from_nulls() {
        let manifest = openshift_stream();
        let stream: ImageStream = serde_json::from_value(manifest.clone()).unwrap();
        let written = serde_json::to_value(&stream).unwrap();
        assert_eq!(written, without_nulls(manifest));
        let reread: ImageStream = serde_json::from_value(written).unwrap();
        assert_eq!(reread, stream);
    }

    #[test]
    fn unset_policies_read_as_openshift_defaults() {
        let tag = TagReference {
            name: "latest".into(),
            ..TagReference::default()
        };
        assert_eq!(tag.import_mode(), IMPORT_MODE_LEGACY);
        assert_eq!(tag.reference_policy_type(), REFERENCE_POLICY_SOURCE);
        assert!(!tag.is_scheduled());
        assert!(!tag.is_insecure());
        assert!(!tag.is_reference());
    }

    #[test]
    fn a_new_stream_serialises_with_api_version_and_kind_and_no_empty_fields() {
        let stream = ImageStream::new("web", ImageStreamSpec::default());
        assert_eq!(
            serde_json::to_value(&stream).unwrap(),
            json!({
                "apiVersion": "image.openshift.io/v1",
                "kind": "ImageStream",
                "metadata": {"name": "web"},
                "spec": {}
            })
        );
        assert_eq!(
            ImageStream::url_path(&(), Some("shop")),
            "/apis/image.openshift.io/v1/namespaces/shop/imagestreams"
        );
    }

    #[test]
    fn the_crd_is_namespaced_with_short_name_and_status_subresource() {
        let crd: CustomResourceDefinition = ImageStream::crd();
        assert_eq!(
            crd.metadata.name.as_deref(),
            Some("imagestreams.image.openshift.io")
        );
        assert_eq!(crd.spec.group, "image.openshift.io");
        assert_eq!(crd.spec.scope, "Namespaced");
        assert_eq!(crd.spec.names.kind, "ImageStream");
        assert_eq!(crd.spec.names.plural, "imagestreams");
        assert_eq!(crd.spec.names.singular.as_deref(), Some("imagestream"));
        assert_eq!(crd.spec.names.short_names, Some(vec!["is".to_string()]));
        let version = &crd.spec.versions[0];
        assert_eq!(version.name, "v1");
        assert!(version.served && version.storage);
        assert!(version.subresources.as_ref().unwrap().status.is_some());
    }

    #[test]
    fn the_crd_prints_columns_like_oc_get_is() {
        let columns: Vec<(String, String, String)> = ImageStream::crd().spec.versions[0]
            .additional_printer_columns
            .clone()
            .unwrap()
            .into_iter()
            .map(|c| (c.name, c.type_, c.json_path))
            .collect();
        let expected = [
            (
                "Image Repository",
                "string",
                ".status['publicDockerImageRepository','dockerImageRepository']",
            ),
            ("Tags", "string", ".status.tags[*].tag"),
            ("Updated", "date", ".status.tags[0].items[0].created"),
        ]
        .map(|(n, t, p)| (n.to_string(), t.to_string(), p.to_string()));
        assert_eq!(columns, expected);
        // The apiserver only accepts column paths that start with a dot.
        assert!(columns.iter().all(|(_, _, path)| path.starts_with('.')));
    }

    #[test]
    fn the_schema_is_structural() {
        let schema = schema_json();
        assert_structural(&schema, "");
        assert_eq!(schema["type"], "object");
    }

    #[test]
    fn spec_and_status_tags_are_list_maps_keyed_by_required_names() {
        let schema = schema_json();
        let spec_tags = &schema["properties"]["spec"]["properties"]["tags"];
        assert_eq!(spec_tags["x-kubernetes-list-type"], "map");
        assert_eq!(spec_tags["x-kubernetes-list-map-keys"], json!(["name"]));
        assert_eq!(spec_tags["items"]["required"], json!(["name"]));

        let status_tags = &schema["properties"]["status"]["properties"]["tags"];
        assert_eq!(status_tags["x-kubernetes-list-type"], "map");
        assert_eq!(status_tags["x-kubernetes-list-map-keys"], json!(["tag"]));
        assert_eq!(status_tags["items"]["required"], json!(["tag"]));

        let history = &status_tags["items"]["properties"];
        assert_eq!(history["items"]["x-kubernetes-list-type"], "atomic");
        assert_eq!(
            history["items"]["nullable"], true,
            "OpenShift writes `items: null`"
        );
        assert_eq!(history["conditions"]["x-kubernetes-list-type"], "atomic");
    }

    #[test]
    fn spec_objects_keep_unknown_fields_so_manifests_for_newer_openshift_apply() {
        /// Checks every object with properties under `node` and returns the paths it checked.
        fn walk(node: &Value, path: &str, checked: &mut Vec<String>) {
            if node.get("type") == Some(&json!("object")) && node.get("properties").is_some() {
                assert_eq!(
                    node.get("x-kubernetes-preserve-unknown-fields"),
                    Some(&json!(true)),
                    "{path} drops unknown fields"
                );
                assert!(node.get("nullable").is_none(), "{path} is nullable");
                checked.push(path.to_owned());
            }
            for (name, property) in node
                .get("properties")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
            {
                walk(property, &format!("{path}.{name}"), checked);
            }
            if let Some(items) = node.get("items") {
                walk(items, &format!("{path}[]"), checked);
            }
        }
        let mut checked = Vec::new();
        walk(&schema_json()["properties"]["spec"], "spec", &mut checked);
        // The walk must have reached every object of the spec, nested ones included.
        for path in [
            "spec",
            "spec.lookupPolicy",
            "spec.tags[]",
            "spec.tags[].from",
            "spec.tags[].importPolicy",
            "spec.tags[].referencePolicy",
        ] {
            assert!(
                checked.iter().any(|c| c == path),
                "{path} not checked: {checked:?}"
            );
        }
    }

    #[test]
    fn status_objects_keep_unknown_fields_so_exports_from_newer_openshift_apply() {
        let status = &schema_json()["properties"]["status"];
        let history = &status["properties"]["tags"]["items"];
        for node in [
            status,
            history,
            &history["properties"]["items"]["items"],
            &history["properties"]["conditions"]["items"],
        ] {
            assert_eq!(node["x-kubernetes-preserve-unknown-fields"], true);
        }
    }

    #[test]
    fn spec_may_be_omitted_and_defaults_to_an_empty_object() {
        let schema = schema_json();
        assert!(schema.get("required").is_none());
        assert_eq!(schema["properties"]["spec"]["default"], json!({}));
    }

    #[test]
    fn annotations_are_a_string_map() {
        let schema = schema_json();
        let annotations = &schema["properties"]["spec"]["properties"]["tags"]["items"]["properties"]
            ["annotations"];
        assert_eq!(annotations["type"], "object");
        assert_eq!(annotations["nullable"], true);
        assert_eq!(
            annotations["additionalProperties"],
            json!({"type": "string"})
        );
    }

    #[test]
    fn string_typed_fields_stay_plain_strings_so_the_controller_can_report_bad_values() {
        let schema = schema_json();
        let tag = &schema["properties"]["spec"]["properties"]["tags"]["items"]["properties"];
        for field in [
            &tag["from"]["properties"]["kind"],
            &tag["importPolicy"]["properties"]["importMode"],
            &tag["referencePolicy"]["properties"]["type"],
        ] {
            assert_eq!(field["type"], "string");
            assert!(field.get("enum").is_none());
        }
    }

    #[test]
    fn timestamps_are_date_time_strings() {
        let schema = schema_json();
        let event = &schema["properties"]["status"]["properties"]["tags"]["items"]["properties"]["items"]
            ["items"];
        assert_eq!(event["properties"]["created"]["type"], "string");
        assert_eq!(event["properties"]["created"]["format"], "date-time");
        let mut required: Vec<&str> = event["required"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        required.sort_unstable();
        assert_eq!(
            required,
            ["created", "dockerImageReference", "generation", "image"]
        );
    }

    #[test]
    fn every_field_has_a_description_for_kubectl_explain() {
        assert_described(&schema_json(), "");
    }
}
