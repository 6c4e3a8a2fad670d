//! Pass 2: per vantage point, one small state per connection in flight, fed one frame at a time.
//!
//! A frame belongs to a connection when it is a request to a VIP (plain or tunnelled), a reply
//! from a VIP, a reply to a client's port from a real server's own address, or an ICMP error
//! quoting one of those. States end when the client starts over with a new initial sequence
//! number, shortly after the connection closed, or after a time without packets, and are then
//! handed on as [`Leg`]s ([`LegEvent::Finished`]), in the order they end; every state's start is
//! announced too ([`LegEvent::Opened`]), so that whoever joins legs knows what is still open.
//!
//! A closed TCP connection keeps its whole state only briefly ([`TCP_CLOSED_LINGER_NS`], for the
//! last ACK and a retransmitted FIN); after that a tombstone of ~30 bytes stands in for it until
//! TIME_WAIT is over, so that a straggler is counted as one ([`LegTracker::late_packets`])
//! instead of starting a connection of its own. Memory follows the connections open at once.

use super::history::{History, SeqTracker};
use super::{
    ConnKey, DirStats, Evidence, EvidenceKind, Fingerprint, Form, Leg, MacList, OuterPair, TcpFlags,
};
use crate::decode::packet::{DecodedFrame, IpPacket, Tcp, Transport};
use crate::topology::config::ExpectedService;
use crate::topology::view::IpView;
use crate::topology::{FrameRef, MacAddr, Proto, Role, Topology, VantageId};
use smallvec::SmallVec;
// FxHash: these tables are looked up for every packet, where SipHash was a quarter of
// all instructions of `verify` (callgrind).
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use std::net::{IpAddr, SocketAddr};

/// How many packets of each form keep a fingerprint, to join the legs of one connection.
const FINGERPRINTS_PER_FORM: usize = 8;
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
const MAX_MACS: usize = 4;
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

/// The key is the table's, not repeated here: a slot of the table is key and state, and the
/// tables of closed connections lingering for stragglers are the largest thing in this pass.
struct LegState {
    isn: Option<u32>,
    first_ts: i64,
    last_ts: i64,
    forms: [Option<Box<DirStats>>; 4],
    seq: [SeqTracker; 4],
    /// The request form seen first here: the one history and timings follow (the other is the
    /// same packets again, wrapped or unwrapped by this host).
    canonical: Option<Form>,
    history: History,
    flags: TcpFlags,
    syn_ts: Option<i64>,
    syn_ack_ts: Option<i64>,
    request_data_ts: Option<i64>,
    reply_data_ts: Option<i64>,
    icmp_unreachable: bool,
    evidence: Vec<Evidence>,
    fingerprints: Vec<Fingerprint>,
}

impl LegState {
    fn new(ts: i64) -> LegState {
        LegState {
            isn: None,
            first_ts: ts,
            last_ts: ts,
            forms: Default::default(),
            seq: Default::default(),
            canonical: None,
            history: History::default(),
            flags: TcpFlags::default(),
            syn_ts: None,
            syn_ack_ts: None,
            request_data_ts: None,
            reply_data_ts: None,
            icmp_unreachable: false,
            evidence: Vec::new(),
            fingerprints: Vec::new(),
        }
    }

    /// Closed by RST, or by FIN both ways. Where the server's side cannot be seen (`one_way`:
    /// a director, a real server's tunl0), the client's FIN is the end, as in IPVS's
    /// input-only state table; the ACKs that follow keep the state alive while they come.
    fn closed(&self, one_way: bool) -> bool {
        let f = &self.flags;
        f.client_rst || f.server_rst || (f.client_fin && (f.server_fin || one_way))
    }

    /// Only the client's SYNs so far: nothing answered, nothing else sent.
    fn half_open(&self) -> bool {
        let f = &self.flags;
        f.syn
            && !f.syn_ack
            && f.client_ack_ns.is_none()
            && f.client_fin_ns.is_none()
            && self.forms[Form::Reply.index()].is_none()
            && self.forms[Form::ReplyOtherSource.index()].is_none()
    }

    fn note(&mut self, kind: EvidenceKind, at: FrameRef, detail: impl FnOnce() -> String) {
        if let Some(e) = self.evidence.iter_mut().find(|e| e.kind == kind) {
            e.count += 1;
        } else {
            self.evidence.push(Evidence {
                kind,
                count: 1,
                first: at,
                detail: detail(),
            });
        }
    }
}

