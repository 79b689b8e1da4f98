//! imagestream-operator: OpenShift image streams and image-change triggers for any Kubernetes cluster.
//!
//! The crate is laid out as a pipeline with a pure middle and thin edges:
//!
//! - [`api`]: the custom resource types, with OpenShift's groups, kinds and JSON field names, and the
//!   `image.openshift.io/triggers` annotation type. [`api::crds`] renders every CustomResourceDefinition.
//! - [`domain`]: pure rules with no I/O — reference parsing, tag history, import schedules, tag
//!   sources, pull-secret keyrings, platforms, mirror plans, trigger resolution, Image garbage
//!   collection — tested without a cluster.
//! - [`registry`]: the registry client (HEAD/GET, challenge-driven auth, limits, metrics).
//! - [`controller`]: the import engine (one poller per distinct registry tag), the ImageStream and
//!   trigger controllers, the importer, the mirror index and the Image collector; each a fetch →
//!   plan (pure) → import (engine) → status pipeline over the pure rules.
//! - [`webhook`]: the push-notification receiver, which hands pushed tags to the engine.
//! - [`oc`]: the `oc`-style commands (`import-image`, `tag`, `set`, `describe`, `get istag`,
//!   `convert deploymentconfig`), thin API calls over pure rules in [`domain`].
//! - [`cli`]: the command-line interface of the `imagestream-operator` binary.
//! - [`server`]: `/metrics`, `/healthz` and `/readyz`; [`metrics`]: the Prometheus metrics they serve;
//!   [`leader`]: leader election on a Lease, so only one replica runs the controllers.
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
