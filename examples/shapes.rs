//! Writes captures whose size is in an odd dimension, for the scale rows of bench/run.sh:
//! many pcapng interfaces, many pcapng sections, many interfaces without frames, many UDP
//! services. examples/synth.rs writes realistic TCP traffic to one service; these shapes are
//! what it cannot make.
//!
//! cargo run --release --example shapes -- interfaces N FILE        # N interfaces, one frame each
//! cargo run --release --example shapes -- sections N FILE          # N sections, one frame each
//! cargo run --release --example shapes -- empty-interfaces N FILE  # N interfaces, 2 frames on the first
//! cargo run --release --example shapes -- udp-services N DIR       # LVS-TUN, N UDP services
//!
//! `interfaces` and `sections` repeat one UDP packet (10.0.0.1:1234 -> 10.0.0.2:80) on every
//! interface, 1 ms apart, as ../shared/corpus/repro/verify_cubic_interfaces does: every
//! interface saw the same packet, so every pair of them could be compared for the clocks.
//! `udp-services` writes client.pcap, director.pcap, rs1.pcap and rs2.pcap: two UDP requests
//! per service (VIP 192.0.2.100 + i / 32768, port 1024 + i % 32768) from clients among
//! 198.51.100.1-200, forwarded IP-in-IP by the director 192.0.2.1 to rs1 then rs2, answered
//! from VIP:port straight to the client; one connection every 300 µs; the client ARPs for each
//! VIP first and the director answers. Nanosecond pcap, Ethernet. A rules.txt (`ipvsadm -Sn`:
//! rr over both servers) goes with them.
//! Same arguments, same bytes.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::ExitCode;

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_ARP: u16 = 0x0806;
const PROTO_IPIP: u8 = 4;
const PROTO_UDP: u8 = 17;
/// 2023-11-14T22:13:20Z: any fixed time will do.
const T0_NS: i64 = 1_700_000_000_000_000_000;
/// `udp-services`: a connection's packets take 250 µs from the client's request to the reply
/// reaching it; the next connection starts after.
const CONNECTION_EVERY_NS: i64 = 300_000;

fn checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = bytes
        .chunks(2)
        .map(|c| u32::from(c[0]) << 8 | u32::from(*c.get(1).unwrap_or(&0)))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn ipv4(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, id: u16, payload: &[u8]) -> Vec<u8> {
    let mut h = vec![0x45, 0];
    h.extend(((20 + payload.len()) as u16).to_be_bytes());
    h.extend(id.to_be_bytes());
    h.extend([0x40, 0, 64, proto, 0, 0]);
    h.extend(src.octets());
    h.extend(dst.octets());
    let sum = checksum(&h);
    h[10..12].copy_from_slice(&sum.to_be_bytes());
    h.extend(payload);
    h
}

fn udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut u = Vec::with_capacity(8 + payload.len());
    u.extend(sport.to_be_bytes());
    u.extend(dport.to_be_bytes());
    u.extend(((8 + payload.len()) as u16).to_be_bytes());
    // Checksum 0: none, as IPv4 allows.
    u.extend([0, 0]);
    u.extend(payload);
    u
}

fn ethernet(src: [u8; 6], dst: [u8; 6], ip: &[u8]) -> Vec<u8> {
    ethernet_of(ETHERTYPE_IPV4, src, dst, ip)
}

fn ethernet_of(ethertype: u16, src: [u8; 6], dst: [u8; 6], payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + payload.len().max(46));
    f.extend(dst);
    f.extend(src);
    f.extend(ethertype.to_be_bytes());
    f.extend(payload);
    // Padded to the Ethernet minimum, as receivers capture it.
    f.resize(f.len().max(60), 0);
    f
}

/// An ARP request (who-has `target` tell `sender`) or reply (`target` is-at `sender_mac`).
fn arp(
    reply: bool,
    sender_mac: [u8; 6],
    sender: Ipv4Addr,
    target_mac: [u8; 6],
    target: Ipv4Addr,
) -> Vec<u8> {
    let mut a = vec![0, 1, 8, 0, 6, 4, 0, if reply { 2 } else { 1 }];
    a.extend(sender_mac);
    a.extend(sender.octets());
    a.extend(if reply { target_mac } else { [0; 6] });
    a.extend(target.octets());
    let dst = if reply { target_mac } else { [0xff; 6] };
    ethernet_of(ETHERTYPE_ARP, sender_mac, dst, &a)
}

/// A nanosecond pcap file.
struct Pcap(BufWriter<File>);

