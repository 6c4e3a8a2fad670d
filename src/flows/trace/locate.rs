//! Which of the analysis's connections a frame belongs to, for a read of the captures after
//! the analysis ([`super::reread`]): the connections are known by then, with each vantage
//! point's view (its leg) and when it saw them by its own clock.
//!
//! A frame is keyed as the legs were (client tuple and VIP, [`ConnKey::between`]; an ICMP error
//! by the packet it quotes; a reply from a real server's own address by the client's tuple),
//! and among the connections on that key (a port used again) it goes to the one whose leg at
//! the frame's vantage point spans its time, else to the one that started last before it,
//! clock-corrected.

use crate::decode::packet::{DecodedFrame, IpPacket, Transport};
use crate::flows::clock::ClockOffset;
use crate::flows::{ConnKey, Connection, Form};
use crate::topology::view::IpView;
use crate::topology::{Proto, VantageId};
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use smallvec::SmallVec;
use std::net::{IpAddr, SocketAddr};

/// Where a frame belongs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Located {
    /// Index of the connection in the list the [`Locator`] was made from.
    pub index: usize,
    /// The packet's form (for an ICMP error, the form of the packet it quotes).
    pub form: Form,
    /// An ICMP error about the connection rather than one of its packets.
    pub icmp_error: bool,
}

/// What placing a frame needs of a connection: its key, its real server, when it started, and
/// when each vantage point saw it (a leg's first and last packet, by that vantage point's own
/// clock). A few dozen bytes where a [`Connection`] with its legs takes hundreds: what a caller
/// keeps of every connection of a long capture to place its frames afterwards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    pub key: ConnKey,
    pub real_server: Option<IpAddr>,
    /// By the reference clock.
    pub first_ts_ns: i64,
    pub spans: SmallVec<[LegSpan; 4]>,
}

/// When one vantage point saw a connection, by its own clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LegSpan {
    pub vantage: VantageId,
    pub first_ts_ns: i64,
    pub last_ts_ns: i64,
}

impl From<&Connection> for Placement {
    fn from(c: &Connection) -> Placement {
        Placement {
            key: c.key(),
            real_server: c.real_server,
            first_ts_ns: c.first_ts_ns,
            spans: c
                .legs
                .iter()
                .map(|l| LegSpan {
                    vantage: l.vantage,
                    first_ts_ns: l.first_ts_ns,
                    last_ts_ns: l.last_ts_ns,
                })
                .collect(),
        }
    }
}

/// Finds frames' connections among a list of them.
pub struct Locator {
    conns: Vec<Placement>,
    by_key: HashMap<ConnKey, SmallVec<[usize; 1]>>,
    /// Connections by the client's address and port: replies from a server's own address.
    by_client: HashMap<(Proto, SocketAddr), SmallVec<[usize; 1]>>,
    vips: HashSet<IpAddr>,
    /// Reference time = capture time - offset.
    offsets: HashMap<VantageId, i64>,
}

impl Locator {
    pub fn new(conns: &[&Connection], clock_offsets: &[ClockOffset]) -> Locator {
        Locator::of(
            conns.iter().map(|c| Placement::from(*c)).collect(),
            clock_offsets,
        )
    }

    /// A locator of connections kept as [`Placement`]s; `Located::index` is an index of `conns`.
    pub fn of(conns: Vec<Placement>, clock_offsets: &[ClockOffset]) -> Locator {
        let mut by_key: HashMap<ConnKey, SmallVec<[usize; 1]>> = HashMap::default();
        let mut by_client: HashMap<(Proto, SocketAddr), SmallVec<[usize; 1]>> = HashMap::default();
        let mut vips = HashSet::default();
        for (i, c) in conns.iter().enumerate() {
            by_key.entry(c.key).or_default().push(i);
            by_client
                .entry((c.key.proto, c.key.client))
                .or_default()
                .push(i);
            vips.insert(c.key.vip.ip());
        }
        Locator {
            conns,
            by_key,
            by_client,
            vips,
            offsets: clock_offsets
                .iter()
                .map(|o| (o.vantage, o.offset_ns))
                .collect(),
        }
    }

