//! Connections rebuilt across every capture.
//!
//! The same connection is seen up to six times: leaving the client, arriving at the director,
//! leaving it wrapped, arriving at the real server, the reply leaving the RS, arriving back at the
//! client. The work is done in three steps:
//!
//! 1. While pass 1 gathers the facts for the topology, [`clock::ClockSampler`] keeps a bounded
//!    sample of packets per vantage point, chosen by the packet's identity (IP identification,
//!    TCP sequence and acknowledgement numbers, flags, lengths, payload hash) so that every
//!    capture keeps the same packets; [`clock::estimate_from_samples`] matches them by content,
//!    never by time, and estimates each capture's clock offset against the reference capture
//!    (the director's when there is one).
//! 2. In pass 2, per vantage point, [`legs::LegTracker`] is fed one decoded frame at a time and
//!    keeps one small state per connection in flight (counts, a history string, a few example
//!    frames and packet fingerprints), never the packets.
//! 3. [`stream`] joins the legs of one connection as soon as no capture can add to it, keyed on
//!    the client-side tuple and separated by the client's initial sequence number (TCP) or by
//!    shared packets and clock-corrected time (UDP) ([`join::Joiner`]), decides the real server
//!    and the outcome, and hands the connection on.
//!
//! Memory follows the connections in flight, not the packets and not the connections in total:
//! [`analyse_streaming`] hands each connection on and forgets it; [`analyse_source`] keeps them
//! all, for the checks and the tables.

mod by_interface;
pub mod clock;
pub mod feed;
pub mod gathered;
pub mod history;
pub mod join;
mod leg_state;
pub mod legs;
pub mod mirror;
pub mod oddity;
pub mod packed;
mod pending;
pub mod pipeline;
pub mod probes;
pub mod products;
pub mod stream;
pub mod trace;
mod trim;

pub use pipeline::{
    analyse, analyse_files_streaming, analyse_source, analyse_streaming, Analysis, ConnectionSink,
    FileSource, FlowOptions, FrameSource,
};

use crate::topology::{FrameRef, MacAddr, Proto, Role, VantageId};
use serde::Serialize;
use smallvec::SmallVec;
use std::fmt;
use std::net::{IpAddr, SocketAddr};

/// What a connection is keyed on: the tuple as the client sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct ConnKey {
    pub proto: Proto,
    pub client: SocketAddr,
    pub vip: SocketAddr,
}

impl ConnKey {
    /// The connection a packet between a client and a VIP belongs to, and whether it went to
    /// the VIP (a request) rather than came from it (a reply); None when neither end is a VIP.
    #[inline]
    pub fn between(
        proto: Proto,
        src: SocketAddr,
        dst: SocketAddr,
        is_vip: impl Fn(&IpAddr) -> bool,
    ) -> Option<(ConnKey, bool)> {
        if is_vip(&dst.ip()) {
            Some((
                ConnKey {
                    proto,
                    client: src,
                    vip: dst,
                },
                true,
            ))
        } else if is_vip(&src.ip()) {
            Some((
                ConnKey {
                    proto,
                    client: dst,
                    vip: src,
                },
                false,
            ))
        } else {
            None
        }
    }
}

/// The shape in which a connection's packets were seen at one vantage point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Form {
    /// Client to VIP, not tunnelled (leaving the client, arriving at the director, or arriving
    /// decapsulated on a real server's tunl0).
    Request,
    /// Client to VIP inside a tunnel (leaving the director, arriving at a real server).
    RequestWrapped,
    /// VIP to client.
    Reply,
    /// To the client's address and port from an address that is not the VIP (a real server's
    /// own address: a UDP service bound to 0.0.0.0).
    ReplyOtherSource,
}

impl Form {
    pub const ALL: [Form; 4] = [
        Form::Request,
        Form::RequestWrapped,
        Form::Reply,
        Form::ReplyOtherSource,
    ];
    pub fn index(self) -> usize {
        self as usize
    }
    pub fn is_request(self) -> bool {
        matches!(self, Form::Request | Form::RequestWrapped)
    }
    /// The form of a packet to or from a VIP ([`ConnKey::between`]).
    #[inline]
    pub fn of(to_vip: bool, wrapped: bool) -> Form {
        match (to_vip, wrapped) {
            (true, true) => Form::RequestWrapped,
            (true, false) => Form::Request,
            (false, _) => Form::Reply,
        }
    }
}

