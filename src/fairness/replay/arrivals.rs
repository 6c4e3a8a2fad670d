//! What the kernel does with each new connection before (or instead of) calling the
//! scheduler: reuse a live entry, follow a persistence template, or schedule with the
//! connection counters of that moment. None of it depends on the list order: the walk here
//! runs once to plan the runs ([`super::plan::Plan`]) and once more for the report, and keeps
//! nothing per decision.
//!
//! Memory: what the walk holds is bounded by the entries alive at once (the last entry of each
//! client address and port, the persistence templates), not by the connections in the capture.

use super::plan::CreationOrder;
use super::ReplayInput;
use crate::fairness::entry::{EntryLife, TcpState};
use crate::fairness::input::Proto;
use rustc_hash::FxHashMap;
use std::hash::Hash;
use std::net::IpAddr;

const NS: i64 = 1_000_000_000;

#[derive(Debug, Clone, Copy)]
pub(super) enum Kind {
    /// Started before the capture: no decision seen.
    BeforeCapture,
    /// Same client address and port as a live entry: the kernel reused that entry.
    Reused {
        server: Option<usize>,
        state: TcpState,
    },
    /// A persistence template chose the server.
    Persisted {
        server: Option<usize>,
        since_ns: i64,
    },
    /// The scheduler ran (with the counters the plan's load log gives).
    Scheduled,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Decision {
    pub conn: usize,
    pub time_ns: i64,
    pub kind: Kind,
}

pub(super) struct Template {
    server: Option<usize>,
    created_ns: i64,
    timeout_ns: i64,
    expires_ns: i64,
    /// Latest expiry among the connections it controls.
    controlled_until: i64,
}

impl Template {
    /// Whether the template still exists at `t`, following `ip_vs_conn_expire`: a template
    /// that still controls connections when its timer fires is re-armed for 60 s, and that
    /// 60 s becomes its timeout for later uses too.
    pub(super) fn alive_at(&mut self, t: i64) -> bool {
        while self.expires_ns <= t {
            if self.controlled_until > self.expires_ns {
                self.timeout_ns = 60 * NS;
                self.expires_ns += 60 * NS;
            } else {
                return false;
            }
        }
        true
    }
}

pub(super) fn masked(addr: IpAddr, prefix: Option<u8>) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let p = u32::from(prefix.unwrap_or(32).min(32));
            let mask = if p == 0 { 0 } else { u32::MAX << (32 - p) };
            IpAddr::V4((u32::from(a) & mask).into())
        }
        IpAddr::V6(a) => {
            let p = u32::from(prefix.unwrap_or(128).min(128));
            let mask = if p == 0 { 0 } else { u128::MAX << (128 - p) };
            IpAddr::V6((u128::from(a) & mask).into())
        }
    }
}

/// The last entry of a client address and port: the connection (low 31 bits), and whether a
/// persistence template controls it (top bit; then even TIME_WAIT is reused); with when the
/// entry expires, which is all that making room asks of every entry of a full table (rebuilding
/// each one's life for it was a sixth of all the replay's instructions).
#[derive(Clone, Copy)]
struct Live(u32, i64);

const CONTROLLED: u32 = 1 << 31;

impl Live {
    fn conn(self) -> usize {
        (self.0 & !CONTROLLED) as usize
    }
    fn controlled(self) -> bool {
        self.0 & CONTROLLED != 0
    }
}

/// Makes room in a table of live entries before an insertion: when it is full, the entries
/// `alive` says are gone are dropped, and the table is built again with room for a third more
/// than what stays. Its size follows the entries alive at once (a hash map that only grows
/// would reach twice that and more: removals leave tombstones, which count as used until it
/// rebuilds), at a cost of a few `alive` calls and moves per insertion over time.
///
/// The entries that stay wait in a list while the old table is freed and the new one built,
/// so that the two tables are never held at once: the old beside the new was the memory peak
/// of `verify` on a million connections (+29 MB over what the analysis holds after it).
fn make_room<K: Eq + Hash, V>(
    table: &mut FxHashMap<K, V>,
    mut alive: impl FnMut(&K, &mut V) -> bool,
) {
    if table.len() < table.capacity() {
        return;
    }
    let kept: Vec<(K, V)> = std::mem::take(table)
        .into_iter()
        .filter_map(|(k, mut v)| alive(&k, &mut v).then_some((k, v)))
        .collect();
    let live = kept.len();
    let mut rebuilt = FxHashMap::with_capacity_and_hasher(live + live / 3 + 1, Default::default());
    rebuilt.extend(kept);
    *table = rebuilt;
}

/// The decisions, one per connection in creation order, as an iterator; each comes with the
/// connection's entry.
pub(super) struct Arrivals<'a> {
    inp: &'a ReplayInput<'a>,
    order: &'a CreationOrder,
    next: usize,
    /// The last entry of each client address and port.
    by_client: FxHashMap<(u32, u16), Live>,
    /// Persistence templates by masked client address.
    templates: FxHashMap<IpAddr, Template>,
}

