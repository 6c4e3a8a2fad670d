//! The flows analysis on synthetic LVS-TUN traffic: a small simulated network where every
//! packet is emitted at each vantage point that would see it, with each host's clock shifted as
//! a test chooses. Expected values come from how the scenario was built (which RS each
//! connection was sent to, which clock was shifted by how much), never from lvscheck's output.

use lvscheck::capture::frame::CaptureId;
use lvscheck::decode::packet::*;
use lvscheck::flows::legs::Timeouts;
use lvscheck::flows::pipeline::ReadReport;
use lvscheck::flows::{
    analyse_source, Analysis, EvidenceKind, FlowOptions, FrameSource, Outcome, RsSource,
};
use lvscheck::topology::config::{ExpectedRealServer, ExpectedService};
use lvscheck::topology::{Decision, Proto, Role, Service, VantageId};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

const VIP: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 100);
const DIRECTOR: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 1);
const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 1, 9, 10);
const RS: [Ipv4Addr; 2] = [Ipv4Addr::new(10, 1, 0, 2), Ipv4Addr::new(10, 1, 0, 3)];
const MAC_CLIENT: Mac = [2, 0, 0, 0, 0, 0x10];
const MAC_DIRECTOR: Mac = [2, 0, 0, 0, 0, 1];
const MAC_RS: [Mac; 2] = [[2, 0, 0, 0, 0, 2], [2, 0, 0, 0, 0, 3]];
const US: i64 = 1_000;
const MS: i64 = 1_000_000;
const EPOCH: i64 = 1_700_000_000_000_000_000;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Host {
    Client,
    Director,
    Rs(usize),
    /// A mirror port that sees every Ethernet frame.
    Mirror,
    /// The raw-IP tunl0 of a real server.
    Tunl0(usize),
}

/// A simulated network: captures at chosen hosts, each with its own clock shift.
struct Sim {
    hosts: Vec<Host>,
    shift_ns: Vec<i64>,
    /// Per capture: (true time, link type, packet).
    frames: Vec<Vec<(i64, u32, Packet)>>,
    next_ip_id: u32,
}

struct Source(Vec<Vec<(DecodedFrame, u32)>>);

impl FrameSource for Source {
    fn captures(&self) -> Vec<(CaptureId, String)> {
        (0..self.0.len())
            .map(|i| (i as CaptureId, format!("capture{i}")))
            .collect()
    }
    fn read(
        &self,
        capture: CaptureId,
        each: &mut dyn FnMut(&DecodedFrame, u32),
    ) -> Result<ReadReport, String> {
        for (f, lt) in &self.0[capture as usize] {
            each(f, *lt);
        }
        Ok(ReadReport::default())
    }
}

fn ip4(a: Ipv4Addr) -> IpAddr {
    IpAddr::V4(a)
}

fn header(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, id: u32, ttl: u8, len: u32) -> IpHeader {
    IpHeader {
        src: ip4(src),
        dst: ip4(dst),
        protocol: proto,
        ttl,
        id,
        dont_fragment: true,
        more_fragments: false,
        fragment_offset: 0,
        total_len: len,
        captured_len: len,
    }
}

/// One TCP or UDP packet as the sender sends it.
#[derive(Clone)]
struct Seg {
    src: (Ipv4Addr, u16),
    dst: (Ipv4Addr, u16),
    udp: bool,
    seq: u32,
    ack: u32,
    flags: u8,
    len: u32,
}

fn tcp(src: (Ipv4Addr, u16), dst: (Ipv4Addr, u16), seq: u32, ack: u32, flags: u8, len: u32) -> Seg {
    Seg {
        src,
        dst,
        udp: false,
        seq,
        ack,
        flags,
        len,
    }
}

fn udp(src: (Ipv4Addr, u16), dst: (Ipv4Addr, u16), len: u32) -> Seg {
    Seg {
        src,
        dst,
        udp: true,
        seq: 0,
        ack: 0,
        flags: 0,
        len,
    }
}

impl Seg {
    fn packet(&self, id: u32, ttl: u8) -> IpPacket {
        let hash = if self.len == 0 {
            0
        } else {
            u64::from(self.seq) * 31 + u64::from(self.len) + u64::from(self.src.1) + 1
        };
        let (transport, hl) = if self.udp {
            (
                Transport::Udp(Udp {
                    src_port: self.src.1,
                    dst_port: self.dst.1,
                    payload_len: self.len,
                    payload_hash: hash,
                }),
                28,
            )
        } else {
            (
                Transport::Tcp(Tcp {
                    src_port: self.src.1,
                    dst_port: self.dst.1,
                    seq: self.seq,
                    ack: self.ack,
                    flags: self.flags,
                    window: 64000,
                    mss: None,
                    window_scale: None,
                    sack_permitted: false,
                    timestamp: None,
                    payload_len: self.len,
                    payload_hash: hash,
                }),
                40,
            )
        };
        IpPacket {
            ip: header(
                self.src.0,
                self.dst.0,
                if self.udp { 17 } else { 6 },
                id,
                ttl,
                hl + self.len,
            ),
            transport,
        }
    }
}

fn eth(src: Mac, dst: Mac, ip: IpPacket) -> Packet {
    Packet {
        link: Link {
            src_mac: Some(src),
            dst_mac: Some(dst),
            ..Link::default()
        },
        net: Net::Ip(ip),
        gue_shaped: None,
        control: None,
    }
}

fn raw(ip: IpPacket) -> Packet {
    Packet {
        link: Link::default(),
        net: Net::Ip(ip),
        gue_shaped: None,
        control: None,
    }
}

fn wrap(outer_src: Ipv4Addr, outer_dst: Ipv4Addr, inner: IpPacket) -> IpPacket {
    let len = inner.ip.total_len + 20;
    IpPacket {
        ip: header(outer_src, outer_dst, 4, 0, inner.ip.ttl, len),
        transport: Transport::Tunnel {
            tunnel: TunnelKind::IpIp,
            udp: None,
            inner: Box::new(inner),
        },
    }
}

impl Sim {
    fn new(hosts: &[Host]) -> Sim {
        Sim {
            hosts: hosts.to_vec(),
            shift_ns: vec![0; hosts.len()],
            frames: vec![Vec::new(); hosts.len()],
            next_ip_id: 100,
        }
    }

    fn shifted(mut self, host: Host, ns: i64) -> Sim {
        for (i, h) in self.hosts.iter().enumerate() {
            if *h == host {
                self.shift_ns[i] = ns;
            }
        }
        self
    }

    /// Emits at every capture of `host` (and at the mirror when `on_wire`).
    fn see(&mut self, host: Host, t: i64, p: &Packet, on_wire: bool) {
        for (i, h) in self.hosts.iter().enumerate() {
            if *h == host || (on_wire && *h == Host::Mirror) {
                // The mirror sees each frame once, when it is on the wire.
                if *h == Host::Mirror && host == Host::Mirror {
                    continue;
                }
                self.frames[i].push((t, 1, p.clone()));
            }
        }
    }

    fn see_raw(&mut self, host: Host, t: i64, p: IpPacket) {
        for (i, h) in self.hosts.iter().enumerate() {
            if *h == host {
                self.frames[i].push((t, 101, raw(p.clone())));
            }
        }
    }

