//! Text from users and registries cut to a length fit for a message, an Event or a condition.

/// `text` cut to at most `max_chars` characters (not bytes, so a multi-byte character is never
/// split), with `…` appended when something was cut.
pub fn shorten(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
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
}
