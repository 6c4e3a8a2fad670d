//! Maglev hashing, ip_vs_mh.c.
//!
//! Each destination gets an offset and a skip from `hsiphash` of its address and port under
//! two fixed keys; the 4093-entry table is filled by walking the list and letting each
//! destination claim `turns` free slots along its own permutation (turns = weight / gcd,
//! shifted right so the largest fits in 6 bits). A client is looked up by the hash of its
//! address (plus port with the mh-port flag). On 64-bit kernels `hsiphash` is SipHash-1-3
//! truncated to 32 bits; the message is the 32-bit key in the CPU's byte order, little
//! endian on the architectures LVS directors run on.

use super::hash::fold;
use super::{Ctx, Model};
use siphasher::sip::SipHasher13;
use std::hash::Hasher;
use std::net::IpAddr;

/// `primes[CONFIG_IP_VS_MH_TAB_INDEX - 8]` with the default index 12.
pub const MH_TAB_SIZE: usize = 4093;
/// `IP_VS_MH_TAB_BITS` with the default index 12.
const MH_TAB_BITS: u32 = 6;
/// `generate_hash_secret()`.
const HASH1: (u64, u64) = (2_654_435_761, 2_654_435_761);
const HASH2: (u64, u64) = (2_654_446_892, 2_654_446_892);

/// The kernel's `hsiphash()` on a 64-bit build.
pub fn hsiphash(data: &[u8], key: (u64, u64)) -> u32 {
    let mut h = SipHasher13::new_with_keys(key.0, key.1);
    h.write(data);
    h.finish() as u32
}

