//! Text that comes from a capture (a pcapng `if_filter`, an interface name) is whatever the
//! file's writer put there: escape it before it reaches a terminal, so that a control sequence
//! in a file cannot rewrite the report, and cut it so that it cannot flood it.

/// Zero-width, bidirectional-override and isolate characters, and the byte-order mark.
const INVISIBLE: [std::ops::RangeInclusive<char>; 4] = [
    '\u{200b}'..='\u{200f}',
    '\u{202a}'..='\u{202e}',
    '\u{2066}'..='\u{2069}',
    '\u{feff}'..='\u{feff}',
];

/// `text` with control and other invisible characters written as `\u{..}` escapes (`\n`, `\t`
/// as themselves escaped), cut to `max_chars` characters with `…` when longer.
pub fn printable(text: &str, max_chars: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max_chars * 2));
    for (i, c) in text.chars().enumerate() {
        if i == max_chars {
            out.push('…');
            break;
        }
        // Default-ignorable and format characters (bidi overrides, zero-width) hide or reorder
        // text as surely as control characters do.
        let invisible = c.is_control() || INVISIBLE.iter().any(|r| r.contains(&c));
        if invisible {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::printable;

    #[test]
    fn control_and_invisible_characters_are_escaped_and_long_text_cut() {
        assert_eq!(printable("tcp port 80", 100), "tcp port 80");
        assert_eq!(printable("port 80\u{1b}[2J\n", 100), "port 80\\u{1b}[2J\\n");
        assert_eq!(printable("a\u{202e}b", 100), "a\\u{202e}b");
        assert_eq!(printable("abcdef", 3), "abc…");
        assert_eq!(printable("ünï", 3), "ünï");
    }
}
