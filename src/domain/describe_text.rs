//! The text of `describe imagestream`, `describe istag` and `get istag`, laid out as `oc` prints
//! them, from objects the caller has already read and a clock it passes in: nothing here talks to
//! the cluster, so every output is tested byte for byte with a fixed `now`.
//!
//! `oc` lays describe output out with Go's tabwriter padding with tabs to 8-column stops, and tables
//! with kubectl's space-padded one. `align` reproduces both, writing spaces where `oc` writes
//! tabs: the columns are the ones `oc` shows on a terminal, whatever its tab width.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt::Write as _;
use std::ops::Range;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::DynamicObject;

use super::trigger_edit::PodContainers;
use thiserror::Error;

use crate::api::ImageStream;
use crate::api::image::{DockerContainerConfig, DockerImageMetadata, Image};
use crate::api::image_stream::{
    CONDITION_IMPORT_SUCCESS, IMPORT_MODE_PRESERVE_ORIGINAL, KIND_DOCKER_IMAGE,
    KIND_IMAGE_STREAM_IMAGE, KIND_IMAGE_STREAM_TAG, NamedTagEventList, REFERENCE_POLICY_LOCAL,
    TagEvent, TagReference, TagSource,
};
use crate::api::triggers::TRIGGERS_ANNOTATION;
use crate::domain::history::observed_generation;
use crate::domain::image_name::{image_name_for_digest, parse_tag_source_name};
use crate::domain::reference::ImageReference;
use crate::domain::trigger_annotation::{
    ContainerList, ContainerLocation, ImageTrigger, WorkloadKind, decode_annotation,
    locate_containers, parse_annotation,
};

/// What `oc` prints for an empty value.
const NONE: &str = "<none>";

/// The annotation kubectl writes on `kubectl apply`; `kubectl describe` leaves it out (a copy of the
/// whole object), and so do we.
const LAST_APPLIED_ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";

// ---------------------------------------------------------------------------------------------------
// Relative times and sizes
// ---------------------------------------------------------------------------------------------------

/// A duration in the words `oc describe` uses ("Less than a second", "5 minutes", "About an hour",
/// "3 days"): docker's `HumanDuration`, which `oc` uses for every relative time it prints.
pub fn human_duration(elapsed: SignedDuration) -> String {
    let seconds = elapsed.as_secs();
    match seconds {
        ..1 => return "Less than a second".to_owned(),
        1 => return "1 second".to_owned(),
        2..60 => return format!("{seconds} seconds"),
        _ => {}
    }
    let minutes = seconds / 60;
    match minutes {
        1 => return "About a minute".to_owned(),
        2..60 => return format!("{minutes} minutes"),
        _ => {}
    }
    let exact_hours = elapsed.as_secs_f64() / 3600.0;
    // Truncating casts, as Go's int(): hours are rounded to the nearest, years truncated.
    match (exact_hours + 0.5) as i64 {
        1 => "About an hour".to_owned(),
        hours @ ..48 => format!("{hours} hours"),
        hours @ ..336 => format!("{} days", hours / 24),
        hours @ ..1440 => format!("{} weeks", hours / 24 / 7),
        hours @ ..17520 => format!("{} months", hours / 24 / 30),
        _ => format!("{} years", exact_hours as i64 / 24 / 365),
    }
}

/// A duration as kubectl's AGE column shows it (`45s`, `3m20s`, `2h`, `4d`, `2y30d`): apimachinery's
/// `HumanDuration`, about two significant figures.
pub fn short_duration(elapsed: SignedDuration) -> String {
    let seconds = elapsed.as_secs();
    if seconds < -1 {
        return "<invalid>".to_owned();
    }
    if seconds < 0 {
        return "0s".to_owned();
    }
    if seconds < 120 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    let hours = minutes / 60;
    let days = hours / 24;
    let (first, second) = match () {
        _ if minutes < 10 => ((minutes, "m"), (seconds % 60, "s")),
        _ if minutes < 180 => ((minutes, "m"), (0, "")),
        _ if hours < 8 => ((hours, "h"), (minutes % 60, "m")),
        _ if hours < 48 => ((hours, "h"), (0, "")),
        _ if hours < 24 * 8 => ((days, "d"), (hours % 24, "h")),
        _ if hours < 24 * 365 * 2 => ((days, "d"), (0, "")),
        _ if hours < 24 * 365 * 8 => ((days / 365, "y"), (days % 365, "d")),
        _ => ((days / 365, "y"), (0, "")),
    };
    match second {
        (0, _) => format!("{}{}", first.0, first.1),
        _ => format!("{}{}{}{}", first.0, first.1, second.0, second.1),
    }
}

/// How long before `now` the time `then` was, the way `oc describe` prints it: "5 minutes ago".
pub fn time_ago(now: Timestamp, then: &Time) -> String {
    format!("{} ago", human_duration(now.duration_since(then.0)))
}

/// A byte count in decimal units with four significant digits, as `oc` prints image and layer sizes
/// (docker's `HumanSize`): `512B`, `1.5kB`, `29.13MB`.
pub fn human_size(bytes: i64) -> String {
    const UNITS: [&str; 9] = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];
    let mut size = bytes as f64;
    let mut unit = 0;
    while size >= 1000.0 && unit < UNITS.len() - 1 {
        size /= 1000.0;
        unit += 1;
    }
    format!("{}{}", four_significant_digits(size), UNITS[unit])
}

/// Go's `%.4g` for the values [`human_size`] produces (below 10 000): four significant digits,
/// trailing zeros dropped.
fn four_significant_digits(value: f64) -> String {
    if value == 0.0 {
        return "0".to_owned();
    }
    let integer_digits = value.abs().log10().floor() as i64 + 1;
    let decimals = (4 - integer_digits).max(0) as usize;
    let text = format!("{value:.decimals$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        text
    }
}

// ---------------------------------------------------------------------------------------------------
// Layout
// ---------------------------------------------------------------------------------------------------

/// How cells separated by `\t` are padded into columns (Go's tabwriter settings).
#[derive(Debug, Clone, Copy)]
struct Layout {
    /// The narrowest a column gets.
    min_width: usize,
    /// Added to the widest cell of a column.
    padding: usize,
    /// When set, column widths are rounded up to a multiple of it: tab padding.
    tab_stop: Option<usize>,
}

/// `oc describe`: tabwriter(0, 8, 1, '\t').
const DESCRIBE: Layout = Layout {
    min_width: 0,
    padding: 1,
    tab_stop: Some(8),
};

/// kubectl tables: tabwriter(10, 4, 3, ' ').
const TABLE: Layout = Layout {
    min_width: 10,
    padding: 3,
    tab_stop: None,
};

