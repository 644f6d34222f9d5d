//! The agent's signal book (pure): cumulative cgroup counters in, engine samples out.
//!
//! Each tick the agent reads every container's (and every ungoverned pod's) counters and hands
//! them to [`SignalBook::observe`] with a monotonic clock reading; the book turns two readings
//! of the same cgroup into one [`Sample`] (mean usage, throttled-period share and CPU pressure
//! over the interval, see [`crate::engine::NodeSignals`]), keeps the recent samples for the
//! engine (bounded by a retention in seconds) and a decaying usage histogram for step-down
//! recommendations. A counter going backwards (a new cgroup at the same key) starts a new
//! baseline; keys not observed in a tick are forgotten.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use jiff::Timestamp;

use super::cgroup::{Counters, delta};
use crate::api::ValidatedSpec;
use crate::engine::{Histogram, NodeSignals, Permille, Recommendation, Sample};
use crate::quantity::MilliCpu;

#[derive(Debug)]
struct Entry {
    last: Option<(Counters, Duration)>,
    samples: VecDeque<Sample>,
    histogram: Option<Histogram>,
    seen: u64,
}

/// Samples per cgroup, keyed by the caller (container ID, or `pod:<uid>`).
#[derive(Debug)]
pub struct SignalBook {
    entries: HashMap<String, Entry>,
    retention: Duration,
    tick: u64,
}

impl SignalBook {
    /// A book keeping samples for `retention` (at least one interval's worth is always kept).
    pub fn new(retention: Duration) -> SignalBook {
        SignalBook {
            entries: HashMap::new(),
            retention,
            tick: 0,
        }
    }

    /// Starts a tick: keys not observed until the next [`SignalBook::end_tick`] are dropped then.
    pub fn begin_tick(&mut self) {
        self.tick += 1;
    }

    /// Forgets every key not observed in this tick (pods and containers that went away).
    pub fn end_tick(&mut self) {
        let tick = self.tick;
        self.entries.retain(|_, e| e.seen == tick);
    }

    /// Records a reading of `key` taken at monotonic time `mono` (wall time `now`), and returns
    /// the sample it completes (none for the first reading, or after a counter reset).
    /// `half_life` feeds the recommendation histogram (governed containers only).
    pub fn observe(
        &mut self,
        key: &str,
        counters: Counters,
        mono: Duration,
        now: Timestamp,
        half_life: Option<u32>,
    ) -> Option<Sample> {
        let tick = self.tick;
        let retention = self.retention;
        let e = self
            .entries
            .entry(key.to_string())
            .or_insert_with(|| Entry {
                last: None,
                samples: VecDeque::new(),
                histogram: None,
                seen: tick,
            });
        e.seen = tick;
        let prev = e.last.replace((counters, mono));
        let (before, at) = prev?;
        let wall = mono.checked_sub(at)?;
        let Some(d) = delta(&before, &counters, wall) else {
            // A reset (new cgroup behind the key) or no time passed: new baseline.
            if wall.is_zero() {
                e.last = Some((before, at));
            } else {
                e.samples.clear();
            }
            return None;
        };
        let sample = Sample {
            time: now,
            usage: MilliCpu(d.usage_millicores),
            signals: Some(NodeSignals {
                interval: wall,
                throttled: d.throttled_share().map(Permille::from_fraction),
                pressure: d.pressure.map(Permille::from_fraction),
            }),
        };
        if e.samples.back().is_some_and(|s| s.time >= now) {
            // The wall clock stepped back: keep the book ordered, start over.
            e.samples.clear();
        }
        e.samples.push_back(sample);
        let horizon = now
            .checked_sub(
                jiff::SignedDuration::try_from(retention.max(wall))
                    .unwrap_or(jiff::SignedDuration::MAX),
            )
            .unwrap_or(Timestamp::MIN);
        while e.samples.front().is_some_and(|s| s.time < horizon) {
            e.samples.pop_front();
        }
        if let Some(h) = half_life {
            e.histogram
                .get_or_insert_with(|| Histogram::new(h))
                .add(sample.usage, now);
        }
        Some(sample)
    }

