//! Seeds for the `decode` fuzz target (fuzz/fuzz_targets/decode.rs) from real captures: for
//! each capture, the first frames of the first interface whose link type the target can pick,
//! in the target's input format (byte 0 the link type's index, byte 1 the options, then
//! frames each behind a 2-byte big-endian length). fuzz/run.sh calls it on ../shared/corpus.
//!
//! cargo run --release --example fuzz_seeds -- OUT_DIR CAPTURE...

use std::path::Path;

/// fuzz/fuzz_targets/decode.rs's LINK_TYPES, in its order: byte 0 is an index into it.
const LINK_TYPES: [u32; 11] = [0, 1, 12, 14, 101, 108, 113, 228, 229, 276, 147];
/// Frames per seed: enough for a handshake or a datagram's fragments, small enough to run fast.
const FRAMES: usize = 32;

fn main() {
    let mut args = std::env::args_os().skip(1);
    let Some(out) = args.next() else {
        eprintln!("usage: fuzz_seeds OUT_DIR CAPTURE...");
        std::process::exit(2);
    };
    let out = Path::new(&out);
    std::fs::create_dir_all(out).expect("output directory");
    let (mut written, mut skipped) = (0, 0);
    for path in args {
        let Ok(file) = std::fs::File::open(&path) else {
            skipped += 1;
            continue;
        };
        // (link type index, frames) of the first interface the target can decode.
        let mut picked: Option<(u8, u32)> = None;
        let mut seed = Vec::new();
        let mut taken = 0;
        let _ =
            lvscheck::capture::read_capture_from(0, "seed", std::io::BufReader::new(file), |f| {
                let Some(index) = LINK_TYPES.iter().position(|l| *l == f.link_type) else {
                    return;
                };
                match picked {
                    None => picked = Some((index as u8, f.interface)),
                    Some((_, i)) if i != f.interface => return,
                    _ => {}
                }
                if taken == FRAMES {
                    return;
                }
                let data = &f.data[..f.data.len().min(usize::from(u16::MAX))];
                seed.extend((data.len() as u16).to_be_bytes());
                seed.extend(data);
                taken += 1;
            });
        let Some((index, _)) = picked else {
            skipped += 1;
            continue;
        };
        // Named after the whole path: two projects' captures may share a file name.
        let name = path
            .to_string_lossy()
            .replace(|c: char| !c.is_ascii_alphanumeric(), "_");
        // Options byte 2: GUE auto-detection on, as verify runs without --gue-port.
        let mut input = vec![index, 2];
        input.extend(seed);
        std::fs::write(out.join(name), input).expect("seed written");
        written += 1;
    }
    eprintln!(
        "fuzz_seeds: {written} seeds written, {skipped} captures without a decodable interface"
    );
}
