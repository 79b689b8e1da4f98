//! Converting an OpenShift `apps.openshift.io/v1` DeploymentConfig into an `apps/v1` Deployment, for users
//! leaving DeploymentConfigs behind. What has an equivalent is carried over, ImageChange triggers become
//! the `image.openshift.io/triggers` annotation the trigger controller serves, and everything else is
//! reported as a [`Finding`] instead of being dropped silently. Pure: JSON in, JSON and findings out.
//!
//! The rules follow OpenShift's own defaulting and validation of DeploymentConfigs, so the Deployment
//! behaves like the DeploymentConfig did, not like a DeploymentConfig with Deployment defaults:
//! - a missing `spec.replicas` is 0 (a Deployment would default to 1), a missing `spec.selector` is the
//!   pod template's labels, a missing strategy type is `Rolling`, a missing `triggers` list is one
//!   ConfigChange trigger, and a missing `automatic` is `false`;
//! - when only one of `maxSurge`/`maxUnavailable` is set, OpenShift sets the other to 0 (25% when the
//!   one set is 0) where a Deployment would use 25%, so both are written;
//! - `from.kind: ImageStream` (or `ImageRepository`) is read as an ImageStreamTag, `:latest` when the
//!   name has no tag, and one ImageChange trigger fans out to every container and init container named
//!   in `containerNames`; names that match no container are dropped, as OpenShift ignores them.
//!
//! A DeploymentConfig never starts pods before all its ImageChange triggers have resolved, so the image
//! a template names for a triggered container is a placeholder OpenShift never pulls. A Deployment starts
//! pods at once: a short name such as `postgresql` or `jenkins:2` would be pulled from Docker Hub and run
//! with the application's environment and Secrets. Such values are therefore replaced by
//! `image-trigger.invalid/<stream>:<tag>` (the `.invalid` top-level domain never resolves, so nothing is
//! pulled) until the trigger controller writes the stream's image; a fully qualified reference (with a
//! registry host or a digest, as in a DeploymentConfig exported from a cluster) is kept.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::api::core::v1::PodTemplateSpec;
use serde_json::{Map, Value, json};
use thiserror::Error;

use crate::api::triggers::{
    IMAGE_STREAM_TAG_KIND, ObjectFieldTrigger, TRIGGERS_ANNOTATION, TriggerSource,
};
use crate::domain::text::shorten;
use crate::domain::trigger_annotation::{
    ContainerList, ContainerSelector, ImageFieldPath, TriggerError, WorkloadKind,
    encode_annotation, validate_triggers,
};

/// The kind of a DeploymentConfig.
pub const DEPLOYMENT_CONFIG_KIND: &str = "DeploymentConfig";

/// The API version DeploymentConfigs are served under since OpenShift 3.6.
pub const DEPLOYMENT_CONFIG_API_VERSION: &str = "apps.openshift.io/v1";

/// OpenShift 3's legacy API version for DeploymentConfigs, still found in old templates.
pub const LEGACY_API_VERSION: &str = "v1";

/// The registry host of placeholder images: under the reserved `.invalid` top-level domain (RFC 2606),
/// so a placeholder can never be pulled from anywhere.
pub const PLACEHOLDER_REGISTRY: &str = "image-trigger.invalid";

/// OpenShift's default `timeoutSeconds` of both strategies, and a Deployment's default
/// `progressDeadlineSeconds`.
const DEFAULT_TIMEOUT_SECONDS: i64 = 600;

/// OpenShift's default `updatePeriodSeconds` and `intervalSeconds` of the Rolling strategy.
const DEFAULT_ROLLING_PERIOD_SECONDS: i64 = 1;

/// OpenShift's default `activeDeadlineSeconds` of the deployer pod (six hours).
const DEFAULT_ACTIVE_DEADLINE_SECONDS: i64 = 21_600;

/// OpenShift's (and Kubernetes') default `maxSurge` and `maxUnavailable`.
const DEFAULT_ROLLING_PERCENT: &str = "25%";

/// User values quoted in messages are cut to this many characters.
const MAX_SHOWN_CHARS: usize = 100;

/// Top-level fields of a DeploymentConfig; `status` is dropped without a word.
const OBJECT_FIELDS: &[&str] = &["apiVersion", "kind", "metadata", "spec", "status"];

/// Metadata carried over to the Deployment.
const KEPT_METADATA: &[&str] = &["name", "generateName", "namespace", "labels", "annotations"];

/// Metadata the API server sets, which means nothing on a new object.
const SERVER_METADATA: &[&str] = &[
    "uid",
    "resourceVersion",
    "creationTimestamp",
    "generation",
    "managedFields",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
];

/// Annotations kubectl and OpenShift maintain about a DeploymentConfig (or its ReplicationControllers):
/// wrong or harmful on the Deployment, which gets its own.
const MANAGED_ANNOTATIONS: &[&str] = &[
    "kubectl.kubernetes.io/last-applied-configuration",
    "kubectl.kubernetes.io/desired-replicas",
    "openshift.io/encoded-deployment-config",
];

/// Prefixes of managed annotations, see [`MANAGED_ANNOTATIONS`].
const MANAGED_ANNOTATION_PREFIXES: &[&str] = &[
    "openshift.io/deployment.",
    "openshift.io/deployment-config.",
    "openshift.io/deployer-pod",
    "deploy.openshift.io/",
    "deployment.kubernetes.io/",
];

/// The fields of `apps.openshift.io/v1` DeploymentConfigSpec.
const SPEC_FIELDS: &[&str] = &[
    "strategy",
    "minReadySeconds",
    "triggers",
    "replicas",
    "revisionHistoryLimit",
    "test",
    "paused",
    "selector",
    "template",
];

/// The fields of DeploymentStrategy.
const STRATEGY_FIELDS: &[&str] = &[
    "type",
    "customParams",
    "recreateParams",
    "rollingParams",
    "resources",
    "labels",
    "annotations",
    "activeDeadlineSeconds",
];

/// The fields of RollingDeploymentStrategyParams.
const ROLLING_FIELDS: &[&str] = &[
    "updatePeriodSeconds",
    "intervalSeconds",
    "timeoutSeconds",
    "maxUnavailable",
    "maxSurge",
    "pre",
    "post",
];

/// The fields of RecreateDeploymentStrategyParams.
const RECREATE_FIELDS: &[&str] = &["timeoutSeconds", "pre", "mid", "post"];

/// The rollout pacing a Deployment has instead of `updatePeriodSeconds` and `intervalSeconds`.
const PACING_INSTEAD: &str =
    "a Deployment paces a rollout by maxSurge, maxUnavailable and readiness";

// ---------------------------------------------------------------------------------------------------
// Results
// ---------------------------------------------------------------------------------------------------

/// How much a finding matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// Behaviour changes or something was dropped: read it before applying the Deployment.
    Warning,
    /// Carried over with an explanation, or an OpenShift default written out.
    Note,
}

impl Severity {
    /// The word that starts the finding's line: `Warning` or `Note`.
    pub fn label(self) -> &'static str {
        match self {
            Self::Warning => "Warning",
            Self::Note => "Note",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// One human-readable remark about a conversion, naming the DeploymentConfig field it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Warning or note.
    pub severity: Severity,
    /// The remark, starting with the field path it is about.
    pub message: String,
}

/// A converted DeploymentConfig.
#[derive(Debug, Clone, PartialEq)]
pub struct Conversion {
    /// The `apps/v1` Deployment.
    pub deployment: Value,
    /// What was changed, dropped or defaulted on the way, in the order of the DeploymentConfig's fields.
    pub findings: Vec<Finding>,
}

impl Conversion {
    /// The findings of `severity`.
    pub fn findings_of(&self, severity: Severity) -> impl Iterator<Item = &Finding> {
        self.findings
            .iter()
            .filter(move |finding| finding.severity == severity)
    }
}

/// Why an object cannot be converted at all.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConversionError {
    /// The value is not a JSON object.
    #[error("the document is a JSON {found}, not an object")]
    NotAnObject {
        /// The JSON type found.
        found: &'static str,
    },
    /// The object is some other kind.
    #[error(
        "{} {} is not a DeploymentConfig (apiVersion {DEPLOYMENT_CONFIG_API_VERSION} or {LEGACY_API_VERSION}, kind {DEPLOYMENT_CONFIG_KIND})",
        shown(.api_version),
        shown(.kind)
    )]
    NotADeploymentConfig {
        /// The object's apiVersion.
        api_version: String,
        /// The object's kind.
        kind: String,
    },
    /// A required field is absent (or `null`).
    #[error("{path} is missing")]
    Missing {
        /// The field, as a dotted path.
        path: String,
    },
    /// A field has the wrong JSON type.
    #[error("{path} must be {expected}, not a JSON {found}")]
    WrongType {
        /// The field, as a dotted path.
        path: String,
        /// What it must be.
        expected: &'static str,
        /// The JSON type found.
        found: &'static str,
    },
    /// A field has a value OpenShift would have refused.
    #[error("{path} is {value}: {problem}")]
    InvalidValue {
        /// The field, as a dotted path.
        path: String,
        /// The value, quoted and shortened.
        value: String,
        /// What it must be.
        problem: &'static str,
    },
    /// Neither a selector nor pod template labels to select by.
    #[error("spec.selector is empty and spec.template.metadata.labels has no labels to select by")]
    NoSelector,
}

impl ConversionError {
    /// The PascalCase word for this kind of error.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::NotAnObject { .. } => "NotAnObject",
            Self::NotADeploymentConfig { .. } => "NotADeploymentConfig",
            Self::Missing { .. } => "MissingField",
            Self::WrongType { .. } => "WrongType",
            Self::InvalidValue { .. } => "InvalidValue",
            Self::NoSelector => "NoSelector",
        }
    }
}

/// Whether `object` is a DeploymentConfig by its `apiVersion` and `kind`.
pub fn is_deployment_config(object: &Value) -> bool {
    object.get("kind").and_then(Value::as_str) == Some(DEPLOYMENT_CONFIG_KIND)
        && matches!(
            object.get("apiVersion").and_then(Value::as_str),
            Some(DEPLOYMENT_CONFIG_API_VERSION | LEGACY_API_VERSION)
        )
}

/// Converts one DeploymentConfig into an `apps/v1` Deployment, with a finding for everything that is
/// not carried over one to one. See the module documentation for the rules.
pub fn convert_deployment_config(object: &Value) -> Result<Conversion, ConversionError> {
    let root = Obj::root(object).map_err(|_| ConversionError::NotAnObject {
        found: json_type(object),
    })?;
    let legacy = check_type_meta(&root)?;
    let mut findings = Findings::default();
    warn_unknown_fields(&root, OBJECT_FIELDS, &mut findings);
    let mut metadata = convert_metadata(&root, &mut findings)?;
    let namespace = metadata
        .get("namespace")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let spec = root.required_object("spec")?;
    let converted = convert_spec(&spec, namespace.as_deref(), legacy, &mut findings)?;
    set_trigger_annotation(&mut metadata, converted.triggers, &mut findings);
    Ok(Conversion {
        deployment: json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": metadata,
            "spec": converted.spec,
        }),
        findings: findings.0,
    })
}

/// Checks `apiVersion` and `kind`; `Ok(true)` for the legacy `v1` API.
fn check_type_meta(root: &Obj) -> Result<bool, ConversionError> {
    let api_version = root.string("apiVersion")?.unwrap_or_default();
    let kind = root.string("kind")?.unwrap_or_default();
    match (api_version, kind) {
        (DEPLOYMENT_CONFIG_API_VERSION, DEPLOYMENT_CONFIG_KIND) => Ok(false),
        (LEGACY_API_VERSION, DEPLOYMENT_CONFIG_KIND) => Ok(true),
        _ => Err(ConversionError::NotADeploymentConfig {
            api_version: api_version.to_owned(),
            kind: kind.to_owned(),
        }),
    }
}

// ---------------------------------------------------------------------------------------------------
// Reading JSON with paths
// ---------------------------------------------------------------------------------------------------

/// A JSON object of the input and the dotted path it sits at, for messages that point at the field.
struct Obj<'a> {
    map: &'a Map<String, Value>,
    path: String,
}

