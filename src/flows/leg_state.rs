//! What a [`super::legs::LegTracker`] keeps per connection while it is open, how one packet
//! changes it, and the [`Leg`] it becomes once the legs are joined.
//!
//! A state is one heap block: packet forms, history letters and fingerprints are inline (a leg
//! sees two forms and a dozen or so fingerprints as a rule), so a packet allocates nothing. Once
//! the connection is closed the state is packed ([`super::packed`]) until its legs are joined.

use super::history::{History, SeqTracker};
use super::{
    ConnKey, DirStats, Evidence, EvidenceKind, Fingerprint, Form, Leg, MacList, OuterPair, TcpFlags,
};
use crate::decode::packet::{DecodedFrame, Tcp};
use crate::topology::view::IpView;
use crate::topology::{FrameRef, MacAddr, Proto, Role, VantageId};
use smallvec::SmallVec;
use std::net::SocketAddr;

use super::legs::{join_fingerprint, FlowContext};
pub(crate) use kept_fingerprints::KeptFingerprints;

mod kept_fingerprints;

pub(crate) const MAX_MACS: usize = 4;

/// Packets of one form at one vantage point, and the sequence space its TCP segments covered.
#[derive(Debug, Clone)]
pub(crate) struct FormStats {
    pub form: Form,
    pub seq: SeqTracker,
    pub stats: DirStats,
}

impl FormStats {
    pub(crate) fn new(form: Form, ts: i64, at: FrameRef, ttl: u8) -> FormStats {
        FormStats {
            form,
            seq: SeqTracker::default(),
            stats: DirStats {
                first_ts_ns: ts,
                last_ts_ns: ts,
                packets: 0,
                ip_bytes: 0,
                payload_bytes: 0,
                max_ip_len: 0,
                mss: None,
                retransmissions: 0,
                first: at,
                ttl,
                src_macs: MacList::new(),
                dst_macs: MacList::new(),
                outer: SmallVec::new(),
                sources: Vec::new(),
            },
        }
    }
}

/// One connection at one vantage point while packets may still come. The key is the table's,
/// not repeated here.
#[derive(Debug, Clone)]
pub(crate) struct LegState {
    pub isn: Option<u32>,
    pub first_ts: i64,
    pub last_ts: i64,
    /// The forms seen, in the order first seen.
    pub forms: SmallVec<[FormStats; 2]>,
    /// The request form seen first here: the one history and timings follow (the other is the
    /// same packets again, wrapped or unwrapped by this host).
    pub canonical: Option<Form>,
    pub history: History,
    pub flags: TcpFlags,
    pub syn_ts: Option<i64>,
    pub syn_ack_ts: Option<i64>,
    pub request_data_ts: Option<i64>,
    pub reply_data_ts: Option<i64>,
    pub icmp_unreachable: bool,
    pub evidence: Vec<Evidence>,
    pub fingerprints: KeptFingerprints,
}

impl LegState {
    pub(crate) fn new(ts: i64) -> LegState {
        LegState {
            isn: None,
            first_ts: ts,
            last_ts: ts,
            forms: SmallVec::new(),
            canonical: None,
            history: History::default(),
            flags: TcpFlags::default(),
            syn_ts: None,
            syn_ack_ts: None,
            request_data_ts: None,
            reply_data_ts: None,
            icmp_unreachable: false,
            evidence: Vec::new(),
            fingerprints: KeptFingerprints::default(),
        }
    }

