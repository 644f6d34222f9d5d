//! What the engine is given and what it returns. Plain data: every driver (controller, replay,
//! experiments, a node agent) builds these from its own sources.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;

use crate::api::{Role, ValidatedSpec};
use crate::quantity::MilliCpu;

/// Engine-wide settings (from the controller's flags).
#[derive(Debug, Clone, PartialEq)]
pub struct EngineConfig {
    /// How often usage is sampled. A sample older than twice this is stale.
    pub sample_interval: Duration,
    /// After metrics have been missing this long for a throttled batch pod, its throttle is
    /// released (step by step) rather than held blind.
    pub blind_release_after: Duration,
    /// How much CPU a throttled batch container gets back per release step, in % of its
    /// original limit.
    pub release_step_percent: u32,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            sample_interval: Duration::from_secs(15),
            blind_release_after: Duration::from_secs(300),
            release_step_percent: 10,
        }
    }
}

impl EngineConfig {
    /// Samples older than this are stale.
    pub fn staleness(&self) -> Duration {
        self.sample_interval * 2
    }

    /// How far back the engine looks into a container's samples under `policy`: the longest of
    /// its windows (`behavior.scaleDown`/`scaleUp.stabilizationSeconds`,
    /// `latencySensitive.signals.forSeconds`, `burstSamples` samples), plus one sample before
    /// the window's start (a window counts as covered only when a sample reaches back to it)
    /// and the staleness bound. A source may drop samples older than this, keeping at least
    /// the newest (the node agent does): decisions do not change (`tests/engine_props.rs`).
    pub fn history_for(&self, policy: &crate::api::ValidatedSpec) -> Duration {
        let secs = |s: u32| Duration::from_secs(u64::from(s));
        let b = &policy.behavior;
        let window = secs(b.scale_down.stabilization_seconds)
            .max(secs(b.scale_up.stabilization_seconds))
            .max(secs(policy.latency.signals.for_seconds))
            .max(
                self.sample_interval
                    .saturating_mul(policy.latency.burst_samples.max(1)),
            );
        window
            .saturating_add(self.sample_interval)
            .saturating_add(self.staleness())
    }
}

/// What the actuator that will carry out the decisions on this node can do. The engine decides
/// the same way for both; this only says which outputs can take effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Actuator {
    /// The `pods/resize` subresource (Kubernetes ≥ 1.33): changes the pod spec. The only share
    /// lever is the request (a decided `weight` is written as the request); a limit cannot be
    /// added to a container whose spec has none.
    #[default]
    InPlaceResize,
    /// The node agent: writes the pod's cgroups (`cpu.cfs_quota_us`/`cpu.shares` on v1,
    /// `cpu.max`/`cpu.weight` on v2) and never the spec. Weight and limit are independent, and
    /// a quota can be imposed on a container whose spec has no limit.
    NodeAgent,
}

/// One node and everything on it that uses CPU.
#[derive(Debug, Clone)]
pub struct NodeInput {
    pub name: String,
    /// Who will carry out the decisions (see [`Actuator`]).
    pub actuator: Actuator,
    /// The node's allocatable CPU.
    pub allocatable: MilliCpu,
    /// CPU never handed out by the engine (system daemons, headroom).
    pub reserve: MilliCpu,
    /// Pods governed by a BurstScaler.
    pub pods: Vec<PodInput>,
    /// Pods nobody governs (including those of BurstScalers in mode `Off`): they use CPU too.
    pub ungoverned: Vec<UngovernedPod>,
}

/// A pod on the node that burst-scaler does not govern.
#[derive(Debug, Clone, PartialEq)]
pub struct UngovernedPod {
    pub name: String,
    /// Sum of its containers' CPU requests.
    pub request: MilliCpu,
    /// Its latest fresh usage, if known.
    pub usage: Option<MilliCpu>,
}

impl UngovernedPod {
    /// CPU the engine sets aside for it: what it uses, but never less than what the scheduler
    /// promised it.
    pub fn demand(&self) -> MilliCpu {
        self.usage.map_or(self.request, |u| u.max(self.request))
    }
}

