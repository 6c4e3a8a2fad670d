//! `lvscheck flows FILE...`: the topology and the connections rebuilt across the captures.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use clap::Args;

use super::{EXIT_OK, EXIT_UNUSABLE};
use crate::capture::{CaptureId, CaptureSource};
use crate::decode::DecodeOptions;
use crate::flows::legs::Timeouts;
use crate::flows::{analyse, Connection, FlowOptions, Outcome};
use crate::topology::{Hints, Role};

#[derive(Args, Debug)]
pub struct FlowsArgs {
    /// Capture files (pcap, pcapng, either gzip-compressed), from any mix of hosts. File names
    /// mean nothing: each capture's role is worked out from its traffic.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Write JSON Lines instead of tables: one `topology` record, then one `connection` record
    /// per connection (see docs/flows.md).
    #[arg(long)]
    pub json: bool,
    /// Show only connections that went to this real server; repeatable.
    #[arg(long, value_name = "IP")]
    pub rs: Vec<IpAddr>,
    /// Show only connections from this client address; repeatable.
    #[arg(long, value_name = "IP")]
    pub client: Vec<IpAddr>,
    /// Show only connections with this outcome: completed, reset, refused, unanswered,
    /// in_progress, unknown; repeatable.
    #[arg(long, value_name = "OUTCOME", value_parser = parse_outcome)]
    pub outcome: Vec<Outcome>,
    /// Say where a capture was taken when its traffic cannot tell: ROLE=FILE with ROLE one of
    /// director, rs, client, other; repeatable.
    #[arg(long = "role", value_name = "ROLE=FILE", value_parser = parse_role)]
    pub roles: Vec<(Role, PathBuf)>,
    /// A virtual IP address, when the traffic cannot show it (no tunnelled packet in any
    /// capture); repeatable.
    #[arg(long, value_name = "IP")]
    pub vip: Vec<IpAddr>,
    /// Seconds without packets after which a UDP "connection" ends (IPVS default 300).
    #[arg(long, value_name = "SECONDS", default_value_t = 300.0)]
    pub udp_timeout: f64,
    /// UDP port carrying GUE tunnels (`ipvsadm --tun-type gue --tun-port`); repeatable.
    #[arg(long = "gue-port", value_name = "PORT")]
    pub gue_ports: Vec<u16>,
}

fn parse_outcome(s: &str) -> Result<Outcome, String> {
    Outcome::parse(s).ok_or_else(|| {
        format!(
            "unknown outcome '{s}': completed, reset, refused, unanswered, in_progress, unknown"
        )
    })
}

fn parse_role(s: &str) -> Result<(Role, PathBuf), String> {
    let (role, file) = s
        .split_once('=')
        .ok_or_else(|| format!("'{s}': expected ROLE=FILE, e.g. director=lb.pcap"))?;
    let role = Role::parse(role)
        .ok_or_else(|| format!("unknown role '{role}': director, rs, client, other"))?;
    Ok((role, PathBuf::from(file)))
}

/// The capture a `--role` names: the same path as given, or the same file.
fn capture_of(files: &[PathBuf], wanted: &Path) -> Option<CaptureId> {
    if let Some(i) = files.iter().position(|f| f == wanted) {
        return Some(i as CaptureId);
    }
    let canon = std::fs::canonicalize(wanted).ok()?;
    files
        .iter()
        .position(|f| std::fs::canonicalize(f).ok().as_ref() == Some(&canon))
        .map(|i| i as CaptureId)
}

/// Builds the analysis options from the arguments.
pub fn options(args: &FlowsArgs) -> Result<FlowOptions, String> {
    let mut roles = HashMap::new();
    for (role, file) in &args.roles {
        let c = capture_of(&args.files, file).ok_or_else(|| {
            format!(
                "--role {role}={}: not one of the capture files given",
                file.display()
            )
        })?;
        roles.insert(c, *role);
    }
    if !(args.udp_timeout.is_finite() && args.udp_timeout > 0.0) {
        return Err(format!(
            "--udp-timeout {}: must be a positive number of seconds",
            args.udp_timeout
        ));
    }
    Ok(FlowOptions {
        timeouts: Timeouts {
            udp_idle_ns: (args.udp_timeout * 1e9) as i64,
            ..Timeouts::default()
        },
        hints: Hints {
            roles,
            vips: args.vip.clone(),
        },
        expected: None,
    })
}

/// Whether a connection passes the `--rs`, `--client` and `--outcome` filters.
pub fn selected(args: &FlowsArgs, c: &Connection) -> bool {
    (args.rs.is_empty() || c.real_server.is_some_and(|r| args.rs.contains(&r)))
        && (args.client.is_empty() || args.client.contains(&c.client.ip()))
        && (args.outcome.is_empty() || args.outcome.contains(&c.outcome))
}

/// Exit status: 0 when the captures could be read, 2 when none could (or bad arguments).
pub fn run(args: &FlowsArgs) -> i32 {
    let opts = match options(args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("lvscheck flows: {e}");
            return EXIT_UNUSABLE;
        }
    };
    let sources: Vec<CaptureSource> = args.files.iter().map(CaptureSource::from_arg).collect();
    if sources.contains(&CaptureSource::Stdin) {
        eprintln!(
            "lvscheck flows: '-' (standard input) cannot be used: every capture is read twice; \
             save it to a file first"
        );
        return EXIT_UNUSABLE;
    }
    let decode = DecodeOptions {
        gue_ports: args.gue_ports.clone(),
        gue_auto_detect: args.gue_ports.is_empty(),
        ..DecodeOptions::default()
    };
    let analysis = analyse(&sources, decode, &opts);
    let unreadable = analysis
        .captures
        .iter()
        .filter(|c| c.error.is_some())
        .count();
    let shown: Vec<&Connection> = analysis
        .connections
        .iter()
        .filter(|c| selected(args, c))
        .collect();
    if args.json {
        let stdout = std::io::stdout();
        let mut lock = stdout.lock();
        if let Err(e) = crate::report::flows::write_json_lines(&analysis, &shown, &mut lock) {
            eprintln!("lvscheck flows: writing JSON: {e}");
            return EXIT_UNUSABLE;
        }
    } else {
        print!("{}", crate::report::flows::render(&analysis, &shown));
    }
    if unreadable == analysis.captures.len() {
        for w in &analysis.warnings {
            eprintln!("lvscheck flows: {w}");
        }
        EXIT_UNUSABLE
    } else {
        EXIT_OK
    }
}
