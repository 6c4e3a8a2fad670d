//! Each capture read once: a reader thread per capture reads its file into chunks, the frames
//! indexed where they lie in the chunk's buffer (not copied: see [`crate::capture::block`]),
//! and hands them on; the first ones (the look-ahead) are kept, so that pass 1 can learn the
//! topology and the clocks from them and pass 2 can replay them before going on with the rest
//! of the file.
//!
//! Reading on a thread of its own also overlaps the file's I/O and container parsing with the
//! decoding and tracking of the frames read before. Chunks go back to their reader once
//! handed on, so that steady reading allocates nothing. A capture read in full a second time
//! (a fallback, see [`super::pipeline`]) is opened and read again from its start.

use crate::capture::block::RECORD_BYTES;
use crate::capture::frame::CaptureId;
use crate::capture::progress::ReadProgress;
use crate::capture::{
    read_capture_in_blocks, BlockLimits, BlockSink, CaptureSource, CaptureSummary, Frame,
    FrameBlock,
};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, sync_channel, Receiver, SendError, Sender, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// Frame bytes per chunk, at most (a frame larger than this gets a chunk of its own); less
/// when the look-ahead is smaller, so that a capture keeps no more than its share.
const CHUNK_BYTES: usize = 256 << 10;
/// Frames per chunk, at most: tiny frames would otherwise make huge chunks of records.
const CHUNK_FRAMES: usize = 2048;
/// Chunks read ahead of their consumer per capture.
const CHUNKS_IN_CHANNEL: usize = 4;

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

/// Frames as the reader read them: the buffer the file was read into, with the frames indexed
/// where they lie (no copy of their bytes).
type Chunk = FrameBlock;

/// What a chunk holds for the look-ahead: its frames' bytes and what each frame's record
/// costs besides them.
fn chunk_size(chunk: &Chunk) -> usize {
    chunk.frame_bytes() + chunk.frames() * RECORD_BYTES
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
    /// Starts reading, in chunks of `chunk_bytes` of frames, counting in `progress`.
    fn start(
        capture: CaptureId,
        source: CaptureSource,
        chunk_bytes: usize,
        progress: Option<Arc<ReadProgress>>,
    ) -> Reader {
        if let Some(p) = &progress {
            p.begin_read(source.size().unwrap_or(0));
        }
        let (tx, rx) = sync_channel(CHUNKS_IN_CHANNEL);
        let (recycle, reuse) = channel::<Chunk>();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::Builder::new()
            .name(format!("read-{capture}"))
            .spawn(move || {
                let limits = BlockLimits {
                    frame_bytes: chunk_bytes,
                    frames: CHUNK_FRAMES,
                };
                let mut sink = Sending {
                    tx,
                    reuse,
                    stop: stopped.clone(),
                    gone: false,
                    spare: None,
                };
                let (outcome, last) = read_capture_in_blocks(
                    capture,
                    &source,
                    stopped,
                    limits,
                    &mut sink,
                    progress.clone(),
                );
                if let Some(p) = &progress {
                    p.end_read();
                }
                if sink.gone {
                    return;
                }
                if !last.is_empty() {
                    let _ = sink.tx.send(Message::Chunk(last));
                }
                let _ = sink
                    .tx
                    .send(Message::End(outcome.map_err(|e| e.to_string())));
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

/// The reader thread's end of the channel: full chunks go to the consumer, and the chunks it
/// is done with come back to be read into again.
struct Sending {
    tx: SyncSender<Message>,
    reuse: Receiver<Chunk>,
    stop: Arc<AtomicBool>,
    /// Nobody reads any more: the file is ended and what is read meanwhile dropped.
    gone: bool,
    /// A chunk not sent, read into again.
    spare: Option<Chunk>,
}

impl BlockSink for Sending {
    fn empty(&mut self) -> Chunk {
        self.spare
            .take()
            .or_else(|| self.reuse.try_recv().ok())
            .unwrap_or_default()
    }

    fn full(&mut self, chunk: Chunk) {
        if self.gone {
            self.spare = Some(chunk);
            return;
        }
        if let Err(SendError(unsent)) = self.tx.send(Message::Chunk(chunk)) {
            self.gone = true;
            self.stop.store(true, Ordering::Relaxed);
            if let Message::Chunk(chunk) = unsent {
                self.spare = Some(chunk);
            }
        }
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
    progress: Option<Arc<ReadProgress>>,
}

impl Feeds {
    /// The feeds of `sources`, counting what they read in `progress` when given.
    pub fn new(
        sources: Vec<CaptureSource>,
        look_ahead: LookAhead,
        progress: Option<Arc<ReadProgress>>,
    ) -> Feeds {
        let budget = look_ahead.per_capture(sources.len());
        let states = sources.iter().map(|_| Mutex::default()).collect();
        Feeds {
            sources,
            states,
            budget,
            // Four chunks to a look-ahead: one read ahead of it costs a quarter of it.
            chunk_bytes: (budget / 4).min(CHUNK_BYTES),
            progress,
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
                self.progress.clone(),
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
                Some(Message::Chunk(mut c)) => {
                    // Kept until the full read replays it, never read into again: its
                    // memory is made what the budget counts.
                    c.shrink_to_frames();
                    state.kept_bytes += chunk_size(&c);
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
