//! Each capture format the reader accepts, built byte by byte, read back.

mod capture_common;

use capture_common::*;
use lvscheck::capture::{
    read_capture, read_captures_parallel, CaptureError, CaptureSource, Format,
};

const SEC: i64 = 1_000_000_000;

/// Three records: one plain, one cut by snaplen, one earlier than the one before it.
fn check_pcap(big: bool, nano: bool) {
    let (frac1, frac2, frac3) = if nano {
        (123_456_789, 999_999_999, 5)
    } else {
        (123_456, 999_999, 5)
    };
    let unit: i64 = if nano { 1 } else { 1000 };
    let mut pcap = Pcap::new(big, nano, 1, 65535);
    let o1 = pcap.record(1_700_000_000, frac1, &payload(1, 60), 60);
    let o2 = pcap.record(1_700_000_001, frac2, &payload(2, 100), 1514);
    let o3 = pcap.record(1_700_000_000, frac3, &payload(3, 42), 42);

    let (summary, frames) = read_ok("test.pcap", &pcap.bytes);

    let ts1 = 1_700_000_000 * SEC + i64::from(frac1) * unit;
    let ts2 = 1_700_000_001 * SEC + i64::from(frac2) * unit;
    let ts3 = 1_700_000_000 * SEC + i64::from(frac3) * unit;
    let expected = vec![
        Seen {
            interface: 0,
            number: 1,
            ts_ns: ts1,
            wire_len: 60,
            link_type: 1,
            data: payload(1, 60),
            offset: o1,
        },
        Seen {
            interface: 0,
            number: 2,
            ts_ns: ts2,
            wire_len: 1514,
            link_type: 1,
            data: payload(2, 100),
            offset: o2,
        },
        Seen {
            interface: 0,
            number: 3,
            ts_ns: ts3,
            wire_len: 42,
            link_type: 1,
            data: payload(3, 42),
            offset: o3,
        },
    ];
    assert_eq!(frames, expected);
    assert_eq!(o1, 24);

    assert_eq!(
        summary.format,
        if nano {
            Format::PcapNano
        } else {
            Format::PcapMicro
        }
    );
    assert!(!summary.gzip);
    assert_eq!(summary.file, "test.pcap");
    assert_eq!(summary.capture, 7);
    assert_eq!(summary.sections, 1);
    assert_eq!(summary.interfaces.len(), 1);
    let iface = &summary.interfaces[0];
    assert_eq!((iface.id, iface.link_type, iface.snaplen), (0, 1, 65535));
    assert_eq!(iface.name, None);
    assert_eq!(iface.ts_resolution_ns, if nano { 1.0 } else { 1000.0 });
    assert_eq!(summary.frames, 3);
    assert_eq!(summary.frames_per_interface, vec![3]);
    assert_eq!(summary.snaplen_truncated_frames, 1);
    // The 100 bytes kept of the 1514-byte frame: the snap length it was really taken with.
    assert_eq!((iface.cut_at, iface.cut_frames), (Some(100), 1));
    assert_eq!((iface.filter.as_deref(), iface.if_drop), (None, None));
    assert_eq!(summary.out_of_order_frames, 1);
    assert_eq!(summary.first_ts_ns, Some(ts1));
    assert_eq!(summary.last_ts_ns, Some(ts3));
    assert_eq!(summary.earliest_ts_ns, Some(ts3));
    assert_eq!(summary.latest_ts_ns, Some(ts2));
    assert!(summary.warnings.is_empty(), "{:?}", summary.warnings);
    assert!(summary.complete);
    assert_eq!(summary.bytes_read, pcap.bytes.len() as u64);
}

#[test]
fn pcap_microseconds_little_endian() {
    check_pcap(false, false);
}

#[test]
fn pcap_microseconds_big_endian() {
    check_pcap(true, false);
}

#[test]
fn pcap_nanoseconds_little_endian() {
    check_pcap(false, true);
}

#[test]
fn pcap_nanoseconds_big_endian() {
    check_pcap(true, true);
}

#[test]
fn pcap_link_type_ignores_fcs_bits() {
    // Link type 1 with the "FCS length present" bit and an FCS length of 4 in the top bits.
    let mut pcap = Pcap::new(false, false, 1 | 0x0400_0000 | (4 << 28), 65535);
    pcap.record(1, 0, &payload(0, 14), 14);
    let (summary, frames) = read_ok("fcs.pcap", &pcap.bytes);
    assert_eq!(summary.interfaces[0].link_type, 1);
    assert_eq!(frames[0].link_type, 1);
}

