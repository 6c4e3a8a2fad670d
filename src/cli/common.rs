//! Arguments every analysing command shares: the captures, role and VIP hints, the rules.

use super::say;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use clap::Args;

use crate::capture::identity::{check_openable, duplicates, Sameness};
use crate::capture::spool::spool_streams;
use crate::capture::CaptureSource;
use crate::decode::DecodeOptions;
use crate::flows::feed::LookAhead;
use crate::flows::{Analysis, FlowOptions};
use crate::topology::config::{expected_from_rules, unrelated, ExpectedService};
use crate::topology::rules::{read_rules, Rules};
use crate::topology::Role;

/// How the captures are read: shared by every command that rebuilds connections.
#[derive(Args, Debug, Clone)]
pub struct ReadingArgs {
    /// MiB of frames, over all captures, from which the topology and the clocks are learnt
    /// before connections are rebuilt (each capture gets its share, 0.25 to 64 MiB); each
    /// capture is read once unless that does not settle the roles.
    #[arg(long = "look-ahead", value_name = "MIB", default_value_t = 16)]
    pub look_ahead_mib: usize,
    /// Read every capture whole to learn the topology, then again to rebuild connections (the
    /// look-ahead off).
    #[arg(long)]
    pub read_twice: bool,
}

impl ReadingArgs {
    /// The analysis options these set, the others at their defaults.
    pub fn flow_options(&self) -> FlowOptions {
        FlowOptions {
            look_ahead: LookAhead {
                total_bytes: self.look_ahead_mib.saturating_mul(1 << 20),
            },
            read_twice: self.read_twice,
            ..FlowOptions::default()
        }
    }
}

#[derive(Args, Debug, Clone)]
pub struct AnalysisArgs {
    /// Capture files from the client(s), the director and the real servers, in any order
    /// (pcap, pcapng, either gzip-compressed). File names carry no meaning.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// The director's rules: the output of `ipvsadm -Sn` (or `ipvsadm -Ln`), or its
    /// keepalived.conf (with the files it includes), told apart by content.
    #[arg(long, value_name = "FILE")]
    pub rules: Option<PathBuf>,
    /// A VIP, when the traffic alone cannot tell (repeatable).
    #[arg(long = "vip", value_name = "ADDR")]
    pub vips: Vec<IpAddr>,
    /// Name a capture's role when the traffic cannot tell: ROLE=FILE, ROLE one of director,
    /// rs, client, other (repeatable).
    #[arg(long = "role", value_name = "ROLE=FILE")]
    pub roles: Vec<String>,
    /// UDP port carrying GUE tunnels (`ipvsadm --tun-type gue --tun-port`); repeatable. Not
    /// needed with --rules that name it, nor when a director's capture shows it wrapping the
    /// clients' packets; a GUE-shaped datagram is a tunnel only then.
    #[arg(long = "gue-port", value_name = "PORT")]
    pub gue_ports: Vec<u16>,
    #[command(flatten)]
    pub reading: ReadingArgs,
    /// The sources [`check_captures`] accepted, set by [`AnalysisArgs::prepare`].
    #[arg(skip)]
    pub checked: OnceLock<Vec<CaptureSource>>,
}

impl AnalysisArgs {
    /// The captures to read: those [`check_captures`] accepted (streams copied so that they can
    /// be read again), or the files as given when it has not run.
    pub fn sources(&self) -> Vec<CaptureSource> {
        match self.checked.get() {
            Some(sources) => sources.clone(),
            None => self.files.iter().map(CaptureSource::from_arg).collect(),
        }
    }

