//! distribution/reference `reference_test.go`: the reference grammar itself (names, tags, digests,
//! hosts with ports, IPv6 literals, length limits), mapped onto [`ImageReference`]: Go's `Name()` is
//! the registry and repository as written, `Domain` the registry as written, `Tag`/`Digest` the same.
//!
//! Go's plain `Parse` takes any first segment its host grammar matches as the domain (`a` in
//! `a/a/…`); ours splits as Docker's normalising parser and OpenShift do (a host has a `.` or `:` or
//! is `localhost`), so those rows expect no registry.
//!
//! Where OpenShift's parser (openshift/library-go `pkg/image/reference`) disagrees, the row follows
//! library-go and says so: a one-segment name with a `.` (`test.com:5000`, `192.168.1.1`) names only
//! a registry, and the 255-character limit counts the whole name as written, registry included.
//! Bracketed IPv6 registries follow distribution (library-go's older grammar has none).
//!
//! Not ported, no counterpart in our API: `WithTag` (TestWithTag), `WithName`'s rejection of a tag
//! (TestWithNameFailure `example.com/repo:tag`), and `ParseNamed`'s canonical-only parsing
//! (TestParseNamed).

use serde::{Deserialize, Serialize};

use crate::domain::reference::ImageReference;
use crate::domain::reference::test_support::{Outcome, Rejection, assert_table};

use Outcome::{Parsed, Rejected};
use Rejection::{
    Empty, InvalidDigest, InvalidRegistry, InvalidRepository, MissingRepository, NameTooLong,
    UppercaseRepository,
};

/// What TestReferenceParse checks: `String()`, `Name()`, `Domain`, `Tag`, `Digest`.
#[derive(Debug, PartialEq)]
struct Split {
    string: String,
    name: String,
    domain: Option<String>,
    tag: Option<String>,
    digest: Option<String>,
}

fn split(reference: &ImageReference) -> Split {
    let domain = reference.registry_as_written().map(str::to_owned);
    let name = match &domain {
        Some(domain) => format!("{domain}/{}", reference.repository_as_written()),
        None => reference.repository_as_written().to_owned(),
    };
    Split {
        string: reference.to_string(),
        name,
        domain,
        tag: reference.tag().map(str::to_owned),
        digest: reference.digest().map(str::to_owned),
    }
}

/// A row that parses: `String()` gives the input back.
fn parsed(
    input: &str,
    name: &str,
    domain: Option<&str>,
    tag: Option<&str>,
    digest: Option<&str>,
) -> (String, Outcome<Split>) {
    let split = Split {
        string: input.to_owned(),
        name: name.to_owned(),
        domain: domain.map(str::to_owned),
        tag: tag.map(str::to_owned),
        digest: digest.map(str::to_owned),
    };
    (input.to_owned(), Parsed(split))
}

fn rejected<T>(input: &str, rejection: Rejection) -> (String, Outcome<T>) {
    (input.to_owned(), Rejected(rejection))
}

fn ffff_digest() -> String {
    format!("sha256:{}", "f".repeat(64))
}

