//! `verify --annotate DIR`: a pcapng copy of every capture, each packet of a connection
//! commented with the connection and what the packet is at that vantage point, each evidence
//! packet with the check and its finding, so that Wireshark shows the findings inline
//! (`frame.comment contains "reply.present"`).
//!
//! The captures are read again ([`reread`]) and each frame placed in its connection
//! ([`Locator`]); the copy ([`AnnotatedCopy`]) walks the file alongside, so nothing is kept per
//! frame: comments are written into one buffer, frame after frame. A frame of a mirror port
//! that the analysis split into two hops (sender and receiver) comes twice: its comment names
//! both legs, once; the second copy of a packet such a capture holds twice, which the analysis
//! leaves out, is marked as one. Frames the analysis could not place get no comment.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;
use std::fs::File;
use std::io::BufWriter;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::capture::annotate::{AnnotatedCopy, Comments, CopyReport};
use crate::capture::frame::CaptureId;
use crate::capture::CaptureSource;
use crate::decode::defect::tunnel_name;
use crate::decode::packet::DecodedFrame;
use crate::decode::DecodeOptions;
use crate::flows::join::is_raw_ip;
use crate::flows::trace::locate::{Located, Locator, Placement};
use crate::flows::trace::reread;
use crate::flows::Form;
use crate::topology::view::IpView;
use crate::topology::{MacAddr, Role, VantageId};
use crate::verify::Verification;

/// The name of the copy of each capture in the output directory: the input's file name
/// without `.gz`, with the extension `.pcapng` (standard input: `stdin.pcapng`). Names that
/// collide (two `a.pcap` from different folders, or `a.pcap` and `a.pcapng`) get `-2`, `-3`,
/// ... in the order the captures were given; the second element says so for each renamed one.
pub fn output_names(sources: &[CaptureSource]) -> (Vec<String>, Vec<String>) {
    let mut names = Vec::with_capacity(sources.len());
    let mut notes = Vec::new();
    let mut taken: HashMap<String, usize> = HashMap::new();
    for s in sources {
        let base = base_name(s);
        let mut name = format!("{base}.pcapng");
        let mut n = 1;
        while taken.contains_key(&name) {
            n += 1;
            name = format!("{base}-{n}.pcapng");
        }
        if n > 1 {
            let first = format!("{base}.pcapng");
            notes.push(format!(
                "{name} is the copy of {} ({first} is the copy of {}: their names collide)",
                s.display_name(),
                sources[taken[&first]].display_name()
            ));
        }
        taken.insert(name.clone(), names.len());
        names.push(name);
    }
    (names, notes)
}

/// The file name without its folder, `.gz` and capture extension.
fn base_name(s: &CaptureSource) -> String {
    let path = match s {
        CaptureSource::Stdin => return "stdin".into(),
        CaptureSource::Spooled { name, .. } if name == "-" || name == "<stdin>" => {
            return "stdin".into()
        }
        CaptureSource::Spooled { name, .. } => PathBuf::from(name),
        CaptureSource::File(p) => p.clone(),
    };
    let mut name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "capture".into());
    for suffix in [".gz", ".pcapng", ".pcap", ".cap"] {
        if name.len() > suffix.len() && name.to_ascii_lowercase().ends_with(suffix) {
            name.truncate(name.len() - suffix.len());
        }
    }
    name
}

/// One copy written.
#[derive(Debug, Clone)]
pub struct Written {
    pub input: String,
    pub output: PathBuf,
    pub report: CopyReport,
}

/// Checks that `dir` can take the copies before anything is read: made if missing, a folder,
/// and not holding a file named like a copy that is one of the inputs (it would be overwritten
/// while read). Returns the paths the copies will have.
pub fn prepare(dir: &Path, sources: &[CaptureSource]) -> Result<Vec<PathBuf>, String> {
    let named = dir.display();
    std::fs::create_dir_all(dir)
        .map_err(|e| format!("--annotate {named}: cannot create the folder: {e}"))?;
    let meta = std::fs::metadata(dir).map_err(|e| format!("--annotate {named}: {e}"))?;
    if !meta.is_dir() {
        return Err(format!("--annotate {named}: not a folder"));
    }
    let (names, _) = output_names(sources);
    let outputs: Vec<PathBuf> = names.iter().map(|n| dir.join(n)).collect();
    for (out, s) in outputs.iter().zip(sources) {
        let clash = sources.iter().find(|input| match input {
            CaptureSource::File(p) | CaptureSource::Spooled { path: p, .. } => same_file(p, out),
            CaptureSource::Stdin => false,
        });
        if let Some(input) = clash {
            return Err(format!(
                "--annotate {named}: the copy of {} would be written over the input {} \
                 ({}): choose another folder",
                s.display_name(),
                input.display_name(),
                out.display()
            ));
        }
    }
    Ok(outputs)
}

