//! `lvscheck verify FILE... [--rules FILE] [--vip ADDR] [--json]`

use clap::Args;

use super::common::AnalysisArgs;
use super::{EXIT_FAILED, EXIT_OK, EXIT_UNUSABLE};
use crate::checks::Status;
use crate::report::style::{color_wanted, Painter};
use crate::report::verify::{document, render};

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
    let (opts, rules) = match args.analysis.prepare() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("lvscheck: {e}");
            return EXIT_UNUSABLE;
        }
    };
    let v = crate::verify::verify(
        &args.analysis.sources(),
        args.analysis.decode_options(),
        &opts,
        rules.as_ref(),
    );
    if args.analysis.report_unusable(&v.analysis, &opts) {
        return EXIT_UNUSABLE;
    }
    let code = if v.status() == Status::Fail {
        EXIT_FAILED
    } else {
        EXIT_OK
    };
    if args.json {
        let doc = document(&v, code);
        super::emit(&format!(
            "{}\n",
            serde_json::to_string_pretty(&doc).expect("report serialises")
        ));
    } else {
        let paint = Painter {
            enabled: color_wanted(),
        };
        super::emit(&render(&v, paint));
    }
    code
}
