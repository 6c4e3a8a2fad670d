//! The director's own view of its configuration, as ipvsadm prints it.
//!
//! keepalived's configuration (`keepalived.conf`, with its includes) is read too, told apart by
//! its content ([`super::keepalived`]), into the same model.
//!
//! Three ipvsadm outputs are understood: `ipvsadm -Sn` (the rules in the form `ipvsadm -R` reads
//! back), `ipvsadm -Ln` (the table form, sorted or `--nosort`; `--stats`, `--rate` and the
//! other listing variants are not rules and are refused), and `ipvsadm -Lnc` (the
//! connection table). The parsers are strict about what they claim to understand: an
//! unknown option or a malformed line is an error naming the file and line, never a guess.
//! IPv6 addresses appear in brackets (`[2001:db8::1]:80`), as ipvsadm prints them.
//!
//! Server order matters to the schedulers: `-Sn` and a plain `-Ln` sort servers by
//! address, only `-Ln --nosort` shows the kernel's list order. The parsers keep the order
//! of the text; a list that is not sorted is taken as the kernel's order (the scheduler
//! replay does), so keepalived's servers are listed in the order the kernel ends up with.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use serde::Serialize;

/// Transport protocol of a virtual service or a connection entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Tcp,
    Udp,
    Sctp,
    /// Only in `-Lnc`: persistence templates of firewall-mark services carry no protocol.
    Ip,
}

impl Proto {
    /// The protocol column of `ipvsadm -Ln` and `-Lnc` (`TCP`, `UDP`, `SCTP`, `IP`).
    pub fn from_table(word: &str) -> Option<Proto> {
        match word {
            "TCP" => Some(Proto::Tcp),
            "UDP" => Some(Proto::Udp),
            "SCTP" => Some(Proto::Sctp),
            "IP" => Some(Proto::Ip),
            _ => None,
        }
    }
}

/// How the director forwards to a real server (`-i`, `-g`, `-m`; `Tunnel`, `Route`, `Masq`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Forward {
    /// IP-in-IP (or GUE/GRE, see [`ServerRule::tunnel_type`]): LVS-TUN.
    Tunnel,
    /// Direct routing (LVS-DR), MAC rewrite on the same segment.
    Route,
    /// NAT (LVS-NAT).
    Masq,
    /// The real server is the director itself (`-Ln` says `Local`; `-Sn` prints `-g`).
    Local,
}

/// What a service is keyed on: an address and port, or a firewall mark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum VirtualService {
    Addr { proto: Proto, vip: SocketAddr },
    FwMark { mark: u32, ipv6: bool },
}

/// One virtual service and its real servers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceRule {
    pub service: VirtualService,
    pub scheduler: String,
    /// Persistence timeout in seconds (`-p`), when the service is persistent.
    pub persistence: Option<u32>,
    /// Persistence netmask (`-M`): dotted quad for IPv4, prefix length for IPv6.
    pub netmask: Option<String>,
    /// Scheduler flags (`-b sh-port,sh-fallback`, `flag-1`...).
    pub sched_flags: Vec<String>,
    /// One-packet scheduling (`-o`, printed `ops`).
    pub one_packet: bool,
    /// Persistence engine (`--pe sip`).
    pub persistence_engine: Option<String>,
    /// In the order of the text (see the module documentation).
    pub servers: Vec<ServerRule>,
    /// keepalived's `sorry_server`, which it adds only when every real server is down: not
    /// one of `servers`, kept so that a check can name it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sorry_server: Option<ServerRule>,
}

impl ServiceRule {
    /// A service with its scheduler and nothing else set yet.
    pub(crate) fn new(service: VirtualService, scheduler: &str) -> ServiceRule {
        ServiceRule {
            service,
            scheduler: scheduler.to_string(),
            persistence: None,
            netmask: None,
            sched_flags: Vec::new(),
            one_packet: false,
            persistence_engine: None,
            servers: Vec::new(),
            sorry_server: None,
        }
    }

    /// The VIP and port, for an address-keyed service.
    pub fn vip(&self) -> Option<SocketAddr> {
        match self.service {
            VirtualService::Addr { vip, .. } => Some(vip),
            VirtualService::FwMark { .. } => None,
        }
    }

    pub fn proto(&self) -> Option<Proto> {
        match self.service {
            VirtualService::Addr { proto, .. } => Some(proto),
            VirtualService::FwMark { .. } => None,
        }
    }
}

