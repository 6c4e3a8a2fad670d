//! `capture.drops`: packets the capturing host dropped, as pcapng interface statistics count
//! them (`isb_ifdrop`: by the interface or its driver, `isb_osdrop`: by the operating system).
//!
//! A packet dropped by the capture is absent from the file however the deployment behaved, so
//! a deployment check must not conclude from its absence ([`super::Sight`]). pcap files do not
//! record drops at all: then this check is skipped rather than passed, since nothing says none
//! were lost (tcpdump prints "N packets dropped by kernel" when it stops).

use super::{described, interface};
use crate::checks::{CheckResult, Context, Finding, Status};
use crate::topology::VantageId;

pub const ID: &str = "capture.drops";

/// Packets the capture says it dropped on this vantage point's interface.
pub fn dropped(ctx: &Context, v: VantageId) -> u64 {
    interface(ctx, v).map_or(0, |i| {
        i.if_drop
            .unwrap_or(0)
            .saturating_add(i.os_drop.unwrap_or(0))
    })
}

pub fn check(ctx: &Context) -> CheckResult {
    let vantages = &ctx.analysis.topology.vantages;
    let mut recorded = 0;
    let mut findings = Vec::new();
    for v in vantages {
        let Some(iface) = interface(ctx, v.id) else {
            continue;
        };
        if iface.if_drop.is_none() && iface.os_drop.is_none() {
            continue;
        }
        recorded += 1;
        let total = dropped(ctx, v.id);
        if total == 0 {
            continue;
        }
        let part = |n: Option<u64>, what: &str| n.map(|n| format!("{n} {what}"));
        let parts: Vec<String> = [
            part(iface.if_drop, "by the interface (isb_ifdrop)"),
            part(iface.os_drop, "by the operating system (isb_osdrop)"),
        ]
        .into_iter()
        .flatten()
        .collect();
        findings.push(Finding {
            snapshot: Vec::new(),
            check: ID,
            severity: Status::Warn,
            summary: format!(
                "{}: the capture dropped {total} packets ({}); a connection whose packets are \
                 missing from it may have been among them",
                described(ctx, v),
                parts.join(", ")
            ),
            host: None,
            count: total,
            out_of: Some(v.frames.saturating_add(total)),
            evidence: Vec::new(),
            display_filter: None,
            likely_cause: "the capturing host could not keep up: its capture buffer filled (a \
                           busy link, a slow disk, no capture filter on a busy host); the \
                           counts come from the file's interface statistics block"
                .into(),
            fix: format!(
                "capture again with a larger buffer (tcpdump -B 65536, dumpcap -B 64), to a \
                 faster disk or tmpfs, with a filter that keeps only the service's packets \
                 ('host {} or proto 4 or arp'), or with -s 256 to write less",
                super::vip_text(ctx)
            ),
        });
    }
    if recorded == 0 {
        return CheckResult::skip(
            ID,
            "no capture records drop counters (pcap files never do, pcapng files only in \
             interface statistics blocks; tcpdump prints \"packets dropped by kernel\" when it \
             stops)",
        );
    }
    let unrecorded = vantages.len() - recorded;
    let pass = if unrecorded == 0 {
        format!("the {recorded} interfaces captured dropped no packet")
    } else {
        format!(
            "the {recorded} interfaces that record drop counters dropped no packet ({unrecorded} \
             do not record them)"
        )
    };
    CheckResult::from_findings(ID, pass, findings)
}
