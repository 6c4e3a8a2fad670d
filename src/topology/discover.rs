//! From the facts of every vantage point to one topology: VIPs, services, director, real
//! servers, clients, and the role of each capture with the reason it was given.

use super::encap::Encap;
use super::facts::{FlowFact, PacketCounts, VantageFacts};
use super::{
    ArpObservation, Decision, FrameRef, Host, MacAddr, Proto, Role, RoleConflict, Service,
    Topology, Vantage, Vip,
};
use crate::capture::frame::CaptureId;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

/// What the user said that the traffic may not tell.
#[derive(Debug, Clone, Default)]
pub struct Hints {
    /// Role of every interface of a capture, by capture id (`--role director=FILE`).
    pub roles: HashMap<CaptureId, Role>,
    /// Addresses to treat as VIPs (`--vip`), in addition to those found in the traffic.
    pub vips: Vec<IpAddr>,
}

pub fn discover(facts: &[VantageFacts], hints: &Hints) -> Topology {
    let vips = find_vips(facts, hints);
    let is_vip = |a: &IpAddr| vips.iter().any(|v| v.addr == *a);

    let mut services = BTreeSet::new();
    let mut clients = BTreeSet::new();
    let mut directors: BTreeMap<IpAddr, (BTreeSet<MacAddr>, FrameRef)> = BTreeMap::new();
    let mut real_servers: BTreeMap<IpAddr, (BTreeSet<MacAddr>, FrameRef)> = BTreeMap::new();
    let mut tunnels = BTreeMap::new();
    for vf in facts {
        for (k, c) in &vf.flows {
            if !carries_ports(k.proto) {
                continue;
            }
            if k.to_server && is_vip(&k.dst) {
                // Port 0 is no packet's service port: it is a tunnelled packet whose inner
                // TCP/UDP header the snap length cut off (capture.snaplen says so).
                if k.server_port != 0 {
                    services.insert(Service {
                        vip: k.dst,
                        port: k.server_port,
                        proto: k.proto,
                    });
                }
                clients.insert(k.src);
            }
            let Some(t) = k.tunnel.filter(|_| is_vip(&k.dst)) else {
                continue;
            };
            let d = directors
                .entry(t.outer_src)
                .or_insert((BTreeSet::new(), c.first));
            d.0.extend(k.src_mac);
            d.1 = earliest(d.1, c.first);
            let r = real_servers
                .entry(t.outer_dst)
                .or_insert((BTreeSet::new(), c.first));
            r.0.extend(k.dst_mac);
            r.1 = earliest(r.1, c.first);
            tunnels.entry(t.outer_dst).or_insert(Encap {
                outer_proto: t.outer_proto,
                outer_v6: t.outer_dst.is_ipv6(),
                inner_v6: k.dst.is_ipv6(),
                gue_port: None,
            });
        }
    }
    clients.retain(|c| !is_vip(c) && !directors.contains_key(c) && !real_servers.contains_key(c));

    // MACs known from the traffic's shape whatever the capture: the tunnel's source MAC is a
    // director's, its destination MAC a real server's, and the source MAC of a plain request
    // sent to a director's MAC a client's (or its router's). They settle which MAC is the
    // capturing host's when a small capture leaves a tie.
    let director_macs: BTreeSet<MacAddr> = directors
        .values()
        .flat_map(|d| d.0.iter().copied())
        .collect();
    let server_macs: BTreeSet<MacAddr> = real_servers
        .values()
        .flat_map(|d| d.0.iter().copied())
        .collect();
    let mut client_macs = BTreeSet::new();
    for vf in facts {
        for k in vf.flows.keys() {
            if k.tunnel.is_none()
                && is_vip(&k.dst)
                && k.dst_mac.is_some_and(|m| director_macs.contains(&m))
            {
                client_macs.extend(k.src_mac);
            }
        }
    }
    // A MAC that is plainly the capturing host's in another capture is not this one's.
    let claimed: BTreeSet<MacAddr> = facts.iter().filter_map(clear_local_mac).collect();
    let rank = |m: MacAddr| {
        if claimed.contains(&m) {
            -2
        } else if director_macs.contains(&m) || server_macs.contains(&m) {
            1
        } else if client_macs.contains(&m) {
            -1
        } else {
            0
        }
    };
    // Which host a MAC belongs to, from the tunnels: for captures that saw no VIP traffic.
    let mut mac_owner: BTreeMap<MacAddr, (Role, IpAddr)> = BTreeMap::new();
    for (addr, (macs, _)) in &real_servers {
        for m in macs {
            mac_owner.insert(*m, (Role::RealServer, *addr));
        }
    }
    for (addr, (macs, _)) in &directors {
        for m in macs {
            mac_owner.insert(*m, (Role::Director, *addr));
        }
    }
    let mut role_conflicts = Vec::new();
    let mut vantages: Vec<Vantage> = facts
        .iter()
        .map(|vf| {
            let local = clear_local_mac(vf).or_else(|| vf.local_mac(rank));
            let (v, conflict) = decide_role(vf, local, &is_vip, &mac_owner, hints);
            role_conflicts.extend(conflict);
            v
        })
        .collect();
    vantages.sort_by_key(|v| v.id);
    role_conflicts.sort_by_key(|c: &RoleConflict| c.vantage);

    // A real server's own MAC is the source of the replies it sends; add it where its capture
    // says which RS it is (an RS behind a router has the router's MAC in the tunnelled frames).
    // Conversely a real-server capture without tunnelled packets (all requests bypassed the
    // director) is known by its MAC.
    for v in &mut vantages {
        if let (Role::RealServer, Some(addr), Some(mac)) = (v.role, v.address, v.local_mac) {
            if let Some(r) = real_servers.get_mut(&addr) {
                r.0.insert(mac);
            }
        }
        if let (Role::RealServer, None, Some(mac)) = (v.role, v.address, v.local_mac) {
            let mut owners = real_servers.iter().filter(|(_, r)| r.0.contains(&mac));
            if let (Some((a, _)), None) = (owners.next(), owners.next()) {
                v.address = Some(*a);
            }
        }
    }

    let arp = arp_observations(facts, &is_vip);
    // Control traffic is kept where there may be a failover to tell: VRRP or sync messages in
    // a capture, or more than one director forwarding.
    let control = if directors.len() > 1 || facts.iter().any(|f| f.control.has_control()) {
        facts.iter().map(|f| f.control.summary(f.vantage)).collect()
    } else {
        Vec::new()
    };
    let limits = limits(&vantages, &vips);
    let hosts = |m: BTreeMap<IpAddr, (BTreeSet<MacAddr>, FrameRef)>| {
        m.into_iter()
            .map(|(addr, (macs, ev))| Host {
                addr,
                macs: macs.into_iter().collect(),
                evidence: Some(ev),
            })
            .collect()
    };
    Topology {
        vantages,
        vips,
        services: services.into_iter().collect(),
        directors: hosts(directors),
        real_servers: hosts(real_servers),
        clients: clients.into_iter().collect(),
        arp,
        limits,
        role_conflicts,
        gue: Vec::new(),
        tunnels,
        client_side_macs: client_macs.into_iter().collect(),
        control,
    }
}

