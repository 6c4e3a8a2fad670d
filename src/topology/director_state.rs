//! The director's own view of the traffic: its connection table (`ipvsadm -Lnc`) and its
//! counters (`ipvsadm -Ln --stats`), read to be compared with what the captures show
//! (`checks::director_state`).
//!
//! A file is told apart by its header lines, never by its name: `IPVS connection entries` (or
//! the `pro expire state` header under it) opens a connection table, `IP Virtual Server
//! version` followed by `Prot LocalAddress:Port ... Conns InPkts ...` a counter listing. One
//! file may hold both, one after the other (`{ ipvsadm -Lnc; ipvsadm -Ln --stats; } > f`), and
//! several files may be given. The other listings (`-Ln` rules, `--rate`, `--thresholds`) and
//! anything else are refused, naming the file and line: a listing taken for another would be
//! compared with the traffic as if it meant something it does not.
//!
//! The counters are cumulative since the service was created, and ipvsadm prints numbers of a
//! hundred million and more shortened (`print_largenum`: `123456K`, `12345M`, `G`, `T`, in
//! powers of 1000, rounded down); a shortened number is kept as the range it stands for.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::Path;

use serde::Serialize;

use super::rules::{
    parse_conn_line, read_text, socket_addr, ConnEntry, ParseError, Proto, RulesError,
    VirtualService,
};

/// One line of a snapshot, as evidence: where it is and what it says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SnapshotLine {
    pub file: String,
    /// 1-based.
    pub line: usize,
    /// The line as written, trimmed.
    pub text: String,
}

/// A counter as ipvsadm printed it: exactly, or shortened to a multiple of `unit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Count {
    /// The smallest value the printed number stands for.
    pub value: u64,
    /// 1 when exact; 1000 for `K`, a million for `M`...: the true value is below
    /// `value + unit`.
    pub unit: u64,
}

impl Count {
    /// The largest value the printed number stands for.
    pub fn upper(&self) -> u64 {
        self.value.saturating_add(self.unit - 1)
    }
}

/// The five counters of a `--stats` row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Counters {
    pub conns: Count,
    pub in_packets: Count,
    pub out_packets: Count,
    pub in_bytes: Count,
    pub out_bytes: Count,
}

/// One entry of the connection table, with the line it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TableEntry {
    pub entry: ConnEntry,
    pub at: SnapshotLine,
}

/// A real server's row of the counter listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServerStats {
    pub addr: SocketAddr,
    pub counters: Counters,
    pub at: SnapshotLine,
}

/// A service's row of the counter listing and its servers' rows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceStats {
    pub service: VirtualService,
    pub counters: Counters,
    pub at: SnapshotLine,
    pub servers: Vec<ServerStats>,
}

/// Everything the `--director-state` files held.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DirectorState {
    /// The files, as given.
    pub files: Vec<String>,
    /// The connection table, when a file held one (an empty table is a table: the director
    /// held no connection).
    pub table: Option<Vec<TableEntry>>,
    /// The counters, when a file held them.
    pub stats: Option<Vec<ServiceStats>>,
}

/// Reads every file given and puts their tables and counters together. An entry of the table
/// given twice (the same connection to the same server in two snapshots) is kept once; a
/// service whose counters are given twice is refused, since cumulative counters taken at two
/// times cannot both be compared with one set of captures.
pub fn read_director_state<P: AsRef<Path>>(paths: &[P]) -> Result<DirectorState, RulesError> {
    let mut state = DirectorState::default();
    for path in paths {
        let path = path.as_ref();
        let text = read_text(
            path,
            "a snapshot of the director",
            "the output of ipvsadm -Lnc or ipvsadm -Ln --stats",
        )?;
        parse_into(&mut state, &text, &path.display().to_string())?;
    }
    if let Some(table) = &mut state.table {
        let mut seen = HashSet::new();
        table.retain(|t| {
            let e = &t.entry;
            seen.insert((e.proto, e.client, e.vip, e.rs))
        });
    }
    Ok(state)
}

/// What the lines being read belong to.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Section {
    None,
    Table,
    /// After `IP Virtual Server version`, before the header that says which listing it is.
    Listing,
    Stats,
}

const NEITHER: &str = "neither a connection table (ipvsadm -Lnc) nor counters (ipvsadm -Ln \
                       --stats): --director-state wants the output of those two commands, \
                       headers included";

