//! Shell completions and the man page come from the parser's own definitions: every
//! subcommand and option a user can type is in them.

use std::process::Command;

fn lvscheck(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_lvscheck"))
        .args(args)
        .output()
        .expect("lvscheck runs");
    (
        out.status.code().expect("exit status"),
        String::from_utf8(out.stdout).expect("UTF-8"),
    )
}

#[test]
fn bash_completion_knows_every_subcommand_and_parses() {
    let (code, script) = lvscheck(&["completions", "bash"]);
    assert_eq!(code, 0);
    for word in [
        "inspect",
        "verify",
        "flows",
        "fairness",
        "--rules",
        "--director-state",
    ] {
        assert!(script.contains(word), "{word} missing");
    }
    // bash itself reads it without a syntax error, when bash is here.
    if let Ok(out) = Command::new("bash")
        .arg("-n")
        .arg("-c")
        .arg(&script)
        .output()
    {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for shell in ["zsh", "fish", "elvish", "powershell"] {
        let (code, script) = lvscheck(&["completions", shell]);
        assert_eq!(code, 0, "{shell}");
        assert!(script.contains("verify"), "{shell}");
    }
    let (code, _) = lvscheck(&["completions", "tcsh"]);
    assert_eq!(code, 2);
}

#[test]
fn the_man_page_is_roff_naming_every_subcommand() {
    let (code, page) = lvscheck(&["man"]);
    assert_eq!(code, 0);
    assert!(page.contains(".TH lvscheck 1"), "{page}");
    for section in [".SH NAME", ".SH SYNOPSIS", ".SH DESCRIPTION"] {
        assert!(page.contains(section), "{section}");
    }
    for sub in ["inspect", "verify", "flows", "fairness", "completions"] {
        assert!(page.contains(sub), "{sub}");
    }
}
