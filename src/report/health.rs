//! The health checks the captures show ([`crate::flows::probes`]), as a table: `verify` and
//! `flows` print the same one.

use comfy_table::{Cell, CellAlignment};

use super::style::{path_cell, Term};
use crate::escape::terminal as esc;
use crate::flows::Analysis;

/// The table's title.
pub const TITLE: &str =
    "Health checks (the director's own connections to real servers; lost: no answer)";

/// The table of the health checks, or None when the captures show none.
pub fn table(a: &Analysis, term: &Term) -> Option<String> {
    if a.health_checks.is_empty() {
        return None;
    }
    let mut t = term.table();
    t.set_header(vec![
        "capture",
        "director > server",
        "checks",
        "answered",
        "refused",
        "lost",
        "every",
    ]);
    let names: Vec<String> = a
        .health_checks
        .iter()
        .map(|h| esc(&super::flows::vantage_label(a, h.vantage)).into_owned())
        .collect();
    let path_width = term.path_width(names.iter().map(String::as_str));
    for (h, name) in a.health_checks.iter().zip(&names) {
        let num = |n: u64| Cell::new(n).set_alignment(CellAlignment::Right);
        let every = h
            .median_interval_ns
            .map_or_else(|| "-".to_string(), |i| format!("{:.1} s", i as f64 / 1e9));
        t.add_row(vec![
            Cell::new(path_cell(name, path_width)),
            Cell::new(format!(
                "{} > {} {}",
                h.key.director, h.key.proto, h.key.server
            )),
            num(h.started),
            num(h.answered),
            num(h.refused),
            num(h.unanswered),
            Cell::new(every).set_alignment(CellAlignment::Right),
        ]);
    }
    term.fit(&mut t, &[0], &[1, 2, 3, 4, 5, 6]);
    Some(t.to_string())
}
