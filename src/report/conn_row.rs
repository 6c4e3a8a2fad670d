//! One row per connection for the logs people query with DuckDB, pandas or Spark
//! (`flows --format tsv|parquet`): Zeek conn.log's columns where the meaning is the same, then
//! lvscheck's own. The columns are listed once ([`COLUMNS`]) and every row is handed to a
//! writer field by field in that order ([`emit`]), so the Zeek-style text log
//! ([`super::conn_log`]) and the Parquet file ([`super::conn_parquet`]) cannot disagree.
//! Every column is documented in docs/conn-log.md.

use std::collections::HashMap;
use std::hash::Hasher;
use std::net::{IpAddr, SocketAddr};

use smallvec::SmallVec;

use crate::flows::{Analysis, Connection, DirStats, Leg, RsSource};
use crate::topology::encap::Encap;
use crate::topology::{Role, VantageId};

/// Version of the columns, in the Parquet file's key-value metadata
/// (`lvscheck.conn_log.version`); bumped when a column changes meaning or goes away.
pub const VERSION: u32 = 1;

/// A column's type, named as Zeek's log header names it (`#types`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Nanoseconds since the Unix epoch (Zeek: seconds with a fraction).
    Time,
    /// Nanoseconds (Zeek: seconds with a fraction).
    Interval,
    Count,
    Port,
    Addr,
    String,
    /// One of a few words.
    Enum,
    /// A list of strings (Zeek: `set[string]`, elements separated by `,`).
    Set,
}

impl Kind {
    pub fn zeek_name(self) -> &'static str {
        match self {
            Kind::Time => "time",
            Kind::Interval => "interval",
            Kind::Count => "count",
            Kind::Port => "port",
            Kind::Addr => "addr",
            Kind::String => "string",
            Kind::Enum => "enum",
            Kind::Set => "set[string]",
        }
    }
}

pub struct Column {
    pub name: &'static str,
    pub kind: Kind,
}

const fn col(name: &'static str, kind: Kind) -> Column {
    Column { name, kind }
}

/// Every column, in order: Zeek's first (same names, same meaning), then lvscheck's.
pub const COLUMNS: [Column; 40] = [
    col("ts", Kind::Time),
    col("uid", Kind::String),
    col("id.orig_h", Kind::Addr),
    col("id.orig_p", Kind::Port),
    col("id.resp_h", Kind::Addr),
    col("id.resp_p", Kind::Port),
    col("proto", Kind::Enum),
    col("duration", Kind::Interval),
    col("orig_bytes", Kind::Count),
    col("resp_bytes", Kind::Count),
    col("conn_state", Kind::String),
    col("history", Kind::String),
    col("orig_pkts", Kind::Count),
    col("orig_ip_bytes", Kind::Count),
    col("resp_pkts", Kind::Count),
    col("resp_ip_bytes", Kind::Count),
    col("ip_proto", Kind::Count),
    col("resp_l2_addr", Kind::String),
    col("conn_id", Kind::Count),
    col("isn", Kind::Count),
    col("real_server", Kind::Addr),
    col("rs_source", Kind::Enum),
    col("outcome", Kind::Enum),
    col("outcome_from", Kind::String),
    col("director", Kind::Addr),
    col("tunnel", Kind::Enum),
    col("gue_port", Kind::Port),
    col("seen_at", Kind::String),
    col("vantages", Kind::Set),
    col("client_ts", Kind::Time),
    col("director_ts", Kind::Time),
    col("rs_ts", Kind::Time),
    col("director_pkts", Kind::Count),
    col("tunnel_pkts", Kind::Count),
    col("rs_pkts", Kind::Count),
    col("handshake", Kind::Interval),
    col("first_response", Kind::Interval),
    col("retransmissions", Kind::Count),
    col("evidence", Kind::Set),
    col("unseen", Kind::Set),
];

/// Where a row's fields go, one call per column in the order of [`COLUMNS`]; None is an unset
/// field (Zeek's `-`, a Parquet null).
pub trait Fields {
    fn time(&mut self, ns: Option<i64>);
    fn interval(&mut self, ns: Option<i64>);
    fn count(&mut self, n: Option<u64>);
    fn port(&mut self, p: Option<u16>);
    /// Addresses, strings and enums.
    fn text(&mut self, value: Option<&dyn std::fmt::Display>);
    fn set(&mut self, items: &[&str]);
}

/// What the rows need of the analysis, taken once before the first connection.
pub struct Context {
    names: HashMap<VantageId, String>,
    offsets: HashMap<VantageId, i64>,
    addresses: HashMap<VantageId, IpAddr>,
    tunnels: std::collections::BTreeMap<IpAddr, Encap>,
}

