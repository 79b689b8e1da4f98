//! Names of image objects. Image names: Kubernetes names must be DNS subdomains, so an Image cannot
//! be called `sha256:<hex>` as on OpenShift; the name is the digest with its `:` turned into a `.`.
//! ImageStreamTag names (`stream:tag`) and ImageStreamImage names (`stream@sha256:…`, a digest
//! prefix allowed) are split here too, so that every place reading one agrees with OpenShift.

use std::fmt;

use thiserror::Error;

use crate::domain::reference::is_valid_digest;

/// A digest that cannot be an Image name, or a name that is not an Image name.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ImageNameError {
    /// The digest is not `<algorithm>:<hex>` with a known algorithm and hex of the right length.
    #[error("{digest:?} is not a sha256 or sha512 digest")]
    InvalidDigest { digest: String },
    /// The name is not `<algorithm>.<hex>`.
    #[error("{name:?} is not an Image name of the form sha256.<hex>")]
    InvalidName { name: String },
}

fn valid_parts(algorithm: &str, hex: &str) -> bool {
    is_valid_digest(&format!("{algorithm}:{hex}"))
}

/// The Image object name for a manifest digest: `sha256:ab…` becomes `sha256.ab…`.
pub fn image_name_for_digest(digest: &str) -> Result<String, ImageNameError> {
    match digest.split_once(':') {
        Some((algorithm, hex)) if valid_parts(algorithm, hex) => Ok(format!("{algorithm}.{hex}")),
        _ => Err(ImageNameError::InvalidDigest {
            digest: digest.to_owned(),
        }),
    }
}

/// The manifest digest an Image object name stands for: `sha256.ab…` becomes `sha256:ab…`.
pub fn digest_for_image_name(name: &str) -> Result<String, ImageNameError> {
    match name.split_once('.') {
        Some((algorithm, hex)) if valid_parts(algorithm, hex) => Ok(format!("{algorithm}:{hex}")),
        _ => Err(ImageNameError::InvalidName {
            name: name.to_owned(),
        }),
    }
}

/// The tag OpenShift reads when a tag name is left empty (`stream:` in a spec tag's `from`).
const DEFAULT_TAG: &str = "latest";

/// An ImageStreamTag name that is not `<stream>:<tag>`; the messages are OpenShift's.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ImageStreamTagNameError {
    /// The name has an `@`: it names an image by digest.
    #[error("{name:?} is an image stream image, not an image stream tag")]
    ImageStreamImage {
        /// The name as given.
        name: String,
    },
    /// Nothing before or after the `:`.
    #[error("image stream tag name {name:?} must have a name and a tag")]
    EmptyPart {
        /// The name as given.
        name: String,
    },
    /// No `:`, or more than one.
    #[error("expected exactly one : delimiter in the istag {name:?}")]
    Delimiter {
        /// The name as given.
        name: String,
    },
}

/// Splits an ImageStreamTag name, `<stream>:<tag>`, as OpenShift does: exactly one `:`, both parts
/// non-empty, no `@`.
pub fn parse_image_stream_tag_name(name: &str) -> Result<(&str, &str), ImageStreamTagNameError> {
    if name.contains('@') {
        return Err(ImageStreamTagNameError::ImageStreamImage {
            name: name.to_owned(),
        });
    }
    match name.split_once(':') {
        Some((_, tag)) if tag.contains(':') => Err(ImageStreamTagNameError::Delimiter {
            name: name.to_owned(),
        }),
        Some((stream, tag)) if stream.is_empty() || tag.is_empty() => {
            Err(ImageStreamTagNameError::EmptyPart {
                name: name.to_owned(),
            })
        }
        Some(parts) => Ok(parts),
        None => Err(ImageStreamTagNameError::Delimiter {
            name: name.to_owned(),
        }),
    }
}

/// Reads a spec tag's `from.name` of kind `ImageStreamTag`: `<stream>:<tag>`, or `<tag>` alone for
/// a tag of the spec tag's own stream (`None`). `<stream>:` stands for `<stream>:latest`, as
/// OpenShift reads it.
pub fn parse_tag_source_name(name: &str) -> Result<(Option<&str>, &str), ImageStreamTagNameError> {
    match name.split_once(':') {
        None if !name.is_empty() && !name.contains('@') => Ok((None, name)),
        Some((stream, "")) if !stream.is_empty() && !stream.contains('@') => {
            Ok((Some(stream), DEFAULT_TAG))
        }
        _ => parse_image_stream_tag_name(name).map(|(stream, tag)| (Some(stream), tag)),
    }
}

