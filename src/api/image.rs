//! The Image kind (`image.openshift.io/v1`, cluster-scoped): what the operator learnt about one
//! manifest digest when it imported it. Like OpenShift's, the object has no `spec`: its fields sit
//! next to `metadata`, so the type, its `kube::Resource` impl and its CRD are written by hand here.
//!
//! The top-level fields, layers and manifest entries are typed strictly. `dockerImageMetadata` and
//! `signatures` are typed subsets of what OpenShift stores there, so those objects keep unknown
//! fields (`x-kubernetes-preserve-unknown-fields`) and an Image exported from OpenShift applies
//! unchanged; the operator ignores such fields.

use std::borrow::Cow;
use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceColumnDefinition, CustomResourceDefinition, CustomResourceDefinitionNames,
    CustomResourceDefinitionSpec, CustomResourceDefinitionVersion, CustomResourceValidation,
    JSONSchemaProps,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::core::{ApiResource, ClusterResourceScope, CustomResourceExt, Resource};
use schemars::generate::SchemaSettings;
use schemars::transform::AddNullable;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::ser::SerializeStruct;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::json;

use crate::domain::image_name::{ImageNameError, digest_for_image_name, image_name_for_digest};

const GROUP: &str = "image.openshift.io";
const VERSION: &str = "v1";
const API_VERSION: &str = "image.openshift.io/v1";
const KIND: &str = "Image";
const PLURAL: &str = "images";
const SINGULAR: &str = "image";
const CRD_NAME: &str = "images.image.openshift.io";

/// `kind` of the object stored in `dockerImageMetadata`.
pub const DOCKER_IMAGE_METADATA_KIND: &str = "DockerImage";
/// `apiVersion` of the object stored in `dockerImageMetadata`.
pub const DOCKER_IMAGE_METADATA_API_VERSION: &str = "image.openshift.io/1.0";
/// `dockerImageMetadataVersion` of the metadata the operator writes.
pub const DOCKER_IMAGE_METADATA_VERSION: &str = "1.0";

/// One manifest digest known to the cluster, with what was read from its manifest and config.
/// The object name is the digest with `:` replaced by `.` (`sha256.0155e28b…`), because
/// Kubernetes names cannot contain `:` as OpenShift's do; the digest itself is in
/// `dockerImageReference`. Created once per digest by the operator, deleted after a grace period
/// once no stream's history refers to it.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Image {
    /// Standard object metadata; the name is derived from the digest.
    // The apiserver owns the schema of `metadata`, so it is left out of ours.
    #[serde(default)]
    #[schemars(skip)]
    pub metadata: ObjectMeta,

    /// A pull spec of the image by digest, in the repository it was first imported from
    /// (`docker.io/library/nginx@sha256:…`).
    #[serde(default)]
    pub docker_image_reference: Option<String>,

    /// Facts from the image's config blob: creation time, platform, author, the container
    /// configuration (labels, environment, entrypoint…) and `Size`. Unset for manifest lists.
    #[serde(default)]
    pub docker_image_metadata: Option<DockerImageMetadata>,

    /// The version of the `dockerImageMetadata` format; `1.0` when unset.
    #[serde(default)]
    pub docker_image_metadata_version: Option<String>,

    /// The raw manifest JSON. Accepted for compatibility; the operator does not store manifests.
    #[serde(default)]
    pub docker_image_manifest: Option<String>,

    /// The image's layers, base layer first. Empty for manifest lists.
    #[serde(default)]
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub docker_image_layers: Vec<ImageLayer>,

    /// Signatures of the image as OpenShift records them. Accepted for compatibility; the
    /// operator neither writes nor verifies signatures.
    #[serde(default)]
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub signatures: Vec<ImageSignature>,

    /// Schema 1 manifest signatures as base64 blobs. Accepted for compatibility; not written.
    #[serde(default)]
    #[schemars(with = "Vec<String>", extend("x-kubernetes-list-type" = "atomic"))]
    pub docker_image_signatures: Vec<ByteString>,

    /// The media type of the manifest, e.g. `application/vnd.oci.image.index.v1+json` or
    /// `application/vnd.docker.distribution.manifest.v2+json`.
    #[serde(default)]
    pub docker_image_manifest_media_type: Option<String>,

    /// The raw config JSON. Accepted for compatibility; the operator does not store configs.
    #[serde(default)]
    pub docker_image_config: Option<String>,

    /// For a manifest list or OCI index: its entries, one per platform. Each entry's digest is
    /// an Image of its own when the list was imported with `importMode: PreserveOriginal`.
    #[serde(default)]
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub docker_image_manifests: Vec<ImageManifest>,
}

