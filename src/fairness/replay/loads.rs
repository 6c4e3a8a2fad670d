//! The connection counters each scheduling decision saw, kept as the changes between one
//! decision and the next rather than as a copy of every server's counters per decision.
//!
//! The counters are sums of changes (an entry created, turned active or inactive, expired), so
//! a decision sees the sum of every change before it, in whatever order they were added. The log
//! is a byte string: one byte per change (what changed, and the server when its index is below
//! 15, else a varint after it) and one byte closing each decision. About six bytes a connection,
//! however many servers; a run reads it forward once, and a look-ahead from a copy of a cursor.

use crate::fairness::sched::Load;
use crate::varint;

/// The byte that closes a decision's changes.
const DECISION: u8 = 0x0f;
/// A server index from here on follows its change byte as a varint.
const WIDE_SERVER: usize = 15;

#[derive(Debug, Default)]
pub(super) struct LoadLog {
    bytes: Vec<u8>,
}

impl LoadLog {
    /// Records a change of (active, inactive) by (`d_active`, `d_inactive`), each -1, 0 or 1,
    /// on `server`.
    pub fn change(&mut self, server: usize, d_active: i32, d_inactive: i32) {
        debug_assert!(d_active.abs() <= 1 && d_inactive.abs() <= 1);
        let what = ((d_active + 1) * 3 + d_inactive + 1) as u8;
        let low = server.min(WIDE_SERVER) as u8;
        self.bytes.push(low << 4 | what);
        if server >= WIDE_SERVER {
            varint::put(&mut self.bytes, (server - WIDE_SERVER) as u64);
        }
    }

    /// Closes the changes the next decision sees.
    pub fn decision(&mut self) {
        self.bytes.push(DECISION);
    }

    pub fn shrink_to_fit(&mut self) {
        self.bytes.shrink_to_fit();
    }
}

/// The counters per server (configuration order) at one point of a [`LoadLog`].
#[derive(Debug)]
pub(super) struct LoadCursor<'a> {
    log: &'a [u8],
    at: usize,
    counters: Vec<(i64, i64)>,
}

impl<'a> LoadCursor<'a> {
    /// At the start of `log`, before the first decision, with `servers` counters at zero. With
    /// no log the counters stay at zero: for the schedulers that neither read nor show them.
    pub fn new(log: Option<&'a LoadLog>, servers: usize) -> LoadCursor<'a> {
        LoadCursor {
            log: log.map_or(&[], |l| &l.bytes),
            at: 0,
            counters: vec![(0, 0); servers],
        }
    }

    /// Moves to the next decision: applies the changes before it.
    pub fn next_decision(&mut self) {
        while self.at < self.log.len() {
            let b = self.log[self.at];
            self.at += 1;
            if b == DECISION {
                return;
            }
            let mut server = usize::from(b >> 4);
            if server == WIDE_SERVER {
                server += varint::get(self.log, &mut self.at) as usize;
            }
            let what = i64::from(b & 0x0f);
            let c = &mut self.counters[server];
            c.0 += what / 3 - 1;
            c.1 += what % 3 - 1;
        }
    }

    /// What `server` counts (clamped at zero, as the kernel's counters cannot go below).
    pub fn load(&self, server: usize) -> Load {
        let (a, b) = self.counters[server];
        Load {
            active: a.max(0) as u32,
            inactive: b.max(0) as u32,
        }
    }

    /// Becomes a copy of `other`, keeping its own buffer.
    pub fn copy_from(&mut self, other: &LoadCursor<'a>) {
        self.log = other.log;
        self.at = other.at;
        self.counters.copy_from_slice(&other.counters);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_sums_the_changes_before_each_decision() {
        let mut log = LoadLog::default();
        log.change(0, 0, 1);
        log.change(0, 1, -1);
        log.change(20, 0, 1);
        log.decision();
        log.decision();
        log.change(20, 0, -1);
        log.change(0, -1, 1);
        log.change(300, 1, 0);
        log.decision();
        let mut c = LoadCursor::new(Some(&log), 301);
        c.next_decision();
        assert_eq!((c.load(0), c.load(20)), (load(1, 0), load(0, 1)));
        let mut ahead = LoadCursor::new(None, 301);
        ahead.copy_from(&c);
        ahead.next_decision();
        assert_eq!(ahead.load(20), load(0, 1));
        ahead.next_decision();
        assert_eq!(
            (ahead.load(0), ahead.load(20), ahead.load(300)),
            (load(0, 1), load(0, 0), load(1, 0))
        );
        // The copy moved on; the original did not.
        assert_eq!(c.load(0), load(1, 0));
        // Without a log every server stays at zero.
        let mut none = LoadCursor::new(None, 2);
        none.next_decision();
        assert_eq!(none.load(1), Load::default());
    }

    fn load(active: u32, inactive: u32) -> Load {
        Load { active, inactive }
    }
}
