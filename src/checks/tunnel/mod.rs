//! `tunnel.encapsulation` (here) and `tunnel.delivery` (`delivery.rs`): what the director
//! forwarded left IP-in-IP wrapped towards a real server, and arrived there.
//!
//! Both conclude from absences ("never forwarded", "never arrived"), so both ask
//! [`Sight`] first whether the capture could have shown the packet: a capture filter, a snap
//! length or drops that hid it are the capture's fault (the `capture.*` checks say so), and
//! such connections are not judged. When none can be, the check is skipped with that reason.

use std::collections::BTreeMap;
use std::net::IpAddr;

use super::capture::{Sight, Unjudged};
use super::classify::{Class, Forwarding};
use super::{of, Affected, CheckResult, Context, Explained, Status};
use crate::flows::{Connection, EvidenceKind};
use crate::topology::{Role, VantageId};

pub mod delivery;

pub use delivery::{Delivery, DELIVERY};

pub const ENCAPSULATION: &str = "tunnel.encapsulation";

/// `tunnel.encapsulation`, fed one connection at a time.
pub struct Encapsulation {
    forwarded: usize,
    /// Forwarded unwrapped (direct routing), per real server (None: not identified).
    unwrapped: BTreeMap<Option<IpAddr>, Affected>,
    /// Never answered and not seen leaving, per director capture where they arrived: a
    /// director fault, unless that capture turns out not to show its tunnelled packets.
    not_forwarded: BTreeMap<Option<VantageId>, Affected>,
    /// Answered, but the director capture does not show them leave, per director capture.
    left_unseen: BTreeMap<Option<VantageId>, usize>,
    /// Not judged: the capture could not have shown the forwarded copy.
    unjudged: Unjudged,
    unknown_rs: BTreeMap<IpAddr, Affected>,
    altered: Affected,
    /// Wrapped IPv6-in-IPv6 with the VIP as outer source, per real server it went to.
    from_vip: BTreeMap<IpAddr, Affected>,
}

impl Encapsulation {
    pub fn new(_ctx: &Context) -> Self {
        Encapsulation {
            forwarded: 0,
            unwrapped: BTreeMap::new(),
            not_forwarded: BTreeMap::new(),
            left_unseen: BTreeMap::new(),
            unjudged: Unjudged::default(),
            unknown_rs: BTreeMap::new(),
            altered: Affected::default(),
            from_vip: BTreeMap::new(),
        }
    }