impl<'a> Obj<'a> {
    fn root(value: &'a Value) -> Result<Self, ConversionError> {
        Self::at(value, String::new())
    }

    fn at(value: &'a Value, path: String) -> Result<Self, ConversionError> {
        match value {
            Value::Object(map) => Ok(Self { map, path }),
            other => Err(wrong_type(path, "an object", other)),
        }
    }

    fn path_of(&self, key: &str) -> String {
        child_path(&self.path, key)
    }

    /// The field's value; `null` reads as absent, as in Go.
    fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key).filter(|value| !value.is_null())
    }

    fn object(&self, key: &str) -> Result<Option<Obj<'a>>, ConversionError> {
        self.get(key)
            .map(|value| Obj::at(value, self.path_of(key)))
            .transpose()
    }

    fn required_object(&self, key: &str) -> Result<Obj<'a>, ConversionError> {
        self.object(key)?.ok_or_else(|| ConversionError::Missing {
            path: self.path_of(key),
        })
    }

    fn string(&self, key: &str) -> Result<Option<&'a str>, ConversionError> {
        self.typed(key, "a string", Value::as_str)
    }

    fn boolean(&self, key: &str) -> Result<Option<bool>, ConversionError> {
        self.typed(key, "true or false", Value::as_bool)
    }

    fn array(&self, key: &str) -> Result<Option<&'a [Value]>, ConversionError> {
        self.typed(key, "a list", |value| value.as_array().map(Vec::as_slice))
    }

    fn integer(&self, key: &str) -> Result<Option<i64>, ConversionError> {
        self.typed(key, "a whole number", Value::as_i64)
    }

    /// A whole number from 0 to 2³¹-1 (an int32 or a non-negative int64 field).
    fn count(&self, key: &str) -> Result<Option<i64>, ConversionError> {
        let Some(number) = self.integer(key)? else {
            return Ok(None);
        };
        if (0..=i64::from(i32::MAX)).contains(&number) {
            Ok(Some(number))
        } else {
            Err(ConversionError::InvalidValue {
                path: self.path_of(key),
                value: number.to_string(),
                problem: "must be from 0 to 2147483647",
            })
        }
    }

    fn string_map(&self, key: &str) -> Result<BTreeMap<String, String>, ConversionError> {
        let Some(map) = self.object(key)? else {
            return Ok(BTreeMap::new());
        };
        map.map
            .iter()
            .map(|(name, value)| match value {
                Value::String(text) => Ok((name.clone(), text.clone())),
                other => Err(wrong_type(map.path_of(name), "a string", other)),
            })
            .collect()
    }

    fn typed<T>(
        &self,
        key: &str,
        expected: &'static str,
        read: impl FnOnce(&'a Value) -> Option<T>,
    ) -> Result<Option<T>, ConversionError> {
        let Some(value) = self.get(key) else {
            return Ok(None);
        };
        read(value)
            .map(Some)
            .ok_or_else(|| wrong_type(self.path_of(key), expected, value))
    }
}

/// `parent.key`, or `parent["key"]` when the key is not a plain word (so `successThreshold:`, a typo
/// found in real templates, reads as what it is).
fn child_path(parent: &str, key: &str) -> String {
    let plain = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    match (parent.is_empty(), plain) {
        (true, true) => key.to_owned(),
        (false, true) => format!("{parent}.{key}"),
        (_, false) => format!("{parent}[{}]", shown(key)),
    }
}

fn wrong_type(path: String, expected: &'static str, found: &Value) -> ConversionError {
    ConversionError::WrongType {
        path,
        expected,
        found: json_type(found),
    }
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "object",
    }
}

/// A user value quoted for a message: escaped and shortened.
fn shown(value: &str) -> String {
    format!("{:?}", shorten(value, MAX_SHOWN_CHARS))
}

/// A label map as `{k=v, …}`.
fn shown_labels(labels: &BTreeMap<String, String>) -> String {
    let pairs: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("{{{}}}", shorten(&pairs.join(", "), MAX_SHOWN_CHARS))
}

#[derive(Default)]
struct Findings(Vec<Finding>);

impl Findings {
    fn warn(&mut self, message: impl Into<String>) {
        self.push(Severity::Warning, message.into());
    }

    fn note(&mut self, message: impl Into<String>) {
        self.push(Severity::Note, message.into());
    }

    fn push(&mut self, severity: Severity, message: String) {
        self.0.push(Finding { severity, message });
    }
}

fn warn_unknown_fields(object: &Obj, known: &[&str], findings: &mut Findings) {
    for key in object
        .map
        .keys()
        .filter(|key| !known.contains(&key.as_str()))
    {
        findings.warn(format!(
            "{}: not a DeploymentConfig field; dropped",
            object.path_of(key)
        ));
    }
}

// ---------------------------------------------------------------------------------------------------
// Metadata
// ---------------------------------------------------------------------------------------------------

fn convert_metadata(
    root: &Obj,
    findings: &mut Findings,
) -> Result<Map<String, Value>, ConversionError> {
    let Some(metadata) = root.object("metadata")? else {
        return Err(ConversionError::Missing {
            path: "metadata.name".into(),
        });
    };
    let mut converted = Map::new();
    for key in ["name", "generateName", "namespace"] {
        if let Some(value) = metadata.string(key)?.filter(|value| !value.is_empty()) {
            converted.insert(key.into(), value.into());
        }
    }
    if !converted.contains_key("name") && !converted.contains_key("generateName") {
        return Err(ConversionError::Missing {
            path: "metadata.name".into(),
        });
    }
    let labels = metadata.string_map("labels")?;
    if !labels.is_empty() {
        converted.insert("labels".into(), json!(labels));
    }
    let annotations = kept_annotations(metadata.string_map("annotations")?, findings);
    if !annotations.is_empty() {
        converted.insert("annotations".into(), json!(annotations));
    }
    report_dropped_metadata(&metadata, findings);
    Ok(converted)
}

fn kept_annotations(
    mut annotations: BTreeMap<String, String>,
    findings: &mut Findings,
) -> BTreeMap<String, String> {
    let managed: Vec<String> = annotations
        .keys()
        .filter(|key| is_managed_annotation(key))
        .cloned()
        .collect();
    if !managed.is_empty() {
        for key in &managed {
            annotations.remove(key);
        }
        findings.note(format!(
            "metadata.annotations: dropped {}: kubectl and OpenShift maintain them for the \
             DeploymentConfig itself",
            managed.join(", ")
        ));
    }
    annotations
}

fn is_managed_annotation(key: &str) -> bool {
    MANAGED_ANNOTATIONS.contains(&key)
        || MANAGED_ANNOTATION_PREFIXES
            .iter()
            .any(|prefix| key.starts_with(prefix))
}