    /// The client sends `s` to the VIP at true time t; the director forwards it to RS `rs`
    /// (None: the director drops it; `bypass`: the client sends straight to the RS MAC).
    fn request(&mut self, t: i64, s: &Seg, rs: Option<usize>, bypass: bool) {
        self.next_ip_id += 1;
        let id = self.next_ip_id;
        let p = s.packet(id, 64);
        if bypass {
            let rs = rs.expect("bypass needs an RS");
            let f = eth(MAC_CLIENT, MAC_RS[rs], p.clone());
            self.see(Host::Client, t, &f, true);
            self.see(Host::Rs(rs), t + 20 * US, &f, false);
            return;
        }
        let f = eth(MAC_CLIENT, MAC_DIRECTOR, p.clone());
        self.see(Host::Client, t, &f, true);
        self.see(Host::Director, t + 20 * US, &f, false);
        let Some(rs) = rs else { return };
        let mut inner = p;
        inner.ip.ttl -= 1;
        let w = eth(
            MAC_DIRECTOR,
            MAC_RS[rs],
            wrap(DIRECTOR, RS[rs], inner.clone()),
        );
        self.see(Host::Director, t + 30 * US, &w, true);
        self.see(Host::Rs(rs), t + 50 * US, &w, false);
        self.see_raw(Host::Tunl0(rs), t + 55 * US, inner);
    }

    /// RS `rs` sends `s` to the client at true time t, to `dst_mac`.
    fn reply_to(&mut self, t: i64, rs: usize, s: &Seg, dst_mac: Mac) {
        self.next_ip_id += 1;
        let f = eth(MAC_RS[rs], dst_mac, s.packet(self.next_ip_id, 64));
        self.see(Host::Rs(rs), t, &f, true);
        if dst_mac == MAC_CLIENT {
            self.see(Host::Client, t + 20 * US, &f, false);
        } else if dst_mac == MAC_DIRECTOR {
            self.see(Host::Director, t + 20 * US, &f, false);
        }
    }

    fn reply(&mut self, t: i64, rs: usize, s: &Seg) {
        self.reply_to(t, rs, s, MAC_CLIENT);
    }

    /// A normal HTTP-like exchange on client port `port` to RS `rs`, starting at t.
    fn http(&mut self, t: i64, port: u16, isn: u32, rs: usize) {
        let c = (CLIENT, port);
        let v = (VIP, 80);
        let sisn = isn.wrapping_mul(7) + 12345;
        const S: u8 = Tcp::SYN;
        const A: u8 = Tcp::ACK;
        const F: u8 = Tcp::FIN;
        const P: u8 = Tcp::PSH;
        self.request(t, &tcp(c, v, isn, 0, S, 0), Some(rs), false);
        self.reply(t + 200 * US, rs, &tcp(v, c, sisn, isn + 1, S | A, 0));
        self.request(
            t + 300 * US,
            &tcp(c, v, isn + 1, sisn + 1, A, 0),
            Some(rs),
            false,
        );
        self.request(
            t + 310 * US,
            &tcp(c, v, isn + 1, sisn + 1, A | P, 100),
            Some(rs),
            false,
        );
        self.reply(t + 500 * US, rs, &tcp(v, c, sisn + 1, isn + 101, A, 0));
        self.reply(
            t + 600 * US,
            rs,
            &tcp(v, c, sisn + 1, isn + 101, A | P, 500),
        );
        self.request(
            t + 800 * US,
            &tcp(c, v, isn + 101, sisn + 501, A | F, 0),
            Some(rs),
            false,
        );
        self.reply(
            t + 900 * US,
            rs,
            &tcp(v, c, sisn + 501, isn + 102, A | F, 0),
        );
        self.request(
            t + 1000 * US,
            &tcp(c, v, isn + 102, sisn + 502, A, 0),
            Some(rs),
            false,
        );
    }

    fn arp_vip(&mut self, t: i64, answer_mac: Mac) {
        let ask = Packet {
            link: Link {
                src_mac: Some(MAC_CLIENT),
                dst_mac: Some([0xff; 6]),
                ..Link::default()
            },
            net: Net::Arp(Arp {
                operation: 1,
                sender_mac: MAC_CLIENT,
                sender_ip: CLIENT,
                target_mac: [0; 6],
                target_ip: VIP,
            }),
            gue_shaped: None,
            control: None,
        };
        let answer = Packet {
            link: Link {
                src_mac: Some(answer_mac),
                dst_mac: Some(MAC_CLIENT),
                ..Link::default()
            },
            net: Net::Arp(Arp {
                operation: 2,
                sender_mac: answer_mac,
                sender_ip: VIP,
                target_mac: MAC_CLIENT,
                target_ip: CLIENT,
            }),
            gue_shaped: None,
            control: None,
        };
        for h in [Host::Client, Host::Director, Host::Rs(0), Host::Rs(1)] {
            self.see(h, t, &ask, h == Host::Client);
        }
        self.see(Host::Client, t + 100 * US, &answer, true);
    }

    fn source(&self) -> Source {
        Source(
            self.frames
                .iter()
                .enumerate()
                .map(|(i, fs)| {
                    let mut fs = fs.clone();
                    fs.sort_by_key(|f| f.0);
                    fs.into_iter()
                        .enumerate()
                        .map(|(n, (t, lt, packet))| {
                            (
                                DecodedFrame {
                                    capture: i as CaptureId,
                                    interface: 0,
                                    number: n as u64 + 1,
                                    ts_ns: EPOCH + t + self.shift_ns[i],
                                    wire_len: 100,
                                    packet,
                                },
                                lt,
                            )
                        })
                        .collect()
                })
                .collect(),
        )
    }

    fn analyse(&self) -> Analysis {
        analyse_source(&self.source(), &FlowOptions::default())
    }
}

fn vantage(sim: &Sim, host: Host) -> VantageId {
    let i = sim
        .hosts
        .iter()
        .position(|h| *h == host)
        .expect("host captured");
    VantageId {
        capture: i as CaptureId,
        interface: 0,
    }
}

fn role(a: &Analysis, v: VantageId) -> Role {
    a.topology.vantage(v).expect("vantage").role
}

/// Ten round-robin connections, captures in a shuffled order.
fn healthy(n: u16) -> Sim {
    let mut sim = Sim::new(&[Host::Rs(1), Host::Client, Host::Director, Host::Rs(0)]);
    sim.arp_vip(0, MAC_DIRECTOR);
    for i in 0..n {
        sim.http(
            MS + i64::from(i) * 10 * MS,
            40000 + i,
            1000 + u32::from(i) * 977,
            usize::from(i % 2),
        );
    }
    sim
}

/// (client port -> (real server, outcome, history at the client)).
fn summary(a: &Analysis) -> BTreeMap<u16, (Option<IpAddr>, Outcome, String)> {
    a.connections
        .iter()
        .map(|c| {
            (
                c.client.port(),
                (c.real_server, c.outcome, c.history.to_string()),
            )
        })
        .collect()
}

#[test]
fn roles_vip_and_hosts_come_from_the_traffic() {
    let sim = healthy(10);
    let a = sim.analyse();
    assert_eq!(role(&a, vantage(&sim, Host::Client)), Role::Client);
    assert_eq!(role(&a, vantage(&sim, Host::Director)), Role::Director);
    for (i, rs) in RS.iter().enumerate() {
        let v = a.topology.vantage(vantage(&sim, Host::Rs(i))).unwrap();
        assert_eq!(v.role, Role::RealServer);
        assert_eq!(v.address, Some(ip4(*rs)));
        assert_eq!(v.decided_by, Decision::Traffic);
    }
    assert_eq!(
        a.topology.vips.iter().map(|v| v.addr).collect::<Vec<_>>(),
        vec![ip4(VIP)]
    );
    assert_eq!(a.topology.vips[0].decided_by, Decision::Traffic);
    assert_eq!(
        a.topology.services,
        vec![Service {
            vip: ip4(VIP),
            port: 80,
            proto: Proto::TCP
        }]
    );
    assert_eq!(a.topology.directors.len(), 1);
    assert_eq!(a.topology.directors[0].addr, ip4(DIRECTOR));
    assert_eq!(a.topology.directors[0].macs[0].0, MAC_DIRECTOR);
    let rs: Vec<IpAddr> = a.topology.real_servers.iter().map(|h| h.addr).collect();
    assert_eq!(rs, vec![ip4(RS[0]), ip4(RS[1])]);
    assert_eq!(a.topology.clients, vec![ip4(CLIENT)]);
    let vip_answers: Vec<_> = a
        .topology
        .arp
        .iter()
        .filter(|o| o.about_vip && o.operation == "reply")
        .collect();
    assert_eq!(vip_answers.len(), 1);
    assert_eq!(vip_answers[0].sender_mac.0, MAC_DIRECTOR);
    assert!(a.topology.limits.is_empty(), "{:?}", a.topology.limits);
}

