//! Manifest media types, and pure parsing of fetched bytes: a manifest or manifest list/index into
//! [`ParsedManifest`], an image config blob into [`ImageConfig`]. The controller maps these plain
//! structs onto the Image CRD; nothing here does I/O.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::SystemTime;

use oci_client::manifest::{
    IMAGE_MANIFEST_LIST_MEDIA_TYPE, IMAGE_MANIFEST_MEDIA_TYPE, OCI_IMAGE_INDEX_MEDIA_TYPE,
    OCI_IMAGE_MEDIA_TYPE, OciImageManifest,
};
use serde::Deserialize;

/// The OCI image index media type.
pub const OCI_INDEX: &str = OCI_IMAGE_INDEX_MEDIA_TYPE;
/// The Docker manifest list media type.
pub const DOCKER_MANIFEST_LIST: &str = IMAGE_MANIFEST_LIST_MEDIA_TYPE;
/// The OCI image manifest media type.
pub const OCI_MANIFEST: &str = OCI_IMAGE_MEDIA_TYPE;
/// The Docker image manifest (schema 2) media type.
pub const DOCKER_MANIFEST: &str = IMAGE_MANIFEST_MEDIA_TYPE;

/// The `Accept` header of every manifest request. All four types are needed: with fewer, a
/// registry answers 404 for an OCI index, or silently serves the amd64 child of a Docker list.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

/// Whether `media_type` is a manifest list or OCI index.
pub fn is_index_media_type(media_type: &str) -> bool {
    media_type == OCI_INDEX || media_type == DOCKER_MANIFEST_LIST
}

/// A parsed manifest: one image, or a list of per-platform images.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParsedManifest {
    /// An OCI image manifest or Docker schema 2 manifest.
    Image(ImageManifest),
    /// An OCI image index or Docker manifest list.
    Index(ManifestIndex),
}

/// The parts of an image manifest the operator records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageManifest {
    /// The config blob.
    pub config: Descriptor,
    /// The layers, base layer first.
    pub layers: Vec<Descriptor>,
}

impl ImageManifest {
    /// The image size as OpenShift reports it: the config blob plus every distinct layer
    /// (a layer listed twice is stored once). Summed with checked arithmetic: sizes come from
    /// the registry, and a sum past `i64::MAX` (or a negative size) makes the manifest invalid
    /// rather than wrapping to a negative Image size.
    pub fn total_size(&self) -> Result<i64, ManifestError> {
        let mut seen = HashSet::new();
        let distinct_layers = self
            .layers
            .iter()
            .filter(|layer| seen.insert(layer.digest.as_str()));
        std::iter::once(&self.config)
            .chain(distinct_layers)
            .try_fold(0_i64, |total, descriptor| {
                check_size("manifest", &descriptor.digest, descriptor.size)?;
                total
                    .checked_add(descriptor.size)
                    .ok_or(ManifestError::SizeOverflow)
            })
    }
}

/// A reference to a blob or manifest: digest, size and media type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor {
    /// The content digest, `sha256:<hex>`.
    pub digest: String,
    /// The content size in bytes.
    pub size: i64,
    /// The content media type.
    pub media_type: String,
}

/// The entries of a manifest list or OCI index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestIndex {
    /// One entry per child manifest, in the order of the list.
    pub manifests: Vec<IndexEntry>,
}

/// One child manifest of a list or index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEntry {
    /// The child manifest's digest.
    pub digest: String,
    /// The child manifest's media type.
    pub media_type: String,
    /// The child manifest's size in bytes.
    pub size: i64,
    /// The platform the child is for; absent on entries such as attestations.
    pub platform: Option<Platform>,
}

/// A platform as an index entry names it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Platform {
    /// The CPU architecture (`amd64`, `arm64`, …).
    pub architecture: String,
    /// The operating system (`linux`, `windows`, …).
    pub os: String,
    /// The CPU variant (`v7`, `v8`), when given.
    pub variant: Option<String>,
}

