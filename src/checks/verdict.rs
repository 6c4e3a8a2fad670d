//! The verdict of a `verify` run, and its coverage: which checks ran on how many connections,
//! which could not and what capture would let them.
//!
//! A verifier that CI gates on must never say "verified" about what it did not look at, so the
//! verdict is not the worst status of the checks (a run where every check was skipped would be
//! a pass): it is `verified` only when every *required* check ran. A check that could not run
//! makes the verdict `inconclusive`, a distinct outcome with its own exit status, and so does a
//! set of captures with no connection to a VIP in it.

use serde::Serialize;

use super::{CheckResult, Status};

/// The checks that answer the questions of LVS-TUN for any traffic to a VIP: without any of
/// them the deployment is not verified. `mtu` is not among them (its question only arises with
/// full-size requests), nor `scheduler` unless the rules are given (without them there is
/// nothing to compare with: asking for the rules is the user's choice). Nor are the
/// `capture.*` checks: they judge the captures, not the deployment, and where a capture's
/// mistake hides what a deployment check needs, that check is skipped, which already makes
/// the verdict inconclusive; `capture.drops` and `capture.time` are skipped on any pcap file
/// or single capture, which must not make a healthy run inconclusive.
pub const REQUIRED: [&str; 7] = [
    "tunnel.encapsulation",
    "tunnel.delivery",
    "reply.present",
    "reply.source",
    "reply.direct",
    "arp.vip",
    "bypass",
];

/// Every check id `verify` runs, for `--require` to be checked against.
pub const ALL: [&str; 21] = [
    "capture.read",
    "capture.filter",
    "capture.snaplen",
    "capture.drops",
    "capture.time",
    "tunnel.encapsulation",
    "tunnel.delivery",
    "reply.present",
    "reply.source",
    "reply.direct",
    "arp.vip",
    "bypass",
    "mtu",
    "drain",
    "oddities",
    "health.path",
    "failover",
    "syn.drop",
    "topology",
    "director.state",
    "scheduler",
];

/// What a run concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Every required check ran and none failed.
    Verified,
    /// A check failed (or warned, with `--fail-on warn`).
    Failed,
    /// Nothing failed, but a required check could not run, or no LVS traffic was seen.
    Inconclusive,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Verified => "verified",
            Outcome::Failed => "failed",
            Outcome::Inconclusive => "inconclusive",
        }
    }
}

/// Which severity fails the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailOn {
    #[default]
    Fail,
    Warn,
}

/// What the user asked the verdict to demand.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// `--require`: these checks and no others must run; None: [`REQUIRED`] (and `scheduler`
    /// when rules were given).
    pub require: Option<Vec<String>>,
    pub fail_on: FailOn,
    /// Rules were given (`--rules`): the scheduler check is required then.
    pub rules_given: bool,
    /// The director's snapshots were given (`--director-state`): `director.state` is
    /// required then.
    pub director_state_given: bool,
}

impl Policy {
    /// Parses `--require a,b,c` against the known check ids.
    pub fn parse_require(list: &[String]) -> Result<Vec<String>, String> {
        let mut out = Vec::new();
        for item in list.iter().flat_map(|s| s.split(',')) {
            let id = item.trim();
            if id.is_empty() {
                continue;
            }
            if !ALL.contains(&id) {
                return Err(format!(
                    "--require {id}: no such check (checks: {})",
                    ALL.join(", ")
                ));
            }
            out.push(id.to_string());
        }
        if out.is_empty() {
            return Err("--require: give at least one check id".into());
        }
        Ok(out)
    }

    fn required(&self) -> Vec<String> {
        match &self.require {
            Some(list) => list.clone(),
            None => {
                let mut v: Vec<String> = REQUIRED.iter().map(|s| s.to_string()).collect();
                if self.rules_given {
                    v.push("scheduler".into());
                }
                if self.director_state_given {
                    v.push("director.state".into());
                }
                v
            }
        }
    }
}

