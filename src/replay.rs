//! `burst-scaler replay`: what-if analysis with no cluster. A recorded usage trace is fed
//! through the decision engine pass by pass, and every decision is printed with its reason.
//!
//! # Trace format (JSON)
//!
//! ```json
//! {
//!   "node": {"name": "node-1", "allocatable": "2", "reserve": "100m"},
//!   "sampleIntervalSeconds": 15,
//!   "burstScalers": [{"name": "web", "spec": { ...a BurstScaler spec... }}],
//!   "pods": [
//!     {"name": "web-7f9c", "burstScaler": "web",
//!      "containers": [{"name": "web", "request": "250m", "limit": "500m"}]},
//!     {"name": "coredns", "containers": [{"name": "coredns", "request": "100m"}]}
//!   ],
//!   "samples": [{"t": 0, "pod": "web-7f9c", "container": "web", "millicores": 120}]
//! }
//! ```
//!
//! - `t` is seconds from the start of the trace. A pass runs every `sampleIntervalSeconds`
//!   from the first sample to the last; each pass sees the samples with `t` up to its time.
//! - Pods without `burstScaler` (or whose BurstScaler is in mode `Off`) are ungoverned: they
//!   count against the node's CPU.
//! - Decisions of BurstScalers in mode `Auto` are applied to the simulated pods (as a
//!   successful in-place resize would be); in `Recommend` they are printed, not applied.
//! - A recorded sample is capped at the simulated limit: a container cannot use more CPU than
//!   its limit, and the trace cannot tell what it would have used with a larger one.
//! - `actuator` (optional): `InPlaceResize` (default; the controller's path) or `NodeAgent`
//!   (the node agent's: a CPU weight is applied as such, and a batch pod without a limit can
//!   be throttled).
//! - A sample may carry node signals, as the node agent records them over the sample's
//!   interval: `throttledPercent` (share of the CFS periods in which the container was
//!   throttled) and `cpuPressurePercent` (share of wall time in which a runnable task of it
//!   waited for a CPU, PSI `some`), each 0–100. Samples without them are usage-only, as
//!   metrics.k8s.io gives them.
//! - Samples may be listed in any order (they are sorted by `t`). Everything ambiguous is an
//!   error naming the problem: two pods, BurstScalers or containers of a pod with one name, an
//!   empty name, two samples for one container at one `t`, a request above its limit, a
//!   reserve above the allocatable CPU, no samples, `sampleIntervalSeconds` outside 1–3600, or
//!   a trace longer than 1 000 000 passes.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::api::{BurstScalerSpec, Mode, ValidatedSpec, validate};
use crate::cli::{ReplayArgs, ReplayFormat};
use crate::engine::{
    self, ContainerInput, CpuResources, EngineConfig, Histogram, NodeInput, NodeSignals, Permille,
    PodInput, QosClass, ResizeState, Sample, UngovernedPod,
};
use crate::quantity::{CpuQuantity, MilliCpu};

