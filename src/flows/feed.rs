//! Each capture read once: a reader thread per capture copies its frames into chunks and hands
//! them on; the first ones (the look-ahead) are kept, so that pass 1 can learn the topology and
//! the clocks from them and pass 2 can replay them before going on with the rest of the file.
//!
//! Reading on a thread of its own also overlaps the file's I/O and container parsing with the
//! decoding and tracking of the frames read before. Chunks go back to their reader once
//! handed on, so that steady reading allocates nothing. A capture read in full a second time
//! (a fallback, see [`super::pipeline`]) is opened and read again from its start.

use crate::capture::frame::CaptureId;
use crate::capture::{read_capture_stoppable, CaptureSource, CaptureSummary, Frame};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, sync_channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// Frame bytes per chunk, at most (a frame larger than this gets a chunk of its own); less
/// when the look-ahead is smaller, so that a capture keeps no more than its share.
const CHUNK_BYTES: usize = 256 << 10;
/// Frames per chunk, at most: tiny frames would otherwise make huge chunks of records.
const CHUNK_FRAMES: usize = 2048;
/// Chunks read ahead of their consumer per capture.
const CHUNKS_IN_CHANNEL: usize = 4;
/// What one frame's record costs in a chunk besides its bytes: counted in the look-ahead.
const RECORD_BYTES: usize = std::mem::size_of::<Record>();

/// How much of each capture pass 1 reads before the topology is decided: by default 16 MiB of
/// frames shared by all captures, 64 KiB to 64 MiB each. Thousands of packets per capture
/// settle the roles and give the clocks thousands of samples; what is kept beyond that costs
/// memory that does not grow with the captures, and decoding the frames twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LookAhead {
    /// Frame bytes kept, over all captures.
    pub total_bytes: usize,
}

impl Default for LookAhead {
    fn default() -> Self {
        LookAhead {
            total_bytes: 16 << 20,
        }
    }
}

impl LookAhead {
    /// The bytes kept of each of `captures` captures.
    pub fn per_capture(&self, captures: usize) -> usize {
        (self.total_bytes / captures.max(1)).clamp(64 << 10, 64 << 20)
    }
}

/// One frame in a chunk: the [`Frame`] without its bytes, which are at `start..start + len` of
/// the chunk's data.
#[derive(Debug, Clone, Copy)]
struct Record {
    interface: u32,
    wire_len: u32,
    number: u64,
    ts_ns: i64,
    offset: u64,
    link_type: u32,
    start: u32,
    len: u32,
}

/// Frames copied out of the reader's buffer.
#[derive(Default)]
struct Chunk {
    data: Vec<u8>,
    records: Vec<Record>,
}

impl Chunk {
    fn push(&mut self, f: &Frame) {
        self.records.push(Record {
            interface: f.interface,
            wire_len: f.wire_len,
            number: f.number,
            ts_ns: f.ts_ns,
            offset: f.offset,
            link_type: f.link_type,
            start: self.data.len() as u32,
            len: f.data.len() as u32,
        });
        self.data.extend_from_slice(f.data);
    }

    fn full(&self, bytes: usize) -> bool {
        self.data.len() >= bytes || self.records.len() >= CHUNK_FRAMES
    }

    fn size(&self) -> usize {
        self.data.len() + self.records.len() * RECORD_BYTES
    }

    fn for_each(&self, capture: CaptureId, each: &mut dyn FnMut(&Frame)) {
        for r in &self.records {
            let start = r.start as usize;
            each(&Frame {
                capture,
                interface: r.interface,
                number: r.number,
                ts_ns: r.ts_ns,
                wire_len: r.wire_len,
                link_type: r.link_type,
                data: &self.data[start..start + r.len as usize],
                offset: r.offset,
            });
        }
    }
}

/// What the reader thread sends.
enum Message {
    Chunk(Chunk),
    /// The capture's end: its summary, or why nothing of it could be read.
    End(Result<CaptureSummary, String>),
}

