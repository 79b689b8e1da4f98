//! Registry credentials as they come out of a pull secret. The type never prints its secrets: its
//! `Debug` shows only the user name and where the credential came from.

use sha2::{Digest, Sha256};

/// Credentials for one registry, taken from one entry of a pull secret.
#[derive(Clone, PartialEq, Eq)]
pub struct RegistryCredential {
    /// The user name (`username`, or the user part of `auth`).
    pub username: String,
    /// The password (`password`, or the password part of `auth`).
    pub password: String,
    /// An OAuth2 refresh token (`identitytoken`); when set, Bearer tokens are obtained with a
    /// refresh-token grant instead of Basic credentials.
    pub identity_token: Option<String>,
    /// Where the credential came from, for messages: `<namespace>/<secret>`, key `<key>`.
    pub source: String,
}

impl RegistryCredential {
    /// A stable, non-reversible identity of the secret material, for cache keys: two credentials with
    /// the same identity are interchangeable, different ones never share a cached token.
    pub fn identity(&self) -> String {
        let mut hasher = Sha256::new();
        for part in [
            self.username.as_bytes(),
            self.password.as_bytes(),
            self.identity_token.as_deref().unwrap_or("").as_bytes(),
        ] {
            hasher.update((part.len() as u64).to_be_bytes());
            hasher.update(part);
        }
        hex::encode(&hasher.finalize()[..16])
    }
}

impl std::fmt::Debug for RegistryCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryCredential")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field(
                "identity_token",
                &self.identity_token.as_ref().map(|_| "<redacted>"),
            )
            .field("source", &self.source)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn credential(user: &str, password: &str) -> RegistryCredential {
        RegistryCredential {
            username: user.into(),
            password: password.into(),
            identity_token: None,
            source: "ns/secret".into(),
        }
    }

    #[test]
    fn debug_output_never_contains_the_secret() {
        let mut c = credential("alice", "hunter2");
        c.identity_token = Some("refresh-me".into());
        let printed = format!("{c:?}");
        assert!(printed.contains("alice"));
        assert!(!printed.contains("hunter2"));
        assert!(!printed.contains("refresh-me"));
    }

    #[test]
    fn identity_differs_when_any_secret_part_differs_and_not_otherwise() {
        let a = credential("alice", "one");
        assert_eq!(a.identity(), credential("alice", "one").identity());
        assert_ne!(a.identity(), credential("alice", "two").identity());
        assert_ne!(a.identity(), credential("bob", "one").identity());
        // Length-prefixing keeps `ab`+`c` apart from `a`+`bc`.
        assert_ne!(
            credential("ab", "c").identity(),
            credential("a", "bc").identity()
        );
        assert!(!a.identity().contains("one"));
    }
}
