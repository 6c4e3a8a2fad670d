//! The flows analysis on the lab's real captures (fixtures/<scenario>/, recorded from a real
//! Linux IPVS director under qemu). Ground truth comes from the fixture, never from lvscheck:
//! `hosts.json` says which capture was taken on which host in which role, `conns.txt` is the
//! director's `ipvsadm -Lnc` (client, VIP and chosen real server of every connection).

use lvscheck::capture::CaptureSource;
use lvscheck::decode::DecodeOptions;
use lvscheck::flows::{analyse, Analysis, FlowOptions};
use lvscheck::topology::rules::{read_conns, ConnEntry, Proto as RuleProto};
use lvscheck::topology::Role;
use serde_json::Value;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

struct Truth {
    file: String,
    role: Role,
    /// The capturing host's own addresses.
    ips: Vec<IpAddr>,
    /// When several hosts share one pcapng file: this host's interface in it.
    interface: Option<u32>,
    host: String,
    mac: Option<String>,
    /// A mirror port's capture: the hosts whose frames it holds.
    mirrors: Vec<String>,
}

/// fixtures/ of the repository, or the directory named by LVSCHECK_FIXTURES.
fn fixtures_dir() -> PathBuf {
    std::env::var_os("LVSCHECK_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures"))
}

/// Every fixture directory with a hosts.json.
fn fixtures() -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(fixtures_dir())
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.join("hosts.json").is_file())
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// Fixtures where a connection's real server may be left unnamed, though never named wrong.
/// port-filter: every host captured with `tcp port 80`, so no packet holds a real server's
/// address (the filter dropped the IP-in-IP and ARP packets); nothing can name it.
/// nat-server: the director sends rs2 its connections NAT-rewritten to rs2's own address, a
/// flow the traffic alone cannot tie to the client's connection to the VIP (with the rules,
/// the checks do: fixtures/nat-server/README.md).
const NO_SERVER_ADDRESS_CAPTURED: &[&str] = &["port-filter", "nat-server"];
/// Captures of a real server that never sees a VIP: nat-server/rs2.pcap (added with -m, it
/// gets and sends only its own address's packets) and health-removed/rs2.pcap (keepalived took
/// it out of the rules before the captures: it sees only the director's health checks), which
/// the traffic alone calls `other`.
const NO_VIP_TRAFFIC: &[(&str, &str)] =
    &[("nat-server", "rs2.pcap"), ("health-removed", "rs2.pcap")];
/// Captures whose role cannot be told on their own. port-filter/director.pcap holds only the
/// client's requests to the VIP (the filter dropped all the director sent, the IP-in-IP
/// packets): a capture on a client whose requests go unanswered holds the same frames.
/// multi-service/client.pcap talks to two VIPs and holds no tunnel: alone, the VIP is a guess
/// (the address most connections go to, 10.7.0.101) that the report says to correct with
/// `--vip`, and the connections to the other VIP are not the service's.
const AMBIGUOUS_ALONE: &[(&str, &str)] = &[
    ("port-filter", "director.pcap"),
    ("multi-service", "client.pcap"),
];

/// Whether every connection of the fixture `name` must have its real server named.
fn server_must_be_named(name: &str) -> bool {
    !NO_SERVER_ADDRESS_CAPTURED.contains(&name)
}

fn role_of(s: &str) -> Role {
    match s {
        "director" => Role::Director,
        "real-server" | "real_server" | "rs" => Role::RealServer,
        "client" => Role::Client,
        // "mirror" (span-rp-filter/span.pcap, a bridge holding every host's frames): no role
        // of one host; its hops are checked against the hosts it mirrors.
        _ => Role::Other,
    }
}

