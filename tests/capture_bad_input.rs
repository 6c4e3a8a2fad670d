//! Broken and hostile inputs: each gives a clear error (nothing readable) or a warning (what was
//! read is kept), naming the file and the frame and/or byte offset; none panics.

mod capture_common;

use capture_common::*;
use lvscheck::capture::{read_capture, CaptureError, CaptureSource, Format, MAX_WARNINGS};

fn three_record_pcap() -> (Pcap, Vec<u64>) {
    let mut pcap = Pcap::new(false, false, 1, 65535);
    let offsets = vec![
        pcap.record(10, 0, &payload(1, 60), 60),
        pcap.record(11, 0, &payload(2, 70), 70),
        pcap.record(12, 0, &payload(3, 1514), 1514),
    ];
    (pcap, offsets)
}

fn error_of(name: &str, bytes: &[u8]) -> CaptureError {
    match read_bytes(name, bytes).0 {
        Err(e) => e,
        Ok(summary) => panic!("expected an error, got {summary:?}"),
    }
}

#[test]
fn empty_file() {
    let e = error_of("empty.pcap", &[]);
    assert!(
        matches!(e, CaptureError::Empty { gzip: false, .. }),
        "{e:?}"
    );
    assert_eq!(e.to_string(), "empty.pcap: is empty");

    let e = error_of("empty.pcap.gz", &gzip(&[]));
    assert_eq!(
        e.to_string(),
        "empty.pcap.gz: gzip-compressed file is empty"
    );
}

#[test]
fn unknown_magic() {
    let e = error_of("notes.txt", b"hello world\n");
    assert_eq!(
        e.to_string(),
        "notes.txt: not a pcap or pcapng file (it starts with 68 65 6c 6c)"
    );
    assert_eq!(e.file(), "notes.txt");

    let e = error_of("c.pcap.zst", &[0x28, 0xb5, 0x2f, 0xfd, 0, 0, 0, 0]);
    assert!(
        e.to_string()
            .contains("zstd-compressed: decompress it first"),
        "{e}"
    );

    let e = error_of("inner.gz", &gzip(b"GIF89a...."));
    assert_eq!(e.to_string(), "inner.gz: not a pcap or pcapng file inside its gzip compression (it starts with 47 49 46 38)");
}

