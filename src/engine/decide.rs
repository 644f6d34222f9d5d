//! One decision pass over one node. See the module documentation of [`crate::engine`] for the
//! rules in prose; this file is their implementation, in the same order.

use std::time::Duration;

use jiff::Timestamp;

use super::model::*;
use crate::api::{Mode, RequestPolicy, Role};
use crate::quantity::MilliCpu;

/// Decides the CPU of every governed pod on `node` at time `now`. Pure and deterministic.
pub fn decide(node: &NodeInput, config: &EngineConfig, now: Timestamp) -> NodeDecision {
    let pods: Vec<Assessed<'_>> = node
        .pods
        .iter()
        .map(|p| assess(p, node, config, now))
        .collect();

    // 1. Latency-sensitive proposals, before capacity.
    let mut proposals: Vec<Option<LsProposal>> = pods
        .iter()
        .map(|a| match (&a.state, a.pod.role()) {
            (PodState::Active, Role::LatencySensitive) => Some(propose_latency(a, config, now)),
            _ => None,
        })
        .collect();

    // 2. Capacity: what the node can promise latency-sensitive pods once batch pods sit at
    //    their floors. Scale-downs are counted first (they free room). Only batch pods that
    //    will really be throttled count at their floor: the others (blind, held, not in mode
    //    Auto) count at their limit. Governed containers the actuator cannot govern (no limit
    //    on the resize path) count with what they use, as ungoverned pods do.
    let capacity = node.allocatable.saturating_sub(node.reserve);
    let others: MilliCpu = node
        .ungoverned
        .iter()
        .map(UngovernedPod::demand)
        .sum::<MilliCpu>()
        + pods.iter().map(|a| a.untracked).sum::<MilliCpu>();
    let mut batch_floors = MilliCpu::ZERO;
    let mut ls_limits = MilliCpu::ZERO;
    for (a, prop) in pods.iter().zip(&proposals) {
        for (i, c) in a.containers.iter().enumerate() {
            match a.pod.role() {
                Role::Batch if a.throttleable() => batch_floors += c.limit.min(a.pod.policy.floor),
                Role::Batch => batch_floors += c.limit,
                Role::LatencySensitive => {
                    let planned = prop.as_ref().map_or(c.limit, |p| p.limits[i].min(c.limit));
                    ls_limits += planned;
                }
            }
        }
    }
    let committed = others + batch_floors + ls_limits;
    let mut growth_room = capacity.saturating_sub(committed);
    grant_growth(&pods, &mut proposals, &mut growth_room, capacity, committed);

    // 3. Latency-sensitive demand, pressure and batch accounting. Pressure comes only from
    //    pods in mode Auto: a pod that is only recommended never takes the room.
    let mut ls_demand = MilliCpu::ZERO;
    let mut pressure: Vec<String> = vec![];
    let mut blind: Vec<&str> = vec![];
    let mut batch_usage = MilliCpu::ZERO;
    let mut batch_claim = MilliCpu::ZERO;
    let mut batch_limits = MilliCpu::ZERO;
    for (a, prop) in pods.iter().zip(&proposals) {
        if a.blind && !matches!(a.state, PodState::Skip(_)) {
            blind.push(&a.pod.name);
        }
        let acts = a.pod.policy.mode == Mode::Auto;
        for (i, c) in a.containers.iter().enumerate() {
            match a.pod.role() {
                Role::LatencySensitive => {
                    let bursting = prop.as_ref().is_some_and(|p| p.bursting[i]);
                    let pressed = prop.as_ref().and_then(|p| p.pressed[i].as_deref());
                    let needs = prop.as_ref().and_then(|p| p.demand[i]);
                    let limit = match prop {
                        Some(p) if acts => p.limits[i],
                        _ => c.limit,
                    };
                    ls_demand += match c.usage {
                        _ if bursting => limit,
                        _ if pressed.is_some() => needs.map_or(limit, |n| n.min(limit)),
                        Some(u) => limit.min(MilliCpu(ceil_div(u.0 * 100, a.target_util()))),
                        None => limit,
                    };
                    if !acts {
                        continue;
                    }
                    if let Some(why) = pressed {
                        pressure.push(why.to_string());
                    } else if bursting {
                        pressure.push(format!("{}/{} bursting", a.pod.name, c.input.name));
                    }
                }
                Role::Batch => {
                    let used = c.usage.unwrap_or(c.limit).min(c.limit);
                    batch_usage += used;
                    // What was lent stays claimed until it is taken back.
                    batch_claim += if c.limit > c.orig_limit {
                        c.limit
                    } else {
                        used
                    };
                    batch_limits += c.limit;
                }
            }
        }
    }
    let allowance = capacity
        .saturating_sub(others)
        .saturating_sub(ls_demand)
        .max(batch_floors);
    let contention = others + ls_demand + batch_usage > capacity;
    let summary = format!(
        "node {}: allocatable {}, reserve {}, others {}, latency-sensitive demand {}, batch usage {} (limits {}, floors {}) → batch allowance {}; contention {}; pressure {}{}",
        node.name,
        node.allocatable,
        node.reserve,
        others,
        ls_demand,
        batch_usage,
        batch_limits,
        batch_floors,
        allowance,
        if contention { "yes" } else { "no" },
        if pressure.is_empty() {
            "none".to_string()
        } else {
            pressure.join(", ")
        },
        if blind.is_empty() {
            String::new()
        } else {
            format!("; blind: {}", blind.join(", "))
        },
    );

    // 4. Batch: throttle under pressure and contention, release without pressure.
    let batch = BatchPlan {
        pods: &pods,
        config,
        now,
        allowance,
        batch_limits,
        pressure: !pressure.is_empty(),
        contention,
        capacity,
        idle: capacity.saturating_sub(others + ls_demand + batch_claim),
        calm: pods.iter().zip(&proposals).all(|(a, prop)| {
            let settle = config.sample_interval.max(Duration::from_secs(u64::from(
                a.pod.policy.latency.signals.for_seconds,
            )));
            // Only pods whose decisions are put in force (a Recommend-mode pod proposes a
            // raise every pass, which is never written: it takes no room).
            a.pod.role() != Role::LatencySensitive
                || a.pod.policy.mode != Mode::Auto
                || (a.pod.last_change.is_none_or(|t| dur(now, t) >= settle)
                    && a.containers.iter().enumerate().all(|(i, c)| {
                        let orig = c.input.original();
                        c.input
                            .current
                            .weight
                            .is_none_or(|w| Some(w) <= orig.effective_weight())
                            && prop.as_ref().is_none_or(|p| {
                                p.limits[i] <= c.limit
                                    && !matches!(p.weights[i], WeightChange::Raise(_))
                            })
                    }))
        }),
        why: format!(
            "latency-sensitive pods need {ls_demand} ({}), others {others}, batch uses {batch_usage} of {capacity} available",
            pressure.join(", ")
        ),
    };
    let batch_limits_new = batch.plan();

    // 5. Assemble per-pod decisions.
    let decisions = pods
        .iter()
        .enumerate()
        .map(|(i, a)| match &a.state {
            PodState::Skip(reason) => PodDecision {
                pod: a.pod.name.clone(),
                action: Action::Skip,
                changes: vec![],
                reason: reason.clone(),
            },
            PodState::Hold(reason) => none(a, reason.clone()),
            PodState::Active => match a.pod.role() {
                Role::LatencySensitive => match &proposals[i] {
                    Some(p) => finish_latency(a, p),
                    None => none(a, format!("{}: no change", a.pod.name)),
                },
                Role::Batch => finish_batch(a, &batch_limits_new[i]),
            },
        })
        .collect();

    NodeDecision {
        node: node.name.clone(),
        pods: decisions,
        summary,
    }
}

