//! The joining side of [`super::stream`]: per connection key, the legs finished so far and how
//! many are still open somewhere; a key's legs are joined when none is open and every capture
//! has been read past their end plus a slack.
//!
//! The keys that fall due together are joined in parallel ([`PARALLEL_FROM`] or more), on a
//! pool of this join's own, and their connections handed on in the order the keys fell due, as
//! one thread would: the join is a fifth of all the work, and on one thread it was the ceiling
//! on more cores. The pool is this join's own so that it never waits behind the capture
//! threads, whatever they run on.

use super::join::{JoinScratch, Joiner};
use super::legs::LegEvent;
use super::packed::PackedLeg;
use super::{ConnKey, Connection};
use crate::topology::VantageId;
use keys::{At, Keys};
use rayon::prelude::*;
use smallvec::SmallVec;
use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

mod keys;

/// Keys due at once from which they are joined in parallel: below this, waking the pool costs
/// more than it saves.
const PARALLEL_FROM: usize = 16;
/// Keys joined at a time, and their connections held before they are handed on: a capture
/// that catches up can make tens of thousands due at once.
const JOIN_WINDOW: usize = 256;
/// Pieces per pool thread the keys due at once are cut into: a few, so that one slow key does
/// not hold up a whole share.
const PIECES_PER_THREAD: usize = 4;

/// The legs of one key, with their vantage points: as many inline as a connection through a
/// client, a director and a real server has.
type Legs = SmallVec<[(VantageId, PackedLeg); 3]>;

/// Legs waiting to be joined, per key.
pub(super) struct Waiting {
    legs: Legs,
    /// States of this key still open at some vantage point.
    open: u32,
    /// When (reference clock) every capture must have been read to for the legs to be joined.
    due_ns: i64,
}

impl Waiting {
    fn new(open: u32) -> Waiting {
        Waiting {
            legs: Legs::new(),
            open,
            due_ns: i64::MIN,
        }
    }
}

thread_local! {
    /// Each joining thread's own scratch space, kept from key to key.
    static SCRATCH: RefCell<JoinScratch> = RefCell::new(JoinScratch::default());
}

pub(super) struct Pending<'j, 't> {
    joiner: &'j Joiner<'t>,
    slack_ns: i64,
    pub(super) keys: Keys,
    /// Keys with nothing open, by when they are due, by where their entry is (16 bytes where
    /// the whole key took 80); stale when the key's due time has moved, something opened
    /// again, or the entry went to another key since.
    due: BinaryHeap<Reverse<(i64, At)>>,
    /// The keys of one due time, in `flush`; kept for its room.
    due_now: Vec<At>,
    /// The keys due in this flush, in the order they are handed on.
    ready: Vec<(ConnKey, Legs)>,
    /// None with one core.
    pool: Option<rayon::ThreadPool>,
    /// Packed legs joined, for [`Pending::take_spent`]: each block is given back to the capture
    /// thread that packed it, to be freed there. Freed where they were joined, every block was
    /// a free into another thread's malloc arena, under that arena's lock, while its own
    /// thread allocated from it: about 6 % of all CPU in malloc, free and the futex wake-ups
    /// of that lock.
    spent: Vec<(VantageId, PackedLeg)>,
}

impl<'j, 't> Pending<'j, 't> {
    pub(super) fn new(joiner: &'j Joiner<'t>, slack_ns: i64) -> Self {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let pool = (threads > 1)
            .then(|| {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .thread_name(|i| format!("join-{i}"))
                    .build()
                    .ok()
            })
            .flatten();
        Pending {
            joiner,
            slack_ns,
            keys: Keys::default(),
            due: BinaryHeap::new(),
            due_now: Vec::new(),
            ready: Vec::new(),
            pool,
            spent: Vec::new(),
        }
    }

    pub(super) fn event(&mut self, vantage: VantageId, event: LegEvent) {
        match event {
            LegEvent::Opened(key) => {
                self.keys.get_or_insert(key, || Waiting::new(0)).1.open += 1;
            }
            LegEvent::Finished(key, leg, last_ts) => {
                let end = self
                    .joiner
                    .corrected_at(vantage, last_ts)
                    .saturating_add(self.slack_ns);
                let (at, w) = self.keys.get_or_insert(key, || Waiting::new(1));
                w.open = w.open.saturating_sub(1);
                w.due_ns = w.due_ns.max(end);
                w.legs.push((vantage, leg));
                if w.open == 0 {
                    self.due.push(Reverse((w.due_ns, at)));
                }
            }
        }
    }