/// One layer of an image.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImageLayer {
    /// The layer's blob digest (`sha256:…`).
    pub name: String,

    /// The compressed size of the layer in bytes, as given in the manifest.
    pub size: i64,

    /// The layer's media type, e.g. `application/vnd.oci.image.layer.v1.tar+gzip`.
    pub media_type: String,
}

/// One entry of a manifest list or OCI index.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImageManifest {
    /// The entry's manifest digest (`sha256:…`).
    pub digest: String,

    /// The entry's manifest media type.
    pub media_type: String,

    /// The size of the entry's manifest in bytes.
    pub manifest_size: i64,

    /// The CPU architecture the entry is for, e.g. `amd64` or `arm64`.
    pub architecture: String,

    /// The operating system the entry is for, e.g. `linux`.
    pub os: String,

    /// The CPU variant, e.g. `v8` for `arm64/v8`; unset when the list gives none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

/// The metadata OpenShift stores for an image (its `DockerImage` object, with Docker's
/// capitalised field names), filled by the operator from the image's config blob.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "PascalCase")]
#[schemars(extend("x-kubernetes-preserve-unknown-fields" = true))]
pub struct DockerImageMetadata {
    /// Always `DockerImage`.
    #[serde(default, rename = "kind", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,

    /// Always `image.openshift.io/1.0`.
    #[serde(
        default,
        rename = "apiVersion",
        skip_serializing_if = "Option::is_none"
    )]
    pub api_version: Option<String>,

    /// The image ID; the operator writes the config blob digest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,

    /// The parent image ID of images built by old Docker versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,

    /// The comment the image was committed with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,

    /// When the image was built, from the config blob.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<Time>,

    /// The ID of the container the image was committed from (old Docker builds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,

    /// The configuration of the container the image was committed from (old Docker builds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_config: Option<DockerContainerConfig>,

    /// The Docker version that built the image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docker_version: Option<String>,

    /// The image's author, from the config blob.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,

    /// The configuration containers of this image start with: user, environment, entrypoint,
    /// command, working directory, ports, volumes and labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<DockerContainerConfig>,

    /// The CPU architecture, e.g. `amd64`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub architecture: Option<String>,

    /// The operating system, e.g. `linux`. Not part of OpenShift's DockerImage; added by this
    /// operator, which OpenShift clients ignore.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<String>,

    /// The image size in bytes: the config blob plus every distinct layer, compressed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<i64>,
}

/// The container configuration recorded in an image config, with Docker's field names. Only the
/// fields an OCI config can carry are typed; older Docker-only fields are kept by the apiserver
/// but not read.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "PascalCase")]
#[schemars(extend("x-kubernetes-preserve-unknown-fields" = true))]
pub struct DockerContainerConfig {
    /// The container host name the image was built with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,

    /// The container domain name the image was built with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domainname: Option<String>,

    /// The user (and optionally group) the process runs as, e.g. `1001` or `nginx:nginx`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,

    /// The ports the image declares, as keys like `8080/tcp` with empty objects as values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub exposed_ports: BTreeMap<String, EmptyObject>,

    /// The environment, as `NAME=value` entries.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,

    /// The default arguments (or command, without an entrypoint).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cmd: Vec<String>,

