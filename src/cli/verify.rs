//! `lvscheck verify FILE... [--rules FILE] [--director-state FILE]... [--vip ADDR]
//! [--require CHECK,...] [--fail-on warn] [--json] [--html FILE]`

use super::say;
use clap::{Args, ValueEnum};
use std::path::PathBuf;

use super::common::{AnalysisArgs, OutputArgs};
use super::{EXIT_FAILED, EXIT_INCONCLUSIVE, EXIT_OK, EXIT_UNUSABLE};
use crate::checks::verdict::{FailOn, Outcome, Policy};
use crate::report::annotate;
use crate::report::html;
use crate::report::verify::{document, render, PIPE_WIDTH};
use crate::verify::Keep;

#[derive(Args, Debug)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub analysis: AnalysisArgs,
    /// The director's own tables, taken on it right after the captures: `ipvsadm -Lnc` (the
    /// connection table) and `ipvsadm -Ln --stats` (the counters), in one file or two (or
    /// more); told apart by their headers. Compared with the traffic by `director.state`.
    #[arg(long = "director-state", value_name = "FILE")]
    pub director_state: Vec<PathBuf>,
    /// Print one JSON document (schema: docs/verify-json.md) instead of tables.
    #[arg(long)]
    pub json: bool,
    /// Also write the report as one self-contained HTML file (no network: inline CSS and
    /// SVG), with the deployment drawn and the fairness charts; standard output is unchanged.
    /// `-` writes the page to standard output instead of the tables.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    #[command(flatten)]
    pub output: OutputArgs,
    /// The checks that must run for the verdict to be "verified" (comma-separated or
    /// repeated), instead of the default set: tunnel.encapsulation, tunnel.delivery,
    /// reply.present, reply.source, reply.direct, arp.vip, bypass (and scheduler with --rules).
    #[arg(long, value_name = "CHECK,...")]
    pub require: Vec<String>,
    /// The severity that fails the run: `fail` (default) or `warn` (a warning exits 1 too).
    #[arg(long, value_enum, default_value_t = FailOnArg::Fail, value_name = "SEVERITY")]
    pub fail_on: FailOnArg,
    /// Also write a pcapng copy of every capture into DIR (made if missing), with a comment on
    /// every packet of a connection (its id, what the packet is where it was captured) and on
    /// every evidence packet (check and finding): in Wireshark, `frame.comment contains
    /// "reply.present"`. Names: the input's, `.pcapng` (standard input: stdin.pcapng).
    #[arg(long, value_name = "DIR")]
    pub annotate: Option<PathBuf>,
    /// The FILEs are records that `lvscheck extract` wrote (its --out folders, or one
    /// capture's folder each), not captures: their legs are joined by a query (docs/records.md)
    /// into the same connections and checks as `verify` on the captures.
    #[arg(long)]
    pub records: bool,
    /// Where the query of --records runs: `embedded` (DataFusion in this process, the
    /// default) or `ballista://HOST:PORT` (a Ballista scheduler; its executors must reach the
    /// records' files by the same paths).
    #[arg(
        long,
        value_name = "ENGINE",
        default_value = "embedded",
        requires = "records"
    )]
    pub engine: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum FailOnArg {
    Fail,
    Warn,
}

/// The exit status of a verdict (docs/verdicts.md).
pub fn exit_code(outcome: Outcome) -> i32 {
    match outcome {
        Outcome::Verified => EXIT_OK,
        Outcome::Failed => EXIT_FAILED,
        Outcome::Inconclusive => EXIT_INCONCLUSIVE,
    }
}

/// Exit status: 0 verified, 1 a check failed, 2 the input could not be used at all, 3
/// inconclusive.
pub fn run(args: &VerifyArgs) -> i32 {
    if args.json && args.html.as_deref().is_some_and(html::to_stdout) {
        say("lvscheck: --json and --html - both write to standard output: give --html a file");
        return EXIT_UNUSABLE;
    }
    if args.records {
        return run_records(args);
    }
    let (mut opts, rules) = match args.analysis.prepare() {
        Ok(p) => p,
        Err(e) => {
            say(format!("lvscheck: {e}"));
            return EXIT_UNUSABLE;
        }
    };
    let state = match director_state(args) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let policy = match policy_of(args, rules.is_some(), state.is_some()) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let sources = args.analysis.sources();
    let outputs = match &args.annotate {
        None => None,
        Some(dir) => match annotate::prepare(dir, &sources) {
            Ok(outputs) => Some(outputs),
            Err(e) => {
                say(format!("lvscheck: {e}"));
                return EXIT_UNUSABLE;
            }
        },
    };
    let decode = args.analysis.decode_options(rules.as_ref());
    let progress = super::progress::attach(&mut opts, args.json);
    let keep = Keep {
        timeline: match args.html {
            Some(_) => crate::fairness::Timeline::Keep,
            None => crate::fairness::Timeline::Skip,
        },
        placements: outputs.is_some(),
        remarkable: args.html.is_some(),
    };
    let mut v = crate::verify::verify_with(
        &sources,
        decode.clone(),
        &opts,
        rules.as_ref(),
        state.as_ref(),
        &policy,
        keep,
    );
    drop(progress);
    if args.analysis.report_unusable(&v.analysis, &opts) {
        return EXIT_UNUSABLE;
    }
    let ladder_decode = decode.clone();
    if let Some(outputs) = &outputs {
        let (_, renamed) = annotate::output_names(&sources);
        let placements = std::mem::take(&mut v.placements);
        match annotate::write(&sources, outputs, decode, &v, placements) {
            Ok(written) => {
                for line in renamed.iter().chain(&annotate::summary(&written)) {
                    say(format!("lvscheck: {line}"));
                }
            }
            Err(e) => {
                say(format!("lvscheck: {e}"));
                return EXIT_UNUSABLE;
            }
        }
    }
    let code = exit_code(v.verdict.outcome);
    if let Some(path) = &args.html {
        // Each finding's connections drawn as ladders: the captures are read again for them.
        let (ladders, unread) =
            crate::report::ladder::findings::for_findings(&sources, ladder_decode, &opts, &v);
        for u in unread {
            say(format!("lvscheck: reading again for the ladders: {u}"));
        }
        let page = html::verify_page(&v, code, &html::VerifyExtras { ladders });
        if let Err(e) = html::write(path, &page) {
            say(format!("lvscheck: cannot write {}: {e}", path.display()));
            return EXIT_UNUSABLE;
        }
    }
    print_report(args, &v, code)
}

