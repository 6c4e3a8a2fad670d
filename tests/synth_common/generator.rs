//! Synthetic LVS-TUN traffic, written as the captures each host would have taken.
//!
//! One flat Ethernet segment: a load generator ("client", or client1..M) holding many client
//! addresses from the documentation ranges 198.51.100.0/24 and 203.0.113.0/24 on one NIC, a
//! director (192.0.2.1, VIP 192.0.2.100) and real servers rs1..K (192.0.2.11...). Nothing here is
//! ever sent: the packets only go into files.
//!
//! Every packet is built once, with etherparse's `PacketBuilder`, and written into the capture
//! of every host that would see it, at the time it would pass there: client -> director (arrives
//! unwrapped, leaves IP-in-IP wrapped: outer director -> RS, protocol 4, DF, ID 0, outer TTL =
//! inner TTL, inner TTL one lower) -> RS; replies RS -> client from VIP:80 with the RS's MAC.
//!
//! Connections start as a Poisson process and each lasts a few milliseconds (seconds when a
//! fault makes the client retransmit), so the connections in flight stay bounded however many
//! are generated; the generator itself holds only the packets not yet written (a heap ordered
//! by time), never the whole capture.
//!
//! Deterministic: the same configuration and seed give byte-identical files.
#![allow(dead_code)]

use etherparse::{
    ArpEthIpv4Packet, ArpOperation, IpHeaders, IpNumber, Ipv4Header, PacketBuilder, TcpHeader,
    TcpOptionElement,
};
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapTsResolution, PcapWriter};
use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketBlock;
use pcap_file::pcapng::blocks::interface_description::{
    InterfaceDescriptionBlock, InterfaceDescriptionOption, InterfaceTsResolution,
};
use pcap_file::pcapng::PcapNgWriter;
use pcap_file::{DataLink, Endianness};
use std::borrow::Cow;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::time::Duration;

const US: i64 = 1_000;
const MS: i64 = 1_000_000;
const SEC: i64 = 1_000_000_000;
/// 2026-03-02T09:00:00Z: the traffic's start, by the true clock.
const EPOCH_NS: i64 = 1_772_442_000 * SEC;
const ETH_MIN_FRAME: usize = 60;
const BROADCAST: [u8; 6] = [0xff; 6];
pub const DIRECTOR: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
pub const VIP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 100);
pub const PORT: u16 = 80;
/// Client SYN retransmissions after the first try when nothing usable comes back (Linux:
/// 1 s, then doubling); the client gives up after them.
const SYN_RETRIES_NS: [i64; 2] = [SEC, 3 * SEC];

/// splitmix64: tiny, fast, good enough for traffic shapes, and the same on every machine.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }
    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next_u64() % (hi - lo + 1) as u64) as i64
    }
    /// Exponentially distributed with the given mean (Poisson arrivals).
    pub fn exp(&mut self, mean: f64) -> f64 {
        let u = ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
        -mean * u.ln()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaptureFormat {
    Pcap,
    PcapNg,
}

impl CaptureFormat {
    pub fn parse(s: &str) -> Result<CaptureFormat, String> {
        match s {
            "pcap" => Ok(CaptureFormat::Pcap),
            "pcapng" => Ok(CaptureFormat::PcapNg),
            _ => Err(format!("unknown format {s:?} (pcap, pcapng)")),
        }
    }
    fn extension(self) -> &'static str {
        match self {
            CaptureFormat::Pcap => "pcap",
            CaptureFormat::PcapNg => "pcapng",
        }
    }
}

/// Misconfigurations of one real server (the faulty one, rs1 unless chosen otherwise).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// rp_filter=1 on the RS: tunnelled requests arrive, nothing is answered; the client
    /// retransmits its SYN and gives up.
    RpFilter,
    /// The RS answers ARP for the VIP (before the director does, so the client keeps the
    /// director's MAC and the traffic itself is unchanged).
    Arp,
    /// The RS answers from its own address (RIP:80) instead of the VIP; the client resets
    /// these unknown SYN-ACKs, retransmits its SYN and gives up.
    ReplyFromRip,
    /// The RS routes replies through the director (to the director's MAC), which drops them;
    /// the client retransmits its SYN and gives up.
    ViaDirector,
}

