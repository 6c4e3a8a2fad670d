//! `capture.time`: whether the captures ran at the same time, and how far apart their clocks
//! are.
//!
//! Connections are followed from one capture into another by their packets, and a capture
//! that was not running cannot show a packet: two captures taken one after the other look
//! like a director whose connections vanish. Clocks that differ are corrected
//! (`flows/clock.rs` matches packets seen in two captures), so an offset is only worth a note:
//! evidence times are each host's own clock, and the hosts' logs will not line up either. An
//! offset of whole hours is a time-zone mistake more often than a drifting clock. Two captures
//! of one host at once (eth0 and tunl0) are fine, and said so that nobody counts twice.

use super::{described, name};
use crate::checks::{CheckResult, Context, Finding, PacketRef, Status, MAX_EVIDENCE};
use crate::flows::clock::{ClockOffset, OffsetMethod};
use crate::topology::{MacAddr, Role, Vantage, VantageId};
use std::collections::HashMap;
use std::net::IpAddr;

pub const ID: &str = "capture.time";

const SECOND_NS: i64 = 1_000_000_000;
/// Clock offsets above this are noted.
const CLOCK_NOTE_NS: i64 = SECOND_NS;
const HOUR_NS: i64 = 3600 * SECOND_NS;
/// An offset this close to a whole number of hours (at least one) hints at a time zone.
const WHOLE_HOURS_SLACK_NS: i64 = 60 * SECOND_NS;

/// One vantage point's time range on the reference clock.
struct Span<'a> {
    v: &'a Vantage,
    start: i64,
    end: i64,
    /// How far the correction may be off.
    slack: i64,
    /// Its clock was matched against the others (else its own clock is used as is).
    matched: bool,
}

fn spans<'a>(ctx: &Context<'a>) -> Vec<Span<'a>> {
    let mut offsets: HashMap<VantageId, &ClockOffset> = HashMap::new();
    for o in &ctx.analysis.clock_offsets {
        offsets.entry(o.vantage).or_insert(o);
    }
    ctx.analysis
        .topology
        .vantages
        .iter()
        .filter_map(|v| {
            let (first, last) = (v.packets.earliest?, v.packets.latest?);
            let offset = offsets.get(&v.id);
            let (off, slack, matched) = match offset {
                Some(o) if o.method != OffsetMethod::Unmatched => {
                    (o.offset_ns, o.uncertainty_ns.max(0), true)
                }
                _ => (0, 0, false),
            };
            Some(Span {
                v,
                start: first.ts_ns.saturating_sub(off),
                end: last.ts_ns.saturating_sub(off),
                slack,
                matched,
            })
        })
        .collect()
}

/// A duration for people: "121 µs", "850 ms", "3.500 s", "4 min 12 s", "2 h 0 min", "3 d 4 h".
pub fn duration(ns: i64) -> String {
    let ns = ns.unsigned_abs();
    // From a minute on, to the nearest second: 3599.99 s of a clock an hour off is "1 h".
    let s = if ns >= 60_000_000_000 {
        (ns + 500_000_000) / 1_000_000_000
    } else {
        ns / 1_000_000_000
    };
    match s {
        0 if ns < 1_000_000 => format!("{} µs", ns / 1000),
        0 => format!("{} ms", ns / 1_000_000),
        1..=59 => format!("{:.3} s", ns as f64 / 1e9),
        60..=3599 => format!("{} min {} s", s / 60, s % 60),
        3600..=86_399 => format!("{} h {} min", s / 3600, (s % 3600) / 60),
        _ => format!("{} d {} h", s / 86_400, (s % 86_400) / 3600),
    }
}

fn edge(ctx: &Context, v: &Vantage, last: bool) -> Option<PacketRef> {
    let (at, what) = if last {
        (v.packets.latest?, "its latest frame, by its own clock")
    } else {
        (v.packets.earliest?, "its earliest frame, by its own clock")
    };
    Some(ctx.packet(&at, what))
}