/// A required check that did not run, and what would let it.
#[derive(Debug, Clone, Serialize)]
pub struct NotRun {
    pub check: String,
    pub reason: String,
    /// The capture (or option) that would let it run.
    pub needs: String,
}

/// One line of coverage: a check and how much it judged.
#[derive(Debug, Clone, Serialize)]
pub struct Covered {
    pub check: &'static str,
    pub status: Status,
    pub required: bool,
    /// Connections judged, for the checks that judge connections.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub judged: Option<u64>,
}

/// The verdict and what it rests on.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    pub outcome: Outcome,
    /// One sentence: why this outcome.
    pub summary: String,
    pub fail_on: FailOn,
    /// The checks the verdict demanded.
    pub required: Vec<String>,
    /// Required checks that could not run.
    pub not_run: Vec<NotRun>,
    pub coverage: Vec<Covered>,
    /// Connections to a VIP rebuilt from the captures.
    pub connections: u64,
}

/// The verdict on `checks` (in report order) for `connections` rebuilt connections.
pub fn decide(checks: &[CheckResult], connections: u64, policy: &Policy) -> Verdict {
    let required = policy.required();
    let is_required = |id: &str| required.iter().any(|r| r == id);
    let failing = |s: Status| match policy.fail_on {
        FailOn::Fail => s == Status::Fail,
        FailOn::Warn => s >= Status::Warn,
    };
    let coverage: Vec<Covered> = checks
        .iter()
        .map(|c| Covered {
            check: c.id,
            status: c.status,
            required: is_required(c.id),
            judged: c.judged,
        })
        .collect();
    let not_run: Vec<NotRun> = required
        .iter()
        .filter_map(|id| {
            let found = checks.iter().find(|c| c.id == id);
            match found {
                Some(c) if c.status != Status::Skip => None,
                Some(c) => Some(NotRun {
                    check: id.clone(),
                    reason: c.reason.clone(),
                    needs: needs(id).into(),
                }),
                None => Some(NotRun {
                    check: id.clone(),
                    reason: "this check did not run".into(),
                    needs: needs(id).into(),
                }),
            }
        })
        .collect();
    let failed: Vec<&CheckResult> = checks.iter().filter(|c| failing(c.status)).collect();
    let (outcome, summary) = if !failed.is_empty() {
        let ids: Vec<&str> = failed.iter().map(|c| c.id).collect();
        (
            Outcome::Failed,
            format!(
                "{} {} {}",
                plural(ids.len(), "check", "checks"),
                if policy.fail_on == FailOn::Warn {
                    "failed or warned:"
                } else {
                    "failed:"
                },
                ids.join(", ")
            ),
        )
    } else if connections == 0 && policy.require.is_none() {
        (
            Outcome::Inconclusive,
            "no connection to a VIP in the captures: no LVS service was seen, nothing was \
             verified"
                .to_string(),
        )
    } else if !not_run.is_empty() {
        let ids: Vec<&str> = not_run.iter().map(|n| n.check.as_str()).collect();
        (
            Outcome::Inconclusive,
            format!(
                "nothing failed, but {} could not run: {}",
                plural(ids.len(), "required check", "required checks"),
                ids.join(", ")
            ),
        )
    } else {
        (
            Outcome::Verified,
            format!(
                "all {} required checks ran on {} and passed",
                required.len(),
                plural(connections as usize, "connection", "connections")
            ),
        )
    };
    Verdict {
        outcome,
        summary,
        fail_on: policy.fail_on,
        required,
        not_run,
        coverage,
        connections,
    }
}

/// No LVS service was seen (`why`): unless a capture check failed, the run is inconclusive,
/// whatever the skipped checks would have said.
pub fn no_service_seen(verdict: &mut Verdict, why: &str) {
    if verdict.outcome != Outcome::Failed {
        verdict.outcome = Outcome::Inconclusive;
        verdict.summary = format!("{why}; nothing was verified");
    }
}

