//! Parsing of the `image.openshift.io/triggers` annotation: the decoder that reads its value into wire
//! entries ([`ObjectFieldTrigger`], from `crate::api::triggers`), the validator that turns those into
//! [`ImageTrigger`]s for one workload, the field-path grammar ([`ImageFieldPath`], [`WorkloadKind`]),
//! and the renderer back. Nothing here talks to the cluster: the trigger controller hands in the
//! annotation value and the pod's container names.

mod field_path;

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fmt;

use serde::Deserialize;
use thiserror::Error;

use crate::api::triggers::{IMAGE_STREAM_TAG_KIND, ObjectFieldTrigger, TriggerSource};
use crate::domain::text::{escape_controls, quoted, shorten};

pub use field_path::{
    ContainerList, ContainerLocation, ContainerSelector, FieldPathProblem, ImageFieldPath,
    UnknownContainer, WorkloadKind,
};

/// The longest annotation value accepted, in bytes. Kubernetes caps all annotations of an object at
/// 256 KiB together, so a valid object never reaches it; the bound protects the parser from anything else.
pub const MAX_ANNOTATION_BYTES: usize = 256 * 1024;

/// The most triggers accepted on one workload: one per container is the most that makes sense, and no
/// real pod has this many containers.
pub const MAX_TRIGGERS: usize = 100;

/// The longest user-supplied value quoted in an error message, in characters, so that an Event stays
/// short and readable whatever the annotation holds.
const MAX_SHOWN_CHARS: usize = 128;

/// How many container names an [`UnknownContainer`] message lists before it summarises the rest.
const MAX_LISTED_CONTAINERS: usize = 10;

// ---------------------------------------------------------------------------------------------------
// Validated triggers
// ---------------------------------------------------------------------------------------------------

/// A validated trigger: keep the container at `field_path` on the current image of `namespace/stream:tag`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageTrigger {
    /// The namespace of the image stream, already defaulted to the workload's.
    pub namespace: String,
    /// The image stream name.
    pub stream: String,
    /// The tag in that stream.
    pub tag: String,
    /// The container image field to write.
    pub field_path: ImageFieldPath,
    /// A paused trigger writes nothing.
    pub paused: bool,
}

impl ImageTrigger {
    /// The ImageStreamTag name, `<stream>:<tag>`.
    pub fn image_stream_tag(&self) -> String {
        format!("{}:{}", self.stream, self.tag)
    }

    /// The canonical wire form, as `oc set triggers` would write it on a workload in
    /// `workload_namespace`: `namespace` is left out when it is the workload's own.
    pub fn to_object_field_trigger(&self, workload_namespace: &str) -> ObjectFieldTrigger {
        ObjectFieldTrigger {
            from: TriggerSource {
                kind: IMAGE_STREAM_TAG_KIND.to_owned(),
                name: self.image_stream_tag(),
                namespace: (self.namespace != workload_namespace).then(|| self.namespace.clone()),
                api_version: None,
            },
            field_path: self.field_path.to_string(),
            paused: self.paused,
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// Errors and their messages
// ---------------------------------------------------------------------------------------------------

/// Why a `from.name` is not `<stream>:<tag>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagReferenceProblem {
    /// The name is missing or empty.
    Empty,
    /// The name has no `:`.
    MissingTag,
    /// The name is `<stream>@<digest>`, an ImageStreamImage.
    DigestReference,
    /// The name carries a namespace, `<ns>/<stream>:<tag>`.
    NamespaceInName,
    /// Nothing before the `:`.
    EmptyStream,
    /// Nothing after the `:`.
    EmptyTag,
    /// The part before the `:` is not an image stream name.
    InvalidStreamName {
        /// The offending stream name.
        stream: String,
    },
    /// The part after the `:` is not a tag.
    InvalidTag {
        /// The offending tag.
        tag: String,
    },
}

impl fmt::Display for TagReferenceProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("it is empty; write <stream>:<tag>, e.g. \"web:latest\""),
            Self::MissingTag => {
                f.write_str("it has no \":<tag>\"; write <stream>:<tag>, e.g. \"web:latest\"")
            }
            Self::DigestReference => f.write_str(
                "it names an image by digest; a trigger follows a tag, write <stream>:<tag>",
            ),
            Self::NamespaceInName => f.write_str(
                "it contains '/'; put the namespace in from.namespace and write <stream>:<tag>",
            ),
            Self::EmptyStream => f.write_str("the stream name before ':' is empty"),
            Self::EmptyTag => f.write_str("the tag after ':' is empty"),
            Self::InvalidStreamName { stream } => write!(
                f,
                "stream name {} is not valid: lowercase letters, digits, '-' and '.', starting and \
                 ending with a letter or digit, at most 253 characters",
                shown(stream)
            ),
            Self::InvalidTag { tag } => write!(
                f,
                "tag {} is not valid: letters, digits, '_', '.' and '-', not starting with '.' or \
                 '-', at most 128 characters",
                shown(tag)
            ),
        }
    }
}

