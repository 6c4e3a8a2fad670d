//! `verify` on every lab fixture gives exactly the statuses its README says: the healthy ones
//! fail nothing; each failure fixture fails the expected check naming the right host, and no
//! other check fails.
//!
//! The expectations below are transcribed from each `fixtures/<name>/README.md` ("What a
//! correct verifier must report"), which the lab wrote from what each scenario configured.

use std::path::{Path, PathBuf};

use lvscheck::capture::CaptureSource;
use lvscheck::checks::Status;
use lvscheck::decode::DecodeOptions;
use lvscheck::flows::FlowOptions;
use lvscheck::topology::config::expected_from_rules;
use lvscheck::topology::rules::read_rules;
use lvscheck::verify::{verify, Verification};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

/// Every capture file of a fixture, in name order.
fn captures(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            name.ends_with(".pcap")
                || name.ends_with(".pcapng")
                || name.ends_with(".pcap.gz")
                || name.ends_with(".pcapng.gz")
        })
        .collect();
    files.sort();
    files
}

fn run(name: &str) -> Verification {
    let dir = fixture(name);
    let rules = read_rules(&dir.join("rules.txt")).expect("rules.txt parses");
    let opts = FlowOptions {
        expected: Some(expected_from_rules(&rules).0),
        ..FlowOptions::default()
    };
    let sources: Vec<CaptureSource> = captures(&dir).iter().map(CaptureSource::from_arg).collect();
    assert!(!sources.is_empty(), "{name}: no capture");
    verify(&sources, DecodeOptions::default(), &opts, Some(&rules))
}

/// Asserts the status of one check and, for a fail or warn, that a finding names `host`.
fn expect(v: &Verification, fixture: &str, id: &str, status: Status, host: Option<&str>) {
    let c = v
        .check(id)
        .unwrap_or_else(|| panic!("{fixture}: no check {id}"));
    assert_eq!(
        c.status, status,
        "{fixture}: {id} is {:?} ({}), expected {:?}",
        c.status, c.reason, status
    );
    if let Some(host) = host {
        assert!(
            c.findings.iter().any(
                |f| f.severity == status && f.host.as_deref().is_some_and(|h| h.contains(host))
            ),
            "{fixture}: {id} has no {status:?} finding naming {host}: {:#?}",
            c.findings
        );
    }
}

/// No check other than `allowed` may fail.
fn no_other_failure(v: &Verification, fixture: &str, allowed: &[&str]) {
    for c in &v.checks {
        if !allowed.contains(&c.id) {
            assert_ne!(
                c.status,
                Status::Fail,
                "{fixture}: {} fails falsely: {} {:#?}",
                c.id,
                c.reason,
                c.findings
            );
        }
    }
}

/// A healthy capture set: the LVS checks pass, topology is informational, scheduler passes.
fn healthy(name: &str, scheduler: Status) -> Verification {
    let v = run(name);
    for id in [
        "tunnel.encapsulation",
        "tunnel.delivery",
        "reply.present",
        "reply.source",
        "reply.direct",
        "arp.vip",
        "bypass",
        "syn.drop",
    ] {
        expect(&v, name, id, Status::Pass, None);
    }
    // mtu passes, or informs when the handshakes' MSS leaves no room for the tunnel (a
    // prediction, checked against tshark in tests/mtu_prediction.rs); nothing went wrong.
    let mtu = v.check("mtu").unwrap();
    assert!(
        matches!(mtu.status, Status::Pass | Status::Info),
        "{name}: mtu {:?} ({})",
        mtu.status,
        mtu.reason
    );
    expect(&v, name, "topology", Status::Info, None);
    expect(&v, name, "scheduler", scheduler, None);
    v
}

#[test]
fn tutorial_is_healthy_and_rr_conforms() {
    let v = healthy("tutorial", Status::Pass);
    expect(&v, "tutorial", "capture.read", Status::Pass, None);
    assert_eq!(v.analysis.connection_count, 10);
}

#[test]
fn wrr_with_three_link_types_is_healthy_and_conforms() {
    let v = healthy("wrr", Status::Pass);
    expect(&v, "wrr", "capture.read", Status::Pass, None);
    assert_eq!(v.analysis.connection_count, 30);
}