/// What follows the `@` of an ImageStreamImage name: a whole digest or a prefix of one. OpenShift
/// matches it against a stream's images as a prefix of the digest (`sha256:4a8c`) or of its hex
/// part (`4a8c`), so both spellings are kept apart here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestPrefix {
    /// `sha256` or `sha512` when the prefix names its algorithm.
    algorithm: Option<&'static str>,
    /// Lower-case hex, never empty: an empty prefix would match any image.
    hex: String,
}

/// Why an ImageStreamImage's image part is not a digest or a digest prefix.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DigestPrefixError {
    /// Nothing at all.
    #[error("the image digest is empty")]
    Empty,
    /// An algorithm and a `:` with nothing after them.
    #[error(
        "nothing follows {algorithm:?}: give the image's digest or a unique prefix of it, \
         such as {algorithm}:4a8c"
    )]
    EmptyHex {
        /// The algorithm as written.
        algorithm: String,
    },
    /// An algorithm no Image can have.
    #[error("{algorithm:?} is not a digest algorithm of an image: use sha256 or sha512")]
    UnknownAlgorithm {
        /// The algorithm as written.
        algorithm: String,
    },
    /// Not lower-case hex, or longer than a whole digest.
    #[error(
        "{id:?} is not an image digest or a prefix of one: use sha256:<hex> or <hex>, \
         lower-case, at most {max} hex digits"
    )]
    InvalidHex {
        /// The image part as written.
        id: String,
        /// The most hex digits a digest of the algorithm has.
        max: usize,
    },
}

/// The hex length of a whole digest of `algorithm`, for the algorithms Images are named by.
fn digest_hex_len(algorithm: &str) -> Option<(&'static str, usize)> {
    match algorithm {
        "sha256" => Some(("sha256", 64)),
        "sha512" => Some(("sha512", 128)),
        _ => None,
    }
}

impl DigestPrefix {
    /// Reads `sha256:<hex prefix>`, `sha512:<hex prefix>` or a bare `<hex prefix>`.
    pub fn parse(id: &str) -> Result<Self, DigestPrefixError> {
        if id.is_empty() {
            return Err(DigestPrefixError::Empty);
        }
        let (algorithm, hex, max) = match id.split_once(':') {
            Some((algorithm, hex)) => {
                let (known, max) = digest_hex_len(algorithm).ok_or_else(|| {
                    DigestPrefixError::UnknownAlgorithm {
                        algorithm: algorithm.to_owned(),
                    }
                })?;
                if hex.is_empty() {
                    return Err(DigestPrefixError::EmptyHex {
                        algorithm: algorithm.to_owned(),
                    });
                }
                (Some(known), hex, max)
            }
            None => (None, id, 128),
        };
        let lower_hex = hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !lower_hex || hex.len() > max {
            return Err(DigestPrefixError::InvalidHex {
                id: id.to_owned(),
                max,
            });
        }
        Ok(Self {
            algorithm,
            hex: hex.to_owned(),
        })
    }

    /// Whether `image` (a TagEvent's `image`) is a digest this prefix names. An empty image (a
    /// `reference: true` event) or any other non-digest never matches.
    pub fn matches(&self, image: &str) -> bool {
        if !is_valid_digest(image) {
            return false;
        }
        image.split_once(':').is_some_and(|(algorithm, hex)| {
            self.algorithm.is_none_or(|a| a == algorithm) && hex.starts_with(&self.hex)
        })
    }
}

impl fmt::Display for DigestPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.algorithm {
            Some(algorithm) => write!(f, "{algorithm}:{}", self.hex),
            None => f.write_str(&self.hex),
        }
    }
}

/// An ImageStreamImage name that is not `<stream>@<digest or digest prefix>`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ImageStreamImageNameError {
    /// No `@`, or more than one (OpenShift's message).
    #[error("expected exactly one @ in the isimage name {name:?}")]
    Delimiter {
        /// The name as given.
        name: String,
    },
    /// Nothing before or after the `@` (OpenShift's message).
    #[error("image stream image name {name:?} must have a name and ID")]
    EmptyPart {
        /// The name as given.
        name: String,
    },
    /// What follows the `@` is not a digest or a digest prefix.
    #[error("image stream image name {name:?}: {problem}")]
    InvalidDigest {
        /// The name as given.
        name: String,
        /// What is wrong with the digest part.
        problem: DigestPrefixError,
    },
}