    /// The samples of `key`, oldest first.
    pub fn samples(&self, key: &str) -> Vec<Sample> {
        self.entries
            .get(key)
            .map(|e| e.samples.iter().copied().collect())
            .unwrap_or_default()
    }

    /// The newest sample of `key`.
    pub fn latest(&self, key: &str) -> Option<Sample> {
        self.entries
            .get(key)
            .and_then(|e| e.samples.back().copied())
    }

    /// The step-down recommendation for `key` under `policy`.
    pub fn recommend(&self, key: &str, policy: &ValidatedSpec) -> Option<Recommendation> {
        self.entries.get(key)?.histogram.as_ref()?.recommend(
            &policy.recommendation,
            policy.min,
            policy.max,
        )
    }

    /// Number of keys held (for the footprint metric and tests).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::fixtures::at;

    fn c(usage_ms: u64, periods: u64, throttled: u64, pressure_ms: Option<u64>) -> Counters {
        Counters {
            usage_ns: usage_ms * 1_000_000,
            nr_periods: periods,
            nr_throttled: throttled,
            throttled_ns: 0,
            pressure_some_us: pressure_ms.map(|m| m * 1000),
        }
    }

    #[test]
    fn two_readings_make_a_sample_in_the_engine_units() {
        let mut b = SignalBook::new(Duration::from_secs(60));
        b.begin_tick();
        assert!(
            b.observe(
                "c1",
                c(0, 0, 0, Some(0)),
                Duration::from_secs(10),
                at(0),
                None
            )
            .is_none()
        );
        b.end_tick();
        b.begin_tick();
        let s = b
            .observe(
                "c1",
                c(500, 10, 3, Some(250)),
                Duration::from_secs(11),
                at(1),
                Some(3600),
            )
            .expect("a sample");
        b.end_tick();
        assert_eq!(s.usage, MilliCpu(500));
        let sig = s.signals.expect("signals");
        assert_eq!(sig.interval, Duration::from_secs(1));
        assert_eq!(sig.throttled, Some(Permille(300)));
        assert_eq!(sig.pressure, Some(Permille(250)));
        assert_eq!(b.samples("c1").len(), 1);
    }

    #[test]
    fn a_counter_reset_starts_a_new_baseline_and_unseen_keys_are_forgotten() {
        let mut b = SignalBook::new(Duration::from_secs(60));
        for (i, usage) in [1000u64, 2000, 10].iter().enumerate() {
            b.begin_tick();
            b.observe(
                "c1",
                c(*usage, 0, 0, None),
                Duration::from_secs(i as u64),
                at(i as i64),
                None,
            );
            b.observe(
                "c2",
                c(0, 0, 0, None),
                Duration::from_secs(i as u64),
                at(i as i64),
                None,
            );
            b.end_tick();
        }
        assert!(
            b.samples("c1").is_empty(),
            "reset clears the old cgroup's samples"
        );
        assert_eq!(b.samples("c2").len(), 2);
        assert_eq!(
            b.latest("c2")
                .and_then(|s| s.signals)
                .and_then(|s| s.pressure),
            None
        );
        b.begin_tick();
        b.end_tick();
        assert!(b.is_empty());
    }

    #[test]
    fn retention_is_in_seconds() {
        let mut b = SignalBook::new(Duration::from_secs(10));
        for i in 0..100u64 {
            b.begin_tick();
            b.observe(
                "c1",
                c(i * 100, i, 0, None),
                Duration::from_secs(i),
                at(i as i64),
                None,
            );
            b.end_tick();
        }
        let s = b.samples("c1");
        assert_eq!(s.len(), 11, "samples from t=89 to t=99");
        assert_eq!(s.first().map(|s| s.time), Some(at(89)));
    }
}
