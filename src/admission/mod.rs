//! The image-lookup admission webhook: `POST /admission/image-lookup` on its own HTTPS listener
//! (`--admission-addr`). The API server sends an `admission.k8s.io/v1` AdmissionReview for every
//! Pod and pod-template workload created or updated; the answer always allows the object and, when
//! a container names `stream:tag` of a stream with local lookup (or the object asks for it), carries
//! a JSON Patch that replaces exactly those image fields with the tag's current pull spec. The
//! rules are [`crate::domain::image_lookup`]'s; the streams come from memory, never from the API
//! server per request.

pub mod certificates;

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine;
use serde_json::{Value, json};

use crate::domain::image_lookup::{ImagePatch, PodHolder, StreamLookup, json_patch, resolve};

/// The largest AdmissionReview read (the API server's own request limit is 3 MiB).
pub const MAX_REVIEW: usize = 3 << 20;

/// Where the streams for lookups come from: a stream cache of the webhook's own, on every replica
/// (leader or standby), filled once it has listed.
pub type Streams = crate::controller::slot::Slot<dyn StreamLookup + Send + Sync>;

/// What the webhook needs.
#[derive(Debug, Clone)]
pub struct AdmissionState {
    /// The streams.
    pub streams: Arc<Streams>,
    /// `--internal-registry-hostname`, for tags with the `Local` reference policy.
    pub internal_registry: Option<String>,
}

/// The webhook's routes.
pub fn router(state: AdmissionState) -> Router {
    Router::new()
        .route("/admission/image-lookup", post(review))
        .fallback(|| async { (StatusCode::NOT_FOUND, "not found\n") })
        .layer(axum::extract::DefaultBodyLimit::max(MAX_REVIEW))
        .with_state(state)
}

async fn review(State(state): State<AdmissionState>, body: Bytes) -> Response {
    match answer(&state, &body) {
        Ok(review) => axum::Json(review).into_response(),
        Err(problem) => (StatusCode::BAD_REQUEST, format!("{problem}\n")).into_response(),
    }
}

/// The AdmissionReview answering `body`, or why `body` is not one.
pub fn answer(state: &AdmissionState, body: &[u8]) -> Result<Value, String> {
    let review: Value =
        serde_json::from_slice(body).map_err(|e| format!("not an AdmissionReview: {e}"))?;
    let request = review
        .get("request")
        .filter(|r| r.is_object())
        .ok_or("the AdmissionReview has no request")?;
    let uid = request
        .get("uid")
        .and_then(Value::as_str)
        .ok_or("the AdmissionReview request has no uid")?;
    let api_version = review
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("admission.k8s.io/v1");
    let patches = patches_for(state, request);
    let mut response = json!({"uid": uid, "allowed": true});
    if !patches.is_empty() {
        let patch = serde_json::to_vec(&json_patch(&patches)).expect("JSON serialises");
        response["patchType"] = json!("JSONPatch");
        response["patch"] = json!(base64::engine::general_purpose::STANDARD.encode(patch));
    }
    Ok(json!({
        "apiVersion": api_version,
        "kind": "AdmissionReview",
        "response": response,
    }))
}

/// The image patches for the object of `request`: none unless it is a Pod or pod-template
/// workload in a namespace, the operation writes an object, and streams are at hand.
fn patches_for(state: &AdmissionState, request: &Value) -> Vec<ImagePatch> {
    let text = |field: &str, inner: &str| {
        request
            .get(field)
            .and_then(|v| v.get(inner))
            .and_then(Value::as_str)
            .unwrap_or_default()
    };
    let Some(holder) = PodHolder::from_kind(text("kind", "group"), text("kind", "kind")) else {
        return Vec::new();
    };
    let Some(namespace) = request.get("namespace").and_then(Value::as_str) else {
        return Vec::new();
    };
    // A Job's pod template cannot change after creation; OpenShift leaves it alone on update too.
    let operation = request.get("operation").and_then(Value::as_str);
    if operation == Some("UPDATE") && holder == PodHolder::Job {
        return Vec::new();
    }
    let (Some(object), Some(streams)) = (request.get("object"), state.streams.get()) else {
        return Vec::new();
    };
    resolve(
        holder,
        object,
        namespace,
        streams.as_ref(),
        state.internal_registry.as_deref(),
    )
}

