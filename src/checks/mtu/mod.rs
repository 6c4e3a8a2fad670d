//! `mtu`: the tunnel costs 20 bytes or more; warn when the path shows it (ICMP fragmentation
//! needed, packet too big), and say in advance when the handshakes' MSS leaves no room for it
//! ([`predict`]).

pub mod predict;

use std::collections::BTreeMap;

use super::affected::{Examples, FilterParts};
use super::classify::Class;
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
    /// The next-hop MTU the message gives, when the director sent it (from the VIP): the
    /// room inside the tunnel.
    director_mtu: Option<u32>,
}

/// `mtu`, fed one connection at a time.
#[derive(Default)]
pub struct Mtu {
    hits: BTreeMap<String, Messages>,
    total: usize,
    prediction: predict::Prediction,
    /// The service ports seen (for the fix's `--sport`, when there is one).
    ports: Vec<u16>,
}

impl Mtu {
    pub fn observe(&mut self, ctx: &Context, conn: &Connection, class: &Class) {
        self.total += 1;
        self.prediction.observe(ctx, conn, class);
        if !self.ports.contains(&conn.vip.port()) && self.ports.len() < 2 {
            self.ports.push(conn.vip.port());
        }
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
            let at_director = ctx.analysis.topology.role_of(v) == Role::Director;
            m.seen_at_director |= at_director;
            // From the VIP: the director's own message (routers beyond use their address).
            if e.detail.contains(&format!("from {} ", conn.vip.ip())) {
                m.director_mtu = m.director_mtu.or_else(|| mtu_in(&e.detail));
            }
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
    let Mtu {
        hits,
        total,
        prediction,
        ports,
    } = mtu;
    let port = match ports.as_slice() {
        [one] => Some(*one),
        _ => None,
    };
    // The tunnel of the real servers (the first one's: one deployment, one kind).
    let first = ctx.first_encap().unwrap_or_else(|| {
        let any = std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED);
        Encap::from_rules(None, None, any, any)
    });
    let icmp_inner = hits
        .values()
        .find_map(|m| m.director_mtu)
        .map(|inner| (inner, first.overhead()));
    let path = predict::PathMtu::of(icmp_inner, prediction.largest_outer.map(|(l, _)| l));
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
        let overhead = first.overhead();
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
                "the {} tunnel adds {overhead} bytes: a full-size client segment no longer \
                 fits the director-to-server path ({} bytes), so the director asks the client \
                 to send smaller packets and the first attempt is lost",
                first.name(),
                path.bytes
            ),
            fix: predict::fix(ctx, &first, path.bytes, &[], port),
        });
    }
    let mut fitting = Vec::new();
    for (key, g) in prediction.groups {
        let (mss, _, inner_v6, overhead) = key;
        let wrapped = u32::from(mss) + predict::headers(inner_v6) + overhead;
        if wrapped > path.bytes {
            findings.push(predict::finding(ctx, g, key, &path, port, total));
        } else {
            fitting.push(format!(
                "{} with MSS {mss} ({wrapped} bytes wrapped in {})",
                crate::words::plural(g.conns as u64, "connection", "connections"),
                g.encap.name()
            ));
        }
    }
    if findings.is_empty() && fitting.is_empty() {
        if total == 0 {
            return CheckResult::skip(ID, "no connection to the VIP in the captures");
        }
        let why = if prediction.without_mss > 0 {
            "no tunnelled TCP handshake was captured, to predict from"
        } else {
            "no tunnelled TCP connection, to predict from (UDP datagrams are sized by the \
             application)"
        };
        return CheckResult::pass(
            ID,
            format!("no ICMP fragmentation-needed about the service's connections; {why}"),
        );
    }
    let pass = format!(
        "full-size requests fit the {}-byte path: {}; no ICMP fragmentation-needed",
        path.bytes,
        fitting.join(", ")
    );
    CheckResult::from_findings(ID, pass, findings)
}

/// The next-hop MTU in an ICMP evidence detail ("..., MTU 1480").
fn mtu_in(detail: &str) -> Option<u32> {
    let (_, rest) = detail.rsplit_once("MTU ")?;
    rest.split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}
