//! The expected configuration (what `ipvsadm -Sn` / `-Ln` said) against what the traffic did.
//!
//! The parsers live in [`super::rules`]; this module only compares, on a plain form of the
//! rules, so that it does not depend on which command printed them.

use super::Service;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

/// One configured virtual service and its real servers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExpectedService {
    /// For a firewall-mark service, a service of the traffic it was matched with
    /// ([`resolve_marks`]), or the family's unspecified address and port 0 until then.
    pub service: Service,
    /// The firewall mark of an `ipvsadm -A -f MARK` service: one entry per service of the
    /// traffic it holds, all sharing one scheduler.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mark: Option<u32>,
    pub scheduler: Option<String>,
    pub real_servers: Vec<ExpectedRealServer>,
}

impl ExpectedService {
    /// How the rules name it: `tcp 10.0.0.1:80`, or `fwmark 1` (`fwmark 1 (tcp 10.0.0.1:80)`
    /// once matched with the traffic).
    pub fn name(&self) -> String {
        match self.mark {
            None => self.service.to_string(),
            Some(m) if self.service.port == 0 => format!("fwmark {m}"),
            Some(m) => format!("fwmark {m} ({})", self.service),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExpectedRealServer {
    pub addr: IpAddr,
    pub port: u16,
    /// `tunnel`, `route` (direct routing), `masq` (NAT), as ipvsadm names them.
    pub forwarding: String,
    pub weight: Option<u32>,
    /// `ipip`, `gue` or `gre` (`--tun-type`), when the rules say.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tunnel_type: Option<String>,
    /// The GUE tunnel's UDP port (`--tun-port`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tunnel_port: Option<u16>,
}

/// A disagreement between configuration and traffic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConfigFinding {
    /// `service_not_configured`, `service_without_traffic`, `rs_without_connections`,
    /// `rs_not_configured`, `forwarding_not_tunnel`.
    pub kind: &'static str,
    pub service: Service,
    pub real_server: Option<IpAddr>,
    pub message: String,
}

/// The rules as read by [`super::rules`], in the plain form compared here. A firewall-mark
/// service has no address to compare with until [`resolve_marks`] matches it with the
/// traffic: until then its entry holds the family's unspecified address and port 0.
pub fn expected_from_rules(rules: &super::rules::Rules) -> (Vec<ExpectedService>, Vec<String>) {
    use super::rules::{Forward, Proto as RuleProto, VirtualService};
    let mut out = Vec::new();
    let notes = rules.notes.clone();
    for s in &rules.services {
        let (service, mark) = match s.service {
            VirtualService::Addr { proto, vip } => {
                let proto = match proto {
                    RuleProto::Tcp => super::Proto::TCP,
                    RuleProto::Udp => super::Proto::UDP,
                    RuleProto::Sctp => super::Proto(132),
                    RuleProto::Ip => continue,
                };
                let service = Service {
                    vip: vip.ip(),
                    port: vip.port(),
                    proto,
                };
                (service, None)
            }
            VirtualService::FwMark { mark, ipv6 } => (unmatched_mark(ipv6), Some(mark)),
        };
        out.push(ExpectedService {
            service,
            mark,
            scheduler: Some(s.scheduler.clone()),
            real_servers: s
                .servers
                .iter()
                .map(|r| ExpectedRealServer {
                    addr: r.addr.ip(),
                    port: r.addr.port(),
                    forwarding: match r.forward {
                        Forward::Tunnel => "tunnel",
                        Forward::Route => "route",
                        Forward::Masq => "masq",
                        Forward::Local => "local",
                    }
                    .into(),
                    weight: Some(r.weight),
                    tunnel_type: r.tunnel_type.clone(),
                    tunnel_port: r.tunnel_port,
                })
                .collect(),
        });
    }
    (out, notes)
}

/// The placeholder service of a firewall-mark rule not (yet) matched with the traffic.
fn unmatched_mark(ipv6: bool) -> Service {
    let vip = if ipv6 {
        IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)
    } else {
        IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)
    };
    Service {
        vip,
        port: 0,
        proto: super::Proto::TCP,
    }
}