/// Headers libpcap and Wireshark refuse (corpus: tests_pcap-invalid-version-1.pcap,
/// tests_linktype-reserved-field-not-zero.pcap) are read, with a warning naming the offset.
#[test]
fn pcap_refused_versions_and_reserved_link_type_bits_warn() {
    let mut pcap = Pcap::new(false, false, 1, 65535);
    pcap.bytes[4..6].copy_from_slice(&1u16.to_le_bytes());
    pcap.record(1, 0, &payload(0, 14), 14);
    let (summary, frames) = read_ok("v1.pcap", &pcap.bytes);
    assert_eq!(frames.len(), 1);
    assert_eq!(summary.warnings.len(), 1, "{:?}", summary.warnings);
    assert_eq!(summary.warnings[0].offset, 4);
    assert!(summary.warnings[0].message.contains("pcap version 1.4"));

    let mut pcap = Pcap::new(true, false, 1 | 0x0030_0000, 65535);
    pcap.record(1, 0, &payload(0, 14), 14);
    let (summary, frames) = read_ok("reserved.pcap", &pcap.bytes);
    assert_eq!((frames.len(), frames[0].link_type), (1, 1));
    assert_eq!(summary.warnings.len(), 1, "{:?}", summary.warnings);
    assert_eq!(summary.warnings[0].offset, 20);
    assert!(summary.warnings[0].message.contains("reserved bits"));

    // The FCS bits are not reserved: no warning (pcap_link_type_ignores_fcs_bits).
    let mut pcap = Pcap::new(false, false, 1 | 0x0400_0000 | (4 << 28), 65535);
    pcap.record(1, 0, &payload(0, 14), 14);
    assert!(read_ok("fcs.pcap", &pcap.bytes).0.warnings.is_empty());
}

/// A pcapng timestamp beyond what i64 nanoseconds hold (after 2262) warns once a file.
#[test]
fn pcapng_timestamps_out_of_range_warn_once() {
    let mut ng = Pcapng::new(false);
    // if_tsresol 0: seconds; u64::MAX seconds is far beyond 2262.
    ng.interface(1, 0, &[(IF_TSRESOL, vec![0])]);
    ng.epb(0, u64::MAX, &payload(0, 14), 14);
    ng.epb(0, u64::MAX - 1, &payload(1, 14), 14);
    ng.epb(0, 1, &payload(2, 14), 14);
    let (summary, frames) = read_ok("far.pcapng", &ng.bytes);
    assert_eq!(frames.len(), 3);
    assert_eq!(frames[0].ts_ns, i64::MAX);
    assert_eq!(frames[2].ts_ns, 1_000_000_000);
    let far: Vec<_> = summary
        .warnings
        .iter()
        .filter(|w| w.message.contains("after 2262"))
        .collect();
    assert_eq!(far.len(), 1, "{:?}", summary.warnings);
}

#[test]
fn pcap_without_records_is_complete_and_empty() {
    let pcap = Pcap::new(false, false, 1, 65535);
    let (summary, frames) = read_ok("none.pcap", &pcap.bytes);
    assert!(frames.is_empty());
    assert_eq!(summary.frames, 0);
    assert_eq!(summary.first_ts_ns, None);
    assert!(summary.complete);
    assert_eq!(summary.bytes_read, 24);
}

