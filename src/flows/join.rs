//! Grouping the legs of one connection seen at several vantage points, and deciding what the
//! connection as a whole did.
//!
//! Legs are grouped by the client-side tuple (by [`super::stream`], which hands over a key's
//! legs once no capture can add to them). Within a tuple, legs at different vantage points
//! belong together when they share a packet (fingerprint), or have the same client initial
//! sequence number, or (lacking both) overlap in time once each capture's clock offset is
//! removed. Two legs of the same vantage point are never joined: they are two connections on a
//! reused port.

use super::clock::ClockOffset;
use super::leg_state::LegState;
use super::packed::{unpack_into, PackedLeg};
use super::{ConnKey, Connection, Form, Leg, Outcome, RsSource};
use crate::topology::{MacAddr, Role, Topology, VantageId};
// FxHash: these tables are looked up for every packet, where SipHash was a quarter of
// all instructions of `verify` (callgrind).
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use smallvec::SmallVec;
use std::net::IpAddr;
use std::ops::Range;

/// Slack when joining legs by time alone, after clock correction.
pub(crate) const TIME_SLACK_NS: i64 = 1_000_000_000;

/// Link types that carry bare IP packets (no MACs, no direction): LINKTYPE_RAW, IPV4, IPV6 and
/// the old DLT_RAW values.
pub fn is_raw_ip(link_type: u32) -> bool {
    matches!(link_type, 12 | 14 | 101 | 228 | 229)
}

/// Legs of one tuple compared with one another, by ISN or by time, at most: each with this
/// many of the next in order. A connection is seen at six places at most, a reused tuple a few
/// times over, so in practice every pair is compared; a packet seen on thousands of interfaces
/// of one file costs a bounded number of pairs per leg instead of the square of them.
const PAIRS_PER_LEG: usize = 16;

/// Vantage points up to which a cluster's are a list rather than a set.
const FEW_VANTAGES: usize = 8;

/// The vantage points of a cluster: a list for the handful a connection is seen at, a set
/// past that, so that joining a cluster of thousands of legs with another is not a scan of one
/// for each leg of the other.
enum Vantages {
    Few(SmallVec<[VantageId; FEW_VANTAGES]>),
    Many(HashSet<VantageId>),
}

impl Vantages {
    fn len(&self) -> usize {
        match self {
            Vantages::Few(v) => v.len(),
            Vantages::Many(v) => v.len(),
        }
    }
    fn contains(&self, x: &VantageId) -> bool {
        match self {
            Vantages::Few(v) => v.contains(x),
            Vantages::Many(v) => v.contains(x),
        }
    }
    /// Whether any of these is among `other`'s.
    fn meets(&self, other: &Vantages) -> bool {
        match self {
            Vantages::Few(v) => v.iter().any(|x| other.contains(x)),
            Vantages::Many(v) => v.iter().any(|x| other.contains(x)),
        }
    }
    fn absorb(&mut self, other: Vantages) {
        if let Vantages::Few(v) = self {
            if v.len() + other.len() > FEW_VANTAGES {
                *self = Vantages::Many(v.drain(..).collect());
            }
        }
        match (self, other) {
            (Vantages::Few(v), Vantages::Few(o)) => v.extend(o),
            (Vantages::Few(v), Vantages::Many(o)) => v.extend(o),
            (Vantages::Many(v), Vantages::Few(o)) => v.extend(o),
            (Vantages::Many(v), Vantages::Many(o)) => v.extend(o),
        }
    }
}

/// Legs of one key joined step by step (union-find): never two legs of one vantage point, nor
/// two different initial sequence numbers, in one cluster.
#[derive(Default)]
struct Clusters {
    parent: Vec<usize>,
    /// The vantage points of each cluster (at its root).
    vantages: Vec<Vantages>,
    isn: Vec<Option<u32>>,
}