/// A tunnel's outer addresses and how many packets it carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct OuterPair {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub packets: u64,
}

/// The MACs of one packet form: up to two without a heap block.
pub type MacList = SmallVec<[MacAddr; 2]>;

/// Packets of one form at one vantage point.
#[derive(Debug, Clone, Serialize)]
pub struct DirStats {
    pub first_ts_ns: i64,
    pub last_ts_ns: i64,
    pub packets: u64,
    /// Sum of the (inner) IP total lengths.
    pub ip_bytes: u64,
    /// Sum of the TCP/UDP payload lengths.
    pub payload_bytes: u64,
    /// The largest (inner) IP total length: what the path had to carry, tunnel header aside.
    pub max_ip_len: u32,
    /// The MSS option of this form's first SYN (requests: the client's SYN; replies: the
    /// SYN-ACK). The SYN-ACK's is what sizes the client's segments, hence the tunnelled ones.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mss: Option<u16>,
    /// Packets that repeat sequence space already seen (TCP only).
    pub retransmissions: u64,
    /// The first packet of this form.
    pub first: FrameRef,
    /// TTL (hop limit) of the first packet, inner header when tunnelled.
    pub ttl: u8,
    /// Source and destination MACs seen (at most four each; almost always one, kept inline).
    pub src_macs: MacList,
    pub dst_macs: MacList,
    /// Tunnel outer addresses (RequestWrapped only; almost always one pair, kept inline).
    #[serde(skip_serializing_if = "SmallVec::is_empty")]
    pub outer: SmallVec<[OuterPair; 1]>,
    /// Source addresses of replies that did not come from the VIP (ReplyOtherSource only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<SocketAddr>,
}

/// Something worth pointing at, with an example packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EvidenceKind {
    /// A TCP segment repeating sequence space already sent.
    Retransmission,
    /// RST from the server side (VIP or real server).
    ResetFromServer,
    ResetFromClient,
    /// ICMP destination unreachable (or v6 equivalent) about this connection.
    IcmpUnreachable,
    /// ICMP fragmentation needed / packet too big about this connection.
    IcmpFragNeeded,
    /// Any other ICMP error quoting this connection.
    IcmpOther,
    /// A reply whose source is not the VIP (UDP service bound to 0.0.0.0 on the RS).
    ReplyFromOtherSource,
    /// A reply sent to a director's MAC (RS routing replies through the director).
    ReplyToDirectorMac,
    /// A reply seen at the director (replies should go straight to the client).
    ReplyAtDirector,
    /// A request arriving at a real server without a tunnel around it (ARP bypass).
    UnwrappedRequestAtRealServer,
    /// A tunnelled request whose outer destination is not among the configured real servers.
    WrappedToUnknownRs,
    /// An ICMP unreachable about a tunnelled request, from its outer destination: the real
    /// server could not take the tunnel (no fou port for GUE, no GRE device up, no ipip).
    TunnelRefused,
}

#[derive(Debug, Clone, Serialize)]
pub struct Evidence {
    pub kind: EvidenceKind,
    /// How many packets showed it at this vantage point.
    pub count: u64,
    /// The first of them.
    pub first: FrameRef,
    pub detail: String,
}

/// A history's letters ([`history::History`]) as the legs and connections carry them: inline up
/// to a dozen and a half letters, which takes a hundred retransmissions or zero windows to pass,
/// so that copying a history to a leg and to its connection allocates nothing. ASCII only.
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HistoryText(SmallVec<[u8; 16]>);

impl HistoryText {
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("history letters are ASCII")
    }
}

impl From<&str> for HistoryText {
    fn from(s: &str) -> HistoryText {
        HistoryText(SmallVec::from_slice(s.as_bytes()))
    }
}

