//! The terminal report says what the analysis found, in words a person can check.

use lvscheck::fairness::{
    analyse, ConnObs, FairnessInput, Proto, Scheduler, Server, ServiceConfig, ServiceObs, TcpMarks,
};
use lvscheck::report::fairness::render;
use std::net::SocketAddr;

const S: i64 = 1_000_000_000;

fn conn(k: usize, rs: &str) -> ConnObs {
    let t = k as i64 * S;
    ConnObs {
        client: format!("198.51.100.{}:{}", k + 1, 40000 + k)
            .parse()
            .unwrap(),
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
        response_time_ns: Some(4_000_000),
        first_frame: None,
    }
}

fn input(scheduler: Scheduler, observed: &[&str]) -> FairnessInput {
    FairnessInput {
        services: vec![ServiceObs {
            proto: Proto::Tcp,
            vip: "192.0.2.10:80".parse().unwrap(),
            mark: None,
            config: Some(ServiceConfig {
                scheduler,
                persistence_s: None,
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
            connections: observed
                .iter()
                .enumerate()
                .map(|(k, rs)| conn(k, rs))
                .collect(),
        }],
        capture_span: None,
        timeouts: Default::default(),
    }
}

#[test]
fn report_names_servers_numbers_and_the_first_mismatch() {
    let a = "10.0.0.11";
    let b = "10.0.0.12";
    let text = render(&analyse(&input(Scheduler::Rr, &[a, b, a, a, b, a])));
    assert!(
        text.contains("Service TCP 192.0.2.10:80 (scheduler rr): 6 connections"),
        "{text}"
    );
    assert!(text.contains("10.0.0.11") && text.contains("10.0.0.12"));
    // 4 and 2 of 6 connections.
    assert!(text.contains("66.7%") && text.contains("33.3%"), "{text}");
    // rr over [A, B]: A B A (then B expected, A seen) -> realigned on A: B A.
    assert!(
        text.contains("5 of 6 scheduled decisions reproduced"),
        "{text}"
    );
    assert!(text.contains("1 mismatch; the first 1:"), "{text}");
    assert!(text.contains("3.000"), "mismatch time 3 s: {text}");
    assert!(text.contains("4.0/4.0/4.0 (n=4)"), "{text}");
}

#[test]
fn report_says_when_a_scheduler_is_not_replayed() {
    let text = render(&analyse(&input(
        Scheduler::Twos,
        &["10.0.0.11", "10.0.0.12"],
    )));
    assert!(text.contains("Conformance (twos): not replayed"), "{text}");
    assert!(text.contains("random numbers"), "{text}");
}

#[test]
fn json_has_stable_field_names() {
    let report = analyse(&input(Scheduler::Rr, &["10.0.0.11", "10.0.0.12"]));
    let v: serde_json::Value = serde_json::to_value(&report).unwrap();
    let svc = &v["services"][0];
    assert_eq!(svc["scheduler"], "rr");
    assert_eq!(svc["servers"][0]["connections"], 1);
    assert_eq!(svc["conformance"]["matched"], 2);
    assert!(svc["fairness"]["jain"].as_f64().unwrap() > 0.99);
    // The per-connection timeline is for charts, not for the JSON.
    assert!(svc.get("timeline").is_none());
}

#[test]
fn a_lopsided_service_shows_a_tiny_p_value_plainly() {
    // rr promises 50/50; 20 of 20 to one server: chi-square 20 (df 1), p ~ 7.7e-6.
    let all_a = vec!["10.0.0.11"; 20];
    let text = render(&analyse(&input(Scheduler::Rr, &all_a)));
    assert!(
        text.contains("chi-square 20.00 (df 1), p < 0.001"),
        "{text}"
    );
    assert!(text.contains("max/min infinite"), "{text}");
}
