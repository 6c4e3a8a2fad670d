//! Connections that share one problem, with a few example packets: what a counted finding is
//! made of, so each check only says what the problem is, why, and how to fix it.

use super::{connections_filter, Finding, PacketRef, Status, MAX_EVIDENCE};
use crate::flows::Connection;

#[derive(Default)]
pub struct Affected<'a> {
    pub conns: Vec<&'a Connection>,
    pub examples: Vec<PacketRef>,
}

/// The words of a finding: what, on which host, the likely cause, the fix.
pub struct Explained {
    pub summary: String,
    pub host: Option<String>,
    pub likely_cause: String,
    pub fix: String,
}

impl<'a> Affected<'a> {
    /// Adds a connection; the example packet is made only while fewer than `MAX_EVIDENCE`
    /// are kept.
    pub fn add(&mut self, conn: &'a Connection, example: impl FnOnce() -> Option<PacketRef>) {
        self.conns.push(conn);
        if self.examples.len() < MAX_EVIDENCE {
            self.examples.extend(example());
        }
    }

    pub fn len(&self) -> usize {
        self.conns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }

    /// The finding: these connections out of the `out_of` judged, their example packets, and a
    /// display filter that shows them.
    pub fn finding(
        self,
        check: &'static str,
        severity: Status,
        out_of: usize,
        text: Explained,
    ) -> Finding {
        Finding {
            check,
            severity,
            summary: text.summary,
            host: text.host,
            count: self.conns.len() as u64,
            out_of: Some(out_of as u64),
            display_filter: connections_filter(self.conns.iter().copied()),
            evidence: self.examples,
            likely_cause: text.likely_cause,
            fix: text.fix,
        }
    }
}
