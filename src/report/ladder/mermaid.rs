//! The ladder as a Mermaid `sequenceDiagram`, for tickets: one participant per column, one
//! message per arrow (from the first vantage point that saw the packet to the last, or to where
//! it was lost), the tunnel and the marks in its text.

use super::text::letter;
use super::{clock, heading, label, ArrowKind, Cell, Ladder};

/// Mermaid text for a participant's alias: every character that is not plainly
/// safe there (`;` ends a statement, `#` starts an entity, `%%` a comment, `<`, `>`, `:`, `,`
/// and `-` take part in the syntax and HTML) written as a `#NNN;` entity.
pub fn escape(text: &str) -> String {
    entities(text, |c| {
        c.is_ascii_alphanumeric() || matches!(c, ' ' | '.' | '_' | '/' | '+' | '(' | ')' | '=')
    })
}

/// Mermaid text for a message, which runs from the `:` to the end of the line: only `;`, `#`,
/// `%`, `<`, `>`, `&`, `"` and control or invisible characters are written as entities, so that
/// "10.0.0.1:80 → 10.0.0.100:80" stays readable in a ticket.
pub fn escape_message(text: &str) -> String {
    entities(text, |c| {
        !matches!(c, ';' | '#' | '%' | '<' | '>' | '&' | '"')
            && crate::escape::printable(&c.to_string(), 1).chars().count() == 1
    })
}

fn entities(text: &str, keep: impl Fn(char) -> bool) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if keep(c) {
            out.push(c);
        } else {
            out.push_str(&format!("#{};", u32::from(c)));
        }
    }
    out
}

/// The ladder as a Mermaid sequence diagram.
pub fn mermaid(l: &Ladder) -> String {
    let mut out = String::from("sequenceDiagram\n");
    // The title, like a message, runs to the end of its line.
    let title = l.title().replace(" > ", " → ");
    out.push_str(&format!("    title {}\n", escape_message(&title)));
    for (i, c) in l.columns.iter().enumerate() {
        out.push_str(&format!(
            "    participant {} as {}\n",
            letter(i),
            escape(&format!("{} ({}, {})", heading(c), c.capture, clock(c)))
        ));
    }
    for a in &l.arrows {
        let from = a.first_column();
        let lost = a.lost_at.is_some() || a.unanswered;
        let to = a.last_column();
        let arrow = match (a.kind, lost) {
            (ArrowKind::Request, false) => "->>",
            (ArrowKind::Reply, false) => "-->>",
            (ArrowKind::Icmp, false) => "--)",
            (ArrowKind::Request, true) => "-x",
            (_, true) => "--x",
        };
        let mut text = format!("+{} ms {}", l.ms(a.at_ns), a.label);
        let via: Vec<String> = a
            .cells
            .iter()
            .skip(1)
            .filter(|c| c.0 != to && c.1 == Cell::Seen)
            .map(|c| letter(c.0))
            .collect();
        if !via.is_empty() {
            text.push_str(&format!(" via {}", via.join(", ")));
        }
        if let Some(o) = a.outer.filter(|_| a.wrapped.iter().any(|w| *w)) {
            text.push_str(&format!(
                ", wrapped: {} | {} > {}",
                label::outer(&o),
                a.src,
                a.dst
            ));
        }
        if a.retransmission {
            text.push_str(", retransmission");
        }
        for (c, cell) in &a.cells {
            if *cell == Cell::Missed {
                text.push_str(&format!(", not captured at {}", letter(*c)));
            }
        }
        if let Some(c) = a.lost_at {
            text.push_str(&format!(", lost at {}", letter(c)));
        }
        if a.unanswered {
            text.push_str(", no answer");
        }
        out.push_str(&format!(
            "    {}{arrow}{}: {}\n",
            letter(from),
            letter(to),
            escape_message(&text.replace(" > ", " → "))
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{escape, escape_message};

    #[test]
    fn everything_that_is_syntax_becomes_an_entity() {
        assert_eq!(escape("SYN seq 0"), "SYN seq 0");
        assert_eq!(escape("a;b#c"), "a#59;b#35;c");
        assert_eq!(escape("<script>"), "#60;script#62;");
        assert_eq!(escape("10.0.0.1:80 %% x"), "10.0.0.1#58;80 #37;#37; x");
        assert_eq!(escape("a-x\u{1b}"), "a#45;x#27;");
        assert_eq!(
            escape_message("SYN-ACK 10.0.0.1:80 → 10.0.0.9:5000 | x"),
            "SYN-ACK 10.0.0.1:80 → 10.0.0.9:5000 | x"
        );
        assert_eq!(
            escape_message("a;b#c%<>\u{1b}\u{202e}"),
            "a#59;b#35;c#37;#60;#62;#27;#8238;"
        );
    }
}
