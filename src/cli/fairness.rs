//! `lvscheck fairness FILE... [--rules FILE | --scheduler NAME --weights RIP=W,...] [--charts DIR]
//! [--html FILE]`
//!
//! The arguments, their parsing and validation, and what the command does once the
//! connection records exist: analyse, print (table or JSON), draw charts.

use super::say;
use crate::fairness::{
    self, ConnTable, FairnessInput, FairnessReport, Scheduler, Server, ServiceConfig, Timeouts,
};
use crate::report;
use anyhow::Context;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

#[derive(clap::Args, Debug, Clone)]
pub struct FairnessArgs {
    /// Capture files (pcap or pcapng) from the clients, the director and the real servers.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,

    /// Expected configuration as `ipvsadm -Sn` or `ipvsadm -Ln` output, or the director's
    /// keepalived.conf (told apart by content).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["scheduler", "weights"])]
    pub rules: Option<PathBuf>,

    #[command(flatten)]
    pub reading: super::common::ReadingArgs,

    /// The FILEs are records that `lvscheck extract` wrote, not captures (docs/records.md).
    #[arg(long)]
    pub records: bool,
    /// Where the query of --records runs: `embedded` (the default) or `ballista://HOST:PORT`.
    #[arg(
        long,
        value_name = "ENGINE",
        default_value = "embedded",
        requires = "records"
    )]
    pub engine: String,

    /// Configured scheduler: rr, wrr, lc, wlc, sed, nq, sh, dh, fo, ovf, mh, lblc, lblcr, twos.
    #[arg(long, value_name = "NAME", value_parser = parse_scheduler, requires = "weights")]
    pub scheduler: Option<Scheduler>,

    /// Real servers and their weights, e.g. 10.0.0.11=3,10.0.0.12=1 (IPv6: [2001:db8::b]=2).
    /// Without --scheduler the kernel default, wlc, is assumed.
    #[arg(long, value_name = "RIP=W,...", value_parser = parse_weights)]
    pub weights: Option<Weights>,

    /// The --weights list is in the kernel's order (`ipvsadm -Ln --nosort`: the most
    /// recently added server first). Without it every order is tried.
    #[arg(long, requires = "weights")]
    pub kernel_order: bool,

    /// Persistence timeout in seconds (`ipvsadm -p`).
    #[arg(long, value_name = "SECONDS", requires = "weights")]
    pub persistent: Option<u32>,

    /// Persistence netmask as a prefix length (`ipvsadm -M`), e.g. 24.
    #[arg(long, value_name = "PREFIX", requires = "persistent", value_parser = clap::value_parser!(u8).range(0..=128))]
    pub netmask: Option<u8>,

    /// sh or mh also hashes the client port (`-b sh-port` / `-b mh-port`).
    #[arg(long, requires = "weights")]
    pub sh_port: bool,

    /// Connection timeouts set with `ipvsadm --set TCP TCPFIN UDP`, in seconds (0 keeps
    /// the kernel default for that one), e.g. 900,120,300.
    #[arg(long, value_name = "TCP,TCPFIN,UDP", value_parser = parse_timeouts)]
    pub timeouts: Option<Timeouts>,

    /// Write the charts (PNG and SVG) into this directory.
    #[arg(long, value_name = "DIR")]
    pub charts: Option<PathBuf>,

    /// Print JSON instead of tables.
    #[arg(long)]
    pub json: bool,

    /// Also write the report as one self-contained HTML file (no network: inline CSS and
    /// SVG), the charts inline; standard output is unchanged. `-` writes the page to standard
    /// output instead of the tables.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,

    #[command(flatten)]
    pub output: super::common::OutputArgs,
}

/// Parsed `--weights`: servers in the order given; a server without a port takes the VIP's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Weights(pub Vec<(IpAddr, Option<u16>, u32)>);

pub fn parse_scheduler(s: &str) -> Result<Scheduler, String> {
    Scheduler::from_name(s).ok_or_else(|| {
        let names: Vec<&str> = Scheduler::ALL.iter().map(|s| s.name()).collect();
        format!(
            "unknown scheduler '{s}'; expected one of {}",
            names.join(", ")
        )
    })
}

