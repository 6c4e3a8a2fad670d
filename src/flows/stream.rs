//! Pass 2 as a stream: every capture read at once, legs joined into connections as soon as no
//! capture can still add to them, connections handed on as they are finished.
//!
//! One thread per capture feeds its frames to one [`LegTracker`] per interface and sends what
//! the trackers hand on ([`LegEvent`]s) in batches, each with how far the capture has been read
//! (its latest timestamp). The joining side keeps, per connection key, the legs finished so far
//! and how many are still open somewhere. A key's legs are joined when none is open and every
//! capture has been read past their end (on the reference clock) plus a slack: by then any
//! capture that saw the connection has opened its leg of it. The joining side always reads from
//! the capture that is furthest behind, and each capture's channel holds two batches, so the
//! captures advance together and a fast one cannot fill memory with legs that wait for a slow
//! one. Memory follows the connections in flight (and the uncertainty of the clock offsets, which
//! lengthens the wait), not their total.
//!
//! A capture whose frames are not in time order (a concatenation of files; found in pass 1, or
//! past the look-ahead in pass 2, which then starts over: [`super::pipeline`]), or
//! whose clock could not be matched against the others, gives no usable progress: it is read
//! first, its legs are held until it has been read to the end, and its `joined_at_end` says so
//! (frames out of order are also a warning).

use super::by_interface::ByInterface;
use super::clock::{ClockOffset, OffsetMethod};
use super::join::{Joiner, TIME_SLACK_NS};
use super::legs::{FlowContext, LegEvent, LegTracker, Timeouts};
use super::packed::PackedLeg;
use super::pending::Pending;
use super::pipeline::{FrameSource, Gather, ReadReport, VantageStats};
use super::probes::HealthChecks;
use super::{ConnKey, Connection};
use crate::capture::frame::CaptureId;
use crate::topology::facts::VantageFacts;
use crate::topology::{Topology, VantageId};
use std::collections::BTreeSet;
use std::sync::mpsc::{channel, sync_channel, Receiver, Sender, SyncSender};

/// Frames read before a capture sends what its trackers handed on.
const FRAMES_PER_BATCH: usize = 4096;
/// Events that make a batch go out early.
const EVENTS_PER_BATCH: usize = 256;
/// Capture time that makes a batch go out early: the join waits for the slowest capture's
/// progress, so a sparse capture must report it often enough.
const TIME_PER_BATCH_NS: i64 = 500_000_000;
/// Batches waiting per capture: enough to keep both sides busy, few enough to keep the
/// captures in step. With 2, a capture thread often found its channel full and slept while
/// the join caught up, and the two cores were busy 87 % of the steady state; with 8, about
/// 91 %, and `verify` on the 1 GB bench set took 8 % less wall time for about 2 MB more held
/// (32 gave no more speed for 10 MB).
const BATCHES_IN_CHANNEL: usize = 8;
/// Packed legs gathered on the joining side for one capture before they go back to its thread
/// to be freed ([`GiveBack`]).
const GIVE_BACK_AT: usize = 256;
/// Packed legs waiting to go back, all captures together, that make every capture's go back.
const GIVE_BACK_HELD: usize = 4096;
/// A frame this much older than the newest already read means the capture is not in time
/// order (a few milliseconds of disorder are normal on `-i any`).
const DISORDER_NS: i64 = 1_000_000_000;
/// The most clock uncertainty added to the wait: a worse estimate holds legs longer but it is
/// not worth holding them for minutes.
const MAX_UNCERTAINTY_SLACK_NS: i64 = 10_000_000_000;

/// How long after a key's last leg ends (reference clock) the join waits for other captures
/// to open theirs: the time slack, a capture's normal disorder and the worst clock
/// uncertainty (bounded). The records' query cuts a tuple's legs into sessions by the same gap.
pub fn join_slack(offsets: &[ClockOffset]) -> i64 {
    TIME_SLACK_NS
        + DISORDER_NS
        + offsets
            .iter()
            .map(|o| o.uncertainty_ns)
            .max()
            .unwrap_or(0)
            .clamp(0, MAX_UNCERTAINTY_SLACK_NS)
}

