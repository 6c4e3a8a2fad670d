//! Headless Chromium for the HTML report's tests: a screenshot (checked for size and for
//! pixels that are not background), the DOM after the page ran (`--dump-dom`), and the
//! page's console, which Chromium prints on standard error with `--enable-logging=stderr`
//! (one `...:CONSOLE...` line per message, errors and uncaught exceptions included). Our pages
//! log nothing, so any such line is a failure.
//!
//! Chromium is Debian's `chromium`. Without it a test skips with the reason printed, unless
//! LVSCHECK_REQUIRE_CHROMIUM is set (CI sets it, so that it cannot skip). Also a small reader
//! of the HTML Chromium writes out ([`dom`]): enough to find elements and their text.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

#[path = "../process_common/mod.rs"]
mod process_common;

/// Whether Chromium can be run; a test that needs it skips without it, unless
/// LVSCHECK_REQUIRE_CHROMIUM is set.
pub fn chromium_available() -> bool {
    let found = Command::new("chromium")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var_os("LVSCHECK_REQUIRE_CHROMIUM").is_none(),
            "chromium is required here (LVSCHECK_REQUIRE_CHROMIUM): apt-get install chromium"
        );
        eprintln!("skipped: chromium is not installed (apt-get install chromium)");
    }
    found
}

/// A fresh folder under the temporary directory, removed when the test passes (kept, with the
/// page and its screenshot, when it fails).
pub struct Scratch(PathBuf);

