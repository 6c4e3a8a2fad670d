//! `lvscheck flows FILE...`: the topology and the connections rebuilt across the captures.

use super::say;
use std::collections::BinaryHeap;
use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;

use clap::Args;

use super::common::{AnalysisArgs, OutputArgs};
use super::out_file::Output;
use super::{EXIT_OK, EXIT_UNUSABLE};
use crate::decode::DecodeOptions;
use crate::flows::legs::Timeouts;
use crate::flows::{
    analyse_files_streaming, Analysis, ConnKey, Connection, ConnectionSink, FlowOptions, Outcome,
};
use crate::report::conn_log::ConnLog;
use crate::report::conn_parquet::ConnParquet;
use crate::report::flows::{ConnectionWriter, JsonLines};
use crate::report::ladder;

#[derive(Args, Debug)]
pub struct FlowsArgs {
    #[command(flatten)]
    pub analysis: AnalysisArgs,
    /// The FILEs are records that `lvscheck extract` wrote, not captures: their legs are
    /// joined by a query into the same connections (docs/records.md).
    #[arg(long)]
    pub records: bool,
    /// Where the query of --records runs: `embedded` (the default) or `ballista://HOST:PORT`.
    #[arg(
        long,
        value_name = "ENGINE",
        default_value = "embedded",
        requires = "records"
    )]
    pub engine: String,
    /// Write JSON Lines instead of tables: a `topology` record, one `connection` record per
    /// connection as each is rebuilt (in the order they end), a `summary` record (see
    /// docs/flows.md). Memory then follows the connections in flight. Same as `--format json`.
    #[arg(long)]
    pub json: bool,
    /// How to write the connections: table (default), json (JSON Lines, as --json), tsv (a
    /// Zeek conn.log), parquet (the same columns typed, zstd; docs/conn-log.md). json, tsv and
    /// parquet write each connection as it is rebuilt. With --ladder: text (default), svg,
    /// mermaid.
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub format: Option<Format>,
    /// Write to FILE instead of standard output (`-`: standard output); FILE appears once
    /// whole. Needed for --format parquet when standard output is a terminal.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
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
}

/// What `--format` writes: the connections (table, json, tsv, parquet) or, with `--ladder`,
/// one connection's ladder (text for a terminal, svg for a web page, mermaid for a ticket).
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
    Tsv,
    Parquet,
    Text,
    Svg,
    Mermaid,
}

impl Format {
    fn is_ladder(self) -> bool {
        matches!(self, Format::Text | Format::Svg | Format::Mermaid)
    }
}

