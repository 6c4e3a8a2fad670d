//! `lvscheck flows FILE...`: the topology and the connections rebuilt across the captures.

use super::say;
use std::collections::BinaryHeap;
use std::io::Write;
use std::net::IpAddr;

use clap::Args;

use super::common::{AnalysisArgs, OutputArgs};
use super::{EXIT_OK, EXIT_UNUSABLE};
use crate::decode::DecodeOptions;
use crate::flows::legs::Timeouts;
use crate::flows::{
    analyse_files_streaming, Analysis, ConnKey, Connection, ConnectionSink, FlowOptions, Outcome,
};
use crate::report::flows::JsonLines;
use crate::report::ladder;

#[derive(Args, Debug)]
pub struct FlowsArgs {
    #[command(flatten)]
    pub analysis: AnalysisArgs,
    /// Write JSON Lines instead of tables: a `topology` record, one `connection` record per
    /// connection as each is rebuilt (in the order they end), a `summary` record (see
    /// docs/flows.md). Memory then follows the connections in flight.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub output: OutputArgs,
    /// Show only connections that went to this real server; repeatable.
    #[arg(long, value_name = "IP")]
    pub rs: Vec<IpAddr>,
    /// Show only connections from this client address; repeatable.
    #[arg(long, value_name = "IP")]
    pub client: Vec<IpAddr>,
    /// Show only connections with this outcome: completed, reset, refused, unanswered,
    /// in_progress, unknown; repeatable.
    #[arg(long, value_name = "OUTCOME", value_parser = parse_outcome)]
    pub outcome: Vec<Outcome>,
    /// Rows of the connection table: the N selected connections that started first (0: all).
    /// Only those are kept, so memory stays bounded however long the captures are; `--json`
    /// streams every connection instead.
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub limit: usize,
    /// Seconds without packets after which a UDP "connection" ends (IPVS default 300).
    #[arg(long, value_name = "SECONDS", default_value_t = 300.0)]
    pub udp_timeout: f64,
    /// Only connection ID, numbered as the table numbers connections (by order of start among
    /// all of them, whatever the filters); with `--ladder`, its ladder diagram.
    #[arg(long, value_name = "ID", conflicts_with_all = ["json", "rs", "client", "outcome"])]
    pub conn: Option<u64>,
    /// With `--conn`: the connection's packets as a ladder diagram, one column per vantage
    /// point and one arrow per packet (the captures are read once more for them).
    #[arg(long, requires = "conn")]
    pub ladder: bool,
    /// The ladder's format: text (a terminal), svg (a web page), mermaid (a ticket).
    #[arg(long, value_enum, value_name = "FORMAT", default_value_t = LadderFormat::Text, requires = "ladder")]
    pub format: LadderFormat,
}

/// How `--ladder` draws.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LadderFormat {
    Text,
    Svg,
    Mermaid,
}

fn parse_outcome(s: &str) -> Result<Outcome, String> {
    Outcome::parse(s).ok_or_else(|| {
        format!(
            "unknown outcome '{s}': completed, reset, refused, unanswered, in_progress, unknown"
        )
    })
}

/// Builds the analysis and decode options from the arguments.
pub fn options(args: &FlowsArgs) -> Result<(FlowOptions, DecodeOptions), String> {
    let (mut opts, rules) = args.analysis.prepare()?;
    let decode = args.analysis.decode_options(rules.as_ref());
    if !(args.udp_timeout.is_finite() && args.udp_timeout > 0.0) {
        return Err(format!(
            "--udp-timeout {}: must be a positive number of seconds",
            args.udp_timeout
        ));
    }
    opts.timeouts = Timeouts {
        udp_idle_ns: (args.udp_timeout * 1e9) as i64,
        ..Timeouts::default()
    };
    Ok((opts, decode))
}

/// Whether a connection passes the `--rs`, `--client` and `--outcome` filters.
pub fn selected(args: &FlowsArgs, c: &Connection) -> bool {
    (args.rs.is_empty() || c.real_server.is_some_and(|r| args.rs.contains(&r)))
        && (args.client.is_empty() || args.client.contains(&c.client.ip()))
        && (args.outcome.is_empty() || args.outcome.contains(&c.outcome))
}

