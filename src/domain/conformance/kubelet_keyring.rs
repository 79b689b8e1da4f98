//! Cases of kubernetes `pkg/credentialprovider/keyring_test.go`: which pull-secret keys serve an
//! image, and in which order, as the kubelet matches `imagePullSecrets`. Read from the 1.33-era
//! master (the `TestURLsMatch` table with the `*kubernetes.io` rows, stored as
//! aramase/kubernetes@6e757771; the code under test is `keyring.go`'s `BasicDockerKeyring.Add`,
//! `URLsMatch`, `Lookup` and `isDefaultRegistryMatch`, unchanged in the `TrackedAuthConfig`
//! master). The kubelet looks up the image name after normalising it (`docker.io/library/…`);
//! [`Keyring::lookup`] reads short names the same way, so the upstream inputs are kept as written.
//! Not ported: `TestProvidersDockerKeyring` / `TestLazyKeyring` (node credential providers; this
//! crate has none).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};

use crate::domain::keyring::{Keyring, PullSecret, PullSecretFormat, RegistryPattern};

/// A keyring of one `.dockercfg` secret holding `registries` (key → entry), as the upstream tests
/// build one with `readDockerConfigFileFromBytes` (or a `DockerConfig` literal) and `Add`.
fn keyring(registries: &[(&str, Value)]) -> Keyring {
    let config: Map<String, Value> = registries
        .iter()
        .map(|(key, entry)| ((*key).to_owned(), entry.clone()))
        .collect();
    let payload = serde_json::to_vec(&config).unwrap();
    let secret = PullSecret::parse("ns", "pull", PullSecretFormat::DockerCfg, &payload).unwrap();
    Keyring::new("ns", [secret])
}

/// The entry every glob test stores: `foo:bar` in `auth`, with an email.
fn foo_bar() -> Value {
    json!({ "email": "foo@bar.baz", "auth": STANDARD.encode("foo:bar") })
}

/// An entry with user name and password written out, as the `DockerConfig` literals of
/// `TestDockerKeyringLookup` and `TestIssue3797` hold them.
fn user(name: &str, password: &str) -> Value {
    json!({ "username": name, "password": password, "email": format!("{name}@example.com") })
}

/// (user name, password) of every credential found for `image`, in order.
fn found(keyring: &Keyring, image: &str) -> Vec<(String, String)> {
    keyring
        .lookup(image)
        .into_iter()
        .map(|credential| (credential.username, credential.password))
        .collect()
}

fn pair(user: &str, password: &str) -> (String, String) {
    (user.into(), password.into())
}

// keyring_test.go TestURLsMatch
#[test]
fn keys_match_image_names_by_label_glob_equal_port_and_path_prefix() {
    let cases = [
        // match when there is no path component
        ("*.kubernetes.io", "prefix.kubernetes.io", true),
        ("prefix.*.io", "prefix.kubernetes.io", true),
        ("prefix.kubernetes.*", "prefix.kubernetes.io", true),
        ("*-good.kubernetes.io", "prefix-good.kubernetes.io", true),
        // match with path components
        ("*.kubernetes.io/blah", "prefix.kubernetes.io/blah", true),
        ("prefix.*.io/foo", "prefix.kubernetes.io/foo/bar", true),
        // match with path components and ports
        (
            "*.kubernetes.io:1111/blah",
            "prefix.kubernetes.io:1111/blah",
            true,
        ),
        (
            "prefix.*.io:1111/foo",
            "prefix.kubernetes.io:1111/foo/bar",
            true,
        ),
        // no match when number of parts mismatch
        ("*.kubernetes.io", "kubernetes.io", false),
        ("*.*.kubernetes.io", "prefix.kubernetes.io", false),
        ("*.*.kubernetes.io", "kubernetes.io", false),
        ("*kubernetes.io", "a.kubernetes.io", false),
        // match when number of parts match
        ("*kubernetes.io", "kubernetes.io", true),
        ("*.*.*.kubernetes.io", "a.b.c.kubernetes.io", true),
        // no match when some parts mismatch
        ("kubernetes.io", "kubernetes.com", false),
        ("k*.io", "quay.io", false),
        // no match when ports mismatch
        (
            "*.kubernetes.io:1234/blah",
            "prefix.kubernetes.io:1111/blah",
            false,
        ),
        (
            "prefix.*.io/foo",
            "prefix.kubernetes.io:1111/foo/bar",
            false,
        ),
    ];
    for (glob, target, expected) in cases {
        let pattern = RegistryPattern::parse(glob).unwrap_or_else(|| panic!("{glob}"));
        assert_eq!(pattern.matches(target), expected, "{glob} vs {target}");
    }
}

// keyring_test.go TestDockerKeyringForGlob
#[test]
fn keys_with_scheme_glob_port_or_path_serve_the_images_below_them() {
    let cases = [
        ("https://hello.kubernetes.io", "hello.kubernetes.io"),
        ("https://*.docker.io", "prefix.docker.io"),
        ("https://prefix.*.io", "prefix.docker.io"),
        ("https://prefix.docker.*", "prefix.docker.io"),
        ("https://*.docker.io/path", "prefix.docker.io/path"),
        ("https://prefix.*.io/path", "prefix.docker.io/path/subpath"),
        ("https://prefix.docker.*/path", "prefix.docker.io/path"),
        ("https://*.docker.io:8888", "prefix.docker.io:8888"),
        ("https://prefix.*.io:8888", "prefix.docker.io:8888"),
        ("https://prefix.docker.*:8888", "prefix.docker.io:8888"),
        (
            "https://*.docker.io/path:1111",
            "prefix.docker.io/path:1111",
        ),
        ("https://*.docker.io/v1/", "prefix.docker.io/path:1111"),
        ("https://*.docker.io/v2/", "prefix.docker.io/path:1111"),
        (
            "https://prefix.docker.*/path:1111",
            "prefix.docker.io/path:1111",
        ),
        ("prefix.docker.io:1111", "prefix.docker.io:1111/path"),
        ("*.docker.io:1111", "prefix.docker.io:1111/path"),
    ];
    for (key, target) in cases {
        let keyring = keyring(&[(key, foo_bar())]);
        assert_eq!(
            found(&keyring, &format!("{target}/foo/bar")),
            vec![pair("foo", "bar")],
            "{key} serving {target}"
        );
    }
}

