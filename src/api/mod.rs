//! The `BurstScaler` custom resource (`burstscaler.dev/v1alpha1`).
//!
//! One BurstScaler per workload: which pods it governs (a label selector in its namespace), their
//! role on the node (`LatencySensitive` pods are grown in place when they burst, `Batch` pods
//! are throttled when they would starve the latency-sensitive ones), CPU bounds, rates and a
//! mode. Field documentation here becomes the CRD's `description`s and the README's reference.

mod node;
pub mod rules;
mod validate;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use node::{
    AgentDecision, AgentInfo, BurstScalerNode, BurstScalerNodeSpec, BurstScalerNodeStatus,
    GovernedContainer, GovernedPod, agent_lease_name,
};
pub use validate::{FieldError, ValidatedSpec, parse, parse_and_validate, validate};

use crate::quantity::CpuQuantity;

/// The API group of every burst-scaler resource.
pub const GROUP: &str = "burstscaler.dev";

/// Annotation holding a pod's resources from before burst-scaler first changed it (JSON).
pub const ORIGINAL_RESOURCES_ANNOTATION: &str = "burstscaler.dev/original-resources";

/// Finalizer that keeps a BurstScaler until every pod it changed is restored.
pub const FINALIZER: &str = "burstscaler.dev/restore";

/// Desired behaviour of a BurstScaler.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "burstscaler.dev",
    version = "v1alpha1",
    kind = "BurstScaler",
    plural = "burstscalers",
    shortname = "bsc",
    namespaced,
    status = "BurstScalerStatus",
    printcolumn = r#"{"name":"Role","type":"string","jsonPath":".spec.role"}"#,
    printcolumn = r#"{"name":"Mode","type":"string","jsonPath":".spec.mode"}"#,
    printcolumn = r#"{"name":"Managed","type":"integer","jsonPath":".status.managedPods"}"#,
    printcolumn = r#"{"name":"Throttled","type":"integer","jsonPath":".status.throttledPods"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = spec_rules)]
pub struct BurstScalerSpec {
    /// The pods this BurstScaler governs, in its own namespace. Must not be empty.
    pub selector: LabelSelector,

    /// What the governed pods are on a shared node: `LatencySensitive` pods are grown in place
    /// when they burst; `Batch` pods yield CPU (their limit is lowered, never below
    /// `batch.floor`) while latency-sensitive pods on the same node need it.
    pub role: Role,

    /// Names of the containers to govern. Empty or absent: every container of the pod.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32), extend("x-kubernetes-list-type" = "set"))]
    pub containers: Vec<ContainerName>,

    /// Bounds on the CPU limit burst-scaler may set on each governed container.
    pub cpu: CpuBounds,

    /// Policy for `LatencySensitive` pods (only allowed with that role; defaults apply when
    /// absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_sensitive: Option<LatencySensitivePolicy>,

    /// Policy for `Batch` pods (required with that role, refused with the other).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<BatchPolicy>,

    /// How fast CPU may go up and down.
    #[serde(default)]
    pub behavior: Behavior,

    /// How the steady-state recommendation (the request burst-scaler steps down to) is computed
    /// from usage history.
    #[serde(default)]
    pub recommendation: RecommendationPolicy,

    /// `Off`: status only. `Recommend` (default): recommendations in status and Events, pods are
    /// never changed. `Auto`: pods are resized and throttled.
    #[serde(default)]
    pub mode: Mode,
}

fn spec_rules(schema: &mut schemars::Schema) {
    schema.insert("x-kubernetes-validations".into(), rules::cel_for("spec"));
}

fn cpu_rules(schema: &mut schemars::Schema) {
    schema.insert(
        "x-kubernetes-validations".into(),
        rules::cel_for("spec.cpu"),
    );
}

fn latency_rules(schema: &mut schemars::Schema) {
    schema.insert(
        "x-kubernetes-validations".into(),
        rules::cel_for("spec.latencySensitive"),
    );
}

/// A container name (a DNS-1123 label, as Kubernetes requires).
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, Hash, JsonSchema)]
#[serde(transparent)]
pub struct ContainerName(
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub String,
);

