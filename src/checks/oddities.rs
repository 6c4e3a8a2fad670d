//! `oddities`: packets about the deployment that the model could not place
//! ([`crate::flows::oddity`]), like Zeek's `weird.log`: one finding per name, with its count,
//! the first packet at each capture that saw one, what it means, the likely cause and the fix.
//! Warns for the names that may hide a fault (a host outside the cluster answering as the VIP,
//! replies rewritten on their way), informs for the others.

use super::{CheckResult, Context, Finding, PacketRef, Status, MAX_EVIDENCE};
use crate::flows::oddity::{Oddity, OddityCount, Sender};
use crate::words::plural;

pub const ID: &str = "oddities";

pub fn check(ctx: &Context) -> CheckResult {
    let a = ctx.analysis;
    if a.connection_count == 0 && a.oddities.is_empty() {
        return CheckResult::skip(ID, "no traffic to or from a VIP in the captures");
    }
    let findings: Vec<Finding> = a.oddities.iter().map(|o| finding(ctx, o)).collect();
    if findings.is_empty() {
        let macs = if ctx.has_role(crate::topology::Role::Director) {
            ""
        } else {
            " (packets from a VIP not judged by their MAC: no director capture shows the client side's)"
        };
        return CheckResult::pass(
            ID,
            format!("every packet to or from a VIP found its place in a connection{macs}"),
        );
    }
    let mut r = CheckResult::from_findings(ID, "", findings);
    let names: Vec<String> = a
        .oddities
        .iter()
        .map(|o| format!("{} {}", o.name, o.count))
        .collect();
    let total: u64 = a.oddities.iter().map(|o| o.count).sum();
    r.reason = format!(
        "{total} packet{} about the deployment fit nowhere: {}",
        if total == 1 { "" } else { "s" },
        names.join(", ")
    );
    r
}

/// "24 packets at 1 capture".
pub fn counted(packets: u64, captures: usize) -> String {
    format!(
        "{} at {}",
        plural(packets, "packet", "packets"),
        plural(captures as u64, "capture", "captures")
    )
}

/// The first packet of the kind at each capture that saw one, in order of vantage point.
pub fn evidence(ctx: &Context, o: &OddityCount) -> Vec<PacketRef> {
    o.per_vantage
        .iter()
        .take(MAX_EVIDENCE)
        .map(|at| {
            let mut what = format!("first {} here ({} of {})", o.name, at.count, o.count);
            if let Some(s) = at.first_sender {
                what.push_str(&format!(", from {s}"));
            }
            ctx.packet(&at.first, what)
        })
        .collect()
}

fn finding(ctx: &Context, o: &OddityCount) -> Finding {
    let severity = if o.kind.may_hide_fault() {
        Status::Warn
    } else {
        Status::Info
    };
    let summary = format!(
        "{}: {}, each {}",
        o.name,
        counted(o.count, o.per_vantage.len()),
        o.meaning
    );
    let host = o.first_sender.map(|s| match s.mac {
        Some(_) => s.to_string(),
        None => ctx.host(s.addr),
    });
    Finding {
        check: ID,
        severity,
        summary,
        host,
        count: o.count,
        out_of: None,
        evidence: evidence(ctx, o),
        display_filter: display_filter(ctx, o),
        snapshot: Vec::new(),
        likely_cause: o.likely_cause.to_string(),
        fix: fix(o),
    }
}

/// The fix in this deployment's terms: the MAC to look for and the VIP to remove, where the
/// first packet names them.
fn fix(o: &OddityCount) -> String {
    match (o.kind, o.first_sender) {
        (
            Oddity::VipFromUnknownMac,
            Some(Sender {
                addr,
                mac: Some(mac),
            }),
        ) => o
            .fix
            .replace("with that MAC", &format!("with MAC {mac}"))
            .replace("VIP dev lo", &format!("{addr} dev lo"))
            .replace("flush to VIP", &format!("flush to {addr}")),
        _ => o.fix.to_string(),
    }
}

/// A Wireshark filter for the packets of the kind, where one can say them.
fn display_filter(ctx: &Context, o: &OddityCount) -> Option<String> {
    let t = &ctx.analysis.topology;
    let family = if t.vips.first()?.addr.is_ipv6() {
        "ipv6"
    } else {
        "ip"
    };
    let vips: Vec<String> = t.vips.iter().map(|v| v.addr.to_string()).collect();
    let vips = vips.join(", ");
    match o.kind {
        Oddity::VipFromUnknownMac => {
            let mut macs: Vec<String> = t
                .directors
                .iter()
                .chain(&t.real_servers)
                .flat_map(|h| h.macs.iter())
                .chain(&t.client_side_macs)
                .map(|m| m.to_string())
                .collect();
            macs.sort();
            macs.dedup();
            // Commas between the MACs: tshark 4.0 reads a space there as part of the address.
            Some(format!(
                "{family}.src in {{{vips}}} && !(eth.src in {{{}}})",
                macs.join(", ")
            ))
        }
        Oddity::ReplyFromUnknownSource => o.first_sender.map(|s| {
            let f = if s.addr.is_ipv6() { "ipv6" } else { "ip" };
            format!("{f}.src == {}", s.addr)
        }),
        Oddity::LatePacket => None,
    }
}
