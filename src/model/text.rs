//! Free text that a client writes and an administrator later reads in a terminal (a key's
//! name and description): which characters it may hold, and how the CLI shows a stored value
//! that holds others (written before this rule, or straight into the store).
//!
//! One predicate serves both, so that what the CA refuses and what the CLI escapes cannot
//! drift apart. It goes by Unicode general category (UAX #44), not by a hand-made list:
//!
//! - `Cc` control: C0 and C1, including ESC (terminal escape sequences), BEL, NUL, tab and
//!   newline (which could forge a line of output);
//! - `Cf` format: the bidi overrides and isolates (U+202A..202E, U+2066..2069) that reorder
//!   what the reader sees, zero-width characters (U+200B..200F), U+FEFF, soft hyphen, tags;
//! - `Zl`, `Zp`: the line and paragraph separators U+2028 and U+2029;
//! - `Co`, `Cn`: private use, which a font may draw as anything, and code points unassigned
//!   in the tables used here, which a later Unicode version may make format characters.
//!   (`Cs`, surrogates, cannot occur in a Rust string.)

use std::borrow::Cow;
use std::fmt::Write as _;

use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

/// True for a character that must not reach an administrator's terminal as it is.
pub fn is_unsafe(c: char) -> bool {
    matches!(
        c.general_category(),
        GeneralCategory::Control
            | GeneralCategory::Format
            | GeneralCategory::LineSeparator
            | GeneralCategory::ParagraphSeparator
            | GeneralCategory::Surrogate
            | GeneralCategory::PrivateUse
            | GeneralCategory::Unassigned
    )
}

/// The first character of `s` that [`is_unsafe`], if any.
pub fn first_unsafe(s: &str) -> Option<char> {
    s.chars().find(|&c| is_unsafe(c))
}

/// `s` with every character that [`is_unsafe`] written as `\u{…}`, so that a terminal shows
/// it instead of acting on it. Text without such characters is returned as it is.
pub fn escape(s: &str) -> Cow<'_, str> {
    if first_unsafe(s).is_none() {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        if is_unsafe(c) {
            // Writing to a String cannot fail.
            let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_bidi_and_separators_are_unsafe() {
        for c in [
            '\0',
            '\t',
            '\n',
            '\u{1b}',
            '\u{7}',
            '\u{7f}',
            '\u{9b}',
            '\u{200b}',
            '\u{200e}',
            '\u{200f}',
            '\u{202a}',
            '\u{202e}',
            '\u{2066}',
            '\u{2069}',
            '\u{feff}',
            '\u{2028}',
            '\u{2029}',
            '\u{e000}',
            '\u{e0001}',
        ] {
            assert!(is_unsafe(c), "U+{:04X} passed", u32::from(c));
        }
    }

    #[test]
    fn ordinary_text_is_safe_and_unchanged() {
        let text = "Alice's laptop — café, 東京, ümlaut, emoji 🔑, a space";
        assert_eq!(first_unsafe(text), None);
        assert!(matches!(escape(text), Cow::Borrowed(_)));
    }

    #[test]
    fn escape_leaves_no_unsafe_character() {
        let text = "ok\u{1b}[2J\u{7}\u{202e}evil\u{2028}";
        let escaped = escape(text);
        assert_eq!(escaped, "ok\\u{1b}[2J\\u{7}\\u{202e}evil\\u{2028}");
        assert_eq!(first_unsafe(&escaped), None);
    }
}