/// Adds what `text` holds to `state`; `file` names it in the state and in errors.
pub fn parse_into(state: &mut DirectorState, text: &str, file: &str) -> Result<(), ParseError> {
    let err = |line: usize, message: String| ParseError {
        file: file.to_string(),
        line,
        message,
    };
    if text.trim().is_empty() {
        return Err(err(
            1,
            format!(
                "the file is empty: {NEITHER} (ipvsadm prints nothing without root: run sudo \
                 ipvsadm -Lnc > FILE on the director)"
            ),
        ));
    }
    state.files.push(file.to_string());
    let mut section = Section::None;
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let line = raw.trim();
        let at = || SnapshotLine {
            file: file.to_string(),
            line: n,
            text: line.to_string(),
        };
        if line.is_empty() {
            continue;
        }
        if line.starts_with("Can't initialize ipvs") {
            return Err(err(
                n,
                format!(
                    "this is ipvsadm's error message (`{line}`), not a snapshot: run it as root \
                     on the director (sudo ipvsadm -Lnc > FILE)"
                ),
            ));
        }
        if line.starts_with("IPVS connection entries")
            || (line.starts_with("pro ") && line.contains("expire"))
        {
            section = Section::Table;
            state.table.get_or_insert_with(Vec::new);
            continue;
        }
        if line.starts_with("IP Virtual Server version") {
            section = Section::Listing;
            continue;
        }
        if line.starts_with("Prot LocalAddress:Port") {
            section = listing_kind(line).map_err(|m| err(n, m.to_string()))?;
            state.stats.get_or_insert_with(Vec::new);
            continue;
        }
        if line.starts_with("-> RemoteAddress:Port") && section == Section::Stats {
            continue;
        }
        match section {
            Section::Table => {
                let entry = parse_conn_line(line, file, n)?;
                if let Some(table) = &mut state.table {
                    table.push(TableEntry { entry, at: at() });
                }
            }
            Section::Stats => {
                let stats = state.stats.get_or_insert_with(Vec::new);
                stats_line(stats, line, at()).map_err(|m| err(n, m))?;
            }
            Section::Listing => {
                return Err(err(
                    n,
                    "expected the header `Prot LocalAddress:Port ... Conns InPkts OutPkts \
                     InBytes OutBytes` of ipvsadm -Ln --stats"
                        .to_string(),
                ))
            }
            Section::None => return Err(err(n, NEITHER.to_string())),
        }
    }
    Ok(())
}

/// Which listing a `Prot LocalAddress:Port` header opens: only the counters are wanted here.
fn listing_kind(header: &str) -> Result<Section, &'static str> {
    let words: Vec<&str> = header.split_whitespace().collect();
    let has = |w: &str| words.contains(&w);
    if has("Conns") && has("InPkts") {
        Ok(Section::Stats)
    } else if has("Scheduler") {
        Err(
            "this is the rules listing (ipvsadm -Ln): give it with --rules; \
             --director-state wants ipvsadm -Lnc and ipvsadm -Ln --stats",
        )
    } else if has("CPS") {
        Err("these are rates (ipvsadm -Ln --rate), not counters: give ipvsadm -Ln --stats")
    } else {
        Err(
            "a listing with other columns (--thresholds, --persistent-conn...), not \
             counters: give ipvsadm -Ln --stats",
        )
    }
}

/// A service row (`TCP  10.0.0.1:80  10 68 0 4398 0`, `FWM  3 IPv6 ...`) or a server row
/// (`-> 10.0.0.2:80  5 35 0 2245 0`) of the counter listing.
fn stats_line(stats: &mut Vec<ServiceStats>, line: &str, at: SnapshotLine) -> Result<(), String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let addr = |w: &str| {
        socket_addr(w).ok_or_else(|| {
            format!("bad address `{w}` (numeric addresses only: ipvsadm -Ln --stats)")
        })
    };
    if words[0] == "->" {
        let service = stats
            .last_mut()
            .ok_or("a server row before any service row")?;
        let a = addr(words.get(1).copied().unwrap_or(""))?;
        let counters = counters(&words[2..])?;
        service.servers.push(ServerStats {
            addr: a,
            counters,
            at,
        });
        return Ok(());
    }
    let (service, rest) = if words[0] == "FWM" {
        let v = words.get(1).copied().unwrap_or("");
        let mark = v.parse().map_err(|_| format!("bad firewall mark `{v}`"))?;
        let ipv6 = words.get(2) == Some(&"IPv6");
        let rest = if ipv6 { &words[3..] } else { &words[2..] };
        (VirtualService::FwMark { mark, ipv6 }, rest)
    } else {
        let proto = Proto::from_table(words[0])
            .filter(|p| *p != Proto::Ip)
            .ok_or_else(|| format!("expected TCP, UDP, SCTP, FWM or ->, found `{}`", words[0]))?;
        let vip = addr(words.get(1).copied().unwrap_or(""))?;
        (VirtualService::Addr { proto, vip }, &words[2..])
    };
    if let Some(before) = stats.iter().find(|s| s.service == service) {
        return Err(format!(
            "the counters of this service are given twice (also {}:{}): cumulative counters \
             taken at two times cannot both be compared with the captures; give one snapshot",
            before.at.file, before.at.line
        ));
    }
    stats.push(ServiceStats {
        service,
        counters: counters(rest)?,
        at,
        servers: Vec::new(),
    });
    Ok(())
}

