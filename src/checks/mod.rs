//! One module per check, each turning the connection records and the topology into a
//! [`CheckResult`] with evidence. A check's id names its module: `reply.source` lives in
//! `checks/reply.rs`, `tunnel.delivery` in `checks/tunnel/delivery.rs`, `capture.snaplen`
//! in `checks/capture/snaplen.rs`. The `capture.*` checks judge the captures, never the
//! deployment; the checks that conclude from a missing packet ask them first whether the
//! capture could have shown it ([`capture::Sight`]).
//!
//! A check needs nothing but the [`Analysis`] (topology, clock offsets, the read outcome of each
//! capture) and the connection records, which it sees one at a time ([`ConnectionChecks`]) as
//! the analysis hands them on: it keeps counts and a few examples, never the connections, so
//! `verify` does not hold them. When the captures given cannot show what a check looks at (no
//! capture from any real server, say), the check is skipped and says why.

pub mod affected;
pub mod arp;
pub mod bypass;
pub mod capture;
pub mod classify;
pub mod director_state;
pub mod drain;
pub mod failover;
pub mod finding;
pub mod health;
pub mod mtu;
pub mod oddities;
pub mod reply;
pub mod syn;
pub mod topology;
pub mod tunnel;
pub mod verdict;

use std::net::IpAddr;

pub use affected::{Affected, Examples, Explained, FilterParts};
pub use finding::{CheckResult, Finding, PacketRef, SnapshotLine, Status, MAX_EVIDENCE};

use crate::flows::{Analysis, Connection, Leg};
use crate::time::rfc3339_ns;
use crate::topology::{FrameRef, MacAddr, Role};
use std::borrow::Cow;

/// What the checks read.
pub struct Context<'a> {
    pub analysis: &'a Analysis,
    /// [`Context::director_macs`], gathered once: classifying a connection reads them, and
    /// gathering them anew was an allocation per connection.
    director_macs: Cow<'a, [MacAddr]>,
}

impl<'a> Context<'a> {
    pub fn new(analysis: &'a Analysis) -> Context<'a> {
        let director_macs = Cow::Owned(analysis.topology.director_macs());
        Context {
            analysis,
            director_macs,
        }
    }

    /// A context for one more connection of a run whose director MACs
    /// ([`crate::topology::Topology::director_macs`]) the caller keeps.
    pub fn with_director_macs(analysis: &'a Analysis, director_macs: &'a [MacAddr]) -> Context<'a> {
        Context {
            analysis,
            director_macs: Cow::Borrowed(director_macs),
        }
    }

    /// The file a frame reference points into.
    pub fn file(&self, frame: &FrameRef) -> String {
        self.analysis
            .captures
            .iter()
            .find(|c| c.capture == frame.capture)
            .map(|c| c.file.clone())
            .unwrap_or_else(|| format!("capture #{}", frame.capture))
    }

    /// A packet as evidence: file, Wireshark frame number, the capture's own time, a summary.
    pub fn packet(&self, frame: &FrameRef, summary: impl Into<String>) -> PacketRef {
        PacketRef {
            file: self.file(frame),
            frame: frame.frame,
            time: rfc3339_ns(frame.ts_ns),
            summary: summary.into(),
        }
    }

    /// Whether any capture was taken in this role.
    pub fn has_role(&self, role: Role) -> bool {
        self.analysis
            .topology
            .vantages
            .iter()
            .any(|v| v.role == role)
    }

    /// Host name for messages: the address, with its MAC when the topology knows one.
    pub fn host(&self, addr: IpAddr) -> String {
        let topo = &self.analysis.topology;
        let macs = topo
            .real_servers
            .iter()
            .chain(topo.directors.iter())
            .find(|h| h.addr == addr)
            .map(|h| &h.macs);
        match macs.and_then(|m| m.first()) {
            Some(mac) => format!("{addr} ({mac})"),
            None => addr.to_string(),
        }
    }

    /// The host a capture was taken on, for messages: its address when known, its MAC, and
    /// the file.
    pub fn vantage_host(&self, id: crate::topology::VantageId) -> String {
        let file = self.file(&FrameRef {
            capture: id.capture,
            interface: id.interface,
            frame: 0,
            ts_ns: 0,
        });
        match self.analysis.topology.vantage(id) {
            Some(v) => match (v.address, v.local_mac) {
                (Some(a), Some(m)) => format!("{a} ({m})"),
                (Some(a), None) => format!("{a} (captured in {file})"),
                (None, Some(m)) => format!("the host with MAC {m} (captured in {file})"),
                (None, None) => format!("the host captured in {file}"),
            },
            None => format!("the host captured in {file}"),
        }
    }

