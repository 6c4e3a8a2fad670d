//! `bypass`: no client traffic to the VIP reaches a real server without the director.

use std::collections::BTreeMap;

use super::classify::{Class, Forwarding};
use super::{of, Affected, CheckResult, Context, Explained, Status};
use crate::flows::Connection;
use crate::topology::Role;

pub const ID: &str = "bypass";

/// `bypass`, fed one connection at a time.
#[derive(Default)]
pub struct Bypass {
    /// Keyed by the host's name: the real server's address, else the capture it was seen in.
    hits: BTreeMap<String, Affected>,
    /// Connections whose way could be judged: seen at a real server, or at the director, or
    /// missing from a director capture that was running.
    total: usize,
}

impl Bypass {
    pub fn observe(&mut self, ctx: &Context, conn: &Connection, class: &Class) {
        let at_rs = ctx
            .legs_at(conn, Role::RealServer)
            .any(|l| l.request.is_some() || l.request_wrapped.is_some());
        let judged = at_rs
            || !matches!(class.forwarding, Forwarding::NotCaptured)
                && ctx.legs_at(conn, Role::Client).next().is_some();
        if !judged {
            return;
        }
        self.total += 1;
        // A raw-IP capture on a real server is its tunl0: everything there came through the
        // tunnel, already unwrapped, so only link-layer captures show a bypass ([`Class`]); a
        // request the director forwarded in direct-routing mode also arrives unwrapped, and
        // is `tunnel.encapsulation`'s finding, not this one.
        let unwrapped = class
            .unwrapped_at_rs
            .filter(|_| class.bypassed())
            .map(|at| {
                let host = match class.real_server {
                    Some(rs) => ctx.host(rs),
                    None => ctx.vantage_host(at.vantage()),
                };
                (
                    host,
                    ctx.packet(&at, "request to the VIP arriving without a tunnel"),
                )
            });
        let skipped_director = || {
            let client_got_reply = ctx
                .legs_at(conn, Role::Client)
                .find_map(|l| l.reply.as_ref());
            match client_got_reply {
                Some(r) if class.forwarding == Forwarding::Missed => Some((
                    class
                        .real_server
                        .map(|rs| ctx.host(rs))
                        .unwrap_or_else(|| "a real server the captures do not identify".into()),
                    ctx.packet(
                        &r.first,
                        "reply at the client for a connection the director never saw",
                    ),
                )),
                _ => None,
            }
        };
        if let Some((host, example)) = unwrapped.or_else(skipped_director) {
            self.hits
                .entry(host)
                .or_default()
                .add(conn, || Some(example));
        }
    }

    pub fn finish(self, ctx: &Context) -> CheckResult {
        let has_rs = ctx.has_role(Role::RealServer);
        let has_client_and_director = ctx.has_role(Role::Client) && ctx.has_role(Role::Director);
        if !has_rs && !has_client_and_director {
            return CheckResult::skip(
                ID,
                "needs a capture from a real server, or from both a client and the director",
            );
        }
        report(ctx, self)
    }
}

fn report(ctx: &Context, b: Bypass) -> CheckResult {
    let Bypass { hits, total } = b;
    // An IPv6 VIP is claimed by neighbour discovery, not ARP.
    let v6 = ctx.vip_is_v6();
    let findings = hits
        .into_iter()
        .map(|(name, affected)| {
            let text = Explained {
                summary: format!(
                    "{} connections reached {name} without passing through the director",
                    of(affected.len(), total)
                ),
                host: Some(name.clone()),
                likely_cause: if v6 {
                    "clients learnt this host's MAC for the VIP (it answered neighbour \
                     solicitations for the VIP), or a router sends VIP traffic to it directly; \
                     those connections skip the director and its scheduler"
                        .into()
                } else {
                    "clients learnt this host's MAC for the VIP (it answered ARP for the VIP), \
                     or a router sends VIP traffic to it directly; those connections skip the \
                     director and its scheduler"
                        .into()
                },
                fix: if v6 {
                    format!(
                        "on {name}: keep the VIP only on ip6tnl0 (ip -6 addr del VIP/128 from \
                         the interfaces facing the clients), so that it answers no neighbour \
                         solicitation for it; on the clients or the gateway: ip -6 neigh flush \
                         to forget the wrong MAC"
                    )
                } else {
                    format!(
                        "on {name}: block ARP for the VIP (arptables -A INPUT -d VIP -j DROP, or \
                         arp_ignore=1/arp_announce=2); on the clients or the gateway: ip neigh \
                         flush to forget the wrong MAC"
                    )
                },
            };
            affected.finding(ID, Status::Fail, total, text)
        })
        .collect();
    CheckResult::judged(
        ID,
        total,
        "no connection whose way to the real server the captures show",
        format!("all {total} connections whose way the captures show went through the director"),
        findings,
    )
}
