//! Pass 2: per vantage point, one small state per connection in flight, fed one frame at a time.
//!
//! A frame belongs to a connection when it is a request to a VIP (plain or tunnelled), a reply
//! from a VIP, a reply to a client's port from a real server's own address, or an ICMP error
//! quoting one of those. States end when the client starts over with a new initial sequence
//! number, shortly after the connection closed, or after a time without packets, and are then
//! handed on packed ([`LegEvent::Finished`]), to become [`super::Leg`]s when they are joined,
//! in the order they end; every state's start is announced too ([`LegEvent::Opened`]), so that
//! whoever joins legs knows what is still open.
//!
//! A closed TCP connection is packed ([`PackedLeg`], a few hundred bytes) as soon as a few more
//! have closed after it ([`RECENTLY_CLOSED`]), and waits so ([`TCP_CLOSED_LINGER_NS`]) for the
//! last ACK and a retransmitted FIN, which unpack, change and pack it again; after that a
//! tombstone of ~30 bytes stands in for it until TIME_WAIT is over, so that a straggler is
//! counted as one ([`LegTracker::late_packets`]) instead of starting a connection of its own.
//! Memory follows the connections open at once.
//!
//! A packet allocates nothing: the states of open connections are one block each, recycled
//! ([`SPARE_STATES`]), with their lists inline ([`LegState`]).

use super::leg_state::{record, LegState, Seen};
use super::oddity::{Oddity, OddityCounts, Sender};
use super::packed::{pack, unpack_into, PackedLeg};
use super::probes::{HealthChecks, ProbeTracker};
use super::{ConnKey, EvidenceKind, Form};
use crate::decode::packet::{DecodedFrame, IpPacket, Tcp, Transport};
use crate::topology::config::ExpectedService;
use crate::topology::view::IpView;
use crate::topology::{FrameRef, MacAddr, Proto, Role, Topology, VantageId};
use smallvec::SmallVec;
// FxHash: these tables are looked up for every packet, where SipHash was a quarter of
// all instructions of `verify` (callgrind).
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use std::net::{IpAddr, SocketAddr};
use table::Table;
use tombstones::Tombstones;

mod fingerprint;
mod members;
mod table;
pub(crate) use table::V4Key;
mod tombstones;

use fingerprint::fold;
pub(crate) use fingerprint::JOIN_FINGERPRINT_BITS;
pub use fingerprint::{fingerprint, join_fingerprint};
pub use members::Members;

/// How often (by the capture's clock) states are checked for expiry.
const SWEEP_EVERY_NS: i64 = 1_000_000_000;
/// A TCP connection closed by FIN both ways or RST keeps its whole state this long after its
/// last packet: the client's last ACK follows at once, a retransmitted FIN within a
/// retransmission timeout (200 ms to a few seconds).
pub const TCP_CLOSED_LINGER_NS: i64 = 3_000_000_000;
/// After that a tombstone marks the tuple as closed for the rest of TIME_WAIT (Linux: 60 s):
/// packets of the old connection arriving then are stragglers, not a new connection.
pub const TCP_TIME_WAIT_NS: i64 = 60_000_000_000;
/// A TCP connection of which only the client's SYNs were seen is given up after this long
/// without packets (IPVS keeps SYN_RECV 60 s; a client gives up after ~127 s, retrying SYN at
/// gaps of up to 64 s, so the state must outlast the longest gap).
pub const TCP_HALF_OPEN_IDLE_NS: i64 = 120_000_000_000;
/// Closed connections whose states are kept unpacked, the latest at each vantage point: the
/// last ACK follows a close within a round trip, and would otherwise unpack the state and pack
/// it again. At 20 000 connections a second these are the last 3 ms of closes.
const RECENTLY_CLOSED: usize = 64;
/// Blocks of states kept for reuse when a connection closes: enough for the connections that
/// open and close between two sweeps at a time, not the peak of all that were ever open.
const SPARE_STATES: usize = 64;
/// Room for events kept between drains: a packet makes one or two, a sweep may make
/// thousands.
const EVENTS_KEPT: usize = 1024;
/// Services up to which a reply from a real server's own address is matched by trying each
/// one; past this the tracker keeps, per client, the VIPs it has connections open to
/// ([`LegTracker::by_client`]).
const SERVICES_TRIED: usize = 16;

