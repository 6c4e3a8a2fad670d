//! The reader against Wireshark's own tools.
//!
//! `tests/data/capture_two_sections.pcapng` was made with Wireshark 4.0.17's tools:
//! ```text
//! text2pcap -t "%Y-%m-%d %H:%M:%S.%f" a.txt a.pcapng            # 5 Ethernet frames, µs
//! text2pcap -l 101 -t "%Y-%m-%d %H:%M:%S.%f" c.txt c.pcapng     # 3 raw-IP frames
//! mergecap -F pcapng -w m.pcapng a.pcapng c.pcapng               # section 1: 2 interfaces
//! editcap -F nsecpcap a.pcapng a-nsec.pcap
//! editcap -s 64 -t 3600 -F pcapng a-nsec.pcap sec2.pcapng       # section 2: ns, snaplen 64
//! cat m.pcapng sec2.pcapng > capture_two_sections.pcapng; gzip -k capture_two_sections.pcapng
//! ```
//! The expected values below are what `capinfos -c -a -e -S` and
//! `tshark -T fields -e frame.number -e frame.interface_id -e frame.time_epoch -e frame.len
//! -e frame.cap_len` print for it (tshark's interface id counts within a section; ours runs on
//! across sections, so section 2's interface 0 is our 2).

use std::path::{Path, PathBuf};
use std::process::Command;

use lvscheck::capture::{read_capture, CaptureSource, CaptureSummary, Format};

fn data(name: &str) -> CaptureSource {
    CaptureSource::File(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data")
            .join(name),
    )
}

/// (number, interface, time, wire length, captured length) of a frame.
type FrameRow = (u64, u32, i64, u32, usize);

fn frames_of(source: &CaptureSource) -> (CaptureSummary, Vec<FrameRow>) {
    let mut frames = Vec::new();
    let summary = read_capture(0, source, |f| {
        frames.push((f.number, f.interface, f.ts_ns, f.wire_len, f.data.len()))
    })
    .unwrap_or_else(|e| panic!("{e}"));
    (summary, frames)
}

#[test]
fn two_section_capture_matches_capinfos_and_tshark() {
    // capinfos: Number of packets 13; First packet time 1709287200.250000000;
    // Last packet time 1709290802.999999000.
    const CAPINFOS_PACKETS: u64 = 13;
    const CAPINFOS_FIRST: i64 = 1_709_287_200_250_000_000;
    const CAPINFOS_LAST: i64 = 1_709_290_802_999_999_000;
    // tshark, interface ids made capture-wide.
    let tshark: Vec<FrameRow> = vec![
        (1, 0, 1_709_287_200_500_001_000, 60, 60),
        (2, 0, 1_709_287_200_250_000_000, 74, 74),
        (3, 1, 1_709_287_200_750_000_000, 40, 40),
        (4, 1, 1_709_287_201_500_000_000, 52, 52),
        (5, 0, 1_709_287_202_999_999_000, 208, 208),
        (6, 0, 1_709_287_201_000_500_000, 54, 54),
        (7, 0, 1_709_287_202_123_456_000, 98, 98),
        (8, 1, 1_709_287_204_000_250_000, 60, 60),
        (9, 2, 1_709_290_800_500_001_000, 60, 60),
        (10, 2, 1_709_290_800_250_000_000, 74, 64),
        (11, 2, 1_709_290_802_999_999_000, 208, 64),
        (12, 2, 1_709_290_801_000_500_000, 54, 54),
        (13, 2, 1_709_290_802_123_456_000, 98, 64),
    ];

    for (name, gzip) in [
        ("capture_two_sections.pcapng", false),
        ("capture_two_sections.pcapng.gz", true),
    ] {
        let (summary, frames) = frames_of(&data(name));
        assert_eq!(frames, tshark, "{name}");
        assert_eq!(summary.frames, CAPINFOS_PACKETS);
        assert_eq!(summary.earliest_ts_ns, Some(CAPINFOS_FIRST));
        assert_eq!(summary.latest_ts_ns, Some(CAPINFOS_LAST));
        assert_eq!(summary.format, Format::Pcapng);
        assert_eq!(summary.gzip, gzip);
        assert_eq!(summary.sections, 2);
        // The IDBs, as xxd shows them: if_name "Fake IF, text2pcap" on the two text2pcap
        // interfaces, if_tsresol 9 on all three, snaplen 262144 (editcap -s cuts the packets
        // but keeps the interface's snaplen).
        let fake = Some("Fake IF, text2pcap".to_string());
        let ifaces: Vec<_> = summary
            .interfaces
            .iter()
            .map(|i| {
                (
                    i.id,
                    i.link_type,
                    i.snaplen,
                    i.ts_resolution_ns,
                    i.name.clone(),
                )
            })
            .collect();
        assert_eq!(
            ifaces,
            vec![
                (0, 1, 262_144, 1.0, fake.clone()),
                (1, 101, 262_144, 1.0, fake),
                (2, 1, 262_144, 1.0, None)
            ]
        );
        assert_eq!(summary.frames_per_interface, vec![5, 3, 5]);
        assert_eq!(summary.snaplen_truncated_frames, 3);
        assert!(summary.complete, "{:?}", summary.warnings);
        assert!(summary.warnings.is_empty());
    }
}

