//! Health checks: connections a director opens to a real server's own address, not wrapped.
//!
//! keepalived's TCP_CHECK and HTTP_GET (ldirectord, Seesaw, katran's healthchecker alike) go
//! from the director to RIP:port directly, not through the tunnel, every `delay_loop` seconds.
//! They are not client connections (neither end is a VIP, so [`super::legs::LegTracker`] does
//! not make them into one), and they are what the director decides a server's weight by: a
//! server whose checks succeed keeps its weight even when the tunnelled traffic to it is
//! dropped (VIP missing on its tunl0, rp_filter), the "DSR blackhole" that `health.path`
//! reports.
//!
//! Per vantage point, [`ProbeTracker`] counts per (protocol, director address, real server
//! address and port) the checks started (a TCP SYN, or a UDP datagram from a new source port),
//! answered (SYN-ACK, or a datagram back), refused (RST) and left unanswered, when they ran and
//! how far apart, with one example of a check that succeeded and one that failed. A few checks
//! are followed at a time per key ([`IN_FLIGHT`]), keys are bounded ([`MAX_KEYS`]): memory does
//! not grow with the packets, and a packet allocates nothing (a new key does, once).

use super::legs::FlowContext;
use crate::decode::packet::{DecodedFrame, Tcp};
use crate::topology::view::IpView;
use crate::topology::{FrameRef, MacAddr, Proto, VantageId};
use rustc_hash::FxHashMap as HashMap;
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, SocketAddr};

/// Checks of one key followed at once: keepalived runs one check per real server at a time,
/// HTTP_GET with a retry two; a check whose slot is needed again is over (unanswered if
/// nothing came back).
pub const IN_FLIGHT: usize = 4;
/// (director, server, port) keys followed per vantage point: far more than a director checks
/// (one per real server and port); checks of further keys are not followed.
pub const MAX_KEYS: usize = 4096;
/// Intervals between checks kept per key for the median: the first ones (at 3 s, over three
/// minutes of checks).
pub const MAX_INTERVALS: usize = 64;

/// What a health check is keyed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ProbeKey {
    pub proto: Proto,
    /// The director's address the checks come from.
    pub director: IpAddr,
    /// The real server's own address and the port checked.
    pub server: SocketAddr,
}

/// How a check ended so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reply {
    Pending,
    Answered,
    Refused,
}

/// One check being followed: its source port, initial sequence number (TCP), first packet.
#[derive(Debug, Clone, Copy)]
struct Probe {
    port: u16,
    isn: u32,
    request: FrameRef,
    reply: Reply,
    data_back: bool,
}

/// A check as evidence: the request, and the answer (SYN-ACK, RST, datagram) when one came.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeExample {
    pub request: FrameRef,
    pub answer: Option<FrameRef>,
}

#[derive(Debug, Clone)]
struct KeyState {
    started: u64,
    answered: u64,
    refused: u64,
    unanswered: u64,
    with_data: u64,
    retransmissions: u64,
    first_ts_ns: i64,
    last_ts_ns: i64,
    last_start_ns: i64,
    intervals: Vec<i64>,
    in_flight: [Option<Probe>; IN_FLIGHT],
    next_slot: usize,
    succeeded: Option<ProbeExample>,
    failed: Option<ProbeExample>,
    server_mac: Option<MacAddr>,
}

impl KeyState {
    fn new(ts: i64) -> KeyState {
        KeyState {
            started: 0,
            answered: 0,
            refused: 0,
            unanswered: 0,
            with_data: 0,
            retransmissions: 0,
            first_ts_ns: ts,
            last_ts_ns: ts,
            last_start_ns: ts,
            intervals: Vec::with_capacity(MAX_INTERVALS),
            in_flight: [None; IN_FLIGHT],
            next_slot: 0,
            succeeded: None,
            failed: None,
            server_mac: None,
        }
    }

    fn slot(&mut self, port: u16) -> Option<&mut Probe> {
        self.in_flight.iter_mut().flatten().find(|p| p.port == port)
    }

    /// A check is over: one that nothing answered is counted unanswered.
    fn settle(&mut self, p: Probe) {
        if p.reply == Reply::Pending {
            self.unanswered += 1;
            if self.failed.is_none() {
                self.failed = Some(ProbeExample {
                    request: p.request,
                    answer: None,
                });
            }
        }
    }

