//! The agent's signal book (pure): cumulative cgroup counters in, engine samples out.
//!
//! Each tick the agent reads every container's (and every ungoverned pod's) counters and hands
//! them to [`SignalBook::observe`] with a monotonic clock reading; the book turns two readings
//! of the same cgroup into one [`Sample`] (mean usage, throttled-period share and CPU pressure
//! over the interval, see [`crate::engine::NodeSignals`]), keeps the recent samples for the
//! engine — as far back as the engine looks under the container's policy
//! ([`crate::engine::EngineConfig::history_for`], so memory follows the policies' windows), in a
//! compact form — and a decaying usage histogram for step-down recommendations. A counter going backwards (a new cgroup at the same key) starts a new
//! baseline; keys not observed in a tick are forgotten.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use jiff::Timestamp;

use super::cgroup::{Counters, delta};
use crate::api::ValidatedSpec;
use crate::engine::{Histogram, NodeSignals, Permille, Recommendation, Sample};
use crate::quantity::MilliCpu;

/// How much of a cgroup's history the book keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// Only the newest sample (pod-level cgroups: the engine reads their latest usage only).
    Latest,
    /// Samples for this long (the engine's [`crate::engine::EngineConfig::history_for`] the
    /// container's policy; the newest one always), and a decaying usage histogram with this
    /// half-life in seconds for the step-down recommendation.
    History { keep: Duration, half_life: u32 },
}

/// A [`Sample`] as the book stores it: 24 bytes instead of 56 (100 containers × 3600 one-second
/// samples, the longest window a policy can ask for, are ≈ 8.6 MB instead of 20 MB).
/// Timestamps are exact; the interval is kept in whole µs and saturates at ≈ 71 min, usage at
/// u32::MAX millicores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stored {
    secs: i64,
    nanos: i32,
    usage: u32,
    interval_us: u32,
    throttled: u16,
    pressure: u16,
}

/// `Stored`'s "no value" for a permille.
const NONE: u16 = u16::MAX;

impl Stored {
    fn of(s: &Sample) -> Stored {
        let sig = s.signals;
        let permille = |p: Option<Permille>| p.map_or(NONE, |p| p.0.min(NONE - 1));
        Stored {
            secs: s.time.as_second(),
            nanos: s.time.subsec_nanosecond(),
            usage: u32::try_from(s.usage.0).unwrap_or(u32::MAX),
            interval_us: sig.map_or(u32::MAX, |g| {
                u32::try_from(g.interval.as_micros())
                    .unwrap_or(u32::MAX)
                    .min(u32::MAX - 1)
            }),
            throttled: permille(sig.and_then(|g| g.throttled)),
            pressure: permille(sig.and_then(|g| g.pressure)),
        }
    }

    fn time(&self) -> Timestamp {
        Timestamp::new(self.secs, self.nanos).unwrap_or(Timestamp::MIN)
    }

    fn sample(&self) -> Sample {
        let permille = |v: u16| (v != NONE).then_some(Permille(v));
        Sample {
            time: self.time(),
            usage: MilliCpu(u64::from(self.usage)),
            // Every sample the book makes has signals; `u32::MAX` marks one without.
            signals: (self.interval_us != u32::MAX).then(|| NodeSignals {
                interval: Duration::from_micros(u64::from(self.interval_us)),
                throttled: permille(self.throttled),
                pressure: permille(self.pressure),
            }),
        }
    }
}

#[derive(Debug)]
struct Entry {
    last: Option<(Counters, Duration)>,
    samples: VecDeque<Stored>,
    histogram: Option<Histogram>,
    seen: u64,
}

/// Samples per cgroup, keyed by the caller (container ID, or `pod:<uid>`).
#[derive(Debug, Default)]
pub struct SignalBook {
    entries: HashMap<String, Entry>,
    tick: u64,
}