#[test]
fn format_variants_change_nothing() {
    for name in [
        "formats-pcapng",
        "formats-nsec",
        "formats-gzip",
        "formats-merged",
        "clock-skew",
    ] {
        let v = healthy(name, Status::Pass);
        expect(&v, name, "capture.read", Status::Pass, None);
        assert_eq!(v.analysis.connection_count, 10, "{name}");
    }
}

#[test]
fn a_capture_cut_mid_record_warns_and_the_rest_is_analysed() {
    let name = "formats-truncated";
    let v = healthy(name, Status::Pass);
    expect(&v, name, "capture.read", Status::Warn, None);
    let c = v.check("capture.read").unwrap();
    assert!(
        c.reason.contains("client.pcap") && c.reason.contains("14076"),
        "names the file and the offset: {}",
        c.reason
    );
    no_other_failure(&v, name, &[]);
}

/// Every LVS check passes but the ones named, which must have the given status and name the
/// host; `topology` informs (or warns where rules and traffic disagree); nothing else fails.
fn failing(name: &str, expected: &[(&str, Status, &str)]) -> Verification {
    let v = run(name);
    for (id, status, host) in expected {
        expect(&v, name, id, *status, Some(host));
    }
    let named: Vec<&str> = expected.iter().map(|e| e.0).collect();
    no_other_failure(&v, name, &named);
    expect(&v, name, "capture.read", Status::Pass, None);
    v
}

// rs2 of the failure scenarios: 10.7.0.12, MAC 02:00:00:07:00:0c (fixtures/README.md).
const RS2: &str = "10.7.0.12 (02:00:00:07:00:0c)";
const RS2_MAC: &str = "02:00:00:07:00:0c";

#[test]
fn rs_answering_arp_for_the_vip_from_the_start() {
    // No traffic of rs2 shows its own address: it is named by its MAC.
    let v = failing(
        "arp-vip",
        &[
            ("arp.vip", Status::Fail, RS2_MAC),
            ("bypass", Status::Fail, RS2_MAC),
        ],
    );
    // The director scheduled nothing: never "conforms".
    expect(&v, "arp-vip", "scheduler", Status::Skip, None);
    for id in ["reply.present", "reply.source", "reply.direct", "mtu"] {
        expect(&v, "arp-vip", id, Status::Pass, None);
    }
}

#[test]
fn rs_answering_arp_for_the_vip_midway() {
    let v = failing(
        "arp-vip-late",
        &[
            ("arp.vip", Status::Fail, RS2),
            ("bypass", Status::Fail, RS2),
        ],
    );
    // The six bypassing connections are not the director's: rr conforms on the other six.
    expect(&v, "arp-vip-late", "scheduler", Status::Pass, None);
    let bypass = &v.check("bypass").unwrap().findings[0];
    assert_eq!((bypass.count, bypass.out_of), (6, Some(12)));
}

#[test]
fn strict_rp_filter_and_missing_vip_leave_requests_unanswered() {
    for name in ["rp-filter", "no-vip"] {
        let v = failing(name, &[("reply.present", Status::Fail, RS2)]);
        let f = &v.check("reply.present").unwrap().findings[0];
        assert_eq!((f.count, f.out_of), (2, Some(2)), "{name}");
        assert!(f.likely_cause.contains("rp_filter") && f.likely_cause.contains("tunl0"));
        expect(&v, name, "scheduler", Status::Pass, None);
    }
}

#[test]
fn health_checks_passing_while_the_tunnel_is_dropped() {
    // keepalived's TCP_CHECKs to rs2's own address succeed; the tunnelled connections to it,
    // which rs2 drops (no VIP on its tunl0), are never answered: exactly these two fail.
    let name = "health-blackhole";
    let v = failing(
        name,
        &[
            ("reply.present", Status::Fail, RS2),
            ("health.path", Status::Fail, RS2),
        ],
    );
    let failed: Vec<&str> = v
        .checks
        .iter()
        .filter(|c| c.status == Status::Fail)
        .map(|c| c.id)
        .collect();
    assert_eq!(failed, ["reply.present", "health.path"]);
    expect(&v, name, "tunnel.delivery", Status::Pass, None);
    expect(&v, name, "scheduler", Status::Pass, None);
}

