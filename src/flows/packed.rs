//! A leg's state packed into a few hundred bytes, from the moment its connection closed until
//! its legs are joined.
//!
//! A closed TCP connection's state waits seconds for stragglers ([`super::legs`]'s linger), and
//! a finished leg waits again until no capture can add to its connection ([`super::pending`]):
//! at thousands of connections a second these waiting legs, not the open ones, are most of the
//! memory of pass 2. Packed, a state is one block of bytes: times as variable-length
//! differences from the leg's first packet, counts as variable-length integers, fingerprints in
//! five bytes each ([`JOIN_FINGERPRINT_BITS`]). A straggler unpacks the state, is recorded as any packet is and packs it
//! again; the join unpacks each leg once.
//!
//! Layout: the leg's first and last time (8 bytes each, little-endian), the client's ISN (4),
//! a byte of bits ([`HEADER`] bytes in all, read without unpacking), then the rest of the state
//! in a fixed order ([`pack`], [`unpack_into`]). The frames a state points at are all of its
//! own vantage point, so only their numbers and times are kept.

use super::history::{History, SeqTracker};
use super::leg_state::{FormStats, LegState};
use super::legs::JOIN_FINGERPRINT_BITS;
use super::{Evidence, EvidenceKind, Fingerprint, Form, OuterPair, TcpFlags};
use crate::topology::{FrameRef, MacAddr, Role, VantageId};
use smallvec::SmallVec;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};

const HEADER: usize = 21;
/// A fingerprint with its form, in whole bytes.
const FINGERPRINT_BYTES: usize = JOIN_FINGERPRINT_BITS.div_ceil(8) as usize;
const ISN_KNOWN: u8 = 1;
const SOME_FORM: u8 = 1 << 1;
const RAW_IP: u8 = 1 << 2;
const ICMP_UNREACHABLE: u8 = 1 << 3;
const ROLE_SHIFT: u32 = 4;

/// Roles and evidence by their codes ([`role_code`], [`kind_code`]).
const ROLES: [Role; 4] = [Role::Director, Role::RealServer, Role::Client, Role::Other];
const KINDS: [EvidenceKind; 12] = [
    EvidenceKind::Retransmission,
    EvidenceKind::ResetFromServer,
    EvidenceKind::ResetFromClient,
    EvidenceKind::IcmpUnreachable,
    EvidenceKind::IcmpFragNeeded,
    EvidenceKind::IcmpOther,
    EvidenceKind::ReplyFromOtherSource,
    EvidenceKind::ReplyToDirectorMac,
    EvidenceKind::ReplyAtDirector,
    EvidenceKind::UnwrappedRequestAtRealServer,
    EvidenceKind::WrappedToUnknownRs,
    EvidenceKind::TunnelRefused,
];

/// A match, not a cast, so that a new role cannot be left without a code.
fn role_code(r: Role) -> u8 {
    match r {
        Role::Director => 0,
        Role::RealServer => 1,
        Role::Client => 2,
        Role::Other => 3,
    }
}

fn kind_code(k: EvidenceKind) -> u8 {
    use EvidenceKind::*;
    match k {
        Retransmission => 0,
        ResetFromServer => 1,
        ResetFromClient => 2,
        IcmpUnreachable => 3,
        IcmpFragNeeded => 4,
        IcmpOther => 5,
        ReplyFromOtherSource => 6,
        ReplyToDirectorMac => 7,
        ReplyAtDirector => 8,
        UnwrappedRequestAtRealServer => 9,
        WrappedToUnknownRs => 10,
        TunnelRefused => 11,
    }
}

/// A leg's state, packed; what the tracker keeps of a closed connection and hands on.
#[derive(Debug)]
pub struct PackedLeg(Box<[u8]>);

impl PackedLeg {
    /// The packed bytes, as `extract` writes them.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// A leg packed by [`PackedLeg::as_bytes`], read back; None when the bytes are too short
    /// to be one. (The rest is trusted: records carry a checksum of these bytes.)
    pub fn from_bytes(bytes: Box<[u8]>) -> Option<PackedLeg> {
        (bytes.len() >= HEADER).then_some(PackedLeg(bytes))
    }

