//! Cases of openshift/runtime-utils `pkg/registries/registries_test.go` and `topo_test.go` (read at
//! 7bdb5b9c177b, the version that merges ImageContentSourcePolicy with ImageDigestMirrorSet): how
//! OpenShift turns the three mirror kinds into the registries.conf its nodes pull with. Each
//! rendered registries.conf entry is checked through [`MirrorIndex::plan`] for an image below its
//! source (`<source>/app`): the digest-only mirrors of an entry are the plan of a pull by digest,
//! the tag-only ones the plan of a pull by tag, and `blocked = true` is a plan without the source.
//!
//! Not ported: `insecure` and `blocked` scopes (image.config.openshift.io `registrySources`, which
//! this operator does not read; `insecure` is a property of the stream tag here), the propagation of
//! those flags to nested scopes, and the TOML round trip.

use crate::api::image_content_source_policy::{
    ImageContentSourcePolicy, ImageContentSourcePolicySpec, RepositoryDigestMirrors,
};
use crate::api::image_digest_mirror_set::{
    ImageDigestMirrorSet, ImageDigestMirrorSetSpec, ImageDigestMirrors,
};
use crate::api::image_tag_mirror_set::{ImageTagMirrorSet, ImageTagMirrorSetSpec, ImageTagMirrors};
use crate::api::mirror_set::MirrorSourcePolicy;
use crate::domain::mirror_plan::{
    EntryProblem, ImportKind, MirrorIndex, MirrorKind, MirrorObjectRef, SourceFence,
};
use crate::domain::reference::ImageReference;

const DIGEST: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

/// One entry: source, mirrors, and the policy as written (`None` when unset).
type Entry<'a> = (&'a str, &'a [&'a str], Option<MirrorSourcePolicy>);

const NEVER: Option<MirrorSourcePolicy> = Some(MirrorSourcePolicy::NeverContactSource);
const ALLOW: Option<MirrorSourcePolicy> = Some(MirrorSourcePolicy::AllowContactingSource);

fn icsp(name: &str, entries: &[(&str, &[&str])]) -> ImageContentSourcePolicy {
    ImageContentSourcePolicy::new(
        name,
        ImageContentSourcePolicySpec {
            repository_digest_mirrors: entries
                .iter()
                .map(|(source, mirrors)| RepositoryDigestMirrors {
                    source: (*source).into(),
                    mirrors: mirrors.iter().map(|mirror| (*mirror).into()).collect(),
                })
                .collect(),
        },
    )
}

fn idms(name: &str, entries: &[Entry<'_>]) -> ImageDigestMirrorSet {
    ImageDigestMirrorSet::new(
        name,
        ImageDigestMirrorSetSpec {
            image_digest_mirrors: entries
                .iter()
                .map(|(source, mirrors, policy)| ImageDigestMirrors {
                    source: (*source).into(),
                    mirrors: mirrors.iter().map(|mirror| (*mirror).into()).collect(),
                    mirror_source_policy: *policy,
                })
                .collect(),
        },
    )
}

fn itms(name: &str, entries: &[Entry<'_>]) -> ImageTagMirrorSet {
    ImageTagMirrorSet::new(
        name,
        ImageTagMirrorSetSpec {
            image_tag_mirrors: entries
                .iter()
                .map(|(source, mirrors, policy)| ImageTagMirrors {
                    source: (*source).into(),
                    mirrors: mirrors.iter().map(|mirror| (*mirror).into()).collect(),
                    mirror_source_policy: *policy,
                })
                .collect(),
        },
    )
}

fn plain<'a>(source: &'a str, mirrors: &'a [&'a str]) -> Entry<'a> {
    (source, mirrors, None)
}

fn reference(text: &str) -> ImageReference {
    ImageReference::parse(text).unwrap_or_else(|error| panic!("{text}: {error}"))
}

/// The plan for `image` (by digest when it has one) as strings, in order, the source marked.
fn places(index: &MirrorIndex, image: &str) -> Vec<String> {
    let image = reference(image);
    let kind = match image.is_digest_pinned() {
        true => ImportKind::ByDigest,
        false => ImportKind::ByTag,
    };
    index
        .plan(&image, kind)
        .sources
        .iter()
        .map(|pull| match pull.is_source {
            true => format!("{} (source)", pull.reference),
            false => pull.reference.to_string(),
        })
        .collect()
}