/// Streams from the controllers' stream cache.
pub struct StoreLookup(
    pub kube::runtime::reflector::Store<kube::core::DeserializeGuard<crate::api::ImageStream>>,
);

impl StreamLookup for StoreLookup {
    fn stream(&self, namespace: &str, name: &str) -> Option<Arc<crate::api::ImageStream>> {
        let guard = self
            .0
            .get(&kube::runtime::reflector::ObjectRef::new(name).within(namespace))?;
        guard.0.as_ref().ok().cloned().map(Arc::new)
    }
}

/// Serves the webhook over TLS on `listener` with the certificate `slot` holds, until `shutdown`
/// resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    slot: Arc<crate::webhook::tls::CertificateSlot>,
    state: AdmissionState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let config = crate::webhook::tls::config(slot).map_err(std::io::Error::other)?;
    crate::webhook::tls::serve(listener, config, router(state), shutdown).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ImageStream;

    fn state(streams: Vec<ImageStream>) -> AdmissionState {
        let lookup = move |namespace: &str, name: &str| {
            streams
                .iter()
                .find(|s| {
                    s.metadata.namespace.as_deref() == Some(namespace)
                        && s.metadata.name.as_deref() == Some(name)
                })
                .cloned()
                .map(Arc::new)
        };
        let slot = Streams::default();
        slot.set(Some(Arc::new(lookup)));
        AdmissionState {
            streams: Arc::new(slot),
            internal_registry: None,
        }
    }

    fn web_stream() -> ImageStream {
        serde_json::from_value(json!({
            "apiVersion": "image.openshift.io/v1", "kind": "ImageStream",
            "metadata": {"name": "web", "namespace": "team"},
            "spec": {"lookupPolicy": {"local": true}},
            "status": {"tags": [{"tag": "latest", "items": [{
                "created": "2026-01-01T00:00:00Z",
                "dockerImageReference": "quay.io/team/web@sha256:1111111111111111111111111111111111111111111111111111111111111111",
                "image": "sha256:1111111111111111111111111111111111111111111111111111111111111111",
                "generation": 1}]}]},
        }))
        .unwrap()
    }

    fn review(kind: &str, image: &str) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {
                "uid": "u-1", "kind": {"group": "", "version": "v1", "kind": kind},
                "namespace": "team", "operation": "CREATE",
                "object": {"spec": {"containers": [{"name": "app", "image": image}]}},
            },
        }))
        .unwrap()
    }

    #[test]
    fn a_pod_naming_a_local_stream_is_allowed_with_a_patch_to_its_digest() {
        let answer = answer(&state(vec![web_stream()]), &review("Pod", "web:latest")).unwrap();
        let response = &answer["response"];
        assert_eq!(response["uid"], "u-1");
        assert_eq!(response["allowed"], true);
        assert_eq!(response["patchType"], "JSONPatch");
        let patch = base64::engine::general_purpose::STANDARD
            .decode(response["patch"].as_str().unwrap())
            .unwrap();
        let patch: Value = serde_json::from_slice(&patch).unwrap();
        assert_eq!(patch[0]["path"], "/spec/containers/0/image");
        assert!(
            patch[0]["value"]
                .as_str()
                .unwrap()
                .starts_with("quay.io/team/web@sha256:")
        );
    }

    #[test]
    fn anything_else_is_allowed_unchanged_and_a_malformed_review_is_an_error() {
        let s = state(vec![web_stream()]);
        for (kind, image) in [
            ("Pod", "quay.io/web:latest"),
            ("Pod", "other:1"),
            ("Service", "web"),
        ] {
            let answer = answer(&s, &review(kind, image)).unwrap();
            assert_eq!(answer["response"]["allowed"], true);
            assert!(answer["response"].get("patch").is_none(), "{kind} {image}");
        }
        let without_streams = AdmissionState {
            streams: Arc::new(Streams::default()),
            internal_registry: None,
        };
        assert!(
            answer(&without_streams, &review("Pod", "web")).unwrap()["response"]
                .get("patch")
                .is_none()
        );
        assert!(answer(&s, b"{").is_err());
        assert!(answer(&s, b"{\"request\": {}}").is_err());
        assert!(answer(&s, b"[]").is_err());
    }
}
