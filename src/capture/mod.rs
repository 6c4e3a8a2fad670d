//! Capture files -> timestamped frames. (Being written.)