/// Exit status: 0 when the captures could be read, 2 when one could not or the input cannot
/// be used ([`AnalysisArgs::problems`], bad arguments).
pub fn run(args: &FlowsArgs) -> i32 {
    let (mut opts, decode) = match options(args) {
        Ok(o) => o,
        Err(e) => {
            say(format!("lvscheck flows: {e}"));
            return EXIT_UNUSABLE;
        }
    };
    if args.json {
        return run_json_lines(args, &opts, decode);
    }
    if let Some(id) = args.conn {
        return run_one(args, id, &opts, decode);
    }
    // Only the selected connections are kept (with the start and key of every connection, to
    // number them in order of start among all): a filtered table of a long capture needs
    // memory for what it shows.
    let mut sink = TableSink {
        args,
        shown: BinaryHeap::new(),
        selected: 0,
        starts: Vec::new(),
    };
    let progress = super::progress::attach(&mut opts, false);
    let analysis = analyse_files_streaming(&args.analysis.sources(), decode, &opts, &mut sink);
    drop(progress);
    if args.analysis.report_unusable(&analysis, &opts) {
        return EXIT_UNUSABLE;
    }
    let TableSink {
        shown,
        selected,
        starts,
        ..
    } = sink;
    let shown = crate::flows::numbered_by_start(shown.into_iter().map(|b| b.0).collect(), starts);
    let shown: Vec<&Connection> = shown.iter().collect();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let written = out.write_all(
        crate::report::flows::render(
            &analysis,
            &shown,
            selected,
            // Not wrapped in a pipe: one line a connection, for grep.
            &args.output.term(None),
        )
        .as_bytes(),
    );
    finish(written.and_then(|()| out.flush()))
}

/// The tables' side of the stream: what they show, and where every connection starts.
struct TableSink<'a> {
    args: &'a FlowsArgs,
    /// The selected connections that started first, at most `--limit` of them: the latest
    /// starting on top, to be dropped when an earlier one comes.
    shown: BinaryHeap<ByStart>,
    /// Connections the filters selected, shown or not.
    selected: u64,
    starts: Vec<(i64, ConnKey)>,
}

/// A connection ordered by its start (then its key): the table's order.
struct ByStart(Connection);

impl ByStart {
    fn at(&self) -> (i64, ConnKey) {
        (self.0.first_ts_ns, self.0.key())
    }
}

impl PartialEq for ByStart {
    fn eq(&self, other: &Self) -> bool {
        self.at() == other.at()
    }
}
impl Eq for ByStart {}
impl PartialOrd for ByStart {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for ByStart {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.at().cmp(&other.at())
    }
}

impl ConnectionSink for TableSink<'_> {
    fn restart(&mut self) -> bool {
        self.shown.clear();
        self.selected = 0;
        self.starts.clear();
        true
    }

    fn connection(&mut self, c: Connection) {
        self.starts.push((c.first_ts_ns, c.key()));
        if selected(self.args, &c) {
            self.selected += 1;
            self.shown.push(ByStart(c));
            if self.args.limit > 0 && self.shown.len() > self.args.limit {
                self.shown.pop();
            }
        }
    }
}