fn apart(ctx: &Context, a: &Span, b: &Span) -> Finding {
    let gap = b.start - a.end;
    let unmatched = !(a.matched && b.matched);
    Finding {
        snapshot: Vec::new(),
        check: ID,
        severity: Status::Warn,
        summary: format!(
            "{} ended {} before {} began: they were not capturing at the same time, so no \
             connection can be followed from one into the other{}",
            name(ctx, a.v.id),
            duration(gap),
            name(ctx, b.v.id),
            if unmatched {
                " (no packet in common tells their clocks apart: if a clock is wrong, so is \
                 this gap)"
            } else {
                ""
            }
        ),
        host: None,
        count: 2,
        out_of: None,
        evidence: [edge(ctx, a.v, true), edge(ctx, b.v, false)]
            .into_iter()
            .flatten()
            .collect(),
        display_filter: None,
        likely_cause: "the captures were started and stopped at different times (one during \
                       the test, another before or after it), or a host's clock is wrong"
            .into(),
        fix: "start every capture before the clients connect and stop them all after the last \
              request: tcpdump -i eth0 -s 0 -w HOST.pcap on every host at once"
            .into(),
    }
}

fn clock_note(ctx: &Context, off: &ClockOffset) -> Option<Finding> {
    if !matches!(
        off.method,
        OffsetMethod::TwoWay | OffsetMethod::OneWay | OffsetMethod::Unordered
    ) || off.offset_ns.abs() <= CLOCK_NOTE_NS
    {
        return None;
    }
    let topo = &ctx.analysis.topology;
    let (v, reference) = (topo.vantage(off.vantage)?, topo.vantage(off.reference)?);
    let hours = (off.offset_ns.abs() + HOUR_NS / 2) / HOUR_NS;
    let whole_hours =
        hours >= 1 && (off.offset_ns.abs() - hours * HOUR_NS).abs() <= WHOLE_HOURS_SLACK_NS;
    let zone = if whole_hours {
        format!(
            "; that is close to {hours} whole hour{}: a clock set to local time on a host \
             that keeps UTC (or the other way round), or a wrong time zone",
            if hours == 1 { "" } else { "s" }
        )
    } else {
        String::new()
    };
    Some(Finding {
        snapshot: Vec::new(),
        check: ID,
        severity: Status::Info,
        summary: format!(
            "the clock of {} is {} {} that of {} (from {} packets seen in both, ± {}): the \
             connections are matched across them all the same, but times in the evidence are \
             each host's own",
            described(ctx, v),
            duration(off.offset_ns),
            if off.offset_ns > 0 {
                "ahead of"
            } else {
                "behind"
            },
            described(ctx, reference),
            off.samples,
            duration(off.uncertainty_ns)
        ),
        host: None,
        count: 1,
        out_of: None,
        evidence: [edge(ctx, v, false), edge(ctx, reference, false)]
            .into_iter()
            .flatten()
            .collect(),
        display_filter: None,
        likely_cause: format!("the hosts' clocks are not synchronised{zone}"),
        fix: if whole_hours {
            "check timedatectl on both hosts (time zone, RTC in local TZ); run NTP or chrony on \
             every host (chronyc tracking shows the offset)"
                .into()
        } else {
            "run NTP or chrony on every host (chronyc tracking shows the offset)".into()
        },
    })
}

fn host_of(ctx: &Context, v: &Vantage) -> String {
    v.address
        .map(|x| ctx.host(x))
        .or_else(|| v.local_mac.map(|m| m.to_string()))
        .unwrap_or_default()
}

fn twice(ctx: &Context, a: &Span, b: &Span) -> Finding {
    let host = host_of(ctx, a.v);
    Finding {
        snapshot: Vec::new(),
        check: ID,
        severity: Status::Info,
        summary: format!(
            "{} and {} are two captures of one host ({host}) over the same time: a connection \
             both show is one record, counted once",
            name(ctx, a.v.id),
            name(ctx, b.v.id)
        ),
        host: Some(host),
        count: 2,
        out_of: None,
        evidence: [edge(ctx, a.v, false), edge(ctx, b.v, false)]
            .into_iter()
            .flatten()
            .collect(),
        display_filter: None,
        likely_cause: TWICE_CAUSE.into(),
        fix: "nothing needed".into(),
    }
}

const TWICE_CAUSE: &str =
    "the host was captured on two interfaces (eth0 and tunl0, or -i any) or twice";

