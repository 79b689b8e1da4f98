//! `describe imagestream`, `describe istag` and `get istag`: read the stream (for `describe istag`
//! also the Image of its current digest, for `describe imagestream` also the workloads of the
//! stream's namespace that carry image triggers) and render them with
//! [`crate::domain::describe_text`]. Nothing is written to the cluster.

use futures::future::try_join_all;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DynamicObject, ListParams};
use kube::{Api, Client};
use thiserror::Error;

use crate::api::{Image, ImageStream};
use crate::domain::describe_text::{
    ImageStreamTagNameError, TagImageProblem, TriggeringWorkload, current_tag_image,
    describe_image_stream, describe_image_stream_tag, image_stream_tag_table,
    parse_image_stream_tag_name, triggering_workload,
};
use crate::domain::image_name::image_name_for_digest;
use crate::domain::trigger_annotation::WorkloadKind;
use crate::oc::is_not_found;

/// Why a describe or `get istag` could not be answered. Missing objects read as kubectl says them.
#[derive(Debug, Error)]
pub enum DescribeError {
    /// The image stream does not exist.
    #[error("imagestreams.image.openshift.io \"{name}\" not found")]
    StreamNotFound {
        /// The namespace looked in.
        namespace: String,
        /// The stream's name.
        name: String,
    },
    /// The stream exists but has no such tag, in spec or status.
    #[error("imagestreamtags.image.openshift.io \"{name_tag}\" not found")]
    TagNotFound {
        /// `<stream>:<tag>`.
        name_tag: String,
    },
    /// The tag exists but has no image: never imported, failing, or `reference: true`.
    #[error("imagestreamtags.image.openshift.io \"{name_tag}\" not found: {problem}")]
    TagHasNoImage {
        /// `<stream>:<tag>`.
        name_tag: String,
        /// What the tag records instead of an image.
        problem: TagImageProblem,
    },
    /// The argument is not `<stream>:<tag>`.
    #[error(transparent)]
    InvalidTagName(#[from] ImageStreamTagNameError),
    /// Reading the image stream failed.
    #[error("could not read image stream {namespace}/{name}: {source}")]
    GetStream {
        /// The stream's namespace.
        namespace: String,
        /// The stream's name.
        name: String,
        /// The API error.
        source: kube::Error,
    },
    /// Listing image streams failed.
    #[error("could not list image streams{}: {source}", in_namespace(namespace.as_deref()))]
    ListStreams {
        /// The namespace listed; `None` for all namespaces.
        namespace: Option<String>,
        /// The API error.
        source: kube::Error,
    },
    /// Reading the Image of the tag's current digest failed.
    #[error("could not read image {name}: {source}")]
    GetImage {
        /// The Image object's name.
        name: String,
        /// The API error.
        source: kube::Error,
    },
    /// Listing the workloads of one kind, to find their triggers, failed.
    #[error("could not list {kind}s in namespace {namespace} to find image triggers: {source}")]
    ListWorkloads {
        /// The kind listed.
        kind: WorkloadKind,
        /// The namespace listed.
        namespace: String,
        /// The API error.
        source: kube::Error,
    },
}

impl DescribeError {
    /// The PascalCase word for the failure, as kubectl's `Error from server (<reason>)`.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::StreamNotFound { .. } | Self::TagNotFound { .. } | Self::TagHasNoImage { .. } => {
                "NotFound"
            }
            Self::InvalidTagName(_) => "BadRequest",
            Self::GetStream { .. } => "GetImageStream",
            Self::ListStreams { .. } => "ListImageStreams",
            Self::GetImage { .. } => "GetImage",
            Self::ListWorkloads { .. } => "ListWorkloads",
        }
    }

    fn for_tag(name_tag: &str, problem: TagImageProblem) -> Self {
        match problem {
            TagImageProblem::NoSuchTag { .. } => Self::TagNotFound {
                name_tag: name_tag.to_owned(),
            },
            problem @ TagImageProblem::NoImage { .. } => Self::TagHasNoImage {
                name_tag: name_tag.to_owned(),
                problem,
            },
        }
    }
}

fn in_namespace(namespace: Option<&str>) -> String {
    namespace
        .map(|namespace| format!(" in namespace {namespace}"))
        .unwrap_or_default()
}

