//! The registry client of the importer, written on reqwest, with oci-client supplying manifest types,
//! media-type constants and error envelopes (its own `Client` mixes credentials across tenants and
//! turns failed HEADs into GETs). Change detection is one manifest `HEAD`; manifests and configs
//! are fetched by digest, read completely and verified.
//!
//! - [`client`] — [`RegistryClient`], the public operations and the authentication flow.
//! - [`challenge`] — parsing `WWW-Authenticate` challenges.
//! - [`token_cache`] — bearer token answers and the per-(realm, service, scope, identity) cache.
//! - [`limits`] — per-host concurrency, `Retry-After` and backoff.
//! - [`transport`] — one bounded, timed, measured HTTP exchange.
//! - [`egress`] — refusal of link-local and cloud metadata addresses.
//! - [`manifest`] — media types and parsing of manifests, indexes and image configs.
//! - [`error`] — [`RegistryError`] and its condition reasons.
//! - [`redact`] — scrubbing the credentials a request carried out of registry text.
//! - [`metrics`] — [`RegistryMetrics`].

pub mod challenge;
pub mod client;
pub mod egress;
pub mod error;
pub mod limits;
pub mod manifest;
pub mod metrics;
pub mod redact;
pub mod token_cache;
pub mod transport;

#[cfg(test)]
mod client_tests;
#[cfg(test)]
mod fake_registry;

pub use client::{
    Access, FetchedConfig, FetchedManifest, ManifestHead, ManifestTarget, RegistryClient,
    RegistryClientConfig,
};
pub use error::{RegistryError, RequestFailure};
pub use limits::LimitsConfig;
pub use manifest::{
    ContainerConfig, Descriptor, ImageConfig, ImageManifest, IndexEntry, ManifestIndex,
    ParsedManifest, Platform, parse_image_config, parse_manifest,
};
pub use metrics::RegistryMetrics;