impl<'a> Arrivals<'a> {
    pub fn new(inp: &'a ReplayInput<'a>, order: &'a CreationOrder) -> Arrivals<'a> {
        assert!(
            order.len() <= CONTROLLED as usize,
            "at most 2^31 connections a service"
        );
        Arrivals {
            inp,
            order,
            next: 0,
            by_client: FxHashMap::default(),
            templates: FxHashMap::default(),
        }
    }

    /// Notes connection `i` as the last of its client address and port; returns the one
    /// before it. Entries expired by the time its entry is created are forgotten: a later
    /// connection of that client, created then or after, would not find them alive.
    fn arrive(&mut self, i: usize, life: &EntryLife) -> Option<Live> {
        let t = life.created_ns;
        let by_client = &mut self.by_client;
        make_room(by_client, |_, e| e.1 > t);
        by_client.insert(
            self.inp.conns.client_key(i),
            Live(i as u32, life.expires_ns),
        )
    }

    fn set_controlled(&mut self, i: usize, controlled: bool) {
        if let Some(e) = self.by_client.get_mut(&self.inp.conns.client_key(i)) {
            e.0 = i as u32 | if controlled { CONTROLLED } else { 0 };
        }
    }

    /// The server a live persistence template for `i`'s client sends it to, if there is one
    /// (`since` its creation); otherwise makes one from `i`.
    fn follow_template(&mut self, i: usize, life: &EntryLife, timeout_s: u32) -> Option<Kind> {
        let inp = self.inp;
        let t = life.created_ns;
        let key = masked(inp.conns.client(i).ip(), inp.cfg.netmask_prefix);
        let templates = &mut self.templates;
        if let Some(tpl) = templates.get_mut(&key) {
            if tpl.alive_at(t) {
                // A template whose server we never saw learns it from the first
                // connection that shows one.
                if tpl.server.is_none() {
                    tpl.server = inp.server_of(i);
                }
                tpl.expires_ns = t + tpl.timeout_ns;
                tpl.controlled_until = tpl.controlled_until.max(life.expires_ns);
                return Some(Kind::Persisted {
                    server: tpl.server,
                    since_ns: tpl.created_ns,
                });
            }
        }
        // Gone templates go when the table is full: `alive_at` would say so later too, and
        // moving one on to `t` is what a later look-up would do first.
        make_room(templates, |_, tpl| tpl.alive_at(t));
        let timeout_ns = i64::from(timeout_s) * NS;
        templates.insert(
            key,
            Template {
                server: inp.server_of(i),
                created_ns: t,
                timeout_ns,
                expires_ns: t + timeout_ns,
                controlled_until: life.expires_ns,
            },
        );
        None
    }
}

impl Iterator for Arrivals<'_> {
    type Item = (Decision, EntryLife);

    fn next(&mut self) -> Option<(Decision, EntryLife)> {
        let inp = self.inp;
        if self.next == self.order.len() {
            return None;
        }
        let i = self.order.at(self.next);
        self.next += 1;
        let life = life_of(inp, i);
        let t = life.created_ns;
        let decision = |kind| {
            Some((
                Decision {
                    conn: i,
                    time_ns: t,
                    kind,
                },
                life,
            ))
        };
        let previous = self.arrive(i, &life);
        if !life.scheduled {
            return decision(Kind::BeforeCapture);
        }
        // An entry already expired has no state at `t`: its life is not rebuilt to say so.
        if let Some(j) = previous.filter(|j| j.1 > t) {
            if let Some(state) = life_of(inp, j.conn()).state_at(t) {
                // is_new_conn_expected (conn_reuse_mode 1): an entry in TIME_WAIT or CLOSE
                // (an RST from the client) is expired and the SYN scheduled afresh.
                let ended = matches!(state, TcpState::TimeWait | TcpState::Close);
                let reuse = inp.proto != Proto::Tcp || !ended || j.controlled();
                if reuse {
                    self.set_controlled(i, j.controlled());
                    return decision(Kind::Reused {
                        server: inp.server_of(j.conn()),
                        state,
                    });
                }
            }
        }
        if let Some(p) = inp.cfg.persistence_s {
            self.set_controlled(i, true);
            if let Some(kind) = self.follow_template(i, &life, p) {
                return decision(kind);
            }
        }
        decision(Kind::Scheduled)
    }
}

/// The entry of connection `i`.
fn life_of(inp: &ReplayInput, i: usize) -> EntryLife {
    let c = inp.conns.times(i);
    EntryLife::of(inp.proto, c.tcp, c.start_ns, c.last_ns, inp.timeouts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_client_addresses() {
        assert_eq!(
            masked("10.1.2.3".parse().unwrap(), Some(24)),
            "10.1.2.0".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            masked("10.1.2.3".parse().unwrap(), None),
            "10.1.2.3".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            masked("2001:db8::1".parse().unwrap(), Some(64)),
            "2001:db8::".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn full_tables_drop_the_dead_and_stay_near_the_live() {
        // Keys are arrival times; an entry lives 1 000 after its arrival, one arrives per tick.
        let mut table: FxHashMap<u64, u64> = FxHashMap::default();
        let mut largest = 0;
        for t in 0..100_000u64 {
            make_room(&mut table, |&k, _| k + 1_000 > t);
            table.insert(t, t);
            largest = largest.max(table.capacity());
            // Everything alive is still there.
            if t % 997 == 0 {
                assert!((t.saturating_sub(999)..=t).all(|k| table.contains_key(&k)));
            }
        }
        // 1 000 alive at once: a table that only grew would have reached 100 000.
        assert!(largest < 4_000, "capacity {largest}");
    }

    #[test]
    fn template_is_pushed_back_while_it_controls_connections() {
        let mut t = Template {
            server: Some(0),
            created_ns: 0,
            timeout_ns: 10 * NS,
            expires_ns: 10 * NS,
            controlled_until: 75 * NS,
        };
        // Fires at 10 s with a live connection: 70 s, then 130 s (the connection is gone at 75).
        assert!(t.alive_at(100 * NS));
        assert_eq!(t.expires_ns, 130 * NS);
        assert_eq!(t.timeout_ns, 60 * NS);
        assert!(!t.alive_at(130 * NS));
    }
}
