//! `topology`: informational: what was found, and where the rules disagree with the traffic.

use std::net::IpAddr;

use super::{CheckResult, Context, Finding, Status};
use crate::topology::config::ConfigFinding;
use crate::topology::Role;

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
        "VIP {}; services {}; {}; real servers {}{}; {}",
        list(
            topo.vips
                .iter()
                .map(|v| match v.decided_by {
                    crate::topology::Decision::Guess => format!(
                        "{} (a guess: no tunnelled packet names a VIP; give --vip or --rules)",
                        v.addr
                    ),
                    _ => v.addr.to_string(),
                })
                .collect()
        ),
        list(topo.services.iter().map(|s| s.to_string()).collect()),
        match topo.directors.as_slice() {
            [_, _, ..] => format!(
                "directors {} (each forwarded for a while: a failover pair, see failover)",
                list(topo.directors.iter().map(|d| ctx.host(d.addr)).collect())
            ),
            _ => format!(
                "director {}",
                list(topo.directors.iter().map(|d| ctx.host(d.addr)).collect())
            ),
        },
        list(topo.real_servers.iter().map(|r| ctx.host(r.addr)).collect()),
        // The tutorial's IPv4 IP-in-IP goes without saying; any other tunnel is named.
        match ctx.tunnel_name() {
            t if t == "IP-in-IP" => String::new(),
            t => format!(", through {t}"),
        },
        super::verdict::plural(topo.clients.len(), "client", "clients")
    );
    // "Got no connection" needs captures that would have shown one: the director's or the
    // server's own; otherwise the server was simply not captured.
    let rs_captured = |a: IpAddr| {
        topo.vantages
            .iter()
            .any(|v| v.role == Role::RealServer && v.address == Some(a))
    };
    // A client's capture shows its own connections only: other clients may have reached the
    // server.
    let could_see = ctx.has_role(Role::Director);
    let headers_cut = super::capture::snaplen::headers_cut_anywhere(ctx);
    let clients_only = ctx.has_role(Role::Client);
    let mut findings: Vec<Finding> = ctx
        .analysis
        .config
        .iter()
        .map(|c| {
            if c.kind == "rs_without_connections"
                && !could_see
                && !c.real_server.is_some_and(rs_captured)
            {
                let rs = c.real_server.map(|a| a.to_string()).unwrap_or_default();
                let summary = if clients_only {
                    format!(
                        "real server {rs} of {}: no connection of any captured client went to \
                         it; it was not captured, nor was the director, so other clients' \
                         connections are not in these captures",
                        c.service
                    )
                } else {
                    format!(
                        "real server {rs} of {}: not captured, and neither the director nor a \
                         client was: whether it got connections is not in these captures",
                        c.service
                    )
                };
                return Finding {
                    snapshot: Vec::new(),
                    check: ID,
                    severity: Status::Info,
                    summary,
                    host: c.real_server.map(|a| ctx.host(a)),
                    count: 0,
                    out_of: None,
                    evidence: Vec::new(),
                    display_filter: None,
                    likely_cause: String::new(),
                    fix: String::new(),
                };
            }
            let mut f = config_finding(ctx, c);
            // Frames cut before their headers hold connections nobody can read: a service
            // or server "without connections" may have had them there.
            let absence = matches!(c.kind, "service_without_traffic" | "rs_without_connections");
            if absence && f.severity == Status::Warn && headers_cut {
                f.severity = Status::Info;
                f.summary = format!(
                    "{} (frames were cut before their headers, and may hold them: see \
                     capture.snaplen)",
                    f.summary
                );
                return f;
            }
            if c.kind == "service_without_traffic" && !could_see {
                // Without the director's capture, a service without traffic may simply have
                // had its traffic elsewhere.
                f.severity = Status::Info;
                f.summary = format!("{} (the director was not captured)", f.summary);
            }
            f
        })
        .collect();
    for limit in &topo.limits {
        findings.push(Finding {
            snapshot: Vec::new(),
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

/// A disagreement between the rules and the traffic, as a finding.
fn config_finding(ctx: &Context, c: &ConfigFinding) -> Finding {
    Finding {
        snapshot: Vec::new(),
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
            "service_without_traffic" => "no client used this service during the captures".into(),
            _ => c.kind.replace('_', " "),
        },
        fix: "compare with ipvsadm -Sn on the director".into(),
    }
}