/// Pads `\t`-separated cells into columns with elastic tabstops, as Go's tabwriter does: a column
/// block is a run of consecutive lines that have a cell in that column, and each block is as wide as
/// its widest cell. The text after a line's last `\t` is not part of any column.
fn align(text: &str, layout: Layout) -> String {
    let cells: Vec<Vec<&str>> = text
        .split('\n')
        .map(|line| line.split('\t').collect())
        .collect();
    let mut widths: Vec<Vec<usize>> = cells.iter().map(|line| vec![0; line.len() - 1]).collect();
    column_widths(&cells, 0..cells.len(), 0, layout, &mut widths);
    cells
        .iter()
        .zip(&widths)
        .map(|(line, widths)| {
            let mut padded = String::new();
            for (cell, width) in line.iter().zip(widths) {
                padded.push_str(cell);
                padded.extend(std::iter::repeat_n(' ', width - cell.chars().count()));
            }
            padded.push_str(line[line.len() - 1]);
            padded
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Sets the width of column `column` for every block within `lines`, then of the columns right of it
/// within each block.
fn column_widths(
    cells: &[Vec<&str>],
    lines: Range<usize>,
    column: usize,
    layout: Layout,
    widths: &mut [Vec<usize>],
) {
    let has_cell = |line: usize| column + 1 < cells[line].len();
    let mut line = lines.start;
    while line < lines.end {
        if !has_cell(line) {
            line += 1;
            continue;
        }
        let start = line;
        let mut width = layout.min_width;
        while line < lines.end && has_cell(line) {
            width = width.max(cells[line][column].chars().count() + layout.padding);
            line += 1;
        }
        if let Some(stop) = layout.tab_stop {
            width = width.div_ceil(stop) * stop;
        }
        for block_line in &mut widths[start..line] {
            block_line[column] = width;
        }
        column_widths(cells, start..line, column + 1, layout, widths);
    }
}

/// A table as kubectl prints it: upper-case headers, columns three spaces apart and at least ten
/// wide. Cells are shown with control characters escaped.
pub fn render_table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut text = headers.join("\t");
    text.push('\n');
    for row in rows {
        let cells: Vec<Cow<'_, str>> = row.iter().map(|cell| shown(cell)).collect();
        text.push_str(&cells.join("\t"));
        text.push('\n');
    }
    align(&text, TABLE)
}

/// A value from a user object or a registry as it may appear in the output: control characters
/// (which could move the cursor, or break the columns as a `\t` or `\n`) are escaped.
fn shown(value: &str) -> Cow<'_, str> {
    if !value.chars().any(char::is_control) {
        return Cow::Borrowed(value);
    }
    let mut escaped = String::with_capacity(value.len());
    for c in value.chars() {
        if c.is_control() {
            escaped.extend(c.escape_default());
        } else {
            escaped.push(c);
        }
    }
    Cow::Owned(escaped)
}

/// `Label:\tvalue`, with `<none>` for an empty value.
fn field(out: &mut String, label: &str, value: &str) {
    let value = if value.is_empty() {
        Cow::Borrowed(NONE)
    } else {
        shown(value)
    };
    let _ = writeln!(out, "{label}:\t{value}");
}

/// A field with one value per line, the later lines under the first; `lines` are already escaped
/// and may hold `\t` to make columns of their own.
fn field_lines(out: &mut String, label: &str, lines: &[String]) {
    let Some((first, rest)) = lines.split_first() else {
        return field(out, label, "");
    };
    let _ = writeln!(out, "{label}:\t{first}");
    for line in rest {
        let _ = writeln!(out, "\t{line}");
    }
}

/// A map as sorted `key=value` lines, `<none>` when empty.
fn map_field(out: &mut String, label: &str, map: &BTreeMap<String, String>) {
    let lines: Vec<String> = map
        .iter()
        .map(|(key, value)| format!("{}={}", shown(key), shown(value)))
        .collect();
    field_lines(out, label, &lines);
}

/// `Description` (when the `description` annotation is set) and the other annotations.
fn annotation_fields(out: &mut String, annotations: &BTreeMap<String, String>) {
    let mut remaining = annotations.clone();
    remaining.remove(LAST_APPLIED_ANNOTATION);
    if let Some(description) = remaining.remove("description").filter(|d| !d.is_empty()) {
        field(out, "Description", &description);
    }
    map_field(out, "Annotations", &remaining);
}

// ---------------------------------------------------------------------------------------------------
// Tag order
// ---------------------------------------------------------------------------------------------------

/// The order `oc` lists tags in: `latest` first; then minor versions (`5.1`, `v5.1`, `5.1-rc1`),
/// newest first; then full semantic versions (`5.1.3`, `v5.1.3-beta.1`), newest first; then every
/// other tag alphabetically. Of two tags for the same version, the one without `v` comes first.
pub fn prioritize_tags(tags: &mut [String]) {
    tags.sort_by(|a, b| compare_tags(a, b));
}

/// The classes of [`prioritize_tags`], in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum TagClass {
    Latest,
    Minor,
    Full,
    Other,
}

fn compare_tags(a: &str, b: &str) -> Ordering {
    let (class_a, version_a, prefix_a) = classify_tag(a);
    let (class_b, version_b, prefix_b) = classify_tag(b);
    class_a
        .cmp(&class_b)
        .then_with(|| match (version_a, version_b) {
            (Some(version_a), Some(version_b)) => {
                version_b.cmp(&version_a).then(prefix_a.cmp(prefix_b))
            }
            _ => a.cmp(b),
        })
}

/// The class of a tag, its version for the version classes, and its `v` prefix.
fn classify_tag(tag: &str) -> (TagClass, Option<SemVer>, &str) {
    if tag == "latest" {
        return (TagClass::Latest, None, "");
    }
    let (prefix, short) = match tag.strip_prefix('v') {
        Some(short) => ("v", short),
        None => ("", tag),
    };
    if let Some(version) = SemVer::parse(short) {
        return (TagClass::Full, Some(version), prefix);
    }
    let minor = match short.split_once('-') {
        None if is_minor_version(short) => SemVer::parse(&format!("{short}.0")),
        Some((numbers, suffix))
            if is_minor_version(numbers)
                && !suffix.is_empty()
                && suffix
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_') =>
        {
            SemVer::parse(&format!("{numbers}.0-{suffix}"))
        }
        _ => None,
    };
    match minor {
        Some(version) => (TagClass::Minor, Some(version), prefix),
        None => (TagClass::Other, None, prefix),
    }
}

/// `<digits>.<digits>`.
fn is_minor_version(text: &str) -> bool {
    let digits = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
    text.split_once('.')
        .is_some_and(|(major, minor)| digits(major) && digits(minor))
}

/// A semantic version (semver 2.0.0, strict: no leading zeros, no missing parts), ordered by
/// precedence; build metadata is checked and then ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SemVer {
    core: [u64; 3],
    pre_release: Vec<PreRelease>,
}

/// One dot-separated identifier of a pre-release; numeric identifiers sort before alphanumeric ones.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum PreRelease {
    Numeric(u64),
    Alphanumeric(String),
}

impl SemVer {
    fn parse(text: &str) -> Option<Self> {
        let mut parts = text.splitn(3, '.');
        let major = numeric_identifier(parts.next()?)?;
        let minor = numeric_identifier(parts.next()?)?;
        let mut rest = parts.next()?;
        if let Some((before, build)) = rest.split_once('+') {
            if !build.split('.').all(is_alphanumeric_identifier) {
                return None;
            }
            rest = before;
        }
        let (patch, pre_release) = match rest.split_once('-') {
            Some((patch, pre)) => (
                patch,
                pre.split('.').map(pre_release).collect::<Option<_>>()?,
            ),
            None => (rest, Vec::new()),
        };
        Some(Self {
            core: [major, minor, numeric_identifier(patch)?],
            pre_release,
        })
    }
}

impl Ord for SemVer {
    fn cmp(&self, other: &Self) -> Ordering {
        self.core.cmp(&other.core).then_with(|| {
            match (self.pre_release.is_empty(), other.pre_release.is_empty()) {
                (true, true) => Ordering::Equal,
                (true, false) => Ordering::Greater,
                (false, true) => Ordering::Less,
                (false, false) => self.pre_release.cmp(&other.pre_release),
            }
        })
    }
}

impl PartialOrd for SemVer {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

fn numeric_identifier(text: &str) -> Option<u64> {
    let digits = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    let leading_zero = text.len() > 1 && text.starts_with('0');
    if digits && !leading_zero {
        text.parse().ok()
    } else {
        None
    }
}

fn is_alphanumeric_identifier(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

fn pre_release(text: &str) -> Option<PreRelease> {
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return numeric_identifier(text).map(PreRelease::Numeric);
    }
    is_alphanumeric_identifier(text).then(|| PreRelease::Alphanumeric(text.to_owned()))
}

/// Every tag of a stream, from its status and its spec, in [`prioritize_tags`] order.
fn stream_tags(stream: &ImageStream) -> Vec<String> {
    let status_tags = stream.status.iter().flat_map(|status| &status.tags);
    let mut tags: Vec<String> = status_tags.map(|entry| entry.tag.clone()).collect();
    for spec in &stream.spec.tags {
        if !tags.contains(&spec.name) {
            tags.push(spec.name.clone());
        }
    }
    prioritize_tags(&mut tags);
    tags
}

// ---------------------------------------------------------------------------------------------------
// Names and current images
// ---------------------------------------------------------------------------------------------------

// ImageStreamTag names are split where every reader of them splits them.
pub use crate::domain::image_name::{ImageStreamTagNameError, parse_image_stream_tag_name};

/// Why a tag has no image to describe.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TagImageProblem {
    /// The stream has the tag neither in its spec nor in its status.
    #[error("the image stream has no tag {tag:?}")]
    NoSuchTag {
        /// The tag asked for.
        tag: String,
    },
    /// The tag exists but has no imported image: never imported yet, every import failed, or a
    /// `reference: true` tag, which records no digest.
    #[error("tag {tag:?} has no image yet{}", last_failure.as_ref().map(|f| format!("; {f}")).unwrap_or_default())]
    NoImage {
        /// The tag asked for.
        tag: String,
        /// `Import failed (<reason>): <message>` when the tag's last import failed.
        last_failure: Option<String>,
    },
}

