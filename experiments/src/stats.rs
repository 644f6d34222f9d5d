//! Small, pure statistics for the reports: medians, a seeded PRNG (SplitMix64, written
//! here so that tables regenerate bit-for-bit whatever crate versions are in `Cargo.lock`) and
//! a percentile bootstrap of the median.

fn sorted_finite(values: &[f64]) -> Vec<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    v.sort_by(f64::total_cmp);
    v
}

/// Median of an already sorted, non-empty slice.
fn median_sorted(v: &[f64]) -> f64 {
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// The median of the finite values (None when there are none).
pub fn median(values: &[f64]) -> Option<f64> {
    let v = sorted_finite(values);
    (!v.is_empty()).then(|| median_sorted(&v))
}

/// Quantile `q` (0–1) of a sorted, non-empty slice, linear between order statistics (R's
/// type 7, numpy's default).
fn quantile_sorted(v: &[f64], q: f64) -> f64 {
    let h = (v.len() - 1) as f64 * q.clamp(0.0, 1.0);
    let (lo, hi) = (h.floor() as usize, h.ceil() as usize);
    v[lo] + (h - lo as f64) * (v[hi] - v[lo])
}

/// SplitMix64 (Steele, Lea, Flood 2014): tiny, fast, good enough for resampling and shuffling,
/// and fully determined by its seed.
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0), without modulo bias (Lemire's multiply-and-reject).
    pub fn below(&mut self, n: usize) -> usize {
        let n = n.max(1) as u64;
        let threshold = n.wrapping_neg() % n;
        loop {
            let m = u128::from(self.next_u64()) * u128::from(n);
            if (m as u64) >= threshold {
                return (m >> 64) as usize;
            }
        }
    }

    /// Fisher–Yates shuffle in place.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i + 1);
            items.swap(i, j);
        }
    }
}

/// Resamples per bootstrap interval. Fixed, like the seed, so a table regenerates identically.
pub const BOOTSTRAP_RESAMPLES: usize = 10_000;
/// The bootstrap's seed (any constant would do; this one is fixed forever).
pub const BOOTSTRAP_SEED: u64 = 0x6275_7273_742d_7363; // "burst-sc"

/// A median with its 95 % percentile-bootstrap interval.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Estimate {
    pub median: f64,
    pub lo: f64,
    pub hi: f64,
    pub n: usize,
}

impl Estimate {
    /// `median [lo–hi]` scaled by `scale` (100 for percentages), `digits` decimals.
    pub fn fmt(&self, scale: f64, digits: usize) -> String {
        if self.n <= 1 {
            return format!("{:.digits$}", self.median * scale);
        }
        format!(
            "{:.digits$} [{:.digits$}–{:.digits$}]",
            self.median * scale,
            self.lo * scale,
            self.hi * scale
        )
    }
}

/// The sample median and a 95 % percentile-bootstrap interval for it: `resamples` resamples
/// with replacement from a SplitMix64 seeded with `seed` (deterministic), the 2.5 % and 97.5 %
/// quantiles of the resampled medians. Non-finite values are dropped; None when nothing is
/// left. With one value the interval is that value. With few values (n ≈ 5) the interval is
/// close to the sample's range, and its coverage is below the nominal 95 %.
pub fn bootstrap_median(values: &[f64], resamples: usize, seed: u64) -> Option<Estimate> {
    let v = sorted_finite(values);
    if v.is_empty() {
        return None;
    }
    let n = v.len();
    let med = median_sorted(&v);
    if n == 1 {
        return Some(Estimate {
            median: med,
            lo: med,
            hi: med,
            n,
        });
    }
    let mut rng = SplitMix64::new(seed);
    let mut sample = vec![0.0; n];
    let mut medians = Vec::with_capacity(resamples.max(1));
    for _ in 0..resamples.max(1) {
        for s in sample.iter_mut() {
            *s = v[rng.below(n)];
        }
        sample.sort_by(f64::total_cmp);
        medians.push(median_sorted(&sample));
    }
    medians.sort_by(f64::total_cmp);
    Some(Estimate {
        median: med,
        lo: quantile_sorted(&medians, 0.025),
        hi: quantile_sorted(&medians, 0.975),
        n,
    })
}

/// `bootstrap_median` with the project's fixed resamples and seed.
pub fn median_ci(values: &[f64]) -> Option<Estimate> {
    bootstrap_median(values, BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED)
}

