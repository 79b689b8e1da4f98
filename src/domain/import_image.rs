//! What `import-image NAME[:TAG] [--from REF] [--confirm] [--all]` changes, by `oc import-image`'s
//! rules, and how its result reads from the stream's status afterwards. Pure: the command fetches
//! the stream, asks [`plan`], writes what the plan says, waits, and hands the status to [`result`].
//!
//! The rules, as `oc` has them:
//! - a stream that does not exist is created only with `--confirm`, with one tag from `--from`
//!   (default: `NAME:TAG` itself as a pull spec);
//! - a tag that exists is re-imported; it must track a `DockerImage` (after following tags of the
//!   same stream that point at tags), and `--from` may not name another source (that is `tag`'s job);
//! - a tag that does not exist is added from `--from`;
//! - `--all` re-imports every `DockerImage` tag of the stream. Importing a whole repository
//!   (`spec.dockerImageRepository`) is not supported by this operator, so `--all` on a stream that
//!   does not exist is refused.

use crate::api::image_stream::{
    ImageStreamSpec, ImageStreamStatus, TagImportPolicy, TagReference, TagReferencePolicy,
    TagSource,
};
use crate::domain::image_name::parse_tag_source_name;

/// The tag `oc` imports when none is named.
pub const DEFAULT_TAG: &str = "latest";

/// The import policy flags of the command. `None`: not given (an existing tag keeps its value).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicyFlags {
    /// `--scheduled`.
    pub scheduled: Option<bool>,
    /// `--insecure`.
    pub insecure: Option<bool>,
    /// `--reference-policy` as the API writes it: `Source` or `Local`.
    pub reference_policy: Option<String>,
    /// `--import-mode`: `Legacy` or `PreserveOriginal`.
    pub import_mode: Option<String>,
}

/// The command's request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportRequest {
    /// The stream.
    pub stream: String,
    /// The tag named after `:` (none: `latest`, or every tag with `all`).
    pub tag: Option<String>,
    /// `--from`.
    pub from: Option<String>,
    /// `--confirm`.
    pub confirm: bool,
    /// `--all`.
    pub all: bool,
    /// The import policy flags.
    pub policy: PolicyFlags,
}

/// What to write before waiting for the import.
#[derive(Debug, Clone, PartialEq)]
pub enum ImportPlan {
    /// Create the stream with this spec.
    Create(ImageStreamSpec),
    /// Replace the stream's `spec.tags` with these (a tag added or its policy changed).
    SetTags(Vec<TagReference>),
    /// Only ask for a new import.
    Reimport,
}

/// A plan and the tags whose result the command waits for and prints.
#[derive(Debug, Clone, PartialEq)]
pub struct Planned {
    /// What to write.
    pub plan: ImportPlan,
    /// The tags imported, in spec order.
    pub tags: Vec<String>,
}

/// What `existing` (the stream's spec, if the stream exists) needs for `request`, or why the
/// request is refused, in `oc`'s words.
pub fn plan(
    request: &ImportRequest,
    existing: Option<&ImageStreamSpec>,
) -> Result<Planned, String> {
    let tag = request
        .tag
        .clone()
        .unwrap_or_else(|| DEFAULT_TAG.to_owned());
    let Some(spec) = existing else {
        return create(request, &tag);
    };
    if request.all {
        return all_tags(request, spec);
    }
    let (final_tag, existing) = follow(spec, &request.stream, &tag)?;
    match existing {
        Some(reference) => reimport(request, spec, reference, &final_tag),
        None => {
            let from = request.from.clone().ok_or_else(|| {
                format!("the tag {tag:?} does not exist on the image stream - choose an existing tag to import or use the 'tag' command to create a new tag")
            })?;
            let mut tags = spec.tags.clone();
            tags.push(new_tag(&final_tag, &from, &request.policy));
            Ok(Planned {
                plan: ImportPlan::SetTags(tags),
                tags: vec![final_tag],
            })
        }
    }
}

