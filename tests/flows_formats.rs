//! `lvscheck flows --format tsv|parquet` (docs/conn-log.md): the Zeek-style log checked against
//! the captures as tshark reads them and against the lab director's own tables (ipvsadm
//! `--stats` and `-Lnc`); the Parquet file read back with the `parquet` crate and with DuckDB,
//! and compared with the log (a consistency test of lvscheck's two writers).

mod verify_common;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;

use arrow::array::{
    Array, Float64Array, ListArray, StringArray, TimestampNanosecondArray, UInt16Array, UInt64Array,
};
use arrow::datatypes::{DataType, TimeUnit};
use lvscheck::topology::director_state::read_director_state;
use lvscheck::topology::rules::read_conns;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use verify_common::{fixture_captures, root, tshark_available, tshark_fields};

/// The fixtures: plain IP-in-IP, IPv6 in IPv6, GUE, reused client ports; with the file that
/// is the director's capture, and whether the director's `--stats` counted every connection
/// (ipv6-healthy's were read while the kernel still summed them: its README).
const FIXTURES: [(&str, &str, bool); 4] = [
    ("tutorial", "server1.pcap", true),
    ("ipv6-healthy", "director.pcap", false),
    ("gue-healthy", "director.pcap", true),
    ("syn-reuse-ok", "director.pcap", true),
];

fn run(args: &[&str], files: &[PathBuf]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_lvscheck"))
        .current_dir(root())
        .arg("flows")
        .args(files)
        .args(args)
        .output()
        .expect("lvscheck runs")
}

/// A field of the log as its header types it, decoded; the Parquet file's cells are made the
/// same for the comparison.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    Unset,
    Text(String),
    Float(f64),
    List(Vec<String>),
}

impl Value {
    fn text(&self) -> &str {
        match self {
            Value::Text(t) => t,
            other => panic!("not text: {other:?}"),
        }
    }
    fn num(&self) -> i128 {
        self.text()
            .parse()
            .unwrap_or_else(|_| panic!("not a number: {self:?}"))
    }
    fn opt_num(&self) -> Option<i128> {
        (*self != Value::Unset).then(|| self.num())
    }
}

/// Zeek's `\xNN` escapes undone.
fn unescape(field: &str) -> String {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && b.get(i + 1) == Some(&b'x') && i + 3 < b.len() {
            out.push(u8::from_str_radix(&field[i + 2..i + 4], 16).expect("two hex digits"));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).expect("UTF-8 once unescaped")
}

/// Nanoseconds from `secs.fraction` as the log and tshark write times, exactly.
fn ns(text: &str) -> i64 {
    let (s, f) = text.split_once('.').unwrap_or((text, ""));
    let digits = format!("{f:0<9}");
    s.parse::<i64>().unwrap() * 1_000_000_000 + digits[..9].parse::<i64>().unwrap()
}

struct Log {
    header: BTreeMap<String, String>,
    names: Vec<String>,
    types: Vec<String>,
    rows: Vec<Vec<Value>>,
    last_line: String,
}

impl Log {
    fn parse(text: &str) -> Log {
        let mut header = BTreeMap::new();
        let mut rows = Vec::new();
        for line in text.lines() {
            if let Some(h) = line.strip_prefix('#') {
                let (k, v) = h
                    .split_once('\t')
                    .or_else(|| h.split_once(' '))
                    .expect("a header line: key, separator, value");
                header.insert(k.to_string(), v.to_string());
            } else {
                rows.push(line.to_string());
            }
        }
        let names: Vec<String> = header["fields"].split('\t').map(String::from).collect();
        let types: Vec<String> = header["types"].split('\t').map(String::from).collect();
        assert_eq!(names.len(), types.len());
        let rows = rows
            .iter()
            .map(|r| {
                let cells: Vec<&str> = r.split('\t').collect();
                assert_eq!(cells.len(), names.len(), "one cell per field: {r:?}");
                cells
                    .iter()
                    .zip(&types)
                    .map(|(c, t)| decode(c, t))
                    .collect()
            })
            .collect();
        Log {
            header,
            names,
            types,
            rows,
            last_line: text.lines().last().unwrap_or("").to_string(),
        }
    }

