//! `lvscheck inspect FILE...`

use std::path::PathBuf;

use clap::Args;
use serde::Serialize;

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
    #[command(flatten)]
    pub output: super::common::OutputArgs,
    /// UDP port carrying GUE tunnels (`ipvsadm --tun-type gue --tun-port`); repeatable. Without
    /// it, GUE-shaped UDP is a tunnel only where the captures show the director wrapping the
    /// clients' packets in it.
    #[arg(long = "gue-port", value_name = "PORT")]
    pub gue_ports: Vec<u16>,
}

/// Version of the JSON document (docs/inspect-json.md); bumped when a field changes meaning or
/// goes away. 2: interfaces without frames beyond the first few are counted
/// (`empty_interfaces_omitted`), not listed, so the per-interface arrays are no longer indexed
/// by interface number.
pub const SCHEMA_VERSION: u32 = 2;

/// `inspect --json`: serialised as it is written, never held whole (a `serde_json::Value` of
/// it took ten times the output's size).
#[derive(Serialize)]
struct InspectDocument<'a> {
    schema_version: u32,
    captures: &'a [crate::survey::CaptureSurvey],
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
        super::emit_json(&InspectDocument {
            schema_version: SCHEMA_VERSION,
            captures: &surveys,
        });
    } else {
        super::emit(&crate::report::inspect::render(
            &surveys,
            // Not wrapped in a pipe, as before.
            &args.output.term(None),
        ));
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
