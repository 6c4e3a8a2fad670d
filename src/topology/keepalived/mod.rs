//! keepalived's configuration (`keepalived.conf`) as the IPVS rules keepalived sets up from it,
//! in the same [`Rules`] model the ipvsadm parsers fill.
//!
//! The grammar is keepalived's own, read from its source (v2.4.3, git 9cbce3e2): the reading
//! of lines in `lib/parser.c` (`read_line`, `decomment`, `alloc_strvec_r`, `check_include`,
//! `check_definition`, `replace_param`), the keywords of `keepalived/check/check_parser.c`
//! (`init_check_keywords`), the objects of `keepalived/check/check_data.c` (`alloc_vs`,
//! `alloc_rs`, `alloc_vsg_entry`, `validate_check_config`) and what `ipvswrapper.c` and
//! `ipwrapper.c` send to the kernel. Each function here names the one it follows.
//!
//! What is read: `virtual_server IP PORT`, `virtual_server fwmark N`, `virtual_server group
//! NAME` (its `virtual_server_group` expanded: addresses, `IP-N` and `IP-IP` ranges, `IP/len`
//! subnets, `fwmark N [inet|inet6]`), `protocol`, `lvs_sched`/`lb_algo`, the scheduler flags,
//! `ops`, `lvs_method`/`lb_kind` (`NAT`, `DR`, `TUN [type ipip|gue port N|gre]
//! [nocsum|csum|remcsum]`, also per `real_server`), `persistence_timeout`,
//! `persistence_granularity`, `persistence_engine`, `ip_family`, `weight` (of the service: the
//! default of its servers), `real_server IP [PORT]` with `weight`, `uthreshold`, `lthreshold`,
//! and `sorry_server` (kept beside the servers, [`ServiceRule::sorry_server`], never as one of
//! them: keepalived adds it only when every real server is down). Health checkers
//! (`TCP_CHECK`, `HTTP_GET`...) and every other top-level block (`global_defs`, `vrrp_*`,
//! `static_*`...) are skipped, braces and all. `include` (globs, braces, relative to the
//! including file), `$NAME=value` definitions and their `$NAME`/`${NAME}` uses are followed.
//!
//! Where keepalived fills a default and says so in its log (no `protocol`: UDP; no scheduler:
//! wlc; no `lvs_method`: NAT; a real server's port taken from the service), the rules get the
//! same value and a note says so ([`Rules::notes`]). Everything else keepalived would complain
//! about is refused with the file (the included one when it is one) and line, because
//! keepalived then drops the keyword or the object and carries on, so what the director runs is
//! not what the text says: an unknown keyword inside `virtual_server`, `real_server` or
//! `virtual_server_group` (keepalived logs "Unknown keyword" and ignores it; a misspelt
//! `lvs_method` would leave the default NAT in place, silently for whoever reads only the file),
//! an invalid value, a malformed address, a missing `{`, unbalanced braces, a missing include
//! file (keepalived skips it silently unless run with `--include-check`: the services in it
//! would be missing), an include cycle. Refused outright because their outcome depends on the
//! director itself: lines conditional on keepalived's config id (`@ID ...`, the host name by
//! default) where they touch the services or the braces, `~SEQ`/`~LST` generated lines,
//! multi-line definitions, `$_INSTANCE`, `$_RANDOM`, `$_ENV`, and address groups under
//! `nftables_ipvs` (keepalived turns them into a firewall mark it picks at run time). In all
//! those cases `ipvsadm -Sn` on the director says what the kernel has.
//!
//! Server order. keepalived adds a service's real servers in the order of the file when it
//! starts (`init_service_rs` walks the list `rs_end_handler` appended to), and the kernel puts
//! each new server at the head of its list (`ip_vs_new_dest`, `list_add_rcu`), so the
//! kernel's list, the order rr and wrr start from, is the file's order reversed. The rules
//! list the servers in that kernel order, the convention of the ipvsadm parsers (whose
//! `-Ln --nosort` is the kernel's order, while `-Sn` and `-Ln` print them sorted, which the
//! scheduler replay takes as "order unknown"). Under `alpha` (without `inhibit_on_failure`) a
//! server is only added when its checker first succeeds, in an order no file says: those
//! services list their servers sorted, with a note. A server a checker took out and put back
//! later also moves to the head of the kernel's list; the file cannot show that either
//! (`ipvsadm -Ln --nosort` on the director does).

mod glob;
mod grammar;
mod lexer;
mod model;
mod services;
mod values;

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};

use super::rules::{ParseError, Rules};

