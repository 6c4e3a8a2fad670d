//! `arp.vip`: only the director answers (or announces) ARP for a VIP, or, for an IPv6 VIP,
//! neighbour discovery: a Neighbor Advertisement is IPv6's ARP reply, and a real server that
//! sends one for the VIP draws the clients' packets to itself just the same.

use std::collections::BTreeMap;

use super::{CheckResult, Context, Finding, Status, MAX_EVIDENCE};
use crate::topology::{ArpObservation, MacAddr};

pub const ID: &str = "arp.vip";

pub fn vip(ctx: &Context) -> CheckResult {
    let topo = &ctx.analysis.topology;
    let claims: Vec<&ArpObservation> = topo.arp.iter().filter(|a| a.about_vip).collect();
    if claims.is_empty() {
        let any_arp = !topo.arp.is_empty();
        return CheckResult::skip(
            ID,
            if any_arp {
                "no ARP packet or neighbour advertisement with a VIP as sender address in the \
                 captures"
            } else {
                "no ARP or neighbour discovery traffic in the captures (raw IP captures or warm \
                 neighbour caches)"
            },
        );
    }
    let director_macs = ctx.director_macs();
    if director_macs.is_empty() {
        // Without the director's MAC, a single claimant is most likely the director itself;
        // several claimants for one VIP are a conflict whoever the director is.
        let mut by_vip: BTreeMap<_, Vec<&ArpObservation>> = BTreeMap::new();
        for c in &claims {
            by_vip.entry(c.sender_ip).or_default().push(c);
        }
        let mut findings = Vec::new();
        for (vip, list) in by_vip {
            let macs: Vec<MacAddr> = {
                let mut m: Vec<MacAddr> = list.iter().map(|c| c.sender_mac).collect();
                m.sort();
                m.dedup();
                m
            };
            if macs.len() > 1 {
                let nd = list.iter().all(|c| c.nd);
                findings.push(Finding {
                    snapshot: Vec::new(),
                    check: ID,
                    severity: Status::Fail,
                    summary: format!(
                        "{} different MACs claim the VIP {vip} in {}: {}",
                        macs.len(),
                        protocol(nd),
                        macs.iter()
                            .map(|m| m.to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    host: None,
                    count: macs.len() as u64,
                    out_of: None,
                    evidence: list
                        .iter()
                        .take(MAX_EVIDENCE)
                        .map(|c| ctx.packet(&c.first, describe(c)))
                        .collect(),
                    display_filter: Some(claims_filter(nd, None, &vip.to_string())),
                    likely_cause: if nd {
                        "a real server answers neighbour solicitations for the VIP (it holds the \
                         VIP on an interface facing the clients, not only on ip6tnl0)"
                            .into()
                    } else {
                        "a real server answers ARP for the VIP (arptables rules or \
                         arp_ignore/arp_announce missing there)"
                            .into()
                    },
                    fix: fix_text(nd, &vip.to_string(), "each real server"),
                });
            }
        }
        return CheckResult::from_findings(
            ID,
            format!(
                "one MAC claims each VIP in {} (the director's MAC is not known from these \
                 captures, so it is taken to be that one)",
                protocol_of(&claims)
            ),
            findings,
        );
    }
    let mut by_mac: BTreeMap<MacAddr, Vec<&ArpObservation>> = BTreeMap::new();
    for c in claims
        .iter()
        .filter(|c| !director_macs.contains(&c.sender_mac))
    {
        by_mac.entry(c.sender_mac).or_default().push(c);
    }
    let mut findings = Vec::new();
    for (mac, list) in by_mac {
        let host = match topo.real_server_by_mac(mac) {
            Some(addr) => format!("{addr} ({mac})"),
            // A capture taken on that host names it better than the MAC alone.
            None => match topo.vantages.iter().find(|v| v.local_mac == Some(mac)) {
                Some(v) => ctx.vantage_host(v.id),
                None => format!("the host with MAC {mac}"),
            },
        };
        let vips: Vec<String> = {
            let mut v: Vec<String> = list.iter().map(|c| c.sender_ip.to_string()).collect();
            v.dedup();
            v
        };
        // The same ARP packet is seen in every capture on the segment: count each statement
        // (operation, VIP) as often as the capture that saw it most, not once per capture.
        let mut most: BTreeMap<(&str, std::net::IpAddr), u64> = BTreeMap::new();
        for c in &list {
            let n = most.entry((c.operation, c.sender_ip)).or_default();
            *n = (*n).max(c.count);
        }
        let packets: u64 = most.values().sum();
        let kinds: Vec<&str> = {
            let mut k: Vec<&str> = list.iter().map(|c| c.operation).collect();
            k.sort();
            k.dedup();
            k
        };
        let nd = list.iter().all(|c| c.nd);
        let summary = if nd {
            format!(
                "{host} sent {packets} neighbour discovery {} claiming the VIP {}",
                if packets == 1 { "message" } else { "messages" },
                vips.join(", ")
            )
        } else {
            format!(
                "{host} sent {packets} ARP {} with the VIP {} as sender address",
                if packets == 1 { "packet" } else { "packets" },
                vips.join(", ")
            )
        };
        findings.push(Finding {
            snapshot: Vec::new(),
            check: ID,
            severity: Status::Fail,
            summary: summary + &format!(" ({})", kinds.join(", ")),
            host: Some(host.clone()),
            count: packets,
            out_of: None,
            evidence: list
                .iter()
                .take(MAX_EVIDENCE)
                .map(|c| ctx.packet(&c.first, describe(c)))
                .collect(),
            display_filter: Some(claims_filter(nd, Some(mac), &vips[0])),
            likely_cause: if nd {
                "that host holds the VIP on an interface facing the clients (eth0 or lo, not \
                 only ip6tnl0) and answers neighbour solicitations for it; clients that learn \
                 its MAC bypass the director"
                    .into()
            } else {
                "that host holds the VIP (on tunl0 or lo) and answers ARP for it: arptables \
                 rules, or arp_ignore/arp_announce, are missing there; clients that learn its \
                 MAC bypass the director"
                    .into()
            },
            fix: fix_text(nd, &vips[0], &host),
        });
    }
    // Two directors' MACs claiming the VIP one after the other is a keepalived pair's
    // failover (each announces the VIP when it becomes master), not a conflict.
    let mut firsts: BTreeMap<MacAddr, i64> = BTreeMap::new();
    for c in claims
        .iter()
        .filter(|c| director_macs.contains(&c.sender_mac))
    {
        let t = firsts.entry(c.sender_mac).or_insert(c.first.ts_ns);
        *t = (*t).min(c.first.ts_ns);
    }
    let pass = if firsts.len() > 1 {
        let mut order: Vec<(i64, MacAddr)> = firsts.into_iter().map(|(m, t)| (t, m)).collect();
        order.sort();
        format!(
            "only directors' MACs claim the VIP in {}, one after the other ({}): a failover \
             between directors (see failover), not a conflict",
            protocol_of(&claims),
            order
                .iter()
                .map(|(t, m)| format!("{m} from {}", crate::time::time_of_day(*t)))
                .collect::<Vec<_>>()
                .join(", then ")
        )
    } else {
        format!(
            "only the director's MAC ({}) claims the VIP in {}",
            director_macs
                .iter()
                .map(|m| m.to_string())
                .collect::<Vec<_>>()
                .join(", "),
            protocol_of(&claims)
        )
    };
    CheckResult::from_findings(ID, pass, findings)
}

/// "ARP", "neighbour discovery", or both, as the claims were made.
fn protocol_of(claims: &[&ArpObservation]) -> &'static str {
    match (claims.iter().any(|c| !c.nd), claims.iter().any(|c| c.nd)) {
        (true, true) => "ARP and neighbour discovery",
        (false, true) => protocol(true),
        _ => protocol(false),
    }
}

fn protocol(nd: bool) -> &'static str {
    if nd {
        "neighbour discovery"
    } else {
        "ARP"
    }
}

