//! The mirror plan: an in-memory index of every ImageContentSourcePolicy, ImageDigestMirrorSet and
//! ImageTagMirrorSet, and from it the ordered list of places to pull one image from (mirrors first, then
//! the source unless it is fenced). Entries that cannot be used are reported on their object and skipped.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;

use kube::ResourceExt;
use thiserror::Error;

use crate::api::image_content_source_policy::ImageContentSourcePolicy;
use crate::api::image_digest_mirror_set::ImageDigestMirrorSet;
use crate::api::image_tag_mirror_set::ImageTagMirrorSet;
use crate::api::mirror_set::{MirrorRule, MirrorSourcePolicy};
use crate::domain::address_guard::is_refused_host;
use crate::domain::reference::{ImageReference, ReferenceError};

/// User text quoted in problem messages is cut to this many characters, so one absurd entry cannot
/// blow up an Event.
const SHOWN_MAX_CHARS: usize = 100;

/// The canonical host of Docker Hub, which every Docker Hub spelling of a source is folded into.
const DOCKER_HUB: &str = "docker.io";

/// The three kinds of mirror object, in the order their objects are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MirrorKind {
    /// `operator.openshift.io/v1alpha1` ImageContentSourcePolicy: digest mirrors, no source policy.
    ImageContentSourcePolicy,
    /// `config.openshift.io/v1` ImageDigestMirrorSet: digest mirrors with a source policy.
    ImageDigestMirrorSet,
    /// `config.openshift.io/v1` ImageTagMirrorSet: tag mirrors with a source policy.
    ImageTagMirrorSet,
}

impl MirrorKind {
    /// The kind as Kubernetes spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ImageContentSourcePolicy => "ImageContentSourcePolicy",
            Self::ImageDigestMirrorSet => "ImageDigestMirrorSet",
            Self::ImageTagMirrorSet => "ImageTagMirrorSet",
        }
    }

    /// The kind of import whose plan this kind's entries shape.
    pub fn import_kind(self) -> ImportKind {
        match self {
            Self::ImageContentSourcePolicy | Self::ImageDigestMirrorSet => ImportKind::ByDigest,
            Self::ImageTagMirrorSet => ImportKind::ByTag,
        }
    }

    /// The spec field holding the entries, for problem messages that point at the offending field.
    fn entries_field(self) -> &'static str {
        match self {
            Self::ImageContentSourcePolicy => "spec.repositoryDigestMirrors",
            Self::ImageDigestMirrorSet => "spec.imageDigestMirrors",
            Self::ImageTagMirrorSet => "spec.imageTagMirrors",
        }
    }
}

impl fmt::Display for MirrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One mirror object, by kind and name (all three kinds are cluster-scoped). Ordered by kind, then
/// name: the order in which objects are read ("merge order"), which decides the object a mirror
/// listed by several is credited to and the order a fence names its objects in. The merged order of
/// the mirrors themselves does not depend on it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MirrorObjectRef {
    /// The object's kind.
    pub kind: MirrorKind,
    /// The object's `metadata.name`.
    pub name: String,
}

impl MirrorObjectRef {
    /// The object of `kind` called `name`.
    pub fn new(kind: MirrorKind, name: impl Into<String>) -> Self {
        Self {
            kind,
            name: name.into(),
        }
    }
}

impl fmt::Display for MirrorObjectRef {
    /// `ImageTagMirrorSet/hub-proxies`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.kind, self.name)
    }
}

impl From<&ImageContentSourcePolicy> for MirrorObjectRef {
    fn from(object: &ImageContentSourcePolicy) -> Self {
        Self::new(MirrorKind::ImageContentSourcePolicy, object.name_any())
    }
}

impl From<&ImageDigestMirrorSet> for MirrorObjectRef {
    fn from(object: &ImageDigestMirrorSet) -> Self {
        Self::new(MirrorKind::ImageDigestMirrorSet, object.name_any())
    }
}

impl From<&ImageTagMirrorSet> for MirrorObjectRef {
    fn from(object: &ImageTagMirrorSet) -> Self {
        Self::new(MirrorKind::ImageTagMirrorSet, object.name_any())
    }
}

/// What is being fetched, which decides the mirror kinds that apply: a mirror can only be trusted to
/// serve the same content for a digest, so tags have their own kind (ImageTagMirrorSet).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ImportKind {
    /// A manifest by digest: a digest-pinned reference, or a child of a manifest list. Uses
    /// ImageContentSourcePolicy and ImageDigestMirrorSet.
    ByDigest,
    /// A manifest by tag. Uses ImageTagMirrorSet.
    ByTag,
}

impl ImportKind {
    /// The mirror kinds whose mirrors serve this kind of import.
    pub fn mirror_kinds(self) -> &'static [MirrorKind] {
        match self {
            Self::ByDigest => &[
                MirrorKind::ImageContentSourcePolicy,
                MirrorKind::ImageDigestMirrorSet,
            ],
            Self::ByTag => &[MirrorKind::ImageTagMirrorSet],
        }
    }
}

impl fmt::Display for ImportKind {
    /// `by digest` or `by tag`, as in "an import by tag".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::ByDigest => "by digest",
            Self::ByTag => "by tag",
        })
    }
}

/// Why one entry, or one mirror of an entry, of a mirror object is not used. The message names the
/// field (`spec.imageTagMirrors[1].mirrors[0]`) and what was skipped; the rest of the object applies.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EntryProblem {
    /// The source is not a `host[:port][/path]` or `*.domain` location; the whole entry is skipped.
    #[error("{field}: source {written_source:?} is not usable: {why}; the entry is skipped")]
    InvalidSource {
        /// The offending field, e.g. `spec.imageDigestMirrors[2]`.
        field: String,
        /// The source as written.
        written_source: String,
        /// What is wrong with it.
        why: String,
    },
    /// A mirror is not a `host[:port][/path]` location; only that mirror is skipped.
    #[error(
        "{field}: mirror {mirror:?} for source {written_source:?} is not usable: {why}; the mirror \
         is skipped"
    )]
    InvalidMirror {
        /// The offending field, e.g. `spec.imageDigestMirrors[2].mirrors[0]`.
        field: String,
        /// The entry's source as written.
        written_source: String,
        /// The mirror as written.
        mirror: String,
        /// What is wrong with it.
        why: String,
    },
    /// A mirror names the source itself; only that mirror is skipped, since pulling "from the mirror"
    /// would contact a source that may be fenced.
    #[error(
        "{field}: mirror {mirror:?} is the source {written_source:?} itself; the mirror is skipped"
    )]
    MirrorIsSource {
        /// The offending field, e.g. `spec.imageTagMirrors[0].mirrors[1]`.
        field: String,
        /// The entry's source as written.
        written_source: String,
        /// The mirror as written.
        mirror: String,
    },
    /// A mirror is a link-local or cloud metadata address, which the operator never contacts; only
    /// that mirror is skipped.
    #[error(
        "{field}: mirror {mirror:?} for source {written_source:?} is a link-local or metadata \
         address, which is never contacted; the mirror is skipped"
    )]
    MirrorAddressRefused {
        /// The offending field, e.g. `spec.imageDigestMirrors[0].mirrors[1]`.
        field: String,
        /// The entry's source as written.
        written_source: String,
        /// The mirror as written.
        mirror: String,
    },
    /// `NeverContactSource` with an empty mirror list would leave nothing to pull from; the entry is
    /// skipped, so it fences nothing.
    #[error(
        "{field}: source {written_source:?} has mirrorSourcePolicy NeverContactSource but no \
         mirrors, which would leave nothing to import from; the entry is skipped"
    )]
    FenceWithoutMirrors {
        /// The offending entry, e.g. `spec.imageDigestMirrors[0]`.
        field: String,
        /// The source as written.
        written_source: String,
    },
    /// Mirrors were listed but none is usable (each has its own problem); the entry is skipped rather
    /// than read as "source only", which the user did not write.
    #[error(
        "{field}: none of the mirrors listed for source {written_source:?} is usable; the entry is \
         skipped"
    )]
    NoUsableMirror {
        /// The offending entry, e.g. `spec.imageTagMirrors[3]`.
        field: String,
        /// The source as written.
        written_source: String,
    },
}

impl EntryProblem {
    /// The PascalCase reason for Events and metric labels.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::InvalidSource { .. } => "InvalidMirrorSource",
            Self::InvalidMirror { .. } => "InvalidMirror",
            Self::MirrorIsSource { .. } => "MirrorIsSource",
            Self::MirrorAddressRefused { .. } => "MirrorAddressRefused",
            Self::FenceWithoutMirrors { .. } => "NeverContactSourceWithoutMirrors",
            Self::NoUsableMirror { .. } => "NoUsableMirror",
        }
    }
}

/// One place to pull an image from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullSource {
    /// Where to pull from, with the same tag and digest as the requested reference. For the source
    /// itself this is the requested reference, as written.
    pub reference: ImageReference,
    /// Whether this is the source repository rather than a mirror.
    pub is_source: bool,
    /// The object that listed this mirror (the first one, in merge order, when several did); `None`
    /// for the source.
    pub from_object: Option<MirrorObjectRef>,
}