    fn col(&self, name: &str) -> usize {
        self.names
            .iter()
            .position(|n| n == name)
            .unwrap_or_else(|| panic!("no column {name}"))
    }

    fn get<'a>(&self, row: &'a [Value], name: &str) -> &'a Value {
        &row[self.col(name)]
    }
}

fn decode(cell: &str, zeek_type: &str) -> Value {
    match (cell, zeek_type) {
        ("-", _) => Value::Unset,
        ("(empty)", "set[string]") => Value::List(Vec::new()),
        ("(empty)", _) => Value::Text(String::new()),
        (c, "set[string]") => Value::List(c.split(',').map(unescape).collect()),
        (c, "interval") => Value::Float(c.parse().expect("seconds")),
        (c, _) => Value::Text(unescape(c)),
    }
}

/// What tshark shows of one TCP frame between a client and a VIP: the innermost header's
/// addresses, ports and lengths, and how many IP headers wrap it.
#[derive(Debug)]
struct Frame {
    ts_ns: i64,
    src: String,
    dst: String,
    sport: u16,
    dport: u16,
    seq: u64,
    syn_only: bool,
    ip_len: u64,
    tcp_len: u64,
    ip_headers: usize,
    outer_src: String,
    outer_dst: String,
}

fn frames(file: &Path) -> Vec<Frame> {
    let fields = [
        "frame.time_epoch",
        "ip.src",
        "ip.dst",
        "ipv6.src",
        "ipv6.dst",
        "ip.len",
        "ipv6.plen",
        "tcp.srcport",
        "tcp.dstport",
        "tcp.seq_raw",
        "tcp.flags.syn",
        "tcp.flags.ack",
        "tcp.len",
        "icmp.type",
        "icmpv6.type",
    ];
    let last = |s: &str| s.rsplit(',').next().unwrap_or("").to_string();
    tshark_fields(file, false, ",", &fields)
        .into_iter()
        .filter(|f| {
            f.len() == fields.len() && !f[7].is_empty() && f[13].is_empty() && f[14].is_empty()
        })
        .map(|f| {
            let v6 = !f[3].is_empty() && f[1].is_empty();
            let (src, dst) = if v6 { (&f[3], &f[4]) } else { (&f[1], &f[2]) };
            let ip_len = if v6 {
                last(&f[6]).parse::<u64>().unwrap() + 40
            } else {
                last(&f[5]).parse().unwrap()
            };
            Frame {
                ts_ns: ns(&f[0]),
                src: last(src),
                dst: last(dst),
                sport: f[7].parse().unwrap(),
                dport: f[8].parse().unwrap(),
                seq: f[9].parse().unwrap(),
                syn_only: f[10] == "1" && f[11] == "0",
                ip_len,
                tcp_len: f[12].parse().unwrap(),
                ip_headers: src.split(',').count(),
                outer_src: src.split(',').next().unwrap_or("").to_string(),
                outer_dst: dst.split(',').next().unwrap_or("").to_string(),
            }
        })
        .collect()
}

/// One connection as one capture shows it: frames of a client port from its SYN (a new ISN)
/// to the next SYN with another ISN on the same port.
#[derive(Debug, Default, Clone)]
struct Seen {
    client: String,
    vip: String,
    vip_port: u16,
    first_ns: i64,
    orig_pkts: u64,
    orig_ip_bytes: u64,
    orig_bytes: u64,
    resp_pkts: u64,
    resp_ip_bytes: u64,
    resp_bytes: u64,
    wrapped_pkts: u64,
    /// The first wrapped request's outer addresses.
    outer: Option<(String, String)>,
}

