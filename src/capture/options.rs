//! pcapng options that say how a capture was taken rather than what it holds: the capture
//! filter of an interface (`if_filter`) and the drop counters of an interface statistics block
//! (`isb_ifdrop`, `isb_osdrop`). They let `verify` blame a capture filter or lost packets on the
//! capture instead of on the deployment.
//!
//! Read by walking the option list by hand, as `lenient_idb` does: pcap-file does not parse
//! statistics blocks for us, hands `if_filter` back as raw bytes, and a malformed option must
//! not cost the file its interfaces.

use super::{u16_at, u32_at};

const OPT_END: u16 = 0;
/// `if_filter`: first byte 0 = a libpcap filter string, 1 = a BPF program.
pub(crate) const OPT_IF_FILTER: u16 = 11;
/// `isb_ifdrop`: packets the interface dropped (no buffer in the NIC or the driver).
const OPT_ISB_IFDROP: u16 = 5;
/// `isb_osdrop`: packets the capture stack dropped (the kernel buffer was full).
const OPT_ISB_OSDROP: u16 = 7;
/// Fixed part of an interface statistics block body: interface id, timestamp high and low.
const ISB_FIXED_LEN: usize = 12;
/// Longest filter string kept: real filters are a line; a longer one is cut, not refused.
const MAX_FILTER_LEN: usize = 1024;

/// Calls `each(code, value)` for every whole option, stopping quietly at the end marker or at
/// an option that runs past the end of the list.
pub(crate) fn walk(mut options: &[u8], big: bool, mut each: impl FnMut(u16, &[u8])) {
    while options.len() >= 4 {
        let code = u16_at(options, 0, big);
        let len = usize::from(u16_at(options, 2, big));
        if code == OPT_END || 4 + len > options.len() {
            break;
        }
        each(code, &options[4..4 + len]);
        let padded = (4 + len).div_ceil(4) * 4;
        options = &options[padded.min(options.len())..];
    }
}

/// The libpcap filter string of an `if_filter` option value; None for a BPF program or an
/// empty filter. Lossy UTF-8, trailing NULs removed: it is shown to people, escaped.
pub(crate) fn filter_string(value: &[u8]) -> Option<String> {
    let (&kind, text) = value.split_first()?;
    if kind != 0 {
        return None;
    }
    let end = text.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    let text = &text[..end.min(MAX_FILTER_LEN)];
    (!text.is_empty()).then(|| String::from_utf8_lossy(text).into_owned())
}

/// A 64-bit option value in the section's byte order.
fn u64_value(value: &[u8], big: bool) -> Option<u64> {
    if value.len() != 8 {
        return None;
    }
    let (first, second) = (
        u64::from(u32_at(value, 0, big)),
        u64::from(u32_at(value, 4, big)),
    );
    Some(if big {
        (first << 32) | second
    } else {
        (second << 32) | first
    })
}

/// What an interface statistics block says about drops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Drops {
    /// Interface id within the section.
    pub interface: u32,
    pub if_drop: Option<u64>,
    pub os_drop: Option<u64>,
}

/// The drop counters of an interface statistics block body; None when the body cannot hold
/// the fixed fields.
pub(crate) fn isb_drops(body: &[u8], big: bool) -> Option<Drops> {
    if body.len() < ISB_FIXED_LEN {
        return None;
    }
    let mut drops = Drops {
        interface: u32_at(body, 0, big),
        if_drop: None,
        os_drop: None,
    };
    walk(&body[ISB_FIXED_LEN..], big, |code, value| match code {
        OPT_ISB_IFDROP => drops.if_drop = u64_value(value, big).or(drops.if_drop),
        OPT_ISB_OSDROP => drops.os_drop = u64_value(value, big).or(drops.os_drop),
        _ => {}
    });
    Some(drops)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn option(code: u16, value: &[u8]) -> Vec<u8> {
        let mut o = Vec::new();
        o.extend_from_slice(&code.to_le_bytes());
        o.extend_from_slice(&(value.len() as u16).to_le_bytes());
        o.extend_from_slice(value);
        while o.len() % 4 != 0 {
            o.push(0);
        }
        o
    }

    #[test]
    fn a_libpcap_filter_string_is_read_and_a_bpf_program_is_not() {
        assert_eq!(
            filter_string(b"\0tcp port 80").as_deref(),
            Some("tcp port 80")
        );
        // Some writers end the string with a NUL.
        assert_eq!(filter_string(b"\0arp\0").as_deref(), Some("arp"));
        assert_eq!(filter_string(&[1, 0x28, 0, 0, 0]), None);
        assert_eq!(filter_string(b"\0"), None);
        assert_eq!(filter_string(b""), None);
        // Not UTF-8: kept, replaced, never refused.
        assert_eq!(
            filter_string(b"\0ho\xffst").as_deref(),
            Some("ho\u{fffd}st")
        );
    }

    #[test]
    fn statistics_give_both_drop_counters_in_either_byte_order() {
        let mut body = vec![1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        body.extend(option(4, &100u64.to_le_bytes())); // isb_ifrecv: not a drop
        body.extend(option(5, &17u64.to_le_bytes()));
        body.extend(option(7, &(3u64 << 32).to_le_bytes()));
        body.extend(option(0, &[]));
        assert_eq!(
            isb_drops(&body, false),
            Some(Drops {
                interface: 1,
                if_drop: Some(17),
                os_drop: Some(3 << 32),
            })
        );
        let mut big = vec![0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0];
        big.extend_from_slice(&[0, 5, 0, 8]);
        big.extend_from_slice(&9u64.to_be_bytes());
        assert_eq!(
            isb_drops(&big, true),
            Some(Drops {
                interface: 2,
                if_drop: Some(9),
                os_drop: None,
            })
        );
    }

    #[test]
    fn malformed_statistics_are_ignored_not_read_out_of_bounds() {
        assert_eq!(isb_drops(&[0; 11], false), None);
        // An option that claims more bytes than the block holds, and one of the wrong size.
        let mut body = vec![0; 12];
        body.extend_from_slice(&[5, 0, 200, 0, 1, 2]);
        assert_eq!(isb_drops(&body, false).unwrap().if_drop, None);
        let mut body = vec![0; 12];
        body.extend(option(5, &[1, 2, 3]));
        assert_eq!(isb_drops(&body, false).unwrap().if_drop, None);
    }
}
