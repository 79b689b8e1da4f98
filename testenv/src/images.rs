//! Test images pushed into a registry over the distribution HTTP API itself (no skopeo, no docker):
//! random single-platform images in Docker schema 2 or OCI form, multi-arch indexes over them, tag
//! moves and deletes, as an anonymous, Basic or Bearer (token server) client.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::SystemTime;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, LOCATION, WWW_AUTHENTICATE};
use http::{HeaderValue, Method, StatusCode};
use rand::{Rng, RngCore};
use reqwest::Url;
use serde_json::json;
use sha2::{Digest, Sha256};
use thiserror::Error;

use super::Registry;

/// Docker image manifest, schema 2.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list (multi-arch).
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index (multi-arch).
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// The four manifest media types, in the order a client lists them in `Accept`.
pub const MANIFEST_MEDIA_TYPES: [&str; 4] = [
    OCI_INDEX,
    DOCKER_MANIFEST_LIST,
    OCI_MANIFEST,
    DOCKER_MANIFEST,
];

/// Which family of media types an image or index is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManifestFormat {
    /// Docker v2 schema 2 manifests and manifest lists.
    Docker,
    /// OCI image manifests and indexes.
    Oci,
}

impl ManifestFormat {
    /// The media type of a single-platform manifest.
    pub fn manifest_media_type(self) -> &'static str {
        match self {
            Self::Docker => DOCKER_MANIFEST,
            Self::Oci => OCI_MANIFEST,
        }
    }

    /// The media type of a multi-arch index (manifest list).
    pub fn index_media_type(self) -> &'static str {
        match self {
            Self::Docker => DOCKER_MANIFEST_LIST,
            Self::Oci => OCI_INDEX,
        }
    }

    /// The media type of the image config blob.
    pub fn config_media_type(self) -> &'static str {
        match self {
            Self::Docker => "application/vnd.docker.container.image.v1+json",
            Self::Oci => "application/vnd.oci.image.config.v1+json",
        }
    }

    /// The media type of a layer blob.
    pub fn layer_media_type(self) -> &'static str {
        match self {
            Self::Docker => "application/vnd.docker.image.rootfs.diff.tar.gzip",
            Self::Oci => "application/vnd.oci.image.layer.v1.tar+gzip",
        }
    }
}

/// An operating system and CPU architecture, as in an index's `platform`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    /// `linux`, `windows`, …
    pub os: String,
    /// `amd64`, `arm64`, `s390x`, …
    pub architecture: String,
    /// `v8` for `arm64`, `v7` for `arm`, …
    pub variant: Option<String>,
}

impl Platform {
    /// `linux/<architecture>`.
    pub fn linux(architecture: &str) -> Self {
        Self {
            os: "linux".into(),
            architecture: architecture.into(),
            variant: None,
        }
    }

    /// `linux/<architecture>/<variant>`.
    pub fn linux_variant(architecture: &str, variant: &str) -> Self {
        Self {
            variant: Some(variant.into()),
            ..Self::linux(architecture)
        }
    }

    /// The platform object of an index entry (`{"architecture", "os", "variant"?}`).
    pub fn to_json(&self) -> serde_json::Value {
        let mut platform = json!({ "architecture": self.architecture, "os": self.os });
        if let Some(variant) = &self.variant {
            platform["variant"] = json!(variant);
        }
        platform
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(variant) = &self.variant {
            write!(f, "/{variant}")?;
        }
        Ok(())
    }
}

/// The runtime settings of an image config (`config` in the config blob), plus its `author` and
/// `created`: what OpenShift shows as `dockerImageMetadata`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageConfig {
    /// `created`, RFC 3339.
    pub created: String,
    /// `author`.
    pub author: String,
    /// `config.Env`, `NAME=value`.
    pub env: Vec<String>,
    /// `config.Entrypoint`.
    pub entrypoint: Vec<String>,
    /// `config.Cmd`.
    pub cmd: Vec<String>,
    /// `config.Labels`.
    pub labels: BTreeMap<String, String>,
    /// `config.User`.
    pub user: String,
    /// `config.WorkingDir`.
    pub working_dir: String,
    /// `config.ExposedPorts` keys, e.g. `8080/tcp`.
    pub exposed_ports: Vec<String>,
}

