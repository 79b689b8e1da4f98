//! Platforms (`os/architecture[/variant]`) and the choice of one child of a manifest list in `Legacy`
//! import mode: the tag's `importer.image.openshift.io/prefer-os` / `prefer-arch` annotations, else
//! the operator's platform, else linux/amd64, else the first entry.

use std::fmt;
use std::str::FromStr;

/// Tag annotation naming the preferred architecture of a manifest-list child.
pub const PREFER_ARCH_ANNOTATION: &str = "importer.image.openshift.io/prefer-arch";
/// Tag annotation naming the preferred operating system of a manifest-list child.
pub const PREFER_OS_ANNOTATION: &str = "importer.image.openshift.io/prefer-os";

/// An image platform.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Platform {
    /// Operating system, e.g. `linux`.
    pub os: String,
    /// CPU architecture, e.g. `amd64`, `arm64`.
    pub architecture: String,
    /// Architecture variant, e.g. `v8`, when it matters.
    pub variant: Option<String>,
}

impl Platform {
    /// linux/amd64, the fallback of every choice.
    pub fn linux_amd64() -> Self {
        Self {
            os: "linux".into(),
            architecture: "amd64".into(),
            variant: None,
        }
    }

    /// Whether `other` is this platform; a variant is compared only when this one names it.
    fn accepts(&self, other: &Platform) -> bool {
        self.os == other.os
            && self.architecture == other.architecture
            && self
                .variant
                .as_ref()
                .is_none_or(|v| other.variant.as_ref() == Some(v))
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(variant) = &self.variant {
            write!(f, "/{variant}")?;
        }
        Ok(())
    }
}

/// A platform string that is not `os/architecture[/variant]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a platform of the form os/architecture[/variant], e.g. linux/amd64")]
pub struct InvalidPlatform(pub String);

impl FromStr for Platform {
    type Err = InvalidPlatform;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.split('/').collect();
        let valid = |p: &str| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        };
        match parts.as_slice() {
            [os, arch] if valid(os) && valid(arch) => Ok(Self {
                os: os.to_string(),
                architecture: arch.to_string(),
                variant: None,
            }),
            [os, arch, variant] if valid(os) && valid(arch) && valid(variant) => Ok(Self {
                os: os.to_string(),
                architecture: arch.to_string(),
                variant: Some(variant.to_string()),
            }),
            _ => Err(InvalidPlatform(s.to_owned())),
        }
    }
}

/// Picks the manifest-list child for a `Legacy` import. `prefer_os` and `prefer_arch` come from the
/// tag's annotations; a missing half is taken from `default`. Returns `None` only for an empty list.
pub fn choose_child(
    children: &[Platform],
    prefer_os: Option<&str>,
    prefer_arch: Option<&str>,
    default: &Platform,
) -> Option<usize> {
    let mut wanted = Vec::new();
    if prefer_os.is_some() || prefer_arch.is_some() {
        wanted.push(Platform {
            os: prefer_os.unwrap_or(&default.os).to_owned(),
            architecture: prefer_arch.unwrap_or(&default.architecture).to_owned(),
            variant: None,
        });
    }
    wanted.push(default.clone());
    wanted.push(Platform::linux_amd64());
    wanted
        .iter()
        .find_map(|w| children.iter().position(|c| w.accepts(c)))
        .or(if children.is_empty() { None } else { Some(0) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Platform {
        s.parse().unwrap()
    }

    #[test]
    fn platforms_parse_with_and_without_variant_and_reject_garbage() {
        assert_eq!(p("linux/arm64/v8").variant.as_deref(), Some("v8"));
        assert_eq!(p("linux/amd64").to_string(), "linux/amd64");
        for bad in ["", "linux", "linux/", "/amd64", "a/b/c/d", "linux/amd 64"] {
            assert!(bad.parse::<Platform>().is_err(), "{bad}");
        }
    }

    #[test]
    fn the_child_is_chosen_by_annotation_then_default_then_amd64_then_first() {
        let children = [p("linux/arm64/v8"), p("linux/amd64"), p("linux/s390x")];
        let default = p("linux/amd64");
        // (prefer-os, prefer-arch, default, expected index)
        let cases: [(Option<&str>, Option<&str>, &Platform, usize); 6] = [
            (None, Some("s390x"), &default, 2),
            (Some("linux"), Some("arm64"), &default, 0),
            (None, Some("ppc64le"), &default, 1),
            (None, None, &default, 1),
            (None, None, &p("linux/arm64"), 0),
            (None, None, &p("windows/amd64"), 1),
        ];
        for (os, arch, default, expected) in cases {
            assert_eq!(
                choose_child(&children, os, arch, default),
                Some(expected),
                "{os:?} {arch:?} {default}"
            );
        }
    }

    #[test]
    fn without_any_match_the_first_child_is_taken() {
        let children = [p("linux/arm/v7"), p("linux/s390x")];
        assert_eq!(
            choose_child(&children, None, None, &Platform::linux_amd64()),
            Some(0)
        );
        assert_eq!(
            choose_child(&[], None, None, &Platform::linux_amd64()),
            None
        );
    }

    #[test]
    fn a_default_with_a_variant_matches_only_that_variant() {
        let children = [p("linux/arm/v6"), p("linux/arm/v7")];
        assert_eq!(
            choose_child(&children, None, None, &p("linux/arm/v7")),
            Some(1)
        );
    }
}
