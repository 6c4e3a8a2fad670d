//! The ladder for a terminal: a legend of the columns, then one line per packet, its arrow
//! drawn across the columns with box-drawing characters and its label after it.

use super::{clock, heading, label, Arrow, ArrowKind, Cell, Ladder};
use crate::time::rfc3339_ns;

/// Characters between two columns, at most (fewer when there are many columns).
const GAP: usize = 16;
/// Room left of the first column and right of the last (arrow stubs, the no-answer mark).
const LEFT: usize = 4;
const RIGHT: usize = 3;

/// The letter naming column `i` in the diagram.
pub fn letter(i: usize) -> String {
    match u8::try_from(i).ok().filter(|i| *i < 26) {
        Some(i) => char::from(b'A' + i).to_string(),
        None => format!("C{}", i + 1),
    }
}

/// The ladder as text, one line per arrow (after the legend), for a terminal of about 120
/// columns with three or four vantage points.
pub fn text(l: &Ladder) -> String {
    let mut out = String::new();
    out.push_str(&l.title());
    out.push('\n');
    out.push_str(&format!(
        "times: ms after {} by the reference clock{}\n",
        rfc3339_ns(l.start_ns),
        l.reference
            .as_deref()
            .map(|r| format!(" ({r})"))
            .unwrap_or_default()
    ));
    out.push_str(&format!(
        "requests {} > {}, replies the other way; ═ inside the tunnel\n\n",
        l.client, l.vip
    ));
    let headings: Vec<String> = l.columns.iter().map(heading).collect();
    let width = headings
        .iter()
        .map(|h| h.chars().count())
        .max()
        .unwrap_or(0);
    for (i, (c, h)) in l.columns.iter().zip(&headings).enumerate() {
        out.push_str(&format!(
            "  {:<2} {h:<width$}  {}, {}\n",
            letter(i),
            c.capture,
            clock(c)
        ));
    }
    out.push('\n');
    let gap = gap(l.columns.len());
    let x = |i: usize| LEFT + i * gap;
    let cells = LEFT + l.columns.len().saturating_sub(1) * gap + 1 + RIGHT;
    let mut head: Vec<char> = vec![' '; cells];
    for i in 0..l.columns.len() {
        for (k, ch) in letter(i).chars().enumerate() {
            if let Some(slot) = head.get_mut(x(i) + k) {
                *slot = ch;
            }
        }
    }
    out.push_str(&format!(
        "{:>9} {}\n",
        "ms",
        head.iter().collect::<String>().trim_end()
    ));
    for a in &l.arrows {
        let row = draw(a, l.columns.len(), gap, cells);
        out.push_str(&format!(
            "{:>9} {}  {}\n",
            l.ms(a.at_ns),
            row,
            describe(a, false)
        ));
    }
    if l.arrows.is_empty() {
        out.push_str("          (no packet of this connection in the captures)\n");
    }
    out.push('\n');
    out.push_str("● captured there  ○ passed there, not captured  ✗ lost, or no answer\n");
    for n in l.notes() {
        out.push_str(n);
        out.push('\n');
    }
    if l.left_out > 0 {
        out.push_str(&format!(
            "{} more packets of this connection not drawn\n",
            l.left_out
        ));
    }
    out
}

fn gap(columns: usize) -> usize {
    if columns <= 4 {
        GAP
    } else {
        (72 / (columns - 1)).clamp(6, GAP)
    }
}

/// One arrow across the columns.
fn draw(a: &Arrow, columns: usize, gap: usize, width: usize) -> String {
    let x = |i: usize| LEFT + i * gap;
    let mut row: Vec<char> = vec![' '; width];
    for i in 0..columns {
        row[x(i)] = '│';
    }
    let right = a.rightwards();
    let line = |wrapped: bool| match (a.kind, wrapped) {
        (ArrowKind::Icmp, _) => '┄',
        (_, true) => '═',
        (_, false) => '─',
    };
    let head = if right { '▶' } else { '◀' };
    for (k, pair) in a.cells.windows(2).enumerate() {
        let (from, to) = (x(pair[0].0), x(pair[1].0));
        let (lo, hi) = (from.min(to), from.max(to));
        for slot in &mut row[lo + 1..hi] {
            *slot = line(a.wrapped[k]);
        }
        if pair[1].1 != Cell::Crossed {
            row[if right { to - 1 } else { to + 1 }] = head;
        }
    }
    if let [(only, _)] = a.cells.as_slice() {
        let at = x(*only);
        let stub: [usize; 3] = if right {
            [at + 1, at + 2, at + 3]
        } else {
            [at - 1, at - 2, at - 3]
        };
        row[stub[0]] = line(false);
        row[stub[1]] = line(false);
        row[stub[2]] = head;
    }
    for (c, cell) in &a.cells {
        row[x(*c)] = match cell {
            Cell::Seen => '●',
            Cell::Missed => '○',
            Cell::Lost => '✗',
            Cell::Crossed => row[x(*c)],
        };
    }
    let last = x(a.last_column());
    let dropped_at_last =
        a.lost_at == Some(a.last_column()) && a.cells.last().is_some_and(|c| c.1 == Cell::Seen);
    if (a.unanswered || dropped_at_last) && a.cells.len() > 1 {
        let (step, mark) = if right {
            (last + 1, last + 2)
        } else {
            (last - 1, last - 2)
        };
        row[step] = '─';
        row[mark] = '✗';
    }
    row.into_iter().collect()
}

/// The label after an arrow: what the packet was, its tunnel (with the inner header after the
/// outer one when `inner`: "IPIP 10.0.0.1 > 10.0.0.2 | 10.0.0.9:5000 > 10.0.0.100:80"), and
/// what befell it.
pub fn describe(a: &Arrow, inner: bool) -> String {
    let mut parts = vec![a.label.clone()];
    if let Some(o) = a.outer.filter(|_| a.wrapped.iter().any(|w| *w)) {
        match inner {
            true => parts.push(format!("{} | {} > {}", label::outer(&o), a.src, a.dst)),
            false => parts.push(label::outer(&o)),
        }
    }
    if a.retransmission {
        parts.push("retransmission".into());
    }
    let missed: Vec<String> = a
        .cells
        .iter()
        .filter(|c| c.1 == Cell::Missed)
        .map(|c| letter(c.0))
        .collect();
    if !missed.is_empty() {
        parts.push(format!("not captured at {}", missed.join(", ")));
    }
    if let Some(c) = a.lost_at {
        if a.cells.iter().any(|x| x.0 == c && x.1 == Cell::Lost) {
            parts.push(format!("✗ lost before {}", letter(c)));
        } else {
            parts.push(format!("✗ dropped in {}", letter(c)));
        }
    }
    if a.unanswered {
        parts.push("✗ no answer".into());
    }
    parts.join(" · ")
}
