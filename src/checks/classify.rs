//! One classification of each connection, shared by every check: how the director sent it on,
//! which real server it went to, and whether it was answered, each with where that was seen.
//!
//! Each check used to decide these for itself, and on partial captures they disagreed: a
//! connection forwarded in direct-routing mode was "unwrapped" for `tunnel.encapsulation` and
//! "bypassed the director" for `bypass` at once; a connection whose server was not captured
//! "arrived at an unidentified real server" for one check and left that server with "no
//! connection" for another. Deciding once, here, gives one story per connection, and says
//! "not captured" wherever a hop was not captured instead of guessing what happened there.

use std::net::IpAddr;

use super::Context;
use crate::flows::clock::offset_of;
use crate::flows::join::is_raw_ip;
use crate::flows::{Connection, EvidenceKind, Leg};
use crate::topology::{FrameRef, MacAddr, Proto, Role, VantageId};

/// How the director sent a connection on, as far as the captures show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forwarding {
    /// A director capture shows it leave wrapped, or a real server received it wrapped.
    Tunnel,
    /// It left the director unwrapped towards another host's MAC (direct routing, `-g`), or
    /// the rules say `-g` for the server that received it unwrapped, or `-m` for the server
    /// that answered it from its own address (NAT).
    Direct {
        /// The MAC it was sent to, when a director capture showed it.
        to_mac: Option<MacAddr>,
        /// The rules say so (`ipvsadm -a ... -g`).
        by_rules: bool,
    },
    /// It arrived at the director and was answered, but the director capture does not show it
    /// leave: the capture missed the forwarded copy (a capture filter, a snaplen, drops).
    LeftUnseen,
    /// It arrived at the director, was never answered and never left.
    NotForwarded,
    /// A director capture ran while the connection started and does not show it.
    Missed,
    /// No director capture ran then: how it was forwarded is not in the captures.
    NotCaptured,
}

/// Whether a connection was answered, and what shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// A reply was seen (from the VIP, or from a real server's own address).
    Answered,
    /// The client acknowledged an answer at the director (TCP: its ACK after the SYN), though
    /// no capture shows the reply itself.
    AnsweredByClientAck,
    /// A TCP RST or an ICMP unreachable came back instead; the packet, when one shows it.
    Refused(Option<FrameRef>),
    /// Requests were seen where replies would have been seen too, and none came; the request.
    Unanswered(Option<FrameRef>),
    /// Only the director saw it: the client repeated its SYN and never acknowledged anything
    /// (it got no SYN-ACK); the first SYN at the director.
    UnansweredAtDirector(Option<FrameRef>),
    /// No capture can tell.
    Unknown,
}

impl Answer {
    pub fn answered(self) -> bool {
        matches!(self, Answer::Answered | Answer::AnsweredByClientAck)
    }
}

/// The shared view of one connection.
#[derive(Debug, Clone)]
pub struct Class {
    pub forwarding: Forwarding,
    /// The real server: from the connection record (tunnel, RS capture, reply MAC), else from
    /// the MAC the director forwarded it to.
    pub real_server: Option<IpAddr>,
    pub answer: Answer,
    /// A request reached a real server's link-layer capture without a tunnel around it.
    pub unwrapped_at_rs: Option<FrameRef>,
    /// A director capture was running when the connection started.
    pub director_watching: bool,
    /// The director capture whose view decided `forwarding` (where the request arrived), so
    /// that a capture that could not show the forwarded copy (`capture.filter`,
    /// `capture.snaplen`, `capture.drops`) is blamed instead of the director.
    pub director_vantage: Option<VantageId>,
    /// Wrapped IPv6-in-IPv6 with the VIP as the outer source: the real server it went to,
    /// and the first such packet a capture saw. That real server holds the VIP itself, and
    /// ip6_tunnel drops a packet whose outer source is one of the receiving host's addresses
    /// (recorded: fixtures/ipv6-outer-vip). IPv4's ipip is not judged: no recording shows
    /// what it does.
    pub wrapped_from_vip: Option<(IpAddr, FrameRef)>,
}

impl Class {
    /// Reached a real server without passing through the director: unwrapped at a real
    /// server, and not forwarded that way by the director.
    pub fn bypassed(&self) -> bool {
        self.unwrapped_at_rs.is_some()
            && !matches!(
                self.forwarding,
                Forwarding::Direct { .. } | Forwarding::Tunnel
            )
    }
}

/// [`Leg::request_reached`] the host whose capture holds the leg.
fn addressed_to_capturing_host(ctx: &Context, leg: &Leg) -> bool {
    let own = ctx
        .analysis
        .topology
        .vantage(leg.vantage)
        .and_then(|v| v.local_mac);
    leg.request_reached(own.as_slice())
}

