//! openshift/openshift-apiserver `pkg/image/apiserver/internal/imageutil/helpers_test.go`: how a tag
//! event joins a history (`AddTagEventToImageStream`), how aliases follow their source
//! (`UpdateTrackingTags`), how an ImageStreamImage finds its image (`ResolveImageID`), and which
//! event a tag stands for (`LatestTaggedImage`, `ResolveLatestTaggedImage`), checked against the
//! history rules, the status computation, tag sources and trigger resolution of this crate.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use crate::api::image_stream::{
    ImageStream, ImageStreamSpec, ImageStreamStatus, NamedTagEventList, TagEvent, TagReference,
    TagReferencePolicy, TagSource as FromRef,
};
use crate::domain::history::{HistoryChange, record_tag_event};
use crate::domain::image_name::{DigestPrefix, DigestPrefixError};
use crate::domain::reference::ImageReference;
use crate::domain::stream_status::{StatusSettings, StreamIdentity, TagOutcome, next_status};
use crate::domain::tag_source::{TagSource, copy_source_event, stream_image_event, tag_source};
use crate::domain::trigger_resolution::resolve_tag_image;

/// A tag event as the upstream tables write them: no time, no generation.
fn event(reference: &str, image: &str) -> TagEvent {
    TagEvent {
        created: Time(Timestamp::UNIX_EPOCH),
        docker_image_reference: reference.to_owned(),
        image: image.to_owned(),
        generation: 0,
        platforms: Vec::new(),
    }
}

fn history(tag: &str, items: Vec<TagEvent>) -> NamedTagEventList {
    NamedTagEventList {
        tag: tag.to_owned(),
        items,
        conditions: Vec::new(),
    }
}

fn spec_tag(name: &str, from: Option<(&str, &str, Option<&str>)>) -> TagReference {
    TagReference {
        name: name.to_owned(),
        from: from.map(|(kind, from_name, namespace)| FromRef {
            kind: Some(kind.to_owned()),
            name: Some(from_name.to_owned()),
            namespace: namespace.map(str::to_owned),
            ..FromRef::default()
        }),
        ..TagReference::default()
    }
}

fn stream(namespace: &str, name: &str, tags: Vec<NamedTagEventList>) -> ImageStream {
    let mut stream = ImageStream::new(name, ImageStreamSpec::default());
    stream.metadata.namespace = Some(namespace.to_owned());
    stream.status = Some(ImageStreamStatus {
        tags,
        ..ImageStreamStatus::default()
    });
    stream
}

// ---------------------------------------------------------------------------------------------------
// helpers_test.go TestAddTagEventToImageStream
// ---------------------------------------------------------------------------------------------------

#[test]
fn a_tag_event_joins_the_history_as_add_tag_event_to_image_stream_adds_it() {
    // (upstream case, history of the tag before, next event, history after, change). Upstream's
    // `updated` bool is `change != Unchanged`. No cap: OpenShift keeps every event.
    type Case = (
        &'static str,
        Vec<TagEvent>,
        TagEvent,
        Vec<TagEvent>,
        HistoryChange,
    );
    let cases: Vec<Case> = vec![
        (
            "nil entry for tag",
            vec![],
            event("ref", "image"),
            vec![event("ref", "image")],
            HistoryChange::Started,
        ),
        // "empty items for tag": the same, for a tag listed with no items; our histories are
        // vectors, so both cases start from an empty one.
        (
            "empty items for tag",
            Vec::new(),
            event("ref", "image"),
            vec![event("ref", "image")],
            HistoryChange::Started,
        ),
        (
            "same ref and image",
            vec![event("ref", "image")],
            event("ref", "image"),
            vec![event("ref", "image")],
            HistoryChange::Unchanged,
        ),
        (
            "same ref, different image",
            vec![event("ref", "image")],
            event("ref", "newimage"),
            vec![event("ref", "newimage")],
            HistoryChange::UpdatedInPlace,
        ),
        (
            "different ref, same image",
            vec![event("ref", "image")],
            event("newref", "image"),
            vec![event("newref", "image")],
            HistoryChange::UpdatedInPlace,
        ),
        (
            "different ref, different image",
            vec![event("ref", "image")],
            event("newref", "newimage"),
            vec![event("newref", "newimage"), event("ref", "image")],
            HistoryChange::Prepended,
        ),
    ];
    for (name, before, next, after, change) in cases {
        let mut items = before;
        assert_eq!(record_tag_event(&mut items, next, 0), change, "{name}");
        assert_eq!(items, after, "{name}");
    }
}

