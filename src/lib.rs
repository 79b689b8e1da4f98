//! imagestream-operator: OpenShift image streams and image-change triggers for any Kubernetes cluster.
//!
//! The crate is laid out as a pipeline with a pure middle and thin edges:
//!
//! - [`api`]: the custom resource types, with OpenShift's groups, kinds and JSON field names, and the
//!   `image.openshift.io/triggers` annotation type. [`api::crds`] renders every CustomResourceDefinition.
//! - [`domain`]: pure rules with no I/O (image naming, and later reference parsing, history, schedules,
//!   mirror plans and trigger resolution), tested without a cluster.
//! - [`testenv`]: the local control plane and registries that integration tests and the demo run
//!   against.
//! - [`cli`]: the command-line interface of the `imagestream-operator` binary.
//! - [`server`]: `/metrics`, `/healthz` and `/readyz`; [`metrics`]: the Prometheus metrics they serve;
//!   [`leader`]: leader election on a Lease, so only one replica runs the controllers.

pub mod api;
pub mod cli;
pub mod controller;
pub mod domain;
pub mod leader;
pub mod metrics;
pub mod registry;
pub mod server;
pub mod testenv;