impl Clusters {
    fn reset(&mut self, legs: &[Leg]) {
        self.parent.clear();
        self.parent.extend(0..legs.len());
        self.vantages.clear();
        self.vantages.extend(
            legs.iter()
                .map(|l| Vantages::Few(SmallVec::from_slice(&[l.vantage]))),
        );
        self.isn.clear();
        self.isn.extend(legs.iter().map(|l| l.isn));
    }
    fn root(&mut self, mut i: usize) -> usize {
        while self.parent[i] != i {
            self.parent[i] = self.parent[self.parent[i]];
            i = self.parent[i];
        }
        i
    }
    /// Joins two clusters unless that would put two legs of one vantage point, or two
    /// different initial sequence numbers, together.
    fn join(&mut self, a: usize, b: usize) -> bool {
        let (ra, rb) = (self.root(a), self.root(b));
        if ra == rb {
            return true;
        }
        let (small, large) = if self.vantages[ra].len() <= self.vantages[rb].len() {
            (&self.vantages[ra], &self.vantages[rb])
        } else {
            (&self.vantages[rb], &self.vantages[ra])
        };
        if small.meets(large) {
            return false;
        }
        if let (Some(x), Some(y)) = (self.isn[ra], self.isn[rb]) {
            if x != y {
                return false;
            }
        }
        // The smaller set goes into the larger: each vantage point moves O(log n) times.
        let mut vs = std::mem::replace(&mut self.vantages[rb], Vantages::Few(SmallVec::new()));
        if vs.len() > self.vantages[ra].len() {
            std::mem::swap(&mut vs, &mut self.vantages[ra]);
        }
        self.vantages[ra].absorb(vs);
        self.isn[ra] = self.isn[ra].or(self.isn[rb]);
        self.parent[rb] = ra;
        true
    }
}

/// What joining one key needs besides its legs, kept from key to key so that a join allocates
/// only what it hands on.
pub struct JoinScratch {
    /// Where each packed leg is unpacked before it becomes a [`Leg`].
    state: Box<LegState>,
    clusters: Clusters,
    /// (fingerprint value, leg): the legs that saw each packet, once sorted.
    fingerprints: Vec<(u64, usize)>,
    /// Runs of one value seen by more than one leg in `fingerprints`, with [`run_order`].
    runs: Vec<(Option<u64>, Range<usize>)>,
    /// (client ISN, leg).
    isns: Vec<(u32, usize)>,
    pairs: Vec<(usize, usize)>,
    span: Vec<(i64, i64)>,
    by_start: Vec<usize>,
    candidates: Vec<(i64, usize, usize)>,
    roots: Vec<usize>,
}

impl Default for JoinScratch {
    fn default() -> Self {
        JoinScratch {
            state: Box::new(LegState::new(0)),
            clusters: Clusters::default(),
            fingerprints: Vec::new(),
            runs: Vec::new(),
            isns: Vec::new(),
            pairs: Vec::new(),
            span: Vec::new(),
            by_start: Vec::new(),
            candidates: Vec::new(),
            roots: Vec::new(),
        }
    }
}

/// Whether nothing can keep these legs apart: each at a vantage point of its own, all with the
/// same client ISN, and few enough that each is compared by ISN with every other
/// ([`PAIRS_PER_LEG`]). No join between them can then be refused, whatever its order, and the
/// ISN alone joins them all: one connection, found without comparing packets or times (a TCP
/// connection whose SYN every capture saw, nearly every connection).
fn one_connection(legs: &[Leg]) -> bool {
    let Some(isn) = legs.first().and_then(|l| l.isn) else {
        return false;
    };
    legs.len() <= PAIRS_PER_LEG + 1
        && legs.iter().all(|l| l.isn == Some(isn))
        && legs
            .iter()
            .enumerate()
            .all(|(i, l)| legs[..i].iter().all(|m| m.vantage != l.vantage))
}