impl Fault {
    pub fn parse(s: &str) -> Result<Fault, String> {
        match s {
            "rp-filter" => Ok(Fault::RpFilter),
            "arp" => Ok(Fault::Arp),
            "reply-from-rip" => Ok(Fault::ReplyFromRip),
            "via-director" => Ok(Fault::ViaDirector),
            _ => Err(format!(
                "unknown fault {s:?} (rp-filter, arp, reply-from-rip, via-director)"
            )),
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Fault::RpFilter => "rp-filter",
            Fault::Arp => "arp",
            Fault::ReplyFromRip => "reply-from-rip",
            Fault::ViaDirector => "via-director",
        }
    }
    /// Whether the faulty RS's connections get any usable answer.
    fn answers(self) -> bool {
        matches!(self, Fault::Arp)
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub connections: u64,
    pub servers: usize,
    pub seed: u64,
    /// Client addresses (at most 508: two documentation /24s).
    pub clients: usize,
    /// Load generator hosts the client addresses are spread over, one capture each.
    pub client_hosts: usize,
    /// New connections per second (mean of a Poisson process).
    pub rate: f64,
    /// Response segments per connection, uniform in this range.
    pub response_segments: (u32, u32),
    /// Payload bytes of a full response segment (the last one is shorter).
    pub segment_size: u32,
    /// Host name -> clock error added to every timestamp of its capture, in ns.
    pub clock_shift_ns: BTreeMap<String, i64>,
    pub format: CaptureFormat,
    pub fault: Option<Fault>,
    /// Index (0-based) of the real server the fault applies to.
    pub faulty_server: usize,
    /// Write only these hosts' captures (all when empty).
    pub only: Vec<String>,
    /// Host name -> (from, until) in ns after the traffic's start: that host's capture only
    /// holds what passed in this window (tcpdump started late or stopped early).
    pub capture_window_ns: BTreeMap<String, (i64, i64)>,
    /// When the traffic starts, in ns after the generator's epoch: sets generated apart can
    /// then be appended one after the other as one longer capture.
    pub start_ns: i64,
}

impl Config {
    pub fn new(connections: u64, servers: usize) -> Config {
        Config {
            connections,
            servers,
            seed: 1,
            clients: 200,
            client_hosts: 1,
            rate: 2000.0,
            response_segments: (1, 3),
            segment_size: 1448,
            clock_shift_ns: BTreeMap::new(),
            format: CaptureFormat::Pcap,
            fault: None,
            faulty_server: 0,
            only: Vec::new(),
            capture_window_ns: BTreeMap::new(),
            start_ns: 0,
        }
    }

    fn validate(&self) -> Result<(), String> {
        if self.servers == 0 || self.servers > 200 {
            return Err("--servers must be 1..=200".into());
        }
        if self.clients == 0 || self.clients > 508 {
            return Err("--clients must be 1..=508".into());
        }
        if self.client_hosts == 0 || self.client_hosts > self.clients {
            return Err("--client-hosts must be 1..=clients".into());
        }
        if self.rate <= 0.0 || !self.rate.is_finite() {
            return Err("--rate must be positive".into());
        }
        let (lo, hi) = self.response_segments;
        if lo == 0 || lo > hi {
            return Err("--response-segments must be MIN-MAX with 1 <= MIN <= MAX".into());
        }
        if self.segment_size == 0 || self.segment_size > 1448 {
            return Err("--segment-size must be 1..=1448".into());
        }
        if self.faulty_server >= self.servers {
            return Err("the faulty server must be one of the servers".into());
        }
        Ok(())
    }
}

/// What was written.
#[derive(Debug, Clone)]
pub struct Summary {
    /// Host name, file (None when not written), frames, bytes of frame data.
    pub captures: Vec<(String, Option<PathBuf>, u64, u64)>,
    pub truth: PathBuf,
    pub connections: u64,
    /// Most connections open at once (by the true clock).
    pub max_concurrent: usize,
    pub duration_ns: i64,
}

enum Writer {
    Pcap(PcapWriter<BufWriter<File>>),
    PcapNg(PcapNgWriter<BufWriter<File>>),
}

fn io_err(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

impl Writer {
    fn create(path: &Path, format: CaptureFormat) -> io::Result<Writer> {
        let file = BufWriter::with_capacity(1 << 20, File::create(path)?);
        Ok(match format {
            CaptureFormat::Pcap => {
                let header = PcapHeader {
                    version_major: 2,
                    version_minor: 4,
                    ts_correction: 0,
                    ts_accuracy: 0,
                    snaplen: 262_144,
                    datalink: DataLink::ETHERNET,
                    ts_resolution: PcapTsResolution::NanoSecond,
                    endianness: Endianness::Little,
                };
                Writer::Pcap(PcapWriter::with_header(file, header).map_err(io_err)?)
            }
            CaptureFormat::PcapNg => {
                let mut w =
                    PcapNgWriter::with_endianness(file, Endianness::Little).map_err(io_err)?;
                w.write_pcapng_block(InterfaceDescriptionBlock {
                    linktype: DataLink::ETHERNET,
                    snaplen: 262_144,
                    options: vec![
                        InterfaceDescriptionOption::IfName(Cow::Borrowed("eth0")),
                        InterfaceDescriptionOption::IfTsResol(InterfaceTsResolution::NANO),
                    ],
                })
                .map_err(io_err)?;
                Writer::PcapNg(w)
            }
        })
    }

    fn write(&mut self, ts_ns: i64, frame: &[u8]) -> io::Result<()> {
        let ts = Duration::from_nanos(u64::try_from(ts_ns).map_err(io_err)?);
        match self {
            Writer::Pcap(w) => {
                let p = PcapPacket::new(ts, frame.len() as u32, frame).map_err(io_err)?;
                w.write_packet(&p).map_err(io_err)?;
            }
            Writer::PcapNg(w) => {
                w.write_pcapng_block(EnhancedPacketBlock {
                    interface_id: 0,
                    timestamp: ts,
                    original_len: frame.len() as u32,
                    data: Cow::Borrowed(frame),
                    options: vec![],
                })
                .map_err(io_err)?;
            }
        }
        Ok(())
    }

    fn finish(self) -> io::Result<()> {
        match self {
            Writer::Pcap(w) => w.into_inner().flush(),
            Writer::PcapNg(w) => w.into_inner().flush(),
        }
    }
}

struct Host {
    name: String,
    mac: [u8; 6],
    addr: Ipv4Addr,
    shift_ns: i64,
    window: (i64, i64),
    writer: Option<Writer>,
    path: Option<PathBuf>,
    frames: u64,
    bytes: u64,
}

/// A frame waiting to be written into one host's capture.
struct Event {
    ts: i64,
    seq: u64,
    host: usize,
    frame: Vec<u8>,
}

impl PartialEq for Event {
    fn eq(&self, o: &Self) -> bool {
        (self.ts, self.seq) == (o.ts, o.seq)
    }
}
impl Eq for Event {}
impl PartialOrd for Event {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Event {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.ts, self.seq).cmp(&(o.ts, o.seq))
    }
}

/// The segment and its hosts, with the frames not yet written.
struct World {
    hosts: Vec<Host>,
    client_hosts: usize,
    director: usize,
    pending: BinaryHeap<Reverse<Event>>,
    /// Epoch of the traffic's true time 0 ([`Config::start_ns`] after the generator's).
    epoch_ns: i64,
    seq: u64,
}

impl World {
    fn rs(&self, i: usize) -> usize {
        self.director + 1 + i
    }

