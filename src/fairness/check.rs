//! The `scheduler` check of `verify`: did the director share the load the way it was
//! configured to? Built on the fairness report, so `verify` and `fairness` agree.

use super::input::Scheduler;
use super::outcome::{FairnessReport, ServiceReport};
use std::net::SocketAddr;

use crate::checks::{CheckResult, Finding, PacketRef, Status, MAX_EVIDENCE};

pub const ID: &str = "scheduler";

use super::stats::P_VALUE_ALARM;

pub fn check(report: &FairnessReport) -> CheckResult {
    check_with(report, &|_, _| None)
}

/// The check, with `packet_of(client, time)` giving the packet that shows a mismatched
/// assignment (the client's first packet at the director), for evidence.
pub fn check_with(
    report: &FairnessReport,
    packet_of: &dyn Fn(SocketAddr, i64) -> Option<PacketRef>,
) -> CheckResult {
    let configured: Vec<&ServiceReport> = report
        .services
        .iter()
        .filter(|s| s.scheduler.is_some())
        .collect();
    if report.services.is_empty() {
        return CheckResult::skip(
            ID,
            "the director scheduled no connection seen in these captures",
        );
    }
    if configured.is_empty() {
        return CheckResult::skip(
            ID,
            "no configuration to compare with: give --rules (the output of ipvsadm -Sn)",
        );
    }
    let mut findings = Vec::new();
    let mut summaries = Vec::new();
    // Services with no connection tied to a real server: there is no decision to replay, and
    // "0 of 0 assignments reproduced" would be a pass on nothing.
    let mut nothing = Vec::new();
    for svc in configured {
        let sched = svc.scheduler.map(|s| s.name()).unwrap_or("?");
        let service = format!(
            "{} {}",
            sched,
            crate::fairness::input::service_label(svc.vip, svc.mark)
        );
        if svc.connections <= svc.unattributed {
            nothing.push(format!(
                "{service}: none of its {} connections can be tied to a real server",
                svc.connections
            ));
            continue;
        }
        if let Some(conf) = svc.conformance.as_ref().filter(|c| !c.replayed) {
            summaries.push(format!(
                "{service}: not replayable from captures ({}), statistics only",
                conf.limitations.first().map_or("", |l| l.as_str())
            ));
        }
        if let Some(conf) = svc.conformance.as_ref().filter(|c| c.replayed) {
            let n = conf.decisions + conf.persistent;
            let ok = conf.matched + conf.persistent_matched;
            summaries.push(format!("{service}: {ok} of {n} assignments reproduced"));
            if conf.mismatches > 0 {
                let examples: Vec<String> = conf
                    .first_mismatches
                    .iter()
                    .take(3)
                    .map(|m| {
                        format!(
                            "{} went to {} where the {} replay says {} ({})",
                            m.client,
                            m.observed.map_or("?".into(), |a| a.to_string()),
                            sched,
                            m.expected.map_or("?".into(), |a| a.to_string()),
                            m.evidence
                        )
                    })
                    .collect();
                findings.push(Finding {
                    snapshot: Vec::new(),
                    check: ID,
                    severity: Status::Warn,
                    summary: format!(
                        "{service}: {} of {n} assignments differ from a replay of the configured \
                         scheduler",
                        conf.mismatches
                    ),
                    host: None,
                    count: conf.mismatches,
                    out_of: Some(n),
                    evidence: conf
                        .first_mismatches
                        .iter()
                        .filter_map(|m| packet_of(m.client, m.time_ns))
                        .take(MAX_EVIDENCE)
                        .collect(),
                    display_filter: Some(format!(
                        "tcp.flags.syn == 1 && tcp.flags.ack == 0 && ip.dst == {}",
                        svc.vip.ip()
                    )),
                    likely_cause: format!(
                        "the director runs another scheduler or other weights than the rules say, \
                         or changed them during the capture; first mismatches: {}. {}",
                        examples.join("; "),
                        conf.limitations.join("; ")
                    ),
                    fix: "compare ipvsadm -Ln --nosort on the director with the intended rules; \
                          restore them with ipvsadm -R < rules"
                        .into(),
                });
            }
        }
        // sh, mh and persistence share clients, not connections: their connection counts are
        // not independent draws, and the replay above already checks them exactly.
        let per_client = matches!(svc.scheduler, Some(Scheduler::Sh | Scheduler::Mh))
            || svc.persistence_s.is_some();
        if let Some(chi) = svc.fairness.chi_square.as_ref().filter(|_| !per_client) {
            if chi.p_value < P_VALUE_ALARM && !chi.too_few {
                findings.push(Finding {
                    snapshot: Vec::new(),
                    check: ID,
                    severity: Status::Warn,
                    summary: format!(
                        "{service}: the connection shares differ from what the weights promise \
                         (chi-square p = {:.4})",
                        chi.p_value
                    ),
                    host: None,
                    count: svc.connections,
                    out_of: None,
                    evidence: Vec::new(),
                    display_filter: None,
                    likely_cause: "weights other than configured, a server that was down or \
                                   quiesced for part of the time, or persistence pinning clients"
                        .into(),
                    fix: "run lvscheck fairness with --charts to see when the shares drifted"
                        .into(),
                });
            }
        }
    }
    if summaries.is_empty() && findings.is_empty() {
        return CheckResult::skip(
            ID,
            format!(
                "nothing to replay: {} (the captures do not show where the director sent them)",
                nothing.join("; ")
            ),
        );
    }
    summaries.extend(
        nothing
            .into_iter()
            .map(|n| format!("{n}: nothing to replay")),
    );
    CheckResult::from_findings(ID, summaries.join("; "), findings)
}
