//! Source and destination hashing, ip_vs_sh.c and ip_vs_dh.c (Linux 4.x and later).
//!
//! Both fill a 256-bucket table by walking the destination list cyclically from the head.
//! sh gives each destination `weight` consecutive buckets (at least one, since the walk moves
//! on once `++d_count >= weight`); dh gives one bucket each. The bucket is
//! `hash_32(key, 8)` with `hash_32(v, b) = (v * 0x61C88647) >> (32 - b)` (include/linux/hash.h);
//! for sh the key is `ntohs(port) + ntohl(addr_fold)` with port 0 unless the service has the
//! sh-port flag, for dh it is the destination address (the VIP in tunnel mode). IPv6
//! addresses are folded by XOR of their four 32-bit words.

use super::{Ctx, Model};
use std::net::IpAddr;

const TAB_BITS: u32 = 8;
const TAB_SIZE: usize = 1 << TAB_BITS;

/// `hash_32()` from include/linux/hash.h (the generic version every mainstream arch uses).
pub fn hash_32(val: u32, bits: u32) -> u32 {
    val.wrapping_mul(0x61C8_8647) >> (32 - bits)
}

/// `addr_fold`: the IPv4 address, or the XOR of an IPv6 address's four 32-bit words.
pub(super) fn fold(addr: IpAddr) -> u32 {
    match addr {
        IpAddr::V4(a) => u32::from(a),
        IpAddr::V6(a) => a
            .octets()
            .chunks_exact(4)
            .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
            .fold(0, |x, w| x ^ w),
    }
}

/// `ip_vs_sh_hashkey()`: the bucket for a client address (and port, 0 when not hashed).
pub fn sh_bucket(addr: IpAddr, port: u16, offset: u32) -> usize {
    let key = u32::from(port).wrapping_add(fold(addr));
    (offset.wrapping_add(hash_32(key, TAB_BITS)) as usize) & (TAB_SIZE - 1)
}

/// `ip_vs_dh_hashkey()`.
pub fn dh_bucket(addr: IpAddr) -> usize {
    hash_32(fold(addr), TAB_BITS) as usize
}

/// Source hashing, with the sh-port and sh-fallback flags.
#[derive(Debug, Clone)]
pub struct Sh {
    weights: Vec<u32>,
    table: Vec<Option<usize>>,
    port: bool,
    fallback: bool,
}

impl Sh {
    pub fn new(weights: &[u32], port: bool, fallback: bool) -> Sh {
        Sh {
            weights: weights.to_vec(),
            table: sh_table(weights),
            port,
            fallback,
        }
    }

    /// The bucket table, for reports and tests.
    pub fn table(&self) -> &[Option<usize>] {
        &self.table
    }

    fn usable(&self, i: usize) -> bool {
        self.weights[i] > 0
    }
}

/// `ip_vs_sh_reassign()`.
fn sh_table(weights: &[u32]) -> Vec<Option<usize>> {
    if weights.is_empty() {
        return vec![None; TAB_SIZE];
    }
    let mut table = Vec::with_capacity(TAB_SIZE);
    let (mut p, mut d_count) = (0usize, 0u32);
    for _ in 0..TAB_SIZE {
        table.push(Some(p));
        d_count += 1;
        if d_count >= weights[p] {
            p = (p + 1) % weights.len();
            d_count = 0;
        }
    }
    table
}

impl Model for Sh {
    fn schedule(&mut self, ctx: &Ctx) -> Option<usize> {
        let port = if self.port { ctx.client.port() } else { 0 };
        let addr = ctx.client.ip();
        let ihash = sh_bucket(addr, port, 0);
        let dest = self.table[ihash]?;
        if self.usable(dest) {
            return Some(dest);
        }
        if !self.fallback {
            return None;
        }
        // `ip_vs_sh_get_fallback()`: walk the table from the original hash.
        for offset in 0..TAB_SIZE as u32 {
            let roffset = (offset + ihash as u32) % TAB_SIZE as u32;
            let dest = self.table[sh_bucket(addr, port, roffset)]?;
            if self.usable(dest) {
                return Some(dest);
            }
        }
        None
    }
}

/// Destination hashing: in tunnel mode every connection to one VIP lands on one server.
#[derive(Debug, Clone)]
pub struct Dh {
    weights: Vec<u32>,
}

