//! Locality-based least connections, ip_vs_lblc.c.
//!
//! A cache maps each destination address to a server. A new connection goes to the cached
//! server unless it is quiesced or overloaded (more active connections than its weight while
//! some server has fewer than half its weight), in which case the wlc choice is taken and
//! cached. In tunnel mode the destination address is the VIP, so one cache entry decides for
//! the whole service. Entries expire after `lblc_expiration` (24 h by default) without use,
//! far longer than a capture.

use super::least::Wlc;
use super::{Ctx, Load, Model};
use std::collections::HashMap;
use std::net::IpAddr;

#[derive(Debug, Clone)]
pub struct Lblc {
    weights: Vec<u32>,
    wlc: Wlc,
    cache: HashMap<IpAddr, usize>,
    /// A cache entry from before the capture, applied to the first address looked up.
    initial: Option<usize>,
    last_key: Option<IpAddr>,
}

impl Lblc {
    pub fn new(weights: &[u32]) -> Lblc {
        Lblc {
            weights: weights.to_vec(),
            wlc: Wlc::new(weights),
            cache: HashMap::new(),
            initial: None,
            last_key: None,
        }
    }

    /// `is_overloaded()` in ip_vs_lblc.c.
    fn overloaded(&self, d: usize, loads: &[Load]) -> bool {
        u64::from(loads[d].active) > u64::from(self.weights[d])
            && loads
                .iter()
                .zip(&self.weights)
                .any(|(l, &w)| u64::from(l.active) * 2 < u64::from(w))
    }
}

impl Model for Lblc {
    fn schedule(&mut self, ctx: &Ctx) -> Option<usize> {
        let key = ctx.vip.ip();
        self.last_key = Some(key);
        if self.cache.is_empty() {
            if let Some(d) = self.initial.take() {
                self.cache.insert(key, d);
            }
        }
        if let Some(&d) = self.cache.get(&key) {
            if self.weights[d] > 0 && !self.overloaded(d, ctx.loads) {
                return Some(d);
            }
        }
        let d = self.wlc.schedule(ctx)?;
        self.cache.insert(key, d);
        Some(d)
    }

    fn resync(&mut self, chosen: usize) {
        if let Some(key) = self.last_key {
            self.cache.insert(key, chosen);
        }
    }

    /// An empty cache, or an entry from before the capture for any server.
    fn start_states(&self) -> usize {
        self.weights.len() + 1
    }

    fn set_start_state(&mut self, k: usize) {
        self.cache.clear();
        self.last_key = None;
        self.initial = k.checked_sub(1).filter(|&i| i < self.weights.len());
    }