    /// The leg itself, with the fingerprints of its packets, for the records' readable
    /// columns.
    pub fn unpack(
        &self,
        key: super::ConnKey,
        vantage: VantageId,
    ) -> (super::Leg, Vec<Fingerprint>) {
        let mut state = LegState::new(0);
        unpack_into(self, vantage, &mut state);
        let fingerprints = state.fingerprints.iter().copied().collect();
        let (role, raw_ip) = self.vantage_kind();
        (state.take_leg(key, vantage, role, raw_ip), fingerprints)
    }

    fn header(&self) -> &[u8; HEADER] {
        self.0[..HEADER]
            .try_into()
            .expect("a packed leg has a header")
    }
    pub fn first_ts(&self) -> i64 {
        i64::from_le_bytes(self.header()[0..8].try_into().expect("8 bytes"))
    }
    pub fn last_ts(&self) -> i64 {
        i64::from_le_bytes(self.header()[8..16].try_into().expect("8 bytes"))
    }
    pub fn isn(&self) -> Option<u32> {
        let h = self.header();
        (h[20] & ISN_KNOWN != 0).then(|| u32::from_le_bytes(h[16..20].try_into().expect("4")))
    }
    /// Whether a packet of any form was recorded (not only ICMP errors about it).
    pub fn some_form(&self) -> bool {
        self.header()[20] & SOME_FORM != 0
    }
    /// The role of the vantage point and whether it is a raw-IP (tunnel) device.
    pub fn vantage_kind(&self) -> (Role, bool) {
        let bits = self.header()[20];
        (
            ROLES[usize::from(bits >> ROLE_SHIFT) & 3],
            bits & RAW_IP != 0,
        )
    }
}

/// Packs `s` into `buf` (kept for the next, grown to the most a state of this shape can take),
/// then into a block of its own size.
pub(crate) fn pack(
    s: &LegState,
    vantage: VantageId,
    role: Role,
    raw_ip: bool,
    buf: &mut Vec<u8>,
) -> PackedLeg {
    let room = room(s);
    if buf.len() < room {
        buf.resize(room, 0);
    }
    let mut w = Out { b: buf, at: 0 };
    write(&mut w, s, vantage, role, raw_ip);
    PackedLeg(w.b[..w.at].into())
}

/// The most bytes [`write`] can take for `s`: every number at its longest.
fn room(s: &LegState) -> usize {
    const NUMBER: usize = 10;
    const IP: usize = 17;
    let (letters, ..) = s.history.parts();
    let forms: usize = s
        .forms
        .iter()
        .map(|f| {
            let st = &f.stats;
            2 + 9 * NUMBER
                + 2
                + 6 * (st.src_macs.len() + st.dst_macs.len())
                + NUMBER
                + st.outer.len() * (2 * IP + NUMBER)
                + NUMBER
                + st.sources.len() * (IP + 2 + 2 * NUMBER)
        })
        .sum();
    let evidence: usize = s
        .evidence
        .iter()
        .map(|e| 1 + 4 * NUMBER + e.detail.len())
        .sum();
    HEADER
        + 3
        + 8 * NUMBER
        + NUMBER
        + letters.len()
        + 5 * NUMBER
        + 1
        + forms
        + NUMBER
        + evidence
        + NUMBER
        + s.fingerprints.len() * FINGERPRINT_BYTES
}

/// Where a state is packed: a buffer of at least [`room`] bytes, written by index. A `Vec`'s
/// push for each byte (a capacity check, the length stored back) was most of packing's cost.
struct Out<'a> {
    b: &'a mut [u8],
    at: usize,
}

