//! What a spec tag points at, and how tags that point at other tags resolve: same-stream aliases that
//! track their source, one-time copies from other streams, `ImageStreamImage` digest lookups, and
//! cycles, which end in a condition instead of a loop.

use crate::api::image_stream::{
    IMPORT_MODE_LEGACY, IMPORT_MODE_PRESERVE_ORIGINAL, ImageStream, KIND_DOCKER_IMAGE,
    KIND_IMAGE_STREAM_IMAGE, KIND_IMAGE_STREAM_TAG, REFERENCE_POLICY_LOCAL,
    REFERENCE_POLICY_SOURCE, TagEvent, TagReference,
};
use crate::domain::history::ImportFailure;
use crate::domain::image_name::{DigestPrefix, parse_image_source_name, parse_tag_source_name};

/// How many hops a chain of tags may take before it is treated as a cycle.
const MAX_CHAIN: usize = 16;

/// The source of one spec tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagSource {
    /// A registry reference (`from.kind: DockerImage`).
    DockerImage { name: String },
    /// Another tag of the same stream, tracked.
    SameStreamTag { tag: String },
    /// A tag of another stream (maybe in another namespace), copied once.
    OtherStreamTag {
        namespace: String,
        stream: String,
        tag: String,
    },
    /// An image of a stream by digest or unique digest prefix (`stream@sha256:…`).
    StreamImage {
        namespace: String,
        stream: String,
        digest: DigestPrefix,
    },
}

/// Reads a tag's `from` in the context of its stream.
pub fn tag_source(
    tag: &TagReference,
    namespace: &str,
    stream: &str,
) -> Result<TagSource, ImportFailure> {
    let invalid = |message: String| ImportFailure {
        reason: "InvalidTagSource".into(),
        message,
    };
    let Some(from) = tag.from.as_ref() else {
        return Err(invalid(format!("tag {:?} has no `from`", tag.name)));
    };
    check_policies(tag)?;
    let name = from.name.clone().unwrap_or_default();
    if name.is_empty() {
        return Err(invalid(format!(
            "tag {:?} has an empty `from.name`",
            tag.name
        )));
    }
    let source_namespace = from
        .namespace
        .clone()
        .filter(|ns| !ns.is_empty())
        .unwrap_or_else(|| namespace.to_owned());
    match from.kind.as_deref().unwrap_or_default() {
        KIND_DOCKER_IMAGE => Ok(TagSource::DockerImage { name }),
        KIND_IMAGE_STREAM_TAG => {
            let (source_stream, source_tag) = parse_tag_source_name(&name).map_err(|e| {
                invalid(format!(
                    "tag {:?}: ImageStreamTag is not `<tag>` or `<stream>:<tag>`: {e}",
                    tag.name
                ))
            })?;
            let source_stream = source_stream.unwrap_or(stream);
            if tag.is_scheduled() {
                return Err(invalid(format!(
                    "tag {:?}: importPolicy.scheduled is only valid on DockerImage tags",
                    tag.name
                )));
            }
            if source_namespace == namespace && source_stream == stream {
                Ok(TagSource::SameStreamTag {
                    tag: source_tag.to_owned(),
                })
            } else {
                Ok(TagSource::OtherStreamTag {
                    namespace: source_namespace,
                    stream: source_stream.to_owned(),
                    tag: source_tag.to_owned(),
                })
            }
        }
        KIND_IMAGE_STREAM_IMAGE => {
            let (source_stream, digest) = parse_image_source_name(&name).map_err(|e| {
                invalid(format!(
                    "tag {:?}: ImageStreamImage is not `<stream>@<digest>` or `<digest>`: {e}",
                    tag.name
                ))
            })?;
            if tag.is_scheduled() {
                return Err(invalid(format!(
                    "tag {:?}: importPolicy.scheduled is only valid on DockerImage tags",
                    tag.name
                )));
            }
            Ok(TagSource::StreamImage {
                namespace: source_namespace,
                stream: source_stream.unwrap_or(stream).to_owned(),
                digest,
            })
        }
        other => Err(invalid(format!(
            "tag {:?}: from.kind {other:?} is not DockerImage, ImageStreamTag or ImageStreamImage",
            tag.name
        ))),
    }
}