/// What a rendered registries.conf entry says for pulls of `<source>/app` of one kind: the mirrors
/// in order, then the source unless the entry is blocked.
fn rendered(source: &str, kind: ImportKind, mirrors: &[&str], blocked: bool) -> Vec<String> {
    let suffix = match kind {
        ImportKind::ByDigest => format!("/app@{DIGEST}"),
        ImportKind::ByTag => "/app:v1".to_owned(),
    };
    let mut expected: Vec<String> = mirrors
        .iter()
        .map(|mirror| format!("{mirror}{suffix}"))
        .collect();
    if !blocked {
        expected.push(format!("{source}{suffix} (source)"));
    }
    expected
}

/// The image below `source` that [`rendered`] describes.
fn image_below(source: &str, kind: ImportKind) -> String {
    match kind {
        ImportKind::ByDigest => format!("{source}/app@{DIGEST}"),
        ImportKind::ByTag => format!("{source}/app:v1"),
    }
}

fn all_problems(index: &MirrorIndex) -> Vec<EntryProblem> {
    index
        .objects()
        .flat_map(|object| index.problems(object).iter().cloned())
        .collect()
}

// registries_test.go TestScopeIsNestedInsideScope
#[test]
fn a_source_governs_the_images_of_its_nested_scopes() {
    // (upstream subScope, upstream superScope, an image in subScope, expected). The image stands
    // for the scope; a wildcard subScope is stood for by one of its hosts.
    let cases = [
        ("quay.io", "example.com", "quay.io/app:v1", false), // Host mismatch
        ("quay.io", "quay.io", "quay.io/app:v1", true),      // Host match
        // Port mismatch (although reg is a prefix of scope)
        ("quay.io:443", "quay.io", "quay.io:443/app:v1", false),
        ("quay.io:443", "quay.io:444", "quay.io:443/app:v1", false), // Port mismatch
        // Host mismatch (although reg is a prefix of scope)
        (
            "quay.io.example.com",
            "quay.io",
            "quay.io.example.com/app:v1",
            false,
        ),
        ("quay.io2", "quay.io", "quay.io2/app:v1", false),
        ("quay.io/ns1", "quay.io", "quay.io/ns1/app:v1", true), // Valid namespace
        (
            "quay.io/ns1/ns2/ns3",
            "quay.io",
            "quay.io/ns1/ns2/ns3/app:v1",
            true,
        ),
        (
            "quay.io/ns1/ns2/ns3",
            "not-quay.io",
            "quay.io/ns1/ns2/ns3/app:v1",
            false,
        ),
        // Wildcards only match host names (these name Docker Hub images)
        ("bar/example.foo", "*.foo", "bar/example.foo:v1", false),
        (
            "example/bar.foo/quay.io",
            "*.foo",
            "example/bar.foo/quay.io:v1",
            false,
        ),
        ("example/bar.foo:400", "*.foo", "example/bar.foo:400", false),
        (
            "foo.example.com",
            "*.example.com",
            "foo.example.com/app:v1",
            true,
        ),
        (
            "*.foo.example.com",
            "*.example.com",
            "x.foo.example.com/app:v1",
            true,
        ),
        (
            "foo.example.com/bar",
            "*.example.com",
            "foo.example.com/bar/app:v1",
            true,
        ),
        (
            "foo.registry.com",
            "*.example.com",
            "foo.registry.com/app:v1",
            false,
        ),
        (
            "foo.example.com",
            "**.example.com",
            "foo.example.com/app:v1",
            false,
        ),
        (
            "foo.example.com",
            "example.*.com",
            "foo.example.com/app:v1",
            false,
        ),
        (
            "foo.example.com",
            "*.example.com/foo/bar",
            "foo.example.com/app:v1",
            false,
        ),
        (
            "foo.example.com:443/bar/baz",
            "*.example.com",
            "foo.example.com:443/bar/baz/app:v1",
            true,
        ),
        (
            "foo.example.com:443/bar/baz",
            "*.example.com/bar/baz",
            "foo.example.com:443/bar/baz/app:v1",
            false,
        ),
        (
            "foo.example.com",
            "*example.com",
            "foo.example.com/app:v1",
            false,
        ),
        (
            "foo.example.com",
            "*/example.com",
            "foo.example.com/app:v1",
            false,
        ),
    ];
    for (sub_scope, super_scope, image, expected) in cases {
        let index = MirrorIndex::build(
            [],
            [],
            [&itms("o", &[plain(super_scope, &["mirror.local/m"])])],
        );
        let plan = index.plan(&reference(image), ImportKind::ByTag);
        assert_eq!(
            plan.matched_source.is_some(),
            expected,
            "{sub_scope:?} inside {super_scope:?} ({image})"
        );
    }
}

