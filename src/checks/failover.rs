//! `failover`: two directors in a keepalived (VRRP) pair, the master dying and the backup
//! taking over. The timeline comes from the captures: who advertised the virtual router with
//! which priority from when to when (VRRP), who announced the VIP (gratuitous ARP), who
//! forwarded (tunnelled packets), and what the IPVS sync daemon sent (224.0.0.81:8848).
//!
//! Fails when connections established before the switch did not go on through the new
//! master (it reset them, or sent them nowhere), when the new master's capture shows no sync
//! message although it took over connections in flight, and when clients kept sending to the
//! old master's MAC after the switch (no gratuitous ARP reached them).

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};

use super::{CheckResult, Context, Finding, PacketRef, Status, MAX_EVIDENCE};
use crate::flows::clock::offset_of;
use crate::flows::{Connection, EvidenceKind, Outcome};
use crate::topology::{FrameRef, MacAddr, Proto, Role, VantageId};
use crate::words::plural;

pub const ID: &str = "failover";
/// Packets to the old master's MAC up to this long after the switch are those already on the
/// way, or sent before the gratuitous ARP arrived.
const GARP_GRACE_NS: i64 = 1_000_000_000;

/// One router (director) as the captures show it, times by the reference clock.
#[derive(Debug, Clone)]
struct Router {
    addr: IpAddr,
    mac: Option<MacAddr>,
    /// The VRRP virtual router and priority of its last advertisement; None without VRRP.
    vrrp: Option<(u8, u8)>,
    adverts: u64,
    first: (i64, FrameRef),
    last: (i64, FrameRef),
    /// First and last tunnelled packet it sent.
    forwarded: Option<((i64, FrameRef), (i64, FrameRef))>,
    /// Where its own capture is.
    vantage: Option<VantageId>,
}

/// Who was master when.
#[derive(Debug, Clone)]
pub struct Timeline {
    routers: Vec<Router>,
    /// (old, new) router indices and when the new one took over, with the frame that shows it.
    switch: Option<(usize, usize, i64, FrameRef)>,
    /// The new master's first gratuitous ARP for the VIP (reference time, frame).
    garp: Option<(i64, FrameRef)>,
    /// Sync messages: per sender address, messages and entries carried (as the vantage that
    /// saw most of them counted), and the first.
    syncs: Vec<(IpAddr, u64, u64, FrameRef)>,
    /// Sync messages the new master's capture holds from other senders before the switch.
    synced_to_new: u64,
    vip: Option<IpAddr>,
}

fn reference_ns(ctx: &Context, f: &FrameRef) -> i64 {
    f.ts_ns - offset_of(&ctx.analysis.clock_offsets, f.vantage()).map_or(0, |o| o.offset_ns)
}

use crate::time::time_of_day as clock;

