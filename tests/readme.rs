//! The README shows what the main command prints on the tutorial fixture; keep it true.

use std::process::Command;

#[test]
fn readme_shows_the_real_output_of_its_main_command() {
    let root = env!("CARGO_MANIFEST_DIR");
    // As the shell expands `fixtures/tutorial/*.pcap`: in name order.
    let out = Command::new(env!("CARGO_BIN_EXE_lvscheck"))
        .current_dir(root)
        .env("NO_COLOR", "1")
        .args([
            "verify",
            "fixtures/tutorial/client.pcap",
            "fixtures/tutorial/server1.pcap",
            "fixtures/tutorial/server2.pcap",
            "fixtures/tutorial/server3.pcap",
            "--rules",
            "fixtures/tutorial/rules.txt",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let printed = String::from_utf8(out.stdout).unwrap();
    let readme = std::fs::read_to_string(format!("{root}/README.md")).unwrap();
    assert!(
        readme.contains(printed.trim_end()),
        "README.md no longer shows what `verify` prints on the tutorial; paste:\n{printed}"
    );
    assert!(readme.lines().take(6).any(|l| {
        l.contains(
        "cargo run --release -- verify fixtures/tutorial/*.pcap --rules fixtures/tutorial/rules.txt"
    )
    }));
}

/// The README's ladder diagrams are what `flows --conn ID --ladder` prints, and it says which
/// command printed each.
#[test]
fn readme_shows_the_real_ladders_of_a_tutorial_and_an_rp_filter_connection() {
    let root = env!("CARGO_MANIFEST_DIR");
    let readme = std::fs::read_to_string(format!("{root}/README.md")).unwrap();
    for (fixture, files, id) in [
        (
            "tutorial",
            [
                "client.pcap",
                "server1.pcap",
                "server2.pcap",
                "server3.pcap",
            ],
            "2",
        ),
        (
            "rp-filter",
            ["client.pcap", "director.pcap", "rs1.pcap", "rs2.pcap"],
            "1",
        ),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_lvscheck"))
            .current_dir(root)
            .env("NO_COLOR", "1")
            .arg("flows")
            .args(files.map(|f| format!("fixtures/{fixture}/{f}")))
            .args(["--conn", id, "--ladder"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0));
        let printed = String::from_utf8(out.stdout).unwrap();
        assert!(
            readme.contains(printed.trim_end()),
            "README.md no longer shows the ladder of {fixture} connection {id}; paste:\n{printed}"
        );
        let command = format!("flows fixtures/{fixture}/*.pcap --conn {id} --ladder");
        assert!(readme.contains(&command), "{command}");
    }
}