// registries_test.go TestIsValidRegistriesConfScope
#[test]
fn a_wildcard_source_is_a_star_dot_domain_and_nothing_more() {
    let cases = [
        ("example.com", true),                // Valid registry
        ("*.example.com", true),              // Valid wildcard
        ("**.example.com", false),            // Invalid wildcard entry
        ("example.*.com", false),             // Invalid wildcard entry
        ("*.example.com/foo/bar", false),     // Invalid wildcard entry
        ("*.example.com:foo", false),         // Invalid wildcard entry
        ("*.example.com/foo:sha@bar", false), // Invalid wildcard entry
        ("*.example.com.*.bar.com", false),   // Invalid wildcard entry
        ("*example.com", false),
        ("*/example.com", false),
        ("*.*example.com", false),
        ("", false), // Invalid empty string entry
    ];
    for (scope, valid) in cases {
        let object = icsp("o", &[(scope, &["mirror.local/m"])]);
        let index = MirrorIndex::build([&object], [], []);
        let object = MirrorObjectRef::from(&object);
        assert_eq!(!index.sources_of(&object).is_empty(), valid, "{scope:?}");
        let reported = matches!(
            index.problems(&object),
            [EntryProblem::InvalidSource { .. }]
        );
        assert_eq!(reported, !valid, "{scope:?}: {:?}", index.problems(&object));
    }
}

// registries_test.go TestMirrorsContainsARealMirror
#[test]
fn an_entry_without_a_real_mirror_neither_mirrors_nor_fences() {
    const SOURCE: &str = "source.example.com";
    let cases: [(&[&str], bool); 7] = [
        (&[], false),                                  // No mirrors listed
        (&["mirror.local"], true),                     // A single real mirror
        (&[SOURCE], false),                            // The source only
        (&[SOURCE, SOURCE, SOURCE], false),            // Source only, repeated
        (&["mirror.local", SOURCE], true),             // Both
        (&[SOURCE, "mirror.local"], true),             // Both
        (&["m1.local", "m2.local", "m3.local"], true), // Multiple real mirrors
    ];
    let image = format!("{SOURCE}/app:v1");
    for (mirrors, real) in cases {
        // NeverContactSource on an entry without a real mirror is ignored, as upstream
        // ("Ignore mirrorSourcePolicy intentionally"); here the entry is reported and skipped.
        let index = MirrorIndex::build([], [], [&itms("o", &[(SOURCE, mirrors, NEVER)])]);
        let plan = index.plan(&reference(&image), ImportKind::ByTag);
        assert_eq!(plan.mirrors().next().is_some(), real, "{mirrors:?}");
        assert_eq!(plan.source_fenced(), real, "{mirrors:?}");
        assert_eq!(
            plan.sources.iter().any(|pull| pull.is_source),
            !real,
            "{mirrors:?}"
        );
    }
}

/// One case of `mergedMirrorsetsTestcases`: per object its entries; per source the merged mirrors
/// and whether NeverContactSource is in force.
struct MergeCase {
    name: &'static str,
    input: Vec<Vec<Entry<'static>>>,
    result: Vec<(&'static str, Vec<&'static str>, bool)>,
    /// Sources the input names whose result upstream leaves out (no real mirror): their images
    /// are pulled from the source alone.
    unmirrored: Vec<&'static str>,
}

