//! Small builders for engine inputs, shared by the engine's tests, the property tests, the
//! benchmark and `replay`. They build exactly what a driver would.

use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

use super::model::*;
use crate::api::{
    Behavior, BorrowPolicy, LatencySensitivePolicy, Mode, RecommendationPolicy, Role, ValidatedSpec,
};
use crate::quantity::MilliCpu;

/// A fixed, arbitrary start time for scenarios.
pub fn t0() -> Timestamp {
    Timestamp::from_second(1_767_225_600).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// `t0() + secs`.
pub fn at(secs: i64) -> Timestamp {
    t0().saturating_add(SignedDuration::from_secs(secs))
        .unwrap_or(Timestamp::MAX)
}

/// Latency-sensitive policy: cpu 250m–2, target 60 %, burst at 85 %, defaults otherwise.
pub fn latency_policy() -> ValidatedSpec {
    ValidatedSpec {
        role: Role::LatencySensitive,
        mode: Mode::Auto,
        containers: vec![],
        min: MilliCpu(250),
        max: MilliCpu(2000),
        floor: MilliCpu(250),
        priority: 0,
        borrow: BorrowPolicy::default(),
        latency: LatencySensitivePolicy::default(),
        behavior: Behavior::default(),
        recommendation: RecommendationPolicy::default(),
    }
}

/// Batch policy: cpu 100m–4, the given floor and priority.
pub fn batch_policy(floor: u64, priority: i32) -> ValidatedSpec {
    ValidatedSpec {
        role: Role::Batch,
        min: MilliCpu(100),
        max: MilliCpu(4000),
        floor: MilliCpu(floor),
        priority,
        ..latency_policy()
    }
}

/// Usage samples, one every `interval` seconds, the last one at `end`.
pub fn series(end: Timestamp, interval: i64, usage: &[u64]) -> Vec<Sample> {
    let n = usage.len() as i64;
    usage
        .iter()
        .enumerate()
        .map(|(i, u)| {
            Sample::usage(
                end.saturating_sub(SignedDuration::from_secs(interval * (n - 1 - i as i64)))
                    .unwrap_or(end),
                MilliCpu(*u),
            )
        })
        .collect()
}

/// Samples from a node source, one every `interval` seconds, the last one at `end`: each is
/// `(usage, throttled ‰, CPU pressure ‰)` over its interval.
pub fn signal_series(end: Timestamp, interval: i64, samples: &[(u64, u16, u16)]) -> Vec<Sample> {
    let usage: Vec<u64> = samples.iter().map(|s| s.0).collect();
    series(end, interval, &usage)
        .into_iter()
        .zip(samples)
        .map(|(mut s, &(_, throttled, pressure))| {
            s.signals = Some(NodeSignals {
                interval: Duration::from_secs(interval.unsigned_abs()),
                throttled: Some(Permille(throttled)),
                pressure: Some(Permille(pressure)),
            });
            s
        })
        .collect()
}

/// A one-container pod (container `main`) with the given request/limit and samples.
pub fn pod(
    name: &str,
    policy: ValidatedSpec,
    request: u64,
    limit: u64,
    samples: Vec<Sample>,
) -> PodInput {
    let qos = if request == limit {
        QosClass::Guaranteed
    } else {
        QosClass::Burstable
    };
    PodInput {
        name: name.to_string(),
        policy: Arc::new(policy),
        qos,
        containers: vec![ContainerInput {
            name: "main".to_string(),
            current: CpuResources::new(request, limit),
            original: None,
            samples,
            recommendation: None,
        }],
        resize: ResizeState::Idle,
        last_change: None,
    }
}

/// A node with `allocatable` millicores, 100m reserve and the given pods.
pub fn node(allocatable: u64, pods: Vec<PodInput>) -> NodeInput {
    NodeInput {
        name: "node-1".to_string(),
        actuator: Actuator::InPlaceResize,
        allocatable: MilliCpu(allocatable),
        reserve: MilliCpu(100),
        pods,
        ungoverned: vec![],
    }
}

/// Applies `decision` to `node` as a successful in-place resize at `now` would: new resources,
/// originals recorded on first change, `last_change` set.
pub fn apply(node: &mut NodeInput, decision: &NodeDecision, now: Timestamp) {
    for d in &decision.pods {
        if !d.action.changes() {
            continue;
        }
        let Some(p) = node.pods.iter_mut().find(|p| p.name == d.pod) else {
            continue;
        };
        for ch in &d.changes {
            if let Some(c) = p.containers.iter_mut().find(|c| c.name == ch.container) {
                if c.original.is_none() {
                    c.original = Some(c.current);
                }
                c.current = ch.to;
            }
        }
        p.last_change = Some(now);
    }
}

/// Appends one sample at `now` to every governed container, with usage from `usage(pod, container)`
/// capped at the container's limit, keeping at most `window` samples.
pub fn observe(
    node: &mut NodeInput,
    now: Timestamp,
    window: usize,
    usage: impl Fn(&str, &str) -> u64,
) {
    for p in &mut node.pods {
        for c in &mut p.containers {
            let limit = c.current.limit.map_or(u64::MAX, |l| l.0);
            c.samples.push(Sample::usage(
                now,
                MilliCpu(usage(&p.name, &c.name).min(limit)),
            ));
            if c.samples.len() > window {
                let extra = c.samples.len() - window;
                c.samples.drain(..extra);
            }
        }
    }
}

/// The default engine configuration (15 s samples).
pub fn config() -> EngineConfig {
    EngineConfig {
        sample_interval: Duration::from_secs(15),
        ..EngineConfig::default()
    }
}