    /// Queues `frame` for `host`'s capture at true time `ts`. A receiving NIC pads short
    /// frames to Ethernet's 60-byte minimum; the sender's own capture shows them unpadded.
    fn see(&mut self, host: usize, ts: i64, frame: &[u8], received: bool) {
        if self.hosts[host].writer.is_none() {
            return;
        }
        let mut frame = frame.to_vec();
        if received && frame.len() < ETH_MIN_FRAME {
            frame.resize(ETH_MIN_FRAME, 0);
        }
        self.seq += 1;
        self.pending.push(Reverse(Event {
            ts,
            seq: self.seq,
            host,
            frame,
        }));
    }

    /// Writes every queued frame earlier than `until` (true time).
    fn flush(&mut self, until: i64) -> io::Result<()> {
        while self.pending.peek().is_some_and(|e| e.0.ts < until) {
            let Reverse(e) = self.pending.pop().expect("peeked");
            let h = &mut self.hosts[e.host];
            if e.ts < h.window.0 || e.ts > h.window.1 {
                continue;
            }
            let w = h
                .writer
                .as_mut()
                .expect("only hosts with a writer get events");
            w.write(self.epoch_ns + e.ts + h.shift_ns, &e.frame)?;
            h.frames += 1;
            h.bytes += e.frame.len() as u64;
        }
        Ok(())
    }
}

fn mac(kind: u8, n: u16) -> [u8; 6] {
    // Locally administered unicast addresses.
    [0x02, 0x00, 0x5e, kind, (n >> 8) as u8, n as u8]
}

fn client_addr(i: usize) -> Ipv4Addr {
    if i < 254 {
        Ipv4Addr::new(198, 51, 100, (i + 1) as u8)
    } else {
        Ipv4Addr::new(203, 0, 113, (i - 254 + 1) as u8)
    }
}

pub fn rs_addr(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(192, 0, 2, (11 + i) as u8)
}

/// The TCP segment to build: who sends it and what it carries.
struct Segment<'a> {
    src: SocketAddrV4,
    dst: SocketAddrV4,
    ip_id: u16,
    ttl: u8,
    seq: u32,
    ack: Option<u32>,
    syn: bool,
    fin: bool,
    rst: bool,
    psh: bool,
    window: u16,
    options: &'a [TcpOptionElement],
    payload: &'a [u8],
}

fn ipv4(src: Ipv4Addr, dst: Ipv4Addr, ttl: u8, id: u16, df: bool) -> IpHeaders {
    let mut h = Ipv4Header::new(0, ttl, IpNumber::TCP, src.octets(), dst.octets())
        .expect("empty payload fits");
    h.identification = id;
    h.dont_fragment = df;
    IpHeaders::Ipv4(h, Default::default())
}

fn tcp_header(s: &Segment) -> TcpHeader {
    let mut t = TcpHeader::new(s.src.port(), s.dst.port(), s.seq, s.window);
    t.syn = s.syn;
    t.fin = s.fin;
    t.rst = s.rst;
    t.psh = s.psh;
    if let Some(a) = s.ack {
        t.ack = true;
        t.acknowledgment_number = a;
    }
    t.set_options(s.options).expect("options fit");
    t
}