pub fn parse_weights(s: &str) -> Result<Weights, String> {
    let mut out: Vec<(IpAddr, Option<u16>, u32)> = Vec::new();
    for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (addr, weight) = item
            .rsplit_once('=')
            .ok_or_else(|| format!("'{item}': expected RIP=WEIGHT"))?;
        let weight: u32 = weight
            .trim()
            .parse()
            .map_err(|_| format!("'{item}': weight '{weight}' is not a whole number"))?;
        // ipvsadm accepts weights 0..=65535.
        if weight > 65535 {
            return Err(format!("'{item}': weight {weight} is above 65535"));
        }
        let addr = addr.trim();
        let (ip, port) = if let Ok(sa) = addr.parse::<SocketAddr>() {
            (sa.ip(), Some(sa.port()))
        } else {
            let bare = addr.trim_start_matches('[').trim_end_matches(']');
            let ip: IpAddr = bare
                .parse()
                .map_err(|_| format!("'{item}': '{addr}' is not an IP address"))?;
            (ip, None)
        };
        if out.iter().any(|(i, p, _)| *i == ip && *p == port) {
            return Err(format!("'{item}': {addr} is listed twice"));
        }
        out.push((ip, port, weight));
    }
    if out.is_empty() {
        return Err("no server given; expected RIP=WEIGHT[,RIP=WEIGHT...]".into());
    }
    Ok(Weights(out))
}

/// `ipvsadm --set tcp tcpfin udp`: three whole numbers of seconds, 0 meaning "unchanged".
pub fn parse_timeouts(s: &str) -> Result<Timeouts, String> {
    let parts: Vec<&str> = s.split(',').map(str::trim).collect();
    if parts.len() != 3 {
        return Err(format!("'{s}': expected TCP,TCPFIN,UDP in seconds"));
    }
    let mut v = [0u32; 3];
    for (slot, p) in v.iter_mut().zip(&parts) {
        *slot = p
            .parse()
            .map_err(|_| format!("'{s}': '{p}' is not a whole number of seconds"))?;
    }
    let d = Timeouts::default();
    let pick = |x: u32, default: u32| if x == 0 { default } else { x };
    Ok(Timeouts {
        tcp_established_s: pick(v[0], d.tcp_established_s),
        tcp_fin_wait_s: pick(v[1], d.tcp_fin_wait_s),
        udp_s: pick(v[2], d.udp_s),
    })
}

impl FairnessArgs {
    /// The configuration given by flags, for a service on `vip`; None without --weights.
    pub fn flag_config(&self, vip: SocketAddr) -> Option<ServiceConfig> {
        let w = self.weights.as_ref()?;
        Some(ServiceConfig {
            scheduler: self.scheduler.unwrap_or(Scheduler::Wlc),
            persistence_s: self.persistent,
            netmask_prefix: self.netmask,
            sh_port: self.sh_port,
            servers: w
                .0
                .iter()
                .map(|&(ip, port, weight)| Server {
                    addr: SocketAddr::new(ip, port.unwrap_or(vip.port())),
                    weight,
                })
                .collect(),
            order_known: self.kernel_order,
        })
    }

    /// Gives every service that has no configuration yet the one from the flags, and the
    /// timeouts from --timeouts.
    pub fn apply_flags<C>(&self, input: &mut FairnessInput<C>) {
        if let Some(t) = self.timeouts {
            input.timeouts = t;
        }
        for svc in &mut input.services {
            if svc.config.is_none() {
                svc.config = self.flag_config(svc.vip);
            }
        }
    }
}

/// Analyses the input and presents the result as the flags ask: JSON or tables on standard
/// output, charts into `--charts`. Returns the chart files written.
pub fn run(
    input: &FairnessInput<ConnTable>,
    args: &FairnessArgs,
) -> anyhow::Result<(FairnessReport, Vec<PathBuf>)> {
    let timeline = match (&args.charts, &args.html) {
        (None, None) => fairness::Timeline::Skip,
        _ => fairness::Timeline::Keep,
    };
    let report = fairness::analyse_observed(input, timeline);
    if args.html.as_deref().is_some_and(report::html::to_stdout) {
        // The page takes standard output.
    } else if args.json {
        super::emit_json(&report);
    } else {
        // Not wrapped in a pipe: one line a row.
        report::fairness::print(&report, &args.output.term(None));
    }
    let charts = match &args.charts {
        Some(dir) => report::charts::render_all(&report, dir)
            .with_context(|| format!("writing charts into {}", dir.display()))?,
        None => Vec::new(),
    };
    Ok((report, charts))
}