/// Why an annotation is rejected as a whole. Every message names the offending trigger by its position
/// in the array (from 0) and quotes the offending value, so it can go into a Warning Event as is.
#[derive(Debug, Error)]
pub enum TriggerError {
    /// The annotation value is longer than [`MAX_ANNOTATION_BYTES`].
    #[error("the annotation is {len} bytes long; at most {limit} bytes are accepted")]
    AnnotationTooLarge {
        /// The length of the value.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// The annotation holds more than [`MAX_TRIGGERS`] triggers.
    #[error("the annotation holds {count} triggers; at most {limit} are accepted")]
    TooManyTriggers {
        /// The number of triggers.
        count: usize,
        /// The limit.
        limit: usize,
    },
    /// The value is not a JSON array.
    #[error("the annotation is not a JSON array of triggers: {source}")]
    InvalidJson {
        /// The JSON error, with line and column.
        #[source]
        source: serde_json::Error,
    },
    /// An element of the array does not have the shape of a trigger.
    #[error("trigger {index} ({}) is malformed: {source}", clip(.value))]
    MalformedTrigger {
        /// Position of the trigger.
        index: usize,
        /// The element, as compact JSON.
        value: String,
        /// What did not fit.
        #[source]
        source: serde_json::Error,
    },
    /// `from.kind` is not `ImageStreamTag`.
    #[error(
        "trigger {index}: from.kind {} is not supported; only ImageStreamTag sources can trigger a workload",
        shown(.kind)
    )]
    UnsupportedSourceKind {
        /// Position of the trigger.
        index: usize,
        /// The kind given.
        kind: String,
    },
    /// `from.apiVersion` is set to something other than the image API.
    #[error(
        "trigger {index}: from.apiVersion {} is not supported; write image.openshift.io/v1 or leave it out",
        shown(.api_version)
    )]
    UnsupportedSourceApiVersion {
        /// Position of the trigger.
        index: usize,
        /// The API version given.
        api_version: String,
    },
    /// `from.name` is not `<stream>:<tag>`.
    #[error("trigger {index}: from.name {} is not an image stream tag: {problem}", shown(.name))]
    InvalidTagReference {
        /// Position of the trigger.
        index: usize,
        /// The name given.
        name: String,
        /// What is wrong with it.
        problem: TagReferenceProblem,
    },
    /// `from.namespace` is not a namespace name.
    #[error(
        "trigger {index}: from.namespace {} is not a namespace name (lowercase letters, digits and '-', \
         at most 63 characters)",
        shown(.namespace)
    )]
    InvalidNamespace {
        /// Position of the trigger.
        index: usize,
        /// The namespace given.
        namespace: String,
    },
    /// `fieldPath` is not the image of a container of this workload's pod spec.
    #[error("trigger {index}: fieldPath {} is not valid on a {workload}: {problem}", shown(.field_path))]
    InvalidFieldPath {
        /// Position of the trigger.
        index: usize,
        /// The path given.
        field_path: String,
        /// The workload kind the path was checked against.
        workload: WorkloadKind,
        /// What is wrong with it.
        problem: FieldPathProblem,
    },
    /// Two triggers write the same container image.
    #[error(
        "triggers {first} and {second} both write the same container image ({} and {})",
        shown(.first_path),
        shown(.second_path)
    )]
    DuplicateFieldPath {
        /// Position of the earlier trigger.
        first: usize,
        /// Its field path.
        first_path: String,
        /// Position of the later trigger.
        second: usize,
        /// Its field path.
        second_path: String,
    },
    /// The container a trigger targets is not in the pod spec.
    #[error("trigger {index}: fieldPath {} matches no container: {source}", shown(.field_path))]
    UnknownContainer {
        /// Position of the trigger.
        index: usize,
        /// The path, in canonical form.
        field_path: String,
        /// Which container was missing.
        #[source]
        source: UnknownContainer,
    },
    /// The object is not a kind that can carry triggers.
    #[error(
        "{} {} cannot carry image triggers; supported are apps/v1 Deployment, StatefulSet, DaemonSet \
         and batch/v1 CronJob",
        shown(.api_version),
        shown(.kind)
    )]
    UnsupportedWorkload {
        /// The object's apiVersion.
        api_version: String,
        /// The object's kind.
        kind: String,
    },
}

impl TriggerError {
    /// The PascalCase word for Event reasons, condition reasons and metric labels.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::AnnotationTooLarge { .. } => "AnnotationTooLarge",
            Self::TooManyTriggers { .. } => "TooManyTriggers",
            Self::InvalidJson { .. } | Self::MalformedTrigger { .. } => "InvalidJSON",
            Self::UnsupportedSourceKind { .. } | Self::UnsupportedSourceApiVersion { .. } => {
                "UnsupportedSource"
            }
            Self::InvalidTagReference { .. } => "InvalidTagReference",
            Self::InvalidNamespace { .. } => "InvalidNamespace",
            Self::InvalidFieldPath { .. } => "InvalidFieldPath",
            Self::DuplicateFieldPath { .. } => "DuplicateFieldPath",
            Self::UnknownContainer { .. } => "UnknownContainer",
            Self::UnsupportedWorkload { .. } => "UnsupportedWorkload",
        }
    }
}

/// A value quoted for a message: cut, and escaped so that no control character reaches an Event.
fn shown(value: &str) -> String {
    quoted(value, MAX_SHOWN_CHARS)
}

/// Like [`shown`] without the quotes, for values that already read as code, such as JSON: only control
/// characters are escaped.
fn clip(value: &str) -> String {
    shorten(&escape_controls(value), MAX_SHOWN_CHARS)
}

/// Container names for a message, cut after [`MAX_LISTED_CONTAINERS`].
fn listed(names: &[String]) -> String {
    if names.is_empty() {
        return "none".to_owned();
    }
    let mut listed = names
        .iter()
        .take(MAX_LISTED_CONTAINERS)
        .map(|name| clip(name))
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > MAX_LISTED_CONTAINERS {
        listed.push_str(&format!(
            " and {} more",
            names.len() - MAX_LISTED_CONTAINERS
        ));
    }
    listed
}

// ---------------------------------------------------------------------------------------------------
// Parsing and rendering
// ---------------------------------------------------------------------------------------------------

/// Decodes the annotation value into its wire entries, checking only size and JSON shape.
///
/// An empty (or blank) value and the JSON `null` hold no triggers: `oc set triggers` writes `null` when
/// it removes the last trigger. Anything else must be an array of at most [`MAX_TRIGGERS`] objects.
pub fn decode_annotation(value: &str) -> Result<Vec<ObjectFieldTrigger>, TriggerError> {
    if value.len() > MAX_ANNOTATION_BYTES {
        return Err(TriggerError::AnnotationTooLarge {
            len: value.len(),
            limit: MAX_ANNOTATION_BYTES,
        });
    }
    if value.trim().is_empty() {
        return Ok(Vec::new());
    }
    // Elements are decoded one by one so that an error names the trigger it is about.
    let elements: Option<Vec<serde_json::Value>> =
        serde_json::from_str(value).map_err(|source| TriggerError::InvalidJson { source })?;
    let elements = elements.unwrap_or_default();
    if elements.len() > MAX_TRIGGERS {
        return Err(TriggerError::TooManyTriggers {
            count: elements.len(),
            limit: MAX_TRIGGERS,
        });
    }
    elements
        .iter()
        .enumerate()
        .map(|(index, element)| {
            ObjectFieldTrigger::deserialize(element).map_err(|source| {
                TriggerError::MalformedTrigger {
                    index,
                    value: element.to_string(),
                    source,
                }
            })
        })
        .collect()
}

