//! `lvscheck verify FILE... [--rules FILE] [--vip ADDR] [--json]`

use clap::Args;

use super::common::AnalysisArgs;
use super::{EXIT_FAILED, EXIT_OK, EXIT_UNUSABLE};
use crate::checks::{run_all, Status};
use crate::report::style::{color_wanted, Painter};
use crate::report::verify::{document, overall, render};

#[derive(Args, Debug)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub analysis: AnalysisArgs,
    /// Print one JSON document (schema: docs/verify-json.md) instead of tables.
    #[arg(long)]
    pub json: bool,
}

/// Exit status: 0 no check failed, 1 a check failed, 2 the input could not be used at all.
pub fn run(args: &VerifyArgs) -> i32 {
    let opts = match args.analysis.flow_options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("lvscheck: {e}");
            return EXIT_UNUSABLE;
        }
    };
    let analysis = crate::flows::analyse(
        &args.analysis.sources(),
        args.analysis.decode_options(),
        &opts,
    );
    if analysis.captures.iter().all(|c| c.error.is_some()) {
        for c in &analysis.captures {
            if let Some(e) = &c.error {
                eprintln!("lvscheck: {e}");
            }
        }
        eprintln!("lvscheck: no capture could be read");
        return EXIT_UNUSABLE;
    }
    let checks = run_all(&analysis);
    let code = if overall(&checks) == Status::Fail {
        EXIT_FAILED
    } else {
        EXIT_OK
    };
    if args.json {
        let doc = document(&analysis, &checks, code);
        println!(
            "{}",
            serde_json::to_string_pretty(&doc).expect("report serialises")
        );
    } else {
        print!(
            "{}",
            render(
                &analysis,
                &checks,
                Painter {
                    enabled: color_wanted()
                }
            )
        );
    }
    code
}