/// `describe imagestream NAME`: the stream `namespace/name`, its tags with their history and
/// import errors, and the workloads of `namespace` whose triggers follow each tag.
pub async fn describe_stream(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Result<String, DescribeError> {
    let stream = get_stream(client, namespace, name).await?;
    let workloads = triggering_workloads(client, namespace).await?;
    Ok(describe_image_stream(&stream, &workloads, Timestamp::now()))
}

/// `describe istag NAME:TAG`: the current image of the tag, with the metadata of its Image object
/// when that exists. A tag without an image is an error, as on OpenShift.
pub async fn describe_istag(
    client: &Client,
    namespace: &str,
    name_tag: &str,
) -> Result<String, DescribeError> {
    let (name, tag) = parse_image_stream_tag_name(name_tag)?;
    let stream = get_stream(client, namespace, name).await?;
    let digest = current_tag_image(&stream, tag)
        .map_err(|problem| DescribeError::for_tag(name_tag, problem))?
        .image
        .clone();
    let image = get_image(client, &digest).await?;
    describe_image_stream_tag(&stream, tag, image.as_ref(), Timestamp::now())
        .map_err(|problem| DescribeError::for_tag(name_tag, problem))
}

/// `get istag`: a table of every tag of every stream in `namespace`, or in all namespaces when
/// `None` (with a NAMESPACE column).
pub async fn get_istags(client: &Client, namespace: Option<&str>) -> Result<String, DescribeError> {
    let api: Api<ImageStream> = match namespace {
        Some(namespace) => Api::namespaced(client.clone(), namespace),
        None => Api::all(client.clone()),
    };
    let streams =
        api.list(&ListParams::default())
            .await
            .map_err(|source| DescribeError::ListStreams {
                namespace: namespace.map(str::to_owned),
                source,
            })?;
    Ok(image_stream_tag_table(
        &streams.items,
        namespace,
        Timestamp::now(),
    ))
}

async fn get_stream(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Result<ImageStream, DescribeError> {
    let api = Api::<ImageStream>::namespaced(client.clone(), namespace);
    match api.get(name).await {
        Ok(stream) => Ok(stream),
        Err(error) if is_not_found(&error) => Err(DescribeError::StreamNotFound {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        }),
        Err(source) => Err(DescribeError::GetStream {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            source,
        }),
    }
}

/// The Image object of `digest`; `None` when there is none (not created yet, or collected).
async fn get_image(client: &Client, digest: &str) -> Result<Option<Image>, DescribeError> {
    let Ok(name) = image_name_for_digest(digest) else {
        return Ok(None);
    };
    Api::<Image>::all(client.clone())
        .get_opt(&name)
        .await
        .map_err(|source| DescribeError::GetImage { name, source })
}

/// Every workload of the four triggerable kinds in `namespace` that carries the trigger annotation.
async fn triggering_workloads(
    client: &Client,
    namespace: &str,
) -> Result<Vec<TriggeringWorkload>, DescribeError> {
    let lists = WorkloadKind::ALL.map(|kind| list_triggering(client, namespace, kind));
    Ok(try_join_all(lists).await?.into_iter().flatten().collect())
}

async fn list_triggering(
    client: &Client,
    namespace: &str,
    kind: WorkloadKind,
) -> Result<Vec<TriggeringWorkload>, DescribeError> {
    // Listed untyped: only the annotation and container names are read, and an object that does not
    // match its typed schema must not hide the others.
    let api = Api::<DynamicObject>::namespaced_with(
        client.clone(),
        namespace,
        &super::workload_resource(kind),
    );
    let objects = match api.list(&ListParams::default()).await {
        Ok(list) => list.items,
        // batch/v1 CronJob is not served before Kubernetes 1.21: no CronJobs, then.
        Err(error) if is_not_found(&error) => return Ok(Vec::new()),
        Err(source) => {
            return Err(DescribeError::ListWorkloads {
                kind,
                namespace: namespace.to_owned(),
                source,
            });
        }
    };
    Ok(objects
        .iter()
        .filter_map(|object| triggering_workload(kind, object))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_objects_read_as_kubectl_says_them() {
        let stream = DescribeError::StreamNotFound {
            namespace: "ns".into(),
            name: "app".into(),
        };
        assert_eq!(
            stream.to_string(),
            r#"imagestreams.image.openshift.io "app" not found"#
        );
        let tag = DescribeError::for_tag("app:v2", TagImageProblem::NoSuchTag { tag: "v2".into() });
        assert_eq!(
            tag.to_string(),
            r#"imagestreamtags.image.openshift.io "app:v2" not found"#
        );
        assert_eq!(tag.reason(), "NotFound");
    }

    #[test]
    fn a_tag_without_an_image_says_why() {
        let problem = TagImageProblem::NoImage {
            tag: "v1".into(),
            last_failure: Some("Import failed (NotFound): manifest unknown".into()),
        };
        assert_eq!(
            DescribeError::for_tag("app:v1", problem).to_string(),
            r#"imagestreamtags.image.openshift.io "app:v1" not found: tag "v1" has no image yet; Import failed (NotFound): manifest unknown"#
        );
    }

    #[test]
    fn every_workload_kind_is_listed_at_its_own_api() {
        let paths: Vec<String> = WorkloadKind::ALL
            .into_iter()
            .map(|kind| {
                let resource = crate::oc::workload_resource(kind);
                format!("{}/{}", resource.api_version, resource.plural)
            })
            .collect();
        assert_eq!(
            paths,
            [
                "apps/v1/deployments",
                "apps/v1/statefulsets",
                "apps/v1/daemonsets",
                "batch/v1/cronjobs"
            ]
        );
    }
}
