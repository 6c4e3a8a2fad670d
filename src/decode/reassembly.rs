//! The [`Decoder`](super::Decoder)'s bounded IP fragment reassembly table.
//!
//! Each datagram in progress is keyed on (source, destination, protocol, identification) and
//! filled by etherparse's `IpDefragBuf`, which tracks the byte ranges received and rejects
//! fragments that contradict each other. etherparse's own `IpDefragPool` is not used: it is
//! unbounded (its documentation says so) and takes strictly sliced packets, while captures need
//! a table that cannot grow without limit. Here a datagram is dropped when it is older than
//! `max_age_ns` (by frame timestamps, as Linux's `ipfrag_time`), and the oldest are evicted
//! when more than `max_datagrams` are pending or they hold more than `max_bytes`.
//!
//! Each datagram gets an id ([`DatagramId`]) when its first fragment (in arrival order) comes,
//! and the table notes every datagram that leaves it, completed or not
//! ([`Reassembler::take_finished`]): the [`Decoder`](super::Decoder) holds back a first
//! fragment's frame until then, to decide whether the frame counts as a packet or only as a
//! piece of the datagram another frame completes.

// FxHash: these tables are looked up for every packet, where SipHash was a quarter of
// all instructions of `verify` (callgrind).
use rustc_hash::FxHashMap as HashMap;
use std::net::IpAddr;

use etherparse::defrag::{IpDefragBuf, IpFragRange};
use etherparse::{IpFragOffset, IpNumber};
use serde::Serialize;

use super::defect::Defect;

/// Bounds of the fragment table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ReassemblyLimits {
    pub max_datagrams: usize,
    /// Bytes held by all pending datagrams together.
    pub max_bytes: usize,
    /// A datagram whose first fragment is older than this (frame timestamps) is dropped.
    pub max_age_ns: i64,
    /// Frames the [`Decoder`](super::Decoder) holds back behind a first fragment whose datagram
    /// is still pending; past this the oldest such datagram is evicted (its first fragment then
    /// counts on its own).
    pub max_held_frames: usize,
}

impl Default for ReassemblyLimits {
    /// 1024 datagrams, 16 MiB, 30 s (Linux's default `ipfrag_time`), 4096 frames held back.
    fn default() -> Self {
        ReassemblyLimits {
            max_datagrams: 1024,
            max_bytes: 16 << 20,
            max_age_ns: 30_000_000_000,
            max_held_frames: 4096,
        }
    }
}

/// What the table did, for the report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ReassemblyStats {
    pub completed: u64,
    /// Dropped to stay within `max_datagrams` / `max_bytes` / `max_held_frames`.
    pub evicted: u64,
    /// Dropped for age.
    pub expired: u64,
    /// Dropped because a fragment contradicted the others.
    pub rejected: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct FragKey {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub protocol: u8,
    pub id: u32,
}

/// A datagram's number in the table, unique for the table's life: a key (addresses, protocol,
/// identification) comes back when the IP ID wraps, an id never does.
pub(crate) type DatagramId = u64;

pub(crate) enum FragOutcome {
    /// Kept; the datagram is not whole yet (or was evicted at once for being too large, which
    /// [`Reassembler::take_finished`] then says).
    Pending(DatagramId),
    /// The datagram's payload, from offset 0; give it back with [`Reassembler::recycle`].
    Complete(Vec<u8>),
    /// The fragment contradicts the others; the datagram was dropped.
    Rejected(Defect),
}

#[derive(Debug)]
struct Datagram {
    buf: IpDefragBuf,
    first_ts_ns: i64,
    /// Arrival order, to evict deterministically among equal timestamps; also its id.
    order: DatagramId,
}

/// Spare buffers kept for reuse; more would only hold memory.
const MAX_SPARE: usize = 16;

#[derive(Debug)]
pub(crate) struct Reassembler {
    limits: ReassemblyLimits,
    table: HashMap<FragKey, Datagram>,
    bytes: usize,
    next_order: u64,
    stats: ReassemblyStats,
    spare_data: Vec<Vec<u8>>,
    spare_ranges: Vec<Vec<IpFragRange>>,
    /// Datagrams that left the table since the last [`Reassembler::take_finished`]: id and
    /// whether they were completed.
    finished: Vec<(DatagramId, bool)>,
    /// No datagram expires before this frame time: [`Reassembler::age`] looks at the table
    /// only then, so that ageing on every frame costs one comparison.
    next_expiry_ns: i64,
}