// registries_test.go mergedMirrorsetsTestcases
fn merge_cases() -> Vec<MergeCase> {
    vec![
        MergeCase {
            name: "Empty",
            input: vec![],
            result: vec![],
            unmirrored: vec!["a.example.com"],
        },
        MergeCase {
            name: "Irrelevant singletons",
            input: vec![vec![
                plain("a.example.com", &[]),
                plain("b.example.com", &[]),
            ]],
            result: vec![],
            unmirrored: vec!["a.example.com", "b.example.com"],
        },
        // The registry names below start with an irrelevant letter, usually counting from the end
        // of the alphabet, to verify that the result is based on the order in the Sources array and
        // is not just alphabetically-sorted.
        MergeCase {
            name: "Separate mirror sets",
            input: vec![
                vec![plain(
                    "source.example.net",
                    &["z1.example.net", "y2.example.net", "x3.example.net"],
                )],
                vec![plain(
                    "source.example.com",
                    &["z1.example.com", "y2.example.com", "x3.example.com"],
                )],
            ],
            result: vec![
                (
                    "source.example.com",
                    vec!["z1.example.com", "y2.example.com", "x3.example.com"],
                    false,
                ),
                (
                    "source.example.net",
                    vec!["z1.example.net", "y2.example.net", "x3.example.net"],
                    false,
                ),
            ],
            unmirrored: vec![],
        },
        MergeCase {
            name: "Separate mirror sets with mirrorSourcePolicy set",
            input: vec![
                vec![(
                    "source.example.net",
                    &["z1.example.net", "y2.example.net", "x3.example.net"],
                    NEVER,
                )],
                vec![(
                    "source.example.com",
                    &["z1.example.com", "y2.example.com", "x3.example.com"],
                    ALLOW,
                )],
            ],
            result: vec![
                (
                    "source.example.com",
                    vec!["z1.example.com", "y2.example.com", "x3.example.com"],
                    false,
                ),
                (
                    "source.example.net",
                    vec!["z1.example.net", "y2.example.net", "x3.example.net"],
                    true,
                ),
            ],
            unmirrored: vec![],
        },
        MergeCase {
            name: "Sets with a shared element - strict order",
            input: vec![
                vec![
                    plain("source.example.net", &["z1.example.net", "y2.example.net"]),
                    plain("source.example.com", &["z1.example.com", "y2.example.com"]),
                ],
                vec![
                    plain("source.example.net", &["y2.example.net", "x3.example.net"]),
                    plain("source.example.com", &["y2.example.com", "x3.example.com"]),
                ],
            ],
            result: vec![
                (
                    "source.example.com",
                    vec!["z1.example.com", "y2.example.com", "x3.example.com"],
                    false,
                ),
                (
                    "source.example.net",
                    vec!["z1.example.net", "y2.example.net", "x3.example.net"],
                    false,
                ),
            ],
            unmirrored: vec![],
        },
        // Deliberate difference. Upstream keeps the source among the mirrors where the lists put
        // it (z1, source, y2, x3: "the order in this case is unspecified by the ICSP
        // specification"); here a mirror naming its own source is reported (MirrorIsSource) and
        // left out, so the source is tried once, last, and a fence can never be undone by listing
        // the source as a mirror.
        MergeCase {
            name: "Source included in mirrors",
            input: vec![vec![
                plain(
                    "source.example.com",
                    &["z1.example.com", "source.example.com", "y2.example.com"],
                ),
                plain(
                    "source.example.com",
                    &["source.example.com", "y2.example.com", "x3.example.com"],
                ),
            ]],
            result: vec![(
                "source.example.com",
                vec!["z1.example.com", "y2.example.com", "x3.example.com"],
                false,
            )],
            unmirrored: vec![],
        },
        // Worst case of the above: _only_ the source included in mirrors, even perhaps several
        // times.
        MergeCase {
            name: "Mirrors includes only source",
            input: vec![vec![
                plain("source.example.com", &["source.example.com"]),
                plain(
                    "source.example.net",
                    &[
                        "source.example.net",
                        "source.example.net",
                        "source.example.net",
                    ],
                ),
            ]],
            result: vec![],
            unmirrored: vec!["source.example.com", "source.example.net"],
        },
        MergeCase {
            name: "Example",
            input: vec![
                // Vendor-provided default configuration
                vec![plain("source.vendor.com", &["registry2.vendor.com"])],
                // Vendor2-provided default configuration
                vec![plain(
                    "source.vendor2.com",
                    &["registry1.vendor2.com", "registry2.vendor2.com"],
                )],
                // Admin-configured local mirrors:
                vec![
                    plain("source.vendor.com", &["local-mirror.example.com"]),
                    // Opposite order of the vendor's mirrors.
                    plain(
                        "source.vendor2.com",
                        &[
                            "local-mirror2.example.com",
                            "registry2.vendor2.com",
                            "registry1.vendor2.com",
                        ],
                    ),
                ],
            ],
            result: vec![
                (
                    "source.vendor.com",
                    vec!["local-mirror.example.com", "registry2.vendor.com"],
                    false,
                ),
                (
                    "source.vendor2.com",
                    vec![
                        "local-mirror2.example.com",
                        "registry1.vendor2.com",
                        "registry2.vendor2.com",
                    ],
                    false,
                ),
            ],
            unmirrored: vec![],
        },
    ]
}