#[test]
fn references_parse_into_name_domain_tag_and_digest_as_upstream() {
    let d = ffff_digest();
    let d = d.as_str();
    let sha512 = format!("sha512:{}", "f".repeat(128));
    let long_domain_name = format!("domain/{}:tag", "a".repeat(256));
    let deep = format!("{}a", "a/".repeat(127));
    let deep_tagged = format!("{deep}:tag-puts-this-over-max");
    let long_path = format!("example.com/{}:tag", "a".repeat(255));
    // reference_test.go TestReferenceParse
    let rows = vec![
        parsed("test_com", "test_com", None, None, None),
        // library-go: a lone name with a `.` is a registry, so nothing names a repository
        // (distribution: repository `test.com`, tag `tag` / `5000`).
        rejected("test.com:tag", MissingRepository),
        rejected("test.com:5000", MissingRepository),
        parsed(
            "test.com/repo:tag",
            "test.com/repo",
            Some("test.com"),
            Some("tag"),
            None,
        ),
        parsed(
            "test:5000/repo",
            "test:5000/repo",
            Some("test:5000"),
            None,
            None,
        ),
        parsed(
            "test:5000/repo:tag",
            "test:5000/repo",
            Some("test:5000"),
            Some("tag"),
            None,
        ),
        parsed(
            &format!("test:5000/repo@{d}"),
            "test:5000/repo",
            Some("test:5000"),
            None,
            Some(d),
        ),
        parsed(
            &format!("test:5000/repo:tag@{d}"),
            "test:5000/repo",
            Some("test:5000"),
            Some("tag"),
            Some(d),
        ),
        parsed(
            "test:5000/repo",
            "test:5000/repo",
            Some("test:5000"),
            None,
            None,
        ),
        rejected("", Empty),
        rejected(":justtag", MissingRepository),
        rejected(&format!("@{d}"), MissingRepository),
        rejected(
            "repo@sha256:ffffffffffffffffffffffffffffffffff",
            InvalidDigest("sha256:ffffffffffffffffffffffffffffffffff".into()),
        ),
        rejected(
            &format!("validname@invaliddigest:{}", "f".repeat(64)),
            InvalidDigest(format!("invaliddigest:{}", "f".repeat(64))),
        ),
        // Upstream's error comes from its test binary not registering sha512; with sha512
        // registered (and in library-go) the reference is valid.
        parsed(
            &format!("validname@{sha512}"),
            "validname",
            None,
            None,
            Some(&sha512),
        ),
        rejected("Uppercase:tag", UppercaseRepository("Uppercase".into())),
        // Upstream has this row commented out as a FIXME (distribution takes `Uppercase` for a
        // host). library-go reads it as a namespace, which must be lower-case.
        rejected(
            "Uppercase/lowercase:tag",
            UppercaseRepository("Uppercase/lowercase".into()),
        ),
        rejected(
            "test:5000/Uppercase/lowercase:tag",
            UppercaseRepository("Uppercase/lowercase".into()),
        ),
        parsed(
            "lowercase:Uppercase",
            "lowercase",
            None,
            Some("Uppercase"),
            None,
        ),
        rejected(&long_domain_name, NameTooLong(7 + 256)),
        // Go's plain Parse reports domain `a` here; the first `a` is no host to Docker or OpenShift.
        parsed(
            &deep_tagged,
            &deep,
            None,
            Some("tag-puts-this-over-max"),
            None,
        ),
        rejected("aa/asdf$$^/aa", InvalidRepository("aa/asdf$$^/aa".into())),
        parsed(
            "sub-dom1.foo.com/bar/baz/quux",
            "sub-dom1.foo.com/bar/baz/quux",
            Some("sub-dom1.foo.com"),
            None,
            None,
        ),
        parsed(
            "sub-dom1.foo.com/bar/baz/quux:some-long-tag",
            "sub-dom1.foo.com/bar/baz/quux",
            Some("sub-dom1.foo.com"),
            Some("some-long-tag"),
            None,
        ),
        parsed(
            "b.gcr.io/test.example.com/my-app:test.example.com",
            "b.gcr.io/test.example.com/my-app",
            Some("b.gcr.io"),
            Some("test.example.com"),
            None,
        ),
        parsed(
            "xn--n3h.com/myimage:xn--n3h.com",
            "xn--n3h.com/myimage",
            Some("xn--n3h.com"),
            Some("xn--n3h.com"),
            None,
        ),
        parsed(
            &format!("xn--7o8h.com/myimage:xn--7o8h.com@{d}"),
            "xn--7o8h.com/myimage",
            Some("xn--7o8h.com"),
            Some("xn--7o8h.com"),
            Some(d),
        ),
        // library-go: a lone name with a `.` is a registry (distribution: `foo_bar.com`, tag 8080).
        rejected("foo_bar.com:8080", MissingRepository),
        // Go's plain Parse reports domain `foo`; it has no `.`/`:`, so it is a namespace.
        parsed(
            "foo/foo_bar.com:8080",
            "foo/foo_bar.com",
            None,
            Some("8080"),
            None,
        ),
        // library-go: registries with nothing after them (distribution: repository `192.168.1.1`).
        rejected("192.168.1.1", MissingRepository),
        rejected("192.168.1.1:tag", MissingRepository),
        rejected("192.168.1.1:5000", MissingRepository),
        parsed(
            "192.168.1.1/repo",
            "192.168.1.1/repo",
            Some("192.168.1.1"),
            None,
            None,
        ),
        parsed(
            "192.168.1.1:5000/repo",
            "192.168.1.1:5000/repo",
            Some("192.168.1.1:5000"),
            None,
            None,
        ),
        parsed(
            "192.168.1.1:5000/repo:5050",
            "192.168.1.1:5000/repo",
            Some("192.168.1.1:5000"),
            Some("5050"),
            None,
        ),
        rejected("[2001:db8::1]", InvalidRepository("[2001:db8::1]".into())),
        rejected(
            "[2001:db8::1]:5000",
            InvalidRepository("[2001:db8::1]".into()),
        ),
        rejected(
            "[2001:db8::1]:tag",
            InvalidRepository("[2001:db8::1]".into()),
        ),
        parsed(
            "[2001:db8::1]/repo",
            "[2001:db8::1]/repo",
            Some("[2001:db8::1]"),
            None,
            None,
        ),
        parsed(
            "[2001:db8:1:2:3:4:5:6]/repo:tag",
            "[2001:db8:1:2:3:4:5:6]/repo",
            Some("[2001:db8:1:2:3:4:5:6]"),
            Some("tag"),
            None,
        ),
        parsed(
            "[2001:db8::1]:5000/repo",
            "[2001:db8::1]:5000/repo",
            Some("[2001:db8::1]:5000"),
            None,
            None,
        ),
        parsed(
            "[2001:db8::1]:5000/repo:tag",
            "[2001:db8::1]:5000/repo",
            Some("[2001:db8::1]:5000"),
            Some("tag"),
            None,
        ),
        parsed(
            &format!("[2001:db8::1]:5000/repo@{d}"),
            "[2001:db8::1]:5000/repo",
            Some("[2001:db8::1]:5000"),
            None,
            Some(d),
        ),
        parsed(
            &format!("[2001:db8::1]:5000/repo:tag@{d}"),
            "[2001:db8::1]:5000/repo",
            Some("[2001:db8::1]:5000"),
            Some("tag"),
            Some(d),
        ),
        parsed(
            "[2001:db8::]:5000/repo",
            "[2001:db8::]:5000/repo",
            Some("[2001:db8::]:5000"),
            None,
            None,
        ),
        parsed(
            "[::1]:5000/repo",
            "[::1]:5000/repo",
            Some("[::1]:5000"),
            None,
            None,
        ),
        rejected(
            "[fe80::1%eth0]:5000/repo",
            InvalidRegistry("[fe80::1%eth0]:5000".into()),
        ),
        // The first `@` starts the digest, so the name left is `[fe80:` with tag `1%`.
        rejected(
            "[fe80::1%@invalidzone]:5000/repo",
            InvalidRepository("[fe80:".into()),
        ),
        // distribution limits only the path to 255 characters; library-go limits the whole name
        // as written, here 12 + 255.
        rejected(&long_path, NameTooLong(12 + 255)),
    ];
    assert_table("TestReferenceParse", &rows, split);
}

