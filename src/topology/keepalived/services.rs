//! From keepalived's objects to the IPVS rules it sets up: the defaults and corrections of
//! `validate_check_config` (keepalived/check/check_data.c), the expansion of
//! `virtual_server_group` entries (`ipvs_group_cmd`, `ipvs_group_range_cmd` in
//! keepalived/check/ipvswrapper.c), and the kernel's server order (see the module above).

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::model::{At, Entry, Family, Fwd, Key, Method, Parsed, Server, Vs};
use super::values::MAX_RANGE;

/// Servers of services a configuration may expand to (a group of N addresses repeats every
/// server N times); past this it is refused, as a bound on memory and time.
const MAX_ENTRIES: usize = 1 << 20;
use crate::escape::printable;
use crate::topology::rules::{
    Forward, ParseError, Proto, Rules, ServerRule, ServiceRule, VirtualService,
};

pub(super) fn rules(p: &Parsed, files: &[String]) -> Result<Rules, ParseError> {
    let mut out = Rules::default();
    let mut defined: HashMap<VirtualService, At> = HashMap::new();
    // Servers of all services so far (each service counted once more for itself).
    let mut entries = 0;
    for vs in &p.vs {
        let cx = Cx { files, vs };
        if vs.servers.is_empty() {
            out.notes.push(cx.note(
                vs.at,
                "has no real_server: keepalived ignores it (\"has no real servers\")",
            ));
            continue;
        }
        let rules = cx.service_rules(p, &mut out.notes)?;
        entries += rules.iter().map(|r| r.servers.len() + 1).sum::<usize>();
        if out.services.len() + rules.len() > MAX_RANGE as usize || entries > MAX_ENTRIES {
            return Err(cx.err(
                vs.at,
                format!(
                    "the configuration expands to more than {MAX_RANGE} services or \
                     {MAX_ENTRIES} servers of services"
                ),
            ));
        }
        for rule in rules {
            if let Some(first) = defined.insert(rule.service, vs.at) {
                return Err(cx.err(
                    vs.at,
                    format!(
                        "this virtual_server repeats a service of the one at {}",
                        cx.place(first)
                    ),
                ));
            }
            out.services.push(rule);
        }
    }
    Ok(out)
}

struct Cx<'a> {
    files: &'a [String],
    vs: &'a Vs,
}