fn hosts(dir: &Path) -> Vec<Truth> {
    let text = std::fs::read_to_string(dir.join("hosts.json")).expect("hosts.json");
    let v: Value = serde_json::from_str(&text).expect("hosts.json is JSON");
    v["captures"]
        .as_array()
        .expect("captures[]")
        .iter()
        .map(|c| Truth {
            file: c["file"].as_str().expect("file").to_string(),
            role: role_of(c["role"].as_str().expect("role")),
            ips: c["ips"]
                .as_array()
                .map(|a| a.iter().filter_map(|x| x.as_str()?.parse().ok()).collect())
                .unwrap_or_default(),
            interface: c["pcapng_interface"].as_u64().map(|i| i as u32),
            host: c["host"].as_str().unwrap_or_default().to_string(),
            mac: c["mac"].as_str().map(str::to_string),
            mirrors: c["mirrors"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|x| Some(x.as_str()?.to_string()))
                        .collect()
                })
                .unwrap_or_default(),
        })
        .collect()
}

/// The distinct capture files of a fixture, in order of first mention.
fn files_of(truth: &[Truth]) -> Vec<String> {
    let mut files: Vec<String> = Vec::new();
    for t in truth {
        if !files.contains(&t.file) {
            files.push(t.file.clone());
        }
    }
    files
}

/// Whether a pcap file holds any IP packet (Ethernet, Linux cooked v1/v2 or raw IP), read
/// from its bytes directly. A capture with none (only ARP, say) cannot show a role; other
/// formats are taken to hold some.
fn has_ip_packet(path: &Path) -> bool {
    let Ok(b) = std::fs::read(path) else {
        return true;
    };
    let le = match b.get(0..4) {
        Some([0xd4, 0xc3, 0xb2, 0xa1]) | Some([0x4d, 0x3c, 0xb2, 0xa1]) => true,
        Some([0xa1, 0xb2, 0xc3, 0xd4]) | Some([0xa1, 0xb2, 0x3c, 0x4d]) => false,
        _ => return true,
    };
    let u32_at = |at: usize| -> Option<usize> {
        let w: [u8; 4] = b.get(at..at + 4)?.try_into().ok()?;
        Some(if le {
            u32::from_le_bytes(w)
        } else {
            u32::from_be_bytes(w)
        } as usize)
    };
    let Some(link) = u32_at(20) else { return true };
    let mut at = 24;
    while let Some(caplen) = u32_at(at + 8) {
        let Some(data) = b.get(at + 16..at + 16 + caplen) else {
            break;
        };
        let ether_type = |o: usize| data.get(o..o + 2).map(|t| u16::from_be_bytes([t[0], t[1]]));
        let ip = match link {
            1 => ether_type(12) == Some(0x0800) || ether_type(12) == Some(0x86dd),
            113 => ether_type(14) == Some(0x0800) || ether_type(14) == Some(0x86dd),
            276 => ether_type(0) == Some(0x0800) || ether_type(0) == Some(0x86dd),
            _ => true,
        };
        if ip {
            return true;
        }
        at += 16 + caplen;
    }
    false
}

/// The vantage points of the analysis that a ground-truth entry describes.
fn vantages_of<'a>(
    a: &'a Analysis,
    truth: &[Truth],
    t: &Truth,
) -> Vec<&'a lvscheck::topology::Vantage> {
    let capture = files_of(truth).iter().position(|f| *f == t.file).unwrap() as u32;
    a.topology
        .vantages
        .iter()
        .filter(|v| v.id.capture == capture && t.interface.is_none_or(|i| i == v.id.interface))
        .collect()
}

/// The director's connection table (`ipvsadm -Lnc`), read with lvscheck's rules parser;
/// persistence templates are not connections.
fn ipvs_conns(dir: &Path) -> Vec<ConnEntry> {
    let path = dir.join("conns.txt");
    if !path.is_file() {
        return Vec::new();
    }
    read_conns(&path)
        .unwrap_or_else(|e| panic!("{e}"))
        .into_iter()
        // Persistence templates (client port 0, state NONE or ASSURED) are not connections.
        .filter(|c| !c.is_template() && c.client.port() != 0)
        .collect()
}

