//! Roles, VIPs, services, and the expected configuration (ipvsadm output).
//!
//! Everything here is decided from the traffic alone (file names mean nothing), in one cheap
//! streaming pass per capture: [`facts::VantageFacts`] is fed one decoded frame at a time and keeps
//! only counts keyed by hosts and services, never per packet or per connection. [`discover`] then
//! looks at the facts of all captures together: the VIPs are the inner destinations of tunnelled
//! packets, the director is where client packets to a VIP arrive and leave again wrapped, a real
//! server is where wrapped packets arrive and replies from the VIP leave, and so on. Every
//! decision carries the reason it was taken, so the report can say how each role was decided.

pub mod config;
pub mod director_state;
pub mod discover;
pub mod encap;
pub mod facts;
pub mod failover;
pub mod gue;
pub mod keepalived;
pub mod rules;
pub mod view;

pub use discover::{discover, Hints};

use crate::capture::frame::CaptureId;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

/// One place a capture was taken: one interface of one capture file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct VantageId {
    pub capture: CaptureId,
    pub interface: u32,
}

impl fmt::Display for VantageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}/if{}", self.capture, self.interface)
    }
}

/// Points at one packet the way Wireshark shows it: capture, frame number, the capture's own time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FrameRef {
    pub capture: CaptureId,
    pub interface: u32,
    /// Wireshark frame number, from 1.
    pub frame: u64,
    /// Nanoseconds since the Unix epoch, by the capturing host's clock (not corrected).
    pub ts_ns: i64,
}

impl FrameRef {
    pub fn of(f: &crate::decode::packet::DecodedFrame) -> FrameRef {
        FrameRef {
            capture: f.capture,
            interface: f.interface,
            frame: f.number,
            ts_ns: f.ts_ns,
        }
    }
    pub fn vantage(&self) -> VantageId {
        VantageId {
            capture: self.capture,
            interface: self.interface,
        }
    }
}

/// A MAC address that prints and serialises as `aa:bb:cc:dd:ee:ff`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// The six bytes as one number (the top two bytes zero).
    pub fn as_u64(self) -> u64 {
        let [a, b, c, d, e, f] = self.0;
        u64::from_le_bytes([a, b, c, d, e, f, 0, 0])
    }
}

// One word, not a length and six bytes: MACs key tables looked up for every frame.
impl std::hash::Hash for MacAddr {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        h.write_u64(self.as_u64());
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

impl Serialize for MacAddr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl std::str::FromStr for MacAddr {
    type Err = String;
    /// Six hexadecimal bytes separated by colons, as [`MacAddr`] prints.
    fn from_str(s: &str) -> Result<MacAddr, String> {
        let mut m = [0u8; 6];
        let mut parts = s.split(':');
        for b in &mut m {
            *b = parts
                .next()
                .filter(|p| p.len() == 2)
                .and_then(|p| u8::from_str_radix(p, 16).ok())
                .ok_or_else(|| format!("not a MAC address: {s:?}"))?;
        }
        match parts.next() {
            None => Ok(MacAddr(m)),
            Some(_) => Err(format!("not a MAC address: {s:?}")),
        }
    }
}

impl<'de> Deserialize<'de> for MacAddr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<MacAddr, D::Error> {
        let s = std::borrow::Cow::<str>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// An IP protocol number that prints as `tcp`, `udp`, `icmp` where it has a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Proto(pub u8);

impl Proto {
    pub const ICMP: Proto = Proto(1);
    pub const TCP: Proto = Proto(6);
    pub const UDP: Proto = Proto(17);
    pub const ICMPV6: Proto = Proto(58);
    /// Parses `tcp`, `udp`, `sctp`, `icmp` or a number.
    pub fn parse(s: &str) -> Option<Proto> {
        match s.to_ascii_lowercase().as_str() {
            "tcp" => Some(Proto::TCP),
            "udp" => Some(Proto::UDP),
            "sctp" => Some(Proto(132)),
            "icmp" => Some(Proto::ICMP),
            other => other.parse().ok().map(Proto),
        }
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            1 => f.write_str("icmp"),
            6 => f.write_str("tcp"),
            17 => f.write_str("udp"),
            58 => f.write_str("icmpv6"),
            132 => f.write_str("sctp"),
            n => write!(f, "{n}"),
        }
    }
}

impl Serialize for Proto {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// What [`Proto`]'s Display prints, read back (`icmpv6` too, which [`Proto::parse`] leaves out).
impl<'de> Deserialize<'de> for Proto {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Proto, D::Error> {
        let s = std::borrow::Cow::<str>::deserialize(d)?;
        match s.as_ref() {
            "icmpv6" => Some(Proto::ICMPV6),
            other => Proto::parse(other),
        }
        .ok_or_else(|| serde::de::Error::custom(format!("not an IP protocol: {s:?}")))
    }
}

/// Where a capture was taken, as far as LVS-TUN is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Director,
    RealServer,
    Client,
    /// A mirror port, a bridge, a router, or a capture without LVS traffic.
    Other,
}

impl Role {
    /// Parses the names the command line accepts (`director`, `rs`, `real_server`, `client`, `other`).
    pub fn parse(s: &str) -> Option<Role> {
        match s.to_ascii_lowercase().replace('-', "_").as_str() {
            "director" | "lb" => Some(Role::Director),
            "rs" | "real_server" | "realserver" | "server" => Some(Role::RealServer),
            "client" => Some(Role::Client),
            "other" => Some(Role::Other),
            _ => None,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Director => "director",
            Role::RealServer => "real_server",
            Role::Client => "client",
            Role::Other => "other",
        })
    }
}

