//! distribution/reference `normalize_test.go`: how Docker turns familiar names (`ubuntu`,
//! `docker.io/foo`) into canonical ones (`docker.io/library/ubuntu`), mapped onto
//! [`ImageReference`]'s `canonical_registry` (Go's `Domain`), `repository` (Go's `Path`) and
//! `canonical_name` (Go's `Name`).
//!
//! Where OpenShift's own parser (openshift/library-go `pkg/image/reference`, which reads an
//! ImageStream tag's `from.name`) disagrees with distribution, the row follows library-go and says so:
//! - a one-segment name with a `.` or starting with `localhost` (`192.168.0.1`, `test.com:5000`,
//!   even `ubuntu-12.04-base`) is a registry with no repository to library-go, not a Docker Hub
//!   image;
//! - a first segment with upper-case letters and no `.`/`:` (`Docker/docker`) is a Docker Hub
//!   namespace to library-go, not a registry host; it can never be pulled, so we reject it when
//!   parsing (library-go accepts it and the import fails);
//! - a bare 64-hex name is an ordinary name to library-go (distribution forbids it as ambiguous with
//!   an image ID, which `from.name` never is).
//!
//! Bracketed IPv6 registries follow distribution: library-go's older grammar has no IPv6 literals.
//!
//! Not ported, no counterpart in our API: `FamiliarName`/`FamiliarString` (we keep the user's own
//! spelling instead), `WithTag`, `WithDigest` with digest validation (TestInvalidReferenceComponents'
//! second half), `FamiliarMatch` (TestMatch, TestMatchError), and `ParseAnyReference`'s bare image IDs
//! and bare digests as references of their own.

use crate::domain::reference::ImageReference;
use crate::domain::reference::test_support::{Outcome, Rejection, assert_table};

use Outcome::{Parsed, Rejected};
use Rejection::{InvalidRegistry, InvalidRepository, MissingRepository, NameTooLong};

/// `Domain` and `Path` of `ParseNormalizedNamed`.
#[derive(Debug, PartialEq)]
struct Normalised {
    domain: String,
    path: String,
}

fn normalised(reference: &ImageReference) -> Normalised {
    Normalised {
        domain: reference.canonical_registry().to_owned(),
        path: reference.repository().to_owned(),
    }
}

fn parsed(domain: &str, path: &str) -> Outcome<Normalised> {
    Parsed(Normalised {
        domain: domain.to_owned(),
        path: path.to_owned(),
    })
}

fn uppercase(repository: &str) -> Outcome<Normalised> {
    Rejected(Rejection::UppercaseRepository(repository.to_owned()))
}

fn invalid_repository(repository: &str) -> Outcome<Normalised> {
    Rejected(InvalidRepository(repository.to_owned()))
}

fn row<T>(input: &str, outcome: Outcome<T>) -> (String, Outcome<T>) {
    (input.to_owned(), outcome)
}

/// `docker.io/` + a 64-hex name: an image ID is ambiguous only without a domain.
const HEX_NAME: &str = "1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a";
const SONG: &str = "thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev";

