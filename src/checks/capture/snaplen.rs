//! `capture.snaplen`: frames cut before the headers the checks read.
//!
//! A snap length is harmless as long as it keeps the headers: the checks never read payload.
//! On LVS-TUN the headers are longer than people expect: an IP-in-IP request on Ethernet
//! needs 14 + 20 + 20 + 20 = 74 bytes before its TCP header is whole, so `tcpdump -s 64` or
//! `-s 68` keeps every plain packet readable and no tunnelled one. Such a capture shows
//! tunnelled frames whose connection cannot be told, and, unless said here, a director that
//! "forwards nothing".

use super::{described, interface, name};
use crate::capture::{Format, InterfaceInfo};
use crate::checks::{CheckResult, Context, Finding, Status};
use crate::decode::LinkType;
use crate::topology::{Vantage, VantageId};

pub const ID: &str = "capture.snaplen";

/// The snap length a vantage point was captured with, in words: the length frames were cut
/// at, and what the file header says when it says something else.
fn snaplen_text(ctx: &Context, v: &Vantage) -> String {
    let Some(iface) = interface(ctx, v.id) else {
        return "a snap length".into();
    };
    let header = match ctx
        .analysis
        .captures
        .iter()
        .find(|c| c.capture == v.id.capture)
        .and_then(|c| c.summary.as_ref())
        .map(|s| s.format)
    {
        Some(Format::Pcapng) => "interface description",
        _ => "file header",
    };
    match iface.cut_at {
        Some(at) if iface.snaplen == at => format!("a snap length of {at} bytes"),
        Some(at) => format!(
            "a snap length of {at} bytes (the longest cut frame; the {header} says {})",
            iface.snaplen
        ),
        None => format!("a snap length of {} bytes", iface.snaplen),
    }
}

/// Why the tunnelled packets of a vantage point cannot be read, when the snap length cut them.
pub fn hides_tunnels(ctx: &Context, v: &Vantage) -> Option<String> {
    let p = &v.packets;
    (p.tunnel_cut > 0).then(|| {
        format!(
            "{}: {} cut the inner headers of {} of its {} tunnelled frames (capture.snaplen)",
            name(ctx, v.id),
            snaplen_text(ctx, v),
            p.tunnel_cut,
            p.tunnel_frames
        )
    })
}

fn cut_finding(ctx: &Context, v: &Vantage) -> Finding {
    let p = &v.packets;
    let snaplen = snaplen_text(ctx, v);
    let mut what = Vec::new();
    if p.tunnel_cut > 0 {
        what.push(format!(
            "{} of {} tunnelled frames were cut before their inner TCP/UDP header: which \
             connection each carried cannot be read",
            p.tunnel_cut, p.tunnel_frames
        ));
    }
    if p.plain_cut > 0 {
        what.push(format!(
            "{} frames were cut inside their TCP/UDP header: their connections cannot be \
             followed",
            p.plain_cut
        ));
    }
    Finding {
        snapshot: Vec::new(),
        check: ID,
        severity: Status::Warn,
        summary: format!("{}, by {snaplen}: {}", described(ctx, v), what.join("; ")),
        host: None,
        count: p.cut(),
        out_of: Some(v.frames),
        evidence: p
            .cut_examples
            .iter()
            .map(|f| ctx.packet(f, "frame cut before its (inner) TCP/UDP header"))
            .collect(),
        display_filter: Some("frame.cap_len < frame.len".into()),
        likely_cause: "the capture was taken with a snap length (tcpdump -s, dumpcap -s, editcap \
                       -s) shorter than the headers: a tunnelled request on Ethernet needs 14 \
                       (Ethernet) + 20 (outer IPv4) + 20 (inner IPv4) + 20 (TCP) = 74 bytes \
                       before its payload, more with VLAN tags, IPv6 or GRE; the deployment is \
                       not at fault"
            .into(),
        fix: "capture whole packets: tcpdump -i eth0 -s 0 -w FILE (tcpdump before 4.0 kept \
              68 bytes unless told otherwise)"
            .into(),
    }
}