/// The table entries a director's capture alone must show. One director: its table. Two
/// directors of a failover pair (`conns-<host>-before.txt` saved on each before the switch,
/// conns.txt on the survivor after): what each scheduled itself, the old master's table
/// before the switch, and the survivor's entries other than those its sync daemon had been
/// given before the switch.
fn own_entries(dir: &Path, host: &str, all: &[ConnEntry]) -> Vec<ConnEntry> {
    let read = |p: PathBuf| -> Vec<ConnEntry> {
        read_conns(&p)
            .unwrap_or_else(|e| panic!("{e}"))
            .into_iter()
            .filter(|c| !c.is_template() && c.client.port() != 0)
            .collect()
    };
    let before = dir.join(format!("conns-{host}-before.txt"));
    if !before.is_file() {
        return all.to_vec();
    }
    let given = read(before);
    if dir.join(format!("conns-{host}-after.txt")).is_file() {
        // The survivor, whose table conns.txt is.
        let same = |a: &ConnEntry, b: &ConnEntry| a.client == b.client && a.vip == b.vip;
        all.iter()
            .filter(|c| !given.iter().any(|m| same(c, m)))
            .cloned()
            .collect()
    } else {
        given
    }
}

fn proto_name(p: RuleProto) -> &'static str {
    match p {
        RuleProto::Tcp => "tcp",
        RuleProto::Udp => "udp",
        RuleProto::Sctp => "sctp",
        RuleProto::Ip => "ip",
    }
}

fn run(dir: &Path, truth: &[Truth]) -> Analysis {
    let files: Vec<CaptureSource> = files_of(truth)
        .iter()
        .map(|f| CaptureSource::File(dir.join(f)))
        .collect();
    analyse(&files, cli_decoding(), &FlowOptions::default())
}

/// Decoding as the command line does it without rules: GUE is looked for on any UDP port
/// (`gue_probe`), so that a GUE deployment's tunnels are found from the traffic alone.
fn cli_decoding() -> DecodeOptions {
    DecodeOptions {
        gue_probe: true,
        ..DecodeOptions::default()
    }
}

