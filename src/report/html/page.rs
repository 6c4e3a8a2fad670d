//! The page around a report: one HTML document with its style sheet and its one script
//! inline, and nothing fetched from anywhere. A Content-Security-Policy in the page itself
//! forbids every load (fonts, images, frames, connections) and every script but ours, which
//! carries a nonce drawn anew for each page: a string that escaped its escaping could still
//! not run.

use std::fmt::Write;

use super::escape::h;
use crate::checks::Status;

/// A status as a word and the class that colours it (`s-fail`, ...).
pub fn status_class(status: Status) -> &'static str {
    match status {
        Status::Fail => "s-fail",
        Status::Warn => "s-warn",
        Status::Pass => "s-pass",
        Status::Info => "s-info",
        Status::Skip => "s-skip",
    }
}

/// A status badge: `<span class="badge s-fail">FAIL</span>`.
pub fn badge(status: Status) -> String {
    format!(
        "<span class=\"badge {}\">{}</span>",
        status_class(status),
        status.as_str().to_uppercase()
    )
}

/// A table from its header cells and rows of cells that are already HTML; `numeric` columns
/// are right-aligned.
pub fn table(class: &str, header: &[&str], numeric: &[usize], rows: &[Vec<String>]) -> String {
    let mut out = format!("<div class=\"scroll\"><table class=\"{class}\"><thead><tr>");
    for (i, head) in header.iter().enumerate() {
        let num = if numeric.contains(&i) {
            " class=\"num\""
        } else {
            ""
        };
        let _ = write!(out, "<th{num}>{}</th>", h(head));
    }
    out.push_str("</tr></thead><tbody>");
    for row in rows {
        out.push_str("<tr>");
        for (i, cell) in row.iter().enumerate() {
            let num = if numeric.contains(&i) {
                " class=\"num\""
            } else {
                ""
            };
            let _ = write!(out, "<td{num}>{cell}</td>");
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table></div>");
    out
}

/// A nonce for the page's script: 128 bits from the standard library's randomly keyed hasher.
fn nonce() -> String {
    use std::hash::BuildHasher;
    let state = std::collections::hash_map::RandomState::new();
    format!("{:016x}{:016x}", state.hash_one(1u8), state.hash_one(2u8))
}

/// The whole document: `title` (plain text, escaped here) and `body` (HTML).
pub fn document(title: &str, body: &str) -> String {
    let nonce = nonce();
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; \
         style-src 'unsafe-inline'; script-src 'nonce-{nonce}'\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"generator\" content=\"lvscheck {version}\">\n\
         <title>{title}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main>\n{body}\n\
         <footer>Written by lvscheck {version}. This file is self-contained: it loads nothing \
         and can be read offline or printed.</footer>\n</main>\n\
         <script nonce=\"{nonce}\">{SCRIPT}</script>\n</body>\n</html>\n",
        version = env!("CARGO_PKG_VERSION"),
        title = h(title),
    )
}

/// Copy buttons for display filters: the clipboard API where the page may use it (a file
/// opened locally usually may), else a hidden text area and `execCommand('copy')`, else the
/// filter selected for the reader to copy.
const SCRIPT: &str = r#"
(function () {
  function copied(button, ok) {
    button.textContent = ok ? 'Copied' : 'Selected: press Ctrl+C';
    setTimeout(function () { button.textContent = 'Copy'; }, 2000);
  }
  function fallback(button, source, text) {
    var area = document.createElement('textarea');
    area.value = text;
    area.setAttribute('readonly', '');
    area.style.position = 'fixed';
    area.style.opacity = '0';
    document.body.appendChild(area);
    area.select();
    var ok = false;
    try { ok = document.execCommand('copy'); } catch (e) { ok = false; }
    document.body.removeChild(area);
    if (!ok) {
      var range = document.createRange();
      range.selectNodeContents(source);
      var selection = window.getSelection();
      selection.removeAllRanges();
      selection.addRange(range);
    }
    copied(button, ok);
  }
  document.querySelectorAll('button.copy').forEach(function (button) {
    button.hidden = false;
    button.addEventListener('click', function () {
      var source = document.getElementById(button.getAttribute('data-target'));
      if (!source) { return; }
      var text = source.textContent;
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(text).then(function () { copied(button, true); },
          function () { fallback(button, source, text); });
      } else {
        fallback(button, source, text);
      }
    });
  });
})();
"#;

/// One style sheet for screen and print: a readable column, tables that scroll sideways on
/// a narrow screen, a colour per status (green pass, red fail, amber warn, blue info, grey
/// skip) always beside the word, so the page also reads in black and white.
const CSS: &str = r#"
:root {
  --fg: #1d232b; --muted: #5b6572; --line: #d5dbe2; --bg: #ffffff; --panel: #f5f7fa;
  --pass: #1a7f37; --pass-bg: #e6f4ea; --fail: #c62828; --fail-bg: #fdecea;
  --warn: #9a6700; --warn-bg: #fff4d6; --info: #0b5cad; --info-bg: #e7f0fb;
  --skip: #6b7280; --skip-bg: #eef0f3;
}
* { box-sizing: border-box; }
html { font-size: 16px; }
body { margin: 0; color: var(--fg); background: var(--bg);
  font-family: system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", "Liberation Sans", Arial, sans-serif;
  line-height: 1.45; }
