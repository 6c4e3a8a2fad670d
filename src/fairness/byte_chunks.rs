//! Variable-length byte records in fixed-size chunks, for the connection table's details, which
//! grow by ~20 bytes per connection for the whole capture. A `Vec<u8>` grows by doubling, and
//! once glibc's mmap threshold has risen past its size a reallocation copies, holding the old
//! and the new block at once: on a million connections the copy from 16 to 32 MB was the peak
//! of `verify`'s streaming. Chunks are never reallocated.

/// Bytes per chunk, as a shift.
const SHIFT: u32 = 20;

/// Records in chunks of `1 << SHIFT` bytes; a record never spans two chunks, so it is read
/// from one slice. A record's place is one number: its chunk above [`SHIFT`] bits, its
/// offset in the chunk below.
#[derive(Debug, Clone, Default)]
pub(super) struct ByteChunks {
    chunks: Vec<Vec<u8>>,
}

impl ByteChunks {
    /// Room for a record of up to `max` bytes at the end, where the next one is written;
    /// returns its place.
    pub fn start(&mut self, max: usize) -> u64 {
        let per_chunk = 1usize << SHIFT;
        assert!(max <= per_chunk, "a record larger than a chunk");
        let fits = self
            .chunks
            .last()
            .is_some_and(|c| per_chunk - c.len() >= max);
        if !fits {
            self.chunks.push(Vec::with_capacity(per_chunk));
        }
        let k = self.chunks.len() - 1;
        ((k as u64) << SHIFT) | self.chunks[k].len() as u64
    }

    /// Where the record begun by the last [`ByteChunks::start`] is written.
    pub fn tail(&mut self) -> &mut Vec<u8> {
        self.chunks.last_mut().expect("start before writing")
    }

    /// The chunk holding the record at `place`, and the record's offset in it.
    pub fn at(&self, place: u64) -> (&[u8], usize) {
        let chunk = &self.chunks[(place >> SHIFT) as usize];
        (chunk, (place & ((1 << SHIFT) - 1)) as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_that_would_not_fit_starts_a_new_chunk() {
        let per_chunk = 1usize << SHIFT;
        let mut b = ByteChunks::default();
        let first = b.start(10);
        b.tail().extend(std::iter::repeat_n(7u8, per_chunk - 4));
        let second = b.start(10);
        b.tail().extend([1, 2, 3]);
        assert_eq!(first, 0);
        assert_eq!(second, 1 << SHIFT);
        let (chunk, at) = b.at(second);
        assert_eq!(&chunk[at..at + 3], &[1, 2, 3]);
        let (chunk, at) = b.at(first);
        assert_eq!(at, 0);
        assert_eq!(chunk.len(), per_chunk - 4);
        // Room left: the next record stays in the second chunk.
        assert_eq!(b.start(10), (1 << SHIFT) | 3);
    }
}