#[test]
fn every_connection_is_rebuilt_with_its_real_server() {
    let sim = healthy(10);
    let a = sim.analyse();
    assert_eq!(a.connections.len(), 10);
    for c in &a.connections {
        let i = c.client.port() - 40000;
        assert_eq!(c.real_server, Some(ip4(RS[usize::from(i % 2)])), "conn {i}");
        assert_eq!(c.real_server_from, Some(RsSource::Tunnel));
        assert_eq!(c.vip, SocketAddr::new(ip4(VIP), 80));
        assert_eq!(c.isn, Some(1000 + u32::from(i) * 977));
        assert_eq!(c.outcome, Outcome::Completed);
        assert_eq!(c.outcome_from, Some(vantage(&sim, Host::Client)));
        assert_eq!(c.history, "ShADadFf");
        assert_eq!(c.retransmissions, 0);
        // Client, director, and the one RS it went to.
        let roles: Vec<Role> = c.legs.iter().map(|l| l.role).collect();
        assert_eq!(roles, vec![Role::Client, Role::Director, Role::RealServer]);
        // SYN-ACK sent 200 us after the SYN, 20 us from the RS to the client.
        assert_eq!(c.handshake_ns, Some(220 * US));
        assert!(c.unseen.is_empty(), "{:?}", c.unseen);
        let dir = &c.legs[1];
        assert_eq!(dir.request.as_ref().unwrap().packets, 5);
        assert_eq!(dir.request_wrapped.as_ref().unwrap().packets, 5);
        assert!(dir.reply.is_none());
        let client = &c.legs[0];
        assert_eq!(client.reply.as_ref().unwrap().payload_bytes, 500);
        assert_eq!(client.request.as_ref().unwrap().payload_bytes, 100);
        assert!(c.evidence().next().is_none());
    }
}

#[test]
fn shifted_clocks_change_only_the_offsets() {
    let base = healthy(12);
    let a = base.analyse();
    let shifted = healthy(12)
        .shifted(Host::Rs(0), 3_200 * MS + 17)
        .shifted(Host::Client, -1_700 * MS)
        .shifted(Host::Director, 250 * MS);
    let b = shifted.analyse();
    assert_eq!(summary(&a), summary(&b));
    let off = |an: &Analysis, h: Host| {
        an.clock_offsets
            .iter()
            .find(|o| o.vantage == vantage(&shifted, h))
            .unwrap()
            .clone()
    };
    // The reference is the director; offsets are relative to its clock.
    for (h, shift) in [
        (Host::Rs(0), 3_200 * MS + 17 - 250 * MS),
        (Host::Client, -1_700 * MS - 250 * MS),
        (Host::Rs(1), -250 * MS),
    ] {
        let o = off(&b, h);
        assert!(
            (o.offset_ns - shift).abs() < 5 * MS,
            "{h:?}: {} vs {shift}",
            o.offset_ns
        );
        // The simulated path delays are 20-50 us.
        assert!((o.offset_ns - shift).abs() <= 60 * US, "{h:?}: {o:?}");
        assert!(o.samples > 0);
    }
    assert_eq!(off(&b, Host::Director).offset_ns, 0);
    // First times are on the reference clock either way.
    let first = |an: &Analysis| {
        an.connections
            .iter()
            .map(|c| c.first_ts_ns)
            .collect::<Vec<_>>()
    };
    for (x, y) in first(&a).iter().zip(first(&b)) {
        assert_eq!(x + 250 * MS, y);
    }
}

#[test]
fn a_client_only_capture_shows_what_it_can_and_says_what_it_cannot() {
    let mut sim = Sim::new(&[Host::Client]);
    for i in 0..4 {
        sim.http(
            MS + i64::from(i) * 10 * MS,
            41000 + i,
            50 + u32::from(i),
            usize::from(i % 2),
        );
    }
    let a = sim.analyse();
    assert_eq!(role(&a, vantage(&sim, Host::Client)), Role::Client);
    assert_eq!(a.topology.vips.len(), 1);
    assert_eq!(a.topology.vips[0].addr, ip4(VIP));
    assert_eq!(a.topology.vips[0].decided_by, Decision::Guess);
    assert_eq!(a.connections.len(), 4);
    for c in &a.connections {
        assert_eq!(c.outcome, Outcome::Completed);
        assert_eq!(c.history, "ShADadFf");
        // No RS is known by address: the reply MAC is all the client has.
        assert_eq!(c.real_server, None);
        let i = usize::from(c.client.port() - 41000);
        assert_eq!(c.reply_mac.map(|m| m.0), Some(MAC_RS[i % 2]));
        assert!(c.unseen.iter().any(|u| u.contains("no director capture")));
        assert!(c.unseen.iter().any(|u| u.contains("which real server")));
    }
    let limits = a.topology.limits.join("\n");
    assert!(limits.contains("no director capture"));
    assert!(limits.contains("no real-server capture"));
    assert!(limits.contains("VIP is a guess"));
}

#[test]
fn a_director_only_capture_knows_the_rs_but_not_the_outcome() {
    let mut sim = Sim::new(&[Host::Director]);
    for i in 0..4 {
        sim.http(
            MS + i64::from(i) * 10 * MS,
            41000 + i,
            50 + u32::from(i),
            usize::from(i % 2),
        );
    }
    let a = sim.analyse();
    assert_eq!(role(&a, vantage(&sim, Host::Director)), Role::Director);
    assert_eq!(a.connections.len(), 4);
    for c in &a.connections {
        let i = usize::from(c.client.port() - 41000);
        assert_eq!(c.real_server, Some(ip4(RS[i % 2])));
        assert_eq!(c.outcome, Outcome::Unknown);
        assert!(c.unseen.iter().any(|u| u.contains("how it ended")));
    }
}

#[test]
fn a_reused_client_port_gives_two_connections() {
    let mut sim = Sim::new(&[Host::Client, Host::Director, Host::Rs(0), Host::Rs(1)]);
    sim.http(MS, 42000, 5000, 0);
    sim.http(30 * MS, 42000, 900_000, 1);
    let a = sim.analyse();
    assert_eq!(a.connections.len(), 2);
    let got: Vec<(Option<u32>, Option<IpAddr>)> = a
        .connections
        .iter()
        .map(|c| (c.isn, c.real_server))
        .collect();
    assert_eq!(
        got,
        vec![
            (Some(5000), Some(ip4(RS[0]))),
            (Some(900_000), Some(ip4(RS[1])))
        ]
    );
    for c in &a.connections {
        assert_eq!(c.legs.len(), 3);
    }
}

#[test]
fn unanswered_syns_are_retransmissions_and_unanswered() {
    // rp_filter on the RS: tunnelled SYNs arrive and nothing comes back.
    let mut sim = Sim::new(&[Host::Client, Host::Director, Host::Rs(0)]);
    let syn = tcp((CLIENT, 43000), (VIP, 80), 777, 0, Tcp::SYN, 0);
    for k in 0..3 {
        sim.request(MS + k * 1000 * MS, &syn, Some(0), false);
    }
    let a = sim.analyse();
    assert_eq!(a.connections.len(), 1);
    let c = &a.connections[0];
    assert_eq!(c.outcome, Outcome::Unanswered);
    assert_eq!(c.retransmissions, 2);
    assert_eq!(c.history, "ST");
    assert_eq!(c.real_server, Some(ip4(RS[0])));
    let rs_leg = c.legs.iter().find(|l| l.role == Role::RealServer).unwrap();
    assert_eq!(rs_leg.request_wrapped.as_ref().unwrap().packets, 3);
    assert!(c
        .evidence()
        .any(|e| e.kind == EvidenceKind::Retransmission && e.count == 2));
}

