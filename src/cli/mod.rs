//! The command line: parse arguments into plain structs, pick a mode, call the library.
//! Nothing below `cli` knows about the command line.
//!
//! Exit status (stable, for scripts and CI; docs/verdicts.md): 0 verified (every required
//! check ran and none failed; `fairness`: conforms); 1 a check failed (`fairness`: deviates);
//! 2 the input could not be used (bad arguments, a capture that cannot be read or is given
//! twice, rules that are empty or describe other traffic, a `--role` the traffic
//! contradicts); 3 inconclusive (nothing failed, but a required check could not run or no LVS
//! traffic was seen; `fairness`: nothing could be judged).

pub mod common;
pub mod fairness;
pub mod flows;
pub mod inspect;
pub mod out_file;
pub mod progress;
pub mod records;
pub mod verify;

use clap::{Parser, Subcommand};

/// Exit status: everything fine.
pub const EXIT_OK: i32 = 0;
/// Exit status: the captures were read but a check failed.
pub const EXIT_FAILED: i32 = 1;
/// Exit status: the input could not be used at all.
pub const EXIT_UNUSABLE: i32 = 2;
/// Exit status: nothing failed, but what was needed to verify (or judge) could not be checked.
pub const EXIT_INCONCLUSIVE: i32 = 3;

#[derive(Parser, Debug)]
#[command(
    name = "lvscheck",
    version,
    about = "Verify LVS-TUN (IPVS tunnel mode) deployments from packet captures, offline",
    long_about = "Verify LVS-TUN (IPVS tunnel mode) deployments from packet captures taken on the \
                  client, the director and the real servers. File names carry no meaning: roles \
                  are worked out from the traffic."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Show what lvscheck reads in each capture: format, link types, counts per layer, warnings.
    Inspect(inspect::InspectArgs),
    /// Run every LVS-TUN check; exit 0 verified, 1 a check failed, 2 the input could not be
    /// used, 3 inconclusive (a required check could not run, or no LVS traffic).
    Verify(verify::VerifyArgs),
    /// Rebuild every connection across the captures: topology and connection table.
    Flows(flows::FlowsArgs),
    /// Scheduler fairness and conformance against the configured scheduler and weights, with
    /// a verdict.
    ///
    /// The last line is the verdict (docs/fairness.md). Exit status: 0 the load conforms to the
    /// configuration, 1 it deviates (at the p-value stated), 2 the input could not be used,
    /// 3 inconclusive (no configuration, too few connections, nothing to compare).
    Fairness(fairness::FairnessArgs),
    /// Write what each capture says about roles, VIPs and services (pass 1's facts, a few KB
    /// a capture) as JSON, next to where it was taken: the first step of verifying from
    /// records (docs/records.md).
    Facts(records::FactsArgs),
    /// Merge the facts of every capture into the topology file that `extract` works from.
    Topology(records::TopologyArgs),
    /// Read each capture next to where it was taken and write its records (Parquet: one row
    /// per leg, the clock sample, the read report) for `verify --records`.
    Extract(records::ExtractArgs),
    /// Print a shell completion script for lvscheck (bash, zsh, fish, elvish, powershell):
    /// `lvscheck completions bash > /etc/bash_completion.d/lvscheck`.
    Completions {
        /// The shell to complete in.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff), made from these same definitions:
    /// `lvscheck man > /usr/local/share/man/man1/lvscheck.1`.
    Man,
}

pub use crate::report::{emit, emit_json};

/// Writes a message to standard error, escaped for a terminal: messages name files and quote
/// captures, and either may hold control characters (a file name with ESC, CR or LF).
pub fn say(message: impl std::fmt::Display) {
    eprintln!("{}", crate::escape::terminal_lines(&message.to_string()));
}

/// When a capture given could not be read at all, says why on standard error and returns
/// true: the verdict would be on other captures than those asked for.
pub fn report_unreadable(analysis: &crate::flows::Analysis) -> bool {
    let problems = common::unreadable_captures(analysis);
    for p in &problems {
        say(format!("lvscheck: {p}"));
    }
    !problems.is_empty()
}

/// Runs the program and returns its exit status.
pub fn run() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // An argument clap quotes back in its error may be a hostile file name: escaped,
        // uncoloured. Help and version go out as clap writes them.
        Err(e) if e.use_stderr() => {
            eprint!("{}", crate::escape::terminal_lines(&e.render().to_string()));
            return EXIT_UNUSABLE;
        }
        Err(e) => {
            let _ = e.print();
            return EXIT_OK;
        }
    };
    match cli.command {
        Command::Inspect(args) => inspect::run(&args),
        Command::Verify(args) => verify::run(&args),
        Command::Flows(args) => flows::run(&args),
        Command::Fairness(args) => fairness::main(&args),
        Command::Facts(args) => records::facts(&args),
        Command::Topology(args) => records::topology(&args),
        Command::Extract(args) => records::extract_main(&args),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "lvscheck",
                &mut std::io::stdout(),
            );
            EXIT_OK
        }
        Command::Man => {
            use clap::CommandFactory;
            let page = clap_mangen::Man::new(Cli::command());
            match page.render(&mut std::io::stdout()) {
                Ok(()) => EXIT_OK,
                Err(e) => {
                    say(format!("lvscheck: cannot write the manual page: {e}"));
                    EXIT_UNUSABLE
                }
            }
        }
    }
}
