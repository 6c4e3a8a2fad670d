//! keepalived's reading of lines (`read_line` in lib/parser.c): comments, definitions and their
//! uses, includes, conditional lines, and the split of every `{` and `}` onto a line of its own,
//! then the words of each line (`alloc_strvec_r`). The result is the stream of lines keepalived's
//! keyword handlers see, each with its file and line number.

use std::path::{Path, PathBuf};

use super::{glob, Files, Kind};
use crate::escape::printable;
use crate::topology::rules::ParseError;

/// One line as keepalived's keyword handlers see it: `{` and `}` are lines of their own.
#[derive(Debug, Clone)]
pub(super) struct Line {
    pub words: Vec<String>,
    /// Index into [`Lexed::files`].
    pub file: usize,
    pub line: usize,
    /// The line started `@ID` (or `@^ID`): whether keepalived reads it depends on its config
    /// id (`-i`, the host name by default), which the file does not say.
    pub conditional: bool,
}

#[derive(Debug, Default)]
pub(super) struct Lexed {
    /// The name of each file read, the first the one given.
    pub files: Vec<String>,
    pub lines: Vec<Line>,
    pub notes: Vec<String>,
}

/// Includes deeper than this are refused (keepalived has no limit and no cycle check).
const MAX_DEPTH: usize = 32;
/// A line that definitions grow past this, or that needs more substitutions, is refused:
/// keepalived would stop at its 1 kB line buffer; a definition that uses itself never ends.
const MAX_EXPANDED: usize = 64 * 1024;
const MAX_SUBSTITUTIONS: usize = 1000;

pub(super) fn lex(text: &str, path: &Path, files: &dyn Files) -> Result<Lexed, ParseError> {
    let mut lexer = Lexer {
        fs: files,
        out: Lexed::default(),
        defs: Vec::new(),
        stack: Vec::new(),
    };
    lexer.file(text, path, path.display().to_string())?;
    Ok(lexer.out)
}

struct Lexer<'a> {
    fs: &'a dyn Files,
    out: Lexed,
    /// `$NAME=value`, in the order defined (a redefinition replaces the value in place).
    defs: Vec<(String, String)>,
    /// Identities of the files being read, outermost first.
    stack: Vec<PathBuf>,
}

/// Where an error is: the file's index and the line.
#[derive(Clone, Copy)]
struct At {
    file: usize,
    line: usize,
}