/// The format asked for, with its default, or why the options do not go together.
pub fn format(args: &FlowsArgs) -> Result<Format, String> {
    let name = |f: Format| {
        clap::ValueEnum::to_possible_value(&f).map_or(String::new(), |v| v.get_name().to_string())
    };
    match (args.format, args.ladder, args.json) {
        (Some(f), true, _) if !f.is_ladder() => Err(format!(
            "--format {}: a ladder is drawn as text, svg or mermaid",
            name(f)
        )),
        (Some(f), false, _) if f.is_ladder() => Err(format!(
            "--format {}: draws one connection's ladder: give --conn ID --ladder (the \
             connections: table, json, tsv, parquet)",
            name(f)
        )),
        (Some(f), _, true) if f != Format::Json => Err(format!(
            "--json and --format {} ask for two formats: give one",
            name(f)
        )),
        (Some(f), false, _) if f != Format::Table && args.conn.is_some() => Err(format!(
            "--conn shows one connection as a table or a ladder, not as {}: leave out --conn \
             and filter the log instead",
            name(f)
        )),
        (Some(f), _, _) => Ok(f),
        (None, true, _) => Ok(Format::Text),
        (None, false, true) => Ok(Format::Json),
        (None, false, false) => Ok(Format::Table),
    }
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
    let (mut opts, rules) = match args.records {
        true => records_options(args)?,
        false => args.analysis.prepare()?,
    };
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

/// The options of `--records`: the reading's and the rules', without checking the FILEs as
/// captures; the options that `lvscheck topology` takes are refused here.
fn records_options(
    args: &FlowsArgs,
) -> Result<(FlowOptions, Option<crate::topology::rules::Rules>), String> {
    let a = &args.analysis;
    if !a.vips.is_empty() || !a.roles.is_empty() || !a.gue_ports.is_empty() {
        return Err(
            "--vip, --role and --gue-port with --records: the records were extracted \
                    with the options given to lvscheck topology; give them there"
                .into(),
        );
    }
    if args.ladder {
        return Err(
            "--ladder with --records: a ladder draws the packets, which the records do \
                    not hold; draw it from the captures"
                .into(),
        );
    }
    let mut opts = a.reading.flow_options();
    let rules = a.load_rules()?;
    if let Some(rules) = &rules {
        let (expected, notes) = crate::topology::config::expected_from_rules(rules);
        opts.expected = Some(expected);
        opts.notes.extend(notes);
    }
    Ok((opts, rules))
}

/// The analysis of the captures, or of the records with `--records`, each connection handed
/// to `sink` as it is rebuilt.
fn analyse(
    args: &FlowsArgs,
    decode: DecodeOptions,
    opts: &FlowOptions,
    sink: &mut dyn ConnectionSink,
) -> Result<Analysis, String> {
    if !args.records {
        return Ok(analyse_files_streaming(
            &args.analysis.sources(),
            decode,
            opts,
            sink,
        ));
    }
    let engine = crate::records::engine::Engine::parse(&args.engine)?;
    crate::records::analyse_streaming(&args.analysis.files, &engine, opts, sink)
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
    let unusable = |e: String| {
        say(format!("lvscheck flows: {e}"));
        EXIT_UNUSABLE
    };
    let (mut opts, decode) = match options(args) {
        Ok(o) => o,
        Err(e) => return unusable(e),
    };
    let format = match format(args) {
        Ok(f) => f,
        Err(e) => return unusable(e),
    };
    let output = match Output::open(args.out.as_deref()) {
        Ok(o) => o,
        Err(e) => return unusable(format!("--out {e}")),
    };
    if format == Format::Parquet && output.is_terminal() {
        return unusable(
            "--format parquet writes a binary file, not for a terminal: give --out FILE, or \
             send standard output to a file or a pipe"
                .into(),
        );
    }
    if matches!(format, Format::Json | Format::Tsv | Format::Parquet) {
        return run_streaming(args, opts, decode, format, output);
    }
    if let Some(id) = args.conn {
        return run_one(args, id, &opts, decode, format, output);
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
    let analysis = analyse(args, decode, &opts, &mut sink);
    drop(progress);
    let analysis = match analysis {
        Ok(a) => a,
        Err(e) => {
            say(format!("lvscheck flows: {e}"));
            return EXIT_UNUSABLE;
        }
    };
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
    // Not wrapped in a pipe: one line a connection, for grep.
    let text = crate::report::flows::render(&analysis, &shown, selected, &term(args, &output));
    deliver(output, &text)
}

/// Colour and width for the tables: as for standard output, but no colour in a file unless
/// asked for (`--color always`), nor lines wrapped.
fn term(args: &FlowsArgs, output: &Output) -> crate::report::style::Term {
    match output {
        Output::Stdout => args.output.term(None),
        Output::File { .. } => crate::report::style::Term {
            color: args.output.color == super::common::ColorChoice::Always,
            width: None,
        },
    }
}

/// Writes a report made whole to the output.
fn deliver(output: Output, text: &str) -> i32 {
    let written = output
        .writer()
        .map_err(std::io::Error::other)
        .and_then(|mut w| w.write_all(text.as_bytes()).and_then(|()| w.flush()));
    settle(output, finish(written))
}

/// The output kept when it was written whole (exit status 0), else removed.
fn settle(output: Output, code: i32) -> i32 {
    if code != EXIT_OK {
        return code;
    }
    match output.commit() {
        Ok(()) => EXIT_OK,
        Err(e) => {
            say(format!("lvscheck flows: --out {e}"));
            EXIT_UNUSABLE
        }
    }
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
fn run_one(
    args: &FlowsArgs,
    id: u64,
    opts: &FlowOptions,
    decode: DecodeOptions,
    format: Format,
    output: Output,
) -> i32 {
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
    let analysis = match analyse(args, decode.clone(), opts, &mut sink) {
        Ok(a) => a,
        Err(e) => {
            say(format!("lvscheck flows: {e}"));
            return EXIT_UNUSABLE;
        }
    };
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
        match format {
            Format::Svg => ladder::svg(&l),
            Format::Mermaid => ladder::mermaid(&l),
            _ => ladder::text(&l),
        }
    } else {
        crate::report::flows::render(&analysis, &[&conn], 1, &term(args, &output))
    };
    deliver(output, &text)
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

/// `--format json|tsv|parquet`: each connection is written as soon as it is rebuilt and then
/// forgotten, so memory follows the connections in flight however many there are.
fn run_streaming(
    args: &FlowsArgs,
    mut opts: FlowOptions,
    decode: DecodeOptions,
    format: Format,
    output: Output,
) -> i32 {
    struct Sink<'a> {
        args: &'a FlowsArgs,
        opts: &'a FlowOptions,
        out: Box<dyn ConnectionWriter + 'a>,
        error: Option<std::io::Error>,
        /// The input cannot be used: nothing is written.
        refused: bool,
    }
    impl Sink<'_> {
        fn failed(&mut self, e: std::io::Error) {
            // The reader went away (`| head`): what is left to read would go nowhere, so stop
            // now rather than read the captures to their end.
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                std::process::exit(EXIT_OK);
            }
            self.error.get_or_insert(e);
        }
    }
    impl ConnectionSink for Sink<'_> {
        fn begin(&mut self, a: &Analysis) {
            // Input that cannot be used (a capture unreadable, a contradicted --role, rules of
            // other traffic): the caller reports it, and nothing is written.
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
    let writer = match output.writer() {
        Ok(w) => w,
        Err(e) => {
            say(format!("lvscheck flows: --out {e}"));
            return EXIT_UNUSABLE;
        }
    };
    // The progress line when standard error is free for it: the output goes to a file.
    let progress = super::progress::attach(&mut opts, matches!(output, Output::Stdout));
    let mut sink = Sink {
        args,
        opts: &opts,
        out: match format {
            Format::Tsv => Box::new(ConnLog::new(writer)),
            Format::Parquet => Box::new(ConnParquet::new(writer)),
            _ => Box::new(JsonLines::new(writer)),
        },
        error: None,
        refused: false,
    };
    let analysis = analyse(args, decode, &opts, &mut sink);
    drop(progress);
    let analysis = match analysis {
        Ok(a) => a,
        Err(e) => {
            say(format!("lvscheck flows: {e}"));
            return EXIT_UNUSABLE;
        }
    };
    if args.analysis.report_unusable(&analysis, &opts) {
        return EXIT_UNUSABLE;
    }
    let written = match sink.error.take() {
        Some(e) => Err(e),
        None => sink.out.tail(&analysis),
    };
    drop(sink);
    // JSON Lines carry the warnings in their summary record; the logs have no place for them.
    if format != Format::Json {
        for w in &analysis.warnings {
            say(format!("lvscheck flows: warning: {w}"));
        }
    }
    settle(output, finish(written))
}
