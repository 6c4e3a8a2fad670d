//! Every capture's analysis state written as JSON ([`lvscheck::full_state`]) and read back is
//! the state it was, for every fixture folder: facts and clock samples per interface, what
//! reading said, pass 2's statistics and health checks, the GUE judgement and mirror splits.
//! And the topology discovered from the read-back facts is the one discovered from the
//! originals. A consistency test: both sides come from lvscheck's own code, on the same
//! captures.

use lvscheck::capture::CaptureSource;
use lvscheck::decode::DecodeOptions;
use lvscheck::flows::gathered::{gather, Gathered};
use lvscheck::flows::{analyse_files_streaming, FileSource, FlowOptions};
use lvscheck::full_state::{from_json, to_json};
use lvscheck::topology::facts::VantageFacts;
use lvscheck::topology::{discover, gue, Hints};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fmt::Debug;
use std::path::{Path, PathBuf};

/// Every folder under fixtures/ holding captures, with its captures in name order.
fn fixture_folders() -> Vec<(PathBuf, Vec<PathBuf>)> {
    fn walk(dir: &Path, out: &mut Vec<(PathBuf, Vec<PathBuf>)>) {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        let captures: Vec<PathBuf> = entries
            .iter()
            .filter(|p| {
                let name = p.file_name().unwrap().to_string_lossy();
                [".pcap", ".pcapng", ".pcap.gz", ".pcapng.gz"]
                    .iter()
                    .any(|ext| name.ends_with(ext))
            })
            .cloned()
            .collect();
        if !captures.is_empty() {
            out.push((dir.to_path_buf(), captures));
        }
        for sub in entries.iter().filter(|p| p.is_dir()) {
            walk(sub, out);
        }
    }
    let mut out = Vec::new();
    walk(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures"),
        &mut out,
    );
    out
}

/// As the command line decodes: GUE-shaped UDP noted (`--gue-port` or not), so that pass 1
/// has GUE evidence to judge.
fn decode_options() -> DecodeOptions {
    DecodeOptions {
        gue_probe: true,
        ..DecodeOptions::default()
    }
}

/// Writes `v`, reads it back, and checks that it is equal and writes the same text again.
fn round_trip<T: Serialize + DeserializeOwned + PartialEq + Debug>(what: &str, v: &T) -> T {
    let text = to_json(v).unwrap_or_else(|e| panic!("{what}: {e}"));
    let back: T = from_json(&text).unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        back == *v,
        "{what}: read back differs:\n{back:?}\nwas\n{v:?}"
    );
    assert_eq!(
        to_json(&back).unwrap(),
        text,
        "{what}: written again differs"
    );
    back
}

/// What the fixtures exercised, so that the test cannot pass on empty states.
#[derive(Default, Debug)]
struct Seen {
    flow_groups: u64,
    arp: u64,
    macs_aside: u64,
    cut_examples: u64,
    gue_shaped: u64,
    adverts: u64,
    syncs: u64,
    clock_samples: u64,
    read_warnings: u64,
    interface_names: u64,
    health_checks: u64,
    oddities: u64,
    joined_at_end: u64,
    mirrors: u64,
}

impl Seen {
    fn facts(&mut self, f: &VantageFacts) {
        self.flow_groups += f.flows.iter().count() as u64;
        self.arp += f.arp.len() as u64;
        self.macs_aside += u64::from(f.mac_frames().len() > f.flows.keys().count());
        self.cut_examples += f.counts.cut_examples.len() as u64;
        self.gue_shaped += u64::from(!f.gue.is_empty());
        self.adverts += f.control.adverts.len() as u64;
        self.syncs += f.control.syncs.len() as u64;
    }
}

fn check_capture(name: &str, g: &Gathered, seen: &mut Seen) -> Vec<VantageFacts> {
    let facts = round_trip(&format!("{name}: facts"), &g.facts);
    let read = round_trip(&format!("{name}: read"), &g.read);
    let stats = round_trip(&format!("{name}: stats"), &g.stats);
    round_trip(&format!("{name}: health checks"), &g.health_checks);
    for (f, sampler) in &g.facts {
        seen.facts(f);
        seen.clock_samples += sampler.len() as u64;
    }
    if let Ok(r) = &read {
        seen.read_warnings += r.warnings.len() as u64;
        seen.interface_names += r.interface_names.len() as u64;
    }
    seen.health_checks += g.health_checks.len() as u64;
    seen.oddities += stats.iter().filter(|s| !s.oddities.is_empty()).count() as u64;
    facts.into_iter().map(|(f, _)| f).collect()
}