    fn describe_start_state(&self, k: usize, names: &[String]) -> String {
        match k.checked_sub(1) {
            None => "an empty cache".into(),
            Some(i) => format!(
                "a cache entry from before the capture sending the VIP to {}",
                names.get(i).map_or("?", |s| s.as_str())
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One decision of either model with the given (active, inactive) counts per server.
    pub(super) fn step(m: &mut dyn Model, loads: &[(u32, u32)]) -> Option<usize> {
        let loads: Vec<Load> = loads
            .iter()
            .map(|&(active, inactive)| Load { active, inactive })
            .collect();
        m.schedule(&Ctx {
            now_ns: 0,
            client: "198.51.100.1:1000".parse().unwrap(),
            vip: "192.0.2.10:80".parse().unwrap(),
            loads: &loads,
        })
    }

    #[test]
    fn sticks_to_the_cached_server_until_it_is_overloaded() {
        let mut m = Lblc::new(&[1, 1]);
        // Empty cache: wlc on an idle list -> the head.
        assert_eq!(step(&mut m, &[(0, 0), (0, 0)]), Some(0));
        // 1 active is not more than weight 1: stay.
        assert_eq!(step(&mut m, &[(1, 0), (0, 0)]), Some(0));
        // 2 > 1 and the other has 0 * 2 < 1: overloaded, wlc picks 1 and caches it.
        assert_eq!(step(&mut m, &[(2, 0), (0, 0)]), Some(1));
        assert_eq!(step(&mut m, &[(2, 0), (1, 0)]), Some(1));
        // 2 > 1 but nobody is under half its weight: not overloaded, stay.
        assert_eq!(step(&mut m, &[(2, 0), (2, 0)]), Some(1));
    }

    #[test]
    fn a_cache_entry_from_before_the_capture() {
        let mut m = Lblc::new(&[1, 1]);
        m.set_start_state(2);
        assert_eq!(step(&mut m, &[(0, 0), (0, 0)]), Some(1));
        m.set_start_state(0);
        assert_eq!(step(&mut m, &[(0, 0), (0, 0)]), Some(0));
    }
}

/// Locality-based least connections with replication, ip_vs_lblcr.c.
///
/// Like lblc, but each destination address maps to a set of servers: a new connection goes
/// to the least loaded member (overhead / weight, newest member first on ties); when that
/// member is overloaded, the wlc choice joins the set (at its head) and takes the
/// connection. Members are dropped only after `lblcr_expiration` (24 h by default) without
/// change, far longer than a capture, so sets only grow here.
#[derive(Debug, Clone)]
pub struct Lblcr {
    weights: Vec<u32>,
    wlc: Wlc,
    /// Per destination address, members newest first.
    sets: HashMap<IpAddr, Vec<usize>>,
    initial: Option<usize>,
    last_key: Option<IpAddr>,
}

impl Lblcr {
    pub fn new(weights: &[u32]) -> Lblcr {
        Lblcr {
            weights: weights.to_vec(),
            wlc: Wlc::new(weights),
            sets: HashMap::new(),
            initial: None,
            last_key: None,
        }
    }

    /// `ip_vs_dest_set_min()`: the first member with weight > 0, then any later one with
    /// `loh * w > doh * w_least`.
    fn set_min(&self, set: &[usize], loads: &[Load]) -> Option<usize> {
        let mut it = set.iter().copied().filter(|&d| self.weights[d] > 0);
        let mut least = it.next()?;
        for d in it {
            let (loh, doh) = (loads[least].overhead(), loads[d].overhead());
            if u128::from(loh) * u128::from(self.weights[d])
                > u128::from(doh) * u128::from(self.weights[least])
            {
                least = d;
            }
        }
        Some(least)
    }

    fn overloaded(&self, d: usize, loads: &[Load]) -> bool {
        u64::from(loads[d].active) > u64::from(self.weights[d])
            && loads
                .iter()
                .zip(&self.weights)
                .any(|(l, &w)| u64::from(l.active) * 2 < u64::from(w))
    }

    fn insert(&mut self, key: IpAddr, d: usize) {
        let set = self.sets.entry(key).or_default();
        if !set.contains(&d) {
            set.insert(0, d);
        }
    }
}

impl Model for Lblcr {
    fn schedule(&mut self, ctx: &Ctx) -> Option<usize> {
        let key = ctx.vip.ip();
        self.last_key = Some(key);
        if self.sets.is_empty() {
            if let Some(d) = self.initial.take() {
                self.sets.insert(key, vec![d]);
            }
        }
        if let Some(set) = self.sets.get(&key) {
            if let Some(d) = self.set_min(set, ctx.loads) {
                if !self.overloaded(d, ctx.loads) {
                    return Some(d);
                }
            }
        }
        let d = self.wlc.schedule(ctx)?;
        self.insert(key, d);
        Some(d)
    }

    fn resync(&mut self, chosen: usize) {
        if let Some(key) = self.last_key {
            self.insert(key, chosen);
        }
    }

    fn start_states(&self) -> usize {
        self.weights.len() + 1
    }

    fn set_start_state(&mut self, k: usize) {
        self.sets.clear();
        self.last_key = None;
        self.initial = k.checked_sub(1).filter(|&i| i < self.weights.len());
    }

    fn describe_start_state(&self, k: usize, names: &[String]) -> String {
        match k.checked_sub(1) {
            None => "an empty cache".into(),
            Some(i) => format!(
                "a cache entry from before the capture holding {}",
                names.get(i).map_or("?", |s| s.as_str())
            ),
        }
    }
}

#[cfg(test)]
mod lblcr_tests {
    use super::tests::step;
    use super::*;

    #[test]
    fn the_set_grows_on_overload_and_then_shares_by_least_load() {
        let mut m = Lblcr::new(&[1, 1, 4]);
        // Empty: wlc on an idle list -> 0. Set [0].
        assert_eq!(step(&mut m, &[(0, 0), (0, 0), (0, 0)]), Some(0));
        // 0 has 2 > 1 while 1 has 0 * 2 < 1: overloaded. wlc: 0 at 512/1, 1 at 0/1 (2 at
        // 0/4 does not beat an equal 0) -> 1 joins at the head. Set [1, 0].
        assert_eq!(step(&mut m, &[(2, 0), (0, 0), (0, 0)]), Some(1));
        // Least of the set: 1 at 256/1 against 0 at 512/1 -> 1, which is not overloaded.
        assert_eq!(step(&mut m, &[(2, 0), (1, 0), (0, 0)]), Some(1));
        // 1 (512/1) ties 0 (512/1) and comes first, but 2 > 1 while 2 is idle: overloaded.
        // wlc -> 2 (0/4) joins. Set [2, 1, 0].
        assert_eq!(step(&mut m, &[(2, 0), (2, 0), (0, 0)]), Some(2));
        // Least of the set: 2 at 256/4 -> 2.
        assert_eq!(step(&mut m, &[(2, 0), (2, 0), (1, 0)]), Some(2));
        assert_eq!(m.sets.values().next().unwrap(), &vec![2, 1, 0]);
    }
}
