//! Usage history the controller keeps per container: a bounded window of recent samples (for
//! the engine) and a decaying histogram (for recommendations). Plain data, no I/O.
//!
//! The histogram decays with the half-life of the policy governing the pod
//! (`spec.recommendation.halfLifeSeconds`). When that half-life changes, the histogram is
//! rebuilt with the new one from the samples the book still holds (the last [`WINDOW`]):
//! weights decayed under two half-lives cannot be mixed, and the rebuilt histogram is exactly
//! the one a histogram with the new half-life would hold over those samples (what `replay`
//! computes). Older history is dropped with the old half-life.

use std::collections::HashMap;

use jiff::Timestamp;

use crate::api::{RecommendationPolicy, ValidatedSpec};
use crate::engine::{Histogram, Recommendation, Sample};
use crate::quantity::MilliCpu;

/// Samples kept per container: 15 minutes at the default 15 s interval.
pub const WINDOW: usize = 60;

#[derive(Debug, Default)]
struct Entry {
    samples: Vec<Sample>,
    histogram: Option<Decaying>,
}

/// A histogram and the half-life it was built with.
#[derive(Debug)]
struct Decaying {
    half_life_secs: u32,
    histogram: Histogram,
}

/// The half-life of a pod no policy governs (yet): the API's default.
fn default_half_life() -> u32 {
    RecommendationPolicy::default().half_life_seconds
}

/// Per-container usage, keyed by pod key (`namespace/name`) and container name.
#[derive(Debug, Default)]
pub struct UsageBook {
    entries: HashMap<(String, String), Entry>,
    newest: Option<Timestamp>,
}

impl UsageBook {
    /// Records one sample. Samples not newer than the last one of the container are ignored
    /// (metrics servers repeat a value until they scrape again).
    ///
    /// `half_life_secs` is the half-life of the policy governing the pod, `None` when no policy
    /// governs it: the histogram then keeps the half-life it has (the default for a new one).
    /// A different half-life rebuilds the histogram from the samples held (see the module).
    pub fn add(
        &mut self,
        pod: &str,
        container: &str,
        time: Timestamp,
        usage: MilliCpu,
        half_life_secs: Option<u32>,
    ) {
        let e = self
            .entries
            .entry((pod.to_string(), container.to_string()))
            .or_default();
        if e.samples.last().is_some_and(|s| s.time >= time) {
            return;
        }
        e.samples.push(Sample::usage(time, usage));
        if e.samples.len() > WINDOW {
            let extra = e.samples.len() - WINDOW;
            e.samples.drain(..extra);
        }
        let half_life_secs = half_life_secs
            .or(e.histogram.as_ref().map(|h| h.half_life_secs))
            .unwrap_or_else(default_half_life);
        match &mut e.histogram {
            Some(h) if h.half_life_secs == half_life_secs => h.histogram.add(usage, time),
            _ => {
                // New, or the policy's half-life changed: rebuilt from the samples held (which
                // include this one).
                let mut histogram = Histogram::new(half_life_secs);
                for s in &e.samples {
                    histogram.add(s.usage, s.time);
                }
                e.histogram = Some(Decaying {
                    half_life_secs,
                    histogram,
                });
            }
        }
        self.newest = self.newest.max(Some(time));
    }

    pub fn samples(&self, pod: &str, container: &str) -> Vec<Sample> {
        self.get(pod, container)
            .map(|e| e.samples.clone())
            .unwrap_or_default()
    }

    pub fn latest(&self, pod: &str, container: &str) -> Option<MilliCpu> {
        self.get(pod, container)
            .and_then(|e| e.samples.last())
            .map(|s| s.usage)
    }

    pub fn recommend(
        &self,
        pod: &str,
        container: &str,
        policy: &ValidatedSpec,
    ) -> Option<Recommendation> {
        self.get(pod, container)?
            .histogram
            .as_ref()?
            .histogram
            .recommend(&policy.recommendation, policy.min, policy.max)
    }

    /// Time of the newest sample of any container.
    pub fn newest(&self) -> Option<Timestamp> {
        self.newest
    }

    /// Forgets pods that no longer exist.
    pub fn retain_pods(&mut self, alive: impl Fn(&str) -> bool) {
        self.entries.retain(|(pod, _), _| alive(pod));
    }

