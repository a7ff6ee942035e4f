//! Latency percentiles, gaps between successful writes, the tally of failures, and the
//! wall-clock times in the reports.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

/// Error samples kept for the report.
const MAX_ERROR_SAMPLES: usize = 5;

/// `t` in milliseconds since the Unix epoch.
pub(super) fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Latency {
    pub samples: u64,
    pub min: f64,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl Latency {
    /// From durations in microseconds (any order).
    pub fn from_micros(mut us: Vec<u64>) -> Latency {
        if us.is_empty() {
            return Latency::default();
        }
        us.sort_unstable();
        // Nearest rank: the smallest value with at least q of the samples at or below it.
        let pick = |q: f64| {
            let rank = ((q * us.len() as f64).ceil() as usize).clamp(1, us.len());
            us[rank - 1] as f64 / 1000.0
        };
        let sum: u128 = us.iter().map(|&v| v as u128).sum();
        Latency {
            samples: us.len() as u64,
            min: us[0] as f64 / 1000.0,
            mean: (sum as f64 / us.len() as f64) / 1000.0,
            p50: pick(0.50),
            p90: pick(0.90),
            p99: pick(0.99),
            p999: pick(0.999),
            max: us[us.len() - 1] as f64 / 1000.0,
        }
    }
}

/// A stretch of time with no successful write: from the last success before it to the first
/// after it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Gap {
    pub from_unix_ms: u64,
    pub to_unix_ms: u64,
    pub ms: f64,
}

/// Gaps longer than `over_us` between consecutive completion offsets (µs since `t0`).
pub fn find_gaps(mut done_us: Vec<u64>, over_us: u64, t0_unix_us: u64) -> Vec<Gap> {
    done_us.sort_unstable();
    done_us
        .windows(2)
        .filter(|w| w[1] - w[0] > over_us)
        .map(|w| Gap {
            from_unix_ms: (t0_unix_us + w[0]) / 1000,
            to_unix_ms: (t0_unix_us + w[1]) / 1000,
            ms: (w[1] - w[0]) as f64 / 1000.0,
        })
        .collect()
}

#[derive(Default)]
pub(super) struct Errors {
    pub(super) kinds: BTreeMap<String, u64>,
    pub(super) samples: Vec<String>,
}

impl Errors {
    pub(super) fn add(&mut self, kind: String, message: String) {
        *self.kinds.entry(kind).or_default() += 1;
        if self.samples.len() < MAX_ERROR_SAMPLES {
            self.samples.push(message);
        }
    }

    pub(super) fn merge(&mut self, other: Errors) {
        for (k, n) in other.kinds {
            *self.kinds.entry(k).or_default() += n;
        }
        for s in other.samples {
            if self.samples.len() < MAX_ERROR_SAMPLES {
                self.samples.push(s);
            }
        }
    }

    pub(super) fn total(&self) -> u64 {
        self.kinds.values().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let l = Latency::from_micros((1..=1000).rev().map(|v| v * 1000).collect());
        assert_eq!(l.samples, 1000);
        assert_eq!(l.min, 1.0);
        assert_eq!(l.p50, 500.0);
        assert_eq!(l.p90, 900.0);
        assert_eq!(l.p99, 990.0);
        assert_eq!(l.p999, 999.0);
        assert_eq!(l.max, 1000.0);
        assert_eq!(l.mean, 500.5);
        assert_eq!(Latency::from_micros(vec![]), Latency::default());
        let one = Latency::from_micros(vec![2500]);
        assert_eq!((one.p50, one.p999, one.max), (2.5, 2.5, 2.5));
    }

    #[test]
    fn gaps_are_found_between_sorted_completions() {
        let gaps = find_gaps(
            vec![5_000, 1_000, 2_000, 400_000, 401_000],
            100_000,
            1_000_000_000,
        );
        assert_eq!(
            gaps,
            vec![Gap {
                from_unix_ms: 1_000_005,
                to_unix_ms: 1_000_400,
                ms: 395.0
            }]
        );
        assert!(find_gaps(vec![], 1, 0).is_empty());
    }
}