/// The capturing host's MAC when the frames leave no doubt: the one candidate in more frames
/// than any other.
fn clear_local_mac(vf: &VantageFacts) -> Option<MacAddr> {
    let mut c = vf.local_mac_candidates();
    c.sort_by_key(|(m, n)| (std::cmp::Reverse(*n), *m));
    match c.as_slice() {
        [(m, _)] => Some(*m),
        [(m, a), (_, b), ..] if a > b => Some(*m),
        _ => None,
    }
}

fn carries_ports(p: Proto) -> bool {
    matches!(p.0, 6 | 17 | 132)
}

/// VIPs: given by the user, else the inner destinations of tunnelled packets (the surest sign),
/// else, without any tunnel, the address that most client connections go to (a guess).
fn find_vips(facts: &[VantageFacts], hints: &Hints) -> Vec<Vip> {
    let mut vips: Vec<Vip> = hints
        .vips
        .iter()
        .map(|a| Vip {
            addr: *a,
            decided_by: Decision::User,
            reason: "given with --vip".into(),
            evidence: None,
        })
        .collect();
    // inner destination -> (packets, outer pairs, earliest example)
    // inner destination -> (packets, outer address pairs, example)
    type Seen = (u64, BTreeSet<(IpAddr, IpAddr)>, FrameRef);
    let mut tunnelled: BTreeMap<IpAddr, Seen> = BTreeMap::new();
    for vf in facts {
        for (k, c) in &vf.flows {
            let Some(t) = k.tunnel else { continue };
            if !carries_ports(k.proto) || !k.to_server {
                continue;
            }
            let e = tunnelled
                .entry(k.dst)
                .or_insert((0, BTreeSet::new(), c.first));
            e.0 += c.packets;
            e.1.insert((t.outer_src, t.outer_dst));
            e.2 = earliest(e.2, c.first);
        }
    }
    for (addr, (n, pairs, ev)) in tunnelled {
        if vips.iter().any(|v| v.addr == addr) {
            continue;
        }
        let pairs: Vec<String> = pairs.iter().map(|(s, d)| format!("{s}->{d}")).collect();
        vips.push(Vip {
            addr,
            decided_by: Decision::Traffic,
            reason: format!(
                "inner destination of {n} tunnelled packets (outer {})",
                pairs.join(", ")
            ),
            evidence: Some(ev),
        });
    }
    if !vips.is_empty() {
        return vips;
    }
    // No tunnel anywhere: the server address with the most connections started towards it.
    let mut towards: HashMap<IpAddr, (u64, u64, BTreeSet<IpAddr>, FrameRef)> = HashMap::new();
    for vf in facts {
        for (k, c) in &vf.flows {
            if !k.to_server || !carries_ports(k.proto) {
                continue;
            }
            let e = towards
                .entry(k.dst)
                .or_insert((0, 0, BTreeSet::new(), c.first));
            e.0 += c.syns;
            e.1 += c.packets;
            e.2.insert(k.src);
            e.3 = earliest(e.3, c.first);
        }
    }
    if let Some((addr, (syns, packets, peers, ev))) = towards
        .into_iter()
        .max_by_key(|(a, (s, p, _, _))| (*s, *p, std::cmp::Reverse(*a)))
    {
        vips.push(Vip {
            addr,
            decided_by: Decision::Guess,
            reason: format!(
                "no tunnelled packet in any capture: the address most connections go to \
                 ({syns} SYNs, {packets} packets from {}); give --vip if wrong",
                crate::words::plural(peers.len() as u64, "host", "hosts")
            ),
            evidence: Some(ev),
        });
    }
    vips
}