/// What the governed pods are.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum Role {
    LatencySensitive,
    Batch,
}

/// What burst-scaler is allowed to do.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum Mode {
    /// Observe and report status only: no recommendations, no changes.
    Off,
    /// Compute recommendations and decisions, report them in status and Events, never change a
    /// pod. The default, so that applying a BurstScaler is always safe.
    #[default]
    Recommend,
    /// Apply decisions: resize latency-sensitive pods in place, throttle and release batch pods.
    Auto,
}

/// CPU bounds for each governed container's limit.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = cpu_rules)]
pub struct CpuBounds {
    /// Never set a container's CPU limit below this (and never shrink a request below it).
    pub min: CpuQuantity,
    /// Never set a container's CPU limit above this.
    pub max: CpuQuantity,
}

/// How the request moves when burst-scaler changes a latency-sensitive limit.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum RequestPolicy {
    /// Scale the request with the limit, keeping the pod's request/limit ratio (the scheduler
    /// and the node's CPU shares then see the burst too).
    #[default]
    KeepRatio,
    /// Change only the limit; the request stays (except in Guaranteed pods, where request and
    /// limit must stay equal to keep the QoS class).
    LimitOnly,
}

/// Policy for latency-sensitive pods.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = latency_rules)]
pub struct LatencySensitivePolicy {
    /// Usage, in % of the limit, to aim for after a scale-up (new limit = usage ÷ target).
    #[serde(default = "default_target_utilization")]
    #[schemars(range(min = 1, max = 100))]
    pub target_utilization: u32,

    /// Usage, in % of the limit, that counts as a burst.
    #[serde(default = "default_burst_threshold")]
    #[schemars(range(min = 1, max = 100))]
    pub burst_threshold: u32,

    /// How many consecutive samples must be at or above `burstThreshold` before scaling up.
    #[serde(default = "default_burst_samples")]
    #[schemars(range(min = 1, max = 20))]
    pub burst_samples: u32,

    /// How the request follows the limit.
    #[serde(default)]
    pub request_policy: RequestPolicy,

    /// When the node's own signals (from the node agent, every second) say the pod is short of
    /// CPU even though its average usage is low. Every field defaults on its own.
    #[serde(default)]
    pub signals: SignalPolicy,
}

/// Thresholds on the node signals of a latency-sensitive container (only the node agent has
/// them; the metrics.k8s.io path ignores this block). A signal counts when it stays at or
/// above its threshold for `forSeconds`:
/// - **throttled** (share of CFS periods in which the container used up its quota): the
///   limit bites, so the limit grows as for a burst (and at `cpu.max`, batch pods yield);
/// - **CPU pressure** (share of wall time in which a runnable task of the container waited
///   for a CPU, as PSI `some` reports it) without throttling: the container is starved by CPU
///   shares, so its CPU weight is raised first (to its limit); batch pods yield only if, with
///   the weight at its limit, the pressure stays at or above `yieldPressurePercent` for
///   `forSeconds`. A raised weight leaves some pressure (tasks still wait for a CPU when they
///   wake, 15–25 % for a busy web service in `experiments` E2 at a p99 of 10 ms): that is no
///   reason to slow the batch work down.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SignalPolicy {
    /// CPU pressure, in % of wall time, at or above which the container counts as starved.
    #[serde(default = "default_cpu_pressure_percent")]
    #[schemars(range(min = 1, max = 100))]
    pub cpu_pressure_percent: u32,
    /// CPU pressure, in % of wall time, at or above which a container whose weight is already
    /// at its limit makes batch pods yield. A value below `cpuPressurePercent` counts as
    /// `cpuPressurePercent` (so either can be set alone).
    #[serde(default = "default_yield_pressure_percent")]
    #[schemars(range(min = 1, max = 100))]
    pub yield_pressure_percent: u32,
    /// Share of CFS periods throttled, in %, at or above which the limit counts as biting.
    #[serde(default = "default_throttled_percent")]
    #[schemars(range(min = 1, max = 100))]
    pub throttled_percent: u32,
    /// Seconds a signal must stay at or above its threshold before it counts.
    #[serde(default = "default_signal_seconds")]
    #[schemars(range(min = 1, max = 600))]
    pub for_seconds: u32,
}

