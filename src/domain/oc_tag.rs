//! What `tag SOURCE DEST…` writes, by `oc tag`'s rules. Pure: the command resolves the source
//! (is `a:b` a stream tag or a pull spec? which digest does a stream tag point at now?) and hands
//! the resolved source here, which says what `spec.tags[]` entry each destination gets.
//!
//! - `--source=docker`: the tag tracks the pull spec (`--scheduled` re-imports it every interval);
//! - `--source=imagestreamtag` with `--alias`: the tag follows the other tag (`ImageStreamTag`);
//! - `--source=imagestreamtag` without `--alias`: a snapshot of the other tag's current image
//!   (`ImageStreamImage stream@sha256:…`) — how a tag is pinned or rolled back to a digest;
//! - `--source=imagestreamimage`: that image (`stream@sha256:…`).

use crate::api::image_stream::{TagImportPolicy, TagReference, TagReferencePolicy, TagSource};

/// `--source`, as `oc` spells it (and its short forms).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SourceKind {
    /// A pull spec in a registry.
    #[value(alias = "docker-image")]
    Docker,
    /// `[namespace/]stream:tag`.
    #[value(alias = "istag")]
    Imagestreamtag,
    /// `[namespace/]stream@sha256:…`.
    #[value(alias = "isimage")]
    Imagestreamimage,
}

/// A source, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A pull spec.
    Docker(String),
    /// A tag of a stream, followed (`--alias`).
    StreamTag {
        /// Its namespace, when not the destination's.
        namespace: Option<String>,
        /// `stream:tag`.
        name: String,
    },
    /// An image of a stream: `stream@sha256:…`.
    StreamImage {
        /// Its namespace, when not the destination's.
        namespace: Option<String>,
        /// `stream@digest`.
        name: String,
    },
}

impl Source {
    /// How `oc` prints the source: `ns/stream@sha256:…`, `stream:tag` or the pull spec.
    pub fn display(&self) -> String {
        match self {
            Source::Docker(spec) => spec.clone(),
            Source::StreamTag { namespace, name } | Source::StreamImage { namespace, name } => {
                match namespace {
                    Some(ns) => format!("{ns}/{name}"),
                    None => name.clone(),
                }
            }
        }
    }
}

/// The flags that shape the written tag.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TagFlags {
    /// `--scheduled` (pull specs only).
    pub scheduled: bool,
    /// `--insecure` (pull specs only).
    pub insecure: bool,
    /// `--reference`: the tag only points at the source; nothing is imported.
    pub reference: bool,
    /// `--reference-policy`: `Source` or `Local`.
    pub reference_policy: Option<String>,
}

/// A destination: `[namespace/]stream:tag`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    /// Its namespace, when given.
    pub namespace: Option<String>,
    /// The stream.
    pub stream: String,
    /// The tag.
    pub tag: String,
}

/// Parses a destination; a tag is required, as in `oc`.
pub fn destination(value: &str) -> Result<Destination, String> {
    let (namespace, rest) = match value.split_once('/') {
        Some((ns, rest)) if !ns.is_empty() => (Some(ns.to_owned()), rest),
        _ => (None, value),
    };
    let Some((stream, tag)) = rest.split_once(':') else {
        return Err(format!(
            "{value:?} is not a destination: use [NAMESPACE/]STREAM:TAG"
        ));
    };
    if !is_name(stream) || !is_tag(tag) || namespace.as_deref().is_some_and(|ns| !is_name(ns)) {
        return Err(format!(
            "{value:?} is not a valid destination: use [NAMESPACE/]STREAM:TAG with lower-case names"
        ));
    }
    Ok(Destination {
        namespace,
        stream: stream.to_owned(),
        tag: tag.to_owned(),
    })
}

/// A stream tag or image as the source names it: (namespace, stream, `:tag` or `@digest` part).
pub fn stream_source(value: &str) -> Option<(Option<String>, String, String)> {
    let (namespace, rest) = match value.split_once('/') {
        Some((ns, rest)) => (Some(ns.to_owned()), rest),
        None => (None, value),
    };
    if rest.contains('/') || namespace.as_deref().is_some_and(|ns| !is_name(ns)) {
        return None;
    }
    let at = rest.find(['@', ':'])?;
    let (stream, suffix) = rest.split_at(at);
    is_name(stream).then(|| (namespace, stream.to_owned(), suffix.to_owned()))
}