    fn get(&self, pod: &str, container: &str) -> Option<&Entry> {
        self.entries.get(&(pod.to_string(), container.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::fixtures::at;

    #[test]
    fn window_is_bounded_and_repeats_are_ignored() {
        let mut b = UsageBook::default();
        for i in 0..100 {
            b.add("ns/p", "c", at(i * 15), MilliCpu(i as u64), Some(3600));
            b.add("ns/p", "c", at(i * 15), MilliCpu(999), Some(3600));
        }
        let s = b.samples("ns/p", "c");
        assert_eq!(s.len(), WINDOW);
        assert_eq!(s.last().map(|s| s.usage), Some(MilliCpu(99)));
        assert_eq!(b.latest("ns/p", "c"), Some(MilliCpu(99)));
        assert_eq!(b.newest(), Some(at(99 * 15)));
        b.retain_pods(|p| p != "ns/p");
        assert!(b.samples("ns/p", "c").is_empty());
    }

    fn policy() -> ValidatedSpec {
        ValidatedSpec {
            min: MilliCpu(10),
            max: MilliCpu(4000),
            ..crate::engine::fixtures::latency_policy()
        }
    }

    /// Every 15 s from `from`: `n` samples of `usage`, with `half_life`.
    fn feed(b: &mut UsageBook, from: i64, n: i64, usage: u64, half_life: Option<u32>) {
        for i in 0..n {
            b.add("ns/p", "c", at(from + i * 15), MilliCpu(usage), half_life);
        }
    }

    fn target(b: &UsageBook) -> Option<MilliCpu> {
        b.recommend("ns/p", "c", &policy()).map(|r| r.target)
    }

    #[test]
    fn a_changed_half_life_rebuilds_the_histogram_from_the_samples_held() {
        // 30 busy samples, then 29 quiet ones, under a 1-hour half-life: the busy ones still
        // weigh about as much as the quiet ones, so the 90th percentile is busy.
        let mut b = UsageBook::default();
        feed(&mut b, 0, 30, 1000, Some(3600));
        feed(&mut b, 450, 29, 100, Some(3600));
        let before = target(&b).expect("recommendation");
        assert!(before >= MilliCpu(1000), "{before}");
        // The policy's half-life drops to 60 s: the next sample rebuilds the histogram, in
        // which the busy samples (≥ 7 min old) weigh almost nothing.
        b.add("ns/p", "c", at(450 + 29 * 15), MilliCpu(100), Some(60));
        let after = target(&b).expect("recommendation");
        assert!(after < MilliCpu(200), "{after}");
        // Exactly the histogram a 60-s half-life gives over the same samples.
        let mut fresh = UsageBook::default();
        feed(&mut fresh, 0, 30, 1000, Some(60));
        feed(&mut fresh, 450, 30, 100, Some(60));
        assert_eq!(
            b.recommend("ns/p", "c", &policy()),
            fresh.recommend("ns/p", "c", &policy())
        );
        assert_eq!(b.samples("ns/p", "c").len(), WINDOW);
    }

    #[test]
    fn without_a_policy_the_histogram_keeps_its_half_life_and_a_new_one_gets_the_default() {
        // Governed with a 60-s half-life, then (say, while its BurstScaler is being edited)
        // governed by none: the histogram keeps decaying at 60 s instead of being rebuilt.
        let mut b = UsageBook::default();
        feed(&mut b, 0, 30, 1000, Some(60));
        feed(&mut b, 450, 30, 100, None);
        let mut all_60 = UsageBook::default();
        feed(&mut all_60, 0, 30, 1000, Some(60));
        feed(&mut all_60, 450, 30, 100, Some(60));
        assert_eq!(target(&b), target(&all_60));
        // Never governed: the API's default half-life.
        let mut ungoverned = UsageBook::default();
        feed(&mut ungoverned, 0, 30, 1000, None);
        feed(&mut ungoverned, 450, 30, 100, None);
        let mut default = UsageBook::default();
        let d = RecommendationPolicy::default().half_life_seconds;
        feed(&mut default, 0, 30, 1000, Some(d));
        feed(&mut default, 450, 30, 100, Some(d));
        assert_eq!(target(&ungoverned), target(&default));
        assert_ne!(target(&ungoverned), target(&all_60));
    }
}