impl Reassembler {
    pub fn new(limits: ReassemblyLimits) -> Reassembler {
        Reassembler {
            limits,
            table: HashMap::default(),
            bytes: 0,
            next_order: 0,
            stats: ReassemblyStats::default(),
            spare_data: Vec::new(),
            spare_ranges: Vec::new(),
            finished: Vec::new(),
            next_expiry_ns: i64::MAX,
        }
    }

    pub fn stats(&self) -> ReassemblyStats {
        self.stats
    }

    pub fn pending(&self) -> usize {
        self.table.len()
    }

    /// Adds one fragment's payload (`offset` in bytes, a multiple of 8 as IP sends them).
    pub fn add(
        &mut self,
        key: FragKey,
        ts_ns: i64,
        offset: u16,
        more_fragments: bool,
        data: &[u8],
    ) -> FragOutcome {
        self.age(ts_ns);
        // IP offsets are 13-bit counts of 8 bytes, so this cannot fail for a decoded header.
        let Ok(offset) = IpFragOffset::try_new(offset / 8) else {
            return FragOutcome::Rejected(Defect::FragmentOffset(offset));
        };
        if !self.table.contains_key(&key) {
            let buf = IpDefragBuf::new(
                IpNumber(key.protocol),
                self.spare_data.pop().unwrap_or_default(),
                self.spare_ranges.pop().unwrap_or_default(),
            );
            let order = self.next_order;
            self.next_order += 1;
            self.next_expiry_ns = self
                .next_expiry_ns
                .min(ts_ns.saturating_add(self.limits.max_age_ns));
            self.table.insert(
                key,
                Datagram {
                    buf,
                    first_ts_ns: ts_ns,
                    order,
                },
            );
        }
        let Some(datagram) = self.table.get_mut(&key) else {
            return FragOutcome::Rejected(Defect::FragmentTableLost);
        };
        let id = datagram.order;
        let before = datagram.buf.data().len();
        let added = datagram.buf.add(offset, more_fragments, data);
        let after = datagram.buf.data().len();
        let complete = datagram.buf.is_complete();
        self.bytes = self.bytes.saturating_sub(before).saturating_add(after);
        match added {
            Err(error) => {
                self.remove(&key);
                self.stats.rejected += 1;
                FragOutcome::Rejected(Defect::Fragment(error))
            }
            Ok(()) if complete => match self.take(&key) {
                Some(payload) => {
                    self.stats.completed += 1;
                    self.finished.push((id, true));
                    FragOutcome::Complete(payload)
                }
                None => FragOutcome::Pending(id),
            },
            Ok(()) => {
                self.enforce_limits();
                FragOutcome::Pending(id)
            }
        }
    }

    /// Drops the datagrams older than the age limit at frame time `now_ns`; cheap when none
    /// can be.
    pub fn age(&mut self, now_ns: i64) {
        if now_ns > self.next_expiry_ns {
            self.expire(now_ns);
        }
    }

    /// Drops one datagram (the [`Decoder`](super::Decoder) held too many frames behind it).
    pub fn evict(&mut self, id: DatagramId) {
        let key = self
            .table
            .iter()
            .find(|(_, d)| d.order == id)
            .map(|(k, _)| *k);
        if let Some(key) = key {
            self.remove(&key);
            self.stats.evicted += 1;
        }
    }

    /// The datagrams that left the table since the last call, in the order they left: id and
    /// whether they were completed (false: expired, evicted or rejected).
    pub fn take_finished(&mut self, into: &mut Vec<(DatagramId, bool)>) {
        into.append(&mut self.finished);
    }

    /// Gives a completed datagram's buffer back for reuse.
    pub fn recycle(&mut self, mut buf: Vec<u8>) {
        if self.spare_data.len() < MAX_SPARE {
            buf.clear();
            self.spare_data.push(buf);
        }
    }

    fn take(&mut self, key: &FragKey) -> Option<Vec<u8>> {
        let datagram = self.table.remove(key)?;
        let (data, ranges) = datagram.buf.take_bufs();
        self.bytes = self.bytes.saturating_sub(data.len());
        if self.spare_ranges.len() < MAX_SPARE {
            self.spare_ranges.push(ranges);
        }
        Some(data)
    }

    /// Drops a datagram that did not complete.
    fn remove(&mut self, key: &FragKey) {
        let id = self.table.get(key).map(|d| d.order);
        if let Some(data) = self.take(key) {
            self.recycle(data);
        }
        if let Some(id) = id {
            self.finished.push((id, false));
        }
    }