/// One real server of a service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServerRule {
    pub addr: SocketAddr,
    pub forward: Forward,
    pub weight: u32,
    /// Upper and lower connection thresholds (`-x`, `-y`); `None` when not shown.
    pub upper_threshold: Option<u32>,
    pub lower_threshold: Option<u32>,
    /// Tunnel encapsulation (`--tun-type ipip|gue|gre`) when ipvsadm printed one.
    pub tunnel_type: Option<String>,
    /// The GUE tunnel's UDP destination port (`--tun-port`), when ipvsadm printed one.
    pub tunnel_port: Option<u16>,
    /// Counters of the `-Ln` table form; `None` for `-Sn`.
    pub active_conns: Option<u32>,
    pub inactive_conns: Option<u32>,
}

/// All services of one director.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Rules {
    pub services: Vec<ServiceRule>,
    /// What the reader filled in or could not tell, in words (keepalived's defaults, its
    /// server order); empty for ipvsadm output.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl Rules {
    /// The UDP ports of the GUE tunnels the rules name (`--tun-type gue --tun-port N`), sorted.
    pub fn gue_ports(&self) -> Vec<u16> {
        let mut ports: Vec<u16> = self
            .services
            .iter()
            .flat_map(|s| &s.servers)
            .filter(|r| r.tunnel_type.as_deref() == Some("gue"))
            .filter_map(|r| r.tunnel_port)
            .collect();
        ports.sort_unstable();
        ports.dedup();
        ports
    }
}

/// One entry of the connection table (`ipvsadm -Lnc`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConnEntry {
    pub proto: Proto,
    /// Seconds left before the entry expires.
    pub expire_s: u32,
    /// IPVS state name: `ESTABLISHED`, `FIN_WAIT`, `SYN_RECV`, `CLOSE`, `UDP`, `NONE`...
    pub state: String,
    pub client: SocketAddr,
    pub vip: SocketAddr,
    pub rs: SocketAddr,
}

impl ConnEntry {
    /// A persistence template: it pins a client to a server and is not a connection. Its
    /// client port is 0 (no real TCP/UDP connection has that); the state column says
    /// `ASSURED` on Linux 6.1 (seen in fixtures/persistence); `NONE` is also seen.
    pub fn is_template(&self) -> bool {
        self.client.port() == 0
    }
}

/// A parse failure, naming the file and the 1-based line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ParseError {
    pub file: String,
    pub line: usize,
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.message)
    }
}

/// Reading a file failed, or its content did not parse.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    #[error("{file}: {source}")]
    Io {
        file: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Parse(#[from] ParseError),
    /// The file parsed but defines no virtual service: nothing to compare the traffic with.
    #[error(
        "{file}: holds no virtual service{}",
        if *blank {
            " (the file is empty: `ipvsadm -Sn` prints nothing when run without root, its \
             complaint goes to standard error; run `sudo ipvsadm -Sn > FILE` on the director)"
        } else {
            " (the director had none configured when it was saved; give the rules of the \
             director these captures were taken behind)"
        }
    )]
    NoService {
        file: String,
        /// Nothing but blank lines and comments.
        blank: bool,
    },
    /// A keepalived configuration from which keepalived sets up no IPVS service.
    #[error(
        "{file}: keepalived configuration without a virtual_server that keepalived would set up \
         (only VRRP or other settings, or servers without real_server); give the configuration \
         of the director these captures were taken behind, or its `ipvsadm -Sn`"
    )]
    NoKeepalivedService { file: String },
}

/// Reads a rules file in any form (`-Sn`, `-Ln` or keepalived.conf), told apart by its
/// content. A file that defines no virtual service is an error: given as the expected
/// configuration, it would make every service seen look unconfigured.
pub fn read_rules(path: &Path) -> Result<Rules, RulesError> {
    let text = read(path)?;
    let file = path.display().to_string();
    if super::keepalived::is_keepalived(&text) {
        let rules = super::keepalived::parse(&text, path, &super::keepalived::FileSystem)?;
        if rules.services.is_empty() {
            return Err(RulesError::NoKeepalivedService { file });
        }
        return Ok(rules);
    }
    let rules = parse_rules(&text, &file)?;
    if rules.services.is_empty() {
        let blank = text
            .lines()
            .map(str::trim)
            .all(|l| l.is_empty() || l.starts_with('#'));
        return Err(RulesError::NoService { file, blank });
    }
    Ok(rules)
}

/// Reads an `ipvsadm -Lnc` file.
pub fn read_conns(path: &Path) -> Result<Vec<ConnEntry>, RulesError> {
    let text = read(path)?;
    Ok(parse_conns(&text, &path.display().to_string())?)
}

fn read(path: &Path) -> Result<String, RulesError> {
    read_text(
        path,
        "a rules file",
        "the output of ipvsadm -Sn or ipvsadm -Ln, or keepalived.conf",
    )
}