    /// The image the configuration was derived from (old Docker builds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,

    /// The volumes the image declares, as paths with empty objects as values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub volumes: BTreeMap<String, EmptyObject>,

    /// The working directory of the process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,

    /// The executable and leading arguments of the process.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entrypoint: Vec<String>,

    /// Build instructions that run when another image is built from this one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub on_build: Vec<String>,

    /// The image's labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,

    /// The signal that stops the container, e.g. `SIGQUIT`. Not part of OpenShift's DockerConfig;
    /// added from the OCI config.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
}

/// An empty JSON object: Docker encodes sets (exposed ports, volumes) as maps to `{}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct EmptyObject {}

/// A signature of an image, as OpenShift stores it. Accepted so that OpenShift Images apply;
/// the operator does not create or verify signatures.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-preserve-unknown-fields" = true))]
pub struct ImageSignature {
    /// The signature's object metadata; its name is `<image digest>@<signature id>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "opaque_object")]
    pub metadata: Option<ObjectMeta>,

    /// The kind of signature blob, e.g. `atomic`.
    #[serde(rename = "type")]
    pub type_: String,

    /// The signature blob, base64-encoded.
    #[schemars(with = "String")]
    pub content: ByteString,

    /// What is known about the signature's validity.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<SignatureCondition>,

    /// The identity the signature claims for the image, such as a pull spec or product name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_identity: Option<String>,

    /// Claims read from the signature.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub signed_claims: BTreeMap<String, String>,

    /// When the signature was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<Time>,

    /// Who issued the signing key or certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issued_by: Option<SignatureIssuer>,

    /// Who the signing key or certificate was issued to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issued_to: Option<SignatureSubject>,
}

/// A condition of an image signature.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-preserve-unknown-fields" = true))]
pub struct SignatureCondition {
    /// The condition type, e.g. `Trusted`.
    #[serde(rename = "type")]
    pub type_: String,

    /// `True`, `False` or `Unknown`.
    pub status: String,

    /// When the condition was last checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_probe_time: Option<Time>,

    /// When the status last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,

    /// Why the status last changed, one word.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,

    /// A human-readable explanation of the last change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// The issuer of a signing key or certificate.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-preserve-unknown-fields" = true))]
pub struct SignatureIssuer {
    /// The issuer's organisation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization: Option<String>,

    /// The issuer's common name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub common_name: Option<String>,
}

/// The holder of a signing key or certificate.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-preserve-unknown-fields" = true))]
pub struct SignatureSubject {
    /// The holder's organisation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization: Option<String>,

    /// The holder's common name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub common_name: Option<String>,

    /// A human-readable ID of the holder's public key, e.g. its fingerprint's low 64 bits.
    #[serde(
        default,
        rename = "publicKeyID",
        skip_serializing_if = "Option::is_none"
    )]
    pub public_key_id: Option<String>,
}

/// Schema of a nested object whose shape the apiserver should not check.
fn opaque_object(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
    })
}

impl Image {
    /// An empty Image named after a manifest digest (`sha256:…`), through the one naming rule.
    pub fn for_digest(digest: &str) -> Result<Self, ImageNameError> {
        Ok(Self {
            metadata: ObjectMeta {
                name: Some(image_name_for_digest(digest)?),
                ..ObjectMeta::default()
            },
            ..Self::default()
        })
    }

    /// The manifest digest this Image stands for, read from its name; `None` when the name is not
    /// an Image name.
    pub fn digest(&self) -> Option<String> {
        digest_for_image_name(self.metadata.name.as_deref()?).ok()
    }

    /// The CustomResourceDefinition serving Images. Same as [`CustomResourceExt::crd`], without
    /// needing the trait in scope.
    pub fn crd() -> CustomResourceDefinition {
        <Self as CustomResourceExt>::crd()
    }

