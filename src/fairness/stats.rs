//! Fairness numbers: Jain's index, max/min ratio, and a chi-square goodness-of-fit test of
//! the observed connection counts against the shares the configuration promises.

use serde::Serialize;
use statrs::distribution::{ChiSquared, ContinuousCDF};

/// Below this expected count in any cell the chi-square approximation is not trusted (the
/// usual rule of thumb, Cochran 1954).
pub const MIN_EXPECTED: f64 = 5.0;

/// Below this p-value the observed shares are taken to differ from what the weights promise
/// (the `scheduler` check of `verify` and the verdict of `fairness`).
pub const P_VALUE_ALARM: f64 = 0.01;

/// Jain's fairness index (Σx)² / (n·Σx²): 1 when all equal, 1/n when one takes everything.
pub fn jain(xs: &[f64]) -> Option<f64> {
    let n = xs.len() as f64;
    let sum: f64 = xs.iter().sum();
    let sq: f64 = xs.iter().map(|x| x * x).sum();
    (n > 0.0 && sq > 0.0).then(|| sum * sum / (n * sq))
}

/// Largest over smallest; None when the smallest is zero (a server got nothing).
pub fn max_min_ratio(xs: &[f64]) -> Option<f64> {
    let max = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let min = xs.iter().copied().fold(f64::INFINITY, f64::min);
    (!xs.is_empty() && min > 0.0).then(|| max / min)
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChiSquare {
    pub statistic: f64,
    pub df: u32,
    /// P(X >= statistic) under the hypothesis that connections follow the promised shares.
    pub p_value: f64,
    pub min_expected: f64,
    /// Some expected count is below 5: the p-value is shown but does not mean much.
    pub too_few: bool,
}

/// Pearson's test of `observed` counts against `shares` (which need not sum to 1; they are
/// normalised). Cells with a zero share must have zero observations, otherwise the promise
/// is simply broken and the statistic is infinite: that case returns p = 0.
pub fn chi_square(observed: &[u64], shares: &[f64]) -> Option<ChiSquare> {
    if observed.len() != shares.len() {
        return None;
    }
    let total: u64 = observed.iter().sum();
    let share_sum: f64 = shares.iter().sum();
    let cells: Vec<(f64, f64)> = observed
        .iter()
        .zip(shares)
        .map(|(&o, &s)| (o as f64, total as f64 * s / share_sum))
        .collect();
    let live: Vec<&(f64, f64)> = cells.iter().filter(|(_, e)| *e > 0.0).collect();
    if total == 0 || share_sum <= 0.0 || live.len() < 2 {
        return None;
    }
    let df = (live.len() - 1) as u32;
    let min_expected = live.iter().map(|(_, e)| *e).fold(f64::INFINITY, f64::min);
    let broken = cells.iter().any(|(o, e)| *e == 0.0 && *o > 0.0);
    let statistic = if broken {
        f64::INFINITY
    } else {
        live.iter().map(|(o, e)| (o - e) * (o - e) / e).sum()
    };
    let p_value = if broken {
        0.0
    } else {
        ChiSquared::new(f64::from(df)).ok()?.sf(statistic)
    };
    Some(ChiSquare {
        statistic,
        df,
        p_value,
        min_expected,
        too_few: min_expected < MIN_EXPECTED,
    })
}

/// Percentiles by nearest rank on a sorted copy.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jain_bounds() {
        assert_eq!(jain(&[2.0, 2.0, 2.0]), Some(1.0));
        assert_eq!(jain(&[3.0, 0.0, 0.0]), Some(1.0 / 3.0));
        // (1+3)^2 / (2 * (1+9)) = 0.8
        assert!((jain(&[1.0, 3.0]).unwrap() - 0.8).abs() < 1e-12);
        assert_eq!(jain(&[]), None);
    }

    #[test]
    fn max_min() {
        assert_eq!(max_min_ratio(&[1.0, 4.0, 2.0]), Some(4.0));
        assert_eq!(max_min_ratio(&[0.0, 4.0]), None);
    }

    // Critical values from any chi-square table: P(X >= x) = 0.05.
    #[test]
    fn p_values_match_table_critical_values() {
        for (df, x) in [
            (1u32, 3.841_458_820_694_124),
            (2, 5.991_464_547_107_979),
            (4, 9.487_729_036_781_154),
        ] {
            let p = ChiSquared::new(f64::from(df)).unwrap().sf(x);
            assert!((p - 0.05).abs() < 1e-9, "df {df}: {p}");
        }
    }

    #[test]
    fn statistic_by_hand() {
        // Observed 30, 70 against 50/50: (20² + 20²) / 50 = 16, df 1.
        let c = chi_square(&[30, 70], &[1.0, 1.0]).unwrap();
        assert!((c.statistic - 16.0).abs() < 1e-12);
        assert_eq!(c.df, 1);
        // P(X >= 16 | df 1) = erfc(sqrt(8)) = 6.334248e-5.
        assert!((c.p_value - 6.334_248_366_623_996e-5).abs() < 1e-10);
        assert!(!c.too_few);
    }

    #[test]
    fn weighted_expectation_and_too_few() {
        // 3:1 weights, 8 connections: expected 6 and 2, the 2 is below 5.
        let c = chi_square(&[6, 2], &[3.0, 1.0]).unwrap();
        assert_eq!(c.statistic, 0.0);
        assert_eq!(c.p_value, 1.0);
        assert!(c.too_few);
        assert_eq!(c.min_expected, 2.0);
    }

    #[test]
    fn traffic_to_a_zero_share_server_breaks_the_promise() {
        let c = chi_square(&[10, 10, 1], &[1.0, 1.0, 0.0]).unwrap();
        assert_eq!(c.p_value, 0.0);
        assert!(c.statistic.is_infinite());
    }

    #[test]
    fn nearest_rank_percentiles() {
        let v = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0];
        assert_eq!(percentile(&v, 50.0), Some(5.0));
        assert_eq!(percentile(&v, 90.0), Some(9.0));
        assert_eq!(percentile(&v, 99.0), Some(10.0));
        assert_eq!(percentile(&[], 50.0), None);
    }
}