// keyring_test.go TestKeyringMiss
#[test]
fn keys_serve_no_image_they_do_not_match() {
    let cases = [
        ("https://hello.kubernetes.io", "world.mesos.org/foo/bar"),
        ("https://*.docker.com", "prefix.docker.io"),
        ("https://suffix.*.io", "prefix.docker.io"),
        ("https://prefix.docker.c*", "prefix.docker.io"),
        (
            "https://prefix.*.io/path:1111",
            "prefix.docker.io/path/subpath:1111",
        ),
        ("suffix.*.io", "prefix.docker.io"),
    ];
    for (key, lookup) in cases {
        let keyring = keyring(&[(key, foo_bar())]);
        assert_eq!(
            found(&keyring, &format!("{lookup}/foo/bar")),
            vec![],
            "{key} serving {lookup}"
        );
    }
}

// keyring_test.go TestKeyringMissWithDockerHubCredentials, TestKeyringHitWithUnqualifiedDockerHub,
// TestKeyringHitWithUnqualifiedLibraryDockerHub, TestKeyringHitWithQualifiedDockerHub: the key
// `docker login` writes (`https://` + defaultRegistryKey `index.docker.io/v1/`).
#[test]
fn the_docker_login_key_serves_docker_hub_images_and_no_other() {
    let keyring = keyring(&[("https://index.docker.io/v1/", foo_bar())]);
    let cases = [
        ("world.mesos.org/foo/bar", vec![]),
        ("google/docker-registry", vec![pair("foo", "bar")]),
        ("jenkins", vec![pair("foo", "bar")]),
        // defaultRegistryKey + "/google/docker-registry"; upstream allows up to two hits.
        (
            "index.docker.io/v1//google/docker-registry",
            vec![pair("foo", "bar")],
        ),
        // The names the kubelet really looks up for the two short names above.
        ("docker.io/google/docker-registry", vec![pair("foo", "bar")]),
        ("docker.io/library/jenkins", vec![pair("foo", "bar")]),
    ];
    for (image, expected) in cases {
        assert_eq!(found(&keyring, image), expected, "{image}");
    }
}

// keyring_test.go TestIsDefaultRegistryMatch: the images the Docker Hub credential of last resort
// (`creds["index.docker.io"]`) serves when no key matches.
#[test]
fn the_docker_hub_last_resort_serves_docker_hub_names_only() {
    let keyring = keyring(&[("index.docker.io", foo_bar())]);
    let cases = [
        ("foo/bar", true),
        ("docker.io/foo/bar", true),
        ("index.docker.io/foo/bar", true),
        ("foo", true),
        ("", false),
        ("registry.tld/foo/bar", false),
        ("registry:5000/foo/bar", false),
        ("myhostdocker.io/foo/bar", false),
        // Deliberate difference, not an upstream row: the kubelet's isDefaultRegistryMatch says
        // true for `localhost/foo` (no `.` or `:` in its first part), which hands Docker Hub
        // credentials to a registry on localhost. The Docker reference grammar, and this
        // crate, read `localhost/foo` as the registry `localhost`, so they never go there.
        ("localhost/foo", false),
    ];
    for (image, served) in cases {
        let expected = if served {
            vec![pair("foo", "bar")]
        } else {
            vec![]
        };
        assert_eq!(found(&keyring, image), expected, "{image:?}");
    }
}

// keyring_test.go TestDockerKeyringLookup
#[test]
fn deeper_keys_come_first_and_key_paths_match_as_string_prefixes() {
    let keyring = keyring(&[
        ("bar.example.com/pong", user("grace", "squash")),
        ("bar.example.com", user("ada", "smash")),
    ]);
    let (ada, grace) = (pair("ada", "smash"), pair("grace", "squash"));
    let cases = [
        // direct match
        ("bar.example.com", vec![ada.clone()]),
        // direct match deeper than other possible matches
        ("bar.example.com/pong", vec![grace.clone(), ada.clone()]),
        // no direct match, deeper path ignored
        ("bar.example.com/ping", vec![ada.clone()]),
        // match first part of path token
        ("bar.example.com/pongz", vec![grace.clone(), ada.clone()]),
        // match regardless of sub-path
        ("bar.example.com/pong/pang", vec![grace, ada]),
        // no host match
        ("example.com", vec![]),
        ("foo.example.com", vec![]),
    ];
    for (image, expected) in cases {
        assert_eq!(found(&keyring, image), expected, "{image}");
    }
}

// keyring_test.go TestIssue3797: a key with a scheme and a /v1/ path serves the whole host.
#[test]
fn a_key_with_scheme_and_api_path_serves_every_repository_of_its_host() {
    let keyring = keyring(&[("https://quay.io/v1/", user("rex", "tiny arms"))]);
    for image in ["quay.io", "quay.io/foo", "quay.io/foo/bar"] {
        let credentials = keyring.lookup(image);
        assert_eq!(
            found(&keyring, image),
            vec![pair("rex", "tiny arms")],
            "{image}"
        );
        // The password never shows in Debug output, of the keyring or of what it found.
        assert!(!format!("{credentials:?}").contains("tiny arms"));
    }
    assert!(!format!("{keyring:?}").contains("tiny arms"));
}