#[test]
fn an_rst_instead_of_a_syn_ack_is_refused() {
    let mut sim = Sim::new(&[Host::Client, Host::Director, Host::Rs(0)]);
    sim.request(
        MS,
        &tcp((CLIENT, 43001), (VIP, 80), 10, 0, Tcp::SYN, 0),
        Some(0),
        false,
    );
    sim.reply(
        MS + 100 * US,
        0,
        &tcp((VIP, 80), (CLIENT, 43001), 0, 11, Tcp::RST | Tcp::ACK, 0),
    );
    let a = sim.analyse();
    let c = &a.connections[0];
    assert_eq!(c.outcome, Outcome::Refused);
    let rst = c
        .evidence()
        .find(|e| e.kind == EvidenceKind::ResetFromServer)
        .expect("RST evidence");
    assert_eq!(rst.first.capture, vantage(&sim, Host::Client).capture);
}

#[test]
fn udp_replies_from_the_rs_address_stay_with_their_connection() {
    // A UDP service bound to 0.0.0.0: the reply leaves from the RIP, not the VIP.
    let mut sim = Sim::new(&[Host::Client, Host::Director, Host::Rs(1)]);
    let q = udp((CLIENT, 50001), (VIP, 53), 40);
    sim.request(MS, &q, Some(1), false);
    sim.reply(MS + 300 * US, 1, &udp((RS[1], 53), (CLIENT, 50001), 90));
    let a = sim.analyse();
    assert_eq!(a.connections.len(), 1, "{:#?}", a.connections);
    let c = &a.connections[0];
    assert_eq!(c.proto, Proto::UDP);
    assert_eq!(c.real_server, Some(ip4(RS[1])));
    assert_eq!(c.outcome, Outcome::Unanswered);
    let ev: Vec<_> = c
        .evidence()
        .filter(|e| e.kind == EvidenceKind::ReplyFromOtherSource)
        .collect();
    // Seen leaving the RS and arriving at the client.
    assert_eq!(ev.len(), 2);
    let client_leg = c.legs.iter().find(|l| l.role == Role::Client).unwrap();
    let other = client_leg.reply_other_source.as_ref().unwrap();
    assert_eq!(other.sources, vec![SocketAddr::new(ip4(RS[1]), 53)]);
    assert_eq!(other.payload_bytes, 90);
}

/// More services than a leg tracker tries one by one for a reply from a real server's own
/// address (it then keeps, per client, the VIPs the client has open): every reply still finds
/// its connection, and a client port with two services open gives the reply to the one that
/// was active last.
#[test]
fn udp_replies_from_the_rs_address_find_their_service_among_many() {
    let mut sim = Sim::new(&[Host::Client, Host::Director, Host::Rs(1)]);
    let services: u16 = 40;
    for i in 0..services {
        let t = MS + i64::from(i) * MS;
        let port = 5300 + i;
        let q = udp((CLIENT, 50000 + i), (VIP, port), 40);
        sim.request(t, &q, Some(1), false);
        sim.reply(
            t + 300 * US,
            1,
            &udp((RS[1], port), (CLIENT, 50000 + i), 90),
        );
    }
    // Client port 50000 asks a second service later; the RS answers that one.
    let t = 100 * MS;
    sim.request(t, &udp((CLIENT, 50000), (VIP, 5399), 40), Some(1), false);
    sim.reply(t + 300 * US, 1, &udp((RS[1], 5399), (CLIENT, 50000), 70));
    let a = sim.analyse();
    assert_eq!(a.topology.services.len(), usize::from(services) + 1);
    assert_eq!(a.connections.len(), usize::from(services) + 1);
    for c in &a.connections {
        let client_leg = c.legs.iter().find(|l| l.role == Role::Client).unwrap();
        let other = client_leg
            .reply_other_source
            .as_ref()
            .unwrap_or_else(|| panic!("{c:#?}"));
        assert_eq!(
            other.sources,
            vec![SocketAddr::new(ip4(RS[1]), c.vip.port())],
            "{c:#?}"
        );
        let bytes = if c.vip.port() == 5399 { 70 } else { 90 };
        assert_eq!(other.payload_bytes, bytes, "{c:#?}");
    }
}

#[test]
fn replies_routed_through_the_director_are_pointed_at() {
    let mut sim = Sim::new(&[Host::Client, Host::Director, Host::Rs(0)]);
    let syn = tcp((CLIENT, 43002), (VIP, 80), 10, 0, Tcp::SYN, 0);
    sim.request(MS, &syn, Some(0), false);
    sim.reply_to(
        MS + 100 * US,
        0,
        &tcp((VIP, 80), (CLIENT, 43002), 99, 11, Tcp::SYN | Tcp::ACK, 0),
        MAC_DIRECTOR,
    );
    let a = sim.analyse();
    let c = &a.connections[0];
    let kinds: Vec<(EvidenceKind, Role)> = c
        .legs
        .iter()
        .flat_map(|l| l.evidence.iter().map(move |e| (e.kind, l.role)))
        .collect();
    assert!(kinds.contains(&(EvidenceKind::ReplyToDirectorMac, Role::RealServer)));
    assert!(kinds.contains(&(EvidenceKind::ReplyAtDirector, Role::Director)));
    // The client never got the SYN-ACK.
    assert_eq!(c.outcome, Outcome::Unanswered);
    assert_eq!(c.outcome_from, Some(vantage(&sim, Host::Client)));
}

#[test]
fn requests_bypassing_the_director_are_flagged_at_the_rs() {
    let mut sim = Sim::new(&[Host::Client, Host::Director, Host::Rs(0), Host::Rs(1)]);
    sim.http(MS, 44000, 1, 1);
    // An RS answered ARP for the VIP: the client now sends straight to RS 1.
    let syn = tcp((CLIENT, 44001), (VIP, 80), 500, 0, Tcp::SYN, 0);
    sim.request(20 * MS, &syn, Some(1), true);
    sim.reply(
        20 * MS + 100 * US,
        1,
        &tcp((VIP, 80), (CLIENT, 44001), 9, 501, Tcp::SYN | Tcp::ACK, 0),
    );
    let a = sim.analyse();
    assert_eq!(role(&a, vantage(&sim, Host::Rs(1))), Role::RealServer);
    let c = a
        .connections
        .iter()
        .find(|c| c.client.port() == 44001)
        .unwrap();
    assert!(c
        .evidence()
        .any(|e| e.kind == EvidenceKind::UnwrappedRequestAtRealServer));
    assert!(!c.legs.iter().any(|l| l.role == Role::Director));
    assert_eq!(c.real_server, Some(ip4(RS[1])));
    assert_eq!(c.real_server_from, Some(RsSource::RsCapture));
    assert!(c.unseen.iter().any(|u| u.contains("director")));
}

#[test]
fn icmp_fragmentation_needed_attaches_to_its_connection() {
    let mut sim = Sim::new(&[Host::Client, Host::Director]);
    sim.http(MS, 45000, 1, 0);
    // The director answers a full-size segment with "fragmentation needed, MTU 1480".
    let big = tcp((CLIENT, 45000), (VIP, 80), 2, 1, Tcp::ACK, 1460).packet(999, 64);
    let icmp = IpPacket {
        ip: header(VIP, CLIENT, 1, 5, 64, 576),
        transport: Transport::Icmp(Icmp {
            v6: false,
            icmp_type: 3,
            code: 4,
            mtu: Some(1480),
            echo: None,
            quoted: Some(Box::new(big)),
            nd: None,
        }),
    };
    let f = eth(MAC_DIRECTOR, MAC_CLIENT, icmp);
    sim.see(Host::Director, 2 * MS, &f, true);
    sim.see(Host::Client, 2 * MS + 20 * US, &f, false);
    let a = sim.analyse();
    assert_eq!(a.connections.len(), 1);
    let c = &a.connections[0];
    let frag: Vec<_> = c
        .evidence()
        .filter(|e| e.kind == EvidenceKind::IcmpFragNeeded)
        .collect();
    assert_eq!(frag.len(), 2);
    assert!(frag[0].detail.contains("MTU 1480"));
}

