//! A connection's state history in the manner of Zeek's conn.log `history` field, and TCP
//! retransmission detection.
//!
//! Letters, upper case for the client (originator), lower case for the server side:
//! `S` SYN without ACK, `H` SYN-ACK, `A` pure ACK, `D` payload, `F` FIN, `R` RST, each recorded
//! the first time it happens in that direction; `T` retransmission and `W` zero window, recorded
//! at the 1st, 10th, 100th, ... occurrence, as Zeek does.

use crate::decode::packet::Tcp;
use smallvec::SmallVec;

/// Letters kept inline: each of the six once per direction, then `T` and `W` at powers of ten,
/// so more than this takes a hundred retransmissions or zero windows.
const INLINE_LETTERS: usize = 16;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    /// ASCII letters, inline: a heap block per connection for a few bytes cost more than the
    /// bytes (and a closed connection's state is packed from this, see [`super::packed`]).
    letters: SmallVec<[u8; INLINE_LETTERS]>,
    /// Bit per (letter, direction) already written.
    seen: u32,
    retrans: [u64; 2],
    zero_window: [u64; 2],
}

const S: u32 = 0;
const H: u32 = 1;
const A: u32 = 2;
const D: u32 = 3;
const F: u32 = 4;
const R: u32 = 5;
const LETTERS: [u8; 6] = *b"SHADFR";

impl History {
    fn once(&mut self, letter: u32, from_client: bool) {
        let bit = 1 << (letter * 2 + u32::from(!from_client));
        if self.seen & bit == 0 {
            self.seen |= bit;
            self.push(LETTERS[letter as usize], from_client);
        }
    }

    fn push(&mut self, c: u8, from_client: bool) {
        self.letters.push(if from_client {
            c
        } else {
            c.to_ascii_lowercase()
        });
    }

    /// Counts an event and writes its letter at the 1st, 10th, 100th... occurrence.
    fn repeated(&mut self, c: u8, from_client: bool, which: fn(&mut History) -> &mut [u64; 2]) {
        let n = &mut which(self)[usize::from(!from_client)];
        *n += 1;
        let n = *n;
        if is_power_of_ten(n) {
            self.push(c, from_client);
        }
    }

    /// Inlined into recording a packet, its only caller on the hot path.
    #[inline]
    pub fn tcp(&mut self, from_client: bool, t: &Tcp, retransmission: bool) {
        if t.has(Tcp::SYN) {
            self.once(if t.has(Tcp::ACK) { H } else { S }, from_client);
        }
        if t.has(Tcp::RST) {
            self.once(R, from_client);
        }
        if t.has(Tcp::FIN) {
            self.once(F, from_client);
        }
        if t.payload_len > 0 {
            self.once(D, from_client);
        } else if t.has(Tcp::ACK) && t.flags & (Tcp::SYN | Tcp::FIN | Tcp::RST) == 0 {
            self.once(A, from_client);
        }
        if retransmission {
            self.repeated(b'T', from_client, |h| &mut h.retrans);
        }
        if t.window == 0 && !t.has(Tcp::RST) {
            self.repeated(b'W', from_client, |h| &mut h.zero_window);
        }
    }

    pub fn datagram(&mut self, from_client: bool, payload_len: u32) {
        if payload_len > 0 {
            self.once(D, from_client);
        }
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.letters).expect("history letters are ASCII")
    }

    /// The state as plain numbers and letters, to be packed: (letters, seen bits, retransmissions
    /// and zero windows per direction).
    pub(crate) fn parts(&self) -> (&[u8], u32, [u64; 2], [u64; 2]) {
        (&self.letters, self.seen, self.retrans, self.zero_window)
    }

    /// The inverse of [`History::parts`].
    pub(crate) fn from_parts(
        letters: &[u8],
        seen: u32,
        retrans: [u64; 2],
        zero_window: [u64; 2],
    ) -> History {
        History {
            letters: SmallVec::from_slice(letters),
            seen,
            retrans,
            zero_window,
        }
    }
}

fn is_power_of_ten(mut n: u64) -> bool {
    while n >= 10 && n.is_multiple_of(10) {
        n /= 10;
    }
    n == 1
}

/// Highest sequence number sent so far in one direction, to recognise retransmissions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SeqTracker {
    max_end: Option<u32>,
}

impl SeqTracker {
    /// The end of the highest segment so far, to be packed.
    pub(crate) fn max_end(&self) -> Option<u32> {
        self.max_end
    }

    pub(crate) fn from_max_end(max_end: Option<u32>) -> SeqTracker {
        SeqTracker { max_end }
    }