    pub fn observe(&mut self, ctx: &Context, conn: &Connection, class: &Class, sight: &Sight) {
        let Encapsulation {
            forwarded,
            unwrapped,
            not_forwarded,
            left_unseen,
            unjudged,
            unknown_rs,
            altered,
            from_vip,
        } = self;
        outer_from_vip(ctx, conn, class, from_vip);
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
                let v = class.director_vantage;
                // Its requests that arrived: as many forwarded copies could be missing.
                let packets = ctx
                    .legs_at(conn, Role::Director)
                    .find(|l| Some(l.vantage) == v)
                    .and_then(|l| l.request.as_ref())
                    .map_or(1, |r| r.packets);
                if let Some(why) = v.and_then(|v| sight.absence_unproven(ctx, v, packets)) {
                    unjudged.add(why, 1);
                    return;
                }
                not_forwarded.entry(v).or_default().add(conn, || {
                    arrived_at_director()
                        .map(|f| ctx.packet(&f, "request to the VIP, never forwarded"))
                });
                return;
            }
            Forwarding::LeftUnseen => {
                *left_unseen.entry(class.director_vantage).or_default() += 1;
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

    /// `sight` as it stands once every connection was seen (director captures proven to miss
    /// their forwarded copies included).
    pub fn finish(mut self, ctx: &Context, sight: &Sight) -> CheckResult {
        // Without a director capture, what arrived unwrapped from the director's MAC at a
        // real server still shows direct-routing forwarding; nothing else can be judged.
        if !ctx.has_role(Role::Director) && self.unwrapped.is_empty() {
            return CheckResult::skip(
                ENCAPSULATION,
                "no capture from the director: what it sends cannot be seen",
            );
        }
        // A director capture that answered connections prove blind (capture.filter) cannot
        // show that the unanswered ones were not forwarded either.
        let mut kept = Affected::default();
        for (v, affected) in std::mem::take(&mut self.not_forwarded) {
            match v.and_then(|v| sight.tunnels_hidden(v)) {
                Some(why) => self.unjudged.add(why, affected.len()),
                None => kept.merge(affected),
            }
        }
        for (v, n) in std::mem::take(&mut self.left_unseen) {
            let why = v.and_then(|v| sight.tunnels_hidden(v)).map_or_else(
                || {
                    "the director capture shows them arrive, answered, but not leave (it \
                     missed the forwarded copies)"
                        .to_string()
                },
                str::to_string,
            );
            self.unjudged.add(why, n);
        }
        report_encapsulation(ctx, self, kept)
    }
}

/// Notes a connection wrapped IPv6-in-IPv6 with its VIP as the outer source
/// ([`Class::wrapped_from_vip`]), wherever a capture saw the wrapped packet.
fn outer_from_vip(
    ctx: &Context,
    conn: &Connection,
    class: &Class,
    from_vip: &mut BTreeMap<IpAddr, Affected>,
) {
    if let Some((rs, first)) = class.wrapped_from_vip {
        let vip = conn.vip.ip();
        from_vip.entry(rs).or_default().add(conn, || {
            Some(ctx.packet(
                &first,
                format!("wrapped request, outer {vip} -> {rs}: the VIP as outer source"),
            ))
        });
    }
}

/// The rules line `-a ... -g` (or `-m`) as the `-e ... -i` command that puts the server in
/// tunnel mode, with the tunnel options the service's other servers use.
pub(crate) fn to_tunnel(line: &str, flags: &str) -> String {
    let words: Vec<&str> = line
        .split_whitespace()
        .map(|w| match w {
            "-a" => "-e",
            "-g" | "-m" => "-i",
            w => w,
        })
        .collect();
    format!("{}{flags}", words.join(" "))
}

/// ` --tun-type gue --tun-port N` or ` --tun-type gre` when the tunnelled servers use one.
pub(crate) fn tunnel_flags(ctx: &Context) -> String {
    match ctx.first_encap() {
        Some(e) if e.is_gue() => match e.gue_port {
            Some(p) => format!(" --tun-type gue --tun-port {p}"),
            None => " --tun-type gue --tun-port PORT".into(),
        },
        Some(e) if e.is_gre() => " --tun-type gre".into(),
        _ => String::new(),
    }
}

fn report_encapsulation(ctx: &Context, e: Encapsulation, not_forwarded: Affected) -> CheckResult {
    let Encapsulation {
        forwarded,
        unwrapped,
        unjudged,
        unknown_rs,
        altered,
        from_vip,
        ..
    } = e;
    let mut findings = Vec::new();
    for (rs, affected) in from_vip {
        let name = ctx.host(rs);
        let vip = ctx.vip_text();
        let text = Explained {
            summary: format!(
                "{} connections were tunnelled to {name} with the VIP as the outer source \
                 address, which {name} holds itself",
                of(affected.len(), forwarded)
            ),
            host: director_name(ctx),
            likely_cause: "the director's VIP is a preferred address on the interface towards \
                           the real servers, so source address selection picks it for the \
                           IPv6-in-IPv6 packets; a real server's ip6_tunnel drops a tunnelled \
                           packet whose outer source is one of its own addresses, and nothing \
                           is answered"
                .into(),
            fix: format!(
                "on the director: make the VIP deprecated so it is never picked as a source \
                 (ip -6 addr change {vip}/128 dev eth0 preferred_lft 0), or give the route to \
                 the real servers its own source (ip -6 route replace <their prefix> dev eth0 \
                 src <the director's address>)"
            ),
        };
        let mut finding = affected.finding(ENCAPSULATION, Status::Fail, forwarded, text);
        finding.display_filter = Some(format!("ipv6.nxt == 41 && ipv6.dst == {rs}"));
        findings.push(finding);
    }
    for (rs, affected) in unwrapped {
        let name = rs
            .map(|a| ctx.host(a))
            .unwrap_or_else(|| "a host the captures do not name".into());
        let line = rs.and_then(|a| ctx.rules_line(a));
        let method = match rs.and_then(|a| ctx.forwarding_in_rules(a)) {
            Some("masq") => "NAT (-m)",
            _ => "direct routing (-g)",
        };
        let tunnel = ctx.tunnel_name();
        let article = if tunnel.starts_with('I') { "an" } else { "a" };
        let text = Explained {
            summary: format!(
                "{} forwarded connections left the director for {name} without {article} \
                 {tunnel} tunnel ({method})",
                of(affected.len(), forwarded)
            ),
            host: Some(name.clone()),
            likely_cause: match &line {
                Some(l) if method.starts_with("NAT") => format!(
                    "the rules add {name} in {method} mode, not tunnel mode: `{l}`; the \
                     director rewrites each request's destination to {name} and sends it \
                     unwrapped, and the replies, which would have to come back through the \
                     director to be rewritten to the VIP, leave {name} from its own address \
                     (reply.source shows them)"
                ),
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
            fix: match (rs, &line) {
                (Some(_), Some(l)) => format!(
                    "on the director: ipvsadm {} (tunnel mode{}); check with ipvsadm -Ln \
                     (Forward column: Tunnel)",
                    to_tunnel(l, &tunnel_flags(ctx)),
                    if tunnel == "IP-in-IP" {
                        String::new()
                    } else {
                        format!(", {tunnel}")
                    }
                ),
                (Some(a), None) => format!(
                    "on the director: ipvsadm -e -t VIP:PORT -r {a}:PORT -i (tunnel mode); \
                     check with ipvsadm -Ln (Forward column: Tunnel)"
                ),
                (None, _) => {
                    "on the director: ipvsadm -e -t VIP:PORT -r RIP:PORT -i (tunnel mode) \
                 for each real server; check with ipvsadm -Ln (Forward column: Tunnel)"
                        .into()
                }
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
            fix: "compare ipvsadm -Sn on the director with the rules file; remove or add the \
                  server with ipvsadm -d / -a"
                .into(),
        };
        let mut finding = affected.finding(ENCAPSULATION, Status::Fail, forwarded, text);
        finding.display_filter = Some(ctx.encap(rs).map_or_else(
            || format!("ip.proto == 4 && ip.dst == {rs}"),
            |e| e.display_filter(rs),
        ));
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
    if judged == 0 && findings.is_empty() && !unjudged.is_empty() {
        return CheckResult::skip(
            ENCAPSULATION,
            format!(
                "{} connections arrived at the director and none can be judged: {}",
                unjudged.total(),
                unjudged.reasons()
            ),
        );
    }
    let pass = format!(
        "all {forwarded} forwarded connections left the director {} wrapped{}",
        ctx.tunnel_name(),
        unjudged.pass_suffix()
    );
    CheckResult::judged(
        ENCAPSULATION,
        judged,
        "no connection to a VIP reached the director while it was captured",
        pass,
        findings,
    )
}

/// The director as findings name it: by its address, or, when the only address the
/// captures show it using is the VIP (its tunnels' outer source), by its MAC, since the VIP
/// names the service rather than a host.
fn director_name(ctx: &Context) -> Option<String> {
    let d = ctx.analysis.topology.directors.first()?;
    if !ctx.analysis.topology.is_vip(d.addr) {
        return Some(ctx.host(d.addr));
    }
    Some(match d.macs.first() {
        Some(mac) => format!("the director, MAC {mac} (its own address is in no packet)"),
        None => format!("the director (the host that wraps from {})", d.addr),
    })
}
