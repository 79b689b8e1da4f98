//! The `image.openshift.io/triggers` annotation: its JSON type, as OpenShift and `oc set triggers` write
//! it, and the pure parser that turns it into validated image triggers for one workload. Nothing here
//! talks to the cluster: the trigger controller hands in the annotation value and the pod's container names.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fmt;

use serde::de::{self, Deserializer, Unexpected, Visitor};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The annotation key that carries image triggers on a workload.
pub const TRIGGERS_ANNOTATION: &str = "image.openshift.io/triggers";

/// The only `from.kind` a trigger may name.
pub const IMAGE_STREAM_TAG_KIND: &str = "ImageStreamTag";

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
// The annotation as JSON
// ---------------------------------------------------------------------------------------------------

/// One entry of the annotation: "write the image of `from` into the field at `fieldPath`".
///
/// This is the wire form, with OpenShift's JSON names. [`decode_annotation`] is as lenient as OpenShift's
/// Go decoder where that is harmless (missing or `null` strings read as empty, unknown fields are
/// ignored, a repeated key keeps its last value) except that keys are case-sensitive, and accepts `"paused":"true"`/`"false"` as strings, which
/// OpenShift's docs printed but its decoder rejected. Serialising writes the canonical form `oc set
/// triggers` writes: fields in this order, `namespace` and `apiVersion` only when set, `paused` only
/// when true. Semantic checks live in [`validate_triggers`].
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

// ---------------------------------------------------------------------------------------------------
// Workloads and field paths
// ---------------------------------------------------------------------------------------------------

/// A kind of workload that may carry image triggers, with where it keeps its pod spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WorkloadKind {
    /// apps/v1 Deployment.
    Deployment,
    /// apps/v1 StatefulSet.
    StatefulSet,
    /// apps/v1 DaemonSet.
    DaemonSet,
    /// batch/v1 CronJob.
    CronJob,
}

impl WorkloadKind {
    /// Every supported kind.
    pub const ALL: [WorkloadKind; 4] = [
        WorkloadKind::Deployment,
        WorkloadKind::StatefulSet,
        WorkloadKind::DaemonSet,
        WorkloadKind::CronJob,
    ];

    /// The kind for an object's `apiVersion` and `kind`, or [`TriggerError::UnsupportedWorkload`].
    pub fn from_type_meta(api_version: &str, kind: &str) -> Result<Self, TriggerError> {
        Self::ALL
            .into_iter()
            .find(|candidate| candidate.api_version() == api_version && candidate.kind() == kind)
            .ok_or_else(|| TriggerError::UnsupportedWorkload {
                api_version: api_version.to_owned(),
                kind: kind.to_owned(),
            })
    }

    /// The `apiVersion` of this kind.
    pub fn api_version(self) -> &'static str {
        match self {
            Self::Deployment | Self::StatefulSet | Self::DaemonSet => "apps/v1",
            Self::CronJob => "batch/v1",
        }
    }

    /// The `kind` of this kind.
    pub fn kind(self) -> &'static str {
        match self {
            Self::Deployment => "Deployment",
            Self::StatefulSet => "StatefulSet",
            Self::DaemonSet => "DaemonSet",
            Self::CronJob => "CronJob",
        }
    }

    /// The path of the pod spec inside the object, as it starts every trigger `fieldPath`.
    pub fn pod_spec_path(self) -> &'static str {
        match self {
            Self::Deployment | Self::StatefulSet | Self::DaemonSet => "spec.template.spec",
            Self::CronJob => "spec.jobTemplate.spec.template.spec",
        }
    }
}

impl fmt::Display for WorkloadKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind())
    }
}

/// Which container list of a pod spec a field path points into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ContainerList {
    /// `containers`.
    Containers,
    /// `initContainers`.
    InitContainers,
}

impl ContainerList {
    /// The pod spec field name of the list.
    pub fn field_name(self) -> &'static str {
        match self {
            Self::Containers => "containers",
            Self::InitContainers => "initContainers",
        }
    }

    fn other(self) -> Self {
        match self {
            Self::Containers => Self::InitContainers,
            Self::InitContainers => Self::Containers,
        }
    }
}

impl fmt::Display for ContainerList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.field_name())
    }
}

/// How a field path picks its container: `[0]` or `[?(@.name=="web")]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ContainerSelector {
    /// The container at this position of its list.
    Index(usize),
    /// The container with this name.
    Name(String),
}