/// `ip_vs_mh_hashkey()`.
fn hashkey(addr: IpAddr, port: u16, key: (u64, u64), offset: u32) -> u32 {
    let v = offset
        .wrapping_add(u32::from(port))
        .wrapping_add(fold(addr));
    hsiphash(&v.to_le_bytes(), key)
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// `fls()`: 1-based index of the highest set bit, 0 for 0.
fn fls(x: u32) -> u32 {
    32 - x.leading_zeros()
}

#[derive(Debug, Clone)]
pub struct Mh {
    weights: Vec<u32>,
    table: Vec<Option<usize>>,
    port: bool,
    fallback: bool,
}

impl Mh {
    /// `dests` in list order: (address, port, weight).
    pub fn new(dests: &[(IpAddr, u16, u32)], port: bool, fallback: bool) -> Mh {
        Mh {
            weights: dests.iter().map(|d| d.2).collect(),
            table: populate(dests),
            port,
            fallback,
        }
    }

    pub fn table(&self) -> &[Option<usize>] {
        &self.table
    }

    fn usable(&self, i: usize) -> bool {
        self.weights[i] > 0
    }
}

/// `ip_vs_mh_permutate()` then `ip_vs_mh_populate()`.
fn populate(dests: &[(IpAddr, u16, u32)]) -> Vec<Option<usize>> {
    let mut table = vec![None; MH_TAB_SIZE];
    let g = dests
        .iter()
        .map(|d| d.2)
        .filter(|&w| w > 0)
        .fold(0, |g, w| if g > 0 { gcd(w, g) } else { w });
    if g < 1 {
        return table;
    }
    let mw = dests.iter().map(|d| d.2).max().unwrap_or(0) / g;
    let rshift = fls(mw).saturating_sub(MH_TAB_BITS);
    let size = MH_TAB_SIZE as u32;
    let mut setup: Vec<(u32, u32, u32)> = dests
        .iter()
        .map(|&(addr, port, w)| {
            let offset = hashkey(addr, port, HASH1, 0) % size;
            let skip = hashkey(addr, port, HASH2, 0) % (size - 1) + 1;
            let turns = match (w / g) >> rshift {
                0 => u32::from(w != 0),
                t => t,
            };
            (offset, skip, turns)
        })
        .collect();
    let mut taken = vec![false; MH_TAB_SIZE];
    let (mut n, mut dt_count) = (0usize, 0u32);
    while n < MH_TAB_SIZE {
        let mut d = 0;
        while d < setup.len() {
            let (_, skip, turns) = setup[d];
            if turns < 1 {
                d += 1;
                continue;
            }
            let mut c = setup[d].0;
            while taken[c as usize] {
                setup[d].0 = (setup[d].0 + skip) % size;
                c = setup[d].0;
            }
            taken[c as usize] = true;
            table[c as usize] = Some(d);
            n += 1;
            if n == MH_TAB_SIZE {
                return table;
            }
            dt_count += 1;
            if dt_count >= turns {
                dt_count = 0;
                d += 1;
            }
        }
    }
    table
}

impl Model for Mh {
    fn schedule(&mut self, ctx: &Ctx) -> Option<usize> {
        let port = if self.port { ctx.client.port() } else { 0 };
        let addr = ctx.client.ip();
        let size = MH_TAB_SIZE as u32;
        let ihash = hashkey(addr, port, HASH1, 0) % size;
        let dest = self.table[ihash as usize]?;
        if self.usable(dest) {
            return Some(dest);
        }
        if !self.fallback {
            return None;
        }
        // `ip_vs_mh_get_fallback()`.
        for offset in 0..size {
            let roffset = (offset + ihash) % size;
            let hash = hashkey(addr, port, HASH1, roffset) % size;
            let dest = self.table[hash as usize]?;
            if self.usable(dest) {
                return Some(dest);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fairness::sched::Load;

    /// `test_vectors_hsiphash` for BITS_PER_LONG == 64 in the kernel's lib/test_siphash.c:
    /// vector n hashes the bytes 0..n-1 under the key 00 01 .. 0f.
    #[test]
    fn hsiphash_matches_the_kernel_self_test_vectors() {
        let key = (0x0706_0504_0302_0100, 0x0f0e_0d0c_0b0a_0908);
        let vectors: [u32; 9] = [
            0x050fc4dc, 0x7d57ca93, 0x4dc7d44d, 0xe7ddf7fb, 0x88d38328, 0x49533b67, 0xc59f22a7,
            0x9bb11140, 0x8d299a8e,
        ];
        let input: Vec<u8> = (0..9).collect();
        for (n, want) in vectors.iter().enumerate() {
            assert_eq!(hsiphash(&input[..n], key), *want, "length {n}");
        }
    }

    fn dests(weights: &[u32]) -> Vec<(IpAddr, u16, u32)> {
        weights
            .iter()
            .enumerate()
            .map(|(i, &w)| (format!("10.0.0.{}", 11 + i).parse().unwrap(), 80, w))
            .collect()
    }

    fn owned(table: &[Option<usize>], d: usize) -> usize {
        table.iter().filter(|&&x| x == Some(d)).count()
    }

    #[test]
    fn table_fills_every_slot_in_proportion_to_turns() {
        // Equal weights: one slot each per round, 4093 = 2 * 2046 + 1, the first gets the odd one.
        let m = Mh::new(&dests(&[1, 1]), false, false);
        assert_eq!((owned(m.table(), 0), owned(m.table(), 1)), (2047, 2046));
        // Weights 2:1 -> turns 2 and 1: 4093 = 3 * 1364 + 1.
        let m = Mh::new(&dests(&[2, 1]), false, false);
        assert_eq!((owned(m.table(), 0), owned(m.table(), 1)), (2729, 1364));
        // Weight 0 takes no slot; weights 4:2 reduce by their gcd to 2:1.
        let m = Mh::new(&dests(&[4, 0, 2]), false, false);
        assert_eq!(owned(m.table(), 1), 0);
        assert_eq!((owned(m.table(), 0), owned(m.table(), 2)), (2729, 1364));
    }

    #[test]
    fn large_weights_are_shifted_to_six_bits() {
        // 200 / 1 needs 8 bits: rshift 2, turns 50 and 0 -> 1 (weight is not zero).
        let m = Mh::new(&dests(&[200, 1]), false, false);
        let a = owned(m.table(), 0);
        assert_eq!(a + owned(m.table(), 1), MH_TAB_SIZE);
        // 4093 = 51 * 80 + 13: 80 rounds of 50 + 1, then 13 more for the first.
        assert_eq!(a, 50 * 80 + 13);
    }

    #[test]
    fn lookup_uses_the_client_address_and_never_a_quiesced_server() {
        let loads = [Load::default(); 2];
        let ctx = Ctx {
            now_ns: 0,
            client: "198.51.100.7:5000".parse().unwrap(),
            vip: "192.0.2.10:80".parse().unwrap(),
            loads: &loads,
        };
        let mut m = Mh::new(&dests(&[1, 1]), false, false);
        let bucket = hashkey("198.51.100.7".parse().unwrap(), 0, HASH1, 0) as usize % MH_TAB_SIZE;
        assert_eq!(m.schedule(&ctx), m.table()[bucket]);
        let mut m = Mh::new(&dests(&[1, 0]), false, true);
        assert_eq!(m.schedule(&ctx), Some(0));
    }
}