/// A text file of ipvsadm's output: `what` names the kind of file in the error for a
/// directory, `expected` the output wanted in the error for a file that is not text.
pub(crate) fn read_text(path: &Path, what: &str, expected: &str) -> Result<String, RulesError> {
    let file = path.display().to_string();
    if path.is_dir() {
        return Err(RulesError::Io {
            file,
            source: std::io::Error::other(format!("is a directory, not {what}")),
        });
    }
    std::fs::read_to_string(path).map_err(|source| {
        let source = if source.kind() == std::io::ErrorKind::InvalidData {
            std::io::Error::other(format!("not a text file (not UTF-8): expected {expected}"))
        } else {
            source
        };
        RulesError::Io { file, source }
    })
}

/// Parses `ipvsadm -Sn` or `ipvsadm -Ln` output, or keepalived.conf (whose includes are
/// looked for next to `file`); `file` names the source in errors.
pub fn parse_rules(text: &str, file: &str) -> Result<Rules, ParseError> {
    if super::keepalived::is_keepalived(text) {
        return super::keepalived::parse(text, Path::new(file), &super::keepalived::FileSystem);
    }
    let first = text.lines().map(str::trim).find(|l| !l.is_empty());
    if let Some(l) = first.filter(|l| l.starts_with("Can't initialize ipvs")) {
        let n = text.lines().position(|x| x.trim() == l).unwrap_or(0) + 1;
        return Err(Lines { file }.err(
            n,
            format!(
                "this is ipvsadm's error message (`{l}`), not rules: run it as root on the \
                 director (sudo ipvsadm -Sn > FILE)"
            ),
        ));
    }
    match first {
        Some(l) if l.starts_with("IP Virtual Server") || l.starts_with("Prot ") => {
            parse_list(text, file)
        }
        _ => parse_save(text, file),
    }
}

/// A cursor over the lines of one file, for errors that name the line.
struct Lines<'a> {
    file: &'a str,
}

impl Lines<'_> {
    fn err(&self, line: usize, message: impl Into<String>) -> ParseError {
        ParseError {
            file: self.file.to_string(),
            line,
            message: message.into(),
        }
    }
}

/// `ipvsadm -Sn`: one `-A` line per service, one `-a` line per server, in any order that
/// `ipvsadm -R` accepts (a server after its service). Blank lines and `#` comments are
/// allowed, since people keep these files by hand too.
pub fn parse_save(text: &str, file: &str) -> Result<Rules, ParseError> {
    let cx = Lines { file };
    let mut rules = Rules::default();
    // Where each service is in `rules.services`: looked up for every line, so a scan of the
    // services would make a file of tens of thousands of them quadratic.
    let mut at: HashMap<VirtualService, usize> = HashMap::new();
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        match words[0] {
            "-A" | "--add-service" => {
                let (service, rest) = save_service(&cx, n, &words[1..])?;
                if at.contains_key(&service) {
                    return Err(cx.err(n, "service defined twice"));
                }
                at.insert(service, rules.services.len());
                rules
                    .services
                    .push(save_service_options(&cx, n, service, rest)?);
            }
            "-a" | "--add-server" => {
                let (service, rest) = save_service(&cx, n, &words[1..])?;
                let server = save_server(&cx, n, rest)?;
                let i = *at
                    .get(&service)
                    .ok_or_else(|| cx.err(n, "server added before its service (-A)"))?;
                rules.services[i].servers.push(server);
            }
            other => {
                return Err(cx.err(
                    n,
                    format!("expected -A or -a as in `ipvsadm -Sn` output, found `{other}`"),
                ))
            }
        }
    }
    Ok(rules)
}

/// `-t ADDR:PORT`, `-u ...`, `--sctp-service ...` or `-f MARK [-6]`; returns the rest.
fn save_service<'w>(
    cx: &Lines,
    n: usize,
    words: &'w [&'w str],
) -> Result<(VirtualService, &'w [&'w str]), ParseError> {
    let flag = words
        .first()
        .ok_or_else(|| cx.err(n, "missing the service (-t, -u, --sctp-service or -f)"))?;
    let value = words
        .get(1)
        .ok_or_else(|| cx.err(n, format!("`{flag}` needs a value")))?;
    let proto = match *flag {
        "-t" | "--tcp-service" => Proto::Tcp,
        "-u" | "--udp-service" => Proto::Udp,
        "--sctp-service" => Proto::Sctp,
        "-f" | "--fwmark-service" => {
            let mark = value
                .parse()
                .map_err(|_| cx.err(n, format!("bad firewall mark `{value}`")))?;
            let ipv6 = words.get(2) == Some(&"-6");
            let rest = if ipv6 { &words[3..] } else { &words[2..] };
            return Ok((VirtualService::FwMark { mark, ipv6 }, rest));
        }
        other => return Err(cx.err(n, format!("expected the service, found `{other}`"))),
    };
    let vip = socket_addr(value).ok_or_else(|| cx.err(n, format!("bad address `{value}`")))?;
    Ok((VirtualService::Addr { proto, vip }, &words[2..]))
}