#[test]
fn a_mirror_port_is_split_into_its_hosts_and_tunl0_is_a_real_server() {
    let mut sim = Sim::new(&[Host::Mirror, Host::Director, Host::Tunl0(0), Host::Rs(0)]);
    for i in 0..4 {
        sim.http(MS + i64::from(i) * 10 * MS, 46000 + i, 70 + u32::from(i), 0);
    }
    let a = sim.analyse();
    let mirror = vantage(&sim, Host::Mirror);
    // The mirror itself is no vantage point any more: one hop per MAC on the wire, each with
    // the role of the host that MAC belongs to.
    assert!(a.topology.vantage(mirror).is_none());
    let split = a
        .mirrors
        .iter()
        .find(|m| m.capture == mirror.capture)
        .expect("the mirror was split");
    let mac = |m: Mac| {
        m.iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":")
    };
    let role_of = |m: Mac| {
        let (id, _) = split.hops.iter().find(|(_, h)| *h == mac(m))?;
        let v = a.topology.vantage(VantageId {
            capture: mirror.capture,
            interface: *id,
        })?;
        Some(v.role)
    };
    assert_eq!(role_of(MAC_CLIENT), Some(Role::Client));
    assert_eq!(role_of(MAC_DIRECTOR), Some(Role::Director));
    assert_eq!(role_of(MAC_RS[0]), Some(Role::RealServer));
    assert_eq!(split.hops.len(), 3, "{:?}", split.hops);
    // Each frame is on the wire once: nothing to drop.
    assert_eq!(split.duplicates, 0);
    let t = a.topology.vantage(vantage(&sim, Host::Tunl0(0))).unwrap();
    assert_eq!(t.role, Role::RealServer, "{}", t.reason);
    assert_eq!(a.connections.len(), 4);
    for c in &a.connections {
        assert_eq!(c.real_server, Some(ip4(RS[0])));
        // Three hops of the mirror, the director, tunl0 and the RS's eth0.
        assert_eq!(c.legs.len(), 6);
        assert_eq!(c.outcome, Outcome::Completed);
    }
}

#[test]
fn user_roles_override_the_traffic_and_say_so() {
    let sim = healthy(2);
    let mut opts = FlowOptions::default();
    let client = vantage(&sim, Host::Client);
    opts.hints.roles.insert(client.capture, Role::Other);
    let a = analyse_source(&sim.source(), &opts);
    let v = a.topology.vantage(client).unwrap();
    assert_eq!(v.role, Role::Other);
    assert_eq!(v.decided_by, Decision::User);
    assert!(v.reason.contains("client"));
    // The traffic showed a client without doubt: the contradiction is kept for the caller
    // (the command line refuses it).
    let c = &a.topology.role_conflicts;
    assert_eq!(c.len(), 1, "{c:?}");
    assert_eq!(
        (c[0].vantage, c[0].given, c[0].traffic),
        (client, Role::Other, Role::Client)
    );
    // A role that agrees with the traffic is no conflict.
    let mut opts = FlowOptions::default();
    opts.hints.roles.insert(client.capture, Role::Client);
    let a = analyse_source(&sim.source(), &opts);
    assert!(a.topology.role_conflicts.is_empty());
}

#[test]
fn rules_and_traffic_are_compared() {
    let sim = healthy(4);
    let expected = Some(vec![ExpectedService {
        service: Service {
            vip: ip4(VIP),
            port: 80,
            proto: Proto::TCP,
        },
        mark: None,
        scheduler: Some("rr".into()),
        real_servers: vec![
            ExpectedRealServer {
                addr: ip4(RS[0]),
                port: 80,
                forwarding: "tunnel".into(),
                weight: Some(1),
                tunnel_type: None,
                tunnel_port: None,
            },
            ExpectedRealServer {
                addr: "10.1.0.9".parse().unwrap(),
                port: 80,
                forwarding: "tunnel".into(),
                weight: Some(1),
                tunnel_type: None,
                tunnel_port: None,
            },
        ],
    }]);
    let opts = FlowOptions {
        expected,
        ..FlowOptions::default()
    };
    let a = analyse_source(&sim.source(), &opts);
    let kinds: Vec<(&str, Option<IpAddr>)> =
        a.config.iter().map(|f| (f.kind, f.real_server)).collect();
    assert!(kinds.contains(&("rs_not_configured", Some(ip4(RS[1])))));
    assert!(kinds.contains(&("rs_without_connections", Some("10.1.0.9".parse().unwrap()))));
    assert_eq!(kinds.len(), 2, "{kinds:?}");
    // Tunnelled packets to the RS missing from the rules are pointed at.
    let c = a
        .connections
        .iter()
        .find(|c| c.real_server == Some(ip4(RS[1])))
        .unwrap();
    assert!(c
        .evidence()
        .any(|e| e.kind == EvidenceKind::WrappedToUnknownRs));
}

#[test]
fn memory_follows_connections_in_flight() {
    // 2000 short UDP exchanges, 100 ms apart, with a 1 s idle timeout: a handful in flight.
    let mut sim = Sim::new(&[Host::Client]);
    for i in 0..2000u16 {
        let t = i64::from(i) * 100 * MS;
        let port = 20000 + i;
        sim.request(t, &udp((CLIENT, port), (VIP, 53), 30), None, false);
        sim.reply(t + MS, 0, &udp((VIP, 53), (CLIENT, port), 60));
    }
    let opts = FlowOptions {
        timeouts: Timeouts {
            udp_idle_ns: 1_000 * MS,
            tcp_idle_ns: 1_000 * MS,
        },
        ..FlowOptions::default()
    };
    let a = analyse_source(&sim.source(), &opts);
    assert_eq!(a.connections.len(), 2000);
    assert!(a
        .connections
        .iter()
        .all(|c| c.outcome == Outcome::Completed));
    let s = &a.stats[0];
    assert_eq!(s.legs, 2000);
    // States expire 1 s after their last packet, checked once a second: at 10 exchanges a
    // second, at most about 20 are held at once.
    assert!(s.max_in_flight <= 21, "{}", s.max_in_flight);
}

#[test]
fn udp_idle_timeout_splits_a_tuple() {
    let mut sim = Sim::new(&[Host::Client, Host::Director, Host::Rs(0)]);
    let q = udp((CLIENT, 50002), (VIP, 53), 40);
    let r = udp((VIP, 53), (CLIENT, 50002), 80);
    sim.request(MS, &q, Some(0), false);
    sim.reply(2 * MS, 0, &r);
    sim.request(400_000 * MS, &q, Some(0), false);
    sim.reply(400_001 * MS, 0, &r);
    let a = sim.analyse();
    assert_eq!(a.connections.len(), 2);
    for c in &a.connections {
        assert_eq!(c.legs.len(), 3);
        assert_eq!(c.outcome, Outcome::Completed);
    }
}