/// The connections of a capture, keyed by (client port, ISN).
fn connections(file: &Path, vip: &str) -> BTreeMap<(u16, u64), Seen> {
    let mut out: BTreeMap<(u16, u64), Seen> = BTreeMap::new();
    let mut current: HashMap<u16, u64> = HashMap::new();
    for f in frames(file) {
        let request = f.dst == vip;
        if !request && f.src != vip {
            continue;
        }
        let port = if request { f.sport } else { f.dport };
        if request && f.syn_only {
            current.insert(port, f.seq);
        }
        let Some(&isn) = current.get(&port) else {
            continue;
        };
        let s = out.entry((port, isn)).or_insert_with(|| Seen {
            client: if request {
                f.src.clone()
            } else {
                f.dst.clone()
            },
            vip: vip.to_string(),
            vip_port: if request { f.dport } else { f.sport },
            first_ns: f.ts_ns,
            ..Seen::default()
        });
        s.first_ns = s.first_ns.min(f.ts_ns);
        match (request, f.ip_headers > 1) {
            (true, true) => {
                s.wrapped_pkts += 1;
                s.outer
                    .get_or_insert_with(|| (f.outer_src.clone(), f.outer_dst.clone()));
            }
            (true, false) => {
                s.orig_pkts += 1;
                s.orig_ip_bytes += f.ip_len;
                s.orig_bytes += f.tcp_len;
            }
            (false, _) => {
                s.resp_pkts += 1;
                s.resp_ip_bytes += f.ip_len;
                s.resp_bytes += f.tcp_len;
            }
        }
    }
    out
}

/// The clock offset of each capture file (this clock minus the reference's), as `flows --json`
/// estimated it: what turns a capture's own times into the log's.
fn offsets(files: &[PathBuf]) -> HashMap<String, i64> {
    let out = run(&["--json"], files);
    let head: serde_json::Value = serde_json::from_str(
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    let name = |capture: &serde_json::Value| {
        head["captures"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["capture"] == *capture)
            .unwrap()["file"]
            .as_str()
            .unwrap()
            .to_string()
    };
    head["clock_offsets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                name(&o["vantage"]["capture"]),
                o["offset_ns"].as_i64().unwrap(),
            )
        })
        .collect()
}

fn tsv(files: &[PathBuf]) -> Log {
    let out = run(&["--format", "tsv"], files);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Log::parse(&String::from_utf8(out.stdout).unwrap())
}

