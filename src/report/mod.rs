//! Terminal, JSON, chart and HTML output.

pub mod annotate;
pub mod charts;
pub mod conn_log;
pub mod conn_parquet;
pub mod conn_row;
pub mod fairness;
pub mod flows;
pub mod health;
pub mod html;
pub mod inspect;
pub mod ladder;
pub mod oddities;
pub mod style;
pub mod verify;

/// Writes a report to standard output. A reader that goes away early (`lvscheck ... | head`)
/// is not an error worth a panic: the rest of the output is simply dropped.
pub fn emit(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|_| out.flush());
}

/// Writes a JSON document (pretty-printed, then a newline) to standard output as it is
/// serialised: the document is never held as a string, which for tens of thousands of
/// services or connections would be hundreds of megabytes twice over. A reader that goes away
/// early is no error, as for [`emit`].
pub fn emit_json(doc: &impl serde::Serialize) {
    use std::io::Write;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let _ = serde_json::to_writer_pretty(&mut out, doc)
        .map_err(std::io::Error::from)
        .and_then(|_| out.write_all(b"\n"))
        .and_then(|_| out.flush());
}
