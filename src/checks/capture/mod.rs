//! The `capture.*` checks: what is wrong with the captures themselves, said as such.
//!
//! A capture filter (`tcp port 80` drops every IP-in-IP packet), a snap length too short for
//! the inner headers, packets the capturing host dropped, or captures that did not run at the
//! same time all leave packets out of a capture. A deployment check that concludes from a
//! packet's absence ("never forwarded", "never arrived") would then blame the director or a
//! real server for the capture's mistake, and tell the user to fix what works. So these checks
//! find the capture's mistakes, each with its evidence, cause and fix, and [`Sight`] tells the
//! deployment checks which captures cannot prove an absence: those skip with that reason
//! instead of judging, which the verdict then reports as inconclusive.
//!
//! One module per check: `capture.read` in `read.rs`, `capture.filter` in `filter.rs`,
//! `capture.snaplen` in `snaplen.rs`, `capture.drops` in `drops.rs`, `capture.time` in
//! `time.rs`.

pub mod drops;
pub mod filter;
pub mod read;
pub mod snaplen;
pub mod time;

use std::collections::BTreeMap;

pub use filter::Watch;

use super::Context;
use crate::capture::InterfaceInfo;
use crate::escape::printable;
use crate::topology::{Role, Vantage, VantageId};

/// Characters of a capture filter shown at most.
const MAX_FILTER_SHOWN: usize = 200;

/// The interface a vantage point was captured on, as the file describes it.
pub fn interface<'a>(ctx: &Context<'a>, v: VantageId) -> Option<&'a InterfaceInfo> {
    ctx.analysis
        .captures
        .iter()
        .find(|c| c.capture == v.capture)?
        .summary
        .as_ref()?
        .interfaces
        .get(v.interface as usize)
}

/// A vantage point for messages: its file, and the interface when the file has several.
pub fn name(ctx: &Context, v: VantageId) -> String {
    let file = ctx.file(&crate::topology::FrameRef {
        capture: v.capture,
        interface: v.interface,
        frame: 0,
        ts_ns: 0,
    });
    // The vantage points are sorted by id (`Topology::vantages`): a capture's are one run,
    // found by bisection rather than a count over all of them for every message.
    let vantages = &ctx.analysis.topology.vantages;
    let from = vantages.partition_point(|o| o.id.capture < v.capture);
    let several = vantages[from..]
        .iter()
        .take(2)
        .filter(|o| o.id.capture == v.capture)
        .count()
        > 1;
    if !several {
        return file;
    }
    match interface(ctx, v).and_then(|i| i.name.as_deref()) {
        Some(n) => format!("{file} interface {} ({})", v.interface, printable(n, 64)),
        None => format!("{file} interface {}", v.interface),
    }
}

/// A vantage point with its role, for messages: "server1.pcap (the director's capture)".
pub fn described(ctx: &Context, v: &Vantage) -> String {
    let who = match (v.role, v.address) {
        (Role::Director, _) => "the director's capture".to_string(),
        (Role::RealServer, Some(a)) => format!("real server {a}"),
        (Role::RealServer, None) => "a real server".to_string(),
        (Role::Client, _) => "a client".to_string(),
        (Role::Other, _) => "no LVS role".to_string(),
    };
    format!("{} ({who})", name(ctx, v.id))
}

/// The capture filter the file says this vantage point was taken with, quoted and escaped.
pub fn named_filter(ctx: &Context, v: VantageId) -> Option<String> {
    let f = interface(ctx, v)?.filter.as_deref()?;
    Some(format!("`{}`", printable(f, MAX_FILTER_SHOWN)))
}

/// The VIP for commands in fixes: the first one found, else a placeholder.
pub fn vip_text(ctx: &Context) -> String {
    ctx.analysis
        .topology
        .vips
        .first()
        .map(|v| v.addr.to_string())
        .unwrap_or_else(|| "VIP".into())
}

