//! `mtu`: the tunnel costs 20 bytes; warn when the path shows it (ICMP fragmentation needed,
//! packet too big).

use std::collections::BTreeMap;

use super::{connections_filter, CheckResult, Context, Finding, PacketRef, Status, MAX_EVIDENCE};
use crate::flows::{Connection, EvidenceKind};

pub const ID: &str = "mtu";

pub fn check(ctx: &Context) -> CheckResult {
    if ctx.analysis.connections.is_empty() {
        return CheckResult::skip(ID, "no connection to the VIP in the captures");
    }
    // Grouped by the ICMP message's text (it names the sender and the MTU).
    let mut hits: BTreeMap<String, (Vec<&Connection>, Vec<PacketRef>, u64)> = BTreeMap::new();
    for conn in &ctx.analysis.connections {
        for e in conn
            .evidence()
            .filter(|e| e.kind == EvidenceKind::IcmpFragNeeded)
        {
            let (conns, examples, packets) = hits.entry(e.detail.clone()).or_default();
            if !conns.iter().any(|c| c.id == conn.id) {
                conns.push(conn);
            }
            *packets += e.count;
            if examples.len() < MAX_EVIDENCE {
                examples.push(ctx.packet(&e.first, e.detail.clone()));
            }
        }
    }
    let total = ctx.analysis.connections.len();
    let mut findings = Vec::new();
    for (detail, (conns, examples, packets)) in hits {
        findings.push(Finding {
            check: ID,
            severity: Status::Warn,
            summary: format!(
                "{packets} ICMP fragmentation-needed messages for {} of {total} connections: {detail}",
                conns.len()
            ),
            host: None,
            count: conns.len() as u64,
            out_of: Some(total as u64),
            evidence: examples,
            display_filter: connections_filter(conns.iter().copied())
                .map(|f| format!("(icmp.type == 3 && icmp.code == 4) || icmpv6.type == 2 || ({f})")),
            likely_cause: "the IP-in-IP tunnel adds 20 bytes: a full-size client segment (1500 \
                           bytes) no longer fits the director-to-server path, so the director \
                           asks the client to send smaller packets and the first attempt is lost"
                .into(),
            fix: "clamp the MSS to 1440 for traffic to the VIP (on the clients' router or the \
                  director: iptables -t mangle -A PREROUTING -p tcp -d VIP --tcp-flags SYN,RST \
                  SYN -j TCPMSS --set-mss 1440), or raise the MTU of the director-to-server path \
                  to 1520 (ip link set eth0 mtu 1520 on the director and the real servers)"
                .into(),
        });
    }
    CheckResult::from_findings(
        ID,
        "no ICMP fragmentation-needed about the service's connections",
        findings,
    )
}
