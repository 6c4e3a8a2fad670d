//! From the rebuilt connections to what the fairness stage reads: per service, each connection
//! as the director saw it (client -> VIP direction only, as IPVS does in tunnel mode).

use super::input::{ConnObs, FairnessInput, Proto, ServiceObs, TcpMarks};
use super::table::ConnTable;
use crate::flows::{Analysis, Connection, ConnectionSink, Leg};
use crate::topology::{Proto as IpProto, Role, Topology};
use rustc_hash::FxHashMap;
use std::collections::HashMap;
use std::net::SocketAddr;

/// The connections of every TCP or UDP service, without configuration (the caller adds it),
/// fed one connection at a time as the analysis hands them on (it is a [`ConnectionSink`]).
/// What it keeps per connection is the scheduler replay's input, a row of a [`ConnTable`]
/// (about 45 bytes): the replay needs every assignment in order.
#[derive(Default)]
pub struct FairnessObserver {
    director_captured: bool,
    /// The director's MACs: a request flooded past its capture is no arrival at it.
    director_macs: Vec<crate::topology::MacAddr>,
    services: Vec<ServiceObs<ConnTable>>,
    /// Where each service is in `services`: a connection finds its own in constant time, not
    /// by a scan of every service (65 536 UDP services made that quadratic). FxHash: looked up
    /// for every connection, on the thread every connection goes through.
    index: FxHashMap<(Proto, SocketAddr), usize>,
    /// The firewall mark of each service of the traffic that a firewall-mark rule holds
    /// (`Analysis::expected`): its connections join the mark's one service, since the
    /// director schedules them together whatever their port.
    marks: FxHashMap<(Proto, SocketAddr), u32>,
}

impl FairnessObserver {
    pub fn new(topology: &Topology) -> Self {
        FairnessObserver {
            director_captured: topology.vantages.iter().any(|v| v.role == Role::Director),
            director_macs: topology.director_macs(),
            services: Vec::new(),
            index: FxHashMap::default(),
            marks: FxHashMap::default(),
        }
    }

    /// As [`Self::new`], with the firewall marks of the analysis's expected services.
    pub fn for_analysis(analysis: &Analysis) -> Self {
        let mut o = FairnessObserver::new(&analysis.topology);
        for e in &analysis.expected {
            let (Some(mark), Some(proto)) = (e.mark, Proto::of(e.service.proto)) else {
                continue;
            };
            let vip = SocketAddr::new(e.service.vip, e.service.port);
            o.marks.insert((proto, vip), mark);
        }
        o
    }

    pub fn add(&mut self, conn: &Connection) {
        // With the director captured, a connection it never saw was not scheduled by IPVS
        // (a client bypassing it: the `bypass` check's business), so it is no assignment.
        if self.director_captured && director_leg(conn, &self.director_macs).is_none() {
            return;
        }
        let Some(proto) = Proto::of(conn.proto) else {
            return;
        };
        let obs = observe(conn, &self.director_macs);
        let services = &mut self.services;
        // A marked service's connections are keyed by the mark's VIP and port 0.
        let mark = self.marks.get(&(proto, conn.vip)).copied();
        let key = match mark {
            Some(_) => (proto, SocketAddr::new(conn.vip.ip(), 0)),
            None => (proto, conn.vip),
        };
        let i = *self.index.entry(key).or_insert_with(|| {
            services.push(ServiceObs {
                proto,
                vip: key.1,
                mark,
                config: None,
                connections: ConnTable::default(),
            });
            services.len() - 1
        });
        services[i].connections.push(&obs);
    }

    /// The input, with `topology` the finished analysis's.
    pub fn finish(self, topology: &Topology) -> FairnessInput<ConnTable> {
        let mut services = self.services;
        for s in &mut services {
            s.connections.sort_by_start_and_client();
        }
        services.sort_by_key(|s| (s.vip, s.proto as u8));
        let capture_span = topology
            .vantages
            .iter()
            .filter(|v| v.role == Role::Director)
            .filter_map(|v| Some((v.first_ts_ns?, v.last_ts_ns?)))
            .reduce(|a, b| (a.0.min(b.0), a.1.max(b.1)));
        FairnessInput {
            services,
            capture_span,
            timeouts: Default::default(),
        }
    }
}

impl ConnectionSink for FairnessObserver {
    fn begin(&mut self, analysis: &Analysis) {
        *self = FairnessObserver::for_analysis(analysis);
    }
    /// Everything is forgotten at the next `begin`.
    fn restart(&mut self) -> bool {
        true
    }
    fn connection(&mut self, c: Connection) {
        self.add(&c);
    }
}

/// The director's leg when there is one: its clock is the reference and it sees what IPVS sees.
/// Not a request flooded past its capture ([`Leg::request_reached`]).
fn director_leg<'c>(
    conn: &'c Connection,
    director_macs: &[crate::topology::MacAddr],
) -> Option<&'c Leg> {
    conn.legs.iter().find(|l| {
        l.role == Role::Director && l.request.is_some() && l.request_reached(director_macs)
    })
}