/// The current event of `tag` when it has an image (a digest), as an ImageStreamTag needs.
pub fn current_tag_image<'a>(
    stream: &'a ImageStream,
    tag: &str,
) -> Result<&'a TagEvent, TagImageProblem> {
    let status = stream.status.as_ref().and_then(|status| status.tag(tag));
    if status.is_none() && stream.spec.tag(tag).is_none() {
        return Err(TagImageProblem::NoSuchTag {
            tag: tag.to_owned(),
        });
    }
    status
        .and_then(NamedTagEventList::current)
        .filter(|event| !event.image.is_empty())
        .ok_or_else(|| TagImageProblem::NoImage {
            tag: tag.to_owned(),
            last_failure: status.and_then(import_failure),
        })
}

/// `Import failed (<reason>): <message>` for a tag whose last import failed.
fn import_failure(status: &NamedTagEventList) -> Option<String> {
    status
        .conditions
        .iter()
        .find(|c| c.type_ == CONDITION_IMPORT_SUCCESS && c.status == "False")
        .map(|c| {
            format!(
                "Import failed ({}): {}",
                shown(c.reason.as_deref().unwrap_or_default()),
                shown(c.message.as_deref().unwrap_or_default())
            )
        })
}

/// The pull spec consumers of the tag get for `event`, as an ImageStreamTag reports it: with the
/// `Local` reference policy, the stream's internal repository `@digest` when the status has one;
/// otherwise the recorded reference.
fn resolved_reference(
    stream: &ImageStream,
    spec: Option<&TagReference>,
    event: &TagEvent,
) -> String {
    let local = spec.is_some_and(|tag| tag.reference_policy_type() == REFERENCE_POLICY_LOCAL);
    let repository = stream
        .status
        .as_ref()
        .and_then(|status| status.docker_image_repository.as_deref())
        .filter(|repository| !repository.is_empty());
    match repository {
        Some(repository) if local && !event.image.is_empty() => {
            format!("{repository}@{}", event.image)
        }
        _ => event.docker_image_reference.clone(),
    }
}

// ---------------------------------------------------------------------------------------------------
// Workloads with triggers
// ---------------------------------------------------------------------------------------------------

/// A workload that carries the `image.openshift.io/triggers` annotation, with what `describe` needs
/// to tell which of its containers follow which tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TriggeringWorkload {
    /// Its kind.
    pub kind: WorkloadKind,
    /// Its name.
    pub name: String,
    /// Its namespace, where triggers without `from.namespace` look for their stream.
    pub namespace: String,
    /// The annotation value.
    pub annotation: String,
    /// The names of its pod spec's `containers`, in order.
    pub containers: Vec<String>,
    /// The names of its pod spec's `initContainers`, in order.
    pub init_containers: Vec<String>,
}

/// The workload an object of kind `kind` is, when it carries the trigger annotation.
pub fn triggering_workload(
    kind: WorkloadKind,
    object: &DynamicObject,
) -> Option<TriggeringWorkload> {
    let annotation = object
        .metadata
        .annotations
        .as_ref()?
        .get(TRIGGERS_ANNOTATION)?;
    let pod = PodContainers::of(kind, &object.data);
    Some(TriggeringWorkload {
        kind,
        name: object.metadata.name.clone().unwrap_or_default(),
        namespace: object.metadata.namespace.clone().unwrap_or_default(),
        annotation: annotation.clone(),
        containers: pod.containers,
        init_containers: pod.init_containers,
    })
}

/// How a workload uses a tag, as one line of the tag's block: `deployment/web (container app)`.
/// A workload whose annotation the operator rejects is listed when the annotation names the tag,
/// marked as ignored.
fn trigger_use(
    workload: &TriggeringWorkload,
    namespace: &str,
    stream: &str,
    tag: &str,
) -> Option<String> {
    let workload_ref = format!(
        "{}/{}",
        workload.kind.kind().to_lowercase(),
        shown(&workload.name)
    );
    match located_triggers(workload) {
        Ok(located) => {
            let containers: Vec<String> = located
                .iter()
                .filter(|(t, _)| t.namespace == namespace && t.stream == stream && t.tag == tag)
                .map(|(trigger, location)| container_label(workload, trigger, *location))
                .collect();
            (!containers.is_empty()).then(|| format!("{workload_ref} ({})", containers.join("; ")))
        }
        Err(reason) => names_tag(workload, namespace, stream, tag).then(|| {
            format!("{workload_ref} (ignored: its trigger annotation is invalid, {reason})")
        }),
    }
}

/// The triggers of a workload with the container each one writes, or the reason the operator
/// rejects the annotation.
fn located_triggers(
    workload: &TriggeringWorkload,
) -> Result<Vec<(ImageTrigger, ContainerLocation)>, &'static str> {
    let triggers = parse_annotation(&workload.annotation, workload.kind, &workload.namespace)
        .map_err(|error| error.reason())?;
    let locations = locate_containers(&triggers, &workload.containers, &workload.init_containers)
        .map_err(|error| error.reason())?;
    Ok(triggers.into_iter().zip(locations).collect())
}

/// Whether any entry of a rejected annotation names `namespace/stream:tag`.
fn names_tag(workload: &TriggeringWorkload, namespace: &str, stream: &str, tag: &str) -> bool {
    let target = format!("{stream}:{tag}");
    decode_annotation(&workload.annotation).is_ok_and(|entries| {
        entries.iter().any(|entry| {
            let entry_namespace = entry
                .from
                .namespace
                .as_deref()
                .unwrap_or(&workload.namespace);
            entry.from.name == target && entry_namespace == namespace
        })
    })
}

/// `container app`, `init container migrate`, with `, paused` for a paused trigger.
fn container_label(
    workload: &TriggeringWorkload,
    trigger: &ImageTrigger,
    location: ContainerLocation,
) -> String {
    let (names, kind) = match location.list {
        ContainerList::Containers => (&workload.containers, "container"),
        ContainerList::InitContainers => (&workload.init_containers, "init container"),
    };
    let name = names
        .get(location.index)
        .map(String::as_str)
        .unwrap_or_default();
    let paused = if trigger.paused { ", paused" } else { "" };
    format!("{kind} {}{paused}", shown(name))
}

// ---------------------------------------------------------------------------------------------------
// describe imagestream
// ---------------------------------------------------------------------------------------------------

/// `describe imagestream`: the stream's metadata, repository and lookup policy, then every tag (spec
/// and status) in `oc`'s order with what it tracks, its import errors, its history newest first, and
/// the `workloads` (of the stream's namespace) whose triggers follow it.
///
/// As `oc`, tags that are aliases of another tag of the same stream are folded into that tag's
/// heading (`latest (stable, prod)`); their triggers are listed under it, marked `via <alias>`.
pub fn describe_image_stream(
    stream: &ImageStream,
    workloads: &[TriggeringWorkload],
    now: Timestamp,
) -> String {
    let mut out = String::new();
    write_object_meta(&mut out, &stream.metadata, now);
    field(&mut out, "Image Repository", stream_repository(stream));
    let local = stream
        .spec
        .lookup_policy
        .as_ref()
        .is_some_and(|policy| policy.local);
    field(&mut out, "Image Lookup", &format!("local={local}"));
    write_tags(&mut out, stream, workloads, now);
    align(&out, DESCRIBE)
}

fn write_object_meta(out: &mut String, meta: &ObjectMeta, now: Timestamp) {
    field(out, "Name", meta.name.as_deref().unwrap_or_default());
    if let Some(namespace) = meta.namespace.as_deref().filter(|ns| !ns.is_empty()) {
        field(out, "Namespace", namespace);
    }
    if let Some(created) = &meta.creation_timestamp {
        field(out, "Created", &time_ago(now, created));
    }
    map_field(out, "Labels", &meta.labels.clone().unwrap_or_default());
    annotation_fields(out, &meta.annotations.clone().unwrap_or_default());
}

/// The public repository when there is one, else the internal one.
fn stream_repository(stream: &ImageStream) -> &str {
    let status = stream.status.as_ref();
    let public = status.and_then(|s| s.public_docker_image_repository.as_deref());
    let internal = status.and_then(|s| s.docker_image_repository.as_deref());
    public
        .filter(|repository| !repository.is_empty())
        .or(internal)
        .unwrap_or_default()
}

fn write_tags(
    out: &mut String,
    stream: &ImageStream,
    workloads: &[TriggeringWorkload],
    now: Timestamp,
) {
    let tags = stream_tags(stream);
    if tags.is_empty() {
        out.push_str("Tags:\t<none>\n");
        return;
    }
    let _ = write!(
        out,
        "Unique Images:\t{}\nTags:\t{}\n\n",
        unique_images(stream),
        tags.len()
    );
    let aliases = same_stream_aliases(stream);
    let alias_tags: BTreeSet<&String> = aliases.values().flatten().collect();
    let printed = tags.iter().filter(|tag| !alias_tags.contains(tag));
    for (index, tag) in printed.enumerate() {
        if index > 0 {
            out.push('\n');
        }
        let tag_aliases = aliases.get(tag).map(Vec::as_slice).unwrap_or_default();
        write_tag(out, stream, tag, tag_aliases, workloads, now);
    }
}

