//! Where the spilled rows' bytes go: the temporary file, or memory when it cannot be made or
//! written.

use std::fs::File;
use std::os::unix::fs::FileExt;

/// Where bytes went: the file, or memory when the file could not be made or written.
pub(super) struct Store {
    /// The temporary file and how many bytes it holds.
    file: Option<(File, u64)>,
    /// Whether more bytes may go to the file (not after a failed write).
    writable: bool,
    memory: Vec<u8>,
    /// Why the file is not (or no longer) used.
    pub(super) trouble: Option<String>,
}

/// A span of bytes in a [`Store`]: its start and length.
#[derive(Debug, Clone, Copy)]
pub(super) enum Place {
    File(u64, usize),
    Memory(usize, usize),
}

impl Place {
    pub(super) fn len(self) -> usize {
        match self {
            Place::File(_, n) | Place::Memory(_, n) => n,
        }
    }
}

impl Store {
    pub(super) fn new() -> Store {
        let dir = std::env::temp_dir();
        match tempfile::tempfile_in(&dir) {
            Ok(file) => Store {
                file: Some((file, 0)),
                writable: true,
                memory: Vec::new(),
                trouble: None,
            },
            Err(e) => Store {
                file: None,
                writable: false,
                memory: Vec::new(),
                trouble: Some(format!(
                    "no temporary file could be made in {} ({e})",
                    dir.display()
                )),
            },
        }
    }

    /// Writes `bytes` at the end; returns where they are.
    pub(super) fn append(&mut self, bytes: &[u8]) -> Place {
        if let Some((file, len)) = self.file.as_mut().filter(|_| self.writable) {
            match file.write_all_at(bytes, *len) {
                Ok(()) => {
                    let place = Place::File(*len, bytes.len());
                    *len += bytes.len() as u64;
                    return place;
                }
                Err(e) => {
                    // What was written stays readable; nothing more goes there.
                    self.writable = false;
                    self.trouble = Some(format!(
                        "the temporary file in {} could not be written past {} bytes ({e})",
                        std::env::temp_dir().display(),
                        len
                    ));
                }
            }
        }
        let place = Place::Memory(self.memory.len(), bytes.len());
        self.memory.extend_from_slice(bytes);
        place
    }

    /// Reads `len` bytes from `skip` bytes into `place` into `buf` (replacing its contents).
    pub(super) fn read(&self, place: Place, skip: usize, len: usize, buf: &mut Vec<u8>) {
        buf.clear();
        match place {
            Place::File(offset, _) => {
                buf.resize(len, 0);
                let (file, _) = self
                    .file
                    .as_ref()
                    .expect("only the file hands out places in it");
                if let Err(e) = file.read_exact_at(buf, offset + skip as u64) {
                    // The rows written there cannot be had any other way.
                    panic!(
                        "the connection table's temporary file in {} could not be read back \
                         ({e}); rerun with TMPDIR on another file system",
                        std::env::temp_dir().display()
                    );
                }
            }
            Place::Memory(start, _) => buf.extend_from_slice(&self.memory[start + skip..][..len]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_without_a_file_keeps_the_rows_in_memory() {
        let mut store = Store {
            file: None,
            writable: false,
            memory: Vec::new(),
            trouble: Some("none".into()),
        };
        let a = store.append(&[1, 2, 3]);
        let b = store.append(&[4, 5]);
        let mut buf = Vec::new();
        store.read(b, 1, 1, &mut buf);
        assert_eq!(buf, [5]);
        store.read(a, 0, 3, &mut buf);
        assert_eq!(buf, [1, 2, 3]);
    }
}
