//! `set triggers KIND/NAME …` and `set image-lookup …`, as `oc set` does them.

use std::io::Write;

use kube::api::{DynamicObject, Patch, PatchParams};
use kube::{Api, ResourceExt};

use super::{Cluster, OcError};
use crate::api::ImageStream;
use crate::api::triggers::TRIGGERS_ANNOTATION;
use crate::domain::trigger_annotation::{WorkloadKind, decode_annotation, encode_annotation};
use crate::domain::trigger_edit::{PodContainers, TriggerChange, edit, list};

/// The pod-template annotation `oc set image-lookup` writes on a workload.
pub const RESOLVE_NAMES_ANNOTATION: &str = "alpha.image.policy.openshift.io/resolve-names";

/// `KIND/NAME` of a workload, with kubectl's names and short names for the kind.
pub fn workload(value: &str) -> Result<(WorkloadKind, String), OcError> {
    let (kind, name) = value.split_once('/').ok_or_else(|| {
        OcError::Refused(format!("{value:?} is not KIND/NAME (e.g. deployment/web)"))
    })?;
    let kind = match kind.to_ascii_lowercase().as_str() {
        "deployment" | "deployments" | "deploy" | "deployment.apps" => WorkloadKind::Deployment,
        "statefulset" | "statefulsets" | "sts" | "statefulset.apps" => WorkloadKind::StatefulSet,
        "daemonset" | "daemonsets" | "ds" | "daemonset.apps" => WorkloadKind::DaemonSet,
        "cronjob" | "cronjobs" | "cj" | "cronjob.batch" => WorkloadKind::CronJob,
        other => {
            return Err(OcError::Refused(format!(
                "{other:?} is not a workload with image triggers: use deployment, statefulset, daemonset or cronjob"
            )));
        }
    };
    if name.is_empty() {
        return Err(OcError::Refused(format!("{value:?} names no workload")));
    }
    Ok((kind, name.to_owned()))
}

fn workload_api(cluster: &Cluster, kind: WorkloadKind) -> Api<DynamicObject> {
    Api::namespaced_with(
        cluster.client.clone(),
        &cluster.namespace,
        &super::workload_resource(kind),
    )
}

/// `deployment.apps/web`, as kubectl names a written object.
fn written_name(kind: WorkloadKind, name: &str) -> String {
    let group = kind.api_version().split_once('/').map_or("", |(g, _)| g);
    format!("{}.{group}/{name}", kind.kind().to_ascii_lowercase())
}

/// Runs `set triggers`: lists the workload's triggers when `change` changes nothing, else writes
/// the edited annotation.
pub async fn triggers(
    cluster: &Cluster,
    target: &str,
    change: &TriggerChange,
    out: &mut dyn Write,
) -> Result<(), OcError> {
    let (kind, name) = workload(target)?;
    let api = workload_api(cluster, kind);
    let object = api.get(&name).await?;
    let existing = match object.annotations().get(TRIGGERS_ANNOTATION) {
        Some(value) => decode_annotation(value).map_err(|e| {
            OcError::Refused(format!(
                "the {TRIGGERS_ANNOTATION} annotation of {target} is not valid ({e}); fix or remove it with --remove-all"
            ))
        }),
        None => Ok(Vec::new()),
    };
    let plural = format!("{}s/{name}", kind.kind().to_ascii_lowercase());
    if !change.changes() {
        write!(out, "{}", list(&plural, kind, &existing?))?;
        return Ok(());
    }
    // A broken annotation can still be removed.
    let existing = if change.remove_all {
        Vec::new()
    } else {
        existing?
    };
    let pod = PodContainers::of(kind, &object.data);
    let edited = edit(&existing, kind, &pod, change).map_err(OcError::Refused)?;
    let value = (!edited.is_empty()).then(|| encode_annotation(&edited));
    let patch = serde_json::json!({"metadata": {"annotations": {TRIGGERS_ANNOTATION: value}}});
    api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    writeln!(out, "{} triggers updated", written_name(kind, &name))?;
    Ok(())
}

/// Runs `set image-lookup`: `lookupPolicy.local` of each stream, or the resolve-names annotation
/// on each `KIND/NAME` workload's pod template. With no names, lists the streams of the
/// namespace and whether lookup is on.
pub async fn image_lookup(
    cluster: &Cluster,
    names: &[String],
    enabled: bool,
    out: &mut dyn Write,
) -> Result<(), OcError> {
    let streams = Api::<ImageStream>::namespaced(cluster.client.clone(), &cluster.namespace);
    if names.is_empty() {
        let mut rows = Vec::new();
        for stream in streams.list(&Default::default()).await? {
            let local = stream.spec.lookup_policy.as_ref().is_some_and(|p| p.local);
            rows.push(vec![stream.name_any(), local.to_string()]);
        }
        write!(
            out,
            "{}",
            crate::domain::describe_text::render_table(&["NAME", "LOCAL"], &rows)
        )?;
        return Ok(());
    }
    for name in names {
        if name.contains('/') {
            let (kind, workload_name) = workload(name)?;
            let template = match kind {
                WorkloadKind::CronJob => {
                    serde_json::json!({"jobTemplate": {"spec": {"template": {"metadata": {"annotations": {RESOLVE_NAMES_ANNOTATION: enabled.then_some("*")}}}}}})
                }
                _ => {
                    serde_json::json!({"template": {"metadata": {"annotations": {RESOLVE_NAMES_ANNOTATION: enabled.then_some("*")}}}})
                }
            };
            workload_api(cluster, kind)
                .patch(
                    &workload_name,
                    &PatchParams::default(),
                    &Patch::Merge(&serde_json::json!({"spec": template})),
                )
                .await?;
            writeln!(
                out,
                "{} image lookup updated",
                written_name(kind, &workload_name)
            )?;
        } else {
            let patch = serde_json::json!({"spec": {"lookupPolicy": {"local": enabled}}});
            streams
                .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                .await?;
            writeln!(
                out,
                "imagestream.image.openshift.io/{name} image lookup updated"
            )?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workloads_are_named_as_kubectl_names_them() {
        for (value, kind) in [
            ("deployment/web", WorkloadKind::Deployment),
            ("deploy/web", WorkloadKind::Deployment),
            ("sts/web", WorkloadKind::StatefulSet),
            ("daemonsets/web", WorkloadKind::DaemonSet),
            ("cj/web", WorkloadKind::CronJob),
        ] {
            assert_eq!(workload(value).unwrap(), (kind, "web".to_owned()));
        }
        for bad in ["web", "pod/web", "deployment/"] {
            assert!(workload(bad).is_err(), "{bad}");
        }
        assert_eq!(
            written_name(WorkloadKind::CronJob, "nightly"),
            "cronjob.batch/nightly"
        );
    }

    #[test]
    fn pod_containers_are_read_at_each_kinds_path() {
        let cron = serde_json::json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": {
            "containers": [{"name": "job"}], "initContainers": [{"name": "setup"}]}}}}}});
        assert_eq!(
            PodContainers::of(WorkloadKind::CronJob, &cron),
            PodContainers {
                containers: vec!["job".into()],
                init_containers: vec!["setup".into()],
            }
        );
        assert_eq!(
            PodContainers::of(WorkloadKind::Deployment, &cron),
            PodContainers::default()
        );
    }
}