impl std::ops::Deref for HistoryText {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Display for HistoryText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for HistoryText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl Serialize for HistoryText {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl PartialEq<str> for HistoryText {
    fn eq(&self, other: &str) -> bool {
        self.0.as_slice() == other.as_bytes()
    }
}

impl PartialEq<&str> for HistoryText {
    fn eq(&self, other: &&str) -> bool {
        self == *other
    }
}

/// A packet's identity, to find it again in another capture; kept for a few packets per leg
/// until the legs are joined (the clocks use their own sample, [`clock::ClockSampler`]).
///
/// The form is kept in the low two bits of the packet hash (8 bytes per packet kept, which is
/// most of a closed connection's packed state); [`Fingerprint::value`] is the remaining 62
/// bits, which is what is matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint {
    packed: u64,
}

impl Fingerprint {
    pub fn new(form: Form, hash: u64) -> Fingerprint {
        Fingerprint {
            packed: (hash & !3) | form.index() as u64,
        }
    }
    /// Form and value as one number, to be packed ([`Fingerprint::from_bits`] is the inverse).
    pub(crate) fn bits(&self) -> u64 {
        self.packed
    }
    pub(crate) fn from_bits(packed: u64) -> Fingerprint {
        Fingerprint { packed }
    }
    /// The packet's identity, the same at every vantage point whatever the form.
    pub fn value(&self) -> u64 {
        self.packed >> 2
    }
    pub fn form(&self) -> Form {
        Form::ALL[(self.packed & 3) as usize]
    }
}

/// The TCP control flags seen at one vantage point.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct TcpFlags {
    pub syn: bool,
    pub syn_ack: bool,
    pub client_fin: bool,
    pub server_fin: bool,
    pub client_rst: bool,
    pub server_rst: bool,
    /// When the client's first packet of each kind was seen here (this capture's clock), each
    /// packet classified as IPVS's TCP state machine does (RST before SYN before FIN before
    /// ACK): what moves an IPVS entry between active and inactive.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_syn_ns: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_ack_ns: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_fin_ns: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_rst_ns: Option<i64>,
}

/// One connection as one vantage point saw it.
#[derive(Debug, Clone, Serialize)]
pub struct Leg {
    pub vantage: VantageId,
    pub role: Role,
    #[serde(skip)]
    pub key: ConnKey,
    /// The client's initial sequence number, when its SYN was seen here.
    pub isn: Option<u32>,
    /// By this vantage point's own clock.
    pub first_ts_ns: i64,
    pub last_ts_ns: i64,
    // Inline: a leg sees two of these three as a rule, and a heap block for each was most of
    // the allocations the join made per connection (callgrind). Only the rare form is boxed,
    // where an absent one costs a pointer.
    pub request: Option<DirStats>,
    pub request_wrapped: Option<DirStats>,
    pub reply: Option<DirStats>,
    pub reply_other_source: Option<Box<DirStats>>,
    /// Zeek conn.log style: S h A D a d F f R r T t W w, upper case for the client.
    pub history: HistoryText,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tcp: Option<TcpFlags>,
    /// First SYN to first SYN-ACK, at this vantage point.
    pub handshake_ns: Option<i64>,
    /// First request payload to first reply payload, at this vantage point.
    pub first_response_ns: Option<i64>,
    /// An ICMP unreachable about this connection from the server side was seen.
    pub icmp_unreachable: bool,
    /// How the connection ended as far as this vantage point can tell (null: it cannot, e.g.
    /// a director, which replies do not cross).
    pub outcome: Option<Outcome>,
    pub evidence: Vec<Evidence>,
}

impl Leg {
    /// Whether this leg's requests reached the capturing host, whose MACs are `host`, as far
    /// as the MACs tell: sent to it, or sent on by it. A frame between two other MACs was
    /// flooded by a switch that had not learnt its destination yet (or copied by a mirror),
    /// and the capturing host's kernel dropped it. True when the MACs are unknown (raw IP,
    /// cooked captures, a host whose MAC the topology does not know).
    pub fn request_reached(&self, host: &[MacAddr]) -> bool {
        match &self.request {
            Some(r) if !host.is_empty() && !r.dst_macs.is_empty() => r
                .dst_macs
                .iter()
                .chain(&r.src_macs)
                .any(|m| host.contains(m)),
            _ => true,
        }
    }

    pub fn form(&self, f: Form) -> Option<&DirStats> {
        match f {
            Form::Request => self.request.as_ref(),
            Form::RequestWrapped => self.request_wrapped.as_ref(),
            Form::Reply => self.reply.as_ref(),
            Form::ReplyOtherSource => self.reply_other_source.as_deref(),
        }
    }
}

