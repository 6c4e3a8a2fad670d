//! The joining side's waiting connections by key, in few bytes a connection and few cache
//! lines a look-up.
//!
//! A table of whole keys and their legs had ~169-byte buckets (a 68-byte `ConnKey` and up to
//! three legs inline), every one of them paid for at the peak and most probes a cache miss at
//! 200 000 connections a second. Here the table holds a compact key (an IPv4 tuple as a
//! [`V4Key`], as the trackers keep it; any other tuple whole, in a table of its own) and the
//! index of the connection's entry in a slab; entries are reused through a free list, and what
//! refers to an entry from elsewhere (the due queue) holds its index, not its key.

use super::Waiting;
use crate::flows::legs::V4Key;
use crate::flows::ConnKey;
use rustc_hash::FxHashMap as HashMap;
use std::collections::hash_map::Entry;
use std::hash::Hash;

/// Where a key's entry is: in the slab of IPv4 tuples, or, with [`OTHER`] set, of the others.
/// Stays valid until the entry is removed; after that it may name another key's entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct At(u32);

const OTHER: u32 = 1 << 31;

/// The waiting connections by key.
#[derive(Default)]
pub(crate) struct Keys {
    v4: Slab<V4Key>,
    other: Slab<ConnKey>,
}

impl Keys {
    pub(crate) fn len(&self) -> usize {
        self.v4.index.len() + self.other.index.len()
    }

    /// The entry of `k`, made by `new` if there is none; one look-up either way.
    pub(super) fn get_or_insert(
        &mut self,
        k: ConnKey,
        new: impl FnOnce() -> Waiting,
    ) -> (At, &mut Waiting) {
        match V4Key::of(&k) {
            Some(v4) => {
                let (i, w) = self.v4.get_or_insert(v4, new);
                (At(i), w)
            }
            None => {
                let (i, w) = self.other.get_or_insert(k, new);
                (At(i | OTHER), w)
            }
        }
    }

    /// The key and entry at `at`, if one is there.
    pub(super) fn get(&self, at: At) -> Option<(ConnKey, &Waiting)> {
        if at.0 & OTHER == 0 {
            self.v4.get(at.0).map(|(k, w)| (k.key(), w))
        } else {
            self.other.get(at.0 & !OTHER).map(|(k, w)| (*k, w))
        }
    }

    pub(super) fn remove(&mut self, at: At) -> Option<(ConnKey, Waiting)> {
        if at.0 & OTHER == 0 {
            self.v4.remove(at.0).map(|(k, w)| (k.key(), w))
        } else {
            self.other.remove(at.0 & !OTHER)
        }
    }

    /// Every key and entry, none left.
    pub(super) fn take(&mut self) -> impl Iterator<Item = (ConnKey, Waiting)> {
        let v4 = self.v4.take().map(|(k, w)| (k.key(), w));
        v4.chain(self.other.take())
    }

    /// Gives back the index's room when it holds a quarter of what it could, and an empty
    /// slab's: a capture that catches up empties them after a peak.
    pub(super) fn shrink(&mut self) {
        self.v4.shrink();
        self.other.shrink();
    }
}

/// Keys of one kind, each to its entry.
struct Slab<K> {
    index: HashMap<K, u32>,
    entries: Vec<Option<(K, Waiting)>>,
    /// Entries free for reuse, the last freed first: the likeliest to be cached still.
    free: Vec<u32>,
}

impl<K> Default for Slab<K> {
    fn default() -> Self {
        Slab {
            index: HashMap::default(),
            entries: Vec::new(),
            free: Vec::new(),
        }
    }
}

impl<K: Copy + Hash + Eq> Slab<K> {
    fn get_or_insert(&mut self, k: K, new: impl FnOnce() -> Waiting) -> (u32, &mut Waiting) {
        let i = match self.index.entry(k) {
            Entry::Occupied(e) => *e.get(),
            Entry::Vacant(e) => {
                let i = match self.free.pop() {
                    Some(i) => {
                        self.entries[i as usize] = Some((k, new()));
                        i
                    }
                    None => {
                        let i = u32::try_from(self.entries.len())
                            .ok()
                            .filter(|i| i & OTHER == 0)
                            .expect("fewer than 2^31 connections waiting");
                        self.entries.push(Some((k, new())));
                        i
                    }
                };
                *e.insert(i)
            }
        };
        let (_, w) = self.entries[i as usize].as_mut().expect("an indexed entry");
        (i, w)
    }

    fn get(&self, i: u32) -> Option<&(K, Waiting)> {
        self.entries.get(i as usize)?.as_ref()
    }

    fn remove(&mut self, i: u32) -> Option<(K, Waiting)> {
        let (k, w) = self.entries.get_mut(i as usize)?.take()?;
        self.index.remove(&k);
        if self.index.is_empty() {
            self.entries.clear();
            self.free.clear();
        } else {
            self.free.push(i);
        }
        Some((k, w))
    }

    fn take(&mut self) -> impl Iterator<Item = (K, Waiting)> {
        self.index.clear();
        self.free.clear();
        std::mem::take(&mut self.entries).into_iter().flatten()
    }

    fn shrink(&mut self) {
        if self.index.capacity() > 4096 && self.index.len() < self.index.capacity() / 4 {
            self.index.shrink_to_fit();
        }
        // Entries in use anywhere pin the slab; only an empty one can give its room back.
        if self.entries.is_empty() && self.entries.capacity() > 4096 {
            self.entries = Vec::new();
            self.free = Vec::new();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A TCP key.
    fn key(client: &str, vip: &str) -> ConnKey {
        let [client, vip] = [client, vip].map(|a| a.parse().expect("an address"));
        let proto = crate::topology::Proto::TCP;
        ConnKey { proto, client, vip }
    }

    #[test]
    fn keys_of_either_family_find_their_entries_and_entries_are_reused() {
        let keys = [
            key("10.0.0.1:1000", "10.0.0.9:80"),
            key("[::1]:1000", "[::2]:80"),
            key("10.0.0.2:1000", "10.0.0.9:80"),
            key("[::1]:1001", "[::2]:80"),
        ];
        let mut t = Keys::default();
        let at: Vec<At> = keys
            .iter()
            .enumerate()
            .map(|(i, k)| {
                let (at, w) = t.get_or_insert(*k, || Waiting::new(0));
                w.open = i as u32;
                at
            })
            .collect();
        assert_eq!(t.len(), keys.len());
        for (i, k) in keys.iter().enumerate() {
            let (again, w) = t.get_or_insert(*k, || Waiting::new(99));
            assert_eq!((again, w.open), (at[i], i as u32));
            assert_eq!(t.get(at[i]).map(|(k, w)| (k, w.open)), Some((*k, i as u32)));
        }
        // A removed key's place goes to the next new key of its family.
        assert_eq!(t.remove(at[0]).map(|(k, _)| k), Some(keys[0]));
        assert!(t.get(at[0]).is_none() && t.remove(at[0]).is_none());
        let (reused, _) = t.get_or_insert(key("10.0.0.3:1", "10.0.0.9:80"), || Waiting::new(7));
        assert_eq!(reused, at[0]);
        assert_eq!(t.remove(at[1]).map(|(k, _)| k), Some(keys[1]));
        let mut rest: Vec<ConnKey> = t.take().map(|(k, _)| k).collect();
        rest.sort();
        let mut want = vec![key("10.0.0.3:1", "10.0.0.9:80"), keys[2], keys[3]];
        want.sort();
        assert_eq!(rest, want);
        assert_eq!(t.len(), 0);
    }
}
