//! Progress on standard error while the captures are read: files, bytes, which pass, rate and
//! time left. Only when standard error is a terminal and the output is for a person (never
//! with `--json`); a run shorter than half a second shows nothing.
//!
//! Drawn with `indicatif`: it redraws one line in place at a bounded rate, estimates the rate
//! and the time left from the position, and draws nothing when its target is not a terminal;
//! the analysis only bumps counters ([`ReadProgress`]), read here ten times a second.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::capture::progress::{ProgressSnapshot, ReadProgress};
use crate::flows::FlowOptions;

/// How long a run goes before its progress shows.
const QUIET_FOR: Duration = Duration::from_millis(500);
const TICK: Duration = Duration::from_millis(100);

/// The progress line of a run; cleared when dropped (before the report is printed).
pub struct Progress {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// Counts the reading of `opts`'s analysis and shows it on standard error, when that is a
/// terminal and `machine` (JSON output) is false; None otherwise, and then nothing is
/// counted either.
pub fn attach(opts: &mut FlowOptions, machine: bool) -> Option<Progress> {
    if machine || !std::io::stderr().is_terminal() {
        return None;
    }
    let counters = Arc::new(ReadProgress::default());
    opts.progress = Some(counters.clone());
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = stop.clone();
    let thread = std::thread::Builder::new()
        .name("progress".into())
        .spawn(move || show(&counters, &stopped))
        .ok()?;
    Some(Progress {
        stop,
        thread: Some(thread),
    })
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Waits [`QUIET_FOR`], then draws the counters every [`TICK`] until told to stop.
fn show(counters: &ReadProgress, stop: &AtomicBool) {
    let mut waited = Duration::ZERO;
    while waited < QUIET_FOR {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        std::thread::sleep(TICK);
        waited += TICK;
    }
    // Hidden until the estimate is started (below), so it never draws a jump as a rate.
    let bar = ProgressBar::hidden();
    // One line however narrow the terminal: the bar takes what the words leave.
    if let Ok(style) = ProgressStyle::with_template(
        "{msg} [{wide_bar}] {bytes}/{total_bytes} {bytes_per_sec} {eta} left",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    // What was read while the line was not shown is not a rate: the estimate starts now.
    let now = counters.snapshot();
    bar.set_length(now.total.max(now.bytes));
    bar.set_position(now.bytes);
    bar.set_message(message(&now));
    bar.reset_eta();
    bar.set_draw_target(ProgressDrawTarget::stderr_with_hz(10));
    while !stop.load(Ordering::Relaxed) {
        let now = counters.snapshot();
        bar.set_length(now.total.max(now.bytes));
        bar.set_position(now.bytes);
        bar.set_message(message(&now));
        std::thread::sleep(TICK);
    }
    bar.finish_and_clear();
}

/// The words before the bar: which pass, and how many of the captures' reads are done.
pub fn message(now: &ProgressSnapshot) -> String {
    let pass = match now.pass {
        0 | 1 => "pass 1/2 topology",
        _ => "pass 2/2 connections",
    };
    format!("{pass}, {}/{} files", now.done, now.reads)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_follows_the_counters() {
        let p = ReadProgress::default();
        p.begin_read(1000);
        p.begin_read(500);
        p.set_pass(1);
        p.read_bytes(700);
        p.end_read();
        let now = p.snapshot();
        assert_eq!(
            now,
            ProgressSnapshot {
                bytes: 700,
                total: 1500,
                reads: 2,
                done: 1,
                pass: 1
            }
        );
        assert_eq!(message(&now), "pass 1/2 topology, 1/2 files");
        p.set_pass(2);
        // A capture read again counts its size again.
        p.begin_read(1000);
        let now = p.snapshot();
        assert_eq!((now.total, now.reads), (2500, 3));
        assert_eq!(message(&now), "pass 2/2 connections, 1/3 files");
    }

    #[test]
    fn nothing_is_counted_for_machine_output() {
        let mut opts = FlowOptions::default();
        assert!(attach(&mut opts, true).is_none());
        assert!(opts.progress.is_none());
    }
}
