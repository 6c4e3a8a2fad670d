//! lvscheck: verify LVS-TUN (IPVS tunnel mode) deployments from packet captures, offline.
//!
//! The modules follow the data's path, one way:
//! `capture` (files -> timestamped frames) -> `decode` (frame -> layered packet view) ->
//! `topology` (roles, VIPs, services) -> `flows` (connections across vantage points) ->
//! `checks` -> `fairness` -> `report`; `cli` sits on top and is the only part that knows
//! about the command line.

pub mod capture;
pub mod checks;
pub mod cli;
pub mod decode;
pub mod escape;
pub mod fairness;
pub mod flows;
pub mod full_state;
pub mod records;
pub mod report;
pub mod survey;
pub mod time;
pub mod topology;
pub mod varint;
pub mod verify;
pub mod words;