impl Timeline {
    pub fn of(ctx: &Context) -> Option<Timeline> {
        let topo = &ctx.analysis.topology;
        if topo.control.is_empty() {
            return None;
        }
        let vip = match topo.vips.as_slice() {
            [one] => Some(one.addr),
            _ => None,
        };
        let mut routers: Vec<Router> = Vec::new();
        let find = |routers: &mut Vec<Router>, addr: IpAddr, at: (i64, FrameRef)| -> usize {
            match routers.iter().position(|r| r.addr == addr) {
                Some(i) => i,
                None => {
                    routers.push(Router {
                        addr,
                        mac: None,
                        vrrp: None,
                        adverts: 0,
                        first: at,
                        last: at,
                        forwarded: None,
                        vantage: None,
                    });
                    routers.len() - 1
                }
            }
        };
        for vc in &topo.control {
            for a in &vc.adverts {
                let first = (reference_ns(ctx, &a.span.first), a.span.first);
                let last = (reference_ns(ctx, &a.span.last), a.span.last);
                let i = find(&mut routers, a.key.router, first);
                let r = &mut routers[i];
                r.mac = r.mac.or(a.key.mac);
                if first.0 < r.first.0 {
                    r.first = first;
                }
                if last.0 >= r.last.0 {
                    r.last = last;
                    r.vrrp = Some((a.key.vrid, a.key.priority));
                }
                r.vrrp = r.vrrp.or(Some((a.key.vrid, a.key.priority)));
                r.adverts = r.adverts.max(a.span.count);
            }
        }
        let vrrp_seen = !routers.is_empty();
        for vc in &topo.control {
            for (src, span) in &vc.forwarded {
                if !topo.directors.iter().any(|d| d.addr == *src) {
                    continue;
                }
                let first = (reference_ns(ctx, &span.first), span.first);
                let last = (reference_ns(ctx, &span.last), span.last);
                let i = match routers.iter().position(|r| r.addr == *src) {
                    Some(i) => i,
                    None if vrrp_seen => continue,
                    None => find(&mut routers, *src, first),
                };
                let r = &mut routers[i];
                let (f, l) = r.forwarded.get_or_insert((first, last));
                if first.0 < f.0 {
                    *f = first;
                }
                if last.0 > l.0 {
                    *l = last;
                }
                if !vrrp_seen {
                    r.first = *f;
                    r.last = *l;
                }
            }
        }
        for r in &mut routers {
            let d = topo.directors.iter().find(|d| d.addr == r.addr);
            if r.mac.is_none() {
                r.mac = d.and_then(|d| d.macs.first().copied());
            }
            r.vantage = topo
                .vantages
                .iter()
                .filter(|v| v.role == Role::Director)
                .find(|v| {
                    v.address == Some(r.addr) || (v.local_mac.is_some() && v.local_mac == r.mac)
                })
                .map(|v| v.id);
        }
        if routers.len() < 2 && !vrrp_seen {
            return None;
        }
        routers.sort_by_key(|r| r.first.0);
        // The switch: a router that begins after another began, the one before it being the
        // one whose last sign of life came last before that.
        let switch = (1..routers.len()).find_map(|n| {
            let at = routers[n].first;
            let old = (0..n)
                .filter(|&o| routers[o].first.0 < at.0)
                .max_by_key(|&o| routers[o].last.0)?;
            Some((old, n, at.0, at.1))
        });
        let garp = switch.and_then(|(_, n, at, _)| {
            let mac = routers[n].mac?;
            topo.control
                .iter()
                .flat_map(|vc| vc.garps.iter())
                .filter(|g| g.mac == mac && Some(g.addr) == vip.or(Some(g.addr)))
                .map(|g| {
                    (
                        reference_ns(ctx, &g.span.last),
                        g.span.last,
                        reference_ns(ctx, &g.span.first),
                        g.span.first,
                    )
                })
                .filter(|g| g.0 + GARP_GRACE_NS >= at)
                .map(|g| {
                    if g.2 + GARP_GRACE_NS >= at {
                        (g.2, g.3)
                    } else {
                        (g.0, g.1)
                    }
                })
                .min_by_key(|g| g.0)
        });
        let mut syncs: Vec<(IpAddr, u64, u64, FrameRef)> = Vec::new();
        for vc in &topo.control {
            for s in &vc.syncs {
                match syncs.iter_mut().find(|x| x.0 == s.key.sender) {
                    Some(x) => {
                        x.1 = x.1.max(s.span.count);
                        x.2 = x.2.max(s.conns);
                    }
                    None => syncs.push((s.key.sender, s.span.count, s.conns, s.span.first)),
                }
            }
        }
        let synced_to_new = switch.map_or(0, |(_, n, at, _)| {
            let Some(v) = routers[n].vantage else {
                return 0;
            };
            let new_addr = routers[n].addr;
            topo.control
                .iter()
                .filter(|vc| vc.vantage == v)
                .flat_map(|vc| vc.syncs.iter())
                .filter(|s| s.key.sender != new_addr && reference_ns(ctx, &s.span.first) < at)
                .map(|s| s.span.count)
                .sum()
        });
        Some(Timeline {
            routers,
            switch,
            garp,
            syncs,
            synced_to_new,
            vip,
        })
    }

