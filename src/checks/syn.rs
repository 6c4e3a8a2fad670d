//! `syn.drop`: first SYNs the director dropped, forwarded only on the client's retransmission.
//!
//! `ip_vs_in()` (net/netfilter/ipvs/ip_vs_core.c, Linux 6.1) drops a new connection's first
//! packet on purpose in one case: the SYN finds the entry of an earlier connection with the same
//! client address and port that `is_new_conn_expected()` lets go (TCP TIME_WAIT or CLOSE with
//! `conn_reuse_mode` 1, also FIN_WAIT of a one-way entry with bit 2; SCTP CLOSED), and that
//! packet carries a confirmed conntrack entry (`ip_vs_conn_uses_old_conntrack()`), which cannot
//! be sent to another real server. It expires the IPVS entry and returns NF_DROP so that the
//! conntrack entry can go; the client's retransmission one RTO later (1 s on Linux) is
//! scheduled afresh. The same drop happens on a weight-0 server with `expire_nodest_conn`.
//! Conntrack entries are confirmed only with `net.ipv4.vs.conntrack=1` (with 0,
//! `ip_vs_tunnel_xmit_prepare()` lets the unconfirmed entry go), and since Linux 5.9 one that
//! saw the close is
//! replaced by a fresh, unconfirmed one; but a tunnelling director's conntrack sees only the
//! client's half of each connection, never the close: its entry stays SYN_SENT [UNREPLIED]
//! (fixtures/syn-drop), and the drop is met on every quickly reused port.
//!
//! The evidence is in one director capture: the first SYN arrived, no tunnelled copy left,
//! and the first copy that left is of a retransmission, a retransmission timeout later. A
//! client capture alone shows only a SYN answered on its retransmission, which loss anywhere
//! on the path also explains: that is reported for information, naming the capture to take.

use std::collections::BTreeMap;
use std::net::IpAddr;

use rustc_hash::FxHashMap as HashMap;

use super::capture::Sight;
use super::{of, Affected, CheckResult, Context, Explained, PacketRef, Status, MAX_EVIDENCE};
use crate::flows::{ConnKey, Connection, DirStats, EvidenceKind, Leg};
use crate::topology::{FrameRef, Proto, Role, VantageId};

pub const ID: &str = "syn.drop";

/// The shortest gap between a SYN and its retransmission: TCP's minimum retransmission timeout
/// (200 ms on Linux; a first SYN's is 1 s by RFC 6298, 3 s on older stacks). A director
/// forwards a SYN in microseconds, so a first tunnelled copy this much later than the first
/// SYN is of a retransmission.
const MIN_RTO_NS: i64 = 200_000_000;

/// Connections remembered per generation to find the one that last used a client port: two
/// generations, so at least this many of the latest are always known (about 2 MB at most:
/// 1 << 15 cost 15 MB of peak memory on the bench's 100 000 connections, bench/RESULTS.md).
const REMEMBERED: usize = 1 << 13;

/// Client names listed in a summary at most.
const CLIENTS_NAMED: usize = 4;

/// How a connection ended, for the next one on the same client port.
#[derive(Clone, Copy)]
struct Ended {
    /// Its last packet, reference clock.
    last_ts_ns: i64,
    /// The client's RST at the director, which moved the IPVS entry to CLOSE, when seen.
    reset: Option<FrameRef>,
}

/// The latest connections per client-side tuple, in two generations: the older is dropped
/// when the newer fills, so memory stays bounded whatever the number of connections. The
/// analysis hands a key's connections on in the order they began, and an earlier key's first,
/// so what is found here for a connection is the one before it on that port.
#[derive(Default)]
struct Recent {
    current: HashMap<ConnKey, Ended>,
    previous: HashMap<ConnKey, Ended>,
}

impl Recent {
    fn get(&self, key: &ConnKey) -> Option<Ended> {
        self.current
            .get(key)
            .or_else(|| self.previous.get(key))
            .copied()
    }

    fn put(&mut self, key: ConnKey, ended: Ended) {
        if self.current.len() >= REMEMBERED {
            self.previous = std::mem::take(&mut self.current);
        }
        self.current.insert(key, ended);
    }
}

/// One dropped first SYN, as evidence.
struct Dropped {
    at: (i64, ConnKey),
    syn: PacketRef,
    forwarded: PacketRef,
    earlier: Option<PacketRef>,
}

/// The dropped SYNs at one director.
#[derive(Default)]
struct Group {
    affected: Affected,
    delays_ns: Vec<i64>,
    /// For the connections that reused a port: how long after the earlier one ended.
    reuse_gaps_ns: Vec<i64>,
    clients: BTreeMap<IpAddr, usize>,
    /// Of the connections that began first.
    examples: Vec<Dropped>,
}

