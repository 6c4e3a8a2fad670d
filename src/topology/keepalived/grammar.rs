//! The blocks of keepalived's configuration that make IPVS rules, as its keyword handlers in
//! keepalived/check/check_parser.c read them (`init_check_keywords`), into plain objects;
//! [`super::services`] then applies `validate_check_config` and makes the rules.

use std::net::IpAddr;

use super::lexer::{Lexed, Line};
use super::model::{At, Entry, Family, Group, Key, Method, Parsed, Server, Vs};
use super::values::{addr_port, extra, forwarding, group_entry, number, ranged, truth};
use crate::escape::printable;
use crate::topology::rules::{ParseError, Proto};

/// The `lvs_schedulers` keepalived accepts.
const SCHEDULERS: [&str; 14] = [
    "rr", "wrr", "lc", "wlc", "lblc", "sh", "mh", "dh", "fo", "ovf", "lblcr", "sed", "nq", "twos",
];
/// `install_checkers_keyword`: blocks skipped whole.
const CHECKERS: [&str; 10] = [
    "MISC_CHECK",
    "SMTP_CHECK",
    "TCP_CHECK",
    "PING_CHECK",
    "UDP_CHECK",
    "HTTP_GET",
    "SSL_GET",
    "DNS_CHECK",
    "FILE_CHECK",
    "BFD_CHECK",
];
/// Keywords of `virtual_server` that only steer health checking, alerts and quorum: read by
/// keepalived, nothing to do with the IPVS rules.
const VS_OTHER: [&str; 14] = [
    "retry",
    "delay_before_retry",
    "warmup",
    "connect_timeout",
    "delay_loop",
    "ha_suspend",
    "smtp_alert",
    "virtualhost",
    "snmp_name",
    "omega",
    "quorum_up",
    "quorum_down",
    "quorum",
    "hysteresis",
];
/// The same for `real_server`.
const RS_OTHER: [&str; 10] = [
    "notify_up",
    "notify_down",
    "retry",
    "delay_before_retry",
    "warmup",
    "connect_timeout",
    "delay_loop",
    "smtp_alert",
    "virtualhost",
    "snmp_name",
];

pub(super) fn parse(lx: &Lexed) -> Result<Parsed, ParseError> {
    let mut cur = Cursor { lx, i: 0 };
    let mut out = Parsed::default();
    while let Some(l) = cur.next() {
        match l.words[0].as_str() {
            "}" => return Err(cur.err(l, "`}` closes no block (unbalanced braces)")),
            "{" => return Err(cur.err(l, "`{` without a keyword before it")),
            "virtual_server" | "virtual_server_group" if l.conditional => {
                return Err(cur.err(l, conditional(&l.words[0])))
            }
            "virtual_server" => {
                let vs = cur.virtual_server(l)?;
                out.vs.push(vs);
            }
            "virtual_server_group" => {
                let group = cur.group(l)?;
                if let Some(g) = out.groups.iter().find(|g| g.name == group.name) {
                    return Err(cur.err(
                        l,
                        format!(
                            "virtual_server_group {} is defined twice (first at {})",
                            printable(&group.name, 80),
                            cur.place(g.at)
                        ),
                    ));
                }
                out.groups.push(group);
            }
            kw => {
                let global = kw == "global_defs";
                cur.skip(l, |inner| {
                    if global && inner.words[0] == "nftables_ipvs" {
                        out.nftables_ipvs = Some(at(inner));
                    }
                })?;
            }
        }
    }
    Ok(out)
}

fn at(l: &Line) -> At {
    At {
        file: l.file,
        line: l.line,
    }
}

fn conditional(block: &str) -> String {
    format!(
        "a line conditional on keepalived's config id (`@ID`: -i, the director's host name by \
         default) in or around {block}: whether keepalived reads it, the file does not say; \
         give `ipvsadm -Sn` from the director instead"
    )
}

struct Cursor<'a> {
    lx: &'a Lexed,
    i: usize,
}

