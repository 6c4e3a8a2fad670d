//! `tunnel.encapsulation` and `tunnel.delivery`: what the director forwarded left IP-in-IP
//! wrapped towards a real server, and arrived there.

use std::collections::BTreeMap;
use std::net::IpAddr;

use super::classify::{Class, Forwarding};
use super::{of, Affected, CheckResult, Context, Explained, Status};
use crate::flows::{Connection, EvidenceKind, Leg};
use crate::topology::{Role, VantageId};

pub const ENCAPSULATION: &str = "tunnel.encapsulation";
pub const DELIVERY: &str = "tunnel.delivery";

/// `tunnel.encapsulation`, fed one connection at a time.
pub struct Encapsulation {
    forwarded: usize,
    /// Forwarded unwrapped (direct routing), per real server (None: not identified).
    unwrapped: BTreeMap<Option<IpAddr>, Affected>,
    not_forwarded: Affected,
    /// Answered, but the director capture does not show them leave.
    left_unseen: Affected,
    unknown_rs: BTreeMap<IpAddr, Affected>,
    altered: Affected,
}

impl Encapsulation {
    pub fn new(_ctx: &Context) -> Self {
        Encapsulation {
            forwarded: 0,
            unwrapped: BTreeMap::new(),
            not_forwarded: Affected::default(),
            left_unseen: Affected::default(),
            unknown_rs: BTreeMap::new(),
            altered: Affected::default(),
        }
    }

    pub fn observe(&mut self, ctx: &Context, conn: &Connection, class: &Class) {
        let Encapsulation {
            forwarded,
            unwrapped,
            not_forwarded,
            left_unseen,
            unknown_rs,
            altered,
        } = self;
        let arrived_at_director = || {
            ctx.legs_at(conn, Role::Director)
                .find_map(|l| l.request.as_ref())
                .map(|r| r.first)
        };
        match class.forwarding {
            // Seen wrapped only where it arrived (no director capture): forwarded, tunnelled.
            Forwarding::Tunnel if ctx.legs_at(conn, Role::Director).next().is_none() => {
                *forwarded += 1;
                return;
            }
            Forwarding::Tunnel => {}
            Forwarding::Direct { .. } => {
                *forwarded += 1;
                let example = arrived_at_director().or(class.unwrapped_at_rs);
                unwrapped
                    .entry(class.real_server)
                    .or_default()
                    .add(conn, || {
                        example.map(|f| ctx.packet(&f, "request to the VIP, forwarded unwrapped"))
                    });
                return;
            }
            Forwarding::NotForwarded => {
                not_forwarded.add(conn, || {
                    arrived_at_director()
                        .map(|f| ctx.packet(&f, "request to the VIP, never forwarded"))
                });
                return;
            }
            Forwarding::LeftUnseen => {
                left_unseen.add(conn, || {
                    arrived_at_director().map(|f| {
                        ctx.packet(
                            &f,
                            "request to the VIP, answered, but not seen leaving the director",
                        )
                    })
                });
                return;
            }
            Forwarding::Missed | Forwarding::NotCaptured => return,
        }
        // Once per connection, even when two director captures (two interfaces of one
        // director) saw it.
        *forwarded += 1;
        for leg in ctx.legs_at(conn, Role::Director) {
            let (Some(arrived), Some(wrapped)) = (&leg.request, &leg.request_wrapped) else {
                continue;
            };
            if let Some(ev) = leg
                .evidence
                .iter()
                .find(|e| e.kind == EvidenceKind::WrappedToUnknownRs)
            {
                for pair in &wrapped.outer {
                    unknown_rs.entry(pair.dst).or_default().add(conn, || {
                        Some(ctx.packet(&ev.first, format!("wrapped request to {}", pair.dst)))
                    });
                }
            }
            // The inner packet must be the one that arrived: same segments, same payload
            // (only the TTL and checksum change). Compare only when every packet that
            // arrived was also seen leaving, so a capture cut mid-connection does not
            // count as alteration.
            if wrapped.packets == arrived.packets && wrapped.payload_bytes != arrived.payload_bytes
            {
                altered.add(conn, || {
                    Some(ctx.packet(
                        &wrapped.first,
                        format!(
                            "{} payload bytes arrived, {} left inside the tunnel",
                            arrived.payload_bytes, wrapped.payload_bytes
                        ),
                    ))
                });
            }
        }
    }

