//! `mtu`: the tunnel costs 20 bytes; warn when the path shows it (ICMP fragmentation needed,
//! packet too big).

use std::collections::BTreeMap;

use super::affected::{Examples, FilterParts};
use super::{CheckResult, Context, Finding, Status};
use crate::flows::{Connection, EvidenceKind, Outcome};
use crate::topology::encap::Encap;
use crate::topology::{Role, VantageId};

pub const ID: &str = "mtu";

/// The connections one kind of ICMP message (its text names sender, receiver and MTU) was
/// about, how many such messages each capture saw, and examples.
#[derive(Default)]
struct Messages {
    /// Connections they were about, and of those, the ones that completed.
    conns: usize,
    recovered: usize,
    /// The connection last counted: its legs may each have seen the message.
    last_conn: Option<u64>,
    filter: FilterParts,
    per_vantage: BTreeMap<VantageId, u64>,
    examples: Examples,
    seen_at_director: bool,
}

/// `mtu`, fed one connection at a time.
#[derive(Default)]
pub struct Mtu {
    hits: BTreeMap<String, Messages>,
    total: usize,
}

impl Mtu {
    pub fn observe(&mut self, ctx: &Context, conn: &Connection) {
        self.total += 1;
        for e in conn
            .evidence()
            .filter(|e| e.kind == EvidenceKind::IcmpFragNeeded)
        {
            let m = self.hits.entry(e.detail.clone()).or_default();
            if m.last_conn != Some(conn.id) {
                m.last_conn = Some(conn.id);
                m.conns += 1;
                m.recovered += usize::from(conn.outcome == Outcome::Completed);
                m.filter.add(conn);
            }
            let v = e.first.vantage();
            *m.per_vantage.entry(v).or_default() += e.count;
            m.seen_at_director |= ctx.analysis.topology.role_of(v) == Role::Director;
            m.examples
                .offer(conn, || Some(ctx.packet(&e.first, e.detail.clone())));
        }
    }

    pub fn finish(self, ctx: &Context) -> CheckResult {
        if self.total == 0 {
            return CheckResult::skip(ID, "no connection to the VIP in the captures");
        }
        report(ctx, self)
    }
}

fn report(ctx: &Context, mtu: Mtu) -> CheckResult {
    let Mtu { hits, total } = mtu;
    let mut findings = Vec::new();
    for (detail, m) in hits {
        // One message crosses several captures: count it as the capture that saw most did.
        let messages = m.per_vantage.values().copied().max().unwrap_or(0);
        let recovered = m.recovered;
        // The director sends "fragmentation needed" from the VIP when a client segment plus the
        // tunnel header exceeds its path MTU; a capture on it shows the message leaving.
        let host = if m.seen_at_director {
            ctx.analysis
                .topology
                .directors
                .first()
                .map(|d| format!("the director {}", ctx.host(d.addr)))
        } else {
            None
        };
        // The tunnel of the real servers (the first one's: one deployment, one kind), and
        // the MSS that fits a 1500-byte path inside it (IPv4 20 or IPv6 40, TCP 20).
        let encap = ctx.first_encap().unwrap_or_else(|| {
            let any = std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED);
            Encap::from_rules(None, None, any, any)
        });
        let overhead = encap.overhead();
        let mss = 1500 - overhead - if encap.inner_v6 { 60 } else { 40 };
        let tables = if encap.inner_v6 {
            "ip6tables"
        } else {
            "iptables"
        };
        findings.push(Finding {
            snapshot: Vec::new(),
            check: ID,
            severity: Status::Warn,
            summary: format!(
                "{messages} ICMP fragmentation-needed messages for {} of {total} connections \
                 ({detail}); {recovered} of them completed afterwards (path MTU discovery \
                 recovered, after a lost first attempt)",
                m.conns
            ),
            host,
            count: m.conns as u64,
            out_of: Some(total as u64),
            evidence: m.examples.into_vec(),
            display_filter: m.filter.filter().map(|f| {
                format!("(icmp.type == 3 && icmp.code == 4) || icmpv6.type == 2 || ({f})")
            }),
            likely_cause: format!(
                "the {} tunnel adds {overhead} bytes: a full-size client segment (1500 bytes) \
                 no longer fits the director-to-server path, so the director asks the client \
                 to send smaller packets and the first attempt is lost",
                encap.name()
            ),
            fix: format!(
                "clamp the MSS to {mss} for traffic to the VIP (on the clients' router or the \
                 director: {tables} -t mangle -A PREROUTING -p tcp -d VIP --tcp-flags SYN,RST \
                 SYN -j TCPMSS --set-mss {mss}), or raise the MTU of the director-to-server \
                 path to {mtu} (ip link set eth0 mtu {mtu} on the director and the real \
                 servers)",
                mtu = 1500 + overhead
            ),
        });
    }
    CheckResult::from_findings(
        ID,
        "no ICMP fragmentation-needed about the service's connections",
        findings,
    )
}