/// `importPolicy.importMode` and `referencePolicy.type` must be values OpenShift knows (or empty).
fn check_policies(tag: &TagReference) -> Result<(), ImportFailure> {
    let mode = tag.import_mode();
    if mode != IMPORT_MODE_LEGACY && mode != IMPORT_MODE_PRESERVE_ORIGINAL {
        return Err(ImportFailure {
            reason: "InvalidImportPolicy".into(),
            message: format!(
                "tag {:?}: importPolicy.importMode {:?} is not Legacy or PreserveOriginal",
                tag.name,
                crate::domain::text::shorten(mode, 100)
            ),
        });
    }
    let policy = tag.reference_policy_type();
    if policy != REFERENCE_POLICY_SOURCE && policy != REFERENCE_POLICY_LOCAL {
        return Err(ImportFailure {
            reason: "InvalidReferencePolicy".into(),
            message: format!(
                "tag {:?}: referencePolicy.type {:?} is not Source or Local",
                tag.name,
                crate::domain::text::shorten(policy, 100)
            ),
        });
    }
    Ok(())
}

fn cycle(tag: &str, path: &[String]) -> ImportFailure {
    ImportFailure {
        reason: "TagCycle".into(),
        message: format!(
            "tag {tag:?} is part of a cycle of tag references: {}",
            path.join(" -> ")
        ),
    }
}

/// Follows same-stream aliases from `tag` to the tag that holds the images. The lookup reads the
/// stream's spec tags; `Err` when the chain loops or names a tag the stream does not have.
pub fn alias_root<'a>(
    tags: &'a [TagReference],
    tag: &str,
    namespace: &str,
    stream: &str,
) -> Result<&'a TagReference, ImportFailure> {
    let mut path = vec![tag.to_owned()];
    let mut current = tag.to_owned();
    for _ in 0..MAX_CHAIN {
        let Some(spec) = tags.iter().find(|t| t.name == current) else {
            return Err(ImportFailure {
                reason: "NotFound".into(),
                message: format!(
                    "tag {tag:?} follows {current:?}, which this stream does not have"
                ),
            });
        };
        match tag_source(spec, namespace, stream) {
            Ok(TagSource::SameStreamTag { tag: next }) => {
                if path.contains(&next) {
                    path.push(next);
                    return Err(cycle(tag, &path));
                }
                path.push(next.clone());
                current = next;
            }
            _ => return Ok(spec),
        }
    }
    Err(cycle(tag, &path))
}

/// Finds the current event of `namespace/stream:tag` for a one-time copy, following other streams'
/// `ImageStreamTag` specs only to detect cycles (`a:x -> b:y -> a:x`). `lookup` returns a stream
/// by namespace and name.
pub fn copy_source_event(
    lookup: &dyn Fn(&str, &str) -> Option<ImageStream>,
    origin: (&str, &str, &str),
    source: (&str, &str, &str),
) -> Result<TagEvent, ImportFailure> {
    let (origin_ns, origin_stream, origin_tag) = origin;
    let describe = |(ns, s, t): (&str, &str, &str)| format!("{ns}/{s}:{t}");
    let mut path = vec![describe(origin), describe(source)];
    let (mut ns, mut name, mut tag) = (
        source.0.to_owned(),
        source.1.to_owned(),
        source.2.to_owned(),
    );
    let first = lookup(&ns, &name).ok_or_else(|| ImportFailure {
        reason: "NotFound".into(),
        message: format!("image stream {ns}/{name} does not exist"),
    })?;
    let event = first
        .status
        .as_ref()
        .and_then(|s| s.tag(&tag))
        .and_then(|t| t.items.first().cloned());
    // Walk the chain of specs to see whether it comes back to the origin.
    let mut stream = Some(first);
    for _ in 0..MAX_CHAIN {
        let Some(current) = stream.take() else { break };
        let Some(spec) = current.spec.tags.iter().find(|t| t.name == tag) else {
            break;
        };
        match tag_source(spec, &ns, &name) {
            Ok(TagSource::SameStreamTag { tag: next }) => tag = next,
            Ok(TagSource::OtherStreamTag {
                namespace,
                stream: s,
                tag: t,
            }) => {
                ns = namespace;
                name = s;
                tag = t;
            }
            _ => break,
        }
        path.push(format!("{ns}/{name}:{tag}"));
        if (ns.as_str(), name.as_str(), tag.as_str()) == (origin_ns, origin_stream, origin_tag) {
            return Err(cycle(origin_tag, &path));
        }
        stream = lookup(&ns, &name);
    }
    event.ok_or_else(|| ImportFailure {
        reason: "NotFound".into(),
        message: format!("tag {} has no image yet", describe(source)),
    })
}