/// Two sections in different byte orders; three interfaces with different link types,
/// resolutions (10^-9, 2^-10, 10^-3) and offsets; a block that is not a packet between them.
fn two_sections() -> (Pcapng, Vec<Seen>) {
    let mut ng = Pcapng::new(false);
    ng.interface(
        1,
        262_144,
        &[(IF_NAME, b"eth0".to_vec()), (IF_TSRESOL, vec![9])],
    );
    let offset_1 = ng.tsoffset(1_600_000_000);
    ng.interface(
        113,
        65535,
        &[
            (IF_NAME, b"any".to_vec()),
            (IF_TSRESOL, vec![0x80 | 10]),
            (IF_TSOFFSET, offset_1),
        ],
    );
    // Name resolution block holding only its end record: not a frame.
    ng.block(4, &[0, 0, 0, 0]);
    let o1 = ng.epb(0, 1_700_000_000_123_456_789, &payload(10, 60), 60);
    // 1536 ticks of 2^-10 s = 1.5 s after the offset.
    let o2 = ng.epb(1, 1536, &payload(11, 64), 80);
    // One tick of 2^-10 s = 976562.5 ns, rounded down.
    let o3 = ng.epb(1, 1, &payload(12, 40), 40);

    ng.section(true);
    let offset_2 = ng.tsoffset(-1);
    ng.interface(101, 0, &[(IF_TSRESOL, vec![3]), (IF_TSOFFSET, offset_2)]);
    let o4 = ng.epb(0, 1_700_000_002_345, &payload(13, 20), 20);
    let o5 = ng.epb(0, 1_700_000_003_000, &payload(14, 33), 33);

    let expected = vec![
        Seen {
            interface: 0,
            number: 1,
            ts_ns: 1_700_000_000_123_456_789,
            wire_len: 60,
            link_type: 1,
            data: payload(10, 60),
            offset: o1,
        },
        Seen {
            interface: 1,
            number: 2,
            ts_ns: 1_600_000_001 * SEC + 500_000_000,
            wire_len: 80,
            link_type: 113,
            data: payload(11, 64),
            offset: o2,
        },
        Seen {
            interface: 1,
            number: 3,
            ts_ns: 1_600_000_000 * SEC + 976_562,
            wire_len: 40,
            link_type: 113,
            data: payload(12, 40),
            offset: o3,
        },
        Seen {
            interface: 2,
            number: 4,
            ts_ns: 1_700_000_001 * SEC + 345_000_000,
            wire_len: 20,
            link_type: 101,
            data: payload(13, 20),
            offset: o4,
        },
        Seen {
            interface: 2,
            number: 5,
            ts_ns: 1_700_000_002 * SEC,
            wire_len: 33,
            link_type: 101,
            data: payload(14, 33),
            offset: o5,
        },
    ];
    (ng, expected)
}

#[test]
fn pcapng_sections_interfaces_resolutions_and_offsets() {
    let (ng, expected) = two_sections();
    let (summary, frames) = read_ok("two.pcapng", &ng.bytes);
    assert_eq!(frames, expected);

    assert_eq!(summary.format, Format::Pcapng);
    assert_eq!(summary.sections, 2);
    let ifaces: Vec<_> = summary
        .interfaces
        .iter()
        .map(|i| {
            (
                i.id,
                i.link_type,
                i.name.clone(),
                i.snaplen,
                i.ts_resolution_ns,
            )
        })
        .collect();
    assert_eq!(
        ifaces,
        vec![
            (0, 1, Some("eth0".to_string()), 262_144, 1.0),
            (1, 113, Some("any".to_string()), 65535, 1e9 / 1024.0),
            (2, 101, None, 0, 1e6),
        ]
    );
    assert_eq!(summary.frames, 5);
    assert_eq!(summary.frames_per_interface, vec![1, 2, 2]);
    assert_eq!(summary.snaplen_truncated_frames, 1);
    assert_eq!(summary.out_of_order_frames, 2);
    assert_eq!(summary.first_ts_ns, Some(expected[0].ts_ns));
    assert_eq!(summary.last_ts_ns, Some(expected[4].ts_ns));
    assert_eq!(summary.earliest_ts_ns, Some(expected[2].ts_ns));
    assert_eq!(summary.latest_ts_ns, Some(expected[4].ts_ns));
    assert!(summary.warnings.is_empty(), "{:?}", summary.warnings);
    assert_eq!(summary.skipped_records, 0);
    assert!(summary.complete);
    assert_eq!(summary.bytes_read, ng.bytes.len() as u64);
}

#[test]
fn pcapng_big_endian_first_section() {
    let mut ng = Pcapng::new(true);
    ng.interface(1, 65535, &[]);
    let o = ng.epb(0, 1_700_000_000_000_001, &payload(0, 14), 14);
    let (summary, frames) = read_ok("be.pcapng", &ng.bytes);
    // No if_tsresol: microseconds.
    assert_eq!(
        frames,
        vec![Seen {
            interface: 0,
            number: 1,
            ts_ns: 1_700_000_000_000_001_000,
            wire_len: 14,
            link_type: 1,
            data: payload(0, 14),
            offset: o
        }]
    );
    assert_eq!(summary.interfaces[0].ts_resolution_ns, 1000.0);
    assert!(summary.complete);
}

