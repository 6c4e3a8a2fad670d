//! The `glob(3)` keepalived calls for `include` (`open_and_check_glob` in lib/parser.c, with
//! `GLOB_BRACE`): `{a,b}` alternatives first, each expanded in turn, then `*`, `?` and `[...]`
//! in any path component; a name starting with `.` only matches a pattern that does. Each
//! alternative's matches are sorted, alternatives keep their order.

use std::path::PathBuf;

use super::Files;
use crate::escape::printable;

/// Alternatives one pattern may expand to, and braces it may nest; past these it is refused.
const MAX_ALTERNATIVES: usize = 256;
const MAX_NESTING: usize = 16;
/// `PATH_MAX`: a longer pattern names no file (and brace matching is quadratic in it).
const MAX_PATTERN: usize = 4096;
/// Files one include may match; past this it is refused.
const MAX_MATCHES: usize = 4096;

pub(super) struct Globbed {
    pub paths: Vec<PathBuf>,
    /// The pattern has a wildcard: matching nothing is then allowed (keepalived's `INCLUDE_W`).
    pub wildcard: bool,
    /// A path that should be there and is not: a literal file, or a directory to search
    /// (keepalived's `INCLUDE_M`).
    pub missing: Option<PathBuf>,
}

pub(super) fn glob(fs: &dyn Files, pattern: &str) -> Result<Globbed, String> {
    if pattern.len() > MAX_PATTERN {
        return Err(format!(
            "include {} is longer than a path can be ({MAX_PATTERN} bytes)",
            printable(pattern, 200)
        ));
    }
    let mut alternatives = Vec::new();
    braces(pattern, &mut alternatives, 0)?;
    let mut out = Globbed {
        paths: Vec::new(),
        wildcard: false,
        missing: None,
    };
    for alt in alternatives {
        let mut current = vec![PathBuf::from(if alt.starts_with('/') { "/" } else { "" })];
        for comp in alt.split('/').filter(|c| !c.is_empty()) {
            if !wild(comp) {
                let comp = unescape(comp);
                current.iter_mut().for_each(|p| p.push(&comp));
                continue;
            }
            out.wildcard = true;
            let mut next = Vec::new();
            for dir in current {
                let listed = if dir.as_os_str().is_empty() {
                    fs.list(std::path::Path::new("."))
                } else {
                    fs.list(&dir)
                };
                let Ok(mut names) = listed else {
                    out.missing = Some(dir);
                    continue;
                };
                names.sort();
                for name in names {
                    if matches(comp, &name) && (!name.starts_with('.') || comp.starts_with('.')) {
                        next.push(dir.join(name));
                    }
                }
                if next.len() > MAX_MATCHES {
                    return Err(too_many(pattern));
                }
            }
            current = next;
        }
        let mut found = Vec::new();
        for path in current {
            // Directories are found too (`GLOB_MARK`); the include skips them, as keepalived's
            // `check_glob_file` does.
            match fs.kind(&path) {
                Some(_) => found.push(path),
                None => out.missing = Some(path),
            }
        }
        found.sort();
        out.paths.extend(found);
        if out.paths.len() > MAX_MATCHES {
            return Err(too_many(pattern));
        }
    }
    Ok(out)
}

fn too_many(pattern: &str) -> String {
    format!(
        "include {} matches more than {MAX_MATCHES} files",
        printable(pattern, 200)
    )
}

/// Whether a path component has a wildcard (not escaped by `\`).
fn wild(comp: &str) -> bool {
    let mut escaped = false;
    for c in comp.chars() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '*' | '?' | '[' => return true,
            _ => {}
        }
    }
    false
}

fn unescape(comp: &str) -> String {
    let mut out = String::with_capacity(comp.len());
    let mut chars = comp.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.extend(chars.next()),
            c => out.push(c),
        }
    }
    out
}