fn default_cpu_pressure_percent() -> u32 {
    10
}
fn default_yield_pressure_percent() -> u32 {
    40
}
fn default_throttled_percent() -> u32 {
    20
}
fn default_signal_seconds() -> u32 {
    3
}

impl Default for SignalPolicy {
    fn default() -> Self {
        SignalPolicy {
            cpu_pressure_percent: default_cpu_pressure_percent(),
            yield_pressure_percent: default_yield_pressure_percent(),
            throttled_percent: default_throttled_percent(),
            for_seconds: default_signal_seconds(),
        }
    }
}

fn default_target_utilization() -> u32 {
    60
}
fn default_burst_threshold() -> u32 {
    85
}
fn default_burst_samples() -> u32 {
    1
}

impl Default for LatencySensitivePolicy {
    fn default() -> Self {
        LatencySensitivePolicy {
            target_utilization: default_target_utilization(),
            burst_threshold: default_burst_threshold(),
            burst_samples: default_burst_samples(),
            request_policy: RequestPolicy::default(),
            signals: SignalPolicy::default(),
        }
    }
}

/// Policy for batch pods.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BatchPolicy {
    /// The CPU limit below which a batch container is never throttled.
    pub floor: CpuQuantity,
    /// Who yields first: pods of lower priority are throttled before pods of higher priority.
    #[serde(default)]
    #[schemars(range(min = -1000, max = 1000))]
    pub priority: i32,
    /// Borrowing idle CPU above the original limit (off unless enabled).
    #[serde(default)]
    pub borrow: BorrowPolicy,
}

/// Whether and how a batch pod grows above its original CPU limit, up to `spec.cpu.max`, while
/// the node has idle CPU and no latency-sensitive pod presses on it. The borrowed CPU is taken
/// back at once — before any batch pod goes below its original limit — as soon as one does.
///
/// Opt-in: borrowing changes the CPU a workload was given beyond what its owner wrote, which
/// changes what it costs and how fast it runs next to others; an operator should ask for it.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BorrowPolicy {
    /// Let the governed batch pods borrow idle CPU.
    #[serde(default)]
    pub enabled: bool,
    /// CPU of the node (allocatable − reserve), in %, left idle when borrowing: room for a
    /// latency-sensitive burst to start before the next pass takes the borrowed CPU back.
    #[serde(default = "default_borrow_headroom")]
    #[schemars(range(min = 0, max = 90))]
    pub headroom_percent: u32,
    /// Largest growth in one pass (at most one per sampling interval), in % of the original
    /// limit.
    #[serde(default = "default_borrow_step")]
    #[schemars(range(min = 1, max = 1000))]
    pub step_percent: u32,
}

fn default_borrow_headroom() -> u32 {
    10
}
fn default_borrow_step() -> u32 {
    50
}

impl Default for BorrowPolicy {
    fn default() -> Self {
        BorrowPolicy {
            enabled: false,
            headroom_percent: default_borrow_headroom(),
            step_percent: default_borrow_step(),
        }
    }
}

/// Rates of change. Every field defaults on its own, with its direction's default (as the
/// HPA v2 `behavior` fields do): `{scaleUp: {maxStepPercent: 50}}` keeps scale-up's 0 s and
/// scale-down's 300 s / 25 %.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct Behavior {
    /// Scale-up: how long a burst must last before the limit grows (default 0: at once), and
    /// the largest single step (default 100 %).
    #[serde(default)]
    pub scale_up: ScaleUpRules,
    /// Scale-down: how long usage must stay low before the limit shrinks (default 300 s), and
    /// the largest single step (default 25 %).
    #[serde(default)]
    pub scale_down: ScaleDownRules,
}

/// Scale-up rates.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScaleUpRules {
    /// Seconds a burst must hold before the limit grows (default 0).
    #[serde(default)]
    #[schemars(range(min = 0, max = 3600))]
    pub stabilization_seconds: u32,
    /// Largest growth in one step, in % of the current limit (default 100: may double).
    #[serde(default = "default_up_step")]
    #[schemars(range(min = 1, max = 1000))]
    pub max_step_percent: u32,
}