// ---------------------------------------------------------------------------------------------
// Assessment

enum PodState {
    /// Cannot be governed: the reason says why.
    Skip(String),
    /// Governed, but nothing may change now (resize outstanding, ...).
    Hold(String),
    Active,
}

struct Assessed<'a> {
    pod: &'a PodInput,
    actuator: Actuator,
    state: PodState,
    containers: Vec<ContainerView<'a>>,
    /// Some governed container has no fresh usage sample.
    blind: bool,
    /// Time since the newest sample of any governed container (None: never sampled).
    blind_for: Option<Duration>,
    /// CPU used by governed containers the actuator cannot govern (no CPU limit on the resize
    /// path): counted like an ungoverned pod's demand.
    untracked: MilliCpu,
}

impl Assessed<'_> {
    fn target_util(&self) -> u64 {
        u64::from(self.pod.policy.latency.target_utilization.max(1))
    }

    /// Whether a throttle of this batch pod will really be put in force now.
    fn throttleable(&self) -> bool {
        matches!(self.state, PodState::Active) && !self.blind && self.pod.policy.mode == Mode::Auto
    }
}

struct ContainerView<'a> {
    input: &'a ContainerInput,
    /// The limit in force; a container without one (batch, on the node agent's path) counts
    /// with the node's allocatable CPU, all it could use.
    limit: MilliCpu,
    /// The limit to restore and to measure throttles against (the allocatable CPU when the
    /// original has no limit).
    orig_limit: MilliCpu,
    /// The original has no limit: a release that reaches `orig_limit` removes the limit.
    orig_unlimited: bool,
    /// Latest fresh usage, capped at the limit (a container cannot use more than its limit).
    usage: Option<MilliCpu>,
    /// Fresh samples, oldest first.
    fresh: &'a [Sample],
}

fn assess<'a>(
    pod: &'a PodInput,
    node: &NodeInput,
    config: &EngineConfig,
    now: Timestamp,
) -> Assessed<'a> {
    let stale_before = sub(now, config.staleness());
    let mut containers = vec![];
    let mut unlimited = vec![];
    let mut untracked = MilliCpu::ZERO;
    let batch_on_agent = pod.role() == Role::Batch && node.actuator == Actuator::NodeAgent;
    for c in &pod.containers {
        if !pod.policy.governs(&c.name) {
            continue;
        }
        let start = c.samples.partition_point(|s| s.time < stale_before);
        let fresh = &c.samples[start..];
        let all = node.allocatable.max(MilliCpu(1));
        let limit = match c.current.limit.filter(|l| *l > MilliCpu::ZERO) {
            Some(l) => l,
            None if batch_on_agent && pod.qos != QosClass::BestEffort => all,
            None => {
                unlimited.push(c.name.as_str());
                let used = fresh.last().map_or(MilliCpu::ZERO, |s| s.usage);
                untracked += used.max(c.current.request.unwrap_or(MilliCpu::ZERO));
                continue;
            }
        };
        let orig = c.original();
        let orig_unlimited = orig.limit.is_none_or(|l| l == MilliCpu::ZERO);
        containers.push(ContainerView {
            input: c,
            limit,
            orig_limit: if orig_unlimited {
                all
            } else {
                orig.limit.unwrap_or(limit)
            },
            orig_unlimited,
            usage: fresh.last().map(|s| s.usage.min(limit)),
            fresh,
        });
    }
    let blind = containers.iter().any(|c| c.fresh.is_empty());
    let newest = containers
        .iter()
        .filter_map(|c| c.input.samples.last().map(|s| s.time))
        .max();
    let blind_for = newest.map(|t| dur(now, t));
    let name = &pod.name;
    let state = if pod.qos == QosClass::BestEffort {
        PodState::Skip(format!(
            "{name}: BestEffort pod cannot be governed: it has no CPU request or limit to resize (give its containers a CPU request and limit)"
        ))
    } else if containers.is_empty() {
        PodState::Skip(if unlimited.is_empty() {
            format!("{name}: none of its containers is named in spec.containers")
        } else if pod.role() == Role::Batch {
            format!(
                "{name}: no governed container has a CPU limit ({}), and a resize cannot add one: counted with its usage, not throttled (the node agent can throttle it)",
                unlimited.join(", ")
            )
        } else {
            format!(
                "{name}: no governed container has a CPU limit ({}): there is nothing to grow",
                unlimited.join(", ")
            )
        })
    } else {
        match pod.resize {
            ResizeState::Idle => PodState::Active,
            ResizeState::InProgress => {
                PodState::Hold(format!("{name}: waiting for the resize in progress"))
            }
            ResizeState::Deferred => PodState::Hold(format!(
                "{name}: waiting for the deferred resize (the kubelet retries when the node has room)"
            )),
            ResizeState::Infeasible => PodState::Hold(format!(
                "{name}: the last resize was Infeasible on this node; not retried until the pod or its BurstScaler changes"
            )),
        }
    };
    Assessed {
        pod,
        actuator: node.actuator,
        state,
        containers,
        blind,
        blind_for,
        untracked,
    }
}

