//! The `image.openshift.io/triggers` annotation on the wire: the JSON type OpenShift and `oc set
//! triggers` write, with OpenShift's field names. Decoding a whole annotation value, the field-path
//! grammar and validation are pure rules and live in [`crate::domain::trigger_annotation`].

use std::fmt;

use serde::de::{self, Deserializer, Unexpected, Visitor};
use serde::{Deserialize, Serialize};

/// The annotation key that carries image triggers on a workload.
pub const TRIGGERS_ANNOTATION: &str = "image.openshift.io/triggers";

/// The only `from.kind` a trigger may name.
pub const IMAGE_STREAM_TAG_KIND: &str = "ImageStreamTag";

/// One entry of the annotation: "write the image of `from` into the field at `fieldPath`".
///
/// This is the wire form, with OpenShift's JSON names. Deserialising is as lenient as OpenShift's Go
/// decoder where that is harmless (missing or `null` strings read as empty, unknown fields are
/// ignored, a repeated key keeps its last value) except that keys are case-sensitive, and accepts
/// `"paused":"true"`/`"false"` as strings, which OpenShift's docs printed but its decoder rejected.
/// Serialising writes the canonical form `oc set triggers` writes: fields in this order, `namespace`
/// and `apiVersion` only when set, `paused` only when true. Decoding a whole annotation value and the
/// semantic checks live in [`crate::domain::trigger_annotation`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectFieldTrigger {
    /// The image stream tag whose current image is written.
    #[serde(default)]
    pub from: TriggerSource,
    /// The JSONPath of the container image field to write, e.g.
    /// `spec.template.spec.containers[?(@.name=="web")].image`.
    #[serde(default, deserialize_with = "string_or_null")]
    pub field_path: String,
    /// A paused trigger keeps its place but writes nothing.
    #[serde(
        default,
        deserialize_with = "bool_or_bool_string",
        skip_serializing_if = "is_false"
    )]
    pub paused: bool,
}

/// The object a trigger follows: an image stream tag, named `<stream>:<tag>`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TriggerSource {
    /// The kind of the source; only `ImageStreamTag` is supported.
    #[serde(default, deserialize_with = "string_or_null")]
    pub kind: String,
    /// `<stream>:<tag>`.
    #[serde(default, deserialize_with = "string_or_null")]
    pub name: String,
    /// The namespace of the image stream; absent (or empty) means the workload's own namespace.
    #[serde(
        default,
        deserialize_with = "empty_as_none",
        skip_serializing_if = "is_unset"
    )]
    pub namespace: Option<String>,
    /// The API version of the source kind; optional, and when set it must be `image.openshift.io/v1`
    /// (or the legacy `v1`).
    #[serde(
        default,
        deserialize_with = "empty_as_none",
        skip_serializing_if = "is_unset"
    )]
    pub api_version: Option<String>,
}

fn is_false(value: &bool) -> bool {
    !*value
}

fn is_unset(value: &Option<String>) -> bool {
    value.as_deref().is_none_or(str::is_empty)
}

/// Go decodes `null` into a string as "leave it empty"; do the same so such annotations reach validation
/// and get a precise message there.
fn string_or_null<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    Ok(Option::<String>::deserialize(deserializer)?.unwrap_or_default())
}

/// Go's `omitempty` cannot tell an empty string from a missing one, so neither can we.
fn empty_as_none<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<String>::deserialize(deserializer)?.filter(|value| !value.is_empty()))
}

/// `paused` as a JSON boolean, the strings `"true"`/`"false"`, or `null` (false).
fn bool_or_bool_string<'de, D: Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    struct PausedVisitor;

    impl<'de> Visitor<'de> for PausedVisitor {
        type Value = bool;

        fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
            formatter.write_str("true or false (a boolean, or the string \"true\" or \"false\")")
        }

        fn visit_bool<E: de::Error>(self, value: bool) -> Result<bool, E> {
            Ok(value)
        }

        fn visit_str<E: de::Error>(self, value: &str) -> Result<bool, E> {
            match value {
                "true" => Ok(true),
                "false" => Ok(false),
                _ => Err(E::invalid_value(Unexpected::Str(value), &self)),
            }
        }

        fn visit_unit<E: de::Error>(self) -> Result<bool, E> {
            Ok(false)
        }

        fn visit_none<E: de::Error>(self) -> Result<bool, E> {
            Ok(false)
        }

        fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<bool, D::Error> {
            deserializer.deserialize_any(self)
        }
    }

    deserializer.deserialize_any(PausedVisitor)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PATH: &str = "spec.template.spec.containers[0].image";

    fn decoded(json: &str) -> ObjectFieldTrigger {
        serde_json::from_str(json).unwrap_or_else(|error| panic!("{json}: {error}"))
    }

    #[test]
    fn missing_and_null_fields_read_as_unset() {
        let expected = ObjectFieldTrigger::default();
        for json in [
            "{}",
            r#"{"from":{}}"#,
            r#"{"from":{"kind":null,"name":null,"namespace":null,"apiVersion":null},"fieldPath":null,"paused":null}"#,
            r#"{"from":{"namespace":"","apiVersion":""}}"#,
        ] {
            assert_eq!(decoded(json), expected, "{json}");
        }
    }

    #[test]
    fn paused_reads_booleans_and_their_strings_only() {
        for (paused, expected) in [
            ("true", true),
            ("false", false),
            (r#""true""#, true),
            (r#""false""#, false),
        ] {
            let json = format!(r#"{{"fieldPath":"{PATH}","paused":{paused}}}"#);
            assert_eq!(decoded(&json).paused, expected, "{json}");
        }
        for paused in [r#""yes""#, r#""True""#, "1", "[]"] {
            let json = format!(r#"{{"paused":{paused}}}"#);
            assert!(
                serde_json::from_str::<ObjectFieldTrigger>(&json).is_err(),
                "{json}"
            );
        }
    }

    #[test]
    fn keys_are_case_sensitive_and_unknown_keys_are_ignored() {
        let entry = decoded(
            r#"{"FieldPath":"x","fieldpath":"y","note":1,"from":{"Kind":"ImageStreamTag","uid":"u"}}"#,
        );
        assert_eq!(entry, ObjectFieldTrigger::default());
    }

    #[test]
    fn serialising_writes_the_canonical_field_order_and_leaves_out_unset_fields() {
        let mut entry = ObjectFieldTrigger {
            from: TriggerSource {
                kind: IMAGE_STREAM_TAG_KIND.to_owned(),
                name: "web:latest".to_owned(),
                namespace: None,
                api_version: Some(String::new()),
            },
            field_path: PATH.to_owned(),
            paused: false,
        };
        assert_eq!(
            serde_json::to_string(&entry).unwrap(),
            format!(
                r#"{{"from":{{"kind":"ImageStreamTag","name":"web:latest"}},"fieldPath":"{PATH}"}}"#
            )
        );
        entry.from.namespace = Some("shared".to_owned());
        entry.from.api_version = Some("image.openshift.io/v1".to_owned());
        entry.paused = true;
        assert_eq!(
            serde_json::to_string(&entry).unwrap(),
            format!(
                r#"{{"from":{{"kind":"ImageStreamTag","name":"web:latest","namespace":"shared","apiVersion":"image.openshift.io/v1"}},"fieldPath":"{PATH}","paused":true}}"#
            )
        );
    }
}
