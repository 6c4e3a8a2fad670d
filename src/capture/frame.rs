//! The unit the capture layer hands on: one record of one capture file.

use serde::{Deserialize, Serialize};

/// Index of a capture in the list of inputs given on the command line (0-based).
pub type CaptureId = u32;

/// One captured frame, borrowed from the reader's buffer for the duration of a callback.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    pub capture: CaptureId,
    /// pcapng interface id within its section, made unique across sections; 0 for pcap.
    pub interface: u32,
    /// Frame number counted from 1 across the whole file, as Wireshark counts.
    pub number: u64,
    /// Nanoseconds since the Unix epoch (pcapng `if_tsoffset` and `if_tsresol` applied).
    pub ts_ns: i64,
    /// Length on the wire.
    pub wire_len: u32,
    /// DLT/LINKTYPE value of the interface the frame was captured on.
    pub link_type: u32,
    /// Captured bytes (may be shorter than `wire_len`: snaplen).
    pub data: &'a [u8],
    /// Byte offset of the record in the (decompressed) file, for error messages.
    pub offset: u64,
}

/// Container format, recognised by magic bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    PcapMicro,
    PcapNano,
    Pcapng,
}

/// One interface of a capture: the whole file for pcap, one IDB for pcapng.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InterfaceInfo {
    pub id: u32,
    pub link_type: u32,
    pub name: Option<String>,
    pub snaplen: u32,
    /// Timestamp resolution in nanoseconds per tick is derived from this (pcapng if_tsresol).
    pub ts_resolution_ns: f64,
    /// The capture filter it was taken with (pcapng `if_filter`, libpcap syntax), when the file
    /// says; pcap files never do.
    pub filter: Option<String>,
    /// Packets the interface and the capture stack dropped (pcapng interface statistics,
    /// `isb_ifdrop` and `isb_osdrop`; the largest value of any statistics block), when the file
    /// says; pcap files never do.
    pub if_drop: Option<u64>,
    pub os_drop: Option<u64>,
    /// The longest captured length of a frame cut short of its wire length: the snap length
    /// the capture was really taken with, which the header may not say (`editcap -s` into
    /// pcapng keeps the original interface's snaplen). None when no frame was cut.
    pub cut_at: Option<u32>,
    /// Frames of this interface captured shorter than their wire length.
    pub cut_frames: u64,
}

/// Something that could not be read; the reader carries on where it can.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReadWarning {
    pub file: String,
    /// Byte offset in the (decompressed) stream where the problem starts.
    pub offset: u64,
    /// Frame number concerned, when there is one.
    pub frame: Option<u64>,
    pub message: String,
}