/// Whether some director capture was running when the connection happened (reference clock).
pub fn director_watching(ctx: &Context, conn: &Connection) -> bool {
    let offsets = &ctx.analysis.clock_offsets;
    ctx.analysis
        .topology
        .vantages
        .iter()
        .filter(|v| v.role == Role::Director)
        .any(|v| {
            let off = offset_of(offsets, v.id).map_or(0, |o| o.offset_ns);
            match (v.first_ts_ns, v.last_ts_ns) {
                (Some(f), Some(l)) => conn.first_ts_ns + off >= f && conn.first_ts_ns + off <= l,
                _ => false,
            }
        })
}

fn wrapped_from_vip(conn: &Connection) -> Option<(IpAddr, FrameRef)> {
    let vip = conn.vip.ip();
    if !vip.is_ipv6() {
        return None;
    }
    conn.legs.iter().find_map(|l| {
        let w = l.request_wrapped.as_ref()?;
        let pair = w.outer.iter().find(|p| p.src == vip)?;
        Some((pair.dst, w.first))
    })
}

/// Classifies one connection.
pub fn classify(ctx: &Context, conn: &Connection) -> Class {
    let director_macs = ctx.director_macs();
    let watching = director_watching(ctx, conn);
    let answer = answer(ctx, conn);
    let unwrapped_at_rs = conn
        .legs
        .iter()
        .filter(|l| addressed_to_capturing_host(ctx, l))
        .flat_map(|l| l.evidence.iter())
        .filter(|e| e.kind == EvidenceKind::UnwrappedRequestAtRealServer)
        .find(|e| {
            ctx.analysis
                .topology
                .vantage(e.first.vantage())
                .is_some_and(|v| !is_raw_ip(v.link_type))
        })
        .map(|e| e.first);

    let mut forwarding = None;
    let mut to_mac = None;
    let mut director_vantage = None;
    for leg in ctx.legs_at(conn, Role::Director) {
        let Some(arrived) = &leg.request else {
            continue;
        };
        // Flooded past the director (or mirrored to it), not received by it.
        if !leg.request_reached(director_macs) {
            continue;
        }
        director_vantage = Some(leg.vantage);
        if leg.request_wrapped.is_some() {
            forwarding = Some(Forwarding::Tunnel);
            break;
        }
        // A copy leaving towards another host's MAC is DR-style forwarding.
        let elsewhere = (!director_macs.is_empty())
            .then(|| {
                arrived
                    .dst_macs
                    .iter()
                    .copied()
                    .find(|m| !director_macs.contains(m))
            })
            .flatten();
        forwarding = Some(match elsewhere {
            Some(mac) => {
                to_mac = Some(mac);
                Forwarding::Direct {
                    to_mac: Some(mac),
                    by_rules: false,
                }
            }
            None if answer.answered() => Forwarding::LeftUnseen,
            None => Forwarding::NotForwarded,
        });
    }
    let wrapped_at_rs = ctx
        .legs_at(conn, Role::RealServer)
        .any(|l| l.request_wrapped.is_some());
    // Arriving unwrapped at a real server from the director's MAC: the director sent it on
    // in direct-routing mode (it rewrites only the destination MAC); from any other MAC (a
    // client's, a router's) it did not pass through the director.
    let unwrapped_from_director = !director_macs.is_empty()
        && ctx.legs_at(conn, Role::RealServer).any(|l| {
            l.request_wrapped.is_none()
                && l.request.as_ref().is_some_and(|r| {
                    !r.src_macs.is_empty() && r.src_macs.iter().all(|m| director_macs.contains(m))
                })
                && ctx
                    .analysis
                    .topology
                    .vantage(l.vantage)
                    .is_some_and(|v| !is_raw_ip(v.link_type))
        });
    let rs_vantage_address = || {
        let at = unwrapped_at_rs?;
        let v = ctx.analysis.topology.vantage(at.vantage())?;
        v.address
            .or_else(|| v.local_mac.and_then(|m| ctx.address_of_mac(m)))
    };
    // NAT (-m): the director rewrote the destination to the server's own address, a flow no
    // leg of this connection holds; the reply from that address shows it, when the rules say
    // -m for it (recorded: the director's copy to 10.7.0.12 in fixtures/nat-server).
    let nat_server = conn
        .legs
        .iter()
        .filter_map(|l| l.reply_other_source.as_ref())
        .flat_map(|r| r.sources.iter())
        .map(|s| s.ip())
        .find(|a| ctx.forwarding_in_rules(*a) == Some("masq"));
    let real_server = conn
        .real_server
        .or_else(|| to_mac.and_then(|m| ctx.address_of_mac(m)))
        .or_else(rs_vantage_address)
        .or(nat_server);
    let forwarding = match forwarding {
        Some(Forwarding::LeftUnseen | Forwarding::NotForwarded) if nat_server.is_some() => {
            Some(Forwarding::Direct {
                to_mac: None,
                by_rules: true,
            })
        }
        f => f,
    };
    let forwarding = match forwarding {
        Some(f) => f,
        None if wrapped_at_rs => Forwarding::Tunnel,
        None if unwrapped_at_rs.is_some()
            && (unwrapped_from_director
                || real_server.is_some_and(|rs| ctx.forwarding_in_rules(rs) == Some("route"))) =>
        {
            Forwarding::Direct {
                to_mac: None,
                by_rules: true,
            }
        }
        None if watching => Forwarding::Missed,
        None => Forwarding::NotCaptured,
    };
    let forwarding = match forwarding {
        Forwarding::Direct { to_mac, .. } => Forwarding::Direct {
            to_mac,
            by_rules: real_server
                .is_some_and(|rs| matches!(ctx.forwarding_in_rules(rs), Some("route" | "masq"))),
        },
        f => f,
    };
    Class {
        forwarding,
        real_server,
        answer,
        wrapped_from_vip: wrapped_from_vip(conn),
        unwrapped_at_rs,
        director_watching: watching,
        director_vantage,
    }
}

