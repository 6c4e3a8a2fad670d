//! LEB128 variable-length integers, with zigzag for signed differences: records kept per
//! connection (a closed leg waiting for its join, `flows::packed`; the fairness stage's
//! record of every connection, `fairness::table`) hold mostly small numbers (a time a few
//! milliseconds after the first packet, a count, a server index), so one to four bytes hold
//! what a `u64` or an `i64` spends eight on.

/// Appends `v`, seven bits a byte, low bits first.
pub fn put(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Reads the number at `*at` and moves `*at` past it.
pub fn get(bytes: &[u8], at: &mut usize) -> u64 {
    let mut v = 0u64;
    let mut shift = 0;
    loop {
        let b = bytes[*at];
        *at += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            return v;
        }
        shift += 7;
    }
}

/// Appends the difference `v - base`, exact for any two `i64` (it wraps, and so does [`get_diff`]).
pub fn put_diff(out: &mut Vec<u8>, v: i64, base: i64) {
    let d = v.wrapping_sub(base);
    put(out, ((d << 1) ^ (d >> 63)) as u64);
}

/// Reads a difference written by [`put_diff`] and adds `base` back.
pub fn get_diff(bytes: &[u8], at: &mut usize, base: i64) -> i64 {
    let z = get(bytes, at);
    let d = ((z >> 1) as i64) ^ -((z & 1) as i64);
    base.wrapping_add(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_sizes() {
        let values = [0u64, 1, 127, 128, 300, 1 << 35, u64::MAX];
        let mut out = Vec::new();
        for v in values {
            put(&mut out, v);
        }
        // 1 + 1 + 1 + 2 + 2 + 6 + 10 bytes: seven bits a byte.
        assert_eq!(out.len(), 23);
        assert_eq!(&out[3..5], &[0x80, 0x01]);
        let mut at = 0;
        for v in values {
            assert_eq!(get(&out, &mut at), v);
        }
        assert_eq!(at, out.len());
    }

    #[test]
    fn differences_round_trip_at_the_extremes() {
        let pairs = [
            (0i64, 0i64),
            (5, 7),
            (7, 5),
            (i64::MAX, i64::MIN),
            (i64::MIN, i64::MAX),
            (1_700_000_000_123_456_789, 1_700_000_000_000_000_000),
        ];
        let mut out = Vec::new();
        for (v, base) in pairs {
            put_diff(&mut out, v, base);
        }
        // Zigzag: -2 codes as 3, +2 as 4, each in one byte.
        assert_eq!(&out[1..3], &[3, 4]);
        let mut at = 0;
        for (v, base) in pairs {
            assert_eq!(get_diff(&out, &mut at, base), v);
        }
    }
}
