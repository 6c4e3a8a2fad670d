//! Every fixture capture reads with the packet count and time span that Wireshark's capinfos
//! reports for it. The numbers are capinfos' own, in tests/data/capinfos-fixtures.tsv
//! (regenerate with tests/data/capinfos-fixtures.sh after re-recording).

use std::path::Path;

use lvscheck::capture::{read_capture, CaptureSource};

/// "1795629504.691167" -> nanoseconds, exactly (no float rounding).
fn parse_seconds(text: &str) -> i64 {
    let (secs, frac) = text.split_once('.').unwrap_or((text, ""));
    let mut frac = frac.to_string();
    assert!(frac.len() <= 9, "{text}: more than nanosecond precision");
    while frac.len() < 9 {
        frac.push('0');
    }
    secs.parse::<i64>().unwrap() * 1_000_000_000 + frac.parse::<i64>().unwrap()
}

#[test]
fn fixtures_match_capinfos() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let table = std::fs::read_to_string(root.join("tests/data/capinfos-fixtures.tsv")).unwrap();
    let mut checked = 0;
    for line in table
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let cols: Vec<&str> = line.split('\t').collect();
        assert_eq!(cols.len(), 4, "bad line: {line}");
        let (file, packets, earliest, latest) = (cols[0], cols[1], cols[2], cols[3]);
        let path = root.join(file);
        assert!(
            path.exists(),
            "{file} is in the capinfos table but not in fixtures/"
        );
        let summary = read_capture(0, &CaptureSource::File(path), |_| {})
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(
            summary.frames,
            packets.parse::<u64>().unwrap(),
            "{file}: packets"
        );
        assert_eq!(
            summary.earliest_ts_ns,
            Some(parse_seconds(earliest)),
            "{file}: earliest packet time"
        );
        assert_eq!(
            summary.latest_ts_ns,
            Some(parse_seconds(latest)),
            "{file}: latest packet time"
        );
        checked += 1;
    }
    // Every capture under fixtures/ is in the table.
    let mut on_disk = 0;
    for dir in std::fs::read_dir(root.join("fixtures")).unwrap() {
        let dir = dir.unwrap().path();
        if !dir.is_dir() {
            continue;
        }
        for f in std::fs::read_dir(&dir).unwrap() {
            let name = f.unwrap().file_name().to_string_lossy().to_string();
            if name.ends_with(".pcap") || name.ends_with(".pcapng") || name.ends_with(".gz") {
                on_disk += 1;
            }
        }
    }
    assert_eq!(
        checked, on_disk,
        "capinfos table and fixtures/ differ: regenerate the table"
    );
}