fn report_dropped_metadata(metadata: &Obj, findings: &mut Findings) {
    if metadata.get("ownerReferences").is_some() {
        findings.warn(
            "metadata.ownerReferences: dropped: the owners are objects of the old cluster, and the \
             garbage collector deletes an object whose owner does not exist",
        );
    }
    if metadata.get("finalizers").is_some() {
        findings.warn(
            "metadata.finalizers: dropped: they belong to controllers of the DeploymentConfig",
        );
    }
    let ignored = ["ownerReferences", "finalizers"];
    for key in metadata.map.keys() {
        let key = key.as_str();
        if !KEPT_METADATA.contains(&key)
            && !SERVER_METADATA.contains(&key)
            && !ignored.contains(&key)
        {
            findings.note(format!("metadata.{key}: dropped"));
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// Spec
// ---------------------------------------------------------------------------------------------------

/// The Deployment spec and the trigger annotation entries converted from a DeploymentConfig spec.
struct ConvertedSpec {
    spec: Value,
    triggers: Vec<ObjectFieldTrigger>,
}

fn convert_spec(
    spec: &Obj,
    namespace: Option<&str>,
    legacy: bool,
    findings: &mut Findings,
) -> Result<ConvertedSpec, ConversionError> {
    warn_unknown_fields(spec, SPEC_FIELDS, findings);
    let template = spec.required_object("template")?;
    let pods = PodNames::of(&template)?;
    let replicas = replicas(spec, findings)?;
    let selector = selector(spec, &template, findings)?;
    let strategy = convert_strategy(spec, findings)?;
    let plan = plan_triggers(spec, &pods, namespace, findings)?;
    let mut template = Value::Object(template.map.clone());
    drop_unknown_pod_fields(&mut template, findings);
    set_trigger_images(&mut template, &plan.images, findings);

    let mut out = Map::new();
    out.insert("replicas".into(), json!(replicas));
    out.insert("selector".into(), json!({ "matchLabels": selector }));
    out.insert("strategy".into(), strategy.strategy);
    out.insert("template".into(), template);
    if let Some(seconds) = strategy.progress_deadline_seconds {
        out.insert("progressDeadlineSeconds".into(), json!(seconds));
    }
    if let Some(seconds) = spec.count("minReadySeconds")?.filter(|s| *s > 0) {
        out.insert("minReadySeconds".into(), json!(seconds));
    }
    if let Some(limit) = revision_history_limit(spec, legacy, findings)? {
        out.insert("revisionHistoryLimit".into(), json!(limit));
    }
    if spec.boolean("paused")? == Some(true) {
        out.insert("paused".into(), json!(true));
    }
    if spec.boolean("test")? == Some(true) {
        findings.warn(
            "spec.test: true: the DeploymentConfig ran its pods only during a rollout; a Deployment \
             has no such mode and keeps spec.replicas pods running",
        );
    }
    Ok(ConvertedSpec {
        spec: Value::Object(out),
        triggers: plan.annotation_entries(),
    })
}

fn replicas(spec: &Obj, findings: &mut Findings) -> Result<i64, ConversionError> {
    Ok(spec.count("replicas")?.unwrap_or_else(|| {
        findings.warn(
            "spec.replicas is not set: a DeploymentConfig then runs no pods, while a Deployment would \
             default to 1; replicas: 0 written",
        );
        0
    }))
}

fn selector(
    spec: &Obj,
    template: &Obj,
    findings: &mut Findings,
) -> Result<BTreeMap<String, String>, ConversionError> {
    let labels = match template.object("metadata")? {
        Some(metadata) => metadata.string_map("labels")?,
        None => BTreeMap::new(),
    };
    let selector = spec.string_map("selector")?;
    if selector.is_empty() {
        if labels.is_empty() {
            return Err(ConversionError::NoSelector);
        }
        findings.note(format!(
            "spec.selector is not set: the pod template's labels {} select the pods, as in OpenShift",
            shown_labels(&labels)
        ));
        return Ok(labels);
    }
    if !selector
        .iter()
        .all(|(key, value)| labels.get(key) == Some(value))
    {
        findings.warn(format!(
            "spec.selector {} does not match the pod template's labels {}: the API server refuses such \
             a Deployment",
            shown_labels(&selector),
            shown_labels(&labels)
        ));
    }
    Ok(selector)
}

fn revision_history_limit(
    spec: &Obj,
    legacy: bool,
    findings: &mut Findings,
) -> Result<Option<i64>, ConversionError> {
    let limit = spec.count("revisionHistoryLimit")?;
    if limit.is_none() && legacy {
        findings.warn(
            "spec.revisionHistoryLimit is not set: a legacy v1 DeploymentConfig kept every old \
             ReplicationController, a Deployment keeps 10 old ReplicaSets",
        );
    }
    Ok(limit)
}

/// The names of a pod template's containers and init containers.
struct PodNames {
    containers: Vec<String>,
    init_containers: Vec<String>,
}

impl PodNames {
    fn of(template: &Obj) -> Result<Self, ConversionError> {
        let pod = template.required_object("spec")?;
        let containers =
            container_names(&pod, "containers")?.ok_or_else(|| ConversionError::Missing {
                path: pod.path_of("containers"),
            })?;
        let init_containers = container_names(&pod, "initContainers")?.unwrap_or_default();
        Ok(Self {
            containers,
            init_containers,
        })
    }

    fn list_of(&self, name: &str) -> Option<ContainerList> {
        if self.containers.iter().any(|c| c == name) {
            Some(ContainerList::Containers)
        } else if self.init_containers.iter().any(|c| c == name) {
            Some(ContainerList::InitContainers)
        } else {
            None
        }
    }
}

fn container_names(pod: &Obj, list: &str) -> Result<Option<Vec<String>>, ConversionError> {
    let Some(items) = pod.array(list)? else {
        return Ok(None);
    };
    items
        .iter()
        .enumerate()
        .map(|(index, item)| {
            let container = Obj::at(item, format!("{}[{index}]", pod.path_of(list)))?;
            container
                .string("name")?
                .map(str::to_owned)
                .ok_or_else(|| ConversionError::Missing {
                    path: container.path_of("name"),
                })
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// Drops what no Kubernetes pod template has, such as `capabilities` directly on a container (it
/// belongs in `securityContext`): OpenShift dropped such fields when it stored the DeploymentConfig, so
/// they never had an effect, but kubectl's strict validation refuses a Deployment that carries them.
/// The pod template schema is the one of the Kubernetes version k8s-openapi is built for.
fn drop_unknown_pod_fields(template: &mut Value, findings: &mut Findings) {
    let known =
        serde_json::from_value::<PodTemplateSpec>(template.clone()).and_then(serde_json::to_value);
    let known = match known {
        Ok(known) => known,
        Err(error) => {
            findings.warn(format!(
                "spec.template does not fit the Kubernetes pod template schema ({error}): the API \
                 server will refuse the Deployment"
            ));
            return;
        }
    };
    let mut dropped = Vec::new();
    prune_unknown(template, &known, "spec.template", &mut dropped);
    for path in dropped {
        findings.warn(format!(
            "{path}: not a field of a Kubernetes pod template, so it had no effect on the \
             DeploymentConfig either; dropped, as strict validation would refuse the Deployment"
        ));
    }
}

/// Removes from `value` every object key that `known` (the same value after a round trip through the
/// typed schema) lacks, collecting the paths. A `null` is left alone: it is the same as absent.
fn prune_unknown(value: &mut Value, known: &Value, path: &str, dropped: &mut Vec<String>) {
    match (value, known) {
        (Value::Object(map), Value::Object(known)) => {
            map.retain(|key, value| {
                let here = child_path(path, key);
                match known.get(key) {
                    Some(known) => {
                        prune_unknown(value, known, &here, dropped);
                        true
                    }
                    None if value.is_null() => true,
                    None => {
                        dropped.push(here);
                        false
                    }
                }
            });
        }
        (Value::Array(items), Value::Array(known)) => {
            for (index, (item, known)) in items.iter_mut().zip(known).enumerate() {
                prune_unknown(item, known, &format!("{path}[{index}]"), dropped);
            }
        }
        _ => {}
    }
}

// ---------------------------------------------------------------------------------------------------
// Strategy
// ---------------------------------------------------------------------------------------------------

/// The Deployment strategy, and the progress deadline taken from a non-default `timeoutSeconds`.
struct ConvertedStrategy {
    strategy: Value,
    progress_deadline_seconds: Option<i64>,
}

impl ConvertedStrategy {
    fn rolling_update(rolling_update: Option<Value>) -> Self {
        let strategy = match rolling_update {
            Some(params) => json!({"type": "RollingUpdate", "rollingUpdate": params}),
            None => json!({"type": "RollingUpdate"}),
        };
        Self {
            strategy,
            progress_deadline_seconds: None,
        }
    }
}

fn convert_strategy(
    spec: &Obj,
    findings: &mut Findings,
) -> Result<ConvertedStrategy, ConversionError> {
    let Some(strategy) = spec.object("strategy")? else {
        return Ok(ConvertedStrategy::rolling_update(None));
    };
    warn_unknown_fields(&strategy, STRATEGY_FIELDS, findings);
    let kind = strategy
        .string("type")?
        .filter(|kind| !kind.is_empty())
        .unwrap_or("Rolling");
    let converted = match kind {
        "Rolling" => rolling(strategy.object("rollingParams")?, findings)?,
        "Recreate" => recreate(strategy.object("recreateParams")?, findings)?,
        "Custom" => {
            findings.warn(
                "spec.strategy.type: Custom: a Deployment cannot run a custom deployer; RollingUpdate \
                 written (the Deployment default)",
            );
            ConvertedStrategy::rolling_update(None)
        }
        other => {
            return Err(ConversionError::InvalidValue {
                path: strategy.path_of("type"),
                value: shown(other),
                problem: "must be Rolling, Recreate or Custom",
            });
        }
    };
    report_inactive_params(&strategy, kind, findings);
    report_deployer_settings(&strategy, findings)?;
    Ok(converted)
}

fn rolling(
    params: Option<Obj>,
    findings: &mut Findings,
) -> Result<ConvertedStrategy, ConversionError> {
    let Some(params) = params else {
        return Ok(ConvertedStrategy::rolling_update(None));
    };
    warn_unknown_fields(&params, ROLLING_FIELDS, findings);
    let rolling_update = surge_and_unavailable(&params, findings)?;
    for key in ["updatePeriodSeconds", "intervalSeconds"] {
        report_dropped_seconds(
            &params,
            key,
            DEFAULT_ROLLING_PERIOD_SECONDS,
            PACING_INSTEAD,
            findings,
        )?;
    }
    let progress_deadline_seconds = timeout(&params, findings)?;
    for hook in ["pre", "post"] {
        report_hook(&params, hook, findings)?;
    }
    Ok(ConvertedStrategy {
        progress_deadline_seconds,
        ..ConvertedStrategy::rolling_update(rolling_update)
    })
}

/// `maxSurge` and `maxUnavailable` as OpenShift defaults them: both 25% when neither is set; when only
/// one is, the other is 0, or 25% when the one set is 0.
fn surge_and_unavailable(
    params: &Obj,
    findings: &mut Findings,
) -> Result<Option<Value>, ConversionError> {
    let surge = int_or_percent(params, "maxSurge")?;
    let unavailable = int_or_percent(params, "maxUnavailable")?;
    let (surge, unavailable) = match (surge, unavailable) {
        (None, None) => return Ok(None),
        (Some(surge), Some(unavailable)) => (surge, unavailable),
        (Some(surge), None) => {
            let unavailable = other_bound(&surge, "maxUnavailable", "maxSurge", params, findings);
            (surge, unavailable)
        }
        (None, Some(unavailable)) => {
            let surge = other_bound(&unavailable, "maxSurge", "maxUnavailable", params, findings);
            (surge, unavailable)
        }
    };
    Ok(Some(
        json!({"maxSurge": surge, "maxUnavailable": unavailable}),
    ))
}

/// The OpenShift default of the unset bound `unset` when only `set` is given, with a note when it
/// differs from the Deployment default.
fn other_bound(
    set_value: &Value,
    unset: &str,
    set: &str,
    params: &Obj,
    findings: &mut Findings,
) -> Value {
    if is_zero_bound(set_value) {
        return json!(DEFAULT_ROLLING_PERCENT);
    }
    findings.note(format!(
        "{} is not set: with {set} set, a DeploymentConfig uses 0 where a Deployment would use \
         {DEFAULT_ROLLING_PERCENT}; 0 written",
        params.path_of(unset)
    ));
    json!(0)
}

fn is_zero_bound(value: &Value) -> bool {
    value.as_i64() == Some(0) || value.as_str() == Some("0%")
}

/// A non-negative whole number or a percentage such as `25%`, as OpenShift validates them.
fn int_or_percent(params: &Obj, key: &str) -> Result<Option<Value>, ConversionError> {
    let Some(value) = params.get(key) else {
        return Ok(None);
    };
    let valid = match value {
        Value::Number(number) => number.as_u64().is_some_and(|n| n <= i32::MAX as u64),
        Value::String(text) => text
            .strip_suffix('%')
            .is_some_and(|digits| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())),
        _ => false,
    };
    if valid {
        Ok(Some(value.clone()))
    } else {
        Err(ConversionError::InvalidValue {
            path: params.path_of(key),
            value: shorten(&value.to_string(), MAX_SHOWN_CHARS),
            problem: "must be a whole number or a percentage such as 25%",
        })
    }
}

fn recreate(
    params: Option<Obj>,
    findings: &mut Findings,
) -> Result<ConvertedStrategy, ConversionError> {
    let mut converted = ConvertedStrategy {
        strategy: json!({"type": "Recreate"}),
        progress_deadline_seconds: None,
    };
    let Some(params) = params else {
        return Ok(converted);
    };
    warn_unknown_fields(&params, RECREATE_FIELDS, findings);
    converted.progress_deadline_seconds = timeout(&params, findings)?;
    for hook in ["pre", "mid", "post"] {
        report_hook(&params, hook, findings)?;
    }
    Ok(converted)
}

/// `timeoutSeconds` becomes `progressDeadlineSeconds` when it is not the default both share.
fn timeout(params: &Obj, findings: &mut Findings) -> Result<Option<i64>, ConversionError> {
    let path = params.path_of("timeoutSeconds");
    let Some(seconds) = params.count("timeoutSeconds")? else {
        return Ok(None);
    };
    let consequence = "a Deployment whose rollout makes no progress that long is marked failed \
                       but, unlike a DeploymentConfig, not rolled back";
    if seconds == DEFAULT_TIMEOUT_SECONDS {
        findings.note(format!(
            "{path}: {seconds} is also a Deployment's default progressDeadlineSeconds; {consequence}"
        ));
        Ok(None)
    } else {
        findings.warn(format!(
            "{path}: {seconds} written as spec.progressDeadlineSeconds; {consequence}"
        ));
        Ok(Some(seconds))
    }
}

/// A number of seconds that has no Deployment equivalent: a note when it is OpenShift's default (a
/// DeploymentConfig exported from a cluster has every default written out), else a warning.
fn report_dropped_seconds(
    object: &Obj,
    key: &str,
    default: i64,
    instead: &str,
    findings: &mut Findings,
) -> Result<(), ConversionError> {
    let Some(seconds) = object.integer(key)? else {
        return Ok(());
    };
    let path = object.path_of(key);
    if seconds == default {
        findings.note(format!(
            "{path}: {seconds} (the OpenShift default) has no Deployment equivalent; dropped: {instead}"
        ));
    } else {
        findings.warn(format!(
            "{path}: {seconds} has no Deployment equivalent; dropped: {instead}"
        ));
    }
    Ok(())
}

fn report_hook(params: &Obj, which: &str, findings: &mut Findings) -> Result<(), ConversionError> {
    let Some(hook) = params.object(which)? else {
        return Ok(());
    };
    findings.warn(format!(
        "{}: the {which} lifecycle hook ({}) has no Deployment equivalent; dropped: an init container \
         or a Job can take its place",
        hook.path,
        describe_hook(&hook)
    ));
    Ok(())
}

/// What a lifecycle hook does, read leniently: the hook is dropped whatever its shape.
fn describe_hook(hook: &Obj) -> String {
    let text = |value: Option<&Value>| value.and_then(Value::as_str).unwrap_or("").to_owned();
    let failure = text(hook.get("failurePolicy"));
    let action = if let Some(exec) = hook.get("execNewPod") {
        let command: Vec<&str> = exec
            .get("command")
            .and_then(Value::as_array)
            .map(|words| words.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        format!(
            "runs {} in a copy of container {}",
            shown(&command.join(" ")),
            shown(&text(exec.get("containerName")))
        )
    } else if let Some(tags) = hook.get("tagImages").and_then(Value::as_array) {
        let targets: Vec<String> = tags
            .iter()
            .map(|tag| text(tag.get("to").and_then(|to| to.get("name"))))
            .collect();
        format!("tags images into {}", shown(&targets.join(", ")))
    } else {
        "no action".to_owned()
    };
    if failure.is_empty() {
        action
    } else {
        format!("{action}, failurePolicy {}", shown(&failure))
    }
}

fn report_inactive_params(strategy: &Obj, kind: &str, findings: &mut Findings) {
    for (key, owner) in [("rollingParams", "Rolling"), ("recreateParams", "Recreate")] {
        if kind == owner || strategy.get(key).is_none() {
            continue;
        }
        if kind == "Custom" {
            findings.warn(format!(
                "{}: parameters of the custom deployer; dropped with it",
                strategy.path_of(key)
            ));
        } else {
            findings.note(format!(
                "{}: ignored by a {kind} strategy, in OpenShift too; dropped",
                strategy.path_of(key)
            ));
        }
    }
    if let Some(custom) = strategy.get("customParams") {
        let image = custom.get("image").and_then(Value::as_str).unwrap_or("");
        findings.warn(format!(
            "{}: the custom deployer (image {}) has no Deployment equivalent; dropped",
            strategy.path_of("customParams"),
            shown(image)
        ));
    }
}

/// Settings of the deployer and hook pods, which a Deployment does not have.
fn report_deployer_settings(
    strategy: &Obj,
    findings: &mut Findings,
) -> Result<(), ConversionError> {
    let no_deployer = "a Deployment has no deployer or hook pods";
    if strategy
        .object("resources")?
        .is_some_and(|resources| !resources.map.is_empty())
    {
        findings.warn(format!(
            "{}: sized the deployer and hook pods; dropped: {no_deployer}",
            strategy.path_of("resources")
        ));
    }
    for key in ["labels", "annotations"] {
        let map = strategy.string_map(key)?;
        if !map.is_empty() {
            findings.warn(format!(
                "{} {}: were set on the deployer and hook pods; dropped: {no_deployer}",
                strategy.path_of(key),
                shown_labels(&map)
            ));
        }
    }
    report_dropped_seconds(
        strategy,
        "activeDeadlineSeconds",
        DEFAULT_ACTIVE_DEADLINE_SECONDS,
        no_deployer,
        findings,
    )
}

// ---------------------------------------------------------------------------------------------------
// Triggers
// ---------------------------------------------------------------------------------------------------

/// One container an ImageChange trigger writes.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ContainerTrigger {
    /// The position of the trigger in `spec.triggers`.
    trigger: usize,
    list: ContainerList,
    container: String,
    /// `<stream>:<tag>`.
    stream_tag: String,
    /// Set only when it is not the DeploymentConfig's own namespace.
    namespace: Option<String>,
    paused: bool,
    last_triggered_image: Option<String>,
}

impl ContainerTrigger {
    fn source(&self) -> String {
        match &self.namespace {
            Some(namespace) => format!("{namespace}/{}", self.stream_tag),
            None => self.stream_tag.clone(),
        }
    }

    fn field_path(&self) -> ImageFieldPath {
        ImageFieldPath {
            workload: WorkloadKind::Deployment,
            list: self.list,
            selector: ContainerSelector::Name(self.container.clone()),
        }
    }

    fn annotation_entry(&self) -> ObjectFieldTrigger {
        ObjectFieldTrigger {
            from: TriggerSource {
                kind: IMAGE_STREAM_TAG_KIND.to_owned(),
                name: self.stream_tag.clone(),
                namespace: self.namespace.clone(),
                api_version: None,
            },
            field_path: self.field_path().to_string(),
            paused: self.paused,
        }
    }
}

#[derive(Default)]
struct TriggerPlan {
    images: Vec<ContainerTrigger>,
}

impl TriggerPlan {
    fn annotation_entries(&self) -> Vec<ObjectFieldTrigger> {
        self.images
            .iter()
            .map(ContainerTrigger::annotation_entry)
            .collect()
    }

    /// Adds a container trigger unless an earlier trigger writes the same container.
    fn add(&mut self, trigger: ContainerTrigger, findings: &mut Findings) {
        if let Some(first) = self
            .images
            .iter()
            .find(|t| t.container == trigger.container)
        {
            findings.warn(format!(
                "spec.triggers[{}]: container {} is already written by spec.triggers[{}] ({}); this \
                 one ({}) dropped, as two triggers on one container are an error on a Deployment",
                trigger.trigger,
                shown(&trigger.container),
                first.trigger,
                first.source(),
                trigger.source()
            ));
            return;
        }
        self.images.push(trigger);
    }
}

fn plan_triggers(
    spec: &Obj,
    pods: &PodNames,
    namespace: Option<&str>,
    findings: &mut Findings,
) -> Result<TriggerPlan, ConversionError> {
    let mut plan = TriggerPlan::default();
    // No list at all is OpenShift's default: one ConfigChange trigger, which a Deployment has built in.
    let Some(triggers) = spec.array("triggers")? else {
        return Ok(plan);
    };
    let (mut config_change, mut image_change) = (false, false);
    for (index, trigger) in triggers.iter().enumerate() {
        let trigger = Obj::at(trigger, format!("spec.triggers[{index}]"))?;
        match trigger.string("type")?.unwrap_or_default() {
            "ConfigChange" => config_change = true,
            "ImageChange" => {
                image_change = true;
                plan_image_change(&trigger, index, pods, namespace, &mut plan, findings)?;
            }
            other => findings.warn(format!(
                "{}: type {} is not a DeploymentConfig trigger; ignored",
                trigger.path,
                shown(other)
            )),
        }
    }
    report_rollout_triggers(config_change, image_change, findings);
    Ok(plan)
}

fn report_rollout_triggers(config_change: bool, image_change: bool, findings: &mut Findings) {
    let always = "a Deployment rolls out whenever its pod template changes";
    if config_change {
        findings.note(format!(
            "spec.triggers: ConfigChange needs no conversion: {always}"
        ));
    } else if image_change {
        findings.warn(format!(
            "spec.triggers has no ConfigChange trigger: the DeploymentConfig rolled out only on image \
             changes and `oc rollout latest`, but {always}"
        ));
    } else {
        findings.warn(format!(
            "spec.triggers is empty: the DeploymentConfig rolled out only on `oc rollout latest`, but \
             {always} (set spec.paused to roll out by hand)"
        ));
    }
}

/// The source of an ImageChange trigger, as OpenShift reads it.
struct TriggerFrom {
    stream_tag: String,
    namespace: Option<String>,
}

fn plan_image_change(
    trigger: &Obj,
    index: usize,
    pods: &PodNames,
    namespace: Option<&str>,
    plan: &mut TriggerPlan,
    findings: &mut Findings,
) -> Result<(), ConversionError> {
    let Some(params) = trigger.object("imageChangeParams")? else {
        findings.warn(format!(
            "{}: ImageChange without imageChangeParams; ignored",
            trigger.path
        ));
        return Ok(());
    };
    let Some(from) = trigger_from(&params, namespace, findings)? else {
        return Ok(());
    };
    let names = string_list(&params, "containerNames")?;
    if names.is_empty() {
        findings.warn(format!(
            "{}: no containerNames, which OpenShift refuses; ignored",
            params.path
        ));
        return Ok(());
    }
    let paused = !params.boolean("automatic")?.unwrap_or(false);
    report_trigger_mode(&params, &from, paused, namespace, findings)?;
    let last_triggered_image = params
        .string("lastTriggeredImage")?
        .filter(|image| !image.trim().is_empty())
        .map(str::to_owned);
    for name in names {
        let Some(list) = pods.list_of(&name) else {
            findings.warn(format!(
                "{}: {} is neither a container nor an init container (OpenShift ignored it); dropped",
                params.path_of("containerNames"),
                shown(&name)
            ));
            continue;
        };
        let container = ContainerTrigger {
            trigger: index,
            list,
            container: name,
            stream_tag: from.stream_tag.clone(),
            namespace: from.namespace.clone(),
            paused,
            last_triggered_image: last_triggered_image.clone(),
        };
        // Kubernetes refuses container names that are not DNS labels, and so does a trigger path.
        let path = container.field_path().to_string();
        if let Err(problem) = ImageFieldPath::parse(&path, WorkloadKind::Deployment) {
            findings.warn(format!(
                "{}: container {}: {problem}; dropped",
                params.path_of("containerNames"),
                shown(&container.container)
            ));
            continue;
        }
        plan.add(container, findings);
    }
    Ok(())
}

/// `from` of an ImageChange trigger, or `None` (with a warning) when the trigger cannot be kept.
fn trigger_from(
    params: &Obj,
    namespace: Option<&str>,
    findings: &mut Findings,
) -> Result<Option<TriggerFrom>, ConversionError> {
    let from = params.required_object("from")?;
    let mut name = from.string("name")?.unwrap_or_default().to_owned();
    match from.string("kind")?.unwrap_or_default() {
        // OpenShift defaults an empty kind to ImageStreamTag.
        "" | IMAGE_STREAM_TAG_KIND => {}
        kind @ ("ImageStream" | "ImageRepository") => {
            if !name.is_empty() && !name.contains(':') {
                name.push_str(":latest");
            }
            findings.note(format!(
                "{}: {kind} read as ImageStreamTag {}, as OpenShift does",
                from.path_of("kind"),
                shown(&name)
            ));
        }
        other => {
            findings.warn(format!(
                "{}: {} cannot trigger a Deployment (OpenShift ignored it too); trigger dropped",
                from.path_of("kind"),
                shown(other)
            ));
            return Ok(None);
        }
    }
    let source_namespace = from
        .string("namespace")?
        .filter(|ns| !ns.is_empty() && Some(*ns) != namespace)
        .map(str::to_owned);
    if let Err(problem) = check_source(&name, source_namespace.as_deref()) {
        findings.warn(format!("{}: {problem}; trigger dropped", from.path));
        return Ok(None);
    }
    Ok(Some(TriggerFrom {
        stream_tag: name,
        namespace: source_namespace,
    }))
}

/// Checks a trigger source as the trigger controller will, and says what is wrong with it.
fn check_source(stream_tag: &str, namespace: Option<&str>) -> Result<(), String> {
    let probe = ObjectFieldTrigger {
        from: TriggerSource {
            kind: IMAGE_STREAM_TAG_KIND.to_owned(),
            name: stream_tag.to_owned(),
            namespace: namespace.map(str::to_owned),
            api_version: None,
        },
        field_path: format!(
            "{}.containers[0].image",
            WorkloadKind::Deployment.pod_spec_path()
        ),
        paused: false,
    };
    match validate_triggers(&[probe], WorkloadKind::Deployment, "") {
        Ok(_) => Ok(()),
        Err(TriggerError::InvalidTagReference { name, problem, .. }) => Err(format!(
            "name {} is not an image stream tag: {problem}",
            shown(&name)
        )),
        Err(TriggerError::InvalidNamespace { namespace, .. }) => Err(format!(
            "namespace {} is not a namespace name",
            shown(&namespace)
        )),
        Err(other) => Err(other.to_string()),
    }
}

/// Notes on how an ImageChange trigger behaves on the Deployment.
fn report_trigger_mode(
    params: &Obj,
    from: &TriggerFrom,
    paused: bool,
    namespace: Option<&str>,
    findings: &mut Findings,
) -> Result<(), ConversionError> {
    if paused {
        let automatic = match params.boolean("automatic")? {
            Some(_) => "automatic is false",
            None => "automatic is not set, which OpenShift reads as false",
        };
        findings.note(format!(
            "{}: {automatic}: the trigger is written paused, so it does not change the image until you \
             unpause it (OpenShift resolved it only on `oc rollout latest`)",
            params.path
        ));
    }
    if let Some(source_namespace) = &from.namespace {
        let unless = match namespace {
            Some(own) => format!("outside namespace {own}"),
            None => format!("(unless the Deployment is created in {source_namespace})"),
        };
        findings.note(format!(
            "{}: follows {source_namespace}/{} {unless}: the trigger controller writes its image only \
             if the Deployment's pod service account may get imagestreams in {source_namespace} \
             (OpenShift did not check)",
            params.path_of("from"),
            from.stream_tag
        ));
    }
    Ok(())
}

fn string_list(object: &Obj, key: &str) -> Result<Vec<String>, ConversionError> {
    let Some(items) = object.array(key)? else {
        return Ok(Vec::new());
    };
    items
        .iter()
        .enumerate()
        .map(|(index, item)| match item {
            Value::String(text) => Ok(text.clone()),
            other => Err(wrong_type(
                format!("{}[{index}]", object.path_of(key)),
                "a string",
                other,
            )),
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------------
// Images of triggered containers
// ---------------------------------------------------------------------------------------------------

/// What a triggered container's image becomes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum TriggeredImage {
    /// The template's image is a full reference: keep it.
    Keep(String),
    /// The image OpenShift last resolved for the trigger.
    LastTriggered(String),
    /// A placeholder that cannot be pulled.
    Placeholder(String),
}

fn triggered_image(current: &str, trigger: &ContainerTrigger) -> TriggeredImage {
    if is_full_reference(current) {
        TriggeredImage::Keep(current.to_owned())
    } else if let Some(image) = &trigger.last_triggered_image {
        TriggeredImage::LastTriggered(image.clone())
    } else {
        TriggeredImage::Placeholder(format!("{PLACEHOLDER_REGISTRY}/{}", trigger.stream_tag))
    }
}

/// Whether `image` names its registry host or a digest, so pulling it cannot fall back to Docker Hub.
fn is_full_reference(image: &str) -> bool {
    if image.is_empty() || image.trim() != image {
        return false;
    }
    if image.contains('@') {
        return true;
    }
    image
        .split_once('/')
        .is_some_and(|(host, _)| host.contains('.') || host.contains(':') || host == "localhost")
}

fn set_trigger_images(
    template: &mut Value,
    triggers: &[ContainerTrigger],
    findings: &mut Findings,
) {
    for trigger in triggers {
        let Some(container) = find_container_mut(template, trigger) else {
            continue;
        };
        let current = container
            .get("image")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let image = triggered_image(&current, trigger);
        report_image(trigger, &current, &image, findings);
        let (TriggeredImage::Keep(image)
        | TriggeredImage::LastTriggered(image)
        | TriggeredImage::Placeholder(image)) = image;
        container.insert("image".into(), Value::String(image));
    }
}

fn find_container_mut<'a>(
    template: &'a mut Value,
    trigger: &ContainerTrigger,
) -> Option<&'a mut Map<String, Value>> {
    template
        .get_mut("spec")?
        .get_mut(trigger.list.field_name())?
        .as_array_mut()?
        .iter_mut()
        .filter_map(Value::as_object_mut)
        .find(|c| c.get("name").and_then(Value::as_str) == Some(trigger.container.as_str()))
}

fn report_image(
    trigger: &ContainerTrigger,
    current: &str,
    image: &TriggeredImage,
    findings: &mut Findings,
) {
    let container = format!(
        "spec.template.spec.{}[{}].image",
        trigger.list.field_name(),
        trigger.container
    );
    let source = trigger.source();
    match image {
        TriggeredImage::Keep(image) => findings.note(format!(
            "{container}: {} kept until the trigger controller writes the image of {source}",
            shown(image)
        )),
        TriggeredImage::LastTriggered(image) => findings.note(format!(
            "{container}: {} written, the image of {source} OpenShift last deployed",
            shown(image)
        )),
        TriggeredImage::Placeholder(placeholder) if trigger.paused => findings.warn(format!(
            "{container}: {} replaced by the placeholder {placeholder}, and the trigger on {source} \
             is paused: no pod can start until you unpause it or set the image",
            shown(current)
        )),
        TriggeredImage::Placeholder(placeholder) => findings.note(format!(
            "{container}: {} replaced by the placeholder {placeholder} (OpenShift never ran it: a \
             DeploymentConfig waits for its image triggers); the trigger controller writes the image \
             of {source} once that stream has one",
            shown(current)
        )),
    }
}

/// Puts the converted triggers into the annotation, replacing one the DeploymentConfig carried.
fn set_trigger_annotation(
    metadata: &mut Map<String, Value>,
    triggers: Vec<ObjectFieldTrigger>,
    findings: &mut Findings,
) {
    let existing = metadata
        .get("annotations")
        .and_then(|annotations| annotations.get(TRIGGERS_ANNOTATION))
        .and_then(Value::as_str)
        .map(str::to_owned);
    if triggers.is_empty() {
        if existing.is_some() {
            findings.note(format!(
                "metadata.annotations[{TRIGGERS_ANNOTATION}]: kept; it had no effect on the \
                 DeploymentConfig but the trigger controller acts on it for the Deployment"
            ));
        }
        return;
    }
    let value = encode_annotation(&triggers);
    if existing
        .as_deref()
        .is_some_and(|existing| existing != value)
    {
        findings.warn(format!(
            "metadata.annotations[{TRIGGERS_ANNOTATION}]: replaced by the triggers converted from \
             spec.triggers"
        ));
    }
    let annotations = metadata
        .entry("annotations")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(annotations) = annotations {
        annotations.insert(TRIGGERS_ANNOTATION.into(), Value::String(value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::trigger_annotation::{locate_containers, parse_annotation};
    use pretty_assertions::assert_eq;
    use proptest::prelude::*;

    // -----------------------------------------------------------------------------------------------
    // Building DeploymentConfigs
    // -----------------------------------------------------------------------------------------------

    /// A DeploymentConfig as `oc new-app` writes one: container `web` follows `web:latest`.
    fn base() -> Value {
        json!({
            "apiVersion": "apps.openshift.io/v1",
            "kind": "DeploymentConfig",
            "metadata": {"name": "web", "namespace": "shop", "labels": {"app": "web"}},
            "spec": {
                "replicas": 2,
                "selector": {"app": "web", "deploymentconfig": "web"},
                "strategy": {"type": "Rolling"},
                "template": {
                    "metadata": {"labels": {"app": "web", "deploymentconfig": "web"}},
                    "spec": {"containers": [{"name": "web", "image": " ", "ports": [{"containerPort": 8080}]}]},
                },
                "triggers": [
                    {"type": "ConfigChange"},
                    {"type": "ImageChange", "imageChangeParams": {
                        "automatic": true,
                        "containerNames": ["web"],
                        "from": {"kind": "ImageStreamTag", "name": "web:latest"},
                    }},
                ],
            },
        })
    }

    /// `dc` with the value at JSON pointer `pointer` set (parents created) or, for `Value::Null`,
    /// removed.
    fn with(mut dc: Value, pointer: &str, value: Value) -> Value {
        let (parent, key) = pointer.rsplit_once('/').unwrap();
        let mut slot = &mut dc;
        for part in parent.split('/').skip(1) {
            slot = match slot {
                Value::Array(items) => &mut items[part.parse::<usize>().unwrap()],
                other => other
                    .as_object_mut()
                    .unwrap()
                    .entry(part)
                    .or_insert_with(|| json!({})),
            };
        }
        match (slot, value) {
            (Value::Object(map), Value::Null) => {
                map.remove(key);
            }
            (Value::Object(map), value) => {
                map.insert(key.to_owned(), value);
            }
            (Value::Array(items), value) => items[key.parse::<usize>().unwrap()] = value,
            (other, _) => panic!("cannot set {pointer} in {other}"),
        }
        dc
    }

    fn convert(dc: &Value) -> Conversion {
        convert_deployment_config(dc).unwrap_or_else(|err| panic!("{err}: {dc}"))
    }

    fn messages(conversion: &Conversion, severity: Severity) -> Vec<String> {
        conversion
            .findings_of(severity)
            .map(|f| f.message.clone())
            .collect()
    }

    /// The one finding whose message contains `needle`, as (severity, message).
    fn finding(conversion: &Conversion, needle: &str) -> (Severity, String) {
        let found: Vec<&Finding> = conversion
            .findings
            .iter()
            .filter(|f| f.message.contains(needle))
            .collect();
        assert_eq!(found.len(), 1, "{needle:?} in {:#?}", conversion.findings);
        (found[0].severity, found[0].message.clone())
    }

    fn triggers_of(deployment: &Value) -> Value {
        let annotation = deployment["metadata"]["annotations"][TRIGGERS_ANNOTATION]
            .as_str()
            .unwrap_or("null");
        serde_json::from_str(annotation).unwrap()
    }

    fn image_of(deployment: &Value, list: &str, name: &str) -> Option<String> {
        deployment["spec"]["template"]["spec"][list]
            .as_array()?
            .iter()
            .find(|c| c["name"] == name)?["image"]
            .as_str()
            .map(str::to_owned)
    }

    // -----------------------------------------------------------------------------------------------
    // The whole object
    // -----------------------------------------------------------------------------------------------

    #[test]
    fn a_new_app_deployment_config_becomes_a_deployment_with_a_trigger_annotation() {
        let conversion = convert(&base());
        let trigger = r#"[{"from":{"kind":"ImageStreamTag","name":"web:latest"},"fieldPath":"spec.template.spec.containers[?(@.name==\"web\")].image"}]"#;
        assert_eq!(
            conversion.deployment,
            json!({
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {
                    "name": "web",
                    "namespace": "shop",
                    "labels": {"app": "web"},
                    "annotations": {TRIGGERS_ANNOTATION: trigger},
                },
                "spec": {
                    "replicas": 2,
                    "selector": {"matchLabels": {"app": "web", "deploymentconfig": "web"}},
                    "strategy": {"type": "RollingUpdate"},
                    "template": {
                        "metadata": {"labels": {"app": "web", "deploymentconfig": "web"}},
                        "spec": {"containers": [{
                            "name": "web",
                            "image": "image-trigger.invalid/web:latest",
                            "ports": [{"containerPort": 8080}],
                        }]},
                    },
                },
            })
        );
        assert_eq!(
            messages(&conversion, Severity::Warning),
            Vec::<String>::new()
        );
        assert_eq!(
            messages(&conversion, Severity::Note),
            [
                "spec.triggers: ConfigChange needs no conversion: a Deployment rolls out whenever its \
                 pod template changes",
                "spec.template.spec.containers[web].image: \" \" replaced by the placeholder \
                 image-trigger.invalid/web:latest (OpenShift never ran it: a DeploymentConfig waits \
                 for its image triggers); the trigger controller writes the image of web:latest once \
                 that stream has one",
            ]
        );
    }

    #[test]
    fn status_and_server_set_metadata_are_dropped_without_a_word() {
        let mut dc = base();
        dc["metadata"]["uid"] = json!("0b5f3c1e");
        dc["metadata"]["resourceVersion"] = json!("4711");
        dc["metadata"]["creationTimestamp"] = json!("2024-01-01T00:00:00Z");
        dc["metadata"]["generation"] = json!(7);
        dc["metadata"]["selfLink"] =
            json!("/apis/apps.openshift.io/v1/namespaces/shop/deploymentconfigs/web");
        dc["metadata"]["managedFields"] = json!([{"manager": "oc"}]);
        dc["status"] = json!({"latestVersion": 3, "replicas": 2});
        let conversion = convert(&dc);
        assert_eq!(conversion, convert(&base()));
    }

    #[test]
    fn annotations_kubectl_and_openshift_maintain_are_dropped_with_a_note() {
        let dc = with(
            base(),
            "/metadata/annotations",
            json!({
                "description": "the shop front end",
                "kubectl.kubernetes.io/last-applied-configuration": "{}",
                "openshift.io/generated-by": "OpenShiftNewApp",
                "openshift.io/deployment.phase": "Complete",
                "deploy.openshift.io/deployer-pod.ignore": "true",
            }),
        );
        let conversion = convert(&dc);
        let annotations = &conversion.deployment["metadata"]["annotations"];
        assert_eq!(annotations["description"], "the shop front end");
        assert_eq!(annotations["openshift.io/generated-by"], "OpenShiftNewApp");
        assert_eq!(annotations.as_object().unwrap().len(), 3, "{annotations}");
        assert_eq!(
            finding(&conversion, "metadata.annotations"),
            (
                Severity::Note,
                "metadata.annotations: dropped deploy.openshift.io/deployer-pod.ignore, \
                 kubectl.kubernetes.io/last-applied-configuration, openshift.io/deployment.phase: \
                 kubectl and OpenShift maintain them for the DeploymentConfig itself"
                    .to_owned()
            )
        );
    }

    #[test]
    fn owner_references_and_finalizers_are_dropped_with_a_warning() {
        let mut dc = base();
        dc["metadata"]["ownerReferences"] =
            json!([{"kind": "TemplateInstance", "name": "shop", "uid": "1"}]);
        dc["metadata"]["finalizers"] = json!(["example.com/keep"]);
        let conversion = convert(&dc);
        assert!(
            conversion.deployment["metadata"]
                .get("ownerReferences")
                .is_none()
        );
        assert!(
            conversion.deployment["metadata"]
                .get("finalizers")
                .is_none()
        );
        assert_eq!(finding(&conversion, "ownerReferences").0, Severity::Warning);
        assert_eq!(finding(&conversion, "finalizers").0, Severity::Warning);
    }

    #[test]
    fn replicas_selector_and_history_follow_openshift_defaults() {
        // (DeploymentConfig, field of the Deployment spec, its value, finding severity and text).
        let legacy = with(base(), "/apiVersion", json!("v1"));
        let cases = [
            (
                with(base(), "/spec/replicas", Value::Null),
                "/spec/replicas",
                json!(0),
                Some((Severity::Warning, "spec.replicas is not set")),
            ),
            (
                with(base(), "/spec/selector", Value::Null),
                "/spec/selector/matchLabels",
                json!({"app": "web", "deploymentconfig": "web"}),
                Some((
                    Severity::Note,
                    "the pod template's labels {app=web, deploymentconfig=web}",
                )),
            ),
            (
                with(base(), "/spec/selector", json!({"app": "other"})),
                "/spec/selector/matchLabels",
                json!({"app": "other"}),
                Some((
                    Severity::Warning,
                    "does not match the pod template's labels",
                )),
            ),
            (
                with(base(), "/spec/revisionHistoryLimit", json!(3)),
                "/spec/revisionHistoryLimit",
                json!(3),
                None,
            ),
            // The group API defaults the limit to 10, as a Deployment does: nothing to say.
            (base(), "/spec/revisionHistoryLimit", Value::Null, None),
            (
                legacy,
                "/spec/revisionHistoryLimit",
                Value::Null,
                Some((
                    Severity::Warning,
                    "legacy v1 DeploymentConfig kept every old",
                )),
            ),
            (
                with(base(), "/spec/minReadySeconds", json!(15)),
                "/spec/minReadySeconds",
                json!(15),
                None,
            ),
            (
                with(base(), "/spec/paused", json!(true)),
                "/spec/paused",
                json!(true),
                None,
            ),
            (
                with(base(), "/spec/test", json!(true)),
                "/spec/test",
                Value::Null,
                Some((Severity::Warning, "spec.test: true")),
            ),
        ];
        for (dc, pointer, expected, remark) in cases {
            let conversion = convert(&dc);
            let value = conversion.deployment.pointer(pointer).cloned();
            assert_eq!(value.unwrap_or(Value::Null), expected, "{pointer} of {dc}");
            let extra: Vec<&Finding> = conversion
                .findings
                .iter()
                .filter(|f| !convert(&base()).findings.contains(f))
                .collect();
            match remark {
                None => assert!(extra.is_empty(), "{pointer}: {extra:#?}"),
                Some((severity, needle)) => {
                    assert_eq!(extra.len(), 1, "{pointer}: {extra:#?}");
                    assert_eq!(extra[0].severity, severity, "{extra:?}");
                    assert!(extra[0].message.contains(needle), "{extra:?}");
                }
            }
        }
    }

    // -----------------------------------------------------------------------------------------------
    // Strategies
    // -----------------------------------------------------------------------------------------------

    #[test]
    fn fields_no_pod_template_has_are_dropped_with_a_warning_and_the_rest_kept_verbatim() {
        let container = json!({
            "name": "web",
            "image": "quay.io/shop/web:1",
            "capabilities": {"add": ["NET_ADMIN"]},
            "resources": {"limits": {"cpu": 1, "memory": "1Gi"}},
            "ports": [{"containerPort": 8080, "protocol": "TCP", "portName": "http"}],
        });
        let dc = with(base(), "/spec/template/spec/containers/0", container);
        let dc = with(dc, "/spec/template/metadata/creationTimestamp", Value::Null);
        let dc = with(dc, "/spec/triggers", Value::Null);
        let conversion = convert(&dc);
        let template = &conversion.deployment["spec"]["template"];
        assert_eq!(
            template["spec"]["containers"][0],
            json!({
                "name": "web",
                "image": "quay.io/shop/web:1",
                "resources": {"limits": {"cpu": 1, "memory": "1Gi"}},
                "ports": [{"containerPort": 8080, "protocol": "TCP"}],
            })
        );
        let warnings = messages(&conversion, Severity::Warning);
        assert_eq!(warnings.len(), 2, "{warnings:#?}");
        assert!(
            warnings[0].starts_with("spec.template.spec.containers[0].capabilities: not a field")
        );
        assert!(
            warnings[1]
                .starts_with("spec.template.spec.containers[0].ports[0].portName: not a field")
        );

        let mistyped = with(
            base(),
            "/spec/template/spec/containers/0/ports/0/containerPort",
            json!("8080"),
        );
        let (severity, message) = finding(&convert(&mistyped), "does not fit");
        assert_eq!(severity, Severity::Warning);
        assert!(
            message.starts_with("spec.template does not fit the Kubernetes pod template schema"),
            "{message}"
        );
    }

    #[test]
    fn strategies_become_deployment_strategies_with_openshifts_rolling_defaults() {
        // (DeploymentConfig strategy, Deployment strategy).
        let cases = [
            (Value::Null, json!({"type": "RollingUpdate"})),
            (json!({}), json!({"type": "RollingUpdate"})),
            (json!({"type": "Rolling"}), json!({"type": "RollingUpdate"})),
            (json!({"type": "Recreate"}), json!({"type": "Recreate"})),
            (
                json!({"type": "Rolling", "rollingParams": {"maxSurge": "50%", "maxUnavailable": 1}}),
                json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "50%", "maxUnavailable": 1}}),
            ),
            // One bound set: OpenShift makes the other 0 where a Deployment would take 25%.
            (
                json!({"type": "Rolling", "rollingParams": {"maxSurge": "50%"}}),
                json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "50%", "maxUnavailable": 0}}),
            ),
            (
                json!({"type": "Rolling", "rollingParams": {"maxUnavailable": 2}}),
                json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 2}}),
            ),
            // ... unless the one set is 0, then the other is 25%.
            (
                json!({"type": "Rolling", "rollingParams": {"maxSurge": 0}}),
                json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": "25%"}}),
            ),
            (
                json!({"type": "Rolling", "rollingParams": {"maxUnavailable": "0%"}}),
                json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "0%"}}),
            ),
            (
                json!({"type": "Custom", "customParams": {"image": "deployer:1"}}),
                json!({"type": "RollingUpdate"}),
            ),
        ];
        for (strategy, expected) in cases {
            let conversion = convert(&with(base(), "/spec/strategy", strategy.clone()));
            assert_eq!(
                conversion.deployment["spec"]["strategy"], expected,
                "{strategy}"
            );
        }
    }

    #[test]
    fn strategy_settings_without_equivalent_are_each_reported() {
        // (pointer in the DeploymentConfig, value, severity, text of the one finding about it).
        let cases = [
            (
                "/spec/strategy/rollingParams/updatePeriodSeconds",
                json!(1),
                Severity::Note,
                "updatePeriodSeconds: 1 (the OpenShift default) has no Deployment equivalent",
            ),
            (
                "/spec/strategy/rollingParams/updatePeriodSeconds",
                json!(5),
                Severity::Warning,
                "updatePeriodSeconds: 5 has no Deployment equivalent",
            ),
            (
                "/spec/strategy/rollingParams/intervalSeconds",
                json!(1),
                Severity::Note,
                "intervalSeconds: 1 (the OpenShift default)",
            ),
            (
                "/spec/strategy/rollingParams/intervalSeconds",
                json!(3),
                Severity::Warning,
                "intervalSeconds: 3 has no",
            ),
            (
                "/spec/strategy/rollingParams/timeoutSeconds",
                json!(600),
                Severity::Note,
                "600 is also a Deployment's default progressDeadlineSeconds",
            ),
            (
                "/spec/strategy/rollingParams/timeoutSeconds",
                json!(1200),
                Severity::Warning,
                "1200 written as spec.progressDeadlineSeconds",
            ),
            (
                "/spec/strategy/rollingParams/pre",
                json!({"failurePolicy": "Abort", "execNewPod": {"command": ["./migrate", "up"], "containerName": "web"}}),
                Severity::Warning,
                r#"the pre lifecycle hook (runs "./migrate up" in a copy of container "web", failurePolicy "Abort")"#,
            ),
            (
                "/spec/strategy/rollingParams/post",
                json!({"failurePolicy": "Ignore", "tagImages": [{"containerName": "web", "to": {"kind": "ImageStreamTag", "name": "web:deployed"}}]}),
                Severity::Warning,
                r#"the post lifecycle hook (tags images into "web:deployed""#,
            ),
            (
                "/spec/strategy/activeDeadlineSeconds",
                json!(21600),
                Severity::Note,
                "activeDeadlineSeconds: 21600 (the OpenShift default)",
            ),
            (
                "/spec/strategy/activeDeadlineSeconds",
                json!(3600),
                Severity::Warning,
                "activeDeadlineSeconds: 3600 has no",
            ),
            (
                "/spec/strategy/resources",
                json!({"limits": {"cpu": "1"}}),
                Severity::Warning,
                "spec.strategy.resources: sized the deployer",
            ),
            (
                "/spec/strategy/labels",
                json!({"team": "shop"}),
                Severity::Warning,
                "spec.strategy.labels {team=shop}",
            ),
            (
                "/spec/strategy/annotations",
                json!({"note": "x"}),
                Severity::Warning,
                "spec.strategy.annotations {note=x}",
            ),
            (
                "/spec/strategy/customParams",
                json!({"image": "deployer:1"}),
                Severity::Warning,
                r#"the custom deployer (image "deployer:1")"#,
            ),
            (
                "/spec/strategy/recreateParams",
                json!({"timeoutSeconds": 600}),
                Severity::Note,
                "spec.strategy.recreateParams: ignored by a Rolling strategy",
            ),
            (
                "/spec/strategy/rollingParams/maxSurge",
                json!(3),
                Severity::Note,
                "spec.strategy.rollingParams.maxUnavailable is not set",
            ),
            (
                "/spec/strategy/surprise",
                json!(true),
                Severity::Warning,
                "spec.strategy.surprise: not a DeploymentConfig field",
            ),
            (
                "/spec/surprise",
                json!(true),
                Severity::Warning,
                "spec.surprise: not a DeploymentConfig field",
            ),
        ];
        let before = convert(&base()).findings;
        for (pointer, value, severity, needle) in cases {
            let conversion = convert(&with(base(), pointer, value));
            let extra: Vec<&Finding> = conversion
                .findings
                .iter()
                .filter(|f| !before.contains(f))
                .collect();
            assert_eq!(extra.len(), 1, "{pointer}: {extra:#?}");
            assert_eq!(extra[0].severity, severity, "{pointer}: {extra:?}");
            assert!(
                extra[0].message.contains(needle),
                "{pointer}: {}",
                extra[0].message
            );
        }
    }

    #[test]
    fn recreate_hooks_and_timeouts_are_reported_and_the_timeout_becomes_the_progress_deadline() {
        let dc = with(
            base(),
            "/spec/strategy",
            json!({"type": "Recreate", "recreateParams": {
                "timeoutSeconds": 900,
                "pre": {"failurePolicy": "Abort", "execNewPod": {"command": ["true"], "containerName": "web"}},
                "mid": {"failurePolicy": "Retry", "execNewPod": {"command": ["true"], "containerName": "web"}},
                "post": {"failurePolicy": "Ignore", "execNewPod": {"command": ["true"], "containerName": "web"}},
            }}),
        );
        let conversion = convert(&dc);
        assert_eq!(
            conversion.deployment["spec"]["strategy"],
            json!({"type": "Recreate"})
        );
        assert_eq!(
            conversion.deployment["spec"]["progressDeadlineSeconds"],
            json!(900)
        );
        for hook in ["pre", "mid", "post"] {
            let path = format!("spec.strategy.recreateParams.{hook}: the {hook} lifecycle hook");
            assert_eq!(finding(&conversion, &path).0, Severity::Warning);
        }
        assert_eq!(
            finding(&conversion, "timeoutSeconds: 900").0,
            Severity::Warning
        );
    }

    #[test]
    fn custom_strategies_warn_and_roll_by_default() {
        let dc = with(
            base(),
            "/spec/strategy",
            json!({"type": "Custom", "customParams": {"image": "deployer:1"}}),
        );
        let conversion = convert(&dc);
        assert_eq!(
            messages(&conversion, Severity::Warning),
            [
                "spec.strategy.type: Custom: a Deployment cannot run a custom deployer; RollingUpdate \
                 written (the Deployment default)",
                "spec.strategy.customParams: the custom deployer (image \"deployer:1\") has no \
                 Deployment equivalent; dropped",
            ]
        );
    }

    // -----------------------------------------------------------------------------------------------
    // Triggers
    // -----------------------------------------------------------------------------------------------

    fn image_change(params: Value) -> Value {
        json!({"type": "ImageChange", "imageChangeParams": params})
    }

    fn pod(containers: &[&str], init: &[&str]) -> Value {
        let list = |names: &[&str]| -> Value {
            names
                .iter()
                .map(|n| json!({"name": n, "image": " "}))
                .collect()
        };
        let mut spec = json!({"containers": list(containers)});
        if !init.is_empty() {
            spec["initContainers"] = list(init);
        }
        json!({"metadata": {"labels": {"app": "web", "deploymentconfig": "web"}}, "spec": spec})
    }

    #[test]
    fn image_change_triggers_become_one_annotation_entry_per_container() {
        let containers = "spec.template.spec.containers";
        let init = "spec.template.spec.initContainers";
        // (triggers, annotation entries as (name, namespace, fieldPath, paused)).
        // An annotation entry: (from.name, from.namespace, fieldPath, paused).
        type Entry<'a> = (&'a str, Option<&'a str>, String, bool);
        let cases: Vec<(Value, Vec<Entry>)> = vec![
            (
                json!([image_change(
                    json!({"automatic": true, "containerNames": ["web", "sidecar"], "from": {"kind": "ImageStreamTag", "name": "web:1"}})
                )]),
                vec![
                    (
                        "web:1",
                        None,
                        format!(r#"{containers}[?(@.name=="web")].image"#),
                        false,
                    ),
                    (
                        "web:1",
                        None,
                        format!(r#"{containers}[?(@.name=="sidecar")].image"#),
                        false,
                    ),
                ],
            ),
            // Init containers are found by name, as OpenShift does.
            (
                json!([image_change(
                    json!({"automatic": true, "containerNames": ["migrate"], "from": {"name": "tools:v2"}})
                )]),
                vec![(
                    "tools:v2",
                    None,
                    format!(r#"{init}[?(@.name=="migrate")].image"#),
                    false,
                )],
            ),
            // automatic false (or unset) pauses the trigger; a namespace of its own is kept, the
            // DeploymentConfig's own one is left out.
            (
                json!([
                    image_change(
                        json!({"automatic": false, "containerNames": ["web"], "from": {"kind": "ImageStreamTag", "name": "web:1", "namespace": "shop"}})
                    ),
                    image_change(
                        json!({"containerNames": ["sidecar"], "from": {"kind": "ImageStreamTag", "name": "proxy:2", "namespace": "openshift"}})
                    ),
                ]),
                vec![
                    (
                        "web:1",
                        None,
                        format!(r#"{containers}[?(@.name=="web")].image"#),
                        true,
                    ),
                    (
                        "proxy:2",
                        Some("openshift"),
                        format!(r#"{containers}[?(@.name=="sidecar")].image"#),
                        true,
                    ),
                ],
            ),
            // An ImageStream source is an ImageStreamTag of tag latest.
            (
                json!([image_change(
                    json!({"automatic": true, "containerNames": ["web"], "from": {"kind": "ImageStream", "name": "web"}})
                )]),
                vec![(
                    "web:latest",
                    None,
                    format!(r#"{containers}[?(@.name=="web")].image"#),
                    false,
                )],
            ),
            // Dropped: unknown containers, unsupported kinds, missing names, second writers.
            (
                json!([
                    image_change(json!({"automatic": true, "containerNames": ["nope", "web"], "from": {"name": "web:1"}})),
                    image_change(json!({"automatic": true, "containerNames": ["sidecar"], "from": {"kind": "DockerImage", "name": "nginx:1"}})),
                    image_change(json!({"automatic": true, "containerNames": ["sidecar"], "from": {"name": "no-tag"}})),
                    image_change(json!({"automatic": true, "containerNames": [], "from": {"name": "web:1"}})),
                    image_change(json!({"automatic": true, "containerNames": ["web"], "from": {"name": "other:1"}})),
                    {"type": "ImageChange"},
                ]),
                vec![(
                    "web:1",
                    None,
                    format!(r#"{containers}[?(@.name=="web")].image"#),
                    false,
                )],
            ),
        ];
        for (triggers, expected) in cases {
            let dc = with(
                with(
                    base(),
                    "/spec/template",
                    pod(&["web", "sidecar"], &["migrate"]),
                ),
                "/spec/triggers",
                triggers.clone(),
            );
            let conversion = convert(&dc);
            let expected: Vec<Value> = expected
                .into_iter()
                .map(|(name, namespace, field_path, paused)| {
                    let mut from = json!({"kind": "ImageStreamTag", "name": name});
                    if let Some(namespace) = namespace {
                        from["namespace"] = json!(namespace);
                    }
                    let mut entry = json!({"from": from, "fieldPath": field_path});
                    if paused {
                        entry["paused"] = json!(true);
                    }
                    entry
                })
                .collect();
            assert_eq!(
                triggers_of(&conversion.deployment),
                json!(expected),
                "{triggers}"
            );
        }
    }

    #[test]
    fn every_dropped_trigger_says_why() {
        let dc = with(
            with(base(), "/spec/template", pod(&["web", "sidecar"], &[])),
            "/spec/triggers",
            json!([
                {"type": "ConfigChange"},
                image_change(json!({"automatic": true, "containerNames": ["nope", "web"], "from": {"name": "web:1"}})),
                image_change(json!({"automatic": true, "containerNames": ["sidecar"], "from": {"kind": "DockerImage", "name": "nginx:1"}})),
                image_change(json!({"automatic": true, "containerNames": ["sidecar"], "from": {"name": "no-tag"}})),
                image_change(json!({"automatic": true, "containerNames": [], "from": {"name": "web:1"}})),
                image_change(json!({"automatic": true, "containerNames": ["web"], "from": {"name": "other:1"}})),
                {"type": "ImageChange"},
                {"type": "Manual"},
            ]),
        );
        let conversion = convert(&dc);
        assert_eq!(
            messages(&conversion, Severity::Warning),
            [
                r#"spec.triggers[1].imageChangeParams.containerNames: "nope" is neither a container nor an init container (OpenShift ignored it); dropped"#,
                r#"spec.triggers[2].imageChangeParams.from.kind: "DockerImage" cannot trigger a Deployment (OpenShift ignored it too); trigger dropped"#,
                r#"spec.triggers[3].imageChangeParams.from: name "no-tag" is not an image stream tag: it has no ":<tag>"; write <stream>:<tag>, e.g. "web:latest"; trigger dropped"#,
                "spec.triggers[4].imageChangeParams: no containerNames, which OpenShift refuses; ignored",
                r#"spec.triggers[5]: container "web" is already written by spec.triggers[1] (web:1); this one (other:1) dropped, as two triggers on one container are an error on a Deployment"#,
                "spec.triggers[6]: ImageChange without imageChangeParams; ignored",
                r#"spec.triggers[7]: type "Manual" is not a DeploymentConfig trigger; ignored"#,
            ]
        );
    }

    #[test]
    fn rollout_triggers_are_explained() {
        let image_only = with(
            base(),
            "/spec/triggers/0",
            base()["spec"]["triggers"][1].clone(),
        );
        let image_only = with(
            image_only,
            "/spec/triggers",
            json!([base()["spec"]["triggers"][1]]),
        );
        // (triggers field, severity and text of the finding about rollouts, if any).
        let cases = [
            (
                base(),
                Some((Severity::Note, "ConfigChange needs no conversion")),
            ),
            (
                image_only,
                Some((Severity::Warning, "has no ConfigChange trigger")),
            ),
            (
                with(base(), "/spec/triggers", json!([])),
                Some((Severity::Warning, "spec.triggers is empty")),
            ),
            // No list at all is OpenShift's default, one ConfigChange trigger: nothing to say.
            (with(base(), "/spec/triggers", Value::Null), None),
        ];
        for (dc, expected) in cases {
            let conversion = convert(&dc);
            let about: Vec<&Finding> = conversion
                .findings
                .iter()
                .filter(|f| {
                    f.message.starts_with("spec.triggers:")
                        || f.message.starts_with("spec.triggers has")
                        || f.message.starts_with("spec.triggers is")
                })
                .collect();
            match expected {
                None => assert!(about.is_empty(), "{about:?}"),
                Some((severity, needle)) => {
                    assert_eq!(about.len(), 1, "{about:?}");
                    assert_eq!(about[0].severity, severity);
                    assert!(about[0].message.contains(needle), "{}", about[0].message);
                }
            }
        }
    }

    #[test]
    fn triggered_container_images_are_kept_only_when_they_cannot_reach_docker_hub() {
        // (template image, lastTriggeredImage, image written).
        let digest = "quay.io/shop/web@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        let cases = [
            (json!(" "), None, "image-trigger.invalid/web:latest"),
            (json!(""), None, "image-trigger.invalid/web:latest"),
            (Value::Null, None, "image-trigger.invalid/web:latest"),
            (json!("web"), None, "image-trigger.invalid/web:latest"),
            (
                json!("library/web:"),
                None,
                "image-trigger.invalid/web:latest",
            ),
            (json!("jenkins:2"), None, "image-trigger.invalid/web:latest"),
            (json!(" "), Some(digest), digest),
            (json!("quay.io/shop/web:1"), None, "quay.io/shop/web:1"),
            (
                json!("image-registry.openshift-image-registry.svc:5000/shop/web@sha256:ab"),
                None,
                "image-registry.openshift-image-registry.svc:5000/shop/web@sha256:ab",
            ),
            (json!("localhost/web:1"), None, "localhost/web:1"),
            (json!("registry:5000/web"), None, "registry:5000/web"),
            (json!(digest), Some("quay.io/shop/web:old"), digest),
        ];
        for (image, last, expected) in cases {
            let mut dc = with(
                base(),
                "/spec/template/spec/containers/0/image",
                image.clone(),
            );
            if let Some(last) = last {
                dc = with(
                    dc,
                    "/spec/triggers/1/imageChangeParams/lastTriggeredImage",
                    json!(last),
                );
            }
            let conversion = convert(&dc);
            assert_eq!(
                image_of(&conversion.deployment, "containers", "web").as_deref(),
                Some(expected),
                "{image} {last:?}"
            );
        }
    }

    #[test]
    fn a_paused_trigger_on_a_placeholder_is_a_warning() {
        let dc = with(
            base(),
            "/spec/triggers/1/imageChangeParams/automatic",
            Value::Null,
        );
        let conversion = convert(&dc);
        assert_eq!(
            finding(&conversion, "automatic"),
            (
                Severity::Note,
                "spec.triggers[1].imageChangeParams: automatic is not set, which OpenShift reads as \
                 false: the trigger is written paused, so it does not change the image until you \
                 unpause it (OpenShift resolved it only on `oc rollout latest`)"
                    .to_owned()
            )
        );
        assert_eq!(
            finding(&conversion, "no pod can start"),
            (
                Severity::Warning,
                "spec.template.spec.containers[web].image: \" \" replaced by the placeholder \
                 image-trigger.invalid/web:latest, and the trigger on web:latest is paused: no pod can \
                 start until you unpause it or set the image"
                    .to_owned()
            )
        );
    }

    #[test]
    fn a_trigger_on_another_namespace_notes_the_access_check() {
        let dc = with(
            base(),
            "/spec/triggers/1/imageChangeParams/from/namespace",
            json!("openshift"),
        );
        let (severity, message) = finding(&convert(&dc), "service account");
        assert_eq!(severity, Severity::Note);
        assert!(message.starts_with("spec.triggers[1].imageChangeParams.from: follows openshift/web:latest outside namespace shop"), "{message}");
    }

    #[test]
    fn a_trigger_annotation_on_the_deployment_config_is_replaced_by_the_converted_triggers() {
        let stale = r#"[{"from":{"kind":"ImageStreamTag","name":"old:1"},"fieldPath":"spec.template.spec.containers[0].image"}]"#;
        let dc = with(
            base(),
            "/metadata/annotations",
            json!({TRIGGERS_ANNOTATION: stale}),
        );
        let conversion = convert(&dc);
        assert_eq!(
            triggers_of(&conversion.deployment)[0]["from"]["name"],
            "web:latest"
        );
        assert_eq!(
            finding(&conversion, "replaced by the triggers").0,
            Severity::Warning
        );

        let without_triggers = with(dc, "/spec/triggers", Value::Null);
        let conversion = convert(&without_triggers);
        assert_eq!(
            triggers_of(&conversion.deployment)[0]["from"]["name"],
            "old:1"
        );
        assert_eq!(
            finding(&conversion, "acts on it for the Deployment").0,
            Severity::Note
        );
    }

    // -----------------------------------------------------------------------------------------------
    // Errors
    // -----------------------------------------------------------------------------------------------

    #[test]
    fn objects_that_cannot_be_converted_are_errors_naming_the_field() {
        // (input, reason, message).
        let cases = [
            (
                json!([1]),
                "NotAnObject",
                "the document is a JSON list, not an object",
            ),
            (
                json!({"apiVersion": "apps/v1", "kind": "Deployment"}),
                "NotADeploymentConfig",
                r#""apps/v1" "Deployment" is not a DeploymentConfig"#,
            ),
            (
                with(base(), "/kind", Value::Null),
                "NotADeploymentConfig",
                r#""apps.openshift.io/v1" "" is not"#,
            ),
            (
                with(base(), "/metadata", Value::Null),
                "MissingField",
                "metadata.name is missing",
            ),
            (
                with(base(), "/metadata/name", Value::Null),
                "MissingField",
                "metadata.name is missing",
            ),
            (
                with(base(), "/spec", Value::Null),
                "MissingField",
                "spec is missing",
            ),
            (
                with(base(), "/spec/template", Value::Null),
                "MissingField",
                "spec.template is missing",
            ),
            (
                with(base(), "/spec/template/spec/containers", Value::Null),
                "MissingField",
                "spec.template.spec.containers is missing",
            ),
            (
                with(base(), "/spec/template/spec/containers/0/name", Value::Null),
                "MissingField",
                "spec.template.spec.containers[0].name is missing",
            ),
            (
                with(base(), "/spec/template", json!("web")),
                "WrongType",
                "spec.template must be an object, not a JSON string",
            ),
            (
                with(base(), "/spec/replicas", json!("2")),
                "WrongType",
                "spec.replicas must be a whole number, not a JSON string",
            ),
            (
                with(base(), "/spec/replicas", json!(-1)),
                "InvalidValue",
                "spec.replicas is -1: must be from 0 to 2147483647",
            ),
            (
                with(base(), "/spec/selector", json!({"app": 1})),
                "WrongType",
                "spec.selector.app must be a string",
            ),
            (
                with(base(), "/spec/triggers", json!({})),
                "WrongType",
                "spec.triggers must be a list, not a JSON object",
            ),
            (
                with(
                    base(),
                    "/spec/triggers/1/imageChangeParams/containerNames",
                    json!([7]),
                ),
                "WrongType",
                "containerNames[0] must be a string",
            ),
            (
                with(
                    base(),
                    "/spec/triggers/1/imageChangeParams/automatic",
                    json!("yes"),
                ),
                "WrongType",
                "automatic must be true or false",
            ),
            (
                with(base(), "/spec/strategy/type", json!("BlueGreen")),
                "InvalidValue",
                r#"spec.strategy.type is "BlueGreen": must be Rolling, Recreate or Custom"#,
            ),
            (
                with(
                    base(),
                    "/spec/strategy/rollingParams/maxSurge",
                    json!("lots"),
                ),
                "InvalidValue",
                r#"spec.strategy.rollingParams.maxSurge is "lots": must be a whole number or a percentage"#,
            ),
            (
                with(
                    with(base(), "/spec/selector", Value::Null),
                    "/spec/template/metadata",
                    Value::Null,
                ),
                "NoSelector",
                "spec.selector is empty",
            ),
        ];
        for (input, reason, message) in cases {
            let error = convert_deployment_config(&input).unwrap_err();
            assert_eq!(error.reason(), reason, "{error}");
            assert!(error.to_string().contains(message), "{error}");
        }
    }

    #[test]
    fn deployment_configs_are_recognised_by_api_version_and_kind() {
        assert!(is_deployment_config(&base()));
        assert!(is_deployment_config(&with(
            base(),
            "/apiVersion",
            json!("v1")
        )));
        assert!(!is_deployment_config(&with(
            base(),
            "/apiVersion",
            json!("apps/v1")
        )));
        assert!(!is_deployment_config(&with(
            base(),
            "/kind",
            json!("Deployment")
        )));
        assert!(!is_deployment_config(&json!("DeploymentConfig")));
    }

    // -----------------------------------------------------------------------------------------------
    // Properties
    // -----------------------------------------------------------------------------------------------

    /// Keys a DeploymentConfig uses, so that generated objects reach deep into the converter.
    const KEYS: &[&str] = &[
        "apiVersion",
        "kind",
        "metadata",
        "name",
        "namespace",
        "labels",
        "annotations",
        "spec",
        "replicas",
        "selector",
        "strategy",
        "type",
        "rollingParams",
        "recreateParams",
        "maxSurge",
        "maxUnavailable",
        "timeoutSeconds",
        "pre",
        "post",
        "execNewPod",
        "command",
        "template",
        "containers",
        "initContainers",
        "image",
        "triggers",
        "imageChangeParams",
        "automatic",
        "containerNames",
        "from",
        "lastTriggeredImage",
    ];

    const WORDS: &[&str] = &[
        "DeploymentConfig",
        "apps.openshift.io/v1",
        "v1",
        "ImageChange",
        "ConfigChange",
        "Rolling",
        "Recreate",
        "Custom",
        "ImageStreamTag",
        "ImageStream",
        "web",
        "web:latest",
        "25%",
        "0%",
        " ",
    ];

    fn any_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            (0i64..700).prop_map(Value::from),
            any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f)
                .map(Value::Number)),
            ".{0,12}".prop_map(Value::from),
            prop::sample::select(WORDS).prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 64, 6, |inner| {
            let key = prop_oneof![
                prop::sample::select(KEYS).prop_map(str::to_owned),
                "[a-z]{1,6}"
            ];
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
                prop::collection::btree_map(key, inner, 0..6)
                    .prop_map(|map| Value::Object(map.into_iter().collect())),
            ]
        })
    }

    /// A DeploymentConfig using every field the converter reads.
    fn rich() -> Value {
        let dc = with(
            base(),
            "/spec/template",
            pod(&["web", "sidecar"], &["migrate"]),
        );
        let dc = with(
            dc,
            "/spec/strategy",
            json!({
                "type": "Rolling",
                "rollingParams": {"maxSurge": 1, "timeoutSeconds": 60, "pre": {"failurePolicy": "Abort", "execNewPod": {"command": ["x"], "containerName": "web"}}},
                "recreateParams": {"mid": {"failurePolicy": "Abort"}},
                "resources": {"limits": {"cpu": "1"}},
                "labels": {"a": "b"},
                "activeDeadlineSeconds": 100,
            }),
        );
        with(
            dc,
            "/spec/triggers",
            json!([
                {"type": "ConfigChange"},
                image_change(json!({"automatic": true, "containerNames": ["web", "migrate"], "from": {"kind": "ImageStreamTag", "name": "web:1", "namespace": "other"}, "lastTriggeredImage": "quay.io/a/b:1"})),
                image_change(json!({"containerNames": ["sidecar"], "from": {"kind": "ImageStream", "name": "proxy"}})),
            ]),
        )
    }

    fn pointers(value: &Value, at: String, out: &mut Vec<String>) {
        match value {
            Value::Object(map) => map
                .iter()
                .for_each(|(k, v)| pointers(v, format!("{at}/{k}"), out)),
            Value::Array(items) => items
                .iter()
                .enumerate()
                .for_each(|(i, v)| pointers(v, format!("{at}/{i}"), out)),
            _ => {}
        }
        out.push(at);
    }

    /// [`rich`] with a few of its values, at any depth, replaced by arbitrary JSON.
    fn mutated() -> impl Strategy<Value = Value> {
        let mut all = Vec::new();
        pointers(&rich(), String::new(), &mut all);
        prop::collection::vec((prop::sample::select(all), any_json()), 1..4).prop_map(|edits| {
            let mut dc = rich();
            for (pointer, value) in edits {
                if pointer.is_empty() {
                    dc = value;
                } else if let Some(slot) = dc.pointer_mut(&pointer) {
                    *slot = value;
                }
            }
            dc
        })
    }

    fn names(deployment: &Value, list: &str) -> Vec<String> {
        deployment["spec"]["template"]["spec"][list]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .filter_map(|c| c["name"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// What holds for every conversion: a Deployment whose trigger annotation the trigger controller
    /// accepts, every triggered container with an image it can hold.
    fn check_conversion(conversion: &Conversion) -> Result<(), TestCaseError> {
        let deployment = &conversion.deployment;
        prop_assert_eq!(&deployment["apiVersion"], "apps/v1");
        prop_assert_eq!(&deployment["kind"], "Deployment");
        prop_assert!(
            deployment["spec"]["selector"]["matchLabels"]
                .as_object()
                .is_some_and(|m| !m.is_empty())
        );
        let Some(annotation) = deployment["metadata"]["annotations"][TRIGGERS_ANNOTATION].as_str()
        else {
            return Ok(());
        };
        let namespace = deployment["metadata"]["namespace"]
            .as_str()
            .unwrap_or("default");
        let triggers = parse_annotation(annotation, WorkloadKind::Deployment, namespace)
            .map_err(|e| TestCaseError::fail(format!("{e}: {annotation}")))?;
        let (containers, init) = (
            names(deployment, "containers"),
            names(deployment, "initContainers"),
        );
        let located = locate_containers(&triggers, &containers, &init)
            .map_err(|e| TestCaseError::fail(format!("{e}: {annotation}")))?;
        for location in located {
            let list = location.list.field_name();
            let image = &deployment["spec"]["template"]["spec"][list][location.index]["image"];
            let image = image.as_str().unwrap_or_default();
            prop_assert!(
                !image.is_empty() && image.trim() == image,
                "{list}[{}] image {image:?}",
                location.index
            );
        }
        Ok(())
    }

    #[test]
    fn the_rich_deployment_config_converts_and_satisfies_the_properties() {
        let conversion = convert(&rich());
        check_conversion(&conversion).unwrap();
        assert_eq!(
            triggers_of(&conversion.deployment)
                .as_array()
                .unwrap()
                .len(),
            3
        );
    }

    proptest! {
        #[test]
        fn any_json_value_converts_or_is_an_error_without_panicking(value in any_json()) {
            match convert_deployment_config(&value) {
                Ok(conversion) => check_conversion(&conversion)?,
                Err(error) => prop_assert!(!error.to_string().is_empty() && !error.reason().is_empty()),
            }
        }

        #[test]
        fn damaged_deployment_configs_convert_or_are_errors_without_panicking(value in mutated()) {
            match convert_deployment_config(&value) {
                Ok(conversion) => check_conversion(&conversion)?,
                Err(error) => prop_assert!(!error.to_string().is_empty() && !error.reason().is_empty()),
            }
        }
    }
}