/// Throttling efficiency of a run: the time it would take if the work scaled perfectly with
/// the CPU given (baseline time ÷ the fraction of the node given), divided by the time it took.
/// 1.0 = no cost beyond the CPU taken away; 0.7 = the run took 1/0.7 × what the CPU cut explains.
pub fn efficiency(baseline_secs: f64, node_fraction: f64, measured_secs: f64) -> f64 {
    if node_fraction <= 0.0 || measured_secs <= 0.0 || baseline_secs <= 0.0 {
        return f64::NAN;
    }
    (baseline_secs / node_fraction) / measured_secs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_samples() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[5.0, f64::NAN, 1.0, 3.0]), Some(3.0));
        assert_eq!(median(&[f64::NAN]), None);
    }

    #[test]
    fn efficiency_is_ideal_time_over_measured_time() {
        // Baseline 100 s; at half the CPU the ideal is 200 s.
        assert!((efficiency(100.0, 0.5, 200.0) - 1.0).abs() < 1e-12);
        assert!((efficiency(100.0, 0.5, 250.0) - 0.8).abs() < 1e-12);
        assert!(efficiency(100.0, 0.0, 1.0).is_nan());
        assert!(efficiency(f64::NAN, 0.5, 1.0).is_nan());
    }

    #[test]
    fn splitmix_matches_the_reference_and_is_uniform_enough() {
        // Reference values of SplitMix64 seeded with 1234567 (from the C reference code).
        let mut r = SplitMix64::new(1_234_567);
        assert_eq!(r.next_u64(), 6_457_827_717_110_365_317);
        assert_eq!(r.next_u64(), 3_203_168_211_198_807_973);
        let mut r = SplitMix64::new(7);
        let mut counts = [0usize; 5];
        for _ in 0..50_000 {
            counts[r.below(5)] += 1;
        }
        for c in counts {
            assert!((9_000..11_000).contains(&c), "{counts:?}");
        }
    }

    #[test]
    fn shuffle_is_a_permutation_fixed_by_the_seed() {
        let base: Vec<u32> = (0..11).collect();
        let shuffled = |seed| {
            let mut v = base.clone();
            SplitMix64::new(seed).shuffle(&mut v);
            v
        };
        let a = shuffled(42);
        assert_eq!(a, shuffled(42), "same seed, same order");
        assert_ne!(a, shuffled(43), "another seed, another order");
        assert_ne!(a, base);
        let mut sorted = a.clone();
        sorted.sort();
        assert_eq!(sorted, base);
    }

    #[test]
    fn bootstrap_is_deterministic_and_brackets_the_median() {
        let xs = [0.91, 0.95, 0.97, 0.99, 1.02, 0.88, 0.96];
        let a = median_ci(&xs).expect("non-empty");
        assert_eq!(Some(a), median_ci(&xs), "fixed seed: identical intervals");
        assert!((a.median - 0.96).abs() < 1e-12);
        assert!(a.lo <= a.median && a.median <= a.hi);
        assert!(
            a.lo >= 0.88 && a.hi <= 1.02,
            "inside the sample's range: {a:?}"
        );
        assert!(a.hi > a.lo);
        assert_eq!(a.n, 7);
        // One value: a degenerate interval; none: no estimate.
        let one = median_ci(&[2.0]).expect("one value");
        assert_eq!((one.lo, one.median, one.hi), (2.0, 2.0, 2.0));
        assert_eq!(median_ci(&[]), None);
        assert_eq!(one.fmt(1.0, 1), "2.0");
        assert_eq!(
            a.fmt(100.0, 0),
            format!("96 [{:.0}–{:.0}]", a.lo * 100.0, a.hi * 100.0)
        );
    }

    #[test]
    fn bootstrap_interval_narrows_with_more_data() {
        // Same spread, 5 vs 40 values: the interval of the larger sample is narrower.
        let small: Vec<f64> = (0..5).map(|i| 1.0 + 0.02 * f64::from(i)).collect();
        let large: Vec<f64> = (0..40)
            .map(|i| 1.0 + 0.08 * f64::from(i % 5) / 4.0)
            .collect();
        let (s, l) = (
            median_ci(&small).expect("small"),
            median_ci(&large).expect("large"),
        );
        assert!(l.hi - l.lo < s.hi - s.lo, "{s:?} vs {l:?}");
        // Quantiles interpolate between order statistics.
        assert!((quantile_sorted(&[1.0, 2.0, 3.0, 4.0], 0.5) - 2.5).abs() < 1e-12);
        assert!((quantile_sorted(&[1.0, 2.0], 0.025) - 1.025).abs() < 1e-12);
    }
}