    /// Makes a used block as [`LegState::new`] would, field by field: assigning a whole new
    /// state built a copy of it on the stack first (callgrind: a `memcpy` a connection).
    /// Destructured, so that a field added later cannot be left out.
    pub(crate) fn reset(&mut self, ts: i64) {
        let LegState {
            isn,
            first_ts,
            last_ts,
            forms,
            canonical,
            history,
            flags,
            syn_ts,
            syn_ack_ts,
            request_data_ts,
            reply_data_ts,
            icmp_unreachable,
            evidence,
            fingerprints,
        } = self;
        *isn = None;
        (*first_ts, *last_ts) = (ts, ts);
        forms.clear();
        *canonical = None;
        *history = History::default();
        *flags = TcpFlags::default();
        (*syn_ts, *syn_ack_ts, *request_data_ts, *reply_data_ts) = (None, None, None, None);
        *icmp_unreachable = false;
        evidence.clear();
        fingerprints.clear();
    }

    pub(crate) fn form(&self, form: Form) -> Option<&FormStats> {
        self.forms.iter().find(|f| f.form == form)
    }

    /// Closed by RST, or by FIN both ways. Where the server's side cannot be seen (`one_way`:
    /// a director, a real server's tunl0), the client's FIN is the end, as in IPVS's
    /// input-only state table; the ACKs that follow keep the state alive while they come.
    pub(crate) fn closed(&self, one_way: bool) -> bool {
        let f = &self.flags;
        f.client_rst || f.server_rst || (f.client_fin && (f.server_fin || one_way))
    }

    /// Only the client's SYNs so far: nothing answered, nothing else sent.
    pub(crate) fn half_open(&self) -> bool {
        let f = &self.flags;
        f.syn
            && !f.syn_ack
            && f.client_ack_ns.is_none()
            && f.client_fin_ns.is_none()
            && self.form(Form::Reply).is_none()
            && self.form(Form::ReplyOtherSource).is_none()
    }

    pub(crate) fn note(
        &mut self,
        kind: EvidenceKind,
        at: FrameRef,
        detail: impl FnOnce() -> String,
    ) {
        if let Some(e) = self.evidence.iter_mut().find(|e| e.kind == kind) {
            e.count += 1;
        } else {
            self.evidence.push(Evidence {
                kind,
                count: 1,
                first: at,
                detail: detail(),
            });
        }
    }

    /// The leg as the join hands it on. On a real server's own interface (not its tunnel
    /// device) a request that arrived unwrapped is an anomaly, noted here where the whole leg is
    /// known.
    /// The forms and the evidence move to the leg; the rest of the state is left as it was.
    pub(crate) fn take_leg(
        &mut self,
        key: ConnKey,
        vantage: VantageId,
        role: Role,
        raw_ip: bool,
    ) -> Leg {
        let mut evidence = std::mem::take(&mut self.evidence);
        if role == Role::RealServer && !raw_ip {
            if let (Some(r), None) = (self.form(Form::Request), self.form(Form::RequestWrapped)) {
                evidence.push(Evidence {
                    kind: EvidenceKind::UnwrappedRequestAtRealServer,
                    count: r.stats.packets,
                    first: r.stats.first,
                    detail: "requests to the VIP arrived without a tunnel, and no tunnelled copy \
                             was seen here"
                        .into(),
                });
            }
        }
        evidence.sort_by_key(|e| e.kind);
        let mut leg = Leg {
            vantage,
            role,
            key,
            isn: self.isn,
            first_ts_ns: self.first_ts,
            last_ts_ns: self.last_ts,
            request: None,
            request_wrapped: None,
            reply: None,
            reply_other_source: None,
            history: self.history.as_str().into(),
            tcp: (key.proto == Proto::TCP).then_some(self.flags),
            handshake_ns: self.syn_ts.zip(self.syn_ack_ts).map(|(a, b)| b - a),
            first_response_ns: self
                .request_data_ts
                .zip(self.reply_data_ts)
                .map(|(a, b)| b - a),
            icmp_unreachable: self.icmp_unreachable,
            // Decided when the legs are joined, knowing what this vantage point can see.
            outcome: None,
            evidence,
        };
        // Moved straight into their places: a form's stats are a couple of hundred bytes.
        for f in self.forms.drain(..) {
            match f.form {
                Form::Request => leg.request = Some(f.stats),
                Form::RequestWrapped => leg.request_wrapped = Some(f.stats),
                Form::Reply => leg.reply = Some(f.stats),
                Form::ReplyOtherSource => leg.reply_other_source = Some(Box::new(f.stats)),
            }
        }
        leg
    }
}