/// `--conn ID`: the ID-th connection to start among all of them, found with the ID that
/// started first kept (not every connection), then its row or its ladder.
fn run_one(args: &FlowsArgs, id: u64, opts: &FlowOptions, decode: DecodeOptions) -> i32 {
    struct First {
        n: usize,
        kept: BinaryHeap<ByStart>,
        count: u64,
    }
    impl ConnectionSink for First {
        fn restart(&mut self) -> bool {
            self.kept.clear();
            self.count = 0;
            true
        }
        fn connection(&mut self, c: Connection) {
            self.count += 1;
            self.kept.push(ByStart(c));
            if self.kept.len() > self.n {
                self.kept.pop();
            }
        }
    }
    let Some(n) = usize::try_from(id).ok().filter(|n| *n > 0) else {
        say(format!(
            "lvscheck flows: --conn {id}: connections are numbered from 1"
        ));
        return EXIT_UNUSABLE;
    };
    let mut sink = First {
        n,
        kept: BinaryHeap::new(),
        count: 0,
    };
    let sources = args.analysis.sources();
    let analysis = analyse_files_streaming(&sources, decode.clone(), opts, &mut sink);
    if args.analysis.report_unusable(&analysis, opts) {
        return EXIT_UNUSABLE;
    }
    let conn = match sink.kept.pop() {
        Some(ByStart(mut c)) if sink.kept.len() + 1 == n => {
            c.id = id;
            c
        }
        _ => {
            say(format!(
                "lvscheck flows: --conn {id}: no such connection: the captures hold {}",
                match sink.count {
                    0 => "none".to_string(),
                    1 => "1 (--conn 1)".to_string(),
                    k => format!("{k} (--conn 1 to {k})"),
                }
            ));
            return EXIT_UNUSABLE;
        }
    };
    let text = if args.ladder {
        let (mut ladders, unread) = ladder::of_connections(&sources, decode, &analysis, &[&conn]);
        for u in unread {
            say(format!("lvscheck flows: reading again for the ladder: {u}"));
        }
        let l = ladders.remove(0);
        match args.format {
            LadderFormat::Text => ladder::text(&l),
            LadderFormat::Svg => ladder::svg(&l),
            LadderFormat::Mermaid => ladder::mermaid(&l),
        }
    } else {
        crate::report::flows::render(&analysis, &[&conn], 1, &args.output.term(None))
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    finish(out.write_all(text.as_bytes()).and_then(|()| out.flush()))
}

/// Exit status for what writing the report gave.
fn finish(written: std::io::Result<()>) -> i32 {
    match written {
        // The reader went away (`| head`): not an error of ours.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => EXIT_OK,
        Err(e) => {
            say(format!("lvscheck flows: writing the report: {e}"));
            EXIT_UNUSABLE
        }
        Ok(()) => EXIT_OK,
    }
}

/// `--json`: each connection is written as soon as it is rebuilt and then forgotten, so memory
/// follows the connections in flight however many there are.
fn run_json_lines(args: &FlowsArgs, opts: &FlowOptions, decode: DecodeOptions) -> i32 {
    struct Sink<'a, W: Write> {
        args: &'a FlowsArgs,
        opts: &'a FlowOptions,
        out: JsonLines<W>,
        error: Option<std::io::Error>,
        /// The input cannot be used: nothing is written.
        refused: bool,
    }
    impl<W: Write> Sink<'_, W> {
        fn failed(&mut self, e: std::io::Error) {
            // The reader went away (`| head`): what is left to read would go nowhere, so stop
            // now rather than read the captures to their end.
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                std::process::exit(EXIT_OK);
            }
            self.error.get_or_insert(e);
        }
    }
    impl<W: Write> ConnectionSink for Sink<'_, W> {
        fn begin(&mut self, a: &Analysis) {
            // Input that cannot be used (a capture unreadable, a contradicted --role, rules of
            // other traffic): the caller reports it, and nothing goes to stdout.
            self.refused = !self.args.analysis.problems(a, self.opts).is_empty();
            if !self.refused {
                if let Err(e) = self.out.head(a) {
                    self.failed(e);
                }
            }
        }
        fn connection(&mut self, c: Connection) {
            if !self.refused && self.error.is_none() && selected(self.args, &c) {
                if let Err(e) = self.out.connection(&c) {
                    self.failed(e);
                }
            }
        }
    }
    let stdout = std::io::stdout();
    let mut sink = Sink {
        args,
        opts,
        out: JsonLines::new(std::io::BufWriter::new(stdout.lock())),
        error: None,
        refused: false,
    };
    let analysis = analyse_files_streaming(&args.analysis.sources(), decode, opts, &mut sink);
    if args.analysis.report_unusable(&analysis, opts) {
        return EXIT_UNUSABLE;
    }
    let written = match sink.error.take() {
        Some(e) => Err(e),
        None => sink.out.tail(&analysis),
    };
    finish(written)
}
