//! `capture.filter`: a capture filter dropped the tunnelled packets or the replies.
//!
//! `tcpdump -i eth0 port 80` is how most people capture a web service, and on LVS-TUN it
//! drops exactly what matters: the director's forwarded copies and the requests arriving at
//! a real server are IP protocol 4, not TCP. What is left looks like a director that forwards
//! nothing and servers that answer requests they never got. The signs, each a contradiction
//! no working or broken deployment produces on its own:
//! - a director capture where connections to the VIP arrive and are answered (the client's
//!   ACK, replies in another capture) and not one tunnelled packet leaves;
//! - a real-server capture where replies from the VIP leave and no request, tunnelled or
//!   not, arrives;
//! - a client capture that shows its requests but no reply, for connections that were
//!   answered.
//!
//! pcapng files also name the filter (`if_filter`): it is quoted whenever the file has one.

use std::collections::BTreeMap;
use std::net::IpAddr;

use super::{described, name, named_filter, vip_text};
use crate::checks::classify::{Class, Forwarding};
use crate::checks::{Affected, CheckResult, Context, Explained, Finding, Status};
use crate::flows::Connection;
use crate::topology::{Role, Vantage, VantageId};

pub const ID: &str = "capture.filter";

/// What the connections show about the captures' filters, gathered as they pass.
#[derive(Debug, Default)]
pub struct Watch {
    /// Per director capture: connections that arrived in it.
    arrived: BTreeMap<VantageId, usize>,
    /// Per director capture: connections that arrived, were answered, and were not seen
    /// leaving (neither tunnelled nor sent on unwrapped).
    left_unseen: BTreeMap<VantageId, Affected>,
    /// Per client capture: its connections, and those answered of which it shows no reply.
    client_conns: BTreeMap<VantageId, usize>,
    replies_unseen: BTreeMap<VantageId, Affected>,
}

impl Watch {
    pub fn observe(&mut self, ctx: &Context, conn: &Connection, class: &Class) {
        if let Some(v) = class.director_vantage {
            *self.arrived.entry(v).or_default() += 1;
            if class.forwarding == Forwarding::LeftUnseen {
                let at = conn
                    .legs
                    .iter()
                    .find(|l| l.vantage == v)
                    .and_then(|l| l.request.as_ref())
                    .map(|r| r.first);
                self.left_unseen.entry(v).or_default().add(conn, || {
                    at.map(|f| ctx.packet(&f, "request to the VIP, answered, never seen leaving"))
                });
            }
        }
        for leg in ctx.legs_at(conn, Role::Client) {
            let Some(sent) = &leg.request else { continue };
            *self.client_conns.entry(leg.vantage).or_default() += 1;
            let no_reply = leg.reply.is_none() && leg.reply_other_source.is_none();
            if no_reply && class.answer.answered() {
                let at = sent.first;
                self.replies_unseen
                    .entry(leg.vantage)
                    .or_default()
                    .add(conn, || {
                        Some(ctx.packet(&at, "request, answered, no reply captured"))
                    });
            }
        }
    }
}

/// A capture a filter blinded.
pub struct Filtered {
    pub vantage: VantageId,
    /// What it hides from the deployment checks, naming the file; None when only replies
    /// are missing (the checks already judge answers from the client's ACK).
    pub blinds: Option<String>,
    pub finding: Finding,
}

fn src_field(a: IpAddr) -> &'static str {
    if a.is_ipv6() {
        "ipv6.src"
    } else {
        "ip.src"
    }
}

/// " (the file names its filter: `tcp port 80`)", or nothing.
fn filter_note(ctx: &Context, v: VantageId) -> String {
    named_filter(ctx, v)
        .map(|f| format!(" (the file names its filter: {f})"))
        .unwrap_or_default()
}

/// Every capture the evidence shows a filter blinded; without `watch` (before the
/// connections), only what the captures' own counts show.
pub fn filtered(ctx: &Context, watch: Option<&Watch>) -> Vec<Filtered> {
    let vip = vip_text(ctx);
    let mut out = Vec::new();
    for v in &ctx.analysis.topology.vantages {
        let found = match v.role {
            Role::RealServer => server_filtered(ctx, v, &vip),
            Role::Director => watch.and_then(|w| director_filtered(ctx, v, w, &vip)),
            Role::Client => watch.and_then(|w| client_filtered(ctx, v, w, &vip)),
            Role::Other => None,
        };
        out.extend(found);
    }
    out
}