/// A mirror that matched but cannot serve this particular reference, e.g. a host-only mirror for a
/// source that is the whole repository (`quay.io/org/app` → `mirror.local` leaves no repository).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnusableMirror {
    /// The mirror, normalised.
    pub mirror: String,
    /// The object that listed it.
    pub from_object: MirrorObjectRef,
    /// Why the mirrored reference could not be formed.
    pub error: ReferenceError,
}

/// Why the source repository is left out of a plan: the most specific source, of any mirror kind,
/// that matches the reference has an entry saying `NeverContactSource`. As OpenShift renders such a
/// source for its nodes (a blocked registry), the fence holds for every pull through it, by digest
/// and by tag, whichever kind of object set it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFence {
    /// The normalised source the fence is on (`quay.io/org`, `*.example.com`).
    pub source: String,
    /// The objects whose entries for that source say `NeverContactSource`, in merge order.
    pub by: Vec<MirrorObjectRef>,
}

impl fmt::Display for SourceFence {
    /// `quay.io/org is blocked by mirrorSourcePolicy NeverContactSource in ImageDigestMirrorSet/a`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let objects = self
            .by
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        write!(
            f,
            "{} is blocked by mirrorSourcePolicy NeverContactSource in {objects}",
            self.source
        )
    }
}

/// Where to pull one image from, in the order to try.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MirrorPlan {
    /// Mirrors first, merged across objects, then the source unless it is fenced. Empty only when the
    /// source is fenced and no mirror of the import's kind could be applied to this reference.
    pub sources: Vec<PullSource>,
    /// The normalised source whose mirrors the plan uses (`docker.io/library/busybox`,
    /// `*.example.com`), if a source of the import's kind matched.
    pub matched_source: Option<String>,
    /// Why the source is not in the plan, when it is fenced.
    pub fence: Option<SourceFence>,
    /// Mirrors that matched but could not be applied to this reference; they are not in `sources`.
    pub unusable_mirrors: Vec<UnusableMirror>,
}

impl MirrorPlan {
    /// The plan when no mirror source matches: the source alone.
    pub fn source_only(reference: &ImageReference) -> Self {
        Self::without_mirrors(reference, None)
    }

    /// The plan when no source of the import's kind matches: the source alone, or nothing when a
    /// source of the other kind fences it.
    fn without_mirrors(reference: &ImageReference, fence: Option<SourceFence>) -> Self {
        let sources = match fence {
            Some(_) => Vec::new(),
            None => vec![PullSource {
                reference: reference.clone(),
                is_source: true,
                from_object: None,
            }],
        };
        Self {
            sources,
            matched_source: None,
            fence,
            unusable_mirrors: Vec::new(),
        }
    }

    /// Whether some object said `NeverContactSource` for the source, so it is not in the plan.
    pub fn source_fenced(&self) -> bool {
        self.fence.is_some()
    }

    /// The places that may serve the content behind an answer from place `answered` (a manifest
    /// list's children, a config): it, then the places after it. Those before it did not answer.
    pub fn content_sources(&self, answered: usize) -> std::ops::Range<usize> {
        answered.min(self.sources.len())..self.sources.len()
    }

    /// The mirrors in the plan, in order, without the source.
    pub fn mirrors(&self) -> impl Iterator<Item = &PullSource> {
        self.sources.iter().filter(|pull| !pull.is_source)
    }
}

/// Every mirror object, indexed for planning: sources normalised, per-source mirror lists merged
/// across objects in a fixed order, and the problems of each object kept for its Event.
///
/// Rebuild it whenever a mirror object changes; it is cheap. To know which references a change to an
/// object can affect, ask [`Self::affects`] of the index from before the change and of the one after
/// (a deleted object, or a source removed from it, is only in the old one), or compare the two plans.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MirrorIndex {
    sources: SourceTable,
    objects: BTreeMap<MirrorObjectRef, ObjectRecord>,
}

impl MirrorIndex {
    /// Indexes every object. Input order does not matter: objects are read by kind, then name
    /// (Kubernetes keeps names unique per kind, so that order is total), and merged mirror lists
    /// depend only on the lists, not on the order they come in.
    pub fn build<'a>(
        icsps: impl IntoIterator<Item = &'a ImageContentSourcePolicy>,
        idms: impl IntoIterator<Item = &'a ImageDigestMirrorSet>,
        itms: impl IntoIterator<Item = &'a ImageTagMirrorSet>,
    ) -> Self {
        let mut objects: Vec<(MirrorObjectRef, Vec<MirrorRule<'a>>)> = Vec::new();
        objects.extend(
            icsps
                .into_iter()
                .map(|object| (object.into(), object.mirror_rules().collect())),
        );
        objects.extend(
            idms.into_iter()
                .map(|object| (object.into(), object.mirror_rules().collect())),
        );
        objects.extend(
            itms.into_iter()
                .map(|object| (object.into(), object.mirror_rules().collect())),
        );
        // Stable, so even duplicate names (impossible in a cluster) keep a defined order.
        objects.sort_by(|(a, _), (b, _)| a.cmp(b));

        let mut index = Self::default();
        for (object, rules) in objects {
            index.add_object(object, &rules);
        }
        index.sources.settle();
        index
    }

    /// The ordered places to pull `reference` from for an import of `kind`.
    ///
    /// The most specific source of the import's kind that matches supplies the mirrors (a longer
    /// exact source before a shorter one, exact sources before `*.domain` ones); every mirror listed
    /// for it, by any object, replaces the matched prefix, merged in the order the lists agree on and
    /// without duplicates. The source comes last unless the most specific matching source of any
    /// kind is fenced (see [`SourceFence`]). With no matching source, the source alone.
    pub fn plan(&self, reference: &ImageReference, kind: ImportKind) -> MirrorPlan {
        let matching = self.sources.matching(reference);
        let fence = matching.first().and_then(|matched| {
            (!matched.scope.fenced_by.is_empty()).then(|| SourceFence {
                source: matched.key.to_owned(),
                by: matched.scope.fenced_by.clone(),
            })
        });
        let Some((matched, merged)) = matching
            .iter()
            .find_map(|matched| Some((matched, matched.scope.mirrors(kind)?)))
        else {
            return MirrorPlan::without_mirrors(reference, fence);
        };

        let mut sources = Vec::new();
        let mut unusable_mirrors = Vec::new();
        // Seeded with the source, so a mirror that lands back on it (possible with a wildcard source)
        // can never contact a fenced source or try it twice.
        let mut seen = BTreeSet::from([reference.canonical_name()]);
        for mirror in &merged.mirrors {
            match reference.with_repository_prefix_replaced(&matched.replaced, &mirror.location) {
                Ok(mirrored) => {
                    if seen.insert(mirrored.canonical_name()) {
                        sources.push(PullSource {
                            reference: mirrored,
                            is_source: false,
                            from_object: Some(mirror.from_object.clone()),
                        });
                    }
                }
                Err(error) => unusable_mirrors.push(UnusableMirror {
                    mirror: mirror.location.clone(),
                    from_object: mirror.from_object.clone(),
                    error,
                }),
            }
        }
        if fence.is_none() {
            sources.push(PullSource {
                reference: reference.clone(),
                is_source: true,
                from_object: None,
            });
        }
        MirrorPlan {
            sources,
            matched_source: Some(matched.key.to_owned()),
            fence,
            unusable_mirrors,
        }
    }

    /// Every indexed object, including those none of whose entries could be used, in merge order.
    pub fn objects(&self) -> impl Iterator<Item = &MirrorObjectRef> {
        self.objects.keys()
    }

    /// Why entries (or mirrors) of `object` were skipped; empty when all of it was accepted or the
    /// object is not indexed. Each item's `Display` is a message for the object's Event.
    pub fn problems(&self, object: &MirrorObjectRef) -> &[EntryProblem] {
        self.objects
            .get(object)
            .map_or(&[], |record| record.problems.as_slice())
    }

    /// The normalised sources `object` contributes to plans (`docker.io/library/busybox`,
    /// `*.example.com`), in the order written, without the skipped entries.
    pub fn sources_of(&self, object: &MirrorObjectRef) -> &[String] {
        self.objects
            .get(object)
            .map_or(&[], |record| record.sources.as_slice())
    }

    /// Whether `object` has a usable source that matches `reference`, so that its entries can change
    /// the reference's plan. Import kinds are not distinguished: a fence holds for both kinds, and an
    /// import by tag also fetches manifest-list children by digest.
    pub fn affects(&self, object: &MirrorObjectRef, reference: &ImageReference) -> bool {
        self.sources_of(object)
            .iter()
            .any(|source| source_matches(source, reference))
    }

    /// Checks one object's entries, records its problems and merges its usable entries into the
    /// table. Called in merge order.
    fn add_object(&mut self, object: MirrorObjectRef, rules: &[MirrorRule<'_>]) {
        let kind = object.kind.import_kind();
        let record = self.objects.entry(object.clone()).or_default();
        for (position, rule) in rules.iter().enumerate() {
            let field = format!("{}[{position}]", object.kind.entries_field());
            let Some(entry) = check_entry(rule, &field, &mut record.problems) else {
                continue;
            };
            for key in &entry.source.keys {
                self.sources
                    .merge(key, entry.source.wildcard, kind, &entry, &object);
                if !record.sources.contains(key) {
                    record.sources.push(key.clone());
                }
            }
        }
    }
}

/// What one object contributed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct ObjectRecord {
    problems: Vec<EntryProblem>,
    sources: Vec<String>,
}

