//! Small, pure statistics for the reports.

/// Median, minimum and maximum of a sample (None when empty).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub n: usize,
}

impl Spread {
    pub fn of(values: &[f64]) -> Option<Spread> {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Some(Spread {
            median,
            min: v[0],
            max: v[n - 1],
            n,
        })
    }

    /// Half the range relative to the median, in percent: the noise between runs.
    pub fn noise_pct(&self) -> f64 {
        if self.median == 0.0 {
            0.0
        } else {
            (self.max - self.min) / 2.0 / self.median * 100.0
        }
    }
}

/// Throttling efficiency of a run: the time it would take if the work scaled perfectly with
/// the CPU given (full-node time ÷ quota fraction), divided by the time it took. 1.0 = no cost
/// beyond the CPU taken away; 0.7 = 30 % slower than the CPU cut explains.
pub fn efficiency(full_node_secs: f64, quota_fraction: f64, measured_secs: f64) -> f64 {
    if quota_fraction <= 0.0 || measured_secs <= 0.0 {
        return f64::NAN;
    }
    (full_node_secs / quota_fraction) / measured_secs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_of_odd_and_even_samples() {
        assert_eq!(
            Spread::of(&[3.0, 1.0, 2.0]),
            Some(Spread {
                median: 2.0,
                min: 1.0,
                max: 3.0,
                n: 3
            })
        );
        assert_eq!(
            Spread::of(&[4.0, 1.0, 2.0, 3.0]).map(|s| s.median),
            Some(2.5)
        );
        assert_eq!(Spread::of(&[]), None);
        assert_eq!(Spread::of(&[f64::NAN, 1.0]).map(|s| s.n), Some(1));
        let s = Spread::of(&[9.0, 10.0, 11.0]).expect("non-empty");
        assert!((s.noise_pct() - 10.0).abs() < 1e-9);
    }

    #[test]
    fn efficiency_is_ideal_time_over_measured_time() {
        // Full node 100 s; at half the CPU the ideal is 200 s.
        assert!((efficiency(100.0, 0.5, 200.0) - 1.0).abs() < 1e-12);
        assert!((efficiency(100.0, 0.5, 250.0) - 0.8).abs() < 1e-12);
        assert!(efficiency(100.0, 0.0, 1.0).is_nan());
    }
}