    /// Records a segment; true when it only repeats sequence space already sent.
    pub fn retransmission(&mut self, t: &Tcp) -> bool {
        let len = t.payload_len + u32::from(t.has(Tcp::SYN)) + u32::from(t.has(Tcp::FIN));
        if len == 0 {
            return false;
        }
        let end = t.seq.wrapping_add(len);
        match self.max_end {
            Some(m) if (end.wrapping_sub(m) as i32) <= 0 => true,
            _ => {
                self.max_end = Some(end);
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(flags: u8, seq: u32, len: u32) -> Tcp {
        Tcp {
            src_port: 1,
            dst_port: 2,
            seq,
            ack: 0,
            flags,
            window: 100,
            mss: None,
            window_scale: None,
            sack_permitted: false,
            timestamp: None,
            payload_len: len,
            payload_hash: 0,
        }
    }

    #[test]
    fn a_normal_exchange_reads_like_zeek() {
        let mut h = History::default();
        let mut c = SeqTracker::default();
        let mut s = SeqTracker::default();
        let pkts = [
            (true, seg(Tcp::SYN, 100, 0)),
            (false, seg(Tcp::SYN | Tcp::ACK, 500, 0)),
            (true, seg(Tcp::ACK, 101, 0)),
            (true, seg(Tcp::ACK | Tcp::PSH, 101, 10)),
            (false, seg(Tcp::ACK, 501, 0)),
            (false, seg(Tcp::ACK | Tcp::PSH, 501, 20)),
            (true, seg(Tcp::FIN | Tcp::ACK, 111, 0)),
            (false, seg(Tcp::FIN | Tcp::ACK, 521, 0)),
            (true, seg(Tcp::ACK, 112, 0)),
        ];
        for (from_client, t) in &pkts {
            let tr = if *from_client { &mut c } else { &mut s };
            let r = tr.retransmission(t);
            assert!(!r);
            h.tcp(*from_client, t, r);
        }
        assert_eq!(h.as_str(), "ShADadFf");
    }

    #[test]
    fn repeated_syns_are_retransmissions_marked_at_powers_of_ten() {
        let mut h = History::default();
        let mut c = SeqTracker::default();
        let mut flagged = 0;
        for _ in 0..12 {
            let t = seg(Tcp::SYN, 7, 0);
            let r = c.retransmission(&t);
            flagged += u32::from(r);
            h.tcp(true, &t, r);
        }
        assert_eq!(flagged, 11);
        // first SYN, then T at the 1st and 10th retransmission
        assert_eq!(h.as_str(), "STT");
    }

    #[test]
    fn sequence_wraparound_is_not_a_retransmission() {
        let mut c = SeqTracker::default();
        assert!(!c.retransmission(&seg(Tcp::ACK, u32::MAX - 5, 10)));
        assert!(!c.retransmission(&seg(Tcp::ACK, 4, 10)));
        assert!(c.retransmission(&seg(Tcp::ACK, 4, 10)));
    }

    #[test]
    fn rst_and_zero_window() {
        let mut h = History::default();
        let mut t = seg(Tcp::ACK, 1, 0);
        t.window = 0;
        h.tcp(false, &t, false);
        h.tcp(false, &seg(Tcp::RST, 1, 0), false);
        assert_eq!(h.as_str(), "awr");
    }

    #[test]
    fn letters_follow_the_flags_in_their_order_whatever_the_mix() {
        // Every mix of SYN, ACK, FIN, RST, with and without payload, from either side, after
        // each other mix: the letters as a test per letter writes them.
        let flags = [Tcp::SYN, Tcp::ACK, Tcp::FIN, Tcp::RST];
        let mixes: Vec<(u8, u32)> = (0..32u8)
            .map(|m| {
                let f = (0..4)
                    .filter(|i| m & (1 << i) != 0)
                    .fold(0, |f, i| f | flags[i]);
                (f, u32::from(m >> 4))
            })
            .collect();
        for first in &mixes {
            for second in &mixes {
                for from_client in [true, false] {
                    let mut h = History::default();
                    let mut want = Vec::new();
                    for (f, len) in [first, second] {
                        let t = seg(*f, 1, *len);
                        h.tcp(from_client, &t, false);
                        let has = |b: u8| f & b != 0;
                        let mut letters = Vec::new();
                        if has(Tcp::SYN) {
                            letters.push(if has(Tcp::ACK) { b'H' } else { b'S' });
                        }
                        if has(Tcp::RST) {
                            letters.push(b'R');
                        }
                        if has(Tcp::FIN) {
                            letters.push(b'F');
                        }
                        if *len > 0 {
                            letters.push(b'D');
                        } else if has(Tcp::ACK) && !has(Tcp::SYN | Tcp::FIN | Tcp::RST) {
                            letters.push(b'A');
                        }
                        for l in letters {
                            let l = if from_client {
                                l
                            } else {
                                l.to_ascii_lowercase()
                            };
                            if !want.contains(&l) {
                                want.push(l);
                            }
                        }
                    }
                    assert_eq!(h.as_str().as_bytes(), &want[..], "{first:?} {second:?}");
                }
            }
        }
    }
}