#[test]
fn every_fixture_state_reads_back_as_it_was() {
    let folders = fixture_folders();
    assert!(folders.len() >= 50, "{} fixture folders", folders.len());
    let opts = FlowOptions::default();
    let decode = decode_options();
    let mut seen = Seen::default();
    for (dir, files) in &folders {
        let name = dir.display().to_string();
        let sources: Vec<CaptureSource> = files.iter().cloned().map(CaptureSource::File).collect();
        let source = FileSource::new(sources.clone(), decode.clone(), opts.look_ahead);
        let (topology, gathered) = gather(&source, &opts);
        assert_eq!(gathered.len(), files.len(), "{name}");
        let mut originals = Vec::new();
        let mut decoded = Vec::new();
        for g in &gathered {
            decoded.extend(check_capture(&name, g, &mut seen));
            originals.extend(g.facts.iter().map(|(f, _)| f.clone()));
        }

        // The topology of the read-back facts is the topology of the originals.
        let again = discover(&decoded, &Hints::default());
        assert_eq!(
            serde_json::to_string(&again).unwrap(),
            serde_json::to_string(&topology).unwrap(),
            "{name}: topology"
        );
        let judged = |facts: &[VantageFacts]| {
            gue::judge(
                &facts
                    .iter()
                    .map(|f| (f.vantage, &f.gue))
                    .collect::<Vec<_>>(),
            )
        };
        let tunnels = round_trip(&format!("{name}: GUE"), &judged(&originals));
        assert_eq!(judged(&decoded), tunnels, "{name}: GUE judged again");

        // The whole pipeline's statistics (with `joined_at_end`), health checks and mirror
        // splits.
        let analysis = analyse_files_streaming(&sources, decode.clone(), &opts, &mut drop);
        let stats = round_trip(&format!("{name}: analysis stats"), &analysis.stats);
        round_trip(&format!("{name}: analysis health"), &analysis.health_checks);
        round_trip(&format!("{name}: mirrors"), &analysis.mirrors);
        seen.joined_at_end += stats.iter().filter(|s| s.joined_at_end.is_some()).count() as u64;
        seen.mirrors += analysis.mirrors.len() as u64;
    }
    eprintln!("{seen:?}");
    let Seen {
        flow_groups,
        arp,
        macs_aside,
        cut_examples,
        gue_shaped,
        adverts,
        syncs,
        clock_samples,
        read_warnings,
        interface_names,
        health_checks,
        oddities,
        joined_at_end,
        mirrors,
    } = seen;
    for (what, n) in [
        ("flow groups", flow_groups),
        ("ARP statements", arp),
        ("MACs counted aside", macs_aside),
        ("cut frames", cut_examples),
        ("GUE-shaped datagrams", gue_shaped),
        ("VRRP advertisements", adverts),
        ("sync messages", syncs),
        ("clock samples", clock_samples),
        ("read warnings", read_warnings),
        ("interface names", interface_names),
        ("health checks", health_checks),
        ("oddities", oddities),
        ("connections joined at the end", joined_at_end),
        ("mirror splits", mirrors),
    ] {
        assert!(n > 0, "no fixture has {what}");
    }
}

/// Users' JSON is unchanged: what it leaves out, only the full state writes.
#[test]
fn hidden_fields_are_written_only_in_the_full_state() {
    let (dir, files) = fixture_folders()
        .into_iter()
        .find(|(d, _)| d.ends_with("derived/snaplen-40"))
        .expect("fixtures/derived/snaplen-40");
    let opts = FlowOptions::default();
    let sources: Vec<CaptureSource> = files.into_iter().map(CaptureSource::File).collect();
    let source = FileSource::new(sources, decode_options(), opts.look_ahead);
    let (_, gathered) = gather(&source, &opts);
    let counts = gathered
        .iter()
        .flat_map(|g| &g.facts)
        .map(|(f, _)| &f.counts)
        .find(|c| !c.cut_examples.is_empty())
        .unwrap_or_else(|| panic!("{}: no cut frame", dir.display()));
    let stats = &gathered[0].stats[0];
    for hidden in [
        "cut_examples",
        "earliest",
        "latest",
        "first_request",
        "first_reply",
    ] {
        let key = format!("\"{hidden}\":");
        assert!(!serde_json::to_string(counts).unwrap().contains(&key));
        assert!(to_json(counts).unwrap().contains(&key), "{hidden}");
    }
    assert!(!serde_json::to_string(stats)
        .unwrap()
        .contains("\"oddities\":"));
    assert!(to_json(stats).unwrap().contains("\"oddities\":"));
}