#[test]
fn every_fixture_gives_the_right_roles_and_real_servers() {
    let all = fixtures();
    assert!(
        !all.is_empty(),
        "no fixture in {}",
        fixtures_dir().display()
    );
    let mut failures = Vec::new();
    for dir in &all {
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        let truth = hosts(dir);
        let a = run(dir, &truth);
        for t in truth.iter().filter(|t| !t.mirrors.is_empty()) {
            // A mirror is split into one hop per host MAC, each with that host's role.
            let capture = files_of(&truth).iter().position(|f| *f == t.file).unwrap() as u32;
            for host in &t.mirrors {
                let h = truth
                    .iter()
                    .find(|o| &o.host == host && o.mirrors.is_empty());
                let Some(h) = h else {
                    failures.push(format!("{name}/{}: mirrors unknown host {host}", t.file));
                    continue;
                };
                let hop = a
                    .mirrors
                    .iter()
                    .filter(|m| m.capture == capture)
                    .flat_map(|m| &m.hops)
                    .find(|(_, mac)| Some(mac) == h.mac.as_ref());
                let role = hop.and_then(|(i, _)| {
                    a.topology
                        .vantages
                        .iter()
                        .find(|v| v.id.capture == capture && v.id.interface == *i)
                        .map(|v| v.role)
                });
                if role != Some(h.role) {
                    failures.push(format!(
                        "{name}/{}: hop of {host} ({:?}) has role {role:?}, expected {}",
                        t.file, h.mac, h.role
                    ));
                }
            }
        }
        for t in truth.iter().filter(|t| t.mirrors.is_empty()) {
            // Without a single IP packet (a host that only heard ARP requests) the traffic
            // cannot show where a capture was taken.
            let blind = !has_ip_packet(&dir.join(&t.file));
            for v in vantages_of(&a, &truth, t) {
                let no_vip = NO_VIP_TRAFFIC.contains(&(name.as_str(), t.file.as_str()));
                if v.role != t.role && !((blind || no_vip) && v.role == Role::Other) {
                    failures.push(format!(
                        "{name}/{}: role {} (by {}: {}), expected {}",
                        t.file, v.role, v.decided_by, v.reason, t.role
                    ));
                }
            }
        }
        let has_director =
            truth.iter().any(|t| t.role == Role::Director) && server_must_be_named(&name);
        let mut uncaptured = 0;
        for c in ipvs_conns(dir) {
            // The table's entry is the latest connection of its client port: a reused port's
            // earlier connections may have gone elsewhere (fixtures/drain-reuse-fixed), or
            // been dropped and retried (syn-drop, syn-reuse-ok).
            let found = a
                .connections
                .iter()
                .filter(|x| {
                    x.client == c.client
                        && x.vip == c.vip
                        && x.proto.to_string() == proto_name(c.proto)
                })
                .max_by_key(|x| x.first_ts_ns);
            match found {
                None if before_captures(&name) > 0 => uncaptured += 1,
                None => failures.push(format!("{name}: connection {c:?} not rebuilt")),
                Some(x) if has_director && x.real_server != Some(c.rs.ip()) => {
                    failures.push(format!(
                        "{name}: {} -> {}: real server {:?}, ipvsadm says {}",
                        c.client, c.vip, x.real_server, c.rs
                    ))
                }
                Some(x) if x.real_server.is_some_and(|r| r != c.rs.ip()) => failures.push(format!(
                    "{name}: {} -> {}: real server {:?}, ipvsadm says {}",
                    c.client, c.vip, x.real_server, c.rs
                )),
                Some(_) => {}
            }
        }
        if uncaptured != before_captures(&name) {
            failures.push(format!(
                "{name}: {uncaptured} table entries not rebuilt, {} made before the captures",
                before_captures(&name)
            ));
        }
        let odd: Vec<(&str, u64)> = a.oddities.iter().map(|o| (o.name, o.count)).collect();
        if odd != oddities_of(&name) {
            failures.push(format!(
                "{name}: oddities {odd:?}, expected {:?}",
                oddities_of(&name)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The packets about the deployment that fit nowhere, by name, as each fixture's README counts
/// them with tshark: none but the stale host's replies in stale-vip-host (`tshark -r
/// client2.pcap -Y 'ip.src == 10.7.0.100 && !(eth.src in {02:00:00:07:00:01,
/// 02:00:00:07:00:0b, 02:00:00:07:00:0c})'`: 24 frames; 0 in its other captures).
fn oddities_of(fixture: &str) -> Vec<(&'static str, u64)> {
    match fixture {
        "stale-vip-host" | "stale-vip-flood" => vec![("vip_from_unknown_mac", 24)],
        _ => Vec::new(),
    }
}

/// Connections a fixture's scenario made before its captures started, which its table holds
/// and no capture can show (fixtures/director-state/README.md: 6 requests before).
fn before_captures(fixture: &str) -> usize {
    match fixture {
        "director-state" => 6,
        _ => 0,
    }
}

/// Time of the first record of a pcap file (ns), read from the file's bytes directly. None for
/// other formats.
fn first_record_ns(path: &Path) -> Option<i64> {
    let b = std::fs::read(path).ok()?;
    let magic = b.get(0..4)?;
    let (le, nano) = match magic {
        [0xd4, 0xc3, 0xb2, 0xa1] => (true, false),
        [0xa1, 0xb2, 0xc3, 0xd4] => (false, false),
        [0x4d, 0x3c, 0xb2, 0xa1] => (true, true),
        [0xa1, 0xb2, 0x3c, 0x4d] => (false, true),
        _ => return None,
    };
    let word = |at: usize| -> Option<i64> {
        let w: [u8; 4] = b.get(at..at + 4)?.try_into().ok()?;
        Some(i64::from(if le {
            u32::from_le_bytes(w)
        } else {
            u32::from_be_bytes(w)
        }))
    };
    let (sec, frac) = (word(24)?, word(28)?);
    Some(sec * 1_000_000_000 + if nano { frac } else { frac * 1000 })
}

/// A fixture made from the tutorial's captures with some clocks moved (editcap -t) gives the
/// same connections, and clock offsets that differ from the tutorial's by the moves. The moves
/// are read from the captures themselves: the first record's time against the tutorial's.
#[test]
fn shifted_clocks_give_the_same_connections_and_the_shifts_as_offsets() {
    let base_dir = fixtures_dir().join("tutorial");
    assert!(base_dir.is_dir(), "no tutorial fixture");
    let base_truth = hosts(&base_dir);
    let base = run(&base_dir, &base_truth);
    let mut compared = 0;
    for dir in fixtures() {
        if dir == base_dir {
            continue;
        }
        let truth = hosts(&dir);
        // Only fixtures holding the tutorial's captures, file for file.
        let shifts: Option<Vec<i64>> = truth
            .iter()
            .map(|t| {
                let bi = base_truth.iter().position(|b| b.file == t.file)?;
                let _ = bi;
                Some(
                    first_record_ns(&dir.join(&t.file))?
                        - first_record_ns(&base_dir.join(&t.file))?,
                )
            })
            .collect();
        let Some(shifts) = shifts else { continue };
        if shifts.iter().all(|s| *s == 0) {
            continue;
        }
        compared += 1;
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        let a = run(&dir, &truth);
        let key = |an: &Analysis| {
            let mut v: Vec<_> = an
                .connections
                .iter()
                .map(|c| (c.client, c.vip, c.real_server, c.outcome, c.history.clone()))
                .collect();
            v.sort_by_key(|x| (x.0, x.1));
            v
        };
        assert_eq!(key(&a), key(&base), "{name}: connections differ");
        let offset = |an: &Analysis, file: &str, files: &[Truth]| {
            let i = files_of(files).iter().position(|f| f == file).unwrap() as u32;
            an.clock_offsets
                .iter()
                .find(|o| o.vantage.capture == i)
                .map(|o| o.offset_ns)
                .unwrap()
        };
        // Offsets are against the reference capture (the director's), itself maybe moved.
        let reference_file = &files_of(&truth)[a.clock_offsets[0].reference.capture as usize];
        let reference = truth
            .iter()
            .position(|t| &t.file == reference_file)
            .unwrap();
        for (i, t) in truth.iter().enumerate() {
            let expected = shifts[i] - shifts[reference];
            let got = offset(&a, &t.file, &truth) - offset(&base, &t.file, &base_truth);
            assert!(
                (got - expected).abs() < 5_000_000,
                "{name}/{}: offset moved by {got} ns, the clock by {expected} ns",
                t.file
            );
        }
    }
    assert!(compared > 0, "no fixture with shifted clocks");
}

/// Each capture on its own still gives the connections it can show (those of its host), says
/// what it cannot, and never names a wrong real server.
#[test]
fn a_single_vantage_point_gives_what_it_can_show() {
    let mut checked = 0;
    for dir in fixtures() {
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        let truth = hosts(&dir);
        let conns = ipvs_conns(&dir);
        // Of a table that predates the captures, the entries all of them together show.
        let captured: Vec<std::net::SocketAddr> = if before_captures(&name) > 0 {
            let all = run(&dir, &truth);
            all.connections.iter().map(|c| c.client).collect()
        } else {
            Vec::new()
        };
        for t in truth.iter().filter(|t| {
            matches!(t.role, Role::Client | Role::Director)
                && t.interface.is_none()
                && has_ip_packet(&dir.join(&t.file))
                && !AMBIGUOUS_ALONE.contains(&(name.as_str(), t.file.as_str()))
        }) {
            let one = [Truth {
                file: t.file.clone(),
                role: t.role,
                ips: t.ips.clone(),
                interface: None,
                host: t.host.clone(),
                mac: t.mac.clone(),
                mirrors: Vec::new(),
            }];
            let a = run(&dir, &one);
            checked += 1;
            for v in &a.topology.vantages {
                assert_eq!(v.role, t.role, "{name}/{} alone: {}", t.file, v.reason);
            }
            let missing = if t.role == Role::Client {
                "no director capture"
            } else {
                "no client capture"
            };
            assert!(
                a.topology.limits.iter().any(|l| l.contains(missing)),
                "{name}/{} alone: limits {:?}",
                t.file,
                a.topology.limits
            );
            // A client's capture shows that client's connections only.
            let own = own_entries(&dir, &t.host, &conns);
            let table = if t.role == Role::Director {
                &own
            } else {
                &conns
            };
            let mine = table
                .iter()
                .filter(|c| t.role == Role::Director || t.ips.contains(&c.client.ip()))
                .filter(|c| before_captures(&name) == 0 || captured.contains(&c.client));
            for c in mine {
                // The table's entry of a reused client port is the latest connection's.
                let x = a
                    .connections
                    .iter()
                    .filter(|x| x.client == c.client && x.vip == c.vip)
                    .max_by_key(|x| x.first_ts_ns)
                    .unwrap_or_else(|| panic!("{name}/{} alone: {c:?} not rebuilt", t.file));
                if t.role == Role::Director && server_must_be_named(&name) {
                    assert_eq!(x.real_server, Some(c.rs.ip()), "{name}/{} alone", t.file);
                } else if t.role == Role::Director {
                    assert!(
                        x.real_server.is_none_or(|r| r == c.rs.ip()),
                        "{name}/{} alone: {:?}, ipvsadm says {}",
                        t.file,
                        x.real_server,
                        c.rs
                    );
                } else {
                    assert_eq!(x.real_server, None, "{name}/{} alone", t.file);
                    assert!(x.unseen.iter().any(|u| u.contains("which real server")));
                }
            }
        }
    }
    assert!(checked > 0);
}

#[test]
fn streamed_connections_are_the_kept_ones_on_every_fixture() {
    // What `flows --json` writes as it goes (and `verify` checks) is what the tables keep and
    // sort: the same records but for their numbering.
    let strip_id = |c: &lvscheck::flows::Connection| {
        let mut v = serde_json::to_value(c).unwrap();
        v.as_object_mut().unwrap().remove("id");
        v.to_string()
    };
    for dir in fixtures() {
        let truth = hosts(&dir);
        let files: Vec<CaptureSource> = files_of(&truth)
            .iter()
            .map(|f| CaptureSource::File(dir.join(f)))
            .collect();
        let kept = run(&dir, &truth);
        let mut streamed = Vec::new();
        let a = lvscheck::flows::analyse_files_streaming(
            &files,
            cli_decoding(),
            &FlowOptions::default(),
            &mut |c| streamed.push(c),
        );
        let name = dir.display();
        assert_eq!(
            a.connection_count as usize,
            kept.connections.len(),
            "{name}"
        );
        let mut s: Vec<String> = streamed.iter().map(strip_id).collect();
        let mut k: Vec<String> = kept.connections.iter().map(strip_id).collect();
        s.sort();
        k.sort();
        assert_eq!(s, k, "{name}");
        assert_eq!(
            serde_json::to_value(&a.topology).unwrap(),
            serde_json::to_value(&kept.topology).unwrap(),
            "{name}"
        );
        for st in &a.stats {
            assert_eq!(st.late_packets, 0, "{name}: {st:?}");
        }
    }
}
