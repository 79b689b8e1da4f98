//! openshift/library-go `pkg/image/imageutil/helpers_test.go`: splitting ImageStreamTag names
//! (`stream:tag`) and ImageStreamImage names (`stream@id`), checked against `domain::image_name`.

use crate::domain::image_name::{
    DigestPrefixError, ImageStreamImageNameError, ImageStreamTagNameError,
    parse_image_stream_image_name, parse_image_stream_tag_name,
};

// helpers_test.go TestParseImageStreamTagName
#[test]
fn image_stream_tag_names_split_as_parse_image_stream_tag_name_splits_them() {
    use ImageStreamTagNameError::{Delimiter, EmptyPart};
    type Case = (
        &'static str,
        &'static str,
        Result<(&'static str, &'static str), ImageStreamTagNameError>,
    );
    let cases: [Case; 6] = [
        ("empty id", "", Err(Delimiter { name: "".into() })),
        (
            "missing semicolon",
            "hello",
            Err(Delimiter {
                name: "hello".into(),
            }),
        ),
        (
            "too many semicolons",
            "a:b:c",
            Err(Delimiter {
                name: "a:b:c".into(),
            }),
        ),
        (
            "empty name",
            ":tag",
            Err(EmptyPart {
                name: ":tag".into(),
            }),
        ),
        // Upstream's "empty tag" row has no `:` at all.
        (
            "empty tag",
            "name",
            Err(Delimiter {
                name: "name".into(),
            }),
        ),
        ("happy path", "name:tag", Ok(("name", "tag"))),
    ];
    for (description, id, expected) in cases {
        assert_eq!(parse_image_stream_tag_name(id), expected, "{description}");
    }
}

// helpers_test.go TestParseImageStreamImageName
#[test]
fn image_stream_image_names_split_as_parse_image_stream_image_name_splits_them() {
    use ImageStreamImageNameError::{Delimiter, EmptyPart};
    type Case = (
        &'static str,
        &'static str,
        Result<(&'static str, &'static str), ImageStreamImageNameError>,
    );
    let cases: [Case; 6] = [
        ("empty string", "", Err(Delimiter { name: "".into() })),
        ("one part", "a", Err(Delimiter { name: "a".into() })),
        (
            "more than 2 parts",
            "a@b@c",
            Err(Delimiter {
                name: "a@b@c".into(),
            }),
        ),
        (
            "empty name part",
            "@id",
            Err(EmptyPart { name: "@id".into() }),
        ),
        (
            "empty id part",
            "name@",
            Err(EmptyPart {
                name: "name@".into(),
            }),
        ),
        // The happy path with an id that is a digest prefix, as ids are here (see below for
        // upstream's own `repo@id`).
        ("valid input", "repo@3c87c5", Ok(("repo", "3c87c5"))),
    ];
    for (description, input, expected) in cases {
        let parsed = parse_image_stream_image_name(input);
        let parsed = parsed
            .as_ref()
            .map(|(stream, id)| (*stream, id.to_string()))
            .map_err(Clone::clone);
        let expected = expected.map(|(stream, id)| (stream, id.to_owned()));
        assert_eq!(parsed, expected, "{description}");
    }
}

// helpers_test.go TestParseImageStreamImageName "valid input", inverted.
#[test]
fn an_image_id_that_is_not_a_digest_prefix_is_where_image_stream_image_names_deliberately_differ() {
    // Upstream splits `repo@id` into `repo` and `id` and leaves the id to the lookup, which
    // answers NotFound unless an Image is literally named with that prefix. Here every Image is
    // named by its digest, so the id must be a digest or a hex prefix of one, and anything else is
    // refused when the name is read, saying what is expected.
    assert_eq!(
        parse_image_stream_image_name("repo@id").map(|(stream, id)| (stream, id.to_string())),
        Err(ImageStreamImageNameError::InvalidDigest {
            name: "repo@id".into(),
            problem: DigestPrefixError::InvalidHex {
                id: "id".into(),
                max: 128,
            },
        })
    );
}