/// What the trackers need from the topology.
#[derive(Debug, Clone, Default)]
pub struct FlowContext {
    pub vips: Members<IpAddr>,
    pub real_servers: Members<IpAddr>,
    /// Real servers in the rules, when rules were given.
    pub configured_rs: Option<Members<IpAddr>>,
    pub director_addrs: Members<IpAddr>,
    pub director_macs: Members<MacAddr>,
    /// The services (protocol, VIP and port): a reply from a real server's own address is
    /// matched to the client's connection to one of them.
    pub services: HashSet<(Proto, SocketAddr)>,
    /// The MACs a plain packet from a VIP may come from (directors', real servers', the
    /// client side's); None when no director capture shows which MACs the client side uses,
    /// and a packet from a VIP cannot be judged by its MAC ([`Oddity::VipFromUnknownMac`]).
    pub vip_senders: Option<Members<MacAddr>>,
}

impl FlowContext {
    pub fn new(t: &Topology, expected: Option<&[ExpectedService]>) -> FlowContext {
        FlowContext {
            vips: t.vips.iter().map(|v| v.addr).collect(),
            real_servers: t.real_servers.iter().map(|h| h.addr).collect(),
            configured_rs: expected.map(|e| {
                e.iter()
                    .flat_map(|s| s.real_servers.iter().map(|r| r.addr))
                    .collect()
            }),
            director_addrs: t.directors.iter().map(|h| h.addr).collect(),
            director_macs: t
                .directors
                .iter()
                .flat_map(|h| h.macs.iter().copied())
                .collect(),
            services: t
                .services
                .iter()
                .map(|s| (s.proto, SocketAddr::new(s.vip, s.port)))
                .collect(),
            vip_senders: t
                .vantages
                .iter()
                .any(|v| v.role == Role::Director)
                .then(|| {
                    let hosts = t.directors.iter().chain(&t.real_servers);
                    // A director or real server whose own capture was given is known even
                    // when no tunnel shows it (every request bypassed the director to it).
                    let captured = t.vantages.iter().filter(|v| {
                        v.id.interface < super::mirror::HOP_BASE
                            && matches!(v.role, Role::Director | Role::RealServer)
                    });
                    hosts
                        .flat_map(|h| h.macs.iter().copied())
                        .chain(t.client_side_macs.iter().copied())
                        .chain(captured.filter_map(|v| v.local_mac))
                        .collect()
                }),
        }
    }
}

/// Timeouts that end a connection's state at one vantage point.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// A UDP "connection" ends after this long without packets (IPVS default: 300 s).
    pub udp_idle_ns: i64,
    /// An open TCP connection is given up after this long without packets (IPVS: 900 s).
    pub tcp_idle_ns: i64,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            udp_idle_ns: 300_000_000_000,
            tcp_idle_ns: 900_000_000_000,
        }
    }
}

/// What a tracker hands on, in the order it happened.
#[derive(Debug)]
pub enum LegEvent {
    /// A state began for this key: a leg of it will follow.
    Opened(ConnKey),
    /// A state ended: the leg, packed, for the join to unpack, and its last packet's time
    /// (this capture's clock). The joining side schedules the key by that time: carried here,
    /// it does not read the packed leg this capture's thread has just written, which was a
    /// cache miss per leg and most of the joining side's time per event.
    Finished(ConnKey, PackedLeg, i64),
}

/// (protocol, client address:port) -> the VIP:ports it has a state open to.
type OpenByClient = HashMap<(Proto, SocketAddr), SmallVec<[SocketAddr; 1]>>;

/// How long a state may go without packets before it ends: the UDP timeout, a closed TCP
/// connection's linger, a half-open one's patience, or the TCP timeout.
fn idle_limit(proto: Proto, s: &LegState, one_way: bool, t: Timeouts) -> i64 {
    idle_limit_closed(proto, proto == Proto::TCP && s.closed(one_way), s, t)
}