impl Lexer<'_> {
    fn err(&self, at: At, message: impl Into<String>) -> ParseError {
        ParseError {
            file: self.out.files[at.file].clone(),
            line: at.line,
            message: message.into(),
        }
    }

    fn file(&mut self, text: &str, path: &Path, name: String) -> Result<(), ParseError> {
        let file = self.out.files.len();
        self.out.files.push(name);
        self.stack.push(self.fs.identity(path));
        // keepalived changes into the directory of a file it opens (`open_conf_file`): its
        // relative includes and `${_PWD}` start there.
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        for (i, raw) in text.lines().enumerate() {
            self.physical(raw, &dir, At { file, line: i + 1 })?;
        }
        self.stack.pop();
        Ok(())
    }

    /// One line of a file, as `read_line` handles it.
    fn physical(&mut self, raw: &str, dir: &Path, at: At) -> Result<(), ParseError> {
        if raw.contains('\0') {
            return Err(self.err(
                at,
                "a NUL byte in the line (keepalived ignores such a line)",
            ));
        }
        let mut line = decomment(raw).map_err(|m| self.err(at, m))?;
        if line.is_empty() {
            return Ok(());
        }
        let mut conditional = false;
        if line.starts_with('@') {
            // `@ID text`: read only when keepalived's config id is ID (`@^ID`: unless it is).
            // Without anything after the id, keepalived drops the line.
            let Some(k) = line.find([' ', '\t']) else {
                return Ok(());
            };
            conditional = true;
            line = line[k..].trim_start_matches([' ', '\t']).to_string();
        }
        if let Some((name, value)) = definition(&line) {
            if conditional {
                return Err(self.err(
                    at,
                    format!(
                        "the definition of ${} depends on keepalived's config id (`@ID`: -i, \
                         the director's host name by default), which the file does not say",
                        printable(name, 40)
                    ),
                ));
            }
            if value.ends_with('\\') {
                return Err(self.err(
                    at,
                    format!(
                        "${} is a multi-line definition, which lvscheck does not expand: \
                         give `ipvsadm -Sn` from the director instead",
                        printable(name, 40)
                    ),
                ));
            }
            let (name, value) = (name.to_string(), value.to_string());
            match self.defs.iter_mut().find(|(n, _)| *n == name) {
                Some(def) => def.1 = value,
                None => self.defs.push((name, value)),
            }
            return Ok(());
        }
        if line.starts_with("~SEQ") || line.starts_with("~LST") {
            return Err(self.err(at, generated_lines()));
        }
        if line.contains('$') {
            line = self.substitute(line, dir, at)?;
            line = decomment(&line).map_err(|m| self.err(at, m))?;
            if line.starts_with("~SEQ") || line.starts_with("~LST") {
                return Err(self.err(at, generated_lines()));
            }
        }
        if let Some(pattern) = include_pattern(&line) {
            if conditional {
                return Err(self.err(at, conditional_include()));
            }
            return self.include(pattern, dir, at);
        }
        self.split(&line, dir, at, conditional)
    }

    /// `replace_param`: every `$NAME` (followed by a blank, `,`, `)` or the end) and `${NAME}`
    /// that names a definition is replaced, and the text put in its place is read again.
    fn substitute(&self, mut line: String, dir: &Path, at: At) -> Result<String, ParseError> {
        let mut pos = 0;
        let mut done = 0;
        while let Some(off) = line[pos..].find('$') {
            let start = pos + off;
            if start + 1 >= line.len() {
                break;
            }
            let Some((len, value)) = self.lookup(&line[start + 1..], dir, at)? else {
                pos = start + 1;
                continue;
            };
            line.replace_range(start..start + 1 + len, &value);
            done += 1;
            if done > MAX_SUBSTITUTIONS || line.len() > MAX_EXPANDED {
                return Err(self.err(
                    at,
                    "the definitions used on this line expand without end (one uses itself)",
                ));
            }
            // keepalived stops replacing at a definition that starts a generated line.
            if value.trim_start_matches([' ', '\t']).starts_with('~') {
                break;
            }
        }
        Ok(line)
    }

    /// `find_definition` for the text after a `$`: the length of the name (with its braces)
    /// and the value, or None when it is no use of a definition.
    fn lookup(
        &self,
        rest: &str,
        dir: &Path,
        at: At,
    ) -> Result<Option<(usize, String)>, ParseError> {
        let b = rest.as_bytes();
        let braces = b.first() == Some(&b'{');
        let from = usize::from(braces);
        if !b
            .get(from)
            .is_some_and(|c| c.is_ascii_alphabetic() || *c == b'_')
        {
            return Ok(None);
        }
        let name_char = |c: &u8| c.is_ascii_alphanumeric() || *c == b'_';
        let end = from + b[from..].iter().take_while(|c| name_char(c)).count();
        let name = &rest[from..end];
        let (len, params) = if braces {
            let params = b[end..]
                .iter()
                .take_while(|c| name_char(c) || **c == b' ' || **c == b'\t')
                .count();
            let close = end + params;
            if b.get(close) != Some(&b'}') || (params > 0 && b[close - 1].is_ascii_whitespace()) {
                return Ok(None);
            }
            (close + 1, params > 0)
        } else {
            if b.get(end).is_some_and(|c| !b" \t,)".contains(c)) {
                return Ok(None);
            }
            (end, false)
        };
        if let Some((_, value)) = self.defs.iter().find(|(n, _)| n == name) {
            // A definition of the file's takes no parameters (`max_params` 0).
            return Ok((!params).then(|| (len, value.clone())));
        }
        let value = match name {
            "_PWD" if !params => dir.display().to_string(),
            "_HASH" if !params => "#".to_string(),
            "_BANG" if !params => "!".to_string(),
            "_INSTANCE" | "_RANDOM" | "_ENV" => {
                return Err(self.err(
                    at,
                    format!(
                        "${name} is known only to the keepalived running on the director \
                         (its instance, a random number, its environment): give \
                         `ipvsadm -Sn` from the director instead"
                    ),
                ))
            }
            _ => return Ok(None),
        };
        Ok(Some((len, value)))
    }

    /// `check_include` and `open_glob_file`: the files the pattern matches, in glob's order,
    /// read in place of the line.
    fn include(&mut self, pattern: &str, dir: &Path, at: At) -> Result<(), ParseError> {
        if self.stack.len() >= MAX_DEPTH {
            return Err(self.err(at, format!("includes nest deeper than {MAX_DEPTH} files")));
        }
        let full = if pattern.starts_with('/') || dir.as_os_str().is_empty() {
            pattern.to_string()
        } else {
            format!("{}/{pattern}", dir.display())
        };
        let shown = printable(&full, 200);
        let found = glob::glob(self.fs, &full).map_err(|m| self.err(at, m))?;
        if found.paths.is_empty() {
            if found.wildcard && found.missing.is_none() {
                self.out.notes.push(format!(
                    "{}:{}: include {shown} matches no file",
                    self.out.files[at.file], at.line
                ));
                return Ok(());
            }
            let missing = found.missing.unwrap_or_else(|| PathBuf::from(&full));
            return Err(self.err(
                at,
                format!(
                    "include {shown}: {} does not exist (keepalived skips a missing include \
                     unless run with --include-check, and the services in it would be \
                     missing here: copy the included files too, where the path says)",
                    printable(&missing.display().to_string(), 200)
                ),
            ));
        }
        for path in found.paths {
            let shown = printable(&path.display().to_string(), 200);
            match self.fs.kind(&path) {
                Some(Kind::File { executable: false }) => {}
                _ => {
                    self.out.notes.push(format!(
                        "{}:{}: include skips {shown}, as keepalived does: not a regular, \
                         non-executable file",
                        self.out.files[at.file], at.line
                    ));
                    continue;
                }
            }
            let id = self.fs.identity(&path);
            if let Some(k) = self.stack.iter().position(|p| *p == id) {
                let chain: Vec<String> = self.stack[k..]
                    .iter()
                    .chain(std::iter::once(&id))
                    .map(|p| printable(&p.display().to_string(), 200))
                    .collect();
                return Err(self.err(at, format!("include cycle: {}", chain.join(" -> "))));
            }
            let text = self.fs.read(&path).map_err(|e| {
                let why = if e.kind() == std::io::ErrorKind::InvalidData {
                    "not a text file (not UTF-8)".to_string()
                } else {
                    e.to_string()
                };
                self.err(at, format!("include {shown}: {why}"))
            })?;
            self.file(&text, &path, path.display().to_string())?;
        }
        Ok(())
    }

    /// The end of `read_line`: each `{` and `}` outside quotes goes on a line of its own (the
    /// rest of the line follows as the next one, and may be an include), then
    /// `alloc_strvec_r` cuts the words.
    fn split(
        &mut self,
        line: &str,
        dir: &Path,
        at: At,
        conditional: bool,
    ) -> Result<(), ParseError> {
        let mut rest = line;
        while !rest.is_empty() {
            let (now, next) = match brace(rest) {
                None => (rest, ""),
                Some(0) => (&rest[..1], rest[1..].trim_start_matches([' ', '\t'])),
                Some(k) => (rest[..k].trim_end_matches([' ', '\t']), &rest[k..]),
            };
            if let Some(pattern) = include_pattern(now).filter(|_| now.len() < line.len()) {
                if conditional {
                    return Err(self.err(at, conditional_include()));
                }
                self.include(pattern, dir, at)?;
                rest = next;
                continue;
            }
            let words = words(now).map_err(|m| self.err(at, m))?;
            if !words.is_empty() {
                self.out.lines.push(Line {
                    words,
                    file: at.file,
                    line: at.line,
                    conditional,
                });
            }
            rest = next;
        }
        Ok(())
    }
}