fn server_filtered(ctx: &Context, v: &Vantage, vip: &str) -> Option<Filtered> {
    let p = &v.packets;
    if p.replies == 0 || p.requests > 0 || p.tunnel_frames > 0 {
        return None;
    }
    let who = described(ctx, v);
    let text = Explained {
        summary: format!(
            "{who}: {} packets from the VIP left and not one request arrived, tunnelled or not: \
             a capture filter dropped the requests{}",
            p.replies,
            filter_note(ctx, v.id)
        ),
        host: v.address.map(|a| ctx.host(a)),
        likely_cause: "the capture was taken with a filter that keeps only TCP to or from the \
                       service port (such as `tcp port 80`): the requests reach a real server \
                       inside IP-in-IP packets (IP protocol 4), which such a filter drops, while \
                       its replies are plain TCP and pass; the deployment is not at fault"
            .into(),
        fix: format!(
            "capture on the real server without a port filter: tcpdump -i eth0 -s 0 -w rs.pcap \
             'host {vip} or proto 4 or arp' (or no filter at all)"
        ),
    };
    Some(Filtered {
        vantage: v.id,
        blinds: Some(format!(
            "{} shows replies leaving and no request arriving: a capture filter dropped the \
             tunnelled requests (capture.filter)",
            name(ctx, v.id)
        )),
        finding: Finding {
            snapshot: Vec::new(),
            check: ID,
            severity: Status::Warn,
            summary: text.summary,
            host: text.host,
            count: p.replies,
            out_of: None,
            evidence: p
                .first_reply
                .map(|f| ctx.packet(&f, "reply from the VIP leaving; no request arrived"))
                .into_iter()
                .collect(),
            display_filter: ctx
                .analysis
                .topology
                .vips
                .first()
                .map(|a| format!("{} == {}", src_field(a.addr), a.addr)),
            likely_cause: text.likely_cause,
            fix: text.fix,
        },
    })
}

fn director_filtered(ctx: &Context, v: &Vantage, watch: &Watch, vip: &str) -> Option<Filtered> {
    let unseen = watch.left_unseen.get(&v.id)?;
    if v.packets.tunnel_frames > 0 || unseen.is_empty() {
        return None;
    }
    let arrived = watch.arrived.get(&v.id).copied().unwrap_or(unseen.len());
    let text = Explained {
        summary: format!(
            "{}: {} connections to the VIP arrived and were answered, and not one tunnelled \
             packet left: a capture filter dropped the forwarded packets{}",
            described(ctx, v),
            crate::checks::of(unseen.len(), arrived),
            filter_note(ctx, v.id)
        ),
        host: None,
        likely_cause: "the capture was taken with a filter that keeps only TCP to the service \
                       port (such as `tcp port 80`): the director forwards each request inside \
                       an IP-in-IP packet (IP protocol 4), which such a filter drops; or, on a \
                       director with two interfaces, on the one where the requests arrive while \
                       the tunnel leaves by the other. The connections were answered, so they \
                       were forwarded: the deployment is not at fault"
            .into(),
        fix: format!(
            "capture on the director's interface towards the real servers (or -i any) without \
             a port filter: tcpdump -i eth0 -s 0 -w director.pcap 'host {vip} or proto 4 or \
             arp' (or no filter at all)"
        ),
    };
    Some(Filtered {
        vantage: v.id,
        blinds: Some(format!(
            "{} holds no tunnelled packet although answered connections arrived in it: the \
             forwarded copies are not in the capture (capture.filter)",
            name(ctx, v.id)
        )),
        finding: unseen.clone().finding(ID, Status::Warn, arrived, text),
    })
}

fn client_filtered(ctx: &Context, v: &Vantage, watch: &Watch, vip: &str) -> Option<Filtered> {
    let unseen = watch.replies_unseen.get(&v.id)?;
    if v.packets.replies > 0 || unseen.is_empty() {
        return None;
    }
    let total = watch
        .client_conns
        .get(&v.id)
        .copied()
        .unwrap_or(unseen.len());
    let text = Explained {
        summary: format!(
            "{}: no packet from the VIP in the capture, though {} of its {total} connections \
             were answered: a capture filter dropped the replies{}",
            described(ctx, v),
            unseen.len(),
            filter_note(ctx, v.id)
        ),
        host: None,
        likely_cause: "a filter on the destination (such as `dst port 80` or `dst host VIP`) \
                       keeps what the client sends and drops what comes back, or the replies \
                       reach this host on another interface; the client's ACKs or another \
                       capture show that they were answered"
            .into(),
        fix: format!(
            "capture on the client without a direction or port filter: tcpdump -i eth0 -s 0 -w \
             client.pcap 'host {vip}'"
        ),
    };
    Some(Filtered {
        vantage: v.id,
        blinds: None,
        finding: unseen.clone().finding(ID, Status::Warn, total, text),
    })
}

/// The check: every filtered capture, and (informational) every filter a file names.
pub fn check(ctx: &Context, watch: &Watch) -> CheckResult {
    let mut findings: Vec<Finding> = Vec::new();
    let mut reported = Vec::new();
    for f in filtered(ctx, Some(watch)) {
        reported.push(f.vantage);
        findings.push(f.finding);
    }
    for v in &ctx.analysis.topology.vantages {
        let Some(filter) = named_filter(ctx, v.id).filter(|_| !reported.contains(&v.id)) else {
            continue;
        };
        findings.push(Finding {
            snapshot: Vec::new(),
            check: ID,
            severity: Status::Info,
            summary: format!(
                "{} was taken with the capture filter {filter}",
                described(ctx, v)
            ),
            host: None,
            count: 1,
            out_of: None,
            evidence: Vec::new(),
            display_filter: None,
            likely_cause: "the filter given to tcpdump or dumpcap when capturing, as the file \
                           records it (pcapng if_filter): what it does not match is not in the \
                           capture"
                .into(),
            fix: format!(
                "nothing, if it keeps IP protocol 4, ARP and the replies (for example 'host {} \
                 or proto 4 or arp'); else capture without it",
                vip_text(ctx)
            ),
        });
    }
    CheckResult::from_findings(
        ID,
        "no capture shows signs of a filter that dropped the tunnelled packets or the replies",
        findings,
    )
}