#[test]
fn pcapng_picosecond_resolution_is_read_past_pcap_file() {
    // pcap-file refuses if_tsresol above 10^-9; we read it anyway and say so.
    let mut ng = Pcapng::new(false);
    let offset = ng.tsoffset(1_700_000_000);
    ng.interface(
        1,
        65535,
        &[
            (IF_TSRESOL, vec![12]),
            (IF_TSOFFSET, offset),
            (IF_NAME, b"eth1".to_vec()),
        ],
    );
    ng.epb(0, 2_500_000_000_123, &payload(0, 14), 14);
    let (summary, frames) = read_ok("ps.pcapng", &ng.bytes);
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0].ts_ns, 1_700_000_002 * SEC + 500_000_000);
    assert_eq!(summary.interfaces[0].name.as_deref(), Some("eth1"));
    assert_eq!(summary.interfaces[0].ts_resolution_ns, 1e-3);
    assert_eq!(summary.warnings.len(), 1);
    assert!(
        summary.warnings[0].message.contains("read leniently"),
        "{}",
        summary.warnings[0]
    );
    assert!(summary.complete);
}

#[test]
fn pcapng_time_before_the_epoch() {
    let mut ng = Pcapng::new(false);
    let offset = ng.tsoffset(-100);
    ng.interface(1, 65535, &[(IF_TSOFFSET, offset)]);
    ng.epb(0, 2_000_000, &payload(0, 14), 14);
    let (_, frames) = read_ok("old.pcapng", &ng.bytes);
    assert_eq!(frames[0].ts_ns, -98 * SEC);
}

#[test]
fn pcapng_simple_and_obsolete_packet_blocks() {
    let mut ng = Pcapng::new(false);
    ng.interface(1, 18, &[]);
    let o1 = ng.packet_block(0, 1_700_000_000_000_001, &payload(20, 18), 30);
    // 18 bytes kept of 40 (snaplen 18), padded to 20 in the block.
    let o2 = ng.simple_packet(&payload(21, 18), 40);
    let (summary, frames) = read_ok("old-blocks.pcapng", &ng.bytes);
    let ts = 1_700_000_000_000_001_000;
    assert_eq!(
        frames,
        vec![
            Seen {
                interface: 0,
                number: 1,
                ts_ns: ts,
                wire_len: 30,
                link_type: 1,
                data: payload(20, 18),
                offset: o1
            },
            // No time of its own: the previous frame's.
            Seen {
                interface: 0,
                number: 2,
                ts_ns: ts,
                wire_len: 40,
                link_type: 1,
                data: payload(21, 18),
                offset: o2
            },
        ]
    );
    assert_eq!(summary.snaplen_truncated_frames, 2);
    assert_eq!(summary.warnings.len(), 1);
    assert!(summary.warnings[0].message.contains("simple packet block"));
    assert_eq!(summary.warnings[0].frame, Some(2));
    assert!(summary.complete);
}

#[test]
fn pcapng_journal_entries_take_a_frame_number() {
    let mut ng = Pcapng::new(false);
    ng.interface(1, 0, &[]);
    ng.epb(0, 1, &payload(0, 14), 14);
    ng.block(9, b"MESSAGE=hi\n\0\0\0\0\0");
    ng.epb(0, 2, &payload(1, 14), 14);
    let (summary, frames) = read_ok("journal.pcapng", &ng.bytes);
    assert_eq!(
        frames.iter().map(|f| f.number).collect::<Vec<_>>(),
        vec![1, 3]
    );
    assert_eq!(summary.frames, 2);
    assert_eq!(summary.skipped_records, 1);
    assert!(summary.complete);
}

/// tshark 4.0 lists a custom block (copiable 0x0BAD or not 0x40000BAD, any PEN) as a frame of
/// its own: "PCAPNG 0 Custom Block: PEN = ...". Frames after one were numbered one less than
/// Wireshark shows them, so evidence named the frame before the one meant.
#[test]
fn pcapng_custom_blocks_take_a_frame_number() {
    let mut ng = Pcapng::new(false);
    ng.interface(1, 0, &[]);
    ng.epb(0, 1, &payload(0, 14), 14);
    ng.block(0x0000_0BAD, &[1, 2, 3, 4]);
    ng.epb(0, 2, &payload(1, 14), 14);
    ng.block(0x4000_0BAD, &[0xd9, 0x7e, 0, 0, 9, 9, 9, 9]);
    ng.block(4, &[0, 0, 0, 0]); // name resolution: no frame
    ng.epb(0, 3, &payload(2, 14), 14);
    let (summary, frames) = read_ok("custom.pcapng", &ng.bytes);
    assert_eq!(
        frames.iter().map(|f| f.number).collect::<Vec<_>>(),
        vec![1, 3, 5]
    );
    assert_eq!(summary.frames, 3);
    assert_eq!(summary.skipped_records, 2);
    assert!(summary.complete);
}