/// [`idle_limit`] for a state already known to be a closed TCP connection or not.
fn idle_limit_closed(proto: Proto, closed: bool, s: &LegState, t: Timeouts) -> i64 {
    if proto != Proto::TCP {
        t.udp_idle_ns
    } else if closed {
        TCP_CLOSED_LINGER_NS
    } else if s.half_open() {
        TCP_HALF_OPEN_IDLE_NS.min(t.tcp_idle_ns)
    } else {
        t.tcp_idle_ns
    }
}

/// A connection in the table of one vantage point.
enum Slot {
    Open(Box<LegState>),
    /// A TCP connection closed, lingering for its last packets: packed, as it is handed on,
    /// with its last packet's time beside it, which is all a sweep asks of most slots.
    Closed(i64, PackedLeg),
}

impl Slot {
    fn last_ts(&self) -> i64 {
        match self {
            Slot::Open(s) => s.last_ts,
            Slot::Closed(t, _) => *t,
        }
    }
}

/// Why a state is looked up.
#[derive(Clone, Copy)]
enum Lookup {
    /// A packet of the connection, which begins a new one on the same tuple when it is a
    /// client SYN with a new initial sequence number (`new_isn`) or comes after the idle
    /// timeout.
    Packet { new_isn: Option<u32> },
    /// An ICMP error about the connection, which never begins a new one.
    IcmpError,
}

/// Feeds on the frames of one vantage point; yields its legs.
pub struct LegTracker<'c> {
    ctx: &'c FlowContext,
    timeouts: Timeouts,
    /// Boxed or packed: a table's capacity doubles past the peak of connections in flight, and
    /// an empty slot then costs a compact key and 24 bytes instead of a whole state.
    active: Table,
    /// What opening and ending a state touches besides the table.
    out: Handoff,
    /// Closed connections not packed yet, in the order they closed ([`RECENTLY_CLOSED`]).
    recently_closed: std::collections::VecDeque<ConnKey>,
    last_sweep_ns: Option<i64>,
    /// No state can have outlived its timeout before this time (the earliest `last_ts +
    /// timeout` of the states in flight, or earlier): a sweep before it skips the scan of every
    /// state, so that states waiting out a long timeout (UDP's 300 s) are not visited every
    /// second.
    next_expiry_ns: Option<i64>,
    /// Health checks: the director's own connections to real servers' addresses.
    probes: ProbeTracker,
}

/// Everything opening and ending a state touches besides the table: the vantage point, the
/// events handed on, the blocks kept for reuse, the tombstones. Apart from the table so that a
/// state can be ended and another opened in its slot while the table's entry is held: one
/// lookup per packet.
struct Handoff {
    vantage: VantageId,
    role: Role,
    /// Raw IP link (a tunnel device such as tunl0): packets arrive here decapsulated.
    raw_ip: bool,
    /// Blocks of ended states, for the next connections to open in.
    spare: Spare,
    /// Where states are packed before they get a block of their own size.
    pack_buf: Vec<u8>,
    /// With more than [`SERVICES_TRIED`] services: the VIP:ports each (protocol, client
    /// address:port) has a state open to, so that a reply from a real server's own address
    /// finds its connection without a lookup per service (65 536 UDP services made that a scan
    /// per packet). None with few services, where trying each costs less than keeping this.
    by_client: Option<OpenByClient>,
    tombstones: Tombstones,
    events: Vec<LegEvent>,
    legs: usize,
    /// Packets about the deployment that fit nowhere, by kind ([`Oddity`]).
    oddities: OddityCounts,
    /// On a hop of a mirror port ([`super::mirror`]), the hop's MAC: a frame the hop sent is
    /// handed on again as the receiver's, where its oddity is counted, not twice.
    hop_mac: Option<MacAddr>,
}

impl Handoff {
    /// Whether this vantage point sees only the client's side of a connection.
    fn one_way(&self) -> bool {
        self.role == Role::Director || (self.role == Role::RealServer && self.raw_ip)
    }

