//! `capture.read`: every capture was read to its end, on a link layer that is decoded.

use crate::checks::verdict::plural;
use crate::checks::{CheckResult, Context, Finding, Status};
use crate::decode::link::LinkType;

pub const ID: &str = "capture.read";

pub fn check(ctx: &Context) -> CheckResult {
    let captures = &ctx.analysis.captures;
    let mut findings = Vec::new();
    for c in captures {
        if let Some(error) = &c.error {
            findings.push(Finding {
                snapshot: Vec::new(),
                check: ID,
                severity: Status::Warn,
                summary: format!("{} could not be read at all", c.file),
                host: None,
                count: 1,
                out_of: Some(captures.len() as u64),
                evidence: Vec::new(),
                display_filter: None,
                likely_cause: error.clone(),
                fix:
                    "check the path and that the file is a pcap or pcapng capture (capinfos tells)"
                        .into(),
            });
        } else if !c.complete || !c.warnings.is_empty() {
            findings.push(Finding {
                snapshot: Vec::new(),
                check: ID,
                severity: Status::Warn,
                summary: format!(
                    "{} was not read cleanly to its end: {}",
                    c.file,
                    c.warnings
                        .first()
                        .map(String::as_str)
                        .unwrap_or("the reader stopped early")
                ),
                host: None,
                count: c.warnings.len().max(1) as u64,
                out_of: None,
                evidence: Vec::new(),
                display_filter: None,
                likely_cause: "the capture was cut short (tcpdump killed, disk full, copied while \
                               still being written) or is damaged; what came before the problem \
                               was analysed"
                    .into(),
                fix:
                    "stop tcpdump with Ctrl-C (SIGINT) before copying the file; re-capture if the \
                      missing part matters"
                        .into(),
            });
        }
    }
    findings.extend(undecoded_link_types(ctx));
    CheckResult::from_findings(
        ID,
        match captures.len() {
            1 => "the capture was read to its end".to_string(),
            n => format!("all {n} captures read to their end"),
        },
        findings,
    )
}

/// Interfaces whose frames were read but whose link layer is not one the decoder reads: read
/// to their end, and still nothing in them was checked. Saying so keeps "0 connections" from
/// looking like an empty capture.
fn undecoded_link_types(ctx: &Context) -> Vec<Finding> {
    ctx.analysis
        .topology
        .vantages
        .iter()
        .filter(|v| v.frames > 0 && LinkType::from_number(v.link_type).is_none())
        .map(|v| Finding {
            snapshot: Vec::new(),
            check: ID,
            severity: Status::Warn,
            summary: format!(
                "{}: {} of link type {} ({}), which lvscheck does not decode: nothing in them \
                 was checked",
                super::name(ctx, v.id),
                plural(v.frames as usize, "frame", "frames"),
                link_type_name(v.link_type),
                v.link_type
            ),
            host: None,
            count: v.frames,
            out_of: None,
            evidence: Vec::new(),
            display_filter: None,
            likely_cause: "the capture was taken on an interface whose frames are not Ethernet, \
                           Linux cooked (SLL, SLL2), raw IP or BSD loopback: a wireless monitor \
                           interface, NFLOG, a WAN link"
                .into(),
            fix: "capture on the host's Ethernet interface (tcpdump -i eth0), or on `any` \
                  (Linux cooked)"
                .into(),
        })
        .collect()
}

/// The LINKTYPE_ name of the link types people meet (tcpdump.org's list), for the report.
fn link_type_name(n: u32) -> &'static str {
    match n {
        8 | 50 | 51 => "SLIP/PPP",
        9 => "PPP",
        10 => "FDDI",
        104 => "Cisco HDLC",
        105 => "IEEE 802.11",
        107 => "Frame Relay",
        119 => "Prism",
        127 => "IEEE 802.11 radiotap",
        129 => "ARCNET (Linux)",
        143 => "DOCSIS",
        163 => "AVS 802.11",
        192 => "PPI",
        195 | 215 | 230 => "IEEE 802.15.4",
        227 => "SocketCAN",
        239 => "NFLOG",
        240 => "NetAnalyzer",
        258 => "PKTAP",
        271 => "Linux vsock",
        _ => "unknown",
    }
}
