//! Pull secrets and the keyring built from them: which Secrets count, how `.dockerconfigjson` and
//! `.dockercfg` payloads become [`RegistryCredential`]s, and which of those serve an image, matched as
//! the kubelet matches `imagePullSecrets`. Pure; no message or `Debug` output carries secret material.

use std::cmp::Reverse;
use std::fmt;

use base64::Engine;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use k8s_openapi::api::core::v1::Secret;
use serde_json::{Map, Value};
use thiserror::Error;

use crate::domain::credential::RegistryCredential;

/// Annotation that keeps a pull secret out of imports when its value is exactly `"true"` (as on
/// OpenShift, any other value, `"True"` included, leaves the secret in use).
pub const EXCLUDE_SECRET_ANNOTATION: &str = "openshift.io/image.excludeSecret";

/// The largest pull-secret payload read, in bytes (256 KiB). Real pull secrets are a few KiB — an
/// OpenShift cluster's global pull secret is about 3 KiB — and every parsed secret is held in
/// memory for its namespace's imports, so a payload this large is a mistake or an attack on that
/// memory. Anything larger is refused before it is parsed, with a Warning Event on the Secret. (The
/// API server's own limit, about 1 MiB for a whole Secret, would never fire.)
pub const MAX_PULL_SECRET_BYTES: usize = 256 * 1024;

/// Registry keys and similar user text are cut to this many characters in messages, so one absurd
/// key cannot blow up an Event.
const MAX_KEY_IN_MESSAGE: usize = 256;

/// The canonical host of Docker Hub image names.
const DOCKER_HUB: [&str; 2] = ["docker", "io"];

/// The legacy name of Docker Hub: an image written with it is on Docker Hub, and a pull-secret key
/// with this host alone (`https://index.docker.io/v1/`, what `docker login` writes) is the
/// kubelet's Docker Hub credential of last resort.
const DOCKER_HUB_LEGACY: [&str; 3] = ["index", "docker", "io"];

/// Go's `encoding/base64.StdEncoding`, which the kubelet uses for an `auth` that ends in `=`:
/// padding required, non-zero trailing bits allowed (Go's decoder is not strict).
const AUTH_BASE64_PADDED: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::RequireCanonical)
        .with_decode_allow_trailing_bits(true),
);

/// Go's `encoding/base64.RawStdEncoding`, which the kubelet uses for any other `auth`: no padding.
const AUTH_BASE64_UNPADDED: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::RequireNone)
        .with_decode_allow_trailing_bits(true),
);

/// The two Secret types that hold registry credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullSecretFormat {
    /// `kubernetes.io/dockerconfigjson`: key `.dockerconfigjson`, `{"auths": {"<registry>": {…}}}`.
    DockerConfigJson,
    /// `kubernetes.io/dockercfg`: key `.dockercfg`, the same registry map without the `auths` wrapper.
    DockerCfg,
}

impl PullSecretFormat {
    /// The format for a Secret `type`, or `None` when Secrets of that type are not pull secrets.
    pub fn from_secret_type(secret_type: &str) -> Option<Self> {
        [Self::DockerConfigJson, Self::DockerCfg]
            .into_iter()
            .find(|format| format.secret_type() == secret_type)
    }

    /// The Secret `type` of this format.
    pub fn secret_type(self) -> &'static str {
        match self {
            Self::DockerConfigJson => "kubernetes.io/dockerconfigjson",
            Self::DockerCfg => "kubernetes.io/dockercfg",
        }
    }

    /// The `data` key that holds the payload in Secrets of this format.
    pub fn data_key(self) -> &'static str {
        match self {
            Self::DockerConfigJson => ".dockerconfigjson",
            Self::DockerCfg => ".dockercfg",
        }
    }
}

/// Whether the Secret carries `openshift.io/image.excludeSecret: "true"` and so must not be used
/// for imports.
pub fn is_excluded(secret: &Secret) -> bool {
    secret
        .metadata
        .annotations
        .as_ref()
        .and_then(|annotations| annotations.get(EXCLUDE_SECRET_ANNOTATION))
        .is_some_and(|value| value == "true")
}

/// Whether imports may take credentials from this Secret: it is of a pull-secret type and not
/// excluded by annotation. Secrets for which this is false are never parsed.
pub fn should_use(secret: &Secret) -> bool {
    secret
        .type_
        .as_deref()
        .and_then(PullSecretFormat::from_secret_type)
        .is_some()
        && !is_excluded(secret)
}

/// A pull secret that could not be read. Every variant names the secret (`<namespace>/<name>`) and
/// the problem; none carries secret material: JSON errors keep only their position and registry keys
/// are shortened.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum KeyringError {
    /// The payload is larger than [`MAX_PULL_SECRET_BYTES`].
    #[error("pull secret {secret}: {key} is {size} bytes, more than the {limit} bytes accepted")]
    PayloadTooLarge {
        secret: String,
        key: &'static str,
        size: usize,
        limit: usize,
    },
    /// The Secret has no data, or empty data, under the key its type requires.
    #[error("pull secret {secret} has no data under {key}")]
    MissingData { secret: String, key: &'static str },
    /// The payload is not JSON (or not UTF-8).
    #[error("pull secret {secret}: {key} is not valid JSON (line {line}, column {column})")]
    InvalidJson {
        secret: String,
        key: &'static str,
        line: usize,
        column: usize,
    },
    /// The payload is JSON but not shaped like a Docker config.
    #[error("pull secret {secret}: {key} {problem}")]
    UnexpectedShape {
        secret: String,
        key: &'static str,
        problem: &'static str,
    },
    /// The value for one registry is not a JSON object.
    #[error("pull secret {secret}: the entry for registry {registry:?} is not a JSON object")]
    EntryNotAnObject { secret: String, registry: String },
    /// A credential field of one registry entry is not a string.
    #[error("pull secret {secret}: field {field} of registry {registry:?} is not a string")]
    FieldNotString {
        secret: String,
        registry: String,
        field: &'static str,
    },
    /// `auth` of one registry entry is not base64.
    #[error("pull secret {secret}: auth of registry {registry:?} is not base64")]
    AuthNotBase64 { secret: String, registry: String },
    /// `auth` of one registry entry decodes to bytes that are not UTF-8.
    #[error("pull secret {secret}: auth of registry {registry:?} does not decode to UTF-8 text")]
    AuthNotUtf8 { secret: String, registry: String },
    /// `auth` of one registry entry decodes to text without the `:` between user and password.
    #[error("pull secret {secret}: auth of registry {registry:?} is not base64 of user:password")]
    AuthWithoutColon { secret: String, registry: String },
}

