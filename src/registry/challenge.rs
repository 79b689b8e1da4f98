//! Parsing of `WWW-Authenticate` challenges (RFC 7235) into the two schemes registries use. Pure:
//! the client calls it on the 401 of a real request, because the challenge is the only reliable
//! description of how a registry wants to be authenticated (there is no `/v2/` ping).

/// One authentication challenge from a `WWW-Authenticate` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    /// `Basic realm="…"`: send the credential's user name and password on every request.
    Basic,
    /// `Bearer realm="…",service="…",scope="…"`: get a token from `realm` and send it.
    Bearer(BearerChallenge),
}

/// The parameters of a `Bearer` challenge (the Docker token protocol).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BearerChallenge {
    /// The URL of the token service.
    pub realm: String,
    /// The `service` the token is for; sent back to the token service verbatim.
    pub service: Option<String>,
    /// The `scope` the registry asks for, e.g. `repository:library/nginx:pull`.
    pub scope: Option<String>,
    /// The `error` parameter (`invalid_token`, `insufficient_scope`), when the registry gives one.
    pub error: Option<String>,
}

/// A scheme and its parameters, before interpretation.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RawChallenge {
    scheme: String,
    params: Vec<(String, String)>,
}

/// The challenges of one or more `WWW-Authenticate` header values that the client can answer,
/// `Bearer` first (it is what Docker clients prefer when a registry offers both). Unknown schemes
/// and `Bearer` challenges without a realm are left out.
pub fn parse_challenges<'a>(header_values: impl IntoIterator<Item = &'a str>) -> Vec<Challenge> {
    let mut challenges: Vec<Challenge> = header_values
        .into_iter()
        .flat_map(parse_raw)
        .filter_map(|raw| {
            let param = |name: &str| {
                raw.params
                    .iter()
                    .find(|(key, _)| key == name)
                    .map(|(_, value)| value.clone())
            };
            match raw.scheme.as_str() {
                "basic" => Some(Challenge::Basic),
                "bearer" => Some(Challenge::Bearer(BearerChallenge {
                    realm: param("realm").filter(|realm| !realm.is_empty())?,
                    service: param("service"),
                    scope: param("scope"),
                    error: param("error"),
                })),
                _ => None,
            }
        })
        .collect();
    challenges.sort_by_key(|challenge| match challenge {
        Challenge::Bearer(_) => 0,
        Challenge::Basic => 1,
    });
    challenges
}

/// Splits one header value into challenges. A comma separates both parameters and challenges, so
/// a new challenge starts where a token is not followed by `=`.
fn parse_raw(value: &str) -> Vec<RawChallenge> {
    let mut cursor = Cursor::new(value);
    let mut challenges = Vec::new();
    loop {
        cursor.skip_while(|c| c == ',' || c.is_ascii_whitespace());
        let scheme = cursor.token();
        if scheme.is_empty() {
            break;
        }
        let mut challenge = RawChallenge {
            scheme: scheme.to_ascii_lowercase(),
            params: Vec::new(),
        };
        loop {
            cursor.skip_while(|c| c == ',' || c.is_ascii_whitespace());
            let start = cursor.position;
            let name = cursor.token();
            if name.is_empty() {
                break;
            }
            // A token68 (`Negotiate abc123==`) is a bare word ending in `=` padding; it carries
            // nothing the client needs, so it is skipped, not taken for a parameter.
            if cursor.at_padding() {
                cursor.skip_while(|c| c == '=');
                continue;
            }
            cursor.skip_while(|c| c == ' ' || c == '\t');
            if !cursor.eat('=') {
                // A word without `=` is the scheme of the next challenge.
                cursor.position = start;
                break;
            }
            cursor.skip_while(|c| c == ' ' || c == '\t');
            let value = if cursor.eat('"') {
                cursor.quoted()
            } else {
                cursor.token().to_owned()
            };
            challenge.params.push((name.to_ascii_lowercase(), value));
        }
        challenges.push(challenge);
    }
    challenges
}

struct Cursor<'a> {
    text: &'a str,
    position: usize,
}

impl<'a> Cursor<'a> {
    fn new(text: &'a str) -> Self {
        Self { text, position: 0 }
    }

