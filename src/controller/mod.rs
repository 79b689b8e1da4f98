//! The controllers and what they share. Each controller is a pipeline — fetch, plan (pure, in
//! `crate::domain`), apply, status — and only its fetch and apply steps talk to the API server or a
//! registry.
//!
//! - [`image_stream`]: subscribes each stream's tags to the import engine and writes the status
//!   computed from the answers: history, conditions, aliases, copies.
//! - [`engine`]: the import engine: one schedule, one registry request and one answer per distinct
//!   registry tag, whatever the number of streams that track it.
//! - [`importer`]: one distinct tag's import: registry HEAD, manifest and config GETs, Image
//!   objects.
//! - [`image_gc`]: deletes Images no stream references any more, after a grace period.
//! - [`mirrors`]: the mirror index imports plan with, and re-imports when mirror policies change.
//! - [`triggers`]: keeps workload container images on their ImageStream tags
//!   (`image.openshift.io/triggers`).
//! - [`stores`]: the shared, trimmed caches (one watch per kind) and the stream cache's fan-out.
//! - [`events`]: Events, with repeats folded into series.
//! - [`access`]: cached stream lookups and the access review for cross-namespace references.
//! - [`context`]: the shared [`Context`] with its caches and per-stream memory.
//! - [`housekeeping`]: keeps those caches bounded by what still exists.
//! - [`run`]: starts all of the above.

pub mod access;
pub mod context;
pub mod engine;
pub mod events;
pub mod housekeeping;
pub mod image_gc;
pub mod image_object;
pub mod image_stream;
pub mod importer;
pub mod mirrors;
pub mod run;
pub mod slot;
pub mod stores;
pub mod supervisor;
pub mod triggers;

pub use context::{Concurrency, Context, ControllerConfig};

/// The current time as the API stores it (whole seconds), so that a written and re-read event
/// compares equal.
pub fn now_time() -> k8s_openapi::apimachinery::pkg::apis::meta::v1::Time {
    let now = k8s_openapi::jiff::Timestamp::now();
    k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        k8s_openapi::jiff::Timestamp::from_second(now.as_second()).unwrap_or(now),
    )
}

/// The field manager of every write the operator makes.
pub const FIELD_MANAGER: &str = "imagestream-operator";

/// Annotation that asks for an immediate import of every importable tag of a stream: set it to any
/// new value (`imagestream-operator import-image` writes the current time).
pub const IMPORT_REQUESTED_ANNOTATION: &str = "imagestream-operator/import-requested";