/// The exit status a verdict gives: 0 conforms, 1 deviates, 3 inconclusive.
pub fn exit_status(verdict: &fairness::FairnessVerdict) -> i32 {
    match verdict.outcome {
        fairness::FairnessOutcome::Conforms => super::EXIT_OK,
        fairness::FairnessOutcome::Deviates => super::EXIT_FAILED,
        fairness::FairnessOutcome::Inconclusive => super::EXIT_INCONCLUSIVE,
    }
}

/// The `fairness` command: rebuild the connections, add the configuration, analyse, present.
/// Exit status: 0 the load conforms to the configuration, 1 it deviates, 2 the input could
/// not be used (a capture that cannot be read or is given twice, `-`, rules that are empty,
/// do not parse or describe other traffic), 3 inconclusive (see `fairness::verdict`).
pub fn main(args: &FairnessArgs) -> i32 {
    // Everything that can be refused before reading the captures is.
    if args.json && args.html.as_deref().is_some_and(report::html::to_stdout) {
        say("lvscheck: --json and --html - both write to standard output: give --html a file");
        return super::EXIT_UNUSABLE;
    }
    let sources = match args.records {
        true => Vec::new(),
        false => match super::common::check_captures(&args.files) {
            Ok(sources) => sources,
            Err(e) => {
                say(format!("lvscheck: {e}"));
                return super::EXIT_UNUSABLE;
            }
        },
    };
    let rules = match args
        .rules
        .as_deref()
        .map(crate::topology::rules::read_rules)
        .transpose()
    {
        Ok(r) => r,
        Err(e) => {
            say(format!("lvscheck: {e}"));
            return super::EXIT_UNUSABLE;
        }
    };
    // Each connection is reduced to what the replay needs as soon as it is rebuilt.
    let mut observer = fairness::observe::FairnessObserver::default();
    // The rules' services, so that the analysis matches firewall-mark rules with the traffic
    // (the observer groups a mark's connections by them).
    let mut flow_options = args.reading.flow_options();
    flow_options.expected = rules
        .as_ref()
        .map(|r| crate::topology::config::expected_from_rules(r).0);
    let analysis = if args.records {
        let engine = crate::records::engine::Engine::parse(&args.engine);
        match engine.and_then(|engine| {
            crate::records::analyse_streaming(&args.files, &engine, &flow_options, &mut observer)
        }) {
            Ok(a) => a,
            Err(e) => {
                say(format!("lvscheck: {e}"));
                return super::EXIT_UNUSABLE;
            }
        }
    } else {
        analyse_captures(
            &sources,
            rules.as_ref(),
            &mut flow_options,
            args.json,
            &mut observer,
        )
    };
    if super::report_unreadable(&analysis) {
        return super::EXIT_UNUSABLE;
    }
    let mut input = observer.finish(&analysis.topology);
    if let (Some(rules), Some(path)) = (&rules, &args.rules) {
        let (expected, _) = crate::topology::config::expected_from_rules(rules);
        if let Some(e) = super::common::rules_unrelated(path, &expected, &analysis) {
            say(format!("lvscheck: {e}"));
            return super::EXIT_UNUSABLE;
        }
        fairness::observe::apply_rules(&mut input, rules);
    }
    args.apply_flags(&mut input);
    match run(&input, args) {
        Ok((report, charts)) => {
            for c in charts {
                say(format!("wrote {}", c.display()));
            }
            if let Some(path) = &args.html {
                let page = report::html::fairness_page(&report, &analysis);
                if let Err(e) = report::html::write(path, &page) {
                    say(format!("lvscheck: cannot write {}: {e}", path.display()));
                    return super::EXIT_UNUSABLE;
                }
            }
            exit_status(&report.verdict)
        }
        Err(e) => {
            say(format!("lvscheck: {e:#}"));
            super::EXIT_UNUSABLE
        }
    }
}

