//! The grammar of a trigger `fieldPath`: which workload kinds carry triggers and where their pod spec
//! is, how a path names one container's `image`, and how that container is found in a pod spec.

use std::fmt;

use thiserror::Error;

use super::{TriggerError, clip, is_dns_label, listed, shown};

/// A kind of workload that may carry image triggers, with where it keeps its pod spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WorkloadKind {
    /// apps/v1 Deployment.
    Deployment,
    /// apps/v1 StatefulSet.
    StatefulSet,
    /// apps/v1 DaemonSet.
    DaemonSet,
    /// batch/v1 CronJob.
    CronJob,
}

impl WorkloadKind {
    /// Every supported kind.
    pub const ALL: [WorkloadKind; 4] = [
        WorkloadKind::Deployment,
        WorkloadKind::StatefulSet,
        WorkloadKind::DaemonSet,
        WorkloadKind::CronJob,
    ];

    /// The kind for an object's `apiVersion` and `kind`, or [`TriggerError::UnsupportedWorkload`].
    pub fn from_type_meta(api_version: &str, kind: &str) -> Result<Self, TriggerError> {
        Self::ALL
            .into_iter()
            .find(|candidate| candidate.api_version() == api_version && candidate.kind() == kind)
            .ok_or_else(|| TriggerError::UnsupportedWorkload {
                api_version: api_version.to_owned(),
                kind: kind.to_owned(),
            })
    }

    /// The `apiVersion` of this kind.
    pub fn api_version(self) -> &'static str {
        match self {
            Self::Deployment | Self::StatefulSet | Self::DaemonSet => "apps/v1",
            Self::CronJob => "batch/v1",
        }
    }

    /// The `kind` of this kind.
    pub fn kind(self) -> &'static str {
        match self {
            Self::Deployment => "Deployment",
            Self::StatefulSet => "StatefulSet",
            Self::DaemonSet => "DaemonSet",
            Self::CronJob => "CronJob",
        }
    }

    /// The path of the pod spec inside the object, as it starts every trigger `fieldPath`.
    pub fn pod_spec_path(self) -> &'static str {
        match self {
            Self::Deployment | Self::StatefulSet | Self::DaemonSet => "spec.template.spec",
            Self::CronJob => "spec.jobTemplate.spec.template.spec",
        }
    }
}

impl fmt::Display for WorkloadKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind())
    }
}

/// Which container list of a pod spec a field path points into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ContainerList {
    /// `containers`.
    Containers,
    /// `initContainers`.
    InitContainers,
}

impl ContainerList {
    /// The pod spec field name of the list.
    pub fn field_name(self) -> &'static str {
        match self {
            Self::Containers => "containers",
            Self::InitContainers => "initContainers",
        }
    }

    fn other(self) -> Self {
        match self {
            Self::Containers => Self::InitContainers,
            Self::InitContainers => Self::Containers,
        }
    }
}

impl fmt::Display for ContainerList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.field_name())
    }
}

/// How a field path picks its container: `[0]` or `[?(@.name=="web")]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ContainerSelector {
    /// The container at this position of its list.
    Index(usize),
    /// The container with this name.
    Name(String),
}

/// A validated trigger `fieldPath`: the `image` of one container of a workload's pod spec.
///
/// Its [`Display`](fmt::Display) is the canonical path, with a double-quoted name filter:
/// `spec.template.spec.containers[?(@.name=="web")].image`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageFieldPath {
    /// The workload kind, which fixes the pod spec prefix.
    pub workload: WorkloadKind,
    /// The list named in the path.
    pub list: ContainerList,
    /// The selector inside the brackets.
    pub selector: ContainerSelector,
}

/// Where a container sits in a pod spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ContainerLocation {
    /// The list the container is in.
    pub list: ContainerList,
    /// Its position in that list.
    pub index: usize,
}