/// Checks one merge case against `index`, for pulls of `kind`.
fn check_merge_case(case: &MergeCase, index: &MirrorIndex, kind: ImportKind, objects: &str) {
    for (source, mirrors, blocked) in &case.result {
        assert_eq!(
            places(index, &image_below(source, kind)),
            rendered(source, kind, mirrors, *blocked),
            "{} ({objects}): {source}",
            case.name
        );
    }
    for source in &case.unmirrored {
        assert_eq!(
            places(index, &image_below(source, kind)),
            rendered(source, kind, &[], false),
            "{} ({objects}): {source}",
            case.name
        );
    }
}

/// The objects of a merge case, named so that their merge order is the order they are listed in.
fn object_names(count: usize) -> impl Iterator<Item = String> {
    (0..count).map(|position| format!("object-{position:02}"))
}

// registries_test.go TestMergedICSPMirrorSets
#[test]
fn digest_mirror_lists_of_policies_merge_keeping_each_lists_order() {
    for case in merge_cases() {
        // "skip icsp test with mirrorSourcePolicy": the kind has no such field.
        if case
            .input
            .iter()
            .flatten()
            .any(|(_, _, policy)| policy.is_some())
        {
            continue;
        }
        let objects: Vec<ImageContentSourcePolicy> = case
            .input
            .iter()
            .zip(object_names(case.input.len()))
            .map(|(entries, name)| {
                let entries: Vec<(&str, &[&str])> = entries
                    .iter()
                    .map(|(source, mirrors, _)| (*source, *mirrors))
                    .collect();
                icsp(&name, &entries)
            })
            .collect();
        let index = MirrorIndex::build(&objects, [], []);
        check_merge_case(&case, &index, ImportKind::ByDigest, "ICSP");
    }
}

// registries_test.go TestMergedDigestMirrorSets
#[test]
fn digest_mirror_sets_merge_keeping_each_lists_order_and_any_fence() {
    for case in merge_cases() {
        let objects: Vec<ImageDigestMirrorSet> = case
            .input
            .iter()
            .zip(object_names(case.input.len()))
            .map(|(entries, name)| idms(&name, entries))
            .collect();
        let index = MirrorIndex::build([], &objects, []);
        check_merge_case(&case, &index, ImportKind::ByDigest, "IDMS");
    }
}

// registries_test.go TestMergedTagMirrorSets
#[test]
fn tag_mirror_sets_merge_keeping_each_lists_order_and_any_fence() {
    for case in merge_cases() {
        let objects: Vec<ImageTagMirrorSet> = case
            .input
            .iter()
            .zip(object_names(case.input.len()))
            .map(|(entries, name)| itms(&name, entries))
            .collect();
        let index = MirrorIndex::build([], [], &objects);
        check_merge_case(&case, &index, ImportKind::ByTag, "ITMS");
    }
}

// topo_test.go TestTopoGraph
#[test]
fn merged_order_is_a_topological_sort_broken_at_the_first_name_on_conflict() {
    // Each edge "XY" is a mirror list [X, Y] of its own entry. Upstream sorts two copies of each
    // graph at once (upper and lower case) and checks the order within each copy; mirror
    // locations are lower-case, so the copies are two sources here.
    let cases = [
        ("Empty", vec![], ""),
        ("Shared-from", vec!["AB", "AC", "AD"], "ABCD"),
        ("Shared-to", vec!["AD", "BD", "CD"], "ABCD"),
        ("Path", vec!["AB", "BC", "CD", "DE"], "ABCDE"),
        ("Complete loop", vec!["AB", "BC", "CD", "DA"], "ABCD"),
        (
            "Loop with extra input and output",
            vec!["AB", "BC", "CD", "DB", "DE"],
            "ABCDE",
        ),
    ];
    let location = |node: char| format!("{}.local", node.to_ascii_lowercase());
    for (name, edges, result) in cases {
        // Every rotation of the edge list gives the same order.
        for offset in 0..edges.len().max(1) {
            let rotated: Vec<[String; 2]> = (0..edges.len())
                .map(|i| {
                    let edge: Vec<char> = edges[(offset + i) % edges.len()].chars().collect();
                    [location(edge[0]), location(edge[1])]
                })
                .collect();
            for source in ["upper.example.com", "lower.example.com"] {
                let lists: Vec<Vec<&str>> = rotated
                    .iter()
                    .map(|edge| edge.iter().map(String::as_str).collect())
                    .collect();
                let entries: Vec<Entry<'_>> = lists
                    .iter()
                    .map(|list| (source, list.as_slice(), None))
                    .collect();
                let index = MirrorIndex::build([], [], [&itms("graph", &entries)]);
                let expected: Vec<String> = result.chars().map(location).collect();
                let expected: Vec<&str> = expected.iter().map(String::as_str).collect();
                assert_eq!(
                    places(&index, &image_below(source, ImportKind::ByTag)),
                    rendered(source, ImportKind::ByTag, &expected, false),
                    "{name}, rotated by {offset}"
                );
            }
        }
    }
}

