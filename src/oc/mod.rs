//! The `oc`-style commands users know from OpenShift — `import-image`, `tag`, `set triggers`,
//! `set image-lookup`, `describe`, `get istag` and `convert deploymentconfig` — run against the
//! cluster of the current kubeconfig. Each is a thin layer of API calls over pure rules in
//! [`crate::domain`].

pub mod convert;
pub mod describe;
pub mod import_image;
pub mod set;
pub mod tag;

use kube::Client;
use thiserror::Error;

/// Why a command failed. The `Display` text is what the user reads after `error: `.
#[derive(Debug, Error)]
pub enum OcError {
    /// The cluster could not be reached or configured.
    #[error("could not connect to the cluster: {0}")]
    Connect(String),
    /// The request is refused by the command's own rules (bad input, `--confirm` missing, …).
    #[error("{0}")]
    Refused(String),
    /// The API server refused or failed a request.
    #[error("{}", kube_message(.0))]
    Kube(#[from] kube::Error),
    /// The operator answered an import with a failure.
    #[error("import of {stream}:{tag} failed ({reason}): {message}")]
    ImportFailed {
        /// The stream.
        stream: String,
        /// The tag.
        tag: String,
        /// The condition's reason.
        reason: String,
        /// The condition's message.
        message: String,
    },
    /// The operator did not answer in time.
    #[error(
        "the operator did not import {stream} within {timeout}: is imagestream-operator running? (kubectl get pods -n imagestream-operator)"
    )]
    Timeout {
        /// The stream.
        stream: String,
        /// The wait, as given.
        timeout: String,
    },
    /// Writing the output failed.
    #[error("could not write the output: {0}")]
    Output(#[from] std::io::Error),
}

/// An API error as kubectl prints it: `Error from server (NotFound): imagestreams… "x" not found`.
fn kube_message(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) => {
            format!("Error from server ({}): {}", status.reason, status.message)
        }
        other => other.to_string(),
    }
}

/// The API resource of a workload kind, for dynamic reads and patches.
pub fn workload_resource(
    kind: crate::domain::trigger_annotation::WorkloadKind,
) -> kube::api::ApiResource {
    use crate::domain::trigger_annotation::WorkloadKind;
    use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
    use k8s_openapi::api::batch::v1::CronJob;
    use kube::api::ApiResource;
    match kind {
        WorkloadKind::Deployment => ApiResource::erase::<Deployment>(&()),
        WorkloadKind::StatefulSet => ApiResource::erase::<StatefulSet>(&()),
        WorkloadKind::DaemonSet => ApiResource::erase::<DaemonSet>(&()),
        WorkloadKind::CronJob => ApiResource::erase::<CronJob>(&()),
    }
}

/// Whether `error` is the API server's 404.
pub fn is_not_found(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 404)
}

/// A client of the current kubeconfig and the namespace to work in: `-n`, else the kubeconfig
/// context's, else `default`.
pub struct Cluster {
    /// The client.
    pub client: Client,
    /// The namespace.
    pub namespace: String,
}

impl Cluster {
    /// Connects with the current kubeconfig (`KUBECONFIG`, `~/.kube/config`, or in-cluster).
    pub async fn connect(namespace: Option<String>) -> Result<Self, OcError> {
        let client = Client::try_default()
            .await
            .map_err(|e| OcError::Connect(e.to_string()))?;
        Ok(Self::new(client, namespace))
    }

    /// A cluster of `client`, in `namespace` or the client's default one.
    pub fn new(client: Client, namespace: Option<String>) -> Self {
        let namespace = namespace.unwrap_or_else(|| client.default_namespace().to_owned());
        Self { client, namespace }
    }
}
