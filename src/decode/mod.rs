//! Frame -> layered packet view. (Being written.)
pub mod packet;