// registries_test.go TestEditRegistriesConfig "imageContentSourcePolicy", "insecure+blocked
// prefixes with wildcard entries" and "imageContentSourcePolicy+imageDigestMirrorSet merging"
#[test]
fn policies_and_digest_mirror_sets_render_one_digest_mirror_list_per_source() {
    let index = MirrorIndex::build(
        [&icsp(
            "icsp",
            &[
                (
                    "insecure.com/ns-icsp-i1",
                    &["blocked.com/ns-b1", "other.com/ns-o1"],
                ),
                (
                    "blocked.com/ns-icsp-b/ns2-b",
                    &["other.com/ns-o2", "insecure.com/ns-i2"],
                ),
                (
                    "other.com/ns-icsp-o3",
                    &[
                        "insecure.com/ns-i2",
                        "blocked.com/ns-b/ns3-b",
                        "foo.insecure-example.com/bar",
                    ],
                ),
                ("insecure.com/ns-dupe-i1", &["other.com/ns-o2"]),
            ],
        )],
        [&idms(
            "idms",
            &[
                plain(
                    "insecure.com/ns-idms-i1",
                    &["blocked.com/ns-b1", "other.com/ns-o1"],
                ),
                plain("insecure.com/ns-dupe-i1", &["other.com/ns-o3"]),
                plain("insecure.com/ns-dupe-i1", &["other.com/ns-o1"]),
                plain(
                    "blocked.com/ns-idms-b/ns2-b",
                    &["other.com/ns-o2", "insecure.com/ns-i2"],
                ),
                plain(
                    "other.com/ns-idms-o3",
                    &[
                        "insecure.com/ns-i2",
                        "blocked.com/ns-b/ns3-b",
                        "foo.insecure-example.com/bar",
                    ],
                ),
            ],
        )],
        [],
    );
    // Upstream also marks blocked.com's scopes blocked, from registrySources (not read here).
    let rendered_conf: [(&str, &[&str]); 7] = [
        (
            "blocked.com/ns-icsp-b/ns2-b",
            &["other.com/ns-o2", "insecure.com/ns-i2"],
        ),
        (
            "blocked.com/ns-idms-b/ns2-b",
            &["other.com/ns-o2", "insecure.com/ns-i2"],
        ),
        (
            "insecure.com/ns-dupe-i1",
            &["other.com/ns-o1", "other.com/ns-o2", "other.com/ns-o3"],
        ),
        (
            "insecure.com/ns-icsp-i1",
            &["blocked.com/ns-b1", "other.com/ns-o1"],
        ),
        (
            "insecure.com/ns-idms-i1",
            &["blocked.com/ns-b1", "other.com/ns-o1"],
        ),
        (
            "other.com/ns-icsp-o3",
            &[
                "insecure.com/ns-i2",
                "blocked.com/ns-b/ns3-b",
                "foo.insecure-example.com/bar",
            ],
        ),
        (
            "other.com/ns-idms-o3",
            &[
                "insecure.com/ns-i2",
                "blocked.com/ns-b/ns3-b",
                "foo.insecure-example.com/bar",
            ],
        ),
    ];
    for (source, mirrors) in rendered_conf {
        for kind in [ImportKind::ByDigest, ImportKind::ByTag] {
            // All of these mirrors are digest-only.
            let mirrors = if kind == ImportKind::ByDigest {
                mirrors
            } else {
                &[]
            };
            assert_eq!(
                places(&index, &image_below(source, kind)),
                rendered(source, kind, mirrors, false),
                "{source} {kind}"
            );
        }
    }
    assert_eq!(all_problems(&index), []);
}

/// Sources and their (digest-only, tag-only) mirrors and whether the entry is blocked, as a
/// TestEditRegistriesConfig `want` lists them.
type Want<'a> = (&'a str, &'a [&'a str], &'a [&'a str], bool);