    /// Joins and hands on every key due before `watermark`.
    pub(super) fn flush(&mut self, watermark: i64, each: &mut dyn FnMut(Connection)) {
        while let Some(&Reverse((due, _))) = self.due.peek() {
            if due >= watermark && watermark != i64::MAX {
                break;
            }
            // The keys due at this time are handed on in the order of the keys, as when the
            // queue held whole keys: every key still due at it has an entry in the queue
            // (pushed when its last open state finished), and the stale ones are dropped.
            let mut now = std::mem::take(&mut self.due_now);
            while let Some(&Reverse((d, at))) = self.due.peek() {
                if d != due {
                    break;
                }
                self.due.pop();
                if self
                    .keys
                    .get(at)
                    .is_some_and(|(_, w)| w.open == 0 && w.due_ns == due)
                {
                    now.push(at);
                }
            }
            if now.len() > 1 {
                now.sort_unstable_by_key(|&at| self.keys.get(at).map(|(k, _)| k));
            }
            // A key queued twice at this time is gone the second time.
            for &at in &now {
                if let Some((key, w)) = self.keys.remove(at) {
                    self.join_soon(key, w.legs, each);
                }
            }
            now.clear();
            self.due_now = now;
        }
        if watermark == i64::MAX {
            // Everything is read: whatever is left (nothing, when every state was finished).
            let mut rest: Vec<(ConnKey, Waiting)> = self.keys.take().collect();
            rest.sort_by_key(|(k, _)| *k);
            for (key, w) in rest {
                if !w.legs.is_empty() {
                    self.join_soon(key, w.legs, each);
                }
            }
        }
        self.join_ready(each);
        self.keys.shrink();
    }

    /// Adds a key to those joined next; joins them once there are [`JOIN_WINDOW`].
    fn join_soon(&mut self, key: ConnKey, legs: Legs, each: &mut dyn FnMut(Connection)) {
        self.ready.push((key, legs));
        if self.ready.len() == JOIN_WINDOW {
            self.join_ready(each);
        }
    }

    /// Joins the keys due, in parallel when there are enough of them, and hands their
    /// connections on in the order the keys are in.
    fn join_ready(&mut self, each: &mut dyn FnMut(Connection)) {
        let joiner = self.joiner;
        let join = |part: &[(ConnKey, Legs)], out: &mut Vec<Connection>| {
            SCRATCH.with_borrow_mut(|scratch| {
                for (key, legs) in part {
                    joiner.join_key(*key, legs.iter().map(|(v, p)| (*v, p)), scratch, out);
                }
            })
        };
        match &self.pool {
            Some(pool) if self.ready.len() >= PARALLEL_FROM => {
                let pieces = pool.current_num_threads() * PIECES_PER_THREAD;
                let size = self.ready.len().div_ceil(pieces);
                let ready = &self.ready;
                let joined: Vec<Vec<Connection>> = pool.install(|| {
                    ready
                        .par_chunks(size)
                        .map(|part| {
                            let mut out = Vec::with_capacity(part.len());
                            join(part, &mut out);
                            out
                        })
                        .collect()
                });
                joined.into_iter().flatten().for_each(each);
            }
            _ => {
                let mut out = Vec::with_capacity(self.ready.len());
                join(&self.ready, &mut out);
                out.into_iter().for_each(each);
            }
        }
        for (_, legs) in self.ready.drain(..) {
            self.spent.extend(legs);
        }
    }

    /// The packed legs joined since the last call, with their vantage points.
    pub(super) fn take_spent(&mut self) -> std::vec::Drain<'_, (VantageId, PackedLeg)> {
        self.spent.drain(..)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flows::leg_state::LegState;
    use crate::flows::packed::pack;
    use crate::topology::{Proto, Role, Topology};
    use std::net::{IpAddr, Ipv4Addr, SocketAddr};

    const S: i64 = 1_000_000_000;

    fn topology() -> Topology {
        Topology {
            vantages: Vec::new(),
            vips: Vec::new(),
            services: Vec::new(),
            directors: Vec::new(),
            real_servers: Vec::new(),
            clients: Vec::new(),
            arp: Vec::new(),
            limits: Vec::new(),
            role_conflicts: Vec::new(),
            gue: Vec::new(),
            tunnels: Default::default(),
            client_side_macs: Vec::new(),
            control: Vec::new(),
        }
    }