#[test]
fn reference_names_are_accepted_or_rejected_as_upstream_validates_them() {
    let hex_path = format!("library/{HEX_NAME}");
    let song_path = format!("library/{SONG}");
    // normalize_test.go TestValidateReferenceName, validRepoNames
    let mut rows = vec![
        row("docker/docker", parsed("docker.io", "docker/docker")),
        row("library/debian", parsed("docker.io", "library/debian")),
        row("debian", parsed("docker.io", "library/debian")),
        row(
            "localhost/library/debian",
            parsed("localhost", "library/debian"),
        ),
        row("localhost/debian", parsed("localhost", "debian")),
        // library-go: `LOCALDOMAIN` has no `.`/`:`, so it is a Docker Hub namespace, and an
        // upper-case one (distribution: a registry host).
        row(
            "LOCALDOMAIN/library/debian",
            uppercase("LOCALDOMAIN/library/debian"),
        ),
        row("LOCALDOMAIN/debian", uppercase("LOCALDOMAIN/debian")),
        row(
            "docker.io/docker/docker",
            parsed("docker.io", "docker/docker"),
        ),
        row(
            "docker.io/library/debian",
            parsed("docker.io", "library/debian"),
        ),
        row("docker.io/debian", parsed("docker.io", "library/debian")),
        row(
            "index.docker.io/docker/docker",
            parsed("docker.io", "docker/docker"),
        ),
        row(
            "index.docker.io/library/debian",
            parsed("docker.io", "library/debian"),
        ),
        row(
            "index.docker.io/debian",
            parsed("docker.io", "library/debian"),
        ),
        row(
            "127.0.0.1:5000/docker/docker",
            parsed("127.0.0.1:5000", "docker/docker"),
        ),
        row(
            "127.0.0.1:5000/library/debian",
            parsed("127.0.0.1:5000", "library/debian"),
        ),
        row("127.0.0.1:5000/debian", parsed("127.0.0.1:5000", "debian")),
        // library-go: a lone name with a `.` is a registry (distribution: docker.io/library/192.168.0.1).
        row("192.168.0.1", Rejected(MissingRepository)),
        row("192.168.0.1:80", Rejected(MissingRepository)),
        row("192.168.0.1:8/debian", parsed("192.168.0.1:8", "debian")),
        row(
            "192.168.0.2:25000/debian",
            parsed("192.168.0.2:25000", "debian"),
        ),
        row(SONG, parsed("docker.io", &song_path)),
        row("[fc00::1]:5000/docker", parsed("[fc00::1]:5000", "docker")),
        row(
            "[fc00::1]:5000/docker/docker",
            parsed("[fc00::1]:5000", "docker/docker"),
        ),
        row(
            "[fc00:1:2:3:4:5:6:7]:5000/library/debian",
            parsed("[fc00:1:2:3:4:5:6:7]:5000", "library/debian"),
        ),
        row(
            &format!("docker.io/{HEX_NAME}"),
            parsed("docker.io", &hex_path),
        ),
        // library-go: upper-case Docker Hub namespaces (distribution: registry hosts).
        row("Docker/docker", uppercase("Docker/docker")),
        row("DOCKER/docker", uppercase("DOCKER/docker")),
    ];
    // normalize_test.go TestValidateReferenceName, invalidRepoNames
    rows.extend([
        row(
            "https://github.com/docker/docker",
            Rejected(InvalidRegistry("https:".into())),
        ),
        row("docker/Docker", uppercase("docker/Docker")),
        row("-docker", invalid_repository("-docker")),
        row("-docker/docker", invalid_repository("-docker/docker")),
        row(
            "-docker.io/docker/docker",
            Rejected(InvalidRegistry("-docker.io".into())),
        ),
        row("docker///docker", invalid_repository("docker///docker")),
        row("docker.io/docker/Docker", uppercase("docker/Docker")),
        row(
            "docker.io/docker///docker",
            invalid_repository("docker///docker"),
        ),
        row("[fc00::1]", invalid_repository("[fc00::1]")),
        row("[fc00::1]:5000", invalid_repository("[fc00::1]")),
        row(
            "fc00::1:5000/debian",
            Rejected(InvalidRegistry("fc00::1:5000".into())),
        ),
        row(
            "[fe80::1%eth0]:5000/debian",
            Rejected(InvalidRegistry("[fe80::1%eth0]:5000".into())),
        ),
        row(
            "[2001:db8:3:4::192.0.2.33]:5000/debian",
            Rejected(InvalidRegistry("[2001:db8:3:4::192.0.2.33]:5000".into())),
        ),
        // library-go reads a bare 64-hex string as a name; only distribution reserves it for IDs.
        row(HEX_NAME, parsed("docker.io", &hex_path)),
    ]);
    assert_table("TestValidateReferenceName", &rows, normalised);
}

