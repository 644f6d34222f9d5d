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
}

/// One node and everything on it that uses CPU.
#[derive(Debug, Clone)]
pub struct NodeInput {
    pub name: String,
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

/// A container's CPU request and limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct CpuResources {
    pub request: Option<MilliCpu>,
    pub limit: Option<MilliCpu>,
}

impl CpuResources {
    pub fn new(request: u64, limit: u64) -> Self {
        CpuResources {
            request: Some(MilliCpu(request)),
            limit: Some(MilliCpu(limit)),
        }
    }
}

/// One usage sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    pub time: Timestamp,
    pub usage: MilliCpu,
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
