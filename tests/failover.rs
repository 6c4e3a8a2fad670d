//! The `failover` check and the VRRP / IPVS sync decoders on the two failover fixtures, both
//! recorded on a real 6.1 kernel with two keepalived directors (lab/scenarios/failover-*.sh).
//! Every expected value comes from tshark on the captures, from the directors' own tables
//! saved beside them (`ipvsadm -Lnc` on the backup before the switch) or from the client's
//! own account (hold.txt), never from lvscheck.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;

use lvscheck::capture::frame::Frame;
use lvscheck::capture::{read_capture, CaptureSource};
use lvscheck::checks::Status;
use lvscheck::decode::ipvs_sync::{SyncConn, SyncView};
use lvscheck::decode::vrrp::VrrpView;
use lvscheck::decode::{decode, Control, DecodeOptions};
use lvscheck::flows::FlowOptions;
use lvscheck::verify::{verify, Verification};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

fn run(name: &str) -> Verification {
    let dir = fixture(name);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "pcap"))
        .collect();
    files.sort();
    let sources: Vec<CaptureSource> = files.iter().map(CaptureSource::from_arg).collect();
    verify(
        &sources,
        DecodeOptions::default(),
        &FlowOptions::default(),
        None,
    )
}

/// tshark's fields of the frames matching `filter`, one line per frame.
fn tshark(file: &Path, filter: &str, fields: &[&str]) -> Vec<Vec<String>> {
    let mut cmd = Command::new("tshark");
    cmd.arg("-r")
        .arg(file)
        .arg("-Y")
        .arg(filter)
        .arg("-T")
        .arg("fields");
    for f in fields {
        cmd.arg("-e").arg(f);
    }
    let out = cmd.output().expect("tshark runs");
    assert!(
        out.status.success(),
        "tshark: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| l.split('\t').map(str::to_string).collect())
        .collect()
}

fn epoch_ns(s: &str) -> i64 {
    let (sec, frac) = s.split_once('.').unwrap();
    let frac = format!("{frac:0<9}");
    sec.parse::<i64>().unwrap() * 1_000_000_000 + frac[..9].parse::<i64>().unwrap()
}

/// The earliest time over every capture of the fixture at which tshark shows `filter`.
fn first_anywhere(name: &str, filter: &str) -> i64 {
    ["client", "director", "director2", "rs1", "rs2"]
        .iter()
        .filter_map(|h| {
            let f = fixture(name).join(format!("{h}.pcap"));
            tshark(&f, filter, &["frame.time_epoch"])
                .first()
                .map(|r| epoch_ns(&r[0]))
        })
        .min()
        .expect("seen somewhere")
}

/// `HH:MM:SS.mmm` after `marker` in `text`, as nanoseconds of the day.
fn time_after(text: &str, marker: &str) -> i64 {
    let at = text
        .find(marker)
        .unwrap_or_else(|| panic!("no {marker:?} in {text}"))
        + marker.len();
    let t = &text[at..at + 12];
    let h: i64 = t[0..2].parse().unwrap();
    let m: i64 = t[3..5].parse().unwrap();
    let s: i64 = t[6..8].parse().unwrap();
    let ms: i64 = t[9..12].parse().unwrap();
    ((h * 60 + m) * 60 + s) * 1_000_000_000 + ms * 1_000_000
}

fn of_day(ns: i64) -> i64 {
    ns.rem_euclid(86_400 * 1_000_000_000)
}

#[test]
fn sync_passes_with_the_switch_and_gratuitous_arp_times() {
    let v = run("failover-sync");
    let c = v.check("failover").expect("failover runs");
    assert_eq!(c.status, Status::Pass, "{}", c.reason);
    // The switch: director2's first VRRP advertisement (priority 100, the only master left).
    let switch = first_anywhere("failover-sync", "vrrp && ip.src == 10.7.0.2");
    let said = time_after(&c.reason, "switch at ");
    assert!(
        (said - of_day(switch)).abs() <= 1_000_000,
        "{} vs {switch}",
        c.reason
    );
    let garp = first_anywhere(
        "failover-sync",
        "arp.isgratuitous && eth.src == 02:00:00:07:00:02",
    );
    let said = time_after(&c.reason, "gratuitous ARP at ");
    assert!((said - of_day(garp)).abs() <= 1_000_000, "{}", c.reason);
    // The four held connections (hold.txt: all answered to the end) went on through director2.
    let hold = std::fs::read_to_string(fixture("failover-sync").join("hold.txt")).unwrap();
    let held = hold
        .lines()
        .filter(|l| l.starts_with("conn ") && l.ends_with("end ok"))
        .count();
    assert_eq!(held, 4);
    assert!(
        c.reason.contains(&format!(
            "{held} of {held} connections established before the switch went on through 10.7.0.2"
        )),
        "{}",
        c.reason
    );
    // The other checks tell the same story: nothing fails, arp.vip names the failover.
    for other in &v.checks {
        assert_ne!(other.status, Status::Fail, "{}: {}", other.id, other.reason);
    }
    let arp = v.check("arp.vip").unwrap();
    assert!(arp.reason.contains("failover"), "{}", arp.reason);
    let topo = v.check("topology").unwrap();
    assert!(
        topo.reason.contains("directors 10.7.0.1"),
        "{}",
        topo.reason
    );
}

#[test]
fn nosync_fails_naming_the_new_master_with_its_resets() {
    let v = run("failover-nosync");
    let c = v.check("failover").expect("failover runs");
    assert_eq!(c.status, Status::Fail, "{}", c.reason);
    let d2 = fixture("failover-nosync").join("director2.pcap");
    // The resets director2's own stack sent for the held connections (tshark), which the
    // client saw as resets (hold.txt).
    let rsts = tshark(
        &d2,
        "ip.src == 10.7.0.100 && tcp.flags.reset == 1",
        &["frame.number"],
    );
    let hold = std::fs::read_to_string(fixture("failover-nosync").join("hold.txt")).unwrap();
    let reset = hold.lines().filter(|l| l.ends_with("end reset")).count();
    assert_eq!(rsts.len(), reset);
    let broken = c
        .findings
        .iter()
        .find(|f| f.summary.contains("did not go on through the new master"))
        .expect("a finding on the broken connections");
    assert_eq!(broken.count, rsts.len() as u64);
    assert!(broken
        .host
        .as_deref()
        .is_some_and(|h| h.contains("10.7.0.2")));
    let rst_frames: Vec<u64> = rsts.iter().map(|r| r[0].parse().unwrap()).collect();
    assert!(broken
        .evidence
        .iter()
        .any(|e| e.file.ends_with("director2.pcap") && rst_frames.contains(&e.frame)));
    let switch = first_anywhere("failover-nosync", "vrrp && ip.src == 10.7.0.2");
    assert!((time_after(&broken.summary, "switch at ") - of_day(switch)).abs() <= 1_000_000);
    // No sync message anywhere in director2's capture (tshark), and the check says so.
    assert!(tshark(&d2, "udp.port == 8848", &["frame.number"]).is_empty());
    assert!(c
        .findings
        .iter()
        .any(|f| f.summary.contains("holds no IPVS sync message")
            && f.host.as_deref().is_some_and(|h| h.contains("10.7.0.2"))));
    // Only failover fails: the resets are the new master's, not a real server's.
    for other in &v.checks {
        if other.id != "failover" {
            assert_ne!(other.status, Status::Fail, "{}: {}", other.id, other.reason);
        }
    }
}

/// Every frame of a capture, decoded, with its bytes.
fn frames(file: &Path) -> Vec<(u64, Vec<u8>, lvscheck::decode::Packet)> {
    let mut out = Vec::new();
    read_capture(0, &CaptureSource::File(file.to_path_buf()), |f: &Frame| {
        out.push((
            f.number,
            f.data.to_vec(),
            decode(f.link_type, f.data, &DecodeOptions::default()),
        ));
    })
    .expect("reads");
    out
}

/// The (client, VIP, real server) of every ESTABLISHED line of an `ipvsadm -Lnc` file.
fn established(file: &Path) -> Vec<(SocketAddr, SocketAddr, SocketAddr)> {
    std::fs::read_to_string(file)
        .unwrap()
        .lines()
        .filter(|l| l.contains("ESTABLISHED"))
        .map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            (
                w[3].parse().unwrap(),
                w[4].parse().unwrap(),
                w[5].parse().unwrap(),
            )
        })
        .collect()
}