// ---------------------------------------------------------------------------------------------
// Node signals

/// A node signal that stayed at or above its threshold.
#[derive(Debug, Clone, Copy)]
struct Sustained {
    /// The lowest value over the run (it stayed at least this high).
    value: Permille,
    /// Wall time the run covers, up to the newest sample.
    lasted: Duration,
}

/// The run of newest samples whose signal (`pick`) is at or above `threshold`, without gaps
/// (a sample whose interval does not reach back to the previous one within `slack` ends it).
fn sustained(
    samples: &[Sample],
    pick: fn(&NodeSignals) -> Option<Permille>,
    threshold: Permille,
    slack: Duration,
) -> Option<Sustained> {
    let newest = samples.last()?.time;
    let mut run: Option<Sustained> = None;
    let mut next_start: Option<Timestamp> = None;
    for s in samples.iter().rev() {
        let Some(sig) = s.signals else { break };
        let Some(v) = pick(&sig).filter(|v| *v >= threshold) else {
            break;
        };
        if next_start.is_some_and(|start| s.time < sub(start, slack)) {
            break;
        }
        let start = sub(s.time, sig.interval);
        next_start = Some(start);
        run = Some(Sustained {
            value: run.map_or(v, |r| r.value.min(v)),
            lasted: dur(newest, start),
        });
    }
    run
}

fn throttled_of(s: &NodeSignals) -> Option<Permille> {
    s.throttled
}

fn pressure_of(s: &NodeSignals) -> Option<Permille> {
    s.pressure
}

fn threshold(percent: u32) -> Permille {
    Permille(u16::try_from(percent.min(100) * 10).unwrap_or(1000))
}

// ---------------------------------------------------------------------------------------------
// Latency-sensitive pods

/// What happens to a container's CPU weight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WeightChange {
    /// As the request and limit change (a raised weight is kept while above the request).
    Keep,
    /// Raised for starvation by shares.
    Raise(MilliCpu),
    /// Back to the original after a quiet period.
    Restore,
}

struct LsProposal {
    /// New limit per governed container (index as in `Assessed::containers`).
    limits: Vec<MilliCpu>,
    /// New weight per governed container.
    weights: Vec<WeightChange>,
    /// Whether each container is bursting (wants to grow its limit).
    bursting: Vec<bool>,
    /// Why each container presses on the node (short of CPU and nothing more to do for it
    /// itself): batch pods yield for it.
    pressed: Vec<Option<String>>,
    /// What each container needs from the node when it is not its limit: a grown container
    /// that still needs more than its original limit needs its recent peak at target.
    demand: Vec<Option<MilliCpu>>,
    /// Reason per container (empty when it does not change).
    reasons: Vec<String>,
    /// Wanted growth that node capacity cut, per container.
    wanted: Vec<MilliCpu>,
}

