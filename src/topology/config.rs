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
    pub service: Service,
    pub scheduler: Option<String>,
    pub real_servers: Vec<ExpectedRealServer>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExpectedRealServer {
    pub addr: IpAddr,
    pub port: u16,
    /// `tunnel`, `route` (direct routing), `masq` (NAT), as ipvsadm names them.
    pub forwarding: String,
    pub weight: Option<u32>,
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

/// The rules as read by [`super::rules`], in the plain form compared here. Firewall-mark
/// services carry no address to compare with and are left out, with a note saying so.
pub fn expected_from_rules(rules: &super::rules::Rules) -> (Vec<ExpectedService>, Vec<String>) {
    use super::rules::{Forward, Proto as RuleProto, VirtualService};
    let mut out = Vec::new();
    let mut notes = rules.notes.clone();
    for s in &rules.services {
        let (proto, vip) = match s.service {
            VirtualService::Addr { proto, vip } => (proto, vip),
            VirtualService::FwMark { mark, .. } => {
                notes.push(format!(
                    "firewall-mark service {mark} not compared with the traffic (no address)"
                ));
                continue;
            }
        };
        let proto = match proto {
            RuleProto::Tcp => super::Proto::TCP,
            RuleProto::Udp => super::Proto::UDP,
            RuleProto::Sctp => super::Proto(132),
            RuleProto::Ip => continue,
        };
        out.push(ExpectedService {
            service: Service {
                vip: vip.ip(),
                port: vip.port(),
                proto,
            },
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
                })
                .collect(),
        });
    }
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
    if expected.iter().any(|e| traffic.contains(&e.service)) {
        return None;
    }
    let list = |it: &mut dyn Iterator<Item = &Service>| {
        let mut v: Vec<String> = it.map(|s| s.to_string()).collect();
        v.sort();
        v.dedup();
        v.join(", ")
    };
    Some(format!(
        "they define {} and the captures show traffic to {}",
        list(&mut expected.iter().map(|e| &e.service)),
        list(&mut traffic.iter())
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
                message: format!("{n} connection(s) to {svc}, which the rules do not define"),
            });
        }
    }
    for e in expected {
        let svc = &e.service;
        for rs in &e.real_servers {
            if rs.forwarding != "tunnel" {
                out.push(ConfigFinding {
                    kind: "forwarding_not_tunnel",
                    service: svc.clone(),
                    real_server: Some(rs.addr),
                    message: format!(
                        "real server {} of {svc} is configured with forwarding '{}', not tunnel",
                        rs.addr, rs.forwarding
                    ),
                });
            }
        }
        let Some(by_rs) = observed.get(svc) else {
            out.push(ConfigFinding {
                kind: "service_without_traffic",
                service: svc.clone(),
                real_server: None,
                message: format!("{svc} is configured but no connection to it was seen"),
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
                        "real server {} of {svc}: no connection identified as its, but \
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
                        "real server {} of {svc} (weight {}) got no connection",
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
                        "{n} connection(s) of {svc} went to {rs}, which the rules do not list"
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
                scheduler: Some("rr".into()),
                real_servers: vec![rs("10.0.0.2", "tunnel"), rs("10.0.0.3", "route")],
            },
            ExpectedService {
                service: svc(443),
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
}