impl std::ops::Deref for Scratch {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

pub fn scratch(name: &str) -> Scratch {
    let dir = std::env::temp_dir().join(format!("lvscheck-html-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    Scratch(dir)
}

fn url(page: &Path) -> String {
    format!("file://{}", page.canonicalize().unwrap().display())
}

/// Runs headless Chromium on `page` with `args`, a profile of its own (tests run at once), a
/// minute at most.
fn chromium(page: &Path, args: &[&str]) -> process_common::Ran {
    let profile = page.with_extension("profile");
    let mut cmd = Command::new("chromium");
    cmd.args([
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-extensions",
        "--hide-scrollbars",
        "--enable-logging=stderr",
        "--v=0",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .args(args)
    .arg(url(page));
    let ran = process_common::run_bounded(cmd, None, Duration::from_secs(60));
    let _ = std::fs::remove_dir_all(&profile);
    assert!(
        !ran.killed,
        "chromium did not finish within a minute on {page:?}"
    );
    ran
}

/// The page's console messages, as Chromium logs them.
pub fn console_lines(stderr: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(stderr)
        .lines()
        .filter(|l| l.contains(":CONSOLE") || l.contains("Uncaught"))
        .map(str::to_string)
        .collect()
}

/// The DOM after the page loaded and ran its script (and a second of virtual time for what
/// the script left waiting), and the console messages.
pub fn dump_dom(page: &Path) -> (String, Vec<String>) {
    let ran = chromium(page, &["--dump-dom", "--virtual-time-budget=1000"]);
    assert!(
        ran.status.success(),
        "chromium --dump-dom failed on {page:?}"
    );
    (
        String::from_utf8(ran.stdout).expect("the DOM is UTF-8"),
        console_lines(&ran.stderr),
    )
}

/// A decoded screenshot: width, height and RGB pixels.
pub struct Shot {
    pub width: u32,
    pub height: u32,
    pub rgb: Vec<[u8; 3]>,
}

impl Shot {
    /// The share of pixels that are not near white: what the page drew.
    pub fn inked(&self) -> f64 {
        let ink = self
            .rgb
            .iter()
            .filter(|p| p.iter().any(|&c| c < 235))
            .count();
        ink as f64 / self.rgb.len().max(1) as f64
    }

    /// Pixels within `tolerance` of `colour` in every channel.
    pub fn count_near(&self, colour: [u8; 3], tolerance: u8) -> usize {
        self.rgb
            .iter()
            .filter(|p| {
                p.iter()
                    .zip(colour)
                    .all(|(a, b)| a.abs_diff(b) <= tolerance)
            })
            .count()
    }
}

/// A 1280x2000 screenshot of `page` into `png`, decoded.
pub fn screenshot(page: &Path, png: &Path) -> Shot {
    let _ = std::fs::remove_file(png);
    let ran = chromium(
        page,
        &[
            &format!("--screenshot={}", png.display()),
            "--window-size=1280,2000",
        ],
    );
    assert!(
        ran.status.success(),
        "chromium --screenshot failed on {page:?}"
    );
    decode_png(png)
}

pub fn decode_png(png: &Path) -> Shot {
    let file = std::fs::File::open(png).unwrap_or_else(|e| panic!("no screenshot {png:?}: {e}"));
    let mut reader = png::Decoder::new(file).read_info().expect("a PNG");
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).expect("a PNG frame");
    let channels = match info.color_type {
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        other => panic!("unexpected PNG colour type {other:?}"),
    };
    assert_eq!(info.bit_depth, png::BitDepth::Eight);
    let rgb = buf[..info.buffer_size()]
        .chunks_exact(channels)
        .map(|p| [p[0], p[1], p[2]])
        .collect();
    Shot {
        width: info.width,
        height: info.height,
        rgb,
    }
}

/// A reader of the HTML that Chromium serialises: every element closed, attributes quoted,
/// `<script>` and `<style>` raw; void elements have no end tag.
pub mod dom {
    #[derive(Debug, Clone)]
    pub struct Element {
        pub name: String,
        pub attrs: Vec<(String, String)>,
        pub children: Vec<Node>,
    }

    #[derive(Debug, Clone)]
    pub enum Node {
        Element(Element),
        Text(String),
    }

    const VOID: [&str; 13] = [
        "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
        "track", "wbr",
    ];

    impl Element {
        pub fn attr(&self, name: &str) -> Option<&str> {
            self.attrs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        }

        pub fn has_class(&self, class: &str) -> bool {
            self.attr("class")
                .is_some_and(|c| c.split_whitespace().any(|x| x == class))
        }

        /// The text of the element and everything in it.
        pub fn text(&self) -> String {
            let mut out = String::new();
            for c in &self.children {
                match c {
                    Node::Text(t) => out.push_str(t),
                    Node::Element(e) => out.push_str(&e.text()),
                }
            }
            out
        }

        /// Every element below this one, depth first, in document order.
        pub fn descendants(&self) -> Vec<&Element> {
            let mut out = Vec::new();
            for c in &self.children {
                if let Node::Element(e) = c {
                    out.push(e);
                    out.extend(e.descendants());
                }
            }
            out
        }

        pub fn find_all(&self, pred: impl Fn(&Element) -> bool) -> Vec<&Element> {
            self.descendants().into_iter().filter(|e| pred(e)).collect()
        }

        pub fn by_id(&self, id: &str) -> Option<&Element> {
            self.descendants()
                .into_iter()
                .find(|e| e.attr("id") == Some(id))
        }

        pub fn by_class(&self, class: &str) -> Vec<&Element> {
            self.find_all(|e| e.has_class(class))
        }

        pub fn by_name(&self, name: &str) -> Vec<&Element> {
            self.find_all(|e| e.name == name)
        }
    }

    /// Text with its character references decoded.
    pub fn decode(text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(i) = rest.find('&') {
            out.push_str(&rest[..i]);
            rest = &rest[i..];
            let Some(end) = rest.find(';').filter(|&e| e <= 10) else {
                out.push('&');
                rest = &rest[1..];
                continue;
            };
            let name = &rest[1..end];
            let c = match name {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                "nbsp" => Some('\u{a0}'),
                _ if name.starts_with("#x") || name.starts_with("#X") => {
                    u32::from_str_radix(&name[2..], 16)
                        .ok()
                        .and_then(char::from_u32)
                }
                _ if name.starts_with('#') => name[1..].parse().ok().and_then(char::from_u32),
                _ => None,
            };
            match c {
                Some(c) => {
                    out.push(c);
                    rest = &rest[end + 1..];
                }
                None => {
                    out.push('&');
                    rest = &rest[1..];
                }
            }
        }
        out.push_str(rest);
        out
    }

    /// Parses a document into a root element named `#document`.
    pub fn parse(html: &str) -> Element {
        let mut stack = vec![Element {
            name: "#document".into(),
            attrs: Vec::new(),
            children: Vec::new(),
        }];
        let mut rest = html;
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix("<!--") {
                let end = after.find("-->").expect("a comment ends");
                rest = &after[end + 3..];
            } else if rest.starts_with("<!") {
                let end = rest.find('>').expect("a doctype ends");
                rest = &rest[end + 1..];
            } else if let Some(after) = rest.strip_prefix("</") {
                let end = after.find('>').expect("an end tag ends");
                let name = after[..end].trim().to_ascii_lowercase();
                rest = &after[end + 1..];
                // Close up to the element of that name.
                let at = stack
                    .iter()
                    .rposition(|e| e.name == name)
                    .unwrap_or_else(|| panic!("an end tag </{name}> without its start"));
                assert!(at > 0, "</{name}> closes the document");
                while stack.len() > at {
                    let done = stack.pop().unwrap();
                    stack.last_mut().unwrap().children.push(Node::Element(done));
                }
            } else if rest.starts_with('<')
                && rest[1..].starts_with(|c: char| c.is_ascii_alphabetic())
            {
                let (element, self_closed, after) = start_tag(&rest[1..]);
                rest = after;
                let name = element.name.clone();
                if name == "script" || name == "style" {
                    let close = format!("</{name}>");
                    let end = rest.find(&close).expect("raw text ends");
                    let mut element = element;
                    element.children.push(Node::Text(rest[..end].to_string()));
                    rest = &rest[end + close.len()..];
                    stack
                        .last_mut()
                        .unwrap()
                        .children
                        .push(Node::Element(element));
                } else if self_closed || VOID.contains(&name.as_str()) {
                    stack
                        .last_mut()
                        .unwrap()
                        .children
                        .push(Node::Element(element));
                } else {
                    stack.push(element);
                }
            } else {
                let end = rest
                    .char_indices()
                    .skip(1)
                    .find(|(_, c)| *c == '<')
                    .map_or(rest.len(), |(i, _)| i);
                stack
                    .last_mut()
                    .unwrap()
                    .children
                    .push(Node::Text(decode(&rest[..end])));
                rest = &rest[end..];
            }
        }
        while stack.len() > 1 {
            let done = stack.pop().unwrap();
            stack.last_mut().unwrap().children.push(Node::Element(done));
        }
        stack.pop().unwrap()
    }

    /// A start tag after its `<`: the element, whether it closed itself (`/>`), and the rest.
    fn start_tag(s: &str) -> (Element, bool, &str) {
        let name_end = s
            .find(|c: char| c.is_whitespace() || c == '>' || c == '/')
            .expect("a tag name ends");
        let mut element = Element {
            name: s[..name_end].to_ascii_lowercase(),
            attrs: Vec::new(),
            children: Vec::new(),
        };
        let mut rest = &s[name_end..];
        loop {
            rest = rest.trim_start();
            if let Some(after) = rest.strip_prefix("/>") {
                return (element, true, after);
            }
            if let Some(after) = rest.strip_prefix('>') {
                return (element, false, after);
            }
            if let Some(after) = rest.strip_prefix('/') {
                rest = after;
                continue;
            }
            let key_end = rest
                .find(|c: char| c.is_whitespace() || c == '=' || c == '>' || c == '/')
                .expect("an attribute name ends");
            let key = rest[..key_end].to_ascii_lowercase();
            rest = rest[key_end..].trim_start();
            let value = if let Some(after) = rest.strip_prefix('=') {
                let after = after.trim_start();
                let quote = after.chars().next().expect("an attribute value");
                if quote == '"' || quote == '\'' {
                    let end = after[1..].find(quote).expect("a quoted value ends") + 1;
                    rest = &after[end + 1..];
                    decode(&after[1..end])
                } else {
                    let end = after
                        .find(|c: char| c.is_whitespace() || c == '>')
                        .expect("an unquoted value ends");
                    rest = &after[end..];
                    decode(&after[..end])
                }
            } else {
                String::new()
            };
            element.attrs.push((key, value));
        }
    }
}