/// Validates wire entries for a workload of kind `workload` in `workload_namespace`.
///
/// Each trigger must have `from.kind` `ImageStreamTag`, an optional `from.apiVersion` of
/// `image.openshift.io/v1` (or `v1`), `from.name` `<stream>:<tag>` (stream a DNS-1123 subdomain, tag
/// `[\w][\w.-]{0,127}`), an optional `from.namespace` that is a DNS-1123 label, and a `fieldPath`
/// accepted by [`ImageFieldPath::parse`]. No two triggers may target the same container: the same
/// index in the same list, or the same name in either list (names are unique across both). The first
/// problem found, in array order, rejects the whole annotation.
///
/// OpenShift checks none of this but duplicate path strings; it silently skips what it cannot use.
pub fn validate_triggers(
    triggers: &[ObjectFieldTrigger],
    workload: WorkloadKind,
    workload_namespace: &str,
) -> Result<Vec<ImageTrigger>, TriggerError> {
    if triggers.len() > MAX_TRIGGERS {
        return Err(TriggerError::TooManyTriggers {
            count: triggers.len(),
            limit: MAX_TRIGGERS,
        });
    }
    let mut targets: HashMap<TargetKey, usize> = HashMap::new();
    let mut validated = Vec::with_capacity(triggers.len());
    for (index, trigger) in triggers.iter().enumerate() {
        let valid = validate_trigger(index, trigger, workload, workload_namespace)?;
        match targets.entry(TargetKey::of(&valid.field_path)) {
            Entry::Occupied(first) => {
                let first = *first.get();
                return Err(TriggerError::DuplicateFieldPath {
                    first,
                    first_path: triggers[first].field_path.clone(),
                    second: index,
                    second_path: trigger.field_path.clone(),
                });
            }
            Entry::Vacant(slot) => {
                slot.insert(index);
            }
        }
        validated.push(valid);
    }
    Ok(validated)
}

/// What makes two field paths write the same container without looking at the pod: the same index in
/// the same list, or the same name in either list.
#[derive(PartialEq, Eq, Hash)]
enum TargetKey {
    Name(String),
    Index(ContainerList, usize),
}

impl TargetKey {
    fn of(path: &ImageFieldPath) -> Self {
        match &path.selector {
            ContainerSelector::Name(name) => Self::Name(name.clone()),
            ContainerSelector::Index(index) => Self::Index(path.list, *index),
        }
    }
}

fn validate_trigger(
    index: usize,
    trigger: &ObjectFieldTrigger,
    workload: WorkloadKind,
    workload_namespace: &str,
) -> Result<ImageTrigger, TriggerError> {
    let from = &trigger.from;
    if from.kind != IMAGE_STREAM_TAG_KIND {
        return Err(TriggerError::UnsupportedSourceKind {
            index,
            kind: from.kind.clone(),
        });
    }
    if let Some(api_version) = from.api_version.as_deref().filter(|v| !v.is_empty())
        && api_version != "image.openshift.io/v1"
        && api_version != "v1"
    {
        return Err(TriggerError::UnsupportedSourceApiVersion {
            index,
            api_version: api_version.to_owned(),
        });
    }
    let (stream, tag) =
        split_tag_reference(&from.name).map_err(|problem| TriggerError::InvalidTagReference {
            index,
            name: from.name.clone(),
            problem,
        })?;
    let namespace = match from.namespace.as_deref().filter(|ns| !ns.is_empty()) {
        None => workload_namespace.to_owned(),
        Some(namespace) if is_dns_label(namespace) => namespace.to_owned(),
        Some(namespace) => {
            return Err(TriggerError::InvalidNamespace {
                index,
                namespace: namespace.to_owned(),
            });
        }
    };
    let field_path = ImageFieldPath::parse(&trigger.field_path, workload).map_err(|problem| {
        TriggerError::InvalidFieldPath {
            index,
            field_path: trigger.field_path.clone(),
            workload,
            problem,
        }
    })?;
    Ok(ImageTrigger {
        namespace,
        stream: stream.to_owned(),
        tag: tag.to_owned(),
        field_path,
        paused: trigger.paused,
    })
}

/// Splits `<stream>:<tag>` at its first `:`, as OpenShift does, and checks both halves.
fn split_tag_reference(name: &str) -> Result<(&str, &str), TagReferenceProblem> {
    if name.is_empty() {
        return Err(TagReferenceProblem::Empty);
    }
    if name.contains('@') {
        return Err(TagReferenceProblem::DigestReference);
    }
    if name.contains('/') {
        return Err(TagReferenceProblem::NamespaceInName);
    }
    let (stream, tag) = name
        .split_once(':')
        .ok_or(TagReferenceProblem::MissingTag)?;
    if stream.is_empty() {
        return Err(TagReferenceProblem::EmptyStream);
    }
    if tag.is_empty() {
        return Err(TagReferenceProblem::EmptyTag);
    }
    if !is_dns_subdomain(stream) {
        return Err(TagReferenceProblem::InvalidStreamName {
            stream: stream.to_owned(),
        });
    }
    if !is_docker_tag(tag) {
        return Err(TagReferenceProblem::InvalidTag {
            tag: tag.to_owned(),
        });
    }
    Ok((stream, tag))
}

/// Decodes and validates the annotation value of a workload: [`decode_annotation`] then
/// [`validate_triggers`]. `workload_namespace` is where triggers without `from.namespace` look.
pub fn parse_annotation(
    value: &str,
    workload: WorkloadKind,
    workload_namespace: &str,
) -> Result<Vec<ImageTrigger>, TriggerError> {
    validate_triggers(&decode_annotation(value)?, workload, workload_namespace)
}

