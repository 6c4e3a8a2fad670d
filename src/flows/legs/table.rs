//! One vantage point's connections by tuple, in as few bytes a connection as its tuple allows.
//!
//! A [`ConnKey`] takes 68 bytes (two `SocketAddr`s, each with room for an IPv6 flow label and
//! scope), and every bucket of a table pays for one, empty or not (the capacity doubles past
//! the peak of connections held): at 200 000 connections a second the keys were most of the
//! tracker's table. An IPv4 tuple is kept in 16 bytes ([`V4Key`]), which also hash in two
//! words; any other tuple is kept whole, in a table of its own.

use super::Slot;
use crate::flows::ConnKey;
use crate::topology::Proto;
use rustc_hash::FxHashMap as HashMap;
use std::collections::hash_map::Entry;
use std::hash::Hash;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// An IPv4 tuple: both addresses in one word (client's high), both ports and the protocol in
/// the other. The joining side keys its waiting connections on it too, for the same reasons.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct V4Key {
    addrs: u64,
    ports: u64,
}

impl V4Key {
    pub(crate) fn of(k: &ConnKey) -> Option<V4Key> {
        match (k.client, k.vip) {
            (SocketAddr::V4(c), SocketAddr::V4(v)) => Some(V4Key {
                addrs: u64::from(c.ip().to_bits()) << 32 | u64::from(v.ip().to_bits()),
                ports: u64::from(c.port()) << 24 | u64::from(v.port()) << 8 | u64::from(k.proto.0),
            }),
            _ => None,
        }
    }

    pub(crate) fn key(self) -> ConnKey {
        let addr = |ip: u64, port: u64| {
            SocketAddr::new(IpAddr::V4(Ipv4Addr::from_bits(ip as u32)), port as u16)
        };
        ConnKey {
            proto: Proto(self.ports as u8),
            client: addr(self.addrs >> 32, self.ports >> 24),
            vip: addr(self.addrs, self.ports >> 8),
        }
    }
}

/// The states and packed legs of one vantage point, by tuple.
#[derive(Default)]
pub(super) struct Table {
    v4: HashMap<V4Key, Slot>,
    other: HashMap<ConnKey, Slot>,
}

impl Table {
    pub(super) fn len(&self) -> usize {
        self.v4.len() + self.other.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(super) fn get(&self, k: &ConnKey) -> Option<&Slot> {
        match V4Key::of(k) {
            Some(v4) => self.v4.get(&v4),
            None => self.other.get(k),
        }
    }

    pub(super) fn get_mut(&mut self, k: &ConnKey) -> Option<&mut Slot> {
        match V4Key::of(k) {
            Some(v4) => self.v4.get_mut(&v4),
            None => self.other.get_mut(k),
        }
    }

    pub(super) fn remove(&mut self, k: &ConnKey) -> Option<Slot> {
        match V4Key::of(k) {
            Some(v4) => self.v4.remove(&v4),
            None => self.other.remove(k),
        }
    }

    /// The slot of `k`, or, when there is none, the one `open` makes, if it makes one; true
    /// when it was made. One lookup either way.
    pub(super) fn get_or_open(
        &mut self,
        k: ConnKey,
        open: impl FnOnce() -> Option<Slot>,
    ) -> Option<(&mut Slot, bool)> {
        match V4Key::of(&k) {
            Some(v4) => get_or_open(&mut self.v4, v4, open),
            None => get_or_open(&mut self.other, k, open),
        }
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = (ConnKey, &Slot)> {
        let v4 = self.v4.iter().map(|(k, s)| (k.key(), s));
        v4.chain(self.other.iter().map(|(k, s)| (*k, s)))
    }

    /// Every slot, the table left empty.
    pub(super) fn take(&mut self) -> impl Iterator<Item = (ConnKey, Slot)> {
        let v4 = std::mem::take(&mut self.v4).into_iter();
        let other = std::mem::take(&mut self.other).into_iter();
        v4.map(|(k, s)| (k.key(), s)).chain(other)
    }
}

fn get_or_open<K: Hash + Eq>(
    map: &mut HashMap<K, Slot>,
    k: K,
    open: impl FnOnce() -> Option<Slot>,
) -> Option<(&mut Slot, bool)> {
    match map.entry(k) {
        Entry::Occupied(e) => Some((e.into_mut(), false)),
        Entry::Vacant(e) => open().map(|s| (e.insert(s), true)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv6Addr, SocketAddrV6};

    fn key(client: &str, vip: &str, proto: Proto) -> ConnKey {
        ConnKey {
            proto,
            client: client.parse().expect("client"),
            vip: vip.parse().expect("vip"),
        }
    }

    #[test]
    fn an_ipv4_tuple_reads_back_whole() {
        for k in [
            key("10.1.2.3:40000", "192.168.0.1:80", Proto::TCP),
            key("255.255.255.255:65535", "0.0.0.0:0", Proto(255)),
            key("0.0.0.1:1", "255.0.0.0:65535", Proto::UDP),
        ] {
            let v4 = V4Key::of(&k).expect("IPv4");
            assert_eq!(v4.key(), k);
        }
    }

    #[test]
    fn tuples_of_either_family_are_found_and_told_apart() {
        let v6 = ConnKey {
            proto: Proto::TCP,
            client: SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::LOCALHOST, 1, 0, 0)),
            vip: SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, 80, 0, 0)),
        };
        let keys = [
            key("10.0.0.1:1000", "10.0.0.9:80", Proto::TCP),
            key("10.0.0.1:1000", "10.0.0.9:80", Proto::UDP),
            key("10.0.0.9:1000", "10.0.0.1:80", Proto::TCP),
            key("10.0.0.1:80", "10.0.0.9:1000", Proto::TCP),
            v6,
        ];
        let mut t = Table::default();
        for (i, k) in keys.iter().enumerate() {
            let (_, opened) = t
                .get_or_open(*k, || Some(Slot::Closed(i as i64, empty_leg())))
                .expect("opened");
            assert!(opened);
        }
        assert!(t.get_or_open(keys[0], || None).is_some_and(|(_, o)| !o));
        assert_eq!(t.len(), keys.len());
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(t.get(k).map(Slot::last_ts), Some(i as i64));
        }
        let mut seen: Vec<ConnKey> = t.iter().map(|(k, _)| k).collect();
        seen.sort();
        let mut want = keys.to_vec();
        want.sort();
        assert_eq!(seen, want);
        assert!(t.remove(&v6).is_some());
        assert!(t.get(&v6).is_none());
        assert_eq!(t.take().count(), keys.len() - 1);
        assert!(t.is_empty());
    }

    fn empty_leg() -> crate::flows::packed::PackedLeg {
        let s = crate::flows::leg_state::LegState::new(0);
        let v = crate::topology::VantageId {
            capture: 0,
            interface: 0,
        };
        crate::flows::packed::pack(&s, v, crate::topology::Role::Client, false, &mut Vec::new())
    }
}