fn propose_latency(a: &Assessed<'_>, config: &EngineConfig, now: Timestamp) -> LsProposal {
    let policy = &a.pod.policy;
    let n = a.containers.len();
    let mut p = LsProposal {
        limits: a.containers.iter().map(|c| c.limit).collect(),
        weights: vec![WeightChange::Keep; n],
        bursting: vec![false; n],
        pressed: vec![None; n],
        demand: vec![None; n],
        reasons: vec![String::new(); n],
        wanted: a.containers.iter().map(|c| c.limit).collect(),
    };
    if a.blind {
        // Blind is safe: never shrink, never grow without evidence.
        for (i, c) in a.containers.iter().enumerate() {
            if c.fresh.is_empty() {
                p.reasons[i] = format!(
                    "{}/{}: no fresh usage sample: holding limit {}",
                    a.pod.name, c.input.name, c.limit
                );
            }
        }
        return p;
    }
    let target = a.target_util();
    let threshold_pct = u64::from(policy.latency.burst_threshold);
    let signals = &policy.latency.signals;
    let signal_for = Duration::from_secs(u64::from(signals.for_seconds));
    let up = &policy.behavior.scale_up;
    for (i, c) in a.containers.iter().enumerate() {
        let who = format!("{}/{}", a.pod.name, c.input.name);
        let limit = c.limit;
        let step_cap = MilliCpu(limit.0 + limit.0 * u64::from(up.max_step_percent) / 100);
        // Only samples taken after the last change count: earlier ones saw the old CPU.
        // The newest is fresh (a blind container returned above); runs reach back as far as
        // the samples do, without a gap longer than the staleness bound. (Reading only the
        // fresh samples — two sampling intervals — made `forSeconds` of 3 s on 1-s samples
        // depend on tick jitter, and longer windows unreachable: found by
        // `experiments run agent`.)
        let all = &c.input.samples[..];
        let since_change = match a.pod.last_change {
            Some(t) => &all[all.partition_point(|s| s.time <= t)..],
            None => all,
        };
        let grow = |peak: MilliCpu| -> (MilliCpu, &'static str) {
            let ideal = MilliCpu(ceil_div(peak.0 * 100, target));
            let new = ideal.min(policy.max).min(step_cap).max(policy.min);
            let cap = if ideal > policy.max && new == policy.max {
                " (capped by spec.cpu.max)"
            } else if ideal > step_cap && new == step_cap {
                " (capped by scaleUp.maxStepPercent)"
            } else {
                ""
            };
            (new, cap)
        };

        // a. Usage burst: the newest samples at or above the threshold, enough of them, for
        //    long enough.
        let run_len = {
            let mut n = 0;
            let mut newer: Option<Timestamp> = None;
            for s in since_change.iter().rev() {
                if s.usage.0 * 100 < limit.0 * threshold_pct
                    || newer.is_some_and(|t| dur(t, s.time) > config.staleness())
                {
                    break;
                }
                newer = Some(s.time);
                n += 1;
            }
            n
        };
        let run = &since_change[since_change.len() - run_len..];
        let long_enough = up.stabilization_seconds == 0
            || run.first().is_some_and(|s| {
                s.time
                    <= sub(
                        now,
                        Duration::from_secs(u64::from(up.stabilization_seconds)),
                    )
            });
        if run_len as u32 >= policy.latency.burst_samples && long_enough && limit < policy.max {
            let peak = run
                .iter()
                .map(|s| s.usage.min(limit))
                .max()
                .unwrap_or(limit);
            let (new, cap) = grow(peak);
            if new > limit {
                p.bursting[i] = true;
                p.limits[i] = new;
                p.wanted[i] = new;
                p.reasons[i] = format!(
                    "{who}: cpu burst {}% of {limit} limit for {run_len} sample{} → limit {new}{cap}",
                    pct(peak, limit),
                    if run_len == 1 { "" } else { "s" },
                );
                continue;
            }
        }

        // b. Throttled: the limit bites within the sampling window (bursts shorter than a
        //    sample). Grow the limit as for a burst at the limit; at spec.cpu.max, press.
        // A signal at or above `percent` for `forSeconds`, and how it reads in a reason.
        let held = |pick: fn(&NodeSignals) -> Option<Permille>, percent: u32, what: &str| {
            sustained(
                since_change,
                pick,
                threshold(percent),
                config.sample_interval,
            )
            .filter(|s| s.lasted >= signal_for)
            .map(|s| {
                format!(
                    "{what} {} ≥ {percent}% for {}s",
                    s.value,
                    s.lasted.as_secs()
                )
            })
        };
        if let Some(seen) = held(throttled_of, signals.throttled_percent, "throttled share") {
            let (new, cap) = grow(limit);
            if limit < policy.max && new > limit {
                p.bursting[i] = true;
                p.limits[i] = new;
                p.wanted[i] = new;
                p.reasons[i] = format!("{who}: {seen} → limit {new}{cap}");
            } else {
                let why = format!("{who}: {seen} at spec.cpu.max {}", policy.max);
                p.reasons[i] = format!("{why}: batch pods yield");
                p.pressed[i] = Some(why);
            }
            continue;
        }

        // c. Starved by CPU shares: runnable but waiting, without being throttled. Raise the
        //    weight first (to the limit: beyond it the container could not use the share);
        //    only if, with the weight at its limit, the pressure stays at or above
        //    `yieldPressurePercent` does the node press on batch pods. A raised weight leaves
        //    some wake-up wait (E2: 15–25 % at a p99 of 10 ms), which throttling batch pods
        //    would buy back only at a large cost to them.
        if let Some(seen) = held(pressure_of, signals.cpu_pressure_percent, "CPU pressure") {
            let weight = weight_of(c);
            let cap = limit.min(policy.max.max(weight));
            let yield_at = signals
                .yield_pressure_percent
                .max(signals.cpu_pressure_percent);
            // Within 1m of the cap counts as at it: the kernel's shares and the resize path's
            // request (kept just below a Burstable limit) round it.
            if weight.0 + 1 < cap.0 {
                p.weights[i] = WeightChange::Raise(cap);
                p.reasons[i] = format!(
                    "{who}: {seen}, not throttled: starved by CPU shares → weight {weight} → {cap} (its limit)"
                );
            } else if let Some(hard) = held(pressure_of, yield_at, "CPU pressure") {
                let why = format!("{who}: {hard} with its weight at its limit {cap}");
                p.reasons[i] = format!("{why}: batch pods yield");
                p.pressed[i] = Some(why);
            } else {
                p.reasons[i] = format!(
                    "{who}: {seen} with its weight at its limit {cap}, below yieldPressurePercent {yield_at}%: batch pods keep their CPU"
                );
            }
            continue;
        }

        // d. Still needs its growth: a container grown above its original limit whose peak
        //    usage over the scale-down window, at target, is above that original presses with
        //    that need (the peak, not the latest sample, so an alternating load does not make
        //    batch pods flap). Otherwise the growth is no longer needed, and batch pods get
        //    their CPU back while it steps down.
        if limit > c.orig_limit && !c.orig_unlimited {
            let window =
                Duration::from_secs(u64::from(policy.behavior.scale_down.stabilization_seconds));
            let all = &c.input.samples;
            let recent = &all[all.partition_point(|s| s.time < sub(now, window))..];
            let peak = recent.iter().map(|s| s.usage.min(limit)).max();
            if let Some(peak) = peak {
                let need = MilliCpu(ceil_div(peak.0 * 100, target)).min(limit);
                if need > c.orig_limit {
                    p.demand[i] = Some(need);
                    p.pressed[i] = Some(format!(
                        "{who}: grown to {limit}, still needs {need} (peak {peak} in {}s at {target}% target) above its original {}",
                        window.as_secs(),
                        c.orig_limit
                    ));
                }
            }
        }

        // e. Quiet.
        quiet(a, c, i, &mut p, config, now);
    }
    p
}

/// The weight in force (the kernel's minimum counts as 0).
fn weight_of(c: &ContainerView<'_>) -> MilliCpu {
    c.input.current.effective_weight().unwrap_or(MilliCpu::ZERO)
}

