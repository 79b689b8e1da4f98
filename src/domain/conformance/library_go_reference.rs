//! openshift/library-go `pkg/image/reference/reference_test.go`: `Parse`, the `DockerImageReference`
//! parser OpenShift uses for an ImageStream tag's `from.name`. Where distribution/reference
//! disagrees, this file is the one followed.
//!
//! `DockerImageReference` keeps the user's spelling, split as `Registry/Namespace/Name:Tag@ID`; ours
//! maps onto it as `registry_as_written`, the first segment of `repository_as_written` (when it has
//! more than one) and the rest of it, `tag` and `digest` (absent is Go's empty string).
//!
//! One deliberate difference: a pull spec that is only a registry (`quay.io`, `localhost:5000`)
//! parses in library-go to a reference with an empty `Name`, whose import then fails; an
//! [`ImageReference`] always names a repository, so ours is rejected as `MissingRepository` when
//! parsed. The tag gets its failure condition either way, only sooner.

use crate::domain::reference::ImageReference;
use crate::domain::reference::test_support::{Outcome, Rejection, assert_table};

use Outcome::{Parsed, Rejected};
use Rejection::{
    Empty, InvalidDigest, InvalidRegistry, InvalidRepository, MissingRepository, NameTooLong,
    UppercaseRepository,
};

/// library-go's `DockerImageReference`.
#[derive(Debug, PartialEq, Default)]
struct DockerImageReference {
    registry: String,
    namespace: String,
    name: String,
    tag: String,
    id: String,
}

fn docker_image_reference(reference: &ImageReference) -> DockerImageReference {
    let (namespace, name) = match reference.repository_as_written().split_once('/') {
        Some((namespace, name)) => (namespace, name),
        None => ("", reference.repository_as_written()),
    };
    DockerImageReference {
        registry: reference
            .registry_as_written()
            .unwrap_or_default()
            .to_owned(),
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        tag: reference.tag().unwrap_or_default().to_owned(),
        id: reference.digest().unwrap_or_default().to_owned(),
    }
}

const ID: &str = "sha256:3c87c572822935df60f0f5d3665bd376841a7fcfeb806b5f212de6a00e9a7b25";

/// A row that parses into the given parts; `""` is an absent part, as in Go.
fn parsed(
    from: &str,
    [registry, namespace, name, tag, id]: [&str; 5],
) -> (String, Outcome<DockerImageReference>) {
    let expected = DockerImageReference {
        registry: registry.to_owned(),
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        tag: tag.to_owned(),
        id: id.to_owned(),
    };
    (from.to_owned(), Parsed(expected))
}

fn rejected(from: &str, rejection: Rejection) -> (String, Outcome<DockerImageReference>) {
    (from.to_owned(), Rejected(rejection))
}

