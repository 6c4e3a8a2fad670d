//! The schedulers that read the connection counters: lc, wlc, sed, nq (ip_vs_lc.c,
//! ip_vs_wlc.c, ip_vs_sed.c, ip_vs_nq.c) and the weight-only fo and ovf (ip_vs_fo.c,
//! ip_vs_ovf.c). All walk the list from the head; the comparisons are the kernel's, strict,
//! so the earliest destination in list order wins a tie.

use super::{Ctx, Load, Model};

fn avail(weights: &[u32]) -> impl Iterator<Item = (usize, u64)> + '_ {
    weights
        .iter()
        .enumerate()
        .filter(|(_, &w)| w > 0)
        .map(|(i, &w)| (i, u64::from(w)))
}

/// Least connections: the smallest `(active << 8) + inactive`, weights ignored except 0.
#[derive(Debug, Clone)]
pub struct Lc {
    weights: Vec<u32>,
}

impl Lc {
    pub fn new(weights: &[u32]) -> Lc {
        Lc {
            weights: weights.to_vec(),
        }
    }
}

impl Model for Lc {
    fn schedule(&mut self, ctx: &Ctx) -> Option<usize> {
        let mut least: Option<(usize, u64)> = None;
        for (i, _) in avail(&self.weights) {
            let doh = ctx.loads[i].overhead();
            if least.is_none_or(|(_, loh)| doh < loh) {
                least = Some((i, doh));
            }
        }
        least.map(|l| l.0)
    }
}

/// The shared walk of wlc and sed: the first available destination is the candidate, then
/// a later one replaces it when `loh * w_dest > doh * w_least`.
fn weighted_least(weights: &[u32], loads: &[Load], overhead: fn(Load) -> u64) -> Option<usize> {
    let mut it = avail(weights);
    let (mut least, mut lw) = it.next()?;
    let mut loh = overhead(loads[least]);
    for (i, w) in it {
        let doh = overhead(loads[i]);
        if u128::from(loh) * u128::from(w) > u128::from(doh) * u128::from(lw) {
            least = i;
            lw = w;
            loh = doh;
        }
    }
    Some(least)
}

/// Weighted least connections (the default scheduler).
#[derive(Debug, Clone)]
pub struct Wlc {
    weights: Vec<u32>,
}

impl Wlc {
    pub fn new(weights: &[u32]) -> Wlc {
        Wlc {
            weights: weights.to_vec(),
        }
    }
}

impl Model for Wlc {
    fn schedule(&mut self, ctx: &Ctx) -> Option<usize> {
        weighted_least(&self.weights, ctx.loads, Load::overhead)
    }
}

/// `ip_vs_sed_dest_overhead()` and `ip_vs_nq_dest_overhead()`: active connections + 1.
fn expected_delay(l: Load) -> u64 {
    u64::from(l.active) + 1
}

/// Shortest expected delay: least `(active + 1) / weight`.
#[derive(Debug, Clone)]
pub struct Sed {
    weights: Vec<u32>,
}

impl Sed {
    pub fn new(weights: &[u32]) -> Sed {
        Sed {
            weights: weights.to_vec(),
        }
    }
}

impl Model for Sed {
    fn schedule(&mut self, ctx: &Ctx) -> Option<usize> {
        weighted_least(&self.weights, ctx.loads, expected_delay)
    }
}

/// Never queue: the first destination with no active connection, otherwise sed.
#[derive(Debug, Clone)]
pub struct Nq {
    weights: Vec<u32>,
}

impl Nq {
    pub fn new(weights: &[u32]) -> Nq {
        Nq {
            weights: weights.to_vec(),
        }
    }
}

impl Model for Nq {
    fn schedule(&mut self, ctx: &Ctx) -> Option<usize> {
        let mut least: Option<(usize, u64, u64)> = None;
        for (i, w) in avail(&self.weights) {
            if ctx.loads[i].active == 0 {
                return Some(i);
            }
            let doh = expected_delay(ctx.loads[i]);
            let replace = match least {
                None => true,
                Some((_, lw, loh)) => {
                    u128::from(loh) * u128::from(w) > u128::from(doh) * u128::from(lw)
                }
            };
            if replace {
                least = Some((i, w, doh));
            }
        }
        least.map(|l| l.0)
    }
}

/// Weighted failover: the available destination with the highest weight.
#[derive(Debug, Clone)]
pub struct Fo {
    weights: Vec<u32>,
}

impl Fo {
    pub fn new(weights: &[u32]) -> Fo {
        Fo {
            weights: weights.to_vec(),
        }
    }
}

