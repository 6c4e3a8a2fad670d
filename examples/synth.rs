//! Writes synthetic LVS-TUN captures (client(s), director, each real server) and a truth.json
//! describing what is in them, for tests and benchmarks.
//!
//! cargo run --release --example synth -- --out DIR --connections N --servers K [--seed S]
//!     [--clock-shift-ms HOST=MS ...] [--format pcap|pcapng] [--fault NAME]
//!
//! The generator itself lives in tests/synth_common/generator.rs so that the integration
//! tests can call it as library code.

#[path = "../tests/synth_common/generator.rs"]
mod generator;

use clap::Parser;
use generator::{generate, CaptureFormat, Config, Fault};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(about = "Write synthetic LVS-TUN captures and a truth.json")]
struct Args {
    /// Directory to write into (created if missing).
    #[arg(long)]
    out: PathBuf,
    /// Connections to generate.
    #[arg(long, default_value_t = 1000)]
    connections: u64,
    /// Real servers (rs1..rsK, scheduled round robin in the order the SYNs reach the director;
    /// the rules are written to rules.txt).
    #[arg(long, default_value_t = 3)]
    servers: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Client addresses (1..=508, from 198.51.100.0/24 then 203.0.113.0/24).
    #[arg(long, default_value_t = 200)]
    clients: usize,
    /// Hosts the client addresses are spread over, one capture each (client or client1..M).
    #[arg(long, default_value_t = 1)]
    client_hosts: usize,
    /// New connections per second (Poisson); with connections lasting milliseconds this
    /// bounds the connections in flight.
    #[arg(long, default_value_t = 2000.0)]
    rate: f64,
    /// Response segments per connection, MIN-MAX (uniform).
    #[arg(long, default_value = "1-3")]
    response_segments: String,
    /// Payload bytes of a full response segment.
    #[arg(long, default_value_t = 1448)]
    segment_size: u32,
    /// Clock error of one host's capture: HOST=MS, e.g. rs1=3000 (repeatable).
    #[arg(long = "clock-shift-ms", value_name = "HOST=MS")]
    clock_shift_ms: Vec<String>,
    /// pcap or pcapng.
    #[arg(long, default_value = "pcap")]
    format: String,
    /// rp-filter, arp, reply-from-rip or via-director, on one real server.
    #[arg(long)]
    fault: Option<String>,
    /// Which real server the fault applies to (1-based).
    #[arg(long, default_value_t = 1)]
    faulty_server: usize,
    /// Write only this host's capture (repeatable); the others are still simulated.
    #[arg(long)]
    only: Vec<String>,
    /// Capture only part of the traffic on one host: HOST=FROM_MS-UNTIL_MS after the traffic's
    /// start (repeatable), as when tcpdump started late or stopped early.
    #[arg(long = "capture-window", value_name = "HOST=FROM-UNTIL")]
    capture_window: Vec<String>,
}

fn config(a: &Args) -> Result<Config, String> {
    let mut c = Config::new(a.connections, a.servers);
    c.seed = a.seed;
    c.clients = a.clients;
    c.client_hosts = a.client_hosts;
    c.rate = a.rate;
    let (lo, hi) = a
        .response_segments
        .split_once('-')
        .unwrap_or((&a.response_segments, &a.response_segments));
    c.response_segments = (
        lo.parse().map_err(|_| "--response-segments: MIN-MAX")?,
        hi.parse().map_err(|_| "--response-segments: MIN-MAX")?,
    );
    c.segment_size = a.segment_size;
    for s in &a.clock_shift_ms {
        let (host, ms) = s
            .split_once('=')
            .ok_or_else(|| format!("--clock-shift-ms {s}: expected HOST=MS"))?;
        let ms: f64 = ms
            .parse()
            .map_err(|_| format!("--clock-shift-ms {s}: {ms} is not a number"))?;
        c.clock_shift_ns
            .insert(host.to_string(), (ms * 1e6).round() as i64);
    }
    c.format = CaptureFormat::parse(&a.format)?;
    c.fault = a.fault.as_deref().map(Fault::parse).transpose()?;
    c.faulty_server = a
        .faulty_server
        .checked_sub(1)
        .ok_or("--faulty-server is 1-based")?;
    c.only = a.only.clone();
    for s in &a.capture_window {
        let bad = || format!("--capture-window {s}: expected HOST=FROM_MS-UNTIL_MS");
        let (host, range) = s.split_once('=').ok_or_else(bad)?;
        let (from, until) = range.split_once('-').ok_or_else(bad)?;
        let ms = |x: &str| x.parse::<f64>().map(|v| (v * 1e6).round() as i64);
        c.capture_window_ns.insert(
            host.to_string(),
            (ms(from).map_err(|_| bad())?, ms(until).map_err(|_| bad())?),
        );
    }
    Ok(c)
}

fn main() -> ExitCode {
    let args = Args::parse();
    let cfg = match config(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("synth: {e}");
            return ExitCode::from(2);
        }
    };
    let started = std::time::Instant::now();
    let summary = match generate(&cfg, &args.out) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("synth: {}: {e}", args.out.display());
            return ExitCode::FAILURE;
        }
    };
    let (mut frames, mut bytes) = (0, 0);
    for (host, path, f, b) in &summary.captures {
        frames += f;
        bytes += b;
        match path {
            Some(p) => println!("{host:>10}  {f:>10} frames  {b:>13} bytes  {}", p.display()),
            None => println!("{host:>10}  (not written)"),
        }
    }
    println!(
        "connections {}  frames {frames}  frame bytes {bytes}  traffic {:.3} s  max concurrent \
         connections {}  truth {}  generated in {:.1} s",
        summary.connections,
        summary.duration_ns as f64 / 1e9,
        summary.max_concurrent,
        summary.truth.display(),
        started.elapsed().as_secs_f64()
    );
    ExitCode::SUCCESS
}