/// Kubernetes QoS class (never changed by a resize).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QosClass {
    Guaranteed,
    Burstable,
    BestEffort,
}

/// Where the pod's last resize request stands (from the `PodResizePending` /
/// `PodResizeInProgress` pod conditions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ResizeState {
    /// No resize outstanding.
    #[default]
    Idle,
    /// Accepted by the API server, not yet actuated by the kubelet.
    InProgress,
    /// The kubelet will retry (node lacks room now).
    Deferred,
    /// The kubelet will never do it (the node can never fit it).
    Infeasible,
}

/// A container's CPU: request, limit and the weight it gets under contention.
///
/// As an input, what is *in force* (the pod spec on the resize path; the cgroups on the node
/// agent's path, where the spec stays as it was); as an output, what to put in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct CpuResources {
    /// The CPU request (what the scheduler reserved).
    pub request: Option<MilliCpu>,
    /// The CPU limit (CFS quota); `None` = unlimited.
    pub limit: Option<MilliCpu>,
    /// The container's CPU weight under contention, in millicores of request-equivalent (the
    /// kubelet gives a request of `r` millicores `cpu.shares = r × 1024 / 1000`, and
    /// `cpu.weight` from that). `None`: follows `request`, as the kubelet sets it. The node
    /// agent writes it as `cpu.shares`/`cpu.weight` without touching the spec; the resize path
    /// writes `max(request, weight)` as the request (the only share lever of the API).
    pub weight: Option<MilliCpu>,
}

impl CpuResources {
    /// Request and limit, weight following the request.
    pub fn new(request: u64, limit: u64) -> Self {
        CpuResources {
            request: Some(MilliCpu(request)),
            limit: Some(MilliCpu(limit)),
            weight: None,
        }
    }

    /// The weight in force: `weight`, else the request, else none (the kernel's minimum).
    pub fn effective_weight(&self) -> Option<MilliCpu> {
        self.weight.or(self.request)
    }
}

/// A share of an interval, in thousandths (0–1000): the unit of every node signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Permille(pub u16);

impl Permille {
    pub const ZERO: Permille = Permille(0);
    pub const ALL: Permille = Permille(1000);

    /// From a fraction (0.0–1.0; clamped, NaN = 0), rounded to the nearest thousandth.
    pub fn from_fraction(f: f64) -> Permille {
        if f.is_nan() {
            return Permille::ZERO;
        }
        Permille((f.clamp(0.0, 1.0) * 1000.0).round() as u16)
    }

    /// `part ÷ whole`, clamped to 1000 (0 for an empty `whole`).
    pub fn ratio(part: u64, whole: u64) -> Permille {
        if whole == 0 {
            return Permille::ZERO;
        }
        let p = (u128::from(part) * 1000 + u128::from(whole) / 2) / u128::from(whole);
        Permille(u16::try_from(p.min(1000)).unwrap_or(1000))
    }

    /// In percent, rounded (for reasons).
    pub fn percent(self) -> u16 {
        (self.0 + 5) / 10
    }
}

impl std::fmt::Display for Permille {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.is_multiple_of(10) {
            write!(f, "{}%", self.0 / 10)
        } else {
            write!(f, "{}.{}%", self.0 / 10, self.0 % 10)
        }
    }
}

/// What the kernel did to a container over one sample's interval, from a source that reads the
/// node (the node agent, every ~1 s). The metrics.k8s.io path has none.
///
/// Every source produces the same units: shares of the interval in [`Permille`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NodeSignals {
    /// Wall time the signals cover (since the source's previous reading of this container).
    pub interval: Duration,
    /// Share of the container's CFS periods (of those in which it ran) in which it used up its
    /// quota: `nr_throttled ÷ nr_periods` over the interval. `None` when it has no quota or no
    /// period elapsed.
    pub throttled: Option<Permille>,
    /// CPU pressure: the share of wall time in which at least one runnable task of the
    /// container was waiting for a CPU — PSI `some` (`cpu.pressure` `total` over the interval
    /// ÷ the interval). This includes time throttled by a quota (a throttled task is runnable).
    /// Sources without PSI give the per-thread run-queue wait (`/proc/<tid>/schedstat`) summed
    /// over threads ÷ wall time, capped at 1000 ‰ (an upper bound of `some`). `None`: unknown.
    pub pressure: Option<Permille>,
}