/// Whether two paths name the same existing file.
fn same_file(a: &Path, b: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        match (std::fs::metadata(a), std::fs::metadata(b)) {
            (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
            _ => false,
        }
    }
    #[cfg(not(unix))]
    {
        matches!((a.canonicalize(), b.canonicalize()), (Ok(x), Ok(y)) if x == y)
    }
}

/// An evidence packet's comment.
struct Evidence {
    frame: u64,
    text: String,
}

/// What is known of a vantage point for the words of a comment.
#[derive(Clone, Copy)]
struct Seen {
    role: Role,
    raw_ip: bool,
    address: Option<IpAddr>,
    /// The capturing host's MAC.
    mac: Option<MacAddr>,
}

/// Writes the annotated copies to `outputs` (from [`prepare`]). `decode` is what the analysis
/// was run with, `placements` its connections ([`Verification::placements`], taken out of `v`
/// so as not to be held twice).
pub fn write(
    sources: &[CaptureSource],
    outputs: &[PathBuf],
    decode: DecodeOptions,
    v: &Verification,
    placements: Vec<Placement>,
) -> Result<Vec<Written>, String> {
    let analysis = &v.analysis;
    let mut evidence: Vec<Vec<Evidence>> = (0..sources.len()).map(|_| Vec::new()).collect();
    let capture_of: HashMap<&str, CaptureId> = analysis
        .captures
        .iter()
        .map(|c| (c.file.as_str(), c.capture))
        .collect();
    for f in v.checks.iter().flat_map(|c| &c.findings) {
        for e in &f.evidence {
            let Some(list) = capture_of
                .get(e.file.as_str())
                .and_then(|c| evidence.get_mut(*c as usize))
            else {
                continue;
            };
            list.push(Evidence {
                frame: e.frame,
                text: format!(
                    "lvscheck: {} {}: {} (this packet: {})",
                    f.check,
                    f.severity.as_str().to_uppercase(),
                    f.summary,
                    e.summary
                ),
            });
        }
    }
    for list in &mut evidence {
        // Stable: a frame's findings in report order.
        list.sort_by_key(|e| e.frame);
    }
    let seen: HashMap<VantageId, Seen> = analysis
        .topology
        .vantages
        .iter()
        .map(|t| {
            let s = Seen {
                role: t.role,
                raw_ip: is_raw_ip(t.link_type),
                address: t.address,
                mac: t.local_mac,
            };
            (t.id, s)
        })
        .collect();
    let locator = Locator::of(placements, &analysis.clock_offsets);
    let mirrors = reread::split_interfaces(analysis);
    // One capture a task: each copy is read and written on its own.
    let done: Vec<Result<Written, String>> = evidence
        .into_par_iter()
        .enumerate()
        .map(|(capture, evidence)| {
            let mut run = Run {
                source: &sources[capture],
                output: &outputs[capture],
                evidence,
                next_evidence: 0,
                locator: &locator,
                seen: &seen,
                mirrors: mirrors.get(&(capture as CaptureId)),
                copy: None,
                frame: None,
                conn: None,
                legs: String::new(),
                comments: Comments::default(),
                error: None,
            };
            let capture = capture as CaptureId;
            reread::read_one_again(sources, decode.clone(), analysis, true, capture, &mut |f| {
                run.frame(f)
            });
            run.finish()
        })
        .collect();
    let written: Result<Vec<Written>, String> = done.into_iter().collect();
    if written.is_err() {
        for out in outputs {
            let _ = std::fs::remove_file(temporary(out));
        }
    }
    written
}

/// The copy of one capture while it is read again.
struct Run<'a> {
    source: &'a CaptureSource,
    output: &'a Path,
    /// Its evidence packets by frame, and how many were written.
    evidence: Vec<Evidence>,
    next_evidence: usize,
    locator: &'a Locator,
    seen: &'a HashMap<VantageId, Seen>,
    /// Its mirror interfaces split into hops: a frame on one of them (not on a hop) is the
    /// second copy of a packet, which the analysis left out.
    mirrors: Option<&'a BTreeSet<u32>>,
    copy: Option<Copy>,
    /// The frame being commented, its connection and its legs so far.
    frame: Option<u64>,
    conn: Option<usize>,
    legs: String,
    comments: Comments,
    error: Option<String>,
}

type Copy = AnnotatedCopy<BufWriter<File>>;

