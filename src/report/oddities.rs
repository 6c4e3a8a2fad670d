//! The oddities ([`crate::flows::oddity`]) as the JSON documents and the terminal report show
//! them: like Zeek's `weird.log`, one row per name with its count, its first packet (file and
//! Wireshark frame) and what it means.

use crate::checks::{Context, PacketRef};
use crate::flows::oddity::Sender;
use crate::flows::Analysis;
use serde::Serialize;

/// One oddity name over all captures (`oddities[]` of `verify --json` and of the `summary`
/// record of `flows --json`).
#[derive(Debug, Serialize)]
pub struct OddityDoc {
    pub name: &'static str,
    /// Packets of this kind, counted at every capture that saw one.
    pub count: u64,
    /// The first packet (file, frame, time by its capture's own clock).
    pub first: PacketRef,
    /// Its (outer) IP source and Ethernet source.
    pub first_sender: Option<Sender>,
    pub meaning: &'static str,
    pub likely_cause: &'static str,
    pub fix: &'static str,
    pub per_capture: Vec<OddityAtDoc>,
}

/// One capture's share of an oddity.
#[derive(Debug, Serialize)]
pub struct OddityAtDoc {
    pub file: String,
    /// The capture as the report names it (file, and interface or mirror hop when it has several).
    pub vantage: String,
    pub count: u64,
    pub first_frame: u64,
}

/// The rows of the JSON documents.
pub fn docs(a: &Analysis) -> Vec<OddityDoc> {
    let ctx = Context::new(a);
    a.oddities
        .iter()
        .map(|o| OddityDoc {
            name: o.name,
            count: o.count,
            first: ctx.packet(&o.first, format!("first {}", o.name)),
            first_sender: o.first_sender,
            meaning: o.meaning,
            likely_cause: o.likely_cause,
            fix: o.fix,
            per_capture: o
                .per_vantage
                .iter()
                .map(|at| OddityAtDoc {
                    file: ctx.file(&at.first),
                    vantage: super::flows::vantage_label(a, at.vantage),
                    count: at.count,
                    first_frame: at.first.frame,
                })
                .collect(),
        })
        .collect()
}

/// The terminal's "Oddities" section (empty when there are none), laid out as the findings
/// are: per name its count, first packet and meaning, every text from a capture escaped.
pub fn render(a: &Analysis, term: &super::style::Term) -> String {
    if a.oddities.is_empty() {
        return String::new();
    }
    let esc = crate::escape::terminal;
    let mut out = format!("\n{}\n", term.painter().bold("Oddities"));
    for d in docs(a) {
        let from = d
            .first_sender
            .map_or(String::new(), |s| format!(", from {s}"));
        out.push_str(&format!(
            "\n{}: {}\n  first:    {} frame {} at {}{from}\n  means:    {}\n",
            d.name,
            crate::checks::oddities::counted(d.count, d.per_capture.len()),
            esc(&d.first.file),
            d.first.frame,
            d.first.time,
            d.meaning
        ));
    }
    out
}
