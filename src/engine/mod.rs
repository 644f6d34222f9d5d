//! The decision engine: given one node and how its pods behave, decide the CPU of every governed
//! pod. Pure — no client, no clock, no I/O: `now` and every input are passed in — so the
//! controller, `replay`, the experiments and a node agent all share it, and it is tested and
//! benchmarked in isolation.
//!
//! # Rules, in the order [`decide`] applies them
//!
//! 1. **Assess.** BestEffort pods are skipped with a reason. A governed container without a CPU
//!    limit is governed only if it is batch and the actuator is the node agent (which can
//!    impose a quota): it then counts with the node's allocatable CPU as its limit, and a
//!    release that reaches it removes the quota again. Otherwise it is skipped, and what it
//!    uses (at least its request) is counted like an ungoverned pod's demand. A pod with a
//!    resize in progress, deferred or infeasible is held. A sample older than twice the
//!    sampling interval is stale; a container without a fresh sample is *blind*. Usage is
//!    capped at the limit.
//! 2. **Latency-sensitive signals**, per container, in this order (the first that holds wins;
//!    only samples taken after the pod's last change count — earlier ones saw the old CPU —
//!    so re-deciding on the same samples never acts twice):
//!    - **Burst**: the newest `burstSamples` samples (lasting at least
//!      `scaleUp.stabilizationSeconds`) at or above `burstThreshold` % of the limit: the
//!      limit grows toward `peak ÷ targetUtilization`, bounded by `cpu.max` and by
//!      `scaleUp.maxStepPercent` of the current limit.
//!    - **Throttled** (node signals): the throttled-period share at or above
//!      `signals.throttledPercent` for `signals.forSeconds` without a gap: the limit grows as
//!      for a burst at the limit; at `cpu.max` the container *presses* (batch pods yield).
//!    - **Starved** (node signals): CPU pressure at or above `signals.cpuPressurePercent` for
//!      `signals.forSeconds`: the CPU weight is raised to the limit (request and limit
//!      unchanged); once it is there, the container presses only if its pressure is at or
//!      above `signals.yieldPressurePercent` (40 %, never below `cpuPressurePercent`) for
//!      `forSeconds`. So a starved pod is first given shares, and batch pods are throttled
//!      only if the shares did not end the starvation: a raised weight leaves some wake-up
//!      wait (15–25 % in `experiments` E2, at a p99 of 10 ms) that is no reason to slow
//!      batch work down.
//!    - **Still needs its growth**: a container grown above its original limit whose peak
//!      usage over the scale-down window, at target, is above that original presses with
//!      that need (the peak, not the latest sample: an alternating load must not make batch
//!      pods flap). Once it no longer needs it, batch pods get their CPU back while it steps
//!      down.
//!    - **Quiet**: when the pod has not been changed for `scaleDown.stabilizationSeconds` and
//!      its samples cover that window without a gap longer than the staleness bound, the
//!      limit steps down (at most `scaleDown.maxStepPercent`) toward the larger of
//!      `peak ÷ targetUtilization` over the window and the recommendation (converted to a
//!      limit with the original request:limit ratio, and never above the original limit),
//!      never below `cpu.min`; a raised weight goes back to the original when no sample of
//!      the window showed CPU pressure. Blind pods are never shrunk.
//! 3. **Capacity.** Growth is granted only while the sum of ungoverned demand (max of usage and
//!    request), batch floors and latency-sensitive limits stays ≤ allocatable − reserve: the
//!    node never promises latency-sensitive pods more than it has once batch pods are
//!    throttled to their floors. Only batch pods whose throttle will be put in force (mode
//!    `Auto`, not blind, not held) count at their floor; the others at their limit. A weight
//!    is never above the limit, so the limits already count what a weight raise promises.
//!    Pods in mode `Auto` are served first, then the most starved container (highest
//!    usage/limit).
//! 4. **Batch.** Latency-sensitive *demand* is, per container, its (new) limit when bursting or
//!    pressing (its need when it presses for its growth), else `usage ÷ targetUtilization` (its limit when blind). *Pressure* means a
//!    latency-sensitive container of a pod in mode `Auto` is bursting or pressing (a pod only
//!    recommended never causes a throttle). *Contention* means
//!    others + demand + batch usage > allocatable − reserve. The batch *allowance* is
//!    allocatable − reserve − others − demand (never below the sum of floors).
//!    - Pressure and contention, with batch limits above the allowance: lower batch limits until
//!      they fit, never below `batch.floor`. Who yields first: pods whose throttle is put in
//!      force (mode `Auto`), then lowest `batch.priority`, then the pod using the most CPU,
//!      then name; within a pod, the busiest container first. Throttling is immediate
//!      (latency-sensitive pods are suffering now). A blind batch pod is never tightened; the
//!      others still are.
//!    - No pressure and calm (see borrowing): throttled limits are raised toward the original,
//!      by `release_step_percent` of the original per step and at most one step per sampling
//!      interval per pod.
//!    - Pressure without contention, or no pressure while a latency-sensitive pod still has a
//!      raised weight or grows: the same release, but only within the allowance (so a release
//!      never re-creates the contention that caused the throttle: no flapping — the pressure a
//!      throttle relieved is gone because of the throttle).
//!    - Borrowing (`batch.borrow.enabled`): under pressure, every borrowed limit (above the
//!      original) goes back to the original at once, before the throttle above runs. Without
//!      pressure, after the release, a batch pod held by its limit (using ≥ 90 % of it) grows
//!      by `borrow.stepPercent` of its original, at most once per sampling interval, into the
//!      node's idle CPU (capacity − others − demand − batch usage) minus
//!      `borrow.headroomPercent` of the capacity, never above `cpu.max`.
//!    - A batch pod blind for longer than `blind_release_after` has its throttle released step
//!      by step, whatever else holds.
//! 5. **Requests, weights and QoS.** Guaranteed containers keep request = limit. Burstable
//!    requests follow `requestPolicy` (latency-sensitive `KeepRatio`: the original
//!    request:limit ratio; `LimitOnly` and batch: unchanged, capped at the new limit) and stay
//!    strictly below the limit when they were below originally, so no pod changes QoS class.
//!    A raised weight is kept while it is above the request and never above the limit; on the
//!    resize path (whose only share lever is the request) it is written as the request.

mod decide;
pub mod fixtures;
mod histogram;
mod model;

pub use decide::decide;
pub use histogram::Histogram;
pub use model::*;
