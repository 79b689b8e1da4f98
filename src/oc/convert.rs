//! `convert deploymentconfig`: reads manifests, converts every DeploymentConfig into an `apps/v1`
//! Deployment with [`crate::domain::deployment_config`], writes the Deployments as YAML or JSON, and
//! reports every warning and note on a second stream.
//!
//! Inputs are read as `oc` and `kubectl` read `-f`: a file; a directory, whose `.json`, `.yaml` and `.yml`
//! files are read in name order and not recursively (as `-f` without `-R`); or `-` for standard input.
//! A file holds YAML documents separated by `---`, or a stream of JSON objects. `List` kinds (`List`,
//! `DeploymentConfigList`, …) and Templates (`objects`) are unpacked.
//!
//! Only Deployments are written. Other objects (Services, Routes, ImageStreams, …) are skipped with a note
//! naming them: the command promises Deployments, and a Route or BuildConfig passed through would only
//! fail later on a cluster without OpenShift. Template parameters are not processed; a DeploymentConfig
//! from a Template that still holds `${…}` gets a warning. Nothing is written to the output unless every
//! DeploymentConfig converted, so a pipeline never applies half a manifest.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use thiserror::Error;

use crate::domain::deployment_config::{
    Conversion, ConversionError, Severity, convert_deployment_config, is_deployment_config,
};

/// The input name that means standard input.
pub const STDIN: &str = "-";

/// The file extensions read from a directory, as `kubectl -f <dir>` reads them.
const MANIFEST_EXTENSIONS: &[&str] = &["json", "yaml", "yml"];

/// How deep Lists and Templates inside Lists are unpacked; deeper ones are skipped like any other object.
const MAX_NESTING: usize = 8;

/// How the Deployments are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// One YAML document per Deployment, separated by `---`.
    #[default]
    Yaml,
    /// One JSON object, or a `v1` `List` when there is not exactly one Deployment.
    Json,
}

/// What a conversion did, for the exit status and a summary line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConvertSummary {
    /// DeploymentConfigs converted (and Deployments written).
    pub converted: usize,
    /// Objects skipped because they are not DeploymentConfigs.
    pub skipped: usize,
    /// Warnings written.
    pub warnings: usize,
    /// Notes written.
    pub notes: usize,
}

