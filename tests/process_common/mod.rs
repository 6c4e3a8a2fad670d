//! Running lvscheck (or a shell line around it) as a child process that cannot hang a test:
//! both output pipes drained on their own threads (a report larger than a pipe would block the
//! child), standard input fed on another, and the child killed after a time limit.
#![allow(dead_code)] // each test crate uses a part

use std::io::{Read, Write};
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
}

/// Runs `command` with `stdin` as its standard input (none: /dev/null), killed after `limit`.
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
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            killed = true;
            break child.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    Ran {
        status,
        stdout: out_t.join().unwrap(),
        stderr: err_t.join().unwrap(),
        took: start.elapsed(),
        killed,
    }
}