/// Whether a capture's frames are in time order, to within [`DISORDER_NS`].
#[derive(Debug, Default)]
pub struct TimeOrder {
    latest_ns: Option<i64>,
    disordered: bool,
}

impl TimeOrder {
    pub fn push(&mut self, ts_ns: i64) {
        match self.latest_ns {
            Some(t) if ts_ns < t.saturating_sub(DISORDER_NS) => self.disordered = true,
            Some(t) if ts_ns <= t => {}
            _ => self.latest_ns = Some(ts_ns),
        }
    }

    pub fn disordered(&self) -> bool {
        self.disordered
    }
}

/// What one capture's thread sends.
#[derive(Default)]
struct Batch {
    events: Vec<(VantageId, LegEvent)>,
    /// The latest timestamp read so far (this capture's clock).
    progress_ns: Option<i64>,
    /// The last batch: the capture was read to its end.
    end: Option<CaptureEnd>,
}

/// What a capture's thread says once it has read the capture.
struct CaptureEnd {
    stats: Vec<VantageStats>,
    health_checks: Vec<HealthChecks>,
    read: Result<ReadReport, String>,
    /// The facts of every frame, when the plan asked for them.
    gathered: Option<Gather>,
}

/// What pass 2 works from: what pass 1 and the clock estimate found.
#[derive(Clone, Copy)]
pub struct Plan<'a> {
    pub topology: &'a Topology,
    pub ctx: &'a FlowContext,
    pub timeouts: Timeouts,
    pub offsets: &'a [ClockOffset],
    /// Captures whose frames are not in time order (seen in pass 1).
    pub disordered: &'a [CaptureId],
    /// Gather the facts of every frame ([`StreamOutcome::facts`]): pass 1 saw only the
    /// look-ahead of some capture.
    pub gather: bool,
}

/// What pass 2 says besides the connections.
pub struct StreamOutcome {
    pub stats: Vec<VantageStats>,
    /// The health checks each vantage point saw ([`super::probes`]).
    pub health_checks: Vec<HealthChecks>,
    pub warnings: Vec<String>,
    /// Connection keys waiting to be joined at once, at most: what the join held in memory.
    pub max_waiting: usize,
    /// What reading each capture said.
    pub reads: Vec<(CaptureId, Result<ReadReport, String>)>,
    /// With [`Plan::gather`]: the facts of every vantage point over all its frames, and the
    /// captures whose frames came out of time order.
    pub facts: Vec<VantageFacts>,
    pub disordered: Vec<CaptureId>,
}

