//! `flows --format tsv`: the connections as a Zeek conn.log in its ASCII form (tab-separated,
//! `#` header lines naming the separators, the fields and their types, `#close` at the end),
//! one line per connection written as soon as it is rebuilt. Zeek's tools (`zeek-cut`), and
//! readers of Zeek logs (Tenzir, DuckDB's CSV reader with `comment='#'`) read it as it is.

use std::fmt::Write as _;
use std::io::{self, Write};

use super::conn_row::{emit, Context, Fields, COLUMNS};
use super::flows::ConnectionWriter;
use crate::escape::zeek_field;
use crate::flows::{Analysis, Connection};

/// Zeek's marker of a field without a value.
pub const UNSET: &str = "-";
/// Zeek's marker of an empty string or set.
pub const EMPTY: &str = "(empty)";

pub struct ConnLog<W: Write> {
    out: W,
    ctx: Option<Context>,
    /// The line being made, reused from row to row.
    line: String,
    /// A value's text before it is escaped.
    scratch: String,
}

impl<W: Write> ConnLog<W> {
    pub fn new(out: W) -> Self {
        ConnLog {
            out,
            ctx: None,
            line: String::with_capacity(512),
            scratch: String::new(),
        }
    }
}

impl<W: Write> ConnectionWriter for ConnLog<W> {
    fn head(&mut self, a: &Analysis) -> io::Result<()> {
        self.ctx = Some(Context::new(a));
        let names: Vec<&str> = COLUMNS.iter().map(|c| c.name).collect();
        let types: Vec<&str> = COLUMNS.iter().map(|c| c.kind.zeek_name()).collect();
        write!(
            self.out,
            "#separator \\x09\n#set_separator\t,\n#empty_field\t{EMPTY}\n#unset_field\t{UNSET}\n\
             #path\tconn\n#open\t{}\n#fields\t{}\n#types\t{}\n",
            stamp(now_ns()),
            names.join("\t"),
            types.join("\t")
        )
    }

    fn connection(&mut self, c: &Connection) -> io::Result<()> {
        let ctx = self
            .ctx
            .as_ref()
            .expect("head comes before the connections");
        self.line.clear();
        let mut row = Row {
            line: &mut self.line,
            scratch: &mut self.scratch,
            fields: 0,
        };
        emit(c, ctx, &mut row);
        debug_assert_eq!(row.fields, COLUMNS.len());
        self.line.push('\n');
        self.out.write_all(self.line.as_bytes())
    }

    fn tail(&mut self, _: &Analysis) -> io::Result<()> {
        writeln!(self.out, "#close\t{}", stamp(now_ns()))?;
        self.out.flush()
    }
}

/// A row's fields as text, tab-separated.
struct Row<'a> {
    line: &'a mut String,
    scratch: &'a mut String,
    fields: usize,
}

impl Row<'_> {
    fn next(&mut self) -> &mut String {
        if self.fields > 0 {
            self.line.push('\t');
        }
        self.fields += 1;
        self.line
    }

    fn number(&mut self, value: Option<impl std::fmt::Display>) {
        let line = self.next();
        match value {
            Some(v) => {
                let _ = write!(line, "{v}");
            }
            None => line.push_str(UNSET),
        }
    }

    fn seconds(&mut self, ns: Option<i64>) {
        self.number(ns.map(Seconds));
    }
}

impl Fields for Row<'_> {
    fn time(&mut self, ns: Option<i64>) {
        self.seconds(ns)
    }

    fn interval(&mut self, ns: Option<i64>) {
        self.seconds(ns)
    }

    fn count(&mut self, n: Option<u64>) {
        self.number(n)
    }

    fn port(&mut self, p: Option<u16>) {
        self.number(p)
    }

    fn text(&mut self, value: Option<&dyn std::fmt::Display>) {
        let Some(v) = value else {
            self.next().push_str(UNSET);
            return;
        };
        self.scratch.clear();
        let _ = write!(self.scratch, "{v}");
        let scratch = std::mem::take(self.scratch);
        let line = self.next();
        if scratch.is_empty() {
            line.push_str(EMPTY);
        } else {
            zeek_field(&scratch, false, line);
        }
        *self.scratch = scratch;
    }

    fn set(&mut self, items: &[&str]) {
        let line = self.next();
        if items.is_empty() {
            line.push_str(EMPTY);
        }
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                line.push(',');
            }
            zeek_field(item, true, line);
        }
    }
}

/// Nanoseconds as seconds with nine decimals, exactly (a float would round them at today's
/// times since the epoch).
struct Seconds(i64);

impl std::fmt::Display for Seconds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        write!(
            f,
            "{sign}{}.{:09}",
            abs / 1_000_000_000,
            abs % 1_000_000_000
        )
    }
}

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

/// `#open` and `#close` times as Zeek writes them (`2026-12-08-03-04-05`), in UTC.
fn stamp(ns: i64) -> String {
    crate::time::rfc3339_ns(ns)[..19].replace(['T', ':'], "-")
}

#[cfg(test)]
mod tests {
    use super::{stamp, Seconds};

    #[test]
    fn seconds_are_exact_and_stamps_are_zeeks() {
        assert_eq!(
            Seconds(1_765_000_000_123_456_789).to_string(),
            "1765000000.123456789"
        );
        assert_eq!(Seconds(-1_500_000_000).to_string(), "-1.500000000");
        assert_eq!(Seconds(42).to_string(), "0.000000042");
        assert_eq!(stamp(1_765_163_045_000_000_000), "2025-12-08-03-04-05");
    }
}