fn conditional_include() -> &'static str {
    "this include depends on keepalived's config id (`@ID`: -i, the director's host name by \
     default), which the file does not say"
}

fn generated_lines() -> &'static str {
    "~SEQ and ~LST generate lines, which lvscheck does not expand: give `ipvsadm -Sn` from \
     the director instead"
}

/// `decomment`: leading blanks, and everything from a `#` or `!` outside double quotes, go;
/// `\#` and `\!` become `#` and `!`; trailing blanks go (a final `\` stays, after them).
fn decomment(raw: &str) -> Result<String, String> {
    let mut out = String::with_capacity(raw.len());
    let mut quote = false;
    let mut cont = false;
    let mut chars = raw.trim_start_matches([' ', '\t']).chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                quote = !quote;
                out.push(c);
            }
            '\\' => match chars.next() {
                Some(n) => {
                    if quote || (n != '#' && n != '!') {
                        out.push('\\');
                    }
                    out.push(n);
                }
                None => cont = true,
            },
            '#' | '!' if !quote => break,
            _ => out.push(c),
        }
    }
    if quote {
        return Err("unterminated quote".into());
    }
    let len = out.trim_end_matches([' ', '\t']).len();
    out.truncate(len);
    if cont {
        out.push('\\');
    }
    Ok(out)
}

