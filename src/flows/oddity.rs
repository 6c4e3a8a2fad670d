//! Oddities: packets about the deployment that the model could not place, counted under stable
//! names instead of being dropped in silence, as Zeek's `weird.log` names what its parsers did
//! not expect (`possible_split_routing`, `data_before_established`): one snake_case name per
//! kind, a count, the first packet, and a note of what it means.
//!
//! Counting costs a fixed array per vantage point ([`OddityCounts`]), bumped where the tracker
//! already decided a packet fits nowhere: no allocation, no lookup beyond those the tracker
//! makes anyway. Traffic that has nothing to do with the deployment (SSH to a host, DNS, health
//! checks) is no oddity and is not counted at all.

use crate::topology::{FrameRef, MacAddr, VantageId};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// A kind of packet the model could not place. The names ([`Oddity::name`]) are stable: they
/// are the JSON's and the reports'.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Oddity {
    /// A plain (not tunnelled) packet from a VIP whose Ethernet source is no director's, no
    /// real server's and no client side's MAC: a host the topology does not know answers as
    /// the VIP.
    VipFromUnknownMac,
    /// A packet to the port of a client's open connection to a service, from an address that
    /// is neither the VIP nor a real server, nor from the service's port.
    ReplyFromUnknownSource,
    /// A packet of a closed TCP connection that came during TIME_WAIT, after its state was
    /// handed on (the same count as `stats[].late_packets`).
    LatePacket,
}

/// How many kinds there are: the size of the per-vantage array.
pub const KINDS: usize = 3;

impl Oddity {
    pub const ALL: [Oddity; KINDS] = [
        Oddity::VipFromUnknownMac,
        Oddity::ReplyFromUnknownSource,
        Oddity::LatePacket,
    ];

    pub fn index(self) -> usize {
        self as usize
    }

    /// The stable name, snake_case as Zeek's.
    pub fn name(self) -> &'static str {
        match self {
            Oddity::VipFromUnknownMac => "vip_from_unknown_mac",
            Oddity::ReplyFromUnknownSource => "reply_from_unknown_source",
            Oddity::LatePacket => "late_packet",
        }
    }

    /// What a packet of this kind is, in one sentence.
    pub fn meaning(self) -> &'static str {
        match self {
            Oddity::VipFromUnknownMac => {
                "a packet from the VIP sent by a MAC that is no director's, no real server's and no client side's (the director capture shows which MACs clients' requests come from)"
            }
            Oddity::ReplyFromUnknownSource => {
                "a packet to a client's port of an open connection to a service, from an address that is neither the VIP nor a real server, and not from the service's port"
            }
            Oddity::LatePacket => {
                "a packet of a closed TCP connection that came during TIME_WAIT, after the connection was over"
            }
        }
    }

    /// Why such packets happen, most likely first.
    pub fn cause(self) -> &'static str {
        match self {
            Oddity::VipFromUnknownMac => {
                "a host outside the cluster still holds the VIP and answers for it: a server that owned the VIP before the director (or a decommissioned real server, or an old director) left running with the VIP on lo or eth0, reached by clients whose neighbour cache (a static entry, a switch's or router's stale cache) still points the VIP at its MAC; or a real server added with -g/-m, whose MAC no tunnel shows"
            }
            Oddity::ReplyFromUnknownSource => {
                "a reply rewritten on its way back (SNAT or masquerading on the real server or a router) or a real server the captures and the rules do not show answering from its own address"
            }
            Oddity::LatePacket => {
                "a retransmitted FIN or ACK after the connection closed (a lost last ACK), or a client reusing a port within 60 s without a new SYN; benign alone"
            }
        }
    }

    /// What to do about them.
    pub fn fix(self) -> &'static str {
        match self {
            Oddity::VipFromUnknownMac => {
                "find the host with that MAC (ip neigh and bridge fdb on the switch or router, arp -n on the clients) and remove the VIP from it (ip addr del VIP dev lo); flush stale neighbour entries on the clients (ip neigh flush to VIP) so that they ask the director again"
            }
            Oddity::ReplyFromUnknownSource => {
                "on the real servers and routers on the way back: iptables -t nat -S, look for SNAT/MASQUERADE of replies from the VIP; give --rules so that real servers missing from the captures are known"
            }
            Oddity::LatePacket => "nothing, unless they are many: then look for loss on the client's last ACK",
        }
    }

    /// Whether packets of this kind may hide a fault of the deployment (the check warns) or
    /// are worth knowing only (info).
    pub fn may_hide_fault(self) -> bool {
        matches!(
            self,
            Oddity::VipFromUnknownMac | Oddity::ReplyFromUnknownSource
        )
    }
}

/// Who sent a packet: its (outer) IP source and its Ethernet source, when the link has one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sender {
    pub addr: IpAddr,
    pub mac: Option<MacAddr>,
}

/// "10.7.0.100 (02:00:00:07:00:0d)", or the address alone without a MAC.
impl std::fmt::Display for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.mac {
            Some(m) => write!(f, "{} ({m})", self.addr),
            None => write!(f, "{}", self.addr),
        }
    }
}

/// Per vantage point: how many packets of each kind, and the first of each with its sender.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct OddityCounts {
    counts: [u64; KINDS],
    first: [Option<(FrameRef, Option<Sender>)>; KINDS],
}

