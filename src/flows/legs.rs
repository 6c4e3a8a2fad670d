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

use super::leg_state::{record, LegState};
use super::packed::{pack, unpack_into, PackedLeg};
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
/// Services up to which a reply from a real server's own address is matched by trying each
/// one; past this the tracker keeps, per client, the VIPs it has connections open to
/// ([`LegTracker::by_client`]).
const SERVICES_TRIED: usize = 16;

/// What the trackers need from the topology.
#[derive(Debug, Clone, Default)]
pub struct FlowContext {
    pub vips: HashSet<IpAddr>,
    pub real_servers: HashSet<IpAddr>,
    /// Real servers in the rules, when rules were given.
    pub configured_rs: Option<HashSet<IpAddr>>,
    pub director_addrs: HashSet<IpAddr>,
    pub director_macs: HashSet<MacAddr>,
    /// The services (protocol, VIP and port): a reply from a real server's own address is
    /// matched to the client's connection to one of them.
    pub services: HashSet<(Proto, SocketAddr)>,
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

/// The identity of a closed connection's tuple, in 8 bytes: tombstones are many (every
/// connection closed in the last minute) and need no more than to be recognised.
fn tuple_hash(k: &ConnKey) -> u64 {
    use std::hash::{Hash, Hasher};
    // SipHash with fixed keys: the same in every run, so reports are reproducible.
    let mut h = std::hash::DefaultHasher::new();
    k.hash(&mut h);
    h.finish()
}

/// A closed connection's tuple during TIME_WAIT, in 8 bytes: the client's ISN and when the
/// connection's last packet was seen, in whole seconds since the tracker's first tombstone (31
/// bits, 68 years), with the top bit set when the ISN is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Tombstone {
    isn: u32,
    closed_s: u32,
}

const ISN_KNOWN: u32 = 1 << 31;

impl Tombstone {
    fn isn(&self) -> Option<u32> {
        (self.closed_s & ISN_KNOWN != 0).then_some(self.isn)
    }
    fn second(&self) -> u32 {
        self.closed_s & !ISN_KNOWN
    }
}

/// (protocol, client address:port) -> the VIP:ports it has a state open to.
type OpenByClient = HashMap<(Proto, SocketAddr), SmallVec<[SocketAddr; 1]>>;

