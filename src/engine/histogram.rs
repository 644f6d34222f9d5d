//! Decaying usage histogram, the VPA recommender's approach: exponentially growing buckets,
//! each sample weighted by `2^(age / half-life)` relative to a reference time, so recent usage
//! counts more. Pure: the caller passes each sample's timestamp.

use jiff::Timestamp;

use super::model::Recommendation;
use crate::api::RecommendationPolicy;
use crate::quantity::{MAX_MILLICORES, MilliCpu};

/// Smallest bucket, as in VPA (10 millicores).
const FIRST_BUCKET: f64 = 10.0;
/// Each bucket is 5 % wider than the previous one, as in VPA.
const RATIO: f64 = 1.05;
/// Weights are renormalised before `2^exponent` could overflow.
const MAX_EXPONENT: f64 = 100.0;

/// A decaying histogram of one container's CPU usage.
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    weights: Vec<f64>,
    total: f64,
    /// Samples are weighted relative to this time.
    reference: Option<Timestamp>,
    half_life_secs: f64,
}

fn bucket_count() -> usize {
    // Buckets up to MAX_MILLICORES.
    ((MAX_MILLICORES as f64 / FIRST_BUCKET).ln() / RATIO.ln()).ceil() as usize + 2
}

/// Start of bucket `i` in millicores: bucket 0 is [0, 10m), bucket i≥1 starts at 10m·1.05^(i-1).
fn bucket_start(i: usize) -> f64 {
    if i == 0 {
        0.0
    } else {
        FIRST_BUCKET * RATIO.powi(i as i32 - 1)
    }
}

fn bucket_of(millis: f64) -> usize {
    if millis < FIRST_BUCKET {
        0
    } else {
        ((millis / FIRST_BUCKET).ln() / RATIO.ln()).floor() as usize + 1
    }
}

