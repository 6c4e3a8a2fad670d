//! The command line: parse arguments, pick a mode, call the library.

pub mod fairness;

/// Runs the program and returns its exit status.
pub fn run() -> i32 {
    0
}