/// Captures named one by one in a finding about many; the rest are counted.
const MAX_NAMED: usize = 3;

/// Three or more captures of one host over the same time: one finding that names a few and
/// counts the rest, not one per pair (a pcapng with a thousand interfaces of one host would
/// otherwise give half a million).
fn many_times(ctx: &Context, spans: &[Span], members: &[usize]) -> Finding {
    let host = host_of(ctx, spans[members[0]].v);
    let named: Vec<String> = members
        .iter()
        .take(MAX_NAMED)
        .map(|&i| name(ctx, spans[i].v.id))
        .collect();
    let rest = members.len() - named.len();
    let list = if rest > 0 {
        format!("{} and {rest} more", named.join(", "))
    } else {
        let (last, first) = named.split_last().expect("three or more");
        format!("{} and {last}", first.join(", "))
    };
    Finding {
        snapshot: Vec::new(),
        check: ID,
        severity: Status::Info,
        summary: format!(
            "{list} are {} captures of one host ({host}) over the same time: a connection \
             several show is one record, counted once",
            members.len()
        ),
        host: Some(host),
        count: members.len() as u64,
        out_of: None,
        evidence: members
            .iter()
            .take(MAX_EVIDENCE)
            .filter_map(|&i| edge(ctx, spans[i].v, false))
            .collect(),
        display_filter: None,
        likely_cause: "the host was captured on several interfaces (eth0 and tunl0, or -i any) \
                       or several times"
            .into(),
        fix: "nothing needed".into(),
    }
}

/// A span's range widened by its clock's uncertainty: two captures did not run at the same
/// time when one's widened end is before the other's widened start (`a.end + a.slack + b.slack
/// < b.start`), so each pair test becomes a comparison of two numbers that can be sorted.
fn widened(s: &Span) -> (i64, i64) {
    (
        s.start.saturating_sub(s.slack),
        s.end.saturating_add(s.slack),
    )
}

/// Pairs of captures that did not run at the same time named one by one; the rest are counted.
const MAX_APART_LISTED: usize = 16;

/// The pairs (earlier, later) of widened ranges that do not overlap: at most
/// [`MAX_APART_LISTED`] of them, in index order, and how many there are in all. Sorting the
/// starts and the ends makes this O(n log n) rather than a test of every pair.
fn apart_pairs(ranges: &[(i64, i64)]) -> (Vec<(usize, usize)>, u64) {
    let mut by_end: Vec<(i64, usize)> = ranges.iter().enumerate().map(|(i, r)| (r.1, i)).collect();
    by_end.sort_unstable();
    let mut by_start: Vec<(i64, usize)> =
        ranges.iter().enumerate().map(|(i, r)| (r.0, i)).collect();
    by_start.sort_unstable();
    let mut listed = Vec::new();
    let mut total: u64 = 0;
    // For each later range (by start), the earlier ones are a prefix of the ranges by end.
    let mut ended = 0;
    for &(start, b) in &by_start {
        while ended < by_end.len() && by_end[ended].0 < start {
            ended += 1;
        }
        total += ended as u64;
        let room = MAX_APART_LISTED - listed.len();
        listed.extend(by_end[..ended].iter().take(room).map(|&(_, a)| (a, b)));
    }
    listed.sort_unstable_by_key(|&(a, b)| (a.min(b), a.max(b)));
    (listed, total)
}

fn apart_rest(count: u64, listed: usize, spans: usize) -> Finding {
    Finding {
        snapshot: Vec::new(),
        check: ID,
        severity: Status::Warn,
        summary: format!(
            "{} more pairs of the {spans} captures were not capturing at the same time (the \
             first {listed} pairs are listed one by one)",
            count - listed as u64
        ),
        host: None,
        count,
        out_of: Some(spans as u64 * (spans as u64 - 1) / 2),
        evidence: Vec::new(),
        display_filter: None,
        likely_cause: "the captures were started and stopped at different times, or the \
                       capture interfaces or sections of one file were recorded one after \
                       another"
            .into(),
        fix: "start every capture before the clients connect and stop them all after the last \
              request"
            .into(),
    }
}

/// Who took a capture, as far as telling two captures of one host apart goes: its LVS role,
/// address and capturing MAC.
type HostKey = (Role, Option<IpAddr>, Option<MacAddr>);

