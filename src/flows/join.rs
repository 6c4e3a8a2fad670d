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
use super::{ConnKey, Connection, Form, Leg, Outcome, RsSource};
use crate::topology::{MacAddr, Role, Topology, VantageId};
use std::collections::BTreeMap;
// FxHash: these tables are looked up for every packet, where SipHash was a quarter of
// all instructions of `verify` (callgrind).
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use std::net::IpAddr;

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

struct Clusters {
    parent: Vec<usize>,
    /// The vantage points of each cluster (at its root): a set, so that joining a cluster of
    /// thousands of legs with another is not a scan of one for each leg of the other.
    vantages: Vec<HashSet<VantageId>>,
    isn: Vec<Option<u32>>,
}

impl Clusters {
    fn new(legs: &[&Leg]) -> Clusters {
        Clusters {
            parent: (0..legs.len()).collect(),
            vantages: legs
                .iter()
                .map(|l| HashSet::from_iter([l.vantage]))
                .collect(),
            isn: legs.iter().map(|l| l.isn).collect(),
        }
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
        if small.iter().any(|v| large.contains(v)) {
            return false;
        }
        if let (Some(x), Some(y)) = (self.isn[ra], self.isn[rb]) {
            if x != y {
                return false;
            }
        }
        // The smaller set goes into the larger: each vantage point moves O(log n) times.
        let mut vs = std::mem::take(&mut self.vantages[rb]);
        if vs.len() > self.vantages[ra].len() {
            std::mem::swap(&mut vs, &mut self.vantages[ra]);
        }
        self.vantages[ra].extend(vs);
        self.isn[ra] = self.isn[ra].or(self.isn[rb]);
        self.parent[rb] = ra;
        true
    }
}