#[test]
fn keepalived_fixtures_judge_their_health_checks() {
    // Healthy keepalived: every check answered, every connection answered.
    let v = healthy("keepalived", Status::Pass);
    expect(&v, "keepalived", "health.path", Status::Pass, None);
    no_other_failure(&v, "keepalived", &[]);
    // rs2 refused its HTTP_GETs and keepalived removed it (rules.txt lists rs1 only).
    let v = healthy("health-removed", Status::Pass);
    expect(&v, "health-removed", "health.path", Status::Pass, None);
    no_other_failure(&v, "health-removed", &[]);
    // No health checks in the tutorial's captures.
    let v = run("tutorial");
    expect(&v, "tutorial", "health.path", Status::Skip, None);
}

#[test]
fn replies_routed_through_the_director() {
    let v = failing("reply-via-director", &[("reply.direct", Status::Fail, RS2)]);
    // rs2 did answer: it must not be reported silent.
    expect(
        &v,
        "reply-via-director",
        "reply.present",
        Status::Pass,
        None,
    );
}

#[test]
fn service_not_listening_is_refused() {
    for name in ["not-listening-tcp", "not-listening-udp"] {
        let v = failing(name, &[("reply.present", Status::Fail, RS2)]);
        let f = &v.check("reply.present").unwrap().findings[0];
        assert!(f.summary.contains("refused"), "{name}: {}", f.summary);
        assert_eq!(f.count, 3, "{name}");
    }
}

#[test]
fn udp_service_bound_to_the_wildcard_replies_from_the_rip() {
    let v = failing("udp-wildcard", &[("reply.source", Status::Fail, RS2)]);
    let f = &v.check("reply.source").unwrap().findings[0];
    assert!(f.summary.contains("10.7.0.12:5300"), "{}", f.summary);
    assert_eq!(f.count, 3);
}

#[test]
fn full_size_segments_warn_about_the_tunnel_mtu() {
    let v = failing(
        "mtu",
        &[(
            "mtu",
            Status::Warn,
            "the director 10.7.0.1 (02:00:00:07:00:01)",
        )],
    );
    assert!(v.check("mtu").unwrap().findings[0]
        .summary
        .contains("MTU 1480"));
    expect(&v, "mtu", "scheduler", Status::Pass, None);
}

#[test]
fn reused_client_ports_with_ipvs_conntrack_warn_of_dropped_syns() {
    let v = failing(
        "syn-drop",
        &[("syn.drop", Status::Warn, "10.7.0.1 (02:00:00:07:00:01)")],
    );
    // The dropped SYN's retransmission is scheduled like any new connection: rr conforms.
    expect(&v, "syn-drop", "scheduler", Status::Pass, None);
    assert_eq!(v.analysis.connection_count, 11);
    // Without ipvs conntrack the same reuse is rescheduled at once: healthy.
    let v = healthy("syn-reuse-ok", Status::Pass);
    assert_eq!(v.analysis.connection_count, 11);
}

#[test]
fn scheduler_fixtures_are_healthy_and_conform() {
    for name in ["wlc-long", "sh-clients", "persistence"] {
        let v = healthy(name, Status::Pass);
        let sched = v.check("scheduler").unwrap();
        assert!(sched.findings.is_empty(), "{name}: {:#?}", sched.findings);
    }
}

#[test]
fn rules_that_differ_from_the_director_make_the_scheduler_warn_with_evidence() {
    // The tutorial's director ran rr over two servers; claim wrr 3:1 instead.
    let dir = fixture("tutorial");
    let wrong = lvscheck::topology::rules::parse_rules(
        "-A -t 172.25.67.100:80 -s wrr\n\
         -a -t 172.25.67.100:80 -r 172.25.67.2:80 -i -w 3\n\
         -a -t 172.25.67.100:80 -r 172.25.67.3:80 -i -w 1\n",
        "wrong-rules.txt",
    )
    .unwrap();
    let sources: Vec<CaptureSource> = captures(&dir).iter().map(CaptureSource::from_arg).collect();
    let opts = FlowOptions {
        expected: Some(expected_from_rules(&wrong).0),
        ..FlowOptions::default()
    };
    let v = verify(&sources, DecodeOptions::default(), &opts, Some(&wrong));
    let sched = v.check("scheduler").unwrap();
    assert_eq!(sched.status, Status::Warn, "{}", sched.reason);
    let f = &sched.findings[0];
    assert!(f.count > 0 && !f.evidence.is_empty(), "{f:#?}");
    // Evidence points at the director's capture, where the scheduling decision shows.
    assert!(f.evidence.iter().all(|p| p.file.ends_with("server1.pcap")));
}