/// Reads every capture, joins legs into connections and hands each to `each` as soon as it is
/// finished: in the order connections end, not the order they began.
pub fn run(
    source: &dyn FrameSource,
    plan: &Plan,
    joiner: &Joiner,
    each: &mut dyn FnMut(Connection),
) -> StreamOutcome {
    let Plan {
        topology,
        ctx,
        timeouts,
        offsets,
        disordered,
        gather,
    } = *plan;
    let names = source.captures();
    std::thread::scope(|scope| {
        let mut inputs = Vec::new();
        for (capture, _) in &names {
            let (tx, rx) = sync_channel::<Batch>(BATCHES_IN_CHANNEL);
            let (back_tx, back_rx) = channel::<Vec<PackedLeg>>();
            let capture = *capture;
            std::thread::Builder::new()
                .name(format!("legs-{capture}"))
                .spawn_scoped(scope, move || {
                    let pipes = Pipes { tx, back: back_rx };
                    let gathered = gather.then(|| Gather::new(false));
                    produce(source, capture, topology, ctx, timeouts, gathered, pipes)
                })
                .expect("a thread to follow a capture");
            inputs.push(Input {
                capture,
                rx,
                back: back_tx,
                spent: Vec::new(),
                progress_ns: None,
                // Known from pass 1: found out only when it happens, it would come too late
                // for the legs joined before.
                disordered: disordered.contains(&capture),
                done: false,
                latest_offset_ns: latest_offset(capture, offsets),
                unmatched: unmatched(capture, offsets),
            });
        }
        let mut pending = Pending::new(joiner, join_slack(offsets));
        let mut give_back = GiveBack::new(&inputs);
        let mut stats = Vec::new();
        let mut health_checks = Vec::new();
        let mut reads = Vec::new();
        let mut facts = Vec::new();
        let mut out_of_order = Vec::new();
        let mut max_waiting = 0;
        while let Some(i) = behind(&inputs) {
            match inputs[i].rx.recv() {
                Ok(batch) => {
                    let input = &mut inputs[i];
                    for (vantage, event) in batch.events {
                        pending.event(vantage, event);
                    }
                    if let Some(p) = batch.progress_ns {
                        input.progress_ns = Some(input.progress_ns.map_or(p, |q| q.max(p)));
                    }
                    if let Some(end) = batch.end {
                        stats.extend(end.stats);
                        health_checks.extend(end.health_checks);
                        reads.push((input.capture, end.read));
                        if let Some(g) = end.gathered {
                            let (f, disordered) = g.into_facts();
                            facts.extend(f);
                            if disordered {
                                out_of_order.push(input.capture);
                            }
                        }
                        input.done = true;
                    }
                }
                // The thread ended without a last batch: nothing more will come.
                Err(_) => inputs[i].done = true,
            }
            max_waiting = max_waiting.max(pending.keys.len());
            pending.flush(watermark(&inputs), each);
            give_back.send(&mut pending, &mut inputs);
        }
        pending.flush(i64::MAX, each);
        stats.sort_by_key(|s: &VantageStats| s.vantage);
        let mut warnings = Vec::new();
        for i in &inputs {
            let Some(why) = joined_at_end(i.disordered, i.unmatched) else {
                continue;
            };
            for s in stats.iter_mut().filter(|s| s.vantage.capture == i.capture) {
                s.joined_at_end = Some(why);
            }
            if i.disordered {
                let file = names
                    .iter()
                    .find(|(c, _)| *c == i.capture)
                    .map_or_else(|| format!("capture #{}", i.capture), |(_, f)| f.clone());
                warnings.push(disordered_warning(&file));
            }
        }
        reads.sort_by_key(|(c, _)| *c);
        facts.sort_by_key(|f: &VantageFacts| f.vantage);
        out_of_order.sort_unstable();
        health_checks.sort_by_key(|h: &HealthChecks| (h.key, h.vantage));
        StreamOutcome {
            stats,
            health_checks,
            warnings,
            max_waiting,
            reads,
            facts,
            disordered: out_of_order,
        }
    })
}

/// One capture as the joining side follows it.
struct Input {
    capture: CaptureId,
    rx: Receiver<Batch>,
    /// Where this capture's packed legs go back once joined, to be freed by the thread that
    /// packed them ([`Pending`]'s `spent` says why).
    back: Sender<Vec<PackedLeg>>,
    /// Joined legs of this capture not sent back yet.
    spent: Vec<PackedLeg>,
    progress_ns: Option<i64>,
    disordered: bool,
    done: bool,
    /// The largest clock offset among the capture's interfaces: its progress on the reference
    /// clock is its own progress minus this.
    latest_offset_ns: i64,
    /// An interface whose clock is unknown against the reference (not the reference itself).
    unmatched: bool,
}

/// The joined legs on their way back to their captures' threads ([`Pending`]'s `spent` says
/// why): gathered per capture and sent [`GIVE_BACK_AT`] at a time, or all at once when
/// [`GIVE_BACK_HELD`] are waiting, so that captures with few connections (one per client
/// host, say) do not keep theirs until the end.
struct GiveBack {
    /// Each capture's place in the inputs, by capture number.
    input_of: Vec<usize>,
    held: usize,
}

impl GiveBack {
    fn new(inputs: &[Input]) -> GiveBack {
        let len = inputs
            .iter()
            .map(|i| i.capture as usize + 1)
            .max()
            .unwrap_or(0);
        let mut input_of = vec![usize::MAX; len];
        for (k, i) in inputs.iter().enumerate() {
            input_of[i.capture as usize] = k;
        }
        GiveBack { input_of, held: 0 }
    }

