//! Deletes Image objects that no ImageStream's history references any more, after a grace period
//! (`domain::image_gc` decides). It reads every stream of the cluster, and skips a round entirely
//! while any stream cannot be read, because an unreadable stream's references are unknown. An Image
//! that cannot be read is never deleted (it is reported once); while a referenced one cannot be
//! read, its children are unknown, so that round deletes nothing either.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use kube::api::DeleteParams;
use kube::core::DeserializeGuard;
use kube::runtime::reflector::Store;
use kube::{Api, Client, ResourceExt};
use tokio::time::Instant;

use super::stores::{ImageCache, wait_until_listed};
use crate::api::image::ImageSummary;
use crate::api::{Image, ImageStream};
use crate::domain::image_gc::{ImageFacts, collectable, kept_digests};
use crate::domain::image_name::digest_for_image_name;

/// How often the collector looks: a quarter of the grace period, between 1 second and 1 minute.
pub fn gc_tick(grace: Duration) -> Duration {
    (grace / 4).clamp(Duration::from_secs(1), Duration::from_secs(60))
}

/// Runs the collector until `shutdown` resolves.
pub async fn run_image_gc(
    client: Client,
    images: ImageCache,
    streams: Store<DeserializeGuard<ImageStream>>,
    grace: Duration,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let _ = wait_until_listed(&images).await;
    let _ = wait_until_listed(&streams).await;
    let api = Api::<Image>::all(client);
    let mut unreferenced_for: HashMap<String, Duration> = HashMap::new();
    let mut reported_unreadable: HashSet<String> = HashSet::new();
    let mut ticker = tokio::time::interval(gc_tick(grace));
    let mut last = Instant::now();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => return,
            _ = ticker.tick() => {}
        }
        let elapsed = last.elapsed();
        last = Instant::now();
        let streams = streams.state();
        if streams.iter().any(|s| s.0.is_err()) {
            tracing::warn!("image garbage collection skipped: an ImageStream cannot be read");
            continue;
        }
        let referenced: Vec<String> = streams
            .iter()
            .filter_map(|s| s.0.as_ref().ok())
            .filter_map(|s| s.status.as_ref())
            .flat_map(|status| status.tags.iter())
            .flat_map(|tag| tag.items.iter())
            .map(|event| event.image.clone())
            .filter(|image| !image.is_empty())
            .collect();
        let images = images.state();
        let (readable, unreadable) = split_readable(&images);
        report_unreadable(&unreadable, &mut reported_unreadable);
        let referenced_unreadable = unreadable
            .iter()
            .filter_map(|(name, _)| digest_for_image_name(name).ok())
            .find(|digest| referenced.iter().any(|r| r == digest));
        if let Some(digest) = referenced_unreadable {
            tracing::warn!(
                %digest,
                "image garbage collection skipped: a referenced Image cannot be read, so its children are unknown"
            );
            continue;
        }
        let now = k8s_openapi::jiff::Timestamp::now();
        let facts: Vec<ImageFacts> = readable
            .into_iter()
            .filter_map(|image| {
                let digest = image.digest()?;
                let created = image.metadata.creation_timestamp.as_ref()?.0;
                let age = now.duration_since(created).unsigned_abs();
                Some(ImageFacts {
                    name: image.name_any(),
                    digest,
                    age,
                    children: image
                        .docker_image_manifests
                        .iter()
                        .map(|child| child.digest.clone())
                        .collect(),
                })
            })
            .collect();
        let kept = kept_digests(referenced.iter().map(String::as_str), &facts);
        for name in collectable(&facts, &kept, &mut unreferenced_for, elapsed, grace) {
            match api.delete(&name, &DeleteParams::default()).await {
                Ok(_) => {
                    tracing::info!(image = %name, "deleted an Image no image stream references")
                }
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(err) => {
                    tracing::warn!(image = %name, error = %err, "could not delete an unreferenced Image")
                }
            }
        }
    }
}

/// The Images that could be read, and the names of those that could not with the reason.
fn split_readable(
    images: &[std::sync::Arc<DeserializeGuard<ImageSummary>>],
) -> (Vec<&ImageSummary>, Vec<(String, String)>) {
    let mut readable = Vec::with_capacity(images.len());
    let mut unreadable = Vec::new();
    for image in images {
        match &image.0 {
            Ok(summary) => readable.push(summary),
            Err(invalid) => unreadable.push((image.name_any(), invalid.to_string())),
        }
    }
    (readable, unreadable)
}

/// Logs each unreadable Image once (while it stays unreadable), so the log says why it is kept
/// without repeating every tick.
fn report_unreadable(unreadable: &[(String, String)], reported: &mut HashSet<String>) {
    reported.retain(|name| unreadable.iter().any(|(n, _)| n == name));
    for (name, error) in unreadable {
        if reported.insert(name.clone()) {
            tracing::warn!(image = %name, %error, "an Image cannot be read; it is never collected");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_collector_ticks_four_times_per_grace_period_within_bounds() {
        assert_eq!(gc_tick(Duration::from_secs(3600)), Duration::from_secs(60));
        assert_eq!(gc_tick(Duration::from_secs(120)), Duration::from_secs(30));
        assert_eq!(gc_tick(Duration::from_secs(2)), Duration::from_secs(1));
    }
}
