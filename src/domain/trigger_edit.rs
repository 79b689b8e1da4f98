//! What `set triggers KIND/NAME …` does to a workload's `image.openshift.io/triggers` annotation, by
//! `oc set triggers`' rules, and how it lists them. Pure: the command reads the workload and its
//! container names, and writes back [`edit`]'s entries with [`encode_annotation`].
//!
//! [`encode_annotation`]: crate::domain::trigger_annotation::encode_annotation

use crate::api::triggers::{IMAGE_STREAM_TAG_KIND, ObjectFieldTrigger, TriggerSource};
use crate::domain::trigger_annotation::WorkloadKind;

/// The requested change.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TriggerChange {
    /// `--from-image [NAMESPACE/]STREAM:TAG`.
    pub from_image: Option<String>,
    /// `-c/--containers`, comma-separated in the flag.
    pub containers: Vec<String>,
    /// `--manual` (`paused: true`); `--auto` is `Some(false)`.
    pub manual: Option<bool>,
    /// `--remove`: remove the triggers from `from_image` (or every trigger when none is named).
    pub remove: bool,
    /// `--remove-all`.
    pub remove_all: bool,
}

impl TriggerChange {
    /// Whether the command changes anything (otherwise it lists the triggers).
    pub fn changes(&self) -> bool {
        self.from_image.is_some() || self.manual.is_some() || self.remove || self.remove_all
    }
}

/// The container names of a workload's pod template: regular, then init containers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodContainers {
    /// `containers[].name`.
    pub containers: Vec<String>,
    /// `initContainers[].name`.
    pub init_containers: Vec<String>,
}

impl PodContainers {
    /// The container names of the pod template of a `kind` workload, given as JSON (a missing
    /// template or list reads as none; a container without a name as `""`).
    pub fn of(kind: WorkloadKind, workload: &serde_json::Value) -> Self {
        let pointer = format!("/{}", kind.pod_spec_path().replace('.', "/"));
        let pod = workload.pointer(&pointer);
        let names = |list: &str| {
            pod.and_then(|pod| pod.get(list))
                .and_then(serde_json::Value::as_array)
                .into_iter()
                .flatten()
                .map(|c| {
                    c.get("name")
                        .and_then(serde_json::Value::as_str)
                        .unwrap_or_default()
                        .to_owned()
                })
                .collect()
        };
        Self {
            containers: names("containers"),
            init_containers: names("initContainers"),
        }
    }
}

/// The entries after `change`, or why it cannot be made.
pub fn edit(
    existing: &[ObjectFieldTrigger],
    kind: WorkloadKind,
    pod: &PodContainers,
    change: &TriggerChange,
) -> Result<Vec<ObjectFieldTrigger>, String> {
    if change.remove_all {
        return Ok(Vec::new());
    }
    if change.remove {
        return Ok(match &change.from_image {
            Some(image) => {
                let (namespace, name) = split_image(image)?;
                existing
                    .iter()
                    .filter(|t| !(t.from.name == name && t.from.namespace == namespace))
                    .cloned()
                    .collect()
            }
            None => Vec::new(),
        });
    }
    let Some(image) = &change.from_image else {
        // `--auto` / `--manual` alone: every image trigger.
        let paused = change.manual.unwrap_or(false);
        return Ok(existing
            .iter()
            .map(|t| ObjectFieldTrigger {
                paused,
                ..t.clone()
            })
            .collect());
    };
    let (namespace, name) = split_image(image)?;
    let containers = chosen_containers(pod, &change.containers)?;
    let mut entries = existing.to_vec();
    for (list, container) in containers {
        let field_path = format!(
            "{}.{list}[?(@.name==\"{container}\")].image",
            kind.pod_spec_path()
        );
        let entry = ObjectFieldTrigger {
            from: TriggerSource {
                kind: IMAGE_STREAM_TAG_KIND.to_owned(),
                name: name.clone(),
                namespace: namespace.clone(),
                api_version: None,
            },
            field_path: field_path.clone(),
            paused: change.manual.unwrap_or(false),
        };
        match entries.iter_mut().find(|t| t.field_path == field_path) {
            Some(existing) => *existing = entry,
            None => entries.push(entry),
        }
    }
    Ok(entries)
}

/// `[NAMESPACE/]STREAM:TAG` as (namespace, `STREAM:TAG`).
fn split_image(image: &str) -> Result<(Option<String>, String), String> {
    let (namespace, name) = match image.split_once('/') {
        Some((ns, name)) => (Some(ns.to_owned()), name),
        None => (None, image),
    };
    match name.split_once(':') {
        Some((stream, tag)) if !stream.is_empty() && !tag.is_empty() && !tag.contains('/') => {
            Ok((namespace, name.to_owned()))
        }
        _ => Err(format!(
            "--from-image {image:?} must name an image stream tag: [NAMESPACE/]STREAM:TAG"
        )),
    }
}

/// The containers a new trigger applies to: the named ones (each must exist), or the only
/// container when none is named.
fn chosen_containers(
    pod: &PodContainers,
    named: &[String],
) -> Result<Vec<(&'static str, String)>, String> {
    if named.is_empty() {
        return match pod.containers.as_slice() {
            [only] => Ok(vec![("containers", only.clone())]),
            [] => Err("the pod template has no containers".to_owned()),
            many => Err(format!(
                "the pod template has {} containers ({}): name the ones to update with -c/--containers",
                many.len(),
                many.join(", ")
            )),
        };
    }
    named
        .iter()
        .map(|name| {
            if pod.containers.contains(name) {
                Ok(("containers", name.clone()))
            } else if pod.init_containers.contains(name) {
                Ok(("initContainers", name.clone()))
            } else {
                Err(format!(
                    "container {name:?} does not exist in the pod template (containers: {})",
                    pod.containers.join(", ")
                ))
            }
        })
        .collect()
}