#[test]
fn a_director_that_no_client_reached_is_known_by_its_arp_answer() {
    // A real server answers ARP for the VIP too, and the client picked it: every request goes
    // straight to RS 0; the director's capture shows only its own ARP answer.
    let mut sim = Sim::new(&[Host::Client, Host::Director, Host::Rs(0)]);
    let answer = Packet {
        link: Link {
            src_mac: Some(MAC_DIRECTOR),
            dst_mac: Some(MAC_CLIENT),
            ..Link::default()
        },
        net: Net::Arp(Arp {
            operation: 2,
            sender_mac: MAC_DIRECTOR,
            sender_ip: VIP,
            target_mac: MAC_CLIENT,
            target_ip: CLIENT,
        }),
        gue_shaped: None,
        control: None,
    };
    sim.see(Host::Director, 0, &answer, false);
    sim.see(Host::Client, 20 * US, &answer, false);
    for i in 0..3u16 {
        let t = MS + i64::from(i) * 10 * MS;
        let port = 47000 + i;
        let isn = 10 + u32::from(i);
        sim.request(
            t,
            &tcp((CLIENT, port), (VIP, 80), isn, 0, Tcp::SYN, 0),
            Some(0),
            true,
        );
        sim.reply(
            t + 100 * US,
            0,
            &tcp(
                (VIP, 80),
                (CLIENT, port),
                99,
                isn + 1,
                Tcp::SYN | Tcp::ACK,
                0,
            ),
        );
    }
    let a = sim.analyse();
    let d = a.topology.vantage(vantage(&sim, Host::Director)).unwrap();
    assert_eq!(d.role, Role::Director, "{}", d.reason);
    assert_eq!(d.decided_by, Decision::Guess);
    assert_eq!(role(&a, vantage(&sim, Host::Rs(0))), Role::RealServer);
    assert_eq!(role(&a, vantage(&sim, Host::Client)), Role::Client);
    assert_eq!(a.connections.len(), 3);
    for c in &a.connections {
        assert!(c
            .evidence()
            .any(|e| e.kind == EvidenceKind::UnwrappedRequestAtRealServer));
    }
}

#[test]
fn an_icmp_error_about_a_tunnelled_packet_attaches_to_the_inner_connection() {
    let mut sim = Sim::new(&[Host::Client, Host::Director, Host::Rs(0)]);
    sim.http(MS, 45500, 1, 0);
    // A hop between director and RS cannot forward a tunnelled segment: it quotes the outer
    // header back to the director.
    let inner = tcp((CLIENT, 45500), (VIP, 80), 2, 1, Tcp::ACK, 1460).packet(998, 63);
    let icmp = IpPacket {
        ip: header(Ipv4Addr::new(10, 1, 0, 254), DIRECTOR, 1, 6, 64, 576),
        transport: Transport::Icmp(Icmp {
            v6: false,
            icmp_type: 3,
            code: 4,
            mtu: Some(1400),
            echo: None,
            quoted: Some(Box::new(wrap(DIRECTOR, RS[0], inner))),
            nd: None,
        }),
    };
    let f = eth([2, 0, 0, 0, 0, 0xfe], MAC_DIRECTOR, icmp);
    sim.see(Host::Director, 2 * MS, &f, true);
    let a = sim.analyse();
    assert_eq!(a.connections.len(), 1);
    let c = &a.connections[0];
    let dir = c.legs.iter().find(|l| l.role == Role::Director).unwrap();
    let e = dir
        .evidence
        .iter()
        .find(|e| e.kind == EvidenceKind::IcmpFragNeeded)
        .expect("frag-needed at the director");
    assert!(e.detail.contains("MTU 1400") && e.detail.contains("10.1.0.254"));
}

#[test]
fn ipv6_services_tunnelled_in_ipv6_are_rebuilt_too() {
    use std::net::Ipv6Addr;
    let vip: Ipv6Addr = "2001:db8::100".parse().unwrap();
    let dir: Ipv6Addr = "2001:db8::1".parse().unwrap();
    let rs: Ipv6Addr = "2001:db8::2".parse().unwrap();
    let client: Ipv6Addr = "2001:db8:9::10".parse().unwrap();
    let h6 = |src: Ipv6Addr, dst: Ipv6Addr, proto: u8, len: u32| IpHeader {
        src: IpAddr::V6(src),
        dst: IpAddr::V6(dst),
        protocol: proto,
        ttl: 64,
        id: 0,
        dont_fragment: false,
        more_fragments: false,
        fragment_offset: 0,
        total_len: len,
        captured_len: len,
    };
    let seg = |src: Ipv6Addr, sp: u16, dst: Ipv6Addr, dp: u16, seq: u32, flags: u8| IpPacket {
        ip: h6(src, dst, 6, 60),
        transport: Transport::Tcp(Tcp {
            src_port: sp,
            dst_port: dp,
            seq,
            ack: 0,
            flags,
            window: 1000,
            mss: None,
            window_scale: None,
            sack_permitted: false,
            timestamp: None,
            payload_len: 0,
            payload_hash: 0,
        }),
    };
    let syn = seg(client, 50000, vip, 443, 7, Tcp::SYN);
    let syn_ack = seg(vip, 443, client, 50000, 99, Tcp::SYN | Tcp::ACK);
    let wrapped = IpPacket {
        ip: h6(dir, rs, 41, 100),
        transport: Transport::Tunnel {
            tunnel: TunnelKind::IpInIpv6,
            udp: None,
            inner: Box::new(syn.clone()),
        },
    };
    let frame = |capture: u32, number: u64, ts: i64, src: Mac, dst: Mac, ip: IpPacket| {
        (
            DecodedFrame {
                capture,
                interface: 0,
                number,
                ts_ns: EPOCH + ts,
                wire_len: 100,
                packet: eth(src, dst, ip),
            },
            1,
        )
    };
    let source = Source(vec![
        // client
        vec![
            frame(0, 1, 0, MAC_CLIENT, MAC_DIRECTOR, syn.clone()),
            frame(0, 2, 300 * US, MAC_RS[0], MAC_CLIENT, syn_ack.clone()),
        ],
        // director
        vec![
            frame(1, 1, 20 * US, MAC_CLIENT, MAC_DIRECTOR, syn.clone()),
            frame(1, 2, 30 * US, MAC_DIRECTOR, MAC_RS[0], wrapped.clone()),
        ],
        // real server
        vec![
            frame(2, 1, 50 * US, MAC_DIRECTOR, MAC_RS[0], wrapped),
            frame(2, 2, 280 * US, MAC_RS[0], MAC_CLIENT, syn_ack),
        ],
    ]);
    let a = analyse_source(&source, &FlowOptions::default());
    let roles: Vec<Role> = a.topology.vantages.iter().map(|v| v.role).collect();
    assert_eq!(roles, vec![Role::Client, Role::Director, Role::RealServer]);
    assert_eq!(a.topology.vips[0].addr, IpAddr::V6(vip));
    assert_eq!(a.connections.len(), 1);
    let c = &a.connections[0];
    assert_eq!(c.client, SocketAddr::new(IpAddr::V6(client), 50000));
    assert_eq!(c.real_server, Some(IpAddr::V6(rs)));
    assert_eq!(c.history, "Sh");
    assert_eq!(c.legs.len(), 3);
}

/// `n` round-robin connections `gap` apart, every host captured.
fn steady(n: u32, gap: i64) -> Sim {
    let mut sim = Sim::new(&[Host::Client, Host::Director, Host::Rs(0), Host::Rs(1)]);
    sim.arp_vip(0, MAC_DIRECTOR);
    for i in 0..n {
        let port = 20000 + (i % 40000) as u16;
        sim.http(
            MS + i64::from(i) * gap,
            port,
            7 + i * 7919,
            (i % 2) as usize,
        );
    }
    sim
}