/// Quiet periods: when the pod has not been changed for `scaleDown.stabilizationSeconds` and
/// samples cover that window without a gap, step the limit down toward the larger of usage at
/// target and the recommendation (never holding it above the original for the
/// recommendation's sake), and give a raised weight back when no sample of the window showed
/// CPU pressure.
fn quiet(
    a: &Assessed<'_>,
    c: &ContainerView<'_>,
    i: usize,
    p: &mut LsProposal,
    config: &EngineConfig,
    now: Timestamp,
) {
    let policy = &a.pod.policy;
    let down = &policy.behavior.scale_down;
    let who = format!("{}/{}", a.pod.name, c.input.name);
    let limit = c.limit;
    let target = a.target_util();
    let window = Duration::from_secs(u64::from(down.stabilization_seconds));
    let window_start = sub(now, window);
    if a.pod.last_change.is_some_and(|t| t > window_start) {
        return;
    }
    let samples = &c.input.samples;
    let covered = samples.first().is_some_and(|s| s.time <= window_start);
    if !covered {
        return;
    }
    let from = samples.partition_point(|s| s.time < window_start);
    // No gap longer than the staleness bound inside the window (one sample after a long
    // blind gap is no quiet window).
    let gapless = samples[from.saturating_sub(1)..]
        .windows(2)
        .all(|w| dur(w[1].time, w[0].time) <= config.staleness());
    if !gapless {
        return;
    }
    let in_window = &samples[from..];
    let mut reasons = vec![];

    // A raised weight: what is in force differs from what the weight's restore would put in
    // force at this limit (on the resize path, a request above its ratio).
    let restored = change(
        a,
        c,
        limit,
        WeightChange::Restore,
        policy.latency.request_policy,
    )
    .to;
    let raised = restored.effective_weight() < c.input.current.effective_weight();
    if raised {
        let limit_pct = threshold(policy.latency.signals.cpu_pressure_percent);
        let pressed = in_window.iter().any(|s| {
            s.signals
                .and_then(|g| g.pressure)
                .is_some_and(|v| v >= limit_pct)
        });
        if !pressed {
            p.weights[i] = WeightChange::Restore;
            reasons.push(format!(
                "no CPU pressure for {}s → weight back to {}",
                window.as_secs(),
                c.input
                    .original()
                    .effective_weight()
                    .unwrap_or(MilliCpu::ZERO)
            ));
        }
    }

    if limit > policy.min {
        let peak = in_window
            .iter()
            .map(|s| s.usage.min(limit))
            .max()
            .unwrap_or(limit);
        let by_usage = MilliCpu(ceil_div(peak.0 * 100, target));
        let by_rec = c
            .input
            .recommendation
            .map(|r| request_to_limit(r.target, a.pod.qos, c.input.original()).min(c.orig_limit));
        let goal = by_usage
            .max(by_rec.unwrap_or(MilliCpu::ZERO))
            .clamp(policy.min, policy.max);
        if goal < limit {
            let step_floor = MilliCpu(
                limit
                    .0
                    .saturating_sub(limit.0 * u64::from(down.max_step_percent) / 100),
            );
            let new = goal.max(step_floor);
            if new < limit {
                p.limits[i] = new;
                p.wanted[i] = new;
                let rec = by_rec.map_or(String::new(), |r| format!(", recommendation {r}"));
                reasons.push(format!(
                    "usage at most {peak} ({}% of {limit} limit) for {}s → limit {new} (toward {goal}: usage at {target}% target{rec})",
                    pct(peak, limit),
                    window.as_secs(),
                ));
            }
        }
    }
    if !reasons.is_empty() {
        p.reasons[i] = format!("{who}: {}", reasons.join("; "));
    }
}

/// The limit that gives a container the request `request`, keeping its request:limit ratio.
fn request_to_limit(request: MilliCpu, qos: QosClass, original: CpuResources) -> MilliCpu {
    match (qos, original.request, original.limit) {
        (QosClass::Guaranteed, _, _) => request,
        (_, Some(r), Some(l)) if r.0 > 0 => MilliCpu(ceil_div(request.0 * l.0, r.0)),
        _ => request,
    }
}

/// Cuts latency-sensitive growth to what the node can promise. Pods in mode Auto are served
/// before pods that are only recommended, then the most starved containers (highest
/// usage/limit).
fn grant_growth(
    pods: &[Assessed<'_>],
    proposals: &mut [Option<LsProposal>],
    room: &mut MilliCpu,
    capacity: MilliCpu,
    committed: MilliCpu,
) {
    let mut growth: Vec<(usize, usize, bool, u64)> = vec![];
    for (pi, prop) in proposals.iter().enumerate() {
        if let Some(p) = prop {
            for (ci, c) in pods[pi].containers.iter().enumerate() {
                if p.bursting[ci] {
                    let urgency = c.usage.map_or(0, |u| u.0 * 1000 / c.limit.0.max(1));
                    let acts = pods[pi].pod.policy.mode == Mode::Auto;
                    growth.push((pi, ci, acts, urgency));
                }
            }
        }
    }
    growth.sort_by(|a, b| {
        b.2.cmp(&a.2)
            .then(b.3.cmp(&a.3))
            .then(a.0.cmp(&b.0))
            .then(a.1.cmp(&b.1))
    });
    for (pi, ci, _, _) in growth {
        let Some(p) = proposals[pi].as_mut() else {
            continue;
        };
        let limit = pods[pi].containers[ci].limit;
        let want = p.limits[ci].saturating_sub(limit);
        let give = want.min(*room);
        *room = room.saturating_sub(give);
        if give < want {
            let who = format!(
                "{}/{}",
                pods[pi].pod.name, pods[pi].containers[ci].input.name
            );
            let msg = format!(
                "node capacity: {} available, {} already promised to others, batch floors and latency-sensitive limits",
                capacity, committed
            );
            if give == MilliCpu::ZERO {
                p.limits[ci] = limit;
                p.reasons[ci] = format!(
                    "{who}: bursting, wants limit {}, but the node has no CPU to give ({msg})",
                    p.wanted[ci]
                );
            } else {
                p.limits[ci] = limit + give;
                p.reasons[ci] = format!(
                    "{} → limit {} (capped by {msg})",
                    p.reasons[ci].split(" → ").next().unwrap_or(&who),
                    p.limits[ci]
                );
            }
        }
    }
}

fn finish_latency(a: &Assessed<'_>, p: &LsProposal) -> PodDecision {
    let mut changes = vec![];
    let mut up = false;
    for (i, c) in a.containers.iter().enumerate() {
        let policy = a.pod.policy.latency.request_policy;
        if p.limits[i] == c.limit && p.weights[i] == WeightChange::Keep {
            continue;
        }
        let ch = change(a, c, p.limits[i], p.weights[i], policy);
        if ch.to != ch.from {
            up |= p.limits[i] > c.limit || matches!(p.weights[i], WeightChange::Raise(_));
            changes.push(ch);
        }
    }
    let reasons: Vec<&str> = p
        .reasons
        .iter()
        .filter(|r| !r.is_empty())
        .map(String::as_str)
        .collect();
    if changes.is_empty() {
        return none(
            a,
            if reasons.is_empty() {
                format!(
                    "{}: within bounds, no burst, nothing to step down",
                    a.pod.name
                )
            } else {
                reasons.join("; ")
            },
        );
    }
    PodDecision {
        pod: a.pod.name.clone(),
        action: if up {
            Action::ScaleUp
        } else {
            Action::ScaleDown
        },
        changes,
        reason: reasons.join("; "),
    }
}

// ---------------------------------------------------------------------------------------------
// Batch pods

struct BatchPlan<'a, 'b> {
    pods: &'b [Assessed<'a>],
    config: &'b EngineConfig,
    now: Timestamp,
    allowance: MilliCpu,
    batch_limits: MilliCpu,
    pressure: bool,
    contention: bool,
    /// allocatable − reserve.
    capacity: MilliCpu,
    /// CPU nobody uses or was lent: capacity − others − latency-sensitive demand − batch
    /// usage (a borrowed limit counted in full).
    idle: MilliCpu,
    /// No latency-sensitive container has a raised weight (it was starved recently), grows in
    /// this pass, or was changed less than `signals.forSeconds` (and one sampling interval)
    /// ago, before its signals could see its new CPU: only then may batch pods borrow.
    calm: bool,
    why: String,
}