impl Cx<'_> {
    fn place(&self, at: At) -> String {
        format!("{}:{}", self.files[at.file], at.line)
    }

    fn err(&self, at: At, message: impl Into<String>) -> ParseError {
        ParseError {
            file: self.files[at.file].clone(),
            line: at.line,
            message: message.into(),
        }
    }

    /// A note about this virtual server, `FILE:LINE: virtual_server KEY WHAT`.
    fn note(&self, at: At, what: &str) -> String {
        let key = match &self.vs.key {
            Key::Addr(ip, port) => format!("{ip} {port}"),
            Key::Fwmark(m) => format!("fwmark {m}"),
            Key::Group(name) => format!("group {}", printable(name, 80)),
        };
        format!("{}: virtual_server {key} {what}", self.place(at))
    }

    /// The services of one `virtual_server`, each with its servers.
    fn service_rules(
        &self,
        p: &Parsed,
        notes: &mut Vec<String>,
    ) -> Result<Vec<ServiceRule>, ParseError> {
        let vs = self.vs;
        let entries: &[Entry] = match &vs.key {
            Key::Group(name) => {
                let group = p.groups.iter().find(|g| g.name == *name).ok_or_else(|| {
                    self.err(
                        vs.at,
                        format!("no virtual_server_group {} is defined", printable(name, 80)),
                    )
                })?;
                &group.entries
            }
            _ => &[],
        };
        let group_addrs = entries.iter().any(|e| matches!(e, Entry::Addrs { .. }));
        if let (true, Some(nft)) = (group_addrs, p.nftables_ipvs) {
            return Err(self.err(
                vs.at,
                format!(
                    "with nftables_ipvs (at {}), keepalived serves this group's addresses \
                     through a firewall mark it picks at run time: give `ipvsadm -Sn` from the \
                     director instead",
                    self.place(nft)
                ),
            ));
        }
        let by_addr = matches!(vs.key, Key::Addr(..)) || group_addrs;

        // validate_check_config's defaults, each said in a note as keepalived logs it.
        let proto = vs.proto.unwrap_or(Proto::Udp);
        if by_addr && vs.proto.is_none() {
            notes.push(self.note(vs.at, "gives no protocol: keepalived uses UDP"));
        }
        let ops = vs.ops && (!by_addr || proto == Proto::Udp);
        if vs.ops && !ops {
            notes.push(self.note(vs.at, "has ops, which keepalived drops for TCP and SCTP"));
        }
        let zero_port = match &vs.key {
            Key::Addr(_, port) => *port == 0,
            _ => entries
                .iter()
                .any(|e| matches!(e, Entry::Addrs { port: 0, .. })),
        };
        let mut persistence = vs.persistence;
        if zero_port && persistence.is_none() {
            persistence = Some(360);
            notes.push(self.note(
                vs.at,
                "has port 0 without persistence_timeout: keepalived makes it persistent (360 s)",
            ));
        }
        let scheduler = vs.sched.clone().unwrap_or_else(|| {
            notes.push(self.note(vs.at, "gives no lvs_sched: keepalived uses wlc"));
            "wlc".to_string()
        });
        let unset = vs.servers.iter().chain(&vs.sorry).any(|s| s.fwd.is_none());
        let vs_fwd = vs.fwd.unwrap_or(Fwd {
            method: Method::Nat,
            tun_type: "ipip",
            tun_port: 0,
        });
        if unset && vs.fwd.is_none() {
            notes.push(self.note(vs.at, "gives no lvs_method: keepalived uses NAT"));
        }

        // The kernel's list: file order reversed, unless alpha leaves it to the checkers.
        let at_start = |s: &Server| !s.alpha.unwrap_or(vs.alpha) || s.inhibit.unwrap_or(vs.inhibit);
        let order_known = vs.servers.iter().all(at_start);
        if !order_known {
            notes.push(self.note(
                vs.at,
                "has alpha: keepalived adds each server when its checker first succeeds, so the \
                 kernel's list order is unknown (servers listed sorted)",
            ));
        }
        if let (Some(s), true) = (&vs.sorry, vs.sorry_inhibit) {
            notes.push(self.note(
                s.at,
                "has sorry_server_inhibit: the sorry server is in the kernel's list from the \
                 start, with weight 0",
            ));
        }

        // One service per address of the group (then per mark), or the one service.
        let mut keyed: Vec<(VirtualService, Option<u16>)> = Vec::new();
        match &vs.key {
            Key::Addr(ip, port) => keyed.push((addr_service(proto, *ip, *port), Some(*port))),
            Key::Fwmark(mark) => keyed.push((
                VirtualService::FwMark {
                    mark: *mark,
                    ipv6: vs.af == Some(Family::Inet6),
                },
                None,
            )),
            Key::Group(_) => {
                for e in entries {
                    if let Entry::Addrs {
                        first, last, port, ..
                    } = e
                    {
                        let mut ip = *first;
                        loop {
                            keyed.push((addr_service(proto, ip, *port), Some(*port)));
                            if keyed.len() > MAX_RANGE as usize {
                                return Err(self.err(
                                    vs.at,
                                    format!("the group expands to more than {MAX_RANGE} services"),
                                ));
                            }
                            if ip == *last {
                                break;
                            }
                            ip = step(ip);
                        }
                    }
                }
                for e in entries {
                    if let Entry::Fwmark { mark, family, .. } = e {
                        let af = family.or(vs.af).unwrap_or(Family::Inet);
                        keyed.push((
                            VirtualService::FwMark {
                                mark: *mark,
                                ipv6: af == Family::Inet6,
                            },
                            None,
                        ));
                    }
                }
            }
        }

        if keyed.len().saturating_mul(vs.servers.len()) > MAX_ENTRIES {
            return Err(self.err(
                vs.at,
                format!(
                    "{} services of {} servers each: more than lvscheck reads ({MAX_ENTRIES})",
                    keyed.len(),
                    vs.servers.len()
                ),
            ));
        }
        let mut rules = Vec::with_capacity(keyed.len());
        for (service, port) in keyed {
            let mut rule = ServiceRule::new(service, &scheduler);
            rule.persistence = persistence;
            rule.netmask = vs.granularity.clone();
            rule.sched_flags = flag_names(&scheduler, vs.flags);
            rule.one_packet = ops;
            rule.persistence_engine = vs.engine.clone();
            let mut seen = HashSet::with_capacity(vs.servers.len());
            for s in &vs.servers {
                let r = self.server_rule(s, s.fwd.unwrap_or(vs_fwd), port, notes);
                if !seen.insert(r.addr) {
                    return Err(self.err(
                        s.at,
                        format!(
                            "real server {} appears twice in this virtual_server",
                            r.addr
                        ),
                    ));
                }
                rule.servers.push(ServerRule {
                    weight: s.weight.unwrap_or(vs.weight),
                    ..r
                });
            }
            if order_known {
                rule.servers.reverse();
            } else {
                rule.servers.sort_by_key(|r| r.addr);
            }
            if let Some(s) = &vs.sorry {
                rule.sorry_server = Some(self.server_rule(s, s.fwd.unwrap_or(vs_fwd), port, notes));
            }
            rules.push(rule);
        }
        Ok(rules)
    }

    /// The server as the kernel gets it, with weight 1 (`alloc_ssvr`'s; the caller sets a real
    /// server's). Its port (`validate_check_config`, `ipvs_set_drule`): with NAT its own, or
    /// the service's when it gives none; otherwise the service's (none for a mark).
    fn server_rule(
        &self,
        s: &Server,
        fwd: Fwd,
        service_port: Option<u16>,
        notes: &mut Vec<String>,
    ) -> ServerRule {
        let port = match (fwd.method, service_port) {
            (Method::Nat, Some(vp)) if s.port == 0 => vp,
            (Method::Nat, _) => s.port,
            (_, vp) => {
                let vp = vp.unwrap_or(0);
                if s.port != 0 && s.port != vp {
                    let note = self.note(
                        s.at,
                        &format!(
                            "has server {} with port {} and no NAT: the kernel forwards to \
                             port {vp}",
                            s.addr, s.port
                        ),
                    );
                    if !notes.contains(&note) {
                        notes.push(note);
                    }
                }
                vp
            }
        };
        let tunnel = fwd.method == Method::Tun;
        ServerRule {
            addr: SocketAddr::new(s.addr, port),
            forward: match fwd.method {
                Method::Nat => Forward::Masq,
                Method::Dr => Forward::Route,
                Method::Tun => Forward::Tunnel,
            },
            weight: 1,
            upper_threshold: s.upper,
            lower_threshold: s.lower,
            tunnel_type: tunnel.then(|| fwd.tun_type.to_string()),
            tunnel_port: (tunnel && fwd.tun_port != 0).then_some(fwd.tun_port),
            active_conns: None,
            inactive_conns: None,
        }
    }
}

fn addr_service(proto: Proto, ip: IpAddr, port: u16) -> VirtualService {
    VirtualService::Addr {
        proto,
        vip: SocketAddr::new(ip, port),
    }
}

/// The next address of a group range: the whole IPv4 address, the last 16 bits of an IPv6 one
/// (`ipvs_group_range_cmd`).
fn step(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(u32::from(a).wrapping_add(1))),
        IpAddr::V6(a) => {
            let mut s = a.segments();
            s[7] = s[7].wrapping_add(1);
            IpAddr::V6(Ipv6Addr::from(s))
        }
    }
}

/// The flags as ipvsadm names them for the scheduler (`-b`): sh and mh name bits 1 and 2.
fn flag_names(scheduler: &str, bits: u8) -> Vec<String> {
    let names = match scheduler {
        "sh" => ["sh-fallback", "sh-port", "flag-3"],
        "mh" => ["mh-fallback", "mh-port", "flag-3"],
        _ => ["flag-1", "flag-2", "flag-3"],
    };
    (0..3)
        .filter(|i| bits & (1 << i) != 0)
        .map(|i| names[i].to_string())
        .collect()
}
