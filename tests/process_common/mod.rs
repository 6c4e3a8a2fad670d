//! Running lvscheck (or a shell line around it) as a child process that cannot hang a test:
//! both output pipes drained on their own threads (a report larger than a pipe would block the
//! child), standard input fed on another, and the child killed after a time limit. The child
//! is reaped with `wait4`, which also gives its peak resident memory: what a memory bound in a
//! test should hold, not the address space (glibc reserves 64 MB of it for each thread's malloc
//! arena, so `ulimit -v` fails a small run at random once a few threads allocate).
#![allow(dead_code)] // each test crate uses a part

use std::io::{Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// What a child did.
pub struct Ran {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub took: Duration,
    /// Killed at the time limit.
    pub killed: bool,
    /// The child's peak resident set (KiB), from the kernel's accounting when it was reaped.
    pub peak_rss_kib: u64,
}

/// Runs `command` with `stdin` as its standard input (none: /dev/null), killed after `limit`.
// The child is reaped by `reap` (wait4), which clippy cannot see.
#[allow(clippy::zombie_processes)]
pub fn run_bounded(mut command: Command, stdin: Option<Vec<u8>>, limit: Duration) -> Ran {
    let start = Instant::now();
    let mut child = command
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the child starts");
    if let (Some(bytes), Some(mut pipe)) = (stdin, child.stdin.take()) {
        // The child may exit before reading it all: a broken pipe is its business.
        std::thread::spawn(move || {
            let _ = pipe.write_all(&bytes);
        });
    }
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = r.read_to_end(&mut v);
            v
        })
    };
    let out_t = drain(Box::new(child.stdout.take().unwrap()));
    let err_t = drain(Box::new(child.stderr.take().unwrap()));
    let mut killed = false;
    let (status, peak_rss_kib) = loop {
        if let Some(reaped) = reap(&child, false) {
            break reaped;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            killed = true;
            break reap(&child, true).expect("a blocking wait4 reaps the child");
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    Ran {
        status,
        stdout: out_t.join().unwrap(),
        stderr: err_t.join().unwrap(),
        took: start.elapsed(),
        killed,
        peak_rss_kib,
    }
}

/// Reaps `child` with `wait4` (blocking or not): its exit status and peak resident set in KiB,
/// or None while it runs. std's `Child` is not told; it is dropped without being waited on.
fn reap(child: &std::process::Child, block: bool) -> Option<(ExitStatus, u64)> {
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value, and wait4 writes only into the two locals.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let flags = if block { 0 } else { libc::WNOHANG };
    loop {
        // SAFETY: pid is our own unreaped child; the pointers are to live locals.
        let r = unsafe { libc::wait4(pid, &mut status, flags, &mut usage) };
        match r {
            0 => return None,
            r if r == pid => {
                // Linux gives ru_maxrss in KiB.
                return Some((ExitStatus::from_raw(status), usage.ru_maxrss.max(0) as u64));
            }
            _ if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted => {}
            _ => panic!("wait4({pid}): {}", std::io::Error::last_os_error()),
        }
    }
}