impl ImageConfig {
    /// A config with random values, created now, so two random images never share a config digest.
    pub fn random() -> Self {
        let id = random_hex(4);
        let port = rand::rng().random_range(1024..65535u32);
        Self {
            created: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
            author: format!("testenv-{id}"),
            env: vec![
                "PATH=/usr/local/bin:/usr/bin:/bin".into(),
                format!("BUILD_ID={id}"),
            ],
            entrypoint: vec!["/bin/app".into()],
            cmd: vec!["--serve".into(), format!("--id={id}")],
            labels: BTreeMap::from([
                ("io.testenv.id".to_string(), id.clone()),
                (
                    "org.opencontainers.image.title".to_string(),
                    "testenv".to_string(),
                ),
            ]),
            user: "1001".into(),
            working_dir: format!("/srv/{id}"),
            exposed_ports: vec![format!("{port}/tcp")],
        }
    }
}

/// A single-platform image built in memory, ready to push.
#[derive(Debug, Clone)]
pub struct TestImage {
    /// Docker or OCI media types.
    pub format: ManifestFormat,
    /// The platform written into the config blob (and into an index entry).
    pub platform: Platform,
    /// The config values.
    pub config: ImageConfig,
    /// The layer blobs; random bytes (registries accept any bytes as a blob).
    pub layers: Vec<Vec<u8>>,
}

impl TestImage {
    /// A linux/amd64 image with a random config and two or three random layers of a few KiB.
    pub fn random(format: ManifestFormat) -> Self {
        let mut rng = rand::rng();
        let count = rng.random_range(2..=3);
        let layers = (0..count)
            .map(|_| {
                let mut layer = vec![0u8; rng.random_range(512..4096)];
                rng.fill_bytes(&mut layer);
                layer
            })
            .collect();
        Self {
            format,
            platform: Platform::linux("amd64"),
            config: ImageConfig::random(),
            layers,
        }
    }

    /// The same image for another platform.
    pub fn with_platform(mut self, platform: Platform) -> Self {
        self.platform = platform;
        self
    }

    /// The config blob: architecture, os, variant, created, author, config, rootfs and history.
    pub fn config_blob(&self) -> Vec<u8> {
        let c = &self.config;
        let exposed: serde_json::Map<String, serde_json::Value> = c
            .exposed_ports
            .iter()
            .map(|p| (p.clone(), json!({})))
            .collect();
        // The layers are not really gzip, so their "uncompressed" diff IDs are their own digests.
        let diff_ids: Vec<String> = self.layers.iter().map(|l| sha256_digest(l)).collect();
        let history: Vec<serde_json::Value> = self
            .layers
            .iter()
            .enumerate()
            .map(|(i, _)| json!({ "created": c.created, "created_by": format!("testenv layer {i}") }))
            .collect();
        let mut config = json!({
            "architecture": self.platform.architecture,
            "os": self.platform.os,
            "created": c.created,
            "author": c.author,
            "config": {
                "User": c.user,
                "ExposedPorts": exposed,
                "Env": c.env,
                "Entrypoint": c.entrypoint,
                "Cmd": c.cmd,
                "WorkingDir": c.working_dir,
                "Labels": c.labels,
            },
            "rootfs": { "type": "layers", "diff_ids": diff_ids },
            "history": history,
        });
        if let Some(variant) = &self.platform.variant {
            config["variant"] = json!(variant);
        }
        serde_json::to_vec(&config).expect("a JSON value serializes")
    }

