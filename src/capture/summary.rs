//! What reading one capture found, and the bookkeeping shared by the pcap and pcapng readers.

use std::io::Read;
use std::ops::Range;

use serde::{Deserialize, Serialize};

use super::frame::{CaptureId, Format, Frame, InterfaceInfo, ReadWarning};
use super::input::StreamBuf;

/// At most this many warnings are kept per capture; the rest are only counted, so a file broken
/// in every record cannot fill memory with messages.
pub const MAX_WARNINGS: usize = 32;

/// The outcome of reading one capture that could at least be opened and recognised.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaptureSummary {
    pub capture: CaptureId,
    /// File name as given (`<stdin>` for `-`).
    pub file: String,
    pub format: Format,
    pub gzip: bool,
    /// pcapng sections seen (1 for pcap).
    pub sections: u32,
    /// Interfaces in order of appearance; `InterfaceInfo::id` is the index here and the
    /// `Frame::interface` of their frames.
    pub interfaces: Vec<InterfaceInfo>,
    /// Frames handed on, per interface (same index as `interfaces`).
    pub frames_per_interface: Vec<u64>,
    /// Frames handed on.
    pub frames: u64,
    /// Packet records that took a frame number but were not handed on (systemd journal entries,
    /// packet blocks naming an unknown interface or with inconsistent lengths, runs of all-zero
    /// pcap records).
    pub skipped_records: u64,
    /// Frames whose captured length is below their wire length (snaplen); not an error.
    pub snaplen_truncated_frames: u64,
    /// Frames whose time is earlier than the frame before them.
    pub out_of_order_frames: u64,
    /// Time of the first and last frame in file order (ns since the Unix epoch).
    pub first_ts_ns: Option<i64>,
    pub last_ts_ns: Option<i64>,
    /// Earliest and latest frame time (what `capinfos -a -e` reports).
    pub earliest_ts_ns: Option<i64>,
    pub latest_ts_ns: Option<i64>,
    /// Problems that stopped or disturbed reading, first `MAX_WARNINGS` of them.
    pub warnings: Vec<ReadWarning>,
    pub warnings_suppressed: u64,
    /// The capture was read to its end without a problem that made the reader stop.
    pub complete: bool,
    /// Bytes of the (decompressed) capture consumed.
    pub bytes_read: u64,
}

/// Interfaces that carried nothing (no frame, no drop count) that reports list per capture, at
/// most; the rest are only counted. A pcapng file can declare 65 536 interfaces at 20 bytes
/// each and put a frame on none of them: listing every one turns a 2 MB file into hundreds of
/// megabytes of output that says nothing.
pub const MAX_EMPTY_INTERFACES_SHOWN: usize = 8;

impl CaptureSummary {
    /// Whether an interface carried anything worth a line of its own: frames, or drops the
    /// file recorded for it.
    fn carried(&self, i: usize) -> bool {
        let info = &self.interfaces[i];
        self.frames_per_interface.get(i).is_some_and(|&n| n > 0)
            || info.if_drop.is_some_and(|d| d > 0)
            || info.os_drop.is_some_and(|d| d > 0)
    }

    /// The interfaces reports list, by index in `interfaces`: every one that carried frames
    /// or drop counts, and the first [`MAX_EMPTY_INTERFACES_SHOWN`] that did not; and how
    /// many empty ones that leaves out.
    pub fn shown_interfaces(&self) -> (Vec<usize>, u64) {
        let mut shown = Vec::new();
        let (mut empty_shown, mut omitted) = (0, 0);
        for i in 0..self.interfaces.len() {
            if self.carried(i) {
                shown.push(i);
            } else if empty_shown < MAX_EMPTY_INTERFACES_SHOWN {
                empty_shown += 1;
                shown.push(i);
            } else {
                omitted += 1;
            }
        }
        (shown, omitted)
    }
}

/// Hands frames to the caller and keeps the summary up to date.
pub(crate) struct Recorder<F> {
    pub(crate) summary: CaptureSummary,
    next_number: u64,
    on_frame: F,
}

impl<F: FnMut(&Frame)> Recorder<F> {
    pub(crate) fn new(
        capture: CaptureId,
        file: String,
        format: Format,
        gzip: bool,
        on_frame: F,
    ) -> Self {
        Recorder {
            summary: CaptureSummary {
                capture,
                file,
                format,
                gzip,
                sections: 0,
                interfaces: Vec::new(),
                frames_per_interface: Vec::new(),
                frames: 0,
                skipped_records: 0,
                snaplen_truncated_frames: 0,
                out_of_order_frames: 0,
                first_ts_ns: None,
                last_ts_ns: None,
                earliest_ts_ns: None,
                latest_ts_ns: None,
                warnings: Vec::new(),
                warnings_suppressed: 0,
                complete: false,
                bytes_read: 0,
            },
            next_number: 1,
            on_frame,
        }
    }