/// A validated trigger `fieldPath`: the `image` of one container of a workload's pod spec.
///
/// Its [`Display`](fmt::Display) is the canonical path, with a double-quoted name filter:
/// `spec.template.spec.containers[?(@.name=="web")].image`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageFieldPath {
    /// The workload kind, which fixes the pod spec prefix.
    pub workload: WorkloadKind,
    /// The list named in the path.
    pub list: ContainerList,
    /// The selector inside the brackets.
    pub selector: ContainerSelector,
}

/// Where a container sits in a pod spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ContainerLocation {
    /// The list the container is in.
    pub list: ContainerList,
    /// Its position in that list.
    pub index: usize,
}

impl ImageFieldPath {
    /// Parses `<podSpec>.containers[SEL].image` or `<podSpec>.initContainers[SEL].image`, where
    /// `<podSpec>` is [`WorkloadKind::pod_spec_path`] and SEL is a non-negative decimal index,
    /// `?(@.name=="<name>")` or `?(@.name=='<name>')` with a valid container name.
    ///
    /// Like OpenShift, no short form is accepted: the path must start with the workload's own pod spec
    /// path (OpenShift silently skips a trigger whose path does not). Whitespace is not allowed, as in
    /// OpenShift, and anything after `]` other than `.image` is refused (OpenShift also took `]image`).
    pub fn parse(field_path: &str, workload: WorkloadKind) -> Result<Self, FieldPathProblem> {
        if field_path.is_empty() {
            return Err(FieldPathProblem::Empty);
        }
        let in_pod_spec = field_path
            .strip_prefix(workload.pod_spec_path())
            .and_then(|rest| rest.strip_prefix('.'))
            .ok_or(FieldPathProblem::WrongPodSpec { workload })?;
        let (list, after_list) = [ContainerList::Containers, ContainerList::InitContainers]
            .into_iter()
            .find_map(|list| {
                let rest = in_pod_spec
                    .strip_prefix(list.field_name())?
                    .strip_prefix('[')?;
                Some((list, rest))
            })
            .ok_or(FieldPathProblem::NoContainerList)?;
        let (selector, after_selector) = after_list
            .split_once(']')
            .ok_or(FieldPathProblem::UnclosedSelector)?;
        let selector = parse_selector(selector)?;
        if after_selector != ".image" {
            return Err(FieldPathProblem::NotImage {
                rest: after_selector.to_owned(),
            });
        }
        Ok(Self {
            workload,
            list,
            selector,
        })
    }

    /// Finds the container this path targets, given the names of the pod spec's `containers` and
    /// `initContainers` in order.
    ///
    /// An index looks only in the list the path names. A name looks in that list first and then in the
    /// other one, as OpenShift does: `oc set triggers -c <init-container>` writes a `containers[...]`
    /// path even for an init container, and Kubernetes keeps names unique across both lists.
    pub fn find_container<C: AsRef<str>, I: AsRef<str>>(
        &self,
        containers: &[C],
        init_containers: &[I],
    ) -> Result<ContainerLocation, UnknownContainer> {
        let len_of = |list: ContainerList| match list {
            ContainerList::Containers => containers.len(),
            ContainerList::InitContainers => init_containers.len(),
        };
        let position_of = |list: ContainerList, name: &str| match list {
            ContainerList::Containers => containers.iter().position(|c| c.as_ref() == name),
            ContainerList::InitContainers => {
                init_containers.iter().position(|c| c.as_ref() == name)
            }
        };
        match &self.selector {
            ContainerSelector::Index(index) => {
                let len = len_of(self.list);
                if *index < len {
                    Ok(ContainerLocation {
                        list: self.list,
                        index: *index,
                    })
                } else {
                    Err(UnknownContainer::IndexOutOfRange {
                        list: self.list,
                        index: *index,
                        len,
                    })
                }
            }
            ContainerSelector::Name(name) => [self.list, self.list.other()]
                .into_iter()
                .find_map(|list| {
                    position_of(list, name).map(|index| ContainerLocation { list, index })
                })
                .ok_or_else(|| UnknownContainer::NoSuchName {
                    name: name.clone(),
                    containers: containers.iter().map(|c| c.as_ref().to_owned()).collect(),
                    init_containers: init_containers
                        .iter()
                        .map(|c| c.as_ref().to_owned())
                        .collect(),
                }),
        }
    }
}

impl fmt::Display for ImageFieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.workload.pod_spec_path(), self.list)?;
        match &self.selector {
            ContainerSelector::Index(index) => write!(f, "[{index}]")?,
            ContainerSelector::Name(name) => write!(f, "[?(@.name==\"{name}\")]")?,
        }
        f.write_str(".image")
    }
}

