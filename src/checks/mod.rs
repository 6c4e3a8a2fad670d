//! One module per check, each turning the connection records and the topology into a
//! [`CheckResult`] with evidence. A check's id names its module: `reply.source` lives in
//! `checks/reply.rs`.

pub mod finding;

pub use finding::{CheckResult, Finding, PacketRef, Status};