/// The first `{` or `}` of the line outside double quotes.
fn brace(line: &str) -> Option<usize> {
    let b = line.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'{' | b'}' => return Some(i),
            // A quote without its end hides the rest of the line.
            b'"' => i += 1 + line[i + 1..].find('"')? + 1,
            _ => i += 1,
        }
    }
    None
}

/// `alloc_strvec_r`: words split on white space; `"..."` is one word, without the quotes.
fn words(text: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut rest = text;
    loop {
        rest = rest.trim_start_matches(|c: char| c.is_ascii_whitespace());
        if rest.is_empty() {
            return Ok(out);
        }
        if let Some(quoted) = rest.strip_prefix('"') {
            let end = quoted
                .find('"')
                .ok_or_else(|| format!("unmatched quote: {}", printable(text, 80)))?;
            out.push(quoted[..end].to_string());
            rest = &quoted[end + 1..];
        } else {
            let end = rest
                .find(|c: char| c.is_ascii_whitespace() || c == '"')
                .unwrap_or(rest.len());
            out.push(rest[..end].to_string());
            rest = &rest[end..];
        }
    }
}

/// `check_definition`: `$NAME=value`, NAME a letter or `_` then letters, digits and `_`;
/// the value without its leading blanks.
pub(super) fn definition(line: &str) -> Option<(&str, &str)> {
    let body = line.strip_prefix('$')?;
    let eq = body.find('=')?;
    let name = &body[..eq];
    let mut chars = name.chars();
    let first = chars.next()?;
    if !(first.is_ascii_alphabetic() || first == '_')
        || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        return None;
    }
    Some((name, body[eq + 1..].trim_start_matches([' ', '\t'])))
}