impl Run<'_> {
    fn frame(&mut self, f: &DecodedFrame) {
        if self.error.is_some() {
            return;
        }
        let Some(at) = self.locator.locate(f) else {
            return;
        };
        if self.frame != Some(f.number) {
            self.end_frame();
            self.evidence_before(f.number);
            self.frame = Some(f.number);
        }
        if self.conn != Some(at.index) {
            self.end_connection();
            self.conn = Some(at.index);
        }
        if !self.legs.is_empty() {
            self.legs.push_str("; ");
        }
        if self.mirrors.is_some_and(|i| i.contains(&f.interface)) {
            self.legs.push_str(
                "the second copy of a packet this capture holds twice (the sender's and the \
                 receiver's: a mirror port or merged file), which the analysis counts once",
            );
            return;
        }
        let vantage = VantageId {
            capture: f.capture,
            interface: f.interface,
        };
        let seen = self.seen.get(&vantage).copied();
        leg(
            &mut self.legs,
            f,
            at,
            seen,
            &self.locator.placements()[at.index],
        );
    }

    /// Adds the comment of the connection whose legs were gathered.
    fn end_connection(&mut self) {
        let Some(index) = self.conn.take() else {
            return;
        };
        let p = &self.locator.placements()[index];
        let k = p.key;
        let rs = Known(", to real server ", p.real_server);
        self.comments.add(format_args!(
            "lvscheck: connection {} ({} {} -> {}{rs}), {}",
            index + 1,
            k.proto,
            k.client,
            k.vip,
            self.legs
        ));
        self.legs.clear();
    }

    /// Writes the frame being commented, with its evidence comments.
    fn end_frame(&mut self) {
        self.end_connection();
        let Some(number) = self.frame.take() else {
            return;
        };
        self.add_evidence(number);
        self.write(number);
    }

    /// Adds the comments of frame `number` as evidence, if it is any (the next in the list).
    fn add_evidence(&mut self, number: u64) {
        let list = &self.evidence;
        let mut i = self.next_evidence;
        while i < list.len() && list[i].frame == number {
            self.comments.add(format_args!("{}", list[i].text));
            i += 1;
        }
        self.next_evidence = i;
    }

    /// Writes the evidence packets before frame `before` (those no connection holds: ARP, or
    /// frames not placed).
    fn evidence_before(&mut self, before: u64) {
        while let Some(first) = self
            .evidence
            .get(self.next_evidence)
            .map(|e| e.frame)
            .filter(|n| *n < before)
        {
            self.add_evidence(first);
            self.write(first);
        }
    }

    /// Writes the comments gathered on frame `number`, opening the copy if needed.
    fn write(&mut self, number: u64) {
        if self.error.is_none() && !self.comments.is_empty() {
            let written = open_copy(&mut self.copy, self.source, self.output).and_then(|copy| {
                copy.comment(number, &self.comments)
                    .map_err(|e| e.to_string())
            });
            if let Err(e) = written {
                self.error = Some(e);
            }
        }
        self.comments.clear();
    }

    /// Writes the last frame and evidence, copies the rest of the capture and puts the copy in
    /// place.
    fn finish(mut self) -> Result<Written, String> {
        self.end_frame();
        self.evidence_before(u64::MAX);
        let output = self.output.to_path_buf();
        let context = |e: String| format!("--annotate: writing {}: {e}", output.display());
        if let Some(e) = self.error.take() {
            return Err(context(e));
        }
        open_copy(&mut self.copy, self.source, self.output).map_err(context)?;
        let copy = self.copy.take().expect("opened above");
        let report = copy
            .finish()
            .and_then(|(report, w)| {
                w.into_inner().map_err(|e| e.into_error())?;
                Ok(report)
            })
            .and_then(|report| std::fs::rename(temporary(&output), &output).map(|()| report))
            .map_err(|e| context(e.to_string()))?;
        Ok(Written {
            input: self.source.display_name(),
            output,
            report,
        })
    }
}

/// The copy of `source` into `output`, opened on first use.
fn open_copy<'c>(
    copy: &'c mut Option<Copy>,
    source: &CaptureSource,
    output: &Path,
) -> Result<&'c mut Copy, String> {
    if copy.is_none() {
        let file = File::create(temporary(output)).map_err(|e| format!("cannot create it: {e}"))?;
        let out = BufWriter::with_capacity(1 << 20, file);
        *copy = Some(AnnotatedCopy::new(source, out).map_err(|e| e.to_string())?);
    }
    Ok(copy.as_mut().expect("opened above"))
}

/// Where a copy is written until it is whole.
pub(crate) fn temporary(out: &Path) -> PathBuf {
    let mut name = out.as_os_str().to_owned();
    name.push(".part");
    PathBuf::from(name)
}

/// An address after words (", to real server X", " to X") when it is known, else nothing.
struct Known(&'static str, Option<IpAddr>);

impl std::fmt::Display for Known {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.1 {
            Some(a) => write!(f, "{}{a}", self.0),
            None => Ok(()),
        }
    }
}

