//! What the kernel does with each new connection before (or instead of) calling the
//! scheduler: reuse a live entry, follow a persistence template, or schedule with the
//! connection counters of that moment. None of it depends on the list order, so it is
//! worked out once per service.

use super::ReplayInput;
use crate::fairness::entry::{EntryLife, TcpState};
use crate::fairness::input::Proto;
use crate::fairness::sched::Load;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

const NS: i64 = 1_000_000_000;

#[derive(Debug, Clone)]
pub(super) enum Kind {
    /// Started before the capture: no decision seen.
    BeforeCapture,
    /// Same client address and port as a live entry: the kernel reused that entry.
    Reused {
        server: Option<usize>,
        state: TcpState,
    },
    /// A persistence template chose the server.
    Persisted {
        server: Option<usize>,
        since_ns: i64,
    },
    /// The scheduler ran, with these counters per configured server.
    Scheduled { loads: Vec<Load> },
}

pub(super) struct Decision {
    pub conn: usize,
    pub time_ns: i64,
    pub kind: Kind,
}

pub(super) struct Template {
    server: Option<usize>,
    created_ns: i64,
    timeout_ns: i64,
    expires_ns: i64,
    /// Latest expiry among the connections it controls.
    controlled_until: i64,
}

impl Template {
    /// Whether the template still exists at `t`, following `ip_vs_conn_expire`: a template
    /// that still controls connections when its timer fires is re-armed for 60 s, and that
    /// 60 s becomes its timeout for later uses too.
    pub(super) fn alive_at(&mut self, t: i64) -> bool {
        while self.expires_ns <= t {
            if self.controlled_until > self.expires_ns {
                self.timeout_ns = 60 * NS;
                self.expires_ns += 60 * NS;
            } else {
                return false;
            }
        }
        true
    }
}

pub(super) fn masked(addr: IpAddr, prefix: Option<u8>) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let p = u32::from(prefix.unwrap_or(32).min(32));
            let mask = if p == 0 { 0 } else { u32::MAX << (32 - p) };
            IpAddr::V4((u32::from(a) & mask).into())
        }
        IpAddr::V6(a) => {
            let p = u32::from(prefix.unwrap_or(128).min(128));
            let mask = if p == 0 { 0 } else { u128::MAX << (128 - p) };
            IpAddr::V6((u128::from(a) & mask).into())
        }
    }
}

/// Works out, once, what kind of decision each new connection was.
pub(super) fn decisions(inp: &ReplayInput) -> Vec<Decision> {
    let n_cfg = inp.cfg.servers.len();
    let lives: Vec<EntryLife> = inp
        .conns
        .iter()
        .map(|c| EntryLife::from_conn(c, inp.proto, inp.timeouts))
        .collect();
    let mut order: Vec<usize> = (0..inp.conns.len()).collect();
    order.sort_by_key(|&i| (lives[i].created_ns, i));

    let mut changes: Vec<(i64, usize, i32, i32)> = Vec::new();
    for (i, life) in lives.iter().enumerate() {
        if let Some(s) = inp.server_of[i].filter(|&s| s < n_cfg) {
            changes.extend(
                life.counter_changes()
                    .into_iter()
                    .map(|(t, a, b)| (t, s, a, b)),
            );
        }
    }
    changes.sort_by_key(|c| c.0);

    let mut counters = vec![(0i64, 0i64); n_cfg];
    let mut next_change = 0;
    let mut by_client: HashMap<SocketAddr, usize> = HashMap::new();
    let mut controlled = vec![false; inp.conns.len()];
    let mut templates: HashMap<IpAddr, Template> = HashMap::new();
    let mut out = Vec::with_capacity(order.len());

    for &i in &order {
        let t = lives[i].created_ns;
        while next_change < changes.len() && changes[next_change].0 < t {
            let (_, s, a, b) = changes[next_change];
            counters[s].0 += i64::from(a);
            counters[s].1 += i64::from(b);
            next_change += 1;
        }
        let client = inp.conns[i].client;
        let previous = by_client.insert(client, i);
        if !lives[i].scheduled {
            out.push(Decision {
                conn: i,
                time_ns: t,
                kind: Kind::BeforeCapture,
            });
            continue;
        }
        if let Some(j) = previous {
            if let Some(state) = lives[j].state_at(t) {
                let reuse = inp.proto == Proto::Udp || state != TcpState::TimeWait || controlled[j];
                if reuse {
                    controlled[i] = controlled[j];
                    out.push(Decision {
                        conn: i,
                        time_ns: t,
                        kind: Kind::Reused {
                            server: inp.server_of[j],
                            state,
                        },
                    });
                    continue;
                }
            }
        }
        if let Some(p) = inp.cfg.persistence_s {
            let key = masked(client.ip(), inp.cfg.netmask_prefix);
            if let Some(tpl) = templates.get_mut(&key) {
                if tpl.alive_at(t) {
                    // A template whose server we never saw learns it from the first
                    // connection that shows one.
                    if tpl.server.is_none() {
                        tpl.server = inp.server_of[i];
                    }
                    let kind = Kind::Persisted {
                        server: tpl.server,
                        since_ns: tpl.created_ns,
                    };
                    tpl.expires_ns = t + tpl.timeout_ns;
                    tpl.controlled_until = tpl.controlled_until.max(lives[i].expires_ns);
                    controlled[i] = true;
                    out.push(Decision {
                        conn: i,
                        time_ns: t,
                        kind,
                    });
                    continue;
                }
            }
            let timeout_ns = i64::from(p) * NS;
            templates.insert(
                key,
                Template {
                    server: inp.server_of[i],
                    created_ns: t,
                    timeout_ns,
                    expires_ns: t + timeout_ns,
                    controlled_until: lives[i].expires_ns,
                },
            );
            controlled[i] = true;
        }
        let loads = counters
            .iter()
            .map(|&(a, b)| Load {
                active: a.max(0) as u32,
                inactive: b.max(0) as u32,
            })
            .collect();
        out.push(Decision {
            conn: i,
            time_ns: t,
            kind: Kind::Scheduled { loads },
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_client_addresses() {
        assert_eq!(
            masked("10.1.2.3".parse().unwrap(), Some(24)),
            "10.1.2.0".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            masked("10.1.2.3".parse().unwrap(), None),
            "10.1.2.3".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            masked("2001:db8::1".parse().unwrap(), Some(64)),
            "2001:db8::".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn template_is_pushed_back_while_it_controls_connections() {
        let mut t = Template {
            server: Some(0),
            created_ns: 0,
            timeout_ns: 10 * NS,
            expires_ns: 10 * NS,
            controlled_until: 75 * NS,
        };
        // Fires at 10 s with a live connection: 70 s, then 130 s (the connection is gone at 75).
        assert!(t.alive_at(100 * NS));
        assert_eq!(t.expires_ns, 130 * NS);
        assert_eq!(t.timeout_ns, 60 * NS);
        assert!(!t.alive_at(130 * NS));
    }
}
