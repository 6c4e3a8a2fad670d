//! What two directors in a failover pair say to each other and to the segment, gathered in
//! pass 1 per vantage point: VRRP advertisements (who claimed the virtual router, with which
//! priority, from when to when), gratuitous ARP (who told the segment it holds an address),
//! IPVS sync messages (which director sent its connection table, how many entries, which),
//! and who forwarded when (the first and last tunnelled packet of each tunnel source) and
//! which MAC the packets to each address were sent to. The `failover` check reads the
//! timeline from them.
//!
//! Memory is bounded by hosts and MACs, plus at most [`MAX_CARRIED`] sync entries kept.

use super::{FrameRef, MacAddr, VantageId};
use crate::decode::ipvs_sync::SyncConn;
use crate::decode::packet::{DecodedFrame, Net};
use crate::decode::vrrp::Vrrp;
use crate::decode::Control;
use rustc_hash::FxHashMap as HashMap;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// Sync entries kept per vantage point (the failover check compares them with the
/// connections): a lab's or an incident's few dozen; past that, counts only.
pub const MAX_CARRIED: usize = 256;

/// How many frames of one kind, the first and the last (the capture's own clock).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Span {
    pub count: u64,
    pub first: FrameRef,
    pub last: FrameRef,
}

impl Span {
    fn at(f: &DecodedFrame) -> Span {
        let r = FrameRef::of(f);
        Span {
            count: 0,
            first: r,
            last: r,
        }
    }
    fn add(&mut self, f: &DecodedFrame) {
        self.count += 1;
        if f.ts_ns < self.first.ts_ns {
            self.first = FrameRef::of(f);
        }
        if f.ts_ns >= self.last.ts_ns {
            self.last = FrameRef::of(f);
        }
    }
}

fn bump<K: std::hash::Hash + Eq>(m: &mut HashMap<K, Span>, k: K, f: &DecodedFrame) {
    m.entry(k).or_insert_with(|| Span::at(f)).add(f);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AdvertKey {
    pub router: IpAddr,
    pub mac: Option<MacAddr>,
    pub vrid: u8,
    pub priority: u8,
    pub version: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SyncKey {
    pub sender: IpAddr,
    pub mac: Option<MacAddr>,
    pub syncid: u8,
}

/// One kind of frame and where it went: (destination address, destination MAC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SentTo {
    pub dst: IpAddr,
    pub mac: MacAddr,
}

/// A sync entry as one vantage point saw it carried.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Carried {
    pub conn: SyncConn,
    pub sender: IpAddr,
    pub frame: FrameRef,
}

/// Pass 1's control-traffic facts of one vantage point. Its JSON is the full state's
/// ([`crate::full_state`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ControlFacts {
    #[serde(with = "crate::full_state::pairs")]
    pub adverts: HashMap<AdvertKey, Span>,
    /// The first advertisement's virtual address, per router and vrid.
    #[serde(with = "crate::full_state::pairs")]
    pub advert_address: HashMap<(IpAddr, u8), IpAddr>,
    #[serde(with = "crate::full_state::pairs")]
    pub syncs: HashMap<SyncKey, Span>,
    /// Entries carried by all sync messages (the header's counts), per sender.
    #[serde(with = "crate::full_state::pairs")]
    pub sync_conns: HashMap<IpAddr, u64>,
    pub carried: Vec<Carried>,
    /// Gratuitous ARP (sender address = target address), by (address, MAC).
    #[serde(with = "crate::full_state::pairs")]
    pub garps: HashMap<(IpAddr, MacAddr), Span>,
    /// Tunnelled frames by outer source.
    #[serde(with = "crate::full_state::pairs")]
    pub forwarded: HashMap<IpAddr, Span>,
    /// Plain TCP/UDP/SCTP frames by destination address and MAC.
    #[serde(with = "crate::full_state::pairs")]
    pub sent_to: HashMap<SentTo, Span>,
}