    fn start(&mut self, port: u16, isn: u32, at: FrameRef) {
        if self.started > 0 && self.intervals.len() < MAX_INTERVALS {
            self.intervals.push(at.ts_ns - self.last_start_ns);
        }
        self.started += 1;
        self.last_start_ns = at.ts_ns;
        let probe = Probe {
            port,
            isn,
            request: at,
            reply: Reply::Pending,
            data_back: false,
        };
        // A slot of the same port first (the port reused), else the oldest.
        let i = self
            .in_flight
            .iter()
            .position(|p| p.is_some_and(|p| p.port == port))
            .unwrap_or_else(|| {
                let i = self.next_slot;
                self.next_slot = (self.next_slot + 1) % IN_FLIGHT;
                i
            });
        if let Some(old) = self.in_flight[i].replace(probe) {
            self.settle(old);
        }
    }
}

/// One key's checks as one vantage point saw them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthChecks {
    pub vantage: VantageId,
    #[serde(flatten)]
    pub key: ProbeKey,
    /// Checks begun: TCP SYNs (not their retransmissions), UDP datagrams from a new port.
    pub started: u64,
    /// Answered: a SYN-ACK, or a UDP datagram back.
    pub answered: u64,
    /// Refused: a RST instead of a SYN-ACK.
    pub refused: u64,
    /// Nothing came back (before the next check on the same port, or the capture's end).
    pub unanswered: u64,
    /// Answered checks in which the server also sent data (HTTP_GET's response).
    pub with_data: u64,
    /// Retransmitted SYNs of checks already counted.
    pub retransmissions: u64,
    /// First check's request and last packet of the key, this capture's own clock.
    pub first_ts_ns: i64,
    pub last_ts_ns: i64,
    /// Median time between the starts of consecutive checks (of the first
    /// [`MAX_INTERVALS`]); null with one check.
    pub median_interval_ns: Option<i64>,
    /// The first check that was answered, and the first that was refused or unanswered.
    pub succeeded: Option<ProbeExample>,
    pub failed: Option<ProbeExample>,
    /// The source MAC of the server's answers (on a segment shared with the capture: the
    /// server's own).
    pub server_mac: Option<MacAddr>,
}

impl HealthChecks {
    /// Repeated: more than one check, which makes it look like a health checker's rather
    /// than a one-off connection (an administrator's curl).
    pub fn repeated(&self) -> bool {
        self.started >= 2
    }
    /// Every check that ended was answered.
    pub fn all_answered(&self) -> bool {
        self.answered > 0 && self.refused == 0 && self.unanswered == 0
    }
    /// No check was answered.
    pub fn none_answered(&self) -> bool {
        self.answered == 0 && self.refused + self.unanswered > 0
    }
}

/// Follows the health checks at one vantage point: fed the packets between two addresses
/// neither of which is a VIP ([`super::legs::LegTracker::push`]).
#[derive(Debug, Default)]
pub struct ProbeTracker {
    keys: HashMap<ProbeKey, KeyState>,
}

impl ProbeTracker {
    /// A packet between two addresses that are not VIPs: a check's request when it goes from
    /// a director's address to a real server's, unwrapped; its answer the other way.
    #[inline]
    pub fn push(&mut self, ctx: &FlowContext, v: &IpView, f: &DecodedFrame) {
        if v.outer.is_some() || ctx.director_addrs.is_empty() {
            return;
        }
        let proto = Proto(v.ip.protocol);
        if proto != Proto::TCP && proto != Proto::UDP {
            return;
        }
        let (src, dst) = (v.ip.src, v.ip.dst);
        let real_server = |a: &IpAddr| {
            ctx.real_servers.contains(a)
                || ctx.configured_rs.as_ref().is_some_and(|c| c.contains(a))
        };
        let at = FrameRef::of(f);
        if ctx.director_addrs.contains(&src) && real_server(&dst) {
            self.request(proto, v, at);
        } else if ctx.director_addrs.contains(&dst) && real_server(&src) {
            self.answer(proto, v, at, f.packet.link.src_mac.map(MacAddr));
        }
    }

    fn request(&mut self, proto: Proto, v: &IpView, at: FrameRef) {
        let (sp, dp) = v.ports();
        let key = ProbeKey {
            proto,
            director: v.ip.src,
            server: SocketAddr::new(v.ip.dst, dp),
        };
        let tcp = v.tcp();
        // Only a check's first packet makes its key: the rest of a connection begun before the
        // capture is not a check seen.
        let begins = match tcp {
            Some(t) => t.has(Tcp::SYN) && !t.has(Tcp::ACK),
            None => true,
        };
        if !begins && !self.keys.contains_key(&key) {
            return;
        }
        if !self.keys.contains_key(&key) && self.keys.len() >= MAX_KEYS {
            return;
        }
        let s = self
            .keys
            .entry(key)
            .or_insert_with(|| KeyState::new(at.ts_ns));
        s.last_ts_ns = s.last_ts_ns.max(at.ts_ns);
        if !begins {
            return;
        }
        let isn = tcp.map_or(0, |t| t.seq);
        match s.slot(sp) {
            // The same SYN again: a retransmission of the check under way.
            Some(p) if tcp.is_some() && p.isn == isn => s.retransmissions += 1,
            // UDP: more datagrams of the check under way on this port.
            Some(_) if tcp.is_none() => {}
            _ => s.start(sp, isn, at),
        }
    }