/// How a role (or a VIP) was decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Seen in the traffic, without doubt.
    Traffic,
    /// The most likely reading of traffic that cannot tell for sure.
    Guess,
    /// Given on the command line.
    User,
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Decision::Traffic => "traffic",
            Decision::Guess => "guess",
            Decision::User => "user",
        })
    }
}

/// One vantage point and what it was found to be.
#[derive(Debug, Clone, Serialize)]
pub struct Vantage {
    pub id: VantageId,
    pub link_type: u32,
    pub frames: u64,
    pub first_ts_ns: Option<i64>,
    pub last_ts_ns: Option<i64>,
    pub role: Role,
    pub decided_by: Decision,
    /// Why: the traffic that decided it, in words.
    pub reason: String,
    /// The MAC address of the capturing host, when one MAC is in (nearly) every unicast frame.
    pub local_mac: Option<MacAddr>,
    /// The capturing host's own address as far as LVS goes: the director's tunnel source or the
    /// real server's RIP (outer destination of the tunnelled packets it receives).
    pub address: Option<IpAddr>,
    /// Its packets counted for the `capture.*` checks: requests, replies, tunnelled frames, and
    /// the frames whose headers the snap length cut off.
    pub packets: facts::PacketCounts,
}

/// A virtual address that clients talk to.
#[derive(Debug, Clone, Serialize)]
pub struct Vip {
    pub addr: IpAddr,
    pub decided_by: Decision,
    pub reason: String,
    pub evidence: Option<FrameRef>,
}

/// A virtual service (VIP, port, protocol) that carried traffic.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Service {
    pub vip: IpAddr,
    pub port: u16,
    pub proto: Proto,
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.vip {
            IpAddr::V4(a) => write!(f, "{} {a}:{}", self.proto, self.port),
            IpAddr::V6(a) => write!(f, "{} [{a}]:{}", self.proto, self.port),
        }
    }
}

/// A director or real server: its address and the MACs it used.
#[derive(Debug, Clone, Serialize)]
pub struct Host {
    pub addr: IpAddr,
    pub macs: Vec<MacAddr>,
    /// A packet that shows it in that role.
    pub evidence: Option<FrameRef>,
}

/// One ARP statement seen in one capture: who asked or answered what, with which MAC.
#[derive(Debug, Clone, Serialize)]
pub struct ArpObservation {
    pub vantage: VantageId,
    /// `request` or `reply`; a gratuitous ARP (sender IP = target IP) is `announcement`.
    pub operation: &'static str,
    pub sender_ip: IpAddr,
    pub sender_mac: MacAddr,
    pub target_ip: IpAddr,
    pub count: u64,
    pub first: FrameRef,
    /// True when the sender IP is a VIP: what `arp.vip` looks at.
    pub about_vip: bool,
    /// An IPv6 neighbour discovery message (`request` a Neighbor Solicitation, `reply` and
    /// `announcement` a Neighbor Advertisement), not ARP.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub nd: bool,
}

/// A `--role` that the traffic contradicts: the capture's traffic alone shows, without doubt
/// ([`Decision::Traffic`]), another LVS role than the one given. The role given is what the
/// analysis used; the caller decides whether to go on.
#[derive(Debug, Clone, Serialize)]
pub struct RoleConflict {
    pub vantage: VantageId,
    pub given: Role,
    /// What the traffic shows, and the traffic that shows it.
    pub traffic: Role,
    pub reason: String,
}