    /// Sends the legs joined since the last call. A capture whose thread has ended (or that
    /// is not an input) has its legs freed here.
    fn send(&mut self, pending: &mut Pending, inputs: &mut [Input]) {
        for (vantage, leg) in pending.take_spent() {
            let Some(input) = self
                .input_of
                .get(vantage.capture as usize)
                .and_then(|&k| inputs.get_mut(k))
                .filter(|i| !i.done)
            else {
                continue;
            };
            input.spent.push(leg);
            self.held += 1;
            if input.spent.len() >= GIVE_BACK_AT {
                self.held -= input.spent.len();
                input.send_spent();
            }
        }
        if self.held >= GIVE_BACK_HELD {
            for input in inputs.iter_mut().filter(|i| !i.spent.is_empty()) {
                input.send_spent();
            }
            self.held = 0;
        }
    }
}

impl Input {
    /// Sends this capture's joined legs back to its thread. The thread may have ended since:
    /// its legs are then freed here.
    fn send_spent(&mut self) {
        let list = std::mem::replace(&mut self.spent, Vec::with_capacity(GIVE_BACK_AT));
        let _ = self.back.send(list);
    }

    /// How far this capture has been read, on the reference clock, as far as it can be trusted.
    fn reference_progress(&self) -> i64 {
        if self.done {
            return i64::MAX;
        }
        if self.disordered || self.unmatched {
            return i64::MIN;
        }
        self.progress_ns
            .map_or(i64::MIN, |p| p.saturating_sub(self.latest_offset_ns))
    }
}

fn latest_offset(capture: CaptureId, offsets: &[ClockOffset]) -> i64 {
    offsets
        .iter()
        .filter(|o| o.vantage.capture == capture)
        .map(|o| o.offset_ns)
        .max()
        .unwrap_or(0)
}

fn unmatched(capture: CaptureId, offsets: &[ClockOffset]) -> bool {
    offsets
        .iter()
        .any(|o| o.vantage.capture == capture && o.method == OffsetMethod::Unmatched)
}

/// The capture to read from next: the one furthest behind (by its trustworthy progress, then
/// by its raw progress).
fn behind(inputs: &[Input]) -> Option<usize> {
    inputs
        .iter()
        .enumerate()
        .filter(|(_, i)| !i.done)
        .min_by_key(|(_, i)| {
            (
                i.reference_progress(),
                i.progress_ns
                    .map_or(i64::MIN, |p| p.saturating_sub(i.latest_offset_ns)),
            )
        })
        .map(|(n, _)| n)
}

/// Everything up to this time (reference clock) has been read in every capture.
fn watermark(inputs: &[Input]) -> i64 {
    inputs
        .iter()
        .map(Input::reference_progress)
        .min()
        .unwrap_or(i64::MAX)
}

/// A capture thread's two ends: its batches out to the join, its packed legs back once joined.
struct Pipes {
    tx: SyncSender<Batch>,
    back: Receiver<Vec<PackedLeg>>,
}

