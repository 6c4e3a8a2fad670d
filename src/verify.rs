//! `verify` as a library call: the whole pipeline from captures to check results, so that the
//! command line and the tests run exactly the same thing.

use crate::capture::CaptureSource;
use std::net::SocketAddr;

use crate::checks::{run_all, CheckResult, Context, Status};
use crate::decode::DecodeOptions;
use crate::fairness::{self, FairnessReport};
use crate::flows::{analyse, Analysis, FlowOptions};
use crate::topology::rules::Rules;
use crate::topology::Role;

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
    let ctx = Context::new(&analysis);
    let packet_of = |client: SocketAddr, time_ns: i64| {
        // The connection of that client port that started nearest that time, as the director
        // saw its first packet.
        analysis
            .connections
            .iter()
            .filter(|c| c.client == client)
            .filter_map(|c| {
                c.legs
                    .iter()
                    .find(|l| l.role == Role::Director)
                    .and_then(|l| l.request.as_ref())
            })
            .min_by_key(|r| (r.first_ts_ns - time_ns).abs())
            .map(|r| ctx.packet(&r.first, format!("new connection from {client}")))
    };
    let scheduler = fairness::check::check_with(&fairness, &packet_of);
    checks.push(scheduler);
    Verification {
        analysis,
        checks,
        fairness,
    }
}
