//! A set of addresses asked about for every packet (is this a VIP, a director's MAC?), which
//! nearly always has one to a few members: compared one by one, those cost less than hashing
//! the address once (callgrind: two lookups of a VIP were a tenth of tracking a packet).

use rustc_hash::FxHashSet as HashSet;
use std::hash::Hash;

/// Up to this many members are compared one by one; more are hashed.
const LISTED: usize = 8;

#[derive(Debug, Clone)]
pub enum Members<T> {
    Listed(Vec<T>),
    Hashed(HashSet<T>),
}

impl<T> Default for Members<T> {
    fn default() -> Self {
        Members::Listed(Vec::new())
    }
}

impl<T: Hash + Eq> Members<T> {
    /// Inlined: asked twice or three times a packet, where the call was a third of the cost.
    #[inline]
    pub fn contains(&self, x: &T) -> bool {
        match self {
            Members::Listed(v) => v.contains(x),
            Members::Hashed(h) => h.contains(x),
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Members::Listed(v) => v.len(),
            Members::Hashed(h) => h.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<T: Hash + Eq> FromIterator<T> for Members<T> {
    fn from_iter<I: IntoIterator<Item = T>>(items: I) -> Self {
        let set: HashSet<T> = items.into_iter().collect();
        if set.len() > LISTED {
            Members::Hashed(set)
        } else {
            Members::Listed(set.into_iter().collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn few_or_many_members_are_found_and_others_not() {
        for n in [0u32, 1, 3, LISTED as u32, LISTED as u32 + 1, 100] {
            // Duplicates count once.
            let m: Members<u32> = (0..n).chain(0..n).map(|i| i * 2).collect();
            assert_eq!(m.len(), n as usize);
            assert_eq!(matches!(m, Members::Hashed(_)), n as usize > LISTED);
            for i in 0..2 * n + 2 {
                assert_eq!(m.contains(&i), i % 2 == 0 && i < 2 * n, "{i} of {n}");
            }
        }
    }
}