/// What a tracker hands on, in the order it happened.
#[derive(Debug)]
pub enum LegEvent {
    /// A state began for this key: a leg of it will follow.
    Opened(ConnKey),
    /// A state ended.
    Finished(Box<Leg>),
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

/// Feeds on the frames of one vantage point; yields its legs.
pub struct LegTracker<'c> {
    vantage: VantageId,
    role: Role,
    /// Raw IP link (a tunnel device such as tunl0): packets arrive here decapsulated.
    raw_ip: bool,
    ctx: &'c FlowContext,
    timeouts: Timeouts,
    /// Boxed: a table's capacity doubles past the peak of connections in flight, and an empty
    /// slot then costs a pointer instead of a whole state.
    active: HashMap<ConnKey, Box<LegState>>,
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
        let state = self.state(key, f.ts_ns);
        if let (Some(isn), None) = (new_isn, state.isn) {
            state.isn = Some(isn);
        }
        state.last_ts = state.last_ts.max(f.ts_ns);
        record(state, form, &v, f, at, ctx, role);
        let limit = idle_limit(key.proto, state, one_way, timeouts);
        let deadline = state.last_ts.saturating_add(limit);
        self.expires_by(deadline);
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
        let latest = |k: ConnKey| self.active.get(&k).map(|s| (s.last_ts, k));
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

    fn state(&mut self, key: ConnKey, ts: i64) -> &mut LegState {
        let events = &mut self.events;
        let by_client = &mut self.by_client;
        self.active.entry(key).or_insert_with(|| {
            events.push(LegEvent::Opened(key));
            if let Some(open) = by_client {
                open.entry((key.proto, key.client))
                    .or_default()
                    .push(key.vip);
            }
            Box::new(LegState::new(ts))
        })
    }

