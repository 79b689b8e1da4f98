//! `tag SOURCE DEST…` and `tag -d DEST…`, as `oc tag` does them: the source is resolved (a stream
//! tag or a pull spec? which image does a stream tag point at?) and each destination's
//! `spec.tags[]` entry is written, creating its stream when it does not exist.

use std::io::Write;

use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};

use super::{Cluster, OcError, is_not_found};
use crate::api::ImageStream;
use crate::api::image_stream::{ImageStreamSpec, TagReference};
use crate::domain::image_name::parse_image_stream_image_name;
use crate::domain::oc_tag::{
    Destination, Source, SourceKind, TagFlags, destination, remove_tag, set_tag, stream_source,
    tag_reference,
};

/// The command's arguments.
#[derive(Debug, Clone, Default)]
pub struct TagArgs {
    /// `SOURCE DEST…`, or with `delete` the destinations only.
    pub names: Vec<String>,
    /// `--source`; guessed when absent (a stream of that name exists: a stream tag or image).
    pub source_kind: Option<SourceKind>,
    /// `--alias`: follow a stream tag instead of taking its current image.
    pub alias: bool,
    /// `--scheduled`, `--insecure`, `--reference`, `--reference-policy`.
    pub flags: TagFlags,
    /// `-d/--delete`.
    pub delete: bool,
}

/// Runs `tag`, printing one line per destination to `out`.
pub async fn tag(cluster: &Cluster, args: &TagArgs, out: &mut dyn Write) -> Result<(), OcError> {
    if args.delete {
        if args.names.is_empty() {
            return Err(OcError::Refused(
                "tag -d needs at least one [NAMESPACE/]STREAM:TAG".into(),
            ));
        }
        for name in &args.names {
            delete(cluster, &destination(name).map_err(OcError::Refused)?, out).await?;
        }
        return Ok(());
    }
    let [source, dests @ ..] = args.names.as_slice() else {
        return Err(OcError::Refused(
            "tag needs SOURCE and at least one DEST".into(),
        ));
    };
    if dests.is_empty() {
        return Err(OcError::Refused(
            "tag needs at least one DEST: [NAMESPACE/]STREAM:TAG".into(),
        ));
    }
    let dests = dests
        .iter()
        .map(|d| destination(d).map_err(OcError::Refused))
        .collect::<Result<Vec<_>, _>>()?;
    let source = resolve(cluster, source, args).await?;
    for dest in &dests {
        let namespace = dest.namespace.as_deref().unwrap_or(&cluster.namespace);
        let relative = relative_to(&source, namespace, &cluster.namespace);
        let reference = tag_reference(&dest.tag, &relative, &args.flags);
        write_tag(cluster, namespace, &dest.stream, |tags| {
            Some(set_tag(tags, reference.clone()))
        })
        .await?;
        writeln!(
            out,
            "Tag {}:{} set to {}.",
            dest.stream,
            dest.tag,
            source.display()
        )?;
    }
    Ok(())
}

/// The source as the destination in `dest_namespace` names it: a stream in the same namespace
/// without a namespace.
fn relative_to(source: &Source, dest_namespace: &str, default_namespace: &str) -> Source {
    let strip = |ns: &Option<String>| {
        let ns = ns.as_deref().unwrap_or(default_namespace);
        (ns != dest_namespace).then(|| ns.to_owned())
    };
    match source {
        Source::Docker(_) => source.clone(),
        Source::StreamTag { namespace, name } => Source::StreamTag {
            namespace: strip(namespace),
            name: name.clone(),
        },
        Source::StreamImage { namespace, name } => Source::StreamImage {
            namespace: strip(namespace),
            name: name.clone(),
        },
    }
}

