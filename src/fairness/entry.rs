//! The life of one IPVS connection entry, rebuilt from the client packets the director saw.
//!
//! lc, wlc, sed and nq decide from each server's `activeconns` and `inactconns`, and those
//! counters follow entries, not TCP connections: an entry counts from the SYN that created it
//! until its timer expires, which is the last client packet plus the timeout of the state it
//! was in. In tunnel mode the director sees only client packets, so the kernel uses the
//! INPUT-ONLY rows of `tcp_states[]` (ip_vs_proto_tcp.c); a state counts as active when
//! `tcp_state_active_table[]` says so (SYN_RECV and ESTABLISHED among the reachable ones).
//! New entries start inactive (`__ip_vs_update_dest` puts IP_VS_CONN_F_INACTIVE in the
//! destination's conn_flags) and UDP entries never change (ip_vs_proto_udp.c has no counter
//! updates), so UDP entries stay inactive for their whole life.

use super::input::{ConnObs, Proto, TcpMarks, Timeouts};

const NS: i64 = 1_000_000_000;

/// The TCP states reachable from a SYN through the INPUT-ONLY table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpState {
    None,
    SynRecv,
    Established,
    FinWait,
    TimeWait,
    Close,
}

/// Which row of the state table a client packet selects (`tcp_state_idx`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TcpEvent {
    Syn,
    Ack,
    Fin,
    Rst,
}

impl TcpState {
    /// INPUT-ONLY rows of `tcp_states[]`, restricted to the reachable columns.
    pub fn next(self, ev: TcpEvent) -> TcpState {
        use TcpEvent::*;
        use TcpState::*;
        match (ev, self) {
            (Syn, Established) => Established,
            (Syn, _) => SynRecv,
            (Fin, None) => Close,
            (Fin, Established) => FinWait,
            (Fin, SynRecv) => TimeWait,
            (Fin, FinWait) => FinWait,
            (Fin, TimeWait) => TimeWait,
            (Fin, Close) => Close,
            (Ack, None) => Established,
            (Ack, SynRecv) => Established,
            (Ack, s) => s,
            (Rst, SynRecv) => SynRecv,
            (Rst, _) => Close,
        }
    }

    /// The name `ipvsadm -Lnc` prints for the state (UDP entries print "UDP").
    pub fn ipvs_name(self) -> &'static str {
        match self {
            TcpState::None => "NONE",
            TcpState::SynRecv => "SYN_RECV",
            TcpState::Established => "ESTABLISHED",
            TcpState::FinWait => "FIN_WAIT",
            TcpState::TimeWait => "TIME_WAIT",
            TcpState::Close => "CLOSE",
        }
    }

    /// `tcp_state_active_table[]`.
    pub fn is_active(self) -> bool {
        matches!(self, TcpState::SynRecv | TcpState::Established)
    }

    /// `tcp_timeouts[]`, with the two values `ipvsadm --set` can change taken from `t`.
    pub fn timeout_ns(self, t: &Timeouts) -> i64 {
        let s = match self {
            TcpState::None => 2,
            TcpState::SynRecv => 60,
            TcpState::Established => i64::from(t.tcp_established_s),
            TcpState::FinWait => i64::from(t.tcp_fin_wait_s),
            TcpState::TimeWait => 120,
            TcpState::Close => 10,
        };
        s * NS
    }
}

/// Most states an entry passes through: the first, then one per client flag (SYN, ACK, FIN,
/// RST) that changes it.
const MAX_SEGMENTS: usize = 5;

/// When an entry existed and when it counted as active. Plain data on the stack: the replay
/// rebuilds one per connection as it needs it rather than keeping them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryLife {
    pub created_ns: i64,
    pub expires_ns: i64,
    /// (from, state) in time order, the first `n_segments` of them; the first one starts at
    /// `created_ns`. UDP entries have a single segment in state `None` (never active).
    segments: [(i64, TcpState); MAX_SEGMENTS],
    n_segments: u8,
    /// The entry was created by a SYN (or a first UDP packet) inside the capture, so the
    /// scheduler ran for it; false for connections already running when the capture began.
    pub scheduled: bool,
}

/// When the entry of a connection was created: at its SYN when one was seen, else at its first
/// packet (a TCP connection without a SYN predates the capture; UDP has no SYN).
pub fn created_ns(proto: Proto, tcp: Option<TcpMarks>, start_ns: i64) -> i64 {
    match (proto, tcp.and_then(|m| m.syn_ns)) {
        (Proto::Tcp, Some(syn)) => syn,
        _ => start_ns,
    }
}

impl EntryLife {
    pub fn from_conn(c: &ConnObs, proto: Proto, timeouts: &Timeouts) -> EntryLife {
        EntryLife::of(proto, c.tcp, c.start_ns, c.last_ns, timeouts)
    }

