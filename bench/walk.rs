//! The reference walk of issue 12: the least work that reads a capture and builds a flow table,
//! against which `lvscheck verify`'s CPU is measured (`bench/run.sh`).
//!
//! Single-threaded: `read()` into a 256 KiB buffer, pcap records (micro- or nanosecond, either
//! byte order), etherparse's lax slicers for Ethernet, IPv4/IPv6 and TCP/UDP and for the packet
//! inside an IP-in-IP tunnel, and one FxHash table of flows (the innermost 5-tuple: packets,
//! bytes). No decoding beyond that, no roles, no join, no checks.
//!
//! `cargo run --release --example walk -- FILE...` prints frames, flows and bytes per file.
//! pcapng is not read (the synth sets are pcap).

use etherparse::{IpNumber, LaxNetSlice, LaxSlicedPacket, TransportSlice};
use rustc_hash::FxHashMap;
use std::fs::File;
use std::io::Read;
use std::net::IpAddr;

const BUFFER: usize = 256 << 10;

type Key = (IpAddr, IpAddr, u16, u16, u8);

fn main() {
    let files: Vec<String> = std::env::args().skip(1).collect();
    if files.is_empty() {
        eprintln!("usage: walk FILE...");
        std::process::exit(2);
    }
    for f in files {
        match walk(&f) {
            Ok((frames, flows, bytes)) => {
                println!("{f}: {frames} frames, {flows} flows, {bytes} bytes")
            }
            Err(e) => {
                eprintln!("{f}: {e}");
                std::process::exit(1);
            }
        }
    }
}

fn walk(path: &str) -> std::io::Result<(u64, usize, u64)> {
    let mut file = File::open(path)?;
    let mut buf = vec![0u8; BUFFER];
    let (mut start, mut end) = (0usize, 0usize);
    let mut fill = |buf: &mut Vec<u8>, start: &mut usize, end: &mut usize, need: usize| {
        if *end - *start >= need {
            return Ok(true);
        }
        buf.copy_within(*start..*end, 0);
        *end -= *start;
        *start = 0;
        if buf.len() < need {
            buf.resize(need, 0);
        }
        while *end < need {
            let n = file.read(&mut buf[*end..])?;
            if n == 0 {
                return Ok(false);
            }
            *end += n;
        }
        Ok::<bool, std::io::Error>(true)
    };
    if !fill(&mut buf, &mut start, &mut end, 24)? {
        return Err(std::io::Error::other("no pcap header"));
    }
    let magic = u32::from_le_bytes(buf[0..4].try_into().unwrap());
    let swapped = match magic {
        0xa1b2c3d4 | 0xa1b23c4d => false,
        0xd4c3b2a1 | 0x4d3cb2a1 => true,
        _ => return Err(std::io::Error::other("not a pcap file")),
    };
    let u32_at = |b: &[u8]| {
        let v = u32::from_le_bytes(b[..4].try_into().unwrap());
        if swapped {
            v.swap_bytes()
        } else {
            v
        }
    };
    start += 24;
    let mut flows: FxHashMap<Key, (u64, u64)> = FxHashMap::default();
    let (mut frames, mut bytes) = (0u64, 0u64);
    loop {
        if !fill(&mut buf, &mut start, &mut end, 16)? {
            break;
        }
        let caplen = u32_at(&buf[start + 8..]) as usize;
        if !fill(&mut buf, &mut start, &mut end, 16 + caplen)? {
            break;
        }
        let data = &buf[start + 16..start + 16 + caplen];
        frames += 1;
        bytes += caplen as u64;
        if let Some(key) = flow_key(data) {
            let e = flows.entry(key).or_default();
            e.0 += 1;
            e.1 += caplen as u64;
        }
        start += 16 + caplen;
    }
    Ok((frames, flows.len(), bytes))
}

/// The innermost 5-tuple of an Ethernet frame, entering one IP-in-IP tunnel.
fn flow_key(frame: &[u8]) -> Option<Key> {
    let packet = LaxSlicedPacket::from_ethernet(frame).ok()?;
    let (src, dst, protocol, payload) = ip_of(packet.net.as_ref()?)?;
    if protocol == IpNumber::IPV4 || protocol == IpNumber::IPV6 {
        let inner = LaxSlicedPacket::from_ip(payload).ok()?;
        let (isrc, idst, _, _) = ip_of(inner.net.as_ref()?)?;
        return ports(isrc, idst, inner.transport.as_ref()?);
    }
    ports(src, dst, packet.transport.as_ref()?)
}

fn ip_of<'a>(net: &LaxNetSlice<'a>) -> Option<(IpAddr, IpAddr, IpNumber, &'a [u8])> {
    match net {
        LaxNetSlice::Ipv4(v4) => {
            let h = v4.header();
            let p = v4.payload();
            Some((
                IpAddr::V4(h.source_addr()),
                IpAddr::V4(h.destination_addr()),
                p.ip_number,
                p.payload,
            ))
        }
        LaxNetSlice::Ipv6(v6) => {
            let h = v6.header();
            let p = v6.payload();
            Some((
                IpAddr::V6(h.source_addr()),
                IpAddr::V6(h.destination_addr()),
                p.ip_number,
                p.payload,
            ))
        }
        _ => None,
    }
}

fn ports(src: IpAddr, dst: IpAddr, t: &TransportSlice) -> Option<Key> {
    match t {
        TransportSlice::Tcp(t) => Some((src, dst, t.source_port(), t.destination_port(), 6)),
        TransportSlice::Udp(u) => Some((src, dst, u.source_port(), u.destination_port(), 17)),
        _ => None,
    }
}