/// Packets of one vantage point, counted by kind and direction.
#[derive(Default)]
struct RoleCounts {
    /// Plain (not tunnelled) packets to a VIP: in, out, direction unknown.
    requests: [u64; 3],
    /// Plain packets from a VIP.
    replies: [u64; 3],
    /// Tunnelled packets whose inner destination is a VIP.
    tunnelled: [u64; 3],
    tunnel_src: BTreeMap<IpAddr, u64>,
    tunnel_dst: BTreeMap<IpAddr, u64>,
    first_request: Option<FrameRef>,
    first_reply: Option<FrameRef>,
}

fn dir_index(k: &FlowFact, local: Option<MacAddr>) -> usize {
    let link = crate::decode::packet::Link {
        src_mac: k.src_mac.map(|m| m.0),
        dst_mac: k.dst_mac.map(|m| m.0),
        vlans: Default::default(),
        sll_packet_type: k.sll_packet_type,
        sll_ifindex: None,
    };
    match super::view::direction(&link, local) {
        super::view::Direction::In => 0,
        super::view::Direction::Out => 1,
        super::view::Direction::Unknown => 2,
    }
}

fn decide_role(
    vf: &VantageFacts,
    local: Option<MacAddr>,
    is_vip: &dyn Fn(&IpAddr) -> bool,
    mac_owner: &BTreeMap<MacAddr, (Role, IpAddr)>,
    hints: &Hints,
) -> (Vantage, Option<RoleConflict>) {
    let mut c = RoleCounts::default();
    for (k, n) in &vf.flows {
        if !carries_ports(k.proto) {
            continue;
        }
        let d = dir_index(k, local);
        if let Some(t) = k.tunnel {
            if is_vip(&k.dst) {
                c.tunnelled[d] += n.packets;
                *c.tunnel_src.entry(t.outer_src).or_default() += n.packets;
                *c.tunnel_dst.entry(t.outer_dst).or_default() += n.packets;
            }
        } else if is_vip(&k.dst) {
            c.requests[d] += n.packets;
            c.first_request = Some(c.first_request.map_or(n.first, |f| earliest(f, n.first)));
        } else if is_vip(&k.src) {
            c.replies[d] += n.packets;
            c.first_reply = Some(c.first_reply.map_or(n.first, |f| earliest(f, n.first)));
        }
    }
    let (role, decided_by, reason, address) = match role_from_counts(vf, local, &c) {
        (Role::Other, _, why, _) if c.requests == [0; 3] && c.replies == [0; 3] => {
            quiet_host(vf, local, is_vip, mac_owner).unwrap_or_else(|| {
                let arp: u64 = vf.arp.values().map(|c| c.count).sum();
                let why = if arp > 0 && vf.flows.is_empty() {
                    format!(
                        "{why}: only {arp} ARP frames, no IP packet (a real server that does not \
                         answer ARP for the VIP looks like this, and so does any other host)"
                    )
                } else {
                    why
                };
                (Role::Other, Decision::Traffic, why, None)
            })
        }
        decided => decided,
    };
    // A role the traffic shows without doubt cannot be overruled silently: the analysis would
    // then read a client's packets as the director's, and count each connection at two
    // directors.
    let given = hints.roles.get(&vf.vantage.capture).copied();
    let conflict = given
        .filter(|g| *g != role && role != Role::Other && decided_by == Decision::Traffic)
        .map(|g| RoleConflict {
            vantage: vf.vantage,
            given: g,
            traffic: role,
            reason: reason.clone(),
        });
    let (role, decided_by, reason) = match given {
        Some(r) => (
            r,
            Decision::User,
            format!("given with --role; the traffic alone says {role} ({reason})"),
        ),
        None => (role, decided_by, reason),
    };
    let v = Vantage {
        id: vf.vantage,
        link_type: vf.link_type,
        frames: vf.frames,
        first_ts_ns: vf.first_ts_ns,
        last_ts_ns: vf.last_ts_ns,
        role,
        decided_by,
        reason,
        local_mac: local,
        address,
        packets: PacketCounts {
            requests: c.requests.iter().sum(),
            replies: c.replies.iter().sum(),
            tunnelled: c.tunnelled.iter().sum(),
            first_request: c.first_request,
            first_reply: c.first_reply,
            ..vf.counts.clone()
        },
    };
    (v, conflict)
}