/// How long a state may go without packets before it ends: the UDP timeout, a closed TCP
/// connection's linger, a half-open one's patience, or the TCP timeout.
fn idle_limit(proto: Proto, s: &LegState, one_way: bool, t: Timeouts) -> i64 {
    if proto != Proto::TCP {
        t.udp_idle_ns
    } else if s.closed(one_way) {
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

/// Feeds on the frames of one vantage point; yields its legs.
pub struct LegTracker<'c> {
    vantage: VantageId,
    role: Role,
    /// Raw IP link (a tunnel device such as tunl0): packets arrive here decapsulated.
    raw_ip: bool,
    ctx: &'c FlowContext,
    timeouts: Timeouts,
    /// Boxed or packed: a table's capacity doubles past the peak of connections in flight, and
    /// an empty slot then costs 24 bytes instead of a whole state.
    active: HashMap<ConnKey, Slot>,
    /// Blocks of ended states, for the next connections to open in.
    spare: Spare,
    /// Where states are packed before they get a block of their own size.
    pack_buf: Vec<u8>,
    /// Closed connections not packed yet, in the order they closed ([`RECENTLY_CLOSED`]).
    recently_closed: std::collections::VecDeque<ConnKey>,
    /// With more than [`SERVICES_TRIED`] services: the VIP:ports each (protocol, client
    /// address:port) has a state open to, so that a reply from a real server's own address
    /// finds its connection without a lookup per service (65 536 UDP services made that a scan
    /// per packet). None with few services, where trying each costs less than keeping this.
    by_client: Option<OpenByClient>,
    /// Closed TCP tuples in TIME_WAIT, by [`tuple_hash`], and the order they expire in.
    closed: HashMap<u64, Tombstone>,
    /// (second, tuple hash as two halves): 12 bytes a tombstone, in the order they came.
    closed_order: std::collections::VecDeque<(u32, [u32; 2])>,
    /// Where the tombstones' seconds count from (this capture's clock).
    closed_base_ns: Option<i64>,
    events: Vec<LegEvent>,
    legs: usize,
    late_packets: u64,
    last_sweep_ns: Option<i64>,
    /// No state can have outlived its timeout before this time (the earliest `last_ts +
    /// timeout` of the states in flight, or earlier): a sweep before it skips the scan of every
    /// state, so that states waiting out a long timeout (UDP's 300 s) are not visited every
    /// second.
    next_expiry_ns: Option<i64>,
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
            vantage,
            role,
            raw_ip,
            ctx,
            timeouts,
            active: HashMap::default(),
            spare: Vec::new(),
            pack_buf: Vec::new(),
            recently_closed: std::collections::VecDeque::new(),
            by_client: (ctx.services.len() > SERVICES_TRIED).then(HashMap::default),
            closed: HashMap::default(),
            closed_order: std::collections::VecDeque::new(),
            closed_base_ns: None,
            events: Vec::new(),
            legs: 0,
            late_packets: 0,
            last_sweep_ns: None,
            next_expiry_ns: None,
        }
    }

    /// Connections currently held in memory.
    pub fn in_flight(&self) -> usize {
        self.active.len()
    }

    /// Whether this vantage point sees only the client's side of a connection.
    fn one_way(&self) -> bool {
        self.role == Role::Director || (self.role == Role::RealServer && self.raw_ip)
    }

    /// Legs finished so far.
    pub fn legs(&self) -> usize {
        self.legs
    }

    /// Packets of a closed TCP connection that came after its state was dropped, during
    /// TIME_WAIT: counted here, not made into a connection of their own.
    pub fn late_packets(&self) -> u64 {
        self.late_packets
    }

    /// Moves what happened since the last call (states opened, legs finished, in order) to
    /// `out`, each with this vantage point.
    pub fn drain_events(&mut self, out: &mut Vec<(VantageId, LegEvent)>) {
        let v = self.vantage;
        out.extend(self.events.drain(..).map(|e| (v, e)));
    }

    /// A packet for a tuple with no open state but in TIME_WAIT, that does not open a new
    /// connection: a straggler.
    fn straggler(&mut self, key: &ConnKey, new_isn: Option<u32>) -> bool {
        if key.proto != Proto::TCP || self.closed.is_empty() {
            return false;
        }
        let h = tuple_hash(key);
        let Some(t) = self.closed.get(&h) else {
            return false;
        };
        match new_isn {
            // A new SYN: the tuple is reused.
            Some(isn) if t.isn() != Some(isn) => {
                self.closed.remove(&h);
                false
            }
            _ => {
                self.late_packets += 1;
                true
            }
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
        let (form, key) = if self.ctx.vips.contains(&v.ip.dst) {
            let form = if v.outer.is_some() {
                Form::RequestWrapped
            } else {
                Form::Request
            };
            (
                form,
                ConnKey {
                    proto,
                    client: src,
                    vip: dst,
                },
            )
        } else if self.ctx.vips.contains(&v.ip.src) {
            (
                Form::Reply,
                ConnKey {
                    proto,
                    client: dst,
                    vip: src,
                },
            )
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
                return;
            }
            (Form::ReplyOtherSource, k)
        } else {
            return;
        };
        let tcp = v.tcp();
        let new_isn = tcp
            .filter(|t| form.is_request() && t.has(Tcp::SYN) && !t.has(Tcp::ACK))
            .map(|t| t.seq);
        if !self.admit(key, f.ts_ns, new_isn) {
            return;
        }
        let (ctx, role) = (self.ctx, self.role);
        let (one_way, timeouts) = (self.one_way(), self.timeouts);
        let (state, unpacked) = self.state(key, f.ts_ns);
        let queued = !unpacked && key.proto == Proto::TCP && state.closed(one_way);
        if let (Some(isn), None) = (new_isn, state.isn) {
            state.isn = Some(isn);
        }
        state.last_ts = state.last_ts.max(f.ts_ns);
        record(state, form, &v, f, at, ctx, role);
        let limit = idle_limit(key.proto, state, one_way, timeouts);
        let deadline = state.last_ts.saturating_add(limit);
        if !queued && key.proto == Proto::TCP && state.closed(one_way) {
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

    /// When the oldest tombstone's TIME_WAIT is over.
    fn tombstones_due_ns(&self) -> Option<i64> {
        let &(second, _) = self.closed_order.front()?;
        let wait_s = TCP_TIME_WAIT_NS / 1_000_000_000;
        let base = self.closed_base_ns?;
        Some(base.saturating_add((i64::from(second) + wait_s + 1) * 1_000_000_000))
    }

    /// From when a sweep could end a state or forget a tombstone.
    fn work_due_ns(&self) -> Option<i64> {
        let states = self
            .next_expiry_ns
            .filter(|_| !self.active.is_empty())
            .map(|d| d.saturating_add(1));
        match (states, self.tombstones_due_ns()) {
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

    /// The open connection that a packet from elsewhere (not the VIP) to this client address
    /// and port answers: the client's connection to one of the services, the latest active if
    /// it has several.
    fn reply_target(&self, proto: Proto, client: SocketAddr) -> Option<ConnKey> {
        let key = |vip: SocketAddr| ConnKey { proto, client, vip };
        let latest = |k: ConnKey| self.active.get(&k).map(|s| (s.last_ts(), k));
        match &self.by_client {
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

    /// The state of `key`, opened if there is none (an event says so), and whether it was
    /// packed (a closed connection's, unpacked for a straggler).
    fn state(&mut self, key: ConnKey, ts: i64) -> (&mut LegState, bool) {
        let events = &mut self.events;
        let by_client = &mut self.by_client;
        let spare = &mut self.spare;
        let slot = self.active.entry(key).or_insert_with(|| {
            events.push(LegEvent::Opened(key));
            if let Some(open) = by_client {
                open.entry((key.proto, key.client))
                    .or_default()
                    .push(key.vip);
            }
            Slot::Open(fresh_state(spare, ts))
        });
        let mut unpacked = false;
        if let Slot::Closed(_, p) = slot {
            let mut s = fresh_state(spare, ts);
            unpack_into(p, self.vantage, &mut s);
            *slot = Slot::Open(s);
            unpacked = true;
        }
        match slot {
            Slot::Open(s) => (s, unpacked),
            Slot::Closed(..) => unreachable!("unpacked above"),
        }
    }

    /// Packs the state of `key` if it is still that of a closed connection (it may have ended
    /// since, and the tuple opened again).
    fn pack_closed(&mut self, key: ConnKey) {
        let one_way = self.one_way();
        let Some(slot) = self.active.get_mut(&key) else {
            return;
        };
        if let Slot::Open(s) = slot {
            if !s.closed(one_way) {
                return;
            }
            let p = pack(s, self.vantage, self.role, self.raw_ip, &mut self.pack_buf);
            let last_ts = s.last_ts;
            if let Slot::Open(s) = std::mem::replace(slot, Slot::Closed(last_ts, p)) {
                recycle(&mut self.spare, s);
            }
        }
    }

    /// A client SYN with a new initial sequence number, or a UDP packet after the idle
    /// timeout, begins a new connection on the same tuple.
    ///
    /// Returns whether the packet goes on to a state: not when it is a TIME_WAIT straggler.
    fn admit(&mut self, key: ConnKey, ts: i64, new_isn: Option<u32>) -> bool {
        let Some(slot) = self.active.get(&key) else {
            return !self.straggler(&key, new_isn);
        };
        let (isn, some_form) = match slot {
            Slot::Open(s) => (s.isn, !s.forms.is_empty()),
            Slot::Closed(_, p) => (p.isn(), p.some_form()),
        };
        let new = match new_isn {
            Some(new_isn) => isn != Some(new_isn) && (isn.is_some() || some_form),
            None => {
                let idle = if key.proto == Proto::TCP {
                    self.timeouts.tcp_idle_ns
                } else {
                    self.timeouts.udp_idle_ns
                };
                ts - slot.last_ts() > idle
            }
        };
        if new {
            if let Some(s) = self.active.remove(&key) {
                self.end(key, s);
            }
        }
        true
    }

    /// Hands a state on as a leg; a closed TCP connection leaves a tombstone.
    fn end(&mut self, key: ConnKey, slot: Slot) {
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
                let p = pack(&s, self.vantage, self.role, self.raw_ip, &mut self.pack_buf);
                recycle(&mut self.spare, s);
                (closed, p)
            }
            Slot::Closed(_, p) => (true, p),
        };
        if key.proto == Proto::TCP && closed {
            let h = tuple_hash(&key);
            let second = self.second_of(packed.last_ts());
            let isn = packed.isn();
            let t = Tombstone {
                isn: isn.unwrap_or(0),
                closed_s: second | if isn.is_some() { ISN_KNOWN } else { 0 },
            };
            self.closed.insert(h, t);
            self.closed_order
                .push_back((second, [(h >> 32) as u32, h as u32]));
        }
        self.legs += 1;
        let last_ts = packed.last_ts();
        self.events.push(LegEvent::Finished(key, packed, last_ts));
    }

    /// Whole seconds since the first tombstone (0 before it, or for a time before it).
    fn second_of(&mut self, ts: i64) -> u32 {
        let base = *self.closed_base_ns.get_or_insert(ts);
        (ts.saturating_sub(base).max(0) / 1_000_000_000).min(i64::from(!ISN_KNOWN)) as u32
    }

    /// Lets states age to `now` (this capture's clock) without a frame of this vantage point:
    /// the capture's other interfaces keep time for it. Ends something only from
    /// [`LegTracker::wake_at`] on.
    pub fn advance(&mut self, now: i64) {
        self.sweep(now);
    }

    fn sweep(&mut self, now: i64) {
        let due = self
            .last_sweep_ns
            .is_none_or(|t| now - t >= SWEEP_EVERY_NS || now < t);
        if !due {
            return;
        }
        self.last_sweep_ns = Some(now);
        // Nothing outlived its timeout and no TIME_WAIT is over: the scan would end nothing.
        if self.work_due_ns().is_none_or(|due| now < due) {
            return;
        }
        let t = self.timeouts;
        let one_way = self.one_way();
        let mut next: Option<i64> = None;
        let mut expired: Vec<ConnKey> = Vec::new();
        for (k, slot) in &self.active {
            let deadline = match slot {
                Slot::Open(s) => s.last_ts.saturating_add(idle_limit(k.proto, s, one_way, t)),
                Slot::Closed(last, _) => last.saturating_add(TCP_CLOSED_LINGER_NS),
            };
            if now > deadline {
                expired.push(*k);
            } else {
                next = Some(next.map_or(deadline, |d| d.min(deadline)));
            }
        }
        self.next_expiry_ns = next;
        for k in expired {
            if let Some(s) = self.active.remove(&k) {
                self.end(k, s);
            }
        }
        // Tombstones leave in the order they came, when TIME_WAIT is over; a tuple closed again
        // since has a newer one, which stays.
        let now_s = self.second_of(now);
        let wait_s = (TCP_TIME_WAIT_NS / 1_000_000_000) as u32;
        while let Some(&(second, [hi, lo])) = self.closed_order.front() {
            if now_s.saturating_sub(second) <= wait_s {
                break;
            }
            self.closed_order.pop_front();
            let h = (u64::from(hi) << 32) | u64::from(lo);
            if self.closed.get(&h).is_some_and(|t| t.second() == second) {
                self.closed.remove(&h);
            }
        }
        if self.closed.capacity() > 1024 && self.closed.len() < self.closed.capacity() / 4 {
            self.closed.shrink_to_fit();
        }
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
        let q = match &q.transport {
            Transport::Tunnel { inner, .. } => inner.as_ref(),
            _ => q,
        };
        let (sp, dp) = match &q.transport {
            Transport::Tcp(t) => (t.src_port, t.dst_port),
            Transport::Udp(u) => (u.src_port, u.dst_port),
            _ => return,
        };
        let proto = Proto(q.ip.protocol);
        // The quoted packet is one the ICMP's receiver sent: a request (client -> VIP) or a
        // reply (VIP -> client).
        let (key, about_request) = if self.ctx.vips.contains(&q.ip.dst) {
            let k = ConnKey {
                proto,
                client: SocketAddr::new(q.ip.src, sp),
                vip: SocketAddr::new(q.ip.dst, dp),
            };
            (k, true)
        } else if self.ctx.vips.contains(&q.ip.src) {
            let k = ConnKey {
                proto,
                client: SocketAddr::new(q.ip.dst, dp),
                vip: SocketAddr::new(q.ip.src, sp),
            };
            (k, false)
        } else {
            return;
        };
        let (t, code) = (icmp.icmp_type, icmp.code);
        let frag = (!icmp.v6 && t == 3 && code == 4) || (icmp.v6 && t == 2);
        let unreachable = !frag && ((!icmp.v6 && t == 3) || (icmp.v6 && t == 1));
        if !self.active.contains_key(&key) && self.straggler(&key, None) {
            return;
        }
        let (one_way, timeouts) = (self.one_way(), self.timeouts);
        let (state, unpacked) = self.state(key, at.ts_ns);
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
            EvidenceKind::IcmpUnreachable
        } else {
            EvidenceKind::IcmpOther
        };
        let mtu = icmp.mtu;
        state.note(kind, at, || {
            let mut d = format!("ICMP type {t} code {code} from {src} to {dst}");
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

    /// Ends every state (end of the capture); their legs are among the events to drain.
    pub fn finish(&mut self) {
        for (k, s) in std::mem::take(&mut self.active) {
            self.end(k, s);
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
            *s = LegState::new(ts);
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

/// The identity of a packet across captures: fields no router or tunnel changes.
pub fn fingerprint(v: &IpView) -> u64 {
    let mut h = Fnv::default();
    h.u64(u64::from(v.ip.id));
    h.u64(u64::from(v.ip.protocol));
    let (sp, dp) = v.ports();
    h.u64(u64::from(sp) << 16 | u64::from(dp));
    if let Some(t) = v.tcp() {
        h.u64(u64::from(t.seq) << 32 | u64::from(t.ack));
        h.u64(u64::from(t.flags));
    }
    let (len, hash) = v.payload();
    h.u64(u64::from(len));
    h.u64(hash);
    h.0
}

struct Fnv(u64);
impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}
impl Fnv {
    fn u64(&mut self, x: u64) {
        for b in x.to_le_bytes() {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}
