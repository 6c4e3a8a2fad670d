//! `reply.present`, `reply.source`, `reply.direct`: every connection that reached a real server
//! was answered, from the VIP and service port, straight to the client.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};

use super::classify::{Answer, Class};
use super::{of, Affected, CheckResult, Context, Explained, Finding, PacketRef, Status};
use crate::flows::{Connection, EvidenceKind};
use crate::topology::Role;

pub const PRESENT: &str = "reply.present";
pub const SOURCE: &str = "reply.source";
pub const DIRECT: &str = "reply.direct";

/// Connections grouped by real server: how many were judged, and those with the problem.
#[derive(Default)]
struct ByServer {
    total: BTreeMap<Option<IpAddr>, usize>,
    hits: BTreeMap<Option<IpAddr>, Affected>,
}

impl ByServer {
    fn count(&mut self, rs: Option<IpAddr>) {
        *self.total.entry(rs).or_default() += 1;
    }
    fn hit(
        &mut self,
        rs: Option<IpAddr>,
        conn: &Connection,
        example: impl FnOnce() -> Option<PacketRef>,
    ) {
        self.hits.entry(rs).or_default().add(conn, example);
    }
    /// One finding per server with the problem, worded by
    /// `explain(server, its name, "n of total", the connections)`.
    fn findings(
        self,
        ctx: &Context,
        check: &'static str,
        explain: impl Fn(Option<IpAddr>, &str, String, &Affected) -> Explained,
    ) -> Vec<Finding> {
        self.hits
            .into_iter()
            .map(|(rs, affected)| {
                let total = self.total.get(&rs).copied().unwrap_or(0);
                let name = rs_label(ctx, rs);
                let text = explain(rs, &name, of(affected.len(), total), &affected);
                affected.finding(check, Status::Fail, total, text)
            })
            .collect()
    }
}

fn rs_label(ctx: &Context, rs: Option<IpAddr>) -> String {
    rs.map(|a| ctx.host(a))
        .unwrap_or_else(|| "an unidentified real server".into())
}

/// `reply.present`, fed one connection at a time.
#[derive(Default)]
pub struct Present {
    unanswered: ByServer,
    refused: ByServer,
    /// Refused because the real server sent the director an ICMP error about the tunnelled
    /// request itself: it could not take the tunnel (the director then tells the client).
    tunnel_refused: ByServer,
    /// Unanswered because the director wrapped them with the VIP as the outer source
    /// ([`Class::wrapped_from_vip`]): `tunnel.encapsulation`'s fault, said here in its terms.
    from_vip: ByServer,
    /// Per server: the answer was judged only at the director (the client's repeated SYNs).
    at_director: BTreeSet<Option<IpAddr>>,
    /// Per server: the answer was judged only at a client (no capture of the server).
    at_client_only: BTreeSet<Option<IpAddr>>,
}

impl Present {
    pub fn observe(&mut self, ctx: &Context, conn: &Connection, class: &Class) {
        let rs = class.real_server;
        let seen_at_rs = ctx
            .legs_at(conn, Role::RealServer)
            .any(|l| l.request.is_some() || l.request_wrapped.is_some());
        match class.answer {
            Answer::Unknown => {}
            Answer::Answered | Answer::AnsweredByClientAck => {
                self.unanswered.count(rs);
                self.refused.count(rs);
                self.tunnel_refused.count(rs);
                self.from_vip.count(rs);
            }
            Answer::Refused(at) => {
                self.unanswered.count(rs);
                self.refused.count(rs);
                self.tunnel_refused.count(rs);
                self.from_vip.count(rs);
                let about_tunnel = conn
                    .legs
                    .iter()
                    .flat_map(|l| l.evidence.iter())
                    .find(|e| e.kind == EvidenceKind::TunnelRefused);
                match about_tunnel {
                    Some(e) => self.tunnel_refused.hit(rs, conn, || {
                        Some(ctx.packet(
                            &e.first,
                            "the real server's ICMP unreachable to the director about the \
                             tunnelled request",
                        ))
                    }),
                    None => self.refused.hit(rs, conn, || {
                        at.map(|f| ctx.packet(&f, "refusal from the VIP"))
                    }),
                }
            }
            Answer::Unanswered(at) | Answer::UnansweredAtDirector(at) => {
                self.unanswered.count(rs);
                self.refused.count(rs);
                self.tunnel_refused.count(rs);
                self.from_vip.count(rs);
                if matches!(class.answer, Answer::UnansweredAtDirector(_)) {
                    self.at_director.insert(rs);
                } else if !seen_at_rs {
                    self.at_client_only.insert(rs);
                }
                let what = if matches!(class.answer, Answer::UnansweredAtDirector(_)) {
                    "the client's SYN, repeated: it never got an answer"
                } else {
                    "request that got no reply"
                };
                let group = match class.wrapped_from_vip {
                    Some(_) => &mut self.from_vip,
                    None => &mut self.unanswered,
                };
                group.hit(rs, conn, || at.map(|f| ctx.packet(&f, what)));
            }
        }
    }