/// What capture lets a check run, in the words a user acts on.
pub fn needs(check: &str) -> &'static str {
    match check {
        "tunnel.encapsulation" => {
            "a capture on the director's interface towards the real servers, of whole packets \
             and without a port filter, which drops IP protocol 4 (tcpdump -i eth0 -s 0 -w \
             director.pcap 'host VIP or proto 4 or arp', or no filter)"
        }
        "tunnel.delivery" => {
            "captures on the director and on the real servers' eth0, of whole packets and \
             without a port filter (tcpdump -i eth0 -s 0 -w rs.pcap 'host VIP or proto 4 or \
             arp', or no filter), all running while the clients connect"
        }
        "reply.present" | "reply.source" => {
            "a capture on a real server's eth0 or on a client, taken while it connects to the VIP"
        }
        "reply.direct" => "a capture on a real server's eth0 or on the director",
        "arp.vip" => {
            "a capture on the clients' segment that holds their ARP (for an IPv6 VIP, neighbour \
             discovery) for the VIP: start it before the first request, or flush the client's \
             neighbour cache first (ip neigh flush dev eth0)"
        }
        "bypass" => "a capture on a real server's eth0, or on both a client and the director",
        "scheduler" => {
            "the director's rules (--rules, the output of ipvsadm -Sn) and captures that show \
             where the director sent each connection: the director's tunnelled packets, whole \
             and not filtered out (tcpdump -i eth0 -s 0 'host VIP or proto 4 or arp'), or \
             every real server's capture"
        }
        "mtu" => "a capture on the director or a client during full-size requests",
        "oddities" => {
            "captures of the traffic to the VIP; a director capture too, to judge packets from \
             the VIP by their MAC"
        }
        "health.path" => {
            "a capture on the director (or on the real servers) while its health checker \
             (keepalived's TCP_CHECK or HTTP_GET) runs, over at least two rounds of checks, \
             together with the captures that show the tunnelled connections' answers"
        }
        "drain" => {
            "the director's rules (--rules, ipvsadm -Sn taken after the captures, showing the \
             weight-0 or removed server) and a capture on the director while new connections \
             arrive after the weight was set to 0"
        }
        "syn.drop" => {
            "a capture on the director's interface towards the clients and the real servers, \
             running while clients open connections (tcpdump -i eth0 -s 0 -w director.pcap \
             'host VIP or proto 4'): it shows each first SYN and whether a tunnelled copy left"
        }
        "capture.drops" => {
            "pcapng captures, which record drop counters (dumpcap -i eth0 -w host.pcapng, or \
             Wireshark); for pcap, tcpdump's \"packets dropped by kernel\" line when it stops"
        }
        "capture.time" => "two or more captures, taken at the same time",
        "failover" => {
            "captures on both directors of a keepalived pair (and a client), taken across the \
             switch, with VRRP (tcpdump -i eth0 -s 0 'host VIP or proto 4 or vrrp or arp or udp \
             port 8848')"
        }
        "director.state" => {
            "the director's snapshots (--director-state: ipvsadm -Lnc and ipvsadm -Ln --stats, \
             taken on it right after the captures) and captures of its traffic"
        }
        _ => "complete captures on the client, the director and every real server",
    }
}

/// "1 check", "3 checks" ([`crate::words::plural`]).
pub fn plural(n: usize, one: &str, many: &str) -> String {
    crate::words::plural(n as u64, one, many)
}