impl Dh {
    pub fn new(weights: &[u32]) -> Dh {
        Dh {
            weights: weights.to_vec(),
        }
    }
}

impl Model for Dh {
    fn schedule(&mut self, ctx: &Ctx) -> Option<usize> {
        if self.weights.is_empty() {
            return None;
        }
        // `ip_vs_dh_reassign()` puts list[i % n] in bucket i.
        let dest = dh_bucket(ctx.vip.ip()) % self.weights.len();
        (self.weights[dest] > 0).then_some(dest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fairness::sched::Load;
    use std::net::SocketAddr;

    // Expected buckets computed independently with Python from the formula in ip_vs_sh.c:
    // ((v * 0x61C88647) & 0xffffffff) >> 24.
    #[test]
    fn hash_32_matches_the_kernel_formula() {
        assert_eq!(sh_bucket("10.0.0.1".parse().unwrap(), 0, 0), 39);
        assert_eq!(sh_bucket("192.168.1.10".parse().unwrap(), 0, 0), 248);
        assert_eq!(sh_bucket("192.168.1.10".parse().unwrap(), 40000, 0), 156);
        assert_eq!(dh_bucket("203.0.113.7".parse().unwrap()), 124);
        // 2001:db8::1 folds to 0x20010db9.
        assert_eq!(sh_bucket("2001:db8::1".parse().unwrap(), 0, 0), 63);
    }

    #[test]
    fn table_gives_each_server_weight_consecutive_buckets() {
        let t = sh_table(&[2, 1]);
        assert_eq!(
            &t[..6],
            &[Some(0), Some(0), Some(1), Some(0), Some(0), Some(1)]
        );
        // Weight 0 still takes one bucket (then the scheduler refuses it).
        let t = sh_table(&[0, 3]);
        assert_eq!(&t[..5], &[Some(0), Some(1), Some(1), Some(1), Some(0)]);
        let share0 = sh_table(&[3, 1]).iter().filter(|d| **d == Some(0)).count();
        assert_eq!(share0, 192);
    }

    fn ctx<'a>(client: &str, loads: &'a [Load]) -> Ctx<'a> {
        Ctx {
            now_ns: 0,
            client: client.parse::<SocketAddr>().unwrap(),
            vip: "203.0.113.7:80".parse().unwrap(),
            loads,
        }
    }

    #[test]
    fn sh_picks_the_bucket_owner() {
        let loads = [Load::default(); 3];
        let mut m = Sh::new(&[1, 1, 1], false, false);
        // Bucket 39 of a 1,1,1 table is 39 % 3 = 0; bucket 248 is 248 % 3 = 2.
        assert_eq!(m.schedule(&ctx("10.0.0.1:5000", &loads)), Some(0));
        assert_eq!(m.schedule(&ctx("192.168.1.10:5000", &loads)), Some(2));
        // With sh-port the port changes the bucket: 156 % 3 = 0.
        let mut m = Sh::new(&[1, 1, 1], true, false);
        assert_eq!(m.schedule(&ctx("192.168.1.10:40000", &loads)), Some(0));
    }

    #[test]
    fn sh_refuses_a_quiesced_owner_unless_fallback() {
        let loads = [Load::default(); 3];
        let mut m = Sh::new(&[0, 1, 1], false, false);
        assert_eq!(m.schedule(&ctx("10.0.0.1:5000", &loads)), None);
        // Fallback walks from bucket (0 + 2 * 39) = 78; the 0,1,1 table gives 78 % 3 = 0
        // (quiesced), then bucket 79 -> 1.
        let mut m = Sh::new(&[0, 1, 1], false, true);
        assert_eq!(m.schedule(&ctx("10.0.0.1:5000", &loads)), Some(1));
    }

    #[test]
    fn dh_maps_the_vip_to_one_server() {
        let loads = [Load::default(); 3];
        // Bucket 124 -> list[124 % 3] = 1, whoever the client is.
        let mut m = Dh::new(&[1, 1, 1]);
        assert_eq!(m.schedule(&ctx("10.0.0.1:5000", &loads)), Some(1));
        assert_eq!(m.schedule(&ctx("10.9.9.9:1", &loads)), Some(1));
    }
}
