//! `health.path` (`path.rs`): the director's health checks follow the path the clients'
//! connections take, or at least do not pass while that path is broken.

pub mod path;

pub use path::{Path, PATH};