    /// The `openAPIV3Schema` of the CRD: the derived schema of the top-level fields, generated with
    /// the same settings `#[derive(CustomResource)]` uses, plus `apiVersion`, `kind` and `metadata`.
    fn schema() -> JSONSchemaProps {
        let generator = SchemaSettings::openapi3()
            .with(|settings| {
                settings.inline_subschemas = true;
                settings.meta_schema = None;
            })
            .with_transform(AddNullable::default())
            .with_transform(kube::core::schema::StructuralSchemaRewriter)
            .with_transform(kube::core::schema::OptionalEnum)
            .with_transform(kube::core::schema::OptionalIntOrString)
            .into_generator();
        let mut schema = generator.into_root_schema_for::<Self>().to_value();
        let properties = schema["properties"]
            .as_object_mut()
            .expect("the Image schema has properties");
        properties.insert(
            "apiVersion".into(),
            json!({"type": "string", "description": "Always `image.openshift.io/v1`."}),
        );
        properties.insert(
            "kind".into(),
            json!({"type": "string", "description": "Always `Image`."}),
        );
        // The apiserver rejects anything but a bare `type` here (even a description).
        properties.insert("metadata".into(), json!({"type": "object"}));
        serde_json::from_value(schema).expect("the Image schema is a valid JSONSchemaProps")
    }
}

// Written by hand because the derive would leave out `apiVersion` and `kind`, which every object
// sent to the apiserver needs (reading ignores them, as `#[derive(CustomResource)]` does). Unset
// and empty fields are left out, as OpenShift does.
impl Serialize for Image {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        fn optional<O: SerializeStruct, T: Serialize>(
            object: &mut O,
            key: &'static str,
            value: &Option<T>,
        ) -> Result<(), O::Error> {
            match value {
                Some(value) => object.serialize_field(key, value),
                None => object.skip_field(key),
            }
        }
        fn list<O: SerializeStruct, T: Serialize>(
            object: &mut O,
            key: &'static str,
            value: &[T],
        ) -> Result<(), O::Error> {
            if value.is_empty() {
                object.skip_field(key)
            } else {
                object.serialize_field(key, value)
            }
        }

        let mut object = serializer.serialize_struct(KIND, 13)?;
        object.serialize_field("apiVersion", API_VERSION)?;
        object.serialize_field("kind", KIND)?;
        object.serialize_field("metadata", &self.metadata)?;
        optional(
            &mut object,
            "dockerImageReference",
            &self.docker_image_reference,
        )?;
        optional(
            &mut object,
            "dockerImageMetadata",
            &self.docker_image_metadata,
        )?;
        optional(
            &mut object,
            "dockerImageMetadataVersion",
            &self.docker_image_metadata_version,
        )?;
        optional(
            &mut object,
            "dockerImageManifest",
            &self.docker_image_manifest,
        )?;
        list(&mut object, "dockerImageLayers", &self.docker_image_layers)?;
        list(&mut object, "signatures", &self.signatures)?;
        list(
            &mut object,
            "dockerImageSignatures",
            &self.docker_image_signatures,
        )?;
        optional(
            &mut object,
            "dockerImageManifestMediaType",
            &self.docker_image_manifest_media_type,
        )?;
        optional(&mut object, "dockerImageConfig", &self.docker_image_config)?;
        list(
            &mut object,
            "dockerImageManifests",
            &self.docker_image_manifests,
        )?;
        object.end()
    }
}

impl Resource for Image {
    type DynamicType = ();
    type Scope = ClusterResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        KIND.into()
    }

    fn group(_: &()) -> Cow<'_, str> {
        GROUP.into()
    }

    fn version(_: &()) -> Cow<'_, str> {
        VERSION.into()
    }

    fn api_version(_: &()) -> Cow<'_, str> {
        API_VERSION.into()
    }

    fn plural(_: &()) -> Cow<'_, str> {
        PLURAL.into()
    }

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

