//! One decision pass over one node. See the module documentation of [`crate::engine`] for the
//! rules in prose; this file is their implementation, in the same order.

use std::time::Duration;

use jiff::Timestamp;

use super::model::*;
use crate::api::{RequestPolicy, Role};
use crate::quantity::MilliCpu;

/// Decides the CPU of every governed pod on `node` at time `now`. Pure and deterministic.
pub fn decide(node: &NodeInput, config: &EngineConfig, now: Timestamp) -> NodeDecision {
    let pods: Vec<Assessed<'_>> = node.pods.iter().map(|p| assess(p, config, now)).collect();

    // 1. Latency-sensitive proposals, before capacity.
    let mut proposals: Vec<Option<LsProposal>> = pods
        .iter()
        .map(|a| match (&a.state, a.pod.role()) {
            (PodState::Active, Role::LatencySensitive) => Some(propose_latency(a, now)),
            _ => None,
        })
        .collect();

    // 2. Capacity: what the node can promise latency-sensitive pods once batch pods sit at
    //    their floors. Scale-downs are counted first (they free room).
    let capacity = node.allocatable.saturating_sub(node.reserve);
    let others: MilliCpu = node.ungoverned.iter().map(UngovernedPod::demand).sum();
    let mut batch_floors = MilliCpu::ZERO;
    let mut ls_limits = MilliCpu::ZERO;
    for (a, prop) in pods.iter().zip(&proposals) {
        for (i, c) in a.containers.iter().enumerate() {
            match a.pod.role() {
                Role::Batch => batch_floors += c.limit.min(a.pod.policy.floor),
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

    // 3. Latency-sensitive demand, pressure and batch accounting.
    let mut ls_demand = MilliCpu::ZERO;
    let mut pressure: Vec<String> = vec![];
    let mut blind: Vec<&str> = vec![];
    let mut batch_usage = MilliCpu::ZERO;
    let mut batch_limits = MilliCpu::ZERO;
    for (a, prop) in pods.iter().zip(&proposals) {
        if a.blind && !matches!(a.state, PodState::Skip(_)) {
            blind.push(&a.pod.name);
        }
        for (i, c) in a.containers.iter().enumerate() {
            match a.pod.role() {
                Role::LatencySensitive => {
                    let limit = prop.as_ref().map_or(c.limit, |p| p.limits[i]);
                    let bursting = prop.as_ref().is_some_and(|p| p.bursting[i]);
                    ls_demand += match c.usage {
                        _ if bursting => limit,
                        Some(u) => limit.min(MilliCpu(ceil_div(u.0 * 100, a.target_util()))),
                        None => limit,
                    };
                    if bursting {
                        pressure.push(format!("{}/{} bursting", a.pod.name, c.input.name));
                    } else if c.original_limit.is_some_and(|o| limit > o) {
                        pressure.push(format!(
                            "{}/{} above its original limit",
                            a.pod.name, c.input.name
                        ));
                    }
                }
                Role::Batch => {
                    batch_usage += c.usage.unwrap_or(c.limit).min(c.limit);
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
        node_blind: !blind.is_empty(),
        why: format!(
            "latency-sensitive pods need {ls_demand}, others {others}, batch uses {batch_usage} of {capacity} available"
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
    state: PodState,
    containers: Vec<ContainerView<'a>>,
    /// Some governed container has no fresh usage sample.
    blind: bool,
    /// Time since the newest sample of any governed container (None: never sampled).
    blind_for: Option<Duration>,
}

impl Assessed<'_> {
    fn target_util(&self) -> u64 {
        u64::from(self.pod.policy.latency.target_utilization.max(1))
    }
}

struct ContainerView<'a> {
    input: &'a ContainerInput,
    limit: MilliCpu,
    original_limit: Option<MilliCpu>,
    /// Latest fresh usage, capped at the limit (a container cannot use more than its limit).
    usage: Option<MilliCpu>,
    /// Fresh samples, oldest first.
    fresh: &'a [Sample],
}

fn assess<'a>(pod: &'a PodInput, config: &EngineConfig, now: Timestamp) -> Assessed<'a> {
    let stale_before = sub(now, config.staleness());
    let mut containers = vec![];
    let mut unlimited = vec![];
    for c in &pod.containers {
        if !pod.policy.governs(&c.name) {
            continue;
        }
        let Some(limit) = c.current.limit.filter(|l| *l > MilliCpu::ZERO) else {
            unlimited.push(c.name.as_str());
            continue;
        };
        let start = c.samples.partition_point(|s| s.time < stale_before);
        let fresh = &c.samples[start..];
        containers.push(ContainerView {
            input: c,
            limit,
            original_limit: c.original.and_then(|o| o.limit),
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
        } else {
            format!(
                "{name}: no governed container has a CPU limit ({}): there is nothing to grow or throttle",
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
        state,
        containers,
        blind,
        blind_for,
    }
}

// ---------------------------------------------------------------------------------------------
// Latency-sensitive pods

struct LsProposal {
    /// New limit per governed container (index as in `Assessed::containers`).
    limits: Vec<MilliCpu>,
    /// Whether each container is bursting (wants to grow).
    bursting: Vec<bool>,
    /// Reason per container (empty when it does not change).
    reasons: Vec<String>,
    /// Wanted growth that node capacity cut, per container.
    wanted: Vec<MilliCpu>,
}

fn propose_latency(a: &Assessed<'_>, now: Timestamp) -> LsProposal {
    let policy = &a.pod.policy;
    let n = a.containers.len();
    let mut p = LsProposal {
        limits: a.containers.iter().map(|c| c.limit).collect(),
        bursting: vec![false; n],
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
    let up = &policy.behavior.scale_up;
    let down = &policy.behavior.scale_down;
    for (i, c) in a.containers.iter().enumerate() {
        let who = format!("{}/{}", a.pod.name, c.input.name);
        let limit = c.limit;
        // Burst: the newest samples at or above the threshold, enough of them, for long enough.
        // Only samples taken after the last change count: earlier ones saw the old limit.
        let since_change = match a.pod.last_change {
            Some(t) => &c.fresh[c.fresh.partition_point(|s| s.time <= t)..],
            None => c.fresh,
        };
        let run_len = since_change
            .iter()
            .rev()
            .take_while(|s| s.usage.0 * 100 >= limit.0 * threshold_pct)
            .count();
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
            let ideal = MilliCpu(ceil_div(peak.0 * 100, target));
            let step_cap = MilliCpu(limit.0 + limit.0 * u64::from(up.max_step_percent) / 100);
            let mut new = ideal.min(policy.max).min(step_cap).max(policy.min);
            let mut cap = "";
            if ideal > policy.max && new == policy.max {
                cap = " (capped by spec.cpu.max)";
            } else if ideal > step_cap && new == step_cap {
                cap = " (capped by scaleUp.maxStepPercent)";
            }
            if new <= limit {
                new = limit;
            }
            if new > limit {
                p.bursting[i] = true;
                p.limits[i] = new;
                p.wanted[i] = new;
                p.reasons[i] = format!(
                    "{who}: cpu burst {}% of {limit} limit for {run_len} sample{} → limit {new}{cap}",
                    pct(peak, limit),
                    if run_len == 1 { "" } else { "s" },
                );
            }
            continue;
        }
        // Quiet: step down toward max(usage at target, recommendation), never below min.
        if limit <= policy.min {
            continue;
        }
        let window = Duration::from_secs(u64::from(down.stabilization_seconds));
        let window_start = sub(now, window);
        if a.pod.last_change.is_some_and(|t| t > window_start) {
            continue;
        }
        let samples = &c.input.samples;
        let covered = samples.first().is_some_and(|s| s.time <= window_start);
        if !covered {
            continue;
        }
        let from = samples.partition_point(|s| s.time < window_start);
        let peak = samples[from..]
            .iter()
            .map(|s| s.usage.min(limit))
            .max()
            .unwrap_or(limit);
        let by_usage = MilliCpu(ceil_div(peak.0 * 100, target));
        let by_rec = c
            .input
            .recommendation
            .map(|r| request_to_limit(r.target, a.pod.qos, c.input.original()));
        let goal = by_usage
            .max(by_rec.unwrap_or(MilliCpu::ZERO))
            .clamp(policy.min, policy.max);
        if goal >= limit {
            continue;
        }
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
            p.reasons[i] = format!(
                "{who}: usage at most {peak} ({}% of {limit} limit) for {}s → limit {new} (toward {goal}: usage at {target}% target{rec})",
                pct(peak, limit),
                window.as_secs(),
            );
        }
    }
    p
}

/// The limit that gives a container the request `request`, keeping its request:limit ratio.
fn request_to_limit(request: MilliCpu, qos: QosClass, original: CpuResources) -> MilliCpu {
    match (qos, original.request, original.limit) {
        (QosClass::Guaranteed, _, _) => request,
        (_, Some(r), Some(l)) if r.0 > 0 => MilliCpu(ceil_div(request.0 * l.0, r.0)),
        _ => request,
    }
}

/// Cuts latency-sensitive growth to what the node can promise. Most-starved containers
/// (highest usage/limit) are served first.
fn grant_growth(
    pods: &[Assessed<'_>],
    proposals: &mut [Option<LsProposal>],
    room: &mut MilliCpu,
    capacity: MilliCpu,
    committed: MilliCpu,
) {
    let mut growth: Vec<(usize, usize, u64)> = vec![];
    for (pi, prop) in proposals.iter().enumerate() {
        if let Some(p) = prop {
            for (ci, c) in pods[pi].containers.iter().enumerate() {
                if p.bursting[ci] {
                    let urgency = c.usage.map_or(0, |u| u.0 * 1000 / c.limit.0.max(1));
                    growth.push((pi, ci, urgency));
                }
            }
        }
    }
    growth.sort_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(&b.0)).then(a.1.cmp(&b.1)));
    for (pi, ci, _) in growth {
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
        if p.limits[i] != c.limit {
            up |= p.limits[i] > c.limit;
            let policy = a.pod.policy.latency.request_policy;
            changes.push(change(a, c, p.limits[i], policy));
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
    node_blind: bool,
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

        if self.pressure && self.contention && self.batch_limits > self.allowance {
            if self.node_blind {
                self.hold_all(
                    &mut out,
                    "holding: metrics are stale on this node, so no throttle is tightened",
                );
            } else {
                self.throttle(&mut out, &active);
            }
        } else if !self.pressure {
            self.release(&mut out, &active, None);
        } else if self.batch_limits < self.allowance {
            self.release(
                &mut out,
                &active,
                Some(self.allowance.saturating_sub(self.batch_limits)),
            );
        }

        // Blind too long: release that pod's throttle whatever else holds.
        for (pi, a) in self.pods.iter().enumerate() {
            if !active(a) || !a.blind {
                continue;
            }
            let timeout = self.config.blind_release_after;
            if a.blind_for.is_some_and(|d| d >= timeout) && self.may_release(a) {
                for (ci, c) in a.containers.iter().enumerate() {
                    let orig = c.original_limit.unwrap_or(c.limit);
                    if out[pi][ci].0 < orig {
                        let new = (c.limit + self.step(orig)).min(orig);
                        out[pi][ci] = (
                            new,
                            format!(
                                "{}/{}: no usage for {}s (release after {}s) → releasing throttle {} → {new} (original {orig})",
                                a.pod.name,
                                c.input.name,
                                a.blind_for.map_or(0, |d| d.as_secs()),
                                timeout.as_secs(),
                                c.limit
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

    fn hold_all(&self, out: &mut [BatchLimits], why: &str) {
        for (pi, a) in self.pods.iter().enumerate() {
            for (ci, c) in a.containers.iter().enumerate() {
                if a.pod.role() == Role::Batch {
                    out[pi][ci].1 = format!("{}/{}: {why}", a.pod.name, c.input.name);
                }
            }
        }
    }

    /// Lowers batch limits until their sum fits the allowance. Who yields first: lowest
    /// `batch.priority`, then the pod using the most CPU (most CPU back for fewest pods
    /// changed), then name. Within a pod, the busiest container first. Never below the floor.
    fn throttle(&self, out: &mut [BatchLimits], active: &dyn Fn(&Assessed<'_>) -> bool) {
        let mut need = self.batch_limits.saturating_sub(self.allowance);
        let mut order: Vec<usize> = (0..self.pods.len())
            .filter(|&i| active(&self.pods[i]))
            .collect();
        let pod_usage = |a: &Assessed<'_>| -> MilliCpu {
            a.containers
                .iter()
                .map(|c| c.usage.unwrap_or(c.limit))
                .sum()
        };
        order.sort_by(|&x, &y| {
            let (a, b) = (&self.pods[x], &self.pods[y]);
            a.pod
                .policy
                .priority
                .cmp(&b.pod.policy.priority)
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
                let floor = a.pod.policy.floor.min(c.limit);
                let cut = need.min(c.limit.saturating_sub(floor));
                if cut == MilliCpu::ZERO {
                    continue;
                }
                need = need.saturating_sub(cut);
                let new = c.limit.saturating_sub(cut);
                out[pi][ci] = (
                    new,
                    format!(
                        "{}/{}: throttled {} → {new} (floor {}, priority {}): {}",
                        a.pod.name,
                        c.input.name,
                        c.limit,
                        a.pod.policy.floor,
                        a.pod.policy.priority,
                        self.why
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
        order.sort_by(|&x, &y| {
            let (a, b) = (&self.pods[x], &self.pods[y]);
            b.pod
                .policy
                .priority
                .cmp(&a.pod.policy.priority)
                .then(a.pod.name.cmp(&b.pod.name))
        });
        for pi in order {
            let a = &self.pods[pi];
            if a.blind || !self.may_release(a) {
                continue;
            }
            for (ci, c) in a.containers.iter().enumerate() {
                let Some(orig) = c.original_limit.filter(|o| *o > c.limit) else {
                    continue;
                };
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
                    Some(h) => format!(
                        "{h} of headroom under the batch allowance {}",
                        self.allowance
                    ),
                };
                out[pi][ci] = (
                    new,
                    format!(
                        "{}/{}: {why} → limit {} → {new} (original {orig})",
                        a.pod.name, c.input.name, c.limit
                    ),
                );
            }
        }
    }
}

fn finish_batch(a: &Assessed<'_>, limits: &BatchLimits) -> PodDecision {
    let mut changes = vec![];
    let mut down = false;
    for (c, (new, _)) in a.containers.iter().zip(limits) {
        if *new != c.limit {
            down |= *new < c.limit;
            changes.push(change(a, c, *new, RequestPolicy::LimitOnly));
        }
    }
    let reasons: Vec<&str> = limits
        .iter()
        .map(|(_, r)| r.as_str())
        .filter(|r| !r.is_empty())
        .collect();
    if changes.is_empty() {
        let throttled = a
            .containers
            .iter()
            .any(|c| c.original_limit.is_some_and(|o| o > c.limit));
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
        } else {
            Action::Release
        },
        changes,
        reason: reasons.join("; "),
    }
}

// ---------------------------------------------------------------------------------------------
// Requests and QoS

/// The container change to `new_limit`, with the request fitted so the QoS class is kept:
/// Guaranteed keeps request = limit; Burstable keeps request ≤ limit, and keeps it strictly
/// below when it was below originally (so the pod cannot turn Guaranteed).
fn change(
    a: &Assessed<'_>,
    c: &ContainerView<'_>,
    new_limit: MilliCpu,
    policy: RequestPolicy,
) -> ContainerChange {
    let orig = c.input.original();
    let request = match a.pod.qos {
        QosClass::Guaranteed => Some(new_limit),
        _ => {
            let orig_req = orig.request.or(c.input.current.request);
            let orig_lim = orig.limit.unwrap_or(c.limit);
            orig_req.map(|r| {
                let wanted = match (a.pod.role(), policy) {
                    (Role::LatencySensitive, RequestPolicy::KeepRatio) if orig_lim.0 > 0 => {
                        MilliCpu(ceil_div(new_limit.0 * r.0, orig_lim.0))
                    }
                    (Role::LatencySensitive, _) => c.input.current.request.unwrap_or(r),
                    (Role::Batch, _) => r,
                };
                let mut req = wanted.min(new_limit).max(MilliCpu(1));
                if r < orig_lim && req >= new_limit {
                    req = MilliCpu(new_limit.0.saturating_sub(1).max(1));
                }
                req
            })
        }
    };
    ContainerChange {
        container: c.input.name.clone(),
        from: c.input.current,
        to: CpuResources {
            request,
            limit: Some(new_limit),
            weight: c.input.current.weight,
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
    let secs = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
    t.checked_sub(jiff::SignedDuration::from_secs(secs))
        .unwrap_or(Timestamp::MIN)
}

fn dur(later: Timestamp, earlier: Timestamp) -> Duration {
    Duration::try_from(later.duration_since(earlier)).unwrap_or(Duration::ZERO)
}
