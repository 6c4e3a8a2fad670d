//! Inputs that can be read only once: standard input (`tcpdump -w - | lvscheck verify -`), a
//! named FIFO, a shell's process substitution (`lvscheck verify <(zcat a.pcap.gz)`, a
//! `/dev/fd/N` pipe), a character device.
//!
//! The analysis reads each capture more than once (the topology pass, then the connections; the
//! duplicate check reads its first bytes). Opening a FIFO a second time blocks until another
//! writer comes, forever; a pipe read a second time is empty, and the second pass then finds no
//! connection at all, which once made a FAILing capture PASS. Such an input is therefore copied
//! once, before anything else reads it, into a temporary file that is unlinked as soon as it is
//! created: nothing is left behind, even when the process is killed. Later readers open it
//! again through `/proc/self/fd/N` (each open gets its own offset), so every pass reads the same
//! bytes. The copy costs disk space in the temporary directory (`TMPDIR`) equal to the capture.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;

use super::error::CaptureError;
use super::input::CaptureSource;

/// The unlinked copies, kept open for the life of the process: closing one would free it.
static KEEP_OPEN: Mutex<Vec<File>> = Mutex::new(Vec::new());

/// Whether the path names something that can be read only once (a FIFO, a socket, a character
/// device), as opposed to a regular file or a directory. The metadata follows symbolic links,
/// so `/dev/fd/63` is seen as the pipe it points to.
pub fn is_stream(path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        std::fs::metadata(path).is_ok_and(|m| {
            let t = m.file_type();
            t.is_fifo() || t.is_socket() || t.is_char_device()
        })
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        false
    }
}

/// Copies every input that can be read only once (standard input, FIFOs, pipes) to a
/// temporary file and gives back the sources to read, in the same order, with the names the
/// user gave. Regular files are left as they are. `-` may be given once; a second `-` is an
/// error, as standard input is then already consumed.
pub fn spool_streams(sources: &[CaptureSource]) -> Result<Vec<CaptureSource>, CaptureError> {
    let mut stdin_seen = false;
    // A stream named twice (the same FIFO or /dev/fd path) is copied once and given back twice,
    // so that the duplicate check names it; opening a drained FIFO again would block forever.
    let mut copied: Vec<((u64, u64), CaptureSource)> = Vec::new();
    sources
        .iter()
        .map(|source| match source {
            CaptureSource::Stdin => {
                if std::mem::replace(&mut stdin_seen, true) {
                    return Err(CaptureError::StdinAlreadyRead);
                }
                spool(source.display_name(), io::stdin().lock())
            }
            CaptureSource::File(path) if is_stream(path) => {
                let id = device_and_inode(path);
                if let Some((_, done)) = copied.iter().find(|(seen, _)| Some(*seen) == id) {
                    return Ok(done.clone());
                }
                let name = source.display_name();
                let input = File::open(path).map_err(|e| CaptureError::Open {
                    file: name.clone(),
                    source: e,
                })?;
                let spooled = spool(name, input)?;
                if let Some(id) = id {
                    copied.push((id, spooled.clone()));
                }
                Ok(spooled)
            }
            other => Ok(other.clone()),
        })
        .collect()
}

fn device_and_inode(path: &Path) -> Option<(u64, u64)> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}

/// Copies `input` to an unlinked temporary file; the source reads it through `/proc/self/fd`.
fn spool(name: String, mut input: impl Read) -> Result<CaptureSource, CaptureError> {
    if !Path::new("/proc/self/fd").is_dir() {
        return Err(CaptureError::Spool {
            file: name,
            reason: "this system has no /proc/self/fd to read a copy of it again; save it to a \
                     file first (tcpdump -w FILE)"
                .into(),
        });
    }
    let spool_error = |name: &str, what: &str, e: io::Error| CaptureError::Spool {
        file: name.to_string(),
        reason: format!("{what}: {e}"),
    };
    let (mut copy, temp_path) =
        create_unlinked().map_err(|e| spool_error(&name, "no temporary file for a copy", e))?;
    let mut buf = vec![0u8; 1 << 20];
    let mut copied: u64 = 0;
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(source) => {
                return Err(CaptureError::Read {
                    file: name,
                    offset: copied,
                    source,
                })
            }
        };
        copy.write_all(&buf[..n]).map_err(|e| {
            spool_error(
                &name,
                &format!(
                    "copying it to {} failed at byte {copied}",
                    temp_path.display()
                ),
                e,
            )
        })?;
        copied += n as u64;
    }
    let path = proc_fd_path(&copy);
    KEEP_OPEN
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .push(copy);
    Ok(CaptureSource::Spooled { name, path })
}

/// A new file in the temporary directory, already unlinked, open for writing.
fn create_unlinked() -> io::Result<(File, PathBuf)> {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir();
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = dir.join(format!("lvscheck-spool-{}-{n}", std::process::id()));
        match OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(file) => {
                std::fs::remove_file(&path)?;
                return Ok((file, path));
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

#[cfg(unix)]
fn proc_fd_path(file: &File) -> PathBuf {
    use std::os::fd::AsRawFd;
    PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()))
}

#[cfg(not(unix))]
fn proc_fd_path(_file: &File) -> PathBuf {
    PathBuf::from("/proc/self/fd/unavailable")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spooled_copy_reads_the_same_bytes_every_time_and_leaves_no_file() {
        let bytes: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let source = spool("<test>".into(), &bytes[..]).unwrap();
        let CaptureSource::Spooled { name, path } = &source else {
            panic!("not spooled: {source:?}")
        };
        assert_eq!(name, "<test>");
        for _ in 0..2 {
            assert_eq!(std::fs::read(path).unwrap(), bytes);
        }
        let leftover = std::fs::read_dir(std::env::temp_dir())
            .unwrap()
            .filter_map(Result::ok)
            .any(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with(&format!("lvscheck-spool-{}-", std::process::id()))
            });
        assert!(!leftover, "the copy must be unlinked at once");
    }

    #[test]
    fn regular_files_are_not_streams() {
        assert!(!is_stream(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("Cargo.toml")
                .as_path()
        ));
        assert!(!is_stream(Path::new("/nonexistent/lvscheck")));
    }
}