impl Pcap {
    fn create(path: &Path) -> io::Result<Pcap> {
        let mut w = BufWriter::new(File::create(path)?);
        w.write_all(&0xa1b2_3c4d_u32.to_le_bytes())?;
        w.write_all(&2_u16.to_le_bytes())?;
        w.write_all(&4_u16.to_le_bytes())?;
        w.write_all(&[0; 8])?;
        w.write_all(&262_144_u32.to_le_bytes())?;
        w.write_all(&1_u32.to_le_bytes())?;
        Ok(Pcap(w))
    }
    fn frame(&mut self, ts_ns: i64, frame: &[u8]) -> io::Result<()> {
        let w = &mut self.0;
        w.write_all(&((ts_ns / 1_000_000_000) as u32).to_le_bytes())?;
        w.write_all(&((ts_ns % 1_000_000_000) as u32).to_le_bytes())?;
        w.write_all(&(frame.len() as u32).to_le_bytes())?;
        w.write_all(&(frame.len() as u32).to_le_bytes())?;
        w.write_all(frame)
    }
}

/// pcapng blocks, little-endian, microsecond timestamps (the default resolution).
struct Pcapng(BufWriter<File>);

impl Pcapng {
    fn create(path: &Path) -> io::Result<Pcapng> {
        Ok(Pcapng(BufWriter::new(File::create(path)?)))
    }
    fn block(&mut self, kind: u32, body: &[u8]) -> io::Result<()> {
        let padded = body.len().div_ceil(4) * 4;
        let len = (12 + padded) as u32;
        let w = &mut self.0;
        w.write_all(&kind.to_le_bytes())?;
        w.write_all(&len.to_le_bytes())?;
        w.write_all(body)?;
        w.write_all(&[0; 3][..padded - body.len()])?;
        w.write_all(&len.to_le_bytes())
    }
    fn section(&mut self) -> io::Result<()> {
        let mut b = Vec::new();
        b.extend(0x1a2b_3c4d_u32.to_le_bytes());
        b.extend(1_u16.to_le_bytes());
        b.extend(0_u16.to_le_bytes());
        b.extend((-1_i64).to_le_bytes());
        self.block(0x0a0d_0d0a, &b)
    }
    fn interface(&mut self) -> io::Result<()> {
        let mut b = Vec::new();
        b.extend(1_u16.to_le_bytes());
        b.extend(0_u16.to_le_bytes());
        b.extend(0_u32.to_le_bytes());
        self.block(1, &b)
    }
    fn frame(&mut self, interface: u32, ts_ns: i64, frame: &[u8]) -> io::Result<()> {
        let us = (ts_ns / 1000) as u64;
        let mut b = Vec::with_capacity(20 + frame.len());
        b.extend(interface.to_le_bytes());
        b.extend(((us >> 32) as u32).to_le_bytes());
        b.extend((us as u32).to_le_bytes());
        b.extend((frame.len() as u32).to_le_bytes());
        b.extend((frame.len() as u32).to_le_bytes());
        b.extend(frame);
        self.block(6, &b)
    }
}

/// The packet `interfaces` and `sections` repeat.
fn repeated_packet() -> Vec<u8> {
    let ip = ipv4(
        Ipv4Addr::new(10, 0, 0, 1),
        Ipv4Addr::new(10, 0, 0, 2),
        PROTO_UDP,
        1,
        &udp(1234, 80, b"ping"),
    );
    ethernet([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2], &ip)
}

fn interfaces(n: u32, path: &Path) -> io::Result<u64> {
    let mut w = Pcapng::create(path)?;
    w.section()?;
    for _ in 0..n {
        w.interface()?;
    }
    let frame = repeated_packet();
    for i in 0..n {
        w.frame(i, T0_NS + i64::from(i) * 1_000_000, &frame)?;
    }
    w.0.flush()?;
    Ok(u64::from(n))
}

fn sections(n: u32, path: &Path) -> io::Result<u64> {
    let mut w = Pcapng::create(path)?;
    let frame = repeated_packet();
    for i in 0..n {
        w.section()?;
        w.interface()?;
        w.frame(0, T0_NS + i64::from(i) * 1_000_000, &frame)?;
    }
    w.0.flush()?;
    Ok(u64::from(n))
}

fn empty_interfaces(n: u32, path: &Path) -> io::Result<u64> {
    let mut w = Pcapng::create(path)?;
    w.section()?;
    for _ in 0..n {
        w.interface()?;
    }
    let frame = repeated_packet();
    w.frame(0, T0_NS, &frame)?;
    w.frame(0, T0_NS + 1_000_000, &frame)?;
    w.0.flush()?;
    Ok(2)
}