    fn name(&self, ctx: &Context, i: usize) -> String {
        let r = &self.routers[i];
        match r.mac {
            Some(m) => format!("{} ({m})", r.addr),
            None => ctx.host(r.addr),
        }
    }

    /// Who was master when, in words.
    fn story(&self, ctx: &Context) -> String {
        let mut parts = Vec::new();
        for (i, r) in self.routers.iter().enumerate() {
            let vrrp = match r.vrrp {
                Some((vrid, prio)) => format!(
                    "VRRP vrid {vrid} priority {prio}, {}",
                    plural(r.adverts, "advert", "adverts")
                ),
                None => "no VRRP".into(),
            };
            let fwd = match r.forwarded {
                Some((f, l)) => format!("forwarded {}-{}", clock(f.1.ts_ns), clock(l.1.ts_ns)),
                None => "forwarded nothing".into(),
            };
            parts.push(format!(
                "{} master {}-{} ({vrrp}; {fwd})",
                self.name(ctx, i),
                clock(r.first.1.ts_ns),
                clock(r.last.1.ts_ns)
            ));
        }
        let mut s = parts.join("; ");
        if let Some((old, new, _, at)) = self.switch {
            s.push_str(&format!(
                "; switch at {} ({} -> {}",
                clock(at.ts_ns),
                self.routers[old].addr,
                self.routers[new].addr
            ));
            if let Some((_, g)) = self.garp {
                s.push_str(&format!(", gratuitous ARP at {}", clock(g.ts_ns)));
            }
            s.push(')');
        }
        s
    }
}

/// An established connection that spanned the switch and did not go on.
struct Broken {
    evidence: Vec<(FrameRef, String)>,
}

/// Fed every connection; judges those that spanned the switch.
#[derive(Default)]
pub struct Failover {
    timeline: Option<Timeline>,
    spanned: u64,
    went_on: u64,
    /// Went on, to another real server than before.
    moved: u64,
    broken: u64,
    reset_by_new: u64,
    examples: Vec<Broken>,
    clients: BTreeSet<SocketAddr>,
    /// Spanning connections the sync messages carried (client and VIP, to the same RS).
    carried: u64,
    carried_elsewhere: u64,
}

impl Failover {
    pub fn new(ctx: &Context) -> Failover {
        Failover {
            timeline: Timeline::of(ctx),
            ..Failover::default()
        }
    }