/// What is wrong with a manifest or config.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    /// The media type is not one of the four manifest types the operator imports.
    #[error("unsupported manifest media type {media_type:?}")]
    UnsupportedMediaType {
        /// The media type the registry gave.
        media_type: String,
    },
    /// The bytes are not the JSON document their media type promises.
    #[error("malformed {what}: {detail}")]
    Malformed {
        /// `manifest`, `manifest list` or `image config`.
        what: &'static str,
        /// What the parser objected to.
        detail: String,
    },
    /// The sizes of the config and the distinct layers add up to more bytes than an `i64` holds:
    /// no real image is that large, and the wrapped sum would be a negative Image size.
    #[error(
        "malformed manifest: the sizes of its config and layers add up to more than {} bytes",
        i64::MAX
    )]
    SizeOverflow,
}

/// Parses a manifest of `media_type`. When the registry gave no usable type (empty,
/// `application/json`, `application/octet-stream`), the document's own `mediaType` decides, and
/// failing that its shape (`manifests` means an index).
pub fn parse_manifest(media_type: &str, bytes: &[u8]) -> Result<ParsedManifest, ManifestError> {
    let media_type = effective_media_type(media_type, bytes)?;
    if is_index_media_type(&media_type) {
        parse_index(bytes).map(ParsedManifest::Index)
    } else if media_type == OCI_MANIFEST || media_type == DOCKER_MANIFEST {
        parse_image_manifest(bytes).map(ParsedManifest::Image)
    } else {
        Err(ManifestError::UnsupportedMediaType { media_type })
    }
}

/// The media type a manifest really has: `declared` when it is specific, else what the document
/// says about itself.
pub fn effective_media_type(declared: &str, bytes: &[u8]) -> Result<String, ManifestError> {
    let declared = declared.split(';').next().unwrap_or("").trim();
    if !matches!(
        declared,
        "" | "application/json" | "application/octet-stream" | "text/plain"
    ) {
        return Ok(declared.to_owned());
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Shape {
        media_type: Option<String>,
        manifests: Option<serde_json::Value>,
    }
    let shape: Shape = serde_json::from_slice(bytes).map_err(|e| malformed("manifest", e))?;
    Ok(match (shape.media_type, shape.manifests) {
        (Some(media_type), _) => media_type,
        (None, Some(_)) => OCI_INDEX.to_owned(),
        (None, None) => OCI_MANIFEST.to_owned(),
    })
}

fn parse_image_manifest(bytes: &[u8]) -> Result<ImageManifest, ManifestError> {
    let manifest: OciImageManifest =
        serde_json::from_slice(bytes).map_err(|e| malformed("manifest", e))?;
    check_schema_version("manifest", manifest.schema_version.into())?;
    let descriptor = |d: oci_client::manifest::OciDescriptor| {
        check_descriptor("manifest", &d.digest, d.size)?;
        Ok(Descriptor {
            digest: d.digest,
            size: d.size,
            media_type: d.media_type,
        })
    };
    let image = ImageManifest {
        config: descriptor(manifest.config)?,
        layers: manifest
            .layers
            .into_iter()
            .map(descriptor)
            .collect::<Result<_, _>>()?,
    };
    // A parsed image manifest always has a size: the Image records it.
    image.total_size()?;
    Ok(image)
}

/// oci-client's index type is not used here: its platform enums map `armbe` to `arm64be` and
/// refuse entries whose platform lacks `os`, and the operator needs the registry's exact strings.
fn parse_index(bytes: &[u8]) -> Result<ManifestIndex, ManifestError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct WireIndex {
        schema_version: i64,
        manifests: Vec<WireEntry>,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct WireEntry {
        media_type: String,
        digest: String,
        size: i64,
        platform: Option<WirePlatform>,
    }
    #[derive(Deserialize)]
    struct WirePlatform {
        #[serde(default)]
        architecture: String,
        #[serde(default)]
        os: String,
        variant: Option<String>,
    }
    let index: WireIndex =
        serde_json::from_slice(bytes).map_err(|e| malformed("manifest list", e))?;
    check_schema_version("manifest list", index.schema_version)?;
    let manifests = index
        .manifests
        .into_iter()
        .map(|entry| {
            check_descriptor("manifest list", &entry.digest, entry.size)?;
            Ok(IndexEntry {
                digest: entry.digest,
                media_type: entry.media_type,
                size: entry.size,
                platform: entry.platform.map(|p| Platform {
                    architecture: p.architecture,
                    os: p.os,
                    variant: p.variant.filter(|v| !v.is_empty()),
                }),
            })
        })
        .collect::<Result<_, _>>()?;
    Ok(ManifestIndex { manifests })
}

fn check_schema_version(what: &'static str, version: i64) -> Result<(), ManifestError> {
    if version == 2 {
        Ok(())
    } else {
        Err(ManifestError::Malformed {
            what,
            detail: format!("schemaVersion is {version}, expected 2"),
        })
    }
}

/// Digests from a manifest end up in URLs and object names, so they must be well-formed.
fn check_descriptor(what: &'static str, digest: &str, size: i64) -> Result<(), ManifestError> {
    if !is_valid_digest(digest) {
        return Err(ManifestError::Malformed {
            what,
            detail: format!(
                "invalid digest {:?}",
                crate::domain::text::shorten(digest, 80)
            ),
        });
    }
    check_size(what, digest, size)
}

fn check_size(what: &'static str, digest: &str, size: i64) -> Result<(), ManifestError> {
    if size < 0 {
        return Err(ManifestError::Malformed {
            what,
            detail: format!(
                "negative size {size} for {}",
                crate::domain::text::shorten(digest, 80)
            ),
        });
    }
    Ok(())
}

/// The digest rule every layer shares (sha256 or sha512, lower-case hex): the client can verify
/// exactly those.
pub use crate::domain::reference::is_valid_digest;

/// The facts from an image config blob that Image objects record.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ImageConfig {
    /// When the image was built, as the config writes it (RFC 3339); see [`ImageConfig::created_at`].
    pub created: Option<String>,
    /// The CPU architecture.
    pub architecture: Option<String>,
    /// The operating system.
    pub os: Option<String>,
    /// The CPU variant.
    pub variant: Option<String>,
    /// The author.
    pub author: Option<String>,
    /// The configuration containers start with.
    pub config: ContainerConfig,
}

