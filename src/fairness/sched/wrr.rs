//! Weighted round robin, `ip_vs_wrr_schedule()` in ip_vs_wrr.c.
//!
//! The mark holds `cl` (last chosen destination or the head), `cw` (current weight), `mw`
//! (max weight minus `di - 1`) and `di` (gcd of the positive weights). Each call scans on
//! from `cl` for a destination with weight >= cw; at the end of the list cw drops by di and
//! wraps to mw when it reaches zero. Every `ipvsadm -a` calls `ip_vs_wrr_dest_changed()`,
//! which resets `cl` to the head and recomputes `di`/`mw` but keeps `cw` unless it is zero
//! or above the new `mw`; that is why a service built by successive adds starts with a pass
//! at a low `cw` that gives every server one connection.

use super::{Ctx, Model};

#[derive(Debug, Clone)]
pub struct Wrr {
    /// The state after the adds, restored by start state 0.
    fresh: Option<Box<Wrr>>,
    weights: Vec<u32>,
    /// Last chosen destination; None is the list head.
    cl: Option<usize>,
    cw: i64,
    mw: i64,
    di: i64,
}

fn gcd(a: i64, b: i64) -> i64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// (di, mw) for a list, as `ip_vs_wrr_gcd_weight()` and `ip_vs_wrr_max_weight()` compute them.
fn di_mw(weights: &[u32]) -> (i64, i64) {
    let g = weights.iter().filter(|&&w| w > 0).fold(0i64, |g, &w| {
        if g > 0 {
            gcd(i64::from(w), g)
        } else {
            i64::from(w)
        }
    });
    let di = if g == 0 { 1 } else { g };
    let max = weights.iter().copied().max().map_or(0, i64::from);
    (di, max - (di - 1))
}

impl Wrr {
    /// The state right after `ip_vs_wrr_init_svc()` on a service that already has all its
    /// destinations (e.g. `ipvsadm -E` switching an existing service to wrr).
    pub fn initialised_with(weights: &[u32]) -> Wrr {
        let (di, mw) = di_mw(weights);
        Wrr {
            fresh: None,
            weights: weights.to_vec(),
            cl: None,
            cw: mw,
            mw,
            di,
        }
    }

    /// The state after `ipvsadm -A ... -s wrr` followed by one `-a` per destination, added
    /// in reverse list order (each add goes to the head): init on an empty list, then
    /// `ip_vs_wrr_dest_changed()` after every add. This is what `ipvsadm -R` also does.
    pub fn built_by_adds(weights: &[u32]) -> Wrr {
        let mut m = Wrr::initialised_with(&[]);
        for k in (0..weights.len()).rev() {
            m.dest_changed(&weights[k..]);
        }
        m.fresh = Some(Box::new(m.clone()));
        m
    }

    /// Every `cw` value a pass can have: mw, mw - di, ..., down to 1 or more.
    fn pass_weights(&self) -> Vec<i64> {
        let mut out = Vec::new();
        let mut cw = self.mw;
        while cw > 0 {
            out.push(cw);
            cw -= self.di;
        }
        out
    }

    fn dest_changed(&mut self, weights: &[u32]) {
        self.weights = weights.to_vec();
        self.cl = None;
        let (di, mw) = di_mw(weights);
        self.di = di;
        self.mw = mw;
        if self.cw > self.mw || self.cw == 0 {
            self.cw = self.mw;
        } else if self.di > 1 {
            self.cw = (self.cw / self.di) * self.di + 1;
        }
    }

    fn weight(&self, i: usize) -> i64 {
        i64::from(self.weights[i])
    }
}

impl Model for Wrr {
    fn schedule(&mut self, _ctx: &Ctx) -> Option<usize> {
        let n = self.weights.len();
        let mut dest = self.cl;
        if self.mw == 0 {
            return None;
        }
        let last = dest;
        let mut stop: Option<usize> = None;
        let mut last_pass = false;
        let mut restarted = false;
        loop {
            let from = dest.map_or(0, |i| i + 1);
            for i in from..n {
                dest = Some(i);
                if self.weight(i) >= self.cw {
                    self.cl = Some(i);
                    return Some(i);
                }
                if stop == Some(i) {
                    self.cl = dest;
                    return None;
                }
            }
            // The walk ended on the list head.
            dest = None;
            self.cw -= self.di;
            if self.cw <= 0 {
                self.cw = self.mw;
                if last_pass || last.is_none() {
                    self.cl = None;
                    return None;
                }
                restarted = true;
            }
            last_pass = self.cw <= self.di;
            if last_pass && restarted && last.is_some() {
                stop = last;
            }
        }
    }

    /// State 0 is the service as built by the adds; then every (cl, cw) pair.
    fn start_states(&self) -> usize {
        1 + (self.weights.len() + 1) * self.pass_weights().len()
    }

    fn set_start_state(&mut self, k: usize) {
        if k == 0 {
            if let Some(f) = &self.fresh {
                let fresh = f.clone();
                *self = *fresh.clone();
                self.fresh = Some(fresh);
            }
            return;
        }
        let passes = self.pass_weights();
        if passes.is_empty() {
            return;
        }
        let k = k - 1;
        let cl = k / passes.len();
        self.cl = cl.checked_sub(1);
        self.cw = passes[(k % passes.len()).min(passes.len() - 1)];
    }