    /// The entry of a connection whose first and last client packets reached the director at
    /// `start_ns` and `last_ns`, with the client's TCP flags at `tcp`.
    pub fn of(
        proto: Proto,
        tcp: Option<TcpMarks>,
        start_ns: i64,
        last_ns: i64,
        timeouts: &Timeouts,
    ) -> EntryLife {
        match (proto, tcp) {
            (Proto::Tcp, Some(m)) => {
                let mut events = [(0, TcpEvent::Syn); 4];
                let mut n_events = 0;
                for (t, e) in [
                    (m.syn_ns, TcpEvent::Syn),
                    (m.ack_ns, TcpEvent::Ack),
                    (m.fin_ns, TcpEvent::Fin),
                    (m.rst_ns, TcpEvent::Rst),
                ] {
                    if let Some(t) = t {
                        events[n_events] = (t, e);
                        n_events += 1;
                    }
                }
                events[..n_events].sort_unstable();
                let scheduled = m.syn_ns.is_some();
                // Without a SYN the entry predates the capture; its packets are ACKs, which take
                // an entry to ESTABLISHED in the INPUT-ONLY table.
                let (created, mut state) = match m.syn_ns {
                    Some(t) => (t, TcpState::None),
                    None => (start_ns, TcpState::Established),
                };
                let mut life = EntryLife::starting(created, state, scheduled);
                for &(t, ev) in &events[..n_events] {
                    let next = state.next(ev);
                    if next != state {
                        life.segments[usize::from(life.n_segments)] = (t.max(created), next);
                        life.n_segments += 1;
                        state = next;
                    }
                }
                let last = last_ns.max(life.segments().last().map_or(created, |s| s.0));
                life.expires_ns = last + state.timeout_ns(timeouts);
                life
            }
            _ => {
                let mut life = EntryLife::starting(start_ns, TcpState::None, true);
                life.expires_ns = last_ns.max(start_ns) + i64::from(timeouts.udp_s) * NS;
                life
            }
        }
    }

    /// An entry with its first segment only, expiring at once (the caller sets the expiry).
    fn starting(created_ns: i64, state: TcpState, scheduled: bool) -> EntryLife {
        EntryLife {
            created_ns,
            expires_ns: created_ns,
            segments: [(created_ns, state); MAX_SEGMENTS],
            n_segments: 1,
            scheduled,
        }
    }

    /// (from, state) in time order; the first one starts at `created_ns`.
    pub fn segments(&self) -> &[(i64, TcpState)] {
        &self.segments[..usize::from(self.n_segments)]
    }

    pub fn state_at(&self, t: i64) -> Option<TcpState> {
        if t < self.created_ns || t >= self.expires_ns {
            return None;
        }
        self.segments()
            .iter()
            .take_while(|(from, _)| *from <= t)
            .last()
            .map(|s| s.1)
    }

    /// Counter changes this entry causes over its life: (time, d_active, d_inactive).
    pub fn counter_changes(&self) -> Vec<(i64, i32, i32)> {
        let mut out = Vec::with_capacity(usize::from(self.n_segments) + 1);
        self.for_each_counter_change(|t, a, b| out.push((t, a, b)));
        out
    }

    /// [`EntryLife::counter_changes`] handed to `f` one at a time, in time order.
    pub fn for_each_counter_change(&self, mut f: impl FnMut(i64, i32, i32)) {
        let mut active: Option<bool> = None;
        for &(t, s) in self.segments() {
            let now = s.is_active();
            match active {
                None if now => f(t, 1, 0),
                None => f(t, 0, 1),
                Some(was) if was != now && now => f(t, 1, -1),
                Some(was) if was != now => f(t, -1, 1),
                _ => {}
            }
            active = Some(now);
        }
        match active {
            Some(true) => f(self.expires_ns, -1, 0),
            Some(false) => f(self.expires_ns, 0, -1),
            None => {}
        }
    }
}