#[test]
fn sync_messages_decode_to_the_backups_table() {
    let dir = fixture("failover-sync");
    let file = dir.join("director2.pcap");
    // tshark: which frames are sync messages from the master, and their UDP lengths.
    let want = tshark(
        &file,
        "udp.dstport == 8848 && ip.src == 10.7.0.1",
        &["frame.number", "udp.length"],
    );
    assert!(!want.is_empty());
    let mut carried: Vec<SyncConn> = Vec::new();
    for (n, bytes, packet) in frames(&file) {
        let Some(row) = want.iter().find(|r| r[0] == n.to_string()) else {
            continue;
        };
        let Some(Control::IpvsSync(s)) = packet.control else {
            panic!("frame {n}: no sync message decoded");
        };
        // Header size = UDP payload (UDP length - 8), entries 36 bytes each (IPv4, no options).
        let payload: usize = row[1].parse::<usize>().unwrap() - 8;
        assert_eq!(usize::from(s.size), payload, "frame {n}");
        assert_eq!(usize::from(s.nr_conns), (payload - 8) / 36, "frame {n}");
        assert_eq!(s.read, s.nr_conns);
        // The view over the frame's bytes: Ethernet 14 + IPv4 20 + UDP 8.
        let view = SyncView::parse(&bytes[42..]).expect("v1 message");
        assert_eq!(view.syncid(), 7, "syncid of daemon-director-before.txt");
        carried.extend(view.conns());
    }
    let daemon = std::fs::read_to_string(dir.join("daemon-director-before.txt")).unwrap();
    assert!(daemon.contains("syncid=7"), "{daemon}");
    // Every established entry the backup held before the switch came in a message.
    let table = established(&dir.join("conns-director2-before.txt"));
    assert_eq!(table.len(), 4);
    for (client, vip, rs) in table {
        assert!(
            carried
                .iter()
                .any(|c| c.client == client && c.vip == vip && c.real_server == rs && c.state == 1),
            "{client} -> {rs} not carried: {carried:#?}"
        );
    }
}