/// Samples kept per container: 15 minutes of them (the controller's default window: 60 at
/// 15 s), at least 60.
fn window_samples(interval_seconds: u64) -> usize {
    usize::try_from((900 / interval_seconds.max(1)).max(60)).unwrap_or(60)
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Trace {
    pub node: TraceNode,
    #[serde(default = "default_interval")]
    pub sample_interval_seconds: u64,
    #[serde(default)]
    pub burst_scalers: Vec<TraceScaler>,
    #[serde(default)]
    pub actuator: TraceActuator,
    pub pods: Vec<TracePod>,
    pub samples: Vec<TraceSample>,
}

fn default_interval() -> u64 {
    15
}

/// Longest sampling interval a trace may declare (an hour).
const MAX_INTERVAL_SECONDS: u64 = 3600;

/// Most passes a replay runs (a trace of a year at 15 s is about 2 million samples per
/// container: split it).
const MAX_PASSES: u64 = 1_000_000;

/// Which actuator the replay simulates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum TraceActuator {
    #[default]
    InPlaceResize,
    NodeAgent,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TraceNode {
    pub name: String,
    pub allocatable: CpuQuantity,
    #[serde(default = "default_reserve")]
    pub reserve: CpuQuantity,
}

fn default_reserve() -> CpuQuantity {
    CpuQuantity::new("100m")
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TraceScaler {
    pub name: String,
    pub spec: BurstScalerSpec,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TracePod {
    pub name: String,
    #[serde(default)]
    pub burst_scaler: Option<String>,
    pub containers: Vec<TraceContainer>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TraceContainer {
    pub name: String,
    #[serde(default)]
    pub request: Option<CpuQuantity>,
    #[serde(default)]
    pub limit: Option<CpuQuantity>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TraceSample {
    pub t: u64,
    pub pod: String,
    pub container: String,
    pub millicores: u64,
    /// Share of CFS periods throttled over the sample's interval, 0–100.
    #[serde(default)]
    pub throttled_percent: Option<f64>,
    /// CPU pressure (PSI `some`) over the sample's interval, 0–100.
    #[serde(default)]
    pub cpu_pressure_percent: Option<f64>,
}

/// Why a trace cannot be replayed.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: not a valid trace at {field}: {message}")]
    Parse {
        path: String,
        field: String,
        message: String,
    },
    #[error("{0}")]
    Invalid(String),
}

/// One decision printed by a replay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReplayEvent {
    /// Seconds from the start of the trace.
    pub t: u64,
    pub pod: String,
    pub action: String,
    /// `container: request/limit → request/limit`, one per changed container.
    pub changes: Vec<String>,
    pub reason: String,
    /// False when the BurstScaler is in `Recommend` (the decision is only reported).
    pub applied: bool,
}

/// Reads and replays the trace named in `args`, and renders the result.
pub fn run_file(args: &ReplayArgs) -> Result<String, ReplayError> {
    let path = args.trace.display().to_string();
    let text = std::fs::read_to_string(&args.trace).map_err(|source| ReplayError::Read {
        path: path.clone(),
        source,
    })?;
    let mut de = serde_json::Deserializer::from_str(&text);
    let trace: Trace =
        serde_path_to_error::deserialize(&mut de).map_err(|e| ReplayError::Parse {
            path: path.clone(),
            field: e.path().to_string(),
            message: e.into_inner().to_string(),
        })?;
    let events = replay(&trace, args.verbose)?;
    Ok(match args.format {
        ReplayFormat::Json => serde_json::to_string_pretty(&events).unwrap_or_default() + "\n",
        ReplayFormat::Text => render_text(&events),
    })
}

fn render_text(events: &[ReplayEvent]) -> String {
    let mut out = String::new();
    for e in events {
        let mode = if e.applied || !is_change(&e.action) {
            ""
        } else {
            " (recommend only)"
        };
        out.push_str(&format!(
            "t={:>5}s  {:<9} {}{mode}\n",
            e.t, e.action, e.reason
        ));
        for c in &e.changes {
            out.push_str(&format!("          {c}\n"));
        }
    }
    let changed = events.iter().filter(|e| is_change(&e.action)).count();
    out.push_str(&format!("{changed} decisions that change a pod\n"));
    out
}

fn is_change(action: &str) -> bool {
    !matches!(action, "None" | "Skip")
}

struct SimPod {
    input: PodInput,
    mode: Mode,
    histograms: Vec<Histogram>,
}

/// Replays `trace`; returns the decisions that change a pod (all decisions when `verbose`).
pub fn replay(trace: &Trace, verbose: bool) -> Result<Vec<ReplayEvent>, ReplayError> {
    let invalid = |m: String| ReplayError::Invalid(m);
    let mut scalers: BTreeMap<&str, Arc<ValidatedSpec>> = BTreeMap::new();
    for s in &trace.burst_scalers {
        let v = validate(&s.spec).map_err(|errs| {
            invalid(format!(
                "burstScaler {:?} is invalid: {}",
                s.name,
                errs.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ")
            ))
        })?;
        scalers.insert(&s.name, Arc::new(v));
    }
    let q = |what: &str, q: &CpuQuantity| q.millis().map_err(|e| invalid(format!("{what}: {e}")));
    let allocatable = q("node.allocatable", &trace.node.allocatable)?;
    let reserve = q("node.reserve", &trace.node.reserve)?;
    if reserve > allocatable {
        return Err(invalid(format!(
            "node.reserve ({reserve}) must not be more than node.allocatable ({allocatable})"
        )));
    }
    if !(1..=MAX_INTERVAL_SECONDS).contains(&trace.sample_interval_seconds) {
        return Err(invalid(format!(
            "sampleIntervalSeconds must be between 1 and {MAX_INTERVAL_SECONDS} (got {})",
            trace.sample_interval_seconds
        )));
    }
    check_names(trace)?;

    let mut governed: Vec<SimPod> = vec![];
    let mut ungoverned: Vec<(String, MilliCpu)> = vec![];
    for p in &trace.pods {
        let mut containers = vec![];
        for c in &p.containers {
            let field = |f: &str| format!("pod {:?} container {:?} {f}", p.name, c.name);
            let request = c
                .request
                .as_ref()
                .map(|r| q(&field("request"), r))
                .transpose()?;
            let limit = c
                .limit
                .as_ref()
                .map(|l| q(&field("limit"), l))
                .transpose()?;
            if let (Some(r), Some(l)) = (request, limit)
                && r > l
            {
                return Err(invalid(format!(
                    "{}: the request ({r}) must not be more than the limit ({l})",
                    field("request")
                )));
            }
            containers.push(ContainerInput {
                name: c.name.clone(),
                current: CpuResources {
                    request,
                    limit,
                    weight: None,
                },
                original: None,
                samples: vec![],
                recommendation: None,
            });
        }
        let scaler = match &p.burst_scaler {
            Some(name) => Some(scalers.get(name.as_str()).cloned().ok_or_else(|| {
                invalid(format!(
                    "pod {:?} names burstScaler {name:?}, which the trace does not define",
                    p.name
                ))
            })?),
            None => None,
        };
        match scaler.filter(|s| s.mode != Mode::Off) {
            Some(policy) => {
                let histograms = containers
                    .iter()
                    .map(|_| Histogram::new(policy.recommendation.half_life_seconds))
                    .collect();
                governed.push(SimPod {
                    mode: policy.mode,
                    input: PodInput {
                        name: p.name.clone(),
                        qos: qos_of(&containers),
                        policy,
                        containers,
                        resize: ResizeState::Idle,
                        last_change: None,
                    },
                    histograms,
                });
            }
            None => {
                let request = containers.iter().filter_map(|c| c.current.request).sum();
                ungoverned.push((p.name.clone(), request));
            }
        }
    }

    let mut samples: Vec<&TraceSample> = trace.samples.iter().collect();
    samples.sort_by_key(|s| s.t);
    for s in &samples {
        let known = trace
            .pods
            .iter()
            .any(|p| p.name == s.pod && p.containers.iter().any(|c| c.name == s.container));
        if !known {
            return Err(invalid(format!(
                "sample at t={} names pod {:?} container {:?}, which the trace does not define",
                s.t, s.pod, s.container
            )));
        }
    }
    for w in samples.windows(2) {
        if w[0].t == w[1].t && w[0].pod == w[1].pod && w[0].container == w[1].container {
            return Err(invalid(format!(
                "two samples for pod {:?} container {:?} at t={}: one per container and time",
                w[0].pod, w[0].container, w[0].t
            )));
        }
    }
    for s in &samples {
        for (name, v) in [
            ("throttledPercent", s.throttled_percent),
            ("cpuPressurePercent", s.cpu_pressure_percent),
        ] {
            if let Some(v) = v
                && !(v.is_finite() && (0.0..=100.0).contains(&v))
            {
                return Err(invalid(format!(
                    "sample at t={} for pod {:?} container {:?}: {name} must be between 0 and 100 (got {v})",
                    s.t, s.pod, s.container
                )));
            }
        }
    }
    let (Some(first), Some(last)) = (samples.first(), samples.last()) else {
        return Err(invalid(
            "the trace has no samples: there is nothing to replay".into(),
        ));
    };
    let passes = (last.t - first.t) / trace.sample_interval_seconds + 1;
    if passes > MAX_PASSES {
        return Err(invalid(format!(
            "the samples span {}s from t={} to t={}: {passes} passes at {}s, more than {MAX_PASSES}; split the trace",
            last.t - first.t,
            first.t,
            last.t,
            trace.sample_interval_seconds
        )));
    }
    // Times are relative to the first sample, so any `t` maps onto the engine's clock.
    let start = Timestamp::UNIX_EPOCH;
    let origin = first.t;
    let at = |t: u64| {
        start
            .checked_add(SignedDuration::from_secs(
                i64::try_from(t - origin).unwrap_or(i64::MAX),
            ))
            .unwrap_or(Timestamp::MAX)
    };
    let config = EngineConfig {
        sample_interval: Duration::from_secs(trace.sample_interval_seconds),
        ..EngineConfig::default()
    };

    let mut events = vec![];
    let mut next = 0;
    let mut latest_ungoverned: BTreeMap<&str, MilliCpu> = BTreeMap::new();
    let mut t = first.t;
    while t <= last.t {
        let now = at(t);
        while next < samples.len() && samples[next].t <= t {
            let s = samples[next];
            next += 1;
            let sim = governed.iter_mut().find(|p| p.input.name == s.pod);
            let Some(sim) = sim else {
                *latest_ungoverned.entry(s.pod.as_str()).or_default() = MilliCpu(s.millicores);
                continue;
            };
            let Some(ci) = sim
                .input
                .containers
                .iter()
                .position(|c| c.name == s.container)
            else {
                continue;
            };
            let c = &mut sim.input.containers[ci];
            let usage = MilliCpu(s.millicores).min(c.current.limit.unwrap_or(MilliCpu(u64::MAX)));
            let permille = |v: Option<f64>| v.map(|v| Permille::from_fraction(v / 100.0));
            let signals =
                (s.throttled_percent.is_some() || s.cpu_pressure_percent.is_some()).then(|| {
                    NodeSignals {
                        interval: config.sample_interval,
                        throttled: permille(s.throttled_percent),
                        pressure: permille(s.cpu_pressure_percent),
                    }
                });
            c.samples.push(Sample {
                time: at(s.t),
                usage,
                signals,
            });
            let keep = window_samples(trace.sample_interval_seconds);
            if c.samples.len() > keep {
                let extra = c.samples.len() - keep;
                c.samples.drain(..extra);
            }
            sim.histograms[ci].add(usage, at(s.t));
        }
        for sim in &mut governed {
            let policy = sim.input.policy.clone();
            for (c, h) in sim.input.containers.iter_mut().zip(&sim.histograms) {
                c.recommendation = h.recommend(&policy.recommendation, policy.min, policy.max);
            }
        }
        let node = NodeInput {
            name: trace.node.name.clone(),
            actuator: match trace.actuator {
                TraceActuator::InPlaceResize => engine::Actuator::InPlaceResize,
                TraceActuator::NodeAgent => engine::Actuator::NodeAgent,
            },
            allocatable,
            reserve,
            pods: governed.iter().map(|p| p.input.clone()).collect(),
            ungoverned: ungoverned
                .iter()
                .map(|(name, request)| UngovernedPod {
                    name: name.clone(),
                    request: *request,
                    usage: latest_ungoverned.get(name.as_str()).copied(),
                })
                .collect(),
        };
        let decision = engine::decide(&node, &config, now);
        for (sim, d) in governed.iter_mut().zip(&decision.pods) {
            let applied = sim.mode == Mode::Auto && d.action.changes();
            if d.action.changes() || verbose {
                events.push(ReplayEvent {
                    t: t - first.t,
                    pod: d.pod.clone(),
                    action: d.action.to_string(),
                    changes: d
                        .changes
                        .iter()
                        .map(|ch| format!("{}: {} → {}", ch.container, show(ch.from), show(ch.to)))
                        .collect(),
                    reason: d.reason.clone(),
                    applied,
                });
            }
            if applied {
                for ch in &d.changes {
                    if let Some(c) = sim
                        .input
                        .containers
                        .iter_mut()
                        .find(|c| c.name == ch.container)
                    {
                        c.original.get_or_insert(c.current);
                        c.current = ch.to;
                    }
                }
                sim.input.last_change = Some(now);
            }
        }
        match t.checked_add(trace.sample_interval_seconds) {
            Some(n) => t = n,
            None => break,
        }
    }
    Ok(events)
}

fn show(r: CpuResources) -> String {
    let q = |m: Option<MilliCpu>| m.map_or("-".to_string(), |m| m.to_string());
    match r.weight {
        Some(w) => format!("request {} limit {} weight {w}", q(r.request), q(r.limit)),
        None => format!("request {} limit {}", q(r.request), q(r.limit)),
    }
}

/// Names must be unique and non-empty: the last of two pods or BurstScalers with one name would
/// otherwise silently win (and could change a pod's role).
fn check_names(trace: &Trace) -> Result<(), ReplayError> {
    let invalid = |m: String| Err(ReplayError::Invalid(m));
    let mut scalers = std::collections::BTreeSet::new();
    for s in &trace.burst_scalers {
        if s.name.is_empty() {
            return invalid("a burstScaler has an empty name".into());
        }
        if !scalers.insert(s.name.as_str()) {
            return invalid(format!("two burstScalers are named {:?}", s.name));
        }
    }
    let mut pods = std::collections::BTreeSet::new();
    for p in &trace.pods {
        if p.name.is_empty() {
            return invalid("a pod has an empty name".into());
        }
        if !pods.insert(p.name.as_str()) {
            return invalid(format!("two pods are named {:?}", p.name));
        }
        if p.containers.is_empty() {
            return invalid(format!("pod {:?} has no containers", p.name));
        }
        let mut names = std::collections::BTreeSet::new();
        for c in &p.containers {
            if c.name.is_empty() {
                return invalid(format!(
                    "pod {:?} has a container with an empty name",
                    p.name
                ));
            }
            if !names.insert(c.name.as_str()) {
                return invalid(format!(
                    "pod {:?} has two containers named {:?}",
                    p.name, c.name
                ));
            }
        }
    }
    Ok(())
}

fn qos_of(containers: &[ContainerInput]) -> QosClass {
    let any = containers
        .iter()
        .any(|c| c.current.request.is_some() || c.current.limit.is_some());
    let all_equal = containers
        .iter()
        .all(|c| c.current.limit.is_some() && c.current.request == c.current.limit);
    match (any, all_equal) {
        (false, _) => QosClass::BestEffort,
        (true, true) => QosClass::Guaranteed,
        (true, false) => QosClass::Burstable,
    }
}