/// The segment as an IP packet (no link header), TTL as given.
fn ip_packet(s: &Segment, ttl: u8) -> Vec<u8> {
    let mut out = Vec::with_capacity(60 + s.payload.len());
    PacketBuilder::ip(ipv4(*s.src.ip(), *s.dst.ip(), ttl, s.ip_id, true))
        .tcp_header(tcp_header(s))
        .write(&mut out, s.payload)
        .expect("write to a Vec");
    out
}

fn ethernet(src: [u8; 6], dst: [u8; 6], s: &Segment) -> Vec<u8> {
    let mut out = Vec::with_capacity(80 + s.payload.len());
    PacketBuilder::ethernet2(src, dst)
        .ip(ipv4(*s.src.ip(), *s.dst.ip(), s.ttl, s.ip_id, true))
        .tcp_header(tcp_header(s))
        .write(&mut out, s.payload)
        .expect("write to a Vec");
    out
}

/// The director's copy: the arrived packet with its TTL one lower, wrapped in an outer IPv4
/// header (director -> RS, protocol 4, DF, ID 0, TTL = the inner one).
fn wrapped(dir_mac: [u8; 6], rs_mac: [u8; 6], rs: Ipv4Addr, s: &Segment) -> Vec<u8> {
    let ttl = s.ttl - 1;
    let inner = ip_packet(s, ttl);
    let mut out = Vec::with_capacity(34 + inner.len());
    PacketBuilder::ethernet2(dir_mac, rs_mac)
        .ip(ipv4(DIRECTOR, rs, ttl, 0, true))
        .write(&mut out, IpNumber::IPV4, &inner)
        .expect("write to a Vec");
    out
}

fn arp_frame(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    op: ArpOperation,
    sender: ([u8; 6], Ipv4Addr),
    target: ([u8; 6], Ipv4Addr),
) -> Vec<u8> {
    let arp = ArpEthIpv4Packet {
        operation: op,
        sender_mac: sender.0,
        sender_ipv4: sender.1.octets(),
        target_mac: target.0,
        target_ipv4: target.1.octets(),
    };
    let mut out = Vec::with_capacity(42);
    PacketBuilder::ethernet2(src_mac, dst_mac)
        .arp(arp.into())
        .write(&mut out)
        .expect("write to a Vec");
    out
}

/// Per-hop delays in ns, drawn per packet.
fn wire(rng: &mut SplitMix64) -> i64 {
    rng.range(40 * US, 120 * US)
}
fn director_forwarding(rng: &mut SplitMix64) -> i64 {
    rng.range(3 * US, 15 * US)
}
fn tunnel_hop(rng: &mut SplitMix64) -> i64 {
    rng.range(30 * US, 90 * US)
}
fn stack(rng: &mut SplitMix64) -> i64 {
    rng.range(8 * US, 40 * US)
}

/// One connection, as the truth file records it.
struct Conn {
    client: SocketAddrV4,
    rs: usize,
    isn: u32,
    start: i64,
    end: i64,
    answered: bool,
}

struct ConnGen<'w> {
    w: &'w mut World,
    rng: SplitMix64,
    fault: Option<Fault>,
    /// The real server the fault applies to.
    faulty: usize,
    cfg_segments: (u32, u32),
    cfg_segment_size: u32,
    /// Last arrival on each path of this connection (client -> director, director -> RS,
    /// RS -> client or director): one path keeps its packets in order.
    arrivals: [i64; 3],
    /// The first SYN's time on the wire to the director, drawn before the connection is
    /// generated so that the scheduler can follow the order the SYNs arrive in.
    syn_wire: Option<i64>,
}

/// 1 Gbit/s: a frame occupies the wire for 8 ns per byte.
fn on_wire(frame: &[u8]) -> i64 {
    8 * frame.len() as i64
}

