//! `verify` as a library call: the whole pipeline from captures to check results, so that the
//! command line and the tests run exactly the same thing.
//!
//! The connections are not kept: each is handed, as soon as it is rebuilt, to the checks (which
//! keep counts and a few examples) and to the fairness stage (which
//! keeps one small record per connection for the scheduler replay), then dropped. Memory follows
//! the connections in flight plus that record.

use std::net::SocketAddr;

use crate::capture::CaptureSource;
use crate::checks::classify::classify;
use crate::checks::director_state::{self, DirectorCheck};
use crate::checks::verdict::{self, Policy, Verdict};
use crate::checks::{CheckResult, ConnectionChecks, Context, Status};
use crate::decode::DecodeOptions;
use crate::fairness::observe::FairnessObserver;
use crate::fairness::{self, FairnessReport};
use crate::flows::trace::locate::Placement;
use crate::flows::{analyse_files_streaming, Analysis, Connection, ConnectionSink, FlowOptions};
use crate::topology::director_state::DirectorState;
use crate::topology::rules::Rules;
use crate::topology::MacAddr;

/// Everything `verify` found.
pub struct Verification {
    /// The analysis without its connections (they were checked as they came): topology, clock
    /// offsets, warnings, `connection_count`.
    pub analysis: Analysis,
    /// Every check, in report order; the last is `scheduler`, after `director.state`.
    pub checks: Vec<CheckResult>,
    pub fairness: FairnessReport,
    /// What the run concluded, with its coverage.
    pub verdict: Verdict,
    /// What placing a frame needs of every connection, in order of start (connection `id` =
    /// index + 1, as `flows` numbers them), when asked for ([`Keep::placements`]):
    /// for the annotated copies of the captures, which read them again.
    pub placements: Vec<Placement>,
    /// The connections the checks found something to say about (not tunnelled, not answered,
    /// with evidence: [`crate::checks::classify::Class::remarkable`]), at most [`REMARKABLE_KEPT`], numbered in order of start
    /// as `flows` numbers them, when asked for ([`Keep::remarkable`]): what the HTML report
    /// draws the findings' ladders from.
    pub remarkable: Vec<Connection>,
}

/// Remarkable connections kept at most ([`Verification::remarkable`]): ladders are drawn for a
/// few per finding, and each kept connection costs a kilobyte or so.
pub const REMARKABLE_KEPT: usize = 10_000;

impl Verification {
    /// The worst status of all checks (`info` does not count); the verdict also weighs what
    /// could not be checked ([`Verification::verdict`]).
    pub fn status(&self) -> Status {
        verdict::worst(&self.checks)
    }

    pub fn check(&self, id: &str) -> Option<&CheckResult> {
        self.checks.iter().find(|c| c.id == id)
    }
}

/// What `verify` does with each connection as it comes.
struct Verifier<'s> {
    /// The analysis as it stood before the first connection, the checks started from it, and
    /// its director MACs (gathered once, not for every connection).
    started: Option<(Analysis, ConnectionChecks, Vec<MacAddr>)>,
    fairness: FairnessObserver,
    /// The director's snapshots, when given, and their comparison with the connections.
    state: Option<&'s DirectorState>,
    director: Option<DirectorCheck<'s>>,
    /// Every connection's placement, when kept.
    placements: Option<Vec<Placement>>,
    /// Remarkable connections, when kept, and where every connection started (to number
    /// them in order of start).
    remarkable: Option<(Vec<Connection>, Starts)>,
    keep: Keep,
}

/// Where each connection started (reference clock) and its key: its number in order of start.
use crate::flows::{numbered_by_start, Starts};

impl<'s> Verifier<'s> {
    fn new(state: Option<&'s DirectorState>, keep: Keep) -> Verifier<'s> {
        Verifier {
            started: None,
            fairness: FairnessObserver::default(),
            state,
            director: state.map(DirectorCheck::new),
            placements: keep.placements.then(Vec::new),
            remarkable: keep.remarkable.then(Default::default),
            keep,
        }
    }
}

impl ConnectionSink for Verifier<'_> {
    fn restart(&mut self) -> bool {
        *self = Verifier::new(self.state, self.keep);
        true
    }

    fn begin(&mut self, analysis: &Analysis) {
        let ctx = Context::new(analysis);
        let checks = ConnectionChecks::new(&ctx);
        self.fairness.begin(analysis);
        let director_macs = ctx.director_macs().to_vec();
        self.started = Some((analysis.clone(), checks, director_macs));
    }