/// The legs of a run of one fingerprint value as one number that sorts as the list of them
/// does (a byte each, from the most significant, a shorter list first), when they fit: sorting
/// the runs of a key compares numbers rather than lists.
fn run_order(run: &[(u64, usize)]) -> Option<u64> {
    if run.len() > 8 {
        return None;
    }
    run.iter()
        .enumerate()
        .try_fold(0u64, |key, (k, &(_, leg))| {
            let byte = u8::try_from(leg + 1).ok()?;
            Some(key | u64::from(byte) << (8 * (7 - k)))
        })
}

/// What joining needs besides the legs: the topology, each capture's clock offset, and which
/// vantage points would have seen replies had there been any.
pub struct Joiner<'t> {
    topology: &'t Topology,
    offset: HashMap<VantageId, i64>,
    sees_replies: HashMap<VantageId, bool>,
    captured: Captured,
    /// [`Topology::director_macs`], asked for every connection without a tunnel.
    director_macs: Vec<MacAddr>,
}

/// Which roles and which real servers some capture was taken at: asked for every connection,
/// so found once rather than by a scan of every vantage point each time.
#[derive(Default)]
struct Captured {
    roles: HashSet<Role>,
    real_servers: HashSet<IpAddr>,
}

impl Captured {
    fn of(topology: &Topology) -> Captured {
        let mut c = Captured::default();
        for v in &topology.vantages {
            c.roles.insert(v.role);
            if let (Role::RealServer, Some(a)) = (v.role, v.address) {
                c.real_servers.insert(a);
            }
        }
        c
    }
}

