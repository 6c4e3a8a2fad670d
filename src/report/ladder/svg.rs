//! The ladder as a self-contained SVG: no fonts but the generic families, no scripts, no
//! references outside the document. Each column is a `<g class="column">`, each packet a
//! `<g class="arrow">`, so that a page (or a test) can find them.

use super::text::{describe, letter};
use super::{clock, heading, label, Arrow, ArrowKind, Cell, Ladder};
use crate::report::html::escape::{h, h_lines};
use crate::time::rfc3339_ns;
use std::fmt::Write;

const LEFT: f64 = 96.0;
const TOP: f64 = 150.0;
const ROW: f64 = 30.0;
/// How far an arrow falls per column it crosses: packets take time to travel.
const FALL: f64 = 5.0;
/// The least room for the labels at the right.
const LABELS: f64 = 320.0;
/// Width of a character of the 11 px monospace labels, about.
const CHAR: f64 = 6.7;

fn gap(columns: usize) -> f64 {
    if columns <= 4 {
        230.0
    } else {
        (760.0 / (columns - 1) as f64).max(130.0)
    }
}

fn colour(a: &Arrow) -> &'static str {
    match a.kind {
        _ if a.lost_at.is_some() || a.unanswered => "#c0392b",
        ArrowKind::Icmp => "#8e44ad",
        _ if a.retransmission => "#d35400",
        ArrowKind::Request => "#1f5fbf",
        ArrowKind::Reply => "#1e8449",
    }
}

/// Cuts `text` to `max` characters with an ellipsis (the whole text goes in a `<title>`).
fn fit(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut s: String = text.chars().take(max.saturating_sub(1)).collect();
    s.push('…');
    s
}

/// Cuts a path to its last `max` characters with an ellipsis in front: the file's name stays
/// whole (the whole path goes in a `<title>`).
fn fit_path(text: &str, max: usize) -> String {
    let n = text.chars().count();
    if n <= max {
        return text.to_string();
    }
    let mut s = String::from("…");
    s.extend(text.chars().skip(n + 1 - max.max(1)));
    s
}

/// The ladder as an SVG document (an `<svg>` element, fit to be inlined in HTML too).
pub fn svg(l: &Ladder) -> String {
    let n = l.columns.len().max(1);
    let gap = gap(n);
    let x = |i: usize| LEFT + 20.0 + i as f64 * gap;
    let labels_x = x(n - 1) + 60.0;
    let longest = l
        .arrows
        .iter()
        .map(|a| details(a).chars().count())
        .max()
        .unwrap_or(0);
    let width = (labels_x + longest as f64 * CHAR + 24.0).max(labels_x + LABELS);
    let height = TOP + l.arrows.len().max(1) as f64 * ROW + 90.0;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="ladder" data-connection="{}" width="{width:.0}" height="{height:.0}" viewBox="0 0 {width:.0} {height:.0}" font-family="sans-serif" font-size="12">"#,
        l.id
    );
    let _ = write!(
        s,
        r##"<rect width="100%" height="100%" fill="#ffffff"/><text x="16" y="24" font-size="15" font-weight="bold">{}</text><text x="16" y="44" fill="#444">times: ms after {} by the reference clock{}; requests {} &gt; {}, replies the other way</text>"##,
        h(&l.title()),
        rfc3339_ns(l.start_ns),
        h(&l.reference
            .as_deref()
            .map(|r| format!(" ({r})"))
            .unwrap_or_default()),
        l.client,
        l.vip
    );
    let bottom = height - 70.0;
    for (i, c) in l.columns.iter().enumerate() {
        let cx = x(i);
        let w = gap.min(230.0) - 16.0;
        let chars = (w / 7.0) as usize;
        let _ = write!(
            s,
            r##"<g class="column" data-vantage="{}/{}" data-place="{}"><title>{}</title><rect x="{:.1}" y="60" width="{w:.1}" height="66" rx="6" fill="#f4f6f8" stroke="#7f8c8d"/><text x="{cx:.1}" y="78" text-anchor="middle" font-weight="bold">{} {}</text><text x="{cx:.1}" y="96" text-anchor="middle" font-family="monospace" font-size="11">{}</text><text x="{cx:.1}" y="113" text-anchor="middle" font-size="10" fill="#555">{}</text><line x1="{cx:.1}" y1="126" x2="{cx:.1}" y2="{bottom:.1}" stroke="#95a5a6" stroke-width="1.5"/></g>"##,
            c.vantage.capture,
            c.vantage.interface,
            c.place.id(),
            h(&format!("{}: {}, {}", heading(c), c.capture, clock(c))),
            cx - w / 2.0,
            letter(i),
            h(&fit(&heading(c), chars.saturating_sub(3))),
            h(&fit_path(&c.capture, chars)),
            h(&clock(c)),
        );
    }
    let _ = write!(
        s,
        r##"<text x="{:.1}" y="{:.1}" text-anchor="end" fill="#555" font-size="11">ms</text>"##,
        LEFT,
        TOP - 14.0
    );
    for (row, a) in l.arrows.iter().enumerate() {
        let y = TOP + row as f64 * ROW;
        arrow(&mut s, l, a, y, &x, labels_x);
    }
    let mut ly = bottom + 22.0;
    let _ = write!(
        s,
        r##"<text x="16" y="{ly:.1}" font-size="11" fill="#333" xml:space="preserve">● captured there   ○ passed there, not captured   ✗ lost, or no answer   ═ wrapped in the tunnel   blue: request, green: reply, orange: retransmission, red: lost, purple: ICMP</text>"##
    );
    for note in l.notes() {
        ly += 15.0;
        let _ = write!(
            s,
            r##"<text x="16" y="{ly:.1}" font-size="11" fill="#555">{}</text>"##,
            h(note)
        );
    }
    if l.left_out > 0 {
        ly += 15.0;
        let _ = write!(
            s,
            r##"<text x="16" y="{ly:.1}" font-size="11" fill="#555">{} more packets of this connection not drawn</text>"##,
            l.left_out
        );
    }
    s.push_str("</svg>\n");
    s
}