/// The triggers of `workload` (`deployments/web`) as `oc set triggers` lists them.
pub fn list(workload: &str, kind: WorkloadKind, triggers: &[ObjectFieldTrigger]) -> String {
    let mut rows = Vec::new();
    // Workloads roll out on every change of their pod template, as a config trigger would.
    if kind != WorkloadKind::CronJob {
        rows.push(vec![
            workload.to_owned(),
            "config".to_owned(),
            String::new(),
            "true".to_owned(),
        ]);
    }
    for trigger in triggers {
        let image = match &trigger.from.namespace {
            Some(ns) => format!("{ns}/{}", trigger.from.name),
            None => trigger.from.name.clone(),
        };
        rows.push(vec![
            workload.to_owned(),
            "image".to_owned(),
            format!("{image} ({})", container_of(&trigger.field_path)),
            (!trigger.paused).to_string(),
        ]);
    }
    super::describe_text::render_table(&["NAME", "TYPE", "VALUE", "AUTO"], &rows)
}

/// The container a field path names, or the path itself.
fn container_of(field_path: &str) -> &str {
    field_path
        .split_once("[?(@.name==\"")
        .and_then(|(_, rest)| rest.split_once('"'))
        .map_or(field_path, |(name, _)| name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(containers: &[&str], init: &[&str]) -> PodContainers {
        PodContainers {
            containers: containers.iter().map(|c| c.to_string()).collect(),
            init_containers: init.iter().map(|c| c.to_string()).collect(),
        }
    }

    fn change(image: &str, containers: &[&str]) -> TriggerChange {
        TriggerChange {
            from_image: Some(image.into()),
            containers: containers.iter().map(|c| c.to_string()).collect(),
            ..TriggerChange::default()
        }
    }

    #[test]
    fn a_trigger_is_added_per_container_and_replaces_one_on_the_same_field() {
        let added = edit(
            &[],
            WorkloadKind::Deployment,
            &pod(&["app"], &[]),
            &change("web:v1", &[]),
        )
        .unwrap();
        assert_eq!(added.len(), 1);
        assert_eq!(
            added[0].field_path,
            "spec.template.spec.containers[?(@.name==\"app\")].image"
        );
        assert_eq!(added[0].from.name, "web:v1");
        let manual = TriggerChange {
            manual: Some(true),
            ..change("build/web:v2", &["app", "setup"])
        };
        let replaced = edit(
            &added,
            WorkloadKind::CronJob,
            &pod(&["app", "side"], &["setup"]),
            &manual,
        )
        .unwrap();
        assert_eq!(
            replaced.len(),
            3,
            "the CronJob path differs from the Deployment's"
        );
        assert!(replaced[1].paused);
        assert_eq!(replaced[1].from.namespace.as_deref(), Some("build"));
        assert!(replaced[2].field_path.contains("initContainers"));
        let again = edit(
            &added,
            WorkloadKind::Deployment,
            &pod(&["app"], &[]),
            &change("web:v3", &["app"]),
        )
        .unwrap();
        assert_eq!((again.len(), again[0].from.name.as_str()), (1, "web:v3"));
    }

    #[test]
    fn containers_must_exist_and_be_named_when_there_are_several() {
        let two = pod(&["app", "side"], &[]);
        let unnamed = edit(&[], WorkloadKind::Deployment, &two, &change("web:v1", &[]));
        assert!(unnamed.unwrap_err().contains("-c/--containers"));
        let missing = edit(
            &[],
            WorkloadKind::Deployment,
            &two,
            &change("web:v1", &["nope"]),
        );
        assert!(missing.unwrap_err().contains("\"nope\" does not exist"));
        let bad = edit(
            &[],
            WorkloadKind::Deployment,
            &two,
            &change("web", &["app"]),
        );
        assert!(bad.unwrap_err().contains("STREAM:TAG"));
    }

    #[test]
    fn triggers_are_removed_paused_resumed_and_listed() {
        let app = pod(&["app", "side"], &[]);
        let both = edit(
            &[],
            WorkloadKind::Deployment,
            &app,
            &change("web:v1", &["app"]),
        )
        .unwrap();
        let both = edit(
            &both,
            WorkloadKind::Deployment,
            &app,
            &change("side:v1", &["side"]),
        )
        .unwrap();
        let paused = edit(
            &both,
            WorkloadKind::Deployment,
            &app,
            &TriggerChange {
                manual: Some(true),
                ..TriggerChange::default()
            },
        )
        .unwrap();
        assert!(paused.iter().all(|t| t.paused));
        let listed = list("deployments/web", WorkloadKind::Deployment, &paused);
        assert_eq!(
            listed.lines().collect::<Vec<_>>(),
            [
                "NAME              TYPE      VALUE            AUTO",
                "deployments/web   config                     true",
                "deployments/web   image     web:v1 (app)     false",
                "deployments/web   image     side:v1 (side)   false",
            ]
        );
        let removed = edit(
            &both,
            WorkloadKind::Deployment,
            &app,
            &TriggerChange {
                remove: true,
                ..change("web:v1", &[])
            },
        )
        .unwrap();
        assert_eq!(removed.len(), 1);
        let none = TriggerChange {
            remove_all: true,
            ..TriggerChange::default()
        };
        assert!(
            edit(&both, WorkloadKind::Deployment, &app, &none)
                .unwrap()
                .is_empty()
        );
    }
}
