//! What identifies a packet across captures: the fields no router or tunnel changes, hashed
//! two ways, FNV for the clock's sample (whose choice of packets the reported offsets follow)
//! and folded multiplies for joining legs.

use crate::topology::view::IpView;

/// Fields of a packet that no router or tunnel changes: what identifies it across captures.
#[derive(Debug, Clone, Copy)]
struct Identity {
    id: u32,
    protocol: u8,
    /// Source port in the high half, destination port in the low.
    ports: u32,
    /// TCP only: sequence number in the high half, acknowledgement number in the low; flags.
    tcp: Option<(u64, u8)>,
    payload_len: u32,
    payload_hash: u64,
}

impl Identity {
    fn of(v: &IpView) -> Identity {
        let (sp, dp) = v.ports();
        let (payload_len, payload_hash) = v.payload();
        Identity {
            id: v.ip.id,
            protocol: v.ip.protocol,
            ports: u32::from(sp) << 16 | u32::from(dp),
            tcp: v
                .tcp()
                .map(|t| (u64::from(t.seq) << 32 | u64::from(t.ack), t.flags)),
            payload_len,
            payload_hash,
        }
    }

    /// FNV-1a over the fields, each as the eight bytes of a `u64`, one byte at a time.
    fn fnv(&self) -> u64 {
        let mut h = Fnv::default();
        h.narrow(u64::from(self.id), 4);
        h.narrow(u64::from(self.protocol), 1);
        h.narrow(u64::from(self.ports), 4);
        if let Some((seq_ack, flags)) = self.tcp {
            h.narrow(seq_ack, 8);
            h.narrow(u64::from(flags), 1);
        }
        h.narrow(u64::from(self.payload_len), 4);
        h.narrow(self.payload_hash, 8);
        h.0
    }

    /// The fields as four words, each pair mixed by a folded multiply (two independent ones,
    /// then one more), where FNV takes a multiply per byte in one chain;
    /// [`JOIN_FINGERPRINT_BITS`] of the result.
    fn folded(&self) -> u64 {
        let (seq_ack, flags) = self.tcp.unwrap_or((0, 0));
        let header = u64::from(self.id) | u64::from(self.ports) << 32;
        let rest = u64::from(self.payload_len)
            | u64::from(flags) << 32
            | u64::from(self.protocol) << 40
            | u64::from(self.tcp.is_some()) << 48;
        let h = fold(
            header ^ 0x243f_6a88_85a3_08d3,
            seq_ack ^ 0x1319_8a2e_0370_7344,
        ) ^ fold(
            rest ^ 0xa409_3822_299f_31d0,
            self.payload_hash ^ 0x082e_fa98_ec4e_6c89,
        );
        fold(h ^ 0x4528_21e6_38d0_1377, 0xbe54_66cf_34e9_0c6c) >> (64 - JOIN_FINGERPRINT_BITS)
    }
}

/// The identity of a packet across captures, as the clock's sample chooses packets by it
/// ([`crate::flows::clock::ClockSampler`]): FNV-1a over the fields one byte at a time. Which packets
/// are sampled, and so the offsets reported, follow these exact values; legs are joined by the
/// cheaper [`join_fingerprint`].
pub fn fingerprint(v: &IpView) -> u64 {
    Identity::of(v).fnv()
}

struct Fnv(u64);

const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV_PRIME to the powers 0 to 8: what hashing that many zero bytes multiplies by.
const FNV_PRIME_POWERS: [u64; 9] = {
    let mut p = [1u64; 9];
    let mut i = 1;
    while i < 9 {
        p[i] = p[i - 1].wrapping_mul(FNV_PRIME);
        i += 1;
    }
    p
};

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}
impl Fnv {
    /// The eight little-endian bytes of `x`, whose bytes past the first `n` are zero: a zero
    /// byte leaves the xor as it is, so those are one multiply by a power of the prime, not a
    /// multiply each (the fields are mostly narrower than their words).
    #[inline(always)]
    fn narrow(&mut self, x: u64, n: usize) {
        debug_assert!(n == 8 || x >> (8 * n) == 0);
        for b in &x.to_le_bytes()[..n] {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(FNV_PRIME);
        }
        self.0 = self.0.wrapping_mul(FNV_PRIME_POWERS[8 - n]);
    }
}

