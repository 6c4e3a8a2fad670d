//! Models of the kernel's schedulers, one struct each, ported from net/netfilter/ipvs/ip_vs_*.c.
//!
//! Every model works on the service's destination list in the kernel's order (index 0 is
//! the head's next, i.e. the most recently added server) and answers the question the kernel
//! asks for every new connection: which destination, or none. Counters for the
//! least-connection family come from the caller (rebuilt from the captures, see `entry`),
//! so the models hold only the scheduler's own state (the rr/wrr pointers, the hash tables).
//! Overload thresholds (`-x`/`-y`) are not modelled: a rules file does not carry them and the
//! captures cannot show when the kernel set IP_VS_DEST_F_OVERLOAD.

mod hash;
mod lblc;
mod least;
mod maglev;
mod rr;
mod wrr;

pub use hash::{dh_bucket, hash_32, sh_bucket, Dh, Sh};
pub use lblc::{Lblc, Lblcr};
pub use least::{Fo, Lc, Nq, Ovf, Sed, Wlc};
pub use maglev::{hsiphash, Mh, MH_TAB_SIZE};
pub use rr::Rr;
pub use wrr::Wrr;

use super::input::Scheduler;
use std::net::SocketAddr;

/// A destination's connection counters at the moment of a decision.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Load {
    pub active: u32,
    pub inactive: u32,
}

impl Load {
    /// `ip_vs_dest_conn_overhead()` in include/net/ip_vs.h.
    pub fn overhead(self) -> u64 {
        (u64::from(self.active) << 8) + u64::from(self.inactive)
    }
}

/// What the kernel knows when it schedules a new connection.
#[derive(Debug, Clone, Copy)]
pub struct Ctx<'a> {
    pub now_ns: i64,
    pub client: SocketAddr,
    pub vip: SocketAddr,
    /// Counters per destination, in list order.
    pub loads: &'a [Load],
}

/// Lets the replay copy a model to try alternatives (`Box<dyn Model>` is not `Clone`).
pub trait ModelClone {
    fn box_clone(&self) -> Box<dyn Model>;
}

impl<T: Model + Clone + 'static> ModelClone for T {
    fn box_clone(&self) -> Box<dyn Model> {
        Box::new(self.clone())
    }
}

pub trait Model: ModelClone {
    /// The destination the kernel would pick (index in list order), or None when it would
    /// refuse the connection ("no destination available").
    fn schedule(&mut self, ctx: &Ctx) -> Option<usize>;

    /// Align the model's own state with what the director actually did, so that one
    /// disagreement (or an unknown starting point) does not turn every later decision into a
    /// mismatch. Stateless models ignore it.
    fn resync(&mut self, _chosen: usize) {}

    /// How many starting points the model's own memory can have. A capture that begins
    /// after the service has already scheduled connections starts the rr/wrr pointer
    /// somewhere unknown; the replay tries each. State 0 is the freshly built service.
    fn start_states(&self) -> usize {
        1
    }

    /// Puts the model in starting state `k` (< `start_states()`).
    fn set_start_state(&mut self, _k: usize) {}

    /// Says in words what starting state `k` is.
    fn describe_start_state(&self, _k: usize, _names: &[String]) -> String {
        "the freshly built service".into()
    }
}

/// Builds a model for destinations (address, weight) in list order. `hash_port` and
/// `fallback` are the service flags sh and mh share (`-b sh-port`/`mh-port`,
/// `sh-fallback`/`mh-fallback`).
pub fn build(
    scheduler: Scheduler,
    dests: &[(SocketAddr, u32)],
    hash_port: bool,
    fallback: bool,
) -> Result<Box<dyn Model>, String> {
    let weights: Vec<u32> = dests.iter().map(|d| d.1).collect();
    let weights = &weights[..];
    Ok(match scheduler {
        Scheduler::Rr => Box::new(Rr::new(weights)),
        Scheduler::Wrr => Box::new(Wrr::built_by_adds(weights)),
        Scheduler::Lc => Box::new(Lc::new(weights)),
        Scheduler::Wlc => Box::new(Wlc::new(weights)),
        Scheduler::Sed => Box::new(Sed::new(weights)),
        Scheduler::Nq => Box::new(Nq::new(weights)),
        Scheduler::Fo => Box::new(Fo::new(weights)),
        Scheduler::Ovf => Box::new(Ovf::new(weights)),
        Scheduler::Sh => Box::new(Sh::new(weights, hash_port, fallback)),
        Scheduler::Dh => Box::new(Dh::new(weights)),
        Scheduler::Mh => {
            let d: Vec<(std::net::IpAddr, u16, u32)> =
                dests.iter().map(|(a, w)| (a.ip(), a.port(), *w)).collect();
            Box::new(Mh::new(&d, hash_port, fallback))
        }
        Scheduler::Lblc => Box::new(Lblc::new(weights)),
        Scheduler::Lblcr => Box::new(Lblcr::new(weights)),
        Scheduler::Twos => {
            return Err(
                "twos picks two servers with the kernel's random numbers; only the \
                        statistics apply"
                    .into(),
            )
        }
    })
}