#[test]
fn the_history_cap_is_where_add_tag_event_to_image_stream_deliberately_differs() {
    // TestAddTagEventToImageStream "different ref, different image", inverted: OpenShift keeps
    // both events; with `--max-tag-history 1` the older one falls off (README, "Where it
    // deliberately differs": history length).
    let mut items = vec![event("ref", "image")];
    let change = record_tag_event(&mut items, event("newref", "newimage"), 1);
    assert_eq!(change, HistoryChange::Prepended);
    assert_eq!(items, vec![event("newref", "newimage")]);
}

// ---------------------------------------------------------------------------------------------------
// helpers_test.go TestUpdateTrackingTags
// ---------------------------------------------------------------------------------------------------

/// One row of TestUpdateTrackingTags.
struct Tracking {
    name: &'static str,
    /// Spec tags tracking `from_name` (upstream `trackingTags`).
    tracking: &'static [&'static str],
    /// `from.name` of the tracking tags; upstream's default is `2.0`.
    from_name: &'static str,
    /// `from.namespace` of the tracking tags.
    from_namespace: Option<&'static str>,
    /// Spec tags with no `from` (upstream `nonTrackingTags`).
    not_tracking: &'static [&'static str],
    /// Tags whose history holds `ns/ruby@id` before the update (upstream `statusTags`).
    status: &'static [&'static str],
    /// The event `2.0` gets: (dockerImageReference, image).
    update: (&'static str, &'static str),
    /// Spec tags whose current event is the update afterwards (upstream `expectedUpdates`).
    expected: &'static [&'static str],
}

const NEW: (&str, &str) = ("ns/ruby@newid", "newid");

fn track(name: &'static str) -> Tracking {
    Tracking {
        name,
        tracking: &[],
        from_name: "2.0",
        from_namespace: None,
        not_tracking: &[],
        status: &[],
        update: NEW,
        expected: &[],
    }
}

/// Runs one row through the status computation: `2.0` gets `update` as this round's outcome, and
/// the returned status is what every spec tag holds afterwards.
fn track_update(case: &Tracking, extra: Vec<TagReference>) -> ImageStreamStatus {
    // Adapted: OpenShift keeps status tags that no spec tag names (pushed images); here a status
    // tag exists only for a spec tag, so the tracked tags `2.0` and `3.0` are DockerImage tags.
    let mut spec = vec![
        spec_tag("2.0", Some(("DockerImage", "example.com/ruby:2.0", None))),
        spec_tag("3.0", Some(("DockerImage", "example.com/ruby:3.0", None))),
    ];
    for tag in case.tracking {
        spec.push(spec_tag(
            tag,
            Some(("ImageStreamTag", case.from_name, case.from_namespace)),
        ));
    }
    spec.extend(case.not_tracking.iter().map(|tag| spec_tag(tag, None)));
    spec.extend(extra);
    let current = ImageStreamStatus {
        tags: case
            .status
            .iter()
            .map(|tag| history(tag, vec![event("ns/ruby@id", "id")]))
            .collect(),
        ..ImageStreamStatus::default()
    };
    let outcomes = vec![(
        "2.0".to_owned(),
        TagOutcome::Event(event(case.update.0, case.update.1)),
    )];
    let identity = StreamIdentity {
        namespace: "ns",
        name: "ruby",
        generation: 0,
    };
    let (status, _) = next_status(
        Some(&current),
        &spec,
        &outcomes,
        identity,
        &StatusSettings::default(),
        &Time(Timestamp::UNIX_EPOCH),
    );
    status
}