/// What joining needs besides the legs: the topology, each capture's clock offset, and which
/// vantage points would have seen replies had there been any.
pub struct Joiner<'t> {
    topology: &'t Topology,
    offset: HashMap<VantageId, i64>,
    sees_replies: HashMap<VantageId, bool>,
    captured: Captured,
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
    /// reused). Legs at different vantage points belong together when they share a packet,
    /// have the same client ISN, or (lacking both) overlap in corrected time.
    pub fn join_key(&self, key: ConnKey, group: Vec<Leg>) -> Vec<Connection> {
        let corr = |l: &Leg, t: i64| self.corrected(l, t);
        let refs: Vec<&Leg> = group.iter().collect();
        let mut c = Clusters::new(&refs);
        // Same packet seen at both.
        let mut by_fp: HashMap<u64, Vec<usize>> = HashMap::default();
        for (i, l) in refs.iter().enumerate() {
            for fp in l.fingerprints.iter() {
                by_fp.entry(fp.value()).or_default().push(i);
            }
        }
        let mut fp_lists: Vec<Vec<usize>> = by_fp.into_values().collect();
        fp_lists.sort();
        for ids in fp_lists {
            for w in ids.windows(2) {
                c.join(w[0], w[1]);
            }
        }
        // Same client initial sequence number: in index order, each leg with the next
        // [`PAIRS_PER_LEG`] of its ISN.
        let mut by_isn: HashMap<u32, Vec<usize>> = HashMap::default();
        for (i, l) in refs.iter().enumerate() {
            if let Some(isn) = l.isn {
                by_isn.entry(isn).or_default().push(i);
            }
        }
        let mut isn_pairs: Vec<(usize, usize)> = Vec::new();
        for ids in by_isn.values() {
            for (k, &i) in ids.iter().enumerate() {
                let end = ids.len().min(k + 1 + PAIRS_PER_LEG);
                isn_pairs.extend(ids[k + 1..end].iter().map(|&j| (i, j)));
            }
        }
        isn_pairs.sort_unstable();
        for (i, j) in isn_pairs {
            c.join(i, j);
        }
        // Overlapping in corrected time, nearest first: each leg against the next
        // [`PAIRS_PER_LEG`] by corrected start, the nearest there are.
        let span: Vec<(i64, i64)> = refs
            .iter()
            .map(|l| (corr(l, l.first_ts_ns), corr(l, l.last_ts_ns)))
            .collect();
        let mut by_start: Vec<usize> = (0..refs.len()).collect();
        by_start.sort_unstable_by_key(|&i| (span[i].0, i));
        let mut candidates: Vec<(i64, usize, usize)> = Vec::new();
        for (k, &x) in by_start.iter().enumerate() {
            let end = by_start.len().min(k + 1 + PAIRS_PER_LEG);
            for &y in &by_start[k + 1..end] {
                let (i, j) = (x.min(y), x.max(y));
                if refs[i].vantage == refs[j].vantage {
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
        for (_, i, j) in candidates {
            c.join(i, j);
        }
        let mut clusters: BTreeMap<usize, Vec<Leg>> = BTreeMap::new();
        let roots: Vec<usize> = (0..refs.len()).map(|i| c.root(i)).collect();
        for (l, r) in group.into_iter().zip(roots) {
            clusters.entry(r).or_default().push(l);
        }
        let mut out: Vec<Connection> = clusters
            .into_values()
            .map(|legs| connection(key, legs, self, &corr))
            .collect();
        out.sort_by_key(|c| c.first_ts_ns);
        out
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

fn role_rank(r: Role) -> u8 {
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

    let mut judged: Vec<&Leg> = legs.iter().collect();
    judged.sort_by_key(|l| (role_rank(l.role), l.vantage));
    let decided = judged.iter().find_map(|l| l.outcome.map(|o| (o, *l)));
    let (outcome, from) = match decided {
        Some((o, l)) => (o, Some(l)),
        None => (Outcome::Unknown, None),
    };
    let shown = from.or(judged.first().copied());
    let (real_server, real_server_from) = real_server(&legs, topology);
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
    // Fingerprints served the clock and the join; the record does not need them.
    for l in &mut legs {
        l.fingerprints = Box::default();
    }
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
fn real_server(legs: &[Leg], topology: &Topology) -> (Option<IpAddr>, Option<RsSource>) {
    let mut outer: BTreeMap<IpAddr, u64> = BTreeMap::new();
    for l in legs {
        if let Some(w) = &l.request_wrapped {
            for p in &w.outer {
                *outer.entry(p.dst).or_default() += p.packets;
            }
        }
    }
    if let Some((a, _)) = outer.iter().max_by_key(|(_, n)| **n) {
        return (Some(*a), Some(RsSource::Tunnel));
    }
    // Sent on unwrapped from the director to another host's MAC: direct routing (`-g`).
    let director_macs = topology.director_macs();
    if !director_macs.is_empty() {
        if let Some(a) = legs
            .iter()
            .filter(|l| l.role == Role::Director && l.request_wrapped.is_none())
            .filter_map(|l| l.request.as_ref())
            .flat_map(|r| r.dst_macs.iter())
            .filter(|m| !director_macs.contains(m))
            .find_map(|m| topology.address_of_mac(*m))
        {
            return (Some(a), Some(RsSource::ForwardedMac));
        }
    }
    if let Some(a) = legs.iter().find_map(|l| {
        let v = topology.vantage(l.vantage)?;
        (v.role == Role::RealServer).then_some(v.address).flatten()
    }) {
        return (Some(a), Some(RsSource::RsCapture));
    }
    let macs: Vec<MacAddr> = legs
        .iter()
        .filter_map(|l| l.reply.as_ref())
        .flat_map(|r| r.src_macs.iter().copied())
        .collect();
    if let Some(a) = macs.iter().find_map(|m| topology.real_server_by_mac(*m)) {
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
        out.push(format!("not seen in the {name} capture(s)"));
    }
    if rs.is_none() {
        out.push("which real server it went to".into());
    }
    if outcome == Outcome::Unknown {
        out.push("how it ended: no capture that replies cross".into());
    }
    out
}
