//! What the order search and the runs read, worked out once per service: the connections in
//! the order their entries were created, the scheduled ones among them, and the counters each
//! scheduled decision saw. About 4 bytes a connection, and the load log where it is needed.

use super::arrivals::{Arrivals, Kind};
use super::loads::LoadLog;
use super::unscheduled::Walked;
use super::ReplayInput;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Connections in the order their entries were created (ties by index): the order the
/// kernel saw them in.
pub(super) struct CreationOrder {
    len: usize,
    /// None when it is the table's order, as it nearly always is: connections come sorted by
    /// first packet, and the first packet is what creates the entry.
    sorted: Option<Vec<u32>>,
}

impl CreationOrder {
    pub fn new(inp: &ReplayInput) -> CreationOrder {
        let conns = inp.conns;
        let created = |i: u32| conns.created_ns(i as usize, inp.proto);
        let n = u32::try_from(conns.len()).expect("fewer than 2^32 connections a service");
        let in_table_order = (1..n).all(|i| created(i - 1) <= created(i));
        CreationOrder {
            len: conns.len(),
            sorted: (!in_table_order).then(|| {
                let mut order: Vec<u32> = (0..n).collect();
                order.sort_unstable_by_key(|&i| (created(i), i));
                order
            }),
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// The `k`th connection created.
    pub fn at(&self, k: usize) -> usize {
        match &self.sorted {
            Some(order) => order[k] as usize,
            None => k,
        }
    }
}

pub(super) struct Plan {
    pub order: CreationOrder,
    /// The connections the scheduler decided on, in creation order.
    pub scheduled: Vec<u32>,
    /// None for schedulers that neither read the counters nor show them as evidence.
    pub loads: Option<LoadLog>,
}

impl Plan {
    /// The plan, and the report's walk over the same decisions ([`Walked`]).
    pub fn new(inp: &ReplayInput, with_loads: bool) -> (Plan, Walked) {
        let order = CreationOrder::new(inp);
        let n_cfg = inp.cfg.servers.len();
        // Nearly every connection is a scheduling decision; the capacity never touched is
        // never resident either.
        let mut scheduled = Vec::with_capacity(order.len());
        let mut log = with_loads.then(LoadLog::default);
        let mut walked = Walked::new(inp.conns.len());
        // Counter changes still to come, soonest first: (time, server, change). They come from
        // the entries alive, so this holds a few per entry alive at once.
        let mut pending: BinaryHeap<Reverse<(i64, u32, i8, i8)>> = BinaryHeap::new();
        for (d, life) in Arrivals::new(inp, &order) {
            walked.step(inp, &d);
            if let Some(log) = &mut log {
                while let Some(&Reverse((t, s, a, b))) = pending.peek() {
                    if t >= d.time_ns {
                        break;
                    }
                    log.change(s as usize, i32::from(a), i32::from(b));
                    pending.pop();
                }
                if let Some(s) = inp.server_of(d.conn).filter(|&s| s < n_cfg) {
                    life.for_each_counter_change(|t, a, b| {
                        pending.push(Reverse((t, s as u32, a as i8, b as i8)))
                    });
                }
            }
            if let Kind::Scheduled = d.kind {
                scheduled.push(d.conn as u32);
                if let Some(log) = &mut log {
                    log.decision();
                }
            }
        }
        if let Some(log) = &mut log {
            log.shrink_to_fit();
        }
        let plan = Plan {
            order,
            scheduled,
            loads: log,
        };
        (plan, walked)
    }
}
