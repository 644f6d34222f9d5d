//! The `BurstScalerNode` resource (`burstscaler.dev/v1alpha1`, cluster-scoped): what one node's
//! agent governs and has in force.
//!
//! One object per node, named after the node and owned by it (garbage-collected with it).
//! Only that node's agent writes it (its status, coalesced: only when something changes, never
//! once per sample); the controller reads it to fold agent-governed pods into each
//! BurstScaler's status, which stays the controller's alone. Whether the agent is *alive* is
//! not in here: that is its per-node Lease ([`agent_lease_name`]), renewed every few seconds, so
//! that this object only changes when the CPU of a pod does.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Mode, Role};
use crate::quantity::CpuQuantity;

/// The Lease a node's agent holds while it governs the node (in the agent's namespace). The
/// controller does not act on a node whose agent Lease is held and unexpired.
pub fn agent_lease_name(node: &str) -> String {
    format!("burst-scaler-agent-{node}")
}

/// Which node this object describes.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "burstscaler.dev",
    version = "v1alpha1",
    kind = "BurstScalerNode",
    plural = "burstscalernodes",
    shortname = "bscn",
    status = "BurstScalerNodeStatus",
    printcolumn = r#"{"name":"Governed","type":"integer","jsonPath":".status.governedPods"}"#,
    printcolumn = r#"{"name":"Throttled","type":"integer","jsonPath":".status.throttledPods"}"#,
    printcolumn = r#"{"name":"Raised","type":"integer","jsonPath":".status.raisedPods"}"#,
    printcolumn = r#"{"name":"Agent","type":"string","jsonPath":".status.agent.pod"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct BurstScalerNodeSpec {
    /// The node (equal to `metadata.name`).
    pub node_name: String,
}

/// What the agent governs on the node and what it has in force.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BurstScalerNodeStatus {
    /// The agent writing this object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<AgentInfo>,
    /// `Ready` (the agent reads and writes this node's cgroups), `Blind` (some governed
    /// container has no fresh signal).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// Pods of this node the agent governs (mode `Recommend` or `Auto`).
    #[serde(default)]
    pub governed_pods: u32,
    /// Batch pods whose CPU in force is below their spec.
    #[serde(default)]
    pub throttled_pods: u32,
    /// Pods whose CPU in force (limit or weight) is above their spec.
    #[serde(default)]
    pub raised_pods: u32,
    /// Every governed pod, by namespace and name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pods: Vec<GovernedPod>,
}

/// The agent instance and what it found on the node.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentInfo {
    /// The agent's pod name.
    pub pod: String,
    /// burst-scaler version.
    pub version: String,
    /// The cgroup layout it detected, e.g. `v1 cgroupfs (PSI from the unified hierarchy)`.
    pub cgroups: String,
    /// How often it samples and decides, in seconds.
    pub interval_seconds: u32,
}

/// One governed pod.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GovernedPod {
    pub namespace: String,
    pub name: String,
    /// The pod's UID (a pod recreated under the same name is a different pod).
    pub uid: String,
    /// The BurstScaler governing it (same namespace).
    pub burst_scaler: String,
    pub role: Role,
    pub mode: Mode,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub containers: Vec<GovernedContainer>,
    /// The last decision that changed (or, in `Recommend`, would have changed) this pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_decision: Option<AgentDecision>,
}

/// One governed container: its spec, and what is in force in its cgroup.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GovernedContainer {
    pub name: String,
    /// CPU request in the pod spec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec_request: Option<CpuQuantity>,
    /// CPU limit in the pod spec (absent: unlimited).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec_limit: Option<CpuQuantity>,
    /// The limit in force (the cgroup's quota; absent: unlimited).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<CpuQuantity>,
    /// The weight in force (the cgroup's shares, as the request they correspond to).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<CpuQuantity>,
    /// Why the agent leaves this container alone, if it does (e.g. pinned by the CPU manager).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
}

/// A decision of the agent's engine.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentDecision {
    pub time: Time,
    /// The engine's action (`ScaleUp`, `ScaleDown`, `Throttle`, `Release`, `Restore`, ...).
    pub action: String,
    /// Whether it was put in force (`false` in `Recommend`, or when the write failed).
    pub applied: bool,
    /// The engine's reason, with the signal behind it.
    pub reason: String,
}
