//! Value types shared by the mirror kinds: the source and mirror locations, the `mirrorSourcePolicy` enum
//! of ImageDigestMirrorSet and ImageTagMirrorSet, and [`MirrorRule`], one borrowed view of a source with its
//! mirrors so that later code treats ICSP, IDMS and ITMS entries alike.

use std::borrow::Cow;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

/// The apiserver pattern for a `source` of ImageDigestMirrorSet and ImageTagMirrorSet, equal to
/// OpenShift's: either `*.` followed by a DNS domain, or `host[:port]` with optional lower-case
/// repository path components.
pub const SOURCE_PATTERN: &str = r"^\*(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))+$|^((?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])(?:(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))+)?(?::[0-9]+)?)(?:(?:/[a-z0-9]+(?:(?:(?:[._]|__|[-]*)[a-z0-9]+)+)?)+)?$";

/// The apiserver pattern for each entry of `mirrors` in ImageDigestMirrorSet and ImageTagMirrorSet,
/// equal to OpenShift's: `host[:port]` with optional lower-case repository path components, no wildcard.
pub const MIRROR_PATTERN: &str = r"^((?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])(?:(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))+)?(?::[0-9]+)?)(?:(?:/[a-z0-9]+(?:(?:(?:[._]|__|[-]*)[a-z0-9]+)+)?)+)?$";

/// A repository location that image references are compared against: a registry host (`quay.io`,
/// `registry:5000`), a repository prefix (`quay.io/team`), a full repository, or `*.example.com` for
/// every subdomain of a domain.
///
/// The type itself accepts any string, on purpose: ImageContentSourcePolicy has no pattern in OpenShift's
/// schema, so a malformed entry can reach the operator, which reports it on its object and skips it
/// instead of failing the whole watch. The two config.openshift.io kinds add [`SOURCE_PATTERN`] to their
/// field, so the apiserver refuses malformed values there.
#[derive(
    Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, JsonSchema,
)]
#[serde(transparent)]
#[schemars(description = "A repository location that image references are matched against.")]
pub struct MirrorSource(pub String);

impl MirrorSource {
    /// The location as the user wrote it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MirrorSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for MirrorSource {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

impl From<String> for MirrorSource {
    fn from(value: String) -> Self {
        Self(value)
    }
}

/// A location that may hold the same images as a [`MirrorSource`]: `host[:port]` optionally followed by
/// repository path components. The part of a reference matched by the source is replaced by this value.
///
/// Like [`MirrorSource`] the type accepts any string; only the config.openshift.io kinds constrain it in
/// their schema, with [`MIRROR_PATTERN`].
#[derive(
    Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, JsonSchema,
)]
#[serde(transparent)]
#[schemars(description = "A location that holds the same images as the source.")]
pub struct ImageMirror(pub String);

impl ImageMirror {
    /// The location as the user wrote it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ImageMirror {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for ImageMirror {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

impl From<String> for ImageMirror {
    fn from(value: String) -> Self {
        Self(value)
    }
}

/// Whether the source repository may still be contacted after its mirrors. An unset field means
/// [`MirrorSourcePolicy::AllowContactingSource`], as on OpenShift.
///
/// The schema is written by hand: a plain string enum with no description of its own, so the field
/// that holds it supplies the `kubectl explain` text. Optional fields of this type use it through
/// `#[schemars(schema_with = "MirrorSourcePolicy::json_schema")]`, which keeps `null` out of the enum and
/// leaves the field as OpenShift has it (optional, not nullable).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum MirrorSourcePolicy {
    /// Only the mirrors are tried; the source is never contacted. This operator enforces it for imports,
    /// where OpenShift's importer still falls back to the source.
    NeverContactSource,
    /// The source is tried after every mirror has failed.
    #[default]
    AllowContactingSource,
}

impl MirrorSourcePolicy {
    /// Every value, in the order OpenShift's schema lists them.
    pub const ALL: [Self; 2] = [Self::NeverContactSource, Self::AllowContactingSource];
}

