//! Fuzzes the decode layer: any bytes, any supported link type, stateless and stateful.
//!
//! Input: byte 0 picks the link type, byte 1 the options (GUE ports / GUE probe), then
//! frames, each prefixed by a 2-byte big-endian length (the last one takes what is left), so
//! that one input can carry several fragments of a datagram for the reassembly table, which
//! is kept small here to exercise eviction and expiry.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lvscheck::decode::{decode, DecodeOptions, Decoder, LayerCounts, ReassemblyLimits};
use lvscheck::capture::frame::Frame;

const LINK_TYPES: [u32; 11] = [0, 1, 12, 14, 101, 108, 113, 228, 229, 276, 147];

fuzz_target!(|input: &[u8]| {
    let [link, flags, rest @ ..] = input else {
        return;
    };
    let link_type = LINK_TYPES[usize::from(*link) % LINK_TYPES.len()];
    let opts = DecodeOptions {
        gue_ports: if flags & 1 != 0 { vec![5555, 6080] } else { Vec::new() },
        // A confirmed tunnel from any source the fuzzer writes at 10.0.0.1.
        gue_tunnels: vec![([10, 0, 0, 1].into(), 4754)],
        gue_probe: flags & 2 != 0,
        reassembly: ReassemblyLimits {
            max_datagrams: 4,
            max_bytes: 8192,
            max_age_ns: 1000,
            max_held_frames: 8,
        },
    };
    let mut decoder = Decoder::new(opts.clone());
    let mut counts = LayerCounts::default();
    let mut rest = rest;
    let mut ts = 0i64;
    let mut number = 0u64;
    let mut handed_on = 0u64;
    while !rest.is_empty() {
        let frame = match rest {
            [hi, lo, tail @ ..] => {
                let len = usize::from(u16::from_be_bytes([*hi, *lo])).min(tail.len());
                let (frame, after) = tail.split_at(len);
                rest = after;
                frame
            }
            _ => std::mem::take(&mut rest),
        };
        let stateless = decode(link_type, frame, &opts);
        if let Some(ip) = stateless.ip() {
            assert!(ip.ip.captured_len as usize <= frame.len());
        }
        number += 1;
        let f = Frame {
            capture: 0,
            interface: 0,
            number,
            ts_ns: ts,
            wire_len: frame.len() as u32,
            link_type,
            data: frame,
            offset: 0,
        };
        decoder.push(&f, &mut |d, _| {
            handed_on += 1;
            assert_eq!(d.number, handed_on, "frames are handed on in order");
            counts.add(&d.packet);
        });
        assert!(decoder.held_frames() <= 8);
        counts.add(&stateless);
        ts += i64::from(flags >> 2) * 100;
    }
    assert!(decoder.pending_datagrams() <= 4);
    decoder.finish(&mut |d, _| {
        handed_on += 1;
        assert_eq!(d.number, handed_on, "frames are handed on in order");
    });
    assert_eq!(handed_on, number, "every frame is handed on once");
});