/// What the packet is at this vantage point, in words: its form, where it was seen, the
/// tunnel and where it led.
fn leg(out: &mut String, f: &DecodedFrame, at: Located, seen: Option<Seen>, p: &Placement) {
    let role = seen.map_or(Role::Other, |s| s.role);
    let Some(v) = IpView::of(&f.packet) else {
        return;
    };
    let here = Here(
        seen.and_then(|s| s.address).or(p.real_server),
        seen.and_then(|s| s.mac),
    );
    let src_mac = f.packet.link.src_mac.map(MacAddr);
    let sent_here = src_mac.is_some() && src_mac == seen.and_then(|s| s.mac);
    let _ = if at.icmp_error {
        let about = if at.form.is_request() {
            "its request"
        } else {
            "its reply"
        };
        let (t, c) = v.icmp().map_or((0, 0), |i| (i.icmp_type, i.code));
        write!(
            out,
            "ICMP error (type {t}, code {c}) from {} about {about}, {}",
            v.ip.src,
            Where(role, here)
        )
    } else {
        match (at.form, role) {
            (Form::Request, Role::Client) => write!(out, "request leaving the client"),
            (Form::Request, Role::Director) if sent_here => {
                let to = f.packet.link.dst_mac.map(MacAddr);
                let to = To(to);
                write!(
                    out,
                    "request leaving the director unwrapped, not tunnelled{to}"
                )
            }
            (Form::Request, Role::Director) => write!(out, "request arriving at the director"),
            (Form::Request, Role::RealServer) => {
                let decapsulated =
                    seen.is_some_and(|s| s.raw_ip) || f.packet.link.src_mac.is_none();
                if decapsulated {
                    write!(
                        out,
                        "request decapsulated on {here}'s tunnel interface (tunl0)"
                    )
                } else {
                    write!(
                        out,
                        "request arriving at {here} unwrapped, not through the tunnel"
                    )
                }
            }
            (Form::Request, Role::Other) => {
                write!(out, "request to the VIP, {}", Where(role, here))
            }
            (Form::RequestWrapped, _) => {
                let (kind, to) = v
                    .outer
                    .map_or(("", None), |o| (tunnel_name(o.kind), Some(o.ip.dst)));
                let to = Known(" to ", to);
                match role {
                    Role::Director => {
                        write!(out, "request leaving the director wrapped {kind}{to}")
                    }
                    Role::RealServer => write!(out, "request arriving at {here} wrapped {kind}"),
                    _ => write!(out, "request wrapped {kind}{to}, {}", Where(role, here)),
                }
            }
            (Form::Reply, Role::RealServer) => write!(out, "reply leaving {here}"),
            (Form::Reply, Role::Client) => write!(out, "reply arriving at the client"),
            (Form::Reply, Role::Director) => write!(
                out,
                "reply seen at the director (a reply should go straight to the client)"
            ),
            (Form::Reply, Role::Other) => write!(out, "reply from the VIP, {}", Where(role, here)),
            (Form::ReplyOtherSource, _) => write!(
                out,
                "reply from {} instead of the VIP, {}",
                v.ip.src,
                Where(role, here)
            ),
        }
    };
}

/// "real server X": the real server a capture was taken on, by its address, else its MAC.
#[derive(Clone, Copy)]
struct Here(Option<IpAddr>, Option<MacAddr>);

impl std::fmt::Display for Here {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.0, self.1) {
            (Some(a), _) => write!(f, "real server {a}"),
            (None, Some(mac)) => write!(f, "the real server with MAC {mac}"),
            (None, None) => f.write_str("a real server"),
        }
    }
}

/// " to MAC x" for an unwrapped packet's next hop.
struct To(Option<MacAddr>);

impl std::fmt::Display for To {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(mac) => write!(f, " to MAC {mac}"),
            None => Ok(()),
        }
    }
}

/// Where a packet was captured, for the rarer legs.
struct Where(Role, Here);

impl std::fmt::Display for Where {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Role::Client => f.write_str("at the client"),
            Role::Director => f.write_str("at the director"),
            Role::RealServer => write!(f, "at {}", self.1),
            Role::Other => {
                f.write_str("on a capture that is none of client, director or real server")
            }
        }
    }
}

/// Frames and comments per copy, for a line on standard error.
pub fn summary(written: &[Written]) -> Vec<String> {
    let mut lines = Vec::new();
    for w in written {
        let mut line = format!(
            "annotated {} -> {}: {} frames, {} with comments",
            w.input,
            w.output.display(),
            w.report.frames,
            w.report.commented
        );
        if w.report.simple_converted > 0 {
            let _ = write!(
                line,
                "; {} simple packet blocks written as enhanced ones to carry their comments",
                w.report.simple_converted
            );
        }
        if w.report.uncommented > 0 {
            let _ = write!(
                line,
                "; {} packet blocks with malformed options left without comments",
                w.report.uncommented
            );
        }
        if let Some(why) = &w.report.stopped {
            let _ = write!(line, "; the copy ends where reading stopped: {why}");
        }
        lines.push(line);
    }
    lines
}