    fn pack(&mut self, s: &LegState) -> PackedLeg {
        pack(s, self.vantage, self.role, self.raw_ip, &mut self.pack_buf)
    }

    /// A new state for `key`, announced.
    fn open(&mut self, key: ConnKey, ts: i64) -> Slot {
        self.announce(key);
        Slot::Open(fresh_state(&mut self.spare, ts))
    }

    /// A state began for `key`.
    fn announce(&mut self, key: ConnKey) {
        self.events.push(LegEvent::Opened(key));
        if let Some(open) = &mut self.by_client {
            open.entry((key.proto, key.client))
                .or_default()
                .push(key.vip);
        }
    }

    /// Hands a state on as a leg; a closed TCP connection leaves a tombstone while packets
    /// may still come (`time_wait`).
    fn end(&mut self, key: ConnKey, slot: Slot, time_wait: bool) {
        if let Some(open) = &mut self.by_client {
            if let Some(vips) = open.get_mut(&(key.proto, key.client)) {
                vips.retain(|v| *v != key.vip);
                if vips.is_empty() {
                    open.remove(&(key.proto, key.client));
                }
            }
        }
        let (closed, packed) = match slot {
            Slot::Open(s) => {
                let closed = s.closed(self.one_way());
                let p = self.pack(&s);
                recycle(&mut self.spare, s);
                (closed, p)
            }
            Slot::Closed(_, p) => (true, p),
        };
        if time_wait && key.proto == Proto::TCP && closed {
            self.tombstones.bury(&key, packed.last_ts(), packed.isn());
        }
        self.legs += 1;
        let last_ts = packed.last_ts();
        self.events.push(LegEvent::Finished(key, packed, last_ts));
    }
}

impl<'c> LegTracker<'c> {
    pub fn new(
        vantage: VantageId,
        role: Role,
        raw_ip: bool,
        ctx: &'c FlowContext,
        timeouts: Timeouts,
    ) -> Self {
        LegTracker {
            ctx,
            timeouts,
            active: Table::default(),
            out: Handoff {
                vantage,
                role,
                raw_ip,
                spare: Vec::new(),
                pack_buf: Vec::new(),
                by_client: (ctx.services.len() > SERVICES_TRIED).then(HashMap::default),
                tombstones: Tombstones::default(),
                events: Vec::new(),
                legs: 0,
                oddities: OddityCounts::default(),
                hop_mac: None,
            },
            recently_closed: std::collections::VecDeque::new(),
            last_sweep_ns: None,
            next_expiry_ns: None,
            probes: ProbeTracker::default(),
        }
    }

    /// Marks this tracker as a mirror port's hop of `mac` ([`Handoff::hop_mac`]).
    pub fn on_hop(mut self, mac: Option<MacAddr>) -> Self {
        self.out.hop_mac = mac;
        self
    }

    /// The packets that fit nowhere so far, by kind.
    pub fn oddities(&self) -> &OddityCounts {
        &self.out.oddities
    }

    /// Counts a packet of `f` as an oddity of `kind`, unless this hop sent it (the receiving
    /// hop counts it).
    #[cold]
    fn odd(&mut self, kind: Oddity, f: &DecodedFrame) {
        if self
            .out
            .hop_mac
            .is_some_and(|m| f.packet.link.src_mac == Some(m.0))
        {
            return;
        }
        let from = crate::topology::view::IpView::of(&f.packet).map(|v| Sender {
            addr: v.outer.map_or(v.ip.src, |o| o.ip.src),
            mac: f.packet.link.src_mac.map(MacAddr),
        });
        self.out.oddities.bump(kind, FrameRef::of(f), from);
    }

    /// The health checks seen here ([`ProbeTracker`]), once the capture has ended.
    pub fn health_checks(&mut self) -> Vec<HealthChecks> {
        self.probes.finish(self.out.vantage)
    }

    /// Connections currently held in memory.
    pub fn in_flight(&self) -> usize {
        self.active.len()
    }