    fn describe_start_state(&self, k: usize, names: &[String]) -> String {
        if k == 0 {
            return "the service as built by successive adds".into();
        }
        let passes = self.pass_weights();
        let k = k - 1;
        let cl = (k / passes.len().max(1)).checked_sub(1);
        let cw = passes.get(k % passes.len().max(1)).copied().unwrap_or(0);
        let at = match cl {
            None => "the list head".to_string(),
            Some(i) => names.get(i).cloned().unwrap_or_else(|| "?".into()),
        };
        format!("the pointer on {at} with current weight {cw}")
    }

    /// Puts `cl` on the chosen destination and, if its weight is below the current `cw`,
    /// lowers `cw` to the highest pass value that destination could have been found at.
    fn resync(&mut self, chosen: usize) {
        if chosen >= self.weights.len() || self.weights[chosen] == 0 {
            return;
        }
        self.cl = Some(chosen);
        let w = self.weight(chosen);
        if w < self.cw {
            let steps = (self.cw - w + self.di - 1) / self.di;
            self.cw -= steps * self.di;
            if self.cw <= 0 {
                self.cw = self.mw;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fairness::sched::Load;

    fn run(model: &mut dyn Model, n: usize, count: usize) -> Vec<usize> {
        let loads = vec![Load::default(); n];
        let ctx = Ctx {
            now_ns: 0,
            client: "192.0.2.1:1000".parse().unwrap(),
            vip: "198.51.100.1:80".parse().unwrap(),
            loads: &loads,
        };
        (0..count).map(|_| model.schedule(&ctx).unwrap()).collect()
    }

    #[test]
    fn built_by_adds_gives_one_each_then_the_weighted_cycle() {
        // Adds A(3), B(2), C(1) give the list [C, B, A]. Worked through ip_vs_wrr.c:
        // after the adds cw = 1, so the first pass is C B A; then cw = 3: A; cw = 2: B A;
        // cw = 1: C B A; and so on. The lab's 6.1 director showed the same sequence.
        let (c, b, a) = (0, 1, 2);
        let got = run(&mut Wrr::built_by_adds(&[1, 2, 3]), 3, 15);
        assert_eq!(got, vec![c, b, a, a, b, a, c, b, a, a, b, a, c, b, a]);
    }

    #[test]
    fn gcd_interleaving_with_a_common_divisor() {
        // List [X(4), Y(2)], added Y then X. After the adds di = 2, mw = 3 and cw = 1:
        // X Y; then cw = 3: X; cw = 1: X Y; then repeats, two X for each Y.
        let got = run(&mut Wrr::built_by_adds(&[4, 2]), 2, 9);
        assert_eq!(got, vec![0, 1, 0, 0, 1, 0, 0, 1, 0]);
    }

    #[test]
    fn initialised_with_all_servers_starts_at_the_max_weight() {
        // cw = mw = 3 on the first call: only A qualifies.
        let got = run(&mut Wrr::initialised_with(&[1, 2, 3]), 3, 6);
        assert_eq!(got, vec![2, 1, 2, 0, 1, 2]);
    }

    #[test]
    fn weight_zero_destinations_get_nothing() {
        let got = run(&mut Wrr::built_by_adds(&[2, 0, 1]), 3, 6);
        assert!(!got.contains(&1));
        assert_eq!(got.iter().filter(|&&i| i == 0).count(), 4);
    }

    #[test]
    fn all_zero_weights_refuse() {
        let loads = vec![Load::default(); 2];
        let ctx = Ctx {
            now_ns: 0,
            client: "192.0.2.1:1000".parse().unwrap(),
            vip: "198.51.100.1:80".parse().unwrap(),
            loads: &loads,
        };
        assert_eq!(Wrr::built_by_adds(&[0, 0]).schedule(&ctx), None);
    }

    #[test]
    fn long_run_shares_follow_the_weights() {
        let got = run(&mut Wrr::built_by_adds(&[5, 3, 2]), 3, 1000);
        let count = |i| got.iter().filter(|&&g| g == i).count();
        // 1000 = 3 (first pass at cw = 1) + 99 cycles of 10 (5 + 3 + 2) + 7 (0 0 0 1 0 1 2).
        assert_eq!((count(0), count(1), count(2)), (500, 300, 200));
    }

    #[test]
    fn start_states_cover_every_pointer_and_pass_and_zero_restores_the_fresh_state() {
        let mut m = Wrr::built_by_adds(&[1, 2, 3]);
        // (head + 3 destinations) x cw in {3, 2, 1}, plus the fresh state.
        assert_eq!(m.start_states(), 1 + 4 * 3);
        let fresh = run(&mut m, 3, 5);
        m.set_start_state(0);
        assert_eq!(run(&mut m, 3, 5), fresh);
        // State 1 + 2 * 3 + 1: pointer on list[1] (B), cw = 2 -> next is A, then cw 1: C B A.
        m.set_start_state(1 + 2 * 3 + 1);
        assert_eq!(run(&mut m, 3, 4), vec![2, 0, 1, 2]);
    }
}