/// Where the IP header of a frame ends at the earliest on this link: a snap length below it
/// leaves no frame readable.
fn ip_header_end(link_type: u32) -> Option<u32> {
    LinkType::from_number(link_type).map(|l| (l.header_len() + 20) as u32)
}

/// An interface with frames cut but no header the checks read found cut: cut before the IP
/// header (nothing readable), or after the headers (payload only).
fn after_or_before_ip(ctx: &Context, v: VantageId, iface: &InterfaceInfo) -> Finding {
    let at = iface.cut_at.unwrap_or(0);
    let before_ip = ip_header_end(iface.link_type).is_some_and(|end| at < end);
    let file = name(ctx, v);
    let frames = ctx.analysis.topology.vantage(v).map_or(0, |x| x.frames);
    let (severity, summary, cause, fix) = if before_ip {
        (
            Status::Warn,
            format!(
                "{file}: {} of {frames} frames were cut at {at} bytes or less, before their IP \
                 header was whole: no connection can be read from them",
                iface.cut_frames
            ),
            "the capture was taken with a snap length shorter than the link header and an IP \
             header; the deployment is not at fault",
            "capture whole packets: tcpdump -i eth0 -s 0 -w FILE",
        )
    } else {
        (
            Status::Info,
            format!(
                "{file}: {} of {frames} frames were cut by the snap length ({at} bytes) after \
                 their headers",
                iface.cut_frames
            ),
            "a snap length shorter than the largest packets: only payload is missing, and the \
             checks read headers",
            "nothing needed; -s 0 keeps whole packets",
        )
    };
    Finding {
        snapshot: Vec::new(),
        check: ID,
        severity,
        summary,
        host: None,
        count: iface.cut_frames,
        out_of: Some(frames),
        evidence: Vec::new(),
        display_filter: Some("frame.cap_len < frame.len".into()),
        likely_cause: cause.into(),
        fix: fix.into(),
    }
}

/// Whether any capture has frames cut before the headers the checks read: then a connection
/// missing from the captures may be in them.
pub fn headers_cut_anywhere(ctx: &Context) -> bool {
    let cut_vantage = ctx
        .analysis
        .topology
        .vantages
        .iter()
        .any(|v| v.packets.cut() > 0);
    let cut_before_ip = ctx
        .analysis
        .captures
        .iter()
        .filter_map(|c| c.summary.as_ref())
        .flat_map(|s| s.interfaces.iter())
        .any(|i| {
            i.cut_at
                .zip(ip_header_end(i.link_type))
                .is_some_and(|(at, end)| at < end)
        });
    cut_vantage || cut_before_ip
}

pub fn check(ctx: &Context) -> CheckResult {
    let mut findings = Vec::new();
    for v in &ctx.analysis.topology.vantages {
        if v.packets.cut() > 0 {
            findings.push(cut_finding(ctx, v));
        }
    }
    // Frames the decoder could not count: cut before their IP header was whole (the snap
    // length is shorter than the link header and 20 bytes). Else, frames cut after their
    // headers lose only payload, which no check reads: worth knowing, not a problem.
    for c in &ctx.analysis.captures {
        let Some(s) = c.summary.as_ref() else {
            continue;
        };
        for iface in s.interfaces.iter().filter(|i| i.cut_frames > 0) {
            let v = VantageId {
                capture: c.capture,
                interface: iface.id,
            };
            let vantage = ctx.analysis.topology.vantage(v);
            if vantage.is_some_and(|v| v.packets.cut() > 0) {
                continue;
            }
            findings.push(after_or_before_ip(ctx, v, iface));
        }
    }
    CheckResult::from_findings(
        ID,
        "no frame was cut before the headers the checks read",
        findings,
    )
}