impl<'t> Joiner<'t> {
    /// `saw_replies`: the vantage points where a packet from a VIP was seen at all.
    pub fn new(
        topology: &'t Topology,
        offsets: &[ClockOffset],
        saw_replies: &HashSet<VantageId>,
    ) -> Joiner<'t> {
        Joiner {
            topology,
            offset: offsets.iter().map(|o| (o.vantage, o.offset_ns)).collect(),
            sees_replies: reply_visibility(saw_replies, topology),
            captured: Captured::of(topology),
            director_macs: topology.director_macs(),
        }
    }

    /// A time of this leg's capture on the reference clock.
    pub fn corrected(&self, l: &Leg, t: i64) -> i64 {
        self.corrected_at(l.vantage, t)
    }

    pub fn corrected_at(&self, v: VantageId, t: i64) -> i64 {
        t - self.offset.get(&v).copied().unwrap_or(0)
    }

    /// The connections made of the legs of one key (one, or several where the tuple was
    /// reused), appended to `out` in the order they began. Legs at different vantage points
    /// belong together when they share a packet, have the same client ISN, or (lacking both)
    /// overlap in corrected time.
    pub fn join_key<'l>(
        &self,
        key: ConnKey,
        group: impl ExactSizeIterator<Item = (VantageId, &'l PackedLeg)>,
        scratch: &mut JoinScratch,
        out: &mut Vec<Connection>,
    ) {
        let corr = |l: &Leg, t: i64| self.corrected(l, t);
        let JoinScratch {
            state,
            clusters: c,
            fingerprints,
            runs,
            isns,
            pairs,
            span,
            by_start,
            candidates,
            roots,
        } = scratch;
        let mut legs: Vec<Leg> = Vec::with_capacity(group.len());
        fingerprints.clear();
        for (i, (vantage, packed)) in group.enumerate() {
            unpack_into(packed, vantage, state);
            fingerprints.extend(state.fingerprints.iter().map(|p| (p.value(), i)));
            let (role, raw_ip) = packed.vantage_kind();
            legs.push(state.take_leg(key, vantage, role, raw_ip));
        }
        if one_connection(&legs) {
            out.push(connection(key, legs, self, &corr));
            return;
        }
        c.reset(&legs);
        // Same packet seen at both: the legs that saw each value, in order, joined one to the
        // next, value lists taken in their own (lexicographic) order. A value seen by one leg
        // only joins nothing.
        fingerprints.sort_unstable();
        runs.clear();
        let mut start = 0;
        for i in 1..=fingerprints.len() {
            if i == fingerprints.len() || fingerprints[i].0 != fingerprints[start].0 {
                if fingerprints[start].1 != fingerprints[i - 1].1 {
                    runs.push((run_order(&fingerprints[start..i]), start..i));
                }
                start = i;
            }
        }
        let legs_of = |r: &Range<usize>| fingerprints[r.clone()].iter().map(|&(_, i)| i);
        runs.sort_unstable_by(|(a, ra), (b, rb)| match (a, b) {
            (Some(a), Some(b)) => a.cmp(b),
            _ => legs_of(ra).cmp(legs_of(rb)),
        });
        for (_, r) in runs.iter() {
            for w in fingerprints[r.clone()].windows(2) {
                c.join(w[0].1, w[1].1);
            }
        }
        // Same client initial sequence number: in index order, each leg with the next
        // [`PAIRS_PER_LEG`] of its ISN.
        isns.clear();
        isns.extend(
            legs.iter()
                .enumerate()
                .filter_map(|(i, l)| l.isn.map(|isn| (isn, i))),
        );
        isns.sort_unstable();
        pairs.clear();
        for (k, &(isn, i)) in isns.iter().enumerate() {
            let next = isns[k + 1..]
                .iter()
                .take(PAIRS_PER_LEG)
                .take_while(|(other, _)| *other == isn);
            pairs.extend(next.map(|&(_, j)| (i, j)));
        }
        pairs.sort_unstable();
        for &(i, j) in pairs.iter() {
            c.join(i, j);
        }
        // Overlapping in corrected time, nearest first: each leg against the next
        // [`PAIRS_PER_LEG`] by corrected start, the nearest there are.
        span.clear();
        span.extend(
            legs.iter()
                .map(|l| (corr(l, l.first_ts_ns), corr(l, l.last_ts_ns))),
        );
        by_start.clear();
        by_start.extend(0..legs.len());
        by_start.sort_unstable_by_key(|&i| (span[i].0, i));
        candidates.clear();
        for (k, &x) in by_start.iter().enumerate() {
            let end = by_start.len().min(k + 1 + PAIRS_PER_LEG);
            for &y in &by_start[k + 1..end] {
                let (i, j) = (x.min(y), x.max(y));
                if legs[i].vantage == legs[j].vantage {
                    continue;
                }
                let ((a0, a1), (b0, b1)) = (span[i], span[j]);
                let gap = (a0.max(b0) - a1.min(b1)).max(0);
                if gap <= TIME_SLACK_NS {
                    candidates.push(((a0 - b0).abs(), i, j));
                }
            }
        }
        candidates.sort();
        for &(_, i, j) in candidates.iter() {
            c.join(i, j);
        }
        // Clusters in the order of their roots, each with its legs in order.
        roots.clear();
        for i in 0..legs.len() {
            let r = c.root(i);
            roots.push(r);
        }
        let first = out.len();
        if roots.iter().all(|r| *r == roots[0]) {
            out.push(connection(key, legs, self, &corr));
        } else {
            let mut clusters: Vec<(usize, Vec<Leg>)> = Vec::new();
            for (l, &r) in legs.into_iter().zip(roots.iter()) {
                match clusters.binary_search_by_key(&r, |(root, _)| *root) {
                    Ok(k) => clusters[k].1.push(l),
                    Err(k) => clusters.insert(k, (r, vec![l])),
                }
            }
            out.extend(
                clusters
                    .into_iter()
                    .map(|(_, legs)| connection(key, legs, self, &corr)),
            );
        }
        out[first..].sort_by_key(|c| c.first_ts_ns);
    }
}

/// Whether a vantage point would have seen replies had there been any: a director never does
/// (replies go straight to the client); a raw-IP capture (a real server's tunl0) only if it
/// showed some.
fn reply_visibility(
    saw_replies: &HashSet<VantageId>,
    topology: &Topology,
) -> HashMap<VantageId, bool> {
    topology
        .vantages
        .iter()
        .map(|v| {
            let s = match v.role {
                Role::Director => false,
                _ => saw_replies.contains(&v.id) || !is_raw_ip(v.link_type),
            };
            (v.id, s)
        })
        .collect()
}