/// A display filter for the claims of the VIP (by `mac` when given).
fn claims_filter(nd: bool, mac: Option<MacAddr>, vip: &str) -> String {
    match (nd, mac) {
        (true, Some(mac)) => format!("eth.src == {mac} && icmpv6.nd.na.target_address == {vip}"),
        (true, None) => format!("icmpv6.nd.na.target_address == {vip}"),
        (false, Some(mac)) => format!("arp.src.hw_mac == {mac} && arp.src.proto_ipv4 == {vip}"),
        (false, None) => format!("arp.src.proto_ipv4 == {vip}"),
    }
}

fn describe(c: &ArpObservation) -> String {
    if c.nd {
        let what = match c.operation {
            "request" => "Neighbor Solicitation from",
            _ => "Neighbor Advertisement",
        };
        return format!(
            "{what} {} is at {} ({})",
            c.sender_ip,
            c.sender_mac,
            crate::checks::verdict::plural(c.count as usize, "packet", "packets")
        );
    }
    format!(
        "ARP {} {} is-at {} ({})",
        c.operation,
        c.sender_ip,
        c.sender_mac,
        crate::checks::verdict::plural(c.count as usize, "packet", "packets")
    )
}

fn fix_text(nd: bool, vip: &str, host: &str) -> String {
    if nd {
        return format!(
            "on {host}: keep the VIP only on ip6tnl0 (ip -6 addr del {vip}/128 dev eth0, and \
             from lo if it is there; ip -6 addr add {vip}/128 dev ip6tnl0); then flush the \
             clients' neighbour caches (ip -6 neigh flush dev eth0)"
        );
    }
    format!(
        "on {host}: arptables -A INPUT -d {vip} -j DROP; arptables -A OUTPUT -s {vip} -j mangle \
         --mangle-ip-s <its own RIP> (or sysctl -w net.ipv4.conf.all.arp_ignore=1 and \
         net.ipv4.conf.all.arp_announce=2); then flush the clients' neighbour caches \
         (ip neigh flush dev eth0)"
    )
}