fn check_want(index: &MirrorIndex, case: &str, want: &[Want<'_>]) {
    for (source, digest_mirrors, tag_mirrors, blocked) in want {
        for (kind, mirrors) in [
            (ImportKind::ByDigest, digest_mirrors),
            (ImportKind::ByTag, tag_mirrors),
        ] {
            assert_eq!(
                places(index, &image_below(source, kind)),
                rendered(source, kind, mirrors, *blocked),
                "{case}: {source} {kind}"
            );
        }
    }
}

// registries_test.go TestEditRegistriesConfig "imageTagMirrorSet", "imageDigestMirrorSet +
// imageTagMirrorSet" and "imageContentSourcePolicy+imageDigestMirrorSet+imageTagMirrorSet"
#[test]
fn digest_mirrors_serve_digest_pulls_and_tag_mirrors_serve_tag_pulls() {
    let index = MirrorIndex::build(
        [],
        [],
        [&itms(
            "itms",
            &[
                plain("registry-a.com", &["mirror-tag-1.registry-a.com"]),
                plain("registry-b.com", &["mirror-tag-1.registry-b.com"]),
            ],
        )],
    );
    check_want(
        &index,
        "imageTagMirrorSet",
        &[
            (
                "registry-a.com",
                &[],
                &["mirror-tag-1.registry-a.com"],
                false,
            ),
            (
                "registry-b.com",
                &[],
                &["mirror-tag-1.registry-b.com"],
                false,
            ),
        ],
    );

    let index = MirrorIndex::build(
        [],
        [&idms(
            "idms",
            &[
                plain(
                    "registry-a.com",
                    &[
                        "mirror-digest-1.registry-a.com",
                        "mirror-digest-2.registry-a.com",
                    ],
                ),
                plain(
                    "registry-b.com",
                    &[
                        "mirror-digest-1.registry-b.com",
                        "mirror-digest-2.registry-b.com",
                    ],
                ),
            ],
        )],
        [&itms(
            "itms",
            &[
                plain(
                    "registry-a.com",
                    &["mirror-tag-1.registry-a.com", "mirror-tag-2.registry-a.com"],
                ),
                plain(
                    "registry-b.com",
                    &["mirror-tag-1.registry-b.com", "mirror-tag-2.registry-b.com"],
                ),
            ],
        )],
    );
    check_want(
        &index,
        "imageDigestMirrorSet + imageTagMirrorSet",
        &[
            (
                "registry-a.com",
                &[
                    "mirror-digest-1.registry-a.com",
                    "mirror-digest-2.registry-a.com",
                ],
                &["mirror-tag-1.registry-a.com", "mirror-tag-2.registry-a.com"],
                false,
            ),
            (
                "registry-b.com",
                &[
                    "mirror-digest-1.registry-b.com",
                    "mirror-digest-2.registry-b.com",
                ],
                &["mirror-tag-1.registry-b.com", "mirror-tag-2.registry-b.com"],
                false,
            ),
        ],
    );

    let index = MirrorIndex::build(
        [&icsp(
            "icsp",
            &[("registry-a.com", &["mirror-icsp-1.registry-a.com"])],
        )],
        [&idms(
            "idms",
            &[plain("registry-b.com", &["mirror-digest-1.registry-b.com"])],
        )],
        [&itms(
            "itms",
            &[plain("registry-c.com", &["mirror-tag-1.registry-c.com"])],
        )],
    );
    check_want(
        &index,
        "imageContentSourcePolicy+imageDigestMirrorSet+imageTagMirrorSet",
        &[
            (
                "registry-a.com",
                &["mirror-icsp-1.registry-a.com"],
                &[],
                false,
            ),
            (
                "registry-b.com",
                &["mirror-digest-1.registry-b.com"],
                &[],
                false,
            ),
            (
                "registry-c.com",
                &[],
                &["mirror-tag-1.registry-c.com"],
                false,
            ),
        ],
    );
}

// registries_test.go TestEditRegistriesConfig "mirrorSourcePolicy"
#[test]
fn never_contact_source_of_either_kind_blocks_the_source_for_both_kinds_of_pull() {
    let digest_object = idms(
        "idms",
        &[
            (
                "registry-a.com",
                &[
                    "mirror-digest-1.registry-a.com",
                    "mirror-digest-2.registry-a.com",
                ],
                NEVER,
            ),
            plain(
                "registry-b.com",
                &[
                    "mirror-digest-1.registry-b.com",
                    "mirror-digest-2.registry-b.com",
                ],
            ),
            plain(
                "registry-c.com",
                &[
                    "mirror-digest-1.registry-c.com",
                    "mirror-digest-2.registry-c.com",
                ],
            ),
        ],
    );
    let tag_object = itms(
        "itms",
        &[(
            "registry-b.com",
            &["mirror-tag-1.registry-b.com", "mirror-tag-2.registry-b.com"],
            NEVER,
        )],
    );
    let index = MirrorIndex::build([], [&digest_object], [&tag_object]);
    check_want(
        &index,
        "mirrorSourcePolicy",
        &[
            // Blocked: a pull by tag has no mirror and no source left.
            (
                "registry-a.com",
                &[
                    "mirror-digest-1.registry-a.com",
                    "mirror-digest-2.registry-a.com",
                ],
                &[],
                true,
            ),
            (
                "registry-b.com",
                &[
                    "mirror-digest-1.registry-b.com",
                    "mirror-digest-2.registry-b.com",
                ],
                &["mirror-tag-1.registry-b.com", "mirror-tag-2.registry-b.com"],
                true,
            ),
            (
                "registry-c.com",
                &[
                    "mirror-digest-1.registry-c.com",
                    "mirror-digest-2.registry-c.com",
                ],
                &[],
                false,
            ),
        ],
    );
    // The plan names the object that blocks the source, for the tag's condition.
    let plan = index.plan(
        &reference(&image_below("registry-a.com", ImportKind::ByTag)),
        ImportKind::ByTag,
    );
    assert_eq!(
        plan.fence,
        Some(SourceFence {
            source: "registry-a.com".to_owned(),
            by: vec![MirrorObjectRef::new(
                MirrorKind::ImageDigestMirrorSet,
                "idms"
            )],
        })
    );
    let plan = index.plan(
        &reference(&image_below("registry-b.com", ImportKind::ByDigest)),
        ImportKind::ByDigest,
    );
    assert_eq!(
        plan.fence.map(|fence| fence.by),
        Some(vec![MirrorObjectRef::new(
            MirrorKind::ImageTagMirrorSet,
            "itms"
        )])
    );
}

// registries_test.go TestEditRegistriesConfig "insecure+blocked scopes inside a configured mirror"
// and "... in ImageContentSourcePolicy"
#[test]
fn a_nested_scope_uses_the_mirrors_of_the_longest_source_with_the_rest_of_the_path() {
    let index = MirrorIndex::build(
        [],
        [&idms(
            "idms",
            &[
                plain("primary.com/top", &["mirror.com/primary"]),
                plain(
                    "primary.com/top/insecure/more-specific",
                    &["mirror.com/more-specific"],
                ),
            ],
        )],
        [&itms(
            "itms",
            &[
                plain("primary.com/top", &["mirror-tag.com/primary"]),
                plain(
                    "primary.com/top/insecure/more-specific",
                    &["mirror-tag.com/more-specific"],
                ),
            ],
        )],
    );
    // Upstream's insecure and blocked flags on the nested scopes come from registrySources and
    // are not ported; the mirrors they are given are.
    check_want(
        &index,
        "insecure+blocked scopes inside a configured mirror",
        &[
            (
                "primary.com/top",
                &["mirror.com/primary"],
                &["mirror-tag.com/primary"],
                false,
            ),
            (
                "primary.com/top/insecure/more-specific",
                &["mirror.com/more-specific"],
                &["mirror-tag.com/more-specific"],
                false,
            ),
            (
                "primary.com/top/blocked",
                &["mirror.com/primary/blocked"],
                &["mirror-tag.com/primary/blocked"],
                false,
            ),
            (
                "primary.com/top/insecure",
                &["mirror.com/primary/insecure"],
                &["mirror-tag.com/primary/insecure"],
                false,
            ),
        ],
    );

    let index = MirrorIndex::build(
        [&icsp(
            "icsp",
            &[
                ("primary.com/top", &["mirror.com/primary"]),
                (
                    "primary.com/top/insecure/more-specific",
                    &["mirror.com/more-specific"],
                ),
            ],
        )],
        [],
        [],
    );
    check_want(
        &index,
        "insecure+blocked scopes inside a configured mirror in ImageContentSourcePolicy",
        &[
            ("primary.com/top", &["mirror.com/primary"], &[], false),
            (
                "primary.com/top/insecure/more-specific",
                &["mirror.com/more-specific"],
                &[],
                false,
            ),
            (
                "primary.com/top/blocked",
                &["mirror.com/primary/blocked"],
                &[],
                false,
            ),
            (
                "primary.com/top/insecure",
                &["mirror.com/primary/insecure"],
                &[],
                false,
            ),
        ],
    );
}
