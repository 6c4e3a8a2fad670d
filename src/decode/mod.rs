//! Frame -> layered packet view. (Being written.)