#[test]
fn streaming_hands_connections_on_as_they_end_and_holds_few() {
    // 4000 connections over 100 s, a few open at once; clocks shifted by seconds both ways.
    // More packets than one capture's clock sample holds, so the samples are thinned too.
    let sim = steady(4000, 25 * MS)
        .shifted(Host::Client, -1_200 * MS)
        .shifted(Host::Rs(1), 2_500 * MS + 3);
    let mut streamed = Vec::new();
    let a = lvscheck::flows::analyse_streaming(&sim.source(), &FlowOptions::default(), &mut |c| {
        streamed.push(c)
    });
    assert!(a.connections.is_empty());
    assert_eq!(a.connection_count, 4000);
    assert_eq!(streamed.len(), 4000);
    // Numbered in the order handed on.
    assert!(streamed.iter().zip(1..).all(|(c, i)| c.id == i));
    for c in &streamed {
        let i = (c.isn.expect("SYN seen") - 7) / 7919;
        assert_eq!(c.real_server, Some(ip4(RS[(i % 2) as usize])), "{c:?}");
        assert_eq!(c.outcome, Outcome::Completed);
        assert_eq!(c.legs.len(), 3);
    }
    // A connection is joined seconds after it ends, not at the end of the captures: 40 start
    // each second, a closed state waits 3 s and the join about 2 s more.
    assert!(a.max_waiting < 400, "{}", a.max_waiting);
    for s in &a.stats {
        assert!(s.max_in_flight < 250, "{s:?}");
    }
    // The clocks, from thinned samples, still to within the simulated path delays.
    for (h, shift) in [(Host::Client, -1_200 * MS), (Host::Rs(1), 2_500 * MS + 3)] {
        let o = a
            .clock_offsets
            .iter()
            .find(|o| o.vantage == vantage(&sim, h))
            .unwrap();
        assert!((o.offset_ns - shift).abs() <= 60 * US, "{h:?}: {o:?}");
    }
    // The same connections as when they are all kept, sorted by start.
    let kept = sim.analyse();
    let key = |c: &lvscheck::flows::Connection| {
        (
            c.first_ts_ns,
            c.client,
            c.real_server,
            c.outcome,
            c.history.clone(),
        )
    };
    let mut s: Vec<_> = streamed.iter().map(key).collect();
    s.sort();
    let k: Vec<_> = kept.connections.iter().map(key).collect();
    assert_eq!(s, k);
}

/// The client's FIN of `http(_, 43000, 5000, 0)` sent again at `t`.
fn fin_again(sim: &mut Sim, t: i64) {
    let sisn = 5000u32.wrapping_mul(7) + 12345;
    let fin = tcp(
        (CLIENT, 43000),
        (VIP, 80),
        5101,
        sisn + 501,
        Tcp::ACK | Tcp::FIN,
        0,
    );
    sim.request(t, &fin, Some(0), false);
}

#[test]
fn stragglers_during_time_wait_are_counted_not_made_connections() {
    let mut sim = Sim::new(&[Host::Client, Host::Director, Host::Rs(0)]);
    sim.http(MS, 43000, 5000, 0);
    // The client's FIN again, 10 s later (its state was handed on after 3 s quiet)...
    fin_again(&mut sim, 10_000 * MS);
    // ...and the same tuple reused with a new ISN 20 s later: a connection of its own.
    sim.http(20_000 * MS, 43000, 77_000, 0);
    let a = sim.analyse();
    let isns: Vec<Option<u32>> = a.connections.iter().map(|c| c.isn).collect();
    assert_eq!(isns, vec![Some(5000), Some(77_000)]);
    for c in &a.connections {
        assert_eq!(c.outcome, Outcome::Completed);
        assert_eq!(c.legs.len(), 3);
    }
    for h in [Host::Client, Host::Director, Host::Rs(0)] {
        let s = a
            .stats
            .iter()
            .find(|s| s.vantage == vantage(&sim, h))
            .unwrap();
        // The client and the RS saw the FIN again; the director both as it came and as it
        // left wrapped.
        let again = if h == Host::Director { 2 } else { 1 };
        assert_eq!(s.late_packets, again, "{h:?}: {s:?}");
        assert_eq!(s.legs, 2);
    }
    // The same stragglers, named: one row, counted as the stats count them, the first being
    // the FIN again at whichever capture saw it first (the client sent it).
    let late: Vec<_> = a.oddities.iter().map(|o| (o.name, o.count)).collect();
    assert_eq!(late, vec![("late_packet", 4)]);
    let first = a.oddities[0].first;
    assert_eq!(first.vantage(), vantage(&sim, Host::Client));
    assert_eq!(first.ts_ns, EPOCH + 10_000 * MS);
}

#[test]
fn packets_after_a_close_stay_with_their_connection() {
    // The last ACK follows the FINs at once, and the client sends its FIN again 1 s later:
    // both within the 3 s a closed connection waits for such packets, so both are its own.
    let mut sim = Sim::new(&[Host::Client, Host::Director, Host::Rs(0)]);
    sim.http(MS, 43000, 5000, 0);
    fin_again(&mut sim, 1_000 * MS);
    let a = sim.analyse();
    assert_eq!(a.connections.len(), 1);
    let c = &a.connections[0];
    assert_eq!(c.outcome, Outcome::Completed);
    // The exchange, then the FIN again: a retransmission.
    assert_eq!(c.history, "ShADadFfT");
    assert_eq!(c.retransmissions, 1);
    assert_eq!(c.legs.len(), 3);
    for l in &c.legs {
        // Five packets of the exchange from the client, and the FIN again; at the director both
        // as they came and as they left wrapped.
        let requests = [l.request.as_ref(), l.request_wrapped.as_ref()];
        for r in requests.into_iter().flatten() {
            assert_eq!((r.packets, r.retransmissions), (6, 1), "{l:?}");
        }
    }
    for s in &a.stats {
        assert_eq!((s.legs, s.late_packets), (1, 0), "{s:?}");
    }
}

/// A source whose first capture gives its frames in the wrong order: those from `split_ns` on
/// first, as a concatenation of two files would.
struct Disordered(Source, i64);

impl FrameSource for Disordered {
    fn captures(&self) -> Vec<(CaptureId, String)> {
        self.0.captures()
    }
    fn read(
        &self,
        capture: CaptureId,
        each: &mut dyn FnMut(&DecodedFrame, u32),
    ) -> Result<ReadReport, String> {
        let frames = &self.0 .0[capture as usize];
        let half = match capture {
            0 => frames
                .iter()
                .position(|(f, _)| f.ts_ns >= self.1)
                .unwrap_or(0),
            _ => 0,
        };
        for (f, lt) in frames[half..].iter().chain(&frames[..half]) {
            each(f, *lt);
        }
        Ok(ReadReport {
            complete: true,
            ..ReadReport::default()
        })
    }
}

#[test]
fn a_capture_out_of_time_order_is_joined_once_read_to_its_end() {
    let sim = steady(600, 20 * MS);
    // Between two connections (each lasts 1 ms): one cut in two would be two legs at one
    // vantage point, which no join can undo.
    let split = EPOCH + MS + 300 * 20 * MS - 5 * MS;
    let a = analyse_source(&Disordered(sim.source(), split), &FlowOptions::default());
    assert_eq!(a.connections.len(), 600);
    for c in &a.connections {
        let i = (c.isn.unwrap() - 7) / 7919;
        assert_eq!(c.real_server, Some(ip4(RS[(i % 2) as usize])));
        assert_eq!(c.outcome, Outcome::Completed);
        assert_eq!(c.legs.len(), 3);
    }
    assert!(
        a.warnings
            .iter()
            .any(|w| w.starts_with("capture0: its frames are not in time order")),
        "{:?}",
        a.warnings
    );
    for s in &a.stats {
        let want = (s.vantage.capture == 0).then_some("frames not in time order");
        assert_eq!(s.joined_at_end, want, "{s:?}");
    }
}

const MAC_OLD: Mac = [2, 0, 0, 0, 0, 0x0d];

/// `n` exchanges sent round-robin to the two real servers, 10 ms apart.
fn rr_exchanges(sim: &mut Sim, n: u16) {
    for i in 0..n {
        let at = MS + i64::from(i) * 10 * MS;
        sim.http(at, 40000 + i, 1000 + u32::from(i), usize::from(i % 2));
    }
}

