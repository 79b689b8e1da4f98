//! `import-image NAME[:TAG] [--from REF] [--confirm] [--all] …`, as `oc import-image` does it: the
//! stream or tag is created or changed by [`crate::domain::import_image`]'s rules, an import is
//! requested from the operator (the `imagestream-operator/import-requested` annotation, set in the
//! same write), and the command waits until the operator has served that request, then prints
//! the result — or the tag's condition, with a non-zero exit, when the import failed.

use std::io::Write;
use std::time::{Duration, Instant};

use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};

use super::tag::get_stream;
use super::{Cluster, OcError};
use crate::api::ImageStream;
use crate::controller::IMPORT_REQUESTED_ANNOTATION;
use crate::domain::import_image::{ImportPlan, ImportRequest, TagResult, plan, result};

/// How often the stream is read while waiting.
const POLL: Duration = Duration::from_millis(300);

/// `NAME[:TAG]` split.
pub fn name_and_tag(value: &str) -> Result<(String, Option<String>), OcError> {
    let (name, tag) = match value.split_once(':') {
        Some((name, tag)) => (name, Some(tag.to_owned())),
        None => (value, None),
    };
    let valid = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && tag.as_deref().is_none_or(|t| {
            !t.is_empty()
                && t.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        });
    if !valid {
        return Err(OcError::Refused(format!(
            "{value:?} is not an image stream name: use NAME or NAME:TAG (lower-case name)"
        )));
    }
    Ok((name.to_owned(), tag))
}

/// Runs `import-image`: writes, waits up to `timeout` for the operator, prints the result to
/// `out`. Returns the imported tags' results; a failed tag is an [`OcError::ImportFailed`].
pub async fn import_image(
    cluster: &Cluster,
    request: &ImportRequest,
    timeout: Duration,
    out: &mut dyn Write,
) -> Result<(), OcError> {
    let api = Api::<ImageStream>::namespaced(cluster.client.clone(), &cluster.namespace);
    let existing = get_stream(cluster, &cluster.namespace, &request.stream).await?;
    let planned = plan(request, existing.as_ref().map(|s| &s.spec)).map_err(OcError::Refused)?;
    // A value never used before: the operator serves each value once.
    let marker = format!(
        "{}-{:08x}",
        k8s_openapi::jiff::Timestamp::now(),
        rand::random::<u32>()
    );
    match (&planned.plan, existing) {
        (ImportPlan::Create(spec), _) => {
            let mut stream = ImageStream::new(&request.stream, spec.clone());
            stream.metadata.namespace = Some(cluster.namespace.clone());
            stream.metadata.annotations =
                Some([(IMPORT_REQUESTED_ANNOTATION.to_owned(), marker.clone())].into());
            api.create(&PostParams::default(), &stream).await?;
        }
        (ImportPlan::SetTags(tags), Some(stream)) => {
            let patch = serde_json::json!({
                "metadata": {
                    "resourceVersion": stream.metadata.resource_version,
                    "annotations": {IMPORT_REQUESTED_ANNOTATION: marker},
                },
                "spec": {"tags": tags},
            });
            api.patch(
                &request.stream,
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await?;
        }
        (ImportPlan::Reimport, _) | (ImportPlan::SetTags(_), None) => {
            let patch = serde_json::json!({
                "metadata": {"annotations": {IMPORT_REQUESTED_ANNOTATION: marker}},
            });
            api.patch(
                &request.stream,
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await?;
        }
    }
    let stream = wait_until_served(&api, &request.stream, &marker, &planned.tags, timeout)
        .await
        .map_err(|err| match err {
            OcError::Timeout { timeout, .. } => OcError::Timeout {
                stream: format!("{}/{}", cluster.namespace, request.stream),
                timeout,
            },
            other => other,
        })?;
    writeln!(
        out,
        "imagestream.image.openshift.io/{} imported",
        request.stream
    )?;
    let mut failure = None;
    for tag in &planned.tags {
        match result(stream.status.as_ref(), tag) {
            TagResult::Imported { reference, digest } => {
                print_imported(cluster, &request.stream, tag, &reference, &digest, out).await?;
            }
            TagResult::Failed { reason, message } => {
                writeln!(
                    out,
                    "\n{tag}\n  ! error: Import failed ({reason}): {message}"
                )?;
                failure.get_or_insert(OcError::ImportFailed {
                    stream: request.stream.clone(),
                    tag: tag.clone(),
                    reason,
                    message,
                });
            }
            TagResult::Pending => {}
        }
    }
    failure.map_or(Ok(()), Err)
}

/// Reads the stream until the operator has served `marker` and every tag has a result.
async fn wait_until_served(
    api: &Api<ImageStream>,
    name: &str,
    marker: &str,
    tags: &[String],
    timeout: Duration,
) -> Result<ImageStream, OcError> {
    let deadline = Instant::now() + timeout;
    loop {
        let stream = api.get(name).await?;
        let status = stream.status.as_ref();
        let served = status.and_then(|s| s.served_import_request.as_deref()) == Some(marker);
        if served && tags.iter().all(|t| result(status, t) != TagResult::Pending) {
            return Ok(stream);
        }
        if Instant::now() >= deadline {
            return Err(OcError::Timeout {
                stream: name.to_owned(),
                timeout: humantime::format_duration(timeout).to_string(),
            });
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The imported tag, as `oc describe istag` shows it.
async fn print_imported(
    cluster: &Cluster,
    stream: &str,
    tag: &str,
    reference: &str,
    digest: &str,
    out: &mut dyn Write,
) -> Result<(), OcError> {
    let described = super::describe::describe_istag(
        &cluster.client,
        &cluster.namespace,
        &format!("{stream}:{tag}"),
    )
    .await;
    match described {
        Ok(text) => write!(out, "\n{text}")?,
        // The Image may not be readable (RBAC) or may be gone; the tag's own record says enough.
        Err(_) => writeln!(
            out,
            "\nImage Name:\t{stream}:{tag}\nDocker Image:\t{reference}\nName:\t\t{digest}"
        )?,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_may_carry_a_tag() {
        assert_eq!(name_and_tag("app").unwrap(), ("app".into(), None));
        assert_eq!(
            name_and_tag("app:1.0").unwrap(),
            ("app".into(), Some("1.0".into()))
        );
        for bad in ["App", "app:", ":v1", "a/b", "app:v/1"] {
            assert!(name_and_tag(bad).is_err(), "{bad}");
        }
    }
}