impl ConnGen<'_> {
    /// A client packet to the VIP sent at `t`: seen leaving the client, arriving at the
    /// director, leaving it wrapped, arriving at the RS. Returns the arrival time at the RS.
    fn request(&mut self, ch: usize, rs: usize, t: i64, s: &Segment) -> i64 {
        let w = &mut *self.w;
        let (cmac, dmac) = (w.hosts[ch].mac, w.hosts[w.director].mac);
        let rsh = w.rs(rs);
        let (rmac, raddr) = (w.hosts[rsh].mac, w.hosts[rsh].addr);
        let plain = ethernet(cmac, dmac, s);
        w.see(ch, t, &plain, false);
        let delay = self.syn_wire.take().unwrap_or_else(|| wire(&mut self.rng));
        let at_dir = (t + delay).max(self.arrivals[0] + on_wire(&plain));
        self.arrivals[0] = at_dir;
        w.see(w.director, at_dir, &plain, true);
        let out = at_dir + director_forwarding(&mut self.rng);
        let wrapped = wrapped(dmac, rmac, raddr, s);
        w.see(w.director, out, &wrapped, false);
        let at_rs = (out + tunnel_hop(&mut self.rng)).max(self.arrivals[1] + on_wire(&wrapped));
        self.arrivals[1] = at_rs;
        w.see(rsh, at_rs, &wrapped, true);
        at_rs
    }

    /// A reply from the RS sent at `t`. Healthy: straight to the client's MAC. Returns when it
    /// reaches the client, None when it never does.
    fn reply(&mut self, ch: usize, rs: usize, t: i64, s: &Segment) -> Option<i64> {
        let w = &mut *self.w;
        let rsh = w.rs(rs);
        let rmac = w.hosts[rsh].mac;
        let via_director = self.fault == Some(Fault::ViaDirector) && rs == self.faulty;
        let dst_mac = if via_director {
            w.hosts[w.director].mac
        } else {
            w.hosts[ch].mac
        };
        let frame = ethernet(rmac, dst_mac, s);
        w.see(rsh, t, &frame, false);
        let arrive = (t + wire(&mut self.rng)).max(self.arrivals[2] + on_wire(&frame));
        self.arrivals[2] = arrive;
        if via_director {
            // The director drops it: a packet from its own VIP.
            w.see(w.director, arrive, &frame, true);
            None
        } else {
            w.see(ch, arrive, &frame, true);
            Some(arrive)
        }
    }

    /// The client's RST for a SYN-ACK from an address it never talked to, straight to the RS.
    fn reset_to_rs(&mut self, ch: usize, rs: usize, t: i64, s: &Segment) {
        let w = &mut *self.w;
        let rsh = w.rs(rs);
        let frame = ethernet(w.hosts[ch].mac, w.hosts[rsh].mac, s);
        w.see(ch, t, &frame, false);
        w.see(rsh, t + wire(&mut self.rng), &frame, true);
    }

    /// Who-has VIP from the client host: broadcast, seen everywhere; the director answers
    /// (and, with the ARP fault, the faulty RS answers first).
    fn arp_for_vip(&mut self, ch: usize, client_ip: Ipv4Addr, t: i64) {
        let w = &mut *self.w;
        let cmac = w.hosts[ch].mac;
        let req = arp_frame(
            cmac,
            BROADCAST,
            ArpOperation::REQUEST,
            (cmac, client_ip),
            ([0; 6], VIP),
        );
        w.see(ch, t, &req, false);
        for h in 0..w.hosts.len() {
            if h == ch {
                continue;
            }
            let at = t + wire(&mut self.rng);
            w.see(h, at, &req, true);
            let faulty_rs = self.fault == Some(Fault::Arp) && h == w.rs(self.faulty);
            if h == w.director || faulty_rs {
                // The faulty RS answers faster than the director, so the director's answer
                // is the one the client keeps.
                let delay = if faulty_rs { 5 * US } else { 40 * US };
                let mac = w.hosts[h].mac;
                let rep = arp_frame(
                    mac,
                    cmac,
                    ArpOperation::REPLY,
                    (mac, VIP),
                    (cmac, client_ip),
                );
                w.see(h, at + delay, &rep, false);
                w.see(ch, at + delay + wire(&mut self.rng), &rep, true);
            }
        }
    }

    fn connection(&mut self, ch: usize, client: SocketAddrV4, rs: usize, t0: i64) -> Conn {
        let vip = SocketAddrV4::new(VIP, PORT);
        let isn = self.rng.next_u32();
        let server_isn = self.rng.next_u32();
        let mut cid = self.rng.next_u32() as u16;
        let mut sid = self.rng.next_u32() as u16;
        let faulty = rs == self.faulty && self.fault.is_some_and(|f| !f.answers());
        let from_rip = faulty && self.fault == Some(Fault::ReplyFromRip);
        let server_src = if from_rip {
            SocketAddrV4::new(rs_addr(rs), PORT)
        } else {
            vip
        };
        let ts_val = self.rng.next_u32();
        let syn_opts = [
            TcpOptionElement::MaximumSegmentSize(1460),
            TcpOptionElement::SelectiveAcknowledgementPermitted,
            TcpOptionElement::Timestamp(ts_val, 0),
            TcpOptionElement::Noop,
            TcpOptionElement::WindowScale(7),
        ];
        let c = |seq, ack, ip_id| Segment {
            src: client,
            dst: vip,
            ip_id,
            ttl: 64,
            seq,
            ack,
            syn: false,
            fin: false,
            rst: false,
            psh: false,
            window: 502,
            options: &[],
            payload: &[],
        };
        let s = |seq, ack, ip_id| Segment {
            src: server_src,
            dst: client,
            ip_id,
            ttl: 64,
            seq,
            ack: Some(ack),
            syn: false,
            fin: false,
            rst: false,
            psh: false,
            window: 509,
            options: &[],
            payload: &[],
        };

        // Handshake, with the client's retransmissions when no usable SYN-ACK comes back.
        let mut synack_at = None;
        let mut end = t0;
        for (attempt, t) in std::iter::once(0)
            .chain(SYN_RETRIES_NS)
            .map(|d| t0 + d)
            .enumerate()
        {
            if attempt > 0 && synack_at.is_some() {
                break;
            }
            let syn = Segment {
                syn: true,
                window: 64240,
                options: &syn_opts,
                ..c(isn, None, cid)
            };
            cid = cid.wrapping_add(1);
            let at_rs = self.request(ch, rs, t, &syn);
            end = end.max(at_rs);
            if faulty && self.fault == Some(Fault::RpFilter) {
                continue;
            }
            let synack_opts = [
                TcpOptionElement::MaximumSegmentSize(1460),
                TcpOptionElement::SelectiveAcknowledgementPermitted,
                TcpOptionElement::Timestamp(self.rng.next_u32(), ts_val),
                TcpOptionElement::Noop,
                TcpOptionElement::WindowScale(7),
            ];
            let synack = Segment {
                syn: true,
                window: 65160,
                options: &synack_opts,
                ..s(server_isn, isn.wrapping_add(1), sid)
            };
            sid = sid.wrapping_add(1);
            let sent = at_rs + stack(&mut self.rng);
            let arrived = self.reply(ch, rs, sent, &synack);
            end = end.max(sent);
            match arrived {
                Some(a) if from_rip => {
                    // Not from the VIP it sent its SYN to: the client answers with RST.
                    let rst = Segment {
                        src: client,
                        dst: server_src,
                        rst: true,
                        window: 0,
                        ..c(server_isn.wrapping_add(1), None, 0)
                    };
                    let t_rst = a + stack(&mut self.rng);
                    self.reset_to_rs(ch, rs, t_rst, &rst);
                    end = end.max(t_rst);
                }
                Some(a) => synack_at = Some(a),
                None => {}
            }
        }
        let Some(synack_at) = synack_at else {
            return Conn {
                client,
                rs,
                isn,
                start: t0,
                end,
                answered: false,
            };
        };

        let mut cseq = isn.wrapping_add(1);
        let mut sseq = server_isn.wrapping_add(1);
        let mut t = synack_at + stack(&mut self.rng);
        self.request(ch, rs, t, &c(cseq, Some(sseq), cid));
        cid = cid.wrapping_add(1);

        let request = format!(
            "GET /item/{} HTTP/1.1\r\nHost: {VIP}\r\nUser-Agent: synth/1\r\nAccept: */*\r\n\r\n",
            self.rng.next_u32() % 100_000
        );
        t += self.rng.range(20 * US, 100 * US);
        let req = Segment {
            psh: true,
            payload: request.as_bytes(),
            ..c(cseq, Some(sseq), cid)
        };
        cid = cid.wrapping_add(1);
        let req_at_rs = self.request(ch, rs, t, &req);
        cseq = cseq.wrapping_add(request.len() as u32);

        // The response: a few segments after the application's think time.
        let (lo, hi) = self.cfg_segments;
        let n = self.rng.range(i64::from(lo), i64::from(hi)) as u32;
        let full = self.cfg_segment_size as usize;
        let last = self.rng.range(1, full as i64) as usize;
        let body_len = (n as usize - 1) * full + last;
        let mut body = format!(
            "HTTP/1.1 200 OK\r\nServer: {}\r\nContent-Length: {body_len}\r\n\r\n",
            self.w.hosts[self.w.rs(rs)].name
        )
        .into_bytes();
        body.truncate(body_len);
        let fill = self.rng.next_u64();
        body.extend((body.len()..body_len).map(|i| b'a' + ((fill as usize + i) % 26) as u8));
        let mut ts = req_at_rs + self.rng.range(200 * US, 3 * MS);
        let mut unacked = 0;
        let mut last_arrival = ts;
        for (i, chunk) in body.chunks(full).enumerate() {
            let seg = Segment {
                psh: i + 1 == n as usize,
                payload: chunk,
                ..s(sseq, cseq, sid)
            };
            sid = sid.wrapping_add(1);
            sseq = sseq.wrapping_add(chunk.len() as u32);
            let a = self
                .reply(ch, rs, ts, &seg)
                .expect("answering servers reach the client");
            last_arrival = a;
            unacked += 1;
            // Delayed ACK: every second full segment, and the last one.
            if unacked == 2 || i + 1 == n as usize {
                let ack_t = a + stack(&mut self.rng);
                self.request(ch, rs, ack_t, &c(cseq, Some(sseq), cid));
                cid = cid.wrapping_add(1);
                unacked = 0;
                last_arrival = ack_t;
            }
            ts += self.rng.range(5 * US, 20 * US);
        }

        // The client closes: FIN, the server's FIN, the last ACK.
        let t = last_arrival + self.rng.range(50 * US, 500 * US);
        let fin = Segment {
            fin: true,
            ..c(cseq, Some(sseq), cid)
        };
        cid = cid.wrapping_add(1);
        let fin_at_rs = self.request(ch, rs, t, &fin);
        cseq = cseq.wrapping_add(1);
        let sfin = Segment {
            fin: true,
            ..s(sseq, cseq, sid)
        };
        let sfin_t = fin_at_rs + stack(&mut self.rng);
        let sfin_at = self
            .reply(ch, rs, sfin_t, &sfin)
            .expect("answering servers reach the client");
        sseq = sseq.wrapping_add(1);
        let last_t = sfin_at + stack(&mut self.rng);
        let last_at_rs = self.request(ch, rs, last_t, &c(cseq, Some(sseq), cid));
        Conn {
            client,
            rs,
            isn,
            start: t0,
            end: last_at_rs,
            answered: true,
        }
    }
}