impl Histogram {
    pub fn new(half_life_secs: u32) -> Self {
        Histogram {
            weights: vec![0.0; bucket_count()],
            total: 0.0,
            reference: None,
            half_life_secs: f64::from(half_life_secs.max(1)),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.total <= 0.0
    }

    /// Adds one sample taken at `time`.
    pub fn add(&mut self, usage: MilliCpu, time: Timestamp) {
        let reference = *self.reference.get_or_insert(time);
        let mut exponent = time.duration_since(reference).as_secs_f64() / self.half_life_secs;
        if exponent > MAX_EXPONENT {
            self.rebase(time);
            exponent = 0.0;
        }
        let weight = exponent.exp2();
        let i = bucket_of(usage.0 as f64).min(self.weights.len() - 1);
        self.weights[i] += weight;
        self.total += weight;
    }

    /// Moves the reference time to `time`, scaling every weight so relative weights are kept.
    fn rebase(&mut self, time: Timestamp) {
        let Some(old) = self.reference else { return };
        let shift = time.duration_since(old).as_secs_f64() / self.half_life_secs;
        let factor = (-shift).exp2();
        for w in &mut self.weights {
            *w *= factor;
        }
        self.total *= factor;
        self.reference = Some(time);
    }

    /// The usage below which `p` (0–1) of the weight lies: the end of the bucket where the
    /// cumulative weight reaches `p`, so the estimate errs high by at most one bucket (5 %).
    pub fn percentile(&self, p: f64) -> Option<MilliCpu> {
        if self.is_empty() {
            return None;
        }
        let goal = p.clamp(0.0, 1.0) * self.total;
        let mut acc = 0.0;
        let mut last_nonzero = 0;
        for (i, w) in self.weights.iter().enumerate() {
            if *w > 0.0 {
                last_nonzero = i;
            }
            acc += w;
            if acc >= goal && *w > 0.0 {
                return Some(MilliCpu(bucket_start(i + 1).ceil() as u64));
            }
        }
        Some(MilliCpu(bucket_start(last_nonzero + 1).ceil() as u64))
    }

    /// Target (percentile + margin), lower bound (median) and upper bound (p95 + margin),
    /// clamped to `[min, max]`.
    pub fn recommend(
        &self,
        policy: &RecommendationPolicy,
        min: MilliCpu,
        max: MilliCpu,
    ) -> Option<Recommendation> {
        let margin =
            |m: MilliCpu| MilliCpu((m.0 * (100 + u64::from(policy.margin_percent))).div_ceil(100));
        let clamp = |m: MilliCpu| m.clamp(min, max);
        let target = clamp(margin(
            self.percentile(f64::from(policy.percentile) / 100.0)?,
        ));
        let lower = clamp(self.percentile(0.5)?).min(target);
        let upper = clamp(margin(self.percentile(0.95)?)).max(target);
        Some(Recommendation {
            lower_bound: lower,
            target,
            upper_bound: upper,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + secs).expect("time")
    }

    #[test]
    fn buckets_cover_the_range_in_order() {
        assert_eq!(bucket_of(0.0), 0);
        assert_eq!(bucket_of(9.9), 0);
        assert_eq!(bucket_of(10.0), 1);
        assert!(bucket_of(MAX_MILLICORES as f64) < bucket_count());
        for m in [10.0, 100.0, 555.0, 2000.0, 123_456.0] {
            let b = bucket_of(m);
            assert!(
                bucket_start(b) <= m + 1e-9 && m < bucket_start(b + 1),
                "{m}"
            );
        }
    }

    #[test]
    fn percentile_of_uniform_usage_is_within_one_bucket() {
        let mut h = Histogram::new(3600);
        for i in 0..100 {
            h.add(MilliCpu(i * 10 + 5), t(i as i64));
        }
        let p90 = h.percentile(0.9).expect("p90").0 as f64;
        assert!((895.0..=895.0 * 1.06).contains(&p90), "{p90}");
        let p50 = h.percentile(0.5).expect("p50").0 as f64;
        assert!((495.0..=495.0 * 1.06).contains(&p50), "{p50}");
    }

    #[test]
    fn recent_samples_outweigh_old_ones() {
        let mut h = Histogram::new(60);
        for i in 0..50 {
            h.add(MilliCpu(1000), t(i));
        }
        // Ten minutes later (10 half-lives) usage drops: the old samples weigh 1/1024.
        for i in 0..50 {
            h.add(MilliCpu(100), t(600 + i));
        }
        let p90 = h.percentile(0.9).expect("p90");
        assert!(p90 < MilliCpu(120), "{p90}");
    }

    #[test]
    fn survives_long_gaps_without_overflow() {
        let mut h = Histogram::new(60);
        h.add(MilliCpu(500), t(0));
        h.add(MilliCpu(200), t(60 * 60 * 24 * 30));
        let p = h.percentile(0.5).expect("p50");
        assert!(p < MilliCpu(220), "{p}");
        assert!(h.total.is_finite());
    }

    #[test]
    fn recommendation_applies_margin_and_bounds() {
        let mut h = Histogram::new(3600);
        for i in 0..100 {
            h.add(MilliCpu(400), t(i));
        }
        let policy = RecommendationPolicy {
            percentile: 90,
            margin_percent: 15,
            half_life_seconds: 3600,
        };
        let r = h
            .recommend(&policy, MilliCpu(100), MilliCpu(2000))
            .expect("rec");
        assert!(
            r.target >= MilliCpu(460) && r.target <= MilliCpu(490),
            "{r:?}"
        );
        assert!(r.lower_bound <= r.target && r.target <= r.upper_bound);
        let capped = h
            .recommend(&policy, MilliCpu(100), MilliCpu(300))
            .expect("rec");
        assert_eq!(capped.target, MilliCpu(300));
        assert!(
            Histogram::new(60)
                .recommend(&policy, MilliCpu(1), MilliCpu(2))
                .is_none()
        );
    }
}
