//! The deciders' latest verdicts: after every pass the controller and every node agent keep
//! the engine's decision for each pod they decide — also when it changes nothing, with the
//! reason why — and serve it as JSON at `/decisions` (`?pod=namespace/name` for one pod).
//! `burst-scaler explain` reads it through the API server's pod proxy to say what would happen
//! next. Only the newest pass is kept: memory is one decision per governed pod. Every field
//! defaults, so that an `explain` of another version still reads what it knows.

use std::sync::{Arc, RwLock};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::engine::{CpuResources, NodeDecision};
use crate::quantity::CpuQuantity;

/// Who decided, when, and what, for every node it decided in its newest pass.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Verdicts {
    /// `agent` or `controller`.
    pub decider: String,
    /// The deciding pod (its name), or the process when it runs outside a pod.
    pub instance: String,
    /// When the pass ran.
    pub time: Option<Timestamp>,
    /// Whether this decider puts `Auto` decisions in force now (the agent holds its node
    /// Lease; the controller leads, is not in dry-run and the API server has `pods/resize`).
    pub acting: bool,
    pub nodes: Vec<NodeVerdict>,
}

/// One node's decisions.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct NodeVerdict {
    pub node: String,
    /// The engine's node-level accounting (free CPU, demand) behind its batch decisions.
    pub summary: String,
    pub pods: Vec<PodVerdict>,
}

/// The engine's verdict for one pod.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PodVerdict {
    /// `namespace/name`.
    pub pod: String,
    /// `None`, `Skip`, `ScaleUp`, `ScaleDown`, `Throttle`, `Release` or `Borrow`.
    pub action: String,
    pub reason: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<VerdictChange>,
}

/// A container's CPU before and after the decision.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct VerdictChange {
    pub container: String,
    pub from: CpuView,
    pub to: CpuView,
}

/// Request, limit and weight as quantities (absent: unset / unlimited / as the request).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct CpuView {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<CpuQuantity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<CpuQuantity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<CpuQuantity>,
}

impl From<CpuResources> for CpuView {
    fn from(c: CpuResources) -> Self {
        CpuView {
            request: c.request.map(CpuQuantity::from),
            limit: c.limit.map(CpuQuantity::from),
            weight: c.weight.map(CpuQuantity::from),
        }
    }
}

impl Verdicts {
    /// From one pass's decisions.
    pub fn new(
        decider: &str,
        instance: &str,
        time: Timestamp,
        acting: bool,
        decisions: &[NodeDecision],
    ) -> Verdicts {
        Verdicts {
            decider: decider.to_string(),
            instance: instance.to_string(),
            time: Some(time),
            acting,
            nodes: decisions
                .iter()
                .map(|n| NodeVerdict {
                    node: n.node.clone(),
                    summary: n.summary.clone(),
                    pods: n
                        .pods
                        .iter()
                        .map(|d| PodVerdict {
                            pod: d.pod.clone(),
                            action: d.action.to_string(),
                            reason: d.reason.clone(),
                            changes: d
                                .changes
                                .iter()
                                .map(|c| VerdictChange {
                                    container: c.container.clone(),
                                    from: c.from.into(),
                                    to: c.to.into(),
                                })
                                .collect(),
                        })
                        .collect(),
                })
                .collect(),
        }
    }

    /// Only the node and verdict of pod `key` (`namespace/name`); no nodes when it is not
    /// decided here.
    pub fn for_pod(&self, key: &str) -> Verdicts {
        let nodes = self
            .nodes
            .iter()
            .filter_map(|n| {
                let pods: Vec<PodVerdict> =
                    n.pods.iter().filter(|p| p.pod == key).cloned().collect();
                (!pods.is_empty()).then(|| NodeVerdict {
                    node: n.node.clone(),
                    summary: n.summary.clone(),
                    pods,
                })
            })
            .collect();
        Verdicts {
            decider: self.decider.clone(),
            instance: self.instance.clone(),
            time: self.time,
            acting: self.acting,
            nodes,
        }
    }

    /// The verdict for pod `key`, with its node's summary.
    pub fn pod(&self, key: &str) -> Option<(&NodeVerdict, &PodVerdict)> {
        self.nodes
            .iter()
            .find_map(|n| n.pods.iter().find(|p| p.pod == key).map(|p| (n, p)))
    }
}

/// The newest [`Verdicts`], shared by a decider's loop (which replaces them after every pass)
/// and its HTTP server (which serves them).
#[derive(Debug, Clone, Default)]
pub struct DecisionBoard(Arc<RwLock<Option<Verdicts>>>);

impl DecisionBoard {
    pub fn set(&self, v: Verdicts) {
        // A poisoned lock only means a reader panicked mid-clone: the value is still whole.
        match self.0.write() {
            Ok(mut g) => *g = Some(v),
            Err(p) => *p.into_inner() = Some(v),
        }
    }

    /// The newest verdicts (for one pod when `pod` is given); `None` before the first pass.
    pub fn get(&self, pod: Option<&str>) -> Option<Verdicts> {
        let g = match self.0.read() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        g.as_ref().map(|v| match pod {
            Some(k) => v.for_pod(k),
            None => v.clone(),
        })
    }

    /// The HTTP response body of `/decisions`: JSON, or `None` before the first pass.
    pub fn json(&self, pod: Option<&str>) -> Option<String> {
        self.get(pod).and_then(|v| serde_json::to_string(&v).ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Action, ContainerChange, PodDecision};
    use crate::quantity::MilliCpu;

    fn decisions() -> Vec<NodeDecision> {
        vec![NodeDecision {
            node: "n1".into(),
            pods: vec![
                PodDecision {
                    pod: "ns/web".into(),
                    action: Action::None,
                    changes: vec![],
                    reason: "quiet".into(),
                },
                PodDecision {
                    pod: "ns/compile".into(),
                    action: Action::Throttle,
                    changes: vec![ContainerChange {
                        container: "c".into(),
                        from: CpuResources::new(1000, 2000),
                        to: CpuResources {
                            limit: Some(MilliCpu(600)),
                            ..CpuResources::new(1000, 2000)
                        },
                    }],
                    reason: "pressure".into(),
                },
            ],
            summary: "free 0m".into(),
        }]
    }

    #[test]
    fn one_pods_verdict_keeps_its_node_summary_and_nothing_else() {
        let v = Verdicts::new("agent", "a-1", Timestamp::UNIX_EPOCH, true, &decisions());
        let one = v.for_pod("ns/compile");
        assert_eq!(one.nodes.len(), 1);
        assert_eq!(one.nodes[0].pods.len(), 1);
        assert_eq!(one.nodes[0].summary, "free 0m");
        let (_, p) = one.pod("ns/compile").expect("compile");
        assert_eq!(p.action, "Throttle");
        assert_eq!(
            p.changes[0].to.limit.as_ref().map(ToString::to_string),
            Some("600m".into())
        );
        assert!(v.for_pod("ns/other").nodes.is_empty());
    }

    #[test]
    fn the_board_serves_nothing_before_the_first_pass_then_round_trips() {
        let b = DecisionBoard::default();
        assert!(b.json(None).is_none());
        let v = Verdicts::new(
            "controller",
            "c-0",
            Timestamp::UNIX_EPOCH,
            false,
            &decisions(),
        );
        b.set(v.clone());
        let back: Verdicts = serde_json::from_str(&b.json(None).expect("json")).expect("parse");
        assert_eq!(back, v);
    }
}