impl CustomResourceExt for Image {
    fn crd() -> CustomResourceDefinition {
        let column = |name: &str, json_path: &str, description: &str, priority: Option<i32>| {
            CustomResourceColumnDefinition {
                name: name.into(),
                type_: "string".into(),
                json_path: json_path.into(),
                description: Some(description.into()),
                priority,
                ..CustomResourceColumnDefinition::default()
            }
        };
        CustomResourceDefinition {
            metadata: ObjectMeta {
                name: Some(CRD_NAME.into()),
                ..ObjectMeta::default()
            },
            spec: CustomResourceDefinitionSpec {
                group: GROUP.into(),
                names: CustomResourceDefinitionNames {
                    kind: KIND.into(),
                    plural: PLURAL.into(),
                    singular: Some(SINGULAR.into()),
                    ..CustomResourceDefinitionNames::default()
                },
                scope: "Cluster".into(),
                versions: vec![CustomResourceDefinitionVersion {
                    name: VERSION.into(),
                    served: true,
                    storage: true,
                    schema: Some(CustomResourceValidation {
                        open_api_v3_schema: Some(Self::schema()),
                    }),
                    additional_printer_columns: Some(vec![
                        column(
                            "Image Reference",
                            ".dockerImageReference",
                            "A pull spec of the image by digest.",
                            None,
                        ),
                        column(
                            "Media Type",
                            ".dockerImageManifestMediaType",
                            "The media type of the manifest.",
                            Some(1),
                        ),
                    ]),
                    ..CustomResourceDefinitionVersion::default()
                }],
                ..CustomResourceDefinitionSpec::default()
            },
            status: None,
        }
    }

    fn crd_name() -> &'static str {
        CRD_NAME
    }

    fn api_resource() -> ApiResource {
        ApiResource::erase::<Self>(&())
    }

    fn shortnames() -> &'static [&'static str] {
        &[]
    }
}

/// The part of an Image the operator keeps in memory: its name (hence its digest), when it was
/// created and the digests of a manifest list's children. Deserialising a watched Image into this
/// drops everything else (layers, metadata, config) as it is read, so the cache of every Image of
/// the cluster stays small.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageSummary {
    /// The object's metadata (the cache trims what it does not read).
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// The children of a manifest list.
    #[serde(default)]
    pub docker_image_manifests: Vec<ChildDigest>,
}

/// One child of a manifest list, by digest.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct ChildDigest {
    /// The child's manifest digest.
    pub digest: String,
}

impl ImageSummary {
    /// The manifest digest this Image stands for, read from its name.
    pub fn digest(&self) -> Option<String> {
        digest_for_image_name(self.metadata.name.as_deref()?).ok()
    }
}