fn image_part(name: &str, id: &str) -> Result<DigestPrefix, ImageStreamImageNameError> {
    DigestPrefix::parse(id).map_err(|problem| ImageStreamImageNameError::InvalidDigest {
        name: name.to_owned(),
        problem,
    })
}

/// Splits an ImageStreamImage name, `<stream>@<digest>`, as OpenShift does (exactly one `@`, both
/// parts non-empty), and reads the digest part, which may be a unique prefix (`web@sha256:4a8c`).
pub fn parse_image_stream_image_name(
    name: &str,
) -> Result<(&str, DigestPrefix), ImageStreamImageNameError> {
    match name.split_once('@') {
        Some((_, id)) if id.contains('@') => Err(ImageStreamImageNameError::Delimiter {
            name: name.to_owned(),
        }),
        Some((stream, id)) if stream.is_empty() || id.is_empty() => {
            Err(ImageStreamImageNameError::EmptyPart {
                name: name.to_owned(),
            })
        }
        Some((stream, id)) => Ok((stream, image_part(name, id)?)),
        None => Err(ImageStreamImageNameError::Delimiter {
            name: name.to_owned(),
        }),
    }
}

/// Reads a spec tag's `from.name` of kind `ImageStreamImage`: `<stream>@<digest>`, or the digest
/// alone for an image of the spec tag's own stream (`None`), as OpenShift reads it.
pub fn parse_image_source_name(
    name: &str,
) -> Result<(Option<&str>, DigestPrefix), ImageStreamImageNameError> {
    if name.contains('@') {
        return parse_image_stream_image_name(name).map(|(stream, id)| (Some(stream), id));
    }
    if name.is_empty() {
        return Err(ImageStreamImageNameError::EmptyPart {
            name: name.to_owned(),
        });
    }
    Ok((None, image_part(name, name)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "0155e28bdf2a1c6d3fd8a1bf1a8f9c09c2b9cde2e8e0fbc4c7bf5c1c6a6d8a71";

    #[test]
    fn digest_maps_to_dotted_name_and_back() {
        let digest = format!("sha256:{HEX}");
        let name = image_name_for_digest(&digest).unwrap();
        assert_eq!(name, format!("sha256.{HEX}"));
        assert_eq!(digest_for_image_name(&name).unwrap(), digest);
    }

    #[test]
    fn sha512_digests_are_accepted() {
        let hex = "ab".repeat(64);
        assert_eq!(
            image_name_for_digest(&format!("sha512:{hex}")).unwrap(),
            format!("sha512.{hex}")
        );
    }

    #[test]
    fn malformed_digests_are_rejected() {
        for digest in [
            "",
            "sha256",
            &format!("sha256.{HEX}"),
            &format!("sha256:{}", &HEX[..63]),
            &format!("sha256:{}", HEX.to_uppercase()),
            &format!("md5:{HEX}"),
            &format!("sha256:{}g", &HEX[..63]),
            &format!("sha256:{HEX}0"),
        ] {
            assert_eq!(
                image_name_for_digest(digest),
                Err(ImageNameError::InvalidDigest {
                    digest: digest.to_owned()
                }),
                "{digest}"
            );
        }
    }

    #[test]
    fn names_that_are_not_digests_are_rejected() {
        for name in ["nginx", &format!("sha256:{HEX}"), "sha256.", "sha1.abc"] {
            assert_eq!(
                digest_for_image_name(name),
                Err(ImageNameError::InvalidName {
                    name: name.to_owned()
                }),
                "{name}"
            );
        }
    }

    #[test]
    fn a_spec_tag_source_is_a_tag_of_its_own_stream_or_of_a_named_one() {
        type Case = (
            &'static str,
            Result<(Option<&'static str>, &'static str), ImageStreamTagNameError>,
        );
        let cases: [Case; 7] = [
            ("v1", Ok((None, "v1"))),
            ("web:v1", Ok((Some("web"), "v1"))),
            ("web:", Ok((Some("web"), "latest"))),
            (
                ":v1",
                Err(ImageStreamTagNameError::EmptyPart { name: ":v1".into() }),
            ),
            (
                "a:b:c",
                Err(ImageStreamTagNameError::Delimiter {
                    name: "a:b:c".into(),
                }),
            ),
            (
                "web@sha256:4a8c",
                Err(ImageStreamTagNameError::ImageStreamImage {
                    name: "web@sha256:4a8c".into(),
                }),
            ),
            (
                "",
                Err(ImageStreamTagNameError::Delimiter { name: "".into() }),
            ),
        ];
        for (name, expected) in cases {
            assert_eq!(parse_tag_source_name(name), expected, "{name}");
        }
    }

    #[test]
    fn digest_prefixes_name_their_algorithm_or_only_hex() {
        let cases: [(&str, Result<&str, DigestPrefixError>); 10] = [
            ("sha256:4a8c", Ok("sha256:4a8c")),
            ("4a8c", Ok("4a8c")),
            (&format!("sha256:{HEX}"), Ok(&format!("sha256:{HEX}"))),
            ("", Err(DigestPrefixError::Empty)),
            (
                "sha256:",
                Err(DigestPrefixError::EmptyHex {
                    algorithm: "sha256".into(),
                }),
            ),
            (
                "md5:4a8c",
                Err(DigestPrefixError::UnknownAlgorithm {
                    algorithm: "md5".into(),
                }),
            ),
            (
                ":4a8c",
                Err(DigestPrefixError::UnknownAlgorithm {
                    algorithm: "".into(),
                }),
            ),
            (
                "sha256:4A8C",
                Err(DigestPrefixError::InvalidHex {
                    id: "sha256:4A8C".into(),
                    max: 64,
                }),
            ),
            (
                "latest",
                Err(DigestPrefixError::InvalidHex {
                    id: "latest".into(),
                    max: 128,
                }),
            ),
            (
                &format!("sha256:{HEX}0"),
                Err(DigestPrefixError::InvalidHex {
                    id: format!("sha256:{HEX}0"),
                    max: 64,
                }),
            ),
        ];
        for (id, expected) in cases {
            assert_eq!(
                DigestPrefix::parse(id).map(|p| p.to_string()),
                expected.map(str::to_owned),
                "{id}"
            );
        }
    }

    #[test]
    fn a_digest_prefix_matches_digests_by_whole_prefix_or_by_hex() {
        let image = format!("sha256:{HEX}");
        let prefix = |id: &str| DigestPrefix::parse(id).unwrap();
        assert!(prefix("sha256:0155").matches(&image));
        assert!(prefix("0155e2").matches(&image));
        assert!(prefix(&image).matches(&image));
        assert!(!prefix("sha512:0155").matches(&image));
        assert!(!prefix("sha256:0156").matches(&image));
        // A reference-only event records no image, and nothing else than a digest is an image.
        assert!(!prefix("0155").matches(""));
        assert!(!prefix("0155").matches("0155"));
    }

    #[test]
    fn an_empty_digest_after_the_at_sign_is_rejected_with_a_clear_message() {
        let error = parse_image_stream_image_name("web@sha256:").unwrap_err();
        assert_eq!(
            error,
            ImageStreamImageNameError::InvalidDigest {
                name: "web@sha256:".into(),
                problem: DigestPrefixError::EmptyHex {
                    algorithm: "sha256".into()
                },
            }
        );
        assert_eq!(
            error.to_string(),
            "image stream image name \"web@sha256:\": nothing follows \"sha256\": give the \
             image's digest or a unique prefix of it, such as sha256:4a8c"
        );
        assert_eq!(
            parse_image_stream_image_name("web@")
                .unwrap_err()
                .to_string(),
            "image stream image name \"web@\" must have a name and ID"
        );
    }

    #[test]
    fn a_spec_image_source_may_leave_out_its_own_stream() {
        assert_eq!(
            parse_image_source_name("sha256:4a8c").map(|(s, id)| (s, id.to_string())),
            Ok((None, "sha256:4a8c".to_owned()))
        );
        assert_eq!(
            parse_image_source_name("web@4a8c").map(|(s, id)| (s, id.to_string())),
            Ok((Some("web"), "4a8c".to_owned()))
        );
        assert_eq!(
            parse_image_source_name(""),
            Err(ImageStreamImageNameError::EmptyPart { name: "".into() })
        );
        assert_eq!(
            parse_image_source_name("sha256:"),
            Err(ImageStreamImageNameError::InvalidDigest {
                name: "sha256:".into(),
                problem: DigestPrefixError::EmptyHex {
                    algorithm: "sha256".into()
                },
            })
        );
    }
}