#[test]
fn vrrp_adverts_decode_as_tshark_reads_them() {
    let file = fixture("failover-sync").join("client.pcap");
    let want = tshark(
        &file,
        "vrrp",
        &[
            "frame.number",
            "vrrp.version",
            "vrrp.virt_rtr_id",
            "vrrp.prio",
            "vrrp.ip_addr",
            "vrrp.adver_int",
        ],
    );
    assert!(want.len() > 10);
    let mut seen = 0;
    for (n, bytes, packet) in frames(&file) {
        let Some(row) = want.iter().find(|r| r[0] == n.to_string()) else {
            assert!(
                !matches!(packet.control, Some(Control::Vrrp(_))),
                "frame {n}"
            );
            continue;
        };
        let Some(Control::Vrrp(v)) = packet.control else {
            panic!("frame {n}: no VRRP decoded");
        };
        assert_eq!(v.version.to_string(), row[1]);
        assert_eq!(v.vrid.to_string(), row[2]);
        assert_eq!(v.priority.to_string(), row[3]);
        assert_eq!(v.first_address, Some(row[4].parse::<IpAddr>().unwrap()));
        assert_eq!((v.interval_cs / 100).to_string(), row[5]);
        // And the view over the IP payload (Ethernet 14 + IPv4 20).
        let view = VrrpView::parse(&bytes[34..], false).unwrap();
        assert_eq!(view.addresses().count(), 1);
        seen += 1;
    }
    assert_eq!(seen, want.len());
}

#[test]
fn one_director_without_vrrp_skips() {
    // The tutorial's director and keepalived's (checkers only, no vrrp_instance): tshark finds
    // no VRRP in any capture.
    for name in ["tutorial", "keepalived"] {
        for f in std::fs::read_dir(fixture(name)).unwrap() {
            let p = f.unwrap().path();
            if p.extension().is_some_and(|e| e == "pcap") {
                assert!(tshark(&p, "vrrp || udp.port == 8848", &["frame.number"]).is_empty());
            }
        }
        let v = run(name);
        let c = v.check("failover").unwrap();
        assert_eq!(c.status, Status::Skip, "{name}: {}", c.reason);
        assert!(c.reason.contains("one director"), "{name}: {}", c.reason);
    }
}

#[test]
fn nogarp_fails_naming_the_client_that_kept_the_old_mac() {
    let v = run("failover-nogarp");
    let c = v.check("failover").expect("failover runs");
    assert_eq!(c.status, Status::Fail, "{}", c.reason);
    let client = fixture("failover-nogarp").join("client.pcap");
    let switch = first_anywhere("failover-nogarp", "vrrp && ip.src == 10.7.0.2");
    // tshark: the client's packets to the VIP at the dead master's MAC after the switch.
    let late = tshark(
        &client,
        &format!(
            "ip.dst == 10.7.0.100 && eth.dst == 02:00:00:07:00:01 && frame.time_epoch > {}.{:09}",
            switch / 1_000_000_000,
            switch % 1_000_000_000
        ),
        &["frame.number"],
    );
    assert!(!late.is_empty());
    let last: u64 = late.last().unwrap()[0].parse().unwrap();
    let garp: u64 = tshark(
        &client,
        "arp.isgratuitous && eth.src == 02:00:00:07:00:02",
        &["frame.number"],
    )[0][0]
        .parse()
        .unwrap();
    let f = c
        .findings
        .iter()
        .find(|f| f.summary.contains("old master's MAC 02:00:00:07:00:01"))
        .expect("the gratuitous ARP finding");
    assert!(
        f.host.as_deref().is_some_and(|h| h.contains("10.7.0.200")),
        "{:?}",
        f.host
    );
    assert!(f
        .evidence
        .iter()
        .any(|e| e.file.ends_with("client.pcap") && e.frame == last));
    assert!(f.evidence.iter().any(|e| e.frame == garp));
    assert!(f.summary.contains("reached its interface"), "{}", f.summary);
    // The held connections went on (hold.txt: all answered), so none is reported broken.
    let hold = std::fs::read_to_string(fixture("failover-nogarp").join("hold.txt")).unwrap();
    assert_eq!(hold.lines().filter(|l| l.ends_with("end ok")).count(), 4);
    assert!(!c
        .findings
        .iter()
        .any(|f| f.summary.contains("did not go on")));
    for other in &v.checks {
        if other.id != "failover" {
            assert_ne!(other.status, Status::Fail, "{}: {}", other.id, other.reason);
        }
    }
}
