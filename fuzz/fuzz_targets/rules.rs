//! Fuzzes the rules readers: ipvsadm's outputs and keepalived.conf with its includes.
//!
//! Input: text cut at each byte 0x00 into a main file and up to three more, held in memory as
//! /k/keepalived.conf, /k/a.conf, /k/conf.d/b.conf and /k/conf.d/c.inc, so that include
//! patterns (globs, braces, relative paths, cycles) reach real files. Checked: no panic; an
//! error names a line of a file that was read (1 and up); keepalived's rules never hold a
//! service without servers (keepalived drops such a service).
#![no_main]

use libfuzzer_sys::fuzz_target;
use lvscheck::topology::keepalived::{is_keepalived, parse, MemoryFiles};
use lvscheck::topology::rules::parse_rules;
use std::path::Path;

const NAMES: [&str; 4] = [
    "/k/keepalived.conf",
    "/k/a.conf",
    "/k/conf.d/b.conf",
    "/k/conf.d/c.inc",
];

fuzz_target!(|input: &[u8]| {
    let text = String::from_utf8_lossy(input);
    let parts: Vec<&str> = text.splitn(NAMES.len(), '\0').collect();
    let main = parts[0];
    if !is_keepalived(main) {
        // The ipvsadm readers never touch files: only the text.
        if let Err(e) = parse_rules(main, "rules.txt") {
            assert!(e.line >= 1);
        }
        return;
    }
    let files = NAMES
        .iter()
        .zip(&parts)
        .fold(MemoryFiles::default(), |f, (name, text)| f.with(name, text));
    match parse(main, Path::new(NAMES[0]), &files) {
        Ok(rules) => assert!(rules.services.iter().all(|s| !s.servers.is_empty())),
        Err(e) => {
            assert!(e.line >= 1, "{e}");
            assert!(NAMES.contains(&e.file.as_str()) || e.file.starts_with("/k/"), "{e}");
        }
    }
});
