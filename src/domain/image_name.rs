//! Image object names. Kubernetes names must be DNS subdomains, so an Image cannot be called
//! `sha256:<hex>` as on OpenShift; the name is the digest with its `:` turned into a `.`.
//! Every place that maps between digests and Image names goes through this module.

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
            assert!(digest_for_image_name(name).is_err(), "{name}");
        }
    }
}