/// `GLOB_BRACE`: the first `{...}` with a matching `}` is replaced by each of its
/// comma-separated alternatives (nested braces count), and each result expanded again.
fn braces(pattern: &str, out: &mut Vec<String>, nesting: usize) -> Result<(), String> {
    if nesting > MAX_NESTING {
        return Err(format!(
            "include {} nests braces deeper than {MAX_NESTING}",
            printable(pattern, 200)
        ));
    }
    let b = pattern.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'{' => {
                let mut depth = 0;
                let mut commas = Vec::new();
                let mut j = i;
                let close = loop {
                    match b.get(j) {
                        None => break None,
                        Some(b'\\') => j += 1,
                        Some(b'{') => depth += 1,
                        Some(b'}') => {
                            depth -= 1;
                            if depth == 0 {
                                break Some(j);
                            }
                        }
                        Some(b',') if depth == 1 => commas.push(j),
                        _ => {}
                    }
                    j += 1;
                };
                let Some(close) = close else {
                    // No matching `}`: the `{` is an ordinary character.
                    i += 1;
                    continue;
                };
                let (head, tail) = (&pattern[..i], &pattern[close + 1..]);
                let mut start = i + 1;
                for end in commas.into_iter().chain(std::iter::once(close)) {
                    let alt = format!("{head}{}{tail}", &pattern[start..end]);
                    braces(&alt, out, nesting + 1)?;
                    if out.len() > MAX_ALTERNATIVES {
                        return Err(format!(
                            "include {} has more than {MAX_ALTERNATIVES} alternatives",
                            printable(pattern, 200)
                        ));
                    }
                    start = end + 1;
                }
                return Ok(());
            }
            _ => i += 1,
        }
    }
    out.push(pattern.to_string());
    Ok(())
}

/// `fnmatch` without flags: `*` any run, `?` one character, `[...]` a set (`!` or `^` first
/// negates it, `a-z` ranges, a `]` first is literal), `\` escapes.
fn matches(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let s: Vec<char> = name.chars().collect();
    let (mut pi, mut si) = (0, 0);
    // Where the last `*` was and how much of the name it has taken.
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        let step = match p.get(pi) {
            Some('*') => {
                star = Some((pi, si));
                pi += 1;
                continue;
            }
            Some('?') => Some(1),
            Some('[') => match set(&p[pi..], s[si]) {
                Some((true, len)) => Some(len),
                Some((false, _)) => None,
                None => (s[si] == '[').then_some(1),
            },
            Some('\\') if pi + 1 < p.len() => (p[pi + 1] == s[si]).then_some(2),
            Some(&c) => (c == s[si]).then_some(1),
            None => None,
        };
        match (step, star) {
            (Some(len), _) => {
                pi += len;
                si += 1;
            }
            (None, Some((sp, taken))) => {
                pi = sp + 1;
                si = taken + 1;
                star = Some((sp, taken + 1));
            }
            (None, None) => return false,
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// A `[...]` set at the start of `p`: whether `c` is in it and the set's length, or None when
/// the `[` has no `]` (then it is an ordinary character).
fn set(p: &[char], c: char) -> Option<(bool, usize)> {
    let mut i = 1;
    let negate = matches!(p.get(i), Some('!' | '^'));
    if negate {
        i += 1;
    }
    let mut found = false;
    let mut first = true;
    loop {
        let lo = *p.get(i)?;
        if lo == ']' && !first {
            return Some((found != negate, i + 1));
        }
        first = false;
        if p.get(i + 1) == Some(&'-') && p.get(i + 2).is_some_and(|&hi| hi != ']') {
            let hi = p[i + 2];
            found |= lo <= c && c <= hi;
            i += 3;
        } else {
            found |= lo == c;
            i += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        assert!(matches("*.conf", "a.conf"));
        assert!(matches("*.conf", ".conf"));
        assert!(!matches("*.conf", "a.conf.bak"));
        assert!(matches("a?c", "abc"));
        assert!(matches("[ab]*[!x]", "bzzy"));
        assert!(!matches("[ab]*[!x]", "bzzx"));
        assert!(matches("[0-9][]]", "7]"));
        assert!(matches("a\\*", "a*"));
        assert!(!matches("a\\*", "ab"));
        assert!(matches("[", "["));
        assert!(matches("*a*b*", "xxaxxbxx"));
        assert!(!matches("*a*b", "xxaxxbxx"));
    }

    #[test]
    fn brace_alternatives_in_order() {
        let mut out = Vec::new();
        braces("/e/{b,a{1,2}}/x{", &mut out, 0).unwrap();
        assert_eq!(out, ["/e/b/x{", "/e/a1/x{", "/e/a2/x{"]);
        let mut out = Vec::new();
        assert!(braces(&"{a,b}".repeat(10), &mut out, 0).is_err());
        let deep = format!("{}{}", "{".repeat(5000), "}".repeat(5000));
        assert!(braces(&deep, &mut Vec::new(), 0).is_err());
    }
}
