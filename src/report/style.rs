//! How the text reports look where they go: colour, and the width the tables fit. The command
//! line decides both ([`Term`]); the report only follows.
//!
//! Colour is painted by comfy-table itself in tables ([`Term::status_cell`]), so the escape
//! codes never count in a column's width, and by [`Painter`] in the lines between tables.

use comfy_table::{presets, Attribute, Cell, Color, ColumnConstraint, ContentArrangement, Table};
use unicode_width::UnicodeWidthStr;

use crate::checks::finding::Status;

/// Where a text report goes: whether it gets ANSI colour, and the width its tables fit
/// (None: not wrapped, one line a row, as for a file or a pipe into grep).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Term {
    pub color: bool,
    pub width: Option<u16>,
}

impl Term {
    /// No colour, tables not wrapped.
    pub const PLAIN: Term = Term {
        color: false,
        width: None,
    };

    pub fn painter(&self) -> Painter {
        Painter {
            enabled: self.color,
        }
    }

    /// A table in the reports' style, fitted to [`Term::width`]. comfy-table is told nothing
    /// about the terminal: it paints when colour is wanted and wraps at the width given.
    pub fn table(&self) -> Table {
        let mut t = Table::new();
        t.load_style(presets::UTF8_FULL_CONDENSED).force_no_tty();
        if self.color {
            t.enforce_styling();
        }
        match self.width {
            Some(w) => {
                t.set_content_arrangement(ContentArrangement::Dynamic)
                    .set_width(w);
            }
            None => {
                t.set_content_arrangement(ContentArrangement::Disabled);
            }
        }
        t
    }

    /// A status word (PASS, FAIL...) as a table cell, coloured by comfy-table when colour is on.
    pub fn status_cell(&self, status: Status) -> Cell {
        self.cell_as(status.as_str().to_uppercase(), status)
    }

    /// A cell holding `text`, coloured like `status` when colour is on.
    pub fn cell_as(&self, text: impl ToString, status: Status) -> Cell {
        let cell = Cell::new(text);
        if !self.color {
            return cell;
        }
        match status {
            Status::Fail => cell.fg(Color::DarkRed).add_attribute(Attribute::Bold),
            Status::Warn => cell.fg(Color::DarkYellow).add_attribute(Attribute::Bold),
            Status::Pass => cell.fg(Color::DarkGreen),
            Status::Info => cell.fg(Color::DarkCyan),
            Status::Skip => cell.add_attribute(Attribute::Dim),
        }
    }