    /// The MACs the director uses: from its tunnelled packets, or from a capture taken on it.
    pub fn director_macs(&self) -> &[MacAddr] {
        &self.director_macs
    }

    /// The address a MAC belongs to, when the captures say (a real server's MAC, or ARP).
    pub fn address_of_mac(&self, mac: crate::topology::MacAddr) -> Option<IpAddr> {
        self.analysis.topology.address_of_mac(mac)
    }

    /// The forwarding method the rules give a real server (`tunnel`, `route`, `masq`), when
    /// rules were given and list it.
    pub fn forwarding_in_rules(&self, rs: IpAddr) -> Option<&str> {
        self.analysis
            .expected
            .iter()
            .flat_map(|s| s.real_servers.iter())
            .find(|r| r.addr == rs)
            .map(|r| r.forwarding.as_str())
    }

    /// The rules line that gives a real server its forwarding method, in `ipvsadm -Sn` form.
    pub fn rules_line(&self, rs: IpAddr) -> Option<String> {
        self.analysis.expected.iter().find_map(|svc| {
            let r = svc.real_servers.iter().find(|r| r.addr == rs)?;
            let flag = match r.forwarding.as_str() {
                "route" => "-g",
                "masq" => "-m",
                "tunnel" => "-i",
                _ => return None,
            };
            let proto = if svc.service.proto == crate::topology::Proto::UDP {
                "-u"
            } else {
                "-t"
            };
            let join = |a: IpAddr, p: u16| std::net::SocketAddr::new(a, p).to_string();
            let service = match svc.mark {
                Some(m) => format!("-f {m}"),
                None => format!("{proto} {}", join(svc.service.vip, svc.service.port)),
            };
            Some(format!("-a {service} -r {} {flag}", join(r.addr, r.port)))
        })
    }

    /// The VIP for a fix's command line: the one VIP, or a placeholder with several.
    pub fn vip_text(&self) -> String {
        match self.analysis.topology.vips.as_slice() {
            [one] => one.addr.to_string(),
            _ => "VIP".into(),
        }
    }

    /// The one VIP, else `fallback` (for choosing a family when several VIPs leave it open).
    pub fn vip_or(&self, fallback: IpAddr) -> IpAddr {
        match self.analysis.topology.vips.as_slice() {
            [one] => one.addr,
            _ => fallback,
        }
    }

    /// How the director wraps requests for a real server: as the traffic shows it, else as
    /// the rules say (`--tun-type`, `--tun-port`, which also give a GUE tunnel its port).
    pub fn encap(&self, rs: IpAddr) -> Option<crate::topology::encap::Encap> {
        let ruled = self.analysis.expected.iter().find_map(|s| {
            let r = s.real_servers.iter().find(|r| r.addr == rs)?;
            (r.forwarding == "tunnel").then(|| {
                crate::topology::encap::Encap::from_rules(
                    r.tunnel_type.as_deref(),
                    r.tunnel_port,
                    rs,
                    s.service.vip,
                )
            })
        });
        match (self.analysis.topology.tunnels.get(&rs).copied(), ruled) {
            (Some(mut seen), Some(r)) => {
                if seen.is_gue() && seen.gue_port.is_none() {
                    seen.gue_port = r.gue_port;
                }
                Some(seen)
            }
            (seen, r) => seen.or(r),
        }
    }

    /// The tunnel of the first real server the traffic shows one to (one deployment uses one
    /// kind): what the fixes that speak of the whole deployment word themselves by.
    pub fn first_encap(&self) -> Option<crate::topology::encap::Encap> {
        self.analysis
            .topology
            .tunnels
            .keys()
            .find_map(|a| self.encap(*a))
    }

    /// Whether the (one) VIP is an IPv6 address: fixes then use `ip -6`, ip6tables, ND.
    pub fn vip_is_v6(&self) -> bool {
        matches!(self.analysis.topology.vips.as_slice(), [one] if one.addr.is_ipv6())
    }

    /// The tunnel name of the real servers (`IP-in-IP`, `GUE (UDP port 6080)`...; joined with
    /// "or" when they differ; IP-in-IP, the default, when no tunnelled packet was seen).
    pub fn tunnel_name(&self) -> String {
        let mut names: Vec<String> = self
            .analysis
            .topology
            .tunnels
            .keys()
            .filter_map(|a| self.encap(*a))
            .map(|e| e.name())
            .collect();
        names.sort();
        names.dedup();
        if names.is_empty() {
            return "IP-in-IP".into();
        }
        names.join(" or ")
    }