#[test]
fn the_log_has_zeeks_header_and_one_row_per_connection_the_captures_and_director_show() {
    for (fixture, _, stats_complete) in FIXTURES {
        let files = fixture_captures(fixture);
        let log = tsv(&files);
        assert_eq!(log.header["separator"], "\\x09");
        assert_eq!(log.header["set_separator"], ",");
        assert_eq!(log.header["empty_field"], "(empty)");
        assert_eq!(log.header["unset_field"], "-");
        assert_eq!(log.header["path"], "conn");
        for stamp in [&log.header["open"], &log.header["close"]] {
            assert_eq!(stamp.len(), 19, "{stamp}");
            assert!(
                stamp.split('-').all(|p| p.parse::<u32>().is_ok()),
                "{stamp}"
            );
        }
        assert!(log.last_line.starts_with("#close\t"), "{fixture}");
        for (name, ztype) in [
            ("ts", "time"),
            ("uid", "string"),
            ("id.orig_h", "addr"),
            ("id.orig_p", "port"),
            ("id.resp_h", "addr"),
            ("id.resp_p", "port"),
            ("proto", "enum"),
            ("duration", "interval"),
            ("orig_bytes", "count"),
            ("conn_state", "string"),
            ("history", "string"),
            ("orig_pkts", "count"),
            ("orig_ip_bytes", "count"),
            ("resp_pkts", "count"),
            ("resp_ip_bytes", "count"),
            ("vantages", "set[string]"),
        ] {
            assert_eq!(log.types[log.col(name)], ztype, "{name}");
        }

        // The client's capture: one connection per client SYN with a new ISN.
        let vip = log.get(&log.rows[0], "id.resp_h").text().to_string();
        let at_client = connections(&files[0], &vip);
        assert!(!at_client.is_empty(), "{fixture}");
        assert_eq!(log.rows.len(), at_client.len(), "{fixture}: rows");

        // The director's tables: connections, packets in, connections per real server.
        let dir = Path::new(root()).join("fixtures").join(fixture);
        if stats_complete {
            let state = read_director_state(&[dir.join("stats.txt")]).unwrap();
            let stats = &state.stats.as_ref().unwrap()[0];
            assert_eq!(
                log.rows.len() as u64,
                stats.counters.conns.value,
                "{fixture}"
            );
            let in_pkts: i128 = log
                .rows
                .iter()
                .map(|r| log.get(r, "director_pkts").num())
                .sum();
            assert_eq!(in_pkts as u64, stats.counters.in_packets.value, "{fixture}");
            for s in &stats.servers {
                let to_it = log
                    .rows
                    .iter()
                    .filter(|r| *log.get(r, "real_server") == Value::Text(s.addr.ip().to_string()))
                    .count();
                assert_eq!(
                    to_it as u64, s.counters.conns.value,
                    "{fixture}: {}",
                    s.addr
                );
            }
        }
        // -Lnc: the last connection of each client port went to the real server it names.
        for e in read_conns(&dir.join("conns.txt")).unwrap() {
            let last = log
                .rows
                .iter()
                .filter(|r| log.get(r, "id.orig_p").num() == i128::from(e.client.port()))
                .max_by_key(|r| ns(log.get(r, "ts").text()))
                .unwrap_or_else(|| panic!("{fixture}: no row for {}", e.client));
            assert_eq!(log.get(last, "real_server").text(), e.rs.ip().to_string());
            assert_eq!(log.get(last, "id.orig_h").text(), e.client.ip().to_string());
            assert_eq!(log.get(last, "id.resp_h").text(), e.vip.ip().to_string());
        }
        let uids: std::collections::HashSet<&str> =
            log.rows.iter().map(|r| log.get(r, "uid").text()).collect();
        assert_eq!(
            uids.len(),
            log.rows.len(),
            "{fixture}: one uid per connection"
        );
    }
}

