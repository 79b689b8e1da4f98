//! Mirror policies in memory: caches of every ImageContentSourcePolicy, ImageDigestMirrorSet and
//! ImageTagMirrorSet, the [`MirrorIndex`] built from them (imports read it, they never list mirror
//! objects), and the reaction to a change: the tags whose mirror plan changed are re-imported, only
//! those, and each changed mirror object gets an Event saying it was accepted or which entries
//! were skipped.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use futures::channel::mpsc::UnboundedSender;
use kube::core::DeserializeGuard;
use kube::runtime::events::{Event, EventType};
use kube::runtime::reflector::Store;
use kube::{Resource, ResourceExt};

use super::Context;

/// The longest Warning note about one mirror object, in characters.
const MAX_NOTE_CHARS: usize = 1000;
use crate::api::image_stream::KIND_DOCKER_IMAGE;
use crate::api::{ImageContentSourcePolicy, ImageDigestMirrorSet, ImageStream, ImageTagMirrorSet};
use crate::domain::mirror_plan::{ImportKind, MirrorIndex, MirrorObjectRef};
use crate::domain::reference::ImageReference;

/// The caches of the three mirror kinds.
#[derive(Clone)]
pub struct MirrorStores {
    /// ImageContentSourcePolicies.
    pub icsp: Store<DeserializeGuard<ImageContentSourcePolicy>>,
    /// ImageDigestMirrorSets.
    pub idms: Store<DeserializeGuard<ImageDigestMirrorSet>>,
    /// ImageTagMirrorSets.
    pub itms: Store<DeserializeGuard<ImageTagMirrorSet>>,
}

impl MirrorStores {
    /// Builds the index from what the caches hold now. Objects that do not match the schema are
    /// left out (their watch logs them).
    pub fn index(&self) -> MirrorIndex {
        let icsp: Vec<_> = self.icsp.state();
        let idms: Vec<_> = self.idms.state();
        let itms: Vec<_> = self.itms.state();
        MirrorIndex::build(
            icsp.iter().filter_map(|g| g.0.as_ref().ok()),
            idms.iter().filter_map(|g| g.0.as_ref().ok()),
            itms.iter().filter_map(|g| g.0.as_ref().ok()),
        )
    }

    /// The resourceVersion and object reference of every mirror object, for change Events.
    fn versions(
        &self,
    ) -> BTreeMap<MirrorObjectRef, (String, k8s_openapi::api::core::v1::ObjectReference)> {
        let mut versions = BTreeMap::new();
        for g in self.icsp.state() {
            if let Ok(o) = &g.0 {
                versions.insert(
                    MirrorObjectRef::from(o),
                    (o.resource_version().unwrap_or_default(), o.object_ref(&())),
                );
            }
        }
        for g in self.idms.state() {
            if let Ok(o) = &g.0 {
                versions.insert(
                    MirrorObjectRef::from(o),
                    (o.resource_version().unwrap_or_default(), o.object_ref(&())),
                );
            }
        }
        for g in self.itms.state() {
            if let Ok(o) = &g.0 {
                versions.insert(
                    MirrorObjectRef::from(o),
                    (o.resource_version().unwrap_or_default(), o.object_ref(&())),
                );
            }
        }
        versions
    }
}

/// How an import of `reference` uses mirrors: by digest when pinned, else by tag.
pub fn import_kind(reference: &ImageReference) -> ImportKind {
    if reference.is_digest_pinned() {
        ImportKind::ByDigest
    } else {
        ImportKind::ByTag
    }
}

/// The tags of `stream` whose mirror plan differs between `before` and `after`.
pub fn affected_tags(
    stream: &ImageStream,
    before: &MirrorIndex,
    after: &MirrorIndex,
) -> Vec<String> {
    stream
        .spec
        .tags
        .iter()
        .filter(|tag| !tag.is_reference())
        .filter_map(|tag| {
            let from = tag.from.as_ref()?;
            if from.kind.as_deref() != Some(KIND_DOCKER_IMAGE) {
                return None;
            }
            let reference = ImageReference::parse(from.name.as_deref()?).ok()?;
            let kind = import_kind(&reference);
            (before.plan(&reference, kind) != after.plan(&reference, kind))
                .then(|| tag.name.clone())
        })
        .collect()
}