    fn answer(&mut self, proto: Proto, v: &IpView, at: FrameRef, mac: Option<MacAddr>) {
        let (sp, dp) = v.ports();
        let key = ProbeKey {
            proto,
            director: v.ip.dst,
            server: SocketAddr::new(v.ip.src, sp),
        };
        let Some(s) = self.keys.get_mut(&key) else {
            return;
        };
        s.last_ts_ns = s.last_ts_ns.max(at.ts_ns);
        if s.server_mac.is_none() {
            s.server_mac = mac;
        }
        let tcp = v.tcp();
        let data = v.payload().0 > 0;
        let Some(p) = s.slot(dp) else {
            return;
        };
        let reply = match tcp {
            Some(t) if t.has(Tcp::RST) => Reply::Refused,
            Some(t) if t.has(Tcp::SYN) && t.has(Tcp::ACK) => Reply::Answered,
            Some(_) => p.reply,
            None => Reply::Answered,
        };
        let newly_data = data && !p.data_back && p.reply == Reply::Answered;
        p.data_back |= data;
        let request = p.request;
        if p.reply != Reply::Pending || reply == Reply::Pending {
            if newly_data {
                s.with_data += 1;
            }
            return;
        }
        p.reply = reply;
        let example = ProbeExample {
            request,
            answer: Some(at),
        };
        if reply == Reply::Answered {
            s.answered += 1;
            if data {
                s.with_data += 1;
            }
            s.succeeded.get_or_insert(example);
        } else {
            s.refused += 1;
            s.failed.get_or_insert(example);
        }
    }

    /// Every key's checks, the ones still open settled (the capture has ended), in key order.
    pub fn finish(&mut self, vantage: VantageId) -> Vec<HealthChecks> {
        let mut out: Vec<HealthChecks> = self
            .keys
            .drain()
            .map(|(key, mut s)| {
                for p in std::mem::take(&mut s.in_flight).into_iter().flatten() {
                    s.settle(p);
                }
                HealthChecks {
                    vantage,
                    key,
                    started: s.started,
                    answered: s.answered,
                    refused: s.refused,
                    unanswered: s.unanswered,
                    with_data: s.with_data,
                    retransmissions: s.retransmissions,
                    first_ts_ns: s.first_ts_ns,
                    last_ts_ns: s.last_ts_ns,
                    median_interval_ns: median(&mut s.intervals),
                    succeeded: s.succeeded,
                    failed: s.failed,
                    server_mac: s.server_mac,
                }
            })
            .filter(|h| h.started > 0)
            .collect();
        out.sort_by_key(|h| h.key);
        out
    }
}

fn median(v: &mut [i64]) -> Option<i64> {
    if v.is_empty() {
        return None;
    }
    let mid = v.len() / 2;
    Some(*v.select_nth_unstable(mid).1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(frame: u64, secs: i64) -> FrameRef {
        FrameRef {
            capture: 0,
            interface: 0,
            frame,
            ts_ns: secs * 1_000_000_000,
        }
    }

    #[test]
    fn a_check_left_pending_is_unanswered_once_its_slot_is_needed() {
        let mut s = KeyState::new(0);
        // IN_FLIGHT + 1 checks from different ports, none answered: the first is pushed out.
        for i in 0..=IN_FLIGHT as u16 {
            s.start(
                40_000 + i,
                u32::from(i),
                at(u64::from(i) + 1, 3 * i64::from(i)),
            );
        }
        assert_eq!((s.started, s.unanswered), (IN_FLIGHT as u64 + 1, 1));
        assert_eq!(s.failed.map(|e| e.request.frame), Some(1));
        // The same port again: its old check is over.
        s.start(40_001, 99, at(20, 30));
        assert_eq!(s.unanswered, 2);
        assert_eq!(s.intervals.len(), IN_FLIGHT + 1);
    }

    #[test]
    fn the_median_interval_is_the_middle_one() {
        assert_eq!(median(&mut []), None);
        assert_eq!(median(&mut [3, 1, 2]), Some(2));
        assert_eq!(median(&mut [5, 3, 3, 100]), Some(5));
    }

    #[test]
    fn intervals_kept_are_bounded() {
        let mut s = KeyState::new(0);
        for i in 0..(MAX_INTERVALS as u16 + 10) {
            s.start(i, 0, at(u64::from(i), i64::from(i)));
        }
        assert_eq!(s.intervals.len(), MAX_INTERVALS);
        assert_eq!(s.started, MAX_INTERVALS as u64 + 10);
    }
}