/// `Conns InPkts OutPkts InBytes OutBytes`.
fn counters(words: &[&str]) -> Result<Counters, String> {
    let [c, ip, op, ib, ob] = words else {
        return Err(format!(
            "expected five counters (Conns InPkts OutPkts InBytes OutBytes), found {}",
            words.len()
        ));
    };
    Ok(Counters {
        conns: count(c)?,
        in_packets: count(ip)?,
        out_packets: count(op)?,
        in_bytes: count(ib)?,
        out_bytes: count(ob)?,
    })
}

/// `12345`, or shortened as ipvsadm's `print_largenum` does: `123456K`, `12345M`, `123G`, `1T`.
fn count(w: &str) -> Result<Count, String> {
    let (digits, unit) = match w.as_bytes().last() {
        Some(b'K') => (&w[..w.len() - 1], 1_000),
        Some(b'M') => (&w[..w.len() - 1], 1_000_000),
        Some(b'G') => (&w[..w.len() - 1], 1_000_000_000),
        Some(b'T') => (&w[..w.len() - 1], 1_000_000_000_000),
        _ => (w, 1),
    };
    let bad = || format!("a counter wants a number (with K, M, G or T), found `{w}`");
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let n: u64 = digits.parse().map_err(|_| bad())?;
    Ok(Count {
        value: n.checked_mul(unit).ok_or_else(bad)?,
        unit,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<DirectorState, ParseError> {
        let mut s = DirectorState::default();
        parse_into(&mut s, text, "f.txt")?;
        Ok(s)
    }

    const STATS: &str = "IP Virtual Server version 1.2.1 (size=4096)\n\
Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes\n\
  -> RemoteAddress:Port\n\
TCP  10.7.0.100:80                  123456K  987654M        0  1234G        7T\n\
  -> 10.7.0.11:80                   99999999       20        0     1286        0\n\
TCP  [2001:db8:7::100]:80                3       18        0     1563        0\n\
  -> [2001:db8:7::11]:80                 1        6        0      521        0\n\
FWM  3 IPv6                              4        5        6        7        8\n\
  -> [2001:db8:7::12]:0                  4        5        6        7        8\n\
FWM  7                                   0        0        0        0        0\n";

    #[test]
    fn counters_with_suffixes_ipv6_and_marks() {
        let s = parse(STATS).unwrap();
        assert!(s.table.is_none());
        let stats = s.stats.unwrap();
        assert_eq!(stats.len(), 4);
        let c = stats[0].counters;
        assert_eq!(
            (c.conns.value, c.conns.unit, c.conns.upper()),
            (123_456_000, 1000, 123_456_999)
        );
        assert_eq!(c.in_packets.value, 987_654_000_000);
        assert_eq!(c.in_bytes.unit, 1_000_000_000);
        assert_eq!(c.out_bytes.value, 7_000_000_000_000);
        assert_eq!(stats[0].servers[0].counters.conns.value, 99_999_999);
        assert_eq!(stats[0].servers[0].counters.conns.unit, 1);
        assert_eq!(stats[0].at.line, 4);
        assert_eq!(
            stats[1].service,
            VirtualService::Addr {
                proto: Proto::Tcp,
                vip: "[2001:db8:7::100]:80".parse().unwrap()
            }
        );
        assert_eq!(
            stats[1].servers[0].addr,
            "[2001:db8:7::11]:80".parse::<SocketAddr>().unwrap()
        );
        assert_eq!(
            stats[2].service,
            VirtualService::FwMark {
                mark: 3,
                ipv6: true
            }
        );
        assert_eq!(stats[2].counters.out_bytes.value, 8);
        assert_eq!(stats[2].servers.len(), 1);
        assert_eq!(
            stats[3].service,
            VirtualService::FwMark {
                mark: 7,
                ipv6: false
            }
        );
    }

    #[test]
    fn both_listings_in_one_file() {
        let text = format!(
            "IPVS connection entries\n\
pro expire state       source             virtual            destination\n\
TCP 01:46  FIN_WAIT    10.7.0.200:43866   10.7.0.100:80      10.7.0.12:80\n\
IP  01:59  ASSURED     10.7.0.201:0       0.0.0.3:0          10.7.0.11:0\n\
\n{STATS}"
        );
        let s = parse(&text).unwrap();
        let table = s.table.unwrap();
        assert_eq!(table.len(), 2);
        assert_eq!(table[0].at.line, 3);
        assert!(table[0].at.text.starts_with("TCP 01:46"));
        assert!(table[1].entry.is_template());
        assert_eq!(s.stats.unwrap().len(), 4);
    }

    #[test]
    fn an_empty_table_is_a_table() {
        let s = parse("IPVS connection entries\npro expire state source virtual destination\n")
            .unwrap();
        assert_eq!(s.table, Some(Vec::new()));
    }

    #[test]
    fn other_files_are_refused_naming_the_line() {
        let e = parse("-A -t 10.0.0.1:80 -s rr\n").unwrap_err();
        assert_eq!((e.file.as_str(), e.line), ("f.txt", 1));
        assert!(e.message.contains("neither"), "{e}");
        let e = parse(
            "IP Virtual Server version 1.2.1 (size=4096)\nProt LocalAddress:Port Scheduler Flags\n",
        )
        .unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.message.contains("--rules"), "{e}");
        let e = parse("IP Virtual Server version 1.2.1 (size=4096)\nProt LocalAddress:Port CPS InPPS OutPPS InBPS OutBPS\n").unwrap_err();
        assert!(e.message.contains("--rate"), "{e}");
        let e = parse("  \n").unwrap_err();
        assert!(e.message.contains("empty"), "{e}");
        let e = parse("Can't initialize ipvs: Permission denied (you must be root)\n").unwrap_err();
        assert!(e.message.contains("root"), "{e}");
    }

    #[test]
    fn bad_rows_name_the_line() {
        let head = "Prot LocalAddress:Port Conns InPkts OutPkts InBytes OutBytes\n";
        let e = parse(&format!("{head}  -> 10.0.0.2:80 1 2 3 4 5\n")).unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.message.contains("before any service"), "{e}");
        let e = parse(&format!("{head}TCP 10.0.0.1:80 1 2 3 4\n")).unwrap_err();
        assert!(e.message.contains("five counters"), "{e}");
        let e = parse(&format!("{head}TCP 10.0.0.1:80 1 2 3 4 5X\n")).unwrap_err();
        assert!(e.message.contains("`5X`"), "{e}");
        let e = parse(&format!("{head}TCP 10.0.0.1:80 1 2 3 4 K\n")).unwrap_err();
        assert!(e.message.contains("`K`"), "{e}");
        let e = parse(&format!("{head}TCP 10.0.0.1:80 99999999999T 2 3 4 5\n")).unwrap_err();
        assert!(e.message.contains("99999999999T"), "{e}");
        let e = parse(&format!("{head}TCP lvs.example:http 1 2 3 4 5\n")).unwrap_err();
        assert!(e.message.contains("numeric"), "{e}");
        let e = parse(&format!(
            "{head}TCP 10.0.0.1:80 1 2 3 4 5\nTCP 10.0.0.1:80 1 2 3 4 5\n"
        ))
        .unwrap_err();
        assert_eq!(e.line, 3);
        assert!(e.message.contains("f.txt:2"), "{e}");
        let e = parse("IPVS connection entries\nTCP 01:00 FIN_WAIT host:1 2.2.2.2:80 3.3.3.3:80\n")
            .unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.message.contains("-Lnc"), "{e}");
    }

    #[test]
    fn files_are_put_together_and_repeated_entries_kept_once() {
        let dir = std::env::temp_dir().join(format!("lvscheck-dstate-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let conns = "IPVS connection entries\n\
pro expire state       source             virtual            destination\n\
TCP 01:46  FIN_WAIT    10.7.0.200:43866   10.7.0.100:80      10.7.0.12:80\n";
        let later = conns.replace("01:46", "01:20");
        let (a, b, c) = (dir.join("a"), dir.join("b"), dir.join("c"));
        std::fs::write(&a, conns).unwrap();
        std::fs::write(&b, later).unwrap();
        std::fs::write(&c, STATS).unwrap();
        let s = read_director_state(&[&a, &b, &c]).unwrap();
        assert_eq!(s.files.len(), 3);
        assert_eq!(s.table.as_ref().unwrap().len(), 1);
        assert_eq!(s.stats.as_ref().unwrap().len(), 4);
        let e = read_director_state(&[&c, &c]).unwrap_err().to_string();
        assert!(e.contains("given twice"), "{e}");
        let e = read_director_state(&[&dir]).unwrap_err().to_string();
        assert!(e.contains("directory"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