impl Group {
    fn add(&mut self, conn: &Connection, delay_ns: i64, gap_ns: Option<i64>, example: Dropped) {
        self.affected.add(conn, || None);
        self.delays_ns.push(delay_ns);
        self.reuse_gaps_ns.extend(gap_ns);
        *self.clients.entry(conn.client.ip()).or_default() += 1;
        let pos = self.examples.partition_point(|d| d.at <= example.at);
        if pos < MAX_EVIDENCE {
            self.examples.insert(pos, example);
            self.examples.truncate(MAX_EVIDENCE);
        }
    }
}

/// `syn.drop`, fed one connection at a time.
#[derive(Default)]
pub struct SynDrop {
    /// TCP connections whose first SYN a director capture shows, and a tunnelled copy of it.
    judged: usize,
    /// Keyed by the director's name.
    dropped: BTreeMap<String, Group>,
    recent: Recent,
    /// TCP connections whose first SYN only a client capture shows, and among them those
    /// answered only after the SYN was repeated.
    client_judged: usize,
    client_late: Affected,
    client_delays_ns: Vec<i64>,
}

/// A time of a leg's capture on the reference clock.
fn reference(ctx: &Context, v: VantageId, t: i64) -> i64 {
    t - crate::flows::clock::offset_of(&ctx.analysis.clock_offsets, v).map_or(0, |o| o.offset_ns)
}

/// The leg's requests, when its first one is the client's first SYN.
fn starts_with_syn(leg: &Leg) -> Option<&DirStats> {
    let req = leg.request.as_ref()?;
    let syn = leg.tcp.and_then(|t| t.client_syn_ns)?;
    (leg.isn.is_some() && syn == req.first_ts_ns).then_some(req)
}

fn first_evidence(leg: &Leg, kind: EvidenceKind) -> Option<FrameRef> {
    leg.evidence
        .iter()
        .find(|e| e.kind == kind)
        .map(|e| e.first)
}

fn secs(ns: i64) -> String {
    format!("{:.3} s", ns as f64 / 1e9)
}

fn median(v: &mut [i64]) -> i64 {
    v.sort_unstable();
    v[v.len() / 2]
}

impl SynDrop {
    pub fn observe(&mut self, ctx: &Context, conn: &Connection, sight: &Sight) {
        // SCTP's INIT meets the same drop (SCTP CLOSED is reusable), but its retransmissions are
        // not counted; UDP has no first packet the kernel tells apart.
        if conn.proto != Proto::TCP {
            return;
        }
        let earlier = self.recent.get(&conn.key());
        let director_legs = || {
            ctx.legs_at(conn, Role::Director)
                .filter(|l| sight.tunnels_hidden(l.vantage).is_none())
        };
        let at_director = director_legs().find_map(|l| starts_with_syn(l).map(|r| (l, r)));
        self.recent.put(
            conn.key(),
            Ended {
                last_ts_ns: conn.last_ts_ns,
                reset: ctx
                    .legs_at(conn, Role::Director)
                    .find_map(|l| first_evidence(l, EvidenceKind::ResetFromClient)),
            },
        );
        match at_director {
            Some((leg, req)) => {
                // The first copy that left wrapped, at any of the director's captures. Without
                // one the capture cannot show its tunnelled packets (a port filter) or the
                // director forwarded nothing (tunnel.encapsulation's finding): not judged.
                let forwarded = director_legs()
                    .filter_map(|l| l.request_wrapped.as_ref().map(|w| (l, w)))
                    .min_by_key(|(l, w)| reference(ctx, l.vantage, w.first_ts_ns));
                let Some((wleg, wrapped)) = forwarded else {
                    return;
                };
                self.judged += 1;
                let syn_ts = reference(ctx, leg.vantage, req.first_ts_ns);
                let delay = reference(ctx, wleg.vantage, wrapped.first_ts_ns) - syn_ts;
                let repeated = req.retransmissions > 0 && req.packets > wrapped.packets;
                if delay < MIN_RTO_NS || !repeated {
                    return;
                }
                let gap = earlier.map(|e| (syn_ts - e.last_ts_ns).max(0));
                let example = Dropped {
                    at: (conn.first_ts_ns, conn.key()),
                    syn: ctx.packet(
                        &req.first,
                        format!("first SYN from {}, not forwarded", conn.client),
                    ),
                    forwarded: ctx.packet(
                        &wrapped.first,
                        format!(
                            "first tunnelled copy, of the retransmitted SYN, {} later",
                            secs(delay)
                        ),
                    ),
                    earlier: earlier.and_then(|e| e.reset).map(|r| {
                        ctx.packet(
                            &r,
                            format!(
                                "the client's RST that ended the previous connection from {}, {} \
                                 before",
                                conn.client,
                                secs(gap.unwrap_or(0))
                            ),
                        )
                    }),
                };
                self.dropped
                    .entry(ctx.vantage_host(leg.vantage))
                    .or_default()
                    .add(conn, delay, gap, example);
            }
            None => self.observe_client(ctx, conn),
        }
    }