    pub fn finish(self, ctx: &Context) -> CheckResult {
        let from_rs = ctx.has_role(Role::RealServer);
        let from_client = ctx.has_role(Role::Client);
        if !from_rs && !from_client && self.unanswered.total.is_empty() {
            return CheckResult::skip(
                PRESENT,
                "no capture from a real server or a client, and the director's capture cannot \
                 tell whether the clients were answered",
            );
        }
        report_present(ctx, self)
    }
}

/// Where the captures leave a connection that went unanswered, for the cause: the server when
/// it was identified, else the hops that were not captured.
fn where_lost(ctx: &Context, rs: Option<IpAddr>) -> String {
    match rs {
        Some(_) => String::new(),
        None => {
            let captured: Vec<String> = ctx
                .analysis
                .topology
                .vantages
                .iter()
                .filter(|v| v.role == Role::RealServer)
                .filter_map(|v| v.address.map(|a| a.to_string()))
                .collect();
            let director = if ctx.has_role(Role::Director) {
                "the director's capture does not show where it sent them"
            } else {
                "the director was not captured, so where it sent them is not known"
            };
            if captured.is_empty() {
                format!("{director}, and no real server was captured")
            } else {
                format!(
                    "{director}, and they did not reach the captured {} {}",
                    if captured.len() == 1 {
                        "real server"
                    } else {
                        "real servers"
                    },
                    captured.join(", ")
                )
            }
        }
    }
}

fn report_present(ctx: &Context, p: Present) -> CheckResult {
    let Present {
        unanswered,
        refused,
        tunnel_refused,
        from_vip,
        at_director,
        at_client_only,
    } = p;
    let total: usize = unanswered.total.values().sum();
    let mut findings = unanswered.findings(ctx, PRESENT, |rs, name, n_of, _| {
        if rs.is_none() {
            let lost = where_lost(ctx, rs);
            return Explained {
                summary: format!(
                    "{n_of} connections from the clients were never answered, by a real server \
                     the captures do not identify"
                ),
                host: None,
                likely_cause: format!(
                    "either the director did not forward them or the real server it chose did \
                     not answer; {lost}"
                ),
                fix: "capture on the director and on every real server at once (tcpdump -i \
                      eth0 -s 0) to see which; on the director: ipvsadm -Lnc shows where each \
                      connection went"
                    .into(),
            };
        }
        let where_seen = if at_director.contains(&rs) {
            "were sent by the director to"
        } else if at_client_only.contains(&rs) {
            "went to"
        } else {
            "arrived at"
        };
        let summary = format!("{n_of} connections that {where_seen} {name} were never answered");
        match rs.and_then(|a| ctx.encap(a)).filter(|e| !e.is_ipip4()) {
            // IPv4 IP-in-IP, or not known: the tutorial's setup.
            None => Explained {
                summary,
                host: Some(name.to_string()),
                likely_cause: "the real server drops the decapsulated packets: strict \
                               reverse-path filtering on tunl0 (rp_filter=1), the VIP missing \
                               from its tunl0, or a firewall"
                    .into(),
                fix: format!(
                    "on {name}: sysctl -w net.ipv4.conf.tunl0.rp_filter=0 and \
                     net.ipv4.conf.all.rp_filter=0 (the kernel uses the larger of the two); \
                     ip addr add VIP/32 dev tunl0 and ip link set tunl0 up; check iptables -S"
                ),
            },
            Some(e) => {
                let dev = e.device();
                let rp = if e.inner_v6 {
                    ""
                } else {
                    " strict reverse-path filtering there (rp_filter=1),"
                };
                let fw = if e.inner_v6 {
                    "ip6tables -S"
                } else {
                    "iptables -S"
                };
                Explained {
                    summary,
                    host: Some(name.to_string()),
                    likely_cause: format!(
                        "the real server drops the {} packets or what they carry: the VIP \
                         missing from {dev},{rp} or a firewall",
                        e.name()
                    ),
                    fix: format!(
                        "on {name}: {}; check {fw}",
                        e.receive_setup(&ctx.vip_text())
                    ),
                }
            }
        }
    });
    findings.extend(from_vip.findings(ctx, PRESENT, |_, name, n_of, _| {
        let vip = ctx.vip_text();
        Explained {
            summary: format!(
                "{n_of} connections tunnelled to {name} with the VIP as the outer source were \
                 never answered"
            ),
            host: Some(name.to_string()),
            likely_cause: format!(
                "{name} holds the VIP itself, and its ip6_tunnel drops a tunnelled packet \
                 whose outer source is one of its own addresses: the director's fault \
                 (tunnel.encapsulation), not this server's"
            ),
            fix: format!(
                "on the director: ip -6 addr change {vip}/128 dev eth0 preferred_lft 0 (see \
                 tunnel.encapsulation); nothing to change on {name}"
            ),
        }
    }));
    findings.extend(tunnel_refused.findings(ctx, PRESENT, |rs, name, n_of, _| {
        let encap = rs.and_then(|a| ctx.encap(a));
        let tunnel = encap.map_or_else(|| "tunnelled".to_string(), |e| e.name());
        let (cause, setup) = match encap {
            Some(e) if e.is_gue() => (
                format!(
                    "nothing on the real server takes the GUE packets: no fou port {} (ip fou \
                     add ... gue), so its kernel answers them as a closed UDP port",
                    e.gue_port
                        .map_or("for the --tun-port".into(), |p| p.to_string())
                ),
                e.receive_setup(&ctx.vip_text()),
            ),
            Some(e) if e.is_gre() => (
                format!(
                    "no GRE device up on the real server to take the packets ({} down or \
                     missing: ip_gre finds no tunnel and answers with ICMP)",
                    e.device()
                ),
                e.receive_setup(&ctx.vip_text()),
            ),
            Some(e) => (
                format!(
                    "the real server has no {} device to take the packets ({} down or its \
                     module not loaded)",
                    e.name(),
                    e.device()
                ),
                e.receive_setup(&ctx.vip_text()),
            ),
            None => (
                "the real server cannot take the tunnel the director uses".into(),
                "set up the receiving end of the director's tunnel type (ipvsadm -Ln on the \
                 director shows it)"
                    .into(),
            ),
        };
        Explained {
            summary: format!(
                "{n_of} connections tunnelled to {name} were refused by its kernel: it answered \
                 the {tunnel} packets with ICMP unreachable, and the director passed the \
                 refusal on to the client"
            ),
            host: Some(name.to_string()),
            likely_cause: cause,
            fix: format!("on {name}: {setup}"),
        }
    }));
    findings.extend(refused.findings(ctx, PRESENT, |_, name, n_of, _| {
        Explained {
            summary: format!(
                "{n_of} connections to {name} were refused (TCP RST or ICMP unreachable)"
            ),
            host: Some(name.to_string()),
            likely_cause: "nothing listens on the service port on that real server (or it listens \
                       only on its own address, not on the VIP)"
                .into(),
            fix: format!(
                "on {name}: start the service and make it listen on the VIP's port, bound to \
             the VIP address on the real server (ss -lntup shows what listens); 0.0.0.0 is \
             enough for TCP only: a UDP service bound to 0.0.0.0 answers from the real \
             server's own address, which the client ignores (what reply.source fails), \
             unless it answers with IP_PKTINFO"
            ),
        }
    }));
    CheckResult::judged(
        PRESENT,
        total,
        "no connection was seen reaching a real server or leaving a client",
        format!("all {total} connections that reached a server were answered"),
        findings,
    )
}

