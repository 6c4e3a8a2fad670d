//! Round robin, `ip_vs_rr_schedule()` in ip_vs_rr.c.
//!
//! `sched_data` points at the last chosen destination (initially the list head); each new
//! connection takes the first destination after it, wrapping past the head, that is not
//! overloaded and has a weight above zero.

use super::{Ctx, Model};

#[derive(Debug, Clone)]
pub struct Rr {
    available: Vec<bool>,
    /// Index of the last chosen destination; None is the list head.
    last: Option<usize>,
}

impl Rr {
    /// A service whose pointer is at the list head (`ip_vs_rr_init_svc`).
    pub fn new(weights: &[u32]) -> Rr {
        Rr {
            available: weights.iter().map(|&w| w > 0).collect(),
            last: None,
        }
    }
}

impl Model for Rr {
    fn schedule(&mut self, _ctx: &Ctx) -> Option<usize> {
        let n = self.available.len();
        let start = self.last.map_or(0, |i| i + 1);
        let pick = (0..n)
            .map(|k| (start + k) % n)
            .find(|&i| self.available[i])?;
        self.last = Some(pick);
        Some(pick)
    }

    fn resync(&mut self, chosen: usize) {
        if chosen < self.available.len() {
            self.last = Some(chosen);
        }
    }

    /// The pointer at the head (fresh), or just after any destination.
    fn start_states(&self) -> usize {
        self.available.len() + 1
    }

    fn set_start_state(&mut self, k: usize) {
        self.last = k.checked_sub(1).filter(|&i| i < self.available.len());
    }

    fn describe_start_state(&self, k: usize, names: &[String]) -> String {
        match k.checked_sub(1) {
            None => "the freshly built service (pointer at the list head)".into(),
            Some(i) => format!(
                "the pointer on {} (the last connection before the capture went there)",
                names.get(i).map_or("?", |s| s.as_str())
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fairness::sched::Load;

    fn run(model: &mut dyn Model, n: usize, count: usize) -> Vec<Option<usize>> {
        let loads = vec![Load::default(); n];
        let ctx = Ctx {
            now_ns: 0,
            client: "192.0.2.1:1000".parse().unwrap(),
            vip: "198.51.100.1:80".parse().unwrap(),
            loads: &loads,
        };
        (0..count).map(|_| model.schedule(&ctx)).collect()
    }

    #[test]
    fn starts_after_the_head_and_cycles_in_list_order() {
        // `-a A; -a B` gives the list [B, A]; the first connection goes to B.
        let got = run(&mut Rr::new(&[1, 1]), 2, 5);
        assert_eq!(got, vec![Some(0), Some(1), Some(0), Some(1), Some(0)]);
    }

    #[test]
    fn ignores_weights_except_zero() {
        let got = run(&mut Rr::new(&[5, 0, 1]), 3, 4);
        assert_eq!(got, vec![Some(0), Some(2), Some(0), Some(2)]);
    }

    #[test]
    fn no_available_destination_refuses() {
        assert_eq!(run(&mut Rr::new(&[0, 0]), 2, 1), vec![None]);
    }

    #[test]
    fn resync_moves_the_pointer() {
        let mut m = Rr::new(&[1, 1, 1]);
        m.resync(1);
        assert_eq!(run(&mut m, 3, 2), vec![Some(2), Some(0)]);
    }
}