/// One capture's thread: its frames through the trackers, their events out in batches.
fn produce(
    source: &dyn FrameSource,
    capture: CaptureId,
    topology: &Topology,
    ctx: &FlowContext,
    timeouts: Timeouts,
    mut gathered: Option<Gather>,
    pipes: Pipes,
) {
    let Pipes { tx, back } = pipes;
    // One tracker per interface, with the most it had in flight at once.
    let mut trackers: ByInterface<(LegTracker, usize)> = ByInterface::default();
    // (wake-up time, interface) of every tracker with something in flight: which ones a
    // frame's time makes due.
    let mut swept: BTreeSet<(i64, u32)> = BTreeSet::new();
    // The trackers a frame visits; one buffer for all frames.
    let mut touched: Vec<u32> = Vec::new();
    let mut batch = Batch::default();
    let mut frames = 0usize;
    // The progress sent last; a batch also goes out when the capture's time has moved on.
    let mut sent_at: Option<i64> = None;
    // A send fails only when the joining side is gone; nothing is left to do then.
    let send = |batch: &mut Batch| {
        let b = std::mem::take(batch);
        let _ = tx.send(b);
        // Legs packed here and joined since: freed on this thread, into its own malloc arena.
        while let Ok(spent) = back.try_recv() {
            drop(spent);
        }
    };
    let read = source.read(capture, &mut |f, link_type| {
        if let Some(g) = gathered.as_mut() {
            g.push(f, link_type);
        }
        let (t, max) = trackers.get_or_insert_with(f.interface, || {
            let v = VantageId {
                capture: f.capture,
                interface: f.interface,
            };
            let raw_ip = topology
                .vantage(v)
                .is_some_and(|x| super::join::is_raw_ip(x.link_type));
            let hop_mac = topology
                .vantage(v)
                .filter(|x| x.id.interface >= super::mirror::HOP_BASE)
                .and_then(|x| x.local_mac);
            (
                LegTracker::new(v, topology.role_of(v), raw_ip, ctx, timeouts).on_hop(hop_mac),
                0,
            )
        });
        let before = t.wake_at();
        t.push(f);
        *max = (*max).max(t.in_flight());
        resweep(&mut swept, f.interface, before, t.wake_at());
        batch.progress_ns = Some(batch.progress_ns.map_or(f.ts_ns, |p| p.max(f.ts_ns)));
        // The other interfaces' states age by the same clock. Only the trackers with a state
        // past its timeout or a TIME_WAIT over, and a sweep due, would do anything then: those
        // are visited, in interface order with this frame's own, not every interface for every
        // frame (a merged file of 10 000 interfaces made that 10^8 visits for 10^4 frames) nor
        // every interface every second.
        let now = f.ts_ns;
        let others_due = swept
            .iter()
            .take(2)
            .any(|&(w, i)| w <= now && i != f.interface);
        if !others_due {
            // The earliest wake-ups are this interface's at most: it alone is visited.
            t.drain_events(&mut batch.events);
        } else {
            touched.clear();
            touched.extend(
                swept
                    .range(..=(now, u32::MAX))
                    .map(|&(_, i)| i)
                    .filter(|&i| i != f.interface),
            );
            touched.push(f.interface);
            touched.sort_unstable();
            for &i in &touched {
                let Some((t, _)) = trackers.get_mut(i) else {
                    continue;
                };
                if i != f.interface {
                    let before = t.wake_at();
                    t.advance(now);
                    resweep(&mut swept, i, before, t.wake_at());
                }
                t.drain_events(&mut batch.events);
            }
        }
        frames += 1;
        let advanced = match (batch.progress_ns, sent_at) {
            (Some(p), Some(s)) => p - s >= TIME_PER_BATCH_NS,
            (Some(p), None) => {
                sent_at = Some(p);
                false
            }
            _ => false,
        };
        if frames >= FRAMES_PER_BATCH || batch.events.len() >= EVENTS_PER_BATCH || advanced {
            frames = 0;
            sent_at = batch.progress_ns;
            let progress = batch.progress_ns;
            send(&mut batch);
            // Progress carries over: it describes the capture so far.
            batch.progress_ns = progress;
        }
    });
    let mut stats = Vec::new();
    let mut health_checks = Vec::new();
    for (i, (mut t, max)) in trackers.into_sorted() {
        t.finish(&mut batch.events);
        t.drain_events(&mut batch.events);
        health_checks.extend(t.health_checks());
        stats.push(VantageStats {
            vantage: VantageId {
                capture,
                interface: i,
            },
            legs: t.legs(),
            max_in_flight: max,
            late_packets: t.late_packets(),
            joined_at_end: None,
            oddities: *t.oddities(),
        });
    }
    batch.end = Some(CaptureEnd {
        stats,
        health_checks,
        read,
        gathered,
    });
    send(&mut batch);
}

