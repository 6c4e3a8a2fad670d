//! Before reading: can each capture given be opened, and is any of them given twice?
//!
//! The same capture given twice (the same path, another path to the same file, or a copy, even
//! one compressed and one not) would be taken for two vantage points that saw exactly the same
//! packets, and every connection in it would be counted twice. Two captures are the same when
//! their decompressed bytes are: the first [`HEAD`] bytes are compared first, and only when
//! those agree is the rest compared, streamed, so telling different captures apart costs one
//! small read per file. No hashing: equal heads are rare enough among real captures that a
//! byte-by-byte comparison of the few candidates is cheaper than hashing every file.

use std::fs::File;
use std::io::{self, Read};

use super::error::CaptureError;
use super::input::{open_source, unwrap_gzip, CaptureSource};

/// Bytes of each (decompressed) capture compared before anything else.
pub const HEAD: usize = 64 * 1024;

/// How two inputs are one and the same capture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sameness {
    /// The same argument, given twice.
    SamePath,
    /// Two names of one file (a symbolic or hard link, `./a` and `a`).
    SameFile,
    /// Two files with the same capture inside (a copy; gzip-compressed or not).
    SameContent,
}

/// The input at index `second` is the same capture as the one at `first` (`first < second`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Duplicate {
    pub first: usize,
    pub second: usize,
    pub how: Sameness,
}

/// Opens a file input to see that it can be read, without reading it; standard input is not
/// touched (it can be read only once).
pub fn check_openable(source: &CaptureSource) -> Result<(), CaptureError> {
    match source {
        CaptureSource::Stdin => Ok(()),
        CaptureSource::File(_) | CaptureSource::Spooled { .. } => open_source(source).map(drop),
    }
}

/// Every input that is the same capture as an earlier one, each named once (against the first
/// of its copies). Standard input is left out, and an input that cannot be read is compared by
/// its path only (the reader reports why it cannot be read).
pub fn duplicates(sources: &[CaptureSource]) -> Vec<Duplicate> {
    let files: Vec<(usize, &std::path::Path)> = sources
        .iter()
        .enumerate()
        .filter_map(|(i, s)| match s {
            CaptureSource::File(p) | CaptureSource::Spooled { path: p, .. } => {
                Some((i, p.as_path()))
            }
            CaptureSource::Stdin => None,
        })
        .collect();
    let identity: Vec<Option<(u64, u64)>> = files.iter().map(|(_, p)| file_id(p)).collect();
    let heads: Vec<Option<Vec<u8>>> = files.iter().map(|(_, p)| head(p).ok()).collect();
    let mut out: Vec<Duplicate> = Vec::new();
    for b in 0..files.len() {
        for a in 0..b {
            if out.iter().any(|d| d.second == files[a].0) {
                continue; // a is itself a copy; b is named against the first copy
            }
            let how = if files[a].1 == files[b].1 {
                Some(Sameness::SamePath)
            } else if identity[a].is_some() && identity[a] == identity[b] {
                Some(Sameness::SameFile)
            } else {
                match (&heads[a], &heads[b]) {
                    (Some(x), Some(y)) if !x.is_empty() && x == y => {
                        let full = x.len() < HEAD || same_stream(files[a].1, files[b].1);
                        full.then_some(Sameness::SameContent)
                    }
                    _ => None,
                }
            };
            if let Some(how) = how {
                out.push(Duplicate {
                    first: files[a].0,
                    second: files[b].0,
                    how,
                });
                break;
            }
        }
    }
    out
}

/// Device and inode, where the platform has them.
fn file_id(path: &std::path::Path) -> Option<(u64, u64)> {
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

/// The decompressed capture, as a stream.
fn decompressed(path: &std::path::Path) -> io::Result<Box<dyn Read>> {
    let file = File::open(path)?;
    Ok(unwrap_gzip(Box::new(file))?.0)
}

/// Up to [`HEAD`] decompressed bytes.
fn head(path: &std::path::Path) -> io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(HEAD);
    decompressed(path)?
        .take(HEAD as u64)
        .read_to_end(&mut buf)?;
    Ok(buf)
}

/// Whether two captures decompress to the same bytes, compared block by block.
fn same_stream(a: &std::path::Path, b: &std::path::Path) -> bool {
    let (Ok(mut a), Ok(mut b)) = (decompressed(a), decompressed(b)) else {
        return false;
    };
    let mut x = vec![0u8; HEAD];
    let mut y = vec![0u8; HEAD];
    loop {
        let (Ok(n), Ok(m)) = (fill(&mut a, &mut x), fill(&mut b, &mut y)) else {
            return false;
        };
        if n != m || x[..n] != y[..m] {
            return false;
        }
        if n < x.len() {
            return true;
        }
    }
}

/// Reads until `buf` is full or the stream ends.
fn fill(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::path::PathBuf;

    struct Dir(PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn dir(name: &str) -> Dir {
        let d =
            std::env::temp_dir().join(format!("lvscheck-identity-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Dir(d)
    }

    fn file(d: &Dir, name: &str, bytes: &[u8]) -> CaptureSource {
        let p = d.0.join(name);
        std::fs::write(&p, bytes).unwrap();
        CaptureSource::File(p)
    }

    #[test]
    fn copies_links_and_compressed_copies_are_found_once_each() {
        let d = dir("copies");
        // Larger than HEAD, equal heads, different tails: not the same.
        let mut big = vec![7u8; HEAD + 10];
        let a = file(&d, "a", &big);
        let b = file(&d, "b", &big);
        *big.last_mut().unwrap() = 8;
        let c = file(&d, "c", &big);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&[7u8; HEAD + 10]).unwrap();
        let z = file(&d, "a.gz", &gz.finish().unwrap());
        let dups = duplicates(&[a.clone(), b, c, z, a]);
        let got: Vec<(usize, usize, Sameness)> =
            dups.iter().map(|d| (d.first, d.second, d.how)).collect();
        assert_eq!(
            got,
            vec![
                (0, 1, Sameness::SameContent),
                (0, 3, Sameness::SameContent),
                (0, 4, Sameness::SamePath),
            ]
        );
    }

    #[cfg(unix)]
    #[test]
    fn another_name_of_the_same_file_is_the_same_file() {
        let d = dir("link");
        let a = file(&d, "a", b"x");
        let link = d.0.join("b");
        std::os::unix::fs::symlink(d.0.join("a"), &link).unwrap();
        let dups = duplicates(&[a, CaptureSource::File(link)]);
        assert_eq!(dups[0].how, Sameness::SameFile);
    }

    #[test]
    fn different_and_unreadable_files_are_not_duplicates() {
        let d = dir("diff");
        let a = file(&d, "a", b"one");
        let b = file(&d, "b", b"two");
        let missing = CaptureSource::File(d.0.join("missing"));
        assert!(duplicates(&[a, b, missing.clone(), missing.clone()])
            .iter()
            .all(|x| x.how == Sameness::SamePath));
        assert!(check_openable(&missing)
            .unwrap_err()
            .to_string()
            .contains("cannot open"));
    }
}