#[test]
fn invalid_names_are_rejected_with_the_part_they_get_wrong() {
    let too_long = format!("example.com/{}", "a".repeat(256));
    // reference_test.go TestWithNameFailure, the rows that are invalid as references too
    // (`WithName` rejects any tag or digest; here a digest is rejected only when it is malformed).
    let rows: Vec<(String, Outcome<Split>)> = vec![
        rejected("", Empty),
        rejected(":justtag", MissingRepository),
        rejected(&format!("@{}", ffff_digest()), MissingRepository),
        rejected(
            &format!("validname@invaliddigest:{}", "f".repeat(64)),
            InvalidDigest(format!("invaliddigest:{}", "f".repeat(64))),
        ),
        rejected(&too_long, NameTooLong(12 + 256)),
        rejected("aa/asdf$$^/aa", InvalidRepository("aa/asdf$$^/aa".into())),
    ];
    assert_table("TestWithNameFailure", &rows, split);
}

/// `Domain` and `Path`: the registry and repository path as written.
#[derive(Debug, PartialEq)]
struct DomainAndPath {
    domain: Option<String>,
    path: String,
}

fn domain_and_path(reference: &ImageReference) -> DomainAndPath {
    DomainAndPath {
        domain: reference.registry_as_written().map(str::to_owned),
        path: reference.repository_as_written().to_owned(),
    }
}