impl ImageFieldPath {
    /// Parses `<podSpec>.containers[SEL].image` or `<podSpec>.initContainers[SEL].image`, where
    /// `<podSpec>` is [`WorkloadKind::pod_spec_path`] and SEL is a non-negative decimal index,
    /// `?(@.name=="<name>")` or `?(@.name=='<name>')` with a valid container name.
    ///
    /// Like OpenShift, no short form is accepted: the path must start with the workload's own pod spec
    /// path (OpenShift silently skips a trigger whose path does not). Whitespace is not allowed, as in
    /// OpenShift, and anything after `]` other than `.image` is refused (OpenShift also took `]image`).
    pub fn parse(field_path: &str, workload: WorkloadKind) -> Result<Self, FieldPathProblem> {
        if field_path.is_empty() {
            return Err(FieldPathProblem::Empty);
        }
        let in_pod_spec = field_path
            .strip_prefix(workload.pod_spec_path())
            .and_then(|rest| rest.strip_prefix('.'))
            .ok_or(FieldPathProblem::WrongPodSpec { workload })?;
        let (list, after_list) = [ContainerList::Containers, ContainerList::InitContainers]
            .into_iter()
            .find_map(|list| {
                let rest = in_pod_spec
                    .strip_prefix(list.field_name())?
                    .strip_prefix('[')?;
                Some((list, rest))
            })
            .ok_or(FieldPathProblem::NoContainerList)?;
        let (selector, after_selector) = after_list
            .split_once(']')
            .ok_or(FieldPathProblem::UnclosedSelector)?;
        let selector = parse_selector(selector)?;
        if after_selector != ".image" {
            return Err(FieldPathProblem::NotImage {
                rest: after_selector.to_owned(),
            });
        }
        Ok(Self {
            workload,
            list,
            selector,
        })
    }

    /// Finds the container this path targets, given the names of the pod spec's `containers` and
    /// `initContainers` in order.
    ///
    /// An index looks only in the list the path names. A name looks in that list first and then in the
    /// other one, as OpenShift does: `oc set triggers -c <init-container>` writes a `containers[...]`
    /// path even for an init container, and Kubernetes keeps names unique across both lists.
    pub fn find_container<C: AsRef<str>, I: AsRef<str>>(
        &self,
        containers: &[C],
        init_containers: &[I],
    ) -> Result<ContainerLocation, UnknownContainer> {
        let len_of = |list: ContainerList| match list {
            ContainerList::Containers => containers.len(),
            ContainerList::InitContainers => init_containers.len(),
        };
        let position_of = |list: ContainerList, name: &str| match list {
            ContainerList::Containers => containers.iter().position(|c| c.as_ref() == name),
            ContainerList::InitContainers => {
                init_containers.iter().position(|c| c.as_ref() == name)
            }
        };
        match &self.selector {
            ContainerSelector::Index(index) => {
                let len = len_of(self.list);
                if *index < len {
                    Ok(ContainerLocation {
                        list: self.list,
                        index: *index,
                    })
                } else {
                    Err(UnknownContainer::IndexOutOfRange {
                        list: self.list,
                        index: *index,
                        len,
                    })
                }
            }
            ContainerSelector::Name(name) => [self.list, self.list.other()]
                .into_iter()
                .find_map(|list| {
                    position_of(list, name).map(|index| ContainerLocation { list, index })
                })
                .ok_or_else(|| UnknownContainer::NoSuchName {
                    name: name.clone(),
                    containers: containers.iter().map(|c| c.as_ref().to_owned()).collect(),
                    init_containers: init_containers
                        .iter()
                        .map(|c| c.as_ref().to_owned())
                        .collect(),
                }),
        }
    }
}

impl fmt::Display for ImageFieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.workload.pod_spec_path(), self.list)?;
        match &self.selector {
            ContainerSelector::Index(index) => write!(f, "[{index}]")?,
            ContainerSelector::Name(name) => write!(f, "[?(@.name==\"{name}\")]")?,
        }
        f.write_str(".image")
    }
}