impl<'a> Cursor<'a> {
    fn next(&mut self) -> Option<&'a Line> {
        let l = self.lx.lines.get(self.i)?;
        self.i += 1;
        Some(l)
    }

    fn err(&self, l: &Line, message: impl Into<String>) -> ParseError {
        ParseError {
            file: self.lx.files[l.file].clone(),
            line: l.line,
            message: message.into(),
        }
    }

    fn place(&self, at: At) -> String {
        format!("{}:{}", self.lx.files[at.file], at.line)
    }

    /// The `{` that must follow a block keyword.
    fn open(&mut self, head: &Line) -> Result<(), ParseError> {
        match self.next() {
            Some(l) if l.words[0] == "{" && l.words.len() == 1 => {
                if l.conditional {
                    return Err(self.err(l, conditional(&head.words[0])));
                }
                Ok(())
            }
            _ => Err(self.err(
                head,
                format!("`{{` expected after {}", printable(&head.words[0], 40)),
            )),
        }
    }

    /// `r`, or its error at line `l`.
    fn on<T>(&self, l: &Line, r: Result<T, String>) -> Result<T, ParseError> {
        r.map_err(|m| self.err(l, m))
    }

    /// Whether the next line is a `{`.
    fn block_follows(&self) -> bool {
        self.lx.lines.get(self.i).is_some_and(|l| l.words[0] == "{")
    }

    /// The next line of the block `head` opened; None at its `}`.
    fn inner(&mut self, head: &Line) -> Result<Option<&'a Line>, ParseError> {
        let Some(l) = self.next() else {
            return Err(self.err(
                head,
                format!(
                    "the block of {} is not closed: `}}` missing (unbalanced braces)",
                    printable(&head.words[0], 40)
                ),
            ));
        };
        if l.conditional {
            return Err(self.err(l, conditional(&head.words[0])));
        }
        match l.words[0].as_str() {
            "}" => Ok(None),
            "{" => Err(self.err(l, "`{` without a keyword before it")),
            _ => Ok(Some(l)),
        }
    }

    /// Skips a keyword keepalived's checker does not act on, with its block when the next line
    /// opens one (`skip_sublevel` in `process_stream`); `seen` gets the block's own lines.
    fn skip(&mut self, head: &Line, mut seen: impl FnMut(&Line)) -> Result<(), ParseError> {
        if !self.block_follows() {
            return Ok(());
        }
        let mut depth = 0usize;
        while let Some(l) = self.next() {
            let brace = matches!(l.words[0].as_str(), "{" | "}");
            if brace && (l.conditional || head.conditional) {
                return Err(self.err(l, conditional(&head.words[0])));
            }
            match l.words[0].as_str() {
                "{" => depth += 1,
                "}" => {
                    depth -= 1;
                    if depth == 0 {
                        return Ok(());
                    }
                }
                _ if depth == 1 => seen(l),
                _ => {}
            }
        }
        Err(self.err(
            head,
            format!(
                "the block of {} is not closed: `}}` missing (unbalanced braces)",
                printable(&head.words[0], 40)
            ),
        ))
    }

    /// `vs_handler` and the keywords of its level, then `vs_end_handler`.
    fn virtual_server(&mut self, head: &Line) -> Result<Vs, ParseError> {
        let w = &head.words;
        let key = match (w.get(1).map(String::as_str), w.get(2), w.len()) {
            (None, ..) => {
                return Err(self.err(
                    head,
                    "virtual_server wants an address and a port, `fwmark N` or `group NAME`",
                ))
            }
            (.., n) if n > 3 => return Err(self.err(head, extra(&w[3]))),
            (Some("group"), Some(name), _) => Key::Group(name.clone()),
            (Some("group"), None, _) => {
                return Err(self.err(head, "virtual_server group wants the group's name"))
            }
            (Some("fwmark"), mark, _) => {
                let mark = mark.map(String::as_str).unwrap_or("");
                match number(mark, 1, u64::from(u32::MAX)) {
                    Some(m) => Key::Fwmark(m as u32),
                    None => {
                        return Err(self.err(
                            head,
                            format!(
                                "firewall mark `{}`: 1 to {} (keepalived takes 0 for no mark)",
                                printable(mark, 40),
                                u32::MAX
                            ),
                        ))
                    }
                }
            }
            (Some(addr), port, _) => {
                let (ip, port) = self.on(head, addr_port(addr, port))?;
                Key::Addr(ip, port)
            }
        };
        let mut vs = Vs {
            at: at(head),
            af: match key {
                Key::Addr(ip, _) => Some(Family::of(ip)),
                _ => None,
            },
            key,
            sched: None,
            flags: 0,
            ops: false,
            fwd: None,
            persistence: None,
            granularity: None,
            engine: None,
            proto: None,
            weight: 1,
            alpha: false,
            inhibit: false,
            sorry: None,
            sorry_inhibit: false,
            servers: Vec::new(),
        };
        self.open(head)?;
        while let Some(l) = self.inner(head)? {
            self.vs_keyword(&mut vs, l)?;
        }
        self.vs_end(&mut vs)?;
        Ok(vs)
    }

    fn vs_keyword(&mut self, vs: &mut Vs, l: &'a Line) -> Result<(), ParseError> {
        let w = &l.words;
        let kw = w[0].as_str();
        let arg = w.get(1).map(String::as_str);
        let need = |cx: &Self| arg.ok_or_else(|| cx.err(l, format!("{kw} needs a value")));
        match kw {
            "real_server" => {
                let rs = self.real_server(vs, l)?;
                vs.servers.push(rs);
            }
            "ip_family" => {
                let af = match need(self)? {
                    "inet" => Family::Inet,
                    "inet6" => Family::Inet6,
                    other => {
                        return Err(self.err(
                            l,
                            format!("ip_family `{}`: inet or inet6", printable(other, 40)),
                        ))
                    }
                };
                if vs.af.is_some_and(|f| f != af) {
                    return Err(self.err(
                        l,
                        "ip_family conflicts with the family of the service's addresses",
                    ));
                }
                vs.af = Some(af);
            }
            "lb_algo" | "lvs_sched" => {
                let s = need(self)?;
                if !SCHEDULERS.contains(&s) {
                    return Err(self.err(
                        l,
                        format!(
                            "unknown scheduler `{}` (keepalived knows {})",
                            printable(s, 40),
                            SCHEDULERS.join(", ")
                        ),
                    ));
                }
                vs.sched = Some(s.to_string());
            }
            "ops" => vs.ops = true,
            "flag-1" => vs.flags |= 1,
            "flag-2" => vs.flags |= 2,
            "flag-3" => vs.flags |= 4,
            // `lbflags_handler` reads these only for the scheduler set so far, and ignores
            // them otherwise.
            "sh-port" | "sh-fallback" | "mh-port" | "mh-fallback" => {
                let wanted = &kw[..2];
                if vs.sched.as_deref() != Some(wanted) {
                    return Err(self.err(
                        l,
                        format!(
                            "keepalived ignores {kw} unless `lvs_sched {wanted}` comes before it"
                        ),
                    ));
                }
                vs.flags |= if kw.ends_with("fallback") { 1 } else { 2 };
            }
            "hashed" => {}
            "lb_kind" | "lvs_method" => vs.fwd = Some(self.on(l, forwarding(&l.words))?),
            "persistence_timeout" => {
                vs.persistence = Some(match arg {
                    // `pto_handler`: the keyword alone is IPVS's default, 6 minutes.
                    None => 360,
                    Some(v) => self.on(l, ranged(kw, v, 1, 86400 * 31))?,
                });
            }
            "persistence_granularity" => self.granularity(vs, l, need(self)?)?,
            "persistence_engine" => {
                let pe = need(self)?;
                if pe.len() > 16 {
                    return Err(self.err(l, "persistence_engine: at most 16 characters"));
                }
                vs.engine = Some(pe.to_string());
            }
            "protocol" => {
                let p = need(self)?;
                vs.proto = Some(match p.to_ascii_uppercase().as_str() {
                    "TCP" => Proto::Tcp,
                    "UDP" => Proto::Udp,
                    "SCTP" => Proto::Sctp,
                    _ => {
                        return Err(self.err(
                            l,
                            format!("protocol `{}`: TCP, UDP or SCTP", printable(p, 40)),
                        ))
                    }
                });
            }
            "weight" => vs.weight = self.on(l, ranged(kw, need(self)?, 1, i32::MAX as u32))?,
            "alpha" => vs.alpha = true,
            "inhibit_on_failure" => vs.inhibit = true,
            "sorry_server" => {
                let (addr, port) = self.on(l, addr_port(need(self)?, w.get(2)))?;
                if let Some(x) = w.get(3) {
                    return Err(self.err(l, extra(x)));
                }
                vs.sorry = Some(Server {
                    fwd: vs.fwd,
                    ..server(l, addr, port)
                });
            }
            "sorry_server_inhibit" | "sorry_server_lvs_method" => {
                if vs.sorry.is_none() {
                    return Err(self.err(l, format!("{kw} before any sorry_server")));
                }
                if kw == "sorry_server_inhibit" {
                    vs.sorry_inhibit = true;
                } else {
                    let fwd = self.on(l, forwarding(&l.words))?;
                    if let Some(s) = vs.sorry.as_mut() {
                        s.fwd = Some(fwd);
                    }
                }
            }
            kw if VS_OTHER.contains(&kw) => {}
            kw => return Err(self.err(l, unknown(kw, "virtual_server"))),
        }
        Ok(())
    }

    /// `pgr_handler`: a netmask for IPv4, a prefix length for IPv6; it also makes the service
    /// persistent (6 minutes) when it is not yet.
    fn granularity(&self, vs: &mut Vs, l: &Line, v: &str) -> Result<(), ParseError> {
        let af = vs.af.unwrap_or(if v.contains('.') {
            Family::Inet
        } else {
            Family::Inet6
        });
        let mask = match af {
            Family::Inet6 => self
                .on(l, ranged("persistence_granularity", v, 1, 128))?
                .to_string(),
            Family::Inet => v
                .parse::<std::net::Ipv4Addr>()
                .map_err(|_| {
                    self.err(
                        l,
                        format!(
                            "persistence_granularity `{}`: an IPv4 netmask",
                            printable(v, 40)
                        ),
                    )
                })?
                .to_string(),
        };
        vs.granularity = Some(mask);
        vs.af.get_or_insert(af);
        vs.persistence.get_or_insert(360);
        Ok(())
    }

    /// `rs_handler`, the keywords of its level, `rs_end_handler`.
    fn real_server(&mut self, vs: &mut Vs, head: &'a Line) -> Result<Server, ParseError> {
        let w = &head.words;
        let addr = w
            .get(1)
            .ok_or_else(|| self.err(head, "real_server wants an address and a port"))?;
        let (addr, port) = self.on(head, addr_port(addr, w.get(2)))?;
        if let Some(x) = w.get(3) {
            return Err(self.err(head, extra(x)));
        }
        let mut rs = Server {
            fwd: vs.fwd,
            ..server(head, addr, port)
        };
        self.open(head)?;
        while let Some(l) = self.inner(head)? {
            let w = &l.words;
            let kw = w[0].as_str();
            let need = |cx: &Self| {
                w.get(1)
                    .map(String::as_str)
                    .ok_or_else(|| cx.err(l, format!("{kw} needs a value")))
            };
            match kw {
                "weight" => {
                    rs.weight = Some(self.on(l, ranged(kw, need(self)?, 0, i32::MAX as u32))?)
                }
                "lvs_method" => rs.fwd = Some(self.on(l, forwarding(&l.words))?),
                "uthreshold" => rs.upper = Some(self.on(l, ranged(kw, need(self)?, 0, u32::MAX))?),
                "lthreshold" => rs.lower = Some(self.on(l, ranged(kw, need(self)?, 0, u32::MAX))?),
                "inhibit_on_failure" => rs.inhibit = Some(self.on(l, truth(&l.words))?),
                "alpha" => rs.alpha = Some(self.on(l, truth(&l.words))?),
                kw if CHECKERS.contains(&kw) => {
                    if !self.block_follows() {
                        return Err(self.err(l, format!("`{{` expected after {kw}")));
                    }
                    self.skip(l, |_| {})?;
                }
                kw if RS_OTHER.contains(&kw) => {}
                kw => return Err(self.err(l, unknown(kw, "real_server"))),
            }
        }
        // Tunnelled servers may be of the other family; the others set the service's or must
        // match it (keepalived skips the server otherwise).
        if rs.fwd.map(|f| f.method) != Some(Method::Tun) {
            let af = Family::of(rs.addr);
            if *vs.af.get_or_insert(af) != af {
                return Err(self.err(
                    head,
                    "the real server's address family differs from the service's (keepalived \
                     skips such a server unless it is tunnelled)",
                ));
            }
        }
        Ok(rs)
    }

    /// `vs_end_handler`: the family of the sorry server, and of a firewall-mark service from
    /// its servers when nothing else said it.
    fn vs_end(&self, vs: &mut Vs) -> Result<(), ParseError> {
        if vs.servers.is_empty() {
            return Ok(());
        }
        if let Some(s) = &vs.sorry {
            if s.fwd.map(|f| f.method) != Some(Method::Tun) {
                let af = Family::of(s.addr);
                if *vs.af.get_or_insert(af) != af {
                    return Err(ParseError {
                        file: self.lx.files[s.at.file].clone(),
                        line: s.at.line,
                        message: "the sorry server's address family differs from the \
                                  service's (keepalived skips it)"
                            .into(),
                    });
                }
            }
        }
        if vs.af.is_none() && !matches!(vs.key, Key::Group(_)) {
            // All servers tunnelled: their family if they agree, IPv4 otherwise.
            let mut families = vs.sorry.iter().chain(&vs.servers).map(|s| s.addr);
            let first = families.next().map(Family::of);
            let mixed = families.any(|a| Some(Family::of(a)) != first);
            vs.af = Some(if mixed {
                Family::Inet
            } else {
                first.unwrap_or(Family::Inet)
            });
        }
        Ok(())
    }

    /// `vsg_handler` and `alloc_vsg_entry` for each line of the block.
    fn group(&mut self, head: &Line) -> Result<Group, ParseError> {
        let name = head
            .words
            .get(1)
            .ok_or_else(|| self.err(head, "virtual_server_group wants a name"))?;
        if let Some(x) = head.words.get(2) {
            return Err(self.err(head, extra(x)));
        }
        let mut group = Group {
            at: at(head),
            name: name.clone(),
            entries: Vec::new(),
        };
        self.open(head)?;
        while let Some(l) = self.inner(head)? {
            let entry = self.on(l, group_entry(&l.words))?;
            group.entries.push(entry);
        }
        if group.entries.is_empty() {
            return Err(self.err(
                head,
                "virtual_server_group without entries (keepalived drops it)",
            ));
        }
        let has = |f: Family| {
            group.entries.iter().any(|e| match e {
                Entry::Addrs { first, .. } => Family::of(*first) == f,
                Entry::Fwmark { family, .. } => *family == Some(f),
            })
        };
        let bare_mark = group
            .entries
            .iter()
            .any(|e| matches!(e, Entry::Fwmark { family: None, .. }));
        if has(Family::Inet) && has(Family::Inet6) && bare_mark {
            return Err(self.err(
                head,
                "a virtual_server_group with IPv4, IPv6 and a fwmark without `inet`/`inet6` \
                 (keepalived drops it)",
            ));
        }
        Ok(group)
    }
}

fn server(l: &Line, addr: IpAddr, port: u16) -> Server {
    Server {
        at: at(l),
        addr,
        port,
        fwd: None,
        weight: None,
        upper: None,
        lower: None,
        alpha: None,
        inhibit: None,
    }
}

fn unknown(kw: &str, block: &str) -> String {
    format!(
        "unknown keyword `{}` in {block}: keepalived logs \"Unknown keyword\" and ignores it, so \
         what it sets up is not what this line asks for (a misspelt lvs_method leaves NAT); \
         correct it, or give `ipvsadm -Sn` from the director",
        printable(kw, 40)
    )
}