    pub fn finish(self, ctx: &Context) -> CheckResult {
        // Without a director capture, what arrived unwrapped from the director's MAC at a
        // real server still shows direct-routing forwarding; nothing else can be judged.
        if !ctx.has_role(Role::Director) && self.unwrapped.is_empty() {
            return CheckResult::skip(
                ENCAPSULATION,
                "no capture from the director: what it sends cannot be seen",
            );
        }
        report_encapsulation(ctx, self)
    }
}

/// The rules line that gives a real server its forwarding method, in `ipvsadm -Sn` form.
fn rules_line(ctx: &Context, rs: IpAddr) -> Option<String> {
    ctx.analysis.expected.iter().find_map(|svc| {
        let r = svc.real_servers.iter().find(|r| r.addr == rs)?;
        let flag = match r.forwarding.as_str() {
            "route" => "-g",
            "masq" => "-m",
            "tunnel" => "-i",
            _ => return None,
        };
        let proto = if svc.service.proto == crate::topology::Proto::UDP {
            "-u"
        } else {
            "-t"
        };
        let join = |a: IpAddr, p: u16| std::net::SocketAddr::new(a, p).to_string();
        Some(format!(
            "-a {proto} {} -r {} {flag}",
            join(svc.service.vip, svc.service.port),
            join(r.addr, r.port)
        ))
    })
}

fn report_encapsulation(ctx: &Context, e: Encapsulation) -> CheckResult {
    let Encapsulation {
        forwarded,
        unwrapped,
        not_forwarded,
        left_unseen,
        unknown_rs,
        altered,
    } = e;
    let mut findings = Vec::new();
    for (rs, affected) in unwrapped {
        let name = rs
            .map(|a| ctx.host(a))
            .unwrap_or_else(|| "a host the captures do not name".into());
        let line = rs.and_then(|a| rules_line(ctx, a));
        let method = match rs.and_then(|a| ctx.forwarding_in_rules(a)) {
            Some("masq") => "NAT (-m)",
            _ => "direct routing (-g)",
        };
        let text = Explained {
            summary: format!(
                "{} forwarded connections left the director for {name} without an IP-in-IP \
                 tunnel ({method})",
                of(affected.len(), forwarded)
            ),
            host: Some(name.clone()),
            likely_cause: match &line {
                Some(l) => format!(
                    "the rules add {name} in {method} mode, not tunnel mode: `{l}`; its \
                     connections reach it through the director, unwrapped, and only work \
                     while it shares the director's network segment"
                ),
                None => format!(
                    "{name} was added in {method} mode, not tunnel mode (-i): the director \
                     rewrites only the destination MAC"
                ),
            },
            fix: match rs {
                Some(a) => format!(
                    "on the director: ipvsadm -e -t VIP:PORT -r {a}:PORT -i (tunnel mode); \
                     check with ipvsadm -Ln (Forward column: Tunnel)"
                ),
                None => "on the director: ipvsadm -e -t VIP:PORT -r RIP:PORT -i (tunnel mode) \
                 for each real server; check with ipvsadm -Ln (Forward column: Tunnel)"
                    .into(),
            },
        };
        findings.push(affected.finding(ENCAPSULATION, Status::Fail, forwarded, text));
    }
    for (rs, affected) in unknown_rs {
        let text = Explained {
            summary: format!(
                "{} connections were tunnelled to {rs}, which is not a real server in the rules",
                affected.len()
            ),
            host: Some(rs.to_string()),
            likely_cause: "the director's running table differs from the rules file given".into(),
            fix: "compare ipvsadm -Sn on the director with the rules file; remove or add the                   server with ipvsadm -d / -a"
                .into(),
        };
        let mut finding = affected.finding(ENCAPSULATION, Status::Fail, forwarded, text);
        finding.display_filter = Some(format!("ip.proto == 4 && ip.dst == {rs}"));
        findings.push(finding);
    }
    if !altered.is_empty() {
        let text = Explained {
            summary: format!(
                "{} tunnelled connections carry a different payload than what arrived",
                of(altered.len(), forwarded)
            ),
            host: director_name(ctx),
            likely_cause: "something on the director rewrites packets before the tunnel (a \
                           netfilter mangle or NAT rule, a proxy)"
                .into(),
            fix: "on the director: iptables -t mangle -S and iptables -t nat -S; remove rules \
                  that touch traffic to the VIP"
                .into(),
        };
        findings.push(altered.finding(ENCAPSULATION, Status::Fail, forwarded, text));
    }
    let judged = forwarded + not_forwarded.len();
    if !not_forwarded.is_empty() {
        let text = Explained {
            summary: format!(
                "{} connections arrived at the director and were not forwarded at all",
                of(not_forwarded.len(), judged)
            ),
            host: director_name(ctx),
            likely_cause: "no virtual service for that address and port, or no available real \
                           server (all weights 0 or over their thresholds)"
                .into(),
            fix: "on the director: ipvsadm -Ln; add the service (ipvsadm -A) or its servers \
                  (ipvsadm -a ... -i)"
                .into(),
        };
        findings.push(not_forwarded.finding(ENCAPSULATION, Status::Warn, judged, text));
    }
    if judged == 0 && findings.is_empty() && !left_unseen.is_empty() {
        return CheckResult::skip(
            ENCAPSULATION,
            format!(
                "the director capture shows {} answered connections arrive but none leave: it \
                 missed the forwarded packets (a capture filter such as `port 80` drops IP \
                 protocol 4)",
                left_unseen.len()
            ),
        );
    }
    CheckResult::judged(
        ENCAPSULATION,
        judged,
        "no connection to a VIP reached the director while it was captured",
        format!("all {forwarded} forwarded connections left the director IP-in-IP wrapped"),
        findings,
    )
}