fn parse_selector(selector: &str) -> Result<ContainerSelector, FieldPathProblem> {
    let invalid = || FieldPathProblem::InvalidSelector {
        selector: selector.to_owned(),
    };
    if !selector.is_empty() && selector.bytes().all(|b| b.is_ascii_digit()) {
        // Too many digits for a usize is no index of any pod.
        return selector
            .parse()
            .map(ContainerSelector::Index)
            .map_err(|_| invalid());
    }
    let quoted = selector
        .strip_prefix("?(@.name==")
        .and_then(|rest| rest.strip_suffix(')'))
        .ok_or_else(invalid)?;
    let name = ['"', '\'']
        .into_iter()
        .find_map(|quote| quoted.strip_prefix(quote)?.strip_suffix(quote))
        .ok_or_else(invalid)?;
    if !is_dns_label(name) {
        return Err(FieldPathProblem::InvalidContainerName {
            name: name.to_owned(),
        });
    }
    Ok(ContainerSelector::Name(name.to_owned()))
}

/// Why a `fieldPath` is not the image of one container of the workload's pod spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldPathProblem {
    /// The path is missing or empty.
    Empty,
    /// The path does not start with the pod spec path of the workload.
    WrongPodSpec {
        /// The workload kind whose pod spec path was expected.
        workload: WorkloadKind,
    },
    /// After the pod spec comes neither `containers[` nor `initContainers[`.
    NoContainerList,
    /// The `[` of the selector is never closed.
    UnclosedSelector,
    /// The selector is neither an index nor a name filter.
    InvalidSelector {
        /// The text between the brackets.
        selector: String,
    },
    /// The name filter names something that cannot be a container name.
    InvalidContainerName {
        /// The name inside the filter.
        name: String,
    },
    /// Something other than `.image` follows the selector.
    NotImage {
        /// What follows the `]`.
        rest: String,
    },
}

impl fmt::Display for FieldPathProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str(
                "it is empty; write e.g. \"<podSpec>.containers[?(@.name==\\\"web\\\")].image\"",
            ),
            Self::WrongPodSpec { workload } => write!(
                f,
                "it must start with \"{}.\", where a {workload} keeps its pod spec",
                workload.pod_spec_path()
            ),
            Self::NoContainerList => f.write_str(
                "after the pod spec it must name \"containers[...]\" or \"initContainers[...]\"",
            ),
            Self::UnclosedSelector => {
                f.write_str("the '[' of the container selector is never closed")
            }
            Self::InvalidSelector { selector } => write!(
                f,
                "the container selector [{}] is neither an index such as [0] nor a name filter \
                 such as [?(@.name==\"web\")]",
                clip(selector)
            ),
            Self::InvalidContainerName { name } => write!(
                f,
                "{} is not a container name (lowercase letters, digits and '-', at most 63 characters)",
                shown(name)
            ),
            Self::NotImage { rest } => write!(
                f,
                "it must end in \".image\" right after the container selector, not {}; only container \
                 images can be triggered",
                shown(rest)
            ),
        }
    }
}