#[test]
fn gzip_is_recognised_by_its_magic() {
    let (ng, expected) = two_sections();
    let (summary, frames) = read_ok("two.pcapng.gz", &gzip(&ng.bytes));
    assert_eq!(frames, expected);
    assert!(summary.gzip);
    assert_eq!(summary.format, Format::Pcapng);
    assert!(summary.complete);
    assert_eq!(summary.bytes_read, ng.bytes.len() as u64);

    let mut pcap = Pcap::new(true, true, 101, 65535);
    pcap.record(5, 6, &payload(1, 20), 20);
    let (summary, frames) = read_ok("x.gz", &gzip(&pcap.bytes));
    assert_eq!(summary.format, Format::PcapNano);
    assert!(summary.gzip);
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0].ts_ns, 5 * SEC + 6);
}

#[test]
fn gzip_with_several_members_reads_all_of_them() {
    let (ng, expected) = two_sections();
    let half = ng.bytes.len() / 2 + 3;
    let mut two_members = gzip(&ng.bytes[..half]);
    two_members.extend_from_slice(&gzip(&ng.bytes[half..]));
    let (summary, frames) = read_ok("members.gz", &two_members);
    assert_eq!(frames, expected);
    assert!(summary.complete);
}

#[test]
fn files_are_recognised_by_content_not_name() {
    let (ng, expected) = two_sections();
    let misnamed = TempFile::new("really-pcapng.pcap", &gzip(&ng.bytes));
    let mut frames = 0;
    let summary = read_capture(3, &CaptureSource::File(misnamed.0.clone()), |f| {
        assert_eq!(f.capture, 3);
        frames += 1;
    })
    .unwrap();
    assert_eq!(frames, expected.len());
    assert_eq!(summary.format, Format::Pcapng);
    assert!(summary.gzip);
    assert_eq!(summary.file, misnamed.0.display().to_string());

    let mut pcap = Pcap::new(false, false, 1, 65535);
    pcap.record(1, 2, &payload(0, 10), 10);
    let plain = TempFile::new("not-compressed.pcapng.gz", &pcap.bytes);
    let summary = read_capture(0, &CaptureSource::File(plain.0.clone()), |_| {}).unwrap();
    assert_eq!(summary.format, Format::PcapMicro);
    assert!(!summary.gzip);
    assert_eq!(summary.frames, 1);
}

#[test]
fn parallel_reading_keeps_order_and_per_capture_state() {
    let mut files = Vec::new();
    for n in 0..4u32 {
        let mut pcap = Pcap::new(n % 2 == 0, false, 1, 65535);
        for i in 0..=n {
            pcap.record(100 + i, 0, &payload(n as u8, 20 + i as usize), 60);
        }
        files.push(TempFile::new(&format!("par{n}.pcap"), &pcap.bytes));
    }
    let mut sources: Vec<_> = files
        .iter()
        .map(|f| CaptureSource::File(f.0.clone()))
        .collect();
    let missing = std::env::temp_dir().join("lvscheck-capture-tests-no-such-file.pcap");
    sources.insert(2, CaptureSource::File(missing.clone()));

    let results = read_captures_parallel(
        &sources,
        |id| (id, Vec::new()),
        |state: &mut (u32, Vec<(u32, u64, usize)>), f| {
            state.1.push((f.capture, f.number, f.data.len()))
        },
    );
    assert_eq!(results.len(), 5);
    let file_for_index = [Some(0u32), Some(1), None, Some(2), Some(3)];
    for (index, ((outcome, (id, seen)), file_n)) in results.iter().zip(file_for_index).enumerate() {
        assert_eq!(*id as usize, index);
        match file_n {
            None => {
                match outcome {
                    Err(CaptureError::Open { file, .. }) => {
                        assert_eq!(*file, missing.display().to_string())
                    }
                    other => panic!("expected an open error, got {other:?}"),
                }
                assert!(seen.is_empty());
            }
            Some(n) => {
                let summary = outcome.as_ref().unwrap();
                assert_eq!(summary.capture as usize, index);
                assert_eq!(summary.frames, u64::from(n) + 1);
                let want: Vec<_> = (0..=n)
                    .map(|i| (index as u32, u64::from(i) + 1, 20 + i as usize))
                    .collect();
                assert_eq!(*seen, want);
            }
        }
    }
}