    pub fn observe(&mut self, ctx: &Context, conn: &Connection) {
        let Some(t) = &self.timeline else { return };
        let Some((old, new, at, _)) = t.switch else {
            return;
        };
        // TCP only: an established connection is what the sync daemon is for; a UDP "connection"
        // is each datagram pair.
        if conn.proto != Proto::TCP || conn.first_ts_ns >= at || conn.last_ts_ns <= at {
            return;
        }
        let off =
            |v: VantageId| offset_of(&ctx.analysis.clock_offsets, v).map_or(0, |o| o.offset_ns);
        let established = conn
            .legs
            .iter()
            .any(|l| l.tcp.as_ref().is_some_and(|f| f.syn && f.syn_ack));
        if !established {
            return;
        }
        self.spanned += 1;
        let new_v = t.routers[new].vantage;
        let old_addr = t.routers[old].addr;
        let new_addr = t.routers[new].addr;
        let rs_via = |addr: IpAddr| -> Option<IpAddr> {
            conn.legs
                .iter()
                .filter(|l| l.role == Role::Director)
                .filter_map(|l| l.request_wrapped.as_ref())
                .flat_map(|w| w.outer.iter())
                .find(|o| o.src == addr)
                .map(|o| o.dst)
        };
        let new_leg = new_v.and_then(|v| conn.legs.iter().find(|l| l.vantage == v));
        let rst = new_leg.and_then(|l| {
            l.evidence
                .iter()
                .find(|e| e.kind == EvidenceKind::ResetFromServer)
        });
        let forwarded_after = new_leg
            .and_then(|l| l.request_wrapped.as_ref().map(|w| (l, w)))
            .is_some_and(|(l, w)| w.last_ts_ns - off(l.vantage) > at);
        let sync_carried = ctx
            .analysis
            .topology
            .control
            .iter()
            .filter(|vc| Some(vc.vantage) == new_v)
            .flat_map(|vc| vc.carried.iter())
            .filter(|c| {
                c.sender != new_addr && c.conn.client == conn.client && c.conn.vip == conn.vip
            })
            .map(|c| c.conn.real_server.ip())
            .next_back();
        if let Some(rs) = sync_carried {
            if Some(rs) == conn.real_server.or(rs_via(old_addr)) {
                self.carried += 1;
            } else {
                self.carried_elsewhere += 1;
            }
        }
        if rst.is_none() && forwarded_after {
            self.went_on += 1;
            if let (Some(a), Some(b)) = (rs_via(old_addr), rs_via(new_addr)) {
                if a != b {
                    self.moved += 1;
                }
            }
            return;
        }
        let broken_by_outcome = matches!(conn.outcome, Outcome::Reset | Outcome::Unanswered);
        if rst.is_none() && !broken_by_outcome {
            // Nothing says it broke, and no capture of the new master shows it went on (no
            // packet of it after the switch, or no capture there).
            return;
        }
        self.broken += 1;
        self.reset_by_new += u64::from(rst.is_some());
        self.clients.insert(conn.client);
        if self.examples.len() < MAX_EVIDENCE {
            let mut evidence = Vec::new();
            if let Some(l) = new_leg {
                if let Some(r) = &l.request {
                    evidence.push((
                        r.first,
                        format!(
                            "{}: the client's packet at the new master {}",
                            conn.client, new_addr
                        ),
                    ));
                }
            }
            if let Some(e) = rst {
                evidence.push((
                    e.first,
                    format!(
                        "{}: RST from the VIP, sent by the new master's own stack",
                        conn.client
                    ),
                ));
            }
            if evidence.is_empty() {
                if let Some(e) = conn.evidence().next() {
                    evidence.push((e.first, format!("{}: {}", conn.client, e.detail)));
                }
            }
            self.examples.push(Broken { evidence });
        }
    }