/// The connections of the captures, rebuilt, each handed to `observer`.
fn analyse_captures(
    sources: &[crate::capture::CaptureSource],
    rules: Option<&crate::topology::rules::Rules>,
    flow_options: &mut crate::flows::FlowOptions,
    json: bool,
    observer: &mut fairness::observe::FairnessObserver,
) -> crate::flows::Analysis {
    let progress = super::progress::attach(flow_options, json);
    let analysis = crate::flows::analyse_files_streaming(
        sources,
        // GUE as in flows: on the rules' tunnel ports, and where the captures confirm it.
        crate::decode::DecodeOptions {
            gue_ports: rules
                .map(crate::topology::rules::Rules::gue_ports)
                .unwrap_or_default(),
            gue_probe: true,
            ..crate::decode::DecodeOptions::default()
        },
        flow_options,
        observer,
    );
    drop(progress);
    analysis
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: FairnessArgs,
    }

    fn parse(argv: &[&str]) -> Result<FairnessArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("fairness").chain(argv.iter().copied())).map(|c| c.args)
    }

    #[test]
    fn weights_keep_the_given_order_and_optional_ports() {
        let w = parse_weights("10.0.0.12=1, 10.0.0.11:8080=3,[2001:db8::b]=2").unwrap();
        assert_eq!(
            w.0,
            vec![
                ("10.0.0.12".parse().unwrap(), None, 1),
                ("10.0.0.11".parse().unwrap(), Some(8080), 3),
                ("2001:db8::b".parse().unwrap(), None, 2),
            ]
        );
    }

    #[test]
    fn bad_weights_say_what_is_wrong() {
        assert!(parse_weights("10.0.0.1")
            .unwrap_err()
            .contains("RIP=WEIGHT"));
        assert!(parse_weights("10.0.0.1=x")
            .unwrap_err()
            .contains("not a whole number"));
        assert!(parse_weights("10.0.0.1=70000")
            .unwrap_err()
            .contains("65535"));
        assert!(parse_weights("host=1").unwrap_err().contains("not an IP"));
        assert!(parse_weights("10.0.0.1=1,10.0.0.1=2")
            .unwrap_err()
            .contains("twice"));
        assert!(parse_weights(" , ").is_err());
    }

    #[test]
    fn timeouts_like_ipvsadm_set() {
        let t = parse_timeouts("30,0,60").unwrap();
        assert_eq!(
            (t.tcp_established_s, t.tcp_fin_wait_s, t.udp_s),
            (30, 120, 60)
        );
        assert!(parse_timeouts("30,60").is_err());
        assert!(parse_timeouts("a,1,2").unwrap_err().contains("'a'"));
    }

    #[test]
    fn scheduler_names() {
        assert_eq!(parse_scheduler("WRR"), Ok(Scheduler::Wrr));
        assert!(parse_scheduler("fifo").unwrap_err().contains("wlc"));
    }

    #[test]
    fn flags_build_a_configuration_with_the_vip_port() {
        let a = parse(&[
            "d.pcap",
            "--scheduler",
            "rr",
            "--weights",
            "10.0.0.11=1,10.0.0.12=0",
        ])
        .unwrap();
        let cfg = a.flag_config("192.0.2.10:443".parse().unwrap()).unwrap();
        assert_eq!(cfg.scheduler, Scheduler::Rr);
        assert_eq!(cfg.servers[1].addr, "10.0.0.12:443".parse().unwrap());
        assert_eq!(cfg.servers[1].weight, 0);
        assert!(!cfg.order_known);
        // --weights alone means the kernel's default scheduler.
        let a = parse(&["d.pcap", "--weights", "10.0.0.11=1"]).unwrap();
        assert_eq!(
            a.flag_config("192.0.2.10:80".parse().unwrap())
                .unwrap()
                .scheduler,
            Scheduler::Wlc
        );
    }

    #[test]
    fn conflicting_and_incomplete_flags_are_refused() {
        assert!(parse(&["d.pcap", "--rules", "r.txt", "--weights", "10.0.0.1=1"]).is_err());
        assert!(parse(&["d.pcap", "--scheduler", "rr"]).is_err());
        assert!(parse(&["d.pcap", "--weights", "10.0.0.1=1", "--netmask", "24"]).is_err());
        assert!(parse(&[]).is_err());
        let ok = parse(&[
            "a.pcap",
            "b.pcap",
            "--weights",
            "10.0.0.1=1",
            "--persistent",
            "360",
            "--netmask",
            "24",
            "--charts",
            "out",
            "--json",
        ])
        .unwrap();
        assert_eq!(ok.files.len(), 2);
        assert_eq!(ok.netmask, Some(24));
        assert!(ok.json);
    }
}