/// Rebuilds the index whenever `changes` fires (debounced), marks the tags whose plan changed for
/// a fresh import, wakes their streams through `wake`, and reports on changed mirror objects.
pub async fn maintain_index(
    ctx: Arc<Context>,
    stores: MirrorStores,
    mut changes: futures::channel::mpsc::UnboundedReceiver<()>,
    wake: UnboundedSender<super::engine::StreamRef>,
) {
    use futures::StreamExt;
    // Objects accepted before this start were announced when they changed (by an earlier
    // instance or another replica): a restart announces nothing again. An object with skipped
    // entries is reported once more, since the problem stands.
    let index = ctx.mirrors.current();
    let mut reported: HashMap<MirrorObjectRef, String> = stores
        .versions()
        .into_iter()
        .filter(|(object, _)| index.problems(object).is_empty())
        .map(|(object, (version, _))| (object, version))
        .collect();
    report_objects(&ctx, &stores, &mut reported).await;
    while changes.next().await.is_some() {
        // Let a burst of watch events (an apply of several objects) settle into one rebuild.
        tokio::time::sleep(Duration::from_millis(200)).await;
        while let Ok(()) = changes.try_recv() {}
        let after = stores.index();
        let before = ctx.mirrors.replace(after.clone());
        if *before != after {
            let now = tokio::time::Instant::now();
            let mut woken = 0;
            for guard in ctx.streams.state() {
                let Ok(stream) = &guard.0 else { continue };
                if !ctx.serves(stream.metadata.namespace.as_deref()) {
                    continue;
                }
                let tags = affected_tags(stream, &before, &after);
                if tags.is_empty() {
                    continue;
                }
                woken += 1;
                let key = super::context::object_key(stream);
                ctx.with_memory(&key, |memory| {
                    memory
                        .mirrors_changed
                        .extend(tags.into_iter().map(|tag| (tag, now)))
                });
                let _ = wake.unbounded_send(super::stores::stream_ref(
                    stream.metadata.namespace.as_deref().unwrap_or_default(),
                    &stream.name_any(),
                ));
            }
            tracing::info!(
                streams = woken,
                "mirror policies changed; re-importing the tags they affect"
            );
        }
        report_objects(&ctx, &stores, &mut reported).await;
    }
}

/// The Event about one mirror object: `Accepted` with the number of sources it contributes, or a
/// Warning listing (up to [`MAX_NOTE_CHARS`]) the entries that were skipped.
pub fn object_event(index: &MirrorIndex, object: &MirrorObjectRef) -> Event {
    let problems = index.problems(object);
    if problems.is_empty() {
        return Event {
            type_: EventType::Normal,
            reason: "Accepted".into(),
            note: Some(format!(
                "{} mirror source(s) in use",
                index.sources_of(object).len()
            )),
            action: "IndexMirrors".into(),
            secondary: None,
        };
    }
    let note = problems
        .iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join("; ");
    Event {
        type_: EventType::Warning,
        reason: problems[0].reason().into(),
        note: Some(crate::domain::text::shorten(&note, MAX_NOTE_CHARS)),
        action: "IndexMirrors".into(),
        secondary: None,
    }
}

/// One Event per new resourceVersion of a mirror object: accepted, or which entries were skipped.
async fn report_objects(
    ctx: &Context,
    stores: &MirrorStores,
    reported: &mut HashMap<MirrorObjectRef, String>,
) {
    let index = ctx.mirrors.current();
    let versions = stores.versions();
    reported.retain(|object, _| versions.contains_key(object));
    for (object, (version, reference)) in versions {
        if reported.get(&object) == Some(&version) {
            continue;
        }
        let event = object_event(&index, &object);
        let mut result = ctx.events.publish(&event, &reference).await;
        if let Err(kube::Error::Api(status)) = &result
            && status.code == 422
        {
            // Kubernetes before 1.22 insists that an Event's regarding namespace equals the Event's
            // own, which cluster-scoped objects cannot satisfy; their Events live in `default`.
            let mut in_default = reference.clone();
            in_default.namespace = Some("default".into());
            result = ctx.events.publish(&event, &in_default).await;
        }
        if let Err(err) = result {
            tracing::warn!(object = %object, error = %err, "could not publish an Event");
        }
        reported.insert(object, version);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ImageContentSourcePolicy;

    #[test]
    fn a_long_warning_about_many_bad_entries_is_cut_at_a_character_boundary() {
        // Upper-case repository paths are rejected; with accents, the note runs past the limit on a
        // byte that is inside a character.
        let entries: Vec<_> = (0..40)
            .map(|i| serde_json::json!({"source": format!("quay.io/Éé{i}"), "mirrors": ["mirror.local/x"]}))
            .collect();
        let icsp: ImageContentSourcePolicy = serde_json::from_value(serde_json::json!({
            "apiVersion": "operator.openshift.io/v1alpha1",
            "kind": "ImageContentSourcePolicy",
            "metadata": {"name": "accents"},
            "spec": {"repositoryDigestMirrors": entries}
        }))
        .unwrap();
        let index = MirrorIndex::build([&icsp], [], []);
        let event = object_event(&index, &MirrorObjectRef::from(&icsp));
        assert_eq!(event.type_, EventType::Warning);
        let note = event.note.unwrap();
        assert_eq!(note.chars().count(), MAX_NOTE_CHARS + 1, "{note}");
        assert!(note.ends_with('…'));
        assert!(note.starts_with("spec.repositoryDigestMirrors[0]: source \"quay.io/Éé0\""));
    }

    #[test]
    fn a_good_object_is_accepted_with_its_source_count() {
        let icsp: ImageContentSourcePolicy = serde_json::from_value(serde_json::json!({
            "apiVersion": "operator.openshift.io/v1alpha1",
            "kind": "ImageContentSourcePolicy",
            "metadata": {"name": "good"},
            "spec": {"repositoryDigestMirrors": [
                {"source": "quay.io/a", "mirrors": ["mirror.local/a"]},
                {"source": "quay.io/b", "mirrors": ["mirror.local/b"]}
            ]}
        }))
        .unwrap();
        let index = MirrorIndex::build([&icsp], [], []);
        let event = object_event(&index, &MirrorObjectRef::from(&icsp));
        assert_eq!(event.type_, EventType::Normal);
        assert_eq!(event.reason, "Accepted");
        assert_eq!(event.note.as_deref(), Some("2 mirror source(s) in use"));
    }
}