impl JsonSchema for MirrorSourcePolicy {
    fn schema_name() -> Cow<'static, str> {
        "MirrorSourcePolicy".into()
    }

    fn schema_id() -> Cow<'static, str> {
        concat!(module_path!(), "::MirrorSourcePolicy").into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        // The values come from serde so that the schema cannot drift from the wire format.
        let values: Vec<serde_json::Value> = Self::ALL
            .iter()
            .map(|policy| {
                serde_json::to_value(policy).expect("a unit variant serialises to a string")
            })
            .collect();
        json_schema!({ "type": "string", "enum": values })
    }
}

/// One source with its mirrors in the user's order, borrowed from any of the three mirror kinds.
/// ImageContentSourcePolicy entries carry [`MirrorSourcePolicy::AllowContactingSource`], since that
/// kind has no policy field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MirrorRule<'a> {
    /// The location that references are matched against.
    pub source: &'a MirrorSource,
    /// The mirrors for that source, highest priority first.
    pub mirrors: &'a [ImageMirror],
    /// The effective policy, with an unset field already read as the default.
    pub source_policy: MirrorSourcePolicy,
}

/// Test helpers for the mirror kinds' CRDs, shared by their unit tests.
#[cfg(test)]
pub(crate) mod crd_checks {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
        CustomResourceDefinition, JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
    };

    /// The single version's schema of a generated CRD.
    pub(crate) fn root_schema(crd: &CustomResourceDefinition) -> &JSONSchemaProps {
        assert_eq!(crd.spec.versions.len(), 1, "one served version");
        crd.spec.versions[0]
            .schema
            .as_ref()
            .and_then(|validation| validation.open_api_v3_schema.as_ref())
            .expect("the version has an openAPIV3Schema")
    }

    /// The schema at a path of property names, `items` standing for an array's element schema.
    pub(crate) fn schema_at<'a>(root: &'a JSONSchemaProps, path: &[&str]) -> &'a JSONSchemaProps {
        path.iter().fold(root, |schema, step| {
            if *step == "items" {
                match schema.items.as_ref() {
                    Some(JSONSchemaPropsOrArray::Schema(items)) => items,
                    other => panic!("no single items schema at {step}: {other:?}"),
                }
            } else {
                schema
                    .properties
                    .as_ref()
                    .and_then(|properties| properties.get(*step))
                    .unwrap_or_else(|| panic!("no property {step} in {path:?}"))
            }
        })
    }

    /// Panics with the offending path unless the schema follows the structural-schema rules a
    /// Kubernetes 1.20 apiserver enforces for apiextensions.k8s.io/v1, and uses nothing that version
    /// lacks (CEL rules). Our schemas never need the escape hatches (`x-kubernetes-int-or-string`,
    /// `x-kubernetes-preserve-unknown-fields`), so they are refused here too.
    pub(crate) fn assert_structural(crd: &CustomResourceDefinition) {
        let root = root_schema(crd);
        check_node(root, "");
        // The apiserver only allows `type: object` for metadata at the root (kube leaves it out).
        if let Some(metadata) = root
            .properties
            .as_ref()
            .and_then(|properties| properties.get("metadata"))
        {
            assert!(
                metadata.properties.is_none(),
                "metadata must not be constrained beyond type: object"
            );
        }
    }

    fn check_node(schema: &JSONSchemaProps, path: &str) {
        let at = if path.is_empty() { "<root>" } else { path };
        let type_ = schema
            .type_
            .as_deref()
            .unwrap_or_else(|| panic!("{at}: no type"));
        assert!(!type_.is_empty(), "{at}: empty type");
        assert!(schema.ref_path.is_none(), "{at}: $ref is not allowed");
        assert!(schema.schema.is_none(), "{at}: $schema is not allowed");
        assert!(
            schema.definitions.is_none(),
            "{at}: definitions are not allowed"
        );
        assert!(
            schema.all_of.is_none(),
            "{at}: allOf is not needed and must not carry types"
        );
        assert!(
            schema.any_of.is_none(),
            "{at}: anyOf is not needed and must not carry types"
        );
        assert!(
            schema.one_of.is_none(),
            "{at}: oneOf is not needed and must not carry types"
        );
        assert!(schema.not.is_none(), "{at}: not is not needed");
        assert!(
            schema.unique_items != Some(true),
            "{at}: uniqueItems is forbidden"
        );
        assert!(
            schema.additional_items.is_none(),
            "{at}: additionalItems is forbidden"
        );
        assert!(
            schema.x_kubernetes_validations.is_none(),
            "{at}: no CEL on Kubernetes 1.20"
        );
        assert!(
            schema.x_kubernetes_int_or_string.is_none(),
            "{at}: int-or-string is not expected"
        );
        assert!(
            schema.x_kubernetes_preserve_unknown_fields.is_none(),
            "{at}: unknown fields should be pruned"
        );
        for value in schema.enum_.iter().flatten() {
            let matches = match type_ {
                "string" => value.0.is_string(),
                "integer" => value.0.is_i64() || value.0.is_u64(),
                "number" => value.0.is_number(),
                "boolean" => value.0.is_boolean(),
                _ => false,
            };
            assert!(matches, "{at}: enum value {} is not a {type_}", value.0);
        }
        if schema.x_kubernetes_list_type.is_some() {
            assert_eq!(
                type_, "array",
                "{at}: x-kubernetes-list-type on a non-array"
            );
        }
        if let Some(properties) = &schema.properties {
            assert_eq!(type_, "object", "{at}: properties on a non-object");
            assert!(
                schema.additional_properties.is_none(),
                "{at}: properties and additionalProperties are mutually exclusive"
            );
            for (name, property) in properties {
                check_node(property, &format!("{path}.{name}"));
            }
        }
        match &schema.additional_properties {
            Some(JSONSchemaPropsOrBool::Schema(values)) => check_node(values, &format!("{path}.*")),
            Some(JSONSchemaPropsOrBool::Bool(_)) => {
                panic!("{at}: additionalProperties must be a schema")
            }
            None => {}
        }
        match &schema.items {
            Some(JSONSchemaPropsOrArray::Schema(items)) => {
                if schema.x_kubernetes_list_type.as_deref() == Some("set") {
                    let item_type = items.type_.as_deref().unwrap_or_default();
                    assert!(
                        item_type != "object" && item_type != "array",
                        "{at}: a set must hold scalars"
                    );
                }
                check_node(items, &format!("{path}[]"));
            }
            Some(JSONSchemaPropsOrArray::Schemas(_)) => {
                panic!("{at}: items must be a single schema")
            }
            None => assert!(type_ != "array", "{at}: an array needs an items schema"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_values_are_spelled_as_on_openshift() {
        for (policy, text) in [
            (
                MirrorSourcePolicy::NeverContactSource,
                "\"NeverContactSource\"",
            ),
            (
                MirrorSourcePolicy::AllowContactingSource,
                "\"AllowContactingSource\"",
            ),
        ] {
            assert_eq!(serde_json::to_string(&policy).unwrap(), text);
            assert_eq!(
                serde_json::from_str::<MirrorSourcePolicy>(text).unwrap(),
                policy
            );
        }
    }

    #[test]
    fn the_policy_schema_lists_exactly_the_serde_values() {
        let schema = serde_json::to_value(schemars::schema_for!(MirrorSourcePolicy)).unwrap();
        assert_eq!(schema["type"], "string");
        assert_eq!(
            schema["enum"],
            serde_json::json!(["NeverContactSource", "AllowContactingSource"])
        );
        assert!(
            schema.get("description").is_none(),
            "the field supplies the description"
        );
    }

    #[test]
    fn an_unset_policy_allows_contacting_the_source() {
        assert_eq!(
            MirrorSourcePolicy::default(),
            MirrorSourcePolicy::AllowContactingSource
        );
    }

    #[test]
    fn an_unknown_policy_is_refused() {
        assert!(serde_json::from_str::<MirrorSourcePolicy>("\"Sometimes\"").is_err());
    }

    #[test]
    fn locations_are_plain_strings_on_the_wire_and_keep_any_spelling() {
        let source: MirrorSource = serde_json::from_str("\"*.Example.com\"").unwrap();
        assert_eq!(source.as_str(), "*.Example.com");
        assert_eq!(serde_json::to_string(&source).unwrap(), "\"*.Example.com\"");
        // Malformed values deserialise: rejecting them is the apiserver's or the controller's job.
        let mirror: ImageMirror = serde_json::from_str("\"not a mirror\"").unwrap();
        assert_eq!(mirror.to_string(), "not a mirror");
    }
}