/// The worst status of all checks (`info` does not count): what the checks say, before the
/// verdict weighs their coverage.
pub fn worst(checks: &[CheckResult]) -> Status {
    checks
        .iter()
        .map(|c| c.status)
        .filter(|s| *s != Status::Info)
        .max()
        .unwrap_or(Status::Skip)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(id: &'static str, status: Status) -> CheckResult {
        let mut c = CheckResult::pass(id, "r");
        c.status = status;
        c
    }

    fn all_pass() -> Vec<CheckResult> {
        ALL.iter().map(|id| result(id, Status::Pass)).collect()
    }

    fn set(checks: &mut [CheckResult], id: &str, status: Status) {
        checks.iter_mut().find(|c| c.id == id).unwrap().status = status;
    }

    #[test]
    fn every_required_check_passing_is_verified() {
        let v = decide(&all_pass(), 10, &Policy::default());
        assert_eq!(v.outcome, Outcome::Verified);
    }

    #[test]
    fn a_skipped_required_check_is_inconclusive_and_says_what_would_help() {
        let mut checks = all_pass();
        set(&mut checks, "tunnel.encapsulation", Status::Skip);
        let v = decide(&checks, 10, &Policy::default());
        assert_eq!(v.outcome, Outcome::Inconclusive);
        assert_eq!(v.not_run.len(), 1);
        assert_eq!(v.not_run[0].check, "tunnel.encapsulation");
        assert!(v.not_run[0].needs.contains("director"));
    }

    #[test]
    fn no_connections_is_inconclusive_even_when_checks_pass() {
        let v = decide(&all_pass(), 0, &Policy::default());
        assert_eq!(v.outcome, Outcome::Inconclusive);
    }

    #[test]
    fn a_failure_wins_over_missing_coverage() {
        let mut checks = all_pass();
        set(&mut checks, "tunnel.encapsulation", Status::Skip);
        set(&mut checks, "reply.present", Status::Fail);
        assert_eq!(
            decide(&checks, 4, &Policy::default()).outcome,
            Outcome::Failed
        );
    }

    #[test]
    fn warn_fails_only_when_asked() {
        let mut checks = all_pass();
        set(&mut checks, "mtu", Status::Warn);
        assert_eq!(
            decide(&checks, 4, &Policy::default()).outcome,
            Outcome::Verified
        );
        let strict = Policy {
            fail_on: FailOn::Warn,
            ..Policy::default()
        };
        assert_eq!(decide(&checks, 4, &strict).outcome, Outcome::Failed);
    }

    #[test]
    fn require_narrows_and_widens_the_demand() {
        let mut checks = all_pass();
        set(&mut checks, "tunnel.encapsulation", Status::Skip);
        let only_arp = Policy {
            require: Some(vec!["arp.vip".into()]),
            ..Policy::default()
        };
        assert_eq!(decide(&checks, 4, &only_arp).outcome, Outcome::Verified);
        set(&mut checks, "mtu", Status::Skip);
        let with_mtu = Policy {
            require: Some(vec!["arp.vip".into(), "mtu".into()]),
            ..Policy::default()
        };
        assert_eq!(decide(&checks, 4, &with_mtu).outcome, Outcome::Inconclusive);
    }

    #[test]
    fn rules_make_the_scheduler_required() {
        let mut checks = all_pass();
        set(&mut checks, "scheduler", Status::Skip);
        let p = Policy {
            rules_given: true,
            ..Policy::default()
        };
        assert_eq!(decide(&checks, 4, &p).outcome, Outcome::Inconclusive);
        assert_eq!(
            decide(&checks, 4, &Policy::default()).outcome,
            Outcome::Verified
        );
    }

    #[test]
    fn capture_checks_never_make_a_run_inconclusive_unless_required() {
        // pcap files skip capture.drops, a single capture skips capture.time, and a capture
        // warning is about the capture, not the deployment.
        let mut checks = all_pass();
        set(&mut checks, "capture.drops", Status::Skip);
        set(&mut checks, "capture.time", Status::Skip);
        set(&mut checks, "capture.snaplen", Status::Warn);
        assert_eq!(
            decide(&checks, 4, &Policy::default()).outcome,
            Outcome::Verified
        );
        let asked = Policy {
            require: Some(vec!["capture.drops".into()]),
            ..Policy::default()
        };
        let v = decide(&checks, 4, &asked);
        assert_eq!(v.outcome, Outcome::Inconclusive);
        assert!(v.not_run[0].needs.contains("pcapng"));
    }

    #[test]
    fn unknown_check_ids_are_refused() {
        assert!(Policy::parse_require(&["reply.presnt".into()]).is_err());
        assert_eq!(
            Policy::parse_require(&["arp.vip, bypass".into()]).unwrap(),
            vec!["arp.vip", "bypass"]
        );
    }
}