fn add_mac(v: &mut MacList, m: Option<[u8; 6]>) {
    if let Some(m) = m.map(MacAddr) {
        let macs = &v[..];
        // Nearly every packet of a form has the MACs of its first: one comparison.
        if macs.first() != Some(&m) && !macs.contains(&m) && macs.len() < MAX_MACS {
            v.push(m);
        }
    }
}

/// The stats of a form, made when its first packet is seen.
fn form_stats(s: &mut LegState, form: Form, ts: i64, at: FrameRef, ttl: u8) -> &mut FormStats {
    let i = match s.forms.iter().position(|f| f.form == form) {
        Some(i) => i,
        None => {
            s.forms.push(FormStats::new(form, ts, at, ttl));
            s.forms.len() - 1
        }
    };
    &mut s.forms[i]
}

/// One packet of a connection as a vantage point saw it: its form, its IP view, the frame and
/// where that frame is.
pub(crate) struct Seen<'a> {
    pub form: Form,
    pub v: &'a IpView<'a>,
    pub f: &'a DecodedFrame,
    pub at: FrameRef,
}

/// One packet of this connection, seen by a vantage point of `role`.
pub(crate) fn record(s: &mut LegState, p: &Seen, ctx: &FlowContext, role: Role) {
    let Seen { form, v, f, at } = *p;
    let ts = f.ts_ns;
    // Each of these is a match on the transport: made once.
    let tcp = v.tcp();
    let (payload_len, _) = v.payload();
    let link = &f.packet.link;
    let fs = form_stats(s, form, ts, at, v.ip.ttl);
    let retrans = tcp.is_some_and(|t| fs.seq.retransmission(t));
    let st = &mut fs.stats;
    st.first_ts_ns = st.first_ts_ns.min(ts);
    st.last_ts_ns = st.last_ts_ns.max(ts);
    st.packets += 1;
    st.ip_bytes += u64::from(v.ip.total_len);
    st.payload_bytes += u64::from(payload_len);
    st.max_ip_len = st.max_ip_len.max(v.ip.total_len);
    if let Some(t) = tcp.filter(|t| t.has(Tcp::SYN) && st.mss.is_none()) {
        st.mss = t.mss;
    }
    st.retransmissions += u64::from(retrans);
    add_mac(&mut st.src_macs, link.src_mac);
    add_mac(&mut st.dst_macs, link.dst_mac);
    if let Some(o) = v.outer {
        match st
            .outer
            .iter_mut()
            .find(|p| p.src == o.ip.src && p.dst == o.ip.dst)
        {
            Some(p) => p.packets += 1,
            None => st.outer.push(OuterPair {
                src: o.ip.src,
                dst: o.ip.dst,
                packets: 1,
            }),
        }
    }
    if form == Form::ReplyOtherSource {
        let src = SocketAddr::new(v.ip.src, v.ports().0);
        if !st.sources.contains(&src) && st.sources.len() < MAX_MACS {
            st.sources.push(src);
        }
    }

    s.fingerprints
        .record(Fingerprint::new(form, join_fingerprint(v)));

    anomalies(s, p, tcp, ctx, role, retrans);

    // History and timings follow one copy of each packet.
    if form.is_request() && s.canonical.is_none() {
        s.canonical = Some(form);
    }
    let canonical = form == Form::Reply || Some(form) == s.canonical;
    if !canonical {
        return;
    }
    let from_client = form.is_request();
    match tcp {
        Some(t) => {
            s.history.tcp(from_client, t, retrans);
            let syn = t.has(Tcp::SYN);
            let fl = &mut s.flags;
            if from_client {
                fl.syn |= syn && !t.has(Tcp::ACK);
                fl.client_fin |= t.has(Tcp::FIN);
                fl.client_rst |= t.has(Tcp::RST);
                // tcp_state_idx() in ip_vs_proto_tcp.c: RST, then SYN, then FIN, then ACK.
                let first = if t.has(Tcp::RST) {
                    &mut fl.client_rst_ns
                } else if syn {
                    &mut fl.client_syn_ns
                } else if t.has(Tcp::FIN) {
                    &mut fl.client_fin_ns
                } else {
                    &mut fl.client_ack_ns
                };
                first.get_or_insert(ts);
            } else {
                fl.syn_ack |= syn && t.has(Tcp::ACK);
                fl.server_fin |= t.has(Tcp::FIN);
                fl.server_rst |= t.has(Tcp::RST);
            }
            if syn && !t.has(Tcp::ACK) && from_client && s.syn_ts.is_none() {
                s.syn_ts = Some(ts);
            }
            if syn && t.has(Tcp::ACK) && !from_client && s.syn_ack_ts.is_none() {
                s.syn_ack_ts = Some(ts);
            }
        }
        None => s.history.datagram(from_client, payload_len),
    }
    if payload_len > 0 {
        if from_client && s.request_data_ts.is_none() {
            s.request_data_ts = Some(ts);
        } else if !from_client && s.request_data_ts.is_some() && s.reply_data_ts.is_none() {
            s.reply_data_ts = Some(ts);
        }
    }
}