#[test]
fn tuples_times_and_counts_are_those_tshark_reads_in_the_captures() {
    if !tshark_available() {
        return;
    }
    for (fixture, director_file, _) in FIXTURES {
        let files = fixture_captures(fixture);
        let log = tsv(&files);
        let offsets = offsets(&files);
        let name = |f: &PathBuf| f.to_str().unwrap().to_string();
        let client_file = &files[0];
        let director_file = files.iter().find(|f| f.ends_with(director_file)).unwrap();
        let vip = log.get(&log.rows[0], "id.resp_h").text().to_string();
        let at_client = connections(client_file, &vip);
        let at_director = connections(director_file, &vip);
        let servers: Vec<BTreeMap<(u16, u64), Seen>> = files
            .iter()
            .filter(|f| *f != client_file && *f != director_file)
            .map(|f| connections(f, &vip))
            .collect();
        let gue = fixture.starts_with("gue");
        for ((port, isn), seen) in &at_client {
            let row = log
                .rows
                .iter()
                .find(|r| {
                    log.get(r, "id.orig_p").num() == i128::from(*port)
                        && log.get(r, "isn").opt_num() == Some(i128::from(*isn))
                })
                .unwrap_or_else(|| panic!("{fixture}: no row for port {port} ISN {isn}"));
            let get = |n: &str| log.get(row, n);
            let what = format!("{fixture} port {port} ISN {isn}");
            assert_eq!(get("id.orig_h").text(), seen.client, "{what}");
            assert_eq!(get("id.resp_h").text(), seen.vip, "{what}");
            assert_eq!(get("id.resp_p").num(), i128::from(seen.vip_port), "{what}");
            assert_eq!(get("proto").text(), "tcp");
            assert_eq!(get("ip_proto").num(), 6);
            assert_eq!(get("outcome_from").text(), name(client_file), "{what}");
            // The client's view: Zeek's counts of an observer at the client.
            assert_eq!(get("orig_pkts").num(), i128::from(seen.orig_pkts), "{what}");
            assert_eq!(
                get("orig_ip_bytes").num(),
                i128::from(seen.orig_ip_bytes),
                "{what}"
            );
            assert_eq!(
                get("orig_bytes").num(),
                i128::from(seen.orig_bytes),
                "{what}"
            );
            assert_eq!(get("resp_pkts").num(), i128::from(seen.resp_pkts), "{what}");
            assert_eq!(
                get("resp_ip_bytes").num(),
                i128::from(seen.resp_ip_bytes),
                "{what}"
            );
            assert_eq!(
                get("resp_bytes").num(),
                i128::from(seen.resp_bytes),
                "{what}"
            );
            // Times: each capture's own, less its clock offset.
            let client_ts = seen.first_ns - offsets[&name(client_file)];
            assert_eq!(ns(get("client_ts").text()), client_ts, "{what}");
            let ts = ns(get("ts").text());
            assert!(
                ts <= client_ts && client_ts - ts < 1_000_000,
                "{what}: ts {ts}"
            );
            let d = &at_director[&(*port, *isn)];
            assert_eq!(
                ns(get("director_ts").text()),
                d.first_ns - offsets[&name(director_file)],
                "{what}"
            );
            assert_eq!(
                get("director_pkts").num(),
                i128::from(d.orig_pkts),
                "{what}"
            );
            // tshark 4.0 does not decode GUE: its wrapped packets show no TCP header.
            if !gue {
                assert_eq!(
                    get("tunnel_pkts").num(),
                    i128::from(d.wrapped_pkts),
                    "{what}"
                );
                let (director, rs) = d.outer.as_ref().expect("a wrapped request at the director");
                assert_eq!(get("real_server").text(), rs, "{what}");
                assert_eq!(get("director").text(), director, "{what}");
                let at_rs: Vec<&Seen> = servers
                    .iter()
                    .filter_map(|s| s.get(&(*port, *isn)))
                    .collect();
                assert_eq!(at_rs.len(), 1, "{what}: seen at one real server");
                assert_eq!(
                    get("rs_pkts").num(),
                    i128::from(at_rs[0].wrapped_pkts),
                    "{what}"
                );
            }
            assert_eq!(
                get("tunnel").text(),
                if gue {
                    "gue"
                } else if vip.contains(':') {
                    "ip6ip6"
                } else {
                    "ipip"
                }
            );
        }
    }
}

/// A Parquet cell as the log's decoding gives it.
fn cell(column: &dyn Array, row: usize) -> Value {
    if column.is_null(row) {
        return Value::Unset;
    }
    let any = column.as_any();
    match column.data_type() {
        DataType::Timestamp(TimeUnit::Nanosecond, Some(tz)) if tz.as_ref() == "UTC" => {
            let v = any
                .downcast_ref::<TimestampNanosecondArray>()
                .unwrap()
                .value(row);
            Value::Text(format!(
                "{}.{:09}",
                v.div_euclid(1_000_000_000),
                v.rem_euclid(1_000_000_000)
            ))
        }
        DataType::Float64 => Value::Float(any.downcast_ref::<Float64Array>().unwrap().value(row)),
        DataType::UInt64 => Value::Text(
            any.downcast_ref::<UInt64Array>()
                .unwrap()
                .value(row)
                .to_string(),
        ),
        DataType::UInt16 => Value::Text(
            any.downcast_ref::<UInt16Array>()
                .unwrap()
                .value(row)
                .to_string(),
        ),
        DataType::Utf8 => Value::Text(
            any.downcast_ref::<StringArray>()
                .unwrap()
                .value(row)
                .to_string(),
        ),
        DataType::List(_) => {
            let items = any.downcast_ref::<ListArray>().unwrap().value(row);
            let items = items.as_any().downcast_ref::<StringArray>().unwrap();
            Value::List(
                (0..items.len())
                    .map(|i| items.value(i).to_string())
                    .collect(),
            )
        }
        other => panic!("unexpected column type {other}"),
    }
}