fn create(request: &ImportRequest, tag: &str) -> Result<Planned, String> {
    if request.all {
        return Err(format!(
            "no image stream named {:?} exists; importing every tag of a repository (--all without a stream) is not supported: create the tags you want with --from and --confirm",
            request.stream
        ));
    }
    if !request.confirm {
        return Err(format!(
            "no image stream named {:?} exists, pass --confirm to create and import",
            request.stream
        ));
    }
    let from = request
        .from
        .clone()
        .unwrap_or_else(|| format!("{}:{tag}", request.stream));
    Ok(Planned {
        plan: ImportPlan::Create(ImageStreamSpec {
            tags: vec![new_tag(tag, &from, &request.policy)],
            ..ImageStreamSpec::default()
        }),
        tags: vec![tag.to_owned()],
    })
}

fn all_tags(request: &ImportRequest, spec: &ImageStreamSpec) -> Result<Planned, String> {
    if request.from.is_some() {
        return Err("--all with --from would import a whole repository, which is not supported: name the tag to create instead".to_owned());
    }
    let tags: Vec<String> = spec
        .tags
        .iter()
        .filter(|t| source_kind(t) == Some("DockerImage"))
        .map(|t| t.name.clone())
        .collect();
    if tags.is_empty() {
        return Err(format!(
            "image stream {:?} has no tag that tracks a DockerImage to import",
            request.stream
        ));
    }
    let changed = apply_policy_all(spec, &tags, &request.policy);
    Ok(Planned {
        plan: changed.map_or(ImportPlan::Reimport, ImportPlan::SetTags),
        tags,
    })
}

fn reimport(
    request: &ImportRequest,
    spec: &ImageStreamSpec,
    existing: &TagReference,
    tag: &str,
) -> Result<Planned, String> {
    let (kind, name) = match &existing.from {
        Some(TagSource {
            kind: Some(kind),
            name: Some(name),
            ..
        }) => (kind.as_str(), name.as_str()),
        _ => {
            return Err(format!(
                "tag {tag:?} already exists - you must use the 'tag' command if you want to change the source to {:?}",
                request.from.clone().unwrap_or_default()
            ));
        }
    };
    if kind != "DockerImage" {
        return Err(format!(
            "tag {tag:?} points to existing {kind} {name:?}, it cannot be re-imported"
        ));
    }
    if let Some(from) = request.from.as_deref().filter(|from| *from != name) {
        return Err(format!(
            "the tag {tag:?} points to {name:?} - use the 'tag' command if you want to change the source to {from:?}"
        ));
    }
    let changed = apply_policy_all(spec, &[tag.to_owned()], &request.policy);
    Ok(Planned {
        plan: changed.map_or(ImportPlan::Reimport, ImportPlan::SetTags),
        tags: vec![tag.to_owned()],
    })
}

/// Follows tags of the same stream that point at tags (`ImageStreamTag` named `tag` or
/// `<this stream>:tag` without a namespace), as `oc` does: the final tag and its reference, if it
/// exists. A loop or a reference to a missing tag is an error.
fn follow<'a>(
    spec: &'a ImageStreamSpec,
    stream: &str,
    tag: &str,
) -> Result<(String, Option<&'a TagReference>), String> {
    let mut current = tag.to_owned();
    let mut seen = vec![current.clone()];
    loop {
        let Some(reference) = spec.tags.iter().find(|t| t.name == current) else {
            if seen.len() > 1 {
                return Err(format!(
                    "tag {tag:?} on the image stream is a reference to {current:?}, which does not exist"
                ));
            }
            return Ok((current, None));
        };
        let Some(next) = same_stream_tag(reference, stream) else {
            return Ok((current, Some(reference)));
        };
        if seen.contains(&next) {
            return Err(format!(
                "tag {tag:?} on the image stream is a reference to same tag"
            ));
        }
        seen.push(next.clone());
        current = next;
    }
}

/// The tag of `stream` that `reference` points at (`tag` or `<stream>:tag`), if it points at one.
fn same_stream_tag(reference: &TagReference, stream: &str) -> Option<String> {
    let from = reference.from.as_ref()?;
    if from.kind.as_deref() != Some("ImageStreamTag") || from.namespace.is_some() {
        return None;
    }
    match parse_tag_source_name(from.name.as_deref()?).ok()? {
        (None, tag) => Some(tag.to_owned()),
        (Some(other), tag) if other == stream => Some(tag.to_owned()),
        (Some(_), _) => None,
    }
}

fn source_kind(tag: &TagReference) -> Option<&str> {
    tag.from.as_ref().and_then(|f| f.kind.as_deref())
}