fn save_service_options(
    cx: &Lines,
    n: usize,
    service: VirtualService,
    words: &[&str],
) -> Result<ServiceRule, ParseError> {
    // ipvsadm's default when -s is left out.
    let mut rule = ServiceRule::new(service, "wlc");
    let mut i = 0;
    while i < words.len() {
        let w = words[i];
        let value = || {
            words
                .get(i + 1)
                .copied()
                .ok_or_else(|| cx.err(n, format!("`{w}` needs a value")))
        };
        match w {
            "-s" | "--scheduler" => {
                rule.scheduler = value()?.to_string();
                i += 2;
            }
            "-p" | "--persistent" => {
                let v = value()?;
                rule.persistence = Some(
                    v.parse()
                        .map_err(|_| cx.err(n, format!("bad persistence timeout `{v}`")))?,
                );
                i += 2;
            }
            "-M" | "--netmask" => {
                rule.netmask = Some(value()?.to_string());
                i += 2;
            }
            "-b" | "--sched-flags" => {
                rule.sched_flags = value()?.split(',').map(str::to_string).collect();
                i += 2;
            }
            "pe" | "--pe" => {
                rule.persistence_engine = Some(value()?.to_string());
                i += 2;
            }
            "ops" | "-o" | "--ops" => {
                rule.one_packet = true;
                i += 1;
            }
            other => return Err(cx.err(n, format!("unknown service option `{other}`"))),
        }
    }
    Ok(rule)
}

fn save_server(cx: &Lines, n: usize, words: &[&str]) -> Result<ServerRule, ParseError> {
    let mut addr = None;
    let mut forward = None;
    let mut server = ServerRule {
        addr: SocketAddr::from(([0, 0, 0, 0], 0)),
        forward: Forward::Route,
        weight: 1,
        upper_threshold: None,
        lower_threshold: None,
        tunnel_type: None,
        tunnel_port: None,
        active_conns: None,
        inactive_conns: None,
    };
    let mut i = 0;
    while i < words.len() {
        let w = words[i];
        let value = || {
            words
                .get(i + 1)
                .copied()
                .ok_or_else(|| cx.err(n, format!("`{w}` needs a value")))
        };
        let number = |v: &str| {
            v.parse::<u32>()
                .map_err(|_| cx.err(n, format!("`{w}` wants a number, found `{v}`")))
        };
        match w {
            "-r" | "--real-server" => {
                let v = value()?;
                addr = Some(socket_addr(v).ok_or_else(|| cx.err(n, format!("bad address `{v}`")))?);
                i += 2;
            }
            "-i" | "--ipip" => {
                forward = Some(Forward::Tunnel);
                i += 1;
            }
            "-g" | "--gatewaying" => {
                forward = Some(Forward::Route);
                i += 1;
            }
            "-m" | "--masquerading" => {
                forward = Some(Forward::Masq);
                i += 1;
            }
            "-w" | "--weight" => {
                server.weight = number(value()?)?;
                i += 2;
            }
            "-x" | "--u-threshold" => {
                server.upper_threshold = Some(number(value()?)?);
                i += 2;
            }
            "-y" | "--l-threshold" => {
                server.lower_threshold = Some(number(value()?)?);
                i += 2;
            }
            "--tun-type" => {
                server.tunnel_type = Some(value()?.to_string());
                i += 2;
            }
            "--tun-port" => {
                let v = value()?;
                let port = v
                    .parse::<u16>()
                    .map_err(|_| cx.err(n, format!("--tun-port wants a port, found `{v}`")))?;
                server.tunnel_port = Some(port);
                i += 2;
            }
            // Checksum options of GUE/GRE tunnels: kept out of the model.
            "--tun-nocsum" | "--tun-csum" | "--tun-remcsum" => i += 1,
            other => return Err(cx.err(n, format!("unknown server option `{other}`"))),
        }
    }
    server.addr = addr.ok_or_else(|| cx.err(n, "server line without -r"))?;
    // ipvsadm's default forwarding method is direct routing.
    server.forward = forward.unwrap_or(Forward::Route);
    Ok(server)
}

/// `ipvsadm -Ln` (with or without `--nosort`):
/// ```text
/// IP Virtual Server version 1.2.1 (size=4096)
/// Prot LocalAddress:Port Scheduler Flags
///   -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
/// TCP  172.25.67.100:80 rr persistent 360 mask 255.255.255.0
///   -> 172.25.67.2:80               Tunnel  1      0          5
/// ```
pub fn parse_list(text: &str, file: &str) -> Result<Rules, ParseError> {
    let cx = Lines { file };
    let mut rules = Rules::default();
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let line = raw.trim();
        if line.is_empty()
            || line.starts_with("IP Virtual Server")
            || line.starts_with("Prot LocalAddress")
            || line.starts_with("-> RemoteAddress")
        {
            if line.starts_with("Prot LocalAddress") && !line.ends_with("Scheduler Flags") {
                return Err(cx.err(
                    n,
                    "a listing with counters (--stats, --rate, --thresholds...) instead of rules",
                ));
            }
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        if words[0] == "->" {
            let svc = rules
                .services
                .last_mut()
                .ok_or_else(|| cx.err(n, "server line before any service"))?;
            svc.servers.push(list_server(&cx, n, &words[1..])?);
        } else {
            rules.services.push(list_service(&cx, n, &words)?);
        }
    }
    Ok(rules)
}