/// Compares every capture in `$LVSCHECK_CAPINFOS_DIR` with what capinfos and tshark say.
/// Needs Wireshark's tools: `LVSCHECK_CAPINFOS_DIR=/some/captures cargo test --test
/// capture_capinfos -- --ignored`.
#[test]
#[ignore = "needs capinfos and tshark and a directory of captures in LVSCHECK_CAPINFOS_DIR"]
fn captures_in_a_directory_match_capinfos_and_tshark() {
    let dir = PathBuf::from(
        std::env::var_os("LVSCHECK_CAPINFOS_DIR").expect("set LVSCHECK_CAPINFOS_DIR"),
    );
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no files in {}", dir.display());
    let mut compared = 0;
    for file in files {
        let capinfos = Command::new("capinfos")
            .args(["-c", "-a", "-e", "-S"])
            .arg(&file)
            .output()
            .unwrap();
        if !capinfos.status.success() {
            println!("skip {} (capinfos cannot read it)", file.display());
            continue;
        }
        let text = String::from_utf8_lossy(&capinfos.stdout);
        let field = |label: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(label).map(|v| v.trim().to_string()))
                .unwrap_or_else(|| panic!("{label} missing from capinfos output:\n{text}"))
        };
        let packets: u64 = field("Number of packets:").parse().unwrap();
        let tshark = Command::new("tshark")
            .args([
                "-T",
                "fields",
                "-e",
                "frame.number",
                "-e",
                "frame.time_epoch",
                "-e",
                "frame.len",
                "-e",
                "frame.cap_len",
                "-r",
            ])
            .arg(&file)
            .output()
            .unwrap();
        let expected: Vec<(u64, i64, u32, usize)> = String::from_utf8_lossy(&tshark.stdout)
            .lines()
            .map(|l| {
                let f: Vec<&str> = l.split('\t').collect();
                (
                    f[0].parse().unwrap(),
                    epoch_ns(f[1]),
                    f[2].parse().unwrap(),
                    f[3].parse().unwrap(),
                )
            })
            .collect();

        let source = CaptureSource::File(file.clone());
        let mut frames = Vec::new();
        let summary = read_capture(0, &source, |f| {
            frames.push((f.number, f.ts_ns, f.wire_len, f.data.len()))
        })
        .unwrap();
        assert_eq!(summary.frames, packets, "{}", file.display());
        if packets > 0 {
            assert_eq!(
                summary.earliest_ts_ns,
                Some(epoch_ns(&field("First packet time:"))),
                "{}",
                file.display()
            );
            assert_eq!(
                summary.latest_ts_ns,
                Some(epoch_ns(&field("Last packet time:"))),
                "{}",
                file.display()
            );
        }
        assert_eq!(frames, expected, "{}", file.display());
        println!("ok {} ({packets} frames)", file.display());
        compared += 1;
    }
    assert!(compared > 0);
}

/// "1709287200.250000000" -> nanoseconds.
fn epoch_ns(text: &str) -> i64 {
    let (secs, frac) = text.split_once('.').unwrap_or((text, "0"));
    let frac = format!("{frac:0<9}");
    secs.parse::<i64>().unwrap() * 1_000_000_000 + frac[..9].parse::<i64>().unwrap()
}