    /// A client SYN with a new initial sequence number, or a UDP packet after the idle
    /// timeout, begins a new connection on the same tuple.
    ///
    /// Returns whether the packet goes on to a state: not when it is a TIME_WAIT straggler.
    fn admit(&mut self, key: ConnKey, ts: i64, new_isn: Option<u32>) -> bool {
        let Some(s) = self.active.get(&key) else {
            return !self.straggler(&key, new_isn);
        };
        let new = match new_isn {
            Some(isn) => {
                s.isn != Some(isn) && (s.isn.is_some() || s.forms.iter().any(|f| f.is_some()))
            }
            None => {
                let idle = if key.proto == Proto::TCP {
                    self.timeouts.tcp_idle_ns
                } else {
                    self.timeouts.udp_idle_ns
                };
                ts - s.last_ts > idle
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
    fn end(&mut self, key: ConnKey, s: Box<LegState>) {
        if let Some(open) = &mut self.by_client {
            if let Some(vips) = open.get_mut(&(key.proto, key.client)) {
                vips.retain(|v| *v != key.vip);
                if vips.is_empty() {
                    open.remove(&(key.proto, key.client));
                }
            }
        }
        if key.proto == Proto::TCP && s.closed(self.one_way()) {
            let h = tuple_hash(&key);
            let second = self.second_of(s.last_ts);
            let t = Tombstone {
                isn: s.isn.unwrap_or(0),
                closed_s: second | if s.isn.is_some() { ISN_KNOWN } else { 0 },
            };
            self.closed.insert(h, t);
            self.closed_order
                .push_back((second, [(h >> 32) as u32, h as u32]));
        }
        let leg = self.finish_state(key, *s);
        self.legs += 1;
        self.events.push(LegEvent::Finished(Box::new(leg)));
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
        for (k, s) in &self.active {
            let deadline = s.last_ts.saturating_add(idle_limit(k.proto, s, one_way, t));
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
        let state = self.state(key, at.ts_ns);
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
        self.expires_by(deadline);
    }

    /// Ends every state (end of the capture); their legs are among the events to drain.
    pub fn finish(&mut self) {
        for (k, s) in std::mem::take(&mut self.active) {
            self.end(k, s);
        }
    }

    fn finish_state(&mut self, k: ConnKey, mut s: LegState) -> Leg {
        // On a tunnel device (tunl0) requests are seen after decapsulation: no anomaly there.
        if self.role == Role::RealServer && !self.raw_ip {
            if let (Some(r), None) = (
                &s.forms[Form::Request.index()],
                &s.forms[Form::RequestWrapped.index()],
            ) {
                let (first, n) = (r.first, r.packets);
                s.evidence.push(Evidence {
                    kind: EvidenceKind::UnwrappedRequestAtRealServer,
                    count: n,
                    first,
                    detail: "requests to the VIP arrived without a tunnel, and no tunnelled copy \
                             was seen here"
                        .into(),
                });
            }
        }
        // A closed state lingers for stragglers and a leg is kept to the end: no spare capacity.
        for st in s.forms.iter_mut().flatten() {
            st.outer.shrink_to_fit();
            st.sources.shrink_to_fit();
        }
        s.evidence.shrink_to_fit();
        let [request, request_wrapped, reply, reply_other_source] = s.forms;
        let tcp = (k.proto == Proto::TCP).then_some(s.flags);
        let handshake_ns = s.syn_ts.zip(s.syn_ack_ts).map(|(a, b)| b - a);
        let first_response_ns = s.request_data_ts.zip(s.reply_data_ts).map(|(a, b)| b - a);
        s.evidence.sort_by_key(|e| e.kind);
        Leg {
            vantage: self.vantage,
            role: self.role,
            key: k,
            isn: s.isn,
            first_ts_ns: s.first_ts,
            last_ts_ns: s.last_ts,
            request,
            request_wrapped,
            reply,
            reply_other_source,
            history: s.history.as_str().to_string(),
            tcp,
            handshake_ns,
            first_response_ns,
            icmp_unreachable: s.icmp_unreachable,
            // Decided when the legs are joined, knowing what this vantage point can see.
            outcome: None,
            evidence: s.evidence,
            fingerprints: s.fingerprints.into_boxed_slice(),
        }
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

fn add_mac(v: &mut MacList, m: Option<[u8; 6]>) {
    if let Some(m) = m.map(MacAddr) {
        if !v.contains(&m) && v.len() < MAX_MACS {
            v.push(m);
        }
    }
}

fn record(
    s: &mut LegState,
    form: Form,
    v: &IpView,
    f: &DecodedFrame,
    at: FrameRef,
    ctx: &FlowContext,
    role: Role,
) {
    let ts = f.ts_ns;
    let (payload_len, _) = v.payload();
    let retrans = v
        .tcp()
        .is_some_and(|t| s.seq[form.index()].retransmission(t));
    let link = &f.packet.link;
    let st = s.forms[form.index()].get_or_insert_with(|| {
        Box::new(DirStats {
            first_ts_ns: ts,
            last_ts_ns: ts,
            packets: 0,
            ip_bytes: 0,
            payload_bytes: 0,
            retransmissions: 0,
            first: at,
            ttl: v.ip.ttl,
            src_macs: MacList::new(),
            dst_macs: MacList::new(),
            outer: Vec::new(),
            sources: Vec::new(),
        })
    });
    st.first_ts_ns = st.first_ts_ns.min(ts);
    st.last_ts_ns = st.last_ts_ns.max(ts);
    st.packets += 1;
    st.ip_bytes += u64::from(v.ip.total_len);
    st.payload_bytes += u64::from(payload_len);
    st.retransmissions += u64::from(retrans);
    add_mac(&mut st.src_macs, link.src_mac);
    add_mac(&mut st.dst_macs, link.dst_mac);
    if let Some(o) = v.outer {
        match st
            .outer
            .iter_mut()
            .find(|p| p.src == o.ip.src && p.dst == o.ip.dst)
        {
            Some(p) => p.packets += 1,
            None => {
                // Almost always one pair: no room for four.
                st.outer.reserve_exact(1);
                st.outer.push(OuterPair {
                    src: o.ip.src,
                    dst: o.ip.dst,
                    packets: 1,
                })
            }
        }
    }
    if form == Form::ReplyOtherSource {
        let src = SocketAddr::new(v.ip.src, v.ports().0);
        if !st.sources.contains(&src) && st.sources.len() < MAX_MACS {
            st.sources.push(src);
        }
    }

    // Fingerprints of the first few distinct packets of each form; a value seen twice here is
    // ambiguous and dropped.
    let value = fingerprint(v);
    if let Some(i) = s.fingerprints.iter().position(|p| p.same(form, value)) {
        s.fingerprints.remove(i);
    } else if s.fingerprints.iter().filter(|p| p.form() == form).count() < FINGERPRINTS_PER_FORM {
        // Grown four at a time rather than doubled: ten or so per leg is the rule, and the
        // states of closed connections linger.
        if s.fingerprints.len() == s.fingerprints.capacity() {
            s.fingerprints.reserve_exact(4);
        }
        s.fingerprints.push(Fingerprint::new(form, value, ts));
    }

    anomalies(s, form, v, f, at, ctx, role, retrans);

    // History and timings follow one copy of each packet.
    if form.is_request() && s.canonical.is_none() {
        s.canonical = Some(form);
    }
    let canonical = form == Form::Reply || Some(form) == s.canonical;
    if !canonical {
        return;
    }
    let from_client = form.is_request();
    match v.tcp() {
        Some(t) => {
            s.history.tcp(from_client, t, retrans);
            let syn = t.has(Tcp::SYN);
            let fl = &mut s.flags;
            if from_client {
                fl.syn |= syn && !t.has(Tcp::ACK);
                fl.client_fin |= t.has(Tcp::FIN);
                fl.client_rst |= t.has(Tcp::RST);
                // tcp_state_idx() in ip_vs_proto_tcp.c: RST, then SYN, then FIN, then ACK.
                let first = if t.has(Tcp::RST) {
                    &mut fl.client_rst_ns
                } else if syn {
                    &mut fl.client_syn_ns
                } else if t.has(Tcp::FIN) {
                    &mut fl.client_fin_ns
                } else {
                    &mut fl.client_ack_ns
                };
                first.get_or_insert(ts);
            } else {
                fl.syn_ack |= syn && t.has(Tcp::ACK);
                fl.server_fin |= t.has(Tcp::FIN);
                fl.server_rst |= t.has(Tcp::RST);
            }
            if syn && !t.has(Tcp::ACK) && from_client && s.syn_ts.is_none() {
                s.syn_ts = Some(ts);
            }
            if syn && t.has(Tcp::ACK) && !from_client && s.syn_ack_ts.is_none() {
                s.syn_ack_ts = Some(ts);
            }
        }
        None => s.history.datagram(from_client, payload_len),
    }
    if payload_len > 0 {
        if from_client && s.request_data_ts.is_none() {
            s.request_data_ts = Some(ts);
        } else if !from_client && s.request_data_ts.is_some() && s.reply_data_ts.is_none() {
            s.reply_data_ts = Some(ts);
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn anomalies(
    s: &mut LegState,
    form: Form,
    v: &IpView,
    f: &DecodedFrame,
    at: FrameRef,
    ctx: &FlowContext,
    role: Role,
    retrans: bool,
) {
    let link = &f.packet.link;
    if retrans {
        let seq = v.tcp().map_or(0, |t| t.seq);
        s.note(EvidenceKind::Retransmission, at, || {
            format!("{form:?} segment repeats sequence space (seq {seq})")
        });
    }
    if v.tcp().is_some_and(|t| t.has(Tcp::RST)) {
        let src = v.ip.src;
        let kind = if form.is_request() {
            EvidenceKind::ResetFromClient
        } else {
            EvidenceKind::ResetFromServer
        };
        s.note(kind, at, || format!("RST from {src}"));
    }
    if form == Form::ReplyOtherSource {
        let src = v.ip.src;
        s.note(EvidenceKind::ReplyFromOtherSource, at, || {
            format!("reply to the client from {src}, not from the VIP")
        });
    }
    if matches!(form, Form::Reply | Form::ReplyOtherSource) {
        if let Some(m) = link.dst_mac.map(MacAddr) {
            if ctx.director_macs.contains(&m) {
                s.note(EvidenceKind::ReplyToDirectorMac, at, || {
                    format!("reply sent to {m}, a director's MAC")
                });
            }
        }
        if role == Role::Director {
            s.note(EvidenceKind::ReplyAtDirector, at, || {
                "a reply crossed the director".into()
            });
        }
    }
    if let (Form::RequestWrapped, Some(o)) = (form, v.outer) {
        if let Some(conf) = &ctx.configured_rs {
            if !conf.contains(&o.ip.dst) {
                let d = o.ip.dst;
                s.note(EvidenceKind::WrappedToUnknownRs, at, || {
                    format!("tunnelled to {d}, not a real server in the rules")
                });
            }
        }
    }
}