impl KeyringError {
    /// The PascalCase reason for conditions, Events and metric labels.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::PayloadTooLarge { .. } => "PullSecretTooLarge",
            Self::MissingData { .. }
            | Self::InvalidJson { .. }
            | Self::UnexpectedShape { .. }
            | Self::EntryNotAnObject { .. }
            | Self::FieldNotString { .. }
            | Self::AuthNotBase64 { .. }
            | Self::AuthNotUtf8 { .. }
            | Self::AuthWithoutColon { .. } => "MalformedPullSecret",
        }
    }

    /// The secret the error is about, as `<namespace>/<name>`.
    pub fn secret(&self) -> &str {
        match self {
            Self::PayloadTooLarge { secret, .. }
            | Self::MissingData { secret, .. }
            | Self::InvalidJson { secret, .. }
            | Self::UnexpectedShape { secret, .. }
            | Self::EntryNotAnObject { secret, .. }
            | Self::FieldNotString { secret, .. }
            | Self::AuthNotBase64 { secret, .. }
            | Self::AuthNotUtf8 { secret, .. }
            | Self::AuthWithoutColon { secret, .. } => secret,
        }
    }
}

/// The usable content of one pull secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullSecret {
    /// Namespace of the Secret.
    pub namespace: String,
    /// Name of the Secret.
    pub name: String,
    /// One entry per registry key that carries a credential, in key order. Keys whose entry has no
    /// user name, password or identity token (e.g. `{}` left by a credential helper) are dropped.
    pub entries: Vec<PullSecretEntry>,
    /// Keys that carry a credential but name no registry (`host[:port][/path]` after normalisation),
    /// shortened for messages. The kubelet ignores such keys too; they are listed so the caller can
    /// say so in an Event. Registry keys are not secret.
    pub ignored_keys: Vec<String>,
}

/// One registry key of a pull secret and the credential it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullSecretEntry {
    /// The key as written in the secret, e.g. `https://index.docker.io/v1/`.
    pub key: String,
    /// The key, normalised for matching.
    pub pattern: RegistryPattern,
    /// The credential; its `source` reads `<namespace>/<secret>, key <key>`.
    pub credential: RegistryCredential,
}

impl PullSecret {
    /// Reads a pull secret from its Secret, or `Ok(None)` when [`should_use`] says the Secret is not
    /// for imports (another type, or excluded by annotation). A missing namespace or name reads as
    /// empty. Only `data` is read: the API server never returns `stringData`.
    pub fn from_secret(secret: &Secret) -> Result<Option<Self>, KeyringError> {
        if is_excluded(secret) {
            return Ok(None);
        }
        let Some(format) = secret
            .type_
            .as_deref()
            .and_then(PullSecretFormat::from_secret_type)
        else {
            return Ok(None);
        };
        let namespace = secret.metadata.namespace.as_deref().unwrap_or_default();
        let name = secret.metadata.name.as_deref().unwrap_or_default();
        let payload = secret
            .data
            .as_ref()
            .and_then(|data| data.get(format.data_key()))
            .map(|bytes| bytes.0.as_slice())
            .unwrap_or_default();
        Self::parse(namespace, name, format, payload).map(Some)
    }

    /// Parses the payload of a pull secret (the bytes under [`PullSecretFormat::data_key`]).
    ///
    /// As in the kubelet, a non-empty `auth` (base64 of `user:password`, split at the first `:`)
    /// replaces `username` and `password`; without it they are taken as written. `identitytoken` is
    /// kept beside them. Field names match case-insensitively, as Go's JSON decoding does. `email`
    /// must be a string, as in the kubelet, but is not used; other fields (`registrytoken`, …) are
    /// ignored. Any malformed part fails the whole secret.
    pub fn parse(
        namespace: &str,
        name: &str,
        format: PullSecretFormat,
        payload: &[u8],
    ) -> Result<Self, KeyringError> {
        let secret = format!("{namespace}/{name}");
        let key = format.data_key();
        if payload.is_empty() {
            return Err(KeyringError::MissingData { secret, key });
        }
        if payload.len() > MAX_PULL_SECRET_BYTES {
            return Err(KeyringError::PayloadTooLarge {
                secret,
                key,
                size: payload.len(),
                limit: MAX_PULL_SECRET_BYTES,
            });
        }
        // serde_json's messages can quote the offending value (a password in the wrong place), so
        // only the position of the error is kept.
        let document: Value =
            serde_json::from_slice(payload).map_err(|error| KeyringError::InvalidJson {
                secret: secret.clone(),
                key,
                line: error.line(),
                column: error.column(),
            })?;
        let shape = |problem| KeyringError::UnexpectedShape {
            secret: secret.clone(),
            key,
            problem,
        };
        let Value::Object(document) = document else {
            return Err(shape("is not a JSON object"));
        };
        let registries = match format {
            PullSecretFormat::DockerCfg => document,
            PullSecretFormat::DockerConfigJson => match field(&document, "auths") {
                Some(Value::Object(auths)) => auths.clone(),
                None | Some(Value::Null) => return Err(shape("has no \"auths\" object")),
                Some(_) => return Err(shape("has an \"auths\" that is not a JSON object")),
            },
        };

        let mut entries = Vec::new();
        let mut ignored_keys = Vec::new();
        for (registry, value) in &registries {
            let Some(credential) = parse_entry(&secret, registry, value)? else {
                continue;
            };
            match RegistryPattern::parse(registry) {
                Some(pattern) => entries.push(PullSecretEntry {
                    key: registry.clone(),
                    pattern,
                    credential: RegistryCredential {
                        source: format!("{secret}, key {}", shorten(registry)),
                        ..credential
                    },
                }),
                None => ignored_keys.push(shorten(registry)),
            }
        }
        Ok(Self {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            entries,
            ignored_keys,
        })
    }
}

/// A field of a JSON object, matched as Go's `encoding/json` does: the exact name first, then any
/// case-insensitive match.
fn field<'a>(object: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    object.get(name).or_else(|| {
        object
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value)
    })
}

/// The credential of one registry entry, or `None` when the entry carries none.
fn parse_entry(
    secret: &str,
    registry: &str,
    value: &Value,
) -> Result<Option<RegistryCredential>, KeyringError> {
    let object = match value {
        Value::Object(object) => object,
        Value::Null => return Ok(None),
        _ => {
            return Err(KeyringError::EntryNotAnObject {
                secret: secret.to_owned(),
                registry: shorten(registry),
            });
        }
    };
    let text = |name: &'static str| -> Result<String, KeyringError> {
        match field(object, name) {
            None | Some(Value::Null) => Ok(String::new()),
            Some(Value::String(text)) => Ok(text.clone()),
            Some(_) => Err(KeyringError::FieldNotString {
                secret: secret.to_owned(),
                registry: shorten(registry),
                field: name,
            }),
        }
    };
    let mut username = text("username")?;
    let mut password = text("password")?;
    let identity_token = Some(text("identitytoken")?).filter(|token| !token.is_empty());
    // The kubelet decodes `email` as a string and fails the entry otherwise; it is not used.
    text("email")?;
    let auth = text("auth")?;
    if !auth.is_empty() {
        (username, password) = decode_auth(secret, registry, &auth)?;
    }
    if username.is_empty() && password.is_empty() && identity_token.is_none() {
        return Ok(None);
    }
    Ok(Some(RegistryCredential {
        username,
        password,
        identity_token,
        source: String::new(),
    }))
}

