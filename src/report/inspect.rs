//! Terminal output of `inspect`: one block per capture, one column per interface listed (those
//! that carried frames, and a few that did not: the rest are counted).

use super::style::Term;
use crate::escape::{printable, terminal as esc};
use comfy_table::{Cell, CellAlignment, Table};

use crate::capture::{CaptureSummary, Format};
use crate::decode::LayerCounts;
use crate::survey::{CaptureSurvey, ReadResult};
use crate::time::{rfc3339_ns, seconds};

/// Human name of a LINKTYPE number.
pub fn link_type_name(link_type: u32) -> String {
    let name = match link_type {
        0 => "BSD null/loopback",
        1 => "Ethernet",
        12 | 14 | 101 => "raw IP",
        108 => "OpenBSD loopback",
        113 => "Linux cooked (SLL)",
        228 => "raw IPv4",
        229 => "raw IPv6",
        276 => "Linux cooked v2 (SLL2)",
        _ => "unknown",
    };
    format!("{name} ({link_type})")
}

fn format_name(summary: &CaptureSummary) -> String {
    let base = match summary.format {
        Format::PcapMicro => "pcap, microsecond timestamps",
        Format::PcapNano => "pcap, nanosecond timestamps",
        Format::Pcapng => "pcapng",
    };
    let mut text = base.to_string();
    if summary.format == Format::Pcapng && summary.sections > 1 {
        text.push_str(&format!(", {} sections", summary.sections));
    }
    if summary.gzip {
        text.push_str(", gzip-compressed");
    }
    text
}

/// Renders every capture's block, laid out for `term`.
pub fn render(surveys: &[CaptureSurvey], term: &Term) -> String {
    let mut out = String::new();
    for (capture, survey) in surveys.iter().enumerate() {
        render_one(survey, term, &mut out);
        render_gue(capture, survey, &mut out);
        out.push('\n');
    }
    out
}

fn render_one(survey: &CaptureSurvey, term: &Term, out: &mut String) {
    let paint = term.painter();
    let summary = match &survey.read {
        ReadResult::Error(message) => {
            out.push_str(&format!(
                "{}\n  could not be read: {}\n",
                esc(&survey.file),
                esc(message)
            ));
            return;
        }
        ReadResult::Summary(summary) => summary,
    };
    out.push_str(&format!("{}\n", paint.bold(&esc(&survey.file))));
    out.push_str(&format!("  format     {}\n", format_name(summary)));
    out.push_str(&format!(
        "  frames     {}{}\n",
        summary.frames,
        if summary.complete {
            ", read to the end"
        } else {
            ", NOT read to the end (see warnings)"
        }
    ));
    if let (Some(first), Some(last)) = (summary.earliest_ts_ns, summary.latest_ts_ns) {
        out.push_str(&format!(
            "  time       {} .. {} ({})\n",
            rfc3339_ns(first),
            rfc3339_ns(last),
            seconds(last - first)
        ));
    }
    if summary.snaplen_truncated_frames > 0 {
        out.push_str(&format!(
            "  snaplen    {} frames captured shorter than on the wire\n",
            summary.snaplen_truncated_frames
        ));
    }
    if summary.out_of_order_frames > 0 {
        out.push_str(&format!(
            "  order      {} frames earlier than the frame before them\n",
            summary.out_of_order_frames
        ));
    }
    if summary.skipped_records > 0 {
        out.push_str(&format!(
            "  skipped    {} records that are not packets (the warnings below say which and why)\n",
            summary.skipped_records
        ));
    }
    if survey.empty_interfaces_omitted > 0 {
        out.push_str(&format!(
            "  interfaces {} read; {} without frames not shown\n",
            summary.interfaces.len() as u64 + survey.empty_interfaces_omitted,
            survey.empty_interfaces_omitted
        ));
    }
    if summary.interfaces.len() > 1 {
        for (iface, span) in summary.interfaces.iter().zip(&survey.span_per_interface) {
            if let Some((first, last)) = span {
                out.push_str(&format!(
                    "  if {:<8} {} .. {} ({})\n",
                    iface.id,
                    rfc3339_ns(*first),
                    rfc3339_ns(*last),
                    seconds(last - first)
                ));
            }
        }
    }
    out.push_str(&layer_table(summary, &survey.layers_per_interface, term).to_string());
    out.push('\n');
    for warning in &summary.warnings {
        // The reader's messages already name the record and byte offset.
        out.push_str(&format!("  warning: {}\n", esc(&warning.message)));
    }
    if summary.warnings_suppressed > 0 {
        out.push_str(&format!(
            "  warning: {} more read warnings not shown\n",
            summary.warnings_suppressed
        ));
    }
    for note in &survey.decode_notes {
        out.push_str(&format!(
            "  undecodable: frame {}: {}\n",
            note.frame,
            esc(&note.reason)
        ));
    }
    if survey.decode_notes_suppressed > 0 {
        out.push_str(&format!(
            "  undecodable: {} more frames not shown\n",
            survey.decode_notes_suppressed
        ));
    }
}

/// GUE-shaped UDP the capture saw on ports nobody named, and whether it was taken for a tunnel.
fn render_gue(capture: usize, survey: &CaptureSurvey, out: &mut String) {
    for t in &survey.gue {
        let at = if t.first.capture as usize == capture {
            format!(" (first: frame {})", t.first.frame)
        } else {
            String::new()
        };
        out.push_str(&format!("  gue: {}{at}\n", esc(&t.describe())));
    }
}

fn layer_table(summary: &CaptureSummary, layers: &[LayerCounts], term: &Term) -> Table {
    let mut table = term.table();
    let mut header = vec![Cell::new("")];
    for iface in &summary.interfaces {
        let name = iface
            .name
            .as_deref()
            .map(|n| format!(" {}", printable(n, 64)))
            .unwrap_or_default();
        header.push(Cell::new(format!(
            "if {}{}\n{}",
            iface.id,
            name,
            link_type_name(iface.link_type)
        )));
    }
    table.set_header(header);
    type Pick = fn(&LayerCounts) -> u64;
    let rows: [(&str, Pick); 15] = [
        ("frames", |c| c.frames),
        ("ARP", |c| c.arp),
        ("IPv4", |c| c.ipv4),
        ("IPv6", |c| c.ipv6),
        ("TCP", |c| c.tcp),
        ("UDP", |c| c.udp),
        ("ICMP", |c| c.icmp),
        ("ICMPv6", |c| c.icmpv6),
        ("tunnel IP-in-IP", |c| c.tunnels.ipip),
        ("tunnel 6in4", |c| c.tunnels.ipv6_in_ipv4),
        ("tunnel in IPv6", |c| c.tunnels.ip_in_ipv6),
        ("tunnel GRE", |c| c.tunnels.gre),
        ("tunnel GUE", |c| c.tunnels.gue),
        ("IP fragments", |c| c.fragments),
        ("undecodable", |c| c.malformed),
    ];
    for (name, pick) in rows {
        let values: Vec<u64> = layers.iter().map(pick).collect();
        // Tunnel kinds and problem rows that never occur are noise: show them only when present.
        let always = matches!(
            name,
            "frames" | "ARP" | "IPv4" | "IPv6" | "TCP" | "UDP" | "ICMP"
        );
        if !always && values.iter().all(|v| *v == 0) {
            continue;
        }
        let mut row = vec![Cell::new(name)];
        row.extend(
            values
                .iter()
                .map(|v| Cell::new(v).set_alignment(CellAlignment::Right)),
        );
        table.add_row(row);
    }
    term.fit(&mut table, &[], &[0]);
    table
}