/// `reply.source`, fed one connection at a time.
#[derive(Default)]
pub struct Source {
    by_rs: ByServer,
    /// Per real server, the addresses its wrong replies came from.
    sources: BTreeMap<Option<IpAddr>, BTreeSet<SocketAddr>>,
}

impl Source {
    pub fn observe(&mut self, ctx: &Context, conn: &Connection, class: &Class) {
        let Source { by_rs, sources } = self;
        let answered = conn
            .legs
            .iter()
            .any(|l| l.reply.is_some() || l.reply_other_source.is_some());
        if !answered {
            return;
        }
        let other = conn.legs.iter().find_map(|l| l.reply_other_source.as_ref());
        // The server that answered: known from the tunnel, else the replies' own source.
        let rs = class
            .real_server
            .or_else(|| other.and_then(|o| o.sources.first()).map(|s| s.ip()));
        by_rs.count(rs);
        let Some(other) = other else {
            return;
        };
        sources
            .entry(rs)
            .or_default()
            .extend(other.sources.iter().copied());
        by_rs.hit(rs, conn, || {
            let from = other
                .sources
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
                .join(", ");
            Some(ctx.packet(
                &other.first,
                format!(
                    "reply to {} from {from} instead of {}",
                    conn.client, conn.vip
                ),
            ))
        });
    }

    pub fn finish(self, ctx: &Context) -> CheckResult {
        if !ctx.has_role(Role::RealServer) && !ctx.has_role(Role::Client) {
            return CheckResult::skip(SOURCE, "no capture from a real server or a client");
        }
        report_source(ctx, self)
    }
}

