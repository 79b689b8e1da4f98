//! Pure domain rules: no Kubernetes client, no HTTP, no tokio I/O. Everything here is tested with plain
//! unit tests. Among them, [`trigger_annotation`] parses and validates the `image.openshift.io/triggers`
//! annotation (its field-path grammar and decoder) over the wire type in [`crate::api::triggers`].

pub mod address_guard;
pub mod backoff;
#[cfg(test)]
mod conformance;
pub mod credential;
pub mod deployment_config;
pub mod describe_text;
pub mod distinct_tag;
pub mod history;
pub mod image_gc;
pub mod image_lookup;
pub mod image_name;
pub mod import_image;
pub mod keyring;
pub mod mirror_plan;
pub mod notification;
pub mod oc_tag;
pub mod platform;
pub mod poll_schedule;
pub mod reference;
pub mod registry_allowlist;
pub mod stream_status;
pub mod tag_need;
pub mod tag_source;
pub mod text;
pub mod trigger_annotation;
pub mod trigger_edit;
pub mod trigger_resolution;