    /// The widest line a column of file paths gets before a path is broken (after a `/`):
    /// the longest path when the table is not wrapped or it takes at most a third of the
    /// width, else a third of the width, and never less than the longest name between two
    /// slashes (a name is never cut).
    pub fn path_width<'a>(&self, paths: impl IntoIterator<Item = &'a str>) -> usize {
        let (mut longest, mut part) = (0, 0);
        for p in paths {
            longest = longest.max(p.width());
            part = part.max(path_parts(p).map(UnicodeWidthStr::width).max().unwrap_or(0));
        }
        match self.width {
            Some(w) => longest.min(usize::from(w) / 3).max(part),
            None => longest,
        }
    }

    /// Keeps columns of `t` as wide as their widest line, so that comfy-table does not cut
    /// what they hold; the other columns wrap instead. Call once every row is in.
    ///
    /// `paths`, columns of file paths broken by [`path_cell`], are always kept: a path is
    /// never cut in the middle. `whole` (addresses, MACs, roles, counts), in the order given,
    /// are kept when they are no wider than [`WRAPPED_MIN`], and wider ones while the table
    /// still fits the width with every column that is not kept at least that wide.
    pub fn fit(&self, t: &mut Table, paths: &[usize], whole: &[usize]) {
        let widest: Vec<usize> = (0..t.column_count())
            .map(|c| {
                let pad = t
                    .column(c)
                    .map_or(0, |col| usize::from(col.padding_width()));
                let cells = t.row_iter().filter_map(|r| r.cell_iter().nth(c));
                pad + cells
                    .flat_map(|cell| cell.content().lines().map(|l| l.width()).max())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let n = widest.len();
        let mut kept = vec![false; n];
        for &c in paths.iter().filter(|&&c| c < n) {
            kept[c] = true;
        }
        // The table's own lines: one border on each side of every column.
        let room = self
            .width
            .map_or(usize::MAX, |w| usize::from(w).saturating_sub(n + 1));
        let needs = |kept: &[bool]| -> usize {
            widest
                .iter()
                .zip(kept)
                .map(|(&w, &k)| if k { w } else { w.min(WRAPPED_MIN) })
                .sum()
        };
        for &c in whole.iter().filter(|&&c| c < n) {
            // A column no wider than the least a wrapped one gets costs nothing to keep.
            kept[c] = true;
            if widest[c] > WRAPPED_MIN && needs(&kept) > room {
                kept[c] = false;
            }
        }
        if needs(&kept) > room {
            // Too narrow to keep them and still give the prose room: only the paths stay
            // whole, the rest wraps as comfy-table can, or, when even that leaves some
            // column less than [`NARROWEST`], the table is printed as in a pipe, one line a
            // row (cut into slivers, it would be read by nobody).
            let paths_only: Vec<bool> = (0..n).map(|c| paths.contains(&c)).collect();
            let least: usize = widest
                .iter()
                .zip(&paths_only)
                .map(|(&w, &p)| if p { w } else { w.min(NARROWEST) })
                .sum();
            if least > room {
                t.set_content_arrangement(ContentArrangement::Disabled);
                return;
            }
            kept = paths_only;
        }
        for (c, _) in kept.iter().enumerate().filter(|(_, &k)| k) {
            if let Some(col) = t.column_mut(c) {
                let w = u16::try_from(widest[c]).unwrap_or(u16::MAX);
                col.set_constraint(ColumnConstraint::LowerBoundary(comfy_table::Width::Fixed(
                    w,
                )));
            }
        }
    }
}

/// The narrowest a column that wraps its text is left, padding included, when [`Term::fit`]
/// keeps others whole.
pub const WRAPPED_MIN: usize = 16;

/// The narrowest any column may be squeezed, padding included, before a table is better left
/// unwrapped ([`Term::fit`]).
pub const NARROWEST: usize = 8;

/// A path's pieces, each up to and with its `/`: `a/b/c` gives `a/`, `b/`, `c`.
fn path_parts(path: &str) -> impl Iterator<Item = &str> {
    path.split_inclusive('/')
}

/// A file path as a cell's text: lines at most `width` wide, broken only after a `/` (a
/// piece wider than that stays whole on its own line).
pub fn path_cell(path: &str, width: usize) -> String {
    if path.width() <= width {
        return path.to_string();
    }
    let mut out = String::with_capacity(path.len() + 4);
    let mut line = 0;
    for part in path_parts(path) {
        let w = part.width();
        if line > 0 && line + w > width {
            out.push('\n');
            line = 0;
        }
        out.push_str(part);
        line += w;
    }
    out
}

/// A name the JSON spells in snake_case (an outcome, a role, an evidence kind) as words for
/// people: `in_progress` gives "in progress", `rs_not_identified` "real server not identified".
pub fn words(name: &str) -> String {
    name.split('_')
        .map(|w| if w == "rs" { "real server" } else { w })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Paints text, or leaves it alone when colour is off.
#[derive(Debug, Clone, Copy)]
pub struct Painter {
    pub enabled: bool,
}

impl Painter {
    pub fn status(&self, status: Status) -> String {
        let word = status.as_str().to_uppercase();
        if !self.enabled {
            return word;
        }
        let code = match status {
            Status::Fail => "1;31",
            Status::Warn => "1;33",
            Status::Pass => "32",
            Status::Info => "36",
            Status::Skip => "2",
        };
        format!("\x1b[{code}m{word}\x1b[0m")
    }

    /// A verdict word (VERIFIED, FAILED, INCONCLUSIVE), coloured like the status it stands for.
    pub fn outcome(&self, outcome: crate::checks::verdict::Outcome) -> String {
        use crate::checks::verdict::Outcome;
        let word = outcome.as_str().to_uppercase();
        if !self.enabled {
            return word;
        }
        let code = match outcome {
            Outcome::Verified => "1;32",
            Outcome::Failed => "1;31",
            Outcome::Inconclusive => "1;33",
        };
        format!("\x1b[{code}m{word}\x1b[0m")
    }

    pub fn bold(&self, text: &str) -> String {
        if self.enabled {
            format!("\x1b[1m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_breaks_only_after_a_slash() {
        assert_eq!(
            path_cell("fixtures/tutorial/client.pcap", 20),
            "fixtures/tutorial/\nclient.pcap"
        );
        assert_eq!(
            path_cell("fixtures/tutorial/client.pcap", 29),
            "fixtures/tutorial/client.pcap"
        );
        // A piece wider than the line stays whole.
        assert_eq!(
            path_cell("a/averyveryverylongname.pcap", 8),
            "a/\naveryveryverylongname.pcap"
        );
        assert_eq!(path_cell("/abs/x.pcap", 6), "/abs/\nx.pcap");
    }

    #[test]
    fn the_path_column_is_a_third_of_the_width_but_never_cuts_a_name() {
        let paths = [
            "fixtures/tutorial/server1.pcap",
            "a/averyveryveryverylongname.pcap",
        ];
        let t = |width| Term {
            color: false,
            width,
        };
        assert_eq!(t(None).path_width(paths), 32);
        assert_eq!(t(Some(300)).path_width(paths), 32);
        // A third of 60 is 20, but the long name is 30 wide.
        assert_eq!(t(Some(60)).path_width(paths), 30);
        assert_eq!(t(Some(60)).path_width(["x/y/z/w.pcap"]), 12);
        assert_eq!(t(Some(24)).path_width(["fixtures/tutorial/x.pcap"]), 9);
    }

    #[test]
    fn snake_case_names_become_words() {
        assert_eq!(words("in_progress"), "in progress");
        assert_eq!(words("real_server"), "real server");
        assert_eq!(words("rs_not_identified"), "real server not identified");
        assert_eq!(words("completed"), "completed");
    }

    #[test]
    fn status_cells_are_plain_without_colour() {
        let t = Term::PLAIN;
        let mut table = t.table();
        table.add_row(vec![t.status_cell(Status::Fail)]);
        assert!(!table.to_string().contains('\x1b'));
        let t = Term {
            color: true,
            width: Some(40),
        };
        let mut table = t.table();
        table.add_row(vec![t.status_cell(Status::Fail)]);
        assert!(table.to_string().contains("\x1b["));
    }
}