    /// Legs finished so far.
    pub fn legs(&self) -> usize {
        self.out.legs
    }

    /// Packets of a closed TCP connection that came after its state was dropped, during
    /// TIME_WAIT: counted here, not made into a connection of their own.
    pub fn late_packets(&self) -> u64 {
        self.out.tombstones.late_packets()
    }

    /// Moves what happened since the last call (states opened, legs finished, in order) to
    /// `out`, each with this vantage point.
    #[inline]
    pub fn drain_events(&mut self, out: &mut Vec<(VantageId, LegEvent)>) {
        // Called after every frame, and most frames neither open nor end a state.
        if !self.out.events.is_empty() {
            self.move_events(out);
        }
    }

    #[inline(never)]
    fn move_events(&mut self, out: &mut Vec<(VantageId, LegEvent)>) {
        let v = self.out.vantage;
        out.extend(self.out.events.drain(..).map(|e| (v, e)));
        // A sweep that ended many states at once does not keep their room.
        if self.out.events.capacity() > EVENTS_KEPT {
            self.out.events.shrink_to(EVENTS_KEPT);
        }
    }

    pub fn push(&mut self, f: &DecodedFrame) {
        self.sweep(f.ts_ns);
        let Some(v) = IpView::of(&f.packet) else {
            return;
        };
        let at = FrameRef::of(f);
        if let Some(icmp) = v.icmp() {
            if let Some(q) = &icmp.quoted {
                self.icmp_error(&v, icmp, q, at);
            }
            return;
        }
        if !v.has_ports() {
            return;
        }
        let proto = Proto(v.ip.protocol);
        let (sp, dp) = v.ports();
        let src = SocketAddr::new(v.ip.src, sp);
        let dst = SocketAddr::new(v.ip.dst, dp);
        let vips = &self.ctx.vips;
        let (form, key) =
            if let Some((key, to_vip)) = ConnKey::between(proto, src, dst, |a| vips.contains(a)) {
                if !to_vip && v.outer.is_none() && self.unknown_vip_sender(f) {
                    self.odd(Oddity::VipFromUnknownMac, f);
                }
                (Form::of(to_vip, v.outer.is_some()), key)
            } else if let Some(k) = self.reply_target(proto, SocketAddr::new(v.ip.dst, dp)) {
                // From a real server the traffic or the rules know, or from the service's port:
                // a server the captures at hand do not show (client + one RS captured) answering
                // from its own address is still that connection's reply.
                let plausible = self.ctx.real_servers.contains(&v.ip.src)
                    || self
                        .ctx
                        .configured_rs
                        .as_ref()
                        .is_some_and(|c| c.contains(&v.ip.src))
                    || sp == k.vip.port();
                if !plausible {
                    self.odd(Oddity::ReplyFromUnknownSource, f);
                    return;
                }
                (Form::ReplyOtherSource, k)
            } else {
                return self.probes.push(self.ctx, &v, f);
            };
        let tcp = v.tcp();
        let new_isn = tcp
            .filter(|t| form.is_request() && t.has(Tcp::SYN) && !t.has(Tcp::ACK))
            .map(|t| t.seq);
        let (ctx, role) = (self.ctx, self.out.role);
        let (one_way, timeouts) = (self.out.one_way(), self.timeouts);
        let Some((state, unpacked)) = self.state(key, f.ts_ns, Lookup::Packet { new_isn }) else {
            // A straggler of a connection in TIME_WAIT (counted as a late packet too).
            self.out.oddities.bump(Oddity::LatePacket, at, None);
            return;
        };
        let queued = !unpacked && key.proto == Proto::TCP && state.closed(one_way);
        if let (Some(isn), None) = (new_isn, state.isn) {
            state.isn = Some(isn);
        }
        state.last_ts = state.last_ts.max(f.ts_ns);
        record(state, &Seen { form, v: &v, f, at }, ctx, role);
        // Asked once a packet: both the timeout and the handing on follow from it.
        let closed = key.proto == Proto::TCP && state.closed(one_way);
        let limit = idle_limit_closed(key.proto, closed, state, timeouts);
        let deadline = state.last_ts.saturating_add(limit);
        if !queued && closed {
            self.closed_now(key);
        }
        self.expires_by(deadline);
    }

