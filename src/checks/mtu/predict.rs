//! The `mtu` check's prediction: whether a full-size request fits the tunnel, from the MSS the
//! handshake agreed on, before any request is big enough to show it.
//!
//! A client's segments are sized by the MSS the *server* offers in its SYN-ACK (and by the
//! client's own link, which its SYN's MSS reflects): a full segment is that MSS plus the IP
//! and TCP headers (40 bytes over IPv4, 60 over IPv6; TCP options come out of the payload).
//! The director then adds the tunnel's header (IP-in-IP 20, GRE 24, GUE 32, 40 more for an
//! IPv6 outer header). When that exceeds the director-to-server path's MTU, the director can
//! only answer "fragmentation needed" and the client's first full-size segment is lost.

use std::collections::BTreeMap;
use std::net::IpAddr;

use super::super::affected::Examples;
use super::super::classify::{Class, Forwarding};
use super::super::{Context, Finding, Status};
use crate::flows::{Connection, Form};
use crate::topology::encap::Encap;
use crate::topology::{FrameRef, Proto};

/// Ethernet's MTU: what a path is assumed to carry when nothing in the captures says more.
pub const ASSUMED_PATH_MTU: u32 = 1500;

/// IP and TCP headers without options: what a full segment adds to its MSS.
pub fn headers(inner_v6: bool) -> u32 {
    if inner_v6 {
        60
    } else {
        40
    }
}

/// Where a connection's MSS was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum MssFrom {
    /// The SYN-ACK from the VIP: what the client may send, at most.
    SynAck,
    /// Only the client's SYN was captured (the director sees no SYN-ACK): the client sends no
    /// more than this, and no more than the real server offered, which is not in the captures.
    ClientSyn,
}

/// Connections that agreed on one MSS over one kind of tunnel.
#[derive(Debug)]
pub struct Group {
    pub encap: Encap,
    pub conns: usize,
    /// Of them, those whose client sent a full-size segment (the prediction was put to test).
    pub full_size: usize,
    pub servers: Vec<IpAddr>,
    pub examples: Examples,
}

/// (MSS, where it was read, inner IPv6, tunnel overhead).
type Key = (u16, MssFrom, bool, u32);

/// The prediction's tallies, fed one connection at a time.
#[derive(Debug, Default)]
pub struct Prediction {
    pub groups: BTreeMap<Key, Group>,
    /// Tunnelled TCP connections whose handshake no capture showed: nothing to predict from.
    pub without_mss: usize,
    /// The largest tunnelled packet seen (outer IP length), and where: the path carried it.
    pub largest_outer: Option<(u32, FrameRef)>,
}

impl Prediction {
    pub fn observe(&mut self, ctx: &Context, conn: &Connection, class: &Class) {
        if conn.proto != Proto::TCP || class.forwarding != Forwarding::Tunnel {
            return;
        }
        let inner_v6 = conn.client.is_ipv6();
        let encap = class
            .real_server
            .and_then(|rs| ctx.encap(rs))
            .or_else(|| ctx.first_encap())
            .unwrap_or_else(|| Encap::from_rules(None, None, conn.vip.ip(), conn.vip.ip()));
        let overhead = encap.overhead();
        for leg in &conn.legs {
            if let Some(w) = &leg.request_wrapped {
                let outer = w.max_ip_len + overhead;
                if self.largest_outer.is_none_or(|(l, _)| outer > l) {
                    self.largest_outer = Some((outer, w.first));
                }
            }
        }
        let synack = conn
            .legs
            .iter()
            .filter_map(|l| l.reply.as_ref())
            .find_map(|r| r.mss.map(|m| (m, r.first)));
        let syn = conn
            .legs
            .iter()
            .filter_map(|l| l.form(Form::Request))
            .find_map(|r| r.mss.map(|m| (m, r.first)));
        let (mss, from, at) = match (synack, syn) {
            // The client sends no more than either side allows.
            (Some((s, at)), Some((c, _))) => (s.min(c), MssFrom::SynAck, at),
            (Some((s, at)), None) => (s, MssFrom::SynAck, at),
            (None, Some((c, at))) => (c, MssFrom::ClientSyn, at),
            (None, None) => {
                self.without_mss += 1;
                return;
            }
        };
        let full = u32::from(mss) + headers(inner_v6);
        let sent_full = conn
            .legs
            .iter()
            .filter_map(|l| l.form(Form::Request))
            .any(|r| r.max_ip_len >= full);
        let g = self
            .groups
            .entry((mss, from, inner_v6, overhead))
            .or_insert_with(|| Group {
                encap,
                conns: 0,
                full_size: 0,
                servers: Vec::new(),
                examples: Examples::default(),
            });
        g.conns += 1;
        g.full_size += usize::from(sent_full);
        if let Some(rs) = class.real_server {
            if !g.servers.contains(&rs) {
                g.servers.push(rs);
                g.servers.sort();
            }
        }
        g.examples.offer(conn, || {
            let what = match from {
                MssFrom::SynAck => format!("SYN-ACK from the VIP offering MSS {mss}"),
                MssFrom::ClientSyn => format!("the client's SYN offering MSS {mss}"),
            };
            Some(ctx.packet(&at, what))
        });
    }
}

