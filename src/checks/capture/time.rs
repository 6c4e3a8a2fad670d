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
use crate::checks::{CheckResult, Context, Finding, PacketRef, Status};
use crate::flows::clock::OffsetMethod;
use crate::topology::{Role, Vantage};

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
    ctx.analysis
        .topology
        .vantages
        .iter()
        .filter_map(|v| {
            let (first, last) = (v.packets.earliest?, v.packets.latest?);
            let offset = ctx
                .analysis
                .clock_offsets
                .iter()
                .find(|o| o.vantage == v.id);
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

fn clock_note(ctx: &Context, off: &crate::flows::clock::ClockOffset) -> Option<Finding> {
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

/// The same host: the same LVS role and the same address or capturing MAC.
fn same_host(a: &Vantage, b: &Vantage) -> bool {
    a.role == b.role
        && a.role != Role::Other
        && ((a.address.is_some() && a.address == b.address)
            || (a.local_mac.is_some() && a.local_mac == b.local_mac))
}

fn twice(ctx: &Context, a: &Span, b: &Span) -> Finding {
    let host =
        a.v.address
            .map(|x| ctx.host(x))
            .or_else(|| a.v.local_mac.map(|m| m.to_string()))
            .unwrap_or_default();
    Finding {
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
        likely_cause: "the host was captured on two interfaces (eth0 and tunl0, or -i any) or \
                       twice"
            .into(),
        fix: "nothing needed".into(),
    }
}

pub fn check(ctx: &Context) -> CheckResult {
    let spans = spans(ctx);
    if spans.len() < 2 {
        return CheckResult::skip(
            ID,
            "fewer than two captures with frames: no time range or clock to compare",
        );
    }
    let mut findings = Vec::new();
    for (i, a) in spans.iter().enumerate() {
        for b in &spans[i + 1..] {
            let slack = a.slack + b.slack;
            if a.end + slack < b.start {
                findings.push(apart(ctx, a, b));
            } else if b.end + slack < a.start {
                findings.push(apart(ctx, b, a));
            } else if same_host(a.v, b.v) {
                findings.push(twice(ctx, a, b));
            }
        }
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
    use super::duration;

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
}
