//! ImageTagMirrorSet (config.openshift.io/v1, short name `itms`): cluster-wide mirrors for imports by
//! tag, with a per-source policy on whether the source may still be contacted. The schema keeps
//! OpenShift's validation, so OpenShift manifests are accepted or refused exactly as there.
//!
//! Validation choice: `source` and each mirror carry OpenShift's patterns, `mirrorSourcePolicy` its enum,
//! `mirrors` is a set and the entry list is atomic. The apiserver therefore refuses a whole object with one
//! malformed entry, exactly as OpenShift does. The controller still checks every entry (objects stored
//! under a looser schema can exist) and skips only a bad one, as it does for ImageContentSourcePolicy.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::mirror_set::{ImageMirror, MirrorRule, MirrorSource, MirrorSourcePolicy};

/// The desired mirrors of an ImageTagMirrorSet.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "config.openshift.io",
    version = "v1",
    kind = "ImageTagMirrorSet",
    shortname = "itms",
    status = "ImageTagMirrorSetStatus",
    derive = "PartialEq",
    doc = "Cluster-wide mirror locations used when the operator imports an image by tag. Each entry names a source repository, the mirrors that hold the same content and whether the source may be contacted after them. Served with OpenShift's group, kind and validation so OpenShift manifests apply unchanged."
)]
#[serde(rename_all = "camelCase")]
pub struct ImageTagMirrorSetSpec {
    /// Mirror entries for imports by tag (`repo:tag`); imports by digest use ImageDigestMirrorSet or
    /// ImageContentSourcePolicy. A tag on a mirror may name other content than the same tag on the
    /// source, so prefer digest mirrors where that matters.
    /// An image is matched against the longest source that equals its repository or is a prefix of it
    /// at a `/` boundary, and the matched part is replaced by each mirror in turn. Mirrors listed for
    /// the same source by several entries or objects are merged keeping each list's order where the
    /// lists agree (`a,b,c` plus `c,d,e` gives `a,b,c,d,e`; mirrors no list orders come by name),
    /// then the source itself is tried unless it is blocked by NeverContactSource, which an
    /// ImageDigestMirrorSet entry for the source can also set. The list is replaced as a whole on
    /// server-side apply.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub image_tag_mirrors: Vec<ImageTagMirrors>,
}

/// One source repository with the mirrors that serve its images by tag.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImageTagMirrors {
    /// The repository that image references name: `host[:port]`, `host[:port]/namespace...` or a
    /// full repository, or `*.example.com` to match every subdomain of example.com on any port (a
    /// wildcard takes no port or path, as in containers-registries.conf). Unlike OpenShift's
    /// importer, which ignores wildcard sources, this operator honours them for imports. Values that
    /// do not fit the pattern are refused by the apiserver, as on OpenShift.
    #[schemars(pattern(super::mirror_set::SOURCE_PATTERN))]
    pub source: MirrorSource,

    /// Locations that hold the same images as the source, highest priority first, each
    /// `host[:port]` optionally followed by repository path components (no wildcard). The part of a
    /// reference that matched the source is replaced by the mirror. Entries must be unique. When
    /// empty, images are fetched from the source only. The recorded image references keep naming
    /// the source whichever location served them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        inner(pattern(super::mirror_set::MIRROR_PATTERN)),
        extend("x-kubernetes-list-type" = "set")
    )]
    pub mirrors: Vec<ImageMirror>,

    /// Whether the source may be contacted after its mirrors: `AllowContactingSource` (the default
    /// when unset) or `NeverContactSource`. `NeverContactSource` blocks the source for every import
    /// through it, by digest and by tag, as OpenShift blocks it on its nodes: imports by digest use
    /// the ImageDigestMirrorSet and ImageContentSourcePolicy mirrors, imports by tag the
    /// ImageTagMirrorSet mirrors, and an import with no such mirror fails with reason
    /// `SourceBlocked` naming this object. A longer source without the policy lifts it for its
    /// repositories. OpenShift's importer contacts the source either way. Ignored (with a Warning
    /// Event) when no mirror is listed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "MirrorSourcePolicy::json_schema")]
    pub mirror_source_policy: Option<MirrorSourcePolicy>,
}