    /// GUE is decoded on the ports given with `--gue-port` and those the rules name
    /// (`--tun-type gue --tun-port N`); on any other port only where the first pass sees the
    /// director wrap clients' packets (`topology::gue`).
    pub fn decode_options(&self, rules: Option<&Rules>) -> DecodeOptions {
        let mut gue_ports = self.gue_ports.clone();
        gue_ports.extend(rules.map(Rules::gue_ports).unwrap_or_default());
        gue_ports.sort_unstable();
        gue_ports.dedup();
        DecodeOptions {
            gue_ports,
            gue_probe: true,
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

    /// The analysis options and the parsed rules (read once); Err naming the bad argument:
    /// a capture that cannot be opened or is given twice ([`check_captures`]), a bad `--role`,
    /// a rules file that cannot be read, does not parse or defines no service.
    pub fn prepare(&self) -> Result<(FlowOptions, Option<Rules>), String> {
        let sources = check_captures(&self.files)?;
        let _ = self.checked.set(sources);
        let mut opts = self.reading.flow_options();
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
        Ok((opts, rules))
    }

    /// Why the analysed input gives no verdict worth printing, one message per problem (empty
    /// when there is none): a capture of which nothing could be read, a `--role` that the
    /// traffic contradicts, rules that describe none of the traffic's services. Known once
    /// the captures' roles are (before any connection), so a streaming report can hold back.
    pub fn problems(&self, analysis: &Analysis, opts: &FlowOptions) -> Vec<String> {
        let mut out = unreadable_captures(analysis);
        out.extend(self.role_conflicts(analysis));
        if let (Some(file), Some(expected)) = (&self.rules, &opts.expected) {
            out.extend(rules_unrelated(file, expected, analysis));
        }
        out
    }

    /// Says on standard error why the input cannot be verified ([`Self::problems`]) and
    /// returns true, or returns false when it can.
    pub fn report_unusable(&self, analysis: &Analysis, opts: &FlowOptions) -> bool {
        let problems = self.problems(analysis, opts);
        for p in &problems {
            say(format!("lvscheck: {p}"));
        }
        !problems.is_empty()
    }

    /// Each `--role` whose capture the traffic shows, without doubt, to be something else.
    fn role_conflicts(&self, analysis: &Analysis) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let mut seen = Vec::new();
        for c in &analysis.topology.role_conflicts {
            let capture = c.vantage.capture as usize;
            if seen.contains(&capture) {
                continue;
            }
            seen.push(capture);
            let Some(file) = self.files.get(capture) else {
                continue;
            };
            let spec = self
                .roles
                .iter()
                .find(|r| r.split_once('=').is_some_and(|(_, f)| Path::new(f) == file))
                .cloned()
                .unwrap_or_else(|| format!("{}={}", c.given, file.display()));
            out.push(format!(
                "--role {spec} contradicts the traffic: that capture shows {} ({}). Nothing was \
                 verified: its packets would be taken for those of {}, and every count built on \
                 them would be wrong; leave --role out for this file (its traffic decides) or \
                 name the capture you meant",
                a_role(c.traffic),
                c.reason,
                a_role(c.given)
            ));
        }
        out
    }
}

/// "a client", "the director"...
fn a_role(r: Role) -> &'static str {
    match r {
        Role::Director => "the director",
        Role::RealServer => "a real server",
        Role::Client => "a client",
        Role::Other => "a host outside LVS (other)",
    }
}

/// Refuses the capture arguments that cannot give a verdict on what was asked, before anything
/// is read, and gives back the sources to read: a path that cannot be opened (a mistyped name,
/// a directory, no permission), `-` given twice, and the same capture given twice (the same
/// path, another name of the same file, or a copy: its connections would be counted twice).
/// Inputs that can be read only once (`-`, a FIFO, `<(...)`) are copied first
/// ([`spool_streams`]), since every capture is read more than once. Every path concerned is
/// named, one problem a line; the lines after the first carry the `lvscheck: ` prefix that the
/// caller gives the first.
pub fn check_captures(files: &[PathBuf]) -> Result<Vec<CaptureSource>, String> {
    let given: Vec<CaptureSource> = files.iter().map(CaptureSource::from_arg).collect();
    let sources = spool_streams(&given).map_err(|e| e.to_string())?;
    let mut problems: Vec<String> = sources
        .iter()
        .filter_map(|s| check_openable(s).err())
        .map(|e| e.to_string())
        .collect();
    if !problems.is_empty() {
        let n = problems.len();
        problems.push(format!(
            "nothing was verified: {} named on the command line cannot be opened (a mistyped \
             path?); every capture given must be readable: correct the path, or leave the file \
             out to verify without it",
            if n == 1 {
                "a capture".to_string()
            } else {
                format!("{n} captures")
            }
        ));
        return Err(problems.join("\nlvscheck: "));
    }
    for d in duplicates(&sources) {
        let (a, b) = (files[d.first].display(), files[d.second].display());
        problems.push(match d.how {
            Sameness::SamePath => format!("{b} is given twice"),
            Sameness::SameFile => format!("{b} is another name of {a}, given before it"),
            Sameness::SameContent => {
                format!("{b} holds the same capture as {a} (the same bytes once decompressed)")
            }
        });
    }
    if !problems.is_empty() {
        problems.push(
            "nothing was verified: a capture given twice would be taken for two hosts that saw \
             the same packets, and its connections counted twice; give each capture once"
                .into(),
        );
        return Err(problems.join("\nlvscheck: "));
    }
    Ok(sources)
}