/// Groups of captures of one host (the same role, not `other`, and the same address or
/// capturing MAC, transitively) whose widened ranges overlap, each sorted by index: found by
/// joining captures that share a key and sweeping each host's captures by start, not by
/// testing every pair.
fn same_host_groups(keys: &[HostKey], ranges: &[(i64, i64)]) -> Vec<Vec<usize>> {
    fn root(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    let mut parent: Vec<usize> = (0..keys.len()).collect();
    let mut by_address = HashMap::new();
    let mut by_mac = HashMap::new();
    for (i, &(role, address, mac)) in keys.iter().enumerate() {
        if role == Role::Other {
            continue;
        }
        let firsts = [
            address.map(|a| *by_address.entry((role, a)).or_insert(i)),
            mac.map(|m| *by_mac.entry((role, m)).or_insert(i)),
        ];
        for first in firsts.into_iter().flatten() {
            let (x, y) = (root(&mut parent, first), root(&mut parent, i));
            parent[x.max(y)] = x.min(y);
        }
    }
    let mut hosts: HashMap<usize, Vec<usize>> = HashMap::new();
    for i in 0..keys.len() {
        let r = root(&mut parent, i);
        hosts.entry(r).or_default().push(i);
    }
    let mut groups = Vec::new();
    for mut members in hosts.into_values().filter(|m| m.len() > 1) {
        members.sort_unstable_by_key(|&i| (ranges[i].0, i));
        let mut group: Vec<usize> = Vec::new();
        // The latest widened end in the group: a capture starting after it overlaps none.
        let mut reach = i64::MIN;
        for i in members {
            let (start, end) = ranges[i];
            if !group.is_empty() && start > reach {
                if group.len() > 1 {
                    groups.push(std::mem::take(&mut group));
                } else {
                    group.clear();
                }
            }
            reach = if group.is_empty() {
                end
            } else {
                reach.max(end)
            };
            group.push(i);
        }
        if group.len() > 1 {
            groups.push(group);
        }
    }
    for g in &mut groups {
        g.sort_unstable();
    }
    groups.sort_unstable();
    groups
}

pub fn check(ctx: &Context) -> CheckResult {
    let spans = spans(ctx);
    if spans.len() < 2 {
        return CheckResult::skip(
            ID,
            "fewer than two captures with frames: no time range or clock to compare",
        );
    }
    let ranges: Vec<(i64, i64)> = spans.iter().map(widened).collect();
    let keys: Vec<HostKey> = spans
        .iter()
        .map(|s| (s.v.role, s.v.address, s.v.local_mac))
        .collect();
    let (apart_listed, apart_count) = apart_pairs(&ranges);
    let mut findings: Vec<Finding> = apart_listed
        .iter()
        .map(|&(a, b)| apart(ctx, &spans[a], &spans[b]))
        .collect();
    if apart_count > apart_listed.len() as u64 {
        findings.push(apart_rest(apart_count, apart_listed.len(), spans.len()));
    }
    for g in same_host_groups(&keys, &ranges) {
        findings.push(match g.as_slice() {
            [a, b] => twice(ctx, &spans[*a], &spans[*b]),
            _ => many_times(ctx, &spans, &g),
        });
    }
    findings.extend(
        ctx.analysis
            .clock_offsets
            .iter()
            .filter_map(|o| clock_note(ctx, o)),
    );
    let unmatched: Vec<String> = spans
        .iter()
        .filter(|s| !s.matched)
        .map(|s| name(ctx, s.v.id))
        .collect();
    // A merged pcapng holds several hosts' interfaces in one file.
    let what = if spans.len() == ctx.analysis.captures.len() {
        "captures"
    } else {
        "capture interfaces"
    };
    let pass = if unmatched.is_empty() {
        format!(
            "the {} {what} ran at the same time and their clocks agree within 1 s",
            spans.len()
        )
    } else {
        format!(
            "the {} {what} ran at the same time by their own clocks; the clock of {} could not \
             be compared with the others (no packet in common)",
            spans.len(),
            unmatched.join(", ")
        )
    };
    CheckResult::from_findings(ID, pass, findings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_people_say_them() {
        assert_eq!(duration(850_000_000), "850 ms");
        assert_eq!(duration(121_500), "121 µs");
        assert_eq!(duration(-3_500_000_000), "3.500 s");
        assert_eq!(duration(252 * 1_000_000_000), "4 min 12 s");
        assert_eq!(duration(7200 * 1_000_000_000), "2 h 0 min");
        assert_eq!(duration(3_599_999_992_000), "1 h 0 min");
        assert_eq!(duration((3 * 86_400 + 4 * 3600) * 1_000_000_000), "3 d 4 h");
    }

    /// Every pair tested, as the check did before it sorted: the specification.
    fn apart_by_pairs(ranges: &[(i64, i64)]) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        for (i, a) in ranges.iter().enumerate() {
            for (j, b) in ranges.iter().enumerate().skip(i + 1) {
                if a.1 < b.0 {
                    out.push((i, j));
                } else if b.1 < a.0 {
                    out.push((j, i));
                }
            }
        }
        out
    }

    #[test]
    fn sorted_ranges_find_the_same_pairs_as_testing_every_pair() {
        let mut state: u64 = 7;
        let mut next = |m: u64| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((state >> 33) % m) as i64
        };
        for _ in 0..300 {
            let n = 2 + next(10) as usize;
            let ranges: Vec<(i64, i64)> = (0..n)
                .map(|_| {
                    let start = next(100);
                    (start, start + next(30))
                })
                .collect();
            let all = apart_by_pairs(&ranges);
            let (listed, total) = apart_pairs(&ranges);
            assert_eq!(total, all.len() as u64, "{ranges:?}");
            if all.len() <= MAX_APART_LISTED {
                assert_eq!(listed, all, "{ranges:?}");
            } else {
                assert_eq!(listed.len(), MAX_APART_LISTED);
                assert!(listed.iter().all(|p| all.contains(p)));
            }
        }
    }

    /// n captures one after the other: n(n-1)/2 pairs did not overlap, counted, and only
    /// [`MAX_APART_LISTED`] of them named.
    #[test]
    fn captures_one_after_another_are_counted_not_all_listed() {
        let n: usize = 10_000;
        let ranges: Vec<(i64, i64)> = (0..n as i64).map(|i| (i * 10, i * 10 + 5)).collect();
        let (listed, total) = apart_pairs(&ranges);
        assert_eq!(total, (n * (n - 1) / 2) as u64);
        assert_eq!(listed.len(), MAX_APART_LISTED);
    }

    #[test]
    fn captures_of_one_host_at_once_are_one_group() {
        let mac = |b: u8| Some(MacAddr([2, 0, 0, 0, 0, b]));
        let ip = |b: u8| Some(IpAddr::from([10, 0, 0, b]));
        let keys: Vec<HostKey> = vec![
            (Role::RealServer, ip(2), mac(2)),
            (Role::RealServer, None, mac(2)),
            (Role::RealServer, ip(2), None),
            (Role::RealServer, ip(3), mac(3)),
            (Role::Client, None, mac(2)),
            (Role::Other, None, mac(9)),
            (Role::Other, None, mac(9)),
            (Role::RealServer, ip(3), None),
        ];
        // All at once, except the last capture of 10.0.0.3, which came after.
        let mut ranges = vec![(0, 10); keys.len()];
        ranges[7] = (20, 30);
        assert_eq!(same_host_groups(&keys, &ranges), vec![vec![0, 1, 2]]);
        ranges[7] = (5, 30);
        assert_eq!(
            same_host_groups(&keys, &ranges),
            vec![vec![0, 1, 2], vec![3, 7]]
        );
    }

    /// A thousand interfaces of one host at once: one group, not half a million pairs.
    #[test]
    fn a_thousand_interfaces_of_one_host_are_one_group() {
        let n = 1000;
        let keys: Vec<HostKey> = vec![(Role::Director, None, Some(MacAddr([2, 0, 0, 0, 0, 2]))); n];
        let ranges: Vec<(i64, i64)> = (0..n as i64).map(|i| (i, i + 5)).collect();
        let groups = same_host_groups(&keys, &ranges);
        assert_eq!(groups, vec![(0..n).collect::<Vec<_>>()]);
    }
}