/// Finds the event for `digest` (a full digest or a unique prefix such as `sha256:4a8c` or
/// `4a8c`) in any tag's history of `stream`.
pub fn stream_image_event(
    stream: &ImageStream,
    digest: &DigestPrefix,
) -> Result<TagEvent, ImportFailure> {
    let name = stream.metadata.name.clone().unwrap_or_default();
    let mut matches: Vec<&TagEvent> = stream
        .status
        .iter()
        .flat_map(|s| s.tags.iter())
        .flat_map(|t| t.items.iter())
        .filter(|e| digest.matches(&e.image))
        .collect();
    matches.sort_by(|a, b| a.image.cmp(&b.image));
    matches.dedup_by(|a, b| a.image == b.image);
    match matches.as_slice() {
        [] => Err(ImportFailure {
            reason: "NotFound".into(),
            message: format!(
                "image stream {name} has no image matching {:?}",
                digest.to_string()
            ),
        }),
        [one] => Ok((*one).clone()),
        many => Err(ImportFailure {
            reason: "AmbiguousImage".into(),
            message: format!(
                "{:?} matches {} images of image stream {name}; give more of the digest",
                digest.to_string(),
                many.len()
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::image_stream::{
        ImageStreamSpec, ImageStreamStatus, NamedTagEventList, TagSource as FromRef,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn tag(name: &str, kind: &str, from: &str) -> TagReference {
        TagReference {
            name: name.into(),
            from: Some(FromRef {
                kind: Some(kind.into()),
                name: Some(from.into()),
                ..FromRef::default()
            }),
            ..TagReference::default()
        }
    }

    #[test]
    fn unknown_import_modes_and_reference_policies_make_the_tag_invalid() {
        use crate::api::image_stream::{TagImportPolicy, TagReferencePolicy};
        let with = |mode: &str, policy: &str| TagReference {
            import_policy: Some(TagImportPolicy {
                import_mode: Some(mode.into()),
                ..TagImportPolicy::default()
            }),
            reference_policy: Some(TagReferencePolicy {
                type_: Some(policy.into()),
            }),
            ..tag("v1", "DockerImage", "example.com/app:v1")
        };
        for (mode, policy) in [
            ("", ""),
            ("Legacy", "Source"),
            ("PreserveOriginal", "Local"),
        ] {
            assert!(
                tag_source(&with(mode, policy), "ns", "s").is_ok(),
                "{mode} {policy}"
            );
        }
        let bad_mode = tag_source(&with("Preserve", "Source"), "ns", "s").unwrap_err();
        assert_eq!(bad_mode.reason, "InvalidImportPolicy");
        assert_eq!(
            bad_mode.message,
            "tag \"v1\": importPolicy.importMode \"Preserve\" is not Legacy or PreserveOriginal"
        );
        let bad_policy = tag_source(&with("Legacy", "local"), "ns", "s").unwrap_err();
        assert_eq!(bad_policy.reason, "InvalidReferencePolicy");
        assert_eq!(
            bad_policy.message,
            "tag \"v1\": referencePolicy.type \"local\" is not Source or Local"
        );
    }

    fn event(image: &str) -> TagEvent {
        TagEvent {
            created: Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
            docker_image_reference: format!("example.com/app@{image}"),
            image: image.into(),
            generation: 1,
            platforms: Vec::new(),
        }
    }

    fn stream(
        ns: &str,
        name: &str,
        tags: Vec<TagReference>,
        history: Vec<(&str, Vec<TagEvent>)>,
    ) -> ImageStream {
        let mut s = ImageStream::new(
            name,
            ImageStreamSpec {
                tags,
                ..ImageStreamSpec::default()
            },
        );
        s.metadata.namespace = Some(ns.into());
        s.status = Some(ImageStreamStatus {
            tags: history
                .into_iter()
                .map(|(t, items)| NamedTagEventList {
                    tag: t.into(),
                    items,
                    conditions: Vec::new(),
                })
                .collect(),
            ..ImageStreamStatus::default()
        });
        s
    }

    #[test]
    fn sources_are_classified_by_kind_and_name() {
        let cases = [
            (
                tag("a", "DockerImage", "nginx:1"),
                Ok(TagSource::DockerImage {
                    name: "nginx:1".into(),
                }),
            ),
            (
                tag("a", "ImageStreamTag", "latest"),
                Ok(TagSource::SameStreamTag {
                    tag: "latest".into(),
                }),
            ),
            (
                tag("a", "ImageStreamTag", "web:latest"),
                Ok(TagSource::SameStreamTag {
                    tag: "latest".into(),
                }),
            ),
            (
                tag("a", "ImageStreamTag", "other:v1"),
                Ok(TagSource::OtherStreamTag {
                    namespace: "ns".into(),
                    stream: "other".into(),
                    tag: "v1".into(),
                }),
            ),
            (
                tag("a", "ImageStreamImage", "other@sha256:4a8c"),
                Ok(TagSource::StreamImage {
                    namespace: "ns".into(),
                    stream: "other".into(),
                    digest: DigestPrefix::parse("sha256:4a8c").unwrap(),
                }),
            ),
            // As OpenShift reads them: `stream:` is `stream:latest`, a bare digest is an image
            // of the tag's own stream.
            (
                tag("a", "ImageStreamTag", "web:"),
                Ok(TagSource::SameStreamTag {
                    tag: "latest".into(),
                }),
            ),
            (
                tag("a", "ImageStreamImage", "sha256:4a8c"),
                Ok(TagSource::StreamImage {
                    namespace: "ns".into(),
                    stream: "web".into(),
                    digest: DigestPrefix::parse("sha256:4a8c").unwrap(),
                }),
            ),
        ];
        for (spec, expected) in cases {
            assert_eq!(
                tag_source(&spec, "ns", "web").map_err(|e| e.reason),
                expected.map_err(|_: ()| String::new())
            );
        }
    }

    #[test]
    fn a_tag_in_another_namespace_is_another_stream_even_with_the_same_name() {
        let mut spec = tag("a", "ImageStreamTag", "web:latest");
        spec.from.as_mut().unwrap().namespace = Some("shared".into());
        assert_eq!(
            tag_source(&spec, "ns", "web").unwrap(),
            TagSource::OtherStreamTag {
                namespace: "shared".into(),
                stream: "web".into(),
                tag: "latest".into()
            }
        );
    }

    #[test]
    fn invalid_sources_give_a_reason_and_a_message_naming_the_tag() {
        let mut scheduled_alias = tag("b", "ImageStreamTag", "latest");
        scheduled_alias.import_policy = Some(crate::api::image_stream::TagImportPolicy {
            scheduled: Some(true),
            ..Default::default()
        });
        for spec in [
            tag("b", "DockerImageX", "nginx"),
            tag("b", "ImageStreamTag", "a:b:c"),
            tag("b", "ImageStreamTag", ":x"),
            tag("b", "ImageStreamImage", "nodigest"),
            tag("b", "ImageStreamImage", "other@sha256:"),
            tag("b", "ImageStreamImage", "other@"),
            tag("b", "DockerImage", ""),
            scheduled_alias,
            TagReference {
                name: "b".into(),
                ..TagReference::default()
            },
        ] {
            let failure = tag_source(&spec, "ns", "web").unwrap_err();
            assert_eq!(failure.reason, "InvalidTagSource");
            assert!(failure.message.contains("\"b\""), "{}", failure.message);
        }
    }

    #[test]
    fn aliases_follow_chains_to_the_tag_with_images() {
        let tags = vec![
            tag("stable", "ImageStreamTag", "candidate"),
            tag("candidate", "ImageStreamTag", "web:latest"),
            tag("latest", "DockerImage", "example.com/web:latest"),
        ];
        assert_eq!(
            alias_root(&tags, "stable", "ns", "web").unwrap().name,
            "latest"
        );
    }

    #[test]
    fn alias_cycles_and_missing_sources_end_in_a_failure() {
        let tags = vec![
            tag("a", "ImageStreamTag", "b"),
            tag("b", "ImageStreamTag", "a"),
        ];
        let failure = alias_root(&tags, "a", "ns", "web").unwrap_err();
        assert_eq!(failure.reason, "TagCycle");
        assert!(
            failure.message.contains("a -> b -> a"),
            "{}",
            failure.message
        );
        let tags = vec![tag("a", "ImageStreamTag", "missing")];
        assert_eq!(
            alias_root(&tags, "a", "ns", "web").unwrap_err().reason,
            "NotFound"
        );
    }

    #[test]
    fn a_copy_takes_the_source_current_event() {
        let other = stream(
            "ns",
            "other",
            vec![tag("v1", "DockerImage", "x")],
            vec![("v1", vec![event("sha256:bb"), event("sha256:aa")])],
        );
        let lookup = |ns: &str, name: &str| (ns == "ns" && name == "other").then(|| other.clone());
        let copied =
            copy_source_event(&lookup, ("ns", "web", "copy"), ("ns", "other", "v1")).unwrap();
        assert_eq!(copied.image, "sha256:bb");
    }

    #[test]
    fn a_cross_stream_cycle_ends_in_a_failure() {
        let a = stream("ns", "a", vec![tag("x", "ImageStreamTag", "b:y")], vec![]);
        let b = stream(
            "ns",
            "b",
            vec![tag("y", "ImageStreamTag", "a:x")],
            vec![("y", vec![event("sha256:cc")])],
        );
        let lookup = |_: &str, name: &str| match name {
            "a" => Some(a.clone()),
            "b" => Some(b.clone()),
            _ => None,
        };
        let failure = copy_source_event(&lookup, ("ns", "a", "x"), ("ns", "b", "y")).unwrap_err();
        assert_eq!(failure.reason, "TagCycle");
    }

    #[test]
    fn a_copy_from_a_missing_stream_or_empty_tag_fails_with_not_found() {
        let lookup = |_: &str, _: &str| None;
        assert_eq!(
            copy_source_event(&lookup, ("ns", "a", "x"), ("ns", "b", "y"))
                .unwrap_err()
                .reason,
            "NotFound"
        );
        let b = stream("ns", "b", vec![], vec![]);
        let lookup = |_: &str, _: &str| Some(b.clone());
        assert_eq!(
            copy_source_event(&lookup, ("ns", "a", "x"), ("ns", "b", "y"))
                .unwrap_err()
                .reason,
            "NotFound"
        );
    }

    #[test]
    fn stream_images_match_a_unique_digest_prefix() {
        let digest = |start: &str| format!("sha256:{start:0<64}");
        let s = stream(
            "ns",
            "other",
            vec![],
            vec![
                ("v1", vec![event(&digest("abc1")), event(&digest("abd2"))]),
                ("v2", vec![event(&digest("abc1"))]),
            ],
        );
        let find = |id: &str| stream_image_event(&s, &DigestPrefix::parse(id).unwrap());
        assert_eq!(find("sha256:abc").unwrap().image, digest("abc1"));
        assert_eq!(find("abc").unwrap().image, digest("abc1"));
        assert_eq!(find("sha256:ab").unwrap_err().reason, "AmbiguousImage");
        assert_eq!(find("sha256:ff").unwrap_err().reason, "NotFound");
    }
}
