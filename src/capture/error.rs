//! Why a capture could not be read at all.
//!
//! Problems after the first records are not errors but `ReadWarning`s in the summary: what was
//! read before them is kept.

use std::fmt::{self, Display};
use std::io;

use thiserror::Error;

use super::frame::ReadWarning;

/// Nothing of the capture could be read. Every message starts with the file's name.
#[derive(Debug, Error)]
pub enum CaptureError {
    #[error("{file}: cannot open: {source}")]
    Open {
        file: String,
        #[source]
        source: io::Error,
    },

    #[error("{file}: is a directory, not a capture file")]
    IsDirectory { file: String },

    #[error("-: standard input can be read only once; give `-` a single time")]
    StdinAlreadyRead,

    #[error("{file}: can be read only once (standard input, a FIFO or a pipe) and could not be copied to read it again: {reason}")]
    Spool { file: String, reason: String },

    #[error("{file}: {}is empty", if *gzip { "gzip-compressed file " } else { "" })]
    Empty { file: String, gzip: bool },

    #[error(
        "{file}: not a pcap or pcapng file{} (it starts with {magic}){hint}",
        if *gzip { " inside its gzip compression" } else { "" }
    )]
    UnknownFormat {
        file: String,
        gzip: bool,
        /// The first bytes, in hex.
        magic: String,
        /// A hint when the bytes are recognised as something else.
        hint: &'static str,
    },

    #[error("{file}: the {what} is cut short ({have} of {need} bytes)")]
    TruncatedHeader {
        file: String,
        what: &'static str,
        need: usize,
        have: usize,
    },

    #[error("{file}: the {what} at byte 0 {reason}")]
    BadHeader {
        file: String,
        what: &'static str,
        /// Says what is wrong, as a predicate: "has ...", "is ...".
        reason: String,
    },

    #[error("{file}: read error at byte {offset}: {source}")]
    Read {
        file: String,
        offset: u64,
        #[source]
        source: io::Error,
    },
}

impl CaptureError {
    /// The file concerned (`-` for standard input read twice).
    pub fn file(&self) -> &str {
        match self {
            CaptureError::StdinAlreadyRead => "-",
            CaptureError::Open { file, .. }
            | CaptureError::IsDirectory { file }
            | CaptureError::Spool { file, .. }
            | CaptureError::Empty { file, .. }
            | CaptureError::UnknownFormat { file, .. }
            | CaptureError::TruncatedHeader { file, .. }
            | CaptureError::BadHeader { file, .. }
            | CaptureError::Read { file, .. } => file,
        }
    }
}

impl Display for ReadWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.file, self.message)
    }
}

/// Hex of the first bytes, for "unknown format" messages.
pub(crate) fn hex_prefix(bytes: &[u8]) -> String {
    bytes
        .iter()
        .take(4)
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Names formats we recognise but do not read, so the user knows what to do.
pub(crate) fn format_hint(bytes: &[u8]) -> &'static str {
    match bytes {
        [0x28, 0xb5, 0x2f, 0xfd, ..] => "; it looks zstd-compressed: decompress it first",
        [0x04, 0x22, 0x4d, 0x18, ..] => "; it looks lz4-compressed: decompress it first",
        [0xa1, 0xb2, 0xcd, 0x34, ..] | [0x34, 0xcd, 0xb2, 0xa1, ..] => {
            "; it is a Kuznetzov-modified pcap: convert it with `editcap -F pcap`"
        }
        [b'B', b'Z', b'h', ..] => "; it looks bzip2-compressed: decompress it first",
        [0xfd, b'7', b'z', b'X', ..] => "; it looks xz-compressed: decompress it first",
        _ => "",
    }
}
