//! `tunnel.delivery`: every tunnelled request reached the real server it was addressed to,
//! where that server was captured, and only where its capture could have shown it arrive.

use smallvec::SmallVec;
use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::checks::capture::{Sight, Unjudged};
use crate::checks::{of, Affected, CheckResult, Context, Explained, Status};
use crate::flows::{Connection, Leg};
use crate::topology::{Role, VantageId};

pub const DELIVERY: &str = "tunnel.delivery";

/// Offset of a vantage point's clock against the reference (0 when unknown).
fn offset_of(ctx: &Context, v: VantageId) -> i64 {
    crate::flows::clock::offset_of(&ctx.analysis.clock_offsets, v).map_or(0, |o| o.offset_ns)
}

/// Whether a real-server capture was running when a packet left the director.
fn covered(ctx: &Context, rs: VantageId, director: &Leg, ts_director: i64) -> bool {
    let Some(v) = ctx.analysis.topology.vantage(rs) else {
        return false;
    };
    let (Some(first), Some(last)) = (v.first_ts_ns, v.last_ts_ns) else {
        return false;
    };
    let at_rs = ts_director - offset_of(ctx, director.vantage) + offset_of(ctx, rs);
    // Allow for the delay and the uncertainty of the offsets.
    const SLACK_NS: i64 = 50_000_000;
    at_rs >= first + SLACK_NS && at_rs + SLACK_NS <= last
}

/// `tunnel.delivery`, fed one connection at a time.
pub struct Delivery {
    /// The real servers with a capture: their address and that capture.
    rs_vantages: Vec<(IpAddr, VantageId)>,
    /// Per real server: connections sent to it (while its capture ran) and those that never
    /// arrived.
    sent: BTreeMap<IpAddr, usize>,
    lost: BTreeMap<IpAddr, Affected>,
    /// Not judged: the server's capture could not have shown them arrive.
    unjudged: Unjudged,
}

impl Delivery {
    pub fn new(ctx: &Context) -> Self {
        Delivery {
            rs_vantages: ctx
                .analysis
                .topology
                .vantages
                .iter()
                .filter(|v| v.role == Role::RealServer)
                .filter_map(|v| v.address.map(|a| (a, v.id)))
                .collect(),
            sent: BTreeMap::new(),
            lost: BTreeMap::new(),
            unjudged: Unjudged::default(),
        }
    }

    pub fn observe(&mut self, ctx: &Context, conn: &Connection, sight: &Sight) {
        let Delivery {
            rs_vantages,
            sent,
            lost,
            unjudged,
        } = self;
        // A connection two directors tunnelled to one server (the backup carrying it on after
        // a failover) is one tunnelled connection to that server.
        let mut judged: SmallVec<[std::net::IpAddr; 2]> = SmallVec::new();
        for leg in ctx.legs_at(conn, Role::Director) {
            let Some(wrapped) = &leg.request_wrapped else {
                continue;
            };
            for pair in &wrapped.outer {
                if judged.contains(&pair.dst) {
                    continue;
                }
                // Inline lists: a server has one capture as a rule, and this runs for every
                // connection on the thread every connection goes through.
                let at_rs: SmallVec<[VantageId; 2]> = rs_vantages
                    .iter()
                    .filter(|(a, _)| *a == pair.dst)
                    .map(|(_, v)| *v)
                    .collect();
                let arrived = conn.legs.iter().any(|l| {
                    at_rs.contains(&l.vantage)
                        && (l.request_wrapped.is_some() || l.request.is_some())
                });
                // What arrived counts; what did not counts as lost only if the server's
                // capture was surely running then.
                let watching: SmallVec<[VantageId; 2]> = at_rs
                    .iter()
                    .copied()
                    .filter(|v| covered(ctx, *v, leg, wrapped.first.ts_ns))
                    .collect();
                if !arrived && watching.is_empty() {
                    continue;
                }
                // Not arriving proves nothing where no capture running then could show it.
                if !arrived {
                    let blind: Vec<String> = watching
                        .iter()
                        .filter_map(|v| sight.absence_unproven(ctx, *v, wrapped.packets))
                        .collect();
                    if blind.len() == watching.len() {
                        unjudged.add(blind.join("; "), 1);
                        continue;
                    }
                }
                judged.push(pair.dst);
                *sent.entry(pair.dst).or_default() += 1;
                if !arrived {
                    lost.entry(pair.dst).or_default().add(conn, || {
                        Some(
                            ctx.packet(
                                &wrapped.first,
                                format!("tunnelled request to {}", pair.dst),
                            ),
                        )
                    });
                }
            }
        }
    }

    pub fn finish(self, ctx: &Context, sight: &Sight) -> CheckResult {
        if !ctx.has_role(Role::Director) {
            return CheckResult::skip(DELIVERY, "no capture from the director");
        }
        let judged: usize = self.sent.values().sum();
        if judged == 0 && self.unjudged.is_empty() {
            // Nothing to follow: say which capture is to blame when one is.
            let director = sight.hidden_in_role(ctx, Role::Director);
            let servers = sight.hidden_in_role(ctx, Role::RealServer);
            if !director.is_empty() {
                return CheckResult::skip(
                    DELIVERY,
                    format!(
                        "the director's tunnelled packets cannot be read from its capture: {}",
                        director.join("; ")
                    ),
                );
            }
            if !servers.is_empty() {
                return CheckResult::skip(
                    DELIVERY,
                    format!(
                        "the real servers' captures cannot show tunnelled packets arriving: {}",
                        servers.join("; ")
                    ),
                );
            }
        }
        if self.rs_vantages.is_empty() {
            return CheckResult::skip(
                DELIVERY,
                "no capture from a real server that tunnelled packets were addressed to",
            );
        }
        report_delivery(ctx, self)
    }
}

fn report_delivery(ctx: &Context, d: Delivery) -> CheckResult {
    let Delivery {
        sent,
        lost,
        unjudged,
        ..
    } = d;
    let mut findings = Vec::new();
    for (rs, affected) in lost {
        let total = sent.get(&rs).copied().unwrap_or(0);
        let encap = ctx.encap(rs).unwrap_or_else(|| {
            crate::topology::encap::Encap::from_rules(None, None, rs, ctx.vip_or(rs))
        });
        let wire = encap.wire_name();
        let (rule, module) = encap.accept_rule();
        let text = Explained {
            summary: format!(
                "{} tunnelled connections to {rs} never arrived there",
                of(affected.len(), total)
            ),
            host: Some(ctx.host(rs)),
            likely_cause: format!(
                "the path from the director to the real server drops {wire} (a firewall, a \
                 cloud security group), or the real server's address is wrong"
            ),
            fix: format!(
                "allow {wire} from the director to {rs} ({rule} on {rs}); check that {rs} has \
                 the {module} module loaded (modprobe {module})"
            ),
        };
        let mut finding = affected.finding(DELIVERY, Status::Fail, total, text);
        finding.display_filter = Some(encap.display_filter(rs));
        findings.push(finding);
    }
    let total: usize = sent.values().sum();
    if total == 0 && findings.is_empty() && !unjudged.is_empty() {
        return CheckResult::skip(
            DELIVERY,
            format!(
                "{} tunnelled connections went to captured real servers and none can be judged: \
                 {}",
                unjudged.total(),
                unjudged.reasons()
            ),
        );
    }
    let pass = format!(
        "all {total} tunnelled connections to captured real servers arrived{}",
        unjudged.pass_suffix()
    );
    CheckResult::judged(
        DELIVERY,
        total,
        "no tunnelled connection went to a real server while that server was captured",
        pass,
        findings,
    )
}