#[test]
fn pull_specs_split_into_registry_namespace_name_tag_and_id_as_openshift_does() {
    let a63 = "a".repeat(63);
    let b182 = "b".repeat(182);
    let b231 = "b".repeat(231);
    // reference_test.go TestParse: from, [registry, namespace, name, tag, id]
    let rows = vec![
        parsed("foo", ["", "", "foo", "", ""]),
        parsed("foo:tag", ["", "", "foo", "tag", ""]),
        parsed(ID, ["", "", "sha256", &ID["sha256:".len()..], ""]),
        parsed(&format!("foo@{ID}"), ["", "", "foo", "", ID]),
        parsed("bar/foo", ["", "bar", "foo", "", ""]),
        parsed("bar/foo:tag", ["", "bar", "foo", "tag", ""]),
        parsed(&format!("bar/foo@{ID}"), ["", "bar", "foo", "", ID]),
        parsed("bar/foo/baz", ["", "bar", "foo/baz", "", ""]),
        parsed("bar/library/baz", ["", "bar", "library/baz", "", ""]),
        parsed("bar/foo/baz:tag", ["", "bar", "foo/baz", "tag", ""]),
        parsed(&format!("bar/foo/baz@{ID}"), ["", "bar", "foo/baz", "", ID]),
        parsed("bar:5000/foo/baz", ["bar:5000", "foo", "baz", "", ""]),
        parsed(
            "bar:5000/library/baz",
            ["bar:5000", "library", "baz", "", ""],
        ),
        parsed("bar:5000/baz", ["bar:5000", "", "baz", "", ""]),
        parsed(
            "bar:5000/foo/baz:tag",
            ["bar:5000", "foo", "baz", "tag", ""],
        ),
        parsed(
            &format!("bar:5000/foo/baz@{ID}"),
            ["bar:5000", "foo", "baz", "", ID],
        ),
        parsed("myregistry.io/foo", ["myregistry.io", "", "foo", "", ""]),
        parsed("localhost/bar", ["localhost", "", "bar", "", ""]),
        parsed(
            "docker.io/library/myapp",
            ["docker.io", "library", "myapp", "", ""],
        ),
        parsed("docker.io/myapp", ["docker.io", "", "myapp", "", ""]),
        parsed(
            "docker.io/user/myapp",
            ["docker.io", "user", "myapp", "", ""],
        ),
        parsed(
            "docker.io/user/project/myapp",
            ["docker.io", "user", "project/myapp", "", ""],
        ),
        parsed(
            "index.docker.io/bar",
            ["index.docker.io", "", "bar", "", ""],
        ),
        // registry/namespace/name == 255 chars
        parsed(
            &format!("bar:5000/{a63}/{b182}:tag"),
            ["bar:5000", &a63, &b182, "tag", ""],
        ),
        // docker.io/namespace/name == 255 chars with explicit namespace
        parsed(
            &format!("docker.io/library/{b231}:tag"),
            ["docker.io", "library", &b231, "tag", ""],
        ),
        // docker.io/namespace/name == 255 chars with implicit namespace
        parsed(
            &format!("docker.io/{b231}:tag"),
            ["docker.io", "", &b231, "tag", ""],
        ),
        // Deliberate difference: library-go gives `Registry: "quay.io"` and an empty Name, which
        // cannot be imported; we reject the reference when parsing it.
        rejected("quay.io", MissingRepository),
        parsed("quay.io/org", ["quay.io", "", "org", "", ""]),
        // Deliberate difference, as `quay.io`: library-go gives `Registry: "localhost:5000"`.
        rejected("localhost:5000", MissingRepository),
        parsed("localhost:5000/org", ["localhost:5000", "", "org", "", ""]),
        parsed("wildfly:15.0", ["", "", "wildfly", "15.0", ""]),
        // registry/namespace/name > 255 chars
        rejected(
            &format!("bar:5000/{a63}/{}:tag", "b".repeat(183)),
            NameTooLong(256),
        ),
        // docker.io/name > 255 chars with implicit namespace
        rejected(
            &format!("docker.io/{}:tag", "b".repeat(246)),
            NameTooLong(256),
        ),
        rejected(
            "registry.io/foo/bar/:Tag",
            InvalidRepository("foo/bar/".into()),
        ),
        rejected("https://bar:5000/foo/baz", InvalidRegistry("https:".into())),
        rejected(
            &format!("http://bar:5000/foo/baz@{ID}"),
            InvalidRegistry("http:".into()),
        ),
        rejected(
            "registry:3000/integration/imageStream:success",
            UppercaseRepository("integration/imageStream".into()),
        ),
        rejected(
            "registry:5000/integration/test-image-stream@sha256:00000000000000000000000000000001",
            InvalidDigest("sha256:00000000000000000000000000000001".into()),
        ),
        rejected("abc@badid", InvalidDigest("badid".into())),
        rejected(
            "index.docker.io/mysql@sha256:bad",
            InvalidDigest("sha256:bad".into()),
        ),
        rejected(&format!("@{ID}"), MissingRepository),
        rejected(":tag", MissingRepository),
        parsed("bar/foo/baz/biz", ["", "bar", "foo/baz/biz", "", ""]),
        rejected(
            "bar/foo/baz////biz",
            InvalidRepository("bar/foo/baz////biz".into()),
        ),
        rejected("//foo/baz/biz", InvalidRepository("//foo/baz/biz".into())),
        rejected("ftp://baz/baz/biz", InvalidRegistry("ftp:".into())),
        rejected("", Empty),
    ];
    assert_table("TestParse", &rows, docker_image_reference);
}
