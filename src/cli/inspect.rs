//! `lvscheck inspect FILE...`

use std::path::PathBuf;

use clap::Args;

use super::{EXIT_FAILED, EXIT_OK, EXIT_UNUSABLE};
use crate::capture::spool::spool_streams;
use crate::capture::CaptureSource;
use crate::decode::DecodeOptions;
use crate::survey::{survey, ReadResult};

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// Capture files (pcap, pcapng, either gzip-compressed); `-` reads standard input.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Print one JSON document instead of tables.
    #[arg(long)]
    pub json: bool,
    /// UDP port carrying GUE tunnels (`ipvsadm --tun-type gue --tun-port`); repeatable. Without
    /// it, GUE-shaped UDP is a tunnel only where the captures show the director wrapping the
    /// clients' packets in it.
    #[arg(long = "gue-port", value_name = "PORT")]
    pub gue_ports: Vec<u16>,
}

/// Exit status: 0 every capture could be opened, 1 some could not, 2 none could.
pub fn run(args: &InspectArgs) -> i32 {
    let given: Vec<CaptureSource> = args.files.iter().map(CaptureSource::from_arg).collect();
    // A capture may be read again (to decode GUE the first read confirmed): a stream is copied
    // first, or a FIFO's second open would wait forever.
    let sources = match spool_streams(&given) {
        Ok(sources) => sources,
        Err(e) => {
            super::say(format!("lvscheck: {e}"));
            return EXIT_UNUSABLE;
        }
    };
    let opts = DecodeOptions {
        gue_ports: args.gue_ports.clone(),
        gue_probe: true,
        ..DecodeOptions::default()
    };
    let surveys = survey(&sources, &opts);
    if args.json {
        let doc = serde_json::json!({ "schema_version": 1, "captures": surveys });
        super::emit(&format!(
            "{}\n",
            serde_json::to_string_pretty(&doc).expect("survey serialises")
        ));
    } else {
        super::emit(&crate::report::inspect::render(&surveys));
    }
    let failed = surveys
        .iter()
        .filter(|s| matches!(s.read, ReadResult::Error(_)))
        .count();
    if failed == surveys.len() {
        EXIT_UNUSABLE
    } else if failed > 0 {
        EXIT_FAILED
    } else {
        EXIT_OK
    }
}
