//! Text from users and registries cut to a length fit for a message, an Event or a condition, and
//! escaped so that it cannot break one.

/// `text` cut to at most `max_chars` characters (not bytes, so a multi-byte character is never
/// split), with `…` appended when something was cut.
pub fn shorten(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

/// `text` cut as by [`shorten`], then put in double quotes with quotes, backslashes and control
/// characters escaped (Rust's `{:?}`), so that it cannot break a message, an Event or a terminal line.
pub fn quoted(text: &str, max_chars: usize) -> String {
    format!("{:?}", shorten(text, max_chars))
}

/// `text` with only its control characters escaped (`\n`, `\u{1b}`), for values that already read
/// as code, such as JSON, and would only get harder to read inside quotes.
pub fn escape_controls(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            escaped.extend(c.escape_default());
        } else {
            escaped.push(c);
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_cut_at_a_character_boundary() {
        assert_eq!(shorten("héllo", 2), "hé…");
        assert_eq!(shorten("hi", 2), "hi");
        assert_eq!(shorten("", 0), "");
        assert_eq!(shorten("é", 0), "…");
        // A cut that would fall inside a two-byte character by byte count.
        let accents = "é".repeat(600);
        let cut = shorten(&accents, 1000);
        assert_eq!(cut, accents);
        let cut = shorten(&accents, 501);
        assert_eq!(cut.chars().count(), 502);
    }

    #[test]
    fn quoted_text_is_cut_then_escaped() {
        assert_eq!(quoted("web", 10), r#""web""#);
        assert_eq!(quoted("a\"b\nc", 10), r#""a\"b\nc""#);
        assert_eq!(quoted("abcdef", 3), r#""abc…""#);
        assert_eq!(quoted("", 3), r#""""#);
    }

    #[test]
    fn only_control_characters_are_escaped() {
        assert_eq!(escape_controls(r#"{"a":"b"}"#), r#"{"a":"b"}"#);
        assert_eq!(escape_controls("a\nb\u{1b}[2J\té"), r"a\nb\u{1b}[2J\té");
        assert_eq!(escape_controls(""), "");
    }
}