fn parquet_file(files: &[PathBuf], dir: &Path) -> PathBuf {
    let path = dir.join("conn.parquet");
    let out = run(
        &["--format", "parquet", "--out", path.to_str().unwrap()],
        files,
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty());
    assert!(!dir.join("conn.parquet.part").exists());
    path
}

#[test]
fn the_parquet_file_holds_the_rows_of_the_log_typed() {
    for (fixture, _, _) in FIXTURES {
        let files = fixture_captures(fixture);
        let log = tsv(&files);
        let tmp = tempfile::tempdir().unwrap();
        let path = parquet_file(&files, tmp.path());
        let builder =
            ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&path).unwrap()).unwrap();
        let meta = builder.metadata().file_metadata();
        let kv = meta.key_value_metadata().expect("key-value metadata");
        let version = kv.iter().find(|k| k.key == "lvscheck.conn_log.version");
        assert_eq!(version.and_then(|k| k.value.as_deref()), Some("1"));
        let schema = builder.schema().clone();
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(
            names,
            log.names.iter().map(String::as_str).collect::<Vec<_>>()
        );
        let mut rows: Vec<Vec<Value>> = Vec::new();
        for batch in builder.build().unwrap() {
            let batch = batch.unwrap();
            for r in 0..batch.num_rows() {
                rows.push(
                    batch
                        .columns()
                        .iter()
                        .map(|c| cell(c.as_ref(), r))
                        .collect(),
                );
            }
        }
        assert_eq!(rows.len(), log.rows.len(), "{fixture}");
        for (p, t) in rows.iter().zip(&log.rows) {
            for (i, (a, b)) in p.iter().zip(t).enumerate() {
                assert_eq!(a, b, "{fixture}: column {}", log.names[i]);
            }
        }
    }
}

#[test]
fn duckdb_reads_the_parquet_file_and_agrees_with_the_log() {
    let found = Command::new("python3")
        .args(["-c", "import duckdb"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var_os("LVSCHECK_REQUIRE_DUCKDB").is_none(),
            "DuckDB is required here: python3 -m pip install duckdb"
        );
        eprintln!("skipped: DuckDB is not installed (python3 -m pip install duckdb)");
        return;
    }
    for (fixture, _, _) in FIXTURES {
        let files = fixture_captures(fixture);
        let log = tsv(&files);
        let tmp = tempfile::tempdir().unwrap();
        let path = parquet_file(&files, tmp.path());
        let query = format!(
            "SELECT count(*), count(DISTINCT uid), sum(orig_pkts), sum(resp_pkts), \
             sum(director_pkts), min(epoch_ns(ts)), max(epoch_ns(ts)), \
             sum(CASE WHEN outcome = 'completed' THEN 1 ELSE 0 END), \
             string_agg(\"id.orig_p\"::VARCHAR, ',' ORDER BY ts, uid) \
             FROM read_parquet('{}')",
            path.display()
        );
        let script = format!(
            "import duckdb, json\nrow = duckdb.connect().execute({query:?}).fetchall()[0]\n\
             print(json.dumps([str(v) for v in row]))"
        );
        let out = Command::new("python3")
            .args(["-c", &script])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let got: Vec<String> = serde_json::from_slice(&out.stdout).unwrap();
        let sum = |n: &str| -> i128 { log.rows.iter().map(|r| log.get(r, n).num()).sum() };
        let times: Vec<i64> = log
            .rows
            .iter()
            .map(|r| ns(log.get(r, "ts").text()))
            .collect();
        let mut order: Vec<(i64, &str, i128)> = log
            .rows
            .iter()
            .map(|r| {
                (
                    ns(log.get(r, "ts").text()),
                    log.get(r, "uid").text(),
                    log.get(r, "id.orig_p").num(),
                )
            })
            .collect();
        order.sort();
        let ports: Vec<String> = order.iter().map(|o| o.2.to_string()).collect();
        let completed = log
            .rows
            .iter()
            .filter(|r| log.get(r, "outcome").text() == "completed")
            .count();
        let want = vec![
            log.rows.len().to_string(),
            log.rows.len().to_string(),
            sum("orig_pkts").to_string(),
            sum("resp_pkts").to_string(),
            sum("director_pkts").to_string(),
            times.iter().min().unwrap().to_string(),
            times.iter().max().unwrap().to_string(),
            completed.to_string(),
            ports.join(","),
        ];
        assert_eq!(got, want, "{fixture}");
    }
}

