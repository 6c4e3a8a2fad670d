//! keepalived's objects as its keyword handlers leave them (`virtual_server_t`,
//! `real_server_t`, `virtual_server_group_entry_t` in keepalived/include/check_data.h), before
//! [`super::services`] applies `validate_check_config`.

use std::net::IpAddr;

use crate::topology::rules::Proto;

/// Where something was written: the file's index in [`super::lexer::Lexed::files`] and the line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct At {
    pub file: usize,
    pub line: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Family {
    Inet,
    Inet6,
}

impl Family {
    pub fn of(ip: IpAddr) -> Family {
        if ip.is_ipv6() {
            Family::Inet6
        } else {
            Family::Inet
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Method {
    Nat,
    Dr,
    Tun,
}

/// `lvs_method` (`svr_forwarding_handler`); the checksum option is checked, not kept (the
/// rules model leaves it out, as the ipvsadm parsers do).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Fwd {
    pub method: Method,
    /// `ipip`, `gue` or `gre` (keepalived's default is ipip).
    pub tun_type: &'static str,
    /// The GUE port; 0 for the other types.
    pub tun_port: u16,
}

/// A `real_server` or `sorry_server` (`alloc_rs`, `alloc_ssvr`).
#[derive(Debug, Clone)]
pub(super) struct Server {
    pub at: At,
    pub addr: IpAddr,
    /// 0 when not given.
    pub port: u16,
    /// Copied from the service when the server is made, as `alloc_rs` does: a `lvs_method` of
    /// the service written after the server does not reach it (the service's last one fills
    /// it in only when it is still unset then).
    pub fwd: Option<Fwd>,
    pub weight: Option<u32>,
    pub upper: Option<u32>,
    pub lower: Option<u32>,
    pub alpha: Option<bool>,
    pub inhibit: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Key {
    Addr(IpAddr, u16),
    Fwmark(u32),
    Group(String),
}

/// A `virtual_server` block.
#[derive(Debug, Clone)]
pub(super) struct Vs {
    pub at: At,
    pub key: Key,
    pub af: Option<Family>,
    pub sched: Option<String>,
    /// Scheduler flag bits 1, 2, 4: `flag-1` (sh/mh-fallback), `flag-2` (sh/mh-port), `flag-3`.
    pub flags: u8,
    pub ops: bool,
    pub fwd: Option<Fwd>,
    pub persistence: Option<u32>,
    pub granularity: Option<String>,
    pub engine: Option<String>,
    pub proto: Option<Proto>,
    /// `weight` of the service: the weight of servers that give none (default 1).
    pub weight: u32,
    pub alpha: bool,
    pub inhibit: bool,
    pub sorry: Option<Server>,
    pub sorry_inhibit: bool,
    pub servers: Vec<Server>,
}

/// One line of a `virtual_server_group` (`alloc_vsg_entry`).
#[derive(Debug, Clone)]
pub(super) enum Entry {
    /// Addresses `first..=last` (keepalived steps the whole IPv4 address, the last 16 bits of
    /// an IPv6 one), all on `port` (0: none).
    Addrs {
        first: IpAddr,
        last: IpAddr,
        port: u16,
    },
    Fwmark {
        mark: u32,
        family: Option<Family>,
    },
}

#[derive(Debug, Clone)]
pub(super) struct Group {
    pub at: At,
    pub name: String,
    pub entries: Vec<Entry>,
}

#[derive(Debug, Default)]
pub(super) struct Parsed {
    pub vs: Vec<Vs>,
    pub groups: Vec<Group>,
    /// Where `global_defs` sets `nftables_ipvs`.
    pub nftables_ipvs: Option<At>,
}