    /// The manifest bytes for a config blob (from [`Self::config_blob`]).
    pub fn manifest(&self, config_blob: &[u8]) -> Vec<u8> {
        let layers: Vec<serde_json::Value> = self
            .layers
            .iter()
            .map(|l| {
                json!({
                    "mediaType": self.format.layer_media_type(),
                    "size": l.len(),
                    "digest": sha256_digest(l),
                })
            })
            .collect();
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": self.format.manifest_media_type(),
            "config": {
                "mediaType": self.format.config_media_type(),
                "size": config_blob.len(),
                "digest": sha256_digest(config_blob),
            },
            "layers": layers,
        });
        serde_json::to_vec(&manifest).expect("a JSON value serializes")
    }
}

/// A multi-arch image built in memory: one [`TestImage`] per platform, all in the same format.
#[derive(Debug, Clone)]
pub struct TestIndex {
    /// OCI index or Docker manifest list, and the children's format.
    pub format: ManifestFormat,
    /// The children, in index order.
    pub images: Vec<TestImage>,
}

impl TestIndex {
    /// A random image per platform.
    pub fn random(format: ManifestFormat, platforms: &[Platform]) -> Self {
        Self {
            format,
            images: platforms
                .iter()
                .map(|p| TestImage::random(format).with_platform(p.clone()))
                .collect(),
        }
    }

    /// linux/amd64, linux/arm64/v8 and linux/s390x.
    pub fn common_platforms() -> Vec<Platform> {
        vec![
            Platform::linux("amd64"),
            Platform::linux_variant("arm64", "v8"),
            Platform::linux("s390x"),
        ]
    }
}

/// A blob as a manifest references it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushedBlob {
    /// `sha256:…`.
    pub digest: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its media type in the manifest.
    pub media_type: String,
}

/// A single-platform image as it now is in the registry.
#[derive(Debug, Clone)]
pub struct PushedImage {
    /// The repository, e.g. `team/app`.
    pub repository: String,
    /// The tag it was pushed to; `None` for an index child pushed by digest.
    pub tag: Option<String>,
    /// The manifest digest, `sha256:…`.
    pub digest: String,
    /// The manifest media type.
    pub media_type: String,
    /// The manifest bytes as pushed (their SHA-256 is `digest`).
    pub manifest: Vec<u8>,
    /// The config blob digest.
    pub config_digest: String,
    /// The config blob bytes.
    pub config: Vec<u8>,
    /// The layers, in manifest order.
    pub layers: Vec<PushedBlob>,
    /// The platform of the config.
    pub platform: Platform,
    /// The config values.
    pub image_config: ImageConfig,
}

/// A multi-arch index as it now is in the registry.
#[derive(Debug, Clone)]
pub struct PushedIndex {
    /// The repository.
    pub repository: String,
    /// The tag the index was pushed to.
    pub tag: String,
    /// The index digest.
    pub digest: String,
    /// OCI index or Docker manifest list.
    pub media_type: String,
    /// The index bytes as pushed.
    pub manifest: Vec<u8>,
    /// The children, in index order, each with its platform.
    pub children: Vec<PushedImage>,
}

/// Why a push, lookup or delete failed.
#[derive(Debug, Error)]
pub enum PushError {
    /// The registry URL does not parse.
    #[error("invalid registry URL {url}: {reason}")]
    InvalidUrl { url: String, reason: String },
    /// The HTTP client could not be built.
    #[error("could not build the HTTP client: {source}")]
    Client { source: reqwest::Error },
    /// A request could not be sent or its answer not read.
    #[error("could not {operation} ({url}): {source}")]
    Request {
        operation: String,
        url: String,
        source: reqwest::Error,
    },
    /// The registry answered with an unexpected status.
    #[error("could not {operation} ({url}): the registry answered {status}: {body}")]
    Status {
        operation: String,
        url: String,
        status: u16,
        body: String,
    },
    /// The token service refused to issue a token or answered something unusable.
    #[error("could not get a token from {realm}: {reason}")]
    Token { realm: String, reason: String },
    /// The registry stored the manifest under another digest than its bytes have.
    #[error("the registry stored {reference} as {actual}, but its bytes hash to {expected}")]
    DigestMismatch {
        reference: String,
        expected: String,
        actual: String,
    },
}