fn report_source(ctx: &Context, s: Source) -> CheckResult {
    let Source { by_rs, sources } = s;
    let total: usize = by_rs.total.values().sum();
    let findings = by_rs.findings(ctx, SOURCE, |rs, name, n_of, affected| {
        let from = sources
            .get(&rs)
            .map(|l| {
                l.iter()
                    .map(|s| s.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default();
        let udp = affected.all_udp();
        // A server the rules add in NAT mode answers from its own address because the
        // director forwards to it that way: tunnel.encapsulation's finding, in its terms.
        let nat_line = rs
            .filter(|a| ctx.forwarding_in_rules(*a) == Some("masq"))
            .and_then(|a| ctx.rules_line(a));
        if let Some(line) = nat_line {
            let fix = super::tunnel::to_tunnel(&line, &super::tunnel::tunnel_flags(ctx));
            return Explained {
                summary: format!(
                    "{n_of} answered connections from {name} got replies from {from}, not from \
                     the VIP"
                ),
                host: Some(name.to_string()),
                likely_cause: format!(
                    "the rules add {name} in NAT mode (`{line}`): the director sent it the \
                     requests with its own address as destination, and it answers from that \
                     address; the client drops replies from an address it did not send to \
                     (tunnel.encapsulation names the same fault)"
                ),
                fix: format!("on the director: ipvsadm {fix} (tunnel mode)"),
            };
        }
        Explained {
            summary: format!(
                "{n_of} answered connections from {name} got replies from {from}, not from the VIP"
            ),
            host: Some(name.to_string()),
            likely_cause: if udp {
                "a UDP service bound to 0.0.0.0 answers from the address of the outgoing route \
                 (the real server's own address); the client drops replies from an address it \
                 did not send to"
                    .into()
            } else {
                "a source NAT (masquerade) rule on the real server or on its way rewrites the \
                 replies' source"
                    .into()
            },
            fix: if udp {
                format!(
                    "on {name}: bind the service to the VIP (or use IP_PKTINFO to answer from \
                     the address the request came to)"
                )
            } else {
                let tables = if ctx.vip_is_v6() {
                    "ip6tables"
                } else {
                    "iptables"
                };
                format!(
                    "on {name}: {tables} -t nat -S; remove the SNAT/MASQUERADE rule for replies \
                     from the VIP"
                )
            },
        }
    });
    CheckResult::judged(
        SOURCE,
        total,
        "no connection was answered in these captures: nothing to judge",
        format!("all {total} answered connections got replies from VIP:port"),
        findings,
    )
}

/// `reply.direct`, fed one connection at a time.
#[derive(Default)]
pub struct Direct {
    by_rs: ByServer,
}

impl Direct {
    pub fn observe(&mut self, ctx: &Context, conn: &Connection, class: &Class) {
        let by_rs = &mut self.by_rs;
        // The way of a reply shows where it leaves the real server (its destination MAC) or
        // at the director (which it must never cross); a client alone cannot tell.
        let judged = ctx
            .legs_at(conn, Role::RealServer)
            .any(|l| l.reply.is_some())
            || ctx.legs_at(conn, Role::Director).next().is_some();
        if !judged {
            return;
        }
        by_rs.count(class.real_server);
        let hit = conn.evidence().find(|e| {
            matches!(
                e.kind,
                EvidenceKind::ReplyToDirectorMac | EvidenceKind::ReplyAtDirector
            )
        });
        if let Some(e) = hit {
            by_rs.hit(class.real_server, conn, || {
                Some(ctx.packet(&e.first, e.detail.clone()))
            });
        }
    }

    pub fn finish(self, ctx: &Context) -> CheckResult {
        if !ctx.has_role(Role::RealServer) && !ctx.has_role(Role::Director) {
            return CheckResult::skip(
                DIRECT,
                "no capture from a real server or the director: the replies' way cannot be seen",
            );
        }
        report_direct(ctx, self.by_rs)
    }
}

fn report_direct(ctx: &Context, by_rs: ByServer) -> CheckResult {
    let total: usize = by_rs.total.values().sum();
    let findings = by_rs.findings(ctx, DIRECT, |_, name, n_of, _| Explained {
        summary: format!(
            "{n_of} answered connections from {name} sent their replies through the director"
        ),
        host: Some(name.to_string()),
        likely_cause: "the real server's route to the clients (its default gateway) is the \
                       director; the director drops replies from its own VIP, so the client \
                       retransmits"
            .into(),
        fix: format!(
            "on {name}: route replies through the real gateway, not the director \
             ({ip} route replace default via GATEWAY); in TUN mode the director sees only \
             inbound traffic",
            ip = if ctx.vip_is_v6() { "ip -6" } else { "ip" }
        ),
    });
    CheckResult::judged(
        DIRECT,
        total,
        "no answered connection was seen at a real server or at the director: the replies' \
         way is not in these captures",
        format!("no reply of {total} connections went through the director"),
        findings,
    )
}