#[test]
fn remote_names_follow_the_path_component_grammar() {
    let song_path = format!("library/{SONG}");
    let hex_path = format!("library/{HEX_NAME}");
    let too_long = "this_is_not_a_valid_namespace_because_its_lenth_is_greater_than_255_this_is_not_a_valid_namespace_because_its_lenth_is_greater_than_255_this_is_not_a_valid_namespace_because_its_lenth_is_greater_than_255_this_is_not_a_valid_namespace_because_its_lenth_is_greater_than_255/docker";
    // normalize_test.go TestValidateRemoteName
    let rows = vec![
        row("docker/docker", parsed("docker.io", "docker/docker")),
        row(SONG, parsed("docker.io", &song_path)),
        row(
            "docker-rules/docker",
            parsed("docker.io", "docker-rules/docker"),
        ),
        row(
            "docker---rules/docker",
            parsed("docker.io", "docker---rules/docker"),
        ),
        row("doc/docker", parsed("docker.io", "doc/docker")),
        row("d/docker", parsed("docker.io", "d/docker")),
        row("jess/t", parsed("docker.io", "jess/t")),
        row("dock__er/docker", parsed("docker.io", "dock__er/docker")),
        row("docker/Docker", uppercase("docker/Docker")),
        row("docker///docker", invalid_repository("docker///docker")),
        // library-go accepts a bare 64-hex name (distribution forbids it).
        row(HEX_NAME, parsed("docker.io", &hex_path)),
        row("-docker/docker", invalid_repository("-docker/docker")),
        row("docker-/docker", invalid_repository("docker-/docker")),
        row("-docker-/docker", invalid_repository("-docker-/docker")),
        row("____/____", invalid_repository("____/____")),
        row("_docker/_docker", invalid_repository("_docker/_docker")),
        // A first segment with a `.` is the registry, so the error names it.
        row(
            "dock..er/docker",
            Rejected(InvalidRegistry("dock..er".into())),
        ),
        row(
            "dock_.er/docker",
            Rejected(InvalidRegistry("dock_.er".into())),
        ),
        row(
            "dock-.er/docker",
            Rejected(InvalidRegistry("dock-.er".into())),
        ),
        row("docker/", invalid_repository("docker/")),
        row(too_long, Rejected(NameTooLong(too_long.len()))),
    ];
    assert_table("TestValidateRemoteName", &rows, normalised);
}

#[test]
fn familiar_full_and_ambiguous_spellings_normalise_to_one_domain_and_path() {
    // normalize_test.go TestParseRepositoryInfo: every spelling of a case (familiar, full,
    // ambiguous) gives the case's Domain and remote name; FullName is domain/path.
    let cases: [(&str, &str, &[&str]); 16] = [
        ("localhost", "fooo", &["localhost/fooo"]),
        ("localhost", "fooo/bar", &["localhost/fooo/bar"]),
        (
            "docker.io",
            "fooo/bar",
            &["fooo/bar", "docker.io/fooo/bar", "index.docker.io/fooo/bar"],
        ),
        (
            "docker.io",
            "library/ubuntu",
            &["ubuntu", "docker.io/library/ubuntu", "library/ubuntu"],
        ),
        (
            "docker.io",
            "nonlibrary/ubuntu",
            &["nonlibrary/ubuntu", "docker.io/nonlibrary/ubuntu"],
        ),
        (
            "docker.io",
            "other/library",
            &["other/library", "docker.io/other/library"],
        ),
        (
            "127.0.0.1:8000",
            "private/moonbase",
            &["127.0.0.1:8000/private/moonbase"],
        ),
        (
            "127.0.0.1:8000",
            "privatebase",
            &["127.0.0.1:8000/privatebase"],
        ),
        (
            "example.com",
            "private/moonbase",
            &["example.com/private/moonbase"],
        ),
        ("example.com", "privatebase", &["example.com/privatebase"]),
        (
            "example.com:8000",
            "private/moonbase",
            &["example.com:8000/private/moonbase"],
        ),
        (
            "example.com:8000",
            "privatebasee",
            &["example.com:8000/privatebasee"],
        ),
        (
            "docker.io",
            "library/ubuntu-12.04-base",
            &[
                "docker.io/library/ubuntu-12.04-base",
                "index.docker.io/library/ubuntu-12.04-base",
            ],
        ),
        (
            "docker.io",
            "library/foo",
            &["foo", "docker.io/library/foo", "docker.io/foo"],
        ),
        (
            "docker.io",
            "library/foo/bar",
            &["library/foo/bar", "docker.io/library/foo/bar"],
        ),
        (
            "docker.io",
            "store/foo/bar",
            &["store/foo/bar", "docker.io/store/foo/bar"],
        ),
    ];
    let mut rows: Vec<_> = cases
        .iter()
        .flat_map(|(domain, path, spellings)| {
            spellings
                .iter()
                .map(move |spelling| row(spelling, parsed(domain, path)))
        })
        .collect();
    // The spellings library-go reads otherwise. Upper-case first segments: distribution takes
    // `LOCALDOMAIN`, `Foo` and `FOO` for hosts, library-go for Docker Hub namespaces, which must be
    // lower-case.
    rows.extend([
        // The familiar spelling of `library/ubuntu-12.04-base`: a lone name with a `.` is a
        // registry to library-go, so nothing names a repository.
        row("ubuntu-12.04-base", Rejected(MissingRepository)),
        row("LOCALDOMAIN/fooo", uppercase("LOCALDOMAIN/fooo")),
        row("LOCALDOMAIN/fooo/bar", uppercase("LOCALDOMAIN/fooo/bar")),
        row("Foo/bar", uppercase("Foo/bar")),
        row("FOO/bar", uppercase("FOO/bar")),
    ]);
    assert_table("TestParseRepositoryInfo", &rows, normalised);
    for (domain, path, spellings) in cases {
        for spelling in spellings {
            let reference = ImageReference::parse(spelling)
                .unwrap_or_else(|error| panic!("{spelling}: {error}"));
            assert_eq!(reference.canonical_name(), format!("{domain}/{path}"));
        }
    }
}