fn list_service(cx: &Lines, n: usize, words: &[&str]) -> Result<ServiceRule, ParseError> {
    let (service, rest) = match words[0] {
        "FWM" => {
            let v = words
                .get(1)
                .ok_or_else(|| cx.err(n, "FWM without a mark"))?;
            let mark = v
                .parse()
                .map_err(|_| cx.err(n, format!("bad firewall mark `{v}`")))?;
            let ipv6 = words.get(2) == Some(&"IPv6");
            let rest = if ipv6 { &words[3..] } else { &words[2..] };
            (VirtualService::FwMark { mark, ipv6 }, rest)
        }
        w => {
            let proto = Proto::from_table(w)
                .filter(|p| *p != Proto::Ip)
                .ok_or_else(|| cx.err(n, format!("expected TCP, UDP, SCTP or FWM, found `{w}`")))?;
            let v = words
                .get(1)
                .ok_or_else(|| cx.err(n, "service without an address"))?;
            let vip = socket_addr(v).ok_or_else(|| cx.err(n, format!("bad address `{v}`")))?;
            (VirtualService::Addr { proto, vip }, &words[2..])
        }
    };
    let scheduler = rest
        .first()
        .ok_or_else(|| cx.err(n, "service without a scheduler"))?;
    let mut rule = ServiceRule::new(service, scheduler);
    let mut i = 1;
    while i < rest.len() {
        let w = rest[i];
        let value = || {
            rest.get(i + 1)
                .copied()
                .ok_or_else(|| cx.err(n, format!("`{w}` needs a value")))
        };
        match w {
            "persistent" => {
                let v = value()?;
                rule.persistence = Some(
                    v.parse()
                        .map_err(|_| cx.err(n, format!("bad persistence timeout `{v}`")))?,
                );
                i += 2;
            }
            "mask" => {
                rule.netmask = Some(value()?.to_string());
                i += 2;
            }
            "pe" => {
                rule.persistence_engine = Some(value()?.to_string());
                i += 2;
            }
            "ops" => {
                rule.one_packet = true;
                i += 1;
            }
            // Scheduler flags, printed as `(sh-fallback,sh-port)`.
            w if w.starts_with('(') && w.ends_with(')') => {
                rule.sched_flags = w[1..w.len() - 1].split(',').map(str::to_string).collect();
                i += 1;
            }
            other => return Err(cx.err(n, format!("unknown service flag `{other}`"))),
        }
    }
    Ok(rule)
}

fn list_server(cx: &Lines, n: usize, words: &[&str]) -> Result<ServerRule, ParseError> {
    let [addr, forward, weight, active, inactive] = words else {
        return Err(cx.err(
            n,
            "expected `-> ADDRESS:PORT FORWARD WEIGHT ACTIVECONN INACTCONN`",
        ));
    };
    let number = |what: &str, v: &str| {
        v.parse::<u32>()
            .map_err(|_| cx.err(n, format!("{what} wants a number, found `{v}`")))
    };
    Ok(ServerRule {
        addr: socket_addr(addr).ok_or_else(|| cx.err(n, format!("bad address `{addr}`")))?,
        forward: match *forward {
            "Tunnel" => Forward::Tunnel,
            "Route" => Forward::Route,
            "Masq" => Forward::Masq,
            "Local" => Forward::Local,
            other => return Err(cx.err(n, format!("unknown forwarding method `{other}`"))),
        },
        weight: number("weight", weight)?,
        upper_threshold: None,
        lower_threshold: None,
        tunnel_type: None,
        tunnel_port: None,
        active_conns: Some(number("ActiveConn", active)?),
        inactive_conns: Some(number("InActConn", inactive)?),
    })
}

/// `ipvsadm -Lnc`:
/// ```text
/// IPVS connection entries
/// pro expire state       source             virtual            destination
/// TCP 01:57  FIN_WAIT    172.25.254.67:45678 172.25.67.100:80  172.25.67.3:80
/// ```
/// A persistence-engine column pair (`pe name`, `pe_data`) may follow; it is ignored.
pub fn parse_conns(text: &str, file: &str) -> Result<Vec<ConnEntry>, ParseError> {
    let mut conns = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let line = raw.trim();
        if line.is_empty()
            || line.starts_with("IPVS connection entries")
            || line.starts_with("pro ")
        {
            continue;
        }
        conns.push(parse_conn_line(line, file, n)?);
    }
    Ok(conns)
}

