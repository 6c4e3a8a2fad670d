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
#[inline]
pub fn get(bytes: &[u8], at: &mut usize) -> u64 {
    // Most numbers packed are below 128: one byte, no loop (unpacking legs for the join was
    // 4 % of the instructions of `verify`, most of it here).
    let b = bytes[*at];
    if b < 0x80 {
        *at += 1;
        return u64::from(b);
    }
    get_long(bytes, at)
}

/// A number of two bytes or more: up to eight bytes (56 bits: a time of days in nanoseconds)
/// are read as one word and their seven-bit groups gathered without a loop; longer ones, and
/// those too near the end of `bytes` for a whole word, a byte at a time.
fn get_long(bytes: &[u8], at: &mut usize) -> u64 {
    if let Some(word) = bytes.get(*at..*at + 8) {
        let w = u64::from_le_bytes(word.try_into().expect("8 bytes"));
        let ends = !w & 0x8080_8080_8080_8080;
        if ends != 0 {
            let len = ends.trailing_zeros() / 8 + 1;
            *at += len as usize;
            let w = if len == 8 {
                w
            } else {
                w & ((1 << (8 * len)) - 1)
            };
            // Seven bits a byte to fourteen a pair, to twenty-eight a quad, to fifty-six.
            let x = w & 0x7f7f_7f7f_7f7f_7f7f;
            let x = (x & 0x007f_007f_007f_007f) | ((x & 0x7f00_7f00_7f00_7f00) >> 1);
            let x = (x & 0x0000_3fff_0000_3fff) | ((x & 0x3fff_0000_3fff_0000) >> 2);
            return (x & 0x0000_0000_0fff_ffff) | ((x & 0x0fff_ffff_0000_0000) >> 4);
        }
    }
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
#[inline]
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
    fn every_length_reads_back_inside_and_at_the_end_of_a_buffer() {
        // Values of each length from one to ten bytes, each group's bits all set, only its top
        // bit, and mixed, read by the word path (inside) and the byte path (at the end).
        let mut values = vec![0u64];
        for bits in (7..64).step_by(7) {
            values.push((1u64 << bits) - 1);
            values.push(1u64 << (bits - 1));
        }
        // Mixed bits in every group, at every length.
        values.extend((0..64).map(|s| 0x0123_4567_89ab_cdef_u64.rotate_left(s) >> s));
        values.push(u64::MAX);
        for v in values {
            let mut out = Vec::new();
            put(&mut out, v);
            let len = out.len();
            out.extend_from_slice(&[0xff; 9]);
            let mut at = 0;
            assert_eq!(get(&out, &mut at), v, "{v:#x} inside");
            assert_eq!(at, len);
            out.truncate(len);
            at = 0;
            assert_eq!(get(&out, &mut at), v, "{v:#x} at the end");
            assert_eq!(at, len);
        }
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
