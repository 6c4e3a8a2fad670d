//! Roles, VIPs, services, and the expected configuration (ipvsadm output).
pub mod rules;