/// Why a conversion produced no output.
#[derive(Debug, Error)]
pub enum ConvertError {
    /// No input was named.
    #[error("no input: name a file, a directory or - for standard input")]
    NoInput,
    /// A file or directory could not be read.
    #[error("cannot read {}: {source}", .path.display())]
    Read {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// Standard input could not be read.
    #[error("cannot read standard input: {source}")]
    ReadStdin {
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// A manifest is not valid YAML.
    #[error("{input}: not valid YAML: {source}")]
    Yaml {
        /// The file the manifest came from.
        input: String,
        /// The parser's error, with its position (boxed: it is large).
        #[source]
        source: Box<serde_saphyr::Error>,
    },
    /// A manifest that starts like JSON is neither valid JSON nor valid YAML.
    #[error("{input}: not valid JSON: {source}")]
    Json {
        /// The file the manifest came from.
        input: String,
        /// The parser's error, with its position.
        #[source]
        source: serde_json::Error,
    },
    /// A DeploymentConfig cannot be converted.
    #[error("{input}: DeploymentConfig {object}: {source}")]
    Convert {
        /// The file the DeploymentConfig came from.
        input: String,
        /// `<namespace>/<name>` of the DeploymentConfig.
        object: String,
        /// What is wrong with it.
        #[source]
        source: ConversionError,
    },
    /// The Deployments could not be rendered as YAML.
    #[error("cannot render the Deployments as YAML: {source}")]
    RenderYaml {
        /// The serializer's error.
        #[source]
        source: serde_saphyr::SerializeError,
    },
    /// The Deployments could not be rendered as JSON.
    #[error("cannot render the Deployments as JSON: {source}")]
    RenderJson {
        /// The serializer's error.
        #[source]
        source: serde_json::Error,
    },
    /// The output stream failed.
    #[error("cannot write the Deployments: {source}")]
    WriteOutput {
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The warnings stream failed.
    #[error("cannot write warnings: {source}")]
    WriteWarnings {
        /// The I/O error.
        #[source]
        source: io::Error,
    },
}

impl ConvertError {
    /// The PascalCase word for this kind of error.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::NoInput => "NoInput",
            Self::Read { .. } | Self::ReadStdin { .. } => "ReadFailed",
            Self::Yaml { .. } | Self::Json { .. } => "InvalidManifest",
            Self::Convert { source, .. } => source.reason(),
            Self::RenderYaml { .. } | Self::RenderJson { .. } => "RenderFailed",
            Self::WriteOutput { .. } | Self::WriteWarnings { .. } => "WriteFailed",
        }
    }
}

/// Converts every DeploymentConfig in `inputs` (files, directories, or `-` for standard input) and
/// writes the Deployments to `out` in `output` format; warnings and notes go to `warnings`, one per line,
/// as `Warning: <namespace>/<name>: <message>` or `Note: …`.
pub fn convert(
    inputs: &[PathBuf],
    output: OutputFormat,
    out: &mut dyn Write,
    warnings: &mut dyn Write,
) -> Result<ConvertSummary, ConvertError> {
    convert_with_stdin(inputs, &mut io::stdin().lock(), output, out, warnings)
}

/// [`convert`], reading the input `-` from `stdin`.
pub fn convert_with_stdin(
    inputs: &[PathBuf],
    stdin: &mut dyn Read,
    output: OutputFormat,
    out: &mut dyn Write,
    warnings: &mut dyn Write,
) -> Result<ConvertSummary, ConvertError> {
    if inputs.is_empty() {
        return Err(ConvertError::NoInput);
    }
    let manifests = read_inputs(inputs, stdin)?;
    let mut report = Report {
        out: warnings,
        summary: ConvertSummary::default(),
    };
    let mut deployments = Vec::new();
    for manifest in &manifests {
        for object in unpack(manifest.documents()?) {
            if let Some(deployment) = convert_object(manifest, &object, &mut report)? {
                deployments.push(deployment);
            }
        }
    }
    if deployments.is_empty() {
        report.line(Severity::Warning, "input", "no DeploymentConfig found")?;
    }
    write_output(output, &deployments, out)?;
    Ok(report.summary)
}

/// Converts one object if it is a DeploymentConfig, reporting on it either way.
fn convert_object(
    manifest: &Manifest,
    object: &Unpacked,
    report: &mut Report,
) -> Result<Option<Value>, ConvertError> {
    let name = object_name(&object.value);
    if !is_deployment_config(&object.value) {
        report.skipped(&manifest.name, &name, &object.value)?;
        return Ok(None);
    }
    let conversion =
        convert_deployment_config(&object.value).map_err(|source| ConvertError::Convert {
            input: manifest.name.clone(),
            object: name.clone(),
            source,
        })?;
    report.findings(&name, &conversion)?;
    if object.from_template && object.value.to_string().contains("${") {
        report.line(
            Severity::Warning,
            &name,
            "holds ${…} Template parameters, which are not substituted: process the Template first \
             (oc process --local) or edit the output",
        )?;
    }
    report.summary.converted += 1;
    Ok(Some(conversion.deployment))
}

// ---------------------------------------------------------------------------------------------------
// Reading
// ---------------------------------------------------------------------------------------------------

/// The text of one input file (or of standard input).
struct Manifest {
    name: String,
    text: String,
}

impl Manifest {
    /// The documents of the manifest: a JSON stream when it starts like JSON, else YAML.
    fn documents(&self) -> Result<Vec<Value>, ConvertError> {
        let text = self.text.strip_prefix('\u{feff}').unwrap_or(&self.text);
        if !text.trim_start().starts_with(['{', '[']) {
            return serde_saphyr::from_multiple(text).map_err(|source| ConvertError::Yaml {
                input: self.name.clone(),
                source: Box::new(source),
            });
        }
        let json: Result<Vec<Value>, _> = serde_json::Deserializer::from_str(text)
            .into_iter()
            .collect();
        // A YAML flow mapping such as `{a: b}` also starts with a brace.
        json.or_else(|json_error| {
            serde_saphyr::from_multiple(text).map_err(|_| ConvertError::Json {
                input: self.name.clone(),
                source: json_error,
            })
        })
    }
}

fn read_inputs(inputs: &[PathBuf], stdin: &mut dyn Read) -> Result<Vec<Manifest>, ConvertError> {
    let mut manifests = Vec::new();
    for input in inputs {
        if input.as_os_str() == STDIN {
            let mut text = String::new();
            stdin
                .read_to_string(&mut text)
                .map_err(|source| ConvertError::ReadStdin { source })?;
            manifests.push(Manifest {
                name: "<stdin>".into(),
                text,
            });
        } else if std::fs::metadata(input)
            .map_err(|source| read_error(input, source))?
            .is_dir()
        {
            for file in manifest_files(input)? {
                manifests.push(read_file(&file)?);
            }
        } else {
            manifests.push(read_file(input)?);
        }
    }
    Ok(manifests)
}

/// The manifest files directly inside `dir`, in name order.
fn manifest_files(dir: &Path) -> Result<Vec<PathBuf>, ConvertError> {
    let entries = std::fs::read_dir(dir).map_err(|source| read_error(dir, source))?;
    let mut files = Vec::new();
    for entry in entries {
        let path = entry.map_err(|source| read_error(dir, source))?.path();
        let manifest_extension = path
            .extension()
            .and_then(|ext| ext.to_str())
            .is_some_and(|ext| MANIFEST_EXTENSIONS.contains(&ext));
        if manifest_extension && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

fn read_file(path: &Path) -> Result<Manifest, ConvertError> {
    let text = std::fs::read_to_string(path).map_err(|source| read_error(path, source))?;
    Ok(Manifest {
        name: path.display().to_string(),
        text,
    })
}

fn read_error(path: &Path, source: io::Error) -> ConvertError {
    ConvertError::Read {
        path: path.to_owned(),
        source,
    }
}

/// An object of a manifest, and whether it came out of a Template.
struct Unpacked {
    value: Value,
    from_template: bool,
}

/// The objects of `documents`, with Lists and Templates unpacked in order.
fn unpack(documents: Vec<Value>) -> Vec<Unpacked> {
    let mut objects = Vec::new();
    for document in documents {
        unpack_into(document, false, 0, &mut objects);
    }
    objects
}

fn unpack_into(value: Value, from_template: bool, depth: usize, objects: &mut Vec<Unpacked>) {
    if depth < MAX_NESTING {
        match members(&value) {
            Some(Members::Template(items)) => {
                for item in items {
                    unpack_into(item, true, depth + 1, objects);
                }
                return;
            }
            Some(Members::List(items)) => {
                for item in items {
                    unpack_into(item, from_template, depth + 1, objects);
                }
                return;
            }
            None => {}
        }
    }
    objects.push(Unpacked {
        value,
        from_template,
    });
}

enum Members {
    Template(Vec<Value>),
    List(Vec<Value>),
}

/// The objects of a Template (`objects`) or a List (`items`), if `value` is one.
fn members(value: &Value) -> Option<Members> {
    let kind = value.get("kind")?.as_str()?;
    if kind == "Template" {
        let objects = value.get("objects")?.as_array()?;
        return Some(Members::Template(objects.clone()));
    }
    let item_kind = kind.strip_suffix("List")?;
    let items = value.get("items")?.as_array()?;
    let api_version = value.get("apiVersion").and_then(Value::as_str);
    Some(Members::List(
        items
            .iter()
            .map(|item| typed_item(item, item_kind, api_version))
            .collect(),
    ))
}

/// An item of a typed list (`DeploymentConfigList`): the API leaves out each item's `kind` and
/// `apiVersion`, which are the list's.
fn typed_item(item: &Value, item_kind: &str, api_version: Option<&str>) -> Value {
    let mut item = item.clone();
    if let (Value::Object(map), false, Some(api_version)) =
        (&mut item, item_kind.is_empty(), api_version)
    {
        map.entry("kind").or_insert_with(|| json!(item_kind));
        map.entry("apiVersion")
            .or_insert_with(|| json!(api_version));
    }
    item
}

/// `<namespace>/<name>` of an object, or its name alone.
fn object_name(object: &Value) -> String {
    let metadata = object.get("metadata");
    let field = |key: &str| {
        metadata
            .and_then(|m| m.get(key))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    let name = field("name")
        .or_else(|| field("generateName"))
        .unwrap_or("(unnamed)");
    match field("namespace") {
        Some(namespace) => format!("{namespace}/{name}"),
        None => name.to_owned(),
    }
}

// ---------------------------------------------------------------------------------------------------
// Writing
// ---------------------------------------------------------------------------------------------------

/// The warnings stream and the counts of what went into it.
struct Report<'a> {
    out: &'a mut dyn Write,
    summary: ConvertSummary,
}

impl Report<'_> {
    fn findings(&mut self, name: &str, conversion: &Conversion) -> Result<(), ConvertError> {
        for finding in &conversion.findings {
            self.line(finding.severity, name, &finding.message)?;
        }
        Ok(())
    }

    fn skipped(&mut self, input: &str, name: &str, object: &Value) -> Result<(), ConvertError> {
        self.summary.skipped += 1;
        let text = |key: &str| object.get(key).and_then(Value::as_str).unwrap_or_default();
        let message = match (text("apiVersion"), text("kind")) {
            (_, "") => format!("skipped: not a Kubernetes object (no kind) in {input}"),
            (api_version, kind) => {
                format!("skipped: {api_version} {kind} is not a DeploymentConfig (in {input})")
            }
        };
        let subject = if object.get("kind").is_some() {
            name
        } else {
            input
        };
        self.line(Severity::Note, subject, &message)
    }

    fn line(
        &mut self,
        severity: Severity,
        subject: &str,
        message: &str,
    ) -> Result<(), ConvertError> {
        match severity {
            Severity::Warning => self.summary.warnings += 1,
            Severity::Note => self.summary.notes += 1,
        }
        writeln!(self.out, "{severity}: {subject}: {message}")
            .map_err(|source| ConvertError::WriteWarnings { source })
    }
}

fn write_output(
    output: OutputFormat,
    deployments: &[Value],
    out: &mut dyn Write,
) -> Result<(), ConvertError> {
    let text = match output {
        OutputFormat::Yaml => serde_saphyr::to_string_multiple(deployments)
            .map_err(|source| ConvertError::RenderYaml { source })?,
        OutputFormat::Json => {
            let value = match deployments {
                [one] => one.clone(),
                many => json!({"apiVersion": "v1", "kind": "List", "items": many}),
            };
            let mut text = serde_json::to_string_pretty(&value)
                .map_err(|source| ConvertError::RenderJson { source })?;
            text.push('\n');
            text
        }
    };
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|source| ConvertError::WriteOutput { source })
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    const DC: &str = r#"
apiVersion: apps.openshift.io/v1
kind: DeploymentConfig
metadata:
  name: web
  namespace: shop
spec:
  replicas: 2
  selector:
    app: web
  strategy:
    type: Recreate
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: web
        image: quay.io/shop/web:1
        env:
        - name: PORT
          value: "8080"
  triggers:
  - type: ConfigChange
"#;

    const SERVICE: &str = r#"
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: shop
spec:
  ports:
  - port: 80
"#;

    /// Runs a conversion of `inputs` with `stdin`, returning the result, the output and the warnings.
    fn run(
        inputs: &[&str],
        stdin: &str,
        output: OutputFormat,
    ) -> (Result<ConvertSummary, ConvertError>, String, String) {
        let inputs: Vec<PathBuf> = inputs.iter().map(PathBuf::from).collect();
        let (mut out, mut warnings) = (Vec::new(), Vec::new());
        let result = convert_with_stdin(
            &inputs,
            &mut stdin.as_bytes(),
            output,
            &mut out,
            &mut warnings,
        );
        (
            result,
            String::from_utf8(out).unwrap(),
            String::from_utf8(warnings).unwrap(),
        )
    }

    fn with_name(dc: &str, name: &str) -> String {
        dc.replace(
            "name: web\n  namespace",
            &format!("name: {name}\n  namespace"),
        )
    }

    #[test]
    fn yaml_documents_from_stdin_become_yaml_deployments_and_other_kinds_are_skipped() {
        let input = format!("{DC}---\n{SERVICE}---\n{}", with_name(DC, "api"));
        let (result, out, warnings) = run(&["-"], &input, OutputFormat::Yaml);
        let summary = result.unwrap();
        assert_eq!(
            summary,
            ConvertSummary {
                converted: 2,
                skipped: 1,
                warnings: 0,
                notes: 3
            }
        );
        let deployments: Vec<Value> = serde_saphyr::from_multiple(&out).unwrap();
        let names: Vec<&str> = deployments
            .iter()
            .map(|d| d["metadata"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["web", "api"]);
        assert_eq!(deployments[0]["kind"], "Deployment");
        assert_eq!(
            deployments[0]["spec"]["strategy"],
            json!({"type": "Recreate"})
        );
        // Quoted numbers stay strings through YAML in and out.
        assert_eq!(
            deployments[0]["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"],
            "8080"
        );
        assert_eq!(
            warnings,
            "Note: shop/web: spec.triggers: ConfigChange needs no conversion: a Deployment rolls out \
             whenever its pod template changes\n\
             Note: shop/web: skipped: v1 Service is not a DeploymentConfig (in <stdin>)\n\
             Note: shop/api: spec.triggers: ConfigChange needs no conversion: a Deployment rolls out \
             whenever its pod template changes\n"
        );
    }

    #[test]
    fn json_output_is_the_object_for_one_deployment_and_a_list_otherwise() {
        let (result, out, _) = run(&["-"], DC, OutputFormat::Json);
        result.unwrap();
        let one: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(
            (one["kind"].as_str(), one["metadata"]["name"].as_str()),
            (Some("Deployment"), Some("web"))
        );

        let two = format!("{DC}---\n{}", with_name(DC, "api"));
        let (result, out, _) = run(&["-"], &two, OutputFormat::Json);
        result.unwrap();
        let list: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(
            (list["apiVersion"].as_str(), list["kind"].as_str()),
            (Some("v1"), Some("List"))
        );
        assert_eq!(list["items"].as_array().unwrap().len(), 2);

        let (result, out, warnings) = run(&["-"], SERVICE, OutputFormat::Json);
        assert_eq!(result.unwrap().converted, 0);
        assert_eq!(
            serde_json::from_str::<Value>(&out).unwrap()["items"],
            json!([])
        );
        assert!(
            warnings.ends_with("Warning: input: no DeploymentConfig found\n"),
            "{warnings}"
        );
    }

    #[test]
    fn lists_templates_and_json_streams_are_unpacked() {
        let dc: Value = serde_saphyr::from_str(DC).unwrap();
        let mut untyped = dc.clone();
        untyped.as_object_mut().unwrap().remove("kind");
        untyped.as_object_mut().unwrap().remove("apiVersion");
        untyped["metadata"]["name"] = json!("typed");
        let service: Value = serde_saphyr::from_str(SERVICE).unwrap();
        let mut templated = dc.clone();
        templated["metadata"]["name"] = json!("from-template");
        templated["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"] =
            json!("${PORT}");
        let stream = [
            json!({"apiVersion": "v1", "kind": "List", "items": [dc, service]}),
            json!({"apiVersion": "apps.openshift.io/v1", "kind": "DeploymentConfigList", "items": [untyped]}),
            json!({"apiVersion": "template.openshift.io/v1", "kind": "Template", "objects": [templated]}),
        ]
        .iter()
        .map(Value::to_string)
        .collect::<Vec<_>>()
        .join("\n");
        let (result, out, warnings) = run(&["-"], &stream, OutputFormat::Json);
        assert_eq!(result.unwrap().converted, 3);
        let list: Value = serde_json::from_str(&out).unwrap();
        let names: Vec<&str> = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["metadata"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["web", "typed", "from-template"]);
        assert!(
            warnings.contains("Warning: shop/from-template: holds ${…} Template parameters"),
            "{warnings}"
        );
        assert_eq!(
            warnings.matches("Template parameters").count(),
            1,
            "{warnings}"
        );
    }

    #[test]
    fn a_directory_is_read_in_name_order_without_subdirectories() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("b.yml"), with_name(DC, "second")).unwrap();
        std::fs::write(dir.path().join("a.yaml"), with_name(DC, "first")).unwrap();
        std::fs::write(dir.path().join("notes.txt"), "not: [a manifest").unwrap();
        std::fs::create_dir(dir.path().join("nested")).unwrap();
        std::fs::write(dir.path().join("nested/c.yaml"), with_name(DC, "nested")).unwrap();
        let path = dir.path().to_str().unwrap();
        let (result, out, _) = run(&[path], "", OutputFormat::Json);
        assert_eq!(result.unwrap().converted, 2);
        let list: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(list["items"][0]["metadata"]["name"], "first");
        assert_eq!(list["items"][1]["metadata"]["name"], "second");
    }

