//! Usage history the controller keeps per container: a bounded window of recent samples (for
//! the engine) and a decaying histogram (for recommendations). Plain data, no I/O.

use std::collections::HashMap;

use jiff::Timestamp;

use crate::api::ValidatedSpec;
use crate::engine::{Histogram, Recommendation, Sample};
use crate::quantity::MilliCpu;

/// Samples kept per container: 15 minutes at the default 15 s interval.
pub const WINDOW: usize = 60;

#[derive(Debug, Default)]
struct Entry {
    samples: Vec<Sample>,
    histogram: Option<Histogram>,
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
    pub fn add(
        &mut self,
        pod: &str,
        container: &str,
        time: Timestamp,
        usage: MilliCpu,
        half_life_secs: u32,
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
        e.histogram
            .get_or_insert_with(|| Histogram::new(half_life_secs))
            .add(usage, time);
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
        self.get(pod, container)?.histogram.as_ref()?.recommend(
            &policy.recommendation,
            policy.min,
            policy.max,
        )
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
            b.add("ns/p", "c", at(i * 15), MilliCpu(i as u64), 3600);
            b.add("ns/p", "c", at(i * 15), MilliCpu(999), 3600);
        }
        let s = b.samples("ns/p", "c");
        assert_eq!(s.len(), WINDOW);
        assert_eq!(s.last().map(|s| s.usage), Some(MilliCpu(99)));
        assert_eq!(b.latest("ns/p", "c"), Some(MilliCpu(99)));
        assert_eq!(b.newest(), Some(at(99 * 15)));
        b.retain_pods(|p| p != "ns/p");
        assert!(b.samples("ns/p", "c").is_empty());
    }
}
