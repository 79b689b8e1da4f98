//! Which Image objects to delete: those no stream's history references (directly, or as a child
//! of a referenced manifest list) for a whole grace period, and not younger than the grace period
//! themselves, so an Image created by an import whose status write is still on its way survives.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

/// What the collector needs to know about one Image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageFacts {
    /// The Image's name (`sha256.<hex>`).
    pub name: String,
    /// The digest it stands for.
    pub digest: String,
    /// Age of the Image object.
    pub age: Duration,
    /// Digests of its manifest-list children, if it is a list.
    pub children: Vec<String>,
}

/// Digests that must be kept: every referenced digest, and the children of referenced lists.
pub fn kept_digests<'a>(
    referenced: impl IntoIterator<Item = &'a str>,
    images: &[ImageFacts],
) -> HashSet<String> {
    let mut kept: HashSet<String> = referenced.into_iter().map(str::to_owned).collect();
    for image in images {
        if kept.contains(&image.digest) {
            kept.extend(image.children.iter().cloned());
        }
    }
    kept
}

/// Updates `unreferenced_for` (how long each Image has been seen unreferenced, advanced by
/// `elapsed` since the last round) and returns the names to delete now.
pub fn collectable(
    images: &[ImageFacts],
    kept: &HashSet<String>,
    unreferenced_for: &mut HashMap<String, Duration>,
    elapsed: Duration,
    grace: Duration,
) -> Vec<String> {
    let present: HashSet<&str> = images.iter().map(|i| i.name.as_str()).collect();
    unreferenced_for.retain(|name, _| present.contains(name.as_str()));
    let mut delete = Vec::new();
    for image in images {
        if kept.contains(&image.digest) {
            unreferenced_for.remove(&image.name);
            continue;
        }
        let waited = unreferenced_for
            .entry(image.name.clone())
            .or_insert(Duration::ZERO);
        *waited += elapsed;
        if *waited >= grace && image.age >= grace {
            delete.push(image.name.clone());
        }
    }
    delete.sort();
    delete
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(name: &str, age: u64, children: &[&str]) -> ImageFacts {
        ImageFacts {
            name: format!("sha256.{name}"),
            digest: format!("sha256:{name}"),
            age: Duration::from_secs(age),
            children: children.iter().map(|c| format!("sha256:{c}")).collect(),
        }
    }

    #[test]
    fn children_of_a_referenced_list_are_kept() {
        let images = [
            image("list", 100, &["a", "b"]),
            image("a", 100, &[]),
            image("b", 100, &[]),
            image("c", 100, &[]),
        ];
        let kept = kept_digests(["sha256:list"], &images);
        assert!(kept.contains("sha256:a") && kept.contains("sha256:b"));
        assert!(!kept.contains("sha256:c"));
    }

    #[test]
    fn an_image_is_deleted_only_after_a_whole_grace_period_unreferenced() {
        let images = [image("a", 1000, &[])];
        let kept = HashSet::new();
        let mut waited = HashMap::new();
        let grace = Duration::from_secs(60);
        assert!(
            collectable(&images, &kept, &mut waited, Duration::from_secs(30), grace).is_empty()
        );
        assert_eq!(
            collectable(&images, &kept, &mut waited, Duration::from_secs(30), grace),
            ["sha256.a"]
        );
    }

    #[test]
    fn a_reference_resets_the_wait() {
        let images = [image("a", 1000, &[])];
        let mut waited = HashMap::new();
        let grace = Duration::from_secs(60);
        collectable(
            &images,
            &HashSet::new(),
            &mut waited,
            Duration::from_secs(50),
            grace,
        );
        let kept: HashSet<String> = ["sha256:a".to_string()].into();
        collectable(&images, &kept, &mut waited, Duration::from_secs(50), grace);
        assert!(
            collectable(
                &images,
                &HashSet::new(),
                &mut waited,
                Duration::from_secs(50),
                grace
            )
            .is_empty()
        );
    }

    #[test]
    fn a_young_image_survives_even_when_unreferenced() {
        let images = [image("a", 5, &[])];
        let mut waited = HashMap::new();
        let grace = Duration::from_secs(60);
        assert!(
            collectable(
                &images,
                &HashSet::new(),
                &mut waited,
                Duration::from_secs(120),
                grace
            )
            .is_empty()
        );
    }

    #[test]
    fn images_that_are_gone_are_forgotten() {
        let mut waited = HashMap::new();
        let grace = Duration::from_secs(60);
        collectable(
            &[image("a", 1000, &[])],
            &HashSet::new(),
            &mut waited,
            Duration::from_secs(10),
            grace,
        );
        collectable(
            &[],
            &HashSet::new(),
            &mut waited,
            Duration::from_secs(10),
            grace,
        );
        assert!(waited.is_empty());
    }
}