/// New limit and reason per governed batch container.
type BatchLimits = Vec<(MilliCpu, String)>;

impl BatchPlan<'_, '_> {
    fn plan(&self) -> Vec<BatchLimits> {
        let mut out: Vec<BatchLimits> = self
            .pods
            .iter()
            .map(|a| {
                a.containers
                    .iter()
                    .map(|c| (c.limit, String::new()))
                    .collect()
            })
            .collect();
        let active =
            |a: &Assessed<'_>| a.pod.role() == Role::Batch && matches!(a.state, PodState::Active);

        // Under pressure, borrowed CPU goes back first, at once, whatever the contention.
        if self.pressure {
            self.take_back(&mut out, &active);
        }
        let limits: MilliCpu = self
            .pods
            .iter()
            .zip(&out)
            .filter(|(a, _)| a.pod.role() == Role::Batch)
            .flat_map(|(_, o)| o.iter().map(|(l, _)| *l))
            .sum();
        if self.pressure && self.contention && limits > self.allowance {
            self.throttle(&mut out, &active, limits);
        } else if !self.pressure && self.calm {
            self.release(&mut out, &active, None);
            self.borrow(&mut out, &active);
        } else if self.batch_limits < self.allowance {
            // Under pressure, or soon after it (a latency-sensitive pod's weight is still
            // raised, or it grows): throttles are given back only within the allowance. The
            // pressure a throttle relieved is gone *because of* the throttle; giving everything
            // back at once brings it straight back (on a 1 s loop: throttle, release, release,
            // …, throttle again, every few seconds). What latency-sensitive pods use (÷ their
            // target) stays theirs; once they use less, batch gets it back.
            self.release(
                &mut out,
                &active,
                Some(self.allowance.saturating_sub(self.batch_limits)),
            );
        }

        // Blind: never tightened (said so under pressure); blind too long: that pod's
        // throttle is released whatever else holds.
        for (pi, a) in self.pods.iter().enumerate() {
            if !active(a) || !a.blind {
                continue;
            }
            if self.pressure {
                for (ci, c) in a.containers.iter().enumerate() {
                    out[pi][ci].1 = format!(
                        "{}/{}: no fresh usage sample: no throttle is tightened (limit {} held)",
                        a.pod.name, c.input.name, c.limit
                    );
                }
            }
            let timeout = self.config.blind_release_after;
            if a.blind_for.is_some_and(|d| d >= timeout) && self.may_release(a) {
                for (ci, c) in a.containers.iter().enumerate() {
                    let orig = c.orig_limit;
                    if out[pi][ci].0 < orig {
                        let new = (c.limit + self.step(orig)).min(orig);
                        out[pi][ci] = (
                            new,
                            format!(
                                "{}/{}: no usage for {}s (release after {}s) → releasing throttle {} → {new} (original {})",
                                a.pod.name,
                                c.input.name,
                                a.blind_for.map_or(0, |d| d.as_secs()),
                                timeout.as_secs(),
                                c.limit,
                                show_orig(c),
                            ),
                        );
                    }
                }
            }
        }
        out
    }

    fn step(&self, orig: MilliCpu) -> MilliCpu {
        MilliCpu((orig.0 * u64::from(self.config.release_step_percent) / 100).max(1))
    }

    /// Releases are paced: one step per sampling interval per pod.
    fn may_release(&self, a: &Assessed<'_>) -> bool {
        a.pod
            .last_change
            .is_none_or(|t| dur(self.now, t) >= self.config.sample_interval)
    }