/// The oddities as (name, count), in the analysis's order.
fn oddities(a: &Analysis) -> Vec<(&'static str, u64)> {
    a.oddities.iter().map(|o| (o.name, o.count)).collect()
}

#[test]
fn healthy_traffic_has_no_oddities() {
    let a = healthy(10).analyse();
    assert_eq!(oddities(&a), vec![]);
}

/// A host outside the cluster holding the VIP: the client's request goes to its MAC (a stale
/// neighbour entry) and it answers from the VIP; `n` replies reach the client.
fn stale_host_exchange(sim: &mut Sim, t: i64, n: u32) {
    let c = (CLIENT, 47000);
    let v = (VIP, 80);
    let syn = eth(
        MAC_CLIENT,
        MAC_OLD,
        tcp(c, v, 900, 0, Tcp::SYN, 0).packet(7, 64),
    );
    sim.see(Host::Client, t, &syn, true);
    for i in 0..n {
        let flags = if i == 0 {
            Tcp::SYN | Tcp::ACK
        } else {
            Tcp::ACK
        };
        let r = eth(
            MAC_OLD,
            MAC_CLIENT,
            tcp(v, c, 50 + i, 901, flags, 10 * i).packet(8 + i, 64),
        );
        sim.see(Host::Client, t + i64::from(i + 1) * 100 * US, &r, true);
    }
}

#[test]
fn replies_from_the_vip_by_an_unknown_mac_are_named_where_a_director_capture_shows_the_client_side()
{
    let mut sim = healthy(4);
    stale_host_exchange(&mut sim, 100 * MS, 3);
    let a = sim.analyse();
    assert_eq!(oddities(&a), vec![("vip_from_unknown_mac", 3)]);
    let o = &a.oddities[0];
    let sender = o.first_sender.expect("sender");
    assert_eq!(
        (sender.addr, sender.mac.map(|m| m.0)),
        (ip4(VIP), Some(MAC_OLD))
    );
    assert_eq!(o.first.vantage(), vantage(&sim, Host::Client));
    assert_eq!(o.first.ts_ns, EPOCH + 100 * MS + 100 * US);
    // Without a director capture nothing says which MACs the client side uses (a router's
    // would look unknown): not judged.
    let mut blind = Sim::new(&[Host::Client, Host::Rs(0), Host::Rs(1)]);
    rr_exchanges(&mut blind, 4);
    stale_host_exchange(&mut blind, 100 * MS, 3);
    assert_eq!(oddities(&blind.analyse()), vec![]);
}

#[test]
fn a_mirror_port_counts_an_unknown_mac_once_per_packet() {
    let mut sim = Sim::new(&[Host::Mirror, Host::Director]);
    rr_exchanges(&mut sim, 4);
    stale_host_exchange(&mut sim, 100 * MS, 3);
    let a = sim.analyse();
    // Each reply is on the wire once: seen by the client's hop (received), not again by the
    // stale host's (sent).
    assert_eq!(oddities(&a), vec![("vip_from_unknown_mac", 3)]);
}

#[test]
fn a_packet_to_a_clients_open_connection_from_an_unknown_address_is_named() {
    let mut sim = healthy(2);
    // While the client's connection on port 40000 is open (1 ms to 2 ms), a packet from a
    // third address and another port reaches that port.
    let stranger = Ipv4Addr::new(10, 1, 5, 5);
    let p = eth(
        [2, 0, 0, 0, 0, 0x55],
        MAC_CLIENT,
        tcp((stranger, 3128), (CLIENT, 40000), 1, 1, Tcp::ACK, 0).packet(3, 64),
    );
    sim.see(Host::Client, MS + 700 * US, &p, true);
    let a = sim.analyse();
    assert_eq!(oddities(&a), vec![("reply_from_unknown_source", 1)]);
    let sender = a.oddities[0].first_sender.expect("sender");
    assert_eq!(sender.addr, ip4(stranger));
    // It joined no connection: both are as healthy as before.
    assert_eq!(a.connections.len(), 2);
    assert!(a
        .connections
        .iter()
        .all(|c| c.outcome == Outcome::Completed));
}

#[test]
fn health_checks_are_counted_apart_and_never_made_connections() {
    // keepalived-style checks from the director's address to RS 0's own address on port 80,
    // outside the tunnel, every 3 s, beside four client connections: one answered (after a
    // retransmitted SYN), one refused, one never answered; and a UDP check answered.
    let mut sim = healthy(4);
    let check = |sim: &mut Sim, t: i64, s: &Seg, to_rs: bool| {
        let (src, dst) = if to_rs {
            (MAC_DIRECTOR, MAC_RS[0])
        } else {
            (MAC_RS[0], MAC_DIRECTOR)
        };
        sim.next_ip_id += 1;
        let f = eth(src, dst, s.packet(sim.next_ip_id, 64));
        let (first, second) = if to_rs {
            (Host::Director, Host::Rs(0))
        } else {
            (Host::Rs(0), Host::Director)
        };
        sim.see(first, t, &f, true);
        sim.see(second, t + 20 * US, &f, false);
    };
    let (d, r) = (DIRECTOR, RS[0]);
    const S: u8 = Tcp::SYN;
    const A: u8 = Tcp::ACK;
    const R: u8 = Tcp::RST;
    let t0 = 2 * MS;
    check(&mut sim, t0, &tcp((d, 50000), (r, 80), 5, 0, S, 0), true);
    check(
        &mut sim,
        t0 + 1000 * MS,
        &tcp((d, 50000), (r, 80), 5, 0, S, 0),
        true,
    );
    check(
        &mut sim,
        t0 + 1001 * MS,
        &tcp((r, 80), (d, 50000), 9, 6, S | A, 0),
        false,
    );
    check(
        &mut sim,
        t0 + 3000 * MS,
        &tcp((d, 50002), (r, 80), 70, 0, S, 0),
        true,
    );
    check(
        &mut sim,
        t0 + 3001 * MS,
        &tcp((r, 80), (d, 50002), 0, 71, R | A, 0),
        false,
    );
    check(
        &mut sim,
        t0 + 6000 * MS,
        &tcp((d, 50004), (r, 80), 900, 0, S, 0),
        true,
    );
    check(&mut sim, t0, &udp((d, 51000), (r, 53), 30), true);
    check(&mut sim, t0 + MS, &udp((r, 53), (d, 51000), 60), false);
    // The real server opening a connection to the director is no check.
    check(
        &mut sim,
        t0 + 10 * MS,
        &tcp((r, 80), (d, 22), 1, 0, S, 0),
        false,
    );
    let a = sim.analyse();
    assert_eq!(a.connections.len(), 4, "checks are not client connections");
    let at = vantage(&sim, Host::Director);
    let seen = |port: u16| {
        a.health_checks
            .iter()
            .find(|h| h.vantage == at && h.key.server == SocketAddr::new(ip4(r), port))
            .unwrap_or_else(|| panic!("no checks of port {port}: {:#?}", a.health_checks))
    };
    let h = seen(80);
    assert_eq!(h.key.director, ip4(d));
    assert_eq!(
        (
            h.started,
            h.answered,
            h.refused,
            h.unanswered,
            h.retransmissions
        ),
        (3, 1, 1, 1, 1)
    );
    assert_eq!(h.median_interval_ns, Some(3000 * MS));
    assert_eq!(h.server_mac.map(|m| m.0), Some(MAC_RS[0]));
    assert!(h.succeeded.unwrap().answer.is_some());
    assert!(h.failed.is_some());
    let u = seen(53);
    assert_eq!((u.key.proto, u.started, u.answered), (Proto::UDP, 1, 1));
    // The real server's capture sees the same checks.
    let at_rs = vantage(&sim, Host::Rs(0));
    assert!(a
        .health_checks
        .iter()
        .any(|h| h.vantage == at_rs && h.started == 3 && h.refused == 1));
    assert_eq!(a.health_checks.len(), 4);
}
