//! Which registries image streams may import from (`--allowed-registries`): globs on
//! `host[:port]`, so a tenant cannot make the operator call hosts the platform team did not allow.
//! An empty list allows every registry.

/// The registries imports may contact.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegistryAllowlist {
    patterns: Vec<String>,
}

impl RegistryAllowlist {
    /// An allowlist from patterns such as `quay.io`, `*.example.com`, `registry.local:5000`.
    /// Patterns are compared case-insensitively; `*` stands for any run of characters; a pattern
    /// without a port allows every port of its host. Empty patterns are ignored.
    pub fn new<S: AsRef<str>>(patterns: impl IntoIterator<Item = S>) -> Self {
        Self {
            patterns: patterns
                .into_iter()
                .map(|p| p.as_ref().trim().to_ascii_lowercase())
                .filter(|p| !p.is_empty())
                .collect(),
        }
    }

    /// Whether the list allows everything (no patterns).
    pub fn allows_all(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Whether `registry` (`host[:port]`, as in an image reference; Docker Hub as `docker.io`)
    /// may be contacted.
    pub fn allows(&self, registry: &str) -> bool {
        if self.allows_all() {
            return true;
        }
        let registry = registry.to_ascii_lowercase();
        let host = host_of(&registry);
        self.patterns.iter().any(|pattern| {
            if has_port(pattern) {
                glob(pattern, &registry)
            } else {
                glob(pattern, host)
            }
        })
    }

    /// The patterns, for messages.
    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }
}

/// `host` of `host[:port]`, keeping a bracketed IPv6 address whole.
fn host_of(registry: &str) -> &str {
    if registry.starts_with('[') {
        return registry.find(']').map_or(registry, |end| &registry[..=end]);
    }
    registry.rsplit_once(':').map_or(registry, |(host, _)| host)
}

fn has_port(pattern: &str) -> bool {
    host_of(pattern).len() != pattern.len()
}

/// Whole-string glob where `*` matches any run of characters.
fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, rest) = (parts[0], &parts[1..]);
    let Some(mut remaining) = text.strip_prefix(first) else {
        return false;
    };
    let last = rest[rest.len() - 1];
    for middle in &rest[..rest.len() - 1] {
        match remaining.find(middle) {
            Some(at) => remaining = &remaining[at + middle.len()..],
            None => return false,
        }
    }
    remaining.len() >= last.len() && remaining.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_list_allows_every_registry() {
        let list = RegistryAllowlist::new(Vec::<String>::new());
        assert!(list.allows_all());
        assert!(list.allows("anything.example.com:1234"));
    }

    #[test]
    fn patterns_match_hosts_ports_and_wildcards() {
        let list = RegistryAllowlist::new([
            "quay.io",
            "*.example.com",
            "registry.local:5000",
            "docker.io",
        ]);
        let cases = [
            ("quay.io", true),
            ("quay.io:443", true),
            ("QUAY.IO", true),
            ("evilquay.io", false),
            ("a.example.com", true),
            ("a.b.example.com:8443", true),
            ("example.com", false),
            ("registry.local:5000", true),
            ("registry.local:5001", false),
            ("registry.local", false),
            ("docker.io", true),
            ("169.254.169.254", false),
        ];
        for (registry, allowed) in cases {
            assert_eq!(list.allows(registry), allowed, "{registry}");
        }
    }

    #[test]
    fn globs_anchor_both_ends() {
        assert!(glob("a*c", "abc"));
        assert!(glob("a*c", "ac"));
        assert!(!glob("a*c", "abcd"));
        assert!(glob("*", "x"));
        assert!(glob("a*b*c", "axxbyyc"));
        assert!(!glob("a*b*c", "axxc"));
        assert!(!glob("ab*ba", "aba"));
    }

    #[test]
    fn ipv6_registries_keep_their_brackets() {
        let list = RegistryAllowlist::new(["[::1]"]);
        assert!(list.allows("[::1]:5000"));
        assert!(!list.allows("[::2]:5000"));
    }
}