fn most(m: &BTreeMap<IpAddr, u64>) -> Option<IpAddr> {
    m.iter().max_by_key(|(_, n)| **n).map(|(a, _)| *a)
}

fn list(m: &BTreeMap<IpAddr, u64>) -> String {
    m.keys()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn role_from_counts(
    vf: &VantageFacts,
    local: Option<MacAddr>,
    c: &RoleCounts,
) -> (Role, Decision, String, Option<IpAddr>) {
    const IN: usize = 0;
    const OUT: usize = 1;
    const UNK: usize = 2;
    let req: u64 = c.requests.iter().sum();
    let rep: u64 = c.replies.iter().sum();
    let tun: u64 = c.tunnelled.iter().sum();
    let mirror = vf.has_macs() && local.is_none() && !vf.has_sll();
    if c.tunnelled[OUT] > 0 {
        return (
            Role::Director,
            Decision::Traffic,
            format!(
                "{} client packets to the VIP arrived unwrapped and {} left IP-in-IP wrapped \
                 from {} to {}",
                c.requests[IN] + c.requests[UNK],
                c.tunnelled[OUT],
                list(&c.tunnel_src),
                list(&c.tunnel_dst)
            ),
            most(&c.tunnel_src),
        );
    }
    if c.tunnelled[IN] > 0 {
        return (
            Role::RealServer,
            Decision::Traffic,
            format!(
                "{} IP-in-IP packets for the VIP arrived from {} addressed to {}; {} replies \
                 from the VIP left",
                c.tunnelled[IN],
                list(&c.tunnel_src),
                list(&c.tunnel_dst),
                c.replies[OUT] + c.replies[UNK]
            ),
            most(&c.tunnel_dst),
        );
    }
    let how = if mirror {
        "no MAC is in 80% of the unicast frames (a mirror port or a bridge?)"
    } else {
        "the link layer does not say which way packets went"
    };
    if tun > 0 {
        // Tunnelled packets, but no way to tell in from out.
        return if req > 0 && rep == 0 {
            (
                Role::Director,
                Decision::Guess,
                format!(
                    "{req} client packets to the VIP and {tun} tunnelled from {} to {}, no \
                     reply from the VIP; {how}",
                    list(&c.tunnel_src),
                    list(&c.tunnel_dst)
                ),
                most(&c.tunnel_src),
            )
        } else if req == 0 && rep > 0 {
            (
                Role::RealServer,
                Decision::Guess,
                format!(
                    "{tun} tunnelled packets to {} and {rep} replies from the VIP, no \
                     unwrapped request; {how}",
                    list(&c.tunnel_dst)
                ),
                most(&c.tunnel_dst),
            )
        } else {
            (
                Role::Other,
                Decision::Traffic,
                format!(
                    "sees {req} client packets to the VIP, {tun} tunnelled and {rep} replies: \
                     more than one host's traffic; {how}"
                ),
                None,
            )
        };
    }
    if req == 0 && rep == 0 {
        return (
            Role::Other,
            Decision::Traffic,
            "no packet to or from a VIP".into(),
            None,
        );
    }
    if c.requests[OUT] > 0 && c.replies[OUT] == 0 {
        return (
            Role::Client,
            Decision::Traffic,
            format!(
                "{} packets to the VIP left and {} replies from the VIP arrived; nothing tunnelled",
                c.requests[OUT],
                c.replies[IN] + c.replies[UNK]
            ),
            None,
        );
    }
    if c.requests[IN] > 0 && c.replies[OUT] > 0 {
        return (
            Role::RealServer,
            Decision::Guess,
            format!(
                "{} client packets to the VIP arrived unwrapped and {} replies from the VIP left: \
                 a server holding the VIP reached without the tunnel",
                c.requests[IN], c.replies[OUT]
            ),
            None,
        );
    }
    if c.requests[IN] > 0 {
        return (
            Role::Director,
            Decision::Guess,
            format!(
                "{} client packets to the VIP arrived; nothing was tunnelled or answered",
                c.requests[IN]
            ),
            None,
        );
    }
    if c.replies[OUT] > 0 {
        return (
            Role::RealServer,
            Decision::Guess,
            format!(
                "{} replies from the VIP left; no request seen",
                c.replies[OUT]
            ),
            None,
        );
    }
    // Direction unknown from here on.
    if !vf.has_macs() {
        return if rep == 0 {
            (
                Role::RealServer,
                Decision::Guess,
                format!(
                    "raw IP capture with {req} packets to the VIP, none tunnelled and no \
                     reply: the decapsulated side of a real server's tunnel (tunl0)"
                ),
                None,
            )
        } else {
            (
                Role::Client,
                Decision::Guess,
                format!(
                    "raw IP capture with {req} packets to the VIP and {rep} from it, nothing \
                     tunnelled"
                ),
                None,
            )
        };
    }
    (
        Role::Other,
        Decision::Traffic,
        format!("{req} packets to the VIP and {rep} from it, direction unknown; {how}"),
        None,
    )
}

/// A capture without VIP traffic can still be the director's or a real server's: its MAC is one
/// the tunnels show elsewhere, or it answers ARP for a VIP with its own MAC (every client was
/// sent elsewhere, as when a real server also answers ARP for the VIP).
fn quiet_host(
    vf: &VantageFacts,
    local: Option<MacAddr>,
    is_vip: &dyn Fn(&IpAddr) -> bool,
    mac_owner: &BTreeMap<MacAddr, (Role, IpAddr)>,
) -> Option<(Role, Decision, String, Option<IpAddr>)> {
    let local = local?;
    if let Some((role, addr)) = mac_owner.get(&local) {
        let what = match role {
            Role::Director => "source of the tunnelled packets",
            _ => "destination of the tunnelled packets",
        };
        return Some((
            *role,
            Decision::Guess,
            format!(
                "no traffic for the VIP here, but this host's MAC {local} is {addr}'s, the {what} \
                 seen in other captures"
            ),
            Some(*addr),
        ));
    }
    let answers = vf
        .arp
        .keys()
        .find(|k| k.operation == 2 && is_vip(&k.sender_ip) && k.sender_mac == local)?;
    Some((
        Role::Director,
        Decision::Guess,
        format!(
            "no traffic for the VIP here, but this host answers ARP for the VIP {} with its own \
             MAC {local}",
            answers.sender_ip
        ),
        None,
    ))
}

fn arp_observations(
    facts: &[VantageFacts],
    is_vip: &dyn Fn(&IpAddr) -> bool,
) -> Vec<ArpObservation> {
    let mut out: Vec<ArpObservation> = facts
        .iter()
        .flat_map(|vf| {
            vf.arp.iter().map(move |(k, c)| ArpObservation {
                vantage: vf.vantage,
                operation: if k.sender_ip == k.target_ip {
                    "announcement"
                } else if k.operation == 2 {
                    "reply"
                } else if k.operation == 1 {
                    "request"
                } else {
                    "other"
                },
                sender_ip: k.sender_ip,
                sender_mac: k.sender_mac,
                target_ip: k.target_ip,
                count: c.count,
                first: c.first,
                about_vip: is_vip(&k.sender_ip),
                nd: k.nd,
            })
        })
        .collect();
    out.sort_by_key(|a| (a.vantage, a.first.frame));
    out
}

/// The example frame to show: the first capture's earliest, whatever order the facts (hash
/// maps) were walked in, so that the same input always gives the same report.
fn earliest(a: FrameRef, b: FrameRef) -> FrameRef {
    if (b.capture, b.interface, b.frame) < (a.capture, a.interface, a.frame) {
        b
    } else {
        a
    }
}

fn limits(vantages: &[Vantage], vips: &[Vip]) -> Vec<String> {
    let has = |r: Role| vantages.iter().any(|v| v.role == r);
    let mut out = Vec::new();
    if vips.is_empty() {
        out.push("no VIP found: no tunnelled packet and no client connection; give --vip".into());
    } else if vips.iter().all(|v| v.decided_by == Decision::Guess) {
        out.push(
            "the VIP is a guess (no tunnelled packet in any capture): give --vip to be sure".into(),
        );
    }
    if !has(Role::Director) {
        out.push(
            "no director capture: the tunnelling of requests cannot be seen, and the real server \
             of a connection is known only from real-server captures or reply MACs"
                .into(),
        );
    }
    if !has(Role::RealServer) {
        out.push(
            "no real-server capture: whether tunnelled requests arrive and replies leave cannot \
             be seen"
                .into(),
        );
    }
    if !has(Role::Client) {
        out.push(
            "no client capture: whether replies reach the clients, and handshake times as the \
             client sees them, cannot be seen"
                .into(),
        );
    }
    out
}