#[test]
fn client_flag_times_follow_the_tcp_exchange_at_the_director() {
    // curl's connections to busybox httpd: SYN first, then the client's ACK, then its FIN,
    // all before or at its last packet; times are the director capture's own.
    let dir = fixture("tutorial");
    let sources: Vec<CaptureSource> = captures(&dir).iter().map(CaptureSource::from_arg).collect();
    let a = lvscheck::flows::analyse(&sources, DecodeOptions::default(), &FlowOptions::default());
    let mut seen = 0;
    for conn in &a.connections {
        let leg = conn
            .legs
            .iter()
            .find(|l| l.role == lvscheck::topology::Role::Director)
            .expect("the director saw every tutorial connection");
        let request = leg.request.as_ref().unwrap();
        let t = leg.tcp.expect("TCP");
        assert_eq!(t.client_syn_ns, Some(request.first_ts_ns));
        let (ack, fin) = (t.client_ack_ns.unwrap(), t.client_fin_ns.unwrap());
        assert!(request.first_ts_ns < ack && ack < fin && fin <= request.last_ts_ns);
        assert_eq!(t.client_rst_ns, None);
        seen += 1;
    }
    assert_eq!(seen, 10);
}

/// IPv6 LVS-TUN (fixtures ipv6-*, recorded with IPv6 on): IPv6-in-IPv6 is decoded, joined
/// and checked as IP-in-IP is, and `arp.vip` reads neighbour discovery. What these assert is
/// what their READMEs say a verifier must report; ipv6-outer-vip's director address (the VIP
/// today, where it should be named by its MAC) is not asserted yet.
#[test]
fn ipv6_tunnels_are_checked_like_ipv4_ones() {
    let v = healthy("ipv6-healthy", Status::Pass);
    // conns.txt: ten entries, five on each real server.
    assert_eq!(v.analysis.connection_count, 10);
    assert_eq!(
        v.verdict.outcome,
        lvscheck::checks::verdict::Outcome::Verified
    );

    // The director tunnels from the VIP, which the real servers hold: nothing is answered.
    // The cause is named on the director (its MAC: its own address is in no packet).
    let v = run("ipv6-outer-vip");
    expect(
        &v,
        "ipv6-outer-vip",
        "tunnel.encapsulation",
        Status::Fail,
        Some("02:00:00:07:00:01"),
    );
    let f = &v.check("tunnel.encapsulation").unwrap().findings[0];
    assert!(f.fix.contains("preferred_lft 0"), "{}", f.fix);
    expect(&v, "ipv6-outer-vip", "tunnel.delivery", Status::Pass, None);
    for rs in ["2001:db8:7::11", "2001:db8:7::12"] {
        expect(
            &v,
            "ipv6-outer-vip",
            "reply.present",
            Status::Fail,
            Some(rs),
        );
    }
    no_other_failure(
        &v,
        "ipv6-outer-vip",
        &["tunnel.encapsulation", "reply.present"],
    );

    // rs2 advertises the VIP (client.pcap and rs2.pcap frame 2): the connection that went to
    // its MAC bypassed the director.
    let v = run("ipv6-nd-vip");
    expect(
        &v,
        "ipv6-nd-vip",
        "arp.vip",
        Status::Fail,
        Some("2001:db8:7::12"),
    );
    let fix = &v.check("arp.vip").unwrap().findings[0].fix;
    assert!(
        fix.contains("ip6tnl0") && !fix.contains("arptables"),
        "{fix}"
    );
    expect(
        &v,
        "ipv6-nd-vip",
        "bypass",
        Status::Fail,
        Some("2001:db8:7::12"),
    );
    assert_eq!(v.analysis.connection_count, 10);
}