/// Each capture of which nothing could be read (not a capture, empty, a damaged header), and a
/// last line saying that nothing was verified; empty when every capture could be read. What is
/// wrong further in a capture is not here: what was read before it is used, and `capture.read`
/// reports it.
pub fn unreadable_captures(analysis: &Analysis) -> Vec<String> {
    let mut out: Vec<String> = analysis
        .captures
        .iter()
        .filter_map(|c| c.error.clone())
        .collect();
    if out.is_empty() {
        return out;
    }
    out.push(if out.len() == analysis.captures.len() {
        "no capture could be read".to_string()
    } else {
        format!(
            "nothing was verified: {} of the {} captures given could not be read at all; give \
             only pcap or pcapng captures (capinfos tells), or leave the file out to verify \
             without it",
            out.len(),
            analysis.captures.len()
        )
    });
    out
}

/// Rules that describe none of the services the traffic used (rules of another director, VIP or
/// port): the one thing to say about them, instead of a finding for every service and server.
pub fn rules_unrelated(
    file: &Path,
    expected: &[ExpectedService],
    analysis: &Analysis,
) -> Option<String> {
    let why = unrelated(expected, &analysis.topology.services)?;
    Some(format!(
        "{}: these rules do not describe this traffic: {why}. Nothing can be verified against \
         them: give the rules of the director these captures were taken behind (ipvsadm -Sn on \
         it), or leave --rules out",
        file.display()
    ))
}

/// `--color`: when the text report gets ANSI colour.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorChoice {
    /// When standard output is a terminal and NO_COLOR is not set (https://no-color.org).
    Auto,
    Always,
    Never,
}

/// How the text report looks: shared by every command that prints one.
#[derive(Args, Debug, Clone)]
pub struct OutputArgs {
    /// Colour in the text report: auto (on a terminal, unless NO_COLOR is set), always, never.
    #[arg(long, value_enum, value_name = "WHEN", default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
}

impl OutputArgs {
    /// Colour and table width for the text report. The width: `COLUMNS` when set (as `ls`
    /// reads it), else the terminal's when standard output is one, else `in_pipe` (None: the
    /// tables are not wrapped, one line a row).
    pub fn term(&self, in_pipe: Option<u16>) -> crate::report::style::Term {
        use std::io::IsTerminal;
        let tty = std::io::stdout().is_terminal();
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        crate::report::style::Term {
            color: match self.color {
                ColorChoice::Always => true,
                ColorChoice::Never => false,
                ColorChoice::Auto => tty && !no_color,
            },
            width: table_width(
                std::env::var("COLUMNS").ok().as_deref(),
                // comfy-table asks the terminal (through crossterm) when standard output is one.
                tty.then(|| comfy_table::Table::new().width()).flatten(),
                in_pipe,
            ),
        }
    }
}

/// The width tables fit: `COLUMNS` when it is a number of columns (at least 20), else the
/// terminal's, else what a pipe gets.
fn table_width(columns: Option<&str>, terminal: Option<u16>, in_pipe: Option<u16>) -> Option<u16> {
    columns
        .and_then(|c| c.trim().parse::<u16>().ok())
        .filter(|&c| c >= 20)
        .or(terminal.filter(|&w| w > 0))
        .or(in_pipe)
}

#[cfg(test)]
mod tests {
    use super::table_width;

    #[test]
    fn columns_then_the_terminal_then_the_pipe_default() {
        assert_eq!(table_width(Some("100"), Some(80), Some(120)), Some(100));
        assert_eq!(table_width(None, Some(80), Some(120)), Some(80));
        assert_eq!(table_width(Some("wide"), None, Some(120)), Some(120));
        assert_eq!(table_width(Some("5"), None, None), None);
        assert_eq!(table_width(None, Some(0), None), None);
    }
}