    fn connection(&mut self, conn: Connection) {
        if let Some(kept) = &mut self.placements {
            kept.push(Placement::from(&conn));
        }
        let mut scheduled = true;
        if let Some((analysis, checks, director_macs)) = &mut self.started {
            let ctx = Context::with_director_macs(analysis, director_macs);
            let class = classify(&ctx, &conn);
            checks.observe_classified(&ctx, &conn, &class);
            if let Some(d) = &mut self.director {
                d.observe(&ctx, &conn, &class);
            }
            // A connection that bypassed the director was never scheduled by it: `bypass`
            // reports it; the replay must not count it as a decision.
            scheduled = !class.bypassed();
            if let Some((kept, starts)) = &mut self.remarkable {
                starts.push((conn.first_ts_ns, conn.key()));
                if kept.len() < REMARKABLE_KEPT && class.remarkable(&conn) {
                    kept.push(conn.clone());
                }
            }
        }
        if scheduled {
            self.fairness.add(&conn);
        }
    }
}

/// Reads the captures, rebuilds the connections and runs every check; the verdict demands the
/// default required checks (and the scheduler's when rules are given).
pub fn verify(
    sources: &[CaptureSource],
    decode: DecodeOptions,
    opts: &FlowOptions,
    rules: Option<&Rules>,
) -> Verification {
    let policy = Policy {
        rules_given: rules.is_some(),
        ..Policy::default()
    };
    verify_with(sources, decode, opts, rules, None, &policy, Keep::NOTHING)
}

/// What a run keeps beyond the checks' results, for the reports that need more.
#[derive(Debug, Clone, Copy)]
pub struct Keep {
    /// Each service's assignments, for the fairness charts (the HTML report draws them).
    pub timeline: fairness::Timeline,
    /// What placing a frame needs of every connection ([`Verification::placements`], for
    /// `--annotate`).
    pub placements: bool,
    /// The remarkable connections ([`Verification::remarkable`], for the HTML report's
    /// ladders).
    pub remarkable: bool,
}

impl Keep {
    pub const NOTHING: Keep = Keep {
        timeline: fairness::Timeline::Skip,
        placements: false,
        remarkable: false,
    };
}

/// [`verify`] with the director's snapshots (`--director-state`) and the verdict's demands
/// given (`--require`, `--fail-on`), keeping what `keep` asks for.
pub fn verify_with(
    sources: &[CaptureSource],
    decode: DecodeOptions,
    opts: &FlowOptions,
    rules: Option<&Rules>,
    state: Option<&DirectorState>,
    policy: &Policy,
    keep: Keep,
) -> Verification {
    let mut v = Verifier::new(state, keep);
    let analysis = analyse_files_streaming(sources, decode, opts, &mut v);
    conclude(v, analysis, rules, policy, keep)
}

/// [`verify_with`] on the records `lvscheck extract` wrote (folders of captures' records),
/// the legs joined by a query on `engine`: the same checks on the same connections.
pub fn verify_records(
    paths: &[std::path::PathBuf],
    engine: &crate::records::engine::Engine,
    opts: &FlowOptions,
    rules: Option<&Rules>,
    state: Option<&DirectorState>,
    policy: &Policy,
    keep: Keep,
) -> Result<Verification, String> {
    let mut v = Verifier::new(state, keep);
    let analysis = crate::records::analyse_streaming(paths, engine, opts, &mut v)?;
    Ok(conclude(v, analysis, rules, policy, keep))
}

/// The checks' and the scheduler's conclusions once every connection has been seen.
fn conclude(
    mut v: Verifier,
    analysis: Analysis,
    rules: Option<&Rules>,
    policy: &Policy,
    keep: Keep,
) -> Verification {
    let mut placements = v.placements.take().unwrap_or_default();
    let remarkable = v
        .remarkable
        .take()
        .map(|(kept, starts)| numbered_by_start(kept, starts))
        .unwrap_or_default();
    // In order of start, as `flows` numbers connections.
    placements.sort_by_key(|p| (p.first_ts_ns, p.key));
    let ctx = Context::new(&analysis);
    let mut input = v.fairness.finish(&analysis.topology);
    if let Some(rules) = rules {
        fairness::observe::apply_rules(&mut input, rules);
    }
    let drained = fairness::drain_placements(&input);
    let mut checks = match v.started {
        Some((_, checks, _)) => checks.finish(&ctx, &drained),
        // begin is always called; an analysis that never started has nothing to check.
        None => ConnectionChecks::new(&ctx).finish(&ctx, &drained),
    };
    drop(drained);
    let fairness = fairness::analyse_observed(&input, keep.timeline);
    let packet_of = |client: SocketAddr, time_ns: i64| {
        // The connection of that client port that started nearest that time, as the director
        // saw its first packet. Called for the few assignments shown as evidence only.
        input
            .services
            .iter()
            .flat_map(|s| s.connections.first_frames_of(client))
            .min_by_key(|(t, _)| (t - time_ns).abs())
            .map(|(_, f)| ctx.packet(&f, format!("new connection from {client}")))
    };
    let scheduler = match scheduler_unseen(&analysis) {
        Some(reason) => CheckResult::skip(fairness::check::ID, reason),
        None => fairness::check::check_with(&fairness, &packet_of),
    };
    drop(input);
    checks.push(match v.director {
        Some(d) => d.finish(&ctx),
        None => CheckResult::skip(director_state::ID, director_state::NOT_GIVEN),
    });
    checks.push(scheduler);
    point_skips_at_capture_problems(&mut checks);
    let unseen = no_lvs_service(&analysis, rules.is_some());
    if let Some(why) = &unseen {
        skip_deployment_checks(&mut checks, why);
    }
    let mut verdict = verdict::decide(&checks, analysis.connection_count, policy);
    if let Some(why) = unseen {
        verdict::no_service_seen(&mut verdict, &why);
    }
    Verification {
        checks,
        fairness,
        analysis,
        verdict,
        placements,
        remarkable,
    }
}