/// Every usable source, of every kind, by normalised source. Digest and tag entries for one source
/// share its [`SourceScope`], as OpenShift renders them into one registries.conf entry: that is how a
/// fence set by either kind holds for both.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct SourceTable {
    /// `host[:port][/path]` sources, looked up by each `/`-prefix of a reference's canonical name.
    exact: BTreeMap<String, SourceScope>,
    /// `*.domain` sources, few in practice, so scanned.
    wildcard: BTreeMap<String, SourceScope>,
}

/// A source that matches a reference, with what the matched part is.
struct MatchedSource<'a> {
    /// The normalised source.
    key: &'a str,
    /// The part of the reference's canonical name the source matched, in the form
    /// [`ImageReference::with_repository_prefix_replaced`] takes: the key itself for an exact
    /// source, the reference's registry (with its port) for a wildcard.
    replaced: String,
    scope: &'a SourceScope,
}

impl SourceTable {
    fn merge(
        &mut self,
        key: &str,
        wildcard: bool,
        kind: ImportKind,
        entry: &CheckedEntry,
        object: &MirrorObjectRef,
    ) {
        let map = if wildcard {
            &mut self.wildcard
        } else {
            &mut self.exact
        };
        let scope = map.entry(key.to_owned()).or_default();
        scope.mirrors_mut(kind).add(&entry.mirrors, object);
        if entry.fenced && !scope.fenced_by.contains(object) {
            scope.fenced_by.push(object.clone());
        }
    }

    /// Puts every merged mirror list in its final order, once all objects are in.
    fn settle(&mut self) {
        for scope in self.exact.values_mut().chain(self.wildcard.values_mut()) {
            for merged in [&mut scope.by_digest, &mut scope.by_tag]
                .into_iter()
                .flatten()
            {
                merged.settle();
            }
        }
    }

    /// The sources that match `reference`, most specific first: exact sources from the longest
    /// (at `/` boundaries) to the shortest, then wildcard sources from the longest domain to the
    /// shortest. Exact sources come first because naming a host outright is the more deliberate
    /// statement about it.
    fn matching(&self, reference: &ImageReference) -> Vec<MatchedSource<'_>> {
        let mut found = Vec::new();
        let name = reference.canonical_name();
        let mut prefix = name.as_str();
        loop {
            if let Some((key, scope)) = self.exact.get_key_value(prefix) {
                found.push(MatchedSource {
                    key,
                    replaced: key.clone(),
                    scope,
                });
            }
            match prefix.rfind('/') {
                Some(end) => prefix = &prefix[..end],
                None => break,
            }
        }
        let mut wildcards: Vec<_> = self
            .wildcard
            .iter()
            .filter(|(key, _)| source_matches(key, reference))
            .collect();
        // Two different domains of equal length cannot both end a host name, so length decides.
        wildcards.sort_by_key(|(key, _)| std::cmp::Reverse(key.len()));
        found.extend(wildcards.into_iter().map(|(key, scope)| MatchedSource {
            key,
            replaced: reference.canonical_registry().to_owned(),
            scope,
        }));
        found
    }
}

/// Whether a normalised source matches `reference`. An exact source matches the canonical name or
/// a prefix of it at a `/` boundary (so `quay.io` never matches `quay.io:5000`); `*.domain` matches
/// the registry of any subdomain of the domain, on any port, as containers-registries.conf(5) has it.
fn source_matches(source: &str, reference: &ImageReference) -> bool {
    let Some(domain) = source.strip_prefix("*.") else {
        let name = reference.canonical_name();
        return name
            .strip_prefix(source)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'));
    };
    let registry = reference.canonical_registry();
    // An IPv6 address has no domain to be a subdomain of.
    if registry.starts_with('[') {
        return false;
    }
    let host = registry
        .split_once(':')
        .map_or(registry, |(host, _port)| host);
    host.strip_suffix(domain)
        .and_then(|rest| rest.strip_suffix('.'))
        .is_some_and(|label| !label.is_empty())
}

/// Everything every object said about one source.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct SourceScope {
    /// ImageContentSourcePolicy and ImageDigestMirrorSet entries, if any object has one here.
    by_digest: Option<MergedMirrors>,
    /// ImageTagMirrorSet entries, if any object has one here.
    by_tag: Option<MergedMirrors>,
    /// The objects, of either kind, with an entry here that says `NeverContactSource`.
    fenced_by: Vec<MirrorObjectRef>,
}

impl SourceScope {
    /// The merged entries of `kind`, if there are any: an entry with no mirrors counts, and keeps a
    /// broader source's mirrors of that kind away ("from the source only").
    fn mirrors(&self, kind: ImportKind) -> Option<&MergedMirrors> {
        match kind {
            ImportKind::ByDigest => self.by_digest.as_ref(),
            ImportKind::ByTag => self.by_tag.as_ref(),
        }
    }

    fn mirrors_mut(&mut self, kind: ImportKind) -> &mut MergedMirrors {
        match kind {
            ImportKind::ByDigest => self.by_digest.get_or_insert_default(),
            ImportKind::ByTag => self.by_tag.get_or_insert_default(),
        }
    }
}

/// The mirror lists of every entry of one kind for one source, merged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct MergedMirrors {
    /// Each location once; in merge order once settled.
    mirrors: Vec<IndexedMirror>,
    /// Every entry's mirror list, in the order entries were read: the orders the merged list keeps
    /// where they agree.
    lists: Vec<Vec<String>>,
}

impl MergedMirrors {
    fn add(&mut self, locations: &[String], object: &MirrorObjectRef) {
        for location in locations {
            if !self.mirrors.iter().any(|known| &known.location == location) {
                self.mirrors.push(IndexedMirror {
                    location: location.clone(),
                    from_object: object.clone(),
                });
            }
        }
        if !locations.is_empty() {
            self.lists.push(locations.to_vec());
        }
    }

    fn settle(&mut self) {
        let order = merge_in_relative_order(&self.lists);
        self.mirrors.sort_by_key(|mirror| {
            order
                .iter()
                .position(|location| *location == mirror.location)
                .unwrap_or(usize::MAX)
        });
    }
}