    /// Lowers batch limits until their sum fits the allowance. Pods whose throttle is put in
    /// force (mode Auto, fresh metrics) yield first, so the room is really made; pods only
    /// recommended follow (what would happen to them). Blind pods are held: no throttle is
    /// tightened without evidence. Then: lowest `batch.priority`, the pod using the most CPU
    /// (most CPU back for fewest pods changed), name. Within a pod, the busiest container
    /// first. Never below the floor.
    fn throttle(
        &self,
        out: &mut [BatchLimits],
        active: &dyn Fn(&Assessed<'_>) -> bool,
        limits: MilliCpu,
    ) {
        let mut need = limits.saturating_sub(self.allowance);
        let order: Vec<usize> = (0..self.pods.len())
            .filter(|&i| active(&self.pods[i]) && !self.pods[i].blind)
            .collect();
        let mut order = order;
        let pod_usage = |a: &Assessed<'_>| -> MilliCpu {
            a.containers
                .iter()
                .map(|c| c.usage.unwrap_or(c.limit))
                .sum()
        };
        order.sort_by(|&x, &y| {
            let (a, b) = (&self.pods[x], &self.pods[y]);
            b.throttleable()
                .cmp(&a.throttleable())
                .then(a.pod.policy.priority.cmp(&b.pod.policy.priority))
                .then(pod_usage(b).cmp(&pod_usage(a)))
                .then(a.pod.name.cmp(&b.pod.name))
        });
        for pi in order {
            let a = &self.pods[pi];
            let mut cs: Vec<usize> = (0..a.containers.len()).collect();
            cs.sort_by_key(|&ci| {
                std::cmp::Reverse(a.containers[ci].usage.unwrap_or(MilliCpu::ZERO))
            });
            for ci in cs {
                if need == MilliCpu::ZERO {
                    return;
                }
                let c = &a.containers[ci];
                let from = out[pi][ci].0;
                let floor = a.pod.policy.floor.min(from);
                let cut = need.min(from.saturating_sub(floor));
                if cut == MilliCpu::ZERO {
                    continue;
                }
                need = need.saturating_sub(cut);
                let new = from.saturating_sub(cut);
                out[pi][ci] = (
                    new,
                    format!(
                        "{}/{}: throttled {} → {new} (floor {}, priority {}): {}",
                        a.pod.name,
                        c.input.name,
                        show_limit(c),
                        a.pod.policy.floor,
                        a.pod.policy.priority,
                        self.why
                    ),
                );
            }
        }
    }

    /// Orders pod indices for giving CPU (release, borrow): highest `batch.priority` first,
    /// then by name.
    fn highest_priority_first(&self, order: &mut [usize]) {
        order.sort_by(|&x, &y| {
            let (a, b) = (&self.pods[x], &self.pods[y]);
            b.pod
                .policy
                .priority
                .cmp(&a.pod.policy.priority)
                .then(a.pod.name.cmp(&b.pod.name))
        });
    }