fn parse_selector(selector: &str) -> Result<ContainerSelector, FieldPathProblem> {
    let invalid = || FieldPathProblem::InvalidSelector {
        selector: selector.to_owned(),
    };
    if !selector.is_empty() && selector.bytes().all(|b| b.is_ascii_digit()) {
        // Too many digits for a usize is no index of any pod.
        return selector
            .parse()
            .map(ContainerSelector::Index)
            .map_err(|_| invalid());
    }
    let quoted = selector
        .strip_prefix("?(@.name==")
        .and_then(|rest| rest.strip_suffix(')'))
        .ok_or_else(invalid)?;
    let name = ['"', '\'']
        .into_iter()
        .find_map(|quote| quoted.strip_prefix(quote)?.strip_suffix(quote))
        .ok_or_else(invalid)?;
    if !is_dns_label(name) {
        return Err(FieldPathProblem::InvalidContainerName {
            name: name.to_owned(),
        });
    }
    Ok(ContainerSelector::Name(name.to_owned()))
}

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

/// Why a `fieldPath` is not the image of one container of the workload's pod spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldPathProblem {
    /// The path is missing or empty.
    Empty,
    /// The path does not start with the pod spec path of the workload.
    WrongPodSpec {
        /// The workload kind whose pod spec path was expected.
        workload: WorkloadKind,
    },
    /// After the pod spec comes neither `containers[` nor `initContainers[`.
    NoContainerList,
    /// The `[` of the selector is never closed.
    UnclosedSelector,
    /// The selector is neither an index nor a name filter.
    InvalidSelector {
        /// The text between the brackets.
        selector: String,
    },
    /// The name filter names something that cannot be a container name.
    InvalidContainerName {
        /// The name inside the filter.
        name: String,
    },
    /// Something other than `.image` follows the selector.
    NotImage {
        /// What follows the `]`.
        rest: String,
    },
}

impl fmt::Display for FieldPathProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str(
                "it is empty; write e.g. \"<podSpec>.containers[?(@.name==\\\"web\\\")].image\"",
            ),
            Self::WrongPodSpec { workload } => write!(
                f,
                "it must start with \"{}.\", where a {workload} keeps its pod spec",
                workload.pod_spec_path()
            ),
            Self::NoContainerList => f.write_str(
                "after the pod spec it must name \"containers[...]\" or \"initContainers[...]\"",
            ),
            Self::UnclosedSelector => {
                f.write_str("the '[' of the container selector is never closed")
            }
            Self::InvalidSelector { selector } => write!(
                f,
                "the container selector [{}] is neither an index such as [0] nor a name filter \
                 such as [?(@.name==\"web\")]",
                clip(selector)
            ),
            Self::InvalidContainerName { name } => write!(
                f,
                "{} is not a container name (lowercase letters, digits and '-', at most 63 characters)",
                shown(name)
            ),
            Self::NotImage { rest } => write!(
                f,
                "it must end in \".image\" right after the container selector, not {}; only container \
                 images can be triggered",
                shown(rest)
            ),
        }
    }
}

/// The container a field path targets is not in the pod spec.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum UnknownContainer {
    /// No container or init container has the name.
    #[error(
        "no container or init container is named {} (containers: {}; init containers: {})",
        shown(.name),
        listed(.containers),
        listed(.init_containers)
    )]
    NoSuchName {
        /// The name looked for.
        name: String,
        /// The names of the pod spec's containers.
        containers: Vec<String>,
        /// The names of the pod spec's init containers.
        init_containers: Vec<String>,
    },
    /// The index is past the end of its list.
    #[error("{list}[{index}] does not exist: the pod spec has {len} {list}")]
    IndexOutOfRange {
        /// The list indexed.
        list: ContainerList,
        /// The index asked for.
        index: usize,
        /// The length of that list.
        len: usize,
    },
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

/// A value quoted for a message: escaped (no control characters reach an Event) and clipped.
fn shown(value: &str) -> String {
    if value.chars().count() <= MAX_SHOWN_CHARS {
        format!("{value:?}")
    } else {
        let head: String = value.chars().take(MAX_SHOWN_CHARS).collect();
        format!("{head:?}...")
    }
}