/// The counters `ipvsadm -Ln` would show at `t` (ActiveConn, InActConn) per real server,
/// rebuilt from the connections seen: for comparing with a snapshot taken on the director.
/// Connections with no observed server are left out.
pub fn counters_at(
    conns: &[ConnObs],
    proto: Proto,
    timeouts: &Timeouts,
    t: i64,
) -> Vec<(std::net::IpAddr, u32, u32)> {
    let mut out: Vec<(std::net::IpAddr, u32, u32)> = Vec::new();
    for c in conns {
        let Some(rs) = c.rs else { continue };
        let life = EntryLife::from_conn(c, proto, timeouts);
        let Some(state) = life.state_at(t) else {
            continue;
        };
        let active = proto == Proto::Tcp && state.is_active();
        let slot = match out.iter_mut().position(|e| e.0 == rs) {
            Some(i) => i,
            None => {
                out.push((rs, 0, 0));
                out.len() - 1
            }
        };
        if active {
            out[slot].1 += 1;
        } else {
            out[slot].2 += 1;
        }
    }
    out.sort_by_key(|e| e.0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fairness::input::TcpMarks;

    fn conn(marks: Option<TcpMarks>, start: i64, last: i64) -> ConnObs {
        ConnObs {
            client: "10.0.0.1:40000".parse().unwrap(),
            rs: None,
            start_ns: start,
            last_ns: last,
            tcp: marks,
            packets_to_server: 0,
            bytes_to_server: 0,
            packets_to_client: 0,
            bytes_to_client: 0,
            response_time_ns: None,
            first_frame: None,
        }
    }

    #[test]
    fn input_only_table_matches_kernel_rows() {
        use TcpEvent::*;
        use TcpState::*;
        // Rows of the INPUT-ONLY part of tcp_states[] for the reachable columns
        // (sNO, sES, sSR, sFW, sTW, sCL).
        let cols = [None, Established, SynRecv, FinWait, TimeWait, Close];
        let rows = [
            (
                Syn,
                [SynRecv, Established, SynRecv, SynRecv, SynRecv, SynRecv],
            ),
            (Fin, [Close, FinWait, TimeWait, FinWait, TimeWait, Close]),
            (
                Ack,
                [
                    Established,
                    Established,
                    Established,
                    FinWait,
                    TimeWait,
                    Close,
                ],
            ),
            (Rst, [Close, Close, SynRecv, Close, Close, Close]),
        ];
        for (ev, expect) in rows {
            for (col, want) in cols.iter().zip(expect) {
                assert_eq!(col.next(ev), want, "{ev:?} from {col:?}");
            }
        }
    }

    #[test]
    fn closed_connection_turns_inactive_at_fin_and_expires_fin_wait_later() {
        let m = TcpMarks {
            syn_ns: Some(0),
            ack_ns: Some(NS),
            fin_ns: Some(5 * NS),
            rst_ns: None,
        };
        let t = Timeouts::default();
        let life = EntryLife::from_conn(&conn(Some(m), 0, 6 * NS), Proto::Tcp, &t);
        assert!(life.scheduled);
        assert_eq!(life.expires_ns, 6 * NS + 120 * NS);
        assert_eq!(life.state_at(0), Some(TcpState::SynRecv));
        assert_eq!(life.state_at(2 * NS), Some(TcpState::Established));
        assert_eq!(life.state_at(5 * NS), Some(TcpState::FinWait));
        assert_eq!(life.state_at(126 * NS), None);
        assert_eq!(
            life.counter_changes(),
            vec![(0, 0, 1), (0, 1, -1), (5 * NS, -1, 1), (126 * NS, 0, -1)]
        );
    }

    #[test]
    fn open_connection_stays_active_for_the_established_timeout() {
        let m = TcpMarks {
            syn_ns: Some(0),
            ack_ns: Some(NS),
            ..TcpMarks::default()
        };
        let t = Timeouts {
            tcp_established_s: 30,
            ..Timeouts::default()
        };
        let life = EntryLife::from_conn(&conn(Some(m), 0, 10 * NS), Proto::Tcp, &t);
        assert_eq!(life.expires_ns, 40 * NS);
        assert_eq!(life.counter_changes().last(), Some(&(40 * NS, -1, 0)));
    }

    #[test]
    fn syn_only_lives_sixty_seconds_and_rst_in_syn_recv_keeps_it() {
        let m = TcpMarks {
            syn_ns: Some(0),
            rst_ns: Some(NS),
            ..TcpMarks::default()
        };
        let life = EntryLife::from_conn(&conn(Some(m), 0, NS), Proto::Tcp, &Timeouts::default());
        assert_eq!(life.expires_ns, NS + 60 * NS);
        assert_eq!(life.state_at(2 * NS), Some(TcpState::SynRecv));
    }

    #[test]
    fn udp_entries_are_inactive_for_300_seconds_after_the_last_packet() {
        let life = EntryLife::from_conn(&conn(None, 0, 2 * NS), Proto::Udp, &Timeouts::default());
        assert_eq!(life.expires_ns, 302 * NS);
        assert_eq!(life.counter_changes(), vec![(0, 0, 1), (302 * NS, 0, -1)]);
    }

    #[test]
    fn connection_without_syn_predates_the_capture() {
        let m = TcpMarks {
            fin_ns: Some(3 * NS),
            ..TcpMarks::default()
        };
        let life =
            EntryLife::from_conn(&conn(Some(m), NS, 4 * NS), Proto::Tcp, &Timeouts::default());
        assert!(!life.scheduled);
        assert_eq!(life.state_at(NS), Some(TcpState::Established));
        assert_eq!(life.state_at(3 * NS), Some(TcpState::FinWait));
    }
}