/// Merges mirror lists into one that keeps the relative order of every list where they agree, as
/// OpenShift merges them for its nodes: `[a,b,c]` and `[c,d,e]` give `a,b,c,d,e`, `[b,c]` and
/// `[a,b]` give `a,b,c`. Mirrors that no list orders come by name; when lists conflict
/// (`[a,b]` and `[b,a]`) the cycle is broken at the first mirror by name. The result depends on
/// the lists only, never on the order they come in.
fn merge_in_relative_order(lists: &[Vec<String>]) -> Vec<&str> {
    let mut before: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    let mut after: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for list in lists {
        for location in list {
            before.entry(location).or_default();
            after.entry(location).or_default();
        }
        for pair in list.windows(2) {
            if let [earlier, later] = pair
                && earlier != later
            {
                after.entry(earlier).or_default().insert(later);
                before.entry(later).or_default().insert(earlier);
            }
        }
    }
    let by_name: Vec<&str> = before.keys().copied().collect();
    let mut ready: VecDeque<&str> = by_name
        .iter()
        .copied()
        .filter(|location| before.get(location).is_none_or(BTreeSet::is_empty))
        .collect();
    let mut used: BTreeSet<&str> = BTreeSet::new();
    let mut merged = Vec::with_capacity(by_name.len());
    while merged.len() < by_name.len() {
        let next = match ready.pop_front() {
            Some(next) => next,
            // Only cycles are left: the lists disagree. Any fixed choice keeps the result stable.
            None => match by_name
                .iter()
                .copied()
                .find(|location| !used.contains(location))
            {
                Some(next) => next,
                None => break,
            },
        };
        used.insert(next);
        merged.push(next);
        for later in after.get(next).into_iter().flatten() {
            if let Some(waiting) = before.get_mut(later) {
                waiting.remove(next);
                if waiting.is_empty() && !used.contains(later) {
                    ready.push_back(later);
                }
            }
        }
    }
    merged
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct IndexedMirror {
    /// `host[:port][/path]`, host in canonical form.
    location: String,
    from_object: MirrorObjectRef,
}

/// An entry that passed its checks.
struct CheckedEntry {
    source: NormalisedSource,
    /// Usable mirrors in the order written, each once.
    mirrors: Vec<String>,
    fenced: bool,
}

/// Checks one entry; records its problems and returns what of it is usable, or `None` when nothing.
fn check_entry(
    rule: &MirrorRule<'_>,
    field: &str,
    problems: &mut Vec<EntryProblem>,
) -> Option<CheckedEntry> {
    let written_source = shown(rule.source.as_str());
    let source = match NormalisedSource::parse(rule.source.as_str()) {
        Ok(source) => source,
        Err(why) => {
            problems.push(EntryProblem::InvalidSource {
                field: field.to_owned(),
                written_source,
                why,
            });
            return None;
        }
    };
    let fenced = rule.source_policy == MirrorSourcePolicy::NeverContactSource;
    if rule.mirrors.is_empty() {
        if fenced {
            problems.push(EntryProblem::FenceWithoutMirrors {
                field: field.to_owned(),
                written_source,
            });
            return None;
        }
        // A source with no mirrors still counts: as a longer prefix it keeps a broader entry's
        // mirrors away from its repositories, as the CRD documents ("from the source only").
        return Some(CheckedEntry {
            source,
            mirrors: Vec::new(),
            fenced,
        });
    }

    let mut mirrors = Vec::new();
    for (position, mirror) in rule.mirrors.iter().enumerate() {
        let mirror_field = format!("{field}.mirrors[{position}]");
        let location = match Location::parse(mirror.as_str()) {
            Ok(location) => location,
            Err(why) => {
                problems.push(EntryProblem::InvalidMirror {
                    field: mirror_field,
                    written_source: written_source.clone(),
                    mirror: shown(mirror.as_str()),
                    why,
                });
                continue;
            }
        };
        if is_refused_host(host_without_port(&location.host)) {
            problems.push(EntryProblem::MirrorAddressRefused {
                field: mirror_field,
                written_source: written_source.clone(),
                mirror: shown(mirror.as_str()),
            });
            continue;
        }
        if source.is_same_repository_as(&location) {
            problems.push(EntryProblem::MirrorIsSource {
                field: mirror_field,
                written_source: written_source.clone(),
                mirror: shown(mirror.as_str()),
            });
            continue;
        }
        // A repeat within the entry adds nothing, and would read as a cycle in the merge order.
        let normalised = location.normalised();
        if !mirrors.contains(&normalised) {
            mirrors.push(normalised);
        }
    }
    if mirrors.is_empty() {
        problems.push(EntryProblem::NoUsableMirror {
            field: field.to_owned(),
            written_source,
        });
        return None;
    }
    Some(CheckedEntry {
        source,
        mirrors,
        fenced,
    })
}

/// A source in the form references are matched against.
#[derive(Debug, Clone, PartialEq, Eq)]
struct NormalisedSource {
    /// One key, or two for a one-segment Docker Hub path: `docker.io/busybox` means the official image
    /// `docker.io/library/busybox` as Docker reads it, and also the namespace `docker.io/busybox/...`
    /// as a prefix reads it (`docker.io/bitnami` for `bitnami/redis`). The two never overlap.
    keys: Vec<String>,
    wildcard: bool,
}

impl NormalisedSource {
    fn parse(written: &str) -> Result<Self, String> {
        if let Some(rest) = written.strip_prefix('*') {
            let Some(domain) = rest.strip_prefix('.') else {
                return Err("a wildcard source is written *.domain".to_owned());
            };
            // containers-registries.conf(5): a wildcard matches every port, and says nothing about
            // repositories, so it may not carry either.
            if domain.contains(['/', ':', '@']) {
                return Err(
                    "a wildcard source is *.domain alone, with no port or repository path (it \
                     matches the domain's hosts on every port)"
                        .to_owned(),
                );
            }
            // A stand-in label turns `*.domain` into a host the location checks accept; it is
            // stripped again below.
            let location = Location::parse(&format!("x.{domain}"))?;
            let domain = &location.host["x.".len()..];
            return Ok(Self {
                keys: vec![format!("*.{domain}")],
                wildcard: true,
            });
        }
        let location = Location::parse(written)?;
        let keys = match (&location.path, &location.canonical_name) {
            (Some(path), Some(canonical_name)) => {
                let mut keys = vec![canonical_name.clone()];
                if location.host == DOCKER_HUB && !path.contains('/') {
                    keys.push(format!("{DOCKER_HUB}/{path}"));
                }
                keys
            }
            _ => vec![location.host.clone()],
        };
        Ok(Self {
            keys,
            wildcard: false,
        })
    }

    /// Whether a mirror names this very source, in any spelling.
    fn is_same_repository_as(&self, mirror: &Location) -> bool {
        let normalised = mirror.normalised();
        !self.wildcard
            && self
                .keys
                .iter()
                .any(|key| *key == normalised || mirror.canonical_name.as_ref() == Some(key))
    }
}

/// The host of `host[:port]` (an IPv6 literal keeps its brackets).
fn host_without_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.find(']').map_or(host, |end| &host[..=end]);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

/// A checked `host[:port][/path]` location.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Location {
    /// `docker.io` for `docker.io` and `index.docker.io`, otherwise the host as written in lower case.
    host: String,
    /// The repository path as written (checked to be lower-case), if any.
    path: Option<String>,
    /// Host and path as references are matched (`docker.io/library/busybox` for
    /// `docker.io/busybox`), when there is a path.
    canonical_name: Option<String>,
}

impl Location {
    /// Checks a location with the same grammar as image references (by parsing one), so that every
    /// accepted source can match some reference and every accepted mirror can form one. Trailing
    /// `/`s are dropped, as containers-registries.conf(5) does. The reasons never quote the host,
    /// since a wildcard source arrives here with a stand-in label.
    fn parse(written: &str) -> Result<Self, String> {
        let written = written.trim_end_matches('/');
        if written.is_empty() {
            return Err("it is empty".to_owned());
        }
        if written.chars().any(char::is_whitespace) {
            return Err("it contains whitespace".to_owned());
        }
        // Wildcard sources are unwrapped before they get here, so only a mirror can start with `*`.
        if written.starts_with('*') {
            return Err("a mirror cannot be a wildcard".to_owned());
        }
        if written.contains('@') {
            return Err(
                "it names a digest; a location is host[:port] with an optional repository path"
                    .to_owned(),
            );
        }
        let (host, path) = match written.split_once('/') {
            Some((host, path)) => (host, Some(path)),
            None => (written, None),
        };
        if path.is_some_and(|path| path.contains(':')) {
            return Err(
                "it names a tag; a location is host[:port] with an optional repository path"
                    .to_owned(),
            );
        }
        if !is_registry_host_like(host) {
            return Err(
                "it does not start with a registry host (a name containing '.' or ':', or \
                 localhost)"
                    .to_owned(),
            );
        }
        let host_reference = ImageReference::parse(&format!("{host}/x"))
            .ok()
            .filter(|reference| reference.registry_as_written() == Some(host))
            .ok_or_else(|| {
                "its registry host is not a host name or [IPv6 address] with an optional numeric \
                 port"
                    .to_owned()
            })?;
        let host = host_reference.canonical_registry().to_owned();
        let Some(path) = path else {
            return Ok(Self {
                host,
                path: None,
                canonical_name: None,
            });
        };
        match ImageReference::parse(&format!("{host}/{path}")) {
            Ok(reference) => Ok(Self {
                canonical_name: Some(reference.canonical_name()),
                host,
                path: Some(path.to_owned()),
            }),
            Err(ReferenceError::UppercaseRepository { .. }) => Err(format!(
                "repository path {:?} must be lower-case",
                shown(path)
            )),
            Err(ReferenceError::NameTooLong { length, .. }) => Err(format!(
                "it is {length} characters long; at most 255 are allowed"
            )),
            Err(_) => Err(format!(
                "repository path {:?} is not '/'-separated components of lower-case letters and \
                 digits, joined inside a component by '.', '_', '__' or dashes",
                shown(path)
            )),
        }
    }

    /// Host and path as written, with the host in canonical form: what a mirror's matched prefix is
    /// replaced by. The path keeps the user's spelling, so `docker.io/bitnami` + `/redis` stays in the
    /// bitnami namespace instead of becoming `library/bitnami/redis`.
    fn normalised(&self) -> String {
        match &self.path {
            Some(path) => format!("{}/{path}", self.host),
            None => self.host.clone(),
        }
    }
}

/// Docker's rule for telling a registry host from a first path segment.
fn is_registry_host_like(segment: &str) -> bool {
    segment.contains(['.', ':']) || segment == "localhost" || segment.starts_with('[')
}

/// User input cut to [`SHOWN_MAX_CHARS`] characters.
fn shown(text: &str) -> String {
    super::text::shorten(text, SHOWN_MAX_CHARS)
}

#[cfg(test)]
mod tests {
    use pretty_assertions::assert_eq;