    /// The legs of a connection seen at vantage points of a role.
    pub fn legs_at<'c>(&self, conn: &'c Connection, role: Role) -> impl Iterator<Item = &'c Leg> {
        conn.legs.iter().filter(move |l| l.role == role)
    }
}

/// The checks that read connections, fed one connection at a time as the analysis hands them
/// on: what they keep is counts and a few examples, never the connections.
pub struct ConnectionChecks {
    /// Which captures cannot prove an absence ([`capture::Sight`]), as known before the first
    /// connection; completed from `watch` at the end.
    sight: capture::Sight,
    watch: capture::Watch,
    encapsulation: tunnel::Encapsulation,
    delivery: tunnel::Delivery,
    present: reply::Present,
    source: reply::Source,
    direct: reply::Direct,
    bypass: bypass::Bypass,
    mtu: mtu::Mtu,
    health_path: health::Path,
    failover: failover::Failover,
    drain: drain::Drain,
    syn_drop: syn::SynDrop,
}

impl ConnectionChecks {
    /// `ctx` as the analysis knows it before the first connection (topology, clocks).
    pub fn new(ctx: &Context) -> ConnectionChecks {
        ConnectionChecks {
            sight: capture::Sight::before(ctx),
            watch: capture::Watch::default(),
            encapsulation: tunnel::Encapsulation::new(ctx),
            delivery: tunnel::Delivery::new(ctx),
            present: reply::Present::default(),
            source: reply::Source::default(),
            direct: reply::Direct::default(),
            bypass: bypass::Bypass::default(),
            mtu: mtu::Mtu::default(),
            health_path: health::Path::default(),
            failover: failover::Failover::new(ctx),
            drain: drain::Drain::default(),
            syn_drop: syn::SynDrop::default(),
        }
    }

    /// Classifies the connection once ([`classify::classify`]) and shows it, with that one
    /// classification, to every check: so that their findings tell one story.
    pub fn observe(&mut self, ctx: &Context, conn: &Connection) {
        let class = classify::classify(ctx, conn);
        self.observe_classified(ctx, conn, &class);
    }

    /// [`ConnectionChecks::observe`] with the classification already made (by a caller that
    /// needs it too).
    pub fn observe_classified(
        &mut self,
        ctx: &Context,
        conn: &Connection,
        class: &classify::Class,
    ) {
        self.watch.observe(ctx, conn, class);
        self.encapsulation.observe(ctx, conn, class, &self.sight);
        self.delivery.observe(ctx, conn, &self.sight);
        self.present.observe(ctx, conn, class);
        self.source.observe(ctx, conn, class);
        self.direct.observe(ctx, conn, class);
        self.bypass.observe(ctx, conn, class);
        self.mtu.observe(ctx, conn, class);
        self.health_path.observe(ctx, conn, class);
        self.failover.observe(ctx, conn);
        self.drain.observe(ctx, conn, class);
        self.syn_drop.observe(ctx, conn, &self.sight);
    }

    /// Every check's result, in report order, with `ctx` the finished analysis and `drained`
    /// how the director placed the new connections of the services with a server out of the
    /// rotation (the scheduler replay works it out: [`drain`]).
    pub fn finish(self, ctx: &Context, drained: &[drain::ServicePlacements]) -> Vec<CheckResult> {
        let mut sight = self.sight;
        sight.confirm(ctx, &self.watch);
        vec![
            capture::read::check(ctx),
            capture::filter::check(ctx, &self.watch),
            capture::snaplen::check(ctx),
            capture::drops::check(ctx),
            capture::time::check(ctx),
            self.encapsulation.finish(ctx, &sight),
            self.delivery.finish(ctx, &sight),
            self.present.finish(ctx),
            self.source.finish(ctx),
            self.direct.finish(ctx),
            arp::vip(ctx),
            self.bypass.finish(ctx),
            self.mtu.finish(ctx),
            self.drain.finish(ctx, drained),
            oddities::check(ctx),
            self.health_path.finish(ctx),
            self.failover.finish(ctx),
            self.syn_drop.finish(ctx),
            topology::check(ctx),
        ]
    }
}

/// `ip.addr` or `ipv6.addr`.
pub fn ip_field(addr: IpAddr) -> &'static str {
    match addr {
        IpAddr::V4(_) => "ip.addr",
        IpAddr::V6(_) => "ipv6.addr",
    }
}

/// "4 of 12" style counts.
pub fn of(n: usize, total: usize) -> String {
    format!("{n} of {total}")
}