impl Resource for ImageSummary {
    type DynamicType = ();
    type Scope = ClusterResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        KIND.into()
    }

    fn group(_: &()) -> Cow<'_, str> {
        GROUP.into()
    }

    fn version(_: &()) -> Cow<'_, str> {
        VERSION.into()
    }

    fn api_version(_: &()) -> Cow<'_, str> {
        API_VERSION.into()
    }

    fn plural(_: &()) -> Cow<'_, str> {
        PLURAL.into()
    }

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::image_stream::{assert_described, assert_structural};
    use pretty_assertions::assert_eq;
    use serde_json::Value;

    const DIGEST: &str = "sha256:0155e28bdf2a1c6d3fd8a1bf1a8f9c09c2b9cde2e8e0fbc4c7bf5c1c6a6d8a71";
    const NAME: &str = "sha256.0155e28bdf2a1c6d3fd8a1bf1a8f9c09c2b9cde2e8e0fbc4c7bf5c1c6a6d8a71";

    /// An Image as `oc get image -o json` prints it on OpenShift 4, with every top-level field set
    /// (our Kubernetes-compatible name instead of OpenShift's `sha256:` one).
    fn openshift_image() -> Value {
        json!({
            "apiVersion": "image.openshift.io/v1",
            "kind": "Image",
            "metadata": {
                "name": NAME,
                "uid": "8d7c6f8a-0d4e-4b8e-a3c1-2f0e4b1d9c77",
                "resourceVersion": "91422",
                "creationTimestamp": "2024-03-02T08:00:01Z",
                "annotations": {"image.openshift.io/dockerLayersOrder": "ascending"}
            },
            "dockerImageReference": format!("docker.io/library/nginx@{DIGEST}"),
            "dockerImageMetadata": {
                "kind": "DockerImage",
                "apiVersion": "image.openshift.io/1.0",
                "Id": "sha256:a8758716bb6aa4d90071160d27028fe4eaee7ce8166221a97d30440c8eac2be6",
                "Parent": "sha256:3f1d1fd5e5d1a1a1ad7c4e0e0a5d3c1b2e9f8f3e6a2b0c1d4e5f6a7b8c9d0e1f",
                "Comment": "buildkit.dockerfile.v0",
                "Created": "2024-02-14T19:47:11Z",
                "Container": "0c5d3b0f0d9e",
                "ContainerConfig": {"Hostname": "0c5d3b0f0d9e"},
                "DockerVersion": "20.10.23",
                "Author": "NGINX Docker Maintainers <docker-maint@nginx.com>",
                "Config": {
                    "User": "101",
                    "ExposedPorts": {"80/tcp": {}},
                    "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "NGINX_VERSION=1.25.4"],
                    "Entrypoint": ["/docker-entrypoint.sh"],
                    "Cmd": ["nginx", "-g", "daemon off;"],
                    "Volumes": {"/var/cache/nginx": {}},
                    "WorkingDir": "/",
                    "OnBuild": ["RUN true"],
                    "Labels": {"maintainer": "NGINX Docker Maintainers <docker-maint@nginx.com>"},
                    "StopSignal": "SIGQUIT"
                },
                "Architecture": "amd64",
                "Os": "linux",
                "Size": 70_412_531
            },
            "dockerImageMetadataVersion": "1.0",
            "dockerImageManifest": "{\"schemaVersion\":2}",
            "dockerImageLayers": [
                {
                    "name": "sha256:e1caac4eb9d2ec24aa3618e5992208321a92492aef5fef5eb9e470895f771c56",
                    "size": 29_126_484,
                    "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip"
                },
                {
                    "name": "sha256:88f6f236f401ac07aa5309d8ade2b0c9d24b9f526bd4e73311bf5c1787cfd49c",
                    "size": 41_286_047,
                    "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip"
                }
            ],
            "signatures": [
                {
                    "metadata": {"name": format!("{DIGEST}@a1b2c3d4e5f60718293a4b5c6d7e8f90")},
                    "type": "atomic",
                    "content": "c2lnbmF0dXJl",
                    "conditions": [
                        {
                            "type": "Trusted",
                            "status": "True",
                            "lastProbeTime": "2024-03-02T08:00:02Z",
                            "lastTransitionTime": "2024-03-02T08:00:02Z",
                            "reason": "Verified",
                            "message": "signed by a trusted key"
                        }
                    ],
                    "imageIdentity": "docker.io/library/nginx:1.25",
                    "signedClaims": {"creator": "atomic 1.22"},
                    "created": "2024-03-01T00:00:00Z",
                    "issuedBy": {"organization": "Acme", "commonName": "Acme signing"},
                    "issuedTo": {"organization": "Acme", "commonName": "release", "publicKeyID": "0x685ebe62bf278440"}
                }
            ],
            "dockerImageSignatures": ["c2NoZW1hMQ=="],
            "dockerImageManifestMediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "dockerImageConfig": "{\"architecture\":\"amd64\"}",
            "dockerImageManifests": [
                {
                    "digest": "sha256:9a9e2c2e0ba1bb0a1e5a06fa5bc8ea4a3d1bbd31a6db8d7d6c1e4c0a3f5e8d11",
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "manifestSize": 1_778,
                    "architecture": "arm64",
                    "os": "linux",
                    "variant": "v8"
                }
            ]
        })
    }

    fn schema_json() -> Value {
        serde_json::to_value(Image::crd()).unwrap()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
            .clone()
    }

    #[test]
    fn an_openshift_image_deserialises_into_typed_fields() {
        let image: Image = serde_json::from_value(openshift_image()).unwrap();
        assert_eq!(image.digest().as_deref(), Some(DIGEST));
        let metadata = image.docker_image_metadata.as_ref().unwrap();
        assert_eq!(metadata.kind.as_deref(), Some(DOCKER_IMAGE_METADATA_KIND));
        assert_eq!(
            metadata.api_version.as_deref(),
            Some(DOCKER_IMAGE_METADATA_API_VERSION)
        );
        assert_eq!(metadata.size, Some(70_412_531));
        let config = metadata.config.as_ref().unwrap();
        assert_eq!(config.entrypoint, ["/docker-entrypoint.sh"]);
        assert!(config.exposed_ports.contains_key("80/tcp"));
        assert_eq!(
            config.labels["maintainer"],
            "NGINX Docker Maintainers <docker-maint@nginx.com>"
        );
        assert_eq!(image.docker_image_layers[1].size, 41_286_047);
        assert_eq!(
            image.docker_image_manifests[0].variant.as_deref(),
            Some("v8")
        );
        assert_eq!(image.signatures[0].content.0, b"signature");
        assert_eq!(image.docker_image_signatures[0].0, b"schema1");
    }

    #[test]
    fn an_openshift_image_round_trips_unchanged() {
        let manifest = openshift_image();
        let image: Image = serde_json::from_value(manifest.clone()).unwrap();
        let written = serde_json::to_value(&image).unwrap();
        assert_eq!(written, manifest);
        assert_eq!(serde_json::from_value::<Image>(written).unwrap(), image);
    }

    #[test]
    fn an_image_for_a_digest_is_named_by_the_naming_rule_and_serialises_with_its_type() {
        let image = Image::for_digest(DIGEST).unwrap();
        assert_eq!(image.metadata.name.as_deref(), Some(NAME));
        assert_eq!(image.digest().as_deref(), Some(DIGEST));
        assert_eq!(
            serde_json::to_value(&image).unwrap(),
            json!({"apiVersion": "image.openshift.io/v1", "kind": "Image", "metadata": {"name": NAME}})
        );
        assert!(Image::for_digest("sha256:not-hex").is_err());
    }

    #[test]
    fn an_image_whose_name_is_not_a_digest_has_no_digest() {
        let mut image = Image::default();
        assert_eq!(image.digest(), None);
        image.metadata.name = Some("nginx".into());
        assert_eq!(image.digest(), None);
    }

    #[test]
    fn images_are_served_cluster_wide_under_image_openshift_io() {
        assert_eq!(
            Image::url_path(&(), None),
            "/apis/image.openshift.io/v1/images"
        );
        let resource = Image::api_resource();
        assert_eq!(resource.api_version, "image.openshift.io/v1");
        assert_eq!(resource.kind, "Image");
        assert_eq!(resource.plural, "images");
    }

    #[test]
    fn the_crd_is_cluster_scoped_without_short_names_or_subresources() {
        let crd = Image::crd();
        assert_eq!(crd.metadata.name.as_deref(), Some(Image::crd_name()));
        assert_eq!(crd.spec.group, "image.openshift.io");
        assert_eq!(crd.spec.scope, "Cluster");
        assert_eq!(crd.spec.names.kind, "Image");
        assert_eq!(crd.spec.names.plural, "images");
        assert_eq!(crd.spec.names.singular.as_deref(), Some("image"));
        assert_eq!(crd.spec.names.short_names, None);
        let version = &crd.spec.versions[0];
        assert_eq!(version.name, "v1");
        assert!(version.served && version.storage);
        assert_eq!(version.subresources, None);
    }

    #[test]
    fn the_crd_prints_the_image_reference_like_oc_get_images() {
        let columns: Vec<(String, String, Option<i32>)> = Image::crd().spec.versions[0]
            .additional_printer_columns
            .clone()
            .unwrap()
            .into_iter()
            .map(|c| (c.name, c.json_path, c.priority))
            .collect();
        assert_eq!(
            columns,
            [
                (
                    "Image Reference".to_string(),
                    ".dockerImageReference".to_string(),
                    None
                ),
                (
                    "Media Type".to_string(),
                    ".dockerImageManifestMediaType".to_string(),
                    Some(1)
                ),
            ]
        );
    }

    #[test]
    fn the_schema_is_structural_and_has_fields_at_the_top_level() {
        let schema = schema_json();
        assert_structural(&schema, "");
        let properties = schema["properties"].as_object().unwrap();
        for field in [
            "apiVersion",
            "kind",
            "metadata",
            "dockerImageReference",
            "dockerImageMetadata",
            "dockerImageMetadataVersion",
            "dockerImageManifest",
            "dockerImageLayers",
            "signatures",
            "dockerImageSignatures",
            "dockerImageManifestMediaType",
            "dockerImageConfig",
            "dockerImageManifests",
        ] {
            assert!(properties.contains_key(field), "{field} is missing");
        }
        assert!(!properties.contains_key("spec"));
        // The apiserver owns metadata's schema and rejects anything beyond a bare type.
        assert_eq!(properties["metadata"], json!({"type": "object"}));
    }

    #[test]
    fn every_field_but_metadata_has_a_description_for_kubectl_explain() {
        let mut schema = schema_json();
        schema["properties"]
            .as_object_mut()
            .unwrap()
            .remove("metadata");
        assert_described(&schema, "");
    }

    #[test]
    fn docker_image_metadata_has_a_typed_schema_with_docker_field_names() {
        let schema = schema_json();
        let metadata = &schema["properties"]["dockerImageMetadata"];
        assert_eq!(metadata["type"], "object");
        assert_eq!(metadata["properties"]["Created"]["format"], "date-time");
        assert_eq!(metadata["properties"]["Size"]["type"], "integer");
        let config = &metadata["properties"]["Config"]["properties"];
        assert_eq!(
            config["Labels"]["additionalProperties"],
            json!({"type": "string"})
        );
        assert_eq!(config["Entrypoint"]["items"], json!({"type": "string"}));
        assert_eq!(
            config["ExposedPorts"]["additionalProperties"]["type"],
            "object"
        );
    }

    #[test]
    fn only_the_typed_subsets_keep_unknown_fields() {
        let schema = schema_json();
        let properties = &schema["properties"];
        assert!(schema.get("x-kubernetes-preserve-unknown-fields").is_none());
        for strict in [
            &properties["dockerImageLayers"]["items"],
            &properties["dockerImageManifests"]["items"],
        ] {
            assert!(strict.get("x-kubernetes-preserve-unknown-fields").is_none());
        }
        let metadata = &properties["dockerImageMetadata"];
        for lenient in [
            metadata,
            &metadata["properties"]["Config"],
            &metadata["properties"]["ContainerConfig"],
            &properties["signatures"]["items"],
            &properties["signatures"]["items"]["properties"]["metadata"],
        ] {
            assert_eq!(lenient["x-kubernetes-preserve-unknown-fields"], true);
        }
    }

    #[test]
    fn layers_and_manifests_require_what_openshift_always_writes() {
        let schema = schema_json();
        let required = |field: &str| {
            let mut names: Vec<String> = schema["properties"][field]["items"]["required"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_string())
                .collect();
            names.sort_unstable();
            names
        };
        assert_eq!(required("dockerImageLayers"), ["mediaType", "name", "size"]);
        assert_eq!(
            required("dockerImageManifests"),
            ["architecture", "digest", "manifestSize", "mediaType", "os"]
        );
    }
}