/// How a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// TCP: handshake and FIN from both sides. UDP: a reply from the VIP came back.
    Completed,
    /// TCP: RST after the handshake.
    Reset,
    /// RST or ICMP unreachable instead of a SYN-ACK / reply.
    Refused,
    /// No answer at all where one would have been seen.
    Unanswered,
    /// Open at the end of the captures.
    InProgress,
    /// No capture that could tell (e.g. only the director's, which replies do not cross).
    Unknown,
}

impl Outcome {
    pub fn parse(s: &str) -> Option<Outcome> {
        Some(match s.to_ascii_lowercase().replace('-', "_").as_str() {
            "completed" => Outcome::Completed,
            "reset" => Outcome::Reset,
            "refused" => Outcome::Refused,
            "unanswered" => Outcome::Unanswered,
            "in_progress" => Outcome::InProgress,
            "unknown" => Outcome::Unknown,
            _ => return None,
        })
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Outcome::Completed => "completed",
            Outcome::Reset => "reset",
            Outcome::Refused => "refused",
            Outcome::Unanswered => "unanswered",
            Outcome::InProgress => "in_progress",
            Outcome::Unknown => "unknown",
        })
    }
}

/// How the real server of a connection was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RsSource {
    /// Outer destination of the tunnelled request.
    Tunnel,
    /// The MAC the director sent the request on to, unwrapped (direct routing).
    ForwardedMac,
    /// Seen in a real server's capture.
    RsCapture,
    /// Source MAC of the replies, known as that real server's.
    ReplyMac,
    /// Source address of replies that did not come from the VIP.
    ReplySource,
}

/// One connection, all vantage points together.
#[derive(Debug, Clone, Serialize)]
pub struct Connection {
    pub id: u64,
    pub proto: Proto,
    pub client: SocketAddr,
    pub vip: SocketAddr,
    pub isn: Option<u32>,
    /// By the reference clock (see the clock offsets).
    pub first_ts_ns: i64,
    pub last_ts_ns: i64,
    pub real_server: Option<IpAddr>,
    pub real_server_from: Option<RsSource>,
    /// Source MAC of the replies as the client (or any capture) saw them.
    pub reply_mac: Option<MacAddr>,
    pub outcome: Outcome,
    /// The vantage point whose view decided the outcome and history.
    pub outcome_from: Option<VantageId>,
    pub history: HistoryText,
    pub handshake_ns: Option<i64>,
    pub first_response_ns: Option<i64>,
    /// Retransmissions seen at the vantage point that decided the outcome.
    pub retransmissions: u64,
    pub legs: Vec<Leg>,
    /// What the captures could not show about this connection.
    pub unseen: Vec<String>,
}

impl Connection {
    pub fn key(&self) -> ConnKey {
        ConnKey {
            proto: self.proto,
            client: self.client,
            vip: self.vip,
        }
    }
    /// The leg whose view gave `history`, `handshake_ns`, `first_response_ns` and
    /// `retransmissions`: `outcome_from`'s, else the first one asked for the outcome (client,
    /// real server, other, director), as the join chose it.
    pub fn history_leg(&self) -> Option<&Leg> {
        match self.outcome_from {
            Some(v) => self.legs.iter().find(|l| l.vantage == v),
            None => self
                .legs
                .iter()
                .min_by_key(|l| (join::role_rank(l.role), l.vantage)),
        }
    }

    /// Every piece of evidence of every leg.
    pub fn evidence(&self) -> impl Iterator<Item = &Evidence> {
        self.legs.iter().flat_map(|l| l.evidence.iter())
    }
}

/// Where each connection of a run started and its key: what numbers connections in order of
/// start when only some of them are kept ([`numbered_by_start`]).
pub type Starts = Vec<(i64, ConnKey)>;

/// The kept connections, numbered in order of start among all (`starts`, every connection of
/// the run), as `flows` numbers them, and in that order: for the callers that keep only a few
/// (a filtered table, the connections a report draws).
pub fn numbered_by_start(mut kept: Vec<Connection>, mut starts: Starts) -> Vec<Connection> {
    starts.sort_unstable();
    for c in &mut kept {
        c.id = starts.partition_point(|s| *s < (c.first_ts_ns, c.key())) as u64 + 1;
    }
    kept.sort_by_key(|c| c.id);
    kept
}