/// The MTU of the director-to-server path and how it is known.
#[derive(Debug, Clone)]
pub struct PathMtu {
    pub bytes: u32,
    pub why: String,
}

impl PathMtu {
    /// From the director's own "fragmentation needed" (next-hop MTU = path MTU - tunnel
    /// overhead), else the largest tunnelled packet seen if above Ethernet's, else assumed.
    pub fn of(icmp_inner_mtu: Option<(u32, u32)>, largest_outer: Option<u32>) -> PathMtu {
        if let Some((inner, overhead)) = icmp_inner_mtu {
            return PathMtu {
                bytes: inner + overhead,
                why: format!(
                    "the director's ICMP fragmentation needed gives {inner} bytes inside the \
                     tunnel, {} on the path",
                    inner + overhead
                ),
            };
        }
        match largest_outer {
            Some(l) if l > ASSUMED_PATH_MTU => PathMtu {
                bytes: l,
                why: format!("a {l}-byte tunnelled packet crossed it"),
            },
            Some(l) => PathMtu {
                bytes: ASSUMED_PATH_MTU,
                why: format!(
                    "assumed: Ethernet's {ASSUMED_PATH_MTU} (the largest tunnelled packet seen \
                     was {l} bytes)"
                ),
            },
            None => PathMtu {
                bytes: ASSUMED_PATH_MTU,
                why: format!("assumed: Ethernet's {ASSUMED_PATH_MTU}"),
            },
        }
    }
}

/// The MSS that makes a full segment fit: path MTU - tunnel overhead - headers.
pub fn clamp_for(path: u32, overhead: u32, inner_v6: bool) -> u32 {
    path.saturating_sub(overhead + headers(inner_v6))
}

/// The fix that makes full-size requests fit, on the hosts that size them.
pub fn fix(
    ctx: &Context,
    encap: &Encap,
    path: u32,
    servers: &[IpAddr],
    port: Option<u16>,
) -> String {
    let clamp = clamp_for(path, encap.overhead(), encap.inner_v6);
    let tables = if encap.inner_v6 {
        "ip6tables"
    } else {
        "iptables"
    };
    let on = match servers {
        [] => "each real server".to_string(),
        s => format!(
            "each real server ({})",
            s.iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let sport = port.map(|p| format!(" --sport {p}")).unwrap_or_default();
    format!(
        "clamp the MSS the real servers offer (their SYN-ACKs size the clients' segments; \
         clamping the clients' SYNs only shrinks the replies): on {on}, {tables} -t mangle -A \
         OUTPUT -s {vip} -p tcp{sport} --tcp-flags SYN,RST SYN -j TCPMSS --set-mss {clamp} \
         (or the route to the clients with advmss {clamp}); or raise the MTU of the \
         director-to-server path to {raised} (ip link set eth0 mtu {raised} on the director \
         and the real servers)",
        vip = ctx.vip_text(),
        raised = path + encap.overhead(),
    )
}

/// The finding for connections whose full-size segments will not fit.
pub fn finding(
    ctx: &Context,
    g: Group,
    key: Key,
    path: &PathMtu,
    port: Option<u16>,
    total: usize,
) -> Finding {
    let (mss, from, inner_v6, overhead) = key;
    let full = u32::from(mss) + headers(inner_v6);
    let wrapped = full + overhead;
    let clamp = clamp_for(path.bytes, overhead, inner_v6);
    let name = g.encap.name();
    let offered = match from {
        MssFrom::SynAck => format!("the real servers' SYN-ACKs offer MSS {mss}"),
        MssFrom::ClientSyn => format!(
            "the clients' SYNs offer MSS {mss} and no SYN-ACK was captured (the real servers \
             may offer less)"
        ),
    };
    let tested = match g.full_size {
        0 => "none of them sent a full-size segment in these captures".to_string(),
        n => format!("{n} of them sent full-size segments"),
    };
    Finding {
        snapshot: Vec::new(),
        check: super::ID,
        severity: Status::Info,
        summary: format!(
            "predicted: full-size requests will not fit the {name} tunnel for {} of {total} \
             connections: {offered}, so a full segment is {full} bytes, {wrapped} once wrapped, \
             over a {}-byte path; {tested}",
            g.conns, path.bytes
        ),
        host: None,
        count: g.conns as u64,
        out_of: Some(total as u64),
        evidence: g.examples.into_vec(),
        // The handshakes that agreed on this MSS: by value, not by client (a prediction covers
        // every connection, and a list of their clients would grow with them).
        display_filter: Some(match from {
            MssFrom::SynAck => {
                format!("tcp.flags.syn == 1 && tcp.flags.ack == 1 && tcp.options.mss_val == {mss}")
            }
            MssFrom::ClientSyn => {
                format!("tcp.flags.syn == 1 && tcp.flags.ack == 0 && tcp.options.mss_val == {mss}")
            }
        }),
        likely_cause: format!(
            "the {name} tunnel adds {overhead} bytes that the MSS does not leave room for \
             (path MTU {}: {}); the director will answer a full-size segment with ICMP \
             fragmentation needed, costing a lost first attempt, or a stall where ICMP is \
             filtered; the MSS that fits is {clamp}",
            path.bytes, path.why
        ),
        fix: fix(ctx, &g.encap, path.bytes, &g.servers, port),
    }
}
