//! The `scheduler` check of `verify`, on hand-built services.

use lvscheck::checks::Status;
use lvscheck::fairness::{
    analyse, check, ConnObs, FairnessInput, FairnessReport, Proto, Scheduler, Server,
    ServiceConfig, ServiceObs, TcpMarks,
};
use std::net::SocketAddr;

const S: i64 = 1_000_000_000;

fn conn(k: usize, client: &str, rs: &str) -> ConnObs {
    let t = k as i64 * S;
    ConnObs {
        client: format!("{client}:{}", 40000 + k).parse().unwrap(),
        rs: Some(rs.parse().unwrap()),
        start_ns: t,
        last_ns: t + S / 2,
        tcp: Some(TcpMarks {
            syn_ns: Some(t),
            ack_ns: Some(t + 1000),
            fin_ns: Some(t + S / 2),
            rst_ns: None,
        }),
        packets_to_server: 3,
        bytes_to_server: 300,
        packets_to_client: 2,
        bytes_to_client: 2000,
        response_time_ns: None,
        first_frame: None,
    }
}

fn report(scheduler: Scheduler, persistence_s: Option<u32>, conns: Vec<ConnObs>) -> FairnessReport {
    analyse(&FairnessInput {
        services: vec![ServiceObs {
            proto: Proto::Tcp,
            vip: "192.0.2.10:80".parse().unwrap(),
            mark: None,
            config: Some(ServiceConfig {
                scheduler,
                persistence_s,
                netmask_prefix: None,
                sh_port: false,
                servers: ["10.0.0.11", "10.0.0.12"]
                    .iter()
                    .map(|ip| Server {
                        addr: SocketAddr::new(ip.parse().unwrap(), 80),
                        weight: 1,
                    })
                    .collect(),
                order_known: true,
            }),
            connections: conns,
        }],
        capture_span: None,
        timeouts: Default::default(),
    })
}

const A: &str = "10.0.0.11";
const B: &str = "10.0.0.12";

#[test]
fn a_conforming_service_passes() {
    let conns = (0..20)
        .map(|k| {
            conn(
                k,
                &format!("198.51.100.{}", k + 1),
                if k % 2 == 0 { A } else { B },
            )
        })
        .collect();
    let r = check::check(&report(Scheduler::Rr, None, conns));
    assert_eq!(r.status, Status::Pass, "{r:?}");
    assert!(
        r.reason.contains("20 of 20 assignments reproduced"),
        "{}",
        r.reason
    );
}

#[test]
fn a_lopsided_rr_service_warns_twice() {
    let conns = (0..20)
        .map(|k| conn(k, &format!("198.51.100.{}", k + 1), A))
        .collect();
    let r = check::check(&report(Scheduler::Rr, None, conns));
    assert_eq!(r.status, Status::Warn);
    // One finding for the replay (every other decision should have gone to B), one for
    // the shares (chi-square 20, p < 0.01).
    assert_eq!(r.findings.len(), 2, "{:?}", r.findings);
    assert_eq!(r.findings[0].count, 19);
}

#[test]
fn sh_pinning_one_client_is_not_a_share_problem() {
    // Every connection from 10.0.0.1: bucket 39 of a [A, B] table is B. Exact replay, and
    // the 0/20 split is what sh does with one client, not a fairness failure.
    let conns = (0..20).map(|k| conn(k, "10.0.0.1", B)).collect();
    let r = check::check(&report(Scheduler::Sh, None, conns));
    assert_eq!(r.status, Status::Pass, "{r:?}");
}

#[test]
fn a_scheduler_that_cannot_be_replayed_says_so() {
    let conns = (0..4)
        .map(|k| {
            conn(
                k,
                &format!("198.51.100.{}", k + 1),
                if k % 2 == 0 { A } else { B },
            )
        })
        .collect();
    let r = check::check(&report(Scheduler::Twos, None, conns));
    assert!(r.reason.contains("not replayable"), "{}", r.reason);
    assert!(r.findings.is_empty());
}