/// The order in which the legs are asked how a connection ended.
pub(crate) fn role_rank(r: Role) -> u8 {
    match r {
        Role::Client => 0,
        Role::RealServer => 1,
        Role::Other => 2,
        Role::Director => 3,
    }
}

fn path_rank(r: Role) -> u8 {
    match r {
        Role::Client => 0,
        Role::Director => 1,
        Role::RealServer => 2,
        Role::Other => 3,
    }
}

/// What one vantage point can say about how the connection ended.
pub fn leg_outcome(l: &Leg, sees_replies: bool) -> Option<Outcome> {
    let replied = l.reply.is_some();
    let requested = l.request.is_some() || l.request_wrapped.is_some();
    match l.tcp {
        Some(f) => {
            if f.syn && !f.syn_ack && (f.server_rst || l.icmp_unreachable) {
                return Some(Outcome::Refused);
            }
            if f.syn_ack || replied {
                return Some(if f.client_rst || f.server_rst {
                    Outcome::Reset
                } else if f.client_fin && f.server_fin {
                    Outcome::Completed
                } else {
                    Outcome::InProgress
                });
            }
            if l.icmp_unreachable {
                return Some(Outcome::Refused);
            }
            (sees_replies && requested).then_some(Outcome::Unanswered)
        }
        None => {
            if replied {
                Some(Outcome::Completed)
            } else if l.icmp_unreachable {
                Some(Outcome::Refused)
            } else {
                (sees_replies && requested).then_some(Outcome::Unanswered)
            }
        }
    }
}

fn connection(
    key: ConnKey,
    mut legs: Vec<Leg>,
    joiner: &Joiner,
    corr: &dyn Fn(&Leg, i64) -> i64,
) -> Connection {
    let (topology, sees_replies) = (joiner.topology, &joiner.sees_replies);
    legs.sort_by_key(|l| (path_rank(l.role), l.vantage));
    for l in &mut legs {
        let s = sees_replies.get(&l.vantage).copied().unwrap_or(false);
        l.outcome = leg_outcome(l, s);
    }
    let first_ts_ns = legs
        .iter()
        .map(|l| corr(l, l.first_ts_ns))
        .min()
        .unwrap_or(0);
    let last_ts_ns = legs
        .iter()
        .map(|l| corr(l, l.last_ts_ns))
        .max()
        .unwrap_or(0);
    let isn = legs.iter().find_map(|l| l.isn);

    let mut judged: SmallVec<[&Leg; 8]> = legs.iter().collect();
    judged.sort_by_key(|l| (role_rank(l.role), l.vantage));
    let decided = judged.iter().find_map(|l| l.outcome.map(|o| (o, *l)));
    let (outcome, from) = match decided {
        Some((o, l)) => (o, Some(l)),
        None => (Outcome::Unknown, None),
    };
    let shown = from.or(judged.first().copied());
    let (real_server, real_server_from) = real_server(&legs, topology, &joiner.director_macs);
    let reply_mac = judged
        .iter()
        .find_map(|l| l.reply.as_ref().and_then(|r| r.src_macs.first().copied()));
    let retransmissions = shown.map_or(0, |l| {
        let req = [Form::Request, Form::RequestWrapped]
            .iter()
            .filter_map(|f| l.form(*f).map(|s| s.retransmissions))
            .max()
            .unwrap_or(0);
        req + l.reply.as_ref().map_or(0, |r| r.retransmissions)
    });
    let unseen = unseen(&legs, &joiner.captured, real_server, outcome);
    let outcome_from = from.map(|l| l.vantage);
    let history = shown.map(|l| l.history.clone()).unwrap_or_default();
    let handshake_ns = shown.and_then(|l| l.handshake_ns);
    let first_response_ns = shown.and_then(|l| l.first_response_ns);
    drop(judged);
    legs.shrink_to_fit();
    Connection {
        id: 0,
        proto: key.proto,
        client: key.client,
        vip: key.vip,
        isn,
        first_ts_ns,
        last_ts_ns,
        real_server,
        real_server_from,
        reply_mac,
        outcome,
        outcome_from,
        history,
        handshake_ns,
        first_response_ns,
        retransmissions,
        legs,
        unseen,
    }
}