impl Out<'_> {
    #[inline(always)]
    fn u8(&mut self, x: u8) {
        self.b[self.at] = x;
        self.at += 1;
    }
    #[inline(always)]
    fn bytes(&mut self, x: &[u8]) {
        self.b[self.at..self.at + x.len()].copy_from_slice(x);
        self.at += x.len();
    }
    #[inline(always)]
    fn varint(&mut self, v: u64) {
        crate::varint::put_at(self.b, &mut self.at, v);
    }
    /// A time as its difference from the leg's first, zigzag-coded (a form's first packet may
    /// be a little earlier than the leg's when a capture is slightly out of order).
    #[inline(always)]
    fn time(&mut self, t: i64, base: i64) {
        crate::varint::put_diff_at(self.b, &mut self.at, t, base);
    }
    #[inline(always)]
    fn frame(&mut self, at: &FrameRef, base: i64, vantage: VantageId) {
        debug_assert_eq!(
            (at.capture, at.interface),
            (vantage.capture, vantage.interface)
        );
        self.varint(at.frame);
        self.time(at.ts_ns, base);
    }
    fn ip(&mut self, a: IpAddr) {
        match a {
            IpAddr::V4(a) => {
                self.u8(4);
                self.bytes(&a.octets());
            }
            IpAddr::V6(a) => {
                self.u8(6);
                self.bytes(&a.octets());
            }
        }
    }
}

fn write(w: &mut Out, s: &LegState, vantage: VantageId, role: Role, raw_ip: bool) {
    let base = s.first_ts;
    w.bytes(&s.first_ts.to_le_bytes());
    w.bytes(&s.last_ts.to_le_bytes());
    w.bytes(&s.isn.unwrap_or(0).to_le_bytes());
    w.u8(if s.isn.is_some() { ISN_KNOWN } else { 0 }
        | if s.forms.is_empty() { 0 } else { SOME_FORM }
        | if raw_ip { RAW_IP } else { 0 }
        | if s.icmp_unreachable {
            ICMP_UNREACHABLE
        } else {
            0
        }
        | role_code(role) << ROLE_SHIFT);
    w.u8(s.canonical.map_or(4, |f| f.index() as u8));
    let f = &s.flags;
    w.u8(bits(&[
        f.syn,
        f.syn_ack,
        f.client_fin,
        f.server_fin,
        f.client_rst,
        f.server_rst,
    ]));
    let times = [
        f.client_syn_ns,
        f.client_ack_ns,
        f.client_fin_ns,
        f.client_rst_ns,
        s.syn_ts,
        s.syn_ack_ts,
        s.request_data_ts,
        s.reply_data_ts,
    ];
    w.u8(bits(&times.map(|t| t.is_some())));
    for t in times.into_iter().flatten() {
        w.time(t, base);
    }
    let (letters, seen, retrans, zero_window) = s.history.parts();
    w.varint(letters.len() as u64);
    w.bytes(letters);
    w.varint(u64::from(seen));
    for n in retrans.into_iter().chain(zero_window) {
        w.varint(n);
    }
    w.u8(s.forms.len() as u8);
    for st in &s.forms {
        form(w, st, base, vantage);
    }
    w.varint(s.evidence.len() as u64);
    for e in &s.evidence {
        w.u8(kind_code(e.kind));
        w.varint(e.count);
        w.frame(&e.first, base, vantage);
        w.varint(e.detail.len() as u64);
        w.bytes(e.detail.as_bytes());
    }
    let fingerprints = &s.fingerprints[..];
    w.varint(fingerprints.len() as u64);
    for p in fingerprints {
        debug_assert_eq!(p.bits() >> JOIN_FINGERPRINT_BITS, 0);
        w.bytes(&p.bits().to_le_bytes()[..FINGERPRINT_BYTES]);
    }
}

fn form(w: &mut Out, f: &FormStats, base: i64, vantage: VantageId) {
    let st = &f.stats;
    w.u8(f.form.index() as u8);
    w.u8(st.ttl);
    w.varint(f.seq.max_end().map_or(0, |e| u64::from(e) + 1));
    w.time(st.first_ts_ns, base);
    w.time(st.last_ts_ns, base);
    for n in [
        st.packets,
        st.ip_bytes,
        st.payload_bytes,
        st.retransmissions,
        u64::from(st.max_ip_len),
        st.mss.map_or(0, |m| u64::from(m) + 1),
    ] {
        w.varint(n);
    }
    // The form's first packet: its time is the form's first, as a rule (one byte).
    w.frame(&st.first, st.first_ts_ns, vantage);
    for macs in [&st.src_macs[..], &st.dst_macs[..]] {
        w.u8(macs.len() as u8);
        for m in macs {
            w.bytes(&m.0);
        }
    }
    w.varint(st.outer.len() as u64);
    for p in &st.outer {
        w.ip(p.src);
        w.ip(p.dst);
        w.varint(p.packets);
    }
    w.varint(st.sources.len() as u64);
    for a in &st.sources {
        w.ip(a.ip());
        w.bytes(&a.port().to_le_bytes());
        if let SocketAddr::V6(a) = a {
            w.varint(u64::from(a.flowinfo()));
            w.varint(u64::from(a.scope_id()));
        }
    }
}

