//! ImageContentSourcePolicy (operator.openshift.io/v1alpha1, short name `icsp`): OpenShift's older,
//! cluster-wide list of digest mirrors. The schema is as permissive as OpenShift's, so the controller
//! reports a malformed entry on its object and skips it while the object's other entries still apply.
//!
//! Validation choice: OpenShift's schema for this kind has no pattern, enum or list type, and neither has
//! ours (a pattern would make the apiserver refuse the whole object for one bad entry). Unlike
//! OpenShift, the kind has no status subresource: OpenShift declares one but no status field, so a
//! status written there would be pruned anyway.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::mirror_set::{ImageMirror, MirrorRule, MirrorSource, MirrorSourcePolicy};

/// The desired mirrors of an ImageContentSourcePolicy.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "operator.openshift.io",
    version = "v1alpha1",
    kind = "ImageContentSourcePolicy",
    shortname = "icsp",
    derive = "PartialEq",
    doc = "Cluster-wide mirror locations used when the operator imports an image by digest, in the older OpenShift format (ImageDigestMirrorSet supersedes it). Each entry names a source repository and the mirrors that hold the same content; the source is tried after the mirrors unless an ImageDigestMirrorSet or ImageTagMirrorSet entry for it says NeverContactSource. Served with OpenShift's group and kind so OpenShift manifests apply unchanged."
)]
#[serde(rename_all = "camelCase")]
pub struct ImageContentSourcePolicySpec {
    /// Mirror entries for imports by digest (`repo@sha256:...`); imports by tag are not affected (use
    /// ImageTagMirrorSet for those). An image is matched against the longest source that equals its
    /// repository or is a prefix of it at a `/` boundary, and the matched part is replaced by each
    /// mirror in turn. Mirrors listed for the same source by several entries or objects, including
    /// ImageDigestMirrorSets, are merged keeping each list's order where the lists agree (`a,b,c`
    /// plus `c,d,e` gives `a,b,c,d,e`; mirrors no list orders come by name), then the source itself
    /// is tried unless an ImageDigestMirrorSet or ImageTagMirrorSet entry for it says
    /// NeverContactSource, which blocks it for imports by digest and by tag.
    /// An entry that is not a valid location is reported with an Event on
    /// this object and skipped; the other entries still apply.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub repository_digest_mirrors: Vec<RepositoryDigestMirrors>,
}

/// One source repository with the mirrors that serve its images by digest.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RepositoryDigestMirrors {
    /// The repository that image references name: a registry `host[:port]`, a repository prefix such
    /// as `quay.io/team`, or a full repository. `*.example.com` matches every subdomain of
    /// example.com on any port, and takes no port or path; OpenShift's importer ignores such
    /// wildcards, this operator honours them.
    pub source: MirrorSource,

    /// Locations that hold the same images as the source, highest priority first, each
    /// `host[:port]` optionally followed by repository path components. The part of a reference
    /// that matched the source is replaced by the mirror. Mirrors are tried before the source.
    /// The recorded image references keep naming the source whichever location served them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mirrors: Vec<ImageMirror>,
}

impl RepositoryDigestMirrors {
    /// This entry as a kind-independent rule. The kind has no source policy, so the source may
    /// always be contacted.
    pub fn rule(&self) -> MirrorRule<'_> {
        MirrorRule {
            source: &self.source,
            mirrors: &self.mirrors,
            source_policy: MirrorSourcePolicy::AllowContactingSource,
        }
    }
}

impl ImageContentSourcePolicy {
    /// Every entry of the object as a kind-independent rule, in the order written.
    pub fn mirror_rules(&self) -> impl Iterator<Item = MirrorRule<'_>> {
        self.spec
            .repository_digest_mirrors
            .iter()
            .map(RepositoryDigestMirrors::rule)
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

    fn openshift_manifest() -> serde_json::Value {
        json!({
            "apiVersion": "operator.openshift.io/v1alpha1",
            "kind": "ImageContentSourcePolicy",
            "metadata": { "name": "release-mirrors" },
            "spec": {
                "repositoryDigestMirrors": [
                    {
                        "source": "quay.io/openshift-release-dev/ocp-release",
                        "mirrors": [
                            "mirror.example.com:5000/ocp4/openshift4",
                            "backup.example.com/ocp4/openshift4"
                        ]
                    },
                    {
                        "source": "quay.io/openshift-release-dev/ocp-v4.0-art-dev",
                        "mirrors": ["mirror.example.com:5000/ocp4/openshift4"]
                    }
                ]
            }
        })
    }

    #[test]
    fn an_openshift_manifest_deserialises_and_round_trips() {
        let manifest = openshift_manifest();
        let icsp: ImageContentSourcePolicy = serde_json::from_value(manifest.clone()).unwrap();

        assert_eq!(icsp.metadata.name.as_deref(), Some("release-mirrors"));
        let entries = &icsp.spec.repository_digest_mirrors;
        assert_eq!(entries.len(), 2);
        assert_eq!(
            entries[0].source.as_str(),
            "quay.io/openshift-release-dev/ocp-release"
        );
        assert_eq!(
            entries[0]
                .mirrors
                .iter()
                .map(ImageMirror::as_str)
                .collect::<Vec<_>>(),
            [
                "mirror.example.com:5000/ocp4/openshift4",
                "backup.example.com/ocp4/openshift4"
            ]
        );

        assert_eq!(serde_json::to_value(&icsp).unwrap(), manifest);
    }