/// Scale-down rates.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScaleDownRules {
    /// Seconds usage must stay low (and the pod unchanged) before the limit shrinks (default
    /// 300).
    #[serde(default = "default_down_window")]
    #[schemars(range(min = 0, max = 3600))]
    pub stabilization_seconds: u32,
    /// Largest shrink in one step, in % of the current limit (default 25).
    #[serde(default = "default_down_step")]
    #[schemars(range(min = 1, max = 1000))]
    pub max_step_percent: u32,
}

fn default_up_step() -> u32 {
    100
}
fn default_down_window() -> u32 {
    300
}
fn default_down_step() -> u32 {
    25
}

impl Default for ScaleUpRules {
    fn default() -> Self {
        ScaleUpRules {
            stabilization_seconds: 0,
            max_step_percent: default_up_step(),
        }
    }
}

impl Default for ScaleDownRules {
    fn default() -> Self {
        ScaleDownRules {
            stabilization_seconds: default_down_window(),
            max_step_percent: default_down_step(),
        }
    }
}

/// Steady-state recommendation: a percentile of a decaying usage histogram (the VPA approach).
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecommendationPolicy {
    /// Percentile of usage to recommend as the request.
    #[serde(default = "default_percentile")]
    #[schemars(range(min = 1, max = 100))]
    pub percentile: u32,
    /// Safety margin added on top of the percentile, in %.
    #[serde(default = "default_margin")]
    #[schemars(range(min = 0, max = 100))]
    pub margin_percent: u32,
    /// Half-life of a usage sample's weight, in seconds.
    #[serde(default = "default_half_life")]
    #[schemars(range(min = 60, max = 604800))]
    pub half_life_seconds: u32,
}

fn default_percentile() -> u32 {
    90
}
fn default_margin() -> u32 {
    15
}
fn default_half_life() -> u32 {
    3600
}

impl Default for RecommendationPolicy {
    fn default() -> Self {
        RecommendationPolicy {
            percentile: default_percentile(),
            margin_percent: default_margin(),
            half_life_seconds: default_half_life(),
        }
    }
}

/// Observed state, written by the controller.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BurstScalerStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready` (valid and able to act), `Active` (currently changing pods), `Conflict` (another
    /// BurstScaler or an HPA also governs these pods).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// Pods selected and governed.
    #[serde(default)]
    pub managed_pods: u32,
    /// Latency-sensitive pods currently above their original CPU.
    #[serde(default)]
    pub resized_pods: u32,
    /// Batch pods currently below their original CPU limit.
    #[serde(default)]
    pub throttled_pods: u32,
    /// Resizes requested and not yet done (pending, deferred or in progress).
    #[serde(default)]
    pub pending_resizes: u32,
    /// Steady-state recommendation per container name, across the governed pods.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recommendations: Vec<ContainerRecommendation>,
    /// The most recent decision taken (or, outside `Auto`, that would have been taken).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_decision: Option<LastDecision>,
}

/// Recommended CPU for one container name.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContainerRecommendation {
    pub container: String,
    /// Recommended request (percentile + margin, within `spec.cpu`).
    pub target: CpuQuantity,
    /// Lower bound (50th percentile).
    pub lower_bound: CpuQuantity,
    /// Upper bound (95th percentile + margin, within `spec.cpu`).
    pub upper_bound: CpuQuantity,
}

/// The last decision the controller took for a pod of this BurstScaler.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LastDecision {
    pub time: Time,
    /// `Resize`, `Throttle`, `Release`, `Restore` or `None`.
    pub action: String,
    pub pod: String,
    /// The engine's reason, e.g. `web-7f9c/web: cpu burst 92% of 500m limit for 2 samples → limit 800m`.
    pub reason: String,
}

impl BurstScalerSpec {
    /// The latency-sensitive policy in force (the defaults when the block is absent).
    pub fn latency_policy(&self) -> LatencySensitivePolicy {
        self.latency_sensitive.clone().unwrap_or_default()
    }
}