impl ControlFacts {
    /// Called for every frame of pass 1: a VRRP or sync message, a gratuitous ARP.
    pub fn push(&mut self, f: &DecodedFrame) {
        let src_mac = f.packet.link.src_mac.map(MacAddr);
        match (&f.packet.control, &f.packet.net) {
            (Some(Control::Vrrp(v)), Net::Ip(p)) => self.advert(p.ip.src, src_mac, v, f),
            (Some(Control::IpvsSync(s)), Net::Ip(p)) => {
                let sender = p.ip.src;
                let key = SyncKey {
                    sender,
                    mac: src_mac,
                    syncid: s.syncid,
                };
                bump(&mut self.syncs, key, f);
                *self.sync_conns.entry(sender).or_default() += u64::from(s.nr_conns);
                for c in s.conns.iter().flatten() {
                    if self.carried.len() < MAX_CARRIED {
                        self.carried.push(Carried {
                            conn: *c,
                            sender,
                            frame: FrameRef::of(f),
                        });
                    }
                }
            }
            (_, Net::Arp(a)) if a.sender_ip == a.target_ip && !a.sender_ip.is_unspecified() => {
                let k = (IpAddr::V4(a.sender_ip), MacAddr(a.sender_mac));
                bump(&mut self.garps, k, f);
            }
            _ => {}
        }
    }

    fn advert(&mut self, router: IpAddr, mac: Option<MacAddr>, v: &Vrrp, f: &DecodedFrame) {
        let key = AdvertKey {
            router,
            mac,
            vrid: v.vrid,
            priority: v.priority,
            version: v.version,
        };
        bump(&mut self.adverts, key, f);
        if let Some(a) = v.first_address {
            self.advert_address.entry((router, v.vrid)).or_insert(a);
        }
    }

    /// A tunnelled frame from `outer_src` (pass 1 knows it from the decoded view).
    pub fn tunnelled(&mut self, outer_src: IpAddr, f: &DecodedFrame) {
        bump(&mut self.forwarded, outer_src, f);
    }

    /// A plain packet to `dst` in a frame to `mac`.
    pub fn sent(&mut self, dst: IpAddr, mac: MacAddr, f: &DecodedFrame) {
        bump(&mut self.sent_to, SentTo { dst, mac }, f);
    }

    pub fn has_control(&self) -> bool {
        !self.adverts.is_empty() || !self.syncs.is_empty()
    }

    /// The facts in a stable order, for the topology.
    pub fn summary(&self, vantage: VantageId) -> VantageControl {
        fn sorted<K: Ord + Copy, V: Copy>(m: &HashMap<K, V>) -> Vec<(K, V)> {
            let mut v: Vec<(K, V)> = m.iter().map(|(k, v)| (*k, *v)).collect();
            v.sort_by_key(|a| a.0);
            v
        }
        VantageControl {
            vantage,
            adverts: sorted(&self.adverts)
                .into_iter()
                .map(|(key, span)| Advert {
                    address: self.advert_address.get(&(key.router, key.vrid)).copied(),
                    key,
                    span,
                })
                .collect(),
            syncs: sorted(&self.syncs)
                .into_iter()
                .map(|(key, span)| SyncSeen {
                    conns: self.sync_conns.get(&key.sender).copied().unwrap_or(0),
                    key,
                    span,
                })
                .collect(),
            carried: self.carried.clone(),
            garps: sorted(&self.garps)
                .into_iter()
                .map(|((addr, mac), span)| Garp { addr, mac, span })
                .collect(),
            forwarded: sorted(&self.forwarded),
            sent_to: sorted(&self.sent_to),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Advert {
    pub key: AdvertKey,
    pub address: Option<IpAddr>,
    pub span: Span,
}

#[derive(Debug, Clone, Serialize)]
pub struct SyncSeen {
    pub key: SyncKey,
    /// Entries the sender's messages carried (all syncids of that sender), by their headers.
    pub conns: u64,
    pub span: Span,
}

#[derive(Debug, Clone, Serialize)]
pub struct Garp {
    pub addr: IpAddr,
    pub mac: MacAddr,
    pub span: Span,
}

/// One vantage point's control traffic, as the topology keeps it.
#[derive(Debug, Clone, Serialize)]
pub struct VantageControl {
    pub vantage: VantageId,
    pub adverts: Vec<Advert>,
    pub syncs: Vec<SyncSeen>,
    #[serde(skip)]
    pub carried: Vec<Carried>,
    pub garps: Vec<Garp>,
    #[serde(skip)]
    pub forwarded: Vec<(IpAddr, Span)>,
    #[serde(skip)]
    pub sent_to: Vec<(SentTo, Span)>,
}
