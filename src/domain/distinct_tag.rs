//! The unit of polling: one registry tag as a group of stream tags sees it. Stream tags that name the
//! same image (whatever the spelling), pull it through the same mirror plan with credentials of the
//! same identity, allow the same transport and choose the same digest from a manifest list share
//! one [`DistinctTag`], and with it one registry request per interval and one answer. Tags with
//! other credentials never share an answer, so no tenant sees what another's credentials fetched.

use sha2::{Digest, Sha256};

use crate::api::image_stream::{IMPORT_MODE_PRESERVE_ORIGINAL, TagReference};
use crate::domain::mirror_plan::MirrorPlan;
use crate::domain::platform::{PREFER_ARCH_ANNOTATION, PREFER_OS_ANNOTATION};
use crate::domain::reference::ImageReference;

/// Which digest a tag records when its reference names a manifest list.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Selection {
    /// `Legacy`: one child, by the tag's preferred platform (else the operator's).
    Legacy {
        /// `importer.image.openshift.io/prefer-os`.
        os: Option<String>,
        /// `importer.image.openshift.io/prefer-arch`.
        arch: Option<String>,
    },
    /// `PreserveOriginal`: the list itself, with an Image for every child.
    PreserveOriginal,
}

impl Selection {
    /// The selection a tag's import mode and annotations ask for.
    pub fn of(tag: &TagReference) -> Self {
        if tag.import_mode() == IMPORT_MODE_PRESERVE_ORIGINAL {
            return Selection::PreserveOriginal;
        }
        Selection::Legacy {
            os: tag.annotations.get(PREFER_OS_ANNOTATION).cloned(),
            arch: tag.annotations.get(PREFER_ARCH_ANNOTATION).cloned(),
        }
    }
}

/// One place of the pull plan, as the key compares it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PlannedSource {
    /// The pulled reference, normalised: `mirror.local/library/nginx:1.25`.
    pub reference: String,
    /// The identities of the credentials offered there, in keyring order (empty: anonymous).
    pub credentials: Vec<String>,
}

/// One distinct registry tag: everything that decides which request is sent and which digest is
/// recorded, and nothing else.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DistinctTag {
    /// The source reference, normalised (`docker.io/library/nginx:1.25`, `quay.io/a/b@sha256:…`).
    pub reference: String,
    /// Plain HTTP and unverified TLS allowed (`importPolicy.insecure`).
    pub insecure: bool,
    /// Which digest of a manifest list is recorded.
    pub selection: Selection,
    /// The pull plan through the mirror policies, in order.
    pub sources: Vec<PlannedSource>,
}

impl DistinctTag {
    /// The key of `reference` pulled through `plan`, where `credentials` holds, for each place of
    /// the plan in order, the identities of the credentials a stream's namespace offers there.
    pub fn new(
        reference: &ImageReference,
        insecure: bool,
        selection: Selection,
        plan: &MirrorPlan,
        credentials: Vec<Vec<String>>,
    ) -> Self {
        let mut credentials = credentials.into_iter();
        Self {
            reference: normalised(reference),
            insecure,
            selection,
            sources: plan
                .sources
                .iter()
                .map(|pull| PlannedSource {
                    reference: normalised(&pull.reference),
                    credentials: credentials.next().unwrap_or_default(),
                })
                .collect(),
        }
    }

    /// Every reference the tag may be pulled from, each once: the source and the places of its
    /// pull plan, normalised. A push notification for any of them concerns this tag.
    pub fn pulled_references(&self) -> Vec<&str> {
        let mut references = vec![self.reference.as_str()];
        for source in &self.sources {
            if !references.contains(&source.reference.as_str()) {
                references.push(source.reference.as_str());
            }
        }
        references
    }

    /// A stable number from the whole key, to place the tag's phase in the import interval.
    pub fn seed(&self) -> u64 {
        let mut hasher = Sha256::new();
        hasher.update(self.reference.as_bytes());
        hasher.update([u8::from(self.insecure)]);
        hasher.update(format!("{:?}", self.selection).as_bytes());
        for source in &self.sources {
            hasher.update(source.reference.as_bytes());
            for credential in &source.credentials {
                hasher.update(credential.as_bytes());
            }
        }
        let hash = hasher.finalize();
        u64::from_be_bytes(hash[..8].try_into().expect("eight bytes"))
    }
}

/// `registry/repository:tag` or `registry/repository@digest`, with Docker Hub's defaults filled in:
/// how distinct tags name their source and the places of their pull plan.
pub fn normalised(reference: &ImageReference) -> String {
    match reference.digest() {
        Some(digest) => format!("{}@{digest}", reference.canonical_name()),
        None => format!(
            "{}:{}",
            reference.canonical_name(),
            reference.tag_or_latest()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::image_stream::{TagImportPolicy, TagSource};

    fn key(from: &str, credentials: &[&str]) -> DistinctTag {
        let reference = ImageReference::parse(from).unwrap();
        let plan = MirrorPlan::source_only(&reference);
        DistinctTag::new(
            &reference,
            false,
            Selection::Legacy {
                os: None,
                arch: None,
            },
            &plan,
            vec![credentials.iter().map(|c| c.to_string()).collect()],
        )
    }

    #[test]
    fn spellings_of_one_image_share_a_key() {
        let a = key("nginx:1.25", &[]);
        assert_eq!(a, key("docker.io/library/nginx:1.25", &[]));
        assert_eq!(a, key("index.docker.io/library/nginx:1.25", &[]));
        assert_eq!(a.reference, "docker.io/library/nginx:1.25");
        assert_eq!(key("nginx", &[]), key("nginx:latest", &[]));
        assert_eq!(a.seed(), key("nginx:1.25", &[]).seed());
    }

    #[test]
    fn other_tags_credentials_or_selections_are_other_keys() {
        let a = key("quay.io/org/app:v1", &["id-1"]);
        assert_ne!(a, key("quay.io/org/app:v2", &["id-1"]));
        assert_ne!(a, key("quay.io/org/app:v1", &["id-2"]));
        assert_ne!(a, key("quay.io/org/app:v1", &[]));
        let mut insecure = a.clone();
        insecure.insecure = true;
        assert_ne!(a, insecure);
        let mut preserve = a.clone();
        preserve.selection = Selection::PreserveOriginal;
        assert_ne!(a, preserve);
        assert_ne!(a.seed(), preserve.seed());
    }

    #[test]
    fn the_selection_follows_the_import_mode_and_the_platform_annotations() {
        let mut tag = TagReference {
            name: "latest".into(),
            from: Some(TagSource {
                kind: Some("DockerImage".into()),
                name: Some("quay.io/org/app:v1".into()),
                ..TagSource::default()
            }),
            ..TagReference::default()
        };
        assert_eq!(
            Selection::of(&tag),
            Selection::Legacy {
                os: None,
                arch: None
            }
        );
        tag.annotations
            .insert(PREFER_ARCH_ANNOTATION.into(), "arm64".into());
        assert_eq!(
            Selection::of(&tag),
            Selection::Legacy {
                os: None,
                arch: Some("arm64".into())
            }
        );
        tag.import_policy = Some(TagImportPolicy {
            import_mode: Some(IMPORT_MODE_PRESERVE_ORIGINAL.into()),
            ..TagImportPolicy::default()
        });
        assert_eq!(Selection::of(&tag), Selection::PreserveOriginal);
    }
}