impl Context {
    pub fn new(a: &Analysis) -> Context {
        let vantages = &a.topology.vantages;
        Context {
            names: vantages
                .iter()
                .map(|v| (v.id, super::flows::vantage_name(a, v.id)))
                .collect(),
            offsets: a
                .clock_offsets
                .iter()
                .map(|o| (o.vantage, o.offset_ns))
                .collect(),
            addresses: vantages
                .iter()
                .filter_map(|v| Some((v.id, v.address?)))
                .collect(),
            tunnels: a.topology.tunnels.clone(),
        }
    }

    fn name(&self, v: VantageId) -> std::borrow::Cow<'_, str> {
        match self.names.get(&v) {
            Some(n) => n.as_str().into(),
            None => v.to_string().into(),
        }
    }

    /// A time of this vantage point's clock on the reference clock.
    fn corrected(&self, v: VantageId, ts_ns: i64) -> i64 {
        ts_ns - self.offsets.get(&v).copied().unwrap_or(0)
    }
}

/// The connection's row, field by field in the order of [`COLUMNS`].
pub fn emit(c: &Connection, ctx: &Context, f: &mut impl Fields) {
    let at = c.history_leg();
    let requests = at.and_then(|l| l.request.as_ref().or(l.request_wrapped.as_ref()));
    let replies = at.and_then(|l| l.reply.as_ref());
    f.time(Some(c.first_ts_ns));
    f.text(Some(&Uid::of(c)));
    f.text(Some(&c.client.ip()));
    f.port(Some(c.client.port()));
    f.text(Some(&c.vip.ip()));
    f.port(Some(c.vip.port()));
    f.text(Some(&c.proto));
    f.interval(Some(c.last_ts_ns - c.first_ts_ns));
    let counted = |s: Option<&DirStats>, n: fn(&DirStats) -> u64| at.map(|_| s.map_or(0, n));
    f.count(counted(requests, |s| s.payload_bytes));
    f.count(counted(replies, |s| s.payload_bytes));
    f.text(at.and_then(|l| conn_state(c, l)).as_ref().map(|s| s as _));
    f.text(Some(&c.history));
    f.count(counted(requests, |s| s.packets));
    f.count(counted(requests, |s| s.ip_bytes));
    f.count(counted(replies, |s| s.packets));
    f.count(counted(replies, |s| s.ip_bytes));
    f.count(Some(u64::from(c.proto.0)));
    f.text(c.reply_mac.as_ref().map(|m| m as _));

    f.count(Some(c.id));
    f.count(c.isn.map(u64::from));
    f.text(c.real_server.as_ref().map(|a| a as _));
    f.text(c.real_server_from.map(rs_source).as_ref().map(|s| s as _));
    f.text(Some(&c.outcome));
    let decided = c.outcome_from.map(|v| ctx.name(v));
    f.text(decided.as_ref().map(|n| n as _));
    let wrapped = c
        .legs
        .iter()
        .find_map(|l| l.request_wrapped.as_ref()?.outer.first());
    let director = wrapped.map(|o| o.src).or_else(|| {
        first_of(c, Role::Director).and_then(|l| ctx.addresses.get(&l.vantage).copied())
    });
    f.text(director.as_ref().map(|a| a as _));
    let encap = wrapped.and_then(|o| ctx.tunnels.get(&o.dst));
    f.text(encap.map(tunnel_name).as_ref().map(|s| s as _));
    f.port(encap.and_then(|e| e.gue_port));
    let seen_at = super::flows::seen_at(&c.legs);
    f.text(Some(&seen_at));
    let names: SmallVec<[std::borrow::Cow<str>; 6]> =
        c.legs.iter().map(|l| ctx.name(l.vantage)).collect();
    let names: SmallVec<[&str; 6]> = names.iter().map(|n| n.as_ref()).collect();
    f.set(&names);
    for role in [Role::Client, Role::Director, Role::RealServer] {
        f.time(first_of(c, role).map(|l| ctx.corrected(l.vantage, l.first_ts_ns)));
    }
    let director_leg = first_of(c, Role::Director);
    f.count(director_leg.map(|l| l.request.as_ref().map_or(0, |s| s.packets)));
    f.count(director_leg.map(|l| l.request_wrapped.as_ref().map_or(0, |s| s.packets)));
    f.count(first_of(c, Role::RealServer).map(|l| {
        l.request_wrapped
            .as_ref()
            .or(l.request.as_ref())
            .map_or(0, |s| s.packets)
    }));
    f.interval(c.handshake_ns);
    f.interval(c.first_response_ns);
    f.count(Some(c.retransmissions));
    let mut kinds: Vec<String> = c.evidence().map(|e| evidence_name(e.kind)).collect();
    kinds.sort_unstable();
    kinds.dedup();
    let kinds: SmallVec<[&str; 4]> = kinds.iter().map(String::as_str).collect();
    f.set(&kinds);
    let unseen: SmallVec<[&str; 4]> = c.unseen.iter().map(String::as_str).collect();
    f.set(&unseen);
}

