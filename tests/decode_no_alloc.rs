//! The stateful decoder allocates nothing per frame: decoding a set of real frames ten times
//! over costs the same allocations as decoding it once, and once warm none at all. The frames
//! cover what used to allocate per frame: IP-in-IP tunnelled TCP and UDP (the inner packet's
//! box), ICMP errors quoting a packet (another box), 802.1Q / QinQ tags (the VLAN list) and
//! frames cut short by the snap length (the malformed layer's reason).
//!
//! Allocations are counted per thread by a global allocator of this test binary, so that the
//! test harness's own threads do not count.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::Path;

use lvscheck::capture::frame::Frame;
use lvscheck::capture::{read_capture, CaptureSource};
use lvscheck::decode::{DecodeOptions, DecodedFrame, Decoder, LayerCounts, Transport};

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn count() {
    // try_with: the thread's slot may be gone while the thread shuts down.
    let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        System.alloc_zeroed(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        System.realloc(ptr, layout, new_size)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.with(|n| n.get())
}

/// A captured frame, owned, to be decoded again and again.
struct Owned {
    link_type: u32,
    ts_ns: i64,
    wire_len: u32,
    data: Vec<u8>,
}

const ETHERNET: u32 = 1;
/// Where an Ethernet frame's ethertype starts, after the two MAC addresses.
const ETHERTYPE_AT: usize = 12;

fn frames_of(file: &str) -> Vec<Owned> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(file);
    let mut frames = Vec::new();
    read_capture(0, &CaptureSource::File(path), |f: &Frame| {
        frames.push(Owned {
            link_type: f.link_type,
            ts_ns: f.ts_ns,
            wire_len: f.wire_len,
            data: f.data.to_vec(),
        })
    })
    .expect("fixture reads");
    frames
}

/// The same Ethernet frame with a QinQ service tag (0x88a8, VLAN 100) and a customer tag
/// (0x8100, VLAN 7) in front of its ethertype.
fn qinq(frame: &Owned) -> Owned {
    let mut data = frame.data[..ETHERTYPE_AT].to_vec();
    data.extend_from_slice(&[0x88, 0xa8, 0x00, 100, 0x81, 0x00, 0x00, 7]);
    data.extend_from_slice(&frame.data[ETHERTYPE_AT..]);
    Owned {
        data,
        wire_len: frame.wire_len + 8,
        ..*frame
    }
}

/// What decoding a set of frames took and found.
#[derive(Debug, Default, PartialEq)]
struct Run {
    allocations: u64,
    counts: LayerCounts,
    /// Frames with an ICMP error that quotes a packet (through tunnels).
    quoting: u64,
    /// Frames with VLAN tags.
    tagged: u64,
}

/// Decodes `frames` `times` over with one decoder, built and finished inside.
fn decode_all(frames: &[Owned], opts: &DecodeOptions, times: usize) -> Run {
    let mut run = Run::default();
    let before = allocations();
    let mut decoder = Decoder::new(opts.clone());
    let mut tally = |d: &mut DecodedFrame, _: u32| {
        run.counts.add(&d.packet);
        run.tagged += u64::from(!d.packet.link.vlans.is_empty());
        if let Some(Transport::Icmp(icmp)) = d.packet.ip().map(|ip| &ip.innermost().transport) {
            run.quoting += u64::from(icmp.quoted.is_some());
        }
    };
    let mut number = 0;
    for _ in 0..times {
        for f in frames {
            number += 1;
            let frame = Frame {
                capture: 0,
                interface: 0,
                number,
                ts_ns: f.ts_ns,
                wire_len: f.wire_len,
                link_type: f.link_type,
                data: &f.data,
                offset: 0,
            };
            decoder.push(&frame, &mut tally);
        }
    }
    decoder.finish(&mut tally);
    drop(decoder);
    run.allocations = allocations() - before;
    run
}

#[test]
fn decoding_allocates_nothing_per_frame() {
    let mut frames = frames_of("mtu/director.pcap");
    frames.extend(frames_of("udp-wildcard/rs2.pcap"));
    frames.extend(frames_of("derived/snaplen-40/server1.pcap"));
    let tagged: Vec<Owned> = frames
        .iter()
        .filter(|f| f.link_type == ETHERNET && f.data.len() > ETHERTYPE_AT)
        .map(qinq)
        .collect();
    frames.extend(tagged);
    let opts = DecodeOptions {
        gue_probe: true,
        ..DecodeOptions::default()
    };

    let once = decode_all(&frames, &opts, 1);
    // The frames exercise every layer that used to allocate.
    let c = &once.counts;
    assert_eq!(c.frames, frames.len() as u64);
    assert!(c.tunnels.ipip > 0 && c.tcp > 0 && c.udp > 0, "{once:?}");
    assert!(once.quoting > 0 && c.malformed > 0, "{once:?}");
    assert!(once.tagged >= frames.len() as u64 / 2, "{once:?}");

    let ten_times = decode_all(&frames, &opts, 10);
    assert_eq!(ten_times.counts.frames, 10 * c.frames);
    assert_eq!(ten_times.counts.tunnels.ipip, 10 * c.tunnels.ipip);
    assert_eq!(ten_times.quoting, 10 * once.quoting);
    assert_eq!(
        ten_times.allocations,
        once.allocations,
        "{} frames decoded 10 times allocated {} times, once {}",
        frames.len(),
        ten_times.allocations,
        once.allocations
    );
}

#[test]
fn vlan_tags_are_decoded_in_the_tagged_copies() {
    let frames = frames_of("mtu/director.pcap");
    let tagged = qinq(&frames[0]);
    let p = lvscheck::decode::decode(tagged.link_type, &tagged.data, &DecodeOptions::default());
    assert_eq!(p.link.vlans[..], [100, 7]);
    let plain = lvscheck::decode::decode(
        frames[0].link_type,
        &frames[0].data,
        &DecodeOptions::default(),
    );
    assert_eq!(p.net, plain.net);
}