    /// A connection no director capture shows from its SYN: what a client capture says.
    fn observe_client(&mut self, ctx: &Context, conn: &Connection) {
        let Some((leg, req)) = ctx
            .legs_at(conn, Role::Client)
            .find_map(|l| starts_with_syn(l).map(|r| (l, r)))
        else {
            return;
        };
        self.client_judged += 1;
        let late = leg.handshake_ns.filter(|h| *h >= MIN_RTO_NS);
        if let Some(h) = late.filter(|_| req.retransmissions > 0) {
            self.client_delays_ns.push(h);
            self.client_late.add(conn, || {
                Some(ctx.packet(
                    &req.first,
                    format!(
                        "SYN from {}, answered only after it was repeated",
                        conn.client
                    ),
                ))
            });
        }
    }

    pub fn finish(self, ctx: &Context) -> CheckResult {
        let judged = self.judged + self.client_judged;
        let mut findings = Vec::new();
        for (director, group) in self.dropped {
            findings.push(director_finding(director, group, self.judged));
        }
        if !self.client_late.is_empty() {
            findings.push(client_finding(
                ctx,
                self.client_late,
                self.client_delays_ns,
                self.client_judged,
            ));
        }
        let pass = if self.judged > 0 {
            format!(
                "all {} first SYNs at the director were tunnelled at once",
                self.judged
            )
        } else {
            format!(
                "no capture on the director shows a connection's SYN; the client captures show \
                 all {} SYNs answered without a retransmission",
                self.client_judged
            )
        };
        CheckResult::judged(
            ID,
            judged,
            "no TCP connection starts (SYN) in a director capture that shows its tunnelled \
             copies, nor in a client capture (UDP has no first packet IPVS drops; SCTP INITs \
             are not judged)",
            pass,
            findings,
        )
    }
}

fn named_clients(clients: &BTreeMap<IpAddr, usize>) -> String {
    let mut names: Vec<String> = clients
        .iter()
        .take(CLIENTS_NAMED)
        .map(|(a, n)| format!("{a} ({n})"))
        .collect();
    if clients.len() > CLIENTS_NAMED {
        names.push(format!("{} more", clients.len() - CLIENTS_NAMED));
    }
    names.join(", ")
}

fn director_finding(director: String, mut group: Group, judged: usize) -> super::Finding {
    let n = group.affected.len();
    let total: i64 = group.delays_ns.iter().sum();
    let max = group.delays_ns.iter().copied().max().unwrap_or(0);
    let med = median(&mut group.delays_ns);
    let reused = group.reuse_gaps_ns.len();
    let reuse_text = if reused == 0 {
        format!(
            "none of them follows an earlier connection from the same client address and port \
             among the latest {REMEMBERED} or more kept (one may have ended before the captures \
             started)"
        )
    } else {
        let gap = median(&mut group.reuse_gaps_ns);
        format!(
            "{} reused the client address and port of an earlier connection to the same VIP \
             and port, which had ended {} before (median)",
            of(reused, n),
            secs(gap)
        )
    };
    let summary = format!(
        "the director {director} dropped the first SYN of {} connections and forwarded only the \
         client's retransmission: {} lost in all (median {}, max {}); clients {}; {reuse_text}",
        of(n, judged),
        secs(total),
        secs(med),
        secs(max),
        named_clients(&group.clients),
    );
    let likely_cause = format!(
        "a client reused its source port for a new connection while the director still held the \
         IPVS entry of the previous one in TIME_WAIT or CLOSE (after the client's RST), which \
         net.ipv4.vs.conn_reuse_mode=1 expires for a new SYN; with net.ipv4.vs.conntrack=1 the \
         SYN still belongs to the old connection's confirmed conntrack entry, which cannot go to \
         another real server, and ip_vs_in() drops the SYN (NF_DROP) to let it expire; the \
         retransmission one RTO later is scheduled afresh. Since Linux 5.9 a conntrack entry \
         that saw the close is replaced at once, but a tunnelling director's conntrack sees \
         only the clients' side of a connection, never its close (its entries stay SYN_SENT), \
         so every quickly reused port meets this. (A real server of weight 0 with \
         net.ipv4.vs.expire_nodest_conn=1 drops a reused port's SYN the same way.) {reused} of \
         the {n} followed an earlier connection on the same port in the captures{}",
        if reused < n {
            "; for those that did not, if their ports were not reused before the captures \
             began, look for another drop on the director: its defence sysctls under memory \
             pressure (net.ipv4.vs.drop_packet, drop_entry), a firewall rule, a full backlog"
        } else {
            ""
        }
    );
    let fix = format!(
        "on the director {director}: sysctl -w net.ipv4.vs.conntrack=0 (and in \
         /etc/sysctl.d), when no iptables or nftables rule needs IPVS's conntrack entries (NAT, \
         connection state or marks on the IPVS traffic); otherwise keep it and either accept \
         the second, or set net.ipv4.vs.conn_reuse_mode=0, which sends the reused port to the \
         old entry's real server without a drop but without rescheduling (draining and weight \
         changes then miss those connections); on the clients: stop reusing source ports \
         (no fixed bind port with SO_REUSEADDR, a wide net.ipv4.ip_local_port_range, keep-alive \
         instead of a connection per request)"
    );
    let examples = std::mem::take(&mut group.examples);
    let mut finding = group.affected.finding(
        ID,
        Status::Warn,
        judged,
        Explained {
            summary,
            host: Some(director),
            likely_cause,
            fix,
        },
    );
    let mut evidence = Vec::new();
    for (i, d) in examples.into_iter().enumerate() {
        evidence.push(d.syn);
        if i == 0 {
            evidence.push(d.forwarded);
            evidence.extend(d.earlier);
        }
        if evidence.len() >= MAX_EVIDENCE {
            break;
        }
    }
    evidence.truncate(MAX_EVIDENCE);
    finding.evidence = evidence;
    if let Some(f) = finding.display_filter.as_mut() {
        // The SYNs (each with its tunnelled copy, whose inner header matches) and the RSTs
        // that ended the earlier connections on those ports.
        f.push_str(" && (tcp.flags.syn == 1 && tcp.flags.ack == 0 || tcp.flags.reset == 1)");
    }
    finding
}