#[test]
fn aliases_follow_their_source_as_update_tracking_tags_moves_them() {
    let cases = [
        // "nil from": upstream replaces the spec with one tag `latest` without `from`; here it
        // sits beside the DockerImage tags (see track_update). "from kind not ImageStreamTag" is
        // the test after this one.
        Tracking {
            not_tracking: &["latest"],
            ..track("nil from")
        },
        // "from namespace different": upstream moves the stream to namespace `other` and has no
        // tracking tag at all, so the row checks nothing; what it names is a `from.namespace`
        // other than the stream's, which makes the tag a one-time copy, not an alias.
        Tracking {
            tracking: &["latest"],
            from_namespace: Some("other"),
            status: &["2.0", "3.0"],
            ..track("from namespace different")
        },
        // "from name different": upstream lists `otherstream:2.0` as a tracking *tag name* and
        // asserts nothing for it; what it names is `from.name: otherstream:2.0`, a tag of
        // another stream, copied once, never moved with this stream's `2.0`.
        Tracking {
            tracking: &["latest"],
            from_name: "otherstream:2.0",
            status: &["2.0", "3.0"],
            ..track("from name different")
        },
        Tracking {
            status: &["2.0", "3.0"],
            ..track("no tracking")
        },
        Tracking {
            tracking: &["latest"],
            from_name: "ruby:2.0",
            status: &["2.0", "3.0"],
            expected: &["latest"],
            ..track("stream name in from name")
        },
        Tracking {
            tracking: &["latest"],
            not_tracking: &["other"],
            status: &["2.0", "3.0"],
            expected: &["latest"],
            ..track("1 tracking, 1 not")
        },
        Tracking {
            tracking: &["latest1", "latest2"],
            not_tracking: &["other1", "other2"],
            status: &["2.0", "3.0"],
            expected: &["latest1", "latest2"],
            ..track("multiple tracking, multiple not")
        },
        // "no change to tracked tag": `2.0` is given the event it already has. Upstream asserts
        // nothing; `latest`, which had no history, takes `2.0`'s current event (upstream's
        // AddTagEventToImageStream adds it too), and `2.0` itself keeps its single entry.
        Tracking {
            tracking: &["latest"],
            status: &["2.0", "3.0"],
            update: ("ns/ruby@id", "id"),
            expected: &["latest"],
            ..track("no change to tracked tag")
        },
    ];
    for case in &cases {
        let status = track_update(case, Vec::new());
        let updated: Vec<&str> = case
            .tracking
            .iter()
            .chain(case.not_tracking)
            .copied()
            .filter(|tag| {
                status
                    .tag(tag)
                    .and_then(NamedTagEventList::current)
                    .is_some_and(|e| {
                        (e.docker_image_reference.as_str(), e.image.as_str()) == case.update
                    })
            })
            .collect();
        assert_eq!(updated, case.expected, "{}", case.name);
        // `2.0` itself: the update joins its history by the history rules.
        let mut source = vec![event(case.update.0, case.update.1)];
        if case.status.contains(&"2.0") && case.update == NEW {
            source.push(event("ns/ruby@id", "id"));
        }
        assert_eq!(
            status.tag("2.0").map(|t| t.items.clone()),
            Some(source),
            "{}",
            case.name
        );
    }
}

#[test]
fn a_tag_whose_from_is_another_kind_does_not_follow_the_update() {
    // TestUpdateTrackingTags "from kind not ImageStreamTag": `latest` names `asdf` as an
    // ImageStreamImage. The name is not a digest, so the tag is invalid here; either way it does
    // not move with `2.0`.
    let case = Tracking {
        status: &["2.0", "3.0"],
        ..track("from kind not ImageStreamTag")
    };
    let image_tag = spec_tag("latest", Some(("ImageStreamImage", "asdf", None)));
    assert_eq!(
        tag_source(&image_tag, "ns", "ruby").map_err(|f| f.reason),
        Err("InvalidTagSource".to_owned())
    );
    let status = track_update(&case, vec![image_tag]);
    assert_eq!(status.tag("latest"), None);
}

// ---------------------------------------------------------------------------------------------------
// helpers_test.go TestResolveImageID (DigestOrImageMatch does the matching upstream)
// ---------------------------------------------------------------------------------------------------

const D25: &str = "sha256:3c87c572822935df60f0f5d3665bd376841a7fcfeb806b5f212de6a00e9a7b25";
const D1: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000001";
const D2: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000002";
const D3: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000003";
const D4: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000004";

/// The reference-and-image pair, or the failure reason, of an ImageStreamImage lookup.
fn resolve_image_id(tags: Vec<NamedTagEventList>, id: &str) -> Result<(String, String), String> {
    let prefix = DigestPrefix::parse(id).map_err(|e| format!("parse: {e}"))?;
    stream_image_event(&stream("ns", "repo", tags), &prefix)
        .map(|e| (e.docker_image_reference, e.image))
        .map_err(|failure| failure.reason)
}