fn bits(flags: &[bool]) -> u8 {
    flags
        .iter()
        .enumerate()
        .fold(0, |b, (i, f)| b | u8::from(*f) << i)
}

/// Unpacks into `s`, reusing its inline room ([`PackedLeg::vantage_kind`] has what else it
/// was packed with).
pub(crate) fn unpack_into(p: &PackedLeg, vantage: VantageId, s: &mut LegState) {
    let mut r = Reader {
        b: &p.0,
        at: HEADER,
    };
    let base = p.first_ts();
    s.first_ts = base;
    s.last_ts = p.last_ts();
    s.isn = p.isn();
    s.icmp_unreachable = p.header()[20] & ICMP_UNREACHABLE != 0;
    s.canonical = Form::ALL.get(usize::from(r.u8())).copied();
    let f = r.u8();
    let on = |i: u32| f & (1 << i) != 0;
    let present = r.u8();
    let mut times = [None; 8];
    for (i, t) in times.iter_mut().enumerate() {
        if present & (1 << i) != 0 {
            *t = Some(r.time(base));
        }
    }
    let [client_syn, client_ack, client_fin, client_rst, syn, syn_ack, request, reply] = times;
    s.flags = TcpFlags {
        syn: on(0),
        syn_ack: on(1),
        client_fin: on(2),
        server_fin: on(3),
        client_rst: on(4),
        server_rst: on(5),
        client_syn_ns: client_syn,
        client_ack_ns: client_ack,
        client_fin_ns: client_fin,
        client_rst_ns: client_rst,
    };
    (s.syn_ts, s.syn_ack_ts, s.request_data_ts, s.reply_data_ts) = (syn, syn_ack, request, reply);
    let n = r.len();
    let letters = r.bytes(n);
    let seen = r.varint() as u32;
    let mut counts = [0u64; 4];
    for c in &mut counts {
        *c = r.varint();
    }
    s.history = History::from_parts(
        letters,
        seen,
        [counts[0], counts[1]],
        [counts[2], counts[3]],
    );
    s.forms.clear();
    for _ in 0..r.u8() {
        read_form(&mut r, base, vantage, &mut s.forms);
    }
    s.evidence.clear();
    for _ in 0..r.len() {
        let kind = KINDS[usize::from(r.u8())];
        let count = r.varint();
        let first = r.frame(base, vantage);
        let n = r.len();
        let detail = String::from_utf8(r.bytes(n).to_vec()).expect("packed from a String");
        s.evidence.push(Evidence {
            kind,
            count,
            first,
            detail,
        });
    }
    s.fingerprints.clear();
    let n = r.len();
    s.fingerprints.extend(
        r.bytes(FINGERPRINT_BYTES * n)
            .chunks_exact(FINGERPRINT_BYTES)
            .map(|b| {
                let mut bits = [0; 8];
                bits[..FINGERPRINT_BYTES].copy_from_slice(b);
                Fingerprint::from_bits(u64::from_le_bytes(bits))
            }),
    );
    debug_assert_eq!(r.at, p.0.len());
}