/// A capture's reader thread.
struct Reader {
    rx: Receiver<Message>,
    /// Chunks handed on, back to the reader for reuse.
    recycle: Sender<Chunk>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Reader {
    /// Starts reading, in chunks of `chunk_bytes` of frames.
    fn start(capture: CaptureId, source: CaptureSource, chunk_bytes: usize) -> Reader {
        let (tx, rx) = sync_channel(CHUNKS_IN_CHANNEL);
        let (recycle, reuse) = channel::<Chunk>();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::Builder::new()
            .name(format!("read-{capture}"))
            .spawn(move || {
                let mut chunk = Chunk::default();
                let mut gone = false;
                let outcome = read_capture_stoppable(capture, &source, stopped.clone(), |f| {
                    if gone {
                        return;
                    }
                    chunk.push(f);
                    if chunk.full(chunk_bytes) {
                        let mut next = reuse.try_recv().unwrap_or_default();
                        next.data.clear();
                        next.records.clear();
                        let full = std::mem::replace(&mut chunk, next);
                        if tx.send(Message::Chunk(full)).is_err() {
                            // Nobody reads any more: end the file here.
                            gone = true;
                            stopped.store(true, Ordering::Relaxed);
                        }
                    }
                });
                if gone {
                    return;
                }
                if !chunk.records.is_empty() {
                    let _ = tx.send(Message::Chunk(chunk));
                }
                let _ = tx.send(Message::End(outcome.map_err(|e| e.to_string())));
            })
            .expect("a thread to read a capture");
        Reader {
            rx,
            recycle,
            stop,
            thread: Some(thread),
        }
    }

    /// The next message; an End when the thread died without one.
    fn next(&self) -> Message {
        self.rx
            .recv()
            .unwrap_or_else(|_| Message::End(Err("the capture's reader stopped".to_string())))
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Unblock a send: drain what is queued until the thread has gone.
        while self.rx.try_recv().is_ok() {}
        if let Some(t) = self.thread.take() {
            // The reader ends at its next read; a message it sends meanwhile is drained.
            while !t.is_finished() {
                let _ = self.rx.recv_timeout(std::time::Duration::from_millis(5));
            }
            let _ = t.join();
        }
    }
}

/// The state of one capture's reading.
#[derive(Default)]
struct State {
    reader: Option<Reader>,
    /// The look-ahead: chunks read and kept for replay.
    kept: Vec<Chunk>,
    kept_bytes: usize,
    /// The end of the capture, once it has been read.
    end: Option<Result<CaptureSummary, String>>,
    /// A full read has handed on (and let go of) the frames: the next read starts over.
    consumed: bool,
}

/// Every capture of a run, each read once by its own thread.
pub struct Feeds {
    sources: Vec<CaptureSource>,
    states: Vec<Mutex<State>>,
    budget: usize,
    chunk_bytes: usize,
}

impl Feeds {
    pub fn new(sources: Vec<CaptureSource>, look_ahead: LookAhead) -> Feeds {
        let budget = look_ahead.per_capture(sources.len());
        let states = sources.iter().map(|_| Mutex::default()).collect();
        Feeds {
            sources,
            states,
            budget,
            // Four chunks to a look-ahead: one read ahead of it costs a quarter of it.
            chunk_bytes: (budget / 4).min(CHUNK_BYTES),
        }
    }

    pub fn sources(&self) -> &[CaptureSource] {
        &self.sources
    }

    /// The capture's reading, started (again, after a full read let go of its frames) if it
    /// is not under way.
    fn reading(&self, capture: CaptureId) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock leaves nothing half-done that matters here.
        let mut state = self.states[capture as usize]
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if state.consumed {
            *state = State::default();
        }
        if state.reader.is_none() && state.end.is_none() {
            state.reader = Some(Reader::start(
                capture,
                self.sources[capture as usize].clone(),
                self.chunk_bytes,
            ));
        }
        state
    }

    /// Hands on the capture's first frames (up to the look-ahead budget, or all of it when it
    /// is shorter), reading them first if no read has yet. Returns the capture's end when the
    /// look-ahead reached it (the whole capture was read then), None when the capture goes on.
    pub fn ahead(
        &self,
        capture: CaptureId,
        each: &mut dyn FnMut(&Frame),
    ) -> Option<Result<CaptureSummary, String>> {
        let mut state = self.reading(capture);
        while state.end.is_none() && state.kept_bytes < self.budget {
            let message = state.reader.as_ref().map(Reader::next);
            match message {
                Some(Message::Chunk(c)) => {
                    state.kept_bytes += c.size();
                    state.kept.push(c);
                }
                Some(Message::End(end)) => {
                    state.end = Some(end);
                    state.reader = None;
                }
                None => break,
            }
        }
        for c in &state.kept {
            c.for_each(capture, each);
        }
        state.end.clone()
    }

    /// Hands on every frame of the capture: the look-ahead kept, then the rest as it is read.
    /// The kept frames are let go of as they are handed on, so a later read reads the file
    /// again.
    pub fn all(
        &self,
        capture: CaptureId,
        each: &mut dyn FnMut(&Frame),
    ) -> Result<CaptureSummary, String> {
        let mut state = self.reading(capture);
        state.consumed = true;
        let kept = std::mem::take(&mut state.kept);
        state.kept_bytes = 0;
        for c in kept {
            c.for_each(capture, each);
        }
        while state.end.is_none() {
            let Some(reader) = state.reader.as_ref() else {
                break;
            };
            match reader.next() {
                Message::Chunk(c) => {
                    c.for_each(capture, each);
                    let _ = reader.recycle.send(c);
                }
                Message::End(end) => state.end = Some(end),
            }
        }
        state.reader = None;
        state
            .end
            .clone()
            .unwrap_or_else(|| Err("the capture's reader stopped".to_string()))
    }
}