/// One entry line of `ipvsadm -Lnc` (trimmed, not a header); `file` and `n` (1-based) name it
/// in errors. Also read by [`super::director_state`], which finds the headers itself.
pub fn parse_conn_line(line: &str, file: &str, n: usize) -> Result<ConnEntry, ParseError> {
    let cx = Lines { file };
    let words: Vec<&str> = line.split_whitespace().collect();
    if words.len() < 6 {
        return Err(cx.err(n, "expected `PRO MM:SS STATE SOURCE VIRTUAL DESTINATION`"));
    }
    let proto = Proto::from_table(words[0])
        .ok_or_else(|| cx.err(n, format!("unknown protocol `{}`", words[0])))?;
    let expire_s = mm_ss(words[1])
        .ok_or_else(|| cx.err(n, format!("bad expiry `{}` (want MM:SS)", words[1])))?;
    let addr = |w: &str| {
        socket_addr(w).ok_or_else(|| {
            cx.err(
                n,
                format!("bad address `{w}` (numeric addresses only: ipvsadm -Lnc, with -n)"),
            )
        })
    };
    Ok(ConnEntry {
        proto,
        expire_s,
        state: words[2].to_string(),
        client: addr(words[3])?,
        vip: addr(words[4])?,
        rs: addr(words[5])?,
    })
}

fn mm_ss(s: &str) -> Option<u32> {
    let (m, sec) = s.split_once(':')?;
    let m: u32 = m.parse().ok()?;
    let sec: u32 = sec.parse().ok()?;
    (sec < 60).then_some(m * 60 + sec)
}