#[test]
fn an_image_stream_image_finds_its_event_as_resolve_image_id_does() {
    let two_tags = || {
        vec![
            history(
                "tag1",
                vec![
                    event(&format!("repo@{D1}"), D1),
                    event(&format!("repo@{D2}"), D2),
                ],
            ),
            history(
                "tag2",
                vec![
                    event(&format!("repo@{D3}"), D3),
                    event(&format!("repo@{D4}"), D4),
                ],
            ),
        ]
    };
    let found = |image: &str| Ok((format!("repo@{image}"), image.to_owned()));
    type Case = (
        &'static str,
        Vec<NamedTagEventList>,
        &'static str,
        Result<(String, String), String>,
    );
    let cases: Vec<Case> = vec![
        (
            "single tag, match ID prefix",
            vec![history("tag1", vec![event(&format!("repo@{D25}"), D25)])],
            &D25["sha256:".len()..],
            found(D25),
        ),
        (
            // The recorded image is one hex digit short of a digest: nothing matches it.
            "single tag, ID error",
            vec![history(
                "tag1",
                vec![event(
                    &format!("repo@{}", &D25[..D25.len() - 1]),
                    &D25[..D25.len() - 1],
                )],
            )],
            &D25["sha256:".len()..],
            Err("NotFound".to_owned()),
        ),
        (
            "no tag",
            vec![],
            &D25["sha256:".len()..],
            Err("NotFound".to_owned()),
        ),
        (
            "find match out of multiple tags in first position",
            two_tags(),
            D1,
            found(D1),
        ),
        (
            "find match out of multiple tags in last position",
            two_tags(),
            D4,
            found(D4),
        ),
    ];
    for (name, tags, id, expected) in cases {
        assert_eq!(resolve_image_id(tags, id), expected, "{name}");
    }
}

#[test]
fn image_ids_that_are_not_digests_are_where_resolve_image_id_deliberately_differs() {
    // TestResolveImageID "single tag, match string prefix" and "multiple match", inverted: on
    // OpenShift an Image may carry a name that is not a digest (`mytag`), matched as a plain string
    // prefix. Here every Image is named by its digest and `reference: true` events record no image,
    // so an id that is neither a digest nor a hex prefix can never match: it is refused when the
    // name is read, with a message, where OpenShift answers NotFound or Conflict at lookup.
    let not_a_digest = |id: &str| {
        Err(format!(
            "parse: {}",
            DigestPrefixError::InvalidHex {
                id: id.to_owned(),
                max: 128,
            }
        ))
    };
    assert_eq!(
        resolve_image_id(
            vec![history("tag1", vec![event("repo:mytag", "mytag")])],
            "mytag"
        ),
        not_a_digest("mytag"),
        "single tag, match string prefix"
    );
    assert_eq!(
        resolve_image_id(
            vec![history(
                "tag1",
                vec![event("repo@mytag", "mytag"), event("repo@mytag", "mytag2")]
            )],
            "mytag"
        ),
        not_a_digest("mytag"),
        "multiple match"
    );
    // "multiple match" with digest-named images, as they are here: a prefix two images share
    // is ambiguous (OpenShift's Conflict).
    assert_eq!(
        resolve_image_id(
            vec![history(
                "tag1",
                vec![
                    event(&format!("repo@{D1}"), D1),
                    event(&format!("repo@{D2}"), D2)
                ]
            )],
            "sha256:000000"
        ),
        Err("AmbiguousImage".to_owned()),
        "multiple match, digest-named"
    );
}

// ---------------------------------------------------------------------------------------------------
// helpers_test.go TestLatestTaggedImage
// ---------------------------------------------------------------------------------------------------