    /// Takes every borrowed limit (above the original) back to the original.
    fn take_back(&self, out: &mut [BatchLimits], active: &dyn Fn(&Assessed<'_>) -> bool) {
        for (pi, a) in self.pods.iter().enumerate() {
            if !active(a) {
                continue;
            }
            for (ci, c) in a.containers.iter().enumerate() {
                if c.limit > c.orig_limit {
                    out[pi][ci] = (
                        c.orig_limit,
                        format!(
                            "{}/{}: borrowed CPU taken back at once: limit {} → {} (its original): {}",
                            a.pod.name, c.input.name, c.limit, c.orig_limit, self.why
                        ),
                    );
                }
            }
        }
    }

    /// Without pressure, batch pods that opted in and are held by their limit (using ≥ 90 % of
    /// it) grow above their original limit, one step per sampling interval, into the node's
    /// idle CPU minus the headroom, never above `spec.cpu.max`.
    fn borrow(&self, out: &mut [BatchLimits], active: &dyn Fn(&Assessed<'_>) -> bool) {
        let mut idle = self.idle;
        let mut order: Vec<usize> = (0..self.pods.len())
            .filter(|&i| {
                let a = &self.pods[i];
                active(a) && a.pod.policy.borrow.enabled && !a.blind && self.may_release(a)
            })
            .collect();
        self.highest_priority_first(&mut order);
        for pi in order {
            let a = &self.pods[pi];
            let borrow = &a.pod.policy.borrow;
            let headroom = MilliCpu(self.capacity.0 * u64::from(borrow.headroom_percent) / 100);
            for (ci, c) in a.containers.iter().enumerate() {
                let limit = out[pi][ci].0;
                let held = c.usage.is_some_and(|u| u.0 * 10 >= limit.0 * 9);
                if c.orig_unlimited || limit != c.limit || limit < c.orig_limit || !held {
                    continue;
                }
                let room = idle.saturating_sub(headroom);
                let step = MilliCpu(c.orig_limit.0 * u64::from(borrow.step_percent) / 100);
                let give = step.min(room).min(a.pod.policy.max.saturating_sub(limit));
                if give == MilliCpu::ZERO {
                    continue;
                }
                idle = idle.saturating_sub(give);
                let new = limit + give;
                out[pi][ci] = (
                    new,
                    format!(
                        "{}/{}: no latency-sensitive pressure and {} idle on the node (keeping {headroom} headroom) → borrows: limit {limit} → {new} (original {}, max {})",
                        a.pod.name, c.input.name, self.idle, c.orig_limit, a.pod.policy.max
                    ),
                );
            }
        }
    }

    /// Gives CPU back, one bounded step per pass, highest priority first; within `headroom`
    /// when latency-sensitive pods still need CPU.
    fn release(
        &self,
        out: &mut [BatchLimits],
        active: &dyn Fn(&Assessed<'_>) -> bool,
        headroom: Option<MilliCpu>,
    ) {
        let mut left = headroom;
        let mut order: Vec<usize> = (0..self.pods.len())
            .filter(|&i| active(&self.pods[i]))
            .collect();
        self.highest_priority_first(&mut order);
        for pi in order {
            let a = &self.pods[pi];
            if a.blind || !self.may_release(a) {
                continue;
            }
            for (ci, c) in a.containers.iter().enumerate() {
                let orig = c.orig_limit;
                if orig <= c.limit {
                    continue;
                }
                let mut give = self.step(orig).min(orig.saturating_sub(c.limit));
                if let Some(l) = left.as_mut() {
                    give = give.min(*l);
                    *l = l.saturating_sub(give);
                }
                if give == MilliCpu::ZERO {
                    continue;
                }
                let new = c.limit + give;
                let why = match headroom {
                    None => "no latency-sensitive pressure on the node".to_string(),
                    Some(h) if !self.pressure => format!(
                        "no latency-sensitive pressure on the node, {h} of headroom under the batch allowance {}",
                        self.allowance
                    ),
                    Some(h) => format!(
                        "{h} of headroom under the batch allowance {}",
                        self.allowance
                    ),
                };
                let to = if c.orig_unlimited && new >= orig {
                    "no limit".to_string()
                } else {
                    new.to_string()
                };
                out[pi][ci] = (
                    new,
                    format!(
                        "{}/{}: {why} → limit {} → {to} (original {})",
                        a.pod.name,
                        c.input.name,
                        c.limit,
                        show_orig(c)
                    ),
                );
            }
        }
    }
}

fn show_orig(c: &ContainerView<'_>) -> String {
    if c.orig_unlimited {
        "no limit".to_string()
    } else {
        c.orig_limit.to_string()
    }
}

fn show_limit(c: &ContainerView<'_>) -> String {
    if c.input.current.limit.is_none() {
        "no limit".to_string()
    } else {
        c.limit.to_string()
    }
}

fn finish_batch(a: &Assessed<'_>, limits: &BatchLimits) -> PodDecision {
    let mut changes = vec![];
    let mut down = false;
    let mut borrows = false;
    for (c, (new, _)) in a.containers.iter().zip(limits) {
        if *new != c.limit {
            down |= *new < c.limit;
            borrows |= *new > c.orig_limit;
            changes.push(change(
                a,
                c,
                *new,
                WeightChange::Keep,
                RequestPolicy::LimitOnly,
            ));
        }
    }
    let reasons: Vec<&str> = limits
        .iter()
        .map(|(_, r)| r.as_str())
        .filter(|r| !r.is_empty())
        .collect();
    if changes.is_empty() {
        let throttled = a.containers.iter().any(|c| c.orig_limit > c.limit);
        return none(
            a,
            if !reasons.is_empty() {
                reasons.join("; ")
            } else if throttled {
                format!("{}: throttle held", a.pod.name)
            } else {
                format!("{}: at its original limit", a.pod.name)
            },
        );
    }
    PodDecision {
        pod: a.pod.name.clone(),
        action: if down {
            Action::Throttle
        } else if borrows {
            Action::Borrow
        } else {
            Action::Release
        },
        changes,
        reason: reasons.join("; "),
    }
}

// ---------------------------------------------------------------------------------------------
// Requests, weights and QoS

/// The container change to `new_limit` and the weight `weight`, with the request fitted so the
/// QoS class is kept: Guaranteed keeps request = limit; Burstable keeps request ≤ limit, and
/// keeps it strictly below when it was below originally (so the pod cannot turn Guaranteed).
///
/// Weight: a raised weight is kept while it is above the request (a request that grows past
/// it takes over: the weight follows the request again), and never above the limit. On the
/// resize path the request is the only share lever, so a weight is written as the request.
fn change(
    a: &Assessed<'_>,
    c: &ContainerView<'_>,
    new_limit: MilliCpu,
    weight: WeightChange,
    policy: RequestPolicy,
) -> ContainerChange {
    let orig = c.input.original();
    let orig_req = orig.request.or(c.input.current.request);
    let orig_lim = if c.orig_unlimited {
        None
    } else {
        Some(c.orig_limit)
    };
    let below = |req: MilliCpu| -> MilliCpu {
        let mut req = req.min(new_limit).max(MilliCpu(1));
        if orig_req.zip(orig_lim).is_some_and(|(r, l)| r < l) && req >= new_limit {
            req = MilliCpu(new_limit.0.saturating_sub(1).max(1));
        }
        req
    };
    let mut request = match a.pod.qos {
        // The spec is never written on the node agent's path: a batch pod's request (its
        // shares) stays as it is, only the quota moves.
        _ if a.actuator == Actuator::NodeAgent && a.pod.role() == Role::Batch => {
            c.input.current.request
        }
        QosClass::Guaranteed => Some(new_limit),
        _ => orig_req.map(|r| {
            let wanted = match (a.pod.role(), policy, orig_lim) {
                (Role::LatencySensitive, RequestPolicy::KeepRatio, Some(l)) if l.0 > 0 => {
                    MilliCpu(ceil_div(new_limit.0 * r.0, l.0))
                }
                (Role::LatencySensitive, _, _) if weight == WeightChange::Restore => r,
                (Role::LatencySensitive, _, _) => c.input.current.request.unwrap_or(r),
                (Role::Batch, _, _) => r,
            };
            below(wanted)
        }),
    };
    let mut weight = match weight {
        WeightChange::Raise(w) => Some(w),
        WeightChange::Restore => orig.weight,
        WeightChange::Keep => c.input.current.weight,
    }
    .map(|w| w.min(new_limit))
    .filter(|w| request.is_none_or(|r| *w > r));
    if a.actuator == Actuator::InPlaceResize
        && let Some(w) = weight.take()
        && a.pod.qos != QosClass::Guaranteed
    {
        request = Some(below(request.map_or(w, |r| r.max(w))));
    }
    let limit = if c.orig_unlimited && new_limit >= c.orig_limit {
        None
    } else {
        Some(new_limit)
    };
    ContainerChange {
        container: c.input.name.clone(),
        from: c.input.current,
        to: CpuResources {
            request,
            limit,
            weight,
        },
    }
}

fn none(a: &Assessed<'_>, reason: String) -> PodDecision {
    PodDecision {
        pod: a.pod.name.clone(),
        action: Action::None,
        changes: vec![],
        reason,
    }
}

// ---------------------------------------------------------------------------------------------
// Arithmetic helpers

fn ceil_div(a: u64, b: u64) -> u64 {
    a.div_ceil(b.max(1))
}

fn pct(part: MilliCpu, whole: MilliCpu) -> u64 {
    (part.0 * 100 + whole.0 / 2) / whole.0.max(1)
}

fn sub(t: Timestamp, d: Duration) -> Timestamp {
    let d = jiff::SignedDuration::try_from(d).unwrap_or(jiff::SignedDuration::MAX);
    t.checked_sub(d).unwrap_or(Timestamp::MIN)
}

fn dur(later: Timestamp, earlier: Timestamp) -> Duration {
    Duration::try_from(later.duration_since(earlier)).unwrap_or(Duration::ZERO)
}