fn new_tag(name: &str, from: &str, policy: &PolicyFlags) -> TagReference {
    let mut tag = TagReference {
        name: name.to_owned(),
        from: Some(TagSource {
            kind: Some("DockerImage".to_owned()),
            name: Some(from.to_owned()),
            namespace: None,
            ..TagSource::default()
        }),
        ..TagReference::default()
    };
    apply_policy(&mut tag, policy);
    tag
}

/// `spec.tags` with `policy` applied to `names`, if that changes anything.
fn apply_policy_all(
    spec: &ImageStreamSpec,
    names: &[String],
    policy: &PolicyFlags,
) -> Option<Vec<TagReference>> {
    let mut tags = spec.tags.clone();
    for tag in tags.iter_mut().filter(|t| names.contains(&t.name)) {
        apply_policy(tag, policy);
    }
    (tags != spec.tags).then_some(tags)
}

fn apply_policy(tag: &mut TagReference, policy: &PolicyFlags) {
    let given =
        policy.scheduled.is_some() || policy.insecure.is_some() || policy.import_mode.is_some();
    if given {
        let import = tag
            .import_policy
            .get_or_insert_with(TagImportPolicy::default);
        if let Some(scheduled) = policy.scheduled {
            import.scheduled = Some(scheduled);
        }
        if let Some(insecure) = policy.insecure {
            import.insecure = Some(insecure);
        }
        if let Some(mode) = &policy.import_mode {
            import.import_mode = Some(mode.clone());
        }
    }
    if let Some(kind) = &policy.reference_policy {
        tag.reference_policy = Some(TagReferencePolicy {
            type_: Some(kind.clone()),
        });
    }
}

/// How the import of one tag ended, read from the stream's status once the operator has served
/// the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagResult {
    /// The tag points at this image (`docker_image_reference`, digest).
    Imported {
        /// The pull spec by digest.
        reference: String,
        /// The digest.
        digest: String,
    },
    /// The import failed: the tag's condition.
    Failed {
        /// The condition's reason.
        reason: String,
        /// The condition's message.
        message: String,
    },
    /// Nothing recorded for the tag yet.
    Pending,
}