#[test]
fn a_tag_of_another_stream_stands_for_its_latest_event_as_latest_tagged_image_says() {
    // Mapped onto a spec tag `copy` with `from: ImageStreamTag other:<tag>`: the event copied is
    // LatestTaggedImage(other, tag). An empty tag (`other:`) reads as `latest`, as upstream.
    let latest = || history("latest", vec![event("latest-ref", ""), event("older", "")]);
    let foo = || history("foo", vec![event("foo-ref", ""), event("older", "")]);
    let cases: Vec<(&str, Vec<NamedTagEventList>, Result<&str, &str>)> = vec![
        ("foo", vec![], Err("NotFound")),
        ("foo", vec![latest()], Err("NotFound")),
        ("", vec![latest()], Ok("latest-ref")),
        ("foo", vec![latest(), foo()], Ok("foo-ref")),
    ];
    for (index, (tag, tags, expected)) in cases.into_iter().enumerate() {
        let other = stream("ns", "other", tags);
        let copy = spec_tag(
            "copy",
            Some(("ImageStreamTag", &format!("other:{tag}"), None)),
        );
        let Ok(TagSource::OtherStreamTag {
            namespace,
            stream: source_stream,
            tag: source_tag,
        }) = tag_source(&copy, "ns", "web")
        else {
            panic!("{index}: other:{tag} is not read as a tag of another stream");
        };
        let lookup = |_: &str, _: &str| Some(other.clone());
        let copied = copy_source_event(
            &lookup,
            ("ns", "web", "copy"),
            (&namespace, &source_stream, &source_tag),
        );
        assert_eq!(
            copied
                .as_ref()
                .map(|e| e.docker_image_reference.as_str())
                .map_err(|f| f.reason.as_str()),
            expected,
            "{index}"
        );
    }
}

// ---------------------------------------------------------------------------------------------------
// helpers_test.go TestResolveLatestTaggedImage
// ---------------------------------------------------------------------------------------------------

#[test]
fn a_tag_resolves_to_a_pull_spec_by_its_reference_policy_as_resolve_latest_tagged_image_does() {
    // Mapped onto trigger resolution: upstream's `status.dockerImageRepository`
    // `test.server/a/b` is the internal registry host `test.server` with stream `a/b`. The tag
    // comes from a reference to the stream (`b` or `b:foo`), where no tag means `latest`.
    const IMAGE: &str = "sha256:4ab15c48b859c2920dd5224f92aabcd39a52794c5b3cf088fb3bbb438756c246";
    let latest = |image: &str| {
        history(
            "latest",
            vec![event("latest-ref", image), event("older", "")],
        )
    };
    let foo = || history("foo", vec![event("foo-ref", ""), event("older", "")]);
    let policy = |kind: &str| {
        vec![TagReference {
            reference_policy: Some(TagReferencePolicy {
                type_: Some(kind.to_owned()),
            }),
            ..spec_tag("latest", None)
        }]
    };
    type Case = (
        &'static str,
        Option<&'static str>,
        Vec<TagReference>,
        Vec<NamedTagEventList>,
        Option<String>,
    );
    let cases: Vec<Case> = vec![
        ("foo", None, vec![], vec![], None),
        ("foo", None, vec![], vec![latest("")], None),
        (
            "",
            None,
            vec![],
            vec![latest("")],
            Some("latest-ref".into()),
        ),
        (
            "foo",
            None,
            vec![],
            vec![latest(""), foo()],
            Some("foo-ref".into()),
        ),
        // the default reference policy does nothing
        (
            "",
            None,
            policy("Source"),
            vec![latest(IMAGE)],
            Some("latest-ref".into()),
        ),
        // the local reference policy does nothing unless reference is set
        (
            "",
            None,
            policy("Local"),
            vec![latest(IMAGE)],
            Some("latest-ref".into()),
        ),
        // the local reference policy does nothing unless the image id is set
        (
            "",
            Some("test.server"),
            policy("Local"),
            vec![latest("")],
            Some("latest-ref".into()),
        ),
        // the local reference policy uses the output status reference and the image id
        (
            "",
            Some("test.server"),
            policy("Local"),
            vec![latest(IMAGE)],
            Some(format!("test.server/a/b@{IMAGE}")),
        ),
    ];
    for (index, (tag, host, spec_tags, tags, expected)) in cases.into_iter().enumerate() {
        let written = if tag.is_empty() {
            "b".to_owned()
        } else {
            format!("b:{tag}")
        };
        let reference = ImageReference::parse(&written).unwrap();
        let tag = reference.tag_or_latest();
        let status = ImageStreamStatus {
            tags,
            ..ImageStreamStatus::default()
        };
        let current = status.tag(tag).and_then(NamedTagEventList::current);
        let spec = spec_tags.iter().find(|t| t.name == tag);
        assert_eq!(
            resolve_tag_image("a", "b", spec, current, host),
            expected,
            "{index}"
        );
    }
}