/// The director's snapshots given with --director-state, read; Err: the exit status.
fn director_state(
    args: &VerifyArgs,
) -> Result<Option<crate::topology::director_state::DirectorState>, i32> {
    if args.director_state.is_empty() {
        return Ok(None);
    }
    crate::topology::director_state::read_director_state(&args.director_state)
        .map(Some)
        .map_err(|e| {
            say(format!("lvscheck: --director-state {e}"));
            EXIT_UNUSABLE
        })
}

/// The verdict's demands; Err: the exit status.
fn policy_of(args: &VerifyArgs, rules_given: bool, state_given: bool) -> Result<Policy, i32> {
    let require = if args.require.is_empty() {
        None
    } else {
        match Policy::parse_require(&args.require) {
            Ok(list) => Some(list),
            Err(e) => {
                say(format!("lvscheck: {e}"));
                return Err(EXIT_UNUSABLE);
            }
        }
    };
    Ok(Policy {
        require,
        fail_on: match args.fail_on {
            FailOnArg::Fail => FailOn::Fail,
            FailOnArg::Warn => FailOn::Warn,
        },
        rules_given,
        director_state_given: state_given,
    })
}

/// `verify --records`: the records' legs joined by a query, then the same report.
fn run_records(args: &VerifyArgs) -> i32 {
    let a = &args.analysis;
    let refused = [
        (!a.vips.is_empty(), "--vip"),
        (!a.roles.is_empty(), "--role"),
        (!a.gue_ports.is_empty(), "--gue-port"),
        (args.annotate.is_some(), "--annotate"),
    ];
    if let Some((_, flag)) = refused.iter().find(|(given, _)| *given) {
        say(format!(
            "lvscheck: {flag} with --records: {}",
            if *flag == "--annotate" {
                "the records hold no packets to copy; annotate the captures with verify on them"
            } else {
                "the records were extracted with the options given to lvscheck topology; give it                  there"
            }
        ));
        return EXIT_UNUSABLE;
    }
    let engine = match crate::records::engine::Engine::parse(&args.engine) {
        Ok(e) => e,
        Err(e) => {
            say(format!("lvscheck: {e}"));
            return EXIT_UNUSABLE;
        }
    };
    let rules = match a.load_rules() {
        Ok(r) => r,
        Err(e) => {
            say(format!("lvscheck: {e}"));
            return EXIT_UNUSABLE;
        }
    };
    let state = match director_state(args) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let policy = match policy_of(args, rules.is_some(), state.is_some()) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let mut opts = a.reading.flow_options();
    if let Some(rules) = &rules {
        let (expected, notes) = crate::topology::config::expected_from_rules(rules);
        opts.expected = Some(expected);
        opts.notes.extend(notes);
    }
    let keep = Keep {
        timeline: match args.html {
            Some(_) => crate::fairness::Timeline::Keep,
            None => crate::fairness::Timeline::Skip,
        },
        placements: false,
        remarkable: false,
    };
    let v = match crate::verify::verify_records(
        &a.files,
        &engine,
        &opts,
        rules.as_ref(),
        state.as_ref(),
        &policy,
        keep,
    ) {
        Ok(v) => v,
        Err(e) => {
            say(format!("lvscheck: {e}"));
            return EXIT_UNUSABLE;
        }
    };
    if crate::cli::report_unreadable(&v.analysis) {
        return EXIT_UNUSABLE;
    }
    let code = exit_code(v.verdict.outcome);
    if let Some(path) = &args.html {
        // No ladders: drawing them reads the packets again, which the records do not hold.
        let page = html::verify_page(&v, code, &html::VerifyExtras::default());
        if let Err(e) = html::write(path, &page) {
            say(format!("lvscheck: cannot write {}: {e}", path.display()));
            return EXIT_UNUSABLE;
        }
    }
    print_report(args, &v, code)
}

/// Prints the report as asked (tables, JSON, or nothing when the HTML page took standard
/// output) and returns the exit status.
fn print_report(args: &VerifyArgs, v: &crate::verify::Verification, code: i32) -> i32 {
    if args.html.as_deref().is_some_and(html::to_stdout) {
        // The page took standard output.
    } else if args.json {
        super::emit_json(&document(v, code));
    } else {
        super::emit(&render(v, &args.output.term(Some(PIPE_WIDTH))));
    }
    code
}
