//! What the fairness stage consumes: plain data, so it depends on no other stage.
//!
//! The lead's glue turns connection records (flows) and the expected configuration (rules,
//! or `--scheduler`/`--weights`) into these types. Times are nanoseconds on the director's
//! clock; every time here is "as IPVS on the director sees it", which is why only client
//! packets matter: in tunnel mode the director never sees the replies.

use serde::{Deserialize, Serialize};
use std::net::{IpAddr, SocketAddr};

/// Everything needed to analyse every virtual service seen in a capture set. The connections
/// of a service are a `Vec<ConnObs>` when built by hand, or a compact
/// [`ConnTable`](super::table::ConnTable) when gathered from captures
/// ([`super::observe::FairnessObserver`]).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FairnessInput<C = Vec<ConnObs>> {
    pub services: Vec<ServiceObs<C>>,
    /// First and last timestamp of the director's capture, when known: lets the replay say
    /// how much of the history before the capture could have influenced the first decisions.
    pub capture_span: Option<(i64, i64)>,
    /// IPVS connection timeouts (`ipvsadm --set tcp tcpfin udp`); kernel defaults otherwise.
    pub timeouts: Timeouts,
}

/// One virtual service (protocol + VIP:port), its configuration if known, and its connections.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServiceObs<C = Vec<ConnObs>> {
    pub proto: Proto,
    /// The VIP and port; for a firewall-mark service, the VIP and port 0 (its connections go
    /// to any of the ports the mark covers, scheduled as one service).
    pub vip: SocketAddr,
    /// The firewall mark (`ipvsadm -A -f MARK`), for a service the rules key on one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mark: Option<u32>,
    pub config: Option<ServiceConfig>,
    pub connections: C,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Tcp,
    Udp,
    /// Replayed as UDP is (an entry from the first packet, no TCP states): exact for the
    /// schedulers that count no connections (rr, wrr, sh, dh, mh).
    Sctp,
}

impl Proto {
    /// TCP, UDP or SCTP; None for the protocols no scheduler replay covers.
    pub fn of(p: crate::topology::Proto) -> Option<Proto> {
        match p {
            crate::topology::Proto::TCP => Some(Proto::Tcp),
            crate::topology::Proto::UDP => Some(Proto::Udp),
            crate::topology::Proto(132) => Some(Proto::Sctp),
            _ => None,
        }
    }
}

/// The configured service: what `ipvsadm -A/-a` set up.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServiceConfig {
    pub scheduler: Scheduler,
    /// `-p T`: persistence timeout in seconds.
    pub persistence_s: Option<u32>,
    /// `-M`: persistence netmask as a prefix length (IPv4 default 32, IPv6 default 128).
    pub netmask_prefix: Option<u8>,
    /// `-b sh-port` (or `mh-port`, the same flag bit): sh and mh also hash the client port.
    pub sh_port: bool,
    /// Servers in the kernel's list order when `order_known`, otherwise in any order (rules
    /// files print them sorted, which is not the kernel's order).
    pub servers: Vec<Server>,
    pub order_known: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Server {
    pub addr: SocketAddr,
    pub weight: u32,
}

/// IPVS schedulers by their `ipvsadm -s` name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheduler {
    Rr,
    Wrr,
    Lc,
    Wlc,
    Sed,
    Nq,
    Sh,
    Dh,
    Fo,
    Ovf,
    Mh,
    Lblc,
    Lblcr,
    Twos,
}

impl Scheduler {
    pub const ALL: [Scheduler; 14] = [
        Scheduler::Rr,
        Scheduler::Wrr,
        Scheduler::Lc,
        Scheduler::Wlc,
        Scheduler::Sed,
        Scheduler::Nq,
        Scheduler::Sh,
        Scheduler::Dh,
        Scheduler::Fo,
        Scheduler::Ovf,
        Scheduler::Mh,
        Scheduler::Lblc,
        Scheduler::Lblcr,
        Scheduler::Twos,
    ];

    /// Whether the scheduler decides from the servers' active/inactive connection counters
    /// (which a replay must rebuild from the captured client packets).
    pub fn reads_counters(self) -> bool {
        matches!(
            self,
            Scheduler::Lc
                | Scheduler::Wlc
                | Scheduler::Sed
                | Scheduler::Nq
                | Scheduler::Ovf
                | Scheduler::Lblc
                | Scheduler::Lblcr
        )
    }

    pub fn name(self) -> &'static str {
        match self {
            Scheduler::Rr => "rr",
            Scheduler::Wrr => "wrr",
            Scheduler::Lc => "lc",
            Scheduler::Wlc => "wlc",
            Scheduler::Sed => "sed",
            Scheduler::Nq => "nq",
            Scheduler::Sh => "sh",
            Scheduler::Dh => "dh",
            Scheduler::Fo => "fo",
            Scheduler::Ovf => "ovf",
            Scheduler::Mh => "mh",
            Scheduler::Lblc => "lblc",
            Scheduler::Lblcr => "lblcr",
            Scheduler::Twos => "twos",
        }
    }

    pub fn from_name(name: &str) -> Option<Scheduler> {
        Scheduler::ALL
            .into_iter()
            .find(|s| s.name().eq_ignore_ascii_case(name.trim()))
    }
}

impl std::fmt::Display for Scheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One connection as the director saw it (client -> VIP direction), plus what the other
/// vantage points add (reply volume, response time).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConnObs {
    pub client: SocketAddr,
    /// The real server the director sent it to (outer destination of the IP-in-IP packets);
    /// None when no tunnelled packet was seen.
    pub rs: Option<IpAddr>,
    /// First and last client packet seen at the director.
    pub start_ns: i64,
    pub last_ns: i64,
    /// Client TCP flag times, None for UDP.
    pub tcp: Option<TcpMarks>,
    pub packets_to_server: u64,
    pub bytes_to_server: u64,
    pub packets_to_client: u64,
    pub bytes_to_client: u64,
    /// Time from the client's first request to the first reply byte, when a capture shows it.
    pub response_time_ns: Option<i64>,
    /// The client's first packet at the director: what shows the scheduling decision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_frame: Option<crate::topology::FrameRef>,
}

/// Times of the first client packet carrying each flag, as IPVS classifies them
/// (RST beats SYN beats FIN beats ACK, see `tcp_state_idx`). `ack_ns` is the first pure ACK
/// after the SYN (the end of the handshake from the director's point of view).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TcpMarks {
    pub syn_ns: Option<i64>,
    pub ack_ns: Option<i64>,
    pub fin_ns: Option<i64>,
    pub rst_ns: Option<i64>,
}

/// IPVS entry timeouts in seconds. `ipvsadm --set` changes the first three.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timeouts {
    pub tcp_established_s: u32,
    pub tcp_fin_wait_s: u32,
    pub udp_s: u32,
}

impl Default for Timeouts {
    /// `tcp_timeouts[]` in ip_vs_proto_tcp.c and `udp_timeouts[]` in ip_vs_proto_udp.c.
    fn default() -> Self {
        Timeouts {
            tcp_established_s: 900,
            tcp_fin_wait_s: 120,
            udp_s: 300,
        }
    }
}

/// How a service is named in reports: `10.0.0.1:80`, or `fwmark 1 (10.0.0.1)` for a
/// firewall-mark service, whose connections use several ports.
pub fn service_label(vip: SocketAddr, mark: Option<u32>) -> String {
    match mark {
        None => vip.to_string(),
        Some(m) => format!("fwmark {m} ({})", vip.ip()),
    }
}