fn udp_services(n: u32, dir: &Path) -> io::Result<u64> {
    std::fs::create_dir_all(dir)?;
    let director = Ipv4Addr::new(192, 0, 2, 1);
    let rs = [Ipv4Addr::new(192, 0, 2, 11), Ipv4Addr::new(192, 0, 2, 12)];
    let (client_mac, director_mac) = ([2, 0, 0, 0, 1, 1], [2, 0, 0, 0, 0, 1]);
    let rs_mac = [[2, 0, 0, 0, 0, 0x11], [2, 0, 0, 0, 0, 0x12]];
    let mut client = Pcap::create(&dir.join("client.pcap"))?;
    let mut dir_cap = Pcap::create(&dir.join("director.pcap"))?;
    let mut rs_cap = [
        Pcap::create(&dir.join("rs1.pcap"))?,
        Pcap::create(&dir.join("rs2.pcap"))?,
    ];
    let vip_of = |i: u32| Ipv4Addr::new(192, 0, 2, 100 + (i / 32_768) as u8);
    // The client's ARP for each VIP, answered by the director, before the first request.
    for k in 0..n.div_ceil(32_768) {
        let vip = vip_of(k * 32_768);
        let client_ip = Ipv4Addr::new(198, 51, 100, 1);
        let t = T0_NS - 1_000_000 + i64::from(k) * 100_000;
        let ask = arp(false, client_mac, client_ip, [0; 6], vip);
        let answer = arp(true, director_mac, vip, client_mac, client_ip);
        for w in [&mut client, &mut dir_cap] {
            w.frame(t, &ask)?;
            w.frame(t + 20_000, &answer)?;
        }
    }
    // ipvsadm -Sn: round robin over both real servers.
    let mut rules = BufWriter::new(File::create(dir.join("rules.txt"))?);
    for i in 0..n {
        let (vip, port) = (vip_of(i), 1024 + (i % 32_768) as u16);
        writeln!(rules, "-A -u {vip}:{port} -s rr")?;
        for rip in rs {
            writeln!(
                rules,
                "-a -u {vip}:{port} -r {rip}:{port} -i -w 1 --tun-type ipip"
            )?;
        }
    }
    rules.flush()?;
    // Two connections per service, one to each real server as round robin sends them, each
    // over before the next starts: every capture is in time order.
    for j in 0..2 * n {
        let i = j / 2;
        let vip = vip_of(i);
        let port = 1024 + (i % 32_768) as u16;
        let caddr = Ipv4Addr::new(198, 51, 100, 1 + (j % 200) as u8);
        let cport = 10_000 + (j / 200) as u16;
        let r = (j % 2) as usize;
        let t = T0_NS + i64::from(j) * CONNECTION_EVERY_NS;
        let id = j as u16;
        let request = ipv4(
            caddr,
            vip,
            PROTO_UDP,
            id,
            &udp(cport, port, &j.to_be_bytes()),
        );
        let reply = ipv4(
            vip,
            caddr,
            PROTO_UDP,
            id ^ 0x8000,
            &udp(port, cport, &(!j).to_be_bytes()),
        );
        let wrapped = ipv4(director, rs[r], PROTO_IPIP, 0, &request);
        let to_director = ethernet(client_mac, director_mac, &request);
        client.frame(t, &to_director)?;
        dir_cap.frame(t + 30_000, &to_director)?;
        let tunnelled = ethernet(director_mac, rs_mac[r], &wrapped);
        dir_cap.frame(t + 40_000, &tunnelled)?;
        rs_cap[r].frame(t + 70_000, &tunnelled)?;
        let answer = ethernet(rs_mac[r], client_mac, &reply);
        rs_cap[r].frame(t + 200_000, &answer)?;
        client.frame(t + 250_000, &answer)?;
    }
    let [rs1, rs2] = &mut rs_cap;
    for w in [&mut client, &mut dir_cap, rs1, rs2] {
        w.0.flush()?;
    }
    Ok(12 * u64::from(n) + 4 * u64::from(n.div_ceil(32_768)))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [shape, n, out] = args.as_slice() else {
        eprintln!("usage: shapes interfaces|sections|empty-interfaces|udp-services N OUT");
        return ExitCode::from(2);
    };
    let Ok(n) = n.parse::<u32>() else {
        eprintln!("shapes: {n} is not a count");
        return ExitCode::from(2);
    };
    let out = Path::new(out);
    let written = match shape.as_str() {
        "interfaces" => interfaces(n, out),
        "sections" => sections(n, out),
        "empty-interfaces" => empty_interfaces(n, out),
        "udp-services" => udp_services(n, out),
        _ => {
            eprintln!("shapes: unknown shape {shape}");
            return ExitCode::from(2);
        }
    };
    match written {
        Ok(frames) => {
            println!("{shape} {n}: {frames} frames written to {}", out.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("shapes: {}: {e}", out.display());
            ExitCode::FAILURE
        }
    }
}