/// How many distinct images the history of all tags holds (by digest, or by reference for events
/// without one).
fn unique_images(stream: &ImageStream) -> usize {
    let events = stream
        .status
        .iter()
        .flat_map(|status| &status.tags)
        .flat_map(|tag| &tag.items);
    events
        .filter_map(
            |event| match (&event.image, &event.docker_image_reference) {
                (image, _) if !image.is_empty() => Some(image),
                (_, reference) if !reference.is_empty() => Some(reference),
                _ => None,
            },
        )
        .collect::<HashSet<_>>()
        .len()
}

/// The spec tags that follow another tag of this stream, directly or through other aliases, grouped
/// by the tag at the end of the chain (in [`prioritize_tags`] order).
fn same_stream_aliases(stream: &ImageStream) -> BTreeMap<String, Vec<String>> {
    let mut aliases: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for tag in &stream.spec.tags {
        if let Some(target) = alias_target(stream, &tag.name) {
            aliases.entry(target).or_default().push(tag.name.clone());
        }
    }
    for names in aliases.values_mut() {
        prioritize_tags(names);
    }
    aliases
}

/// The tag a chain of same-stream `ImageStreamTag` references starting at `tag` ends at, when `tag`
/// is such a reference and the chain ends at a spec tag of another kind. Cycles, missing tags and
/// references to other streams end nowhere.
fn alias_target(stream: &ImageStream, tag: &str) -> Option<String> {
    let own_namespace = stream.metadata.namespace.as_deref().unwrap_or_default();
    let own_name = stream.metadata.name.as_deref().unwrap_or_default();
    let mut seen = BTreeSet::new();
    let mut current = tag.to_owned();
    loop {
        if !seen.insert(current.clone()) {
            return None;
        }
        let spec = stream.spec.tag(&current)?;
        let from = match &spec.from {
            Some(from) if from.kind.as_deref() == Some(KIND_IMAGE_STREAM_TAG) => from,
            _ => return (current != tag).then_some(current),
        };
        if from
            .namespace
            .as_deref()
            .is_some_and(|ns| !ns.is_empty() && ns != own_namespace)
        {
            return None;
        }
        let name = from.name.as_deref().unwrap_or_default();
        current = match parse_tag_source_name(name) {
            Ok((Some(stream_name), _)) if stream_name != own_name => return None,
            Ok((_, next)) => next.to_owned(),
            Err(_) => return None,
        };
    }
}

fn write_tag(
    out: &mut String,
    stream: &ImageStream,
    tag: &str,
    aliases: &[String],
    workloads: &[TriggeringWorkload],
    now: Timestamp,
) {
    let spec = stream.spec.tag(tag);
    let status = stream.status.as_ref().and_then(|status| status.tag(tag));
    if aliases.is_empty() {
        let _ = writeln!(out, "{}", shown(tag));
    } else {
        let _ = writeln!(out, "{} ({})", shown(tag), shown(&aliases.join(", ")));
    }
    write_tag_source(out, stream, spec);
    write_tag_triggers(out, stream, tag, aliases, workloads);
    out.push('\n');
    write_tag_annotations(out, spec);
    if import_pending(stream, spec, status) {
        out.push_str("  ~ importing latest image ...\n");
    }
    if let Some(status) = status {
        write_tag_conditions(out, status, now);
        write_history(out, status, now);
    }
}

/// What the tag tracks, and the policy lines under it.
fn write_tag_source(out: &mut String, stream: &ImageStream, spec: Option<&TagReference>) {
    let Some(spec) = spec else {
        out.push_str("  no spec tag\n");
        return;
    };
    let Some(from) = &spec.from else {
        out.push_str("  tag without source image\n");
        write_reference_policy(out, spec);
        return;
    };
    let name = source_name(stream, from);
    let kind = from.kind.as_deref().unwrap_or_default();
    let line = match kind {
        KIND_IMAGE_STREAM_TAG if spec.is_reference() => format!("reference to {name}"),
        KIND_IMAGE_STREAM_TAG if spec.is_scheduled() => {
            format!("updates automatically from {name}")
        }
        KIND_DOCKER_IMAGE if spec.is_reference() => format!("reference to registry {name}"),
        KIND_DOCKER_IMAGE if spec.is_scheduled() => {
            format!("updates automatically from registry {name}")
        }
        KIND_IMAGE_STREAM_IMAGE if spec.is_reference() => format!("reference to image {name}"),
        KIND_IMAGE_STREAM_TAG | KIND_DOCKER_IMAGE | KIND_IMAGE_STREAM_IMAGE => {
            format!("tagged from {name}")
        }
        other if spec.is_reference() => format!("reference to {} {name}", shown(other)),
        other => format!("updates from {} {name}", shown(other)),
    };
    let _ = writeln!(out, "  {line}");
    if spec.is_insecure() {
        out.push_str("    will use insecure HTTPS or HTTP connections\n");
    }
    write_reference_policy(out, spec);
    if spec.import_mode() == IMPORT_MODE_PRESERVE_ORIGINAL {
        out.push_str("    keeps manifest lists whole (importMode PreserveOriginal)\n");
    }
}

fn write_reference_policy(out: &mut String, spec: &TagReference) {
    if spec.reference_policy_type() == REFERENCE_POLICY_LOCAL {
        out.push_str("    prefer registry pullthrough when referencing this tag\n");
    }
}

/// `from.name`, with `<namespace>/` in front when it is another namespace.
fn source_name<'a>(stream: &ImageStream, from: &'a TagSource) -> Cow<'a, str> {
    let name = shown(from.name.as_deref().unwrap_or_default());
    match from.namespace.as_deref() {
        Some(namespace)
            if !namespace.is_empty() && Some(namespace) != stream.metadata.namespace.as_deref() =>
        {
            Cow::Owned(format!("{}/{name}", shown(namespace)))
        }
        _ => name,
    }
}

/// One `triggers <workload> (<containers>)` line per workload following the tag or one of its
/// aliases.
fn write_tag_triggers(
    out: &mut String,
    stream: &ImageStream,
    tag: &str,
    aliases: &[String],
    workloads: &[TriggeringWorkload],
) {
    let namespace = stream.metadata.namespace.as_deref().unwrap_or_default();
    let name = stream.metadata.name.as_deref().unwrap_or_default();
    let via = |alias: &str| format!(" via {}", shown(alias));
    let followed = std::iter::once((tag, String::new()))
        .chain(aliases.iter().map(|alias| (alias.as_str(), via(alias))));
    for (followed_tag, suffix) in followed {
        for workload in workloads {
            if let Some(line) = trigger_use(workload, namespace, name, followed_tag) {
                let _ = writeln!(out, "  triggers {line}{suffix}");
            }
        }
    }
}

/// The tag annotations `oc` shows: description, tags, supports and sample repository.
fn write_tag_annotations(out: &mut String, spec: Option<&TagReference>) {
    let Some(annotations) = spec.map(|spec| &spec.annotations) else {
        return;
    };
    let listed = |value: &str| shown(value).split(',').collect::<Vec<_>>().join(", ");
    let mut lines = Vec::new();
    if let Some(description) = annotations.get("description").filter(|v| !v.is_empty()) {
        lines.push(format!("  {}", shown(description)));
    }
    if let Some(tags) = annotations.get("tags").filter(|v| !v.is_empty()) {
        lines.push(format!("  Tags: {}", listed(tags)));
    }
    if let Some(supports) = annotations.get("supports").filter(|v| !v.is_empty()) {
        lines.push(format!("  Supports: {}", listed(supports)));
    }
    if let Some(sample) = annotations.get("sampleRepo").filter(|v| !v.is_empty()) {
        lines.push(format!("  Example Repo: {}", shown(sample)));
    }
    if !lines.is_empty() {
        let _ = writeln!(out, "{}\n", lines.join("\n"));
    }
}

/// Whether the operator has yet to import the tag for the stream's current spec: a tag with a
/// source, not `reference: true`, processed for no generation or an older one.
fn import_pending(
    stream: &ImageStream,
    spec: Option<&TagReference>,
    status: Option<&NamedTagEventList>,
) -> bool {
    let importable = spec.is_some_and(|spec| spec.from.is_some() && !spec.is_reference());
    let generation = stream.metadata.generation.unwrap_or_default();
    importable && observed_generation(status).is_none_or(|seen| generation > seen)
}