    #[test]
    fn bad_input_is_an_error_naming_it_and_nothing_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good.yaml");
        std::fs::write(&good, DC).unwrap();
        let broken_yaml = dir.path().join("broken.yaml");
        std::fs::write(&broken_yaml, "kind: [DeploymentConfig\n").unwrap();
        let broken_json = dir.path().join("broken.json");
        std::fs::write(&broken_json, "{\"kind\": \"DeploymentConfig\",").unwrap();
        let invalid = dir.path().join("invalid.yaml");
        std::fs::write(&invalid, DC.replace("replicas: 2", "replicas: many")).unwrap();
        let missing = dir.path().join("missing.yaml");
        // (input, reason, text in the message).
        let cases = [
            (
                &broken_yaml,
                "InvalidManifest",
                "broken.yaml: not valid YAML",
            ),
            (
                &broken_json,
                "InvalidManifest",
                "broken.json: not valid JSON",
            ),
            (
                &invalid,
                "WrongType",
                "invalid.yaml: DeploymentConfig shop/web: spec.replicas must be a whole number",
            ),
            (&missing, "ReadFailed", "missing.yaml"),
        ];
        for (input, reason, message) in cases {
            let inputs = [good.to_str().unwrap(), input.to_str().unwrap()];
            let (result, out, _) = run(&inputs, "", OutputFormat::Yaml);
            let error = result.unwrap_err();
            assert_eq!(error.reason(), reason, "{error}");
            assert!(error.to_string().contains(message), "{error}");
            assert_eq!(out, "", "nothing is written when {input:?} fails");
        }
        assert_eq!(
            run(&[], "", OutputFormat::Yaml).0.unwrap_err().reason(),
            "NoInput"
        );
    }

    #[test]
    fn documents_that_are_not_objects_are_skipped_with_a_note() {
        let (result, _, warnings) = run(&["-"], "just a string\n---\n- 1\n", OutputFormat::Yaml);
        assert_eq!(result.unwrap().skipped, 2);
        let skipped = warnings
            .lines()
            .filter(|l| l.starts_with("Note: <stdin>: skipped: not a Kubernetes object"))
            .count();
        assert_eq!(skipped, 2, "{warnings}");
    }
}