impl ImageConfig {
    /// [`ImageConfig::created`] as a time, when it is a UTC RFC 3339 timestamp (what Docker,
    /// BuildKit and other Go tools write).
    pub fn created_at(&self) -> Option<SystemTime> {
        humantime::parse_rfc3339_weak(self.created.as_deref()?.trim()).ok()
    }
}

/// The runtime configuration in an image config (`config` in OCI, `config` in Docker).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ContainerConfig {
    /// The user (and optionally group) the process runs as.
    pub user: Option<String>,
    /// `NAME=value` environment entries.
    pub env: Vec<String>,
    /// The entrypoint.
    pub entrypoint: Vec<String>,
    /// The default arguments (or command).
    pub cmd: Vec<String>,
    /// The working directory.
    pub working_dir: Option<String>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Exposed ports, as `8080/tcp`.
    pub exposed_ports: BTreeSet<String>,
    /// Volume mount points.
    pub volumes: BTreeSet<String>,
    /// The signal that stops the container.
    pub stop_signal: Option<String>,
}

/// Parses an image config blob. Only the fields the operator records are read, and leniently
/// (`null` where a list or map is expected is taken as empty), because configs are written by
/// many tools; a blob that is not a JSON object is an error.
pub fn parse_image_config(bytes: &[u8]) -> Result<ImageConfig, ManifestError> {
    #[derive(Deserialize)]
    struct WireConfig {
        created: Option<String>,
        architecture: Option<String>,
        os: Option<String>,
        variant: Option<String>,
        author: Option<String>,
        config: Option<WireContainerConfig>,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct WireContainerConfig {
        user: Option<String>,
        env: Option<Vec<String>>,
        entrypoint: Option<Vec<String>>,
        cmd: Option<Vec<String>>,
        working_dir: Option<String>,
        labels: Option<BTreeMap<String, String>>,
        exposed_ports: Option<BTreeMap<String, serde_json::Value>>,
        volumes: Option<BTreeMap<String, serde_json::Value>>,
        stop_signal: Option<String>,
    }
    let wire: WireConfig =
        serde_json::from_slice(bytes).map_err(|e| malformed("image config", e))?;
    let non_empty = |value: Option<String>| value.filter(|v| !v.is_empty());
    let config = wire
        .config
        .map_or_else(ContainerConfig::default, |c| ContainerConfig {
            user: non_empty(c.user),
            env: c.env.unwrap_or_default(),
            entrypoint: c.entrypoint.unwrap_or_default(),
            cmd: c.cmd.unwrap_or_default(),
            working_dir: non_empty(c.working_dir),
            labels: c.labels.unwrap_or_default(),
            exposed_ports: c.exposed_ports.unwrap_or_default().into_keys().collect(),
            volumes: c.volumes.unwrap_or_default().into_keys().collect(),
            stop_signal: non_empty(c.stop_signal),
        });
    Ok(ImageConfig {
        created: non_empty(wire.created),
        architecture: non_empty(wire.architecture),
        os: non_empty(wire.os),
        variant: non_empty(wire.variant),
        author: non_empty(wire.author),
        config,
    })
}

/// A parse failure, described by its kind and position only: serde's own message can quote the
/// document (`invalid type: string "…"`), and a registry could put anything there, an echoed
/// credential included.
fn malformed(what: &'static str, error: serde_json::Error) -> ManifestError {
    let kind = match error.classify() {
        serde_json::error::Category::Io => "unreadable",
        serde_json::error::Category::Syntax => "not valid JSON",
        serde_json::error::Category::Data => "valid JSON of the wrong shape",
        serde_json::error::Category::Eof => "cut short",
    };
    ManifestError::Malformed {
        what,
        detail: format!("{kind} (line {}, column {})", error.line(), error.column()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn digest(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    fn bytes(value: serde_json::Value) -> Vec<u8> {
        serde_json::to_vec(&value).unwrap()
    }

    fn docker_manifest() -> serde_json::Value {
        json!({
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST,
            "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 1469, "digest": digest('c')},
            "layers": [
                {"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": 100, "digest": digest('1')},
                {"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": 20, "digest": digest('2')},
                {"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": 100, "digest": digest('1')},
            ]
        })
    }

    #[test]
    fn accept_header_lists_all_four_manifest_types() {
        for media_type in [
            OCI_INDEX,
            DOCKER_MANIFEST_LIST,
            OCI_MANIFEST,
            DOCKER_MANIFEST,
        ] {
            assert!(MANIFEST_ACCEPT.contains(media_type), "{media_type}");
        }
        assert_eq!(MANIFEST_ACCEPT.split(", ").count(), 4);
    }

    #[test]
    fn docker_manifest_yields_config_and_layers_base_first() {
        let parsed = parse_manifest(DOCKER_MANIFEST, &bytes(docker_manifest())).unwrap();
        let ParsedManifest::Image(image) = parsed else {
            panic!("expected an image manifest");
        };
        assert_eq!(image.config.digest, digest('c'));
        assert_eq!(image.config.size, 1469);
        assert_eq!(
            image.config.media_type,
            "application/vnd.docker.container.image.v1+json"
        );
        let layers: Vec<_> = image
            .layers
            .iter()
            .map(|l| (l.digest.clone(), l.size))
            .collect();
        assert_eq!(
            layers,
            [(digest('1'), 100), (digest('2'), 20), (digest('1'), 100)]
        );
    }

    #[test]
    fn total_size_counts_the_config_and_each_distinct_layer_once() {
        let ParsedManifest::Image(image) =
            parse_manifest(DOCKER_MANIFEST, &bytes(docker_manifest())).unwrap()
        else {
            panic!("expected an image manifest");
        };
        assert_eq!(image.total_size(), Ok(1469 + 100 + 20));
    }

    /// A Docker manifest with a config of `config` bytes and one layer per `(digest char, size)`.
    fn manifest_with_sizes(config: i64, layers: &[(char, i64)]) -> serde_json::Value {
        let layers: Vec<_> = layers
            .iter()
            .map(|(c, size)| json!({"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": size, "digest": digest(*c)}))
            .collect();
        json!({
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST,
            "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": config, "digest": digest('c')},
            "layers": layers,
        })
    }

    #[test]
    fn sizes_that_overflow_an_i64_make_the_manifest_invalid_instead_of_wrapping() {
        const HUGE: i64 = 1 << 62;
        let table: [(&str, serde_json::Value, Result<i64, ManifestError>); 5] = [
            (
                "three distinct layers of 2^62 bytes",
                manifest_with_sizes(10, &[('1', HUGE), ('2', HUGE), ('3', HUGE)]),
                Err(ManifestError::SizeOverflow),
            ),
            (
                "a config of i64::MAX bytes and one more byte of layer",
                manifest_with_sizes(i64::MAX, &[('1', 1)]),
                Err(ManifestError::SizeOverflow),
            ),
            (
                "a total of exactly i64::MAX",
                manifest_with_sizes(i64::MAX - HUGE, &[('1', HUGE)]),
                Ok(i64::MAX),
            ),
            (
                "one layer of 2^62 bytes listed three times counts once",
                manifest_with_sizes(10, &[('1', HUGE), ('1', HUGE), ('1', HUGE)]),
                Ok(HUGE + 10),
            ),
            (
                "a negative layer size",
                manifest_with_sizes(10, &[('1', -5)]),
                Err(ManifestError::Malformed {
                    what: "manifest",
                    detail: format!("negative size -5 for {}", digest('1')),
                }),
            ),
        ];
        for (case, manifest, expected) in table {
            let parsed = parse_manifest(DOCKER_MANIFEST, &bytes(manifest));
            match expected {
                Ok(size) => {
                    let Ok(ParsedManifest::Image(image)) = parsed else {
                        panic!("{case}: expected an image manifest, got {parsed:?}");
                    };
                    assert_eq!(image.total_size(), Ok(size), "{case}");
                }
                Err(error) => assert_eq!(parsed, Err(error), "{case}"),
            }
        }
    }

    #[test]
    fn total_size_of_a_manifest_built_in_code_is_checked_too() {
        let layer = |c: char, size: i64| Descriptor {
            digest: digest(c),
            size,
            media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
        };
        let overflowing = ImageManifest {
            config: layer('c', 1),
            layers: vec![layer('1', i64::MAX)],
        };
        assert_eq!(overflowing.total_size(), Err(ManifestError::SizeOverflow));
        let negative = ImageManifest {
            config: layer('c', -1),
            layers: vec![],
        };
        assert!(matches!(
            negative.total_size(),
            Err(ManifestError::Malformed {
                what: "manifest",
                ..
            })
        ));
        assert_eq!(
            ManifestError::SizeOverflow.to_string(),
            "malformed manifest: the sizes of its config and layers add up to more than \
             9223372036854775807 bytes"
        );
    }

    #[test]
    fn oci_index_yields_entries_with_platforms_and_variant() {
        let index = json!({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                {"mediaType": OCI_MANIFEST, "digest": digest('a'), "size": 500,
                 "platform": {"architecture": "amd64", "os": "linux"}},
                {"mediaType": OCI_MANIFEST, "digest": digest('b'), "size": 501,
                 "platform": {"architecture": "arm64", "os": "linux", "variant": "v8"}},
                {"mediaType": OCI_MANIFEST, "digest": digest('d'), "size": 502,
                 "platform": {"architecture": "armbe", "os": "linux"}},
                {"mediaType": OCI_MANIFEST, "digest": digest('e'), "size": 840,
                 "annotations": {"vnd.docker.reference.type": "attestation-manifest"}},
            ]
        });
        let ParsedManifest::Index(index) = parse_manifest(OCI_INDEX, &bytes(index)).unwrap() else {
            panic!("expected an index");
        };
        assert_eq!(index.manifests.len(), 4);
        assert_eq!(
            index.manifests[1],
            IndexEntry {
                digest: digest('b'),
                media_type: OCI_MANIFEST.into(),
                size: 501,
                platform: Some(Platform {
                    architecture: "arm64".into(),
                    os: "linux".into(),
                    variant: Some("v8".into()),
                }),
            }
        );
        // The registry's exact spelling survives (oci-spec would turn this into arm64be).
        assert_eq!(
            index.manifests[2].platform.as_ref().unwrap().architecture,
            "armbe"
        );
        assert_eq!(index.manifests[3].platform, None);
    }

    #[test]
    fn docker_manifest_list_is_parsed_as_an_index() {
        let list = json!({
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST_LIST,
            "manifests": [{"mediaType": DOCKER_MANIFEST, "digest": digest('a'), "size": 7,
                           "platform": {"architecture": "arm", "os": "linux", "variant": "v7"}}]
        });
        let parsed = parse_manifest(DOCKER_MANIFEST_LIST, &bytes(list)).unwrap();
        assert!(matches!(parsed, ParsedManifest::Index(ref i) if i.manifests.len() == 1));
    }

    #[test]
    fn without_a_specific_content_type_the_document_decides() {
        let mut manifest = docker_manifest();
        assert!(matches!(
            parse_manifest("application/json", &bytes(manifest.clone())),
            Ok(ParsedManifest::Image(_))
        ));
        manifest.as_object_mut().unwrap().remove("mediaType");
        assert_eq!(
            effective_media_type("", &bytes(manifest)).unwrap(),
            OCI_MANIFEST
        );
        let index = json!({"schemaVersion": 2, "manifests": []});
        assert_eq!(effective_media_type("", &bytes(index)).unwrap(), OCI_INDEX);
    }

    #[test]
    fn content_type_parameters_are_ignored() {
        let parsed = parse_manifest(
            &format!("{DOCKER_MANIFEST}; charset=utf-8"),
            &bytes(docker_manifest()),
        );
        assert!(matches!(parsed, Ok(ParsedManifest::Image(_))));
    }

    #[test]
    fn schema_1_manifests_are_unsupported() {
        let error = parse_manifest(
            "application/vnd.docker.distribution.manifest.v1+prettyjws",
            b"{}",
        )
        .unwrap_err();
        assert!(matches!(error, ManifestError::UnsupportedMediaType { .. }));
    }

    #[test]
    fn a_malformed_config_or_manifest_is_described_without_quoting_the_document() {
        let secret = "Basic ZGVwbG95ZXI6c2VjcmV0";
        let config = format!(r#"{{"config": {{"Env": "{secret}"}}}}"#);
        let error = parse_image_config(config.as_bytes())
            .unwrap_err()
            .to_string();
        assert!(!error.contains(secret), "{error}");
        assert!(error.contains("wrong shape (line 1, column"), "{error}");
        let manifest = format!(r#"{{"schemaVersion": 2, "config": "{secret}"}}"#);
        let error = parse_manifest(DOCKER_MANIFEST, manifest.as_bytes())
            .unwrap_err()
            .to_string();
        assert!(!error.contains(secret), "{error}");
        let error = parse_image_config(b"{\"os\": ").unwrap_err().to_string();
        assert!(error.contains("cut short"), "{error}");
    }

    #[test]
    fn malformed_manifests_are_errors_not_panics() {
        for (media_type, body) in [
            (DOCKER_MANIFEST, b"not json".to_vec()),
            (DOCKER_MANIFEST, b"{\"schemaVersion\": 2}".to_vec()),
            (
                OCI_INDEX,
                b"{\"schemaVersion\": 2, \"manifests\": {}}".to_vec(),
            ),
            (OCI_INDEX, b"[]".to_vec()),
            ("", b"".to_vec()),
        ] {
            let error = parse_manifest(media_type, &body).unwrap_err();
            assert!(
                matches!(error, ManifestError::Malformed { .. }),
                "{media_type}: {error}"
            );
        }
    }

    #[test]
    fn wrong_schema_version_bad_digests_and_negative_sizes_are_malformed() {
        let mut manifest = docker_manifest();
        manifest["schemaVersion"] = json!(1);
        assert!(parse_manifest(DOCKER_MANIFEST, &bytes(manifest)).is_err());

        let mut manifest = docker_manifest();
        manifest["layers"][0]["digest"] = json!("sha256:../../etc/passwd");
        let error = parse_manifest(DOCKER_MANIFEST, &bytes(manifest)).unwrap_err();
        assert!(error.to_string().contains("invalid digest"), "{error}");

        let mut manifest = docker_manifest();
        manifest["config"]["size"] = json!(-1);
        assert!(parse_manifest(DOCKER_MANIFEST, &bytes(manifest)).is_err());
    }

    #[test]
    fn digest_validation_accepts_sha256_and_sha512_only() {
        assert!(is_valid_digest(&digest('a')));
        assert!(is_valid_digest(&format!("sha512:{}", "0".repeat(128))));
        assert!(!is_valid_digest(&format!("sha256:{}", "A".repeat(64))));
        assert!(!is_valid_digest(&format!("sha256:{}", "a".repeat(63))));
        assert!(!is_valid_digest(&format!("md5:{}", "a".repeat(32))));
        assert!(!is_valid_digest("latest"));
    }

    #[test]
    fn image_config_yields_platform_author_and_runtime_config() {
        let config = json!({
            "created": "2024-05-01T12:34:56.789012345Z",
            "author": "Jane <jane@example.com>",
            "architecture": "arm64",
            "os": "linux",
            "variant": "v8",
            "config": {
                "User": "1001:0",
                "Env": ["PATH=/usr/bin", "A=b=c"],
                "Entrypoint": ["/docker-entrypoint.sh"],
                "Cmd": ["nginx", "-g", "daemon off;"],
                "WorkingDir": "/srv",
                "Labels": {"org.opencontainers.image.version": "1.25"},
                "ExposedPorts": {"80/tcp": {}, "443/tcp": {}},
                "Volumes": {"/data": {}},
                "StopSignal": "SIGQUIT"
            },
            "rootfs": {"type": "layers", "diff_ids": []},
            "history": []
        });
        let parsed = parse_image_config(&bytes(config)).unwrap();
        assert_eq!(
            parsed,
            ImageConfig {
                created: Some("2024-05-01T12:34:56.789012345Z".into()),
                architecture: Some("arm64".into()),
                os: Some("linux".into()),
                variant: Some("v8".into()),
                author: Some("Jane <jane@example.com>".into()),
                config: ContainerConfig {
                    user: Some("1001:0".into()),
                    env: vec!["PATH=/usr/bin".into(), "A=b=c".into()],
                    entrypoint: vec!["/docker-entrypoint.sh".into()],
                    cmd: vec!["nginx".into(), "-g".into(), "daemon off;".into()],
                    working_dir: Some("/srv".into()),
                    labels: [("org.opencontainers.image.version".into(), "1.25".into())].into(),
                    exposed_ports: ["443/tcp".into(), "80/tcp".into()].into(),
                    volumes: ["/data".into()].into(),
                    stop_signal: Some("SIGQUIT".into()),
                },
            }
        );
        let created = parsed.created_at().unwrap();
        let expected = humantime::parse_rfc3339("2024-05-01T12:34:56.789012345Z").unwrap();
        assert_eq!(created, expected);
    }

    #[test]
    fn image_config_with_nulls_and_missing_sections_is_accepted_as_empty() {
        let parsed = parse_image_config(
            br#"{"architecture":"amd64","os":"linux","config":{"Env":null,"Labels":null,"Cmd":null,"User":""}}"#,
        )
        .unwrap();
        assert_eq!(parsed.config, ContainerConfig::default());
        assert_eq!(parse_image_config(b"{}").unwrap(), ImageConfig::default());
    }

    #[test]
    fn image_config_that_is_not_an_object_is_malformed() {
        for body in [&b"[]"[..], b"null", b"{\"config\": 5}", b"\xff"] {
            assert!(parse_image_config(body).is_err());
        }
    }
}
