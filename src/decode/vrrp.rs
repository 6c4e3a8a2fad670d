//! VRRP advertisements (IP protocol 112, to 224.0.0.18 or ff02::12): version 2 (RFC 3768,
//! IPv4 only, advertisement interval in seconds) and version 3 (RFC 5798, IPv4 or IPv6, in
//! centiseconds). keepalived's `vrrp_instance` sends one every `advert_int` while it is
//! master; a backup sends none. What a failover check reads from them: which router
//! (source address, MAC) advertised which virtual router id with which priority, and when.
//!
//! [`VrrpView`] reads the borrowed bytes in place; every field is checked against the bytes
//! present, so a cut or hostile advertisement yields `None` or fewer addresses, never a panic.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::Serialize;

/// IP protocol number of VRRP.
pub const PROTO_VRRP: u8 = 112;
/// Bytes before the first address: version/type, vrid, priority, count, two bytes of
/// authentication type and interval (v2) or reserved bits and max interval (v3), checksum.
const FIXED: usize = 8;
/// The advertisement type (the only one VRRP defines).
pub const TYPE_ADVERTISEMENT: u8 = 1;

/// An advertisement in a few bytes: what [`crate::decode::Control::Vrrp`] carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct Vrrp {
    pub version: u8,
    pub vrid: u8,
    /// 255: the address owner; 0: the master gives up (keepalived stopping).
    pub priority: u8,
    /// Addresses the header says it carries.
    pub count: u8,
    /// Advertisement interval in centiseconds (v2's seconds times 100).
    pub interval_cs: u16,
    /// The first virtual address carried, when its bytes are there.
    pub first_address: Option<IpAddr>,
}

/// A VRRP packet over its bytes (the IP payload).
#[derive(Debug, Clone, Copy)]
pub struct VrrpView<'a> {
    b: &'a [u8],
    v6: bool,
}

impl<'a> VrrpView<'a> {
    /// The advertisement in `b` (carried by IPv6 when `v6`), if its fixed header is whole and
    /// it is version 2 or 3 of type advertisement.
    pub fn parse(b: &'a [u8], v6: bool) -> Option<VrrpView<'a>> {
        if b.len() < FIXED {
            return None;
        }
        let view = VrrpView { b, v6 };
        let ok = matches!((view.version(), v6), (2, false) | (3, _))
            && view.kind() == TYPE_ADVERTISEMENT;
        ok.then_some(view)
    }
    pub fn version(&self) -> u8 {
        self.b[0] >> 4
    }
    pub fn kind(&self) -> u8 {
        self.b[0] & 0x0f
    }
    pub fn vrid(&self) -> u8 {
        self.b[1]
    }
    pub fn priority(&self) -> u8 {
        self.b[2]
    }
    pub fn count(&self) -> u8 {
        self.b[3]
    }
    /// v2: byte 5 in seconds; v3: the low 12 bits of bytes 4-5 in centiseconds.
    pub fn interval_cs(&self) -> u16 {
        if self.version() == 2 {
            u16::from(self.b[5]) * 100
        } else {
            u16::from_be_bytes([self.b[4], self.b[5]]) & 0x0fff
        }
    }
    /// The addresses carried, as far as the bytes go (a cut packet yields fewer).
    pub fn addresses(&self) -> impl Iterator<Item = IpAddr> + 'a {
        let (b, v6) = (self.b, self.v6);
        let width = if v6 { 16 } else { 4 };
        (0..usize::from(self.count())).map_while(move |i| {
            let at = FIXED + i * width;
            let s = b.get(at..at + width)?;
            Some(if v6 {
                let mut a = [0u8; 16];
                a.copy_from_slice(s);
                IpAddr::V6(Ipv6Addr::from(a))
            } else {
                IpAddr::V4(Ipv4Addr::new(s[0], s[1], s[2], s[3]))
            })
        })
    }
    pub fn summary(&self) -> Vrrp {
        Vrrp {
            version: self.version(),
            vrid: self.vrid(),
            priority: self.priority(),
            count: self.count(),
            interval_cs: self.interval_cs(),
            first_address: self.addresses().next(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// keepalived's advertisement of the failover lab, as tshark shows it: VRRPv2, vrid 7,
    /// priority 150, one address 10.7.0.100, auth none, interval 1 s.
    const V2: [u8; 20] = [
        0x21, 7, 150, 1, 0, 1, 0xab, 0xcd, 10, 7, 0, 100, 0, 0, 0, 0, 0, 0, 0, 0,
    ];

    #[test]
    fn reads_v2() {
        let v = VrrpView::parse(&V2, false).expect("v2 advertisement");
        let s = v.summary();
        assert_eq!((s.version, s.vrid, s.priority, s.count), (2, 7, 150, 1));
        assert_eq!(s.interval_cs, 100);
        assert_eq!(s.first_address, Some("10.7.0.100".parse().unwrap()));
    }

    #[test]
    fn reads_v3_ipv6() {
        let mut b = vec![0x31, 9, 100, 2, 0x00, 0x64, 0, 0];
        b.extend_from_slice(&"2001:db8::100".parse::<Ipv6Addr>().unwrap().octets());
        b.extend_from_slice(&"2001:db8::101".parse::<Ipv6Addr>().unwrap().octets());
        let v = VrrpView::parse(&b, true).expect("v3");
        assert_eq!(v.interval_cs(), 100);
        let a: Vec<IpAddr> = v.addresses().collect();
        assert_eq!(a.len(), 2);
        assert_eq!(a[1], "2001:db8::101".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn cut_or_foreign_bytes_never_panic() {
        for n in 0..V2.len() {
            let got = VrrpView::parse(&V2[..n], false);
            assert_eq!(got.is_some(), n >= FIXED, "{n} bytes");
            if let Some(v) = got {
                assert_eq!(v.addresses().count(), usize::from(n >= 12));
            }
        }
        // v2 over IPv6 does not exist; type 2 is no advertisement.
        assert!(VrrpView::parse(&V2, true).is_none());
        let mut t = V2;
        t[0] = 0x22;
        assert!(VrrpView::parse(&t, false).is_none());
        // A count of 255 with 12 bytes yields the one address there.
        let mut c = V2;
        c[3] = 255;
        assert_eq!(VrrpView::parse(&c, false).unwrap().addresses().count(), 3);
    }
}