/// Whether `text` is keepalived's configuration rather than ipvsadm output: its first line
/// that is not blank or a comment starts with one of keepalived's top-level keywords (those
/// `install_keyword_root` registers), an `include`, a definition or a conditional line, or
/// any line starts with `virtual_server` or `global_defs` (so that a keyword of a newer
/// keepalived on the first line does not send the file to the ipvsadm readers). ipvsadm's
/// outputs start with `-A`, `IP Virtual Server`, `Prot` or a protocol name instead.
pub fn is_keepalived(text: &str) -> bool {
    const ROOT: [&str; 27] = [
        "global_defs",
        "virtual_server",
        "virtual_server_group",
        "vrrp_instance",
        "vrrp_sync_group",
        "vrrp_script",
        "vrrp_track_file",
        "vrrp_track_process",
        "track_file",
        "track_group",
        "static_ipaddress",
        "static_routes",
        "static_rules",
        "linkbeat_interfaces",
        "linkbeat_use_polling",
        "garp_group",
        "bfd_instance",
        "net_namespace",
        "net_namespace_ipvs",
        "namespace_with_ipsets",
        "instance",
        "use_pid_dir",
        "child_wait_time",
        "interface_up_down_delays",
        "SSL",
        "include",
        "includer",
    ];
    let Some(first) = text
        .lines()
        .map(|l| l.trim_start())
        .find(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('!'))
    else {
        return false;
    };
    let word = first
        .split(|c: char| c.is_ascii_whitespace() || c == '{')
        .next()
        .unwrap_or("");
    let block = |l: &str| {
        let w = l
            .split(|c: char| c.is_ascii_whitespace() || c == '{')
            .next();
        matches!(
            w,
            Some("virtual_server" | "virtual_server_group" | "global_defs")
        )
    };
    ROOT.contains(&word)
        || text.lines().any(|l| block(l.trim_start()))
        || lexer::include_pattern(first).is_some()
        || lexer::definition(first).is_some()
        || (first.starts_with('@') && first.len() > 1)
        || first.starts_with("~SEQ")
        || first.starts_with("~LST")
}

/// Parses keepalived's configuration `text`, read from `path` (which names it in errors and is
/// where relative includes start); included files are read through `files`.
pub fn parse(text: &str, path: &Path, files: &dyn Files) -> Result<Rules, ParseError> {
    let lexed = lexer::lex(text, path, files)?;
    let parsed = grammar::parse(&lexed)?;
    let mut rules = services::rules(&parsed, &lexed.files)?;
    let mut notes = lexed.notes;
    notes.append(&mut rules.notes);
    rules.notes = notes;
    Ok(rules)
}

/// What an included file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Dir,
    /// `executable`: keepalived skips such files (`check_glob_file`).
    File {
        executable: bool,
    },
}

/// How included files are found and read: the file system, or memory (tests, fuzzing).
pub trait Files {
    /// The file's text; an error of kind `InvalidData` when it is not UTF-8.
    fn read(&self, path: &Path) -> io::Result<String>;
    /// None when nothing is there.
    fn kind(&self, path: &Path) -> Option<Kind>;
    /// The names in a directory.
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// One name per file, to see an include cycle however the path was written.
    fn identity(&self, path: &Path) -> PathBuf;
}

/// The file system.
pub struct FileSystem;

impl Files for FileSystem {
    fn read(&self, path: &Path) -> io::Result<String> {
        std::fs::read_to_string(path)
    }

    fn kind(&self, path: &Path) -> Option<Kind> {
        let meta = std::fs::metadata(path).ok()?;
        if meta.is_dir() {
            return Some(Kind::Dir);
        }
        #[cfg(unix)]
        let executable = {
            use std::os::unix::fs::PermissionsExt;
            meta.permissions().mode() & 0o111 != 0
        };
        #[cfg(not(unix))]
        let executable = false;
        Some(Kind::File { executable })
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        std::fs::read_dir(dir)?
            .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect()
    }

    fn identity(&self, path: &Path) -> PathBuf {
        std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
    }
}

/// Files held in memory, by path; the directories are those the paths imply.
#[derive(Debug, Default, Clone)]
pub struct MemoryFiles {
    pub files: HashMap<PathBuf, String>,
}

impl MemoryFiles {
    pub fn with(mut self, path: &str, text: &str) -> MemoryFiles {
        self.files.insert(PathBuf::from(path), text.to_string());
        self
    }
}

impl Files for MemoryFiles {
    fn read(&self, path: &Path) -> io::Result<String> {
        self.files
            .get(&self.identity(path))
            .cloned()
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
    }

    fn kind(&self, path: &Path) -> Option<Kind> {
        let path = self.identity(path);
        if self.files.contains_key(&path) {
            Some(Kind::File { executable: false })
        } else if self.files.keys().any(|f| f.starts_with(&path)) {
            Some(Kind::Dir)
        } else {
            None
        }
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let dir = self.identity(dir);
        let mut names: Vec<String> = self
            .files
            .keys()
            .filter_map(|f| f.strip_prefix(&dir).ok())
            .filter_map(|rest| rest.components().next())
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names.dedup();
        if names.is_empty() && self.kind(&dir).is_none() {
            return Err(io::Error::from(io::ErrorKind::NotFound));
        }
        Ok(names)
    }

    /// `a/./b` and `a/x/../b` are `a/b`, as the paths are written (no links in memory).
    fn identity(&self, path: &Path) -> PathBuf {
        let mut out = PathBuf::new();
        for c in path.components() {
            match c {
                std::path::Component::CurDir => {}
                std::path::Component::ParentDir => {
                    if !out.pop() {
                        out.push("..");
                    }
                }
                other => out.push(other.as_os_str()),
            }
        }
        out
    }
}