#[test]
fn source_names() {
    assert_eq!(CaptureSource::from_arg("-"), CaptureSource::Stdin);
    assert_eq!(
        CaptureSource::from_arg("a.pcap"),
        CaptureSource::File("a.pcap".into())
    );
    assert_eq!(CaptureSource::Stdin.display_name(), "<stdin>");
}

/// Standard input can only be read once: this test runs itself again as a child process with a
/// capture on its standard input and two `-` sources.
#[test]
fn stdin_is_read_once() {
    use std::io::Write;
    use std::process::{Command, Stdio};

    let mut pcap = Pcap::new(false, false, 1, 65535);
    pcap.record(1, 0, &payload(0, 10), 10);
    pcap.record(2, 0, &payload(1, 10), 10);

    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "stdin_child", "--ignored", "--nocapture"])
        .env("LVSCHECK_STDIN_CHILD", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&pcap.bytes).unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("STDIN-CHILD first=2 second=StdinAlreadyRead third=StdinAlreadyRead"),
        "{stdout}"
    );
}

#[test]
#[ignore = "run by stdin_is_read_once in a child process, with a capture on standard input"]
fn stdin_child() {
    if std::env::var_os("LVSCHECK_STDIN_CHILD").is_none() {
        return;
    }
    let sources = [CaptureSource::Stdin, CaptureSource::Stdin];
    let results = read_captures_parallel(&sources, |_| (), |_, _| {});
    let first = results[0].0.as_ref().map(|s| s.frames).unwrap();
    let second = matches!(results[1].0, Err(CaptureError::StdinAlreadyRead));
    // Once consumed, a later single read is refused too.
    let third = matches!(
        read_capture(5, &CaptureSource::Stdin, |_| {}),
        Err(CaptureError::StdinAlreadyRead)
    );
    let name = |ok: bool| if ok { "StdinAlreadyRead" } else { "WRONG" };
    println!(
        "STDIN-CHILD first={first} second={} third={}",
        name(second),
        name(third)
    );
}

#[test]
fn pcapng_section_header_options_are_not_needed() {
    // A section header whose shb_hardware option is not UTF-8 and whose version is 2.0: the
    // section is still read (with a warning for the version).
    let mut ng = Pcapng {
        big: false,
        bytes: Vec::new(),
    };
    let mut body = Vec::new();
    body.extend_from_slice(&0x1a2b_3c4du32.to_le_bytes());
    body.extend_from_slice(&2u16.to_le_bytes());
    body.extend_from_slice(&0u16.to_le_bytes());
    body.extend_from_slice(&(-1i64).to_le_bytes());
    body.extend_from_slice(&ng.options(&[(2, vec![0xff, 0xfe, 0x80])]));
    ng.block(0x0a0d_0d0a, &body);
    ng.interface(1, 0, &[]);
    ng.epb(0, 1, &payload(0, 14), 14);
    let (summary, frames) = read_ok("odd-shb.pcapng", &ng.bytes);
    assert_eq!(frames.len(), 1);
    assert!(summary.complete);
    assert_eq!(summary.warnings.len(), 1);
    assert_eq!(
        summary.warnings[0].message,
        "section header at byte 0 has version 2.0, which libpcap and Wireshark refuse; read as 1.0"
    );
}

