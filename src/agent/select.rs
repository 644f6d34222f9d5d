//! Which pods of this node the agent governs, and under which BurstScaler (pure).
//!
//! The same rules as the controller: a Running pod is governed by the one valid BurstScaler
//! of its namespace whose (non-empty) selector matches it and that is not being deleted; a pod
//! selected by two BurstScalers is left alone; mode `Off` governs nothing. What the engine
//! needs of each container comes from the pod spec (CPU) and the pod status (the container
//! ID that names its cgroup).

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::core::{Selector, SelectorExt};

use crate::api::{BurstScaler, Mode, ValidatedSpec, validate};
use crate::controller::build::container_cpu;
use crate::engine::{CpuResources, QosClass};

/// A pod on this node, as the agent needs it.
#[derive(Debug, Clone)]
pub struct NodePod {
    /// `namespace/name`.
    pub key: String,
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub qos: QosClass,
    pub containers: Vec<NodeContainer>,
    /// Governed: by which BurstScaler (name, same namespace) and its validated policy.
    pub governor: Option<Governor>,
    /// Why it is not governed, when a BurstScaler selects it but cannot govern it.
    pub not_governed: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Governor {
    pub scaler: String,
    pub policy: Arc<ValidatedSpec>,
}

/// A container of a pod on this node.
#[derive(Debug, Clone)]
pub struct NodeContainer {
    pub name: String,
    /// CPU in the pod spec.
    pub spec: CpuResources,
    /// The running container's ID (`containerd://…`), if it runs.
    pub id: Option<String>,
}

/// A BurstScaler that may govern pods of its namespace: name, selector, validated policy (or
/// why it is invalid).
type Candidate = (String, Selector, Result<Arc<ValidatedSpec>, String>);

/// The pods of `node` (Running, with a UID) with their governor, in key order.
pub fn node_pods(pods: &[Arc<Pod>], scalers: &[Arc<BurstScaler>], node: &str) -> Vec<NodePod> {
    let mut scalers_by_ns: BTreeMap<String, Vec<Candidate>> = BTreeMap::new();
    for s in scalers {
        if s.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let Ok(selector) = Selector::try_from(s.spec.selector.clone()) else {
            continue;
        };
        if selector.selects_all() {
            continue;
        }
        let validated = validate(&s.spec).map(Arc::new).map_err(|errs| {
            errs.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        });
        scalers_by_ns
            .entry(s.namespace().unwrap_or_default())
            .or_default()
            .push((s.name_any(), selector, validated));
    }
    let mut out = vec![];
    for p in pods {
        let on_node = p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node);
        let running = p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
        let Some(uid) = p.uid() else { continue };
        if !on_node || !running || p.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let namespace = p.namespace().unwrap_or_default();
        let name = p.name_any();
        let (containers, bad) = match containers_of(p) {
            Ok(c) => (c, None),
            Err(why) => (vec![], Some(why)),
        };
        let matching: Vec<&Candidate> = scalers_by_ns
            .get(&namespace)
            .into_iter()
            .flatten()
            .filter(|(_, sel, _)| sel.matches(p.labels()))
            .collect();
        // As the controller's build: only valid BurstScalers select (an invalid one next to a
        // valid one is no conflict); an invalid one alone says why the pod is left alone.
        let (valid, invalid): (Vec<&Candidate>, Vec<&Candidate>) =
            matching.iter().partition(|(_, _, v)| v.is_ok());
        let (governor, not_governed) = match (valid.as_slice(), bad) {
            ([], _) if invalid.is_empty() => (None, None),
            (_, Some(why)) => (None, Some(why)),
            ([(scaler, _, Ok(policy))], None) if policy.mode != Mode::Off => (
                Some(Governor {
                    scaler: scaler.clone(),
                    policy: policy.clone(),
                }),
                None,
            ),
            ([_], None) => (None, None),
            ([], None) => (
                None,
                Some(
                    invalid
                        .iter()
                        .map(|(scaler, _, v)| match v {
                            Err(why) => format!("BurstScaler {scaler} is invalid: {why}"),
                            Ok(_) => String::new(),
                        })
                        .collect::<Vec<_>>()
                        .join("; "),
                ),
            ),
            (many, None) => (
                None,
                Some(format!(
                    "selected by BurstScalers {}: left alone",
                    many.iter()
                        .map(|(n, _, _)| n.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            ),
        };
        out.push(NodePod {
            key: format!("{namespace}/{name}"),
            namespace,
            name,
            uid,
            qos: qos_of(p, &containers),
            containers,
            governor,
            not_governed,
        });
    }
    out.sort_by(|a, b| a.key.cmp(&b.key));
    out
}

fn containers_of(p: &Pod) -> Result<Vec<NodeContainer>, String> {
    let cpu = container_cpu(p)?;
    let statuses = p
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref());
    Ok(cpu
        .into_iter()
        .map(|(name, spec)| {
            let id = statuses
                .into_iter()
                .flatten()
                .find(|s| s.name == name)
                .filter(|s| s.state.as_ref().is_some_and(|st| st.running.is_some()))
                .and_then(|s| s.container_id.clone())
                .filter(|id| !id.is_empty());
            NodeContainer { name, spec, id }
        })
        .collect())
}

fn qos_of(p: &Pod, containers: &[NodeContainer]) -> QosClass {
    match p.status.as_ref().and_then(|s| s.qos_class.as_deref()) {
        Some("Guaranteed") => QosClass::Guaranteed,
        Some("BestEffort") => QosClass::BestEffort,
        Some(_) => QosClass::Burstable,
        None => {
            let all = |f: &dyn Fn(&CpuResources) -> bool| containers.iter().all(|c| f(&c.spec));
            if all(&|c| c.request.is_none() && c.limit.is_none()) {
                QosClass::BestEffort
            } else if all(&|c| c.limit.is_some() && c.request == c.limit) {
                QosClass::Guaranteed
            } else {
                QosClass::Burstable
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, app: &str, node: &str) -> Arc<Pod> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}"),
                             "labels": {"app": app}},
                "spec": {"nodeName": node, "containers": [{"name": "main",
                    "resources": {"requests": {"cpu": "100m"}, "limits": {"cpu": "1"}}}]},
                "status": {"phase": "Running", "qosClass": "Burstable",
                    "containerStatuses": [{"name": "main", "containerID": "containerd://abc123",
                        "ready": true, "restartCount": 0, "image": "i", "imageID": "i",
                        "state": {"running": {}}}]}
            }))
            .expect("pod"),
        )
    }

    fn scaler(name: &str, app: &str, mode: &str) -> Arc<BurstScaler> {
        Arc::new(
            serde_json::from_value(json!({
                "apiVersion": "burstscaler.dev/v1alpha1", "kind": "BurstScaler",
                "metadata": {"name": name, "namespace": "default"},
                "spec": {"selector": {"matchLabels": {"app": app}}, "role": "LatencySensitive",
                         "cpu": {"min": "100m", "max": "2"}, "mode": mode}
            }))
            .expect("scaler"),
        )
    }

    #[test]
    fn only_this_nodes_pods_under_one_valid_scaler_are_governed() {
        let pods = [
            pod("web-1", "web", "n1"),
            pod("web-2", "web", "n2"),
            pod("db-1", "db", "n1"),
        ];
        let got = node_pods(&pods, &[scaler("web", "web", "Auto")], "n1");
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].key, "default/db-1");
        assert!(got[0].governor.is_none());
        assert_eq!(got[1].key, "default/web-1");
        assert_eq!(
            got[1].governor.as_ref().map(|g| g.scaler.as_str()),
            Some("web")
        );
        assert_eq!(
            got[1].containers[0].id.as_deref(),
            Some("containerd://abc123")
        );
        assert_eq!(got[1].containers[0].spec, CpuResources::new(100, 1000));
    }

    #[test]
    fn two_scalers_off_mode_and_invalid_scalers_govern_nothing() {
        let pods = [pod("web-1", "web", "n1")];
        let two = node_pods(
            &pods,
            &[scaler("a", "web", "Auto"), scaler("b", "web", "Recommend")],
            "n1",
        );
        assert!(two[0].governor.is_none());
        assert!(
            two[0]
                .not_governed
                .as_deref()
                .unwrap_or("")
                .contains("a, b"),
            "{:?}",
            two[0].not_governed
        );
        assert!(
            node_pods(&pods, &[scaler("a", "web", "Off")], "n1")[0]
                .governor
                .is_none()
        );
        let mut bad = (*scaler("a", "web", "Auto")).clone();
        bad.spec.cpu.min = crate::quantity::CpuQuantity::new("3");
        let got = node_pods(&pods, &[Arc::new(bad)], "n1");
        assert!(got[0].governor.is_none());
        assert!(
            got[0]
                .not_governed
                .as_deref()
                .unwrap_or("")
                .contains("spec.cpu.min"),
            "{:?}",
            got[0].not_governed
        );
        // An invalid BurstScaler next to a valid one is no conflict (as in the controller):
        // the valid one governs.
        let mut bad = (*scaler("bad", "web", "Auto")).clone();
        bad.spec.cpu.min = crate::quantity::CpuQuantity::new("3");
        let got = node_pods(&pods, &[Arc::new(bad), scaler("good", "web", "Auto")], "n1");
        assert_eq!(
            got[0].governor.as_ref().map(|g| g.scaler.as_str()),
            Some("good"),
            "{:?}",
            got[0].not_governed
        );
    }
}
