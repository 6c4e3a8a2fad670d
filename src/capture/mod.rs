//! Capture files -> timestamped frames. (Being written.)
pub mod frame;