/// The result for `tag` in `status`.
pub fn result(status: Option<&ImageStreamStatus>, tag: &str) -> TagResult {
    let Some(events) = status.and_then(|s| s.tag(tag)) else {
        return TagResult::Pending;
    };
    if let Some(condition) = events
        .conditions
        .iter()
        .find(|c| c.type_ == "ImportSuccess" && c.status == "False")
    {
        return TagResult::Failed {
            reason: condition.reason.clone().unwrap_or_default(),
            message: condition.message.clone().unwrap_or_default(),
        };
    }
    match events.items.first() {
        Some(item) => TagResult::Imported {
            reference: item.docker_image_reference.clone(),
            digest: item.image.clone(),
        },
        None => TagResult::Pending,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn docker(name: &str, from: &str) -> TagReference {
        new_tag(name, from, &PolicyFlags::default())
    }

    fn alias(name: &str, to: &str) -> TagReference {
        TagReference {
            name: name.into(),
            from: Some(TagSource {
                kind: Some("ImageStreamTag".into()),
                name: Some(to.into()),
                namespace: None,
                ..TagSource::default()
            }),
            ..TagReference::default()
        }
    }

    fn spec(tags: Vec<TagReference>) -> ImageStreamSpec {
        ImageStreamSpec {
            tags,
            ..ImageStreamSpec::default()
        }
    }

    fn request(
        stream: &str,
        tag: Option<&str>,
        from: Option<&str>,
        confirm: bool,
    ) -> ImportRequest {
        ImportRequest {
            stream: stream.into(),
            tag: tag.map(str::to_owned),
            from: from.map(str::to_owned),
            confirm,
            ..ImportRequest::default()
        }
    }

    #[test]
    fn a_new_stream_needs_confirm_and_takes_its_source_from_from_or_its_own_name() {
        let refused = plan(
            &request("app", Some("v1"), Some("quay.io/a/app:v1"), false),
            None,
        );
        assert!(refused.unwrap_err().contains("--confirm"));
        let created = plan(
            &request("app", Some("v1"), Some("quay.io/a/app:v1"), true),
            None,
        )
        .unwrap();
        assert_eq!(created.tags, ["v1"]);
        assert_eq!(
            created.plan,
            ImportPlan::Create(spec(vec![docker("v1", "quay.io/a/app:v1")]))
        );
        let named = plan(&request("mysql", None, None, true), None).unwrap();
        assert_eq!(
            named.plan,
            ImportPlan::Create(spec(vec![docker("latest", "mysql:latest")]))
        );
        let all = ImportRequest {
            all: true,
            ..request("app", None, Some("quay.io/a/app"), true)
        };
        assert!(plan(&all, None).unwrap_err().contains("not supported"));
    }

    #[test]
    fn an_existing_tag_is_reimported_and_its_source_changes_only_through_tag() {
        let existing = spec(vec![
            docker("5.7", "docker.io/mysql:5.7"),
            alias("latest", "mysql:5.7"),
            alias("broken", "missing"),
            TagReference {
                name: "copy".into(),
                from: Some(TagSource {
                    kind: Some("ImageStreamImage".into()),
                    name: Some("other@sha256:abc".into()),
                    namespace: None,
                    ..TagSource::default()
                }),
                ..TagReference::default()
            },
        ]);
        let same = plan(&request("mysql", Some("5.7"), None, false), Some(&existing)).unwrap();
        assert_eq!(
            (same.plan, same.tags),
            (ImportPlan::Reimport, vec!["5.7".to_owned()])
        );
        // `latest` follows to 5.7, as oc does.
        let followed = plan(&request("mysql", None, None, false), Some(&existing)).unwrap();
        assert_eq!(followed.tags, ["5.7"]);
        let moved = plan(
            &request("mysql", Some("5.7"), Some("docker.io/mysql"), true),
            Some(&existing),
        );
        assert!(moved.unwrap_err().contains("use the 'tag' command"));
        let copy = plan(
            &request("mysql", Some("copy"), None, false),
            Some(&existing),
        );
        assert!(copy.unwrap_err().contains("cannot be re-imported"));
        let broken = plan(
            &request("mysql", Some("broken"), None, false),
            Some(&existing),
        );
        assert!(broken.unwrap_err().contains("which does not exist"));
    }

    #[test]
    fn a_new_tag_of_an_existing_stream_needs_from_but_not_confirm() {
        let existing = spec(vec![docker("5.7", "docker.io/mysql:5.7")]);
        let missing = plan(&request("mysql", Some("8"), None, false), Some(&existing));
        assert!(
            missing
                .unwrap_err()
                .contains("does not exist on the image stream")
        );
        let added = plan(
            &request("mysql", Some("8"), Some("docker.io/mysql:8"), false),
            Some(&existing),
        )
        .unwrap();
        assert_eq!(
            added.plan,
            ImportPlan::SetTags(vec![
                docker("5.7", "docker.io/mysql:5.7"),
                docker("8", "docker.io/mysql:8")
            ])
        );
    }

    #[test]
    fn policy_flags_set_new_tags_and_change_existing_ones_only_when_given() {
        let policy = PolicyFlags {
            scheduled: Some(true),
            insecure: None,
            reference_policy: Some("Local".into()),
            import_mode: Some("PreserveOriginal".into()),
        };
        let existing = spec(vec![
            docker("v1", "quay.io/a/app:v1"),
            alias("latest", "v1"),
        ]);
        let changed = plan(
            &ImportRequest {
                policy: policy.clone(),
                ..request("app", Some("v1"), None, false)
            },
            Some(&existing),
        )
        .unwrap();
        let ImportPlan::SetTags(tags) = changed.plan else {
            panic!("the policy changes the tag")
        };
        assert!(tags[0].is_scheduled());
        assert_eq!(tags[0].reference_policy_type(), "Local");
        assert_eq!(tags[0].import_mode(), "PreserveOriginal");
        assert_eq!(tags[1], existing.tags[1]);
        let all = plan(
            &ImportRequest {
                all: true,
                ..request("app", None, None, false)
            },
            Some(&existing),
        )
        .unwrap();
        assert_eq!(
            (all.plan, all.tags),
            (ImportPlan::Reimport, vec!["v1".to_owned()])
        );
    }
}
