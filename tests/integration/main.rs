//! Integration tests against the real components: one kube-apiserver with etcd (and, for rollouts,
//! kube-controller-manager) started on 127.0.0.1 for this whole test binary, real distribution
//! registries per test, and each test in its own namespace.
//!
//! Everything lives in one test binary on purpose: a Rust test binary links every dependency
//! statically, so one binary instead of one per file keeps the build small on disk and quick to
//! link, and the control plane starts once.

mod support;

/// The in-process FAKE registry of the client's unit tests, for what a real registry cannot do on
/// demand (429 storms, echoing credentials); everything else runs against the real one.
#[allow(dead_code)]
#[path = "../../src/registry/fake_registry.rs"]
mod fake_registry;

mod admission;
mod binary;
mod deploy;
mod environment;
mod harness_images;
mod housekeeping;
mod import;
mod import_credentials;
mod manifests;
mod mirrors;
mod notifications;
mod oc_commands;
mod oc_convert;
mod oc_describe;
mod operations;
mod recovery;
mod scale;
mod security;
mod triggers;
mod unreadable_objects;