main { max-width: 1200px; margin: 0 auto; padding: 24px 28px 48px; }
h1 { font-size: 1.6rem; margin: 0 0 4px; }
h2 { font-size: 1.3rem; margin: 36px 0 10px; padding-bottom: 4px; border-bottom: 2px solid var(--line); }
h3 { font-size: 1.05rem; margin: 0 0 8px; }
h4 { font-size: 1rem; margin: 18px 0 6px; }
p { margin: 6px 0; }
code, .mono { font-family: "DejaVu Sans Mono", "Liberation Mono", Menlo, Consolas, monospace; font-size: 0.9em; }
a { color: var(--info); }
.muted { color: var(--muted); }
nav.toc { margin: 14px 0 0; font-size: 0.95rem; }
nav.toc a { margin-right: 14px; white-space: nowrap; }
.verdict { border-radius: 10px; padding: 18px 22px; margin: 14px 0 6px; border-left: 10px solid; }
.verdict .outcome { font-size: 2rem; font-weight: 800; letter-spacing: 0.04em; }
.verdict .summary { font-size: 1.1rem; }
.o-verified { background: var(--pass-bg); border-color: var(--pass); }
.o-verified .outcome { color: var(--pass); }
.o-failed { background: var(--fail-bg); border-color: var(--fail); }
.o-failed .outcome { color: var(--fail); }
.o-inconclusive { background: var(--warn-bg); border-color: var(--warn); }
.o-inconclusive .outcome { color: var(--warn); }
.o-conforms { background: var(--pass-bg); border-color: var(--pass); }
.o-conforms .outcome { color: var(--pass); }
.o-deviates { background: var(--fail-bg); border-color: var(--fail); }
.o-deviates .outcome { color: var(--fail); }
.badge { display: inline-block; min-width: 3.6em; text-align: center; font-weight: 700;
  font-size: 0.8rem; padding: 1px 7px; border-radius: 4px; border: 1px solid; letter-spacing: 0.03em; }
.badge.s-pass { color: var(--pass); background: var(--pass-bg); }
.badge.s-fail { color: #fff; background: var(--fail); border-color: var(--fail); }
.badge.s-warn { color: #4a3200; background: #ffd664; border-color: #d9a400; }
.badge.s-info { color: var(--info); background: var(--info-bg); }
.badge.s-skip { color: var(--skip); background: var(--skip-bg); }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; margin: 6px 0 10px; font-size: 0.93rem; }
th, td { text-align: left; vertical-align: top; padding: 5px 9px; border-bottom: 1px solid var(--line); }
th { background: var(--panel); font-weight: 600; }
table.coverage, table.drift { width: auto; min-width: 50%; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
table.checks td:first-child { white-space: nowrap; }
table.checks tr { border-left: 6px solid transparent; }
table.checks tr.s-pass { border-left-color: var(--pass); }
table.checks tr.s-fail { border-left-color: var(--fail); background: var(--fail-bg); }
table.checks tr.s-warn { border-left-color: #d9a400; background: var(--warn-bg); }
table.checks tr.s-info { border-left-color: var(--info); }
table.checks tr.s-skip { border-left-color: #b8bec7; color: var(--muted); }
.finding { border: 1px solid var(--line); border-left: 8px solid; border-radius: 8px; padding: 14px 18px;
  margin: 14px 0; break-inside: avoid; page-break-inside: avoid; }
.finding.s-fail { border-left-color: var(--fail); }
.finding.s-warn { border-left-color: #d9a400; }
.finding.s-info { border-left-color: var(--info); }
.finding dl { display: grid; grid-template-columns: max-content 1fr; gap: 4px 14px; margin: 8px 0; }
.finding dt { font-weight: 600; color: var(--muted); }
.finding dd { margin: 0; }
.fix { background: var(--panel); border-radius: 6px; padding: 4px 8px; }
.filter { display: inline-block; background: #1d232b; color: #f5f7fa; padding: 3px 8px; border-radius: 5px;
  word-break: break-all; }
button.copy { margin-left: 8px; font: inherit; font-size: 0.85rem; padding: 2px 10px; border-radius: 5px;
  border: 1px solid var(--line); background: #fff; cursor: pointer; }
button.copy:hover { background: var(--panel); }
.ladders figure { margin: 10px 0; }
.ladders figcaption { font-weight: 600; }
figure.diagram { margin: 8px 0; }
figure.diagram svg, .chart svg, .ladders svg { width: 100%; height: auto; max-width: 100%; display: block; }
.chart { border: 1px solid var(--line); border-radius: 8px; margin: 10px 0; padding: 6px; break-inside: avoid; page-break-inside: avoid; }
.charts { display: grid; grid-template-columns: 1fr; gap: 10px; }
.service { border-top: 1px dashed var(--line); margin-top: 18px; }
ul.plain { padding-left: 20px; margin: 6px 0; }
footer { margin-top: 40px; color: var(--muted); font-size: 0.85rem; border-top: 1px solid var(--line); padding-top: 8px; }
@media (max-width: 800px) { main { padding: 12px; } }
@media print {
  @page { margin: 14mm; }
  html { font-size: 11pt; }
  main { max-width: none; padding: 0; }
  nav.toc, button.copy { display: none !important; }
  a { color: inherit; text-decoration: none; }
  .scroll { overflow: visible; }
  h2 { break-after: avoid; page-break-after: avoid; }
  table { font-size: 9.5pt; }
  tr, .chart, figure { break-inside: avoid; page-break-inside: avoid; }
  .filter { background: none; color: var(--fg); border: 1px solid var(--fg); }
  * { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
}
"#;