#[test]
fn a_stale_host_answering_as_the_vip_is_named_by_its_mac() {
    stale_host("stale-vip-host");
}

/// The same with the bridge flooding client2's first SYN into every capture: the director's
/// copy (source client2's MAC, destination old's) is no request it received or forwarded,
/// rs1's and rs2's none that reached them, and it takes no turn of the scheduler.
#[test]
fn a_frame_flooded_past_the_director_is_no_request_it_received() {
    let dir = fixture("stale-vip-flood");
    // tshark: the flooded SYN is in the director's capture (and each real server's).
    for f in ["director.pcap", "rs1.pcap", "rs2.pcap"] {
        let out = std::process::Command::new("tshark")
            .arg("-r")
            .arg(dir.join(f))
            .args(["-Y", "eth.dst == 02:00:00:07:00:0d && tcp.flags.syn == 1"])
            .output()
            .expect("tshark runs");
        let frames = String::from_utf8_lossy(&out.stdout).lines().count();
        assert_eq!(frames, 1, "{f}: one flooded SYN");
    }
    stale_host("stale-vip-flood");
}

fn stale_host(name: &str) {
    // client2's four connections go to old (02:00:00:07:00:0d), which answers from the VIP:
    // the captures never show old's own address, only its MAC (fixtures/stale-vip-host).
    let v = failing(
        name,
        &[
            ("bypass", Status::Fail, "do not identify"),
            ("oddities", Status::Warn, "02:00:00:07:00:0d"),
        ],
    );
    for id in [
        "arp.vip",
        "tunnel.encapsulation",
        "reply.present",
        "scheduler",
    ] {
        expect(&v, name, id, Status::Pass, None);
    }
    let bypass = &v.check("bypass").unwrap().findings[0];
    assert_eq!((bypass.count, bypass.out_of), (4, Some(12)));
    // tshark: 24 packets from the VIP by MACs no host of the cluster has, all in
    // client2.pcap, the first being old's SYN-ACK, frame 9.
    let odd = &v.check("oddities").unwrap().findings;
    assert_eq!(odd.len(), 1);
    assert_eq!(odd[0].count, 24);
    assert!(odd[0]
        .summary
        .starts_with("vip_from_unknown_mac: 24 packets at 1 capture, each a packet from the VIP"));
    let first = &odd[0].evidence[0];
    assert!(first.file.ends_with("client2.pcap"), "{first:?}");
    assert_eq!(first.frame, 9);
    assert_eq!(v.analysis.oddities[0].per_vantage.len(), 1);
}

#[test]
fn healthy_fixtures_have_no_oddities() {
    for name in [
        "tutorial",
        "wrr",
        "keepalived",
        "span-rp-filter",
        "gue-healthy",
    ] {
        let v = run(name);
        expect(&v, name, "oddities", Status::Pass, None);
        assert!(
            v.analysis.oddities.is_empty(),
            "{name}: {:?}",
            v.analysis.oddities
        );
    }
}

#[test]
fn a_director_failover_passes_with_sync_and_fails_without() {
    // With the rules of the survivor (director2's ipvsadm -Sn, the same as the old master's).
    let v = healthy("failover-sync", Status::Pass);
    expect(&v, "failover-sync", "failover", Status::Pass, None);
    failing(
        "failover-nosync",
        &[("failover", Status::Fail, "10.7.0.2 (02:00:00:07:00:02)")],
    );
    failing(
        "failover-nogarp",
        &[("failover", Status::Fail, "10.7.0.200 (02:00:00:07:00:c8)")],
    );
}

// ---- `drain`: weight-0 servers (fixtures drain-*, recorded with rs2 set to weight 0 midway).

#[path = "verify_common/mod.rs"]
mod verify_common;

/// The client SYNs the director tunnelled to `rs`, from its capture: (time, client address,
/// client port), in capture order.
fn tunnelled_syns(fixture_name: &str, rs: &str) -> Vec<(f64, String, u16)> {
    let rows = verify_common::tshark_fields(
        &fixture(fixture_name).join("director.pcap"),
        false,
        ",",
        &[
            "frame.time_epoch",
            "ip.src",
            "ip.dst",
            "tcp.srcport",
            "tcp.flags.syn",
            "tcp.flags.ack",
        ],
    );
    rows.iter()
        .filter(|r| r.len() == 6 && r[4] == "1" && r[5] == "0")
        .filter_map(|r| {
            // A tunnelled packet has two IP headers: outer first, then inner.
            let src: Vec<&str> = r[1].split(',').collect();
            let dst: Vec<&str> = r[2].split(',').collect();
            (dst.len() == 2 && dst[0] == rs).then(|| {
                (
                    r[0].parse().unwrap(),
                    src[1].to_string(),
                    r[3].parse().unwrap(),
                )
            })
        })
        .collect()
}

