//! How the director placed each new connection of a service (reused entry, persistence
//! template, scheduler), handed down to the `drain` check as plain data: the same walk the
//! replay makes ([`super::arrivals::Arrivals`]), so that the check and the replay agree.

use super::arrivals::{Arrivals, Kind};
use super::plan::CreationOrder;
use super::ReplayInput;
use crate::checks::drain::{Earlier, How, Placement};
use crate::fairness::table::ConnTable;

/// Every new connection of the service, in the order the director created their entries.
pub fn placements(inp: &ReplayInput) -> Vec<Placement> {
    let order = CreationOrder::new(inp);
    let conns = inp.conns;
    let server = |i: usize| conns.rs(i).map(|k| conns.servers()[k].addr);
    let earlier = |j: usize| Earlier {
        client: conns.client(j),
        created_ns: conns.created_ns(j, inp.proto),
        frame: first_frame(conns, j),
    };
    Arrivals::new(inp, &order)
        .map(|(d, life)| Placement {
            client: conns.client(d.conn),
            created_ns: life.created_ns,
            server: server(d.conn),
            how: match d.kind {
                Kind::Scheduled => How::Scheduled,
                Kind::BeforeCapture => How::BeforeCapture,
                Kind::Persisted { since_ns, by, .. } => How::Persisted {
                    since_ns,
                    by: earlier(by),
                },
                Kind::Reused {
                    state, earlier: j, ..
                } => How::Reused {
                    state: state.ipvs_name(),
                    earlier: earlier(j),
                },
            },
            frame: first_frame(conns, d.conn),
        })
        .collect()
}

fn first_frame(conns: &ConnTable, i: usize) -> Option<crate::topology::FrameRef> {
    conns.get(i).first_frame
}
