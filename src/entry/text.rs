//! Free text in statements: labels, display names and reasons.
//!
//! Everything here is shown to people (in audit listings, lookups, moderation tools), so text
//! that renders differently from what it is must not get in: control characters, and the
//! invisible "format" characters that reorder or hide text (Unicode bidirectional overrides and
//! isolates, zero-width joiners and spaces, the byte-order mark, tag characters). A label
//! `entity=abc` with a right-to-left override could read as another entity's name.

use crate::types::Invalid;

/// Characters refused in free text besides `char::is_control` (Unicode category Cc): the
/// characters of category Cf (format) and the fillers that render as nothing.
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'                      // soft hyphen
        | '\u{034F}'                    // combining grapheme joiner
        | '\u{061C}'                    // Arabic letter mark
        | '\u{115F}' | '\u{1160}'       // Hangul fillers
        | '\u{17B4}' | '\u{17B5}'       // Khmer inherent vowels
        | '\u{180B}'..='\u{180F}'       // Mongolian variation selectors and vowel separator
        | '\u{200B}'..='\u{200F}'       // zero-width space, non-joiner, joiner; LRM, RLM
        | '\u{202A}'..='\u{202E}'       // bidi embeddings and overrides
        | '\u{2060}'..='\u{206F}'       // word joiner, invisible operators, bidi isolates
        | '\u{3164}'                    // Hangul filler
        | '\u{FE00}'..='\u{FE0F}'       // variation selectors
        | '\u{FEFF}'                    // zero-width no-break space (byte-order mark)
        | '\u{FFA0}'                    // halfwidth Hangul filler
        | '\u{FFF0}'..='\u{FFFB}'       // interlinear annotation controls
        | '\u{1D173}'..='\u{1D17A}'     // musical format characters
        | '\u{E0000}'..='\u{E0FFF}' // tags and variation selectors supplement
    )
}

/// Checks free text: at most `max` bytes, no control or invisible characters.
///
/// # Errors
/// Why the text is refused, naming the offending character by code point.
pub fn check_text(value: &str, max: usize) -> Result<(), Invalid> {
    if value.len() > max {
        return Err(Invalid(format!("at most {max} bytes, got {}", value.len())));
    }
    match value.chars().find(|&c| c.is_control() || is_invisible(c)) {
        Some(c) => Err(Invalid(format!(
            "control and invisible characters are not allowed (found U+{:04X})",
            u32::from(c)
        ))),
        None => Ok(()),
    }
}

/// Checks one free tag: 1-64 characters of `[a-z0-9._:-]`.
///
/// # Errors
/// When the tag is empty, too long or uses other characters.
pub fn check_tag(tag: &str) -> Result<(), Invalid> {
    let ok = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || "._:-".contains(c);
    if tag.is_empty() || tag.len() > 64 || !tag.chars().all(ok) {
        return Err(Invalid(format!(
            "tag {:?} must be 1-64 characters of [a-z0-9._:-]",
            truncate(tag, 64)
        )));
    }
    Ok(())
}

/// At most `max` bytes of `s`, cut at a character boundary: client text echoed in an error.
pub fn truncate(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn visible_text_is_accepted() {
        for ok in [
            "",
            "glorification",
            "Alpha Video Inc.",
            "مثال",
            "例え",
            "emoji 🙂",
        ] {
            assert_eq!(check_text(ok, 256), Ok(()), "{ok:?}");
        }
    }

    #[test]
    fn control_bidi_and_zero_width_characters_are_refused() {
        for bad in [
            "a\u{0}b",
            "line\nbreak",
            "tab\t",
            "\u{7F}",
            "\u{85}", // Cc
            "abc\u{202E}cba",
            "\u{2066}x\u{2069}",
            "x\u{200F}", // bidi
            "zero\u{200B}width",
            "join\u{200D}er",
            "\u{FEFF}bom",
            "\u{2060}", // zero-width
            "tag\u{E0041}",
            "soft\u{AD}hyphen",
            "\u{3164}",
        ] {
            let err = check_text(bad, 256).expect_err(bad);
            assert!(err.0.contains("U+"), "{err}");
        }
    }

    #[test]
    fn length_is_in_bytes() {
        assert!(check_text(&"a".repeat(256), 256).is_ok());
        assert!(check_text(&"a".repeat(257), 256).is_err());
        assert!(check_text(&"é".repeat(129), 256).is_err());
    }

    #[test]
    fn truncate_keeps_char_boundaries() {
        assert_eq!(truncate("ééé", 3), "é");
        assert_eq!(truncate("abc", 10), "abc");
    }
}
