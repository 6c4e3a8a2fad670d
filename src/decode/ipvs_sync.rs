//! The IPVS connection synchronisation protocol: what the master director's sync daemon
//! (`ipvsadm --start-daemon master`, keepalived's `lvs_sync_daemon`) multicasts to
//! 224.0.0.81, UDP port 8848, so that a backup director holds the same connection entries
//! when it takes over. Wireshark has no dissector for it; the format is the kernel's
//! (net/netfilter/ipvs/ip_vs_sync.c, protocol version 1, the default since 2.6.39):
//!
//! message header, 8 bytes: reserved (0: a version 0 receiver drops the message), syncid,
//! size (be16, the whole message), number of connections, version (1), spare (2 bytes);
//! then per connection: type (bit 0: IPv6), protocol, ver_size (be16: version in the top 4
//! bits, 0; the entry's size with its options in the low 12), flags (be32), state (be16),
//! cport, vport, dport (be16), fwmark (be32), timeout (be32, seconds), then client, virtual
//! and destination (real server) addresses, 4 or 16 bytes each; options fill the rest of
//! the entry, and the next entry starts at the size rounded up to 4 bytes.
//!
//! [`SyncView`] reads the borrowed bytes in place; [`SyncView::conns`] stops at the first
//! entry whose bytes are not all there, as the kernel drops such a message.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use serde::Serialize;

/// The sync daemon's multicast group and port (IP_VS_SYNC_GROUP, IP_VS_SYNC_PORT).
pub const SYNC_GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 81);
pub const SYNC_PORT: u16 = 8848;
/// The protocol version the kernel writes (SYNC_PROTO_VER).
pub const SYNC_VERSION: u8 = 1;
const HEADER: usize = 8;
/// The fixed part of an IPv4 entry (struct ip_vs_sync_v4) and of an IPv6 one.
const ENTRY_V4: usize = 36;
const ENTRY_V6: usize = 72;
/// Entries kept inline in [`SyncSummary`]: a lab's messages carry a few; a busy director's
/// carry dozens, of which the first few show what the message is about.
pub const KEPT_CONNS: usize = 4;
/// IP_VS_CONN_F_TEMPLATE: a persistence template, not a connection.
pub const FLAG_TEMPLATE: u32 = 0x1000;

/// One connection entry of a sync message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
pub struct SyncConn {
    pub protocol: u8,
    pub flags: u32,
    /// The IPVS state number (TCP: 1 ESTABLISHED, 2 SYN_SENT, 3 SYN_RECV, 4 FIN_WAIT,
    /// 5 TIME_WAIT, 6 CLOSE, 7 CLOSE_WAIT, 8 LAST_ACK, 9 LISTEN, 10 SYNACK).
    pub state: u16,
    pub fwmark: u32,
    /// Seconds.
    pub timeout: u32,
    pub client: SocketAddr,
    pub vip: SocketAddr,
    /// The real server (destination) the entry sends the connection to.
    pub real_server: SocketAddr,
}

impl SyncConn {
    pub fn is_template(&self) -> bool {
        self.flags & FLAG_TEMPLATE != 0
    }
}

/// A sync message in a few hundred bytes: what [`crate::decode::Control::IpvsSync`] carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct SyncSummary {
    pub syncid: u8,
    pub version: u8,
    /// The size the header gives (the whole message).
    pub size: u16,
    /// Connections the header says the message carries.
    pub nr_conns: u8,
    /// Entries whose bytes were all there.
    pub read: u8,
    /// The first [`KEPT_CONNS`] of them.
    pub conns: [Option<SyncConn>; KEPT_CONNS],
}

/// A version 1 sync message over its bytes (the UDP payload).
#[derive(Debug, Clone, Copy)]
pub struct SyncView<'a> {
    b: &'a [u8],
}

impl SyncSummary {
    /// What a reused box holds before it is written over.
    pub const BLANK: SyncSummary = SyncSummary {
        syncid: 0,
        version: 0,
        size: 0,
        nr_conns: 0,
        read: 0,
        conns: [None; KEPT_CONNS],
    };
}

