//! `topology`: informational: what was found, and where the rules disagree with the traffic.

use super::{CheckResult, Context, Finding, Status};

pub const ID: &str = "topology";

pub fn check(ctx: &Context) -> CheckResult {
    let topo = &ctx.analysis.topology;
    let list = |v: Vec<String>| {
        if v.is_empty() {
            "none".to_string()
        } else {
            v.join(", ")
        }
    };
    let reason = format!(
        "VIP {}; services {}; director {}; real servers {}; {} clients",
        list(topo.vips.iter().map(|v| v.addr.to_string()).collect()),
        list(topo.services.iter().map(|s| s.to_string()).collect()),
        list(topo.directors.iter().map(|d| ctx.host(d.addr)).collect()),
        list(topo.real_servers.iter().map(|r| ctx.host(r.addr)).collect()),
        topo.clients.len()
    );
    let mut findings: Vec<Finding> = ctx
        .analysis
        .config
        .iter()
        .map(|c| Finding {
            check: ID,
            // What the captures could not show is a limit of the captures, not a disagreement.
            severity: if c.kind == "rs_not_identified" {
                Status::Info
            } else {
                Status::Warn
            },
            summary: c.message.clone(),
            host: c.real_server.map(|a| ctx.host(a)),
            count: 1,
            out_of: None,
            evidence: Vec::new(),
            display_filter: None,
            likely_cause: match c.kind {
                "rs_without_connections" => "the server is configured but got no connection in \
                     the captures: weight 0, down, or too few connections to reach it"
                    .into(),
                "forwarding_not_tunnel" => "the rules add this server in direct-routing (-g) \
                     or NAT (-m) mode: its connections are not tunnelled (tunnel.encapsulation \
                     shows those the captures hold)"
                    .into(),
                "rs_not_identified" => "the captures do not show which real server some \
                     connections went to: capture on the director, or on every real server"
                    .into(),
                "rs_not_configured" => "traffic went to a server the rules do not list: the \
                     rules file is not the director's running configuration"
                    .into(),
                "service_not_configured" => "clients use a service the rules do not define".into(),
                "service_without_traffic" => {
                    "no client used this service during the captures".into()
                }
                _ => c.kind.replace('_', " "),
            },
            fix: "compare with ipvsadm -Sn on the director".into(),
        })
        .collect();
    for limit in &topo.limits {
        findings.push(Finding {
            check: ID,
            severity: Status::Info,
            summary: limit.clone(),
            host: None,
            count: 0,
            out_of: None,
            evidence: Vec::new(),
            display_filter: None,
            likely_cause: String::new(),
            fix: String::new(),
        });
    }
    let mut result = CheckResult::from_findings(ID, reason.clone(), findings);
    if result.status <= Status::Info {
        result.status = Status::Info;
        result.reason = reason;
    }
    result
}