    /// The number the next packet record will get.
    pub(crate) fn next_number(&self) -> u64 {
        self.next_number
    }

    /// Registers an interface; returns its capture-wide id.
    pub(crate) fn add_interface(&mut self, mut info: InterfaceInfo) -> u32 {
        let id = self.summary.interfaces.len() as u32;
        info.id = id;
        self.summary.interfaces.push(info);
        self.summary.frames_per_interface.push(0);
        id
    }

    /// Hands one frame on: the bytes at `data` of the input's unconsumed bytes. `timed` is
    /// false for records without a timestamp of their own (pcapng simple packet blocks): they
    /// do not move the capture's time range.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    pub(crate) fn frame<R: Read>(
        &mut self,
        input: &mut StreamBuf<'_, R>,
        interface: u32,
        link_type: u32,
        ts_ns: i64,
        timed: bool,
        wire_len: u32,
        data: Range<usize>,
        offset: u64,
    ) {
        let frame = Frame {
            capture: self.summary.capture,
            interface,
            number: self.next_number,
            ts_ns,
            wire_len,
            link_type,
            data: &input.bytes()[data.clone()],
            offset,
        };
        (self.on_frame)(&frame);
        // The record kept takes the fields; the bytes stay where they are in the input.
        let frame = Frame { data: &[], ..frame };
        input.keep(&frame, data.clone());
        let data_len = data.len();
        self.next_number += 1;

        let s = &mut self.summary;
        s.frames += 1;
        if let Some(count) = s.frames_per_interface.get_mut(interface as usize) {
            *count += 1;
        }
        if (data_len as u64) < u64::from(wire_len) {
            s.snaplen_truncated_frames += 1;
            if let Some(info) = s.interfaces.get_mut(interface as usize) {
                let len = data_len as u32;
                info.cut_at = Some(info.cut_at.map_or(len, |c| c.max(len)));
                info.cut_frames += 1;
            }
        }
        if timed {
            if let Some(last) = s.last_ts_ns {
                if ts_ns < last {
                    s.out_of_order_frames += 1;
                }
            }
            s.first_ts_ns.get_or_insert(ts_ns);
            s.last_ts_ns = Some(ts_ns);
            s.earliest_ts_ns = Some(s.earliest_ts_ns.map_or(ts_ns, |t| t.min(ts_ns)));
            s.latest_ts_ns = Some(s.latest_ts_ns.map_or(ts_ns, |t| t.max(ts_ns)));
        }
    }

    /// A packet record that is not handed on still takes its frame number, so later numbers
    /// match Wireshark's.
    pub(crate) fn skip_record(&mut self) {
        self.skip_records(1);
    }

    /// Counts `n` records that are not handed out, keeping the numbering.
    pub(crate) fn skip_records(&mut self, n: u64) {
        self.next_number += n;
        self.summary.skipped_records += n;
    }

    /// Notes a problem the reader got past.
    pub(crate) fn warn(&mut self, offset: u64, frame: Option<u64>, message: String) {
        if self.summary.warnings.len() >= MAX_WARNINGS {
            self.summary.warnings_suppressed += 1;
            return;
        }
        self.summary.warnings.push(ReadWarning {
            file: self.summary.file.clone(),
            offset,
            frame,
            message,
        });
    }

    /// Notes the problem that ends reading; the message gets the count of frames kept.
    pub(crate) fn stop(&mut self, offset: u64, frame: Option<u64>, message: String) {
        let frames = self.summary.frames;
        let plural = if frames == 1 { "" } else { "s" };
        // This warning must not be lost to the cap: it explains why the capture is incomplete.
        if self.summary.warnings.len() >= MAX_WARNINGS {
            self.summary.warnings.pop();
            self.summary.warnings_suppressed += 1;
        }
        self.warn(
            offset,
            frame,
            format!("{message}; {frames} frame{plural} read"),
        );
    }

    pub(crate) fn finish(mut self, bytes_read: u64, complete: bool) -> CaptureSummary {
        self.summary.bytes_read = bytes_read;
        self.summary.complete = complete;
        self.summary
    }
}