    use super::*;
    use crate::api::image_content_source_policy::{
        ImageContentSourcePolicySpec, RepositoryDigestMirrors,
    };
    use crate::api::image_digest_mirror_set::{ImageDigestMirrorSetSpec, ImageDigestMirrors};
    use crate::api::image_tag_mirror_set::{ImageTagMirrorSetSpec, ImageTagMirrors};

    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    /// One entry: source, mirrors, and whether it says NeverContactSource.
    type Entry<'a> = (&'a str, &'a [&'a str], bool);

    fn allow<'a>(source: &'a str, mirrors: &'a [&'a str]) -> Entry<'a> {
        (source, mirrors, false)
    }

    fn never<'a>(source: &'a str, mirrors: &'a [&'a str]) -> Entry<'a> {
        (source, mirrors, true)
    }

    fn policy(fenced: bool) -> Option<MirrorSourcePolicy> {
        fenced.then_some(MirrorSourcePolicy::NeverContactSource)
    }

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
                    .map(|(source, mirrors, fenced)| ImageDigestMirrors {
                        source: (*source).into(),
                        mirrors: mirrors.iter().map(|mirror| (*mirror).into()).collect(),
                        mirror_source_policy: policy(*fenced),
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
                    .map(|(source, mirrors, fenced)| ImageTagMirrors {
                        source: (*source).into(),
                        mirrors: mirrors.iter().map(|mirror| (*mirror).into()).collect(),
                        mirror_source_policy: policy(*fenced),
                    })
                    .collect(),
            },
        )
    }

    fn reference(text: &str) -> ImageReference {
        ImageReference::parse(text).unwrap_or_else(|error| panic!("{text}: {error}"))
    }

    /// The plan as strings in order, the source marked, so tables read like the pull order.
    fn order(plan: &MirrorPlan) -> Vec<String> {
        plan.sources
            .iter()
            .map(|pull| {
                if pull.is_source {
                    format!("{} (source)", pull.reference)
                } else {
                    pull.reference.to_string()
                }
            })
            .collect()
    }

    fn tag_plan(index: &MirrorIndex, text: &str) -> Vec<String> {
        order(&index.plan(&reference(text), ImportKind::ByTag))
    }

    fn digest_plan(index: &MirrorIndex, text: &str) -> Vec<String> {
        order(&index.plan(&reference(text), ImportKind::ByDigest))
    }

    fn tag_index(objects: &[ImageTagMirrorSet]) -> MirrorIndex {
        MirrorIndex::build(&[], &[], objects)
    }

    fn messages(index: &MirrorIndex, object: &MirrorObjectRef) -> Vec<String> {
        index
            .problems(object)
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn a_reference_no_source_matches_is_pulled_from_the_source_alone() {
        let index = tag_index(&[itms("a", &[allow("quay.io/org", &["mirror.local/org"])])]);
        let input = reference("ghcr.io/org/app:v1");
        let plan = index.plan(&input, ImportKind::ByTag);
        assert_eq!(plan, MirrorPlan::source_only(&input));
        assert_eq!(plan.sources[0].reference, input);
        assert!(plan.sources[0].is_source);
        assert_eq!(plan.sources[0].from_object, None);
        assert_eq!(plan.matched_source, None);
        assert!(!plan.source_fenced());

        let empty = MirrorIndex::default();
        assert_eq!(
            empty.plan(&input, ImportKind::ByDigest),
            MirrorPlan::source_only(&input)
        );
    }

    #[test]
    fn the_longest_matching_source_wins() {
        let index = tag_index(&[itms(
            "a",
            &[
                allow("quay.io", &["host.local"]),
                allow("quay.io/org/app", &["repo.local/app"]),
                allow("quay.io/org", &["org.local/org"]),
            ],
        )]);
        let cases = [
            (
                "quay.io/org/app:v1",
                vec!["repo.local/app:v1", "quay.io/org/app:v1 (source)"],
            ),
            (
                "quay.io/org/app/sub:v1",
                vec!["repo.local/app/sub:v1", "quay.io/org/app/sub:v1 (source)"],
            ),
            (
                "quay.io/org/other:v1",
                vec!["org.local/org/other:v1", "quay.io/org/other:v1 (source)"],
            ),
            (
                "quay.io/else/app:v1",
                vec!["host.local/else/app:v1", "quay.io/else/app:v1 (source)"],
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(tag_plan(&index, input), expected, "{input}");
        }
        let plan = index.plan(&reference("quay.io/org/app:v1"), ImportKind::ByTag);
        assert_eq!(plan.matched_source.as_deref(), Some("quay.io/org/app"));
    }

    #[test]
    fn a_source_matches_only_at_a_slash_boundary() {
        let index = tag_index(&[itms(
            "a",
            &[
                allow("quay.io/org", &["mirror.local/org"]),
                allow("registry.local", &["mirror.local/registry"]),
            ],
        )]);
        let cases = [
            (
                "quay.io/organisation/x:1",
                vec!["quay.io/organisation/x:1 (source)"],
            ),
            (
                "quay.io/org/x:1",
                vec!["mirror.local/org/x:1", "quay.io/org/x:1 (source)"],
            ),
            (
                "quay.io/org:1",
                vec!["mirror.local/org:1", "quay.io/org:1 (source)"],
            ),
            (
                "registry.localdomain/x:1",
                vec!["registry.localdomain/x:1 (source)"],
            ),
            (
                "registry.local:5000/x:1",
                vec!["registry.local:5000/x:1 (source)"],
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(tag_plan(&index, input), expected, "{input}");
        }
    }

    #[test]
    fn docker_hub_sources_are_normalised_in_every_spelling() {
        let sources = [
            "docker.io/library/busybox",
            "docker.io/busybox",
            "index.docker.io/busybox",
            "index.docker.io/library/busybox",
            "Docker.IO/library/busybox",
        ];
        let references = [
            "busybox:1.36",
            "library/busybox:1.36",
            "docker.io/busybox:1.36",
            "docker.io/library/busybox:1.36",
            "index.docker.io/busybox:1.36",
        ];
        for source in sources {
            let index = tag_index(&[itms("hub", &[allow(source, &["mirror.local/busybox"])])]);
            assert_eq!(
                index.sources_of(&MirrorObjectRef::new(MirrorKind::ImageTagMirrorSet, "hub"))[0],
                "docker.io/library/busybox",
                "{source}"
            );
            for input in references {
                assert_eq!(
                    tag_plan(&index, input),
                    [
                        "mirror.local/busybox:1.36".to_owned(),
                        format!("{input} (source)")
                    ],
                    "{input} via {source}"
                );
            }
            assert_eq!(
                tag_plan(&index, "busybox-extra:1"),
                ["busybox-extra:1 (source)"],
                "{source}"
            );
        }
    }

    #[test]
    fn docker_hub_host_and_namespace_sources_match_hub_images() {
        let index = tag_index(&[itms(
            "hub",
            &[
                allow("index.docker.io", &["hub.local/hub"]),
                allow("docker.io/library", &["hub.local/official"]),
                allow("docker.io/bitnami", &["hub.local/bitnami"]),
            ],
        )]);
        let cases = [
            (
                "nginx:1",
                vec!["hub.local/official/nginx:1", "nginx:1 (source)"],
            ),
            (
                "bitnami/redis:7",
                vec!["hub.local/bitnami/redis:7", "bitnami/redis:7 (source)"],
            ),
            (
                "someone/app:1",
                vec!["hub.local/hub/someone/app:1", "someone/app:1 (source)"],
            ),
            ("quay.io/app/x:1", vec!["quay.io/app/x:1 (source)"]),
        ];
        for (input, expected) in cases {
            assert_eq!(tag_plan(&index, input), expected, "{input}");
        }
    }

    #[test]
    fn a_wildcard_source_matches_any_subdomain_on_any_port_but_not_the_domain_itself() {
        let index = tag_index(&[itms(
            "w",
            &[allow("*.Example.com", &["mirror.local/example"])],
        )]);
        let cases = [
            (
                "a.example.com/team/app:1",
                vec![
                    "mirror.local/example/team/app:1",
                    "a.example.com/team/app:1 (source)",
                ],
            ),
            (
                "b.a.example.com/app:1",
                vec![
                    "mirror.local/example/app:1",
                    "b.a.example.com/app:1 (source)",
                ],
            ),
            ("example.com/app:1", vec!["example.com/app:1 (source)"]),
            ("aexample.com/app:1", vec!["aexample.com/app:1 (source)"]),
            // The mirror replaces host and port alike.
            (
                "a.example.com:5000/app:1",
                vec![
                    "mirror.local/example/app:1",
                    "a.example.com:5000/app:1 (source)",
                ],
            ),
            ("[::1]:5000/app:1", vec!["[::1]:5000/app:1 (source)"]),
        ];
        for (input, expected) in cases {
            assert_eq!(tag_plan(&index, input), expected, "{input}");
        }
        let plan = index.plan(&reference("a.example.com/app:1"), ImportKind::ByTag);
        assert_eq!(plan.matched_source.as_deref(), Some("*.example.com"));
    }

    #[test]
    fn an_exact_source_beats_a_wildcard_and_a_longer_wildcard_beats_a_shorter_one() {
        let index = tag_index(&[itms(
            "w",
            &[
                allow("*.example.com", &["wide.local"]),
                allow("*.b.example.com", &["narrow.local"]),
                allow("a.example.com", &["exact.local"]),
            ],
        )]);
        let cases = [
            (
                "a.example.com/team/app:1",
                vec![
                    "exact.local/team/app:1",
                    "a.example.com/team/app:1 (source)",
                ],
            ),
            (
                "c.b.example.com/x/y:1",
                vec!["narrow.local/x/y:1", "c.b.example.com/x/y:1 (source)"],
            ),
            (
                "c.example.com/x/y:1",
                vec!["wide.local/x/y:1", "c.example.com/x/y:1 (source)"],
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(tag_plan(&index, input), expected, "{input}");
        }
    }

    #[test]
    fn mirror_lists_for_one_source_merge_keeping_each_lists_order_then_the_source() {
        let index = MirrorIndex::build(
            &[icsp(
                "b-first",
                &[(
                    "quay.io/org",
                    &["c.local/org", "d.local/org", "e.local/org"],
                )],
            )],
            &[idms(
                "a-second",
                &[allow(
                    "quay.io/org",
                    &["a.local/org", "b.local/org", "c.local/org"],
                )],
            )],
            &[],
        );
        let plan = index.plan(
            &reference(&format!("quay.io/org/app@{DIGEST}")),
            ImportKind::ByDigest,
        );
        // `[c,d,e]` and `[a,b,c]` agree on `a,b,c,d,e`, whichever object comes first.
        let expected: Vec<String> = ["a", "b", "c", "d", "e"]
            .iter()
            .map(|mirror| format!("{mirror}.local/org/app@{DIGEST}"))
            .chain([format!("quay.io/org/app@{DIGEST} (source)")])
            .collect();
        assert_eq!(order(&plan), expected);
        let from: Vec<_> = plan
            .sources
            .iter()
            .map(|pull| pull.from_object.as_ref().map(ToString::to_string))
            .collect();
        // A mirror listed by several objects is credited to the first in merge order (ICSP before
        // IDMS, then by name).
        assert_eq!(
            from,
            [
                Some("ImageDigestMirrorSet/a-second".to_owned()),
                Some("ImageDigestMirrorSet/a-second".to_owned()),
                Some("ImageContentSourcePolicy/b-first".to_owned()),
                Some("ImageContentSourcePolicy/b-first".to_owned()),
                Some("ImageContentSourcePolicy/b-first".to_owned()),
                None,
            ]
        );
    }

    #[test]
    fn objects_of_one_kind_merge_by_name_as_in_the_spec_example() {
        let index = tag_index(&[
            itms(
                "two",
                &[allow("quay.io/org", &["c.local", "d.local", "e.local"])],
            ),
            itms(
                "one",
                &[allow("quay.io/org", &["a.local", "b.local", "c.local"])],
            ),
        ]);
        assert_eq!(
            tag_plan(&index, "quay.io/org/app:v1"),
            [
                "a.local/app:v1",
                "b.local/app:v1",
                "c.local/app:v1",
                "d.local/app:v1",
                "e.local/app:v1",
                "quay.io/org/app:v1 (source)",
            ]
        );
    }

    #[test]
    fn a_mirror_listed_twice_is_tried_once_whatever_its_spelling() {
        let index = tag_index(&[
            itms(
                "one",
                &[allow(
                    "quay.io/org",
                    &["mirror.local/org", "Mirror.Local/org", "mirror.local/org"],
                )],
            ),
            itms(
                "two",
                &[
                    allow("quay.io/org", &["mirror.local/org", "other.local/org"]),
                    allow("quay.io/org", &["other.local/org"]),
                ],
            ),
            itms(
                "three",
                &[allow(
                    "quay.io/hub",
                    &["docker.io/busybox", "index.docker.io/library/busybox"],
                )],
            ),
        ]);
        assert_eq!(
            tag_plan(&index, "quay.io/org/app:v1"),
            [
                "mirror.local/org/app:v1",
                "other.local/org/app:v1",
                "quay.io/org/app:v1 (source)",
            ]
        );
        assert_eq!(
            tag_plan(&index, "quay.io/hub:v1"),
            ["docker.io/busybox:v1", "quay.io/hub:v1 (source)"]
        );
        for object in index.objects() {
            assert_eq!(index.problems(object), [], "{object}");
        }
    }

    #[test]
    fn never_contact_source_from_one_of_two_objects_fences_the_source() {
        let index = MirrorIndex::build(
            &[icsp("legacy", &[("quay.io/org", &["a.local/org"])])],
            &[idms("fence", &[never("quay.io/org", &["b.local/org"])])],
            &[],
        );
        let plan = index.plan(
            &reference(&format!("quay.io/org/app@{DIGEST}")),
            ImportKind::ByDigest,
        );
        assert!(plan.source_fenced());
        assert!(plan.sources.iter().all(|pull| !pull.is_source));
        assert_eq!(
            order(&plan),
            [
                format!("a.local/org/app@{DIGEST}"),
                format!("b.local/org/app@{DIGEST}")
            ]
        );

        // The fence holds whichever object comes first in merge order.
        let index = tag_index(&[
            itms("a-fence", &[never("quay.io/org", &["a.local/org"])]),
            itms("b-allow", &[allow("quay.io/org", &["b.local/org"])]),
        ]);
        assert_eq!(
            tag_plan(&index, "quay.io/org/app:v1"),
            ["a.local/org/app:v1", "b.local/org/app:v1"]
        );
        // The fence belongs to its source: a longer source without it still allows the source.
        let index = tag_index(&[
            itms("fence", &[never("quay.io/org", &["b.local/org"])]),
            itms("deeper", &[allow("quay.io/org/app", &["c.local/app"])]),
        ]);
        assert_eq!(
            tag_plan(&index, "quay.io/org/app:v1"),
            ["c.local/app:v1", "quay.io/org/app:v1 (source)"]
        );
    }

    #[test]
    fn a_digest_import_ignores_tag_mirrors_and_a_tag_import_ignores_digest_mirrors() {
        let index = MirrorIndex::build(
            &[icsp(
                "digests-legacy",
                &[("quay.io/org", &["icsp.local/org"])],
            )],
            &[idms(
                "digests",
                &[allow("quay.io/org", &["idms.local/org"])],
            )],
            &[itms("tags", &[allow("quay.io/org", &["itms.local/org"])])],
        );
        let by_digest = format!("quay.io/org/app@{DIGEST}");
        assert_eq!(
            digest_plan(&index, &by_digest),
            [
                format!("icsp.local/org/app@{DIGEST}"),
                format!("idms.local/org/app@{DIGEST}"),
                format!("{by_digest} (source)"),
            ]
        );
        assert_eq!(
            tag_plan(&index, "quay.io/org/app:v1"),
            ["itms.local/org/app:v1", "quay.io/org/app:v1 (source)"]
        );

        let digest_only = MirrorIndex::build(
            &[icsp(
                "digests-legacy",
                &[("quay.io/org", &["icsp.local/org"])],
            )],
            &[idms(
                "digests",
                &[allow("quay.io/org", &["idms.local/org"])],
            )],
            &[],
        );
        assert_eq!(
            tag_plan(&digest_only, "quay.io/org/app:v1"),
            ["quay.io/org/app:v1 (source)"]
        );
        let tag_only = tag_index(&[itms("tags", &[allow("quay.io/org", &["itms.local/org"])])]);
        assert_eq!(
            digest_plan(&tag_only, &by_digest),
            [format!("{by_digest} (source)")]
        );
    }

    #[test]
    fn never_contact_source_on_a_digest_mirror_set_blocks_imports_by_tag_too() {
        let fence = idms("fence", &[never("quay.io/org", &["idms.local/org"])]);
        let fenced_by = [MirrorObjectRef::from(&fence)];
        let tag_sets: [(&str, Vec<ImageTagMirrorSet>, Vec<&str>); 4] = [
            // No tag mirror: nothing may serve a tag, and the plan says why.
            ("no tag mirrors", vec![], vec![]),
            (
                "tag mirrors for the fenced source",
                vec![itms("tags", &[allow("quay.io/org", &["itms.local/org"])])],
                vec!["itms.local/org/app:v1"],
            ),
            (
                "tag mirrors for a broader source",
                vec![itms("tags", &[allow("quay.io", &["itms.local"])])],
                vec!["itms.local/org/app:v1"],
            ),
            // A more specific source that does not fence lifts the fence, as the longest source
            // governs.
            (
                "tag mirrors for a more specific source",
                vec![itms(
                    "tags",
                    &[allow("quay.io/org/app", &["itms.local/app"])],
                )],
                vec!["itms.local/app:v1", "quay.io/org/app:v1 (source)"],
            ),
        ];
        for (case, tag_sets, expected) in tag_sets {
            let index = MirrorIndex::build(&[], [&fence], &tag_sets);
            let plan = index.plan(&reference("quay.io/org/app:v1"), ImportKind::ByTag);
            assert_eq!(order(&plan), expected, "{case}");
            let fenced = !expected.iter().any(|place| place.ends_with("(source)"));
            let expected_fence = fenced.then(|| SourceFence {
                source: "quay.io/org".to_owned(),
                by: fenced_by.to_vec(),
            });
            assert_eq!(plan.fence, expected_fence, "{case}");
        }

        let index = MirrorIndex::build(&[], [&fence], []);
        let plan = index.plan(&reference("quay.io/org/app:v1"), ImportKind::ByTag);
        assert!(plan.sources.is_empty());
        assert_eq!(plan.matched_source, None);
        assert_eq!(
            plan.fence.map(|fence| fence.to_string()).as_deref(),
            Some(
                "quay.io/org is blocked by mirrorSourcePolicy NeverContactSource in \
                 ImageDigestMirrorSet/fence"
            )
        );
        // Repositories outside the fenced source are untouched.
        assert_eq!(
            tag_plan(&index, "quay.io/organisation/app:v1"),
            ["quay.io/organisation/app:v1 (source)"]
        );
    }

    #[test]
    fn never_contact_source_on_a_tag_mirror_set_blocks_imports_by_digest_too() {
        let by_digest = format!("quay.io/org/app@{DIGEST}");
        let fence = itms("fence", &[never("quay.io/org", &["itms.local/org"])]);
        let index = MirrorIndex::build(&[], &[], [&fence]);
        let plan = index.plan(&reference(&by_digest), ImportKind::ByDigest);
        assert_eq!(order(&plan), [] as [String; 0]);
        assert_eq!(
            plan.fence,
            Some(SourceFence {
                source: "quay.io/org".to_owned(),
                by: vec![MirrorObjectRef::from(&fence)],
            })
        );

        // Digest mirrors serve the digest; the source stays out.
        let index = MirrorIndex::build(
            &[icsp("legacy", &[("quay.io/org", &["icsp.local/org"])])],
            &[idms(
                "digests",
                &[allow("quay.io/org", &["idms.local/org"])],
            )],
            [&fence],
        );
        assert_eq!(
            digest_plan(&index, &by_digest),
            [
                format!("icsp.local/org/app@{DIGEST}"),
                format!("idms.local/org/app@{DIGEST}"),
            ]
        );
    }

    #[test]
    fn a_fence_names_every_object_that_set_it_in_merge_order() {
        let index = MirrorIndex::build(
            &[icsp("legacy", &[("quay.io/org", &["icsp.local/org"])])],
            &[
                idms("z-digests", &[never("quay.io/org", &["z.local/org"])]),
                idms("a-digests", &[never("quay.io/org", &["a.local/org"])]),
            ],
            &[itms("tags", &[never("quay.io/org", &["t.local/org"])])],
        );
        let plan = index.plan(&reference("quay.io/org/app:v1"), ImportKind::ByTag);
        assert_eq!(order(&plan), ["t.local/org/app:v1"]);
        let by: Vec<String> = plan
            .fence
            .iter()
            .flat_map(|fence| fence.by.iter().map(ToString::to_string))
            .collect();
        assert_eq!(
            by,
            [
                "ImageDigestMirrorSet/a-digests",
                "ImageDigestMirrorSet/z-digests",
                "ImageTagMirrorSet/tags"
            ]
        );
    }

    #[test]
    fn mirrored_references_keep_tag_and_digest() {
        let index = MirrorIndex::build(
            &[icsp("d", &[("quay.io/org", &["mirror.local:5000/org"])])],
            &[],
            &[],
        );
        let pinned = format!("quay.io/org/app:v1@{DIGEST}");
        let plan = index.plan(&reference(&pinned), ImportKind::ByDigest);
        let mirror = &plan.sources[0].reference;
        assert_eq!(mirror.api_host(), "mirror.local:5000");
        assert_eq!(mirror.repository(), "org/app");
        assert_eq!(mirror.tag(), Some("v1"));
        assert_eq!(mirror.digest(), Some(DIGEST));
        assert_eq!(plan.sources[1].reference.as_str(), pinned);
    }

    #[test]
    fn malformed_entries_are_reported_and_skipped_while_the_rest_of_the_object_applies() {
        let bad = icsp(
            "mixed",
            &[
                ("quay.io/Org", &["mirror.local/org"]),
                (
                    "quay.io/good",
                    &["mirror", "mirror.local/good", "quay.io/good"],
                ),
                ("registry", &["mirror.local"]),
                ("ghcr.io/team", &["bad mirror", "mirror.local/Team"]),
                ("*example.com", &["mirror.local"]),
            ],
        );
        let index = MirrorIndex::build(
            [&bad],
            &[idms("fence", &[never("quay.io/empty", &[])])],
            &[],
        );
        let object = MirrorObjectRef::from(&bad);
        assert_eq!(
            messages(&index, &object),
            [
                "spec.repositoryDigestMirrors[0]: source \"quay.io/Org\" is not usable: repository \
                 path \"Org\" must be lower-case; the entry is skipped",
                "spec.repositoryDigestMirrors[1].mirrors[0]: mirror \"mirror\" for source \
                 \"quay.io/good\" is not usable: it does not start with a registry host (a name \
                 containing '.' or ':', or localhost); the mirror is skipped",
                "spec.repositoryDigestMirrors[1].mirrors[2]: mirror \"quay.io/good\" is the source \
                 \"quay.io/good\" itself; the mirror is skipped",
                "spec.repositoryDigestMirrors[2]: source \"registry\" is not usable: it does not \
                 start with a registry host (a name containing '.' or ':', or localhost); the entry \
                 is skipped",
                "spec.repositoryDigestMirrors[3].mirrors[0]: mirror \"bad mirror\" for source \
                 \"ghcr.io/team\" is not usable: it contains whitespace; the mirror is skipped",
                "spec.repositoryDigestMirrors[3].mirrors[1]: mirror \"mirror.local/Team\" for \
                 source \"ghcr.io/team\" is not usable: repository path \"Team\" must be \
                 lower-case; the mirror is skipped",
                "spec.repositoryDigestMirrors[3]: none of the mirrors listed for source \
                 \"ghcr.io/team\" is usable; the entry is skipped",
                "spec.repositoryDigestMirrors[4]: source \"*example.com\" is not usable: a \
                 wildcard source is written *.domain; the entry is skipped",
            ]
        );
        let reasons: Vec<_> = index
            .problems(&object)
            .iter()
            .map(EntryProblem::reason)
            .collect();
        assert_eq!(
            reasons,
            [
                "InvalidMirrorSource",
                "InvalidMirror",
                "MirrorIsSource",
                "InvalidMirrorSource",
                "InvalidMirror",
                "InvalidMirror",
                "NoUsableMirror",
                "InvalidMirrorSource",
            ]
        );
        assert_eq!(index.sources_of(&object), ["quay.io/good"]);
        assert_eq!(
            digest_plan(&index, &format!("quay.io/good/app@{DIGEST}")),
            [
                format!("mirror.local/good/app@{DIGEST}"),
                format!("quay.io/good/app@{DIGEST} (source)")
            ]
        );
        // A skipped entry neither mirrors nor shadows anything.
        assert_eq!(
            digest_plan(&index, &format!("ghcr.io/team/app@{DIGEST}")),
            [format!("ghcr.io/team/app@{DIGEST} (source)")]
        );

        let fence = MirrorObjectRef::new(MirrorKind::ImageDigestMirrorSet, "fence");
        assert_eq!(
            messages(&index, &fence),
            [
                "spec.imageDigestMirrors[0]: source \"quay.io/empty\" has mirrorSourcePolicy \
              NeverContactSource but no mirrors, which would leave nothing to import from; the \
              entry is skipped"
            ]
        );
        assert_eq!(index.sources_of(&fence), [] as [String; 0]);
        assert_eq!(
            digest_plan(&index, &format!("quay.io/empty/app@{DIGEST}")),
            [format!("quay.io/empty/app@{DIGEST} (source)")]
        );
    }

    #[test]
    fn each_kind_of_malformed_location_gets_its_own_reason() {
        let cases = [
            ("", "it is empty"),
            ("quay.io/a b", "it contains whitespace"),
            ("*", "a wildcard source is written *.domain"),
            ("*.", "its registry host is not a host name"),
            ("*.*.example.com", "its registry host is not a host name"),
            (
                "quay.io/org@sha256:abc",
                "it names a digest; a location is host[:port]",
            ),
            ("quay.io/org:v1", "it names a tag"),
            ("quay.io:port/org", "its registry host is not a host name"),
            ("/", "it is empty"),
            (
                "quay.io//org",
                "repository path \"/org\" is not '/'-separated",
            ),
            (
                "quay.io/org/-x",
                "repository path \"org/-x\" is not '/'-separated",
            ),
            (
                "*.example.com/Team",
                "a wildcard source is *.domain alone, with no port or repository path",
            ),
            (
                "*.example.com/team",
                "a wildcard source is *.domain alone, with no port or repository path",
            ),
            (
                "*.example.com:5000",
                "a wildcard source is *.domain alone, with no port or repository path",
            ),
        ];
        for (source, expected) in cases {
            let object = itms("o", &[allow(source, &["mirror.local"])]);
            let index = tag_index(std::slice::from_ref(&object));
            let problems = index.problems(&MirrorObjectRef::from(&object));
            match problems {
                [EntryProblem::InvalidSource { why, .. }] => {
                    assert!(why.starts_with(expected), "{source:?}: {why}")
                }
                other => panic!("{source:?}: {other:?}"),
            }
        }
        let object = itms("o", &[allow("quay.io", &["*.mirror.local"])]);
        let index = tag_index(std::slice::from_ref(&object));
        assert!(matches!(
            index.problems(&MirrorObjectRef::from(&object)),
            [EntryProblem::InvalidMirror { why, .. }, EntryProblem::NoUsableMirror { .. }]
                if why == "a mirror cannot be a wildcard"
        ));
    }

    #[test]
    fn a_mirror_naming_its_source_in_another_spelling_is_reported() {
        let cases = [
            ("quay.io/org", "Quay.IO/org"),
            ("docker.io/library/busybox", "docker.io/busybox"),
            ("docker.io/busybox", "index.docker.io/library/busybox"),
            ("index.docker.io", "docker.io"),
            ("localhost:5000/a", "LOCALHOST:5000/a"),
        ];
        for (source, mirror) in cases {
            let object = itms("o", &[allow(source, &[mirror, "mirror.local"])]);
            let index = tag_index(std::slice::from_ref(&object));
            assert!(
                matches!(
                    index.problems(&MirrorObjectRef::from(&object)),
                    [EntryProblem::MirrorIsSource { .. }]
                ),
                "{source} / {mirror}: {:?}",
                index.problems(&MirrorObjectRef::from(&object))
            );
        }
    }

    #[test]
    fn a_mirror_at_a_link_local_or_metadata_address_is_reported_and_never_planned() {
        let cases = [
            ("169.254.169.254/latest", true),
            ("169.254.169.254:80/latest", true),
            ("100.100.100.200/team", true),
            ("[fe80::1]:5000/team", true),
            ("[fd00:ec2::254]/team", true),
            ("[64:ff9b::a9fe:a9fe]/team", true),
            ("[::ffff:a9fe:a9fe]/team", true),
            ("10.0.0.5:5000/team", false),
            ("mirror.local/team", false),
        ];
        for (mirror, refused) in cases {
            let object = itms("o", &[allow("quay.io/org", &[mirror, "mirror.local/org"])]);
            let index = tag_index(std::slice::from_ref(&object));
            let problems = index.problems(&MirrorObjectRef::from(&object));
            if refused {
                assert!(
                    matches!(
                        problems,
                        [EntryProblem::MirrorAddressRefused { field, .. }]
                            if field == "spec.imageTagMirrors[0].mirrors[0]"
                    ),
                    "{mirror}: {problems:?}"
                );
                assert_eq!(problems[0].reason(), "MirrorAddressRefused");
                let reference: ImageReference = "quay.io/org/app:v1".parse().unwrap();
                let plan = index.plan(&reference, ImportKind::ByTag);
                assert!(
                    plan.sources.iter().all(|s| !s
                        .reference
                        .to_string()
                        .contains(mirror.split('/').next().unwrap())),
                    "{mirror}: {plan:?}"
                );
            } else {
                assert!(problems.is_empty(), "{mirror}: {problems:?}");
            }
        }
    }

    #[test]
    fn problem_messages_cut_absurdly_long_input() {
        let long = format!("quay.io/{}", "A".repeat(500));
        let object = itms("o", &[allow(&long, &["mirror.local"])]);
        let index = tag_index(std::slice::from_ref(&object));
        let message = messages(&index, &MirrorObjectRef::from(&object)).join("");
        assert!(message.len() < 400, "{message}");
        assert!(message.contains('…'));
    }

    #[test]
    fn a_source_with_no_mirrors_keeps_a_broader_sources_mirrors_away() {
        let index = tag_index(&[itms(
            "a",
            &[
                allow("quay.io/org", &["mirror.local/org"]),
                allow("quay.io/org/private", &[]),
            ],
        )]);
        assert_eq!(
            tag_plan(&index, "quay.io/org/private:v1"),
            ["quay.io/org/private:v1 (source)"]
        );
        assert_eq!(
            tag_plan(&index, "quay.io/org/public:v1"),
            [
                "mirror.local/org/public:v1",
                "quay.io/org/public:v1 (source)"
            ]
        );
        assert_eq!(
            index.problems(&MirrorObjectRef::new(MirrorKind::ImageTagMirrorSet, "a")),
            []
        );
    }

    #[test]
    fn a_mirror_that_cannot_serve_this_reference_is_recorded_and_left_out() {
        let index = tag_index(&[itms(
            "a",
            &[never("quay.io/org/app", &["host.local", "repo.local/app"])],
        )]);
        let plan = index.plan(&reference("quay.io/org/app:v1"), ImportKind::ByTag);
        assert_eq!(order(&plan), ["repo.local/app:v1"]);
        assert_eq!(plan.unusable_mirrors.len(), 1);
        let unusable = &plan.unusable_mirrors[0];
        assert_eq!(unusable.mirror, "host.local");
        assert_eq!(unusable.from_object.to_string(), "ImageTagMirrorSet/a");
        assert!(matches!(
            unusable.error,
            ReferenceError::MirrorLeavesNoRepository { .. }
        ));
        // The same host-only mirror works for repositories below the source.
        assert_eq!(
            tag_plan(&index, "quay.io/org/app/sub:v1"),
            ["host.local/sub:v1", "repo.local/app/sub:v1"]
        );
    }

    #[test]
    fn a_mirror_that_lands_on_the_fenced_source_is_never_tried() {
        let index = tag_index(&[itms(
            "w",
            &[never(
                "*.example.com",
                &["a.example.com/cache", "a.example.com"],
            )],
        )]);
        // For b.example.com both mirrors are elsewhere; for a.example.com the second one is the
        // source itself, which the fence forbids.
        assert_eq!(
            tag_plan(&index, "b.example.com/app:1"),
            ["a.example.com/cache/app:1", "a.example.com/app:1"]
        );
        assert_eq!(
            tag_plan(&index, "a.example.com/app:1"),
            ["a.example.com/cache/app:1"]
        );
    }

    #[test]
    fn the_plan_does_not_depend_on_the_order_objects_are_given_in() {
        let icsps = [
            icsp("z", &[("quay.io/org", &["z.local/org"])]),
            icsp(
                "m",
                &[("quay.io/org", &["m.local/org"]), ("quay.io", &["h.local"])],
            ),
        ];
        let idmss = [
            idms("b", &[never("quay.io/org", &["b.local/org"])]),
            idms(
                "a",
                &[allow("quay.io/org", &["a.local/org", "m.local/org"])],
            ),
            idms("c", &[allow("*.quay.io", &["w.local"])]),
        ];
        let itmss = [
            itms("y", &[allow("quay.io/org", &["y.local/org"])]),
            itms("x", &[allow("quay.io/org", &["x.local/org"])]),
        ];
        let forward = MirrorIndex::build(&icsps, &idmss, &itmss);
        let backward =
            MirrorIndex::build(icsps.iter().rev(), idmss.iter().rev(), itmss.iter().rev());
        assert_eq!(forward, backward);

        let by_digest = format!("quay.io/org/app@{DIGEST}");
        // Only `[a, m]` orders two of them; the others come by name.
        let expected: Vec<String> = ["a", "b", "z", "m"]
            .iter()
            .map(|mirror| format!("{mirror}.local/org/app@{DIGEST}"))
            .collect();
        assert_eq!(digest_plan(&forward, &by_digest), expected);
        assert_eq!(digest_plan(&backward, &by_digest), expected);
        // The fence of ImageDigestMirrorSet/b holds for tags as well.
        assert_eq!(
            tag_plan(&backward, "quay.io/org/app:v1"),
            ["x.local/org/app:v1", "y.local/org/app:v1"]
        );
    }

    #[test]
    fn an_object_affects_exactly_the_references_its_usable_sources_match() {
        let digest_object = idms(
            "d",
            &[
                allow("quay.io/org", &["mirror.local/org"]),
                allow("quay.io/Bad", &["mirror.local/bad"]),
            ],
        );
        let tag_object = itms("t", &[allow("*.example.com", &["mirror.local/example"])]);
        let index = MirrorIndex::build(
            &[],
            std::slice::from_ref(&digest_object),
            std::slice::from_ref(&tag_object),
        );
        let digest_ref = MirrorObjectRef::from(&digest_object);
        let tag_ref = MirrorObjectRef::from(&tag_object);
        let cases = [
            (&digest_ref, "quay.io/org/app:v1", true),
            (&digest_ref, "quay.io/org:v1", true),
            (&digest_ref, "quay.io/organisation/app:v1", false),
            (&digest_ref, "quay.io/bad/app:v1", false),
            (&tag_ref, "a.example.com/app:v1", true),
            (&tag_ref, "example.com/app:v1", false),
            (&tag_ref, "quay.io/org/app:v1", false),
        ];
        for (object, input, expected) in cases {
            assert_eq!(
                index.affects(object, &reference(input)),
                expected,
                "{object} on {input}"
            );
        }
        let gone = MirrorObjectRef::new(MirrorKind::ImageContentSourcePolicy, "gone");
        assert!(!index.affects(&gone, &reference("quay.io/org/app:v1")));
        assert_eq!(index.problems(&gone), []);
        assert_eq!(
            index.objects().map(ToString::to_string).collect::<Vec<_>>(),
            ["ImageDigestMirrorSet/d", "ImageTagMirrorSet/t"]
        );
    }
}