/// `is_include`: `include`, or `includer`/`includem`/`includew`/`includeb`/`includea` (which
/// only change what keepalived reports), then a blank and the pattern.
pub(super) fn include_pattern(line: &str) -> Option<&str> {
    let rest = line.strip_prefix("include")?;
    let rest = match rest.as_bytes() {
        [c, ..] if c.is_ascii_whitespace() => &rest[1..],
        [c, d, ..] if b"rmwba".contains(c) && d.is_ascii_whitespace() => &rest[2..],
        _ => return None,
    };
    Some(rest.trim_start_matches([' ', '\t']))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::keepalived::MemoryFiles;

    fn lex_text(text: &str) -> Result<Lexed, ParseError> {
        lex(text, Path::new("k.conf"), &MemoryFiles::default())
    }

    fn words_of(l: &Lexed) -> Vec<String> {
        l.lines.iter().map(|l| l.words.join(" ")).collect()
    }

    #[test]
    fn braces_go_on_lines_of_their_own_and_comments_go() {
        let l = lex_text(
            "virtual_server 10.0.0.1 80 { lb_algo rr } # comment\n\
             ! whole-line comment\n\
             real_server \"10.0.0.2\" 80{weight 2}\n\
             notify_up \"/bin/x {a} # b\"\n\
             a \\#b\n",
        )
        .unwrap();
        assert_eq!(
            words_of(&l),
            [
                "virtual_server 10.0.0.1 80",
                "{",
                "lb_algo rr",
                "}",
                "real_server 10.0.0.2 80",
                "{",
                "weight 2",
                "}",
                "notify_up /bin/x {a} # b",
                "a #b",
            ]
        );
        assert_eq!(l.lines[4].line, 3);
        assert!(lex_text("a \"b\n").is_err());
    }

    #[test]
    fn definitions_are_replaced_where_keepalived_replaces_them() {
        let l = lex_text(
            "$VIP=10.0.0.1\n$PORT = 80\n$P=443\n\
             virtual_server $VIP ${P}\n\
             x $VIP/24 ${VIP}/24 $UNSET $P,1\n\
             $P=8443\n\
             y $P\n",
        )
        .unwrap();
        // `$PORT = 80` has a blank before `=`: not a definition, a line of its own.
        assert_eq!(
            words_of(&l),
            [
                "$PORT = 80",
                "virtual_server 10.0.0.1 443",
                "x $VIP/24 10.0.0.1/24 $UNSET 443,1",
                "y 8443",
            ]
        );
        let e = lex_text("$A=$A $A\nx $A\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.message.contains("without end"), "{e}");
        let e = lex_text("$A=1 \\\n").unwrap_err();
        assert!(e.message.contains("multi-line"), "{e}");
        let e = lex_text("\nx ${_RANDOM}\n").unwrap_err();
        assert_eq!(e.line, 2);
        let e = lex_text("~SEQ(i, 1, 3) x\n").unwrap_err();
        assert!(e.message.contains("~SEQ"), "{e}");
    }

    #[test]
    fn conditional_lines_are_marked() {
        let l = lex_text("@node1 priority 100\n@^node1 x {\n@alone\n").unwrap();
        assert_eq!(words_of(&l), ["priority 100", "x", "{"]);
        assert!(l.lines.iter().all(|l| l.conditional));
        assert!(lex_text("@a $X=1\n").is_err());
        assert!(lex_text("@a include x.conf\n").is_err());
    }

    #[test]
    fn includes_are_read_in_place_relative_to_the_including_file() {
        let fs = MemoryFiles::default()
            .with("/etc/k/keepalived.conf", "a\ninclude conf.d/*.conf\nz\n")
            .with("/etc/k/conf.d/2.conf", "c\n")
            .with("/etc/k/conf.d/1.conf", "b\ninclude ../sub/x.{conf,inc}\n")
            .with("/etc/k/sub/x.inc", "b2\n")
            .with("/etc/k/conf.d/.hidden.conf", "hidden\n");
        let text = fs.read(Path::new("/etc/k/keepalived.conf")).unwrap();
        let l = lex(&text, Path::new("/etc/k/keepalived.conf"), &fs).unwrap();
        assert_eq!(words_of(&l), ["a", "b", "b2", "c", "z"]);
        let b2 = &l.lines[2];
        assert_eq!(
            (l.files[b2.file].as_str(), b2.line),
            ("/etc/k/conf.d/../sub/x.inc", 1)
        );
        // What follows a brace is read again as a line, and may be an include.
        let l = lex(
            "x { include sub/x.inc\n}\n",
            Path::new("/etc/k/k.conf"),
            &fs,
        )
        .unwrap();
        assert_eq!(words_of(&l), ["x", "{", "b2", "}"]);
    }

    #[test]
    fn include_errors_name_the_including_line() {
        let fs = MemoryFiles::default()
            .with("/k/a.conf", "x\ninclude b.conf\n")
            .with("/k/b.conf", "\n\ninclude a.conf\n");
        let e = lex("x\ninclude b.conf\n", Path::new("/k/a.conf"), &fs).unwrap_err();
        assert_eq!((e.file.as_str(), e.line), ("/k/b.conf", 3));
        assert!(e.message.contains("include cycle"), "{e}");
        let e = lex("\ninclude nothere.conf\n", Path::new("/k/a.conf"), &fs).unwrap_err();
        assert_eq!((e.file.as_str(), e.line), ("/k/a.conf", 2));
        assert!(e.message.contains("does not exist"), "{e}");
        let e = lex("include /nodir/*.conf\n", Path::new("/k/a.conf"), &fs).unwrap_err();
        assert!(e.message.contains("does not exist"), "{e}");
        // A wildcard in a directory that is there may match nothing.
        let l = lex("include /k/*.none\n", Path::new("/k/a.conf"), &fs).unwrap();
        assert!(l.notes[0].contains("matches no file"), "{:?}", l.notes);
    }
}
