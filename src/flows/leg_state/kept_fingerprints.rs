//! The fingerprints a leg keeps to be joined by: those of the first few distinct packets of
//! each form, a value seen twice dropped as ambiguous.
//!
//! Every packet asks whether its value is kept already and how many its form has. Scanning the
//! list for both was a tenth of the instructions of recording a packet (callgrind), so a bit
//! per kept value (its low six bits) answers "not kept" for most packets in one test, and the
//! count of each form is kept as the list changes.

use crate::flows::Fingerprint;
use smallvec::SmallVec;
use std::ops::Deref;

/// How many packets of each form keep a fingerprint, to join the legs of one connection.
pub(crate) const PER_FORM: usize = 8;
/// Fingerprints kept inline: two forms' worth, what nearly every leg has.
const INLINE: usize = 2 * PER_FORM;

#[derive(Debug, Clone, Default)]
pub(crate) struct KeptFingerprints {
    /// In the order first kept (packed legs and the join read them so).
    list: SmallVec<[Fingerprint; INLINE]>,
    /// Bit `value % 64` of each fingerprint in `list`.
    bits: u64,
    /// How many of `list` are of each form, by [`Form::index`].
    per_form: [u8; 4],
}

fn bit(p: Fingerprint) -> u64 {
    1 << (p.value() & 63)
}

impl KeptFingerprints {
    /// One packet's fingerprint: kept while its form has fewer than [`PER_FORM`]; a value
    /// already kept is dropped instead.
    pub(crate) fn record(&mut self, p: Fingerprint) {
        let form = p.form().index();
        if self.bits & bit(p) != 0 {
            if let Some(i) = self.list.iter().position(|q| *q == p) {
                self.list.remove(i);
                self.per_form[form] -= 1;
                self.bits = self.list.iter().fold(0, |b, q| b | bit(*q));
                return;
            }
        }
        if usize::from(self.per_form[form]) < PER_FORM {
            self.list.push(p);
            self.per_form[form] += 1;
            self.bits |= bit(p);
        }
    }

    pub(crate) fn clear(&mut self) {
        self.list.clear();
        self.bits = 0;
        self.per_form = [0; 4];
    }

    /// Appends `ps` as they are (a packed leg's, which were kept by [`Self::record`]).
    pub(crate) fn extend(&mut self, ps: impl IntoIterator<Item = Fingerprint>) {
        let from = self.list.len();
        // The list's own extend reserves once; pushing one by one checked the room each time.
        self.list.extend(ps);
        for p in &self.list[from..] {
            self.per_form[p.form().index()] += 1;
            self.bits |= bit(*p);
        }
    }
}

impl Deref for KeptFingerprints {
    type Target = [Fingerprint];
    fn deref(&self) -> &[Fingerprint] {
        &self.list
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flows::Form;

    /// The rule as it was first written: a scan for the value, a count of the form.
    fn by_scanning(list: &mut Vec<Fingerprint>, p: Fingerprint) {
        if let Some(i) = list.iter().position(|q| *q == p) {
            list.remove(i);
        } else if list.iter().filter(|q| q.form() == p.form()).count() < PER_FORM {
            list.push(p);
        }
    }

    #[test]
    fn keeps_what_scanning_the_list_keeps() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for round in 0..200 {
            let mut kept = KeptFingerprints::default();
            let mut want = Vec::new();
            // Few distinct values (many repeats, drops and refills), some sharing low bits.
            let values = 4 + round % 40;
            for _ in 0..100 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let form = Form::ALL[(x >> 60) as usize % 4];
                let value = ((x % values) << 6) | ((x >> 30) % 3);
                let p = Fingerprint::new(form, value << 2);
                kept.record(p);
                by_scanning(&mut want, p);
                assert_eq!(&kept[..], &want[..]);
            }
            let mut copy = KeptFingerprints::default();
            copy.extend(kept.iter().copied());
            assert_eq!((copy.bits, copy.per_form), (kept.bits, kept.per_form));
            copy.clear();
            assert!(copy.is_empty() && copy.bits == 0 && copy.per_form == [0; 4]);
        }
    }
}