    /// The connections, as placed: `Located::index` indexes this.
    pub fn placements(&self) -> &[Placement] {
        &self.conns
    }

    /// The connection `f` belongs to, if it is one of the list's.
    pub fn locate(&self, f: &DecodedFrame) -> Option<Located> {
        let v = IpView::of(&f.packet)?;
        if let Some(icmp) = v.icmp() {
            let quoted = icmp.quoted.as_deref()?;
            let (key, form) = self.key_of_quoted(quoted)?;
            return self.pick(self.by_key.get(&key)?, f, form, true);
        }
        if !v.has_ports() {
            return None;
        }
        let proto = Proto(v.ip.protocol);
        let (sp, dp) = v.ports();
        let (src, dst) = (SocketAddr::new(v.ip.src, sp), SocketAddr::new(v.ip.dst, dp));
        match ConnKey::between(proto, src, dst, |a| self.vips.contains(a)) {
            Some((key, to_vip)) => {
                let form = Form::of(to_vip, v.outer.is_some());
                self.pick(self.by_key.get(&key)?, f, form, false)
            }
            None => {
                // From a server's own address: the connection's server, or the service's port.
                let from_server = |i: &usize| {
                    let c = &self.conns[*i];
                    c.real_server == Some(src.ip()) || c.key.vip.port() == sp
                };
                let candidates: SmallVec<[usize; 1]> = self
                    .by_client
                    .get(&(proto, dst))?
                    .iter()
                    .copied()
                    .filter(from_server)
                    .collect();
                self.pick(&candidates, f, Form::ReplyOtherSource, false)
            }
        }
    }

    fn key_of_quoted(&self, q: &IpPacket) -> Option<(ConnKey, Form)> {
        let (q, wrapped) = match &q.transport {
            Transport::Tunnel { inner, .. } => (inner.as_ref(), true),
            _ => (q, false),
        };
        let (sp, dp) = match &q.transport {
            Transport::Tcp(t) => (t.src_port, t.dst_port),
            Transport::Udp(u) => (u.src_port, u.dst_port),
            Transport::Sctp(c) => (c.src_port, c.dst_port),
            _ => return None,
        };
        let (key, to_vip) = ConnKey::between(
            Proto(q.ip.protocol),
            SocketAddr::new(q.ip.src, sp),
            SocketAddr::new(q.ip.dst, dp),
            |a| self.vips.contains(a),
        )?;
        Some((key, Form::of(to_vip, wrapped)))
    }

    /// Among the connections on one key: the one whose leg here spans the frame, else the
    /// last to start (reference clock) before it, else the first.
    fn pick(
        &self,
        candidates: &[usize],
        f: &DecodedFrame,
        form: Form,
        icmp_error: bool,
    ) -> Option<Located> {
        let vantage = VantageId {
            capture: f.capture,
            interface: f.interface,
        };
        let found = |index| {
            Some(Located {
                index,
                form,
                icmp_error,
            })
        };
        if let [only] = candidates {
            return found(*only);
        }
        let spans = |i: &&usize| {
            self.conns[**i]
                .spans
                .iter()
                .any(|l| l.vantage == vantage && (l.first_ts_ns..=l.last_ts_ns).contains(&f.ts_ns))
        };
        if let Some(i) = candidates.iter().find(spans) {
            return found(*i);
        }
        let at = f.ts_ns - self.offsets.get(&vantage).copied().unwrap_or(0);
        let started = candidates
            .iter()
            .filter(|i| self.conns[**i].first_ts_ns <= at)
            .max_by_key(|i| self.conns[**i].first_ts_ns);
        found(*started.or_else(|| {
            candidates
                .iter()
                .min_by_key(|i| self.conns[**i].first_ts_ns)
        })?)
    }
}
