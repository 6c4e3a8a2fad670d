//! `--out FILE`: where a report goes. A file is written as `FILE.part` and renamed to FILE
//! once whole, so that a run that fails or is refused leaves no half file and an older FILE
//! untouched; `-` (or no `--out`) is standard output.

use std::fs::File;
use std::io::{self, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};

use crate::report::annotate::temporary;

pub enum Output {
    Stdout,
    File { path: PathBuf, part: PathBuf },
}

impl Output {
    /// Standard output for None and `-`; else FILE, whose `.part` is created now, so that a
    /// folder that does not exist or cannot be written is said before the captures are read.
    pub fn open(path: Option<&Path>) -> Result<Output, String> {
        let Some(path) = path.filter(|p| p.as_os_str() != "-") else {
            return Ok(Output::Stdout);
        };
        let part = temporary(path);
        File::create(&part).map_err(|e| format!("{}: cannot create it: {e}", part.display()))?;
        Ok(Output::File {
            path: path.to_path_buf(),
            part,
        })
    }

    pub fn is_terminal(&self) -> bool {
        matches!(self, Output::Stdout) && io::stdout().is_terminal()
    }

    /// What is written goes there (buffered).
    pub fn writer(&self) -> Result<Box<dyn Write + Send>, String> {
        Ok(match self {
            Output::Stdout => Box::new(BufWriter::new(io::stdout())),
            Output::File { part, .. } => Box::new(BufWriter::with_capacity(
                1 << 20,
                File::options()
                    .write(true)
                    .truncate(true)
                    .open(part)
                    .map_err(|e| format!("{}: {e}", part.display()))?,
            )),
        })
    }

    /// The output is whole: FILE takes its place.
    pub fn commit(mut self) -> Result<(), String> {
        if let Output::File { path, part } = &mut self {
            std::fs::rename(&*part, &*path).map_err(|e| {
                format!("{}: cannot rename {}: {e}", path.display(), part.display())
            })?;
            // Renamed: nothing left for drop to remove.
            part.clear();
        }
        Ok(())
    }
}

impl Drop for Output {
    /// Not committed: the run failed or the input was refused.
    fn drop(&mut self) {
        if let Output::File { part, .. } = self {
            if !part.as_os_str().is_empty() {
                let _ = std::fs::remove_file(part);
            }
        }
    }
}