    /// A connection has closed (or a packed one had a straggler): it is packed once
    /// [`RECENTLY_CLOSED`] more have closed here.
    fn closed_now(&mut self, key: ConnKey) {
        self.recently_closed.push_back(key);
        if self.recently_closed.len() > RECENTLY_CLOSED {
            if let Some(k) = self.recently_closed.pop_front() {
                self.pack_closed(k);
            }
        }
    }

    /// A state may now outlive its timeout at `deadline`.
    fn expires_by(&mut self, deadline: i64) {
        self.next_expiry_ns = Some(self.next_expiry_ns.map_or(deadline, |d| d.min(deadline)));
    }

    /// From when a sweep could end a state or forget a tombstone.
    fn work_due_ns(&self) -> Option<i64> {
        let states = self
            .next_expiry_ns
            .filter(|_| !self.active.is_empty())
            .map(|d| d.saturating_add(1));
        match (states, self.out.tombstones.due_ns()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The earliest time at which [`LegTracker::advance`] could end a state or forget a
    /// tombstone: not before the next sweep, nor before something is due. None when nothing is
    /// in flight.
    pub fn wake_at(&self) -> Option<i64> {
        let work = self.work_due_ns()?;
        Some(match self.last_sweep_ns {
            Some(t) => work.max(t.saturating_add(SWEEP_EVERY_NS)),
            None => work,
        })
    }

    /// Whether a plain packet from a VIP comes from a MAC no known host uses (never judged
    /// without a director capture, nor on a link without MACs).
    #[inline]
    fn unknown_vip_sender(&self, f: &DecodedFrame) -> bool {
        match (&self.ctx.vip_senders, f.packet.link.src_mac) {
            (Some(known), Some(mac)) => !known.contains(&MacAddr(mac)),
            _ => false,
        }
    }

    /// The open connection that a packet from elsewhere (not the VIP) to this client address
    /// and port answers: the client's connection to one of the services, the latest active if
    /// it has several.
    fn reply_target(&self, proto: Proto, client: SocketAddr) -> Option<ConnKey> {
        let key = |vip: SocketAddr| ConnKey { proto, client, vip };
        let latest = |k: ConnKey| self.active.get(&k).map(|s| (s.last_ts(), k));
        match &self.out.by_client {
            Some(open) => open
                .get(&(proto, client))?
                .iter()
                .filter(|vip| self.ctx.services.contains(&(proto, **vip)))
                .filter_map(|vip| latest(key(*vip)))
                .max(),
            None => self
                .ctx
                .services
                .iter()
                .filter(|(p, _)| *p == proto)
                .filter_map(|(_, vip)| latest(key(*vip)))
                .max(),
        }
        .map(|(_, k)| k)
    }

    /// The state of `key`, in one lookup of the table, and whether it was packed (a closed
    /// connection's, unpacked for a straggler). A packet of a connection begins a new one on
    /// the same tuple when it is a client SYN with a new initial sequence number, or a packet
    /// after the idle timeout: the old state ends in place (an event says so, and another that
    /// the new one opened). None for a straggler of a connection in TIME_WAIT, which has no
    /// state.
    fn state(&mut self, key: ConnKey, ts: i64, why: Lookup) -> Option<(&mut LegState, bool)> {
        let (out, timeouts) = (&mut self.out, self.timeouts);
        let (slot, opened) = self.active.get_or_open(key, || {
            let new_isn = match why {
                Lookup::Packet { new_isn } => new_isn,
                Lookup::IcmpError => None,
            };
            (!out.tombstones.straggler(&key, new_isn)).then(|| out.open(key, ts))
        })?;
        if let (false, Lookup::Packet { new_isn }) = (opened, why) {
            if begins_anew(slot, key.proto, ts, new_isn, timeouts) {
                // Ended before the new one is announced, in the order it happened.
                let old = std::mem::replace(slot, Slot::Open(fresh_state(&mut out.spare, ts)));
                out.end(key, old, true);
                out.announce(key);
            }
        }
        let mut unpacked = false;
        if let Slot::Closed(_, p) = slot {
            let mut s = fresh_state(&mut out.spare, ts);
            unpack_into(p, out.vantage, &mut s);
            *slot = Slot::Open(s);
            unpacked = true;
        }
        match slot {
            Slot::Open(s) => Some((s, unpacked)),
            Slot::Closed(..) => unreachable!("unpacked above"),
        }
    }

    /// Packs the state of `key` if it is still that of a closed connection (it may have ended
    /// since, and the tuple opened again).
    fn pack_closed(&mut self, key: ConnKey) {
        let one_way = self.out.one_way();
        let Some(slot) = self.active.get_mut(&key) else {
            return;
        };
        if let Slot::Open(s) = slot {
            if !s.closed(one_way) {
                return;
            }
            let p = self.out.pack(s);
            let last_ts = s.last_ts;
            if let Slot::Open(s) = std::mem::replace(slot, Slot::Closed(last_ts, p)) {
                recycle(&mut self.out.spare, s);
            }
        }
    }

    /// Lets states age to `now` (this capture's clock) without a frame of this vantage point:
    /// the capture's other interfaces keep time for it. Ends something only from
    /// [`LegTracker::wake_at`] on.
    pub fn advance(&mut self, now: i64) {
        self.sweep(now);
    }

    /// Asked for every frame and due once a second: the test inlined, the sweep not.
    #[inline]
    fn sweep(&mut self, now: i64) {
        let due = self
            .last_sweep_ns
            .is_none_or(|t| now - t >= SWEEP_EVERY_NS || now < t);
        if due {
            self.sweep_now(now);
        }
    }

    #[inline(never)]
    fn sweep_now(&mut self, now: i64) {
        self.last_sweep_ns = Some(now);
        // Nothing outlived its timeout and no TIME_WAIT is over: the scan would end nothing.
        if self.work_due_ns().is_none_or(|due| now < due) {
            return;
        }
        let t = self.timeouts;
        let one_way = self.out.one_way();
        let mut next: Option<i64> = None;
        let mut expired: Vec<ConnKey> = Vec::new();
        for (k, slot) in self.active.iter() {
            let deadline = match slot {
                Slot::Open(s) => s.last_ts.saturating_add(idle_limit(k.proto, s, one_way, t)),
                Slot::Closed(last, _) => last.saturating_add(TCP_CLOSED_LINGER_NS),
            };
            if now > deadline {
                expired.push(k);
            } else {
                next = Some(next.map_or(deadline, |d| d.min(deadline)));
            }
        }
        self.next_expiry_ns = next;
        self.out.events.reserve_exact(expired.len());
        for k in expired {
            if let Some(s) = self.active.remove(&k) {
                self.out.end(k, s, true);
            }
        }
        self.out.tombstones.expire(now);
    }

    fn icmp_error(
        &mut self,
        v: &IpView,
        icmp: &crate::decode::packet::Icmp,
        q: &IpPacket,
        at: FrameRef,
    ) {
        // An error about a tunnelled packet (a hop between director and real server) quotes
        // the outer header; the connection is the inner packet's.
        let (q, tunnel) = match &q.transport {
            Transport::Tunnel { inner, tunnel, .. } => (inner.as_ref(), Some(*tunnel)),
            _ => (q, None),
        };
        let (sp, dp) = match &q.transport {
            Transport::Tcp(t) => (t.src_port, t.dst_port),
            Transport::Udp(u) => (u.src_port, u.dst_port),
            _ => return,
        };
        let proto = Proto(q.ip.protocol);
        // The quoted packet is one the ICMP's receiver sent: a request (client -> VIP) or a
        // reply (VIP -> client).
        let vips = &self.ctx.vips;
        let Some((key, about_request)) = ConnKey::between(
            proto,
            SocketAddr::new(q.ip.src, sp),
            SocketAddr::new(q.ip.dst, dp),
            |a| vips.contains(a),
        ) else {
            return;
        };
        let (t, code) = (icmp.icmp_type, icmp.code);
        let frag = (!icmp.v6 && t == 3 && code == 4) || (icmp.v6 && t == 2);
        let unreachable = !frag && ((!icmp.v6 && t == 3) || (icmp.v6 && t == 1));
        let (one_way, timeouts) = (self.out.one_way(), self.timeouts);
        let Some((state, unpacked)) = self.state(key, at.ts_ns, Lookup::IcmpError) else {
            self.out.oddities.bump(Oddity::LatePacket, at, None);
            return;
        };
        state.last_ts = state.last_ts.max(at.ts_ns);
        let deadline = state
            .last_ts
            .saturating_add(idle_limit(key.proto, state, one_way, timeouts));
        let (src, dst) = (v.ip.src, v.ip.dst);
        let kind = if frag {
            EvidenceKind::IcmpFragNeeded
        } else if unreachable {
            if about_request {
                state.icmp_unreachable = true;
            }
            if tunnel.is_some() && about_request {
                EvidenceKind::TunnelRefused
            } else {
                EvidenceKind::IcmpUnreachable
            }
        } else {
            EvidenceKind::IcmpOther
        };
        let mtu = icmp.mtu;
        state.note(kind, at, || {
            let mut d = format!("ICMP type {t} code {code} from {src} to {dst}");
            if let Some(k) = tunnel {
                d.push_str(&format!(
                    ", about a {} packet",
                    crate::decode::defect::tunnel_name(k)
                ));
            }
            if let Some(m) = mtu {
                d.push_str(&format!(", MTU {m}"));
            }
            d
        });
        // An ICMP error does not close a connection: only a packed one needs packing again.
        if unpacked {
            self.closed_now(key);
        }
        self.expires_by(deadline);
    }

    /// Ends every state (end of the capture): what happened before, then their legs, moved to
    /// `out` as [`LegTracker::drain_events`] does. Each leg goes straight to `out`, not through
    /// this tracker's own list first, which would hold every leg of the capture's last seconds
    /// twice at once. No tombstones: no packet can come after the capture's end.
    pub fn finish(&mut self, out: &mut Vec<(VantageId, LegEvent)>) {
        self.drain_events(out);
        out.reserve_exact(self.active.len());
        let v = self.out.vantage;
        for (k, s) in self.active.take() {
            self.out.end(k, s, false);
            out.extend(self.out.events.drain(..).map(|e| (v, e)));
        }
    }
}

/// Whether a packet of an existing state begins a new connection on its tuple: a client SYN
/// with another initial sequence number (when the state has one, or saw packets rather than
/// only ICMP errors), or any packet after the idle timeout.
fn begins_anew(slot: &Slot, proto: Proto, ts: i64, new_isn: Option<u32>, t: Timeouts) -> bool {
    let (isn, some_form) = match slot {
        Slot::Open(s) => (s.isn, !s.forms.is_empty()),
        Slot::Closed(_, p) => (p.isn(), p.some_form()),
    };
    match new_isn {
        Some(new_isn) => isn != Some(new_isn) && (isn.is_some() || some_form),
        None => {
            let idle = if proto == Proto::TCP {
                t.tcp_idle_ns
            } else {
                t.udp_idle_ns
            };
            ts - slot.last_ts() > idle
        }
    }
}

/// The blocks themselves, not states: they go back into the table as they are.
#[allow(clippy::vec_box)]
type Spare = Vec<Box<LegState>>;

/// A block for a new state: a recycled one when there is one.
fn fresh_state(spare: &mut Spare, ts: i64) -> Box<LegState> {
    match spare.pop() {
        Some(mut s) => {
            s.reset(ts);
            s
        }
        None => Box::new(LegState::new(ts)),
    }
}

fn recycle(spare: &mut Spare, s: Box<LegState>) {
    if spare.len() < SPARE_STATES {
        spare.push(s);
    }
}
