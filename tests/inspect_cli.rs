//! `lvscheck inspect` on real fixtures: the per-layer counts agree with tshark's, and the exit
//! status says whether the captures could be opened. Expected counts come from tshark 4.0.17:
//! `tshark -r FILE -Y arp | wc -l`, `-Y 'ip.proto==4'`, `-Y tcp`, and plain `tshark -r FILE`.

use std::process::Command;

use serde_json::Value;

fn inspect(args: &[&str]) -> (i32, Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_lvscheck"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .arg("inspect")
        .arg("--json")
        .args(args)
        .output()
        .expect("lvscheck runs");
    let json = serde_json::from_slice(&out.stdout).expect("inspect --json prints JSON");
    (out.status.code().unwrap(), json)
}

/// (file, link type, frames, ARP, IP-in-IP, TCP) as tshark counts them.
const TSHARK: [(&str, u64, u64, u64, u64, u64); 3] = [
    ("fixtures/tutorial/server1.pcap", 1, 144, 8, 68, 136),
    ("fixtures/wrr/rs-b-any.pcap", 276, 188, 9, 60, 179),
    ("fixtures/wrr/rs-a-tunl0.pcap", 101, 96, 0, 0, 96),
];

#[test]
fn layer_counts_agree_with_tshark() {
    let files: Vec<&str> = TSHARK.iter().map(|t| t.0).collect();
    let (code, json) = inspect(&files);
    assert_eq!(code, 0);
    let captures = json["captures"].as_array().unwrap();
    for (capture, (file, link, frames, arp, ipip, tcp)) in captures.iter().zip(TSHARK) {
        assert_eq!(capture["file"], file);
        let summary = &capture["summary"];
        assert_eq!(summary["frames"], frames, "{file}");
        assert_eq!(summary["complete"], true, "{file}");
        assert_eq!(summary["interfaces"][0]["link_type"], link, "{file}");
        let layers = &capture["layers_per_interface"][0];
        assert_eq!(layers["frames"], frames, "{file}");
        assert_eq!(layers["arp"], arp, "{file}");
        assert_eq!(layers["tunnels"]["ipip"], ipip, "{file}");
        assert_eq!(layers["tcp"], tcp, "{file}");
    }
}

#[test]
fn a_merged_pcapng_is_counted_per_interface() {
    // mergecap -I none of the tutorial's four captures: 144, 72, 71 and 137 frames (capinfos).
    let (code, json) = inspect(&["fixtures/formats-merged/all-hosts.pcapng"]);
    assert_eq!(code, 0);
    let per_if: Vec<u64> = json["captures"][0]["summary"]["frames_per_interface"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    assert_eq!(per_if, vec![144, 72, 71, 137]);
}

#[test]
fn exit_status_says_what_could_be_opened() {
    let (code, json) = inspect(&["fixtures/tutorial/client.pcap", "fixtures"]);
    assert_eq!(code, 1, "one of two could not be read");
    let error = json["captures"][1]["error"].as_str().unwrap();
    assert!(
        error.contains("fixtures") && error.contains("directory"),
        "{error}"
    );
    let (code, _) = inspect(&["Cargo.toml"]);
    assert_eq!(code, 2, "nothing could be read");
}

#[test]
fn a_capture_cut_short_is_read_up_to_the_cut_and_says_so() {
    let (code, json) = inspect(&["fixtures/formats-truncated/client.pcap"]);
    assert_eq!(code, 0);
    let summary = &json["captures"][0]["summary"];
    // capinfos: 136 packets, then "cut short in the middle of a packet".
    assert_eq!(summary["frames"], 136);
    assert_eq!(summary["complete"], false);
    let warning = summary["warnings"][0]["message"].as_str().unwrap();
    assert!(
        warning.contains("14076"),
        "names the byte offset: {warning}"
    );
}