/// The real server: the tunnel's outer destination, else the RS capture that saw it, else the
/// RS whose MAC sent the replies, else a real server's address answering in place of the VIP.
fn real_server(
    legs: &[Leg],
    topology: &Topology,
    director_macs: &[MacAddr],
) -> (Option<IpAddr>, Option<RsSource>) {
    // Packets per outer destination; the most, and of equal counts the highest address.
    let mut outer: SmallVec<[(IpAddr, u64); 2]> = SmallVec::new();
    for l in legs {
        if let Some(w) = &l.request_wrapped {
            for p in &w.outer {
                match outer.iter_mut().find(|(a, _)| *a == p.dst) {
                    Some((_, n)) => *n += p.packets,
                    None => outer.push((p.dst, p.packets)),
                }
            }
        }
    }
    if let Some((a, _)) = outer.iter().max_by_key(|(a, n)| (*n, *a)) {
        return (Some(*a), Some(RsSource::Tunnel));
    }
    // Sent on unwrapped from the director to another host's MAC: direct routing (`-g`).
    if !director_macs.is_empty() {
        if let Some(a) = legs
            .iter()
            .filter(|l| l.role == Role::Director && l.request_wrapped.is_none())
            .filter_map(|l| l.request.as_ref())
            // The director's own copy; a frame flooded past it comes from the client's MAC.
            .filter(|r| r.src_macs.iter().any(|m| director_macs.contains(m)))
            .flat_map(|r| r.dst_macs.iter())
            .filter(|m| !director_macs.contains(m))
            .find_map(|m| topology.address_of_mac(*m))
        {
            return (Some(a), Some(RsSource::ForwardedMac));
        }
    }
    if let Some(a) = legs.iter().find_map(|l| {
        let v = topology.vantage(l.vantage)?;
        (v.role == Role::RealServer && l.request_reached(v.local_mac.as_slice()))
            .then_some(v.address)
            .flatten()
    }) {
        return (Some(a), Some(RsSource::RsCapture));
    }
    if let Some(a) = legs
        .iter()
        .filter_map(|l| l.reply.as_ref())
        .flat_map(|r| r.src_macs.iter())
        .find_map(|m| topology.real_server_by_mac(*m))
    {
        return (Some(a), Some(RsSource::ReplyMac));
    }
    if let Some(a) = legs
        .iter()
        .filter_map(|l| l.reply_other_source.as_ref())
        .flat_map(|r| r.sources.iter())
        .map(|s| s.ip())
        .find(|a| topology.is_real_server(*a))
    {
        return (Some(a), Some(RsSource::ReplySource));
    }
    (None, None)
}

fn unseen(legs: &[Leg], captured: &Captured, rs: Option<IpAddr>, outcome: Outcome) -> Vec<String> {
    let at = |r: Role| legs.iter().any(|l| l.role == r);
    let exists = |r: Role| captured.roles.contains(&r);
    let mut out = Vec::new();
    for (role, name) in [
        (Role::Client, "client"),
        (Role::Director, "director"),
        (Role::RealServer, "real server"),
    ] {
        if at(role) {
            continue;
        }
        if !exists(role) {
            out.push(format!("no {name} capture"));
            continue;
        }
        if role == Role::RealServer {
            if let Some(rs) = rs {
                if !captured.real_servers.contains(&rs) {
                    out.push(format!("no capture of real server {rs}"));
                    continue;
                }
            }
        }
        out.push(format!("not seen in any {name} capture"));
    }
    if rs.is_none() {
        out.push("which real server it went to".into());
    }
    if outcome == Outcome::Unknown {
        out.push("how it ended: no capture that replies cross".into());
    }
    out
}