/// The container a field path targets is not in the pod spec.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum UnknownContainer {
    /// No container or init container has the name.
    #[error(
        "no container or init container is named {} (containers: {}; init containers: {})",
        shown(.name),
        listed(.containers),
        listed(.init_containers)
    )]
    NoSuchName {
        /// The name looked for.
        name: String,
        /// The names of the pod spec's containers.
        containers: Vec<String>,
        /// The names of the pod spec's init containers.
        init_containers: Vec<String>,
    },
    /// The index is past the end of its list.
    #[error("{list}[{index}] does not exist: the pod spec has {len} {list}")]
    IndexOutOfRange {
        /// The list indexed.
        list: ContainerList,
        /// The index asked for.
        index: usize,
        /// The length of that list.
        len: usize,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn by_name(workload: WorkloadKind, list: ContainerList, name: &str) -> ImageFieldPath {
        ImageFieldPath {
            workload,
            list,
            selector: ContainerSelector::Name(name.to_owned()),
        }
    }

    #[test]
    fn workload_kinds_map_from_type_meta_and_know_their_pod_spec() {
        let cases = [
            (
                "apps/v1",
                "Deployment",
                WorkloadKind::Deployment,
                "spec.template.spec",
            ),
            (
                "apps/v1",
                "StatefulSet",
                WorkloadKind::StatefulSet,
                "spec.template.spec",
            ),
            (
                "apps/v1",
                "DaemonSet",
                WorkloadKind::DaemonSet,
                "spec.template.spec",
            ),
            (
                "batch/v1",
                "CronJob",
                WorkloadKind::CronJob,
                "spec.jobTemplate.spec.template.spec",
            ),
        ];
        for (api_version, kind, expected, pod_spec) in cases {
            let workload = WorkloadKind::from_type_meta(api_version, kind).unwrap();
            assert_eq!(workload, expected);
            assert_eq!(workload.pod_spec_path(), pod_spec);
            assert_eq!(
                (workload.api_version(), workload.kind()),
                (api_version, kind)
            );
        }
    }

    #[test]
    fn unsupported_workloads_are_rejected() {
        for (api_version, kind) in [
            ("apps/v1", "ReplicaSet"),
            ("batch/v1", "Job"),
            ("v1", "Pod"),
            ("apps/v1beta1", "Deployment"),
            ("batch/v1", "Deployment"),
        ] {
            let error = WorkloadKind::from_type_meta(api_version, kind).unwrap_err();
            assert_eq!(error.reason(), "UnsupportedWorkload");
            assert!(
                error
                    .to_string()
                    .contains(&format!("{api_version:?} {kind:?}")),
                "{error}"
            );
        }
    }

    #[test]
    fn containers_are_found_by_index_and_by_name() {
        use ContainerList::*;
        let containers = ["web", "sidecar"];
        let init = ["migrate"];
        let at = |list, index| ContainerLocation { list, index };
        let path = |list, selector| ImageFieldPath {
            workload: WorkloadKind::Deployment,
            list,
            selector,
        };
        let name = |n: &str| ContainerSelector::Name(n.to_owned());
        let cases = [
            (
                path(Containers, ContainerSelector::Index(1)),
                at(Containers, 1),
            ),
            (
                path(InitContainers, ContainerSelector::Index(0)),
                at(InitContainers, 0),
            ),
            (path(Containers, name("sidecar")), at(Containers, 1)),
            (path(InitContainers, name("migrate")), at(InitContainers, 0)),
            // `oc set triggers -c migrate` writes a containers[...] path for an init container.
            (path(Containers, name("migrate")), at(InitContainers, 0)),
            (path(InitContainers, name("web")), at(Containers, 0)),
        ];
        for (path, expected) in cases {
            assert_eq!(
                path.find_container(&containers, &init),
                Ok(expected),
                "{path}"
            );
        }
    }

    #[test]
    fn missing_containers_are_reported_precisely() {
        use ContainerList::*;
        let containers = ["web".to_owned(), "sidecar".to_owned()];
        let none: [&str; 0] = [];
        let missing = by_name(WorkloadKind::Deployment, Containers, "api")
            .find_container(&containers, &none)
            .unwrap_err();
        assert_eq!(
            missing.to_string(),
            r#"no container or init container is named "api" (containers: web, sidecar; init containers: none)"#
        );
        let out_of_range = ImageFieldPath {
            workload: WorkloadKind::Deployment,
            list: InitContainers,
            selector: ContainerSelector::Index(0),
        }
        .find_container(&containers, &none)
        .unwrap_err();
        assert_eq!(
            out_of_range.to_string(),
            "initContainers[0] does not exist: the pod spec has 0 initContainers"
        );
    }

    #[test]
    fn long_container_lists_are_summarised() {
        let containers: Vec<String> = (0..15).map(|i| format!("c{i}")).collect();
        let none: [&str; 0] = [];
        let missing = by_name(WorkloadKind::Deployment, ContainerList::Containers, "api")
            .find_container(&containers, &none)
            .unwrap_err()
            .to_string();
        assert!(missing.contains("c9 and 5 more"), "{missing}");
    }
}
