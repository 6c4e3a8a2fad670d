//! Text into HTML. Every string that comes from a capture or a rules file (a file name, a
//! pcapng interface name or comment, a host name, a line of the rules) goes through [`h`]
//! before it reaches the page, in element text and in (double-quoted) attribute values alike:
//! `<`, `>`, `&`, `"` and `'` become entities, so no such string can open a tag, end an
//! attribute or start an entity. Control and invisible characters (a bidirectional override
//! that reorders what the reader sees, an escape sequence) are first written out as `\u{..}`,
//! as for the terminal ([`crate::escape::terminal`]).

use std::borrow::Cow;

/// `text` safe inside HTML (or SVG) element text and double- or single-quoted attribute
/// values. Borrowed when there is nothing to escape.
pub fn h(text: &str) -> Cow<'_, str> {
    entities(crate::escape::terminal(text))
}

/// [`h`], keeping line breaks (a tooltip's lines).
pub fn h_lines(text: &str) -> Cow<'_, str> {
    entities(crate::escape::terminal_lines(text))
}

/// The markup characters of text already made visible, as entities.
fn entities(visible: Cow<'_, str>) -> Cow<'_, str> {
    if !visible.contains(['<', '>', '&', '"', '\'']) {
        return visible;
    }
    let mut out = String::with_capacity(visible.len() + 16);
    for c in visible.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// A fragment identifier made of `prefix` and `name`: letters, digits, `-`, `_` and `.` kept,
/// every other character (and a run of them) a single `-`. Safe in an `id` or an `href="#.."`
/// without escaping; two names that differ only in such characters may meet, so callers
/// number what they cannot tell apart.
pub fn anchor(prefix: &str, name: &str) -> String {
    let mut out = String::with_capacity(prefix.len() + name.len() + 1);
    out.push_str(prefix);
    out.push('-');
    let mut dash = true;
    for c in name.chars() {
        if c.is_ascii_alphanumeric() || matches!(c, '_' | '.') {
            out.push(c);
            dash = false;
        } else if !dash {
            out.push('-');
            dash = true;
        }
    }
    while out.ends_with('-') && out.len() > prefix.len() + 1 {
        out.pop();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{anchor, h};

    #[test]
    fn markup_characters_become_entities() {
        assert_eq!(
            h("<script>alert(1)</script>"),
            "&lt;script&gt;alert(1)&lt;/script&gt;"
        );
        assert_eq!(
            h(r#"a" onmouseover='x' & b"#),
            "a&quot; onmouseover=&#39;x&#39; &amp; b"
        );
        // An entity in the input is shown as written, not decoded.
        assert_eq!(h("&lt;"), "&amp;lt;");
    }

    #[test]
    fn plain_text_is_borrowed_and_unicode_kept() {
        assert!(matches!(h("server1.pcap"), std::borrow::Cow::Borrowed(_)));
        assert_eq!(h("± 0.121 ms → ünï"), "± 0.121 ms → ünï");
    }

    #[test]
    fn control_and_invisible_characters_are_shown_escaped() {
        assert_eq!(h("eth0\u{1b}[31m<b>"), "eth0\\u{1b}[31m&lt;b&gt;");
        assert_eq!(h("a\u{202e}b\nc"), "a\\u{202e}b\\nc");
    }

    #[test]
    fn anchors_keep_only_safe_characters() {
        assert_eq!(anchor("check", "reply.present"), "check-reply.present");
        assert_eq!(
            anchor("conn", "\"><script>alert(1)</script>"),
            "conn-script-alert-1-script"
        );
        assert_eq!(anchor("x", "a  b"), "x-a-b");
        assert_eq!(anchor("x", "<>"), "x-");
    }
}
