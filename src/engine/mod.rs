//! The decision engine: given one node and how its pods behave, decide the CPU of every governed
//! pod. Pure — no client, no clock, no I/O: `now` and every input are passed in — so the
//! controller, `replay`, the experiments and a node agent all share it, and it is tested and
//! benchmarked in isolation.
//!
//! # Rules, in the order [`decide`] applies them
//!
//! 1. **Assess.** BestEffort pods and pods whose governed containers have no CPU limit are
//!    skipped with a reason. A pod with a resize in progress, deferred or infeasible is held.
//!    A sample older than twice the sampling interval is stale; a container without a fresh
//!    sample is *blind*. Usage is capped at the limit.
//! 2. **Latency-sensitive bursts.** When the newest `burstSamples` samples (lasting at least
//!    `scaleUp.stabilizationSeconds`) are at or above `burstThreshold` % of the limit, the limit
//!    grows toward `peak ÷ targetUtilization`, bounded by `cpu.max` and by
//!    `scaleUp.maxStepPercent` of the current limit. Only samples taken after the pod's last
//!    change count (earlier ones saw the old limit), so a step-capped burst takes one more
//!    sample to grow again, and re-deciding on the same samples never acts twice.
//! 3. **Latency-sensitive quiet periods.** When the pod has not been changed for
//!    `scaleDown.stabilizationSeconds` and its samples cover that window, the limit steps down
//!    (at most `scaleDown.maxStepPercent`) toward the larger of `peak ÷ targetUtilization` over
//!    the window and the recommendation (converted to a limit with the pod's request:limit
//!    ratio), never below `cpu.min`. Blind pods are never shrunk.
//! 4. **Capacity.** Growth is granted only while the sum of ungoverned demand (max of usage and
//!    request), batch floors and latency-sensitive limits stays ≤ allocatable − reserve: the node never promises
//!    latency-sensitive pods more than it has once batch pods are throttled to their floors.
//!    The most starved container (highest usage/limit) is served first.
//! 5. **Batch.** Latency-sensitive *demand* is, per container, its new limit when bursting, else
//!    `usage ÷ targetUtilization` (its limit when blind). *Pressure* means a latency-sensitive
//!    container is bursting or above its original limit. *Contention* means
//!    others + demand + batch usage > allocatable − reserve. The batch *allowance* is
//!    allocatable − reserve − others − demand (never below the sum of floors).
//!    - Pressure and contention, with batch limits above the allowance: lower batch limits until
//!      they fit, never below `batch.floor`. Who yields first: lowest `batch.priority`, then the
//!      pod using the most CPU, then name; within a pod, the busiest container first. Throttling
//!      is immediate (latency-sensitive pods are suffering now). If any governed pod on the node
//!      is blind, no throttle is tightened.
//!    - No pressure: throttled limits are raised toward the original, by `release_step_percent`
//!      of the original per step and at most one step per sampling interval per pod.
//!    - Pressure without contention: the same release, but only within the allowance (so a
//!      release never re-creates the contention that caused the throttle: no flapping).
//!    - A batch pod blind for longer than `blind_release_after` has its throttle released step
//!      by step, whatever else holds.
//! 6. **Requests and QoS.** Guaranteed containers keep request = limit. Burstable requests
//!    follow `requestPolicy` (latency-sensitive `KeepRatio`: the original request:limit ratio;
//!    `LimitOnly` and batch: unchanged, capped at the new limit) and stay strictly below the
//!    limit when they were below originally, so no pod changes QoS class.

mod decide;
pub mod fixtures;
mod histogram;
mod model;

pub use decide::decide;
pub use histogram::Histogram;
pub use model::*;