impl PushError {
    /// The HTTP status the registry answered, for `Status` errors (401 without credentials, …).
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// Pushes and deletes images in one registry. On a 401 it answers the registry's challenge once
/// (Basic with its credentials, or a Bearer token from the challenge's realm, anonymous when it has
/// none) and keeps the answer per repository for later requests.
pub struct ImagePusher {
    client: reqwest::Client,
    base_url: Url,
    credentials: Option<(String, String)>,
    authorizations: Mutex<HashMap<String, String>>,
}

impl ImagePusher {
    /// A pusher for the registry at `base_url` (`http://127.0.0.1:5000`), without credentials.
    pub fn new(base_url: &str) -> Result<Self, PushError> {
        let parsed = Url::parse(base_url).map_err(|err| PushError::InvalidUrl {
            url: base_url.into(),
            reason: err.to_string(),
        })?;
        Ok(Self {
            client: build_client(None)?,
            base_url: parsed,
            credentials: None,
            authorizations: Mutex::new(HashMap::new()),
        })
    }

    /// A pusher for a test registry, without credentials.
    ///
    /// # Panics
    /// When the HTTP client cannot be built, which is a broken environment.
    pub fn for_registry(registry: &Registry) -> Self {
        Self::new(&registry.base_url()).unwrap_or_else(|err| panic!("{err}"))
    }

    /// Uses `username` and `password` for Basic challenges and for token requests.
    pub fn with_credentials(mut self, username: &str, password: &str) -> Self {
        self.credentials = Some((username.into(), password.into()));
        self
    }

    /// Trusts only the CA certificate `ca_pem` (for a TLS registry).
    pub fn with_root_certificate(mut self, ca_pem: &str) -> Result<Self, PushError> {
        self.client = build_client(Some(ca_pem))?;
        Ok(self)
    }

    /// Pushes a random image (see [`TestImage::random`]) to `repository:tag`.
    pub async fn push_random(
        &self,
        repository: &str,
        tag: &str,
        format: ManifestFormat,
    ) -> Result<PushedImage, PushError> {
        self.push_image(repository, tag, &TestImage::random(format))
            .await
    }

    /// Pushes `image` to `repository:tag`: its blobs (those the registry does not have yet), then its
    /// manifest. Pushing to an existing tag moves the tag.
    pub async fn push_image(
        &self,
        repository: &str,
        tag: &str,
        image: &TestImage,
    ) -> Result<PushedImage, PushError> {
        self.push_image_at(repository, Some(tag), image).await
    }

    /// Pushes `image` by digest only, untagged (as an index child is).
    pub async fn push_untagged(
        &self,
        repository: &str,
        image: &TestImage,
    ) -> Result<PushedImage, PushError> {
        self.push_image_at(repository, None, image).await
    }

    /// Pushes blobs and manifest; the manifest goes to `tag`, or to its own digest without one.
    async fn push_image_at(
        &self,
        repository: &str,
        tag: Option<&str>,
        image: &TestImage,
    ) -> Result<PushedImage, PushError> {
        let config = image.config_blob();
        let manifest = image.manifest(&config);
        let manifest_digest = sha256_digest(&manifest);
        let reference = tag.unwrap_or(&manifest_digest);
        let media_type = image.format.manifest_media_type();
        let mut layers = Vec::new();
        for layer in &image.layers {
            let digest = self.push_blob(repository, layer).await?;
            layers.push(PushedBlob {
                digest,
                size: layer.len() as u64,
                media_type: image.format.layer_media_type().into(),
            });
        }
        let config_digest = self.push_blob(repository, &config).await?;
        let digest = self
            .put_manifest(repository, reference, media_type, &manifest)
            .await?;
        Ok(PushedImage {
            repository: repository.into(),
            tag: tag.map(str::to_owned),
            digest,
            media_type: media_type.into(),
            manifest,
            config_digest,
            config,
            layers,
            platform: image.platform.clone(),
            image_config: image.config.clone(),
        })
    }

