//! Terminal, JSON, chart and HTML output.

pub mod charts;
pub mod fairness;
pub mod flows;
pub mod inspect;
pub mod style;
pub mod time;
pub mod verify;

/// Writes a report to standard output. A reader that goes away early (`lvscheck ... | head`)
/// is not an error worth a panic: the rest of the output is simply dropped.
pub fn emit(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|_| out.flush());
}
