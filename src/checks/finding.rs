//! What a check produces: a status, a one-line reason, and findings that carry their evidence.

use serde::Serialize;

pub use crate::topology::director_state::SnapshotLine;

/// How a check ended. Ordered by severity so the worst of several can be taken with `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Nothing to judge from the captures given; the reason says why.
    Skip,
    Pass,
    /// Informational findings (the `topology` check) that never fail.
    Info,
    Warn,
    Fail,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Skip => "skip",
            Status::Pass => "pass",
            Status::Info => "info",
            Status::Warn => "warn",
            Status::Fail => "fail",
        }
    }
}

/// One packet shown as evidence, as Wireshark would find it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PacketRef {
    /// The capture file, as given on the command line.
    pub file: String,
    /// Wireshark frame number (from 1).
    pub frame: u64,
    /// Capture time in the capturing host's own clock (RFC 3339).
    pub time: String,
    /// What the packet is, in a few words.
    pub summary: String,
}

/// A finding: one problem (or notable fact), where it is, why it likely happens, how to fix it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    pub check: &'static str,
    pub severity: Status,
    /// One sentence with counts: "4 of 12 connections to 198.51.100.12 were never answered".
    pub summary: String,
    /// The host concerned (address, and MAC when known).
    pub host: Option<String>,
    /// How many items (connections, packets) the finding covers, and out of how many.
    pub count: u64,
    pub out_of: Option<u64>,
    /// A few example packets.
    pub evidence: Vec<PacketRef>,
    /// A Wireshark display filter that shows the packets concerned.
    pub display_filter: Option<String>,
    /// Lines of the director's snapshots (`--director-state`) the finding rests on, as
    /// written there; only `director.state` has any.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub snapshot: Vec<SnapshotLine>,
    pub likely_cause: String,
    /// The fix in the setup's own terms: which command, on which host.
    pub fix: String,
}

/// The result of one check.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckResult {
    pub id: &'static str,
    pub status: Status,
    /// One line: why this status.
    pub reason: String,
    pub findings: Vec<Finding>,
    /// How many connections the check judged, for the checks that judge connections: the
    /// coverage the verdict reports.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub judged: Option<u64>,
}

impl CheckResult {
    pub fn skip(id: &'static str, reason: impl Into<String>) -> CheckResult {
        CheckResult {
            id,
            status: Status::Skip,
            reason: reason.into(),
            findings: Vec::new(),
            judged: None,
        }
    }

    pub fn pass(id: &'static str, reason: impl Into<String>) -> CheckResult {
        CheckResult {
            id,
            status: Status::Pass,
            reason: reason.into(),
            findings: Vec::new(),
            judged: None,
        }
    }

    /// A result whose status is the worst of its findings' (pass when there are none).
    pub fn from_findings(
        id: &'static str,
        pass_reason: impl Into<String>,
        findings: Vec<Finding>,
    ) -> CheckResult {
        let status = findings
            .iter()
            .map(|f| f.severity)
            .max()
            .unwrap_or(Status::Pass);
        let reason = match findings.iter().find(|f| f.severity == status) {
            Some(worst) if status != Status::Pass => {
                if findings.len() > 1 {
                    format!("{} (+{} more findings)", worst.summary, findings.len() - 1)
                } else {
                    worst.summary.clone()
                }
            }
            _ => pass_reason.into(),
        };
        CheckResult {
            id,
            status,
            reason,
            findings,
            judged: None,
        }
    }
}

impl CheckResult {
    /// Like [`CheckResult::from_findings`], but a check that had nothing to judge (`judged` is
    /// 0 and nothing was found) is skipped with the reason `nothing`, rather than passing on
    /// "all 0 connections".
    pub fn judged(
        id: &'static str,
        judged: usize,
        nothing: &str,
        pass_reason: impl Into<String>,
        findings: Vec<Finding>,
    ) -> CheckResult {
        if judged == 0 && findings.is_empty() {
            return CheckResult::skip(id, nothing);
        }
        let mut result = CheckResult::from_findings(id, pass_reason, findings);
        result.judged = Some(judged as u64);
        result
    }
}

/// At most this many example packets per finding: enough to find them, few enough to read.
pub const MAX_EVIDENCE: usize = 5;