/// Go's `String()` of a `ParseNormalizedNamed` result: canonical name, `:tag`, `@digest`.
fn normalised_string(reference: &ImageReference) -> String {
    let tag = reference.tag().map(|tag| format!(":{tag}"));
    let digest = reference.digest().map(|digest| format!("@{digest}"));
    format!(
        "{}{}{}",
        reference.canonical_name(),
        tag.unwrap_or_default(),
        digest.unwrap_or_default()
    )
}

#[test]
fn a_reference_with_tag_and_digest_keeps_both_when_normalised() {
    // normalize_test.go TestParseReferenceWithTagAndDigest
    let short =
        "busybox:latest@sha256:86e0e091d0da6bde2456dbb48306f3956bbeb2eae1b5b9a43045843f69fe4aaa";
    let rows = vec![row(short, Parsed(format!("docker.io/library/{short}")))];
    assert_table(
        "TestParseReferenceWithTagAndDigest",
        &rows,
        normalised_string,
    );
    let reference = ImageReference::parse(short).unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(reference.tag(), Some("latest"));
    assert_eq!(
        reference.digest(),
        Some("sha256:86e0e091d0da6bde2456dbb48306f3956bbeb2eae1b5b9a43045843f69fe4aaa")
    );
}

#[test]
fn a_name_starting_with_a_dash_is_invalid() {
    // normalize_test.go TestInvalidReferenceComponents (the ParseNormalizedNamed half)
    let rows = vec![row("-foo", invalid_repository("-foo"))];
    assert_table("TestInvalidReferenceComponents", &rows, normalised);
}

#[test]
fn any_reference_normalises_to_its_canonical_equivalent() {
    const DIGEST: &str = "sha256:dbcc1c35ac38df41fd2f5e4130b32ffdb93ebae8b3dbe638c23575912276fc9c";
    const ID: &str = "dbcc1c35ac38df41fd2f5e4130b32ffdb93ebae8b3dbe638c23575912276fc9c";
    const ID_63: &str = "dbcc1c35ac38df41fd2f5e4130b32ffdb93ebae8b3dbe638c23575912276fc9";
    let equivalent = |s: &str| Parsed(s.to_owned());
    // normalize_test.go TestParseAnyReference
    let rows = vec![
        row("redis", equivalent("docker.io/library/redis")),
        row("redis:latest", equivalent("docker.io/library/redis:latest")),
        row(
            "docker.io/library/redis:latest",
            equivalent("docker.io/library/redis:latest"),
        ),
        row(
            &format!("redis@{DIGEST}"),
            equivalent(&format!("docker.io/library/redis@{DIGEST}")),
        ),
        row(
            &format!("docker.io/library/redis@{DIGEST}"),
            equivalent(&format!("docker.io/library/redis@{DIGEST}")),
        ),
        row("dmcgowan/myapp", equivalent("docker.io/dmcgowan/myapp")),
        row(
            "dmcgowan/myapp:latest",
            equivalent("docker.io/dmcgowan/myapp:latest"),
        ),
        row(
            "docker.io/mcgowan/myapp:latest",
            equivalent("docker.io/mcgowan/myapp:latest"),
        ),
        row(
            &format!("dmcgowan/myapp@{DIGEST}"),
            equivalent(&format!("docker.io/dmcgowan/myapp@{DIGEST}")),
        ),
        row(
            &format!("docker.io/dmcgowan/myapp@{DIGEST}"),
            equivalent(&format!("docker.io/dmcgowan/myapp@{DIGEST}")),
        ),
        // ParseAnyReference reads these two as a bare image ID and a bare digest; a pull spec has
        // neither, and library-go (TestParse "sha256:…") reads them as names, so do we.
        row(ID, equivalent(&format!("docker.io/library/{ID}"))),
        row(DIGEST, equivalent(&format!("docker.io/library/{DIGEST}"))),
        row(ID_63, equivalent(&format!("docker.io/library/{ID_63}"))),
        row("dbcc1", equivalent("docker.io/library/dbcc1")),
    ];
    assert_table("TestParseAnyReference", &rows, normalised_string);
}