impl<'a> SyncView<'a> {
    /// The message in `b`, if its header is whole and says version 1 (reserved byte 0).
    pub fn parse(b: &'a [u8]) -> Option<SyncView<'a>> {
        (b.len() >= HEADER && b[0] == 0 && b[5] == SYNC_VERSION).then_some(SyncView { b })
    }
    pub fn syncid(&self) -> u8 {
        self.b[1]
    }
    pub fn size(&self) -> u16 {
        u16::from_be_bytes([self.b[2], self.b[3]])
    }
    pub fn nr_conns(&self) -> u8 {
        self.b[4]
    }
    pub fn version(&self) -> u8 {
        self.b[5]
    }
    /// The entries, in order, until one is cut short, of another version or smaller than its
    /// fixed part.
    pub fn conns(&self) -> impl Iterator<Item = SyncConn> + 'a {
        let b = self.b;
        let mut at = HEADER;
        (0..self.nr_conns()).map_while(move |_| {
            let (conn, size) = entry(b.get(at..)?)?;
            at += (size + 3) & !3;
            Some(conn)
        })
    }
    pub fn summary(&self) -> SyncSummary {
        let mut s = SyncSummary::BLANK;
        self.write_summary(&mut s);
        s
    }

    /// [`Self::summary`] written over `s` (a box the decoder reuses).
    pub fn write_summary(&self, s: &mut SyncSummary) {
        s.conns = [None; KEPT_CONNS];
        let mut read = 0u8;
        for c in self.conns() {
            if let Some(slot) = s.conns.get_mut(usize::from(read)) {
                *slot = Some(c);
            }
            read += 1;
        }
        s.syncid = self.syncid();
        s.version = self.version();
        s.size = self.size();
        s.nr_conns = self.nr_conns();
        s.read = read;
    }
}

