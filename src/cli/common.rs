//! Arguments every analysing command shares: the captures, role and VIP hints, the rules.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::Args;

use crate::capture::CaptureSource;
use crate::decode::DecodeOptions;
use crate::flows::FlowOptions;
use crate::topology::config::expected_from_rules;
use crate::topology::rules::{read_rules, Rules};
use crate::topology::Role;

#[derive(Args, Debug, Clone)]
pub struct AnalysisArgs {
    /// Capture files from the client(s), the director and the real servers, in any order
    /// (pcap, pcapng, either gzip-compressed). File names carry no meaning.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// The director's rules: the output of `ipvsadm -Sn` (or `ipvsadm -Ln`).
    #[arg(long, value_name = "FILE")]
    pub rules: Option<PathBuf>,
    /// A VIP, when the traffic alone cannot tell (repeatable).
    #[arg(long = "vip", value_name = "ADDR")]
    pub vips: Vec<IpAddr>,
    /// Name a capture's role when the traffic cannot tell: ROLE=FILE, ROLE one of director,
    /// rs, client, other (repeatable).
    #[arg(long = "role", value_name = "ROLE=FILE")]
    pub roles: Vec<String>,
    /// UDP port carrying GUE tunnels (`ipvsadm --tun-type gue --tun-port`); repeatable.
    #[arg(long = "gue-port", value_name = "PORT")]
    pub gue_ports: Vec<u16>,
}

impl AnalysisArgs {
    pub fn sources(&self) -> Vec<CaptureSource> {
        self.files.iter().map(CaptureSource::from_arg).collect()
    }

    pub fn decode_options(&self) -> DecodeOptions {
        DecodeOptions {
            gue_ports: self.gue_ports.clone(),
            gue_auto_detect: self.gue_ports.is_empty(),
            ..DecodeOptions::default()
        }
    }

    /// The rules file given with `--rules`, parsed.
    pub fn load_rules(&self) -> Result<Option<Rules>, String> {
        self.rules
            .as_deref()
            .map(|p| read_rules(p).map_err(|e| e.to_string()))
            .transpose()
    }

    /// The analysis options; Err with a message naming the bad argument.
    pub fn flow_options(&self) -> Result<FlowOptions, String> {
        self.prepare().map(|(opts, _)| opts)
    }

    /// The analysis options and the parsed rules (read once); Err naming the bad argument.
    pub fn prepare(&self) -> Result<(FlowOptions, Option<Rules>), String> {
        let mut opts = FlowOptions::default();
        opts.hints.vips = self.vips.clone();
        for spec in &self.roles {
            let (role, file) = spec
                .split_once('=')
                .ok_or_else(|| format!("--role {spec}: expected ROLE=FILE"))?;
            let role = Role::parse(role).ok_or_else(|| {
                format!("--role {spec}: unknown role {role:?} (director, rs, client, other)")
            })?;
            let index = self
                .files
                .iter()
                .position(|f| f.as_os_str() == file)
                .ok_or_else(|| format!("--role {spec}: {file} is not one of the capture files"))?;
            opts.hints.roles.insert(index as u32, role);
        }
        let rules = self.load_rules()?;
        if let Some(rules) = &rules {
            let (expected, notes) = expected_from_rules(rules);
            opts.expected = Some(expected);
            opts.notes.extend(notes);
        }
        if self.files.iter().any(|f| f.as_os_str() == "-") {
            return Err(
                "standard input cannot be analysed: every capture is read twice; \
                        save it to a file first (tcpdump -w FILE)"
                    .into(),
            );
        }
        Ok((opts, rules))
    }
}
