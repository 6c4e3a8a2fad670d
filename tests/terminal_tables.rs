//! The text reports on a terminal and in a pipe: tables fit the width, colour codes take no
//! room in them, paths are never cut, `--color` decides colour. A terminal is made with
//! `script` (util-linux, essential on Debian) around the binary.

use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_lvscheck");
const TUTORIAL: [&str; 4] = [
    "fixtures/tutorial/client.pcap",
    "fixtures/tutorial/server1.pcap",
    "fixtures/tutorial/server2.pcap",
    "fixtures/tutorial/server3.pcap",
];

fn root() -> &'static str {
    env!("CARGO_MANIFEST_DIR")
}

/// Runs lvscheck in a pipe (no terminal), with `env` set and NO_COLOR and COLUMNS unset.
fn piped(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(root())
        .env_remove("NO_COLOR")
        .env_remove("COLUMNS")
        .args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

/// What lvscheck prints on a terminal `cols` columns wide (carriage returns removed).
fn on_terminal(cols: u16, args: &[&str]) -> String {
    on_terminal_with(cols, "", args)
}

/// [`on_terminal`], with `env` (`NAME=value ...`) set for lvscheck.
fn on_terminal_with(cols: u16, env: &str, args: &[&str]) -> String {
    let line = format!(
        "stty cols {cols} rows 50; {env} exec {BIN} {}",
        args.iter()
            .map(|a| format!("'{a}'"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let out = Command::new("script")
        .current_dir(root())
        .env_remove("NO_COLOR")
        .env_remove("COLUMNS")
        .args(["-q", "-e", "-c", &line, "/dev/null"])
        .output()
        .expect("script (util-linux) runs lvscheck on a terminal");
    String::from_utf8(out.stdout).unwrap().replace('\r', "")
}

/// The text without its ANSI escape sequences (ESC [ ... final letter).
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The lines of the tables (their borders and rows).
fn table_lines(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|l| l.starts_with(['┌', '│', '╞', '├', '└']))
        .collect()
}

fn verify_args<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec!["verify"];
    v.extend(TUTORIAL);
    v.extend(["--rules", "fixtures/tutorial/rules.txt"]);
    v.extend(extra);
    v
}

/// Every capture file is printed whole, or broken right after a `/`: never cut in a name.
fn assert_paths_whole(text: &str) {
    for path in TUTORIAL {
        let name = path.rsplit('/').next().unwrap();
        assert!(text.contains(name), "{name} cut:\n{text}");
    }
    assert!(text.contains("fixtures/tutorial/"), "{text}");
}

#[test]
fn on_a_narrow_terminal_verify_fits_in_colour_and_keeps_paths_whole() {
    let text = on_terminal(72, &verify_args(&[]));
    assert!(
        text.contains("\x1b["),
        "auto colours on a terminal:\n{text}"
    );
    let plain = strip_ansi(&text);
    assert!(plain.contains("VERIFIED"), "{plain}");
    let lines = table_lines(&plain);
    assert!(lines.len() > 30, "{plain}");
    for l in &lines {
        assert!(l.chars().count() <= 72, "wider than the terminal: {l}");
    }
    assert_paths_whole(&plain);
    // 72 columns leave a capture name no room beside its folder: broken after the '/'.
    assert!(
        plain
            .lines()
            .any(|l| l.starts_with("│ fixtures/tutorial/ ")),
        "{plain}"
    );
}

#[test]
fn color_never_on_a_terminal_and_no_color_are_plain() {
    let text = on_terminal(100, &verify_args(&["--color", "never"]));
    assert!(
        text.contains("VERIFIED") && !text.contains('\x1b'),
        "{text}"
    );
    for command in [&["flows"][..], &["inspect"], &["fairness"]] {
        let mut args = command.to_vec();
        args.extend(TUTORIAL);
        args.extend(["--color", "never"]);
        let text = on_terminal(100, &args);
        assert!(!text.contains('\x1b'), "{command:?}: {text}");
        assert!(text.contains("┌"), "{command:?}: {text}");
    }
}

#[test]
fn colour_codes_take_no_room_in_the_tables() {
    // --color always in a pipe: the same layout as without colour, once the codes are out.
    let coloured = piped(&verify_args(&["--color", "always"]), &[]);
    let plain = piped(&verify_args(&["--color", "never"]), &[]);
    let coloured = String::from_utf8(coloured.stdout).unwrap();
    let plain = String::from_utf8(plain.stdout).unwrap();
    assert!(coloured.contains("\x1b[") && !plain.contains('\x1b'));
    assert_eq!(strip_ansi(&coloured), plain);
    // The status column is as wide as its widest word (INFO/PASS/SKIP: 4) and its padding.
    let header = plain.lines().find(|l| l.contains("┆ status ┆")).unwrap();
    assert!(header.contains("┆ status ┆"), "{header}");
    let auto = piped(&verify_args(&[]), &[]);
    assert!(!auto.stdout.contains(&0x1b), "auto never colours a pipe");
}

#[test]
fn in_a_pipe_columns_sets_the_width_and_paths_stay_whole() {
    for cols in [70u16, 90, 130] {
        let out = piped(&verify_args(&[]), &[("COLUMNS", &cols.to_string())]);
        let text = String::from_utf8(out.stdout).unwrap();
        for l in table_lines(&text) {
            assert!(l.chars().count() <= cols as usize, "COLUMNS={cols}: {l}");
        }
        assert_paths_whole(&text);
    }
    // Without COLUMNS, verify's tables are laid out for 120 columns.
    let out = piped(&verify_args(&[]), &[]);
    let text = String::from_utf8(out.stdout).unwrap();
    let widest = table_lines(&text).iter().map(|l| l.chars().count()).max();
    assert_eq!(widest, Some(120));
}

#[test]
fn tables_say_words_not_rust_names() {
    let out = piped(&verify_args(&[]), &[]);
    let text = String::from_utf8(out.stdout).unwrap();
    // server2.pcap and server3.pcap are the real servers' captures (fixtures/tutorial).
    for name in ["server2.pcap", "server3.pcap"] {
        let row = text.lines().find(|l| l.contains(name)).unwrap();
        assert!(row.contains("┆ real server ┆"), "{row}");
    }
    assert!(!text.contains("real_server"), "{text}");
    let mut args = vec!["flows"];
    args.extend(TUTORIAL);
    let out = piped(&args, &[]);
    let text = String::from_utf8(out.stdout).unwrap();
    // The tutorial's topology: 10 connections over one service, 5 to each real server.
    assert!(text.contains("┆ 10 connections "), "{text}");
    assert!(text.contains("; 5 connections "), "{text}");
    assert!(
        !text.contains("real_server") && !text.contains("in_progress"),
        "{text}"
    );
}
