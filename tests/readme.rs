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