    /// Connection `i` of `n`: its client port falls as its time rises, so that the order keys
    /// fall due in is not the order of the keys.
    fn key(i: u16, n: u16) -> ConnKey {
        let a = |x: u8, port: u16| SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, x)), port);
        ConnKey {
            proto: Proto::TCP,
            client: a(9, 40_000 - (n - i)),
            vip: a(100, 80),
        }
    }

    /// Every connection seen at two vantage points, each leg 100 ms long, one connection
    /// starting every 10 ms; joined with the pool given or on this thread.
    fn joined(n: u16, pool: Option<rayon::ThreadPool>) -> Vec<(SocketAddr, i64, usize)> {
        let topology = topology();
        let joiner = Joiner::new(&topology, &[], &Default::default());
        let mut pending = Pending::new(&joiner, S);
        pending.pool = pool;
        let mut buf = Vec::new();
        for i in 0..n {
            let k = key(i, n);
            for interface in 0..2 {
                let vantage = VantageId {
                    capture: interface,
                    interface,
                };
                let mut s = LegState::new(S + i64::from(i) * S / 100);
                s.last_ts = s.first_ts + S / 10;
                s.isn = Some(u32::from(i));
                pending.event(vantage, LegEvent::Opened(k));
                let p = pack(&s, vantage, Role::Other, false, &mut buf);
                let last_ts = p.last_ts();
                pending.event(vantage, LegEvent::Finished(k, p, last_ts));
            }
        }
        let mut out = Vec::new();
        pending.flush(i64::MAX, &mut |c| {
            out.push((c.client, c.first_ts_ns, c.legs.len()))
        });
        // Every leg joined is there to go back to its capture's thread, once.
        let mut spent: Vec<(u32, i64)> = pending
            .take_spent()
            .map(|(v, p)| (v.capture, p.first_ts()))
            .collect();
        spent.sort_unstable();
        let mut packed: Vec<(u32, i64)> = (0..n)
            .flat_map(|i| (0..2).map(move |c| (c, S + i64::from(i) * S / 100)))
            .collect();
        packed.sort_unstable();
        assert_eq!(spent, packed);
        assert_eq!(pending.take_spent().len(), 0);
        out
    }

    #[test]
    fn keys_joined_in_parallel_come_out_in_the_order_they_fell_due() {
        // More than a window of keys, and a last window of fewer.
        let n = (2 * JOIN_WINDOW + 3 * PARALLEL_FROM) as u16;
        let expected: Vec<_> = (0..n)
            .map(|i| (key(i, n).client, S + i64::from(i) * S / 100, 2))
            .collect();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        assert_eq!(joined(n, Some(pool)), expected);
        assert_eq!(joined(n, None), expected);
    }

    /// Opens and finishes `k` at one vantage point, its leg ending at 2 s.
    fn open_and_finish(pending: &mut Pending, k: ConnKey, interface: u32, buf: &mut Vec<u8>) {
        let vantage = VantageId {
            capture: interface,
            interface,
        };
        let mut s = LegState::new(S);
        s.last_ts = 2 * S;
        pending.event(vantage, LegEvent::Opened(k));
        let p = pack(&s, vantage, Role::Other, false, buf);
        let last_ts = p.last_ts();
        pending.event(vantage, LegEvent::Finished(k, p, last_ts));
    }

    #[test]
    fn keys_due_at_the_same_time_come_out_once_each_in_key_order() {
        let topology = topology();
        let joiner = Joiner::new(&topology, &[], &Default::default());
        let mut pending = Pending::new(&joiner, S);
        pending.pool = None;
        let mut buf = Vec::new();
        let v6 = ConnKey {
            proto: Proto::TCP,
            client: "[::9]:1".parse().expect("client"),
            vip: "[::100]:80".parse().expect("vip"),
        };
        // Finished in the reverse of the keys' order, so that their entries are too.
        let n = 4;
        for k in std::iter::once(v6).chain((0..n).rev().map(|i| key(i, n))) {
            open_and_finish(&mut pending, k, 0, &mut buf);
        }
        // Finished again at another vantage point, due at the same time: queued twice.
        open_and_finish(&mut pending, key(1, n), 1, &mut buf);
        // One of two states finished: not due.
        let open = key(0, 2 * n);
        pending.event(
            VantageId {
                capture: 1,
                interface: 1,
            },
            LegEvent::Opened(open),
        );
        open_and_finish(&mut pending, open, 0, &mut buf);

        let mut out = Vec::new();
        pending.flush(3 * S + 1, &mut |c| out.push((c.client, c.legs.len())));
        let mut expected: Vec<_> = (0..n).map(|i| (key(i, n).client, 1)).collect();
        expected[1].1 = 2;
        expected.push((v6.client, 1));
        assert_eq!(out, expected);
        assert_eq!(pending.keys.len(), 1);

        out.clear();
        pending.flush(i64::MAX, &mut |c| out.push((c.client, c.legs.len())));
        assert_eq!(out, vec![(open.client, 1)]);
        assert_eq!(pending.keys.len(), 0);
    }
}