#[test]
fn a_name_is_split_into_domain_and_path_as_written() {
    let row = |input: &str, domain: Option<&str>, path: &str| {
        let expected = DomainAndPath {
            domain: domain.map(str::to_owned),
            path: path.to_owned(),
        };
        (input.to_owned(), Parsed(expected))
    };
    // reference_test.go TestDomainAndPath
    let rows = vec![
        row("test.com/foo", Some("test.com"), "foo"),
        row("test_com/foo", None, "test_com/foo"),
        row("test:8080/foo", Some("test:8080"), "foo"),
        row("test.com:8080/foo", Some("test.com:8080"), "foo"),
        row("test-com:8080/foo", Some("test-com:8080"), "foo"),
        row("xn--n3h.com:18080/foo", Some("xn--n3h.com:18080"), "foo"),
    ];
    assert_table("TestDomainAndPath", &rows, domain_and_path);
}

/// Upstream's `serializationType`: a reference as a field of a JSON object.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SerializationType {
    description: String,
    field: ImageReference,
}

#[test]
fn a_reference_field_round_trips_through_json() {
    let digest = "sha256:1234567890098765432112345667890098765432112345667890098765432112";
    let named_with_digest = format!("other.com/named@{digest}");
    // reference_test.go TestSerialization: description, input, name, tag, digest
    let cases = [
        (
            "just a name",
            "example.com:8000/named",
            "example.com:8000/named",
            None,
            None,
        ),
        (
            "name with a tag",
            "example.com:8000/named:tagged",
            "example.com:8000/named",
            Some("tagged"),
            None,
        ),
        (
            "name with digest",
            named_with_digest.as_str(),
            "other.com/named",
            None,
            Some(digest),
        ),
    ];
    for (description, input, name, tag, digest) in cases {
        let json = serde_json::json!({ "Description": description, "Field": input }).to_string();
        let decoded: SerializationType =
            serde_json::from_str(&json).unwrap_or_else(|error| panic!("{description}: {error}"));
        assert_eq!(decoded.description, description);
        let seen = split(&decoded.field);
        assert_eq!(
            (
                seen.name.as_str(),
                seen.tag.as_deref(),
                seen.digest.as_deref()
            ),
            (name, tag, digest),
            "{description}"
        );
        let encoded = serde_json::to_string(&decoded).unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(encoded, json, "{description}");
    }
    // "empty value": the empty string is no reference.
    let error =
        serde_json::from_str::<SerializationType>(r#"{"Description":"empty value","Field":""}"#)
            .expect_err("an empty reference must not deserialise");
    assert!(
        error.to_string().starts_with("image reference is empty"),
        "{error}"
    );
}

#[test]
fn with_digest_appends_the_digest_to_the_name_as_written() {
    let digest = "sha256:1234567890098765432112345667890098765";
    // reference_test.go TestWithDigest: name, combined
    let cases = [
        ("test.com/foo", format!("test.com/foo@{digest}")),
        ("foo", format!("foo@{digest}")),
        ("test.com:8000/foo", format!("test.com:8000/foo@{digest}")),
        // Upstream's fourth row tags the name first and keeps the tag (`:latest@…`). Ours pins a
        // reference as an import records it (spec §2: the tag is replaced by `@digest`).
        (
            "test.com:8000/foo:latest",
            format!("test.com:8000/foo@{digest}"),
        ),
    ];
    for (name, combined) in cases {
        let reference = ImageReference::parse(name).unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(reference.with_digest(digest), combined, "{name}");
    }
}