/// Finds the container of every trigger in a pod spec, given the names of its `containers` and
/// `initContainers` in order; see [`ImageFieldPath::find_container`].
///
/// Fails on the first trigger whose container is missing, and on two triggers that reach the same
/// container by different paths (say `containers[0]` and the name of that container).
pub fn locate_containers<C: AsRef<str>, I: AsRef<str>>(
    triggers: &[ImageTrigger],
    containers: &[C],
    init_containers: &[I],
) -> Result<Vec<ContainerLocation>, TriggerError> {
    let mut seen: HashMap<ContainerLocation, usize> = HashMap::new();
    let mut located = Vec::with_capacity(triggers.len());
    for (index, trigger) in triggers.iter().enumerate() {
        let location = trigger
            .field_path
            .find_container(containers, init_containers)
            .map_err(|source| TriggerError::UnknownContainer {
                index,
                field_path: trigger.field_path.to_string(),
                source,
            })?;
        if let Some(&first) = seen.get(&location) {
            return Err(TriggerError::DuplicateFieldPath {
                first,
                first_path: triggers[first].field_path.to_string(),
                second: index,
                second_path: trigger.field_path.to_string(),
            });
        }
        seen.insert(location, index);
        located.push(location);
    }
    Ok(located)
}

/// Renders wire entries as the annotation value, in the compact form `oc set triggers` writes.
///
/// Byte for byte like `oc` for every valid trigger; Go would additionally escape `<`, `>` and `&`,
/// which no valid trigger contains.
pub fn encode_annotation(triggers: &[ObjectFieldTrigger]) -> String {
    // Only strings and booleans inside: serialising cannot fail.
    serde_json::to_string(triggers).expect("trigger annotation entries always serialise to JSON")
}

/// Renders validated triggers as the annotation value of a workload in `workload_namespace`, in
/// canonical form (see [`ImageTrigger::to_object_field_trigger`]). Parsing the result for the same
/// workload gives the triggers back.
pub fn render_annotation(triggers: &[ImageTrigger], workload_namespace: &str) -> String {
    let entries: Vec<ObjectFieldTrigger> = triggers
        .iter()
        .map(|trigger| trigger.to_object_field_trigger(workload_namespace))
        .collect();
    encode_annotation(&entries)
}

// ---------------------------------------------------------------------------------------------------
// Name grammars
// ---------------------------------------------------------------------------------------------------

/// A DNS-1123 label: namespace and container names.
fn is_dns_label(value: &str) -> bool {
    value.len() <= 63 && is_label_chars(value)
}

/// A DNS-1123 subdomain, as Kubernetes checks object names (labels are not limited to 63 there).
fn is_dns_subdomain(value: &str) -> bool {
    value.len() <= 253 && value.split('.').all(is_label_chars)
}

fn is_label_chars(value: &str) -> bool {
    let bytes = value.as_bytes();
    let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    match (bytes.first(), bytes.last()) {
        (Some(first), Some(last)) => {
            alnum(first) && alnum(last) && bytes.iter().all(|b| alnum(b) || *b == b'-')
        }
        _ => false,
    }
}