#[test]
fn text_from_the_captures_cannot_break_a_row() {
    // A capture named with a tab, a newline, a comma and a backslash: its name is in the
    // `vantages` set and in `outcome_from`.
    let tmp = tempfile::tempdir().unwrap();
    let evil = "cli\tent\n,1\\.pcap";
    let mut files = Vec::new();
    for f in fixture_captures("tutorial") {
        let name = f.file_name().unwrap().to_str().unwrap();
        let to = tmp
            .path()
            .join(if name == "client.pcap" { evil } else { name });
        std::fs::copy(&f, &to).unwrap();
        files.push(to);
    }
    let log = tsv(&files);
    assert_eq!(log.rows.len(), 10);
    let evil_path = tmp.path().join(evil).to_str().unwrap().to_string();
    for r in &log.rows {
        assert_eq!(log.get(r, "outcome_from").text(), evil_path);
        let Value::List(v) = log.get(r, "vantages") else {
            panic!("a set")
        };
        assert_eq!(v.len(), 3);
        assert!(v.contains(&evil_path), "{v:?}");
    }
    let raw = String::from_utf8(run(&["--format", "tsv"], &files).stdout).unwrap();
    assert!(
        raw.contains("cli\\x09ent\\x0a\\x2c1\\x5c.pcap"),
        "escaped in sets"
    );
    assert!(
        raw.contains("cli\\x09ent\\x0a,1\\x5c.pcap"),
        "escaped in strings"
    );
    // Parquet keeps the name as it is.
    let path = parquet_file(&files, tmp.path());
    let reader = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(path).unwrap())
        .unwrap()
        .build()
        .unwrap();
    for batch in reader {
        let batch = batch.unwrap();
        let from = batch.column_by_name("outcome_from").unwrap();
        for r in 0..batch.num_rows() {
            assert_eq!(cell(from.as_ref(), r), Value::Text(evil_path.clone()));
        }
    }
}