fn json_str(s: &str) -> String {
    serde_json::to_string(s).expect("a string serialises")
}

/// Writes the captures and `truth.json` into `out` (created if missing).
/// Each connection's start (client's first SYN), that SYN's time on the wire to the director,
/// and the real server round robin gives it. IPVS schedules a connection when its SYN reaches
/// the director, so round robin follows the order of arrival there, which the wire's jitter can
/// make differ from the order the clients sent them (two SYNs sent 10 µs apart can arrive the
/// other way round). Drawn from streams of their own, before any packet is generated.
fn schedule(cfg: &Config) -> Vec<(i64, i64, usize)> {
    let mut gaps = SplitMix64::new(cfg.seed ^ 0x6761_7073); // "gaps"
    let mut wires = SplitMix64::new(cfg.seed ^ 0x7769_7265); // "wire"
    let mean_gap = SEC as f64 / cfg.rate;
    let mut t = 0i64;
    let mut plan: Vec<(i64, i64, usize)> = (0..cfg.connections)
        .map(|_| {
            t += gaps.exp(mean_gap).max(1.0) as i64;
            (t, wire(&mut wires), 0)
        })
        .collect();
    let mut by_arrival: Vec<usize> = (0..plan.len()).collect();
    by_arrival.sort_by_key(|&i| (plan[i].0 + plan[i].1, i));
    for (rank, i) in by_arrival.into_iter().enumerate() {
        plan[i].2 = rank % cfg.servers;
    }
    plan
}