/// Splits `auth` (base64 of `user:password`) into its two parts, decoded as the kubelet decodes it:
/// padded standard base64 when the value ends in `=` (surrounding white space aside), unpadded
/// otherwise. Line breaks anywhere are skipped, as Go's decoder skips them; any other white space is
/// an error.
fn decode_auth(secret: &str, registry: &str, auth: &str) -> Result<(String, String), KeyringError> {
    let names = || (secret.to_owned(), shorten(registry));
    let engine = if auth.trim().ends_with('=') {
        &AUTH_BASE64_PADDED
    } else {
        &AUTH_BASE64_UNPADDED
    };
    let compact: String = auth.chars().filter(|c| !matches!(c, '\r' | '\n')).collect();
    let Ok(bytes) = engine.decode(compact) else {
        let (secret, registry) = names();
        return Err(KeyringError::AuthNotBase64 { secret, registry });
    };
    let Ok(text) = String::from_utf8(bytes) else {
        let (secret, registry) = names();
        return Err(KeyringError::AuthNotUtf8 { secret, registry });
    };
    let Some((username, password)) = text.split_once(':') else {
        let (secret, registry) = names();
        return Err(KeyringError::AuthWithoutColon { secret, registry });
    };
    Ok((username.to_owned(), password.to_owned()))
}

/// User text cut to a length fit for a message.
fn shorten(text: &str) -> String {
    super::text::shorten(text, MAX_KEY_IN_MESSAGE)
}

/// A registry key of a pull secret, normalised as the kubelet normalises it: `host[:port][/path]`,
/// where each host label may hold `*` globs.
///
/// An `https://` or `http://` scheme is dropped, and so is a leading `/v1/` or `/v2/` of the path
/// (`https://quay.io/v2/team` is `quay.io/team`, `https://index.docker.io/v1/` the host alone). The
/// rest of the path is kept as written, a lone `/` aside, and matched as a plain string prefix:
/// `quay.io/team` serves `quay.io/teamx/app` too, `quay.io/team/` only what lies below
/// `quay.io/team/`. Docker Hub spellings are not folded: `docker.io` keys serve Docker Hub images,
/// `index.docker.io` alone serves them only as a last resort (see [`Keyring::lookup`]), and
/// `registry-1.docker.io` or `index.docker.io/<path>` keys serve no Docker Hub image, as in the
/// kubelet. Unlike the kubelet, the scheme may be written in any case and the host is lower-cased,
/// since host names are case-insensitive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryPattern {
    host: Vec<String>,
    port: Option<u16>,
    /// Empty for a key that names a host alone, else the path from its leading `/`.
    path: String,
}

impl RegistryPattern {
    /// Normalises a registry key, or `None` when it names no registry (empty host, a bad port,
    /// characters a host cannot hold, user info, a query).
    pub fn parse(key: &str) -> Option<Self> {
        let key = key.trim();
        let without_scheme = ["https://", "http://"]
            .iter()
            .find_map(|scheme| {
                key.get(..scheme.len())
                    .filter(|head| head.eq_ignore_ascii_case(scheme))
                    .map(|_| &key[scheme.len()..])
            })
            .unwrap_or(key);
        let (authority, path) = match without_scheme.find('/') {
            Some(slash) => without_scheme.split_at(slash),
            None => (without_scheme, ""),
        };
        if path.contains(['?', '#', ' ', '\t', '@']) {
            return None;
        }
        // `/v1/team` becomes `/team`: the kubelet drops three characters and keeps the slash.
        let path = match path.get(..4) {
            Some("/v1/" | "/v2/") => &path[3..],
            _ => path,
        };
        let path = if path == "/" { "" } else { path };
        let (host, port) = split_authority(authority, true)?;
        Some(Self {
            host,
            port,
            path: path.to_owned(),
        })
    }

    /// Whether this key serves the image `image` (see [`Keyring::lookup`] for its form) as the
    /// kubelet matches a key: label counts equal and every host label matched by its glob, ports
    /// equal (no port matches only no port), and the key's path a prefix of the image's path. The
    /// Docker Hub last resort of `index.docker.io` keys is the keyring's, not the key's.
    pub fn matches(&self, image: &str) -> bool {
        ImageLocation::parse(image).is_some_and(|image| self.matches_location(&image))
    }

    fn matches_location(&self, image: &ImageLocation) -> bool {
        self.port == image.port
            && self.host.len() == image.host.len()
            && self
                .host
                .iter()
                .zip(&image.host)
                .all(|(glob, label)| label_matches(glob, label))
            && image.path.starts_with(&self.path)
    }

    /// Whether this is the key the kubelet falls back to for Docker Hub images that no key
    /// matches: `index.docker.io` with neither port nor path, as `docker login` writes it.
    fn is_docker_hub_login(&self) -> bool {
        self.port.is_none() && self.path.is_empty() && self.host == DOCKER_HUB_LEGACY
    }
}

impl fmt::Display for RegistryPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.host.join("."))?;
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        f.write_str(&self.path)
    }
}

/// An image name taken apart for matching, as the kubelet sees it once it has normalised the name:
/// a Docker Hub short name (`nginx`, `bitnami/nginx`) is expanded, `index.docker.io` reads as
/// `docker.io`, and a tag or digest is dropped.
struct ImageLocation {
    host: Vec<String>,
    port: Option<u16>,
    /// Empty, or the repository path from its leading `/`.
    path: String,
}