    #[test]
    fn malformed_entries_still_deserialise_so_the_controller_can_report_them() {
        let manifest = json!({
            "apiVersion": "operator.openshift.io/v1alpha1",
            "kind": "ImageContentSourcePolicy",
            "metadata": { "name": "mixed" },
            "spec": {
                "repositoryDigestMirrors": [
                    { "source": "Not A Repository!", "mirrors": ["also bad"] },
                    { "source": "registry.example.com/app" }
                ]
            }
        });
        let icsp: ImageContentSourcePolicy = serde_json::from_value(manifest).unwrap();
        assert_eq!(
            icsp.spec.repository_digest_mirrors[0].source.as_str(),
            "Not A Repository!"
        );
        assert!(icsp.spec.repository_digest_mirrors[1].mirrors.is_empty());
    }

    #[test]
    fn every_rule_allows_contacting_the_source() {
        let icsp: ImageContentSourcePolicy = serde_json::from_value(openshift_manifest()).unwrap();
        let rules: Vec<_> = icsp
            .mirror_rules()
            .map(|rule| (rule.source.as_str(), rule.mirrors.len(), rule.source_policy))
            .collect();
        assert_eq!(
            rules,
            [
                (
                    "quay.io/openshift-release-dev/ocp-release",
                    2,
                    MirrorSourcePolicy::AllowContactingSource
                ),
                (
                    "quay.io/openshift-release-dev/ocp-v4.0-art-dev",
                    1,
                    MirrorSourcePolicy::AllowContactingSource
                ),
            ]
        );
    }

    #[test]
    fn the_crd_is_cluster_scoped_operator_openshift_io_v1alpha1_with_short_name_icsp() {
        let crd = ImageContentSourcePolicy::crd();
        assert_eq!(
            crd.metadata.name.as_deref(),
            Some("imagecontentsourcepolicies.operator.openshift.io")
        );
        assert_eq!(crd.spec.group, "operator.openshift.io");
        assert_eq!(crd.spec.scope, "Cluster");
        assert_eq!(crd.spec.names.kind, "ImageContentSourcePolicy");
        assert_eq!(crd.spec.names.plural, "imagecontentsourcepolicies");
        assert_eq!(crd.spec.names.short_names, Some(vec!["icsp".to_owned()]));
        assert_eq!(crd.spec.versions.len(), 1);
        let version = &crd.spec.versions[0];
        assert_eq!(
            (version.name.as_str(), version.served, version.storage),
            ("v1alpha1", true, true)
        );
        assert_eq!(
            ImageContentSourcePolicy::api_version(&()),
            "operator.openshift.io/v1alpha1"
        );
    }

    #[test]
    fn the_crd_has_no_status() {
        let crd = ImageContentSourcePolicy::crd();
        assert!(crd.spec.versions[0].subresources.is_none());
        let properties = root_schema(&crd).properties.as_ref().unwrap();
        assert!(!properties.contains_key("status"));
    }

    #[test]
    fn the_crd_schema_is_structural() {
        assert_structural(&ImageContentSourcePolicy::crd());
    }

    #[test]
    fn the_crd_is_as_permissive_as_openshifts() {
        let crd = ImageContentSourcePolicy::crd();
        let root = root_schema(&crd);
        assert_eq!(root.required, Some(vec!["spec".to_owned()]));
        let list = schema_at(root, &["spec", "repositoryDigestMirrors"]);
        assert_eq!(list.x_kubernetes_list_type, None);
        let entry = schema_at(list, &["items"]);
        assert_eq!(entry.required, Some(vec!["source".to_owned()]));

        let source = schema_at(entry, &["source"]);
        assert_eq!(
            (source.type_.as_deref(), source.pattern.as_ref()),
            (Some("string"), None)
        );
        let mirrors = schema_at(entry, &["mirrors"]);
        assert_eq!(mirrors.x_kubernetes_list_type, None);
        let mirror = schema_at(mirrors, &["items"]);
        assert_eq!(
            (mirror.type_.as_deref(), mirror.pattern.as_ref()),
            (Some("string"), None)
        );
    }

    #[test]
    fn every_schema_field_has_a_description() {
        let crd = ImageContentSourcePolicy::crd();
        let root = root_schema(&crd);
        assert!(root.description.is_some());
        for path in [
            &["spec"][..],
            &["spec", "repositoryDigestMirrors"],
            &["spec", "repositoryDigestMirrors", "items"],
            &["spec", "repositoryDigestMirrors", "items", "source"],
            &["spec", "repositoryDigestMirrors", "items", "mirrors"],
        ] {
            assert!(
                schema_at(root, path).description.is_some(),
                "{path:?} has no description"
            );
        }
    }
}