fn arrow(s: &mut String, l: &Ladder, a: &Arrow, y: f64, x: &dyn Fn(usize) -> f64, labels_x: f64) {
    let colour = colour(a);
    let frames: Vec<String> = a
        .frames()
        .map(|f| format!("{}:{}:{}", f.capture, f.interface, f.frame))
        .collect();
    let _ = write!(
        s,
        r#"<g class="arrow" data-kind="{}" data-frames="{}" data-lost="{}"{} data-retransmission="{}">"#,
        match a.kind {
            ArrowKind::Request => "request",
            ArrowKind::Reply => "reply",
            ArrowKind::Icmp => "icmp",
        },
        frames.join(" "),
        a.lost_at.is_some() || a.unanswered,
        a.lost_at
            .map(|c| {
                let v = l.columns[c].vantage;
                format!(r#" data-lost-at="{}/{}""#, v.capture, v.interface)
            })
            .unwrap_or_default(),
        a.retransmission
    );
    let mut tip = describe(a, true);
    for sight in &a.sightings {
        let c = &l.columns[sight.column];
        let _ = write!(
            tip,
            "\n{} {} frame {} at +{} ms",
            letter(sight.column),
            c.capture,
            sight.frame.frame,
            l.ms(sight.at_ns)
        );
    }
    let _ = write!(s, "<title>{}</title>", h_lines(&tip));
    let _ = write!(
        s,
        r##"<text x="{LEFT:.1}" y="{:.1}" text-anchor="end" font-family="monospace" font-size="11" fill="#333">{}</text>"##,
        y + 4.0,
        l.ms(a.at_ns)
    );
    let right = a.rightwards();
    let dir = if right { 1.0 } else { -1.0 };
    let first = a.first_column();
    let fall = |c: usize| y + FALL * (c as f64 - first as f64).abs();
    let dash = match a.kind {
        ArrowKind::Icmp => r#" stroke-dasharray="5 3""#,
        _ => "",
    };
    for (k, pair) in a.cells.windows(2).enumerate() {
        let (c0, c1) = (pair[0].0, pair[1].0);
        let (x0, y0, x1, y1) = (x(c0), fall(c0), x(c1), fall(c1));
        let lost = pair[1].1 == Cell::Lost;
        let dash = if lost {
            r#" stroke-dasharray="6 4""#
        } else {
            dash
        };
        if a.wrapped[k] {
            for off in [-2.0, 2.0] {
                let _ = write!(
                    s,
                    r#"<line x1="{x0:.1}" y1="{:.1}" x2="{x1:.1}" y2="{:.1}" stroke="{colour}" stroke-width="1.4"{dash}/>"#,
                    y0 + off,
                    y1 + off
                );
            }
            if let Some(o) = a.outer {
                let _ = write!(
                    s,
                    r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="10" font-style="italic" fill="#555">{}</text>"##,
                    (x0 + x1) / 2.0,
                    (y0 + y1) / 2.0 - 5.0,
                    h(&label::outer(&o))
                );
            }
        } else {
            let _ = write!(
                s,
                r#"<line x1="{x0:.1}" y1="{y0:.1}" x2="{x1:.1}" y2="{y1:.1}" stroke="{colour}" stroke-width="1.6"{dash}/>"#
            );
        }
        if k == 0 {
            let _ = write!(
                s,
                r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="11" font-weight="bold" fill="{colour}">{}</text>"##,
                (x0 + x1) / 2.0,
                (y0 + y1) / 2.0 - 5.0,
                h(&short(a))
            );
        }
        if pair[1].1 != Cell::Crossed {
            head(s, x1 - dir * 5.0, y1, dir, colour);
        }
    }
    if let [(only, _)] = a.cells.as_slice() {
        let (x0, y0) = (x(*only), y);
        let x1 = x0 + dir * 40.0;
        let _ = write!(
            s,
            r#"<line x1="{x0:.1}" y1="{y0:.1}" x2="{x1:.1}" y2="{y0:.1}" stroke="{colour}" stroke-width="1.6"{dash}/>"#
        );
        head(s, x1, y0, dir, colour);
        let _ = write!(
            s,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="11" font-weight="bold" fill="{colour}">{}</text>"##,
            (x0 + x1) / 2.0,
            y0 - 5.0,
            h(&short(a))
        );
    }
    for (c, cell) in &a.cells {
        let (cx, cy) = (x(*c), fall(*c));
        match cell {
            Cell::Seen => {
                let _ = write!(
                    s,
                    r#"<circle cx="{cx:.1}" cy="{cy:.1}" r="4" fill="{colour}"/>"#
                );
            }
            Cell::Missed => {
                let _ = write!(
                    s,
                    r##"<circle cx="{cx:.1}" cy="{cy:.1}" r="4" fill="#ffffff" stroke="{colour}" stroke-width="1.5"/>"##
                );
            }
            Cell::Lost => cross(s, cx, cy),
            Cell::Crossed => {}
        }
    }
    let last = a.last_column();
    let dropped_at_last =
        a.lost_at == Some(last) && a.cells.last().is_some_and(|c| c.1 == Cell::Seen);
    if a.unanswered || dropped_at_last {
        let (cx, cy) = (x(last), fall(last));
        let _ = write!(
            s,
            r##"<line x1="{cx:.1}" y1="{cy:.1}" x2="{:.1}" y2="{cy:.1}" stroke="#c0392b" stroke-width="1.6" stroke-dasharray="3 3"/>"##,
            cx + dir * 22.0
        );
        cross(s, cx + dir * 28.0, cy);
    }
    let _ = write!(
        s,
        r##"<text x="{labels_x:.1}" y="{:.1}" font-family="monospace" font-size="11" fill="#222">{}</text>"##,
        y + 4.0,
        h(&details(a))
    );
    s.push_str("</g>");
}

/// The word on the arrow: flags and payload ("SYN", "PSH-ACK 77 B", "ICMP port unreachable").
fn short(a: &Arrow) -> String {
    let words: Vec<&str> = a.label.split(' ').collect();
    let mut out = words[0].to_string();
    match a.kind {
        ArrowKind::Icmp => {
            out = a
                .label
                .split(" from ")
                .next()
                .unwrap_or(&a.label)
                .to_string();
        }
        _ => {
            if let Some(i) = words.iter().position(|w| *w == "len") {
                if let Some(n) = words.get(i + 1) {
                    out.push_str(&format!(" {n} B"));
                }
            }
        }
    }
    if a.retransmission {
        out.push_str(" (retr.)");
    }
    out
}

/// The line at the right: the label, outer and inner headers of a wrapped packet, the marks.
fn details(a: &Arrow) -> String {
    describe(a, true)
}

fn head(s: &mut String, tip: f64, y: f64, dir: f64, colour: &str) {
    let back = tip - dir * 8.0;
    let _ = write!(
        s,
        r#"<polygon points="{tip:.1},{y:.1} {back:.1},{:.1} {back:.1},{:.1}" fill="{colour}"/>"#,
        y - 4.0,
        y + 4.0
    );
}

fn cross(s: &mut String, cx: f64, cy: f64) {
    let d = 6.0;
    let _ = write!(
        s,
        r##"<path d="M{:.1},{:.1} L{:.1},{:.1} M{:.1},{:.1} L{:.1},{:.1}" stroke="#c0392b" stroke-width="2.5"/>"##,
        cx - d,
        cy - d,
        cx + d,
        cy + d,
        cx - d,
        cy + d,
        cx + d,
        cy - d
    );
}
