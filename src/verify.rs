//! `verify` as a library call: the whole pipeline from captures to check results, so that the
//! command line and the tests run exactly the same thing.

use crate::capture::CaptureSource;
use crate::checks::{run_all, CheckResult, Status};
use crate::decode::DecodeOptions;
use crate::fairness::{self, FairnessReport};
use crate::flows::{analyse, Analysis, FlowOptions};
use crate::topology::rules::Rules;

/// Everything `verify` found.
pub struct Verification {
    pub analysis: Analysis,
    /// Every check, in report order; the last is `scheduler`.
    pub checks: Vec<CheckResult>,
    pub fairness: FairnessReport,
}

impl Verification {
    /// The worst status of all checks (`info` does not count).
    pub fn status(&self) -> Status {
        crate::report::verify::overall(&self.checks)
    }

    pub fn check(&self, id: &str) -> Option<&CheckResult> {
        self.checks.iter().find(|c| c.id == id)
    }

    /// Whether no capture could be read at all.
    pub fn unusable(&self) -> bool {
        self.analysis.captures.iter().all(|c| c.error.is_some())
    }
}

/// Reads the captures, rebuilds the connections and runs every check.
pub fn verify(
    sources: &[CaptureSource],
    decode: DecodeOptions,
    opts: &FlowOptions,
    rules: Option<&Rules>,
) -> Verification {
    let analysis = analyse(sources, decode, opts);
    let mut checks = run_all(&analysis);
    let mut input = fairness::observe::input_from(&analysis);
    if let Some(rules) = rules {
        fairness::observe::apply_rules(&mut input, rules);
    }
    let fairness = fairness::analyse(&input);
    checks.push(fairness::check::check(&fairness));
    Verification {
        analysis,
        checks,
        fairness,
    }
}