/// Bits of a [`join_fingerprint`]: 38 once a [`crate::flows::Fingerprint`] takes the low two for
/// the form, five bytes a packet in a packed leg, where a leg keeps a dozen (eight bytes each
/// were a third of a closed connection's memory). Only the legs of one tuple are compared, a
/// few dozen values: two different packets share one by chance once in ~10^11 pairs.
pub(crate) const JOIN_FINGERPRINT_BITS: u32 = 40;

/// The identity of a packet across captures, by which the legs of a connection are joined
/// ([`crate::flows::Fingerprint`]): the fields [`fingerprint`] hashes, mixed a word at a time. Fixed
/// constants: the same in every run and at every vantage point.
/// Inlined into recording a packet, which has just matched on the same transport.
#[inline]
pub fn join_fingerprint(v: &IpView) -> u64 {
    Identity::of(v).folded()
}

/// The two halves of a full 128-bit product, folded together: every input bit reaches most
/// output bits.
pub(super) fn fold(a: u64, b: u64) -> u64 {
    let p = u128::from(a) * u128::from(b);
    (p as u64) ^ (p >> 64) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet() -> Identity {
        Identity {
            id: 0x1234,
            protocol: 6,
            ports: 40000 << 16 | 80,
            tcp: Some((1 << 32 | 2, 0x18)),
            payload_len: 100,
            payload_hash: 0xdead_beef,
        }
    }

    /// FNV-1a as it was written first, a multiply for each of the eight bytes of each word.
    fn fnv_bytewise(words: &[u64]) -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for w in words {
            for b in w.to_le_bytes() {
                h = (h ^ u64::from(b)).wrapping_mul(FNV_PRIME);
            }
        }
        h
    }

    #[test]
    fn the_clock_fingerprint_is_fnv_over_whole_words() {
        // The clock's sample follows these exact values: skipping the zero bytes must not
        // change one.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for i in 0..1000 {
            let r = next();
            let p = Identity {
                id: r as u32,
                protocol: (r >> 32) as u8,
                ports: (r >> 16) as u32,
                tcp: (i % 3 != 0).then(|| (next(), next() as u8)),
                payload_len: next() as u32 >> (i % 32),
                payload_hash: next(),
            };
            let mut words = vec![u64::from(p.id), u64::from(p.protocol), u64::from(p.ports)];
            if let Some((seq_ack, flags)) = p.tcp {
                words.extend([seq_ack, u64::from(flags)]);
            }
            words.extend([u64::from(p.payload_len), p.payload_hash]);
            assert_eq!(p.fnv(), fnv_bytewise(&words), "{p:?}");
        }
    }

    #[test]
    fn join_fingerprints_are_fixed_and_fit_their_bits() {
        // The same packet gives the same value in every run (constants, no random state).
        assert_eq!(packet().folded(), packet().folded());
        assert_eq!(packet().folded(), 0x78_8c08_0c82);
        assert_eq!(packet().folded() >> JOIN_FINGERPRINT_BITS, 0);
    }

    #[test]
    fn every_field_changes_the_join_fingerprint() {
        let p = packet();
        let changed = [
            Identity { id: 0x1235, ..p },
            Identity { protocol: 17, ..p },
            Identity {
                ports: 80 << 16 | 40000,
                ..p
            },
            Identity {
                tcp: Some((2 << 32 | 1, 0x18)),
                ..p
            },
            Identity {
                tcp: Some((1 << 32 | 2, 0x10)),
                ..p
            },
            Identity { tcp: None, ..p },
            Identity {
                tcp: Some((0, 0)),
                ..p
            },
            Identity {
                payload_len: 101,
                ..p
            },
            Identity {
                payload_hash: 0xdead_beee,
                ..p
            },
            // A v6 flow label past 16 bits does not run into the ports.
            Identity { id: 0x1_1234, ..p },
        ];
        let mut values: Vec<u64> = changed.iter().map(Identity::folded).collect();
        values.push(p.folded());
        values.sort_unstable();
        values.dedup();
        assert_eq!(values.len(), changed.len() + 1);
    }
}