/// Matches firewall-mark services with the services of the traffic. The mark is set by a
/// netfilter rule on the director that no capture shows, so the traffic decides: a service
/// of the traffic that no address rule defines belongs to the mark of its family whose real
/// servers include every real server its connections were tunnelled to (`reached`); with
/// several such marks, to none (a note says so). Each match becomes an entry of its own with
/// the mark's scheduler and servers; a mark that nothing matched keeps its placeholder, which
/// the comparison reports as configured but without traffic.
pub fn resolve_marks(
    expected: Vec<ExpectedService>,
    traffic: &[Service],
    reached: &BTreeMap<Service, BTreeSet<IpAddr>>,
) -> (Vec<ExpectedService>, Vec<String>) {
    let (marks, mut out): (Vec<_>, Vec<_>) = expected.into_iter().partition(|e| e.mark.is_some());
    if marks.is_empty() {
        return (out, Vec::new());
    }
    let mut notes = Vec::new();
    let mut matched = vec![false; marks.len()];
    let defined: BTreeSet<Service> = out.iter().map(|e| e.service.clone()).collect();
    for svc in traffic.iter().filter(|s| !defined.contains(s)) {
        let servers = reached.get(svc);
        let fits: Vec<usize> = (0..marks.len())
            .filter(|&i| marks[i].service.vip.is_ipv6() == svc.vip.is_ipv6())
            .filter(|&i| {
                servers.is_none_or(|set| {
                    set.iter()
                        .all(|a| marks[i].real_servers.iter().any(|r| r.addr == *a))
                })
            })
            .collect();
        match fits.as_slice() {
            [i] => {
                matched[*i] = true;
                out.push(ExpectedService {
                    service: svc.clone(),
                    ..marks[*i].clone()
                });
            }
            [] => {}
            several => notes.push(format!(
                "{svc} may belong to any of the firewall-mark services {}: compared with none",
                several
                    .iter()
                    .filter_map(|&i| marks[i].mark.map(|m| m.to_string()))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }
    out.extend(
        marks
            .into_iter()
            .zip(matched)
            .filter(|(_, m)| !m)
            .map(|(e, _)| e),
    );
    (out, notes)
}

/// When the rules describe none of the services the traffic used (rules of another director,
/// or for another VIP, port or protocol), says so: the services of each side, in words. Every
/// comparison with such rules would only repeat it, finding by finding. None when a service is
/// in both, or when either side has none (nothing to tell apart).
pub fn unrelated(expected: &[ExpectedService], traffic: &[Service]) -> Option<String> {
    if expected.is_empty() || traffic.is_empty() {
        return None;
    }
    // A firewall-mark rule may hold any service of its family: only the traffic tells.
    let holds = |e: &ExpectedService, s: &Service| match e.mark {
        Some(_) => e.service.vip.is_ipv6() == s.vip.is_ipv6(),
        None => e.service == *s,
    };
    if expected.iter().any(|e| traffic.iter().any(|s| holds(e, s))) {
        return None;
    }
    let list = |it: &mut dyn Iterator<Item = String>| {
        let mut v: Vec<String> = it.collect();
        v.sort();
        v.dedup();
        v.join(", ")
    };
    Some(format!(
        "they define {} and the captures show traffic to {}",
        list(&mut expected.iter().map(ExpectedService::name)),
        list(&mut traffic.iter().map(Service::to_string))
    ))
}

/// How many connections each service sent to each real server (None: RS not known).
pub type Observed = BTreeMap<Service, BTreeMap<Option<IpAddr>, u64>>;

pub fn compare(expected: &[ExpectedService], observed: &Observed) -> Vec<ConfigFinding> {
    let mut out = Vec::new();
    let configured: BTreeSet<&Service> = expected.iter().map(|e| &e.service).collect();
    for (svc, by_rs) in observed {
        if !configured.contains(svc) {
            let n: u64 = by_rs.values().sum();
            out.push(ConfigFinding {
                kind: "service_not_configured",
                service: svc.clone(),
                real_server: None,
                message: format!(
                    "{} to {svc}, which the rules do not define",
                    crate::words::plural(n, "connection", "connections")
                ),
            });
        }
    }
    // A firewall-mark service is one service however many of the traffic's it holds: its
    // entries are judged together, once, under the first.
    let mut marked: BTreeMap<u32, BTreeMap<Option<IpAddr>, u64>> = BTreeMap::new();
    for e in expected {
        if let (Some(m), Some(by_rs)) = (e.mark, observed.get(&e.service)) {
            let sum = marked.entry(m).or_default();
            for (rs, n) in by_rs {
                *sum.entry(*rs).or_default() += n;
            }
        }
    }
    let mut marks_done = BTreeSet::new();
    for e in expected {
        let svc = &e.service;
        if let Some(m) = e.mark {
            if !marks_done.insert(m) {
                continue;
            }
        }
        let svc_name = match e.mark {
            Some(m) => format!("fwmark {m}"),
            None => svc.to_string(),
        };
        for rs in &e.real_servers {
            if rs.forwarding != "tunnel" {
                out.push(ConfigFinding {
                    kind: "forwarding_not_tunnel",
                    service: svc.clone(),
                    real_server: Some(rs.addr),
                    message: format!(
                        "real server {} of {svc_name} is configured with forwarding '{}', not \
                         tunnel",
                        rs.addr, rs.forwarding
                    ),
                });
            }
        }
        let by_rs = match e.mark {
            Some(m) => marked.get(&m),
            None => observed.get(svc),
        };
        let Some(by_rs) = by_rs else {
            out.push(ConfigFinding {
                kind: "service_without_traffic",
                service: svc.clone(),
                real_server: None,
                message: format!(
                    "{} is configured but no connection to it was seen",
                    e.name()
                ),
            });
            continue;
        };
        // Connections whose real server the captures do not show may have gone to any
        // server that got none we can see: "not identified", not "got no connection".
        let unidentified = by_rs.get(&None).copied().unwrap_or(0);
        for rs in &e.real_servers {
            if by_rs.get(&Some(rs.addr)).copied().unwrap_or(0) == 0 && unidentified > 0 {
                out.push(ConfigFinding {
                    kind: "rs_not_identified",
                    service: svc.clone(),
                    real_server: Some(rs.addr),
                    message: format!(
                        "real server {} of {svc_name}: no connection identified as its, but \
                         {unidentified} connection(s) went to a real server the captures do \
                         not identify (not captured)",
                        rs.addr
                    ),
                });
                continue;
            }
            if by_rs.get(&Some(rs.addr)).copied().unwrap_or(0) == 0 {
                out.push(ConfigFinding {
                    kind: "rs_without_connections",
                    service: svc.clone(),
                    real_server: Some(rs.addr),
                    message: format!(
                        "real server {} of {svc_name} (weight {}) got no connection",
                        rs.addr,
                        rs.weight.map_or("?".into(), |w| w.to_string())
                    ),
                });
            }
        }
        for (rs, n) in by_rs {
            let Some(rs) = rs else { continue };
            if !e.real_servers.iter().any(|r| r.addr == *rs) {
                out.push(ConfigFinding {
                    kind: "rs_not_configured",
                    service: svc.clone(),
                    real_server: Some(*rs),
                    message: format!(
                        "{} of {svc_name} went to {rs}, which the rules do not list",
                        crate::words::plural(*n, "connection", "connections")
                    ),
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::Proto;

    fn svc(port: u16) -> Service {
        Service {
            vip: "10.0.0.100".parse().unwrap(),
            port,
            proto: Proto::TCP,
        }
    }
    fn rs(a: &str, fwd: &str) -> ExpectedRealServer {
        ExpectedRealServer {
            addr: a.parse().unwrap(),
            port: 80,
            forwarding: fwd.into(),
            weight: Some(1),
            tunnel_type: None,
            tunnel_port: None,
        }
    }

    #[test]
    fn rules_from_ipvsadm_save_become_expected_services() {
        let text = "-A -t 10.0.0.100:80 -s rr\n-a -t 10.0.0.100:80 -r 10.0.0.2:80 -i -w 1\n\
                    -a -t 10.0.0.100:80 -r 10.0.0.3:8080 -g -w 3\n";
        let rules = crate::topology::rules::parse_rules(text, "test").expect("parses");
        let (e, notes) = expected_from_rules(&rules);
        assert!(notes.is_empty());
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].service, svc(80));
        assert_eq!(e[0].scheduler.as_deref(), Some("rr"));
        let rs: Vec<(IpAddr, u16, &str, Option<u32>)> = e[0]
            .real_servers
            .iter()
            .map(|r| (r.addr, r.port, r.forwarding.as_str(), r.weight))
            .collect();
        assert_eq!(
            rs,
            vec![
                ("10.0.0.2".parse().unwrap(), 80, "tunnel", Some(1)),
                ("10.0.0.3".parse().unwrap(), 8080, "route", Some(3)),
            ]
        );
    }

    #[test]
    fn rules_for_other_services_are_unrelated_to_the_traffic() {
        let rules = |port| ExpectedService {
            service: svc(port),
            mark: None,
            scheduler: Some("rr".into()),
            real_servers: vec![rs("10.0.0.2", "tunnel")],
        };
        let why = unrelated(&[rules(443)], &[svc(80)]).expect("unrelated");
        assert_eq!(
            why,
            "they define tcp 10.0.0.100:443 and the captures show traffic to tcp 10.0.0.100:80"
        );
        let udp = Service {
            proto: Proto::UDP,
            ..svc(80)
        };
        assert!(unrelated(&[rules(80)], std::slice::from_ref(&udp)).is_some());
        // One service in common is enough: the rest is the comparison's business.
        assert_eq!(unrelated(&[rules(80), rules(443)], &[svc(80), udp]), None);
        assert_eq!(unrelated(&[], &[svc(80)]), None);
        assert_eq!(unrelated(&[rules(80)], &[]), None);
    }

    #[test]
    fn reports_each_kind_of_disagreement() {
        let expected = vec![
            ExpectedService {
                service: svc(80),
                mark: None,
                scheduler: Some("rr".into()),
                real_servers: vec![rs("10.0.0.2", "tunnel"), rs("10.0.0.3", "route")],
            },
            ExpectedService {
                service: svc(443),
                mark: None,
                scheduler: None,
                real_servers: vec![rs("10.0.0.2", "tunnel")],
            },
        ];
        let mut observed = Observed::new();
        observed
            .entry(svc(80))
            .or_default()
            .insert(Some("10.0.0.2".parse().unwrap()), 3);
        observed
            .entry(svc(80))
            .or_default()
            .insert(Some("10.0.0.9".parse().unwrap()), 1);
        observed.entry(svc(8080)).or_default().insert(None, 2);
        let kinds: Vec<(&str, Option<IpAddr>)> = compare(&expected, &observed)
            .iter()
            .map(|f| (f.kind, f.real_server))
            .collect();
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        assert!(kinds.contains(&("service_not_configured", None)));
        assert!(kinds.contains(&("forwarding_not_tunnel", ip("10.0.0.3"))));
        assert!(kinds.contains(&("rs_without_connections", ip("10.0.0.3"))));
        assert!(kinds.contains(&("rs_not_configured", ip("10.0.0.9"))));
        assert!(kinds.contains(&("service_without_traffic", None)));
        assert!(!kinds.contains(&("rs_without_connections", ip("10.0.0.2"))));
        assert_eq!(kinds.len(), 5);
    }

    #[test]
    fn firewall_mark_services_take_the_traffics_services_by_their_servers() {
        let text = "-A -f 1 -s rr\n-a -f 1 -r 10.0.0.2:0 -i -w 1\n-a -f 1 -r 10.0.0.3:0 -i -w 1\n\
                    -A -f 2 -s wrr\n-a -f 2 -r 10.0.0.4:0 -i -w 1\n\
                    -A -f 3 -s rr\n-a -f 3 -r 10.0.0.5:0 -i -w 1\n\
                    -A -t 10.0.0.100:22 -s rr\n-a -t 10.0.0.100:22 -r 10.0.0.2:22 -i -w 1\n";
        let rules = crate::topology::rules::parse_rules(text, "test").expect("parses");
        let (e, _) = expected_from_rules(&rules);
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let mut reached = BTreeMap::new();
        reached.insert(svc(80), BTreeSet::from([ip("10.0.0.2"), ip("10.0.0.3")]));
        reached.insert(svc(8080), BTreeSet::from([ip("10.0.0.3")]));
        reached.insert(svc(443), BTreeSet::from([ip("10.0.0.4")]));
        reached.insert(svc(22), BTreeSet::from([ip("10.0.0.2")]));
        let traffic = [svc(80), svc(8080), svc(443), svc(22)];
        let (resolved, notes) = resolve_marks(e, &traffic, &reached);
        assert!(notes.is_empty(), "{notes:?}");
        let of = |port: u16| {
            resolved
                .iter()
                .find(|r| r.service == svc(port))
                .map(|r| r.mark)
        };
        assert_eq!(of(80), Some(Some(1)));
        assert_eq!(of(8080), Some(Some(1)));
        assert_eq!(of(443), Some(Some(2)));
        // An address rule keeps its own service.
        assert_eq!(of(22), Some(None));
        // Mark 3 matched nothing: configured, without traffic, named by its mark.
        let mut observed = Observed::new();
        for (s, set) in &reached {
            for a in set {
                observed.entry(s.clone()).or_default().insert(Some(*a), 1);
            }
        }
        let found: Vec<String> = compare(&resolved, &observed)
            .into_iter()
            .map(|f| f.message)
            .collect();
        assert_eq!(
            found,
            vec!["fwmark 3 is configured but no connection to it was seen".to_string()]
        );
    }
}
