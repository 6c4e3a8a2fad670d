//! Text from outside (file names, pcapng interface names) never reaches the terminal raw
//! (issue 11): a file name with ESC, OSC, BEL, CR or LF, and a pcapng interface name with an
//! OSC title, a colour and a line erase, are shown escaped by every command in text mode, on
//! standard output and standard error; the JSON keeps the real name (serde escapes it).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// A name that sets the terminal title, colours, returns the carriage and erases the line.
const EVIL: &str = "evil\n\u{1b}[31mRED\u{1b}[0m\u{1b}]0;pwned\u{7}\r\u{1b}[2Kname.pcap";

/// The interface name of the made-up pcapng: the same tricks inside the file.
const EVIL_IFNAME: &str = "eth0\u{1b}]0;owned\u{7}\u{1b}[31mRED\r\n\u{1b}[2Kfake line";

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("lvscheck-esc-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn lvscheck(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lvscheck"))
        .env("NO_COLOR", "1")
        .args(args)
        .output()
        .expect("lvscheck runs")
}

/// Control characters other than the newlines that end lines: what a terminal would act on.
fn controls(bytes: &[u8]) -> Vec<u8> {
    bytes
        .iter()
        .copied()
        .filter(|b| (*b < 0x20 && *b != b'\n') || *b == 0x7f)
        .collect()
}

fn assert_clean(what: &str, out: &Output) {
    assert!(
        controls(&out.stdout).is_empty() && controls(&out.stderr).is_empty(),
        "{what}: control characters reach the terminal:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A pcapng (little-endian) of one Ethernet interface named `if_name` and one UDP frame:
/// section header, interface description with if_name (option 2), enhanced packet block.
fn pcapng_with_ifname(if_name: &str) -> Vec<u8> {
    fn block(kind: u32, body: &[u8]) -> Vec<u8> {
        let len = (12 + body.len()) as u32;
        let mut b = kind.to_le_bytes().to_vec();
        b.extend(len.to_le_bytes());
        b.extend(body);
        b.extend(len.to_le_bytes());
        b
    }
    fn pad4(v: &mut Vec<u8>) {
        while !v.len().is_multiple_of(4) {
            v.push(0);
        }
    }
    let mut shb = 0x1a2b_3c4du32.to_le_bytes().to_vec();
    shb.extend(1u16.to_le_bytes());
    shb.extend(0u16.to_le_bytes());
    shb.extend((-1i64).to_le_bytes());
    let mut idb = 1u16.to_le_bytes().to_vec(); // LINKTYPE_ETHERNET
    idb.extend(0u16.to_le_bytes());
    idb.extend(65535u32.to_le_bytes());
    idb.extend(2u16.to_le_bytes()); // if_name
    idb.extend((if_name.len() as u16).to_le_bytes());
    idb.extend(if_name.as_bytes());
    pad4(&mut idb);
    idb.extend([0u8; 4]); // opt_endofopt
                          // Ethernet, IPv4 10.0.0.1 -> 10.0.0.2, UDP 1000 -> 2000, 4 bytes of payload.
    let mut frame = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00];
    frame.extend([
        0x45, 0, 0, 32, 0, 1, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
    ]);
    frame.extend([0x03, 0xe8, 0x07, 0xd0, 0, 12, 0, 0, b't', b'e', b's', b't']);
    let mut epb = 0u32.to_le_bytes().to_vec();
    epb.extend(0u32.to_le_bytes());
    epb.extend(1u32.to_le_bytes());
    epb.extend((frame.len() as u32).to_le_bytes());
    epb.extend((frame.len() as u32).to_le_bytes());
    epb.extend(&frame);
    pad4(&mut epb);
    let mut out = block(0x0a0d_0d0a, &shb);
    out.extend(block(1, &idb));
    out.extend(block(6, &epb));
    out
}

fn commands() -> [&'static str; 4] {
    ["inspect", "verify", "flows", "fairness"]
}

#[test]
fn a_hostile_file_name_is_escaped_by_every_command_and_kept_in_json() {
    let dir = scratch("name");
    let tutorial = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/tutorial");
    let evil = dir.join(EVIL);
    std::fs::copy(tutorial.join("server1.pcap"), &evil).unwrap();
    let client = tutorial.join("client.pcap");
    for cmd in commands() {
        let out = lvscheck(&[cmd.as_ref(), evil.as_os_str(), client.as_os_str()]);
        assert_clean(cmd, &out);
        if cmd == "inspect" {
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(text.contains("\\u{1b}]0;pwned\\u{7}"), "{text}");
        }
    }
    // Errors name the file too: one that does not exist, and one given twice.
    let missing = dir.join(format!("{EVIL}.missing"));
    for cmd in ["verify", "flows", "fairness"] {
        let out = lvscheck(&[cmd.as_ref(), missing.as_os_str()]);
        assert_eq!(out.status.code(), Some(2), "{cmd}");
        assert_clean(&format!("{cmd} on a missing file"), &out);
        let out = lvscheck(&[cmd.as_ref(), evil.as_os_str(), evil.as_os_str()]);
        assert_clean(&format!("{cmd} on a file given twice"), &out);
    }
    let out = lvscheck(&["verify".as_ref(), "--json".as_ref(), evil.as_os_str()]);
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["captures"][0]["file"], evil.to_str().unwrap());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_hostile_pcapng_interface_name_is_escaped() {
    let dir = scratch("ifname");
    let file = dir.join("ifname.pcapng");
    std::fs::write(&file, pcapng_with_ifname(EVIL_IFNAME)).unwrap();
    for cmd in commands() {
        let out = lvscheck(&[cmd.as_ref(), file.as_os_str()]);
        assert_clean(cmd, &out);
    }
    let out = lvscheck(&["inspect".as_ref(), file.as_os_str()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("eth0\\u{1b}]0;owned\\u{7}"), "{text}");
    let out = lvscheck(&["inspect".as_ref(), "--json".as_ref(), file.as_os_str()]);
    let doc: Value = serde_json::from_slice(&out.stdout).expect("inspect --json");
    assert!(
        doc.to_string().contains("\\u001b]0;owned\\u0007"),
        "the JSON keeps the name, JSON-escaped: {doc}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