fn observe(conn: &Connection, director_macs: &[crate::topology::MacAddr]) -> ConnObs {
    let leg = director_leg(conn, director_macs);
    let request = leg.and_then(|l| l.request.as_ref());
    let (start_ns, last_ns) = match request {
        Some(r) => (r.first_ts_ns, r.last_ts_ns),
        None => (conn.first_ts_ns, conn.last_ts_ns),
    };
    // Client packets: the director's count, else the largest any vantage point saw.
    let to_server = request.or_else(|| {
        conn.legs
            .iter()
            .filter_map(|l| l.request.as_ref())
            .max_by_key(|r| r.packets)
    });
    let to_client = conn
        .legs
        .iter()
        .filter_map(|l| l.reply.as_ref())
        .max_by_key(|r| r.packets);
    let tcp = (conn.proto == IpProto::TCP).then(|| marks(conn, leg, start_ns));
    ConnObs {
        client: conn.client,
        rs: conn.real_server,
        start_ns,
        last_ns,
        tcp,
        packets_to_server: to_server.map_or(0, |r| r.packets),
        bytes_to_server: to_server.map_or(0, |r| r.ip_bytes),
        packets_to_client: to_client.map_or(0, |r| r.packets),
        bytes_to_client: to_client.map_or(0, |r| r.ip_bytes),
        response_time_ns: conn.first_response_ns,
        first_frame: request.map(|r| r.first),
    }
}

/// When the client's SYN, first ACK, FIN and RST reached the director, as the director's
/// capture saw them; without it, as another vantage point saw them, moved onto the clock of
/// `start_ns` (the connection's first request there is taken to be at `start_ns`).
fn marks(conn: &Connection, leg: Option<&Leg>, start_ns: i64) -> TcpMarks {
    let Some(leg) = leg.or_else(|| conn.legs.iter().find(|l| l.tcp.is_some())) else {
        return TcpMarks::default();
    };
    let Some(f) = leg.tcp else {
        return TcpMarks::default();
    };
    let shift = leg.request.as_ref().map_or(0, |r| start_ns - r.first_ts_ns);
    let on_our_clock = |t: Option<i64>| t.map(|t| t + shift);
    TcpMarks {
        syn_ns: on_our_clock(f.client_syn_ns),
        ack_ns: on_our_clock(f.client_ack_ns),
        fin_ns: on_our_clock(f.client_fin_ns),
        rst_ns: on_our_clock(f.client_rst_ns),
    }
}

/// Gives every service the configuration the rules file holds for it.
///
/// `ipvsadm -Sn` and a plain `-Ln` list servers sorted by address, which says nothing of the
/// kernel's order; a list that is not sorted can only come from `-Ln --nosort`, so then the
/// order is the kernel's.
pub fn apply_rules<C>(input: &mut FairnessInput<C>, rules: &crate::topology::rules::Rules) {
    use super::input::{Scheduler, Server, ServiceConfig};
    use crate::topology::rules::Proto as RuleProto;
    // The first rule of each service, found once: a scan of the rules for every service is
    // quadratic with tens of thousands of them.
    let mut by_service = HashMap::new();
    let mut by_mark = HashMap::new();
    for r in &rules.services {
        if let crate::topology::rules::VirtualService::FwMark { mark, .. } = r.service {
            by_mark.entry(mark).or_insert(r);
        }
        let proto = match r.proto() {
            Some(RuleProto::Tcp) => Proto::Tcp,
            Some(RuleProto::Udp) => Proto::Udp,
            Some(RuleProto::Sctp) => Proto::Sctp,
            _ => continue,
        };
        if let Some(vip) = r.vip() {
            by_service.entry((proto, vip)).or_insert(r);
        }
    }
    for svc in &mut input.services {
        let rule = match svc.mark {
            Some(mark) => by_mark.get(&mark),
            None => by_service.get(&(svc.proto, svc.vip)),
        };
        let Some(rule) = rule else {
            continue;
        };
        let Some(scheduler) = Scheduler::from_name(&rule.scheduler) else {
            continue;
        };
        let addrs: Vec<_> = rule.servers.iter().map(|s| s.addr).collect();
        let sorted = addrs.windows(2).all(|w| w[0] <= w[1]);
        svc.config = Some(ServiceConfig {
            scheduler,
            persistence_s: rule.persistence,
            netmask_prefix: rule.netmask.as_deref().and_then(prefix_len),
            sh_port: rule.sched_flags.iter().any(|f| f == "sh-port"),
            servers: rule
                .servers
                .iter()
                .map(|s| Server {
                    addr: s.addr,
                    weight: s.weight,
                })
                .collect(),
            order_known: addrs.len() > 1 && !sorted,
        });
    }
}

/// `255.255.255.0` -> 24, `64` -> 64; None for a mask that is not a prefix.
fn prefix_len(mask: &str) -> Option<u8> {
    if let Ok(n) = mask.parse::<u8>() {
        return Some(n);
    }
    let addr: std::net::Ipv4Addr = mask.parse().ok()?;
    let bits = u32::from(addr);
    let len = bits.leading_ones();
    (bits.checked_shl(len).unwrap_or(0) == 0).then_some(len as u8)
}