    pub fn finish(self, ctx: &Context) -> CheckResult {
        let topo = &ctx.analysis.topology;
        let Some(t) = &self.timeline else {
            return CheckResult::skip(
                ID,
                if topo.directors.len() > 1 {
                    "no VRRP advertisement in the captures and no director took over from another"
                } else {
                    "the captures show one director and no VRRP advertisement: no failover to judge"
                },
            );
        };
        let story = t.story(ctx);
        let Some((old, new, at, at_frame)) = t.switch else {
            return CheckResult::pass(ID, format!("no failover in the captures: {story}"));
        };
        let new_name = t.name(ctx, new);
        let old_name = t.name(ctx, old);
        let vip = t.vip.map_or("VIP".to_string(), |v| v.to_string());
        let mut findings = Vec::new();
        let no_sync = t.synced_to_new == 0
            && t.routers[new].vantage.is_some_and(|v| {
                topo.vantage(v)
                    .and_then(|v| v.first_ts_ns)
                    .is_some_and(|f| f < at_frame.ts_ns)
            });
        let sync_fix = format!(
            "run the IPVS sync daemon on both directors, following VRRP: in keepalived.conf's \
             global_defs `lvs_sync_daemon eth0 VI_1` (the interface and vrrp_instance of the \
             pair), or by hand `ipvsadm --start-daemon master --mcast-interface eth0 --syncid 1` \
             on the master and `ipvsadm --start-daemon backup --mcast-interface eth0 --syncid 1` \
             on the backup (same syncid on both); check with `ipvsadm -L --daemon` on each, and \
             that {} can receive 224.0.0.81 UDP 8848",
            t.routers[new].addr
        );
        if self.broken > 0 {
            let mut ports: Vec<String> =
                self.clients.iter().map(|c| c.port().to_string()).collect();
            ports.truncate(20);
            let client_ip = self.clients.iter().next().map(|c| c.ip());
            let evidence: Vec<PacketRef> = self
                .examples
                .iter()
                .flat_map(|b| b.evidence.iter())
                .take(MAX_EVIDENCE)
                .map(|(f, s)| ctx.packet(f, s.clone()))
                .collect();
            let how = if self.reset_by_new > 0 {
                format!(
                    "{} reset by the new master (RST from the VIP {vip})",
                    self.reset_by_new
                )
            } else {
                "reset or left unanswered after the switch".to_string()
            };
            findings.push(Finding {
                snapshot: Vec::new(),
                check: ID,
                severity: Status::Fail,
                summary: format!(
                    "{} of {} established before the switch at {} ({old_name} -> {new_name}) did \
                     not go on through the new master: {how}",
                    self.broken,
                    plural(self.spanned, "connection", "connections"),
                    clock(at_frame.ts_ns),
                ),
                host: Some(new_name.clone()),
                count: self.broken,
                out_of: Some(self.spanned),
                evidence,
                display_filter: client_ip.map(|ip| {
                    format!(
                        "{} == {ip} && tcp.port in {{{}}}",
                        super::ip_field(ip),
                        ports.join(", ")
                    )
                }),
                likely_cause: if no_sync {
                    format!(
                        "{} had no connection entries for them: its capture shows no IPVS sync \
                         message, so the sync daemon did not run on the pair (or ran with another \
                         syncid, or its multicast did not reach the backup); IPVS schedules only \
                         a SYN, so the connections' next packets went to the new master's own \
                         stack, where nothing listens on the VIP, and it answered with RST",
                        t.routers[new].addr
                    )
                } else {
                    format!(
                        "{} had no connection entries for them although sync messages were \
                         seen: the backup's sync daemon dropped them (another syncid, another \
                         sync_version) or they came too late (sync_threshold / sync_period)",
                        t.routers[new].addr
                    )
                },
                fix: sync_fix.clone(),
            });
        }
        if no_sync && self.spanned > 0 {
            findings.push(Finding {
                snapshot: Vec::new(),
                check: ID,
                severity: Status::Fail,
                summary: format!(
                    "the capture of the new master {new_name} holds no IPVS sync message \
                     (224.0.0.81 UDP 8848) before it took over with {} in flight",
                    plural(self.spanned, "connection", "connections")
                ),
                host: Some(new_name.clone()),
                count: self.spanned,
                out_of: None,
                evidence: vec![ctx.packet(
                    &at_frame,
                    format!("first VRRP advert of {} as master", t.routers[new].addr),
                )],
                display_filter: Some("udp.port == 8848 || vrrp".into()),
                likely_cause: "the sync daemon is not running on the master (or not as backup \
                               here), runs with another syncid, or its multicast does not reach \
                               this host"
                    .into(),
                fix: sync_fix,
            });
        }
        // Clients that went on sending to the old master's MAC after the switch.
        if let (Some(old_mac), Some(vip_addr)) = (t.routers[old].mac, t.vip) {
            for vc in &topo.control {
                if topo.role_of(vc.vantage) != Role::Client {
                    continue;
                }
                let late: Vec<_> = vc
                    .sent_to
                    .iter()
                    .filter(|(k, s)| {
                        k.dst == vip_addr
                            && k.mac == old_mac
                            && reference_ns(ctx, &s.last) > at + GARP_GRACE_NS
                    })
                    .collect();
                let Some((_, span)) = late.first() else {
                    continue;
                };
                let garp_here = vc
                    .garps
                    .iter()
                    .filter(|g| Some(g.mac) == t.routers[new].mac)
                    .map(|g| g.span.first)
                    .next();
                // The client's address: the one client, else the capture names it.
                let client = match topo.clients.as_slice() {
                    [one] => match topo.vantage(vc.vantage).and_then(|v| v.local_mac) {
                        Some(m) => format!("{one} ({m})"),
                        None => one.to_string(),
                    },
                    _ => ctx.vantage_host(vc.vantage),
                };
                let mut evidence =
                    vec![ctx.packet(&span.last, format!("to {vip_addr} at {old_mac}"))];
                if let Some(g) = garp_here {
                    evidence.push(ctx.packet(
                        &g,
                        format!(
                            "gratuitous ARP from {}, in the client's capture",
                            t.routers[new].addr
                        ),
                    ));
                }
                findings.push(Finding {
                    snapshot: Vec::new(),
                    check: ID,
                    severity: Status::Fail,
                    summary: format!(
                        "{client} went on sending to the old master's MAC {old_mac} after the \
                         switch at {} (last at {}){}",
                        clock(at_frame.ts_ns),
                        clock(span.last.ts_ns),
                        if garp_here.is_some() {
                            ", although the new master's gratuitous ARP reached its interface"
                        } else {
                            ": no gratuitous ARP from the new master reached it"
                        }
                    ),
                    host: Some(client.clone()),
                    count: 1,
                    out_of: None,
                    evidence,
                    display_filter: Some(format!("eth.dst == {old_mac} && ip.dst == {vip_addr}")),
                    likely_cause: if garp_here.is_some() {
                        "the client does not take the gratuitous ARP (an arptables or firewall \
                         rule dropping ARP whose sender is the VIP, or a neighbour cache that \
                         ignores it): it keeps the dead master's MAC until the entry goes stale \
                         and is probed, and its packets meanwhile go nowhere"
                            .into()
                    } else {
                        "the new master's gratuitous ARP did not reach the client (another \
                         segment, a switch or router that drops it, or none was sent)"
                            .into()
                    },
                    fix: format!(
                        "on {client}: let gratuitous ARP for {vip_addr} in (arptables -L, \
                         ebtables); on the directors: make keepalived announce the VIP when it \
                         becomes master and again later (vrrp_garp_master_delay 1, \
                         vrrp_garp_master_repeat 5, vrrp_garp_master_refresh 60 in \
                         keepalived.conf's global_defs)"
                    ),
                });
            }
        }
        if self.carried_elsewhere > 0 {
            findings.push(Finding {
                snapshot: Vec::new(),
                check: ID,
                severity: Status::Warn,
                summary: format!(
                    "the sync messages in {new_name}'s capture carried {} of the connections \
                     established before the switch to another real server than the one they used",
                    self.carried_elsewhere
                ),
                host: Some(new_name.clone()),
                count: self.carried_elsewhere,
                out_of: Some(self.spanned),
                evidence: Vec::new(),
                display_filter: Some("udp.port == 8848".into()),
                likely_cause: "the directors' real servers differ (the backup's virtual_server \
                               lists other addresses or ports), or a later scheduling overwrote \
                               the entry"
                    .into(),
                fix: "give both directors the same virtual_server blocks (compare ipvsadm -Sn on \
                      each)"
                    .into(),
            });
        }
        let mut pass = format!(
            "{story}; {} of {} established before the switch went on through {new_name}",
            self.went_on,
            plural(self.spanned, "connection", "connections"),
        );
        if self.moved > 0 {
            pass.push_str(&format!(" ({} to another real server)", self.moved));
        }
        if self.carried + self.carried_elsewhere > 0 {
            pass.push_str(&format!(
                "; the sync messages in its capture carried {} of them to the same real server",
                self.carried
            ));
        }
        let synced: Vec<String> = t
            .syncs
            .iter()
            .map(|(a, n, c, _)| {
                format!(
                    "{a} sent {} ({})",
                    plural(*n, "sync message", "sync messages"),
                    plural(*c, "entry", "entries")
                )
            })
            .collect();
        if !synced.is_empty() {
            pass.push_str(&format!("; {}", synced.join(", ")));
        }
        CheckResult::from_findings(ID, pass, findings)
    }
}