/// The `spec.tags[]` entry `dest` gets for `source`.
pub fn tag_reference(dest: &str, source: &Source, flags: &TagFlags) -> TagReference {
    let (kind, name, namespace) = match source {
        Source::Docker(spec) => ("DockerImage", spec.clone(), None),
        Source::StreamTag { namespace, name } => {
            ("ImageStreamTag", name.clone(), namespace.clone())
        }
        Source::StreamImage { namespace, name } => {
            ("ImageStreamImage", name.clone(), namespace.clone())
        }
    };
    let docker = matches!(source, Source::Docker(_));
    TagReference {
        name: dest.to_owned(),
        from: Some(TagSource {
            kind: Some(kind.to_owned()),
            name: Some(name),
            namespace,
            ..TagSource::default()
        }),
        reference: flags.reference.then_some(true),
        import_policy: (docker && (flags.scheduled || flags.insecure)).then(|| TagImportPolicy {
            scheduled: flags.scheduled.then_some(true),
            insecure: flags.insecure.then_some(true),
            import_mode: None,
        }),
        reference_policy: flags
            .reference_policy
            .as_ref()
            .map(|kind| TagReferencePolicy {
                type_: Some(kind.clone()),
            }),
        ..TagReference::default()
    }
}

/// `tags` with `reference` set (replacing the tag of the same name, keeping its annotations).
pub fn set_tag(tags: &[TagReference], mut reference: TagReference) -> Vec<TagReference> {
    let mut tags = tags.to_vec();
    match tags.iter_mut().find(|t| t.name == reference.name) {
        Some(existing) => {
            reference.annotations = std::mem::take(&mut existing.annotations);
            *existing = reference;
        }
        None => tags.push(reference),
    }
    tags
}

/// `tags` without `name`, or `None` when there is no such tag.
pub fn remove_tag(tags: &[TagReference], name: &str) -> Option<Vec<TagReference>> {
    let kept: Vec<TagReference> = tags.iter().filter(|t| t.name != name).cloned().collect();
    (kept.len() != tags.len()).then_some(kept)
}

fn is_name(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 253
        && value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && !value.starts_with(['-', '.'])
}

fn is_tag(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 128
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-')
        && !value.starts_with(['.', '-'])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_need_a_tag_and_may_name_a_namespace() {
        assert_eq!(
            destination("team/app:v1"),
            Ok(Destination {
                namespace: Some("team".into()),
                stream: "app".into(),
                tag: "v1".into()
            })
        );
        assert_eq!(destination("app:v1").unwrap().namespace, None);
        for bad in ["app", "App:v1", "app:", "a/b/c:v1", "app:v/1"] {
            assert!(destination(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn stream_sources_are_split_into_namespace_stream_and_tag_or_digest() {
        assert_eq!(
            stream_source("team/app:v1"),
            Some((Some("team".into()), "app".into(), ":v1".into()))
        );
        assert_eq!(
            stream_source("app@sha256:abc"),
            Some((None, "app".into(), "@sha256:abc".into()))
        );
        assert_eq!(stream_source("quay.io/team/app:v1"), None);
        assert_eq!(stream_source("app"), None);
    }

    #[test]
    fn each_source_kind_writes_what_oc_tag_writes() {
        let scheduled = TagFlags {
            scheduled: true,
            reference_policy: Some("Local".into()),
            ..TagFlags::default()
        };
        let docker = tag_reference("v1", &Source::Docker("quay.io/a/app:v1".into()), &scheduled);
        assert_eq!(
            docker.from.as_ref().unwrap().kind.as_deref(),
            Some("DockerImage")
        );
        assert!(docker.is_scheduled());
        assert_eq!(docker.reference_policy_type(), "Local");
        let alias = tag_reference(
            "latest",
            &Source::StreamTag {
                namespace: None,
                name: "app:v1".into(),
            },
            &scheduled,
        );
        assert_eq!(
            alias.from.as_ref().unwrap().kind.as_deref(),
            Some("ImageStreamTag")
        );
        assert_eq!(alias.import_policy, None, "only pull specs are scheduled");
        let pinned = tag_reference(
            "prod",
            &Source::StreamImage {
                namespace: Some("build".into()),
                name: "app@sha256:abc".into(),
            },
            &TagFlags {
                reference: true,
                ..TagFlags::default()
            },
        );
        assert_eq!(
            pinned.from.as_ref().unwrap().namespace.as_deref(),
            Some("build")
        );
        assert_eq!(pinned.reference, Some(true));
    }

    #[test]
    fn setting_a_tag_replaces_it_in_place_and_removing_one_says_whether_it_was_there() {
        let v1 = tag_reference("v1", &Source::Docker("a:1".into()), &TagFlags::default());
        let mut annotated = v1.clone();
        annotated.annotations.insert("note".into(), "kept".into());
        let v2 = tag_reference("v2", &Source::Docker("a:2".into()), &TagFlags::default());
        let moved = tag_reference("v1", &Source::Docker("a:3".into()), &TagFlags::default());
        let tags = set_tag(&[annotated, v2.clone()], moved);
        assert_eq!(tags.len(), 2);
        assert_eq!(tags[0].from.as_ref().unwrap().name.as_deref(), Some("a:3"));
        assert_eq!(tags[0].annotations["note"], "kept");
        assert_eq!(remove_tag(&tags, "v2").unwrap().len(), 1);
        assert_eq!(remove_tag(&tags, "v9"), None);
    }
}