impl SignalBook {
    pub fn new() -> SignalBook {
        SignalBook::default()
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

    /// Records a reading of `key` taken at monotonic time `mono` (wall time `now`), keeps what
    /// `keep` says, and returns the sample it completes (none for the first reading, or after a
    /// counter reset).
    pub fn observe(
        &mut self,
        key: &str,
        counters: Counters,
        mono: Duration,
        now: Timestamp,
        keep: Keep,
    ) -> Option<Sample> {
        let tick = self.tick;
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
        if e.samples.back().is_some_and(|s| s.time() >= now) {
            // The wall clock stepped back: keep the book ordered, start over.
            e.samples.clear();
        }
        e.samples.push_back(Stored::of(&sample));
        let retention = match keep {
            Keep::Latest => Duration::ZERO,
            Keep::History { keep, .. } => keep,
        };
        let horizon = now
            .checked_sub(
                jiff::SignedDuration::try_from(retention).unwrap_or(jiff::SignedDuration::MAX),
            )
            .unwrap_or(Timestamp::MIN);
        while e.samples.len() > 1 && e.samples.front().is_some_and(|s| s.time() < horizon) {
            e.samples.pop_front();
        }
        if matches!(keep, Keep::Latest) {
            e.histogram = None;
            e.samples.shrink_to(1);
        }
        if let Keep::History { half_life, .. } = keep {
            e.histogram
                .get_or_insert_with(|| Histogram::new(half_life))
                .add(sample.usage, now);
        }
        Some(sample)
    }

    /// The samples of `key`, oldest first.
    pub fn samples(&self, key: &str) -> Vec<Sample> {
        self.entries
            .get(key)
            .map(|e| e.samples.iter().map(Stored::sample).collect())
            .unwrap_or_default()
    }

    /// The newest sample of `key`.
    pub fn latest(&self, key: &str) -> Option<Sample> {
        self.entries
            .get(key)
            .and_then(|e| e.samples.back().map(Stored::sample))
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

    fn keep(secs: u64) -> Keep {
        Keep::History {
            keep: Duration::from_secs(secs),
            half_life: 3600,
        }
    }

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
        let mut b = SignalBook::new();
        b.begin_tick();
        assert!(
            b.observe(
                "c1",
                c(0, 0, 0, Some(0)),
                Duration::from_secs(10),
                at(0),
                keep(60)
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
                keep(60),
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
        let mut b = SignalBook::new();
        for (i, usage) in [1000u64, 2000, 10].iter().enumerate() {
            b.begin_tick();
            b.observe(
                "c1",
                c(*usage, 0, 0, None),
                Duration::from_secs(i as u64),
                at(i as i64),
                keep(60),
            );
            b.observe(
                "c2",
                c(0, 0, 0, None),
                Duration::from_secs(i as u64),
                at(i as i64),
                keep(60),
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
        let mut b = SignalBook::new();
        for i in 0..100u64 {
            b.begin_tick();
            b.observe(
                "c1",
                c(i * 100, i, 0, None),
                Duration::from_secs(i),
                at(i as i64),
                keep(10),
            );
            b.observe(
                "pod:u1",
                c(i * 100, i, 0, None),
                Duration::from_secs(i),
                at(i as i64),
                Keep::Latest,
            );
            b.end_tick();
        }
        let s = b.samples("c1");
        assert_eq!(s.len(), 11, "samples from t=89 to t=99");
        assert_eq!(s.first().map(|s| s.time), Some(at(89)));
        assert_eq!(
            b.samples("pod:u1").len(),
            1,
            "a pod-level key keeps its newest only"
        );
        assert_eq!(b.latest("pod:u1").map(|s| s.time), Some(at(99)));
        assert!(b.recommend("pod:u1", &policy()).is_none());
    }

    fn policy() -> crate::api::ValidatedSpec {
        crate::engine::fixtures::latency_policy()
    }

    #[test]
    fn a_sample_is_stored_in_24_bytes_and_read_back_unchanged() {
        assert!(std::mem::size_of::<Stored>() <= 24);
        let t = at(17)
            .saturating_add(jiff::SignedDuration::from_nanos(123_456_789))
            .unwrap_or(at(17));
        for s in [
            Sample {
                time: t,
                usage: MilliCpu(1234),
                signals: Some(NodeSignals {
                    interval: Duration::from_micros(1_000_321),
                    throttled: Some(Permille(0)),
                    pressure: Some(Permille(1000)),
                }),
            },
            Sample {
                time: t,
                usage: MilliCpu(0),
                signals: Some(NodeSignals {
                    interval: Duration::from_secs(1),
                    throttled: None,
                    pressure: None,
                }),
            },
            Sample::usage(t, MilliCpu(7)),
        ] {
            assert_eq!(Stored::of(&s).sample(), s);
        }
        // Out-of-range values saturate instead of wrapping.
        let huge = Sample {
            time: t,
            usage: MilliCpu(u64::MAX),
            signals: Some(NodeSignals {
                interval: Duration::from_secs(100_000),
                throttled: None,
                pressure: None,
            }),
        };
        let back = Stored::of(&huge).sample();
        assert_eq!(back.usage, MilliCpu(u64::from(u32::MAX)));
        assert!(
            back.signals
                .is_some_and(|g| g.interval > Duration::from_secs(4000))
        );
    }
}