/// `1.2.3.4:80` or `[2001:db8::1]:80`; ipvsadm never prints a bare IPv6 address with a port.
pub(crate) fn socket_addr(s: &str) -> Option<SocketAddr> {
    if let Some(rest) = s.strip_prefix('[') {
        let (ip, port) = rest.split_once("]:")?;
        let ip: std::net::Ipv6Addr = ip.parse().ok()?;
        return Some(SocketAddr::new(IpAddr::V6(ip), port.parse().ok()?));
    }
    let (ip, port) = s.rsplit_once(':')?;
    let ip: std::net::Ipv4Addr = ip.parse().ok()?;
    Some(SocketAddr::new(IpAddr::V4(ip), port.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ipvsadm_complaining_about_root_is_not_rules() {
        let text = "\nCan't initialize ipvs: Permission denied (you must be root)\n";
        let e = parse_rules(text, "rules.txt").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.message.contains("run it as root"), "{e}");
    }

    #[test]
    fn save_form_of_the_tutorial() {
        // As ipvsadm 1.31 prints it (it names the tunnel type).
        let text = "-A -t 172.25.67.100:80 -s rr\n\
                    -a -t 172.25.67.100:80 -r 172.25.67.2:80 -i -w 1 --tun-type ipip\n\
                    -a -t 172.25.67.100:80 -r 172.25.67.3:80 -i -w 1 --tun-type ipip\n";
        let rules = parse_rules(text, "rules.txt").unwrap();
        assert_eq!(rules.services.len(), 1);
        let s = &rules.services[0];
        assert_eq!(
            s.service,
            VirtualService::Addr {
                proto: Proto::Tcp,
                vip: sa("172.25.67.100:80")
            }
        );
        assert_eq!(s.scheduler, "rr");
        assert_eq!(s.persistence, None);
        let addrs: Vec<_> = s.servers.iter().map(|r| r.addr).collect();
        assert_eq!(addrs, [sa("172.25.67.2:80"), sa("172.25.67.3:80")]);
        assert!(s
            .servers
            .iter()
            .all(|r| r.forward == Forward::Tunnel && r.weight == 1));
        assert_eq!(s.servers[0].active_conns, None);
        assert_eq!(s.servers[1].tunnel_type.as_deref(), Some("ipip"));
    }

    #[test]
    fn save_form_options_and_ipv6() {
        let text = "-A -u [2001:db8::10]:53 -s sh -b sh-port,sh-fallback -p 300 -M 64 ops\n\
                    -a -u [2001:db8::10]:53 -r [2001:db8::2]:53 -g -w 3 -x 100 -y 50\n\
                    -A -f 7 -s wlc\n\
                    -a -f 7 -r 10.0.0.2:0 -m -w 0\n\
                    -A -t 10.0.0.1:443\n\
                    -a -t 10.0.0.1:443 -r 10.0.0.5:443 -i --tun-type gue --tun-port 6080 -w 2\n";
        let rules = parse_save(text, "x").unwrap();
        let udp = &rules.services[0];
        assert_eq!(udp.vip(), Some(sa("[2001:db8::10]:53")));
        assert_eq!(udp.proto(), Some(Proto::Udp));
        assert_eq!(udp.sched_flags, ["sh-port", "sh-fallback"]);
        assert_eq!(udp.persistence, Some(300));
        assert_eq!(udp.netmask.as_deref(), Some("64"));
        assert!(udp.one_packet);
        let r = &udp.servers[0];
        assert_eq!(r.addr, sa("[2001:db8::2]:53"));
        assert_eq!(r.forward, Forward::Route);
        assert_eq!(
            (r.weight, r.upper_threshold, r.lower_threshold),
            (3, Some(100), Some(50))
        );
        let fw = &rules.services[1];
        assert_eq!(
            fw.service,
            VirtualService::FwMark {
                mark: 7,
                ipv6: false
            }
        );
        assert_eq!(fw.servers[0].forward, Forward::Masq);
        assert_eq!(fw.servers[0].weight, 0);
        let dflt = &rules.services[2];
        assert_eq!(dflt.scheduler, "wlc");
        assert_eq!(dflt.servers[0].tunnel_type.as_deref(), Some("gue"));
        assert_eq!(dflt.servers[0].tunnel_port, Some(6080));
        assert_eq!(dflt.servers[0].weight, 2);
        assert_eq!(rules.gue_ports(), [6080]);
    }

    #[test]
    fn save_form_errors_name_the_line() {
        let e = parse_save(
            "-A -t 1.2.3.4:80 -s rr\n-a -t 1.2.3.4:81 -r 1.1.1.1:80 -i\n",
            "r.txt",
        )
        .unwrap_err();
        assert_eq!((e.file.as_str(), e.line), ("r.txt", 2));
        assert_eq!(
            e.to_string(),
            "r.txt:2: server added before its service (-A)"
        );
        let e = parse_save("\n-A -t 1.2.3.4:80 -s rr --bogus\n", "r.txt").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.message.contains("--bogus"));
        let e = parse_save("-A -t 1.2.3.4 -s rr\n", "r.txt").unwrap_err();
        assert!(e.message.contains("bad address"));
        let e = parse_save("-a -t 1.2.3.4:80 -r 1.1.1.1:80 -w x\n", "r.txt").unwrap_err();
        assert!(e.message.contains("number") || e.message.contains("before its service"));
        assert!(parse_save("ipvsadm -A -t 1.2.3.4:80\n", "r").is_err());
        let e = parse_save(
            "-A -u 1.2.3.4:53 -s rr\n-A -t 1.2.3.4:53 -s rr\n-A -u 1.2.3.4:53 -s wlc\n",
            "r.txt",
        )
        .unwrap_err();
        assert_eq!((e.line, e.message.as_str()), (3, "service defined twice"));
    }

    /// Every -a finds its own -A among tens of thousands (by a map, not a scan of them all).
    #[test]
    fn save_form_with_many_services_keeps_each_servers_service() {
        let n: u16 = 20_000;
        let mut text = String::new();
        for p in 1..=n {
            text.push_str(&format!("-A -u 10.0.0.1:{p} -s rr\n"));
        }
        // Servers after all services, in reverse order: the server's last octet says whose.
        for p in (1..=n).rev() {
            let (hi, lo) = (p >> 8, p & 0xff);
            text.push_str(&format!(
                "-a -u 10.0.0.1:{p} -r 10.9.{hi}.{lo}:{p} -i -w 1\n"
            ));
        }
        let rules = parse_save(&text, "r.txt").unwrap();
        assert_eq!(rules.services.len(), usize::from(n));
        for (i, s) in rules.services.iter().enumerate() {
            let p = i as u16 + 1;
            assert_eq!(s.vip().unwrap().port(), p);
            assert_eq!(s.servers.len(), 1);
            let expected: SocketAddr = format!("10.9.{}.{}:{p}", p >> 8, p & 0xff).parse().unwrap();
            assert_eq!(s.servers[0].addr, expected);
        }
    }

    #[test]
    fn list_form_keeps_text_order_and_counters() {
        let text = "IP Virtual Server version 1.2.1 (size=4096)\n\
Prot LocalAddress:Port Scheduler Flags\n\
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n\
TCP  192.168.50.10:8080 wrr persistent 360 mask 255.255.255.0\n\
  -> 192.168.50.23:8080           Tunnel  1      0          4\n\
  -> 192.168.50.21:8080           Tunnel  3      2          10\n\
UDP  [2001:db8::10]:53 sh (sh-port)\n\
  -> [2001:db8::2]:53             Route   1      0          0\n\
FWM  3 IPv6 rr\n";
        let rules = parse_rules(text, "l").unwrap();
        assert_eq!(rules.services.len(), 3);
        let s = &rules.services[0];
        assert_eq!(s.scheduler, "wrr");
        assert_eq!(s.persistence, Some(360));
        assert_eq!(s.netmask.as_deref(), Some("255.255.255.0"));
        assert_eq!(s.servers[0].addr, sa("192.168.50.23:8080"));
        assert_eq!(s.servers[1].weight, 3);
        assert_eq!(s.servers[1].active_conns, Some(2));
        assert_eq!(s.servers[1].inactive_conns, Some(10));
        assert_eq!(rules.services[1].sched_flags, ["sh-port"]);
        assert_eq!(rules.services[1].servers[0].forward, Forward::Route);
        assert_eq!(
            rules.services[2].service,
            VirtualService::FwMark {
                mark: 3,
                ipv6: true
            }
        );
    }

    #[test]
    fn list_form_refuses_counters_and_bad_lines() {
        let stats = "IP Virtual Server version 1.2.1 (size=4096)\n\
Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes\n";
        let e = parse_rules(stats, "s").unwrap_err();
        assert_eq!(e.line, 2);
        let e = parse_list("TCP  1.2.3.4:80 rr\n  -> 1.1.1.1:80 Tunnel 1 0\n", "l").unwrap_err();
        assert_eq!(e.line, 2);
        let e = parse_list("  -> 1.1.1.1:80 Tunnel 1 0 0\n", "l").unwrap_err();
        assert!(e.message.contains("before any service"));
        let e = parse_list("TCP  1.2.3.4:80 rr\n  -> 1.1.1.1:80 Bridge 1 0 0\n", "l").unwrap_err();
        assert!(e.message.contains("Bridge"));
    }

    #[test]
    fn connection_table() {
        let text = "IPVS connection entries\n\
pro expire state       source             virtual            destination\n\
TCP 01:57  FIN_WAIT    172.25.254.67:45678 172.25.67.100:80   172.25.67.3:80\n\
TCP 14:59  ESTABLISHED 10.0.0.9:1024      10.0.0.1:80        10.0.0.2:80\n\
TCP 05:59  NONE        10.0.0.9:0         10.0.0.1:80        10.0.0.2:80\n\
TCP 01:59  ASSURED     10.0.0.8:0         10.0.0.1:80        10.0.0.3:80\n\
UDP 04:58  UDP         [2001:db8::9]:5353 [2001:db8::1]:53   [2001:db8::2]:53\n";
        let conns = parse_conns(text, "c").unwrap();
        assert_eq!(conns.len(), 5);
        assert_eq!(conns[0].proto, Proto::Tcp);
        assert_eq!(conns[0].expire_s, 117);
        assert_eq!(conns[0].state, "FIN_WAIT");
        assert_eq!(conns[0].client, sa("172.25.254.67:45678"));
        assert_eq!(conns[0].vip, sa("172.25.67.100:80"));
        assert_eq!(conns[0].rs, sa("172.25.67.3:80"));
        assert_eq!(conns[1].expire_s, 899);
        assert!(!conns[1].is_template());
        assert!(conns[2].is_template());
        assert!(conns[3].is_template());
        assert_eq!(conns[3].state, "ASSURED");
        assert_eq!(conns[4].proto, Proto::Udp);
        assert_eq!(conns[4].client, sa("[2001:db8::9]:5353"));
    }

    #[test]
    fn connection_table_errors() {
        let e =
            parse_conns("TCP 1:5x FIN_WAIT 1.1.1.1:1 2.2.2.2:80 3.3.3.3:80\n", "c").unwrap_err();
        assert_eq!((e.line, e.file.as_str()), (1, "c"));
        assert!(e.message.contains("expiry"));
        let e = parse_conns(
            "IPVS connection entries\nTCP 01:00 FIN_WAIT 1.1.1.1:1\n",
            "c",
        )
        .unwrap_err();
        assert_eq!(e.line, 2);
        let e = parse_conns("ICMP 01:00 X 1.1.1.1:1 2.2.2.2:80 3.3.3.3:80\n", "c").unwrap_err();
        assert!(e.message.contains("ICMP"));
        let e = parse_conns("TCP 01:00 X 1.1.1.1 2.2.2.2:80 3.3.3.3:80\n", "c").unwrap_err();
        assert!(e.message.contains("bad address"));
    }

    #[test]
    fn addresses() {
        assert_eq!(socket_addr("1.2.3.4:80"), Some(sa("1.2.3.4:80")));
        assert_eq!(socket_addr("[::1]:80"), Some(sa("[::1]:80")));
        assert_eq!(socket_addr("::1:80"), None);
        assert_eq!(socket_addr("1.2.3.4:99999"), None);
        assert_eq!(socket_addr("[1.2.3.4]:80"), None);
    }
}