    fn expire(&mut self, now_ns: i64) {
        let max_age = self.limits.max_age_ns;
        let before = self.table.len();
        let mut freed = 0usize;
        let mut next = i64::MAX;
        let finished = &mut self.finished;
        self.table.retain(|_, d| {
            let keep = now_ns.saturating_sub(d.first_ts_ns) <= max_age;
            if keep {
                next = next.min(d.first_ts_ns.saturating_add(max_age));
            } else {
                freed += d.buf.data().len();
                finished.push((d.order, false));
            }
            keep
        });
        // HashMap order is arbitrary: the ids of one pass in a fixed order.
        let gone = before - self.table.len();
        let at = self.finished.len() - gone;
        self.finished[at..].sort_unstable();
        self.next_expiry_ns = next;
        self.bytes = self.bytes.saturating_sub(freed);
        self.stats.expired += gone as u64;
    }

    fn enforce_limits(&mut self) {
        while self.table.len() > self.limits.max_datagrams || self.bytes > self.limits.max_bytes {
            let oldest = self
                .table
                .iter()
                .min_by_key(|(_, d)| (d.first_ts_ns, d.order))
                .map(|(k, _)| *k);
            let Some(key) = oldest else { break };
            self.remove(&key);
            self.stats.evicted += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn key(id: u32) -> FragKey {
        FragKey {
            src: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
            dst: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
            protocol: 17,
            id,
        }
    }

    #[test]
    fn completes_in_any_order() {
        let mut r = Reassembler::new(ReassemblyLimits::default());
        let a = [1u8; 8];
        let b = [2u8; 8];
        let c = [3u8; 3];
        assert!(matches!(
            r.add(key(1), 0, 16, false, &c),
            FragOutcome::Pending(_)
        ));
        assert!(matches!(
            r.add(key(1), 1, 0, true, &a),
            FragOutcome::Pending(_)
        ));
        match r.add(key(1), 2, 8, true, &b) {
            FragOutcome::Complete(d) => assert_eq!(d, [&a[..], &b[..], &c[..]].concat()),
            _ => panic!("expected a whole datagram"),
        }
        assert_eq!(r.pending(), 0);
        assert_eq!(r.bytes, 0);
        assert_eq!(r.stats().completed, 1);
    }

    #[test]
    fn evicts_oldest_when_full() {
        let limits = ReassemblyLimits {
            max_datagrams: 2,
            ..ReassemblyLimits::default()
        };
        let mut r = Reassembler::new(limits);
        for id in 0..3 {
            r.add(key(id), i64::from(id as u8), 0, true, &[0; 8]);
        }
        assert_eq!(r.pending(), 2);
        assert_eq!(r.stats().evicted, 1);
        // Datagram 0 was the oldest: its last fragment now starts a new, incomplete one.
        assert!(matches!(
            r.add(key(0), 3, 8, false, &[0; 4]),
            FragOutcome::Pending(_)
        ));
        assert!(matches!(
            r.add(key(2), 4, 8, false, &[0; 4]),
            FragOutcome::Complete(_)
        ));
    }

    #[test]
    fn byte_limit_evicts() {
        let limits = ReassemblyLimits {
            max_bytes: 20,
            ..ReassemblyLimits::default()
        };
        let mut r = Reassembler::new(limits);
        r.add(key(1), 0, 0, true, &[0; 16]);
        assert_eq!(r.pending(), 1);
        r.add(key(2), 1, 0, true, &[0; 16]);
        assert_eq!(r.pending(), 1);
        assert_eq!(r.stats().evicted, 1);
        assert!(r.bytes <= 20);
    }

    #[test]
    fn expires_by_timestamp() {
        let limits = ReassemblyLimits {
            max_age_ns: 100,
            ..ReassemblyLimits::default()
        };
        let mut r = Reassembler::new(limits);
        r.add(key(1), 0, 0, true, &[0; 8]);
        // 101 ns later the first fragment is too old: the last one cannot complete it.
        assert!(matches!(
            r.add(key(1), 101, 8, false, &[0; 8]),
            FragOutcome::Pending(_)
        ));
        assert_eq!(r.stats().expired, 1);
        assert_eq!(r.pending(), 1);
    }

    #[test]
    fn contradicting_ends_are_rejected() {
        let mut r = Reassembler::new(ReassemblyLimits::default());
        r.add(key(1), 0, 8, false, &[0; 8]);
        assert!(matches!(
            r.add(key(1), 0, 8, false, &[0; 16]),
            FragOutcome::Rejected(_)
        ));
        assert_eq!(r.pending(), 0);
        assert_eq!(r.stats().rejected, 1);
    }
}