    fn rest(&self) -> &'a str {
        &self.text[self.position..]
    }

    fn skip_while(&mut self, predicate: impl Fn(char) -> bool) {
        let skipped: usize = self
            .rest()
            .chars()
            .take_while(|&c| predicate(c))
            .map(char::len_utf8)
            .sum();
        self.position += skipped;
    }

    fn eat(&mut self, expected: char) -> bool {
        if self.rest().starts_with(expected) {
            self.position += expected.len_utf8();
            true
        } else {
            false
        }
    }

    /// A bare word: visible characters except the few that structure the header. Looser than an
    /// RFC 7230 token, because some registries send unquoted URLs and scopes (`repository:a/b:pull`).
    fn token(&mut self) -> &'a str {
        let start = self.position;
        self.skip_while(|c| c.is_ascii_graphic() && !matches!(c, ',' | '=' | '"' | ';' | '\\'));
        &self.text[start..self.position]
    }

    fn at_padding(&self) -> bool {
        let rest = self.rest();
        rest.starts_with('=') && {
            let after = rest.trim_start_matches('=').trim_start();
            after.is_empty() || after.starts_with(',')
        }
    }

    /// The rest of a quoted string after its opening quote, with `\` escapes resolved. An
    /// unterminated string runs to the end of the header.
    fn quoted(&mut self) -> String {
        let mut value = String::new();
        let mut chars = self.rest().char_indices();
        let mut consumed = self.rest().len();
        while let Some((index, c)) = chars.next() {
            match c {
                '"' => {
                    consumed = index + 1;
                    break;
                }
                '\\' => {
                    if let Some((_, escaped)) = chars.next() {
                        value.push(escaped);
                    }
                }
                other => value.push(other),
            }
        }
        self.position += consumed;
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bearer(realm: &str, service: Option<&str>, scope: Option<&str>) -> Challenge {
        Challenge::Bearer(BearerChallenge {
            realm: realm.into(),
            service: service.map(Into::into),
            scope: scope.map(Into::into),
            error: None,
        })
    }

    #[test]
    fn docker_hub_bearer_challenge_yields_realm_service_and_scope() {
        let header = r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull""#;
        assert_eq!(
            parse_challenges([header]),
            vec![bearer(
                "https://auth.docker.io/token",
                Some("registry.docker.io"),
                Some("repository:library/nginx:pull"),
            )]
        );
    }

    #[test]
    fn commas_inside_quoted_values_do_not_split_parameters() {
        let header = r#"Bearer realm="https://r.example/token",scope="repository:a/b:pull,push",service="r.example""#;
        assert_eq!(
            parse_challenges([header]),
            vec![bearer(
                "https://r.example/token",
                Some("r.example"),
                Some("repository:a/b:pull,push"),
            )]
        );
    }

    #[test]
    fn escaped_quotes_inside_quoted_values_are_unescaped() {
        let header = r#"Bearer realm="https://r.example/t\"oken""#;
        assert_eq!(
            parse_challenges([header]),
            vec![bearer(r#"https://r.example/t"oken"#, None, None)]
        );
    }

    #[test]
    fn basic_challenge_is_recognised_case_insensitively() {
        assert_eq!(
            parse_challenges([r#"basic realm="Registry Realm""#]),
            vec![Challenge::Basic]
        );
        assert_eq!(
            parse_challenges([r#"BASIC realm="x", charset="UTF-8""#]),
            vec![Challenge::Basic]
        );
    }

    #[test]
    fn two_challenges_in_one_header_are_split_and_bearer_comes_first() {
        let header = r#"Basic realm="x", Bearer realm="https://t.example/token",service="reg""#;
        assert_eq!(
            parse_challenges([header]),
            vec![
                bearer("https://t.example/token", Some("reg"), None),
                Challenge::Basic
            ]
        );
    }

    #[test]
    fn challenges_from_several_header_values_are_combined() {
        assert_eq!(
            parse_challenges([r#"Basic realm="x""#, r#"Bearer realm="https://t/""#]),
            vec![bearer("https://t/", None, None), Challenge::Basic]
        );
    }

    #[test]
    fn unquoted_parameter_values_and_spaces_around_equals_are_accepted() {
        assert_eq!(
            parse_challenges(["Bearer realm = https://t.example/token , service=reg"]),
            vec![bearer("https://t.example/token", Some("reg"), None)]
        );
    }

    #[test]
    fn error_parameter_of_a_bearer_challenge_is_kept() {
        let header =
            r#"Bearer realm="https://t/",error="insufficient_scope",scope="repository:a:pull""#;
        let challenges: [Challenge; 1] = parse_challenges([header]).try_into().unwrap();
        let [Challenge::Bearer(challenge)] = challenges else {
            panic!("expected one bearer challenge");
        };
        assert_eq!(challenge.error.as_deref(), Some("insufficient_scope"));
    }

    #[test]
    fn token68_credentials_do_not_start_a_new_challenge() {
        assert_eq!(
            parse_challenges(["Negotiate abc123==, Basic realm=\"x\""]),
            vec![Challenge::Basic]
        );
    }

    #[test]
    fn bearer_without_realm_unknown_schemes_and_garbage_are_ignored() {
        assert_eq!(parse_challenges([r#"Bearer service="x""#]), vec![]);
        assert_eq!(parse_challenges([r#"Digest realm="x""#]), vec![]);
        assert_eq!(parse_challenges(["", ",,,", "\"unterminated"]), vec![]);
    }

    #[test]
    fn an_unterminated_quoted_value_runs_to_the_end_of_the_header() {
        assert_eq!(
            parse_challenges([r#"Bearer realm="https://t/token"#]),
            vec![bearer("https://t/token", None, None)]
        );
    }
}