/// The SYNs the director received from `client` (untunnelled): their times.
fn client_syn_times(fixture_name: &str, client: &str) -> Vec<f64> {
    verify_common::tshark_fields(
        &fixture(fixture_name).join("director.pcap"),
        false,
        ",",
        &[
            "frame.time_epoch",
            "ip.src",
            "tcp.flags.syn",
            "tcp.flags.ack",
        ],
    )
    .iter()
    .filter(|r| r.len() == 4 && r[1] == client && r[2] == "1" && r[3] == "0")
    .map(|r| r[0].parse().unwrap())
    .collect()
}

/// The lines of the director's `ipvsadm -Lnc` (conns.txt) from `source` to `dest`.
fn conns_lines(fixture_name: &str, source: &str, dest: &str) -> Vec<String> {
    std::fs::read_to_string(fixture(fixture_name).join("conns.txt"))
        .unwrap()
        .lines()
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() == 6 && f[3] == source && f[5] == dest
        })
        .map(str::to_string)
        .collect()
}

#[test]
fn draining_rs2_while_a_download_runs_is_healthy() {
    let name = "drain-healthy";
    // The scheduler check warns: rr's choices changed midway, as the rules cannot show.
    let v = healthy(name, Status::Warn);
    expect(&v, name, "drain", Status::Pass, None);
    let c = v.check("drain").unwrap();
    assert!(
        c.reason.contains("10.7.0.12") && c.reason.contains("1 connection continued"),
        "{}",
        c.reason
    );
    // The rules read after the traffic give rs2 weight 0; the director's table still holds
    // its three connections (two of the first batch, the download), all from before.
    assert!(std::fs::read_to_string(fixture(name).join("rules.txt"))
        .unwrap()
        .contains("-r 10.7.0.12:80 -i -w 0"));
    assert_eq!(conns_lines(name, "10.7.0.200", "10.7.0.12:80").len(), 0);
    let to_rs2 = std::fs::read_to_string(fixture(name).join("conns.txt"))
        .unwrap()
        .lines()
        .filter(|l| l.ends_with("10.7.0.12:80"))
        .count();
    assert_eq!(to_rs2, 3);
    no_other_failure(&v, name, &[]);
}

#[test]
fn a_client_pinned_by_persistence_keeps_reaching_the_weight_0_server() {
    let name = "drain-persist";
    let v = failing(name, &[("drain", Status::Fail, RS2)]);
    let f = &v.check("drain").unwrap().findings[0];
    // The scenario drains rs2, then client3 (10.7.0.202) makes the first request: every SYN
    // tunnelled to rs2 after client3's is a new connection after the drain.
    if verify_common::tshark_available() {
        let drained_by = client_syn_times(name, "10.7.0.202")[0];
        let after: Vec<_> = tunnelled_syns(name, "10.7.0.12")
            .into_iter()
            .filter(|s| s.0 > drained_by)
            .collect();
        assert_eq!(f.count, after.len() as u64, "{f:#?}");
        assert!(after.iter().all(|s| s.1 == "10.7.0.200"));
    }
    assert_eq!(f.count, 3);
    // The template that pinned it, as the director's table shows it (client port 0).
    assert_eq!(conns_lines(name, "10.7.0.200:0", "10.7.0.12:80").len(), 1);
    assert!(f.likely_cause.contains("expire_quiescent_template"));
    assert!(f
        .fix
        .contains("sysctl -w net.ipv4.vs.expire_quiescent_template=1"));
    assert!(f.display_filter.as_deref().unwrap().contains("10.7.0.200"));
    for shown in ["tunnelled copy", "made the persistence template"] {
        assert!(
            f.evidence.iter().any(|p| p.summary.contains(shown)),
            "{f:#?}"
        );
    }
}

