//! `capture.read`: every capture was read to its end.

use crate::checks::{CheckResult, Context, Finding, Status};

pub const ID: &str = "capture.read";

pub fn check(ctx: &Context) -> CheckResult {
    let captures = &ctx.analysis.captures;
    let mut findings = Vec::new();
    for c in captures {
        if let Some(error) = &c.error {
            findings.push(Finding {
                check: ID,
                severity: Status::Warn,
                summary: format!("{} could not be read at all", c.file),
                host: None,
                count: 1,
                out_of: Some(captures.len() as u64),
                evidence: Vec::new(),
                display_filter: None,
                likely_cause: error.clone(),
                fix:
                    "check the path and that the file is a pcap or pcapng capture (capinfos tells)"
                        .into(),
            });
        } else if !c.complete || !c.warnings.is_empty() {
            findings.push(Finding {
                check: ID,
                severity: Status::Warn,
                summary: format!(
                    "{} was not read cleanly to its end: {}",
                    c.file,
                    c.warnings
                        .first()
                        .map(String::as_str)
                        .unwrap_or("the reader stopped early")
                ),
                host: None,
                count: c.warnings.len().max(1) as u64,
                out_of: None,
                evidence: Vec::new(),
                display_filter: None,
                likely_cause: "the capture was cut short (tcpdump killed, disk full, copied while \
                               still being written) or is damaged; what came before the problem \
                               was analysed"
                    .into(),
                fix:
                    "stop tcpdump with Ctrl-C (SIGINT) before copying the file; re-capture if the \
                      missing part matters"
                        .into(),
            });
        }
    }
    CheckResult::from_findings(
        ID,
        format!("all {} captures read to their end", captures.len()),
        findings,
    )
}