fn client_finding(
    ctx: &Context,
    late: Affected,
    mut delays_ns: Vec<i64>,
    judged: usize,
) -> super::Finding {
    let n = late.len();
    let med = median(&mut delays_ns);
    let summary = format!(
        "{} connections seen only at the client had their SYN answered only after a \
         retransmission (median {} from the first SYN to the SYN-ACK); no director capture \
         shows whether the director dropped them",
        of(n, judged),
        secs(med),
    );
    let vip = ctx.vip_text();
    late.finding(
        ID,
        Status::Info,
        judged,
        Explained {
            summary,
            host: None,
            likely_cause:
                "a SYN lost anywhere on the path, or the director dropping it on purpose: a \
                 reused client port meeting IPVS's entry of the previous connection with \
                 net.ipv4.vs.conntrack=1: the two cannot be told apart from the client alone"
                    .into(),
            fix: format!(
                "capture on the director while clients connect (tcpdump -i eth0 -s 0 -w \
                 director.pcap 'host {vip} or proto 4'): a first SYN that arrives there with \
                 no tunnelled copy leaving, its retransmission tunnelled, is the director's drop"
            ),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    fn key(host: u8, port: u16) -> ConnKey {
        ConnKey {
            proto: Proto::TCP,
            client: SocketAddr::from(([10, 0, 0, host], port)),
            vip: SocketAddr::from(([10, 0, 0, 100], 80)),
        }
    }

    fn ended(t: i64) -> Ended {
        Ended {
            last_ts_ns: t,
            reset: None,
        }
    }

    #[test]
    fn the_latest_connections_of_a_port_are_remembered_within_two_generations() {
        let mut r = Recent::default();
        r.put(key(1, 1), ended(1));
        r.put(key(1, 1), ended(2));
        assert_eq!(r.get(&key(1, 1)).map(|e| e.last_ts_ns), Some(2));
        // Filling the current generation moves it to the previous: still found.
        for p in 0..REMEMBERED as u16 {
            r.put(key(2, p), ended(3));
        }
        assert_eq!(r.get(&key(1, 1)).map(|e| e.last_ts_ns), Some(2));
        // A second generation later it is forgotten: memory stays bounded.
        for p in 0..REMEMBERED as u16 {
            r.put(key(3, p), ended(4));
        }
        assert!(r.get(&key(1, 1)).is_none());
        assert!(r.current.len() + r.previous.len() <= 2 * REMEMBERED);
    }

    #[test]
    fn median_of_an_odd_and_an_even_count() {
        assert_eq!(median(&mut [3, 1, 2]), 2);
        assert_eq!(median(&mut [4, 1, 3, 2]), 3);
    }
}