impl ImageLocation {
    fn parse(image: &str) -> Option<Self> {
        let image = image.trim();
        let image = image.split_once('@').map_or(image, |(name, _)| name);
        let (first, rest) = match image.find('/') {
            Some(slash) => image.split_at(slash),
            None => (image, ""),
        };
        // As the Docker reference grammar decides, except that a lone component that looks like a
        // host (`quay.io`, `localhost:5000`) is one, as the kubelet's own lookup reads it.
        let names_registry = if rest.is_empty() {
            let host = first.split_once(':').map_or(first, |(host, _)| host);
            host.contains('.') || host == "localhost"
        } else {
            first.contains(['.', ':'])
                || first == "localhost"
                || first.bytes().any(|b| b.is_ascii_uppercase())
        };
        if !names_registry {
            return Self::docker_hub_short_name(without_tag(image));
        }
        let (host, port) = split_authority(first, false)?;
        let mut location = Self {
            host,
            port,
            path: without_tag(rest).to_owned(),
        };
        if location.port.is_none() && location.host == DOCKER_HUB_LEGACY {
            location.host = DOCKER_HUB.map(str::to_owned).to_vec();
        }
        if location.is_docker_hub()
            && !location.path.is_empty()
            && !location.path[1..].contains('/')
        {
            location.path = format!("/library{}", location.path);
        }
        Some(location)
    }

    /// `nginx` as `docker.io/library/nginx`, `bitnami/nginx` as `docker.io/bitnami/nginx`.
    fn docker_hub_short_name(name: &str) -> Option<Self> {
        let valid = !name.is_empty()
            && !name.starts_with('/')
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'/'));
        if !valid {
            return None;
        }
        let path = if name.contains('/') {
            format!("/{name}")
        } else {
            format!("/library/{name}")
        };
        Some(Self {
            host: DOCKER_HUB.map(str::to_owned).to_vec(),
            port: None,
            path,
        })
    }

    /// Whether the image is on Docker Hub.
    fn is_docker_hub(&self) -> bool {
        self.port.is_none() && self.host == DOCKER_HUB
    }
}

/// A repository path without its `:tag`, if it has one.
fn without_tag(path: &str) -> &str {
    match path.rfind(':') {
        Some(colon) if !path[colon..].contains('/') => &path[..colon],
        _ => path,
    }
}

/// Splits `host[:port]` (or `[ipv6][:port]`) into lower-cased host labels and the port. `*` is
/// accepted in labels only when `globs` is set.
fn split_authority(authority: &str, globs: bool) -> Option<(Vec<String>, Option<u16>)> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (address, after) = rest.split_once(']')?;
        let valid = !address.is_empty()
            && address
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.');
        if !valid {
            return None;
        }
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':')?),
        };
        (vec![format!("[{}]", address.to_ascii_lowercase())], port)
    } else {
        let (host, port) = match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        };
        let labels: Vec<String> = host.split('.').map(str::to_ascii_lowercase).collect();
        let valid = labels.iter().all(|label| {
            !label.is_empty()
                && label.bytes().all(|b| {
                    b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || (globs && b == b'*')
                })
        });
        if !valid {
            return None;
        }
        (labels, port)
    };
    let port = match port {
        None => None,
        Some(digits) if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) => {
            Some(digits.parse::<u16>().ok().filter(|&p| p != 0)?)
        }
        Some(_) => return None,
    };
    Some((host, port))
}

/// Whether one host label matches a glob label in which `*` stands for any run of characters,
/// including none (Go's `filepath.Match` on one label, as the kubelet uses it, less `?` and `[…]`,
/// which cannot appear in a host name anyway).
fn label_matches(glob: &str, label: &str) -> bool {
    let (glob, label) = (glob.as_bytes(), label.as_bytes());
    let (mut g, mut l) = (0, 0);
    // Where the last `*` was and which label position it currently swallows up to.
    let mut backtrack: Option<(usize, usize)> = None;
    while l < label.len() {
        if g < glob.len() && glob[g] == b'*' {
            backtrack = Some((g, l));
            g += 1;
        } else if g < glob.len() && glob[g] == label[l] {
            g += 1;
            l += 1;
        } else if let Some((star, swallowed)) = backtrack {
            backtrack = Some((star, swallowed + 1));
            g = star + 1;
            l = swallowed + 1;
        } else {
            return false;
        }
    }
    glob[g..].iter().all(|&b| b == b'*')
}

/// The credentials of one namespace's pull secrets, ready to be matched against image names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Keyring {
    /// Entries in the kubelet's order: normalised keys in reverse lexical order (so `quay.io/team`
    /// comes before `quay.io`, and `quay.io` before `*.io`), ties broken by namespace/secret name
    /// and key as written, so the order does not depend on the order the secrets were listed in.
    entries: Vec<KeyringEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct KeyringEntry {
    secret: String,
    key: String,
    pattern: RegistryPattern,
    credential: RegistryCredential,
}

impl Keyring {
    /// A keyring of the pull secrets of `namespace`. Secrets of any other namespace are left out:
    /// credentials are never shared across namespaces, even if a caller mixes them up.
    pub fn new(namespace: &str, secrets: impl IntoIterator<Item = PullSecret>) -> Self {
        let mut entries: Vec<KeyringEntry> = secrets
            .into_iter()
            .filter(|secret| secret.namespace == namespace)
            .flat_map(|secret| {
                let source = format!("{}/{}", secret.namespace, secret.name);
                secret.entries.into_iter().map(move |entry| KeyringEntry {
                    secret: source.clone(),
                    key: entry.key,
                    pattern: entry.pattern,
                    credential: entry.credential,
                })
            })
            .collect();
        entries.sort_by_cached_key(|entry| {
            (
                Reverse(entry.pattern.to_string()),
                entry.secret.clone(),
                entry.key.clone(),
            )
        });
        Self { entries }
    }

