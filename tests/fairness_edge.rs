//! Odd inputs give a report, never a panic: empty services, no servers, every weight 0,
//! IPv6, more servers than the replay permutes, times out of order.

use lvscheck::fairness::{
    analyse, ConnObs, FairnessInput, Proto, Scheduler, Server, ServiceConfig, ServiceObs, TcpMarks,
};
use lvscheck::report::fairness::render;
use std::net::SocketAddr;

const S: i64 = 1_000_000_000;

fn conn(client: &str, rs: Option<&str>, t: i64) -> ConnObs {
    ConnObs {
        client: client.parse().unwrap(),
        rs: rs.map(|r| r.parse().unwrap()),
        start_ns: t,
        last_ns: t + S,
        tcp: Some(TcpMarks {
            syn_ns: Some(t),
            ack_ns: Some(t + 1),
            fin_ns: Some(t + S),
            rst_ns: None,
        }),
        packets_to_server: 1,
        bytes_to_server: 1,
        packets_to_client: 1,
        bytes_to_client: 1,
        response_time_ns: None,
        first_frame: None,
    }
}

fn service(vip: &str, cfg: Option<ServiceConfig>, connections: Vec<ConnObs>) -> FairnessInput {
    FairnessInput {
        services: vec![ServiceObs {
            proto: Proto::Tcp,
            vip: vip.parse().unwrap(),
            mark: None,
            config: cfg,
            connections,
        }],
        capture_span: None,
        timeouts: Default::default(),
    }
}

fn cfg(s: Scheduler, servers: &[(&str, u32)], port: u16) -> ServiceConfig {
    ServiceConfig {
        scheduler: s,
        persistence_s: None,
        netmask_prefix: None,
        sh_port: false,
        servers: servers
            .iter()
            .map(|&(ip, weight)| Server {
                addr: SocketAddr::new(ip.parse().unwrap(), port),
                weight,
            })
            .collect(),
        order_known: false,
    }
}

#[test]
fn empty_input_and_empty_service() {
    let r = analyse(&FairnessInput::default());
    assert!(r.services.is_empty());
    assert!(render(&r).contains("No virtual service"));
    let r = analyse(&service(
        "192.0.2.1:80",
        Some(cfg(Scheduler::Wrr, &[], 80)),
        vec![],
    ));
    let svc = &r.services[0];
    assert_eq!(svc.connections, 0);
    assert!(svc.fairness.chi_square.is_none());
    render(&r);
}

#[test]
fn every_weight_zero_is_said_not_crashed() {
    let conns = vec![conn("198.51.100.1:1000", Some("10.0.0.1"), 0)];
    let r = analyse(&service(
        "192.0.2.1:80",
        Some(cfg(Scheduler::Wrr, &[("10.0.0.1", 0), ("10.0.0.2", 0)], 80)),
        conns,
    ));
    let svc = &r.services[0];
    assert!(svc
        .notes
        .iter()
        .any(|n| n.contains("every configured weight is 0")));
    // The kernel would have refused the connection: the replay says none was expected.
    let c = svc.conformance.as_ref().unwrap();
    assert_eq!(c.mismatches, 1);
    assert_eq!(c.first_mismatches[0].expected, None);
}

#[test]
fn only_unattributed_connections() {
    let conns = vec![
        conn("198.51.100.1:1000", None, 0),
        conn("198.51.100.2:1000", None, S),
    ];
    let r = analyse(&service(
        "192.0.2.1:80",
        Some(cfg(Scheduler::Lc, &[("10.0.0.1", 1), ("10.0.0.2", 1)], 80)),
        conns,
    ));
    let svc = &r.services[0];
    assert_eq!(svc.unattributed, 2);
    let c = svc.conformance.as_ref().unwrap();
    assert_eq!(c.decisions, 0);
    assert_eq!(svc.conforms(), None);
    render(&r);
}

#[test]
fn ipv6_service_with_sh() {
    let servers = [("2001:db8::11", 1), ("2001:db8::12", 1)];
    let conns = vec![
        conn("[2001:db8:1::1]:1000", Some("2001:db8::11"), 0),
        conn("[2001:db8:1::1]:1001", Some("2001:db8::11"), S),
    ];
    let r = analyse(&service(
        "[2001:db8::80]:443",
        Some(cfg(Scheduler::Sh, &servers, 443)),
        conns,
    ));
    let c = r.services[0].conformance.as_ref().unwrap();
    // One client, one bucket: both connections on the same server, and some order fits.
    assert_eq!(c.matched, 2);
    assert!(render(&r).contains("2001:db8::11"));
}

#[test]
fn more_servers_than_permuted_learns_from_first_assignments() {
    // rr over six servers in a kernel order that is not the sorted one.
    let ips = [
        "10.0.0.6", "10.0.0.3", "10.0.0.1", "10.0.0.5", "10.0.0.2", "10.0.0.4",
    ];
    let conns: Vec<ConnObs> = (0..24)
        .map(|k| {
            conn(
                &format!("198.51.100.{}:1000", k + 1),
                Some(ips[k % 6]),
                k as i64 * S,
            )
        })
        .collect();
    let mut sorted: Vec<(&str, u32)> = ips.iter().map(|&ip| (ip, 1)).collect();
    sorted.sort();
    let r = analyse(&service(
        "192.0.2.1:80",
        Some(cfg(Scheduler::Rr, &sorted, 80)),
        conns,
    ));
    let c = r.services[0].conformance.as_ref().unwrap();
    assert_eq!((c.decisions, c.matched), (24, 24));
    assert!(
        c.order_source.contains("order of first assignments"),
        "{}",
        c.order_source
    );
}

#[test]
fn times_out_of_order_and_reversed_spans() {
    let mut late = conn("198.51.100.1:1000", Some("10.0.0.1"), 10 * S);
    late.last_ns = 5 * S; // last before start: taken as a one-instant connection
    let conns = vec![late, conn("198.51.100.2:1000", Some("10.0.0.2"), 0)];
    let r = analyse(&service(
        "192.0.2.1:80",
        Some(cfg(Scheduler::Rr, &[("10.0.0.1", 1), ("10.0.0.2", 1)], 80)),
        conns,
    ));
    // Arrival order is by time: 10.0.0.2 first, then 10.0.0.1.
    let c = r.services[0].conformance.as_ref().unwrap();
    assert_eq!(c.matched, 2);
    render(&r);
}