/// One entry at the start of `b` and its size (options included), if whole.
fn entry(b: &[u8]) -> Option<(SyncConn, usize)> {
    let be16 = |at: usize| super::be16(b, at);
    let be32 = |at: usize| super::be32(b, at);
    let v6 = b.first()? & 1 != 0;
    let ver_size = be16(2)?;
    let size = usize::from(ver_size & 0x0fff);
    let fixed = if v6 { ENTRY_V6 } else { ENTRY_V4 };
    if ver_size >> 12 != 0 || size < fixed || b.len() < size {
        return None;
    }
    let addr = |i: usize| -> IpAddr {
        if v6 {
            let mut a = [0u8; 16];
            a.copy_from_slice(&b[24 + 16 * i..40 + 16 * i]);
            IpAddr::V6(Ipv6Addr::from(a))
        } else {
            let s = &b[24 + 4 * i..28 + 4 * i];
            IpAddr::V4(Ipv4Addr::new(s[0], s[1], s[2], s[3]))
        }
    };
    let conn = SyncConn {
        protocol: b[1],
        flags: be32(4)?,
        state: be16(8)?,
        fwmark: be32(16)?,
        timeout: be32(20)?,
        client: SocketAddr::new(addr(0), be16(10)?),
        vip: SocketAddr::new(addr(1), be16(12)?),
        real_server: SocketAddr::new(addr(2), be16(14)?),
    };
    Some((conn, size))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One IPv4 entry as the kernel writes it for an established TCP connection of the lab
    /// (ip_vs_sync_conn: ver_size = 36, flags IP_VS_CONN_F_TUNNEL 0x0002 | HASHED 0x0100 |
    /// NOOUTPUT 0x0400, state 1 ESTABLISHED, timeout 900 s).
    fn entry_v4(cport: u16, rs: [u8; 4]) -> Vec<u8> {
        let mut e = vec![0, 6, 0, 36, 0, 0, 0x05, 0x02, 0, 1];
        e.extend_from_slice(&cport.to_be_bytes());
        e.extend_from_slice(&80u16.to_be_bytes());
        e.extend_from_slice(&80u16.to_be_bytes());
        e.extend_from_slice(&0u32.to_be_bytes());
        e.extend_from_slice(&900u32.to_be_bytes());
        e.extend_from_slice(&[10, 7, 0, 200, 10, 7, 0, 100]);
        e.extend_from_slice(&rs);
        e
    }

    fn message(entries: &[Vec<u8>]) -> Vec<u8> {
        let size = HEADER + entries.iter().map(|e| e.len()).sum::<usize>();
        let mut m = vec![0, 7];
        m.extend_from_slice(&(size as u16).to_be_bytes());
        m.extend_from_slice(&[entries.len() as u8, 1, 0, 0]);
        for e in entries {
            m.extend_from_slice(e);
        }
        m
    }

    #[test]
    fn reads_a_v4_message() {
        let m = message(&[
            entry_v4(40000, [10, 7, 0, 11]),
            entry_v4(40002, [10, 7, 0, 12]),
        ]);
        let v = SyncView::parse(&m).expect("v1 message");
        assert_eq!((v.syncid(), v.nr_conns(), v.size()), (7, 2, 80));
        let c: Vec<SyncConn> = v.conns().collect();
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].client, "10.7.0.200:40000".parse().unwrap());
        assert_eq!(c[0].vip, "10.7.0.100:80".parse().unwrap());
        assert_eq!(c[1].real_server, "10.7.0.12:80".parse().unwrap());
        assert_eq!((c[0].protocol, c[0].state, c[0].timeout), (6, 1, 900));
        assert_eq!(c[0].flags, 0x0502);
        assert!(!c[0].is_template());
        let s = v.summary();
        assert_eq!(s.read, 2);
        assert_eq!(s.conns[1].map(|c| c.client.port()), Some(40002));
    }

    #[test]
    fn reads_v6_and_options_padding() {
        // An IPv6 entry with 6 bytes of options: size 78, the next entry at 80.
        let mut e = vec![1, 6, 0, 78, 0, 0, 0, 2, 0, 1, 0x9c, 0x40, 0, 80, 0, 80];
        e.extend_from_slice(&[0; 8]);
        for a in ["2001:db8:7::c8", "2001:db8:7::100", "2001:db8:7::11"] {
            e.extend_from_slice(&a.parse::<Ipv6Addr>().unwrap().octets());
        }
        e.extend_from_slice(&[3, 4, 0xaa, 0xbb, 0xcc, 0xdd, 0, 0]);
        let m = message(&[e, entry_v4(1, [10, 7, 0, 11])]);
        let c: Vec<SyncConn> = SyncView::parse(&m).unwrap().conns().collect();
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].real_server, "[2001:db8:7::11]:80".parse().unwrap());
        assert_eq!(c[1].client.port(), 1);
    }

    #[test]
    fn cut_messages_never_panic() {
        let m = message(&[
            entry_v4(40000, [10, 7, 0, 11]),
            entry_v4(40002, [10, 7, 0, 12]),
        ]);
        for n in 0..m.len() {
            let Some(v) = SyncView::parse(&m[..n]) else {
                assert!(n < HEADER);
                continue;
            };
            let whole = (n - HEADER) / 36;
            assert_eq!(v.conns().count(), whole.min(2), "{n} bytes");
        }
        // Version 0 (first byte = count) and a bad entry version are not read.
        let mut v0 = m.clone();
        v0[0] = 2;
        assert!(SyncView::parse(&v0).is_none());
        let mut bad = m.clone();
        bad[HEADER + 2] = 0x10;
        assert_eq!(SyncView::parse(&bad).unwrap().conns().count(), 0);
        // An entry claiming less than its fixed part stops the walk.
        let mut small = m;
        small[HEADER + 3] = 8;
        assert_eq!(SyncView::parse(&small).unwrap().conns().count(), 0);
    }
}