impl ImageTagMirrors {
    /// The policy in force, an unset field read as OpenShift's default.
    pub fn source_policy(&self) -> MirrorSourcePolicy {
        self.mirror_source_policy.unwrap_or_default()
    }

    /// This entry as a kind-independent rule.
    pub fn rule(&self) -> MirrorRule<'_> {
        MirrorRule {
            source: &self.source,
            mirrors: &self.mirrors,
            source_policy: self.source_policy(),
        }
    }
}

/// Observed state of an ImageTagMirrorSet. Empty, as on OpenShift: problems with an entry are
/// reported as Events on the object.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct ImageTagMirrorSetStatus {}

impl ImageTagMirrorSet {
    /// Every entry of the object as a kind-independent rule, in the order written.
    pub fn mirror_rules(&self) -> impl Iterator<Item = MirrorRule<'_>> {
        self.spec
            .image_tag_mirrors
            .iter()
            .map(ImageTagMirrors::rule)
    }
}

#[cfg(test)]
mod tests {
    use kube::CustomResourceExt;
    use kube::core::Resource;
    use pretty_assertions::assert_eq;
    use serde_json::json;

    use super::*;
    use crate::api::mirror_set::crd_checks::{assert_structural, root_schema, schema_at};
    use crate::api::mirror_set::{MIRROR_PATTERN, SOURCE_PATTERN};

    fn openshift_manifest() -> serde_json::Value {
        json!({
            "apiVersion": "config.openshift.io/v1",
            "kind": "ImageTagMirrorSet",
            "metadata": { "name": "hub-proxies" },
            "spec": {
                "imageTagMirrors": [
                    {
                        "source": "docker.io/library",
                        "mirrors": ["harbor.example.com:8443/dockerhub-proxy/library", "mirror.gcr.io/library"],
                        "mirrorSourcePolicy": "NeverContactSource"
                    },
                    { "source": "*.example.org", "mirrors": ["cache.example.com/example-org"] },
                    { "source": "ghcr.io/team/tool", "mirrorSourcePolicy": "AllowContactingSource" }
                ]
            },
            "status": {}
        })
    }

    #[test]
    fn an_openshift_manifest_deserialises_and_round_trips() {
        let manifest = openshift_manifest();
        let itms: ImageTagMirrorSet = serde_json::from_value(manifest.clone()).unwrap();

        assert_eq!(itms.metadata.name.as_deref(), Some("hub-proxies"));
        let entries = &itms.spec.image_tag_mirrors;
        assert_eq!(entries.len(), 3);
        assert_eq!(entries[0].source.as_str(), "docker.io/library");
        assert_eq!(
            entries[0].mirrors[0].as_str(),
            "harbor.example.com:8443/dockerhub-proxy/library"
        );
        assert_eq!(
            entries[0].source_policy(),
            MirrorSourcePolicy::NeverContactSource
        );
        assert_eq!(entries[1].mirror_source_policy, None);
        assert_eq!(
            entries[1].source_policy(),
            MirrorSourcePolicy::AllowContactingSource
        );
        assert!(entries[2].mirrors.is_empty());
        assert_eq!(
            entries[2].mirror_source_policy,
            Some(MirrorSourcePolicy::AllowContactingSource)
        );
        assert_eq!(itms.status, Some(ImageTagMirrorSetStatus {}));

        assert_eq!(serde_json::to_value(&itms).unwrap(), manifest);
    }

    #[test]
    fn mirror_rules_follow_the_written_order() {
        let itms: ImageTagMirrorSet = serde_json::from_value(openshift_manifest()).unwrap();
        let rules: Vec<_> = itms
            .mirror_rules()
            .map(|rule| (rule.source.as_str(), rule.mirrors.len(), rule.source_policy))
            .collect();
        assert_eq!(
            rules,
            [
                (
                    "docker.io/library",
                    2,
                    MirrorSourcePolicy::NeverContactSource
                ),
                (
                    "*.example.org",
                    1,
                    MirrorSourcePolicy::AllowContactingSource
                ),
                (
                    "ghcr.io/team/tool",
                    0,
                    MirrorSourcePolicy::AllowContactingSource
                ),
            ]
        );
    }