/// The Docker tag grammar, `[\w][\w.-]{0,127}`.
fn is_docker_tag(value: &str) -> bool {
    let bytes = value.as_bytes();
    let word = |b: &u8| b.is_ascii_alphanumeric() || *b == b'_';
    match bytes.split_first() {
        Some((first, rest)) => {
            bytes.len() <= 128
                && word(first)
                && rest.iter().all(|b| word(b) || *b == b'.' || *b == b'-')
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const NS: &str = "app";

    /// What `oc set triggers deployment/web --from-image=web:latest -c web` writes.
    const OC_DEPLOYMENT: &str = r#"[{"from":{"kind":"ImageStreamTag","name":"web:latest"},"fieldPath":"spec.template.spec.containers[?(@.name==\"web\")].image"}]"#;

    fn by_name(workload: WorkloadKind, list: ContainerList, name: &str) -> ImageFieldPath {
        ImageFieldPath {
            workload,
            list,
            selector: ContainerSelector::Name(name.to_owned()),
        }
    }

    fn trigger(
        namespace: &str,
        stream: &str,
        tag: &str,
        field_path: ImageFieldPath,
    ) -> ImageTrigger {
        ImageTrigger {
            namespace: namespace.to_owned(),
            stream: stream.to_owned(),
            tag: tag.to_owned(),
            field_path,
            paused: false,
        }
    }

    fn one(annotation_entry: &str) -> String {
        format!("[{annotation_entry}]")
    }

    #[test]
    fn accepted_forms_parse_to_the_expected_triggers() {
        use ContainerList::*;
        use WorkloadKind::*;
        let web = |workload, list| trigger(NS, "web", "latest", by_name(workload, list, "web"));
        let cases: Vec<(&str, WorkloadKind, String, Vec<ImageTrigger>)> = vec![
            (
                "oc set triggers output",
                Deployment,
                OC_DEPLOYMENT.to_owned(),
                vec![web(Deployment, Containers)],
            ),
            (
                "statefulset",
                StatefulSet,
                OC_DEPLOYMENT.to_owned(),
                vec![web(StatefulSet, Containers)],
            ),
            (
                "daemonset",
                DaemonSet,
                OC_DEPLOYMENT.to_owned(),
                vec![web(DaemonSet, Containers)],
            ),
            (
                "cronjob path",
                CronJob,
                one(
                    r#"{"from":{"kind":"ImageStreamTag","name":"web:latest"},"fieldPath":"spec.jobTemplate.spec.template.spec.containers[?(@.name==\"web\")].image"}"#,
                ),
                vec![web(CronJob, Containers)],
            ),
            (
                "init container by name",
                Deployment,
                one(
                    r#"{"from":{"kind":"ImageStreamTag","name":"web:latest"},"fieldPath":"spec.template.spec.initContainers[?(@.name==\"web\")].image"}"#,
                ),
                vec![web(Deployment, InitContainers)],
            ),
            (
                "lenient single quotes",
                Deployment,
                one(
                    r#"{"from":{"kind":"ImageStreamTag","name":"web:latest"},"fieldPath":"spec.template.spec.containers[?(@.name=='web')].image"}"#,
                ),
                vec![web(Deployment, Containers)],
            ),
            (
                "index selector",
                Deployment,
                one(
                    r#"{"from":{"kind":"ImageStreamTag","name":"web:latest"},"fieldPath":"spec.template.spec.initContainers[2].image"}"#,
                ),
                vec![trigger(
                    NS,
                    "web",
                    "latest",
                    ImageFieldPath {
                        workload: Deployment,
                        list: InitContainers,
                        selector: ContainerSelector::Index(2),
                    },
                )],
            ),
            (
                "explicit namespace",
                Deployment,
                one(
                    r#"{"from":{"kind":"ImageStreamTag","name":"web:latest","namespace":"shared"},"fieldPath":"spec.template.spec.containers[?(@.name==\"web\")].image"}"#,
                ),
                vec![trigger(
                    "shared",
                    "web",
                    "latest",
                    by_name(Deployment, Containers, "web"),
                )],
            ),
            (
                "empty namespace means the workload's",
                Deployment,
                one(
                    r#"{"from":{"kind":"ImageStreamTag","name":"web:latest","namespace":""},"fieldPath":"spec.template.spec.containers[?(@.name==\"web\")].image"}"#,
                ),
                vec![web(Deployment, Containers)],
            ),
            (
                "image api version",
                Deployment,
                one(
                    r#"{"from":{"kind":"ImageStreamTag","name":"web:latest","apiVersion":"image.openshift.io/v1"},"fieldPath":"spec.template.spec.containers[?(@.name==\"web\")].image"}"#,
                ),
                vec![web(Deployment, Containers)],
            ),
            (
                "unknown fields are ignored",
                Deployment,
                one(
                    r#"{"from":{"kind":"ImageStreamTag","name":"web:latest","uid":"x"},"fieldPath":"spec.template.spec.containers[?(@.name==\"web\")].image","note":1}"#,
                ),
                vec![web(Deployment, Containers)],
            ),
            (
                "dotted stream and tag",
                Deployment,
                one(
                    r#"{"from":{"kind":"ImageStreamTag","name":"my.stream:v1.2_3-rc"},"fieldPath":"spec.template.spec.containers[0].image"}"#,
                ),
                vec![trigger(
                    NS,
                    "my.stream",
                    "v1.2_3-rc",
                    ImageFieldPath {
                        workload: Deployment,
                        list: Containers,
                        selector: ContainerSelector::Index(0),
                    },
                )],
            ),
            ("empty array", Deployment, "[]".to_owned(), vec![]),
            (
                "null, as oc writes after removing all",
                Deployment,
                "null".to_owned(),
                vec![],
            ),
            ("empty value", Deployment, "  ".to_owned(), vec![]),
        ];
        for (case, workload, annotation, expected) in cases {
            let parsed = parse_annotation(&annotation, workload, NS)
                .unwrap_or_else(|error| panic!("{case}: rejected: {error}"));
            assert_eq!(parsed, expected, "{case}");
        }
    }

    #[test]
    fn paused_accepts_booleans_strings_and_null() {
        let cases = [
            (r#","paused":true"#, true),
            (r#","paused":false"#, false),
            (r#","paused":"true""#, true),
            (r#","paused":"false""#, false),
            (r#","paused":null"#, false),
            ("", false),
        ];
        for (paused, expected) in cases {
            let annotation = one(&format!(
                r#"{{"from":{{"kind":"ImageStreamTag","name":"web:latest"}},"fieldPath":"spec.template.spec.containers[0].image"{paused}}}"#
            ));
            let parsed = parse_annotation(&annotation, WorkloadKind::Deployment, NS).unwrap();
            assert_eq!(parsed[0].paused, expected, "{annotation}");
        }
    }

    #[test]
    fn rejected_forms_give_a_precise_reason_and_message() {
        use WorkloadKind::*;
        let entry = |from: &str, path: &str| format!(r#"{{"from":{from},"fieldPath":"{path}"}}"#);
        let ist = |name: &str| format!(r#"{{"kind":"ImageStreamTag","name":"{name}"}}"#);
        let web_path = r#"spec.template.spec.containers[?(@.name==\"web\")].image"#;
        let cases: Vec<(&str, WorkloadKind, String, &str, &str)> = vec![
            (
                "not json",
                Deployment,
                "[{".to_owned(),
                "InvalidJSON",
                "the annotation is not a JSON array of triggers: EOF while parsing",
            ),
            (
                "an object",
                Deployment,
                "{}".to_owned(),
                "InvalidJSON",
                "the annotation is not a JSON array of triggers: invalid type: map",
            ),
            (
                "trailing garbage",
                Deployment,
                "[] x".to_owned(),
                "InvalidJSON",
                "trailing characters",
            ),
            (
                "paused is not a boolean",
                Deployment,
                format!(
                    r#"[{},{{"from":{},"fieldPath":"{web_path}","paused":"yes"}}]"#,
                    entry(&ist("a:b"), "x"),
                    ist("web:latest")
                ),
                "InvalidJSON",
                r#"is malformed: invalid value: string "yes", expected true or false"#,
            ),
            (
                "element is not an object",
                Deployment,
                "[1]".to_owned(),
                "InvalidJSON",
                "trigger 0 (1) is malformed: invalid type: integer `1`, expected struct ObjectFieldTrigger",
            ),
            (
                "unsupported kind",
                Deployment,
                one(&entry(
                    r#"{"kind":"DockerImage","name":"nginx:latest"}"#,
                    web_path,
                )),
                "UnsupportedSource",
                r#"trigger 0: from.kind "DockerImage" is not supported; only ImageStreamTag sources can trigger a workload"#,
            ),
            (
                "missing kind",
                Deployment,
                one(&entry(r#"{"name":"web:latest"}"#, web_path)),
                "UnsupportedSource",
                r#"trigger 0: from.kind "" is not supported"#,
            ),
            (
                "foreign api version",
                Deployment,
                one(&entry(
                    r#"{"kind":"ImageStreamTag","name":"web:latest","apiVersion":"apps/v1"}"#,
                    web_path,
                )),
                "UnsupportedSource",
                r#"trigger 0: from.apiVersion "apps/v1" is not supported"#,
            ),
            (
                "name without tag",
                Deployment,
                one(&entry(&ist("web"), web_path)),
                "InvalidTagReference",
                r#"trigger 0: from.name "web" is not an image stream tag: it has no ":<tag>"; write <stream>:<tag>, e.g. "web:latest""#,
            ),
            (
                "empty name",
                Deployment,
                one(&entry(&ist(""), web_path)),
                "InvalidTagReference",
                "it is empty",
            ),
            (
                "empty stream",
                Deployment,
                one(&entry(&ist(":latest"), web_path)),
                "InvalidTagReference",
                "the stream name before ':' is empty",
            ),
            (
                "empty tag",
                Deployment,
                one(&entry(&ist("web:"), web_path)),
                "InvalidTagReference",
                "the tag after ':' is empty",
            ),
            (
                "upper-case stream",
                Deployment,
                one(&entry(&ist("Web:latest"), web_path)),
                "InvalidTagReference",
                r#"stream name "Web" is not valid"#,
            ),
            (
                "tag starting with a dot",
                Deployment,
                one(&entry(&ist("web:.x"), web_path)),
                "InvalidTagReference",
                r#"tag ".x" is not valid"#,
            ),
            (
                "second colon",
                Deployment,
                one(&entry(&ist("web:a:b"), web_path)),
                "InvalidTagReference",
                r#"tag "a:b" is not valid"#,
            ),
            (
                "tag too long",
                Deployment,
                one(&entry(&ist(&format!("web:{}", "a".repeat(129))), web_path)),
                "InvalidTagReference",
                "at most 128 characters",
            ),
            (
                "digest",
                Deployment,
                one(&entry(&ist("web@sha256:abc"), web_path)),
                "InvalidTagReference",
                "by digest",
            ),
            (
                "namespace in name",
                Deployment,
                one(&entry(&ist("ns/web:latest"), web_path)),
                "InvalidTagReference",
                "from.namespace",
            ),
            (
                "bad namespace",
                Deployment,
                one(&entry(
                    r#"{"kind":"ImageStreamTag","name":"web:latest","namespace":"Other_NS"}"#,
                    web_path,
                )),
                "InvalidNamespace",
                r#"trigger 0: from.namespace "Other_NS" is not a namespace name"#,
            ),
            (
                "deployment path on a cronjob",
                CronJob,
                one(&entry(&ist("web:latest"), web_path)),
                "InvalidFieldPath",
                r#"trigger 0: fieldPath "spec.template.spec.containers[?(@.name==\"web\")].image" is not valid on a CronJob: it must start with "spec.jobTemplate.spec.template.spec.", where a CronJob keeps its pod spec"#,
            ),
            (
                "short form relative to the pod spec",
                Deployment,
                one(&entry(
                    &ist("web:latest"),
                    r#"containers[?(@.name==\"web\")].image"#,
                )),
                "InvalidFieldPath",
                r#"it must start with "spec.template.spec.""#,
            ),
            (
                "empty path",
                Deployment,
                one(&entry(&ist("web:latest"), "")),
                "InvalidFieldPath",
                "it is empty",
            ),
            (
                "missing path",
                Deployment,
                one(&format!(r#"{{"from":{}}}"#, ist("web:latest"))),
                "InvalidFieldPath",
                r#"fieldPath "" is not valid on a Deployment: it is empty"#,
            ),
            (
                "no container list",
                Deployment,
                one(&entry(
                    &ist("web:latest"),
                    "spec.template.spec.volumes[0].image",
                )),
                "InvalidFieldPath",
                r#"after the pod spec it must name "containers[...]" or "initContainers[...]""#,
            ),
            (
                "path ending at the container",
                Deployment,
                one(&entry(
                    &ist("web:latest"),
                    r#"spec.template.spec.containers[?(@.name==\"web\")]"#,
                )),
                "InvalidFieldPath",
                r#"it must end in ".image" right after the container selector, not """#,
            ),
            (
                "path into another field",
                Deployment,
                one(&entry(
                    &ist("web:latest"),
                    "spec.template.spec.containers[0].env",
                )),
                "InvalidFieldPath",
                r#"not ".env""#,
            ),
            (
                "unclosed selector",
                Deployment,
                one(&entry(
                    &ist("web:latest"),
                    r#"spec.template.spec.containers[?(@.name==\"web\").image"#,
                )),
                "InvalidFieldPath",
                "never closed",
            ),
            (
                "selector without filter syntax",
                Deployment,
                one(&entry(
                    &ist("web:latest"),
                    "spec.template.spec.containers[@.name=test].image",
                )),
                "InvalidFieldPath",
                "the container selector [@.name=test] is neither an index",
            ),
            (
                "negative index",
                Deployment,
                one(&entry(
                    &ist("web:latest"),
                    "spec.template.spec.containers[-1].image",
                )),
                "InvalidFieldPath",
                "[-1]",
            ),
            (
                "empty selector",
                Deployment,
                one(&entry(
                    &ist("web:latest"),
                    "spec.template.spec.containers[].image",
                )),
                "InvalidFieldPath",
                "[]",
            ),
            (
                "huge index",
                Deployment,
                one(&entry(
                    &ist("web:latest"),
                    "spec.template.spec.containers[99999999999999999999999].image",
                )),
                "InvalidFieldPath",
                "neither an index",
            ),
            (
                "mismatched quotes",
                Deployment,
                one(&entry(
                    &ist("web:latest"),
                    r#"spec.template.spec.containers[?(@.name==\"web')].image"#,
                )),
                "InvalidFieldPath",
                "neither an index",
            ),
            (
                "spaces in the filter",
                Deployment,
                one(&entry(
                    &ist("web:latest"),
                    r#"spec.template.spec.containers[?(@.name == \"web\")].image"#,
                )),
                "InvalidFieldPath",
                "neither an index",
            ),
            (
                "invalid container name",
                Deployment,
                one(&entry(
                    &ist("web:latest"),
                    r#"spec.template.spec.containers[?(@.name==\"Web_1\")].image"#,
                )),
                "InvalidFieldPath",
                r#""Web_1" is not a container name"#,
            ),
            (
                "duplicate path",
                Deployment,
                format!(
                    "[{},{},{}]",
                    entry(&ist("a:1"), web_path),
                    entry(&ist("b:1"), "spec.template.spec.containers[0].image"),
                    entry(&ist("c:1"), web_path)
                ),
                "DuplicateFieldPath",
                r#"triggers 0 and 2 both write the same container image ("spec.template.spec.containers[?(@.name==\"web\")].image" and "spec.template.spec.containers[?(@.name==\"web\")].image")"#,
            ),
            (
                "same name through both quote styles",
                Deployment,
                format!(
                    "[{},{}]",
                    entry(&ist("a:1"), web_path),
                    entry(
                        &ist("b:1"),
                        "spec.template.spec.containers[?(@.name=='web')].image"
                    )
                ),
                "DuplicateFieldPath",
                "triggers 0 and 1",
            ),
            (
                "same name through both lists",
                Deployment,
                format!(
                    "[{},{}]",
                    entry(&ist("a:1"), web_path),
                    entry(
                        &ist("b:1"),
                        r#"spec.template.spec.initContainers[?(@.name==\"web\")].image"#
                    )
                ),
                "DuplicateFieldPath",
                "triggers 0 and 1",
            ),
            (
                "too many triggers",
                Deployment,
                format!("[{}]", vec!["{}"; MAX_TRIGGERS + 1].join(",")),
                "TooManyTriggers",
                "the annotation holds 101 triggers; at most 100 are accepted",
            ),
            (
                "too large",
                Deployment,
                format!("[{}]", " ".repeat(MAX_ANNOTATION_BYTES)),
                "AnnotationTooLarge",
                "bytes long; at most 262144 bytes are accepted",
            ),
        ];
        for (case, workload, annotation, reason, message) in cases {
            let error = match parse_annotation(&annotation, workload, NS) {
                Ok(parsed) => panic!("{case}: accepted as {parsed:?}"),
                Err(error) => error,
            };
            assert_eq!(error.reason(), reason, "{case}: {error}");
            assert!(
                error.to_string().contains(message),
                "{case}: message {:?} lacks {message:?}",
                error.to_string()
            );
        }
    }

    #[test]
    fn a_repeated_key_keeps_its_last_value_as_in_go() {
        let annotation = r#"[{"from":{"kind":"ImageStreamTag","name":"old:1","name":"web:latest"},"fieldPath":"x","fieldPath":"spec.template.spec.containers[0].image"}]"#;
        let parsed = parse_annotation(annotation, WorkloadKind::Deployment, NS).unwrap();
        assert_eq!(parsed[0].image_stream_tag(), "web:latest");
    }

    #[test]
    fn the_first_problem_in_array_order_is_reported() {
        let annotation = r#"[{"from":{"kind":"ImageStreamTag","name":"a:1"},"fieldPath":"spec.template.spec.containers[0].image"},{"from":{"kind":"ImageStreamTag","name":"b:1"},"fieldPath":"spec.template.spec.containers[0].image"},{"from":{"kind":"ImageStreamTag","name":"nocolon"},"fieldPath":"bad"}]"#;
        let error = parse_annotation(annotation, WorkloadKind::Deployment, NS).unwrap_err();
        assert!(
            matches!(
                error,
                TriggerError::DuplicateFieldPath {
                    first: 0,
                    second: 1,
                    ..
                }
            ),
            "{error:?}"
        );
        let annotation = r#"[{"from":{"kind":"ImageStreamTag","name":"a:1"},"fieldPath":"spec.template.spec.containers[0].image"},{"from":{"kind":"DockerImage","name":"x"},"fieldPath":"bad"},{"from":{"kind":"ImageStreamTag","name":"nocolon"},"fieldPath":"bad"}]"#;
        let error = parse_annotation(annotation, WorkloadKind::Deployment, NS).unwrap_err();
        assert!(
            matches!(error, TriggerError::UnsupportedSourceKind { index: 1, .. }),
            "{error:?}"
        );
    }

    #[test]
    fn long_values_are_clipped_in_messages() {
        let name = format!("web:{}", "x".repeat(10_000));
        let annotation = one(&format!(
            r#"{{"from":{{"kind":"ImageStreamTag","name":"{name}"}},"fieldPath":"spec.template.spec.containers[0].image"}}"#
        ));
        let error = parse_annotation(&annotation, WorkloadKind::Deployment, NS).unwrap_err();
        assert_eq!(error.reason(), "InvalidTagReference");
        assert!(error.to_string().len() < 600, "{}", error.to_string().len());
        assert!(error.to_string().contains("…"));
    }

    #[test]
    fn control_characters_are_escaped_in_messages() {
        let annotation = one(
            r#"{"from":{"kind":"Image\nStream\u001bTag","name":"web:latest"},"fieldPath":"spec.template.spec.containers[0].image"}"#,
        );
        let message = parse_annotation(&annotation, WorkloadKind::Deployment, NS)
            .unwrap_err()
            .to_string();
        assert!(!message.chars().any(char::is_control), "{message:?}");
    }

    #[test]
    fn oc_set_triggers_output_round_trips_byte_for_byte() {
        let paused = r#"[{"from":{"kind":"ImageStreamTag","name":"web:latest","namespace":"shared"},"fieldPath":"spec.template.spec.containers[?(@.name==\"web\")].image","paused":true}]"#;
        let with_api_version = r#"[{"from":{"kind":"ImageStreamTag","name":"web:latest","namespace":"shared","apiVersion":"image.openshift.io/v1"},"fieldPath":"spec.template.spec.containers[0].image"}]"#;
        for annotation in [OC_DEPLOYMENT, paused, with_api_version] {
            assert_eq!(
                encode_annotation(&decode_annotation(annotation).unwrap()),
                annotation
            );
        }
    }

    #[test]
    fn rendering_writes_the_canonical_form() {
        let lenient = r#"[{"paused":"false","fieldPath":"spec.template.spec.containers[?(@.name=='web')].image","from":{"namespace":"app","name":"web:latest","kind":"ImageStreamTag"}}]"#;
        let triggers = parse_annotation(lenient, WorkloadKind::Deployment, NS).unwrap();
        assert_eq!(render_annotation(&triggers, NS), OC_DEPLOYMENT);
        let elsewhere = render_annotation(&triggers, "other");
        assert!(elsewhere.contains(r#""namespace":"app""#), "{elsewhere}");
    }

    #[test]
    fn empty_trigger_list_renders_as_an_empty_array() {
        assert_eq!(render_annotation(&[], NS), "[]");
    }

    #[test]
    fn locating_reports_the_trigger_whose_container_is_missing() {
        let triggers = parse_annotation(OC_DEPLOYMENT, WorkloadKind::Deployment, NS).unwrap();
        let error = locate_containers(&triggers, &["app"], &["init"]).unwrap_err();
        assert_eq!(error.reason(), "UnknownContainer");
        assert_eq!(
            error.to_string(),
            r#"trigger 0: fieldPath "spec.template.spec.containers[?(@.name==\"web\")].image" matches no container: no container or init container is named "web" (containers: app; init containers: init)"#
        );
    }

    #[test]
    fn locating_rejects_two_paths_to_the_same_container() {
        let annotation = r#"[{"from":{"kind":"ImageStreamTag","name":"a:1"},"fieldPath":"spec.template.spec.containers[?(@.name==\"web\")].image"},{"from":{"kind":"ImageStreamTag","name":"b:1"},"fieldPath":"spec.template.spec.containers[0].image"}]"#;
        let triggers = parse_annotation(annotation, WorkloadKind::Deployment, NS).unwrap();
        let error = locate_containers(&triggers, &["web"], &[] as &[&str]).unwrap_err();
        assert!(
            matches!(
                error,
                TriggerError::DuplicateFieldPath {
                    first: 0,
                    second: 1,
                    ..
                }
            ),
            "{error:?}"
        );
        let located = locate_containers(&triggers, &["api", "web"], &[] as &[&str]).unwrap();
        let at = |index| ContainerLocation {
            list: ContainerList::Containers,
            index,
        };
        assert_eq!(located, vec![at(1), at(0)]);
    }

    // -----------------------------------------------------------------------------------------------
    // Properties
    // -----------------------------------------------------------------------------------------------

    fn workload_kind() -> impl Strategy<Value = WorkloadKind> {
        prop::sample::select(WorkloadKind::ALL.to_vec())
    }

    fn container_list() -> impl Strategy<Value = ContainerList> {
        prop_oneof![
            Just(ContainerList::Containers),
            Just(ContainerList::InitContainers)
        ]
    }

    fn selector() -> impl Strategy<Value = ContainerSelector> {
        prop_oneof![
            (0usize..50).prop_map(ContainerSelector::Index),
            "[a-z]([a-z0-9-]{0,20}[a-z0-9])?".prop_map(ContainerSelector::Name),
        ]
    }

    fn image_trigger(workload: WorkloadKind) -> impl Strategy<Value = ImageTrigger> {
        (
            prop_oneof![Just(NS.to_owned()), "[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?"],
            "[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?(\\.[a-z0-9]{1,8}){0,2}",
            "[A-Za-z0-9_][A-Za-z0-9_.-]{0,30}",
            container_list(),
            selector(),
            any::<bool>(),
        )
            .prop_map(move |(namespace, stream, tag, list, selector, paused)| {
                ImageTrigger {
                    namespace,
                    stream,
                    tag,
                    field_path: ImageFieldPath {
                        workload,
                        list,
                        selector,
                    },
                    paused,
                }
            })
    }

    fn trigger_list() -> impl Strategy<Value = (WorkloadKind, Vec<ImageTrigger>)> {
        workload_kind().prop_flat_map(|workload| {
            prop::collection::vec(image_trigger(workload), 0..8).prop_map(move |triggers| {
                let mut seen = std::collections::HashSet::new();
                let unique = triggers
                    .into_iter()
                    .filter(|t| seen.insert(TargetKey::of(&t.field_path)))
                    .collect();
                (workload, unique)
            })
        })
    }

    /// Valid annotations with one character inserted, replaced or removed somewhere.
    fn near_valid_annotation() -> impl Strategy<Value = String> {
        (
            trigger_list(),
            any::<prop::sample::Index>(),
            any::<char>(),
            0u8..3,
        )
            .prop_map(|((_, triggers), at, c, edit)| {
                let mut chars: Vec<char> = render_annotation(&triggers, NS).chars().collect();
                let at = at.index(chars.len());
                match edit {
                    0 => chars.insert(at, c),
                    1 => chars[at] = c,
                    _ => {
                        chars.remove(at);
                    }
                }
                chars.into_iter().collect()
            })
    }

    proptest! {
        #[test]
        fn no_input_panics_the_parser(value in any::<String>(), workload in workload_kind()) {
            let _ = parse_annotation(&value, workload, NS);
        }

        #[test]
        fn no_near_valid_input_panics_the_parser(value in near_valid_annotation(), workload in workload_kind()) {
            match parse_annotation(&value, workload, NS) {
                Ok(triggers) => {
                    let _ = locate_containers(&triggers, &["web", "a"], &["init"]);
                }
                Err(error) => {
                    prop_assert!(!error.reason().is_empty());
                    prop_assert!(!error.to_string().is_empty());
                }
            }
        }

        #[test]
        fn rendering_then_parsing_valid_triggers_is_the_identity((workload, triggers) in trigger_list()) {
            let rendered = render_annotation(&triggers, NS);
            prop_assert_eq!(parse_annotation(&rendered, workload, NS).unwrap(), triggers);
        }

        #[test]
        fn decoding_rendered_wire_entries_is_the_identity(
            entries in prop::collection::vec(
                (any::<String>(), any::<String>(), prop::option::of(".+"), prop::option::of(".+"), any::<String>(), any::<bool>()),
                0..5,
            )
        ) {
            let entries: Vec<ObjectFieldTrigger> = entries
                .into_iter()
                .map(|(kind, name, namespace, api_version, field_path, paused)| ObjectFieldTrigger {
                    from: TriggerSource { kind, name, namespace, api_version },
                    field_path,
                    paused,
                })
                .collect();
            let rendered = encode_annotation(&entries);
            prop_assume!(rendered.len() <= MAX_ANNOTATION_BYTES);
            prop_assert_eq!(decode_annotation(&rendered).unwrap(), entries);
        }
    }
}
