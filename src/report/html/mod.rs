//! The one-file HTML report (`verify --html FILE`, `fairness --html FILE`): everything the text
//! report says, the deployment drawn and the fairness charts inline, in one document that
//! loads nothing (inline CSS and SVG, one small script for the copy buttons) and reads printed.
//! Every string from a capture or a rules file is escaped ([`escape::h`]).
//!
//! - [`page`]: the document around a report, its style sheet and script;
//! - [`verify`]: the verify page; [`VerifyExtras`] brings what other parts of the report draw
//!   (the ladder diagrams of each finding's connections);
//! - [`fairness`]: the fairness sections and the fairness page;
//! - [`topology`]: the deployment as SVG.

pub mod escape;
pub mod fairness;
pub mod page;
pub mod topology;
pub mod verify;

pub use fairness::fairness_page;
pub use verify::{verify_page, FindingKey, Ladder, VerifyExtras};

/// Writes a page to `path`.
pub fn write(path: &std::path::Path, page: &str) -> std::io::Result<()> {
    if to_stdout(path) {
        super::emit(page);
        return Ok(());
    }
    std::fs::write(path, page)
}

/// `--html -`: the page goes to standard output, in place of the tables.
pub fn to_stdout(path: &std::path::Path) -> bool {
    path.as_os_str() == "-"
}