/// A check skipped for want of packets that a capture's own problem removed says so: the
/// scheduler (nothing to replay when the forwarded packets are filtered out or cut) and
/// `arp.vip` (a port filter drops ARP too). The capture checks carry the evidence.
fn point_skips_at_capture_problems(checks: &mut [CheckResult]) {
    let warned = |id: &str| {
        checks
            .iter()
            .any(|c| c.id == id && c.status == Status::Warn)
    };
    let blamed: Vec<&str> = ["capture.filter", "capture.snaplen", "capture.drops"]
        .into_iter()
        .filter(|id| warned(id))
        .collect();
    let filtered = warned("capture.filter");
    for c in checks.iter_mut().filter(|c| c.status == Status::Skip) {
        if c.id == fairness::check::ID && !blamed.is_empty() {
            c.reason.push_str(&format!(
                "; see {}: the captures miss packets",
                blamed.join(", ")
            ));
        }
        if c.id == crate::checks::arp::ID && filtered {
            c.reason.push_str(
                "; a capture filter that keeps only the service's port drops ARP too (see \
                 capture.filter)",
            );
        }
    }
}

/// Why these captures show no LVS service, if they do not: no VIP is known from a tunnelled
/// packet, from `--vip` or from the rules, at most guessed as the busiest destination. Plain
/// traffic to a busy address is no LVS service, and judging it as one gives advice ("block ARP
/// for the VIP") about a deployment that is not there: no VIP, no verdict.
fn no_lvs_service(analysis: &Analysis, rules_given: bool) -> Option<String> {
    let vips = &analysis.topology.vips;
    if rules_given
        || vips
            .iter()
            .any(|v| v.decided_by != crate::topology::Decision::Guess)
    {
        return None;
    }
    let base = "no LVS service seen: no tunnelled packet in any capture, and no --rules or --vip";
    Some(match vips.first() {
        None => format!("{base} to name a VIP"),
        Some(v) => format!(
            "{base}; {}, the busiest destination, is only a guess and was not judged as a VIP \
             (give --vip {} or --rules to check it as one)",
            v.addr, v.addr
        ),
    })
}

/// The checks that judge a deployment skip with `why`; the capture checks and `topology` (what
/// was found) stay.
fn skip_deployment_checks(checks: &mut [CheckResult], why: &str) {
    for c in checks.iter_mut() {
        if !c.id.starts_with("capture.") && c.id != crate::checks::topology::ID {
            *c = CheckResult::skip(c.id, why.to_string());
        }
    }
}

/// Why the scheduler cannot be replayed from these captures, if it cannot: the replay needs
/// every decision the director took, in order, so either the director's capture or one of
/// every real server a decision could go to. With some servers missing, the decisions that went
/// there are missing from the sequence, and the replay would blame the scheduler for the gap.
fn scheduler_unseen(analysis: &Analysis) -> Option<String> {
    let topo = &analysis.topology;
    if topo
        .vantages
        .iter()
        .any(|v| v.role == crate::topology::Role::Director)
    {
        return None;
    }
    let captured = |a: std::net::IpAddr| {
        topo.vantages
            .iter()
            .any(|v| v.role == crate::topology::Role::RealServer && v.address == Some(a))
    };
    let mut servers: Vec<std::net::IpAddr> = analysis
        .expected
        .iter()
        .flat_map(|s| s.real_servers.iter().map(|r| r.addr))
        .chain(topo.real_servers.iter().map(|h| h.addr))
        .collect();
    servers.sort();
    servers.dedup();
    let missing: Vec<String> = servers
        .into_iter()
        .filter(|a| !captured(*a))
        .map(|a| a.to_string())
        .collect();
    if missing.is_empty() {
        return None;
    }
    Some(format!(
        "no director capture, and {} {} not captured: the replay needs every decision the \
         director took, in order",
        if missing.len() == 1 {
            "real server"
        } else {
            "real servers"
        },
        missing.join(", ")
    ))
}
