//! The full state of one capture's analysis as JSON, written on one machine and read back on
//! another (issue 16: `lvscheck facts`, `extract`, `verify --records`), so that the analysis of
//! the read-back state gives what it gives on the captures themselves.
//!
//! # What is written
//!
//! The per-capture state is what pass 1 learns (`topology::facts::VantageFacts` and its
//! parts, `flows::clock::ClockSampler`), what reading said (`flows::pipeline::ReadReport`,
//! `capture::CaptureSummary`) and what pass 2 counts besides the connections
//! (`flows::pipeline::VantageStats`, `flows::probes::HealthChecks`,
//! `flows::mirror::MirrorSplit`). Several of these types already appear in the JSON that
//! `verify --json` and `flows --json` print, with some fields left out there
//! (docs/verify-json.md). Those fields are marked
//! `#[serde(skip_serializing_if = "crate::full_state::hidden", default)]`: [`to_json`] writes
//! them, every other serialization leaves them out as before, so users' JSON does not change
//! by a byte. Reading users' JSON back gives those fields their default. (A flag for the
//! length of the call, because serde hands a serializer no context of its own: the other way,
//! a twin of each type for the full state, would be a second list of fields to keep in step.)
//!
//! # Format
//!
//! [`to_json`] writes the value itself, hidden fields included; what holds it (a facts file, a
//! record) says which [`STATE_VERSION`] it was written with, and a reader refuses another
//! version before [`from_json`]. In the text:
//!
//! - structs are objects with their Rust field names; addresses, MACs (`"02:00:00:67:00:01"`)
//!   and IP protocols (`"tcp"`, `"icmpv6"`, `"47"`) are strings, as in users' JSON;
//! - maps whose keys are not strings (by MAC, by address, by ARP statement, by 5-tuple hash)
//!   are lists of `[key, value]` pairs sorted by key ([`pairs`]), so that the same state
//!   always gives the same text whatever order its hash tables held;
//! - a vantage point's flow table is the list of its groups in the order first seen, each
//!   `[fact, count]`; its index is rebuilt when read (and the recently-seen groups in front of
//!   it start empty: a cache, which finds the groups the index finds);
//! - floats are written shortest-exact and read back bit for bit (serde_json's
//!   `float_roundtrip`).

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::cell::Cell;

/// The version of the format above: the records and files that hold the state carry it beside
/// it, and a reader refuses another. Raise it when a type's fields or their meaning change.
pub const STATE_VERSION: u32 = 1;

thread_local! {
    /// Set while [`to_json`] (or [`full`]) serializes on this thread.
    static FULL: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with the hidden fields written ([`hidden`] false) on this thread: for writing the
/// full state with another serializer than [`to_json`]'s.
pub fn full<R>(f: impl FnOnce() -> R) -> R {
    /// Puts the flag back as it was, also when `f` panics.
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            FULL.with(|c| c.set(self.0));
        }
    }
    let _restore = Restore(FULL.with(|c| c.replace(true)));
    f()
}

/// For `skip_serializing_if`: a field users' JSON leaves out is left out unless the full
/// state is being written.
pub fn hidden<T>(_: &T) -> bool {
    !FULL.with(Cell::get)
}

/// The full state of `v`, hidden fields included, in the format above.
pub fn to_json<T: Serialize>(v: &T) -> serde_json::Result<String> {
    full(|| serde_json::to_string(v))
}

/// Reads what [`to_json`] wrote; Err says what is wrong (a field missing or of the wrong kind,
/// with its line and column).
pub fn from_json<T: DeserializeOwned>(s: &str) -> Result<T, String> {
    serde_json::from_str(s).map_err(|e| format!("lvscheck state (version {STATE_VERSION}): {e}"))
}

/// A map as a list of `[key, value]` pairs sorted by key (`#[serde(with = ...)]`): JSON object
/// keys are strings only, and a hash table's order changes from run to run.
pub mod pairs {
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<'m, M, K, V, S>(m: &'m M, s: S) -> Result<S::Ok, S::Error>
    where
        &'m M: IntoIterator<Item = (&'m K, &'m V)>,
        K: Ord + Serialize + 'm,
        V: Serialize + 'm,
        S: Serializer,
    {
        let mut list: Vec<(&K, &V)> = m.into_iter().collect();
        list.sort_unstable_by(|a, b| a.0.cmp(b.0));
        s.collect_seq(list)
    }

    pub fn deserialize<'de, M, K, V, D>(d: D) -> Result<M, D::Error>
    where
        M: FromIterator<(K, V)>,
        K: Ord + Deserialize<'de>,
        V: Deserialize<'de>,
        D: Deserializer<'de>,
    {
        let mut list: Vec<(K, V)> = Vec::deserialize(d)?;
        let len = list.len();
        list.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        list.dedup_by(|a, b| a.0 == b.0);
        if list.len() != len {
            return Err(D::Error::custom("a key given twice in a list of pairs"));
        }
        Ok(list.into_iter().collect())
    }
}