#[test]
fn a_name_is_split_into_docker_domain_and_path() {
    // normalize_test.go TestNormalizedSplitHostname
    let rows = vec![
        row("test.com/foo", parsed("test.com", "foo")),
        row("test_com/foo", parsed("docker.io", "test_com/foo")),
        row("docker/migrator", parsed("docker.io", "docker/migrator")),
        row("test.com:8080/foo", parsed("test.com:8080", "foo")),
        row("test-com:8080/foo", parsed("test-com:8080", "foo")),
        row("foo", parsed("docker.io", "library/foo")),
        row("xn--n3h.com/foo", parsed("xn--n3h.com", "foo")),
        row("xn--n3h.com:18080/foo", parsed("xn--n3h.com:18080", "foo")),
        row("docker.io/foo", parsed("docker.io", "library/foo")),
        row("docker.io/library/foo", parsed("docker.io", "library/foo")),
        row(
            "docker.io/library/foo/bar",
            parsed("docker.io", "library/foo/bar"),
        ),
    ];
    assert_table("TestNormalizedSplitHostname", &rows, normalised);
}

/// Go's `ParseDockerRef(..).String()`: the canonical name with the digest when there is one
/// (a tag beside it is dropped), else the tag, `latest` when none was written.
fn docker_ref(reference: &ImageReference) -> String {
    match reference.digest() {
        Some(digest) => format!("{}@{digest}", reference.canonical_name()),
        None => format!(
            "{}:{}",
            reference.canonical_name(),
            reference.tag_or_latest()
        ),
    }
}

#[test]
fn docker_refs_are_normalised_with_latest_or_the_digest_alone() {
    const DIGEST: &str = "sha256:e6693c20186f837fc393390135d8a598a96a833917917789d63766cab6c59582";
    let latest = || Parsed("docker.io/library/busybox:latest".to_owned());
    // normalize_test.go TestParseDockerRef
    let rows = vec![
        row("busybox", latest()),
        row("busybox:latest", latest()),
        row(
            &format!("busybox@{DIGEST}"),
            Parsed(format!("docker.io/library/busybox@{DIGEST}")),
        ),
        row("library/busybox", latest()),
        row("docker.io/busybox", latest()),
        row("docker.io/library/busybox", latest()),
        row("docker.io/busybox:latest", latest()),
        row("library/busybox:latest", latest()),
        row("docker.io/library/busybox:latest", latest()),
        row(
            "gcr.io/library/busybox",
            Parsed("gcr.io/library/busybox:latest".to_owned()),
        ),
        row(
            &format!("gcr.io/library/busybox:latest@{DIGEST}"),
            Parsed(format!("gcr.io/library/busybox@{DIGEST}")),
        ),
    ];
    assert_table("TestParseDockerRef", &rows, docker_ref);
    // Upstream also checks that the output parses again.
    for (input, _) in &rows {
        let reference = ImageReference::parse(input).unwrap_or_else(|error| panic!("{error}"));
        let output = docker_ref(&reference);
        let reparsed =
            ImageReference::parse(&output).unwrap_or_else(|error| panic!("{output}: {error}"));
        assert_eq!(docker_ref(&reparsed), output);
    }
}