/// The captures that cannot prove a packet absent, and why: decided once, from the capture
/// checks' own evidence, for every deployment check that concludes from an absence.
#[derive(Debug, Clone, Default)]
pub struct Sight {
    /// Per vantage point: why the tunnelled packets there cannot be seen or read (a filter
    /// dropped them, the snap length cut their inner headers), in words naming the file.
    hidden: BTreeMap<VantageId, String>,
    /// Per vantage point: packets the capture says it dropped.
    dropped: BTreeMap<VantageId, u64>,
}

impl Sight {
    /// What is known before the first connection (pass 1 and the readers): snap-length cuts,
    /// drops, real-server captures that show replies leaving and nothing arriving. Director
    /// captures missing their forwarded copies are known only from the connections
    /// ([`Sight::confirm`]).
    pub fn before(ctx: &Context) -> Sight {
        let mut sight = Sight::default();
        for f in filter::filtered(ctx, None) {
            if let Some(why) = f.blinds {
                sight.hidden.insert(f.vantage, why);
            }
        }
        for v in &ctx.analysis.topology.vantages {
            if let Some(why) = snaplen::hides_tunnels(ctx, v) {
                sight.hidden.entry(v.id).or_insert(why);
            }
            let dropped = drops::dropped(ctx, v.id);
            if dropped > 0 {
                sight.dropped.insert(v.id, dropped);
            }
        }
        sight
    }

    /// Adds what the connections showed: director captures where answered connections arrived
    /// and not one tunnelled packet left.
    pub fn confirm(&mut self, ctx: &Context, watch: &Watch) {
        for f in filter::filtered(ctx, Some(watch)) {
            if let Some(why) = f.blinds {
                self.hidden.entry(f.vantage).or_insert(why);
            }
        }
    }

    /// Why the tunnelled packets at this vantage point cannot be seen or read, if they cannot.
    pub fn tunnels_hidden(&self, v: VantageId) -> Option<&str> {
        self.hidden.get(&v).map(String::as_str)
    }

    /// Why this vantage point's capture cannot prove that a connection's `packets` packets
    /// were absent: its tunnelled packets are hidden, or it dropped at least that many.
    pub fn absence_unproven(&self, ctx: &Context, v: VantageId, packets: u64) -> Option<String> {
        if let Some(why) = self.tunnels_hidden(v) {
            return Some(why.to_string());
        }
        let dropped = self.dropped.get(&v).copied().unwrap_or(0);
        (dropped > 0 && dropped >= packets).then(|| {
            format!(
                "{} dropped {dropped} packets while capturing, enough to hide a connection of \
                 {packets} (capture.drops)",
                name(ctx, v)
            )
        })
    }

    /// The reasons for the vantage points of a role whose tunnelled packets are hidden.
    pub fn hidden_in_role(&self, ctx: &Context, role: Role) -> Vec<String> {
        self.hidden
            .iter()
            .filter(|(v, _)| ctx.analysis.topology.role_of(**v) == role)
            .map(|(_, why)| why.clone())
            .collect()
    }
}

/// Connections a check could not judge because a capture could not show them, counted per
/// reason (each names the capture and the `capture.*` check that explains it).
#[derive(Debug, Default)]
pub struct Unjudged(BTreeMap<String, usize>);

impl Unjudged {
    pub fn add(&mut self, why: impl Into<String>, n: usize) {
        if n > 0 {
            *self.0.entry(why.into()).or_default() += n;
        }
    }
    pub fn total(&self) -> usize {
        self.0.values().sum()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// "server1.pcap: ... (capture.snaplen)" joined, the largest group first.
    pub fn reasons(&self) -> String {
        let mut v: Vec<(&String, &usize)> = self.0.iter().collect();
        v.sort_by_key(|(_, n)| std::cmp::Reverse(**n));
        v.iter()
            .map(|(why, _)| why.as_str())
            .collect::<Vec<_>>()
            .join("; ")
    }
    /// What a PASS reason adds about the connections left out: "; N more not judged: ..."
    /// or nothing.
    pub fn pass_suffix(&self) -> String {
        if self.is_empty() {
            String::new()
        } else {
            format!("; {} more not judged: {}", self.total(), self.reasons())
        }
    }
}
