//! imagestream-operator: OpenShift image streams and image-change triggers for any Kubernetes cluster.
//!
//! The crate is laid out as a pipeline with a pure middle and thin edges. Each module names only
//! the modules listed after its arrow (checked by a test of this map):
//!
//! - [`api`] → nothing but the Image naming rule of `domain`: the wire types — the custom resources,
//!   with OpenShift's groups, kinds and JSON field names, and the JSON type of the
//!   `image.openshift.io/triggers` annotation. [`api::crds`] renders every CustomResourceDefinition.
//! - [`domain`] → `api`: pure rules with no I/O — reference parsing, tag history, import schedules, tag
//!   sources, pull-secret keyrings, platforms, mirror plans, trigger annotation parsing (field-path
//!   grammar, decoder, validation), trigger resolution, Image garbage collection, notification
//!   payloads, the rules of the `oc`-style commands — tested without a cluster, and against the
//!   upstream projects' own test tables (`domain/conformance/`).
//! - [`registry`] → `domain`: the registry client (HEAD/GET, challenge-driven auth, limits, the
//!   address guard, credential scrubbing).
//! - [`metrics`] → `registry`: the Prometheus metrics; [`server`] → `metrics`: `/metrics`,
//!   `/healthz` and `/readyz`.
//! - [`controller`] → `api`, `domain`, `registry`, `metrics`, `server`, `admission`: the import
//!   engine (one poller per distinct registry tag), the ImageStream and trigger controllers, the
//!   importer, the mirror index, the Image collector and the supervisor of their tasks; each a
//!   fetch → plan (pure) → import (engine) → status pipeline over the pure rules. It hands the
//!   stream cache to `admission` and the engine to `webhook` through slots.
//! - [`webhook`] → `controller`, `domain`, `metrics`: the push-notification receiver, which hands
//!   pushed tags to the engine.
//! - [`admission`] → `api`, `controller`, `domain`, `webhook`: the image-lookup admission webhook.
//! - [`oc`] → `api`, `controller`, `domain`: the `oc`-style commands (`import-image`, `tag`, `set`,
//!   `describe`, `get istag`, `convert deploymentconfig`), thin API calls over pure rules in
//!   [`domain`].
//! - [`leader`] → `controller`, `metrics`, `server`: leader election on a Lease, so only one replica
//!   runs the controllers.
//! - [`cli`] → everything: the command-line interface of the `imagestream-operator` binary.
//!
//! The local control plane and registries the tests, the demo and the benchmark start live in the
//! `imagestream-testenv` workspace crate (`testenv/`), a dev-dependency that never ships in the binary.

#![forbid(unsafe_code)]

pub mod admission;
pub mod api;
pub mod cli;
pub mod controller;
pub mod domain;
pub mod leader;
pub mod metrics;
pub mod oc;
pub mod registry;
pub mod server;
pub mod webhook;

#[cfg(test)]
mod layers;