#[test]
fn a_reused_client_port_follows_its_fin_wait_entry_to_the_weight_0_server() {
    let name = "drain-reuse";
    let v = failing(name, &[("drain", Status::Fail, RS2)]);
    let f = &v.check("drain").unwrap().findings[0];
    if verify_common::tshark_available() {
        // SYNs tunnelled to rs2 from a client port that an earlier SYN to rs2 had used.
        let syns = tunnelled_syns(name, "10.7.0.12");
        let reused = syns
            .iter()
            .enumerate()
            .filter(|(i, s)| syns[..*i].iter().any(|e| e.1 == s.1 && e.2 == s.2))
            .count();
        assert_eq!(f.count, reused as u64, "{f:#?}");
    }
    assert_eq!(f.count, 2);
    // One entry for port 40001, still pointing at rs2: the kernel reused it.
    assert_eq!(
        conns_lines(name, "10.7.0.200:40001", "10.7.0.12:80").len(),
        1
    );
    assert!(f.likely_cause.contains("FIN_WAIT") && f.likely_cause.contains("conn_reuse_mode"));
    assert!(f.fix.contains("expire_nodest_conn=1"));
    assert!(f.display_filter.as_deref().unwrap().contains("40001"));
}

#[test]
fn the_sysctls_the_drain_check_suggests_let_the_weight_0_server_go() {
    // drain-persist with expire_quiescent_template=1: client's connections after client3's
    // (the first request after the drain) went to rs1, and the kernel retired its template.
    let name = "drain-persist-fixed";
    let v = healthy(name, Status::Warn);
    expect(&v, name, "drain", Status::Pass, None);
    no_other_failure(&v, name, &[]);
    let reason = &v.check("drain").unwrap().reason;
    assert!(
        reason.contains("1 new connection through a template"),
        "{reason}"
    );
    if verify_common::tshark_available() {
        let drained_by = client_syn_times(name, "10.7.0.202")[0];
        assert!(tunnelled_syns(name, "10.7.0.12")
            .iter()
            .all(|s| s.0 < drained_by));
        let moved = tunnelled_syns(name, "10.7.0.11")
            .into_iter()
            .filter(|s| s.1 == "10.7.0.200" && s.0 > drained_by)
            .count();
        assert_eq!(moved, 3);
    }
    assert_eq!(
        conns_lines(name, "10.7.0.200:0", "10.7.0.12:65535").len(),
        1,
        "the retired template"
    );

    // drain-reuse with expire_nodest_conn=1: port 40001 was scheduled afresh, to rs1.
    let name = "drain-reuse-fixed";
    let v = healthy(name, Status::Warn);
    expect(&v, name, "drain", Status::Pass, None);
    no_other_failure(&v, name, &[]);
    if verify_common::tshark_available() {
        let syns = tunnelled_syns(name, "10.7.0.12");
        assert!(syns
            .iter()
            .enumerate()
            .all(|(i, s)| !syns[..i].iter().any(|e| e.1 == s.1 && e.2 == s.2)));
        let port_40001_to_rs1 = tunnelled_syns(name, "10.7.0.11")
            .into_iter()
            .filter(|s| s.2 == 40001)
            .count();
        assert_eq!(port_40001_to_rs1, 2);
    }
    assert_eq!(
        conns_lines(name, "10.7.0.200:40001", "10.7.0.11:80").len(),
        1
    );
}

#[test]
fn drain_skips_where_no_server_is_out_of_the_rotation() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let mut seen = 0;
    for entry in std::fs::read_dir(&root).unwrap() {
        let dir = entry.unwrap().path();
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        if name.starts_with("drain-")
            || !dir.join("rules.txt").exists()
            || captures(&dir).is_empty()
        {
            continue;
        }
        // Every other fixture's rules give each server a weight above 0.
        let rules = std::fs::read_to_string(dir.join("rules.txt")).unwrap();
        if rules.contains(" -w 0 ") || rules.contains("weight 0") {
            continue;
        }
        let v = run(&name);
        expect(&v, &name, "drain", Status::Skip, None);
        seen += 1;
    }
    assert!(seen >= 20, "{seen} fixtures");
}
