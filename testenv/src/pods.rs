//! What the tests and the demo read off a Pod running on the node.

use k8s_openapi::api::core::v1::Pod;

/// Ready (its `Ready` condition is `True`) and not being deleted.
pub fn is_ready(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The image the pod's first container runs, as the kubelet reports it
/// (`registry/repository@sha256:…`); empty before the container started.
pub fn first_image_id(pod: &Pod) -> String {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|c| c.first())
        .map(|c| c.image_id.clone())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(value: serde_json::Value) -> Pod {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn ready_means_the_condition_and_no_deletion() {
        let ready =
            serde_json::json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}});
        assert!(is_ready(&pod(ready.clone())));
        let mut deleting = ready;
        deleting["metadata"] = serde_json::json!({"deletionTimestamp": "2026-12-02T00:00:00Z"});
        assert!(!is_ready(&pod(deleting)));
        assert!(!is_ready(&pod(
            serde_json::json!({"status": {"conditions": [
                {"type": "Ready", "status": "False"}, {"type": "PodScheduled", "status": "True"}
            ]}})
        )));
    }

    #[test]
    fn the_image_id_is_the_first_containers() {
        let running = pod(serde_json::json!({"status": {"containerStatuses": [
            {"name": "a", "image": "x", "imageID": "r/x@sha256:1", "ready": true, "restartCount": 0},
            {"name": "b", "image": "y", "imageID": "r/y@sha256:2", "ready": true, "restartCount": 0}
        ]}}));
        assert_eq!(first_image_id(&running), "r/x@sha256:1");
        assert_eq!(first_image_id(&pod(serde_json::json!({}))), "");
    }
}
