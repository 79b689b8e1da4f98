//! Builds Image objects from what the registry returned: a single image's manifest and config, or a
//! manifest list's entries. Pure; the raw manifest and config bytes are not stored.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::api::Image;
use crate::api::image::{
    DOCKER_IMAGE_METADATA_API_VERSION, DOCKER_IMAGE_METADATA_KIND, DOCKER_IMAGE_METADATA_VERSION,
    DockerContainerConfig, DockerImageMetadata, EmptyObject, ImageLayer,
    ImageManifest as ManifestEntry,
};
use crate::domain::image_name::ImageNameError;
use crate::registry::manifest::{ImageConfig, ImageManifest, ManifestError, ManifestIndex};

/// Why an Image cannot be built from what the registry returned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageObjectError {
    /// The digest cannot name an Image.
    #[error(transparent)]
    Name(#[from] ImageNameError),
    /// The manifest has no valid size (a negative size, or sizes whose sum overflows).
    #[error(transparent)]
    Manifest(#[from] ManifestError),
}

/// The Image for a single-platform image manifest `digest` with its parsed config.
pub fn image_for_manifest(
    digest: &str,
    reference: &str,
    media_type: &str,
    manifest: &ImageManifest,
    config: &ImageConfig,
) -> Result<Image, ImageObjectError> {
    // Checked before anything else: sizes come from the registry.
    let size = manifest.total_size()?;
    let mut image = Image::for_digest(digest)?;
    image.docker_image_reference = Some(reference.to_owned());
    image.docker_image_manifest_media_type = Some(media_type.to_owned());
    image.docker_image_metadata_version = Some(DOCKER_IMAGE_METADATA_VERSION.to_owned());
    image.docker_image_layers = manifest
        .layers
        .iter()
        .map(|layer| ImageLayer {
            name: layer.digest.clone(),
            size: layer.size,
            media_type: layer.media_type.clone(),
        })
        .collect();
    let created = config
        .created
        .as_deref()
        .and_then(|c| c.parse::<k8s_openapi::jiff::Timestamp>().ok())
        .map(Time);
    let c = &config.config;
    let empty_set = |set: &std::collections::BTreeSet<String>| -> BTreeMap<String, EmptyObject> {
        set.iter().map(|k| (k.clone(), EmptyObject {})).collect()
    };
    image.docker_image_metadata = Some(DockerImageMetadata {
        kind: Some(DOCKER_IMAGE_METADATA_KIND.to_owned()),
        api_version: Some(DOCKER_IMAGE_METADATA_API_VERSION.to_owned()),
        id: Some(manifest.config.digest.clone()),
        created,
        author: config.author.clone(),
        architecture: config.architecture.clone(),
        os: config.os.clone(),
        size: Some(size),
        config: Some(DockerContainerConfig {
            user: c.user.clone(),
            exposed_ports: empty_set(&c.exposed_ports),
            env: c.env.clone(),
            cmd: c.cmd.clone(),
            volumes: empty_set(&c.volumes),
            working_dir: c.working_dir.clone(),
            entrypoint: c.entrypoint.clone(),
            labels: c.labels.clone(),
            stop_signal: c.stop_signal.clone(),
            ..DockerContainerConfig::default()
        }),
        ..DockerImageMetadata::default()
    });
    Ok(image)
}

/// The Image for a manifest list / OCI index `digest`: its entries, no layers.
pub fn image_for_index(
    digest: &str,
    reference: &str,
    media_type: &str,
    index: &ManifestIndex,
) -> Result<Image, ImageNameError> {
    let mut image = Image::for_digest(digest)?;
    image.docker_image_reference = Some(reference.to_owned());
    image.docker_image_manifest_media_type = Some(media_type.to_owned());
    image.docker_image_manifests = index
        .manifests
        .iter()
        .map(|entry| ManifestEntry {
            digest: entry.digest.clone(),
            media_type: entry.media_type.clone(),
            manifest_size: entry.size,
            architecture: entry
                .platform
                .as_ref()
                .map(|p| p.architecture.clone())
                .unwrap_or_default(),
            os: entry
                .platform
                .as_ref()
                .map(|p| p.os.clone())
                .unwrap_or_default(),
            variant: entry.platform.as_ref().and_then(|p| p.variant.clone()),
        })
        .collect();
    Ok(image)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::manifest::{ContainerConfig, Descriptor, IndexEntry, Platform};

    fn digest(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    fn descriptor(c: char, size: i64) -> Descriptor {
        Descriptor {
            digest: digest(c),
            size,
            media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
        }
    }

    #[test]
    fn an_image_records_layers_base_first_metadata_and_the_size_of_config_plus_unique_layers() {
        let manifest = ImageManifest {
            config: descriptor('c', 100),
            layers: vec![
                descriptor('a', 1000),
                descriptor('b', 2000),
                descriptor('a', 1000),
            ],
        };
        let config = ImageConfig {
            created: Some("2026-01-02T03:04:05Z".into()),
            architecture: Some("arm64".into()),
            os: Some("linux".into()),
            author: Some("team".into()),
            config: ContainerConfig {
                env: vec!["A=1".into()],
                entrypoint: vec!["/app".into()],
                labels: [("l".to_string(), "v".to_string())].into(),
                exposed_ports: ["8080/tcp".to_string()].into(),
                ..ContainerConfig::default()
            },
            ..ImageConfig::default()
        };
        let image = image_for_manifest(
            &digest('d'),
            "example.com/app@sha256:dd",
            "application/vnd.oci.image.manifest.v1+json",
            &manifest,
            &config,
        )
        .unwrap();
        assert_eq!(
            image.metadata.name.as_deref(),
            Some(format!("sha256.{}", "d".repeat(64)).as_str())
        );
        let layers: Vec<&str> = image
            .docker_image_layers
            .iter()
            .map(|l| l.name.as_str())
            .collect();
        assert_eq!(layers, [digest('a'), digest('b'), digest('a')]);
        let metadata = image.docker_image_metadata.unwrap();
        assert_eq!(metadata.size, Some(3100));
        assert_eq!(metadata.architecture.as_deref(), Some("arm64"));
        assert_eq!(metadata.id, Some(digest('c')));
        assert!(metadata.created.is_some());
        let container = metadata.config.unwrap();
        assert_eq!(container.entrypoint, ["/app"]);
        assert!(container.exposed_ports.contains_key("8080/tcp"));
        assert_eq!(
            image.docker_image_reference.as_deref(),
            Some("example.com/app@sha256:dd")
        );
    }

    #[test]
    fn an_index_records_its_entries_with_platforms() {
        let index = ManifestIndex {
            manifests: vec![IndexEntry {
                digest: digest('e'),
                media_type: "application/vnd.oci.image.manifest.v1+json".into(),
                size: 512,
                platform: Some(Platform {
                    architecture: "arm64".into(),
                    os: "linux".into(),
                    variant: Some("v8".into()),
                }),
            }],
        };
        let image = image_for_index(
            &digest('f'),
            "r@x",
            "application/vnd.oci.image.index.v1+json",
            &index,
        )
        .unwrap();
        assert_eq!(image.docker_image_manifests.len(), 1);
        assert_eq!(
            image.docker_image_manifests[0].variant.as_deref(),
            Some("v8")
        );
        assert_eq!(image.docker_image_manifests[0].manifest_size, 512);
        assert!(image.docker_image_layers.is_empty());
    }

    #[test]
    fn an_image_whose_sizes_overflow_is_not_built() {
        let manifest = ImageManifest {
            config: descriptor('c', 10),
            layers: vec![
                descriptor('a', 1 << 62),
                descriptor('b', 1 << 62),
                descriptor('e', 1 << 62),
            ],
        };
        let built = image_for_manifest(
            &digest('d'),
            "example.com/app@sha256:dd",
            "application/vnd.oci.image.manifest.v1+json",
            &manifest,
            &ImageConfig::default(),
        );
        assert_eq!(
            built.map(|_| ()),
            Err(ImageObjectError::Manifest(ManifestError::SizeOverflow))
        );
    }

    #[test]
    fn a_malformed_digest_is_refused() {
        let index = ManifestIndex { manifests: vec![] };
        assert!(image_for_index("sha256:short", "r", "t", &index).is_err());
    }
}