impl OddityCounts {
    /// One more packet of `kind`, at `at`, sent by `from` (when known).
    #[inline]
    pub fn bump(&mut self, kind: Oddity, at: FrameRef, from: Option<Sender>) {
        let i = kind.index();
        self.counts[i] += 1;
        if self.first[i].is_none() {
            self.first[i] = Some((at, from));
        }
    }

    pub fn count(&self, kind: Oddity) -> u64 {
        self.counts[kind.index()]
    }

    pub fn first(&self, kind: Oddity) -> Option<FrameRef> {
        self.first[kind.index()].map(|(f, _)| f)
    }

    /// Who sent the first packet of `kind`.
    pub fn first_sender(&self, kind: Oddity) -> Option<Sender> {
        self.first[kind.index()].and_then(|(_, s)| s)
    }

    pub fn is_empty(&self) -> bool {
        self.counts.iter().all(|c| *c == 0)
    }
}

/// One vantage point's share of an oddity.
#[derive(Debug, Clone, Serialize)]
pub struct OddityAt {
    pub vantage: VantageId,
    pub count: u64,
    pub first: FrameRef,
    pub first_sender: Option<Sender>,
}

/// One kind of oddity over all captures, for the JSON and the reports.
#[derive(Debug, Clone, Serialize)]
pub struct OddityCount {
    pub name: &'static str,
    #[serde(skip)]
    pub kind: Oddity,
    /// Packets of this kind, counted at every capture that saw one (a packet seen by two
    /// captures counts twice).
    pub count: u64,
    /// The first packet of this kind, by time (each capture's own clock), and its sender.
    pub first: FrameRef,
    pub first_sender: Option<Sender>,
    pub meaning: &'static str,
    pub likely_cause: &'static str,
    pub fix: &'static str,
    /// Per vantage point that saw one, in order of vantage point.
    pub per_vantage: Vec<OddityAt>,
}

/// Gathers the vantage points' counts into one row per kind seen, in the order of
/// [`Oddity::ALL`]; kinds never seen are left out.
pub fn gather<'a>(
    per_vantage: impl IntoIterator<Item = (VantageId, &'a OddityCounts)>,
) -> Vec<OddityCount> {
    let per_vantage: Vec<(VantageId, &OddityCounts)> = per_vantage.into_iter().collect();
    Oddity::ALL
        .iter()
        .filter_map(|&kind| {
            let mut at: Vec<OddityAt> = per_vantage
                .iter()
                .filter_map(|(v, c)| {
                    let first = c.first(kind)?;
                    Some(OddityAt {
                        vantage: *v,
                        count: c.count(kind),
                        first,
                        first_sender: c.first_sender(kind),
                    })
                })
                .collect();
            at.sort_by_key(|a| a.vantage);
            let earliest = at
                .iter()
                .min_by_key(|a| (a.first.ts_ns, a.first.capture, a.first.frame))?;
            Some(OddityCount {
                name: kind.name(),
                kind,
                count: at.iter().map(|a| a.count).sum(),
                first: earliest.first,
                first_sender: earliest.first_sender,
                meaning: kind.meaning(),
                likely_cause: kind.cause(),
                fix: kind.fix(),
                per_vantage: at,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(capture: u32, frame: u64, ts_ns: i64) -> FrameRef {
        FrameRef {
            capture,
            interface: 0,
            frame,
            ts_ns,
        }
    }

    #[test]
    fn names_are_stable_snake_case_and_distinct() {
        let names: Vec<&str> = Oddity::ALL.iter().map(|o| o.name()).collect();
        assert_eq!(
            names,
            [
                "vip_from_unknown_mac",
                "reply_from_unknown_source",
                "late_packet"
            ]
        );
        for (i, o) in Oddity::ALL.iter().enumerate() {
            assert_eq!(o.index(), i);
        }
    }

    #[test]
    fn gathering_sums_vantages_and_keeps_the_earliest_first_packet() {
        let mut a = OddityCounts::default();
        a.bump(Oddity::LatePacket, at(0, 7, 200), None);
        a.bump(Oddity::LatePacket, at(0, 9, 300), None);
        let mut b = OddityCounts::default();
        b.bump(Oddity::LatePacket, at(1, 3, 100), None);
        let from = Sender {
            addr: "10.7.0.100".parse().unwrap(),
            mac: Some(MacAddr([2, 0, 0, 7, 0, 0x0d])),
        };
        b.bump(Oddity::VipFromUnknownMac, at(1, 4, 150), Some(from));
        b.bump(Oddity::VipFromUnknownMac, at(1, 5, 160), None);
        let v = |c| VantageId {
            capture: c,
            interface: 0,
        };
        let rows = gather([(v(0), &a), (v(1), &b)]);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].name, "vip_from_unknown_mac");
        assert_eq!(rows[0].count, 2);
        assert_eq!(rows[0].first_sender, Some(from));
        assert_eq!(rows[1].name, "late_packet");
        assert_eq!(rows[1].count, 3);
        assert_eq!(rows[1].first.frame, 3);
        assert_eq!(rows[1].per_vantage.len(), 2);
        assert!(gather([(v(0), &OddityCounts::default())]).is_empty());
    }
}