    /// Pushes a random multi-arch index over `platforms` to `repository:tag`.
    pub async fn push_random_index(
        &self,
        repository: &str,
        tag: &str,
        format: ManifestFormat,
        platforms: &[Platform],
    ) -> Result<PushedIndex, PushError> {
        self.push_index(repository, tag, &TestIndex::random(format, platforms))
            .await
    }

    /// Pushes every child of `index` by digest, then the index (OCI image index or Docker manifest
    /// list) to `repository:tag`.
    pub async fn push_index(
        &self,
        repository: &str,
        tag: &str,
        index: &TestIndex,
    ) -> Result<PushedIndex, PushError> {
        let mut children = Vec::new();
        for image in &index.images {
            children.push(self.push_untagged(repository, image).await?);
        }
        let entries: Vec<serde_json::Value> = children
            .iter()
            .map(|child| {
                json!({
                    "mediaType": child.media_type,
                    "size": child.manifest.len(),
                    "digest": child.digest,
                    "platform": child.platform.to_json(),
                })
            })
            .collect();
        let media_type = index.format.index_media_type();
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": media_type,
            "manifests": entries,
        }))
        .expect("a JSON value serializes");
        let digest = self
            .put_manifest(repository, tag, media_type, &manifest)
            .await?;
        Ok(PushedIndex {
            repository: repository.into(),
            tag: tag.into(),
            digest,
            media_type: media_type.into(),
            manifest,
            children,
        })
    }

    /// Uploads `bytes` as a blob unless the registry has it already; returns its digest.
    pub async fn push_blob(&self, repository: &str, bytes: &[u8]) -> Result<String, PushError> {
        let digest = sha256_digest(bytes);
        let blob_url = self.url(&format!("/v2/{repository}/blobs/{digest}"));
        let head = self
            .send(repository, Method::HEAD, blob_url.clone(), None, None)
            .await
            .map_err(|source| request_error("check for a blob", &blob_url, source))?;
        if head.status() == StatusCode::OK {
            return Ok(digest);
        }
        if head.status() != StatusCode::NOT_FOUND {
            return Err(status_error("check for a blob", &blob_url, head).await);
        }

        // Monolithic upload: open a session, then one PUT with the whole blob and its digest.
        let start_url = self.url(&format!("/v2/{repository}/blobs/uploads/"));
        let started = self
            .send(
                repository,
                Method::POST,
                start_url.clone(),
                None,
                Some(Vec::new()),
            )
            .await
            .map_err(|source| request_error("start a blob upload", &start_url, source))?;
        if started.status() != StatusCode::ACCEPTED {
            return Err(status_error("start a blob upload", &start_url, started).await);
        }
        let location = started
            .headers()
            .get(LOCATION)
            .and_then(|l| l.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let mut upload_url = start_url
            .join(&location)
            .map_err(|err| PushError::InvalidUrl {
                url: location.clone(),
                reason: err.to_string(),
            })?;
        upload_url.query_pairs_mut().append_pair("digest", &digest);
        let put = self
            .send(
                repository,
                Method::PUT,
                upload_url.clone(),
                Some("application/octet-stream"),
                Some(bytes.to_vec()),
            )
            .await
            .map_err(|source| request_error("finish a blob upload", &upload_url, source))?;
        if put.status() != StatusCode::CREATED {
            return Err(status_error("finish a blob upload", &upload_url, put).await);
        }
        Ok(digest)
    }

    /// Stores `manifest` as `repository:reference` (a tag or its digest) with `media_type`; returns the
    /// digest the registry reports, checked against the bytes. Use it to point a tag back at an earlier
    /// [`PushedImage::manifest`].
    pub async fn put_manifest(
        &self,
        repository: &str,
        reference: &str,
        media_type: &str,
        manifest: &[u8],
    ) -> Result<String, PushError> {
        let expected = sha256_digest(manifest);
        let url = self.url(&format!("/v2/{repository}/manifests/{reference}"));
        let response = self
            .send(
                repository,
                Method::PUT,
                url.clone(),
                Some(media_type),
                Some(manifest.to_vec()),
            )
            .await
            .map_err(|source| request_error("push a manifest", &url, source))?;
        if response.status() != StatusCode::CREATED {
            return Err(status_error("push a manifest", &url, response).await);
        }
        let actual = response
            .headers()
            .get("Docker-Content-Digest")
            .and_then(|d| d.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        if actual != expected {
            return Err(PushError::DigestMismatch {
                reference: format!("{repository}:{reference}"),
                expected,
                actual,
            });
        }
        Ok(expected)
    }

    /// The digest `repository:reference` resolves to (a HEAD accepting every manifest media type), or
    /// `None` when the registry answers 404.
    pub async fn manifest_digest(
        &self,
        repository: &str,
        reference: &str,
    ) -> Result<Option<String>, PushError> {
        let url = self.url(&format!("/v2/{repository}/manifests/{reference}"));
        let response = self
            .send(repository, Method::HEAD, url.clone(), None, None)
            .await
            .map_err(|source| request_error("resolve a manifest", &url, source))?;
        match response.status() {
            StatusCode::OK => Ok(response
                .headers()
                .get("Docker-Content-Digest")
                .and_then(|d| d.to_str().ok())
                .map(str::to_owned)),
            StatusCode::NOT_FOUND => Ok(None),
            _ => Err(status_error("resolve a manifest", &url, response).await),
        }
    }

    /// Deletes the manifest `repository@digest`; every tag pointing at it then answers 404.
    pub async fn delete_manifest(&self, repository: &str, digest: &str) -> Result<(), PushError> {
        let url = self.url(&format!("/v2/{repository}/manifests/{digest}"));
        let response = self
            .send(repository, Method::DELETE, url.clone(), None, None)
            .await
            .map_err(|source| request_error("delete a manifest", &url, source))?;
        if response.status() != StatusCode::ACCEPTED {
            return Err(status_error("delete a manifest", &url, response).await);
        }
        Ok(())
    }

    /// Makes `repository:tag` answer 404: resolves it and deletes that manifest (distribution 2.8
    /// cannot delete a tag alone, so other tags of the same manifest go too). Returns the digest.
    pub async fn delete_tag(&self, repository: &str, tag: &str) -> Result<String, PushError> {
        let url = self.url(&format!("/v2/{repository}/manifests/{tag}"));
        let digest = self
            .manifest_digest(repository, tag)
            .await?
            .ok_or_else(|| PushError::Status {
                operation: "delete a tag".into(),
                url: url.to_string(),
                status: 404,
                body: "the tag does not exist".into(),
            })?;
        self.delete_manifest(repository, &digest).await?;
        Ok(digest)
    }

    fn url(&self, path: &str) -> Url {
        let mut url = self.base_url.clone();
        url.set_path(path);
        url
    }

    /// Sends one request with the repository's known authorization; on a 401 answers the challenge
    /// and sends it once more. A 401 that cannot be answered is returned as it is.
    async fn send(
        &self,
        repository: &str,
        method: Method,
        url: Url,
        content_type: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> Result<reqwest::Response, SendError> {
        let known = self.authorization(repository);
        let first = self
            .request(&method, &url, content_type, body.clone(), known.as_deref())
            .await
            .map_err(SendError::Http)?;
        if first.status() != StatusCode::UNAUTHORIZED {
            return Ok(first);
        }
        let Some(challenge) = first
            .headers()
            .get(WWW_AUTHENTICATE)
            .and_then(|c| c.to_str().ok())
            .and_then(Challenge::parse)
        else {
            return Ok(first);
        };
        let authorization = match challenge {
            Challenge::Basic => match &self.credentials {
                Some((user, password)) => basic_authorization(user, password),
                None => return Ok(first),
            },
            Challenge::Bearer {
                realm,
                service,
                scope,
            } => {
                // Ask for pull and push at once, so one token serves the whole push.
                let mut scopes = vec![format!("repository:{repository}:pull,push")];
                scopes.extend(scope);
                let token = self
                    .fetch_token(&realm, service.as_deref(), &scopes)
                    .await
                    .map_err(SendError::Token)?;
                format!("Bearer {token}")
            }
        };
        self.authorizations
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(repository.into(), authorization.clone());
        self.request(&method, &url, content_type, body, Some(&authorization))
            .await
            .map_err(SendError::Http)
    }

    fn authorization(&self, repository: &str) -> Option<String> {
        self.authorizations
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(repository)
            .cloned()
    }

    async fn request(
        &self,
        method: &Method,
        url: &Url,
        content_type: Option<&str>,
        body: Option<Vec<u8>>,
        authorization: Option<&str>,
    ) -> Result<reqwest::Response, reqwest::Error> {
        let mut request = self.client.request(method.clone(), url.clone());
        if matches!(*method, Method::HEAD | Method::GET) {
            request = request.header(ACCEPT, MANIFEST_MEDIA_TYPES.join(", "));
        }
        if let Some(content_type) = content_type {
            request = request.header(CONTENT_TYPE, content_type);
        }
        if let Some(authorization) = authorization {
            request = request.header(AUTHORIZATION, authorization);
        }
        if let Some(body) = body {
            request = request.body(body);
        }
        request.send().await
    }

    async fn fetch_token(
        &self,
        realm: &str,
        service: Option<&str>,
        scopes: &[String],
    ) -> Result<String, PushError> {
        let token_error = |reason: String| PushError::Token {
            realm: realm.into(),
            reason,
        };
        let mut url = Url::parse(realm).map_err(|err| token_error(err.to_string()))?;
        {
            let mut query = url.query_pairs_mut();
            if let Some(service) = service {
                query.append_pair("service", service);
            }
            for scope in scopes {
                query.append_pair("scope", scope);
            }
        }
        let mut request = self.client.get(url);
        if let Some((user, password)) = &self.credentials {
            request = request.header(AUTHORIZATION, basic_authorization(user, password));
        }
        let response = request
            .send()
            .await
            .map_err(|err| token_error(err.to_string()))?;
        let status = response.status();
        let body = response
            .text()
            .await
            .map_err(|err| token_error(err.to_string()))?;
        if !status.is_success() {
            return Err(token_error(format!("answered {status}: {body}")));
        }
        let parsed: serde_json::Value =
            serde_json::from_str(&body).map_err(|err| token_error(err.to_string()))?;
        parsed
            .get("token")
            .or_else(|| parsed.get("access_token"))
            .and_then(|t| t.as_str())
            .map(str::to_owned)
            .ok_or_else(|| token_error(format!("no token in {body}")))
    }
}

/// Why [`ImagePusher::send`] failed, before the caller names the operation.
enum SendError {
    Http(reqwest::Error),
    Token(PushError),
}

fn request_error(operation: &str, url: &Url, source: SendError) -> PushError {
    match source {
        SendError::Http(source) => PushError::Request {
            operation: operation.into(),
            url: url.to_string(),
            source,
        },
        SendError::Token(err) => err,
    }
}

async fn status_error(operation: &str, url: &Url, response: reqwest::Response) -> PushError {
    let status = response.status().as_u16();
    let body = response.text().await.unwrap_or_default();
    PushError::Status {
        operation: operation.into(),
        url: url.to_string(),
        status,
        body,
    }
}

fn build_client(ca_pem: Option<&str>) -> Result<reqwest::Client, PushError> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut builder = reqwest::Client::builder().user_agent("imagestream-operator-testenv");
    if let Some(pem) = ca_pem {
        let certificate = reqwest::Certificate::from_pem(pem.as_bytes())
            .map_err(|source| PushError::Client { source })?;
        builder = builder.tls_certs_only([certificate]);
    }
    builder
        .build()
        .map_err(|source| PushError::Client { source })
}

/// `Basic base64(user:password)`.
pub fn basic_authorization(user: &str, password: &str) -> String {
    format!("Basic {}", BASE64.encode(format!("{user}:{password}")))
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    hex::encode(buf)
}

/// A parsed `WWW-Authenticate` challenge.
#[derive(Debug, PartialEq, Eq)]
enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

impl Challenge {
    /// Parses `Basic realm="…"` or `Bearer realm="…",service="…",scope="…"`; quoted values may hold
    /// commas (`scope="repository:a:pull,push"`).
    fn parse(header: &str) -> Option<Self> {
        let (scheme, params) = header.trim().split_once(' ').unwrap_or((header.trim(), ""));
        if scheme.eq_ignore_ascii_case("basic") {
            return Some(Self::Basic);
        }
        if !scheme.eq_ignore_ascii_case("bearer") {
            return None;
        }
        let params = parse_auth_params(params);
        Some(Self::Bearer {
            realm: params.get("realm")?.clone(),
            service: params.get("service").cloned(),
            scope: params.get("scope").cloned(),
        })
    }
}

fn parse_auth_params(input: &str) -> HashMap<String, String> {
    let mut params = HashMap::new();
    let mut chars = input.chars().peekable();
    loop {
        while chars.next_if(|c| *c == ',' || c.is_whitespace()).is_some() {}
        let key: String = std::iter::from_fn(|| chars.next_if(|c| *c != '=')).collect();
        if key.is_empty() || chars.next() != Some('=') {
            return params;
        }
        let mut value = String::new();
        if chars.next_if_eq(&'"').is_some() {
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            value = std::iter::from_fn(|| chars.next_if(|c| *c != ',')).collect();
        }
        params.insert(key.trim().to_ascii_lowercase(), value.trim().to_owned());
    }
}

/// The value for an `Accept` header listing every manifest media type.
pub fn manifest_accept_header() -> HeaderValue {
    HeaderValue::from_str(&MANIFEST_MEDIA_TYPES.join(", ")).expect("media types are ASCII")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bearer_challenge_keeps_commas_inside_quoted_values() {
        let header = r#"Bearer realm="http://127.0.0.1:5001/token",service="testenv",scope="repository:team/app:pull,push""#;
        assert_eq!(
            Challenge::parse(header),
            Some(Challenge::Bearer {
                realm: "http://127.0.0.1:5001/token".into(),
                service: Some("testenv".into()),
                scope: Some("repository:team/app:pull,push".into()),
            })
        );
    }

    #[test]
    fn a_basic_challenge_needs_no_parameters() {
        assert_eq!(
            Challenge::parse(r#"Basic realm="testenv""#),
            Some(Challenge::Basic)
        );
        assert_eq!(Challenge::parse("Negotiate"), None);
    }

    #[test]
    fn a_bearer_challenge_without_realm_is_not_answerable() {
        assert_eq!(Challenge::parse(r#"Bearer service="x""#), None);
    }

    #[test]
    fn a_manifest_references_its_config_and_layers_by_digest_and_size() {
        let image = TestImage::random(ManifestFormat::Oci)
            .with_platform(Platform::linux_variant("arm64", "v8"));
        let config = image.config_blob();
        let manifest: serde_json::Value = serde_json::from_slice(&image.manifest(&config)).unwrap();
        assert_eq!(manifest["mediaType"], OCI_MANIFEST);
        assert_eq!(manifest["config"]["digest"], sha256_digest(&config));
        assert_eq!(manifest["config"]["size"], config.len());
        assert_eq!(
            manifest["layers"].as_array().unwrap().len(),
            image.layers.len()
        );
        assert_eq!(
            manifest["layers"][0]["digest"],
            sha256_digest(&image.layers[0])
        );
        let config: serde_json::Value = serde_json::from_slice(&config).unwrap();
        assert_eq!(config["architecture"], "arm64");
        assert_eq!(config["variant"], "v8");
        assert_eq!(config["config"]["User"], image.config.user);
    }

    #[test]
    fn two_random_images_differ_in_every_digest() {
        let a = TestImage::random(ManifestFormat::Docker);
        let b = TestImage::random(ManifestFormat::Docker);
        assert_ne!(
            sha256_digest(&a.config_blob()),
            sha256_digest(&b.config_blob())
        );
        assert_ne!(sha256_digest(&a.layers[0]), sha256_digest(&b.layers[0]));
    }
}