#[test]
fn format_json_is_json_and_formats_that_do_not_go_together_are_refused() {
    let files = fixture_captures("tutorial");
    let a = run(&["--json"], &files);
    let b = run(&["--format", "json"], &files);
    assert_eq!(a.status.code(), Some(0));
    assert_eq!(
        a.stdout, b.stdout,
        "--format json writes what --json writes"
    );
    for (args, says) in [
        (&["--format", "svg"][..], "--conn ID --ladder"),
        (
            &["--conn", "1", "--ladder", "--format", "tsv"][..],
            "text, svg or mermaid",
        ),
        (&["--json", "--format", "tsv"][..], "two formats"),
        (
            &["--conn", "1", "--format", "parquet", "--out", "-"][..],
            "--conn shows one",
        ),
    ] {
        let out = run(args, &files);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{args:?}: {err}");
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn out_file_appears_whole_or_not_at_all() {
    let tmp = tempfile::tempdir().unwrap();
    let files = fixture_captures("tutorial");
    let log = tmp.path().join("conn.log");
    let out = run(&["--format", "tsv", "--out", log.to_str().unwrap()], &files);
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stdout.is_empty());
    assert_eq!(
        Log::parse(&std::fs::read_to_string(&log).unwrap())
            .rows
            .len(),
        10
    );
    // A capture that cannot be read: exit 2, the older file untouched, no part left.
    let bad = tmp.path().join("bad.pcap");
    std::fs::write(&bad, b"not a capture").unwrap();
    let before = std::fs::read(&log).unwrap();
    let out = run(
        &["--format", "tsv", "--out", log.to_str().unwrap()],
        std::slice::from_ref(&bad),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad.pcap"));
    assert_eq!(std::fs::read(&log).unwrap(), before);
    assert!(!tmp.path().join("conn.log.part").exists());
    // A folder that does not exist: said before any capture is read.
    let nowhere = tmp.path().join("no/such/dir/conn.parquet");
    let out = run(
        &["--format", "parquet", "--out", nowhere.to_str().unwrap()],
        &files,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no/such/dir"));
}

/// Zeek's `conn_state` for what the client's capture shows: the flags each side sent there
/// (tshark), read with Zeek's rules for the cases these fixtures hold.
#[test]
fn conn_state_is_zeeks_reading_of_the_flags_the_client_saw() {
    if !tshark_available() {
        return;
    }
    for fixture in [
        "tutorial",
        "syn-reuse-ok",
        "not-listening-tcp",
        "not-listening-udp",
    ] {
        let files = fixture_captures(fixture);
        let log = tsv(&files);
        let vip = log.get(&log.rows[0], "id.resp_h").text().to_string();
        let fields = [
            "ip.src",
            "ip.dst",
            "tcp.srcport",
            "tcp.dstport",
            "tcp.flags.syn",
            "tcp.flags.ack",
            "tcp.flags.fin",
            "tcp.flags.reset",
            "udp.srcport",
            "udp.dstport",
            "icmp.type",
        ];
        // Per client port, in order: [SYN, SYN-ACK, client FIN, server FIN, client RST,
        // server RST, client datagram, server datagram], a new entry at each client SYN.
        let mut seen: BTreeMap<u16, Vec<[bool; 8]>> = BTreeMap::new();
        for f in tshark_fields(&files[0], false, ",", &fields) {
            if f.len() != fields.len() || !f[10].is_empty() {
                continue;
            }
            let request = f[1] == vip;
            if !request && f[0] != vip {
                continue;
            }
            let (sport, dport) = if f[2].is_empty() {
                (&f[8], &f[9])
            } else {
                (&f[2], &f[3])
            };
            let port: u16 = (if request { sport } else { dport }).parse().unwrap();
            let list = seen.entry(port).or_default();
            let on = |i: usize| f[i] == "1";
            if (request && on(4) && !on(5)) || (f[2].is_empty() && list.is_empty()) {
                list.push([false; 8]);
            }
            let Some(s) = list.last_mut() else { continue };
            if f[2].is_empty() {
                s[if request { 6 } else { 7 }] = true;
                continue;
            }
            s[0] |= request && on(4) && !on(5);
            s[1] |= !request && on(4) && on(5);
            s[if request { 2 } else { 3 }] |= on(6);
            s[if request { 4 } else { 5 }] |= on(7);
        }
        let mut states: Vec<&str> = Vec::new();
        for list in seen.values() {
            for s in list {
                states.push(match *s {
                    [true, false, _, _, _, true, _, _] => "REJ",
                    [true, true, _, _, true, false, _, _] => "RSTO",
                    [true, true, true, true, false, false, _, _] => "SF",
                    [false, false, false, false, false, false, true, true] => "SF",
                    [false, false, false, false, false, false, true, false] => "S0",
                    other => panic!("{fixture}: no case for {other:?}"),
                });
            }
        }
        states.sort_unstable();
        let mut got: Vec<&str> = log
            .rows
            .iter()
            .map(|r| log.get(r, "conn_state").text())
            .collect();
        got.sort_unstable();
        assert_eq!(got, states, "{fixture}");
    }
}