/// One usage sample: mean usage over the interval ending at `time`, and, from node sources,
/// what the kernel did to the container over it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    pub time: Timestamp,
    pub usage: MilliCpu,
    pub signals: Option<NodeSignals>,
}

impl Sample {
    /// A usage-only sample (what metrics.k8s.io gives).
    pub fn usage(time: Timestamp, usage: MilliCpu) -> Sample {
        Sample {
            time,
            usage,
            signals: None,
        }
    }
}

/// The steady-state recommendation for a container (from [`super::Histogram::recommend`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recommendation {
    pub lower_bound: MilliCpu,
    pub target: MilliCpu,
    pub upper_bound: MilliCpu,
}

/// A governed container.
#[derive(Debug, Clone)]
pub struct ContainerInput {
    pub name: String,
    /// What the pod spec says now.
    pub current: CpuResources,
    /// What it had before burst-scaler first changed it (from the annotation); `None` if
    /// burst-scaler never changed it (then `current` is the original).
    pub original: Option<CpuResources>,
    /// Recent usage, oldest first.
    pub samples: Vec<Sample>,
    pub recommendation: Option<Recommendation>,
}

impl ContainerInput {
    /// The resources to restore and to measure throttles and growth against.
    pub fn original(&self) -> CpuResources {
        self.original.unwrap_or(self.current)
    }
}

/// A pod governed by one BurstScaler.
#[derive(Debug, Clone)]
pub struct PodInput {
    /// `namespace/name` or just `name`: used in reasons.
    pub name: String,
    /// The policy of its BurstScaler (validated; shared by all its pods).
    pub policy: Arc<ValidatedSpec>,
    pub qos: QosClass,
    pub containers: Vec<ContainerInput>,
    pub resize: ResizeState,
    /// When burst-scaler last changed this pod, if ever.
    pub last_change: Option<Timestamp>,
}

impl PodInput {
    pub fn role(&self) -> Role {
        self.policy.role
    }
}

/// What to do with a pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    /// Nothing to change.
    None,
    /// Cannot be governed as it is (BestEffort, no CPU limit, ...): the reason says why.
    Skip,
    /// Latency-sensitive pod grown for a burst.
    ScaleUp,
    /// Latency-sensitive pod brought back down after a quiet period.
    ScaleDown,
    /// Batch pod's limit lowered to make room.
    Throttle,
    /// Batch pod's limit raised back toward its original.
    Release,
    /// Batch pod's limit raised above its original into idle CPU (`batch.borrow`).
    Borrow,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::None => "None",
            Action::Skip => "Skip",
            Action::ScaleUp => "ScaleUp",
            Action::ScaleDown => "ScaleDown",
            Action::Throttle => "Throttle",
            Action::Release => "Release",
            Action::Borrow => "Borrow",
        }
    }

    /// Whether the action changes the pod.
    pub fn changes(self) -> bool {
        !matches!(self, Action::None | Action::Skip)
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// New CPU for one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerChange {
    pub container: String,
    pub from: CpuResources,
    pub to: CpuResources,
}

/// The decision for one pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodDecision {
    pub pod: String,
    pub action: Action,
    /// Empty unless `action.changes()`.
    pub changes: Vec<ContainerChange>,
    /// Human-readable and precise: what was seen, which rule applied, what it leads to.
    pub reason: String,
}

/// Everything decided for a node in one pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeDecision {
    pub node: String,
    /// One per governed pod, in input order.
    pub pods: Vec<PodDecision>,
    /// Node-level accounting behind the batch decisions, for `explain`.
    pub summary: String,
}