/// What one vantage point saw come back for a connection.
fn leg_answer(leg: &Leg) -> Answer {
    if leg.reply.is_some() || leg.reply_other_source.is_some() {
        if leg.tcp.is_some_and(|t| t.server_rst && !t.syn_ack) {
            return Answer::Refused(leg.reply.as_ref().map(|r| r.first));
        }
        return Answer::Answered;
    }
    if leg.icmp_unreachable || leg.tcp.is_some_and(|t| t.server_rst) {
        let at = leg
            .evidence
            .iter()
            .find(|e| {
                matches!(
                    e.kind,
                    EvidenceKind::IcmpUnreachable | EvidenceKind::ResetFromServer
                )
            })
            .map(|e| e.first);
        return Answer::Refused(at);
    }
    Answer::Unanswered(
        leg.request_wrapped
            .as_ref()
            .or(leg.request.as_ref())
            .map(|d| d.first),
    )
}

fn answer(ctx: &Context, conn: &Connection) -> Answer {
    // A reply seen anywhere (the client's capture, the server's) answers the connection.
    if conn
        .legs
        .iter()
        .any(|l| matches!(leg_answer(l), Answer::Answered))
    {
        return Answer::Answered;
    }
    // Judge where the requests were seen arriving: at the real server when it was captured,
    // else where the client sent them. A real server's capture that began mid-connection (no
    // SYN seen there) cannot say whether the start was answered; the client's view can.
    let tcp = conn.proto == Proto::TCP;
    // The client acknowledging after its SYN got a SYN-ACK, wherever its packets were seen: a
    // capture that shows that ACK but no reply did not see the replies (a filter, a tunl0, a
    // director), it does not show an unanswered connection.
    if tcp
        && conn.legs.iter().any(|l| {
            l.tcp
                .is_some_and(|t| t.client_ack_ns.is_some() || t.client_fin_ns.is_some())
        })
    {
        return Answer::AnsweredByClientAck;
    }
    // Only where replies would have been seen (a leg with an outcome: not a director, not a
    // real server's tunl0 that replies do not cross).
    let rs_legs: Vec<&Leg> = ctx
        .legs_at(conn, Role::RealServer)
        .filter(|l| l.outcome.is_some())
        .filter(|l| l.request.is_some() || l.request_wrapped.is_some())
        .filter(|l| !tcp || l.tcp.is_some_and(|t| t.syn))
        .collect();
    let legs: Vec<&Leg> = if rs_legs.is_empty() {
        ctx.legs_at(conn, Role::Client)
            .filter(|l| l.outcome.is_some())
            .filter(|l| l.request.is_some())
            .collect()
    } else {
        rs_legs
    };
    if !legs.is_empty() {
        let answers: Vec<Answer> = legs.iter().map(|l| leg_answer(l)).collect();
        if let Some(r) = answers.iter().find(|a| matches!(a, Answer::Refused(_))) {
            return *r;
        }
        return answers[0];
    }
    // Only the director saw it. TCP only: the client's ACK after its SYN means it was answered;
    // a repeated SYN and nothing else means it was not. A single SYN proves nothing (the capture
    // may have stopped before the client could repeat it).
    if !tcp {
        return Answer::Unknown;
    }
    let mut unanswered = None;
    for leg in ctx.legs_at(conn, Role::Director) {
        let Some(req) = &leg.request else { continue };
        let Some(flags) = leg.tcp else { continue };
        if flags.client_rst_ns.is_some() {
            continue;
        }
        if flags.syn && req.retransmissions > 0 {
            unanswered = Some(Answer::UnansweredAtDirector(Some(req.first)));
        }
    }
    unanswered.unwrap_or(Answer::Unknown)
}

impl Class {
    /// Whether the checks may have something to say about a connection: it was not seen
    /// tunnelled, not answered, went around the director, or its legs hold evidence (resets,
    /// ICMP errors, replies from elsewhere). The connections a report keeps to draw.
    pub fn remarkable(&self, conn: &Connection) -> bool {
        self.forwarding != Forwarding::Tunnel
            || !self.answer.answered()
            || self.unwrapped_at_rs.is_some()
            || self.wrapped_from_vip.is_some()
            || conn.evidence().next().is_some()
    }
}