    /// How many registry entries the keyring holds.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the keyring holds no entry (imports go anonymous).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every credential whose key serves `image`, in the kubelet's order (see [`Keyring`]); the
    /// caller tries them in order, as the kubelet does. When no key matches a Docker Hub image,
    /// the `index.docker.io` keys (host alone, as `docker login` writes them) serve it, as in the
    /// kubelet. A credential that appears under several keys or secrets is returned once, at its
    /// first place. Empty when none applies (pull anonymously).
    ///
    /// `image` is the repository name, canonically `host[:port]/path` such as
    /// `docker.io/library/nginx` or `127.0.0.1:5000/team/app`. Docker Hub short names (`nginx`,
    /// `bitnami/nginx`) and `index.docker.io` are read as the kubelet's name normalisation reads
    /// them; `localhost/app` is the registry `localhost`, never Docker Hub. A trailing tag or digest
    /// is ignored. A name that cannot be taken apart matches nothing.
    pub fn lookup(&self, image: &str) -> Vec<RegistryCredential> {
        let Some(image) = ImageLocation::parse(image) else {
            return Vec::new();
        };
        let mut serving: Vec<&KeyringEntry> = self
            .entries
            .iter()
            .filter(|entry| entry.pattern.matches_location(&image))
            .collect();
        if serving.is_empty() && image.is_docker_hub() {
            serving = self
                .entries
                .iter()
                .filter(|entry| entry.pattern.is_docker_hub_login())
                .collect();
        }
        let mut found: Vec<RegistryCredential> = Vec::new();
        for entry in serving {
            let duplicate = found.iter().any(|seen| {
                seen.username == entry.credential.username
                    && seen.password == entry.credential.password
                    && seen.identity_token == entry.credential.identity_token
            });
            if !duplicate {
                found.push(entry.credential.clone());
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose;
    use k8s_openapi::ByteString;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use serde_json::json;
    use std::collections::BTreeMap;

    const PASSWORD: &str = "hunter2-s3cret";

    fn b64(text: &str) -> String {
        general_purpose::STANDARD.encode(text)
    }

    fn secret(
        name: &str,
        secret_type: &str,
        key: &str,
        payload: &[u8],
        annotations: &[(&str, &str)],
    ) -> Secret {
        Secret {
            metadata: ObjectMeta {
                namespace: Some("team-a".into()),
                name: Some(name.into()),
                annotations: Some(
                    annotations
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                )
                .filter(|a: &BTreeMap<_, _>| !a.is_empty()),
                ..ObjectMeta::default()
            },
            type_: Some(secret_type.into()),
            data: Some(BTreeMap::from([(
                key.to_owned(),
                ByteString(payload.to_vec()),
            )])),
            ..Secret::default()
        }
    }

    fn config_json(auths: Value) -> Vec<u8> {
        serde_json::to_vec(&json!({ "auths": auths })).unwrap()
    }

    fn parse_json(payload: &[u8]) -> Result<PullSecret, KeyringError> {
        PullSecret::parse(
            "team-a",
            "pull",
            PullSecretFormat::DockerConfigJson,
            payload,
        )
    }

    /// (username, password, identity token) of a credential.
    type Triple = (String, String, Option<String>);

    /// The triple of every entry, in order.
    fn triples(secret: &PullSecret) -> Vec<Triple> {
        secret
            .entries
            .iter()
            .map(|e| {
                (
                    e.credential.username.clone(),
                    e.credential.password.clone(),
                    e.credential.identity_token.clone(),
                )
            })
            .collect()
    }

    fn triple(user: &str, password: &str, token: Option<&str>) -> Triple {
        (user.into(), password.into(), token.map(Into::into))
    }

    #[test]
    fn registry_entries_yield_credentials_as_the_kubelet_reads_them() {
        let long_auth = b64("alice:a-longer-password");
        let wrapped_auth = format!("{}\n{}", &long_auth[..8], &long_auth[8..]);
        let cases: Vec<(&str, Value, Triple)> = vec![
            (
                "auth alone gives user and password",
                json!({ "auth": b64(&format!("alice:{PASSWORD}")) }),
                triple("alice", PASSWORD, None),
            ),
            (
                "auth wins over username and password",
                json!({ "auth": b64("alice:from-auth"), "username": "bob", "password": "other" }),
                triple("alice", "from-auth", None),
            ),
            (
                "username and password alone are used as written",
                json!({ "username": "bob", "password": PASSWORD, "email": "bob@example.com" }),
                triple("bob", PASSWORD, None),
            ),
            (
                "an empty auth leaves username and password alone",
                json!({ "auth": "", "username": "bob", "password": PASSWORD }),
                triple("bob", PASSWORD, None),
            ),
            (
                "the password keeps every colon after the first",
                json!({ "auth": b64("alice:pa:ss:word") }),
                triple("alice", "pa:ss:word", None),
            ),
            (
                "an identity token is kept beside the user name",
                json!({ "username": "00000000-0000-0000-0000-000000000000", "identitytoken": "refresh-me" }),
                triple(
                    "00000000-0000-0000-0000-000000000000",
                    "",
                    Some("refresh-me"),
                ),
            ),
            (
                "an identity token alone is a credential",
                json!({ "identitytoken": "refresh-me" }),
                triple("", "", Some("refresh-me")),
            ),
            (
                "field names match case-insensitively like Go's JSON decoding",
                json!({ "Username": "carol", "Password": PASSWORD, "IdentityToken": "t" }),
                triple("carol", PASSWORD, Some("t")),
            ),
            (
                "unpadded auth is accepted",
                json!({ "auth": b64("ab:c").trim_end_matches('=') }),
                triple("ab", "c", None),
            ),
            (
                "auth wrapped over lines is accepted as Go's decoder skips line breaks",
                json!({ "auth": wrapped_auth }),
                triple("alice", "a-longer-password", None),
            ),
        ];
        for (name, entry, expected) in cases {
            let parsed = parse_json(&config_json(json!({ "quay.io": entry })))
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(triples(&parsed), vec![expected], "{name}");
            assert_eq!(parsed.entries[0].key, "quay.io", "{name}");
            assert_eq!(
                parsed.entries[0].credential.source, "team-a/pull, key quay.io",
                "{name}"
            );
        }
    }

    #[test]
    fn dockercfg_secret_holds_the_registry_map_without_auths_wrapper() {
        let payload = serde_json::to_vec(&json!({
            "registry.example.com": { "auth": b64("alice:one") },
            "https://index.docker.io/v1/": { "username": "bob", "password": "two" },
        }))
        .unwrap();
        let secret = secret(
            "legacy",
            "kubernetes.io/dockercfg",
            ".dockercfg",
            &payload,
            &[],
        );
        let parsed = PullSecret::from_secret(&secret).unwrap().unwrap();
        assert_eq!(
            (parsed.namespace.as_str(), parsed.name.as_str()),
            ("team-a", "legacy")
        );
        assert_eq!(
            triples(&parsed),
            vec![triple("bob", "two", None), triple("alice", "one", None)]
        );
        assert_eq!(parsed.entries[0].pattern.to_string(), "index.docker.io");
    }

    #[test]
    fn dockerconfigjson_secret_is_read_from_its_data_key() {
        let payload = config_json(json!({ "ghcr.io/org": { "auth": b64("alice:one") } }));
        let secret = secret(
            "pull",
            "kubernetes.io/dockerconfigjson",
            ".dockerconfigjson",
            &payload,
            &[],
        );
        let parsed = PullSecret::from_secret(&secret).unwrap().unwrap();
        assert_eq!(triples(&parsed), vec![triple("alice", "one", None)]);
        assert_eq!(parsed.entries[0].pattern.to_string(), "ghcr.io/org");
    }

    #[test]
    fn entries_without_any_credential_are_dropped() {
        let parsed = parse_json(&config_json(json!({
            "quay.io": {},
            "ghcr.io": null,
            "docker.io": { "email": "x@example.com", "auth": "" },
            "registry.example.com": { "username": "alice", "password": "one" },
        })))
        .unwrap();
        assert_eq!(parsed.entries.len(), 1);
        assert_eq!(parsed.entries[0].key, "registry.example.com");
    }

    #[test]
    fn keys_that_name_no_registry_are_listed_and_the_other_entries_kept() {
        let parsed = parse_json(&config_json(json!({
            "": { "auth": b64("a:b") },
            "not a host": { "auth": b64("a:b") },
            "example.com:http": { "auth": b64("a:b") },
            "quay.io": { "auth": b64("a:b") },
        })))
        .unwrap();
        assert_eq!(parsed.entries.len(), 1);
        assert_eq!(parsed.entries[0].key, "quay.io");
        assert_eq!(
            parsed.ignored_keys,
            vec!["", "example.com:http", "not a host"]
        );
    }

    #[test]
    fn only_the_two_docker_secret_types_are_pull_secrets() {
        let payload = config_json(json!({ "quay.io": { "auth": b64("a:b") } }));
        for (secret_type, used) in [
            ("kubernetes.io/dockerconfigjson", true),
            ("kubernetes.io/dockercfg", true),
            ("Opaque", false),
            ("kubernetes.io/service-account-token", false),
            ("kubernetes.io/basic-auth", false),
        ] {
            let secret = secret("s", secret_type, ".dockerconfigjson", &payload, &[]);
            assert_eq!(should_use(&secret), used, "{secret_type}");
            if !used {
                assert_eq!(PullSecret::from_secret(&secret), Ok(None), "{secret_type}");
            }
        }
        let mut untyped = secret("s", "", ".dockerconfigjson", &payload, &[]);
        untyped.type_ = None;
        assert!(!should_use(&untyped));
        assert_eq!(PullSecret::from_secret(&untyped), Ok(None));
    }

    #[test]
    fn exclude_secret_annotation_keeps_a_secret_out_only_when_exactly_true() {
        let payload = config_json(json!({ "quay.io": { "auth": b64("a:b") } }));
        for (value, excluded) in [
            (Some("true"), true),
            (Some("True"), false),
            (Some("false"), false),
            (Some(""), false),
            (None, false),
        ] {
            let annotations: Vec<(&str, &str)> = value
                .map(|v| vec![(EXCLUDE_SECRET_ANNOTATION, v)])
                .unwrap_or_default();
            let secret = secret(
                "s",
                "kubernetes.io/dockerconfigjson",
                ".dockerconfigjson",
                &payload,
                &annotations,
            );
            assert_eq!(is_excluded(&secret), excluded, "{value:?}");
            assert_eq!(should_use(&secret), !excluded, "{value:?}");
            assert_eq!(
                PullSecret::from_secret(&secret).unwrap().is_some(),
                !excluded,
                "{value:?}"
            );
        }
    }

    #[test]
    fn malformed_secrets_fail_with_errors_that_name_the_secret_but_not_the_password() {
        let too_large = {
            let mut payload = config_json(json!({ "quay.io": { "password": PASSWORD } }));
            payload.resize(MAX_PULL_SECRET_BYTES + 1, b' ');
            payload
        };
        let cases: Vec<(&str, Vec<u8>, &str)> = vec![
            (
                "truncated JSON",
                format!(r#"{{"auths": {{"quay.io": {{"password": "{PASSWORD}""#).into_bytes(),
                "InvalidJson",
            ),
            (
                "not JSON at all",
                format!("user:{PASSWORD}").into_bytes(),
                "InvalidJson",
            ),
            (
                "not UTF-8",
                b"{\"auths\": {\"q\xff\": {}}}".to_vec(),
                "InvalidJson",
            ),
            (
                "a JSON array instead of an object",
                serde_json::to_vec(&json!([PASSWORD])).unwrap(),
                "UnexpectedShape",
            ),
            (
                "auths of the wrong type",
                serde_json::to_vec(&json!({ "auths": PASSWORD })).unwrap(),
                "UnexpectedShape",
            ),
            (
                "a dockercfg map in a dockerconfigjson secret",
                serde_json::to_vec(&json!({ "quay.io": { "password": PASSWORD } })).unwrap(),
                "UnexpectedShape",
            ),
            (
                "a registry entry that is a string",
                config_json(json!({ "quay.io": PASSWORD })),
                "EntryNotAnObject",
            ),
            (
                "a password that is a number",
                config_json(json!({ "quay.io": { "username": PASSWORD, "password": 42 } })),
                "FieldNotString",
            ),
            (
                "auth that is not base64",
                config_json(json!({ "quay.io": { "auth": format!("alice:{PASSWORD}") } })),
                "AuthNotBase64",
            ),
            (
                "auth without a colon",
                config_json(json!({ "quay.io": { "auth": b64(&format!("alice{PASSWORD}")) } })),
                "AuthWithoutColon",
            ),
            (
                "auth that decodes to bytes that are not text",
                config_json(json!({ "quay.io": {
                    "auth": general_purpose::STANDARD.encode(b"alice:\xff\xfe"),
                    "password": PASSWORD,
                } })),
                "AuthNotUtf8",
            ),
            ("an empty payload", Vec::new(), "MissingData"),
            (
                "a payload over the size limit",
                too_large,
                "PayloadTooLarge",
            ),
        ];
        for (name, payload, variant) in cases {
            let error = parse_json(&payload).expect_err(name);
            let debug = format!("{error:?}");
            assert!(debug.starts_with(variant), "{name}: {debug}");
            let message = error.to_string();
            assert!(message.contains("team-a/pull"), "{name}: {message}");
            assert_eq!(error.secret(), "team-a/pull", "{name}");
            assert!(!message.contains(PASSWORD), "{name}: {message}");
            assert!(!debug.contains(PASSWORD), "{name}: {debug}");
            let reason = if variant == "PayloadTooLarge" {
                "PullSecretTooLarge"
            } else {
                "MalformedPullSecret"
            };
            assert_eq!(error.reason(), reason, "{name}");
        }
    }

    #[test]
    fn a_pull_secret_type_without_its_data_key_is_malformed() {
        let secret = secret(
            "pull",
            "kubernetes.io/dockerconfigjson",
            ".dockercfg",
            b"{}",
            &[],
        );
        let error = PullSecret::from_secret(&secret).unwrap_err();
        assert_eq!(
            error,
            KeyringError::MissingData {
                secret: "team-a/pull".into(),
                key: ".dockerconfigjson"
            }
        );
        assert_eq!(error.reason(), "MalformedPullSecret");
    }

    #[test]
    fn registry_keys_are_normalised_like_the_kubelet_does() {
        for (key, normalised) in [
            ("quay.io", Some("quay.io")),
            ("https://quay.io", Some("quay.io")),
            ("HTTP://Quay.IO/", Some("quay.io")),
            ("https://quay.io/v2/", Some("quay.io")),
            ("https://quay.io/v1/", Some("quay.io")),
            // The kubelet keeps the path as written, a lone `/` aside.
            ("quay.io/team/", Some("quay.io/team/")),
            ("quay.io/team//", Some("quay.io/team//")),
            ("https://quay.io/v2/team", Some("quay.io/team")),
            ("https://quay.io/v1//", Some("quay.io//")),
            ("quay.io/v1", Some("quay.io/v1")),
            // Docker Hub spellings stay apart, as in the kubelet.
            ("https://index.docker.io/v1/", Some("index.docker.io")),
            ("index.docker.io", Some("index.docker.io")),
            ("registry-1.docker.io/org", Some("registry-1.docker.io/org")),
            ("docker.io:443", Some("docker.io:443")),
            ("*.example.com", Some("*.example.com")),
            ("127.0.0.1:5000", Some("127.0.0.1:5000")),
            ("[::1]:5000/team", Some("[::1]:5000/team")),
            (" quay.io ", Some("quay.io")),
            ("", None),
            ("https://", None),
            ("quay.io:", None),
            ("quay.io:99999", None),
            ("quay..io", None),
            ("user@quay.io", None),
            ("quay.io/team?x=1", None),
            ("[zz]:5000", None),
        ] {
            assert_eq!(
                RegistryPattern::parse(key).map(|p| p.to_string()),
                normalised.map(str::to_owned),
                "{key:?}"
            );
        }
    }

    #[test]
    fn keys_match_images_by_host_glob_equal_port_and_path_prefix() {
        let cases = [
            // (key, image, matches, why)
            (
                "example.com",
                "example.com/team/app",
                true,
                "a bare host serves every repository",
            ),
            ("example.com", "other.com/team/app", false, "another host"),
            (
                "Example.COM",
                "example.com/app",
                true,
                "hosts compare case-insensitively",
            ),
            (
                "https://example.com/v2/",
                "example.com/app",
                true,
                "scheme and /v2/ are dropped",
            ),
            (
                "*.example.com",
                "a.example.com/app",
                true,
                "a glob label matches one label",
            ),
            (
                "*.example.com",
                "example.com/app",
                false,
                "a glob needs as many labels",
            ),
            (
                "*.example.com",
                "a.b.example.com/app",
                false,
                "a glob label never spans a dot",
            ),
            (
                "a.*.com",
                "a.example.com/app",
                true,
                "a glob may stand in the middle",
            ),
            (
                "reg*.example.com",
                "registry.example.com/app",
                true,
                "a glob may be part of a label",
            ),
            (
                "reg*.example.com",
                "quay.example.com/app",
                false,
                "the literal part must match",
            ),
            (
                "*",
                "localhost/app",
                true,
                "a lone glob matches a one-label host",
            ),
            (
                "example.com:5000",
                "example.com/app",
                false,
                "a key with a port needs that port",
            ),
            (
                "example.com",
                "example.com:5000/app",
                false,
                "a key without port needs none",
            ),
            (
                "example.com:5000",
                "example.com:5000/app",
                true,
                "equal ports",
            ),
            (
                "example.com:5000",
                "example.com:5001/app",
                false,
                "different ports",
            ),
            (
                "*.example.com:5000",
                "a.example.com:5000/app",
                true,
                "glob and port together",
            ),
            (
                "127.0.0.1:5000",
                "127.0.0.1:5000/team/app",
                true,
                "an address and port",
            ),
            (
                "[::1]:5000",
                "[::1]:5000/app",
                true,
                "an IPv6 address and port",
            ),
            (
                "example.com/team",
                "example.com/team/app",
                true,
                "a path prefix",
            ),
            (
                "example.com/team",
                "example.com/team",
                true,
                "the whole repository",
            ),
            (
                "example.com/team",
                "example.com/teamx/app",
                true,
                "the path is a plain string prefix, as in the kubelet",
            ),
            (
                "example.com/team/",
                "example.com/teamx/app",
                false,
                "a trailing / asks for a whole segment",
            ),
            (
                "example.com/team/",
                "example.com/team/app",
                true,
                "a trailing / serves what lies below",
            ),
            (
                "example.com/team/",
                "example.com/team",
                false,
                "a trailing / is part of the prefix",
            ),
            (
                "example.com/team/app",
                "example.com/team",
                false,
                "longer than the image",
            ),
            (
                "example.com/team",
                "example.com/other/team",
                false,
                "prefix, not substring",
            ),
            (
                "example.com/team",
                "example.com/team/app:1.0",
                true,
                "a tag is ignored",
            ),
            (
                "example.com/team/app",
                "example.com/team/app@sha256:abc",
                true,
                "a digest is ignored",
            ),
            (
                "example.com:5000/app",
                "example.com:5000/app:v1",
                true,
                "a tag after a port",
            ),
            (
                "index.docker.io",
                "docker.io/library/nginx",
                false,
                "index.docker.io is only the keyring's last resort for Docker Hub",
            ),
            (
                "docker.io",
                "docker.io/library/nginx",
                true,
                "docker.io is Docker Hub",
            ),
            (
                "registry-1.docker.io",
                "docker.io/library/nginx",
                false,
                "registry-1 is another host to the kubelet",
            ),
            (
                "https://index.docker.io/v1/",
                "docker.io/library/nginx",
                false,
                "the docker login key is only the keyring's last resort",
            ),
            (
                "index.docker.io/myorg",
                "docker.io/myorg/app",
                false,
                "an index.docker.io path key serves no Hub image, as in the kubelet",
            ),
            (
                "docker.io",
                "index.docker.io/library/nginx",
                true,
                "any Hub spelling as image",
            ),
            (
                "docker.io/myorg",
                "docker.io/myorg/app",
                true,
                "a Hub namespace",
            ),
            (
                "docker.io/myorg",
                "docker.io/library/nginx",
                false,
                "another Hub namespace",
            ),
            (
                "*.docker.io",
                "docker.io/library/nginx",
                false,
                "Hub is not a subdomain glob",
            ),
            ("quay.io", "nginx", false, "a short name is on Docker Hub"),
            (
                "docker.io/library",
                "nginx",
                true,
                "a short name is expanded as the kubelet's normalisation does",
            ),
            (
                "docker.io/bitnami",
                "bitnami/nginx:1.25",
                true,
                "a two-part short name is on Docker Hub too",
            ),
            (
                "*",
                "nginx",
                false,
                "a short name is never a one-label host",
            ),
        ];
        for (key, image, matches, why) in cases {
            let pattern = RegistryPattern::parse(key).unwrap_or_else(|| panic!("{key}"));
            assert_eq!(pattern.matches(image), matches, "{why}: {key} vs {image}");
        }
    }

    fn pull_secret(namespace: &str, name: &str, auths: Value) -> PullSecret {
        PullSecret::parse(
            namespace,
            name,
            PullSecretFormat::DockerConfigJson,
            &config_json(auths),
        )
        .unwrap()
    }

    fn users(credentials: &[RegistryCredential]) -> Vec<&str> {
        credentials.iter().map(|c| c.username.as_str()).collect()
    }

    fn login(user: &str) -> Value {
        json!({ "auth": b64(&format!("{user}:{user}-password")) })
    }

    #[test]
    fn lookup_returns_keys_in_the_kubelets_order_whatever_the_listing_order() {
        let secrets = vec![
            pull_secret(
                "team-a",
                "b-secret",
                json!({
                    "*.example.com": login("glob"),
                    "registry.example.com": login("host-b"),
                    "registry.example.com/team/app": login("repository"),
                }),
            ),
            pull_secret(
                "team-a",
                "a-secret",
                json!({
                    "https://registry.example.com/v1/": login("host-a"),
                    "registry.example.com/team": login("team"),
                    "reg*.example.com": login("partial-glob"),
                    "registry.example.com/teamx": login("teamx"),
                    "registry.example.com:5000": login("port"),
                }),
            ),
        ];
        let expected = vec![
            "repository",
            "team",
            // Equally specific: ordered by secret name.
            "host-a",
            "host-b",
            "partial-glob",
            "glob",
        ];
        let forward = Keyring::new("team-a", secrets.clone());
        let backward = Keyring::new("team-a", secrets.into_iter().rev());
        assert_eq!(forward, backward);
        let found = forward.lookup("registry.example.com/team/app");
        assert_eq!(users(&found), expected);
        assert_eq!(
            found[0].source,
            "team-a/b-secret, key registry.example.com/team/app"
        );
        assert_eq!(found[0].password, "repository-password");
        assert_eq!(
            users(&forward.lookup("registry.example.com:5000/x")),
            vec!["port"]
        );
        assert_eq!(users(&forward.lookup("other.example.com/x")), vec!["glob"]);
        assert!(forward.lookup("example.com/x").is_empty());
    }

    #[test]
    fn keys_are_tried_in_reverse_lexical_order_as_in_the_kubelets_index() {
        // keyring.go BasicDockerKeyring.Add sorts its index in reverse, so a longer string
        // comes first even where it is no more specific.
        let keyring = Keyring::new(
            "team-a",
            [pull_secret(
                "team-a",
                "s",
                json!({
                    "quay.io/team": login("team"),
                    "quay.io/teamx": login("teamx"),
                    "quay.io": login("host"),
                    "*.example.com": login("glob"),
                    "x.*.com": login("middle-glob"),
                }),
            )],
        );
        assert_eq!(
            users(&keyring.lookup("quay.io/teamx/app")),
            vec!["teamx", "team", "host"]
        );
        assert_eq!(
            users(&keyring.lookup("x.example.com/app")),
            vec!["middle-glob", "glob"]
        );
    }

    #[test]
    fn docker_login_keys_serve_docker_hub_only_when_no_key_matches() {
        // keyring.go BasicDockerKeyring.Lookup: creds["index.docker.io"] only when nothing matched.
        let hub = |auths: Value| Keyring::new("team-a", [pull_secret("team-a", "hub", auths)]);
        let with_docker_io = hub(json!({
            "index.docker.io": login("index"),
            "https://index.docker.io/v1/": login("login"),
            "docker.io": login("plain"),
        }));
        assert_eq!(
            users(&with_docker_io.lookup("docker.io/library/nginx")),
            vec!["plain"]
        );
        let login_only = hub(json!({
            "index.docker.io": login("index"),
            "https://index.docker.io/v1/": login("login"),
            "quay.io": login("quay"),
        }));
        // Two keys that normalise alike are ordered by the key as written.
        assert_eq!(
            users(&login_only.lookup("docker.io/library/nginx")),
            vec!["login", "index"]
        );
        assert_eq!(users(&login_only.lookup("nginx")), vec!["login", "index"]);
        assert_eq!(users(&login_only.lookup("quay.io/app")), vec!["quay"]);
        for elsewhere in [
            "localhost/app",
            "docker.io:5000/app",
            "registry-1.docker.io/library/x",
        ] {
            assert!(login_only.lookup(elsewhere).is_empty(), "{elsewhere}");
        }
    }

    #[test]
    fn the_same_credential_under_several_keys_is_returned_once() {
        let keyring = Keyring::new(
            "team-a",
            [
                pull_secret("team-a", "one", json!({ "quay.io": login("alice") })),
                pull_secret(
                    "team-a",
                    "two",
                    json!({ "quay.io/team": login("alice"), "https://quay.io": login("bob") }),
                ),
            ],
        );
        let found = keyring.lookup("quay.io/team/app");
        assert_eq!(users(&found), vec!["alice", "bob"]);
        assert_eq!(found[0].source, "team-a/two, key quay.io/team");
    }

    #[test]
    fn secrets_of_another_namespace_never_enter_the_keyring() {
        let keyring = Keyring::new(
            "team-a",
            [
                pull_secret("team-b", "theirs", json!({ "quay.io": login("them") })),
                pull_secret("team-a", "ours", json!({ "ghcr.io": login("us") })),
            ],
        );
        assert_eq!(keyring.len(), 1);
        assert!(keyring.lookup("quay.io/app").is_empty());
        assert_eq!(users(&keyring.lookup("ghcr.io/app")), vec!["us"]);
    }

    #[test]
    fn an_empty_keyring_or_an_unreadable_image_name_finds_nothing() {
        assert!(Keyring::default().is_empty());
        assert!(Keyring::default().lookup("quay.io/app").is_empty());
        let keyring = Keyring::new(
            "team-a",
            [pull_secret("team-a", "s", json!({ "*": login("any") }))],
        );
        for image in ["", "/app", "quay.io:x/app", "bad host/app"] {
            assert!(keyring.lookup(image).is_empty(), "{image:?}");
        }
    }

    #[test]
    fn glob_labels_match_like_go_filepath_match_on_one_label() {
        for (glob, label, matches) in [
            ("*", "", true),
            ("*", "abc", true),
            ("a*", "a", true),
            ("a*c", "abbbc", true),
            ("a*c", "abcd", false),
            ("*b*", "abc", true),
            ("*b*", "ac", false),
            ("a**c", "ac", true),
            ("abc", "abc", true),
            ("abc", "abd", false),
        ] {
            assert_eq!(label_matches(glob, label), matches, "{glob} vs {label}");
        }
    }
}