/// The first leg (in path order) at a vantage point of this role.
fn first_of(c: &Connection, role: Role) -> Option<&Leg> {
    c.legs.iter().find(|l| l.role == role)
}

fn rs_source(s: RsSource) -> &'static str {
    match s {
        RsSource::Tunnel => "tunnel",
        RsSource::ForwardedMac => "forwarded_mac",
        RsSource::RsCapture => "rs_capture",
        RsSource::ReplyMac => "reply_mac",
        RsSource::ReplySource => "reply_source",
    }
}

/// The evidence kind as the JSON output names it.
fn evidence_name(k: crate::flows::EvidenceKind) -> String {
    serde_json::to_value(k)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| format!("{k:?}"))
}

/// How the director wraps requests, as Linux names the tunnel device's mode.
fn tunnel_name(e: &Encap) -> &'static str {
    if e.is_gue() {
        "gue"
    } else if e.is_gre() {
        "gre"
    } else {
        match (e.inner_v6, e.outer_v6) {
            (false, false) => "ipip",
            (true, true) => "ip6ip6",
            (false, true) => "ipip6",
            (true, false) => "sit",
        }
    }
}

/// Zeek's `conn_state` from what this leg saw: its rules applied to the flags, an end counted
/// as active once its SYN (the client) or SYN-ACK (the server) was seen there. Unset where
/// the leg cannot tell how the connection went (a director, which replies do not cross).
fn conn_state(c: &Connection, l: &Leg) -> Option<&'static str> {
    l.outcome?;
    let Some(t) = l.tcp else {
        if c.proto != crate::topology::Proto::UDP {
            return Some("OTH");
        }
        let sent = |s: &Option<DirStats>| s.as_ref().is_some_and(|s| s.packets > 0);
        let orig = sent(&l.request) || sent(&l.request_wrapped);
        return Some(match (orig, sent(&l.reply)) {
            (true, true) => "SF",
            (true, false) => "S0",
            (false, true) => "SHR",
            (false, false) => "OTH",
        });
    };
    let (orig_active, resp_active) = (t.syn, t.syn_ack);
    Some(if t.server_rst {
        if orig_active && !resp_active {
            "REJ"
        } else if !orig_active {
            "RSTRH"
        } else {
            "RSTR"
        }
    } else if t.client_rst {
        match (resp_active, orig_active) {
            (true, _) => "RSTO",
            (false, true) => "RSTOS0",
            (false, false) => "OTH",
        }
    } else if t.client_fin && t.server_fin {
        "SF"
    } else if t.client_fin {
        if resp_active {
            "S2"
        } else {
            "SH"
        }
    } else if t.server_fin {
        if orig_active {
            "S3"
        } else {
            "SHR"
        }
    } else if orig_active && !resp_active && l.reply.is_none() {
        "S0"
    } else if orig_active && resp_active {
        "S1"
    } else {
        "OTH"
    })
}

/// A connection's `uid`: `C` and 11 base-62 digits of a SipHash of its tuple, client ISN and
/// start, the same in every format and every run over the same captures.
pub struct Uid(u64);

impl Uid {
    pub fn of(c: &Connection) -> Uid {
        let mut h = siphasher::sip::SipHasher13::new_with_keys(0x6c76_7363_6865_636b, 16);
        h.write_u8(c.proto.0);
        for a in [c.client, c.vip] {
            write_socket(&mut h, a);
        }
        h.write_u64(c.isn.map_or(u64::MAX, u64::from));
        h.write_i64(c.first_ts_ns);
        Uid(h.finish())
    }
}

fn write_socket(h: &mut impl Hasher, a: SocketAddr) {
    match a.ip() {
        IpAddr::V4(ip) => h.write(&ip.octets()),
        IpAddr::V6(ip) => h.write(&ip.octets()),
    }
    h.write_u16(a.port());
}

impl std::fmt::Display for Uid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        const DIGITS: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
        let mut text = [b'0'; 12];
        text[0] = b'C';
        let mut n = self.0;
        for d in text[1..].iter_mut().rev() {
            *d = DIGITS[(n % 62) as usize];
            n /= 62;
        }
        f.write_str(std::str::from_utf8(&text).expect("ASCII digits"))
    }
}