fn write_tag_conditions(out: &mut String, status: &NamedTagEventList, now: Timestamp) {
    let failed = status
        .conditions
        .iter()
        .filter(|c| c.type_ == CONDITION_IMPORT_SUCCESS && c.status == "False");
    for condition in failed {
        let _ = writeln!(
            out,
            "  ! error: Import failed ({}): {}",
            shown(condition.reason.as_deref().unwrap_or_default()),
            shown(condition.message.as_deref().unwrap_or_default())
        );
        if let Some(since) = &condition.last_transition_time {
            let _ = writeln!(out, "      {}", time_ago(now, since));
        }
    }
}

/// The tag's history, newest first: `*` marks the current image; the digest is added when the
/// reference does not name it.
fn write_history(out: &mut String, status: &NamedTagEventList, now: Timestamp) {
    for (index, event) in status.items.iter().enumerate() {
        let marker = if index == 0 { '*' } else { ' ' };
        let _ = writeln!(out, "  {marker} {}", shown(&event.docker_image_reference));
        let when = time_ago(now, &event.created);
        let digest_elsewhere = !event.image.is_empty()
            && ImageReference::parse(&event.docker_image_reference)
                .is_ok_and(|reference| reference.digest() != Some(event.image.as_str()));
        if digest_elsewhere {
            let _ = writeln!(out, "      {when}\t{}", shown(&event.image));
        } else {
            let _ = writeln!(out, "      {when}");
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// describe istag
// ---------------------------------------------------------------------------------------------------

/// `describe istag <stream>:<tag>`: the tag's current image as `oc` describes it — digest,
/// reference, the Image object's size and layers, creation, author, platform and container
/// configuration — then, beyond `oc`, the tag's history. `image` is the Image object for the current
/// digest; without one only what the tag records is shown.
pub fn describe_image_stream_tag(
    stream: &ImageStream,
    tag: &str,
    image: Option<&Image>,
    now: Timestamp,
) -> Result<String, TagImageProblem> {
    let event = current_tag_image(stream, tag)?;
    let spec = stream.spec.tag(tag);
    let mut out = String::new();
    field(&mut out, "Image Name", &event.image);
    field(
        &mut out,
        "Docker Image",
        &resolved_reference(stream, spec, event),
    );
    match image {
        Some(image) => write_image(&mut out, image, spec, now),
        None => {
            field(&mut out, "Created", &time_ago(now, &event.created));
            let name = image_name_for_digest(&event.image).unwrap_or_default();
            field(
                &mut out,
                "Image Metadata",
                &format!("<none>: no Image object {name} exists"),
            );
        }
    }
    if let Some(status) = stream.status.as_ref().and_then(|status| status.tag(tag)) {
        out.push_str("\nHistory:\n");
        write_history(&mut out, status, now);
    }
    Ok(align(&out, DESCRIBE))
}

/// The Image object, as `oc describe image` prints it; the tag's annotations are shown with the
/// Image's, as an ImageStreamTag carries them.
fn write_image(out: &mut String, image: &Image, spec: Option<&TagReference>, now: Timestamp) {
    field(
        out,
        "Name",
        image.metadata.name.as_deref().unwrap_or_default(),
    );
    if let Some(created) = &image.metadata.creation_timestamp {
        field(out, "Created", &time_ago(now, created));
    }
    if let Some(labels) = image.metadata.labels.as_ref().filter(|l| !l.is_empty()) {
        map_field(out, "Labels", labels);
    }
    let mut annotations = image.metadata.annotations.clone().unwrap_or_default();
    annotations.extend(spec.into_iter().flat_map(|spec| spec.annotations.clone()));
    if !annotations.is_empty() {
        annotation_fields(out, &annotations);
    }
    let metadata = image.docker_image_metadata.clone().unwrap_or_default();
    write_size(out, image, &metadata);
    let created = metadata
        .created
        .as_ref()
        .map(|created| time_ago(now, created));
    field(out, "Image Created", &created.unwrap_or_default());
    field(
        out,
        "Author",
        metadata.author.as_deref().unwrap_or_default(),
    );
    field(
        out,
        "Arch",
        metadata.architecture.as_deref().unwrap_or_default(),
    );
    field(out, "OS", metadata.os.as_deref().unwrap_or_default());
    write_manifests(out, image);
    write_container_config(out, &metadata.config.unwrap_or_default());
}

/// `Image Size: <total> in <n> layers` and one line per layer, base first.
fn write_size(out: &mut String, image: &Image, metadata: &DockerImageMetadata) {
    let layers = &image.docker_image_layers;
    // Images are written by anyone allowed to create them: a negative size, or layer sizes whose
    // sum overflows, show as unknown.
    let size = metadata
        .size
        .or_else(|| {
            layers
                .iter()
                .try_fold(0i64, |total, layer| total.checked_add(layer.size))
        })
        .filter(|size| *size >= 0)
        .map_or_else(|| "unknown".to_owned(), human_size);
    if layers.is_empty() {
        field(out, "Layer Size", &size);
        return;
    }
    let summary = format!("{size} in {} layers", layers.len());
    field(out, "Image Size", &summary);
    let lines: Vec<String> = layers
        .iter()
        .map(|layer| format!("{}\t{}", human_size(layer.size), shown(&layer.name)))
        .collect();
    field_lines(out, "Layers", &lines);
}

/// The children of a manifest list, `os/arch[/variant]` and digest.
fn write_manifests(out: &mut String, image: &Image) {
    if image.docker_image_manifests.is_empty() {
        return;
    }
    let lines: Vec<String> = image
        .docker_image_manifests
        .iter()
        .map(|child| {
            let variant = child
                .variant
                .as_deref()
                .map(|v| format!("/{v}"))
                .unwrap_or_default();
            let platform = format!("{}/{}{variant}", child.os, child.architecture);
            format!("{}\t{}", shown(&platform), shown(&child.digest))
        })
        .collect();
    field_lines(out, "Manifests", &lines);
}

fn write_container_config(out: &mut String, config: &DockerContainerConfig) {
    if !config.entrypoint.is_empty() {
        field(out, "Entrypoint", &config.entrypoint.join(" "));
    }
    if !config.cmd.is_empty() || config.entrypoint.is_empty() {
        field(out, "Command", &config.cmd.join(" "));
    }
    field(
        out,
        "Working Dir",
        config.working_dir.as_deref().unwrap_or_default(),
    );
    field(out, "User", config.user.as_deref().unwrap_or_default());
    let ports: Vec<&str> = config.exposed_ports.keys().map(String::as_str).collect();
    field(out, "Exposes Ports", &ports.join(", "));
    map_field(out, "Docker Labels", &config.labels);
    if !config.env.is_empty() {
        let env: Vec<String> = config.env.iter().map(|v| shown(v).into_owned()).collect();
        field_lines(out, "Environment", &env);
    }
    if !config.volumes.is_empty() {
        let volumes: Vec<String> = config
            .volumes
            .keys()
            .map(|v| shown(v).into_owned())
            .collect();
        field_lines(out, "Volumes", &volumes);
    }
}

// ---------------------------------------------------------------------------------------------------
// get istag
// ---------------------------------------------------------------------------------------------------

/// `get istag`: one row per tag of every stream, streams by namespace and name, tags in `oc`'s
/// order: `NAME  IMAGE REFERENCE  UPDATED`, with a leading `NAMESPACE` column when `namespace` is
/// `None` (all namespaces). `UPDATED` is the current image's age in `oc`'s words ("5 minutes ago").
///
/// Unlike OpenShift, which lists only tags with an image, tags without one (never imported, failing,
/// `reference: true`) are listed too, with `<none>`. Without any tag, the text is kubectl's
/// "No resources found" line.
pub fn image_stream_tag_table(
    streams: &[ImageStream],
    namespace: Option<&str>,
    now: Timestamp,
) -> String {
    let mut sorted: Vec<&ImageStream> = streams.iter().collect();
    sorted.sort_by_key(|stream| {
        (
            stream.metadata.namespace.clone(),
            stream.metadata.name.clone(),
        )
    });
    let rows: Vec<Vec<String>> = sorted
        .into_iter()
        .flat_map(|stream| {
            stream_tags(stream)
                .into_iter()
                .map(move |tag| image_stream_tag_row(stream, &tag, namespace.is_none(), now))
        })
        .collect();
    match (rows.is_empty(), namespace) {
        (true, Some(namespace)) => {
            format!("No resources found in {} namespace.\n", shown(namespace))
        }
        (true, None) => "No resources found\n".to_owned(),
        (false, Some(_)) => render_table(&["NAME", "IMAGE REFERENCE", "UPDATED"], &rows),
        (false, None) => render_table(&["NAMESPACE", "NAME", "IMAGE REFERENCE", "UPDATED"], &rows),
    }
}

fn image_stream_tag_row(
    stream: &ImageStream,
    tag: &str,
    with_namespace: bool,
    now: Timestamp,
) -> Vec<String> {
    let current = stream
        .status
        .as_ref()
        .and_then(|status| status.tag(tag))
        .and_then(NamedTagEventList::current);
    let (reference, updated) = match current {
        Some(event) => (
            resolved_reference(stream, stream.spec.tag(tag), event),
            time_ago(now, &event.created),
        ),
        None => (NONE.to_owned(), NONE.to_owned()),
    };
    let name = format!(
        "{}:{tag}",
        stream.metadata.name.as_deref().unwrap_or_default()
    );
    let mut row = Vec::with_capacity(4);
    if with_namespace {
        row.push(stream.metadata.namespace.clone().unwrap_or_default());
    }
    row.extend([name, reference, updated]);
    row
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;
    use serde_json::json;

    const NOW: &str = "2024-03-02T12:00:00Z";
    const A: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    fn now() -> Timestamp {
        NOW.parse().unwrap()
    }

    fn secs(seconds: i64) -> SignedDuration {
        SignedDuration::from_secs(seconds)
    }

    /// A stream as a user applies it and the operator fills it: `v1` imported twice and followed
    /// by `stable`, `broken` failing, `1.0` scheduled and not imported yet.
    fn stream() -> ImageStream {
        serde_json::from_value(json!({
            "apiVersion": "image.openshift.io/v1",
            "kind": "ImageStream",
            "metadata": {
                "name": "app",
                "namespace": "shop",
                "generation": 3,
                "creationTimestamp": "2024-03-02T11:55:00Z",
                "labels": {"team": "web", "app": "shop"},
                "annotations": {"description": "The shop front end", "owner": "web-team"},
            },
            "spec": {
                "lookupPolicy": {"local": true},
                "tags": [
                    {"name": "v1", "from": {"kind": "DockerImage", "name": "quay.io/shop/app:v1"},
                     "importPolicy": {"insecure": true},
                     "annotations": {"description": "Stable line", "tags": "web,shop"}},
                    {"name": "broken", "from": {"kind": "DockerImage", "name": "quay.io/shop/gone:v1"}},
                    {"name": "stable", "from": {"kind": "ImageStreamTag", "name": "v1"}},
                    {"name": "1.0", "from": {"kind": "DockerImage", "name": "quay.io/shop/app:1.0"},
                     "importPolicy": {"scheduled": true}, "referencePolicy": {"type": "Local"}},
                ],
            },
            "status": {
                "dockerImageRepository": "registry.local/shop/app",
                "tags": [
                    {"tag": "broken", "conditions": [{
                        "type": "ImportSuccess", "status": "False", "reason": "NotFound",
                        "message": "quay.io/shop/gone:v1: manifest unknown",
                        "lastTransitionTime": "2024-03-02T11:58:00Z", "generation": 3}]},
                    {"tag": "stable", "items": [
                        {"created": "2024-03-02T10:00:00Z", "dockerImageReference": format!("quay.io/shop/app@{B}"),
                         "image": B, "generation": 3}]},
                    {"tag": "v1", "items": [
                        {"created": "2024-03-02T10:00:00Z", "dockerImageReference": format!("quay.io/shop/app@{B}"),
                         "image": B, "generation": 3},
                        {"created": "2024-02-28T12:00:00Z", "dockerImageReference": format!("quay.io/shop/app@{A}"),
                         "image": A, "generation": 1}]},
                ],
            },
        }))
        .unwrap()
    }

    fn workload(kind: WorkloadKind, name: &str, triggers: serde_json::Value) -> TriggeringWorkload {
        TriggeringWorkload {
            kind,
            name: name.into(),
            namespace: "shop".into(),
            annotation: triggers.to_string(),
            containers: vec!["app".into(), "sidecar".into()],
            init_containers: vec!["migrate".into()],
        }
    }

    fn trigger(name: &str, field_path: &str) -> serde_json::Value {
        json!({"from": {"kind": "ImageStreamTag", "name": name}, "fieldPath": field_path})
    }

    fn image() -> Image {
        serde_json::from_value(json!({
            "apiVersion": "image.openshift.io/v1",
            "kind": "Image",
            "metadata": {"name": format!("sha256.{}", &B[7..]), "creationTimestamp": "2024-03-02T10:00:01Z"},
            "dockerImageReference": format!("quay.io/shop/app@{B}"),
            "dockerImageMetadata": {
                "Created": "2024-02-14T19:47:11Z",
                "Author": "Shop Team",
                "Architecture": "amd64",
                "Os": "linux",
                "Size": 70_412_531,
                "Config": {
                    "User": "101",
                    "ExposedPorts": {"80/tcp": {}, "443/tcp": {}},
                    "Env": ["PATH=/usr/bin:/bin", "MODE=prod"],
                    "Entrypoint": ["/docker-entrypoint.sh"],
                    "Cmd": ["nginx", "-g", "daemon off;"],
                    "WorkingDir": "/srv",
                    "Labels": {"maintainer": "shop@example.com"},
                },
            },
            "dockerImageLayers": [
                {"name": format!("sha256:{}", "1".repeat(64)), "size": 29_126_484, "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip"},
                {"name": format!("sha256:{}", "2".repeat(64)), "size": 41_286_047, "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip"},
            ],
        }))
        .unwrap()
    }

    #[test]
    fn an_image_whose_layer_sizes_overflow_shows_an_unknown_size_instead_of_panicking() {
        let mut crafted = image();
        crafted.docker_image_metadata.as_mut().unwrap().size = None;
        for layer in &mut crafted.docker_image_layers {
            layer.size = 1 << 62;
        }
        crafted
            .docker_image_layers
            .push(crafted.docker_image_layers[0].clone());
        let mut out = String::new();
        write_size(
            &mut out,
            &crafted,
            crafted.docker_image_metadata.as_ref().unwrap(),
        );
        assert!(out.contains("unknown in 3 layers"), "{out}");

        crafted.docker_image_metadata.as_mut().unwrap().size = Some(-5);
        let mut out = String::new();
        write_size(
            &mut out,
            &crafted,
            crafted.docker_image_metadata.as_ref().unwrap(),
        );
        assert!(out.contains("unknown in 3 layers"), "{out}");
    }

    #[test]
    fn durations_read_as_oc_describe_words_them() {
        let cases = [
            (-5, "Less than a second"),
            (0, "Less than a second"),
            (1, "1 second"),
            (59, "59 seconds"),
            (60, "About a minute"),
            (119, "About a minute"),
            (120, "2 minutes"),
            (59 * 60 + 59, "59 minutes"),
            (3600, "About an hour"),
            (89 * 60, "About an hour"),
            (90 * 60, "2 hours"),
            (47 * 3600, "47 hours"),
            (47 * 3600 + 1800, "2 days"),
            (13 * 86400, "13 days"),
            (14 * 86400, "2 weeks"),
            (59 * 86400, "8 weeks"),
            (60 * 86400, "2 months"),
            (729 * 86400, "24 months"),
            (730 * 86400, "2 years"),
            (3 * 365 * 86400 + 86400, "3 years"),
        ];
        for (seconds, words) in cases {
            assert_eq!(human_duration(secs(seconds)), words, "{seconds}s");
        }
    }

    #[test]
    fn short_durations_read_as_kubectl_age_columns() {
        let cases = [
            (-2, "<invalid>"),
            (-1, "0s"),
            (0, "0s"),
            (5, "5s"),
            (119, "119s"),
            (120, "2m"),
            (150, "2m30s"),
            (599, "9m59s"),
            (600, "10m"),
            (179 * 60, "179m"),
            (3 * 3600, "3h"),
            (3 * 3600 + 30 * 60, "3h30m"),
            (8 * 3600 + 59, "8h"),
            (47 * 3600, "47h"),
            (48 * 3600, "2d"),
            (49 * 3600, "2d1h"),
            (8 * 86400, "8d"),
            (729 * 86400, "729d"),
            (730 * 86400, "2y"),
            (731 * 86400, "2y1d"),
            (2920 * 86400, "8y"),
        ];
        for (seconds, age) in cases {
            assert_eq!(short_duration(secs(seconds)), age, "{seconds}s");
        }
    }

    #[test]
    fn sizes_have_four_significant_digits_in_decimal_units() {
        let cases = [
            (0, "0B"),
            (512, "512B"),
            (999, "999B"),
            (1000, "1kB"),
            (1500, "1.5kB"),
            (29_126_484, "29.13MB"),
            (70_412_531, "70.41MB"),
            (999_960, "1000kB"),
            (1_234_567_890, "1.235GB"),
        ];
        for (bytes, text) in cases {
            assert_eq!(human_size(bytes), text, "{bytes} bytes");
        }
    }

    #[test]
    fn describe_columns_start_at_the_tab_stops_oc_pads_to() {
        let text = "Name:\tpython\nDocker Pull Spec:\tx\n\nv1\n      5 minutes ago\tsha256:a\n";
        assert_eq!(
            align(text, DESCRIBE),
            "Name:                   python\n\
             Docker Pull Spec:       x\n\
             \n\
             v1\n      \
             5 minutes ago     sha256:a\n"
        );
    }

    #[test]
    fn a_line_without_a_cell_in_a_column_ends_its_block() {
        let text = "a:\t1\nlonger label:\t2\nbreak\nb:\t3\n\tinner\tcell\n";
        assert_eq!(
            align(text, DESCRIBE),
            "a:              1\n\
             longer label:   2\n\
             break\n\
             b:      3\n        \
             inner   cell\n"
        );
    }

    #[test]
    fn tables_pad_columns_three_spaces_and_at_least_ten_wide() {
        let rows = vec![
            vec![
                "a:v1".to_owned(),
                "quay.io/a@sha256:1".to_owned(),
                "x".to_owned(),
            ],
            vec!["bb:latest".to_owned(), "b".to_owned(), "y".to_owned()],
        ];
        assert_eq!(
            render_table(&["NAME", "IMAGE REFERENCE", "UPDATED"], &rows),
            "NAME        IMAGE REFERENCE      UPDATED\n\
             a:v1        quay.io/a@sha256:1   x\n\
             bb:latest   b                    y\n"
        );
    }

    #[test]
    fn tags_are_ordered_latest_then_minor_then_full_versions_then_the_rest() {
        let mut tags: Vec<String> = [
            "other",
            "1.0.0",
            "v2.1",
            "latest",
            "2.1",
            "abc",
            "5.1-rc1",
            "2.0.0-beta.1",
            "2.0.0-beta.2",
            "2.0.0-alpha",
            "2.0.0",
            "v2.0.0",
            "01.2",
            "1.0.0+build.1",
            "5.1-rc_1",
        ]
        .map(String::from)
        .to_vec();
        prioritize_tags(&mut tags);
        assert_eq!(
            tags,
            [
                "latest",
                "5.1-rc1",
                "2.1",
                "v2.1",
                "2.0.0",
                "v2.0.0",
                "2.0.0-beta.2",
                "2.0.0-beta.1",
                "2.0.0-alpha",
                "1.0.0",
                "1.0.0+build.1",
                "01.2",
                // `\w` lets `_` pass the minor-with-suffix pattern, but semver refuses it.
                "5.1-rc_1",
                "abc",
                "other",
            ]
        );
    }

    #[test]
    fn semantic_versions_follow_semver_precedence_and_refuse_leading_zeros() {
        let parse = |text: &str| SemVer::parse(text);
        assert!(parse("1.0.0-alpha").unwrap() < parse("1.0.0-alpha.1").unwrap());
        assert!(parse("1.0.0-alpha.1").unwrap() < parse("1.0.0-alpha.beta").unwrap());
        assert!(parse("1.0.0-beta.2").unwrap() < parse("1.0.0-beta.11").unwrap());
        assert!(parse("1.0.0-rc.1").unwrap() < parse("1.0.0").unwrap());
        for invalid in [
            "01.0.0",
            "1.0",
            "1.0.0-",
            "1.0.0-01",
            "1.0.0+",
            "1.0.0-a_b",
            "a.b.c",
        ] {
            assert_eq!(parse(invalid), None, "{invalid}");
        }
    }

    #[test]
    fn image_stream_tag_names_need_exactly_one_colon_around_two_parts() {
        assert_eq!(parse_image_stream_tag_name("app:v1"), Ok(("app", "v1")));
        let cases = [
            (
                "app",
                "expected exactly one : delimiter in the istag \"app\"",
            ),
            (
                "a:b:c",
                "expected exactly one : delimiter in the istag \"a:b:c\"",
            ),
            (
                ":v1",
                "image stream tag name \":v1\" must have a name and a tag",
            ),
            (
                "app:",
                "image stream tag name \"app:\" must have a name and a tag",
            ),
            (
                "app@sha256:abc",
                "\"app@sha256:abc\" is an image stream image, not an image stream tag",
            ),
        ];
        for (name, message) in cases {
            let error = parse_image_stream_tag_name(name).unwrap_err();
            assert_eq!(error.to_string(), message, "{name}");
        }
    }

    #[test]
    fn describe_image_stream_lists_every_tag_with_history_errors_and_triggers() {
        let workloads = [
            workload(
                WorkloadKind::Deployment,
                "web",
                json!([trigger(
                    "app:v1",
                    "spec.template.spec.containers[?(@.name==\"app\")].image"
                )]),
            ),
            workload(
                WorkloadKind::StatefulSet,
                "db",
                json!([
                    trigger("app:stable", "spec.template.spec.initContainers[0].image"),
                    {"from": {"kind": "ImageStreamTag", "name": "app:v1"},
                     "fieldPath": "spec.template.spec.containers[1].image", "paused": true},
                ]),
            ),
            workload(
                WorkloadKind::DaemonSet,
                "agent",
                json!([trigger(
                    "app:broken",
                    "spec.template.spec.containers[?(@.name==\"nope\")].image"
                )]),
            ),
            workload(
                WorkloadKind::CronJob,
                "elsewhere",
                json!([{"from": {"kind": "ImageStreamTag", "name": "app:v1", "namespace": "other"},
                        "fieldPath": "spec.jobTemplate.spec.template.spec.containers[0].image"}]),
            ),
        ];
        let text = describe_image_stream(&stream(), &workloads, now());
        let expected = format!(
            "Name:                   app
Namespace:              shop
Created:                5 minutes ago
Labels:                 app=shop
                        team=web
Description:            The shop front end
Annotations:            owner=web-team
Image Repository:       registry.local/shop/app
Image Lookup:           local=true
Unique Images:          2
Tags:                   4

1.0
  updates automatically from registry quay.io/shop/app:1.0
    prefer registry pullthrough when referencing this tag

  ~ importing latest image ...

broken
  tagged from quay.io/shop/gone:v1
  triggers daemonset/agent (ignored: its trigger annotation is invalid, UnknownContainer)

  ! error: Import failed (NotFound): quay.io/shop/gone:v1: manifest unknown
      2 minutes ago

v1 (stable)
  tagged from quay.io/shop/app:v1
    will use insecure HTTPS or HTTP connections
  triggers deployment/web (container app)
  triggers statefulset/db (container sidecar, paused)
  triggers statefulset/db (init container migrate) via stable

  Stable line
  Tags: web, shop

  * quay.io/shop/app@{B}
      2 hours ago
    quay.io/shop/app@{A}
      3 days ago
"
        );
        assert_eq!(text, expected);
    }

    #[test]
    fn a_stream_without_tags_says_so_and_status_only_tags_have_no_spec() {
        let mut bare = stream();
        bare.spec.tags.clear();
        bare.status = None;
        bare.metadata.labels = None;
        bare.metadata.annotations = None;
        let text = describe_image_stream(&bare, &[], now());
        assert!(text.ends_with("Image Repository:       <none>\nImage Lookup:           local=true\nTags:                   <none>\n"), "{text}");
        assert!(
            text.contains("Labels:                 <none>\nAnnotations:            <none>\n"),
            "{text}"
        );

        let mut orphan = stream();
        orphan.spec.tags.clear();
        let text = describe_image_stream(&orphan, &[], now());
        assert!(
            text.contains("\nv1\n  no spec tag\n\n  * quay.io/shop/app@"),
            "{text}"
        );
        assert!(text.contains("Tags:                   3\n"), "{text}");
    }

    #[test]
    fn history_shows_the_digest_when_the_reference_does_not_name_it() {
        let mut reference = stream();
        let status = reference.status.as_mut().unwrap();
        status.tags[2].items.truncate(1);
        status.tags[2].items[0].docker_image_reference = "quay.io/shop/app:v1".into();
        let text = describe_image_stream(&reference, &[], now());
        assert!(
            text.contains(&format!(
                "  * quay.io/shop/app:v1\n      2 hours ago       {B}\n"
            )),
            "{text}"
        );
    }

    #[test]
    fn aliases_chains_cycles_and_other_streams() {
        let mut chained = stream();
        chained.spec.tags.extend(serde_json::from_value::<Vec<TagReference>>(json!([
            {"name": "prod", "from": {"kind": "ImageStreamTag", "name": "app:stable"}},
            {"name": "loop-a", "from": {"kind": "ImageStreamTag", "name": "loop-b"}},
            {"name": "loop-b", "from": {"kind": "ImageStreamTag", "name": "loop-a"}},
            {"name": "copy", "from": {"kind": "ImageStreamTag", "name": "base:v1"}},
            {"name": "remote", "from": {"kind": "ImageStreamTag", "name": "v1", "namespace": "other"}},
        ])).unwrap());
        assert_eq!(alias_target(&chained, "prod").as_deref(), Some("v1"));
        assert_eq!(alias_target(&chained, "stable").as_deref(), Some("v1"));
        assert_eq!(alias_target(&chained, "v1"), None);
        assert_eq!(alias_target(&chained, "loop-a"), None);
        assert_eq!(alias_target(&chained, "copy"), None);
        assert_eq!(alias_target(&chained, "remote"), None);
        let text = describe_image_stream(&chained, &[], now());
        assert!(text.contains("\nv1 (prod, stable)\n"), "{text}");
        assert!(text.contains("\ncopy\n  tagged from base:v1\n"), "{text}");
        assert!(
            text.contains("\nremote\n  tagged from other/v1\n"),
            "{text}"
        );
    }

    #[test]
    fn values_from_objects_cannot_move_the_cursor_or_break_the_columns() {
        let mut hostile = stream();
        hostile.metadata.labels = Some([("x".to_owned(), "\x1b[31mred\tcell\n".to_owned())].into());
        let text = describe_image_stream(&hostile, &[], now());
        assert!(
            text.contains("Labels:                 x=\\u{1b}[31mred\\tcell\\n\n"),
            "{text}"
        );
        assert!(!text.contains('\x1b'));
    }

    #[test]
    fn describe_istag_shows_the_image_its_layers_config_and_the_tag_history() {
        let text = describe_image_stream_tag(&stream(), "v1", Some(&image()), now()).unwrap();
        let layer = |n: &str| format!("sha256:{}", n.repeat(64));
        let expected = format!(
            "Image Name:     {B}
Docker Image:   quay.io/shop/app@{B}
Name:           sha256.{b}
Created:        2 hours ago
Description:    Stable line
Annotations:    tags=web,shop
Image Size:     70.41MB in 2 layers
Layers:         29.13MB {l1}
                41.29MB {l2}
Image Created:  2 weeks ago
Author:         Shop Team
Arch:           amd64
OS:             linux
Entrypoint:     /docker-entrypoint.sh
Command:        nginx -g daemon off;
Working Dir:    /srv
User:           101
Exposes Ports:  443/tcp, 80/tcp
Docker Labels:  maintainer=shop@example.com
Environment:    PATH=/usr/bin:/bin
                MODE=prod

History:
  * quay.io/shop/app@{B}
      2 hours ago
    quay.io/shop/app@{A}
      3 days ago
",
            b = &B[7..],
            l1 = layer("1"),
            l2 = layer("2"),
        );
        assert_eq!(text, expected);
    }

    #[test]
    fn describe_istag_without_an_image_object_shows_what_the_tag_records() {
        let text = describe_image_stream_tag(&stream(), "stable", None, now()).unwrap();
        assert_eq!(
            text,
            format!(
                "Image Name:     {B}
Docker Image:   quay.io/shop/app@{B}
Created:        2 hours ago
Image Metadata: <none>: no Image object sha256.{b} exists

History:
  * quay.io/shop/app@{B}
      2 hours ago
",
                b = &B[7..]
            )
        );
    }

    #[test]
    fn describe_istag_of_a_local_policy_tag_names_the_internal_repository() {
        let mut local = stream();
        local.spec.tags[0].reference_policy =
            serde_json::from_value(json!({"type": "Local"})).unwrap();
        let text = describe_image_stream_tag(&local, "v1", None, now()).unwrap();
        assert!(
            text.contains(&format!("Docker Image:   registry.local/shop/app@{B}\n")),
            "{text}"
        );
    }

    #[test]
    fn a_tag_without_an_image_cannot_be_described() {
        let stream = stream();
        assert_eq!(
            describe_image_stream_tag(&stream, "nope", None, now()),
            Err(TagImageProblem::NoSuchTag { tag: "nope".into() })
        );
        assert_eq!(
            describe_image_stream_tag(&stream, "broken", None, now()),
            Err(TagImageProblem::NoImage {
                tag: "broken".into(),
                last_failure: Some(
                    "Import failed (NotFound): quay.io/shop/gone:v1: manifest unknown".into()
                ),
            })
        );
        assert_eq!(
            describe_image_stream_tag(&stream, "1.0", None, now()),
            Err(TagImageProblem::NoImage {
                tag: "1.0".into(),
                last_failure: None
            })
        );
        let mut reference = stream.clone();
        let event = &mut reference.status.as_mut().unwrap().tags[2].items[0];
        event.image.clear();
        assert!(matches!(
            current_tag_image(&reference, "v1"),
            Err(TagImageProblem::NoImage { .. })
        ));
    }

    #[test]
    fn get_istag_lists_every_tag_of_every_stream() {
        let mut other = stream();
        other.metadata.name = Some("api".into());
        other.metadata.namespace = Some("billing".into());
        other.spec.tags.truncate(1);
        other
            .status
            .as_mut()
            .unwrap()
            .tags
            .retain(|t| t.tag == "v1");
        let streams = [stream(), other];
        assert_eq!(
            image_stream_tag_table(&streams[..1], Some("shop"), now()),
            format!(
                "NAME         IMAGE REFERENCE                                                                            UPDATED
app:1.0      <none>                                                                                     <none>
app:broken   <none>                                                                                     <none>
app:stable   quay.io/shop/app@{B}   2 hours ago
app:v1       quay.io/shop/app@{B}   2 hours ago
"
            )
        );
        let all = image_stream_tag_table(&streams, None, now());
        let lines: Vec<&str> = all.lines().collect();
        assert_eq!(lines.len(), 6, "{all}");
        assert!(
            lines[0].starts_with("NAMESPACE   NAME         IMAGE REFERENCE"),
            "{all}"
        );
        assert!(
            lines[1].starts_with("billing     api:v1       quay.io/shop/app@"),
            "{all}"
        );
        assert!(
            lines[2].starts_with("shop        app:1.0      <none>"),
            "{all}"
        );
    }

    #[test]
    fn get_istag_without_tags_says_no_resources_found() {
        assert_eq!(
            image_stream_tag_table(&[], Some("shop"), now()),
            "No resources found in shop namespace.\n"
        );
        assert_eq!(
            image_stream_tag_table(&[], None, now()),
            "No resources found\n"
        );
    }

    #[test]
    fn a_workload_is_read_from_its_untyped_object_at_its_kinds_pod_spec() {
        let object: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "batch/v1",
            "kind": "CronJob",
            "metadata": {"name": "nightly", "namespace": "shop",
                         "annotations": {TRIGGERS_ANNOTATION: "[]"}},
            "spec": {"jobTemplate": {"spec": {"template": {"spec": {
                "containers": [{"name": "job"}],
                "initContainers": [{"name": "prepare"}, {}],
            }}}}},
        }))
        .unwrap();
        assert_eq!(
            triggering_workload(WorkloadKind::CronJob, &object),
            Some(TriggeringWorkload {
                kind: WorkloadKind::CronJob,
                name: "nightly".into(),
                namespace: "shop".into(),
                annotation: "[]".into(),
                containers: vec!["job".into()],
                init_containers: vec!["prepare".into(), String::new()],
            })
        );
        let mut plain = object.clone();
        plain.metadata.annotations = None;
        assert_eq!(triggering_workload(WorkloadKind::CronJob, &plain), None);
    }

    #[test]
    fn unique_images_count_digests_across_tags_and_references_without_one() {
        let mut stream = stream();
        assert_eq!(unique_images(&stream), 2);
        let status = stream.status.as_mut().unwrap();
        status.tags[0].items = vec![TagEvent {
            created: Time(now()),
            docker_image_reference: "quay.io/shop/app:latest".into(),
            image: String::new(),
            generation: 1,
            platforms: Vec::new(),
        }];
        assert_eq!(unique_images(&stream), 3);
    }
}
