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

/// Writes `v` as [`put`] does, at `*at` in a buffer with room for its longest (ten bytes from
/// `*at`, whatever `v`), and moves `*at` past it: for records packed by index rather than
/// pushed a byte at a time. Most numbers are one byte; longer ones are written into the ten
/// bytes checked once, a byte at a time (spreading them into one word without a loop, as
/// [`get_long`] gathers, took more instructions for the two to four bytes most have).
#[inline(always)]
pub fn put_at(out: &mut [u8], at: &mut usize, mut v: u64) {
    if v < 0x80 {
        out[*at] = v as u8;
        *at += 1;
        return;
    }
    let room: &mut [u8; 10] = (&mut out[*at..*at + 10]).try_into().expect("ten bytes");
    let mut n = 0;
    while v >= 0x80 {
        room[n] = (v as u8) | 0x80;
        n += 1;
        v >>= 7;
    }
    room[n] = v as u8;
    *at += n + 1;
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
    put(out, zigzag(v.wrapping_sub(base)));
}

/// [`put_diff`] at `*at`, as [`put_at`] writes.
#[inline(always)]
pub fn put_diff_at(out: &mut [u8], at: &mut usize, v: i64, base: i64) {
    put_at(out, at, zigzag(v.wrapping_sub(base)));
}

fn zigzag(d: i64) -> u64 {
    ((d << 1) ^ (d >> 63)) as u64
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
    fn writing_by_index_gives_the_same_bytes() {
        let mut out = vec![0xaa; 64 * 2 * 10 + 10];
        let mut at = 0;
        let mut pushed = Vec::new();
        for s in 0..64 {
            let v = u64::MAX >> s;
            put(&mut pushed, v);
            put_at(&mut out, &mut at, v);
            put_diff(&mut pushed, -(v as i64), 3);
            put_diff_at(&mut out, &mut at, -(v as i64), 3);
        }
        assert_eq!(&out[..at], &pushed[..]);
        // Bits of every pattern, at every length: each group must land in its own byte.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for i in 0..10_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let v = x >> (i % 64);
            let (mut pushed, mut out, mut at) = (Vec::new(), [0xaa; 10], 0);
            put(&mut pushed, v);
            put_at(&mut out, &mut at, v);
            assert_eq!(&out[..at], &pushed[..], "{v:#x}");
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
