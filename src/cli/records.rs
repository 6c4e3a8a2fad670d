//! `lvscheck facts`, `lvscheck topology` and `lvscheck extract`: the records of issue 16, made
//! next to each capture (docs/records.md).

use super::common::check_captures;
use super::{say, EXIT_OK, EXIT_UNUSABLE};
use crate::records::extract::{extract, ExtractPlan};
use crate::records::facts_file::{self, FactsFile};
use crate::records::make::{self, TopologyOptions};
use crate::topology::config::expected_from_rules;
use crate::topology::rules::read_rules;
use crate::topology::Role;
use clap::Args;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

#[derive(Args, Debug)]
pub struct FactsArgs {
    /// The captures taken on this host (pcap or pcapng, gzip-compressed or not).
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Where to write the facts (JSON; `-` for standard output).
    #[arg(short, long, value_name = "FILE", default_value = "-")]
    pub out: PathBuf,
    /// UDP port carrying GUE tunnels (repeatable): as `verify --gue-port`.
    #[arg(long = "gue-port", value_name = "PORT")]
    pub gue_ports: Vec<u16>,
    /// The director's rules, for the GUE tunnel ports they name (`--tun-port`).
    #[arg(long, value_name = "FILE")]
    pub rules: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct TopologyArgs {
    /// Facts files written by `lvscheck facts`, from every host; their captures are numbered
    /// in the order given.
    #[arg(required = true, value_name = "FACTS")]
    pub facts: Vec<PathBuf>,
    /// Where to write the topology file (JSON; `-` for standard output).
    #[arg(short, long, value_name = "FILE", default_value = "-")]
    pub out: PathBuf,
    /// The director's rules (as `verify --rules`): the real servers the legs are told apart by.
    #[arg(long, value_name = "FILE")]
    pub rules: Option<PathBuf>,
    /// A VIP, when the traffic alone cannot tell (repeatable).
    #[arg(long = "vip", value_name = "ADDR")]
    pub vips: Vec<IpAddr>,
    /// A capture's role when the traffic cannot tell: ROLE=FILE (the capture's file name as
    /// `facts` was given it).
    #[arg(long = "role", value_name = "ROLE=FILE")]
    pub roles: Vec<String>,
}

#[derive(Args, Debug)]
pub struct ExtractArgs {
    /// The captures taken on this host, each named in the topology file.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// The topology file `lvscheck topology` wrote.
    #[arg(long, value_name = "FILE")]
    pub topology: PathBuf,
    /// Where to write the records: one folder per capture inside, named after the capture.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

fn write_out(path: &Path, text: &str) -> Result<(), String> {
    if path.as_os_str() == "-" {
        super::emit(text);
        return Ok(());
    }
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}

pub fn facts(args: &FactsArgs) -> i32 {
    let sources = match check_captures(&args.files) {
        Ok(s) => s,
        Err(e) => {
            say(format!("lvscheck: {e}"));
            return EXIT_UNUSABLE;
        }
    };
    let mut gue_ports = args.gue_ports.clone();
    if let Some(path) = &args.rules {
        match read_rules(path) {
            Ok(r) => gue_ports.extend(r.gue_ports()),
            Err(e) => {
                say(format!("lvscheck: {e}"));
                return EXIT_UNUSABLE;
            }
        }
    }
    gue_ports.sort_unstable();
    gue_ports.dedup();
    let file: FactsFile = make::facts(&sources, &gue_ports);
    for c in &file.captures {
        if let Some(e) = &c.error {
            say(format!("lvscheck: {e}"));
        }
    }
    let unreadable = file.captures.iter().all(|c| c.error.is_some());
    match crate::full_state::to_json(&file).map_err(|e| e.to_string()) {
        Ok(text) => {
            if let Err(e) = write_out(&args.out, &text) {
                say(format!("lvscheck: {e}"));
                return EXIT_UNUSABLE;
            }
        }
        Err(e) => {
            say(format!("lvscheck: {e}"));
            return EXIT_UNUSABLE;
        }
    }
    if unreadable {
        EXIT_UNUSABLE
    } else {
        EXIT_OK
    }
}

pub fn topology(args: &TopologyArgs) -> i32 {
    match topology_file(args) {
        Ok(text) => match write_out(&args.out, &text) {
            Ok(()) => EXIT_OK,
            Err(e) => {
                say(format!("lvscheck: {e}"));
                EXIT_UNUSABLE
            }
        },
        Err(e) => {
            say(format!("lvscheck: {e}"));
            EXIT_UNUSABLE
        }
    }
}

fn topology_file(args: &TopologyArgs) -> Result<String, String> {
    let files = args
        .facts
        .iter()
        .map(|p| {
            facts_file::read_json::<FactsFile>(p, facts_file::FACTS_FORMAT).map(|f| (p.clone(), f))
        })
        .collect::<Result<Vec<_>, String>>()?;
    let mut opts = TopologyOptions {
        vips: args.vips.clone(),
        ..TopologyOptions::default()
    };
    for spec in &args.roles {
        let (role, file) = spec
            .split_once('=')
            .ok_or_else(|| format!("--role {spec}: expected ROLE=FILE"))?;
        let role = Role::parse(role).ok_or_else(|| {
            format!("--role {spec}: unknown role {role:?} (director, rs, client, other)")
        })?;
        opts.roles.push((role, file.to_string()));
    }
    if let Some(path) = &args.rules {
        let rules = read_rules(path).map_err(|e| e.to_string())?;
        let (expected, _) = expected_from_rules(&rules);
        opts.configured_rs = Some(
            expected
                .iter()
                .flat_map(|s| s.real_servers.iter().map(|r| r.addr))
                .collect(),
        );
        opts.rules_file = Some(path.display().to_string());
    }
    let file = make::topology(files, opts)?;
    crate::full_state::to_json(&file).map_err(|e| e.to_string())
}

pub fn extract_main(args: &ExtractArgs) -> i32 {
    let plan = match ExtractPlan::read(&args.topology) {
        Ok(p) => p,
        Err(e) => {
            say(format!("lvscheck: {e}"));
            return EXIT_UNUSABLE;
        }
    };
    let sources = match check_captures(&args.files) {
        Ok(s) => s,
        Err(e) => {
            say(format!("lvscheck: {e}"));
            return EXIT_UNUSABLE;
        }
    };
    let mut code = EXIT_OK;
    for s in &sources {
        let name = s.display_name();
        let id = match plan.capture_named(&name) {
            Ok(id) => id,
            Err(e) => {
                say(format!("lvscheck: {e}"));
                code = EXIT_UNUSABLE;
                continue;
            }
        };
        let base = Path::new(&name)
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_else(|| format!("capture-{id}"));
        let dir = args.out.join(base);
        match extract(&plan, s, id, &dir) {
            Ok(x) => say(format!(
                "lvscheck: {name}: capture #{} -> {}: {} legs, {} clock samples, {} bytes",
                x.capture,
                x.dir.display(),
                x.legs,
                x.clock_samples,
                x.bytes
            )),
            Err(e) => {
                say(format!("lvscheck: {e}"));
                code = EXIT_UNUSABLE;
            }
        }
    }
    code
}
