//! Text that comes from a capture (a pcapng `if_filter`, an interface name) or from the
//! command line (a file name) is whatever its writer put there: escape it before it reaches a
//! terminal, so that a control sequence in a file cannot rewrite the report (an OSC title, a
//! line erase, a carriage return over the verdict), and cut it so that it cannot flood it.
//! JSON needs none of this: serde escapes control characters itself.

use std::borrow::Cow;

/// Zero-width, bidirectional-override and isolate characters, and the byte-order mark.
const INVISIBLE: [std::ops::RangeInclusive<char>; 4] = [
    '\u{200b}'..='\u{200f}',
    '\u{202a}'..='\u{202e}',
    '\u{2066}'..='\u{2069}',
    '\u{feff}'..='\u{feff}',
];

fn invisible(c: char) -> bool {
    // Default-ignorable and format characters (bidi overrides, zero-width) hide or reorder
    // text as surely as control characters do.
    c.is_control() || INVISIBLE.iter().any(|r| r.contains(&c))
}

/// `text` safe for a terminal: every control and invisible character (newlines too: one
/// field, one line) written as a `\u{..}` escape. Borrowed when there is nothing to escape,
/// as with almost every string.
pub fn terminal(text: &str) -> Cow<'_, str> {
    escaped(text, false)
}

/// [`terminal`] for text of several lines: `\n` kept, everything else escaped.
pub fn terminal_lines(text: &str) -> Cow<'_, str> {
    escaped(text, true)
}

fn escaped(text: &str, keep_newlines: bool) -> Cow<'_, str> {
    let unsafe_char = |c: char| invisible(c) && !(keep_newlines && c == '\n');
    if !text.chars().any(unsafe_char) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if unsafe_char(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// `text` with control and other invisible characters written as `\u{..}` escapes (`\n`, `\t`
/// as themselves escaped), cut to `max_chars` characters with `…` when longer.
pub fn printable(text: &str, max_chars: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max_chars * 2));
    for (i, c) in text.chars().enumerate() {
        if i == max_chars {
            out.push('…');
            break;
        }
        if invisible(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// `text` as one field of a Zeek-style TSV log (`flows --format tsv`), appended to `out`:
/// every byte of a control or invisible character, a backslash, and (in an element of a set)
/// the set separator `,` written as `\xNN`, as Zeek's ASCII writer escapes the separator, so
/// that a tab or a newline in a file name cannot break a row. A value that would read as the
/// unset (`-`) or empty (`(empty)`) marker has its first character escaped. The caller writes
/// an empty value as `(empty)`.
pub fn zeek_field(text: &str, set_element: bool, out: &mut String) {
    use std::fmt::Write;
    let marker = text == "-" || text == "(empty)";
    for (i, c) in text.char_indices() {
        if invisible(c) || c == '\\' || (set_element && c == ',') || (marker && i == 0) {
            let mut bytes = [0u8; 4];
            for b in c.encode_utf8(&mut bytes).bytes() {
                let _ = write!(out, "\\x{b:02x}");
            }
        } else {
            out.push(c);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{printable, terminal, terminal_lines, zeek_field};

    #[test]
    fn control_and_invisible_characters_are_escaped_and_long_text_cut() {
        assert_eq!(printable("tcp port 80", 100), "tcp port 80");
        assert_eq!(printable("port 80\u{1b}[2J\n", 100), "port 80\\u{1b}[2J\\n");
        assert_eq!(printable("a\u{202e}b", 100), "a\\u{202e}b");
        assert_eq!(printable("abcdef", 3), "abc…");
        assert_eq!(printable("ünï", 3), "ünï");
    }

    #[test]
    fn terminal_text_keeps_plain_text_borrowed_and_escapes_the_rest() {
        let evil = "evil\n\u{1b}[31mRED\u{1b}[0m\u{1b}]0;pwned\u{7}\r\u{1b}[2Kname.pcap";
        let shown = terminal(evil);
        assert!(!shown.chars().any(|c| c.is_control()), "{shown}");
        assert_eq!(
            shown,
            "evil\\n\\u{1b}[31mRED\\u{1b}[0m\\u{1b}]0;pwned\\u{7}\\r\\u{1b}[2Kname.pcap"
        );
        assert!(matches!(
            terminal("server1.pcap"),
            std::borrow::Cow::Borrowed(_)
        ));
        assert_eq!(terminal_lines("a\nb\u{1b}"), "a\nb\\u{1b}");
    }

    #[test]
    fn zeek_fields_escape_separators_controls_and_markers() {
        let field = |t: &str, set: bool| {
            let mut s = String::new();
            zeek_field(t, set, &mut s);
            s
        };
        assert_eq!(field("eth0", false), "eth0");
        assert_eq!(field("a\tb\nc\\d", false), "a\\x09b\\x0ac\\x5cd");
        assert_eq!(field("a,b", false), "a,b");
        assert_eq!(field("a,b", true), "a\\x2cb");
        assert_eq!(field("-", false), "\\x2d");
        assert_eq!(field("(empty)", true), "\\x28empty)");
        assert_eq!(field("x-", false), "x-");
        assert_eq!(field("a\u{202e}b", false), "a\\xe2\\x80\\xaeb");
        assert_eq!(field("ünï", false), "ünï");
    }
}