/// `&'static str` under another name, for fields read back with [`static_text`]: serde's
/// derive takes a field spelt `&str` or `Option<&str>` as borrowed from the input, which a
/// `'static` one cannot be.
pub type StaticText = &'static str;

/// An `Option<&'static str>` read back (`#[serde(deserialize_with = ...)]`): the reasons such
/// fields hold are a few literals of the code, so each text read is kept once for the whole
/// run and handed out again; a few dozen distinct texts at most, since more cannot be this
/// code's.
pub fn static_text<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<&'static str>, D::Error> {
    use std::collections::BTreeSet;
    use std::sync::Mutex;
    const MAX_TEXTS: usize = 64;
    static TEXTS: Mutex<BTreeSet<&'static str>> = Mutex::new(BTreeSet::new());
    let Some(text) = Option::<String>::deserialize(d)? else {
        return Ok(None);
    };
    let mut texts = TEXTS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(t) = texts.get(text.as_str()) {
        return Ok(Some(t));
    }
    if texts.len() >= MAX_TEXTS {
        return Err(serde::de::Error::custom(format!(
            "more than {MAX_TEXTS} distinct reasons: {text:?} is none of lvscheck's"
        )));
    }
    let t: &'static str = Box::leak(text.into_boxed_str());
    texts.insert(t);
    Ok(Some(t))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Shown {
        seen: u64,
        #[serde(skip_serializing_if = "crate::full_state::hidden", default)]
        kept: Vec<u32>,
        #[serde(with = "pairs")]
        by_pair: HashMap<(u8, u8), u64>,
        #[serde(deserialize_with = "static_text")]
        why: Option<StaticText>,
    }

    fn shown() -> Shown {
        Shown {
            seen: 3,
            kept: vec![7, 8],
            by_pair: [((2, 1), 5), ((1, 9), 6), ((1, 2), 7)]
                .into_iter()
                .collect(),
            why: Some("frames not in time order"),
        }
    }

    #[test]
    fn hidden_fields_only_in_the_full_state() {
        let plain = serde_json::to_string(&shown()).unwrap();
        assert_eq!(
            plain,
            r#"{"seen":3,"by_pair":[[[1,2],7],[[1,9],6],[[2,1],5]],"why":"frames not in time order"}"#
        );
        let full = to_json(&shown()).unwrap();
        assert_eq!(
            full,
            r#"{"seen":3,"kept":[7,8],"by_pair":[[[1,2],7],[[1,9],6],[[2,1],5]],"why":"frames not in time order"}"#
        );
        assert_eq!(from_json::<Shown>(&full).unwrap(), shown());
        // The flag is off again: users' JSON after a full write is as before.
        assert_eq!(serde_json::to_string(&shown()).unwrap(), plain);
    }

    #[test]
    fn repeated_keys_are_refused() {
        let full = to_json(&shown()).unwrap();
        let twice = full.replacen("[[1,9],6]", "[[1,2],6]", 1);
        let e = from_json::<Shown>(&twice).unwrap_err();
        assert!(e.contains("a key given twice"), "{e}");
    }

    #[test]
    fn a_text_read_twice_is_kept_once() {
        let a: Shown = from_json(&to_json(&shown()).unwrap()).unwrap();
        let b: Shown = from_json(&to_json(&shown()).unwrap()).unwrap();
        assert!(std::ptr::eq(a.why.unwrap(), b.why.unwrap()));
    }

    #[test]
    fn floats_read_back_bit_for_bit() {
        // Subnormals, the extremes, values whose shortest text has 17 digits, and the
        // nanoseconds per tick of a pcapng `if_tsresol` of 2^-30 s (0.9313225746154785),
        // which serde_json without float_roundtrip reads one unit in the last place off.
        for x in [
            0.1_f64,
            1e-9,
            2f64.powi(-30) * 1e9,
            f64::MIN_POSITIVE,
            f64::from_bits(1),
            f64::from_bits(0x000f_ffff_ffff_ffff),
            f64::MAX,
            0.1 + 0.2,
        ] {
            let back: f64 = from_json(&to_json(&x).unwrap()).unwrap();
            assert_eq!(back.to_bits(), x.to_bits(), "{x:e}");
        }
    }
}
