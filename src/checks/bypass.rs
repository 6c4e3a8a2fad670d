//! `bypass`: no client traffic to the VIP reaches a real server without the director.

use std::collections::BTreeMap;

use super::{of, Affected, CheckResult, Context, Explained, Status};
use crate::flows::join::is_raw_ip;
use crate::flows::{Connection, EvidenceKind};
use crate::topology::Role;

pub const ID: &str = "bypass";

/// Whether some director capture was running when the connection happened (reference clock).
fn director_watching(ctx: &Context, conn: &Connection) -> bool {
    let offsets = &ctx.analysis.clock_offsets;
    ctx.analysis
        .topology
        .vantages
        .iter()
        .filter(|v| v.role == Role::Director)
        .any(|v| {
            let off = offsets
                .iter()
                .find(|o| o.vantage == v.id)
                .map(|o| o.offset_ns)
                .unwrap_or(0);
            match (v.first_ts_ns, v.last_ts_ns) {
                (Some(f), Some(l)) => conn.first_ts_ns + off >= f && conn.first_ts_ns + off <= l,
                _ => false,
            }
        })
}

/// `bypass`, fed one connection at a time.
#[derive(Default)]
pub struct Bypass {
    /// Keyed by the host's name: the real server's address, else the capture it was seen in.
    hits: BTreeMap<String, Affected>,
    total: usize,
}

impl Bypass {
    pub fn observe(&mut self, ctx: &Context, conn: &Connection) {
        self.total += 1;
        // A raw-IP capture on a real server is its tunl0: everything there came through the
        // tunnel, already unwrapped, so only link-layer captures can show a bypass.
        let unwrapped = conn
            .evidence()
            .filter(|e| e.kind == EvidenceKind::UnwrappedRequestAtRealServer)
            .find(|e| {
                ctx.analysis
                    .topology
                    .vantage(e.first.vantage())
                    .is_some_and(|v| !is_raw_ip(v.link_type))
            })
            .map(|e| {
                let host = match conn.real_server {
                    Some(rs) => ctx.host(rs),
                    None => ctx.vantage_host(e.first.vantage()),
                };
                (host, ctx.packet(&e.first, e.detail.clone()))
            });
        let skipped_director = || {
            let client_got_reply = ctx
                .legs_at(conn, Role::Client)
                .find_map(|l| l.reply.as_ref());
            let seen_by_director = ctx.legs_at(conn, Role::Director).next().is_some();
            match client_got_reply {
                Some(r) if !seen_by_director && director_watching(ctx, conn) => Some((
                    conn.real_server
                        .map(|rs| ctx.host(rs))
                        .unwrap_or_else(|| "an unidentified real server".into()),
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
        report(self)
    }
}

fn report(b: Bypass) -> CheckResult {
    let Bypass { hits, total } = b;
    let findings = hits
        .into_iter()
        .map(|(name, affected)| {
            let text = Explained {
                summary: format!(
                    "{} connections reached {name} without passing through the director",
                    of(affected.len(), total)
                ),
                host: Some(name.clone()),
                likely_cause: "clients learnt this host's MAC for the VIP (it answered ARP for \
                               the VIP), or a router sends VIP traffic to it directly; those \
                               connections skip the director and its scheduler"
                    .into(),
                fix: format!(
                    "on {name}: block ARP for the VIP (arptables -A INPUT -d VIP -j DROP, or \
                     arp_ignore=1/arp_announce=2); on the clients or the gateway: ip neigh \
                     flush to forget the wrong MAC"
                ),
            };
            affected.finding(ID, Status::Fail, total, text)
        })
        .collect();
    CheckResult::judged(
        ID,
        total,
        "no connection to a VIP in the captures",
        format!("all {total} connections went through the director"),
        findings,
    )
}