fn anomalies(
    s: &mut LegState,
    p: &Seen,
    tcp: Option<&Tcp>,
    ctx: &FlowContext,
    role: Role,
    retrans: bool,
) {
    let Seen { form, v, f, at } = *p;
    let link = &f.packet.link;
    if retrans {
        let seq = tcp.map_or(0, |t| t.seq);
        s.note(EvidenceKind::Retransmission, at, || {
            format!("{form:?} segment repeats sequence space (seq {seq})")
        });
    }
    if tcp.is_some_and(|t| t.has(Tcp::RST)) {
        let src = v.ip.src;
        let kind = if form.is_request() {
            EvidenceKind::ResetFromClient
        } else {
            EvidenceKind::ResetFromServer
        };
        s.note(kind, at, || format!("RST from {src}"));
    }
    if form == Form::ReplyOtherSource {
        let src = v.ip.src;
        s.note(EvidenceKind::ReplyFromOtherSource, at, || {
            format!("reply to the client from {src}, not from the VIP")
        });
    }
    if matches!(form, Form::Reply | Form::ReplyOtherSource) {
        if let Some(m) = link.dst_mac.map(MacAddr) {
            if ctx.director_macs.contains(&m) {
                s.note(EvidenceKind::ReplyToDirectorMac, at, || {
                    format!("reply sent to {m}, a director's MAC")
                });
            }
        }
        // A reply the director forwards arrives at its MAC before it leaves from it; one that
        // only leaves from it the director made itself (its own stack's RST for a connection
        // IPVS never saw, when a client's neighbour entry for the VIP flips from a real
        // server to the director mid-connection): no reply of a real server crossed it. A
        // frame without MACs (tunl0, raw IP) cannot tell, and counts.
        let leaving = || {
            link.src_mac
                .is_some_and(|m| ctx.director_macs.contains(&MacAddr(m)))
        };
        if role == Role::Director && !leaving() {
            s.note(EvidenceKind::ReplyAtDirector, at, || {
                "a reply crossed the director".into()
            });
        }
    }
    if let (Form::RequestWrapped, Some(o)) = (form, v.outer) {
        if let Some(conf) = &ctx.configured_rs {
            if !conf.contains(&o.ip.dst) {
                let d = o.ip.dst;
                s.note(EvidenceKind::WrappedToUnknownRs, at, || {
                    format!("tunnelled to {d}, not a real server in the rules")
                });
            }
        }
    }
}