    #[test]
    fn an_unknown_policy_does_not_deserialise() {
        let mut manifest = openshift_manifest();
        manifest["spec"]["imageTagMirrors"][0]["mirrorSourcePolicy"] = json!("Sometimes");
        assert!(serde_json::from_value::<ImageTagMirrorSet>(manifest).is_err());
    }

    #[test]
    fn the_crd_is_cluster_scoped_config_openshift_io_v1_with_short_name_itms() {
        let crd = ImageTagMirrorSet::crd();
        assert_eq!(
            crd.metadata.name.as_deref(),
            Some("imagetagmirrorsets.config.openshift.io")
        );
        assert_eq!(crd.spec.group, "config.openshift.io");
        assert_eq!(crd.spec.scope, "Cluster");
        assert_eq!(crd.spec.names.kind, "ImageTagMirrorSet");
        assert_eq!(crd.spec.names.plural, "imagetagmirrorsets");
        assert_eq!(crd.spec.names.short_names, Some(vec!["itms".to_owned()]));
        assert_eq!(crd.spec.versions.len(), 1);
        let version = &crd.spec.versions[0];
        assert_eq!(
            (version.name.as_str(), version.served, version.storage),
            ("v1", true, true)
        );
        assert_eq!(
            ImageTagMirrorSet::api_version(&()),
            "config.openshift.io/v1"
        );
    }

    #[test]
    fn the_crd_has_a_status_subresource_with_an_empty_status() {
        let crd = ImageTagMirrorSet::crd();
        let subresources = crd.spec.versions[0].subresources.as_ref().unwrap();
        assert!(subresources.status.is_some());
        assert!(subresources.scale.is_none());
        let status = schema_at(root_schema(&crd), &["status"]);
        assert_eq!(status.type_.as_deref(), Some("object"));
        assert!(
            status
                .properties
                .as_ref()
                .is_none_or(|properties| properties.is_empty())
        );
    }

    #[test]
    fn the_crd_schema_is_structural() {
        assert_structural(&ImageTagMirrorSet::crd());
    }

    #[test]
    fn the_crd_keeps_openshifts_validation() {
        let crd = ImageTagMirrorSet::crd();
        let root = root_schema(&crd);
        assert_eq!(root.required, Some(vec!["spec".to_owned()]));

        let list = schema_at(root, &["spec", "imageTagMirrors"]);
        assert_eq!(list.x_kubernetes_list_type.as_deref(), Some("atomic"));
        assert!(list.default.is_none());

        let entry = schema_at(list, &["items"]);
        assert_eq!(entry.required, Some(vec!["source".to_owned()]));
        assert_eq!(
            schema_at(entry, &["source"]).pattern.as_deref(),
            Some(SOURCE_PATTERN)
        );

        let mirrors = schema_at(entry, &["mirrors"]);
        assert_eq!(mirrors.x_kubernetes_list_type.as_deref(), Some("set"));
        let mirror = schema_at(mirrors, &["items"]);
        assert_eq!(mirror.type_.as_deref(), Some("string"));
        assert_eq!(mirror.pattern.as_deref(), Some(MIRROR_PATTERN));

        let policy = schema_at(entry, &["mirrorSourcePolicy"]);
        assert_eq!(policy.type_.as_deref(), Some("string"));
        assert_eq!(
            policy.nullable, None,
            "optional as on OpenShift, not nullable"
        );
        assert_eq!(
            policy
                .enum_
                .as_ref()
                .map(|values| values.iter().map(|v| v.0.clone()).collect::<Vec<_>>()),
            Some(vec![
                json!("NeverContactSource"),
                json!("AllowContactingSource")
            ])
        );
    }

    #[test]
    fn every_schema_field_has_a_description() {
        let crd = ImageTagMirrorSet::crd();
        let root = root_schema(&crd);
        let entry = schema_at(root, &["spec", "imageTagMirrors", "items"]);
        for path in [
            &["spec"][..],
            &["spec", "imageTagMirrors"],
            &["spec", "imageTagMirrors", "items"],
            &["status"],
        ] {
            assert!(
                schema_at(root, path).description.is_some(),
                "{path:?} has no description"
            );
        }
        for field in ["source", "mirrors", "mirrorSourcePolicy"] {
            assert!(
                schema_at(entry, &[field]).description.is_some(),
                "{field} has no description"
            );
        }
    }
}