/// How the capture was taken: `if_filter` (option 11, first byte 0: a libpcap filter string)
/// and the interface statistics block's `isb_ifdrop` (5) and `isb_osdrop` (7), which name the
/// interface by its id within the section. The counters are cumulative: the largest wins.
#[test]
fn pcapng_capture_filter_and_drop_counters() {
    for big in [false, true] {
        let mut ng = Pcapng::new(big);
        let mut filter = vec![0];
        filter.extend_from_slice(b"tcp port 80");
        ng.interface(1, 262_144, &[(IF_NAME, b"eth0".to_vec()), (11, filter)]);
        ng.interface(1, 64, &[(11, vec![1, 0x28, 0, 0, 0])]); // a BPF program: no string
        ng.epb(0, 1, &payload(0, 14), 14);
        let isb = |ng: &Pcapng, interface: u32, ifdrop: u64, osdrop: Option<u64>| {
            let mut body = Vec::new();
            body.extend_from_slice(&ng.u32(interface));
            body.extend_from_slice(&ng.u32(0));
            body.extend_from_slice(&ng.u32(2));
            let mut opts = vec![(4, ng.tsoffset(1000)), (5, ng.tsoffset(ifdrop as i64))];
            if let Some(os) = osdrop {
                opts.push((7, ng.tsoffset(os as i64)));
            }
            body.extend_from_slice(&ng.options(&opts));
            body
        };
        let early = isb(&ng, 0, 3, None);
        ng.block(5, &early);
        let last = isb(&ng, 0, 17, Some(4));
        ng.block(5, &last);
        // Names an interface the section does not describe: ignored with a warning.
        let stray = isb(&ng, 7, 99, None);
        ng.block(5, &stray);
        ng.epb(1, 3, &payload(1, 14), 14);
        let (summary, frames) = read_ok("stats.pcapng", &ng.bytes);
        assert_eq!(frames.len(), 2, "statistics blocks are not frames");
        assert_eq!(frames[1].number, 2);
        let eth0 = &summary.interfaces[0];
        assert_eq!(eth0.filter.as_deref(), Some("tcp port 80"));
        assert_eq!((eth0.if_drop, eth0.os_drop), (Some(17), Some(4)));
        let other = &summary.interfaces[1];
        assert_eq!(other.filter, None);
        assert_eq!((other.if_drop, other.os_drop), (None, None));
        assert_eq!(summary.warnings.len(), 1, "{:?}", summary.warnings);
        assert!(summary.warnings[0].message.contains("names interface 7"));
        assert!(summary.complete);
    }
}

/// A run of all-zero record headers (a preallocated or overwritten file) is skipped as a whole,
/// keeping Wireshark's frame numbers, with one warning; the record after it is read.
#[test]
fn pcap_runs_of_zero_records_are_skipped_with_one_warning() {
    let mut pcap = Pcap::new(false, false, 1, 65535);
    pcap.record(1, 0, &payload(0, 14), 14);
    pcap.bytes.extend(std::iter::repeat_n(0u8, 16 * 100_000));
    pcap.record(2, 0, &payload(1, 14), 14);
    // A file that ends in zeros, with a partial record's worth at the very end.
    pcap.bytes.extend(std::iter::repeat_n(0u8, 16 * 3 + 5));
    let (summary, frames) = read_bytes("zeros.pcap", &pcap.bytes);
    let summary = summary.unwrap();
    assert_eq!(frames.len(), 2);
    // capinfos counts every 16 zero bytes as a packet: frame 1, 100 000 empty ones, frame
    // 100 002, 3 more empty ones.
    assert_eq!(frames[1].number, 100_002);
    assert_eq!(summary.skipped_records, 100_003);
    let zeros: Vec<_> = summary
        .warnings
        .iter()
        .filter(|w| w.message.contains("all zeros"))
        .collect();
    assert_eq!(zeros.len(), 2, "{:?}", summary.warnings);
    assert!(zeros[0].message.starts_with("records 2 to 100001 "));
    assert_eq!(zeros[0].offset, 24 + 16 + 14);
    // The 5 bytes left are a record cut short.
    assert!(!summary.complete);
}

/// A zero run in a gzip stream that breaks off (fuzz: a gzip member cut short inside zero
/// records made the reader loop forever): the zeros read are skipped, the read error stops
/// the reading, with a warning.
#[test]
fn pcap_zero_run_in_a_broken_gzip_stream_ends() {
    let mut pcap = Pcap::new(false, false, 1, 65535);
    pcap.record(1, 0, &payload(0, 14), 14);
    pcap.bytes.extend(std::iter::repeat_n(0u8, 16 * 50_000));
    pcap.record(2, 0, &payload(1, 14), 14);
    let zipped = gzip(&pcap.bytes);
    // Cut inside the deflate data: the decompressor fails after the bytes it could give.
    let cut = &zipped[..zipped.len() - 12];
    let (outcome, frames) = read_bytes("zeros-cut.pcap.gz", cut);
    let summary = outcome.unwrap();
    assert!(!summary.complete);
    assert_eq!(frames.len(), 1);
    assert!(summary.skipped_records > 0);
    assert!(summary
        .warnings
        .iter()
        .any(|w| w.message.contains("all zeros")));
}