/// Everything known about the deployment, before connections are rebuilt.
#[derive(Debug, Clone, Serialize)]
pub struct Topology {
    /// Sorted by id ([`discover`] sorts them): looked up by bisection.
    pub vantages: Vec<Vantage>,
    pub vips: Vec<Vip>,
    pub services: Vec<Service>,
    pub directors: Vec<Host>,
    pub real_servers: Vec<Host>,
    pub clients: Vec<IpAddr>,
    pub arp: Vec<ArpObservation>,
    /// What the set of captures cannot show (no director capture, ...), in words.
    pub limits: Vec<String>,
    /// Roles given with `--role` that the traffic contradicts (none without `--role`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub role_conflicts: Vec<RoleConflict>,
    /// GUE-shaped UDP on ports nobody named, and whether the captures confirm it is a tunnel
    /// ([`gue`]); none when there is none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub gue: Vec<gue::GueTunnel>,
    /// How the director wraps requests for each real server, by its address: the first kind
    /// of tunnelled packet seen to it (GUE's port from [`Self::set_gue`]).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub tunnels: BTreeMap<IpAddr, encap::Encap>,
    /// The source MACs of plain requests to a VIP sent to a director's MAC: the clients on
    /// the director's segment, or their router. With the directors' and real servers' MACs,
    /// the MACs a packet from a VIP may come from ([`crate::flows::oddity`]).
    #[serde(skip)]
    pub client_side_macs: Vec<MacAddr>,
    /// Every vantage point's VRRP, sync, gratuitous ARP and forwarding times ([`failover`]),
    /// when any capture holds VRRP or sync messages or two directors forwarded; else none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub control: Vec<failover::VantageControl>,
}

impl Topology {
    /// Takes the GUE tunnels pass 1 judged, and gives their real servers' tunnels the port.
    pub fn set_gue(&mut self, gue: Vec<gue::GueTunnel>) {
        for t in &gue {
            for rs in &t.destinations {
                if let Some(e) = self.tunnels.get_mut(rs).filter(|e| e.is_gue()) {
                    e.gue_port.get_or_insert(t.port);
                }
            }
        }
        self.gue = gue;
    }
    pub fn vantage(&self, id: VantageId) -> Option<&Vantage> {
        let i = self.vantages.binary_search_by_key(&id, |v| v.id).ok()?;
        Some(&self.vantages[i])
    }
    pub fn role_of(&self, id: VantageId) -> Role {
        self.vantage(id).map(|v| v.role).unwrap_or(Role::Other)
    }
    pub fn is_vip(&self, a: IpAddr) -> bool {
        self.vips.iter().any(|v| v.addr == a)
    }
    pub fn is_real_server(&self, a: IpAddr) -> bool {
        self.real_servers.iter().any(|h| h.addr == a)
    }
    /// The real server that used this MAC, when exactly one did.
    pub fn real_server_by_mac(&self, mac: MacAddr) -> Option<IpAddr> {
        let mut found = self.real_servers.iter().filter(|h| h.macs.contains(&mac));
        let first = found.next()?;
        found.next().is_none().then_some(first.addr)
    }
    /// Every MAC the director used: from its tunnelled packets, or from a capture taken on it.
    pub fn director_macs(&self) -> Vec<MacAddr> {
        let mut macs: Vec<MacAddr> = self
            .directors
            .iter()
            .flat_map(|h| h.macs.iter().copied())
            .chain(
                self.vantages
                    .iter()
                    .filter(|v| v.role == Role::Director)
                    .filter_map(|v| v.local_mac),
            )
            .collect();
        macs.sort();
        macs.dedup();
        macs
    }
    /// The (non-VIP) address a MAC belongs to: a real server's, else the one address that MAC
    /// gave for itself in ARP (a host reached in direct-routing mode has no tunnel to name it,
    /// but the director had to ask for its MAC).
    pub fn address_of_mac(&self, mac: MacAddr) -> Option<IpAddr> {
        if let Some(a) = self.real_server_by_mac(mac) {
            return Some(a);
        }
        let mut addrs: Vec<IpAddr> = self
            .arp
            .iter()
            .filter(|a| a.sender_mac == mac && !a.about_vip && a.operation != "request")
            .map(|a| a.sender_ip)
            .collect();
        addrs.sort();
        addrs.dedup();
        (addrs.len() == 1).then(|| addrs[0])
    }
}