/// What `SOURCE` names, by `--source` or, without it, by whether a stream of that name exists.
async fn resolve(cluster: &Cluster, source: &str, args: &TagArgs) -> Result<Source, OcError> {
    let parsed = stream_source(source);
    let kind = match (args.source_kind, &parsed) {
        (Some(kind), _) => kind,
        (None, Some((namespace, stream, suffix))) => {
            let ns = namespace.as_deref().unwrap_or(&cluster.namespace);
            match get_stream(cluster, ns, stream).await? {
                Some(_) if suffix.starts_with('@') => SourceKind::Imagestreamimage,
                Some(_) => SourceKind::Imagestreamtag,
                None => SourceKind::Docker,
            }
        }
        (None, None) => SourceKind::Docker,
    };
    if kind == SourceKind::Docker {
        return Ok(Source::Docker(source.to_owned()));
    }
    let Some((namespace, stream, suffix)) = parsed else {
        return Err(OcError::Refused(format!(
            "{source:?} is not an image stream {}: use [NAMESPACE/]STREAM{}",
            if kind == SourceKind::Imagestreamtag {
                "tag"
            } else {
                "image"
            },
            if kind == SourceKind::Imagestreamtag {
                ":TAG"
            } else {
                "@DIGEST"
            }
        )));
    };
    match (kind, suffix.split_at(1)) {
        (SourceKind::Imagestreamimage, ("@", digest)) => {
            // Refused here rather than written as a tag the operator can only mark invalid.
            let name = format!("{stream}@{digest}");
            parse_image_stream_image_name(&name)
                .map_err(|error| OcError::Refused(error.to_string()))?;
            Ok(Source::StreamImage { namespace, name })
        }
        (SourceKind::Imagestreamtag, (":", tag)) if args.alias => Ok(Source::StreamTag {
            namespace,
            name: format!("{stream}:{tag}"),
        }),
        (SourceKind::Imagestreamtag, (":", tag)) => {
            let ns = namespace
                .as_deref()
                .unwrap_or(&cluster.namespace)
                .to_owned();
            let found = get_stream(cluster, &ns, &stream).await?.ok_or_else(|| {
                OcError::Refused(format!("image stream {ns}/{stream} does not exist"))
            })?;
            let digest = found
                .status
                .as_ref()
                .and_then(|s| s.tag(tag))
                .and_then(|t| t.items.first())
                .map(|item| item.image.clone())
                .ok_or_else(|| {
                    OcError::Refused(format!(
                        "\"{stream}:{tag}\" is not currently pointing to an image, cannot use it as the source of a tag"
                    ))
                })?;
            Ok(Source::StreamImage {
                namespace,
                name: format!("{stream}@{digest}"),
            })
        }
        _ => Err(OcError::Refused(format!(
            "{source:?} does not name an image stream {}",
            if kind == SourceKind::Imagestreamtag {
                "tag (STREAM:TAG)"
            } else {
                "image (STREAM@DIGEST)"
            }
        ))),
    }
}

async fn delete(cluster: &Cluster, dest: &Destination, out: &mut dyn Write) -> Result<(), OcError> {
    let namespace = dest.namespace.as_deref().unwrap_or(&cluster.namespace);
    let mut found = false;
    write_tag(cluster, namespace, &dest.stream, |tags| {
        let kept = remove_tag(tags, &dest.tag);
        found = kept.is_some();
        kept
    })
    .await?;
    if !found {
        return Err(OcError::Refused(format!(
            "imagestreamtags.image.openshift.io \"{}:{}\" not found",
            dest.stream, dest.tag
        )));
    }
    writeln!(out, "Deleted tag {namespace}/{}:{}.", dest.stream, dest.tag)?;
    Ok(())
}

pub(super) async fn get_stream(
    cluster: &Cluster,
    namespace: &str,
    name: &str,
) -> Result<Option<ImageStream>, OcError> {
    let api = Api::<ImageStream>::namespaced(cluster.client.clone(), namespace);
    match api.get(name).await {
        Ok(stream) => Ok(Some(stream)),
        Err(err) if is_not_found(&err) => Ok(None),
        Err(err) => Err(err.into()),
    }
}

/// Rewrites `spec.tags` of `namespace/name` with `change` (creating the stream when it does not
/// exist and `change` adds a tag), retrying when another writer got there first. `change`
/// returning `None` writes nothing.
async fn write_tag(
    cluster: &Cluster,
    namespace: &str,
    name: &str,
    mut change: impl FnMut(&[TagReference]) -> Option<Vec<TagReference>>,
) -> Result<(), OcError> {
    let api = Api::<ImageStream>::namespaced(cluster.client.clone(), namespace);
    for _ in 0..5 {
        let Some(stream) = get_stream(cluster, namespace, name).await? else {
            let Some(tags) = change(&[]) else {
                return Ok(());
            };
            let mut stream = ImageStream::new(
                name,
                ImageStreamSpec {
                    tags,
                    ..ImageStreamSpec::default()
                },
            );
            stream.metadata.namespace = Some(namespace.to_owned());
            match api.create(&PostParams::default(), &stream).await {
                Ok(_) => return Ok(()),
                Err(kube::Error::Api(status)) if status.code == 409 => continue,
                Err(err) => return Err(err.into()),
            }
        };
        let Some(tags) = change(&stream.spec.tags) else {
            return Ok(());
        };
        let patch = serde_json::json!({
            "metadata": {"resourceVersion": stream.metadata.resource_version},
            "spec": {"tags": tags},
        });
        match api
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => return Ok(()),
            Err(kube::Error::Api(status)) if status.code == 409 => continue,
            Err(err) => return Err(err.into()),
        }
    }
    Err(OcError::Refused(format!(
        "image stream {namespace}/{name} kept changing under this command; try again"
    )))
}
