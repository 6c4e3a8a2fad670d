//! Any bytes given to the capture reader: it must return an error or a summary, never panic,
//! and what it hands out must agree with what it reports.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lvscheck::capture::{read_capture_from, MAX_WARNINGS};

fuzz_target!(|data: &[u8]| {
    let mut frames = 0u64;
    let mut last_number = 0u64;
    let mut last_offset = None;
    let mut interfaces_seen = 0u32;
    let outcome = read_capture_from(0, "fuzz", data, |f| {
        frames += 1;
        assert!(f.number > last_number, "frame numbers must increase");
        last_number = f.number;
        assert!(last_offset.is_none_or(|o| f.offset > o), "offsets must increase");
        last_offset = Some(f.offset);
        assert!(f.data.len() <= 16 * 1024 * 1024);
        interfaces_seen = interfaces_seen.max(f.interface + 1);
    });
    match outcome {
        Ok(summary) => {
            assert_eq!(summary.frames, frames);
            assert_eq!(summary.frames_per_interface.iter().sum::<u64>(), frames);
            assert!(summary.interfaces.len() as u32 >= interfaces_seen);
            assert!(summary.warnings.len() <= MAX_WARNINGS);
            // Skipped records take numbers too.
            assert!(last_number <= frames + summary.skipped_records);
            assert_eq!(summary.first_ts_ns.is_some(), summary.last_ts_ns.is_some());
            match (summary.earliest_ts_ns, summary.latest_ts_ns) {
                (Some(earliest), Some(latest)) => assert!(earliest <= latest),
                (None, None) => {}
                other => panic!("time range half set: {other:?}"),
            }
            assert!(summary.complete || !summary.warnings.is_empty());
        }
        Err(e) => assert!(e.to_string().starts_with("fuzz: ")),
    }
});