impl Model for Fo {
    fn schedule(&mut self, _ctx: &Ctx) -> Option<usize> {
        let mut best: Option<(usize, u64)> = None;
        for (i, w) in avail(&self.weights) {
            if best.is_none_or(|(_, hw)| w > hw) {
                best = Some((i, w));
            }
        }
        best.map(|b| b.0)
    }
}

/// Weighted overflow: the highest weight among destinations whose active connections do
/// not exceed their weight.
#[derive(Debug, Clone)]
pub struct Ovf {
    weights: Vec<u32>,
}

impl Ovf {
    pub fn new(weights: &[u32]) -> Ovf {
        Ovf {
            weights: weights.to_vec(),
        }
    }
}

impl Model for Ovf {
    fn schedule(&mut self, ctx: &Ctx) -> Option<usize> {
        let mut best: Option<(usize, u64)> = None;
        for (i, w) in avail(&self.weights) {
            if u64::from(ctx.loads[i].active) > w {
                continue;
            }
            if best.is_none_or(|(_, hw)| w > hw) {
                best = Some((i, w));
            }
        }
        best.map(|b| b.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pick(model: &mut dyn Model, loads: &[(u32, u32)]) -> Option<usize> {
        let loads: Vec<Load> = loads
            .iter()
            .map(|&(active, inactive)| Load { active, inactive })
            .collect();
        model.schedule(&Ctx {
            now_ns: 0,
            client: "192.0.2.1:1000".parse().unwrap(),
            vip: "198.51.100.1:80".parse().unwrap(),
            loads: &loads,
        })
    }

    #[test]
    fn lc_counts_one_active_as_256_inactive() {
        let mut m = Lc::new(&[1, 1]);
        // overheads 256 vs 255: the second wins.
        assert_eq!(pick(&mut m, &[(1, 0), (0, 255)]), Some(1));
        // 256 vs 256: tie, the first in list order wins.
        assert_eq!(pick(&mut m, &[(1, 0), (0, 256)]), Some(0));
        // 256 vs 257.
        assert_eq!(pick(&mut m, &[(1, 0), (0, 257)]), Some(0));
    }

    #[test]
    fn lc_ignores_weights_but_skips_zero() {
        let mut m = Lc::new(&[0, 100, 1]);
        assert_eq!(pick(&mut m, &[(0, 0), (2, 0), (1, 0)]), Some(2));
    }

    #[test]
    fn wlc_compares_overhead_over_weight_by_cross_multiplying() {
        let mut m = Wlc::new(&[1, 3]);
        // 256/1 vs 512/3 (= 170.7): the second.
        assert_eq!(pick(&mut m, &[(1, 0), (2, 0)]), Some(1));
        // 256/1 vs 768/3 (= 256): equal, the kernel keeps the first.
        assert_eq!(pick(&mut m, &[(1, 0), (3, 0)]), Some(0));
        // An idle list goes to the head.
        assert_eq!(pick(&mut m, &[(0, 0), (0, 0)]), Some(0));
    }

    #[test]
    fn wlc_never_picks_weight_zero_even_when_idle() {
        let mut m = Wlc::new(&[2, 0]);
        assert_eq!(pick(&mut m, &[(5, 5), (0, 0)]), Some(0));
    }

    #[test]
    fn sed_ignores_inactive_and_counts_active_plus_one() {
        let mut m = Sed::new(&[1, 2]);
        // (0+1)/1 = 1 vs (1+1)/2 = 1: tie keeps the first, inactive counts play no part.
        assert_eq!(pick(&mut m, &[(0, 50), (1, 0)]), Some(0));
        // (1+1)/1 = 2 vs (1+1)/2 = 1.
        assert_eq!(pick(&mut m, &[(1, 0), (1, 0)]), Some(1));
    }

    #[test]
    fn nq_takes_the_first_idle_server_even_if_a_weightier_one_is_busy() {
        let mut m = Nq::new(&[10, 1, 1]);
        assert_eq!(pick(&mut m, &[(3, 0), (1, 0), (0, 9)]), Some(2));
        // Nobody idle: sed on (active + 1) / weight -> 4/10 vs 2/1 vs 3/1.
        assert_eq!(pick(&mut m, &[(3, 0), (1, 0), (2, 0)]), Some(0));
    }

    #[test]
    fn fo_and_ovf_follow_weights() {
        assert_eq!(pick(&mut Fo::new(&[2, 5, 5]), &[(0, 0); 3]), Some(1));
        // ovf skips a destination whose active count exceeds its weight.
        assert_eq!(pick(&mut Ovf::new(&[2, 5]), &[(0, 0), (6, 0)]), Some(0));
        assert_eq!(pick(&mut Ovf::new(&[2, 5]), &[(0, 0), (5, 0)]), Some(1));
    }
}