fn director_name(ctx: &Context) -> Option<String> {
    ctx.analysis
        .topology
        .directors
        .first()
        .map(|d| ctx.host(d.addr))
}

/// Offset of a vantage point's clock against the reference (0 when unknown).
fn offset_of(ctx: &Context, v: VantageId) -> i64 {
    ctx.analysis
        .clock_offsets
        .iter()
        .find(|o| o.vantage == v)
        .map(|o| o.offset_ns)
        .unwrap_or(0)
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
        }
    }

    pub fn observe(&mut self, ctx: &Context, conn: &Connection) {
        let Delivery {
            rs_vantages,
            sent,
            lost,
        } = self;
        for leg in ctx.legs_at(conn, Role::Director) {
            let Some(wrapped) = &leg.request_wrapped else {
                continue;
            };
            for pair in &wrapped.outer {
                let at_rs: Vec<VantageId> = rs_vantages
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
                let watched = at_rs
                    .iter()
                    .any(|v| covered(ctx, *v, leg, wrapped.first.ts_ns));
                if !arrived && !watched {
                    continue;
                }
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

    pub fn finish(self, ctx: &Context) -> CheckResult {
        if !ctx.has_role(Role::Director) {
            return CheckResult::skip(DELIVERY, "no capture from the director");
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
    let Delivery { sent, lost, .. } = d;
    let mut findings = Vec::new();
    for (rs, affected) in lost {
        let total = sent.get(&rs).copied().unwrap_or(0);
        let text = Explained {
            summary: format!(
                "{} tunnelled connections to {rs} never arrived there",
                of(affected.len(), total)
            ),
            host: Some(ctx.host(rs)),
            likely_cause: "the path from the director to the real server drops IP protocol 4 (a \
                           firewall, a cloud security group), or the real server's address is \
                           wrong"
                .into(),
            fix: format!(
                "allow IP protocol 4 from the director to {rs} (iptables -A INPUT -p 4 -j ACCEPT \
                 on {rs}); check that {rs} has the ipip module loaded (modprobe ipip)"
            ),
        };
        let mut finding = affected.finding(DELIVERY, Status::Fail, total, text);
        finding.display_filter = Some(format!("ip.proto == 4 && ip.dst == {rs}"));
        findings.push(finding);
    }
    let total: usize = sent.values().sum();
    CheckResult::judged(
        DELIVERY,
        total,
        "no tunnelled connection went to a real server while that server was captured",
        format!("all {total} tunnelled connections to captured real servers arrived"),
        findings,
    )
}