#[test]
fn truncated_file_headers() {
    let (pcap, _) = three_record_pcap();
    let e = error_of("short.pcap", &pcap.bytes[..10]);
    assert!(
        matches!(
            e,
            CaptureError::TruncatedHeader {
                need: 24,
                have: 10,
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        "short.pcap: the pcap file header is cut short (10 of 24 bytes)"
    );

    // Shorter than any magic, but the start of one.
    let e = error_of("tiny.pcap", &pcap.bytes[..2]);
    assert!(
        matches!(
            e,
            CaptureError::TruncatedHeader {
                need: 4,
                have: 2,
                ..
            }
        ),
        "{e:?}"
    );

    let ng = Pcapng::new(false);
    let shb_len = ng.bytes.len();
    let e = error_of("short.pcapng", &ng.bytes[..20]);
    assert!(
        matches!(e, CaptureError::TruncatedHeader { have: 20, .. }),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        format!(
            "short.pcapng: the pcapng section header block is cut short (20 of {shb_len} bytes)"
        )
    );
    let e = error_of("shorter.pcapng", &ng.bytes[..7]);
    assert!(
        matches!(
            e,
            CaptureError::TruncatedHeader {
                need: 12,
                have: 7,
                ..
            }
        ),
        "{e:?}"
    );
}

#[test]
fn record_cut_short_at_the_end() {
    let (pcap, offsets) = three_record_pcap();
    let cut = offsets[2] as usize + 16 + 200;
    let (outcome, frames) = read_bytes("capture.pcap", &pcap.bytes[..cut]);
    let summary = outcome.unwrap();
    assert_eq!(frames.len(), 2);
    assert_eq!(summary.frames, 2);
    assert!(!summary.complete);
    assert_eq!(summary.warnings.len(), 1);
    let w = &summary.warnings[0];
    assert_eq!(w.frame, Some(3));
    assert_eq!(w.offset, offsets[2]);
    assert_eq!(
        w.to_string(),
        format!("capture.pcap: record 3 at byte {} is cut short (header says 1514 bytes, 200 remain); 2 frames read", offsets[2])
    );
    assert_eq!(summary.bytes_read, offsets[2]);
}

#[test]
fn record_header_cut_short() {
    let (pcap, offsets) = three_record_pcap();
    let cut = offsets[2] as usize + 5;
    let summary = read_bytes("hdr.pcap", &pcap.bytes[..cut]).0.unwrap();
    assert_eq!(summary.frames, 2);
    assert!(!summary.complete);
    assert_eq!(
        summary.warnings[0].message,
        format!(
            "record 3 at byte {} is cut short (its header needs 16 bytes, 5 remain); 2 frames read",
            offsets[2]
        )
    );
}

#[test]
fn absurd_captured_length_is_refused_before_reading() {
    let mut pcap = Pcap::new(true, false, 1, 65535);
    pcap.record(1, 0, &payload(1, 60), 60);
    let bad = pcap.record_with_caplen(2, 0, 0xFFFF_FFF0, &payload(2, 60), 60);
    // Whatever follows is not read.
    pcap.record(3, 0, &payload(3, 60), 60);
    let summary = read_bytes("huge.pcap", &pcap.bytes).0.unwrap();
    assert_eq!(summary.frames, 1);
    assert!(!summary.complete);
    let w = &summary.warnings[0];
    assert_eq!((w.frame, w.offset), (Some(2), bad));
    assert_eq!(
        w.message,
        format!(
            "record 2 at byte {bad} claims 4294967280 captured bytes, more than the 262144 a record may hold; 1 frame read"
        )
    );
}

#[test]
fn captured_length_above_snaplen_is_accepted() {
    // Some writers put a wrong snaplen in the header; Wireshark reads these records.
    let mut pcap = Pcap::new(false, false, 1, 64);
    pcap.record(1, 0, &payload(1, 1000), 1000);
    let (summary, frames) = read_ok("snap.pcap", &pcap.bytes);
    assert_eq!(frames[0].data.len(), 1000);
    assert!(summary.complete);
}

#[test]
fn snaplen_truncated_packets_are_counted_not_errors() {
    let mut pcap = Pcap::new(false, true, 1, 96);
    pcap.record(1, 0, &payload(1, 96), 1500);
    pcap.record(2, 0, &payload(2, 60), 60);
    pcap.record(3, 0, &payload(3, 96), 9000);
    let (summary, frames) = read_ok("snap96.pcap", &pcap.bytes);
    assert_eq!(
        frames
            .iter()
            .map(|f| (f.data.len(), f.wire_len))
            .collect::<Vec<_>>(),
        vec![(96, 1500), (60, 60), (96, 9000)]
    );
    assert_eq!(summary.snaplen_truncated_frames, 2);
    assert!(summary.warnings.is_empty());
    assert!(summary.complete);
}

fn pcapng_with_one_frame() -> (Pcapng, u64) {
    let mut ng = Pcapng::new(false);
    ng.interface(1, 0, &[]);
    let o = ng.epb(0, 1, &payload(0, 60), 60);
    (ng, o)
}

#[test]
fn pcapng_block_length_not_a_multiple_of_four() {
    let (mut ng, _) = pcapng_with_one_frame();
    let mut bad = Vec::new();
    bad.extend_from_slice(&ng.u32(6));
    bad.extend_from_slice(&ng.u32(30));
    bad.extend_from_slice(&[0; 22]);
    let at = ng.raw(&bad);
    let summary = read_bytes("odd.pcapng", &ng.bytes).0.unwrap();
    assert_eq!(summary.frames, 1);
    assert!(!summary.complete);
    let w = &summary.warnings[0];
    assert_eq!((w.frame, w.offset), (Some(2), at));
    assert_eq!(
        w.to_string(),
        format!(
            "odd.pcapng: record 2 (enhanced packet block) at byte {at} has an impossible length 30 (a multiple of 4 from 12 to 16777216 expected); 1 frame read"
        )
    );
}

#[test]
fn pcapng_huge_block_length_is_refused_before_reading() {
    let (mut ng, _) = pcapng_with_one_frame();
    let mut bad = Vec::new();
    bad.extend_from_slice(&ng.u32(6));
    bad.extend_from_slice(&ng.u32(0xFFFF_FFF0));
    bad.extend_from_slice(&[0; 64]);
    let at = ng.raw(&bad);
    let summary = read_bytes("huge.pcapng", &ng.bytes).0.unwrap();
    assert_eq!(summary.frames, 1);
    assert!(!summary.complete);
    assert_eq!(summary.warnings[0].offset, at);
    assert!(summary.warnings[0]
        .message
        .contains("impossible length 4294967280"));
}

#[test]
fn pcapng_block_too_short() {
    let (mut ng, _) = pcapng_with_one_frame();
    let mut bad = Vec::new();
    bad.extend_from_slice(&ng.u32(5));
    bad.extend_from_slice(&ng.u32(8));
    bad.extend_from_slice(&ng.u32(8));
    let at = ng.raw(&bad);
    let summary = read_bytes("short-block.pcapng", &ng.bytes).0.unwrap();
    assert!(!summary.complete);
    let w = &summary.warnings[0];
    assert_eq!((w.frame, w.offset), (None, at));
    assert!(
        w.message.starts_with(&format!(
            "interface statistics block at byte {at} has an impossible length 8"
        )),
        "{w}"
    );
}

#[test]
fn pcapng_trailing_length_mismatch() {
    let (mut ng, _) = pcapng_with_one_frame();
    let mut bad = Vec::new();
    bad.extend_from_slice(&ng.u32(6));
    bad.extend_from_slice(&ng.u32(32));
    bad.extend_from_slice(&[0; 20]);
    bad.extend_from_slice(&ng.u32(36));
    let at = ng.raw(&bad);
    ng.epb(0, 2, &payload(1, 60), 60);
    let summary = read_bytes("mismatch.pcapng", &ng.bytes).0.unwrap();
    assert_eq!(summary.frames, 1);
    assert!(!summary.complete);
    let w = &summary.warnings[0];
    assert_eq!((w.frame, w.offset), (Some(2), at));
    assert!(
        w.message.starts_with(&format!(
            "record 2 (enhanced packet block) at byte {at} is corrupt: "
        )),
        "{w}"
    );
    assert!(w.message.contains("initial 32B, trailing 36B"), "{w}");
}

#[test]
fn pcapng_block_cut_short_at_the_end() {
    let (mut ng, _) = pcapng_with_one_frame();
    let at = ng.epb(0, 2, &payload(1, 100), 100);
    let total = ng.bytes.len();
    let cut = total - 30;
    let summary = read_bytes("cut.pcapng", &ng.bytes[..cut]).0.unwrap();
    assert_eq!(summary.frames, 1);
    assert!(!summary.complete);
    let w = &summary.warnings[0];
    assert_eq!((w.frame, w.offset), (Some(2), at));
    let block_len = total as u64 - at;
    assert_eq!(
        w.message,
        format!(
            "record 2 (enhanced packet block) at byte {at} is cut short (header says {block_len} bytes, {} remain); 1 frame read",
            block_len - 30
        )
    );
}

#[test]
fn pcapng_unknown_interface_is_skipped_and_reading_goes_on() {
    let (mut ng, _) = pcapng_with_one_frame();
    let bad = ng.epb(3, 2, &payload(1, 60), 60);
    let good = ng.epb(0, 3, &payload(2, 60), 60);
    let (outcome, frames) = read_bytes("iface.pcapng", &ng.bytes);
    let summary = outcome.unwrap();
    assert!(summary.complete);
    assert_eq!(
        frames
            .iter()
            .map(|f| (f.number, f.offset))
            .collect::<Vec<_>>(),
        vec![(1, frames[0].offset), (3, good)]
    );
    assert_eq!(summary.skipped_records, 1);
    let w = &summary.warnings[0];
    assert_eq!((w.frame, w.offset), (Some(2), bad));
    assert_eq!(
        w.message,
        format!("record 2 (enhanced packet block) at byte {bad} names interface 3, but its section describes 1; skipped")
    );
}

#[test]
fn pcapng_captured_length_beyond_its_block_is_skipped() {
    let (mut ng, _) = pcapng_with_one_frame();
    let bad = ng.epb_with_caplen(0, 2, 5000, &payload(1, 60), 60);
    ng.epb(0, 3, &payload(2, 60), 60);
    let summary = read_bytes("caplen.pcapng", &ng.bytes).0.unwrap();
    assert!(summary.complete);
    assert_eq!(summary.frames, 2);
    let w = &summary.warnings[0];
    assert_eq!((w.frame, w.offset), (Some(2), bad));
    assert!(
        w.message
            .contains("claims 5000 captured bytes but its block holds 60; skipped"),
        "{w}"
    );
}

#[test]
fn pcapng_bad_byte_order_magic() {
    let mut ng = Pcapng::new(false);
    ng.bytes[8..12].copy_from_slice(&[1, 2, 3, 4]);
    let e = error_of("magic.pcapng", &ng.bytes);
    assert!(matches!(e, CaptureError::BadHeader { .. }), "{e:?}");
    assert!(
        e.to_string()
            .starts_with("magic.pcapng: the pcapng section header block at byte 0 has an unknown byte-order magic 0x01020304"),
        "{e}"
    );

    // A later section with a bad magic stops reading there.
    let (mut ng, _) = pcapng_with_one_frame();
    let at = ng.section(false);
    ng.bytes[at as usize + 8..at as usize + 12].copy_from_slice(&[1, 2, 3, 4]);
    let summary = read_bytes("magic2.pcapng", &ng.bytes).0.unwrap();
    assert_eq!(summary.frames, 1);
    assert!(!summary.complete);
    assert_eq!(summary.warnings[0].offset, at);
    assert!(
        summary.warnings[0]
            .message
            .contains("unknown byte-order magic 0x01020304"),
        "{}",
        summary.warnings[0]
    );
}

#[test]
fn many_problems_keep_a_bounded_number_of_warnings() {
    let (mut ng, _) = pcapng_with_one_frame();
    for i in 0..100 {
        ng.epb(9, i, &payload(0, 4), 4);
    }
    // And then a block cut short: its warning must survive the cap.
    ng.raw(&[6, 0, 0, 0, 64, 0, 0, 0, 0, 0]);
    let summary = read_bytes("noisy.pcapng", &ng.bytes).0.unwrap();
    assert_eq!(summary.warnings.len(), MAX_WARNINGS);
    assert_eq!(summary.warnings_suppressed, 100 + 1 - MAX_WARNINGS as u64);
    assert_eq!(summary.skipped_records, 100);
    assert!(!summary.complete);
    assert!(
        summary
            .warnings
            .last()
            .unwrap()
            .message
            .contains("cut short"),
        "{:?}",
        summary.warnings.last()
    );
}

#[test]
fn gzip_cut_short_keeps_what_was_decompressed() {
    let mut pcap = Pcap::new(false, false, 1, 65535);
    for i in 0..200u32 {
        pcap.record(i, 0, &payload(i as u8, 100 + (i as usize % 50)), 200);
    }
    let compressed = gzip(&pcap.bytes);
    let (outcome, frames) = read_bytes("cut.pcap.gz", &compressed[..compressed.len() / 2]);
    let summary = outcome.unwrap();
    assert!(summary.gzip);
    assert_eq!(summary.format, Format::PcapMicro);
    assert!(!summary.complete);
    assert!(!frames.is_empty() && frames.len() < 200, "{}", frames.len());
    assert_eq!(summary.warnings.len(), 1);
    assert_eq!(summary.warnings[0].frame, Some(frames.len() as u64 + 1));
}

#[test]
fn corrupt_gzip_is_a_clear_error() {
    let mut pcap = Pcap::new(false, false, 1, 65535);
    pcap.record(1, 0, &payload(0, 100), 100);
    let mut compressed = gzip(&pcap.bytes);
    // Break the deflate data right after the 10-byte gzip header.
    for b in &mut compressed[10..20] {
        *b = 0xff;
    }
    match read_bytes("bad.gz", &compressed).0 {
        Err(e) => assert!(e.to_string().starts_with("bad.gz: "), "{e}"),
        Ok(summary) => {
            assert!(!summary.complete);
            assert!(!summary.warnings.is_empty());
        }
    }
}

#[test]
fn directory_and_missing_paths() {
    let dir = std::env::temp_dir();
    let e = read_capture(0, &CaptureSource::File(dir.clone()), |_| {}).unwrap_err();
    assert!(matches!(e, CaptureError::IsDirectory { .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        format!("{}: is a directory, not a capture file", dir.display())
    );

    let missing = dir.join("lvscheck-capture-tests-missing.pcap");
    let e = read_capture(0, &CaptureSource::File(missing.clone()), |_| {}).unwrap_err();
    assert!(matches!(e, CaptureError::Open { .. }), "{e:?}");
    assert!(
        e.to_string()
            .starts_with(&format!("{}: cannot open: ", missing.display())),
        "{e}"
    );
}

/// Every prefix of a valid file reads without panicking and keeps the frames that are whole.
#[test]
fn every_truncation_point_is_handled() {
    let (ng, _) = {
        let mut ng = Pcapng::new(false);
        ng.interface(1, 0, &[(IF_NAME, b"eth0".to_vec())]);
        ng.epb(0, 1, &payload(0, 30), 30);
        ng.section(true);
        ng.interface(101, 0, &[]);
        let last = ng.epb(0, 2, &payload(1, 30), 30);
        (ng, last)
    };
    let mut pcap = Pcap::new(true, true, 1, 65535);
    pcap.record(1, 0, &payload(0, 30), 30);
    pcap.record(2, 0, &payload(1, 30), 30);
    for bytes in [&ng.bytes, &pcap.bytes] {
        for cut in 0..bytes.len() {
            match read_bytes("prefix", &bytes[..cut]).0 {
                Ok(summary) => {
                    assert!(!summary.complete || summary.frames < 2 || cut == bytes.len());
                    assert_eq!(
                        summary.complete,
                        summary.warnings.is_empty(),
                        "cut {cut}: {:?}",
                        summary.warnings
                    );
                }
                Err(e) => assert!(e.to_string().starts_with("prefix: "), "{e}"),
            }
        }
        let summary = read_bytes("whole", bytes).0.unwrap();
        assert!(summary.complete);
        assert_eq!(summary.frames, 2);
    }
}

/// Past 65 536 interfaces an interface is counted, not kept (a file of nothing but interface
/// descriptions must not grow memory without bound); reading goes on, the packets of kept
/// interfaces are read and those of the others skipped, keeping their frame numbers (capinfos
/// and tshark read every packet of such a file).
#[test]
fn interface_descriptions_without_end_are_bounded() {
    let mut ng = Pcapng::new(false);
    ng.interface(1, 0, &[]);
    ng.epb(0, 1, &payload(0, 14), 14);
    let mut limit_at = 0;
    for i in 1..=(1 << 16) + 2 {
        let at = ng.interface(1, 0, &[]);
        if i == 1 << 16 {
            limit_at = at;
        }
    }
    // A packet on an interface past the limit, then one on the first interface.
    ng.epb((1 << 16) + 1, 2, &payload(1, 14), 14);
    ng.epb(0, 3, &payload(2, 14), 14);
    let (summary, frames) = read_bytes("idbs.pcapng", &ng.bytes);
    let summary = summary.unwrap();
    assert_eq!(summary.interfaces.len(), 1 << 16);
    assert_eq!(summary.frames, 2);
    assert_eq!(summary.skipped_records, 1);
    assert_eq!(
        frames.iter().map(|f| f.number).collect::<Vec<_>>(),
        vec![1, 3]
    );
    assert!(summary.complete);
    assert_eq!(summary.warnings.len(), 1, "{:?}", summary.warnings);
    let w = &summary.warnings[0];
    assert_eq!(w.offset, limit_at);
    assert_eq!(
        w.message,
        format!("interface description block at byte {limit_at} would be interface number 65536, more than lvscheck keeps: it and the interfaces after it are not kept, and their packets are skipped")
    );
}