pub fn generate(cfg: &Config, out: &Path) -> io::Result<Summary> {
    cfg.validate().map_err(io::Error::other)?;
    std::fs::create_dir_all(out)?;
    let ext = cfg.format.extension();
    let mut hosts = Vec::new();
    let names: Vec<(String, [u8; 6], Ipv4Addr)> = (0..cfg.client_hosts)
        .map(|i| {
            let name = if cfg.client_hosts == 1 {
                "client".to_string()
            } else {
                format!("client{}", i + 1)
            };
            (name, mac(0xc0, i as u16), client_addr(i))
        })
        .chain(std::iter::once((
            "director".to_string(),
            mac(0xd0, 1),
            DIRECTOR,
        )))
        .chain((0..cfg.servers).map(|i| (format!("rs{}", i + 1), mac(0xe0, i as u16), rs_addr(i))))
        .collect();
    for (name, m, addr) in names {
        let write = cfg.only.is_empty() || cfg.only.contains(&name);
        let path = write.then(|| out.join(format!("{name}.{ext}")));
        let writer = match &path {
            Some(p) => Some(Writer::create(p, cfg.format)?),
            None => None,
        };
        hosts.push(Host {
            shift_ns: cfg.clock_shift_ns.get(&name).copied().unwrap_or(0),
            window: cfg
                .capture_window_ns
                .get(&name)
                .copied()
                .unwrap_or((i64::MIN, i64::MAX)),
            name,
            mac: m,
            addr,
            writer,
            path,
            frames: 0,
            bytes: 0,
        });
    }
    for h in cfg
        .clock_shift_ns
        .keys()
        .chain(cfg.capture_window_ns.keys())
    {
        if !hosts.iter().any(|x| x.name == *h) {
            return Err(io::Error::other(format!("no host {h:?}")));
        }
    }

    let mut world = World {
        hosts,
        client_hosts: cfg.client_hosts,
        director: cfg.client_hosts,
        pending: BinaryHeap::new(),
        epoch_ns: EPOCH_NS + cfg.start_ns,
        seq: 0,
    };
    let mut rng = SplitMix64::new(cfg.seed);
    // Each client address picks ports the way Linux does: from a random start, going up.
    let mut next_port: Vec<u16> = (0..cfg.clients)
        .map(|_| 32768 + (rng.next_u32() % 20000) as u16)
        .collect();
    let mut arp_done = vec![false; cfg.client_hosts];
    // The director's rules as `ipvsadm -Sn` prints them (servers sorted by address), the
    // configuration the scheduler above follows.
    let mut rules = format!("-A -t {VIP}:{PORT} -s rr\n");
    for i in 0..cfg.servers {
        rules.push_str(&format!(
            "-a -t {VIP}:{PORT} -r {}:{PORT} -i -w 1 --tun-type ipip\n",
            rs_addr(i)
        ));
    }
    std::fs::write(out.join("rules.txt"), rules)?;
    let truth_path = out.join("truth.json");
    let mut truth = BufWriter::new(File::create(&truth_path)?);
    writeln!(truth, "{{\n  \"connections\": [")?;
    let mut per_rs = vec![0u64; cfg.servers];
    let mut open_until: BinaryHeap<Reverse<i64>> = BinaryHeap::new();
    let mut max_concurrent = 0;
    let mut last_end = 0i64;
    let plan = schedule(cfg);
    for (i, &(t, syn_wire, rs)) in plan.iter().enumerate() {
        let i = i as u64;
        // Everything queued earlier than this connection's first packet is final.
        world.flush(t - 200 * US)?;
        let ci = (rng.next_u64() % cfg.clients as u64) as usize;
        let ch = ci % cfg.client_hosts;
        let port = next_port[ci];
        next_port[ci] = if port >= 60999 - 8 {
            32768
        } else {
            port + 1 + (rng.next_u32() % 8) as u16
        };
        let client = SocketAddrV4::new(client_addr(ci), port);
        let mut g = ConnGen {
            w: &mut world,
            rng: SplitMix64::new(rng.next_u64()),
            fault: cfg.fault,
            cfg_segments: cfg.response_segments,
            cfg_segment_size: cfg.segment_size,
            faulty: cfg.faulty_server,
            arrivals: [i64::MIN / 2; 3],
            syn_wire: Some(syn_wire),
        };
        if !arp_done[ch] {
            arp_done[ch] = true;
            g.arp_for_vip(ch, client_addr(ci), t - 150 * US);
        }
        let conn = g.connection(ch, client, rs, t);
        per_rs[rs] += 1;
        while open_until.peek().is_some_and(|e| e.0 <= t) {
            open_until.pop();
        }
        open_until.push(Reverse(conn.end));
        max_concurrent = max_concurrent.max(open_until.len());
        last_end = last_end.max(conn.end);
        writeln!(
            truth,
            "    {{\"client\": \"{}\", \"real_server\": \"{}\", \"rs_host\": \"rs{}\", \"isn\": {}, \"start_ns\": {}, \"answered\": {}}}{}",
            conn.client,
            rs_addr(conn.rs),
            conn.rs + 1,
            conn.isn,
            EPOCH_NS + cfg.start_ns + conn.start,
            conn.answered,
            if i + 1 < cfg.connections { "," } else { "" }
        )?;
    }
    world.flush(i64::MAX)?;

    let mut captures = Vec::new();
    let mut host_json = Vec::new();
    for h in world.hosts.iter_mut() {
        if let Some(w) = h.writer.take() {
            w.finish()?;
        }
        let role = if h.name.starts_with("client") {
            "client"
        } else if h.name == "director" {
            "director"
        } else {
            "rs"
        };
        host_json.push(format!(
            "    {{\"name\": {}, \"role\": \"{role}\", \"addr\": \"{}\", \"mac\": \"{}\", \"file\": {}, \"clock_shift_ns\": {}, \"frames\": {}}}",
            json_str(&h.name),
            h.addr,
            h.mac.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":"),
            h.path
                .as_ref()
                .and_then(|p| p.file_name())
                .map_or("null".to_string(), |f| json_str(&f.to_string_lossy())),
            h.shift_ns,
            h.frames
        ));
        captures.push((h.name.clone(), h.path.clone(), h.frames, h.bytes));
    }
    writeln!(truth, "  ],")?;
    writeln!(truth, "  \"seed\": {},", cfg.seed)?;
    writeln!(truth, "  \"vip\": \"{VIP}:{PORT}\",")?;
    writeln!(truth, "  \"director\": \"{DIRECTOR}\",")?;
    writeln!(
        truth,
        "  \"fault\": {},",
        match cfg.fault {
            Some(f) => format!(
                "{{\"name\": \"{}\", \"host\": \"rs{}\", \"addr\": \"{}\", \"mac\": \"{}\"}}",
                f.name(),
                cfg.faulty_server + 1,
                rs_addr(cfg.faulty_server),
                mac(0xe0, cfg.faulty_server as u16)
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<Vec<_>>()
                    .join(":")
            ),
            None => "null".into(),
        }
    )?;
    writeln!(
        truth,
        "  \"per_real_server\": {{{}}},",
        per_rs
            .iter()
            .enumerate()
            .map(|(i, n)| format!("\"{}\": {n}", rs_addr(i)))
            .collect::<Vec<_>>()
            .join(", ")
    )?;
    writeln!(truth, "  \"max_concurrent\": {max_concurrent},")?;
    writeln!(truth, "  \"hosts\": [\n{}\n  ]\n}}", host_json.join(",\n"))?;
    truth.flush()?;
    Ok(Summary {
        captures,
        truth: truth_path,
        connections: cfg.connections,
        max_concurrent,
        duration_ns: last_end,
    })
}