/// What [`extract`] found in one capture besides its legs.
pub struct Extracted {
    pub stats: Vec<VantageStats>,
    pub health_checks: Vec<HealthChecks>,
    pub read: Result<ReadReport, String>,
    /// The facts and clock sample of every vantage point, over all its frames.
    pub facts: Vec<VantageFacts>,
    pub samplers: Vec<(VantageId, super::clock::ClockSampler)>,
    /// Its frames came out of time order.
    pub disordered: bool,
}

/// Pass 2 over one capture without the join (`lvscheck extract`): every leg its trackers
/// finish goes to `each`, in the order they finish, with the facts and the clock sample of
/// every frame gathered on the way. The capture is read by a thread of its own, as in
/// [`run`], so that reading and writing the legs overlap.
pub fn extract(
    source: &dyn FrameSource,
    capture: CaptureId,
    plan: &Plan,
    each: &mut dyn FnMut(VantageId, ConnKey, PackedLeg),
) -> Extracted {
    std::thread::scope(|scope| {
        let (tx, rx) = sync_channel::<Batch>(BATCHES_IN_CHANNEL);
        // Nothing goes back: the legs are written and freed here.
        let (_, back_rx) = channel::<Vec<PackedLeg>>();
        let (topology, ctx, timeouts) = (plan.topology, plan.ctx, plan.timeouts);
        std::thread::Builder::new()
            .name(format!("extract-{capture}"))
            .spawn_scoped(scope, move || {
                let pipes = Pipes { tx, back: back_rx };
                let gathered = Some(Gather::new(true));
                produce(source, capture, topology, ctx, timeouts, gathered, pipes)
            })
            .expect("a thread to read the capture");
        let mut end = None;
        for batch in rx {
            for (vantage, event) in batch.events {
                if let LegEvent::Finished(key, leg, _) = event {
                    each(vantage, key, leg);
                }
            }
            if batch.end.is_some() {
                end = batch.end;
            }
        }
        let end = end.unwrap_or_else(|| CaptureEnd {
            stats: Vec::new(),
            health_checks: Vec::new(),
            read: Err(format!("capture #{capture}: its reader stopped")),
            gathered: None,
        });
        let (facts, samplers, disordered) = match end.gathered {
            Some(g) => g.into_parts(),
            None => (Vec::new(), Vec::new(), false),
        };
        let mut health_checks = end.health_checks;
        health_checks.sort_by_key(|h: &HealthChecks| (h.key, h.vantage));
        Extracted {
            stats: end.stats,
            health_checks,
            read: end.read,
            facts,
            samplers,
            disordered,
        }
    })
}

/// Why a capture's connections could be joined only at its end, if they could: its frames
/// are out of time order, or its clock was not matched against the others.
pub fn joined_at_end(disordered: bool, unmatched: bool) -> Option<&'static str> {
    if disordered {
        Some("frames not in time order")
    } else if unmatched {
        Some("clock not matched against the other captures")
    } else {
        None
    }
}

/// The warning for a capture whose frames are out of time order.
pub fn disordered_warning(file: &str) -> String {
    format!(
        "{file}: its frames are not in time order (one more than 1 s older than a frame before \
         it); its connections were joined once it had been read to its end"
    )
}

/// Moves a tracker's entry in the set of wake-up times ([`LegTracker::wake_at`]).
fn resweep(swept: &mut BTreeSet<(i64, u32)>, i: u32, before: Option<i64>, after: Option<i64>) {
    if before == after {
        return;
    }
    if let Some(t) = before {
        swept.remove(&(t, i));
    }
    if let Some(t) = after {
        swept.insert((t, i));
    }
}

#[cfg(test)]
mod tests {
    use super::TimeOrder;

    const S: i64 = 1_000_000_000;

    #[test]
    fn small_disorder_is_normal_and_a_jump_back_is_not() {
        let mut o = TimeOrder::default();
        // -i any interleaves interfaces a few milliseconds out of order.
        for t in [
            10 * S,
            10 * S + 5,
            10 * S - 3_000_000,
            11 * S,
            10 * S + 500_000_000,
        ] {
            o.push(t);
        }
        assert!(!o.disordered());
        // A second file appended after the first, starting earlier.
        o.push(2 * S);
        assert!(o.disordered());
    }
}