/// Reads a form's stats onto the end of `forms`: filled where they are, where returning them
/// copied a couple of hundred bytes more each.
fn read_form(r: &mut Reader, base: i64, vantage: VantageId, forms: &mut SmallVec<[FormStats; 2]>) {
    let form = Form::ALL[usize::from(r.u8())];
    let ttl = r.u8();
    let seq = SeqTracker::from_max_end(r.varint().checked_sub(1).map(|e| e as u32));
    let (first_ts_ns, last_ts_ns) = (r.time(base), r.time(base));
    let (packets, ip_bytes, payload_bytes, retransmissions) =
        (r.varint(), r.varint(), r.varint(), r.varint());
    let (max_ip_len, mss) = (r.varint(), r.varint());
    let first = r.frame(first_ts_ns, vantage);
    forms.push(FormStats::new(form, first_ts_ns, first, ttl));
    let f = forms.last_mut().expect("just pushed");
    f.seq = seq;
    let st = &mut f.stats;
    st.last_ts_ns = last_ts_ns;
    st.packets = packets;
    st.ip_bytes = ip_bytes;
    st.payload_bytes = payload_bytes;
    st.retransmissions = retransmissions;
    st.max_ip_len = max_ip_len as u32;
    st.mss = mss.checked_sub(1).map(|m| m as u16);
    for macs in [&mut st.src_macs, &mut st.dst_macs] {
        for _ in 0..r.u8() {
            macs.push(MacAddr(r.bytes(6).try_into().expect("6 bytes")));
        }
    }
    for _ in 0..r.len() {
        let (src, dst, packets) = (r.ip(), r.ip(), r.varint());
        st.outer.push(OuterPair { src, dst, packets });
    }
    for _ in 0..r.len() {
        let a = r.ip();
        let port = u16::from_le_bytes(r.bytes(2).try_into().expect("2 bytes"));
        st.sources.push(match a {
            IpAddr::V4(_) => SocketAddr::new(a, port),
            IpAddr::V6(a) => {
                let (flow, scope) = (r.varint() as u32, r.varint() as u32);
                SocketAddr::V6(SocketAddrV6::new(a, port, flow, scope))
            }
        });
    }
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    #[inline(always)]
    fn u8(&mut self) -> u8 {
        self.at += 1;
        self.b[self.at - 1]
    }
    #[inline(always)]
    fn bytes(&mut self, n: usize) -> &'a [u8] {
        self.at += n;
        &self.b[self.at - n..self.at]
    }
    #[inline(always)]
    fn varint(&mut self) -> u64 {
        crate::varint::get(self.b, &mut self.at)
    }
    #[inline(always)]
    fn len(&mut self) -> usize {
        self.varint() as usize
    }
    #[inline(always)]
    fn time(&mut self, base: i64) -> i64 {
        crate::varint::get_diff(self.b, &mut self.at, base)
    }
    #[inline(always)]
    fn frame(&mut self, base: i64, vantage: VantageId) -> FrameRef {
        let frame = self.varint();
        FrameRef {
            capture: vantage.capture,
            interface: vantage.interface,
            frame,
            ts_ns: self.time(base),
        }
    }
    fn ip(&mut self) -> IpAddr {
        match self.u8() {
            4 => IpAddr::V4(Ipv4Addr::from(
                <[u8; 4]>::try_from(self.bytes(4)).expect("4 bytes"),
            )),
            _ => IpAddr::V6(Ipv6Addr::from(
                <[u8; 16]>::try_from(self.bytes(16)).expect("16 bytes"),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use smallvec::smallvec;
    use std::net::SocketAddrV4;

    const T0: i64 = 1_700_000_000_000_000_000;

    fn at(frame: u64, ts_ns: i64) -> FrameRef {
        FrameRef {
            capture: 3,
            interface: 7,
            frame,
            ts_ns,
        }
    }

    fn v4(a: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, a))
    }

    fn v6(a: u16) -> IpAddr {
        IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, a))
    }

    /// A state with every field set, every list past its inline room, and times before the
    /// leg's first (a form's first packet out of order) and far after it.
    fn busy_state() -> LegState {
        let mut s = LegState::new(T0);
        s.last_ts = T0 + 900_000_000_000;
        s.isn = Some(u32::MAX);
        s.canonical = Some(Form::RequestWrapped);
        s.icmp_unreachable = true;
        s.flags = TcpFlags {
            syn: true,
            syn_ack: false,
            client_fin: true,
            server_fin: false,
            client_rst: true,
            server_rst: true,
            client_syn_ns: Some(T0 - 5),
            client_ack_ns: None,
            client_fin_ns: Some(T0 + 3),
            client_rst_ns: Some(i64::MAX),
        };
        (s.syn_ts, s.syn_ack_ts, s.request_data_ts, s.reply_data_ts) =
            (Some(T0), None, Some(T0 + 1), Some(i64::MIN));
        let letters = b"ShADadFfTTTTtttWWWwwwR";
        s.history = History::from_parts(letters, 0xfff, [u64::MAX, 3], [7, 0]);
        let mut request = FormStats::new(Form::Request, T0 - 1_000, at(1, T0 - 1_000), 64);
        request.seq = SeqTracker::from_max_end(Some(u32::MAX));
        let r = &mut request.stats;
        (r.packets, r.ip_bytes, r.payload_bytes) = (5, u64::MAX, 0);
        r.retransmissions = 2;
        (r.max_ip_len, r.mss) = (u32::MAX, Some(u16::MAX));
        r.src_macs = smallvec![MacAddr([1; 6]), MacAddr([2; 6]), MacAddr([3; 6])];
        r.dst_macs = smallvec![MacAddr([9; 6])];
        let mut wrapped = FormStats::new(Form::RequestWrapped, T0 + 10, at(u64::MAX, T0 + 10), 1);
        wrapped.stats.last_ts_ns = T0 + 900_000_000_000;
        wrapped.stats.outer = smallvec![
            OuterPair {
                src: v4(1),
                dst: v4(2),
                packets: 4
            },
            OuterPair {
                src: v6(1),
                dst: v6(3),
                packets: 1
            },
        ];
        let mut other = FormStats::new(Form::ReplyOtherSource, T0 + 20, at(9, T0 + 20), 255);
        other.stats.sources = vec![
            SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 9), 53)),
            SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::LOCALHOST, 5353, 17, 4)),
        ];
        s.forms = smallvec![request, wrapped, other];
        s.evidence = vec![
            Evidence {
                kind: EvidenceKind::WrappedToUnknownRs,
                count: 3,
                first: at(2, T0 + 2),
                detail: "tunnelled to 10.0.0.2, not a real server in the rules".into(),
            },
            Evidence {
                kind: EvidenceKind::Retransmission,
                count: 1,
                first: at(3, T0 - 7),
                detail: String::new(),
            },
        ];
        s.fingerprints.extend((0..20u64).map(|i| {
            Fingerprint::new(
                Form::ALL[(i % 4) as usize],
                i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (64 - JOIN_FINGERPRINT_BITS),
            )
        }));
        s
    }

    fn vantage() -> VantageId {
        VantageId {
            capture: 3,
            interface: 7,
        }
    }

    #[test]
    fn a_used_state_reset_is_a_new_one() {
        let mut s = busy_state();
        s.reset(-5);
        assert_eq!(format!("{s:?}"), format!("{:?}", LegState::new(-5)));
    }

    #[test]
    fn a_state_unpacks_to_what_was_packed() {
        for s in [busy_state(), LegState::new(-1)] {
            let mut buf = Vec::new();
            let p = pack(&s, vantage(), Role::RealServer, true, &mut buf);
            assert_eq!(p.first_ts(), s.first_ts);
            assert_eq!(p.last_ts(), s.last_ts);
            assert_eq!(p.isn(), s.isn);
            assert_eq!(p.some_form(), !s.forms.is_empty());
            assert_eq!(p.vantage_kind(), (Role::RealServer, true));
            // Unpacked over a state that had other things in it.
            let mut back = busy_state();
            back.forms.truncate(1);
            unpack_into(&p, vantage(), &mut back);
            assert_eq!(format!("{back:?}"), format!("{s:?}"));
        }
    }

    #[test]
    fn every_role_and_evidence_code_reads_back() {
        for (i, r) in ROLES.iter().enumerate() {
            assert_eq!(usize::from(role_code(*r)), i);
        }
        for (i, k) in KINDS.iter().enumerate() {
            assert_eq!(usize::from(kind_code(*k)), i);
        }
    }
}