/// Like [`shown`] without the quotes, for values that already read as code, such as JSON: only control
/// characters are escaped.
fn clip(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for c in value.chars() {
        if c.is_control() {
            escaped.extend(c.escape_default());
        } else {
            escaped.push(c);
        }
    }
    if escaped.chars().count() <= MAX_SHOWN_CHARS {
        escaped
    } else {
        let head: String = escaped.chars().take(MAX_SHOWN_CHARS).collect();
        format!("{head}...")
    }
}

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
        assert!(error.to_string().contains("..."));
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
    fn workload_kinds_map_from_type_meta_and_know_their_pod_spec() {
        let cases = [
            (
                "apps/v1",
                "Deployment",
                WorkloadKind::Deployment,
                "spec.template.spec",
            ),
            (
                "apps/v1",
                "StatefulSet",
                WorkloadKind::StatefulSet,
                "spec.template.spec",
            ),
            (
                "apps/v1",
                "DaemonSet",
                WorkloadKind::DaemonSet,
                "spec.template.spec",
            ),
            (
                "batch/v1",
                "CronJob",
                WorkloadKind::CronJob,
                "spec.jobTemplate.spec.template.spec",
            ),
        ];
        for (api_version, kind, expected, pod_spec) in cases {
            let workload = WorkloadKind::from_type_meta(api_version, kind).unwrap();
            assert_eq!(workload, expected);
            assert_eq!(workload.pod_spec_path(), pod_spec);
            assert_eq!(
                (workload.api_version(), workload.kind()),
                (api_version, kind)
            );
        }
    }

    #[test]
    fn unsupported_workloads_are_rejected() {
        for (api_version, kind) in [
            ("apps/v1", "ReplicaSet"),
            ("batch/v1", "Job"),
            ("v1", "Pod"),
            ("apps/v1beta1", "Deployment"),
            ("batch/v1", "Deployment"),
        ] {
            let error = WorkloadKind::from_type_meta(api_version, kind).unwrap_err();
            assert_eq!(error.reason(), "UnsupportedWorkload");
            assert!(
                error
                    .to_string()
                    .contains(&format!("{api_version:?} {kind:?}")),
                "{error}"
            );
        }
    }

    #[test]
    fn containers_are_found_by_index_and_by_name() {
        use ContainerList::*;
        let containers = ["web", "sidecar"];
        let init = ["migrate"];
        let at = |list, index| ContainerLocation { list, index };
        let path = |list, selector| ImageFieldPath {
            workload: WorkloadKind::Deployment,
            list,
            selector,
        };
        let name = |n: &str| ContainerSelector::Name(n.to_owned());
        let cases = [
            (
                path(Containers, ContainerSelector::Index(1)),
                at(Containers, 1),
            ),
            (
                path(InitContainers, ContainerSelector::Index(0)),
                at(InitContainers, 0),
            ),
            (path(Containers, name("sidecar")), at(Containers, 1)),
            (path(InitContainers, name("migrate")), at(InitContainers, 0)),
            // `oc set triggers -c migrate` writes a containers[...] path for an init container.
            (path(Containers, name("migrate")), at(InitContainers, 0)),
            (path(InitContainers, name("web")), at(Containers, 0)),
        ];
        for (path, expected) in cases {
            assert_eq!(
                path.find_container(&containers, &init),
                Ok(expected),
                "{path}"
            );
        }
    }

    #[test]
    fn missing_containers_are_reported_precisely() {
        use ContainerList::*;
        let containers = ["web".to_owned(), "sidecar".to_owned()];
        let none: [&str; 0] = [];
        let missing = by_name(WorkloadKind::Deployment, Containers, "api")
            .find_container(&containers, &none)
            .unwrap_err();
        assert_eq!(
            missing.to_string(),
            r#"no container or init container is named "api" (containers: web, sidecar; init containers: none)"#
        );
        let out_of_range = ImageFieldPath {
            workload: WorkloadKind::Deployment,
            list: InitContainers,
            selector: ContainerSelector::Index(0),
        }
        .find_container(&containers, &none)
        .unwrap_err();
        assert_eq!(
            out_of_range.to_string(),
            "initContainers[0] does not exist: the pod spec has 0 initContainers"
        );
    }

    #[test]
    fn long_container_lists_are_summarised() {
        let containers: Vec<String> = (0..15).map(|i| format!("c{i}")).collect();
        let none: [&str; 0] = [];
        let missing = by_name(WorkloadKind::Deployment, ContainerList::Containers, "api")
            .find_container(&containers, &none)
            .unwrap_err()
            .to_string();
        assert!(missing.contains("c9 and 5 more"), "{missing}");
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
