//! Build (pure): from what the watches and the metrics poller hold, the engine's per-node
//! inputs and each BurstScaler's standing (valid? conflicting? which pods?). No client, no
//! clock: `now` is passed in. The controller's I/O edges feed this and act on its output.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::ResourceExt;
use kube::core::{Selector, SelectorExt};
use serde::{Deserialize, Serialize};

use super::usage_book::UsageBook;
use crate::api::{
    BurstScaler, FieldError, Mode, ORIGINAL_RESOURCES_ANNOTATION, ValidatedSpec, validate,
};
use crate::engine::{
    ContainerInput, CpuResources, NodeInput, PodInput, QosClass, ResizeState, UngovernedPod,
};
use crate::quantity::{MilliCpu, parse_cpu};

/// `namespace/name`.
pub type Key = String;

pub fn key_of<K: ResourceExt>(o: &K) -> Key {
    format!("{}/{}", o.namespace().unwrap_or_default(), o.name_any())
}

/// The pods an HPA scales on CPU (resolved by the I/O layer from its scale target).
#[derive(Debug, Clone)]
pub struct HpaTarget {
    pub namespace: String,
    pub name: String,
    pub selector: Selector,
}

/// What burst-scaler recorded on a pod before its first change (the pod annotation
/// `burstscaler.dev/original-resources`, JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct OriginalResources {
    /// Container name → CPU request and limit as they were (millicores; absent = unset).
    pub containers: BTreeMap<String, OriginalCpu>,
    /// When burst-scaler last changed the pod (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_change: Option<Timestamp>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct OriginalCpu {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
}

impl From<OriginalCpu> for CpuResources {
    fn from(o: OriginalCpu) -> Self {
        CpuResources {
            request: o.request.map(MilliCpu),
            limit: o.limit.map(MilliCpu),
            weight: None,
        }
    }
}

impl From<CpuResources> for OriginalCpu {
    fn from(c: CpuResources) -> Self {
        OriginalCpu {
            request: c.request.map(|m| m.0),
            limit: c.limit.map(|m| m.0),
        }
    }
}

/// Reads a pod's annotation; `Ok(None)` when it has none. Anyone who may edit the pod can
/// write it, so it is refused unless every value is a CPU burst-scaler could have recorded
/// (at most [`MAX_MILLICORES`](crate::quantity::MAX_MILLICORES)): the engine's arithmetic on
/// millicores is only overflow-free within that bound.
pub fn original_of(pod: &Pod) -> Result<Option<OriginalResources>, String> {
    let Some(v) = pod.annotations().get(ORIGINAL_RESOURCES_ANNOTATION) else {
        return Ok(None);
    };
    let invalid =
        |why: String| format!("annotation {ORIGINAL_RESOURCES_ANNOTATION} is not valid: {why}");
    let orig: OriginalResources = serde_json::from_str(v).map_err(|e| invalid(e.to_string()))?;
    for (name, c) in &orig.containers {
        for (what, m) in [("request", c.request), ("limit", c.limit)] {
            if let Some(m) = m.filter(|m| *m > crate::quantity::MAX_MILLICORES) {
                return Err(invalid(format!(
                    "container {name}: {what} {m}m is above 10000 cores"
                )));
            }
        }
    }
    Ok(Some(orig))
}

/// A BurstScaler's standing in this pass.
#[derive(Debug, Clone)]
pub struct ScalerPlan {
    pub key: Key,
    pub generation: Option<i64>,
    pub validated: Result<Arc<ValidatedSpec>, Vec<FieldError>>,
    /// Pods it governs this pass (`namespace/name`), conflicts excluded.
    pub pods: Vec<Key>,
    /// Why some of its pods are left alone (another BurstScaler, an HPA).
    pub conflicts: Vec<String>,
    pub deleting: bool,
}

impl ScalerPlan {
    pub fn mode(&self) -> Option<Mode> {
        self.validated.as_ref().ok().map(|v| v.mode)
    }
}

/// Everything a pass needs.
#[derive(Debug, Default)]
pub struct Plan {
    pub scalers: BTreeMap<Key, ScalerPlan>,
    pub nodes: Vec<NodeInput>,
    /// Pod key → the BurstScaler governing it.
    pub owner: BTreeMap<Key, Key>,
    /// Pods carrying the annotation that no `Auto` BurstScaler governs: to restore.
    pub to_restore: Vec<Key>,
    /// Pods skipped because of bad data, with the reason (for Warning Events).
    pub bad_pods: Vec<(Key, String)>,
}

/// Builds the plan. Pods must be Running and scheduled to be governed.
pub fn build(
    scalers: &[Arc<BurstScaler>],
    pods: &[Arc<Pod>],
    nodes: &[Arc<Node>],
    hpas: &[HpaTarget],
    usage: &UsageBook,
    reserve: MilliCpu,
) -> Plan {
    let mut plan = Plan::default();

    // 1. Validate every BurstScaler and find its pods.
    let mut selected: BTreeMap<Key, Vec<Key>> = BTreeMap::new(); // pod → scalers
    let mut selectors: BTreeMap<Key, Option<Selector>> = BTreeMap::new();
    for s in scalers {
        let key = key_of(s.as_ref());
        let validated = validate(&s.spec).map(Arc::new);
        let selector = Selector::try_from(s.spec.selector.clone()).ok();
        plan.scalers.insert(
            key.clone(),
            ScalerPlan {
                key: key.clone(),
                generation: s.metadata.generation,
                validated,
                pods: vec![],
                conflicts: vec![],
                deleting: s.metadata.deletion_timestamp.is_some(),
            },
        );
        selectors.insert(key, selector);
    }
    let running = |p: &Pod| {
        p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some()
            && p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
    };
    for p in pods.iter().filter(|p| running(p)) {
        let pk = key_of(p.as_ref());
        let ns = p.namespace().unwrap_or_default();
        for s in scalers {
            let sk = key_of(s.as_ref());
            let valid = plan
                .scalers
                .get(&sk)
                .is_some_and(|sp| sp.validated.is_ok() && !sp.deleting);
            let matches = s.namespace().as_deref() == Some(ns.as_str())
                && selectors
                    .get(&sk)
                    .and_then(Option::as_ref)
                    .is_some_and(|sel| !sel.selects_all() && sel.matches(p.labels()));
            if valid && matches {
                selected.entry(pk.clone()).or_default().push(sk);
            }
        }
    }

    // 2. Conflicts: two BurstScalers on one pod; an HPA scaling the pod on CPU.
    for (pk, owners) in &selected {
        if owners.len() > 1 {
            for sk in owners {
                let others: Vec<&str> = owners
                    .iter()
                    .filter(|o| *o != sk)
                    .map(String::as_str)
                    .collect();
                if let Some(sp) = plan.scalers.get_mut(sk) {
                    sp.conflicts.push(format!(
                        "pod {pk} is also selected by BurstScaler {}: the pod is left alone",
                        others.join(", ")
                    ));
                }
            }
            continue;
        }
        let Some(sk) = owners.first() else { continue };
        let Some(pod) = pods.iter().find(|p| &key_of(p.as_ref()) == pk) else {
            continue;
        };
        let ns = pod.namespace().unwrap_or_default();
        if let Some(h) = hpas
            .iter()
            .find(|h| h.namespace == ns && h.selector.matches(pod.labels()))
        {
            if let Some(sp) = plan.scalers.get_mut(sk) {
                sp.conflicts.push(format!(
                    "pod {pk} is scaled on CPU by HorizontalPodAutoscaler {}/{}: the pod is left alone (resizing it would move the HPA's utilization)",
                    h.namespace, h.name
                ));
            }
            continue;
        }
        if let Some(sp) = plan.scalers.get_mut(sk) {
            sp.pods.push(pk.clone());
        }
        plan.owner.insert(pk.clone(), sk.clone());
    }

    // 3. Per node: governed pods (valid, not Off) and everything else.
    let mut by_node: BTreeMap<String, NodeInput> = BTreeMap::new();
    for n in nodes {
        let name = n.name_any();
        let allocatable = n
            .status
            .as_ref()
            .and_then(|s| s.allocatable.as_ref())
            .and_then(|a| a.get("cpu"))
            .and_then(|q| parse_cpu(&q.0).ok())
            .unwrap_or(MilliCpu::ZERO);
        by_node.insert(
            name.clone(),
            NodeInput {
                name,
                actuator: crate::engine::Actuator::InPlaceResize,
                allocatable,
                reserve,
                pods: vec![],
                ungoverned: vec![],
            },
        );
    }
    let mut auto_governed: BTreeSet<Key> = BTreeSet::new();
    for p in pods.iter().filter(|p| running(p)) {
        let pk = key_of(p.as_ref());
        let Some(node_name) = p.spec.as_ref().and_then(|s| s.node_name.clone()) else {
            continue;
        };
        let Some(node) = by_node.get_mut(&node_name) else {
            continue;
        };
        let scaler = plan.owner.get(&pk).and_then(|sk| plan.scalers.get(sk));
        let policy = scaler
            .and_then(|s| s.validated.as_ref().ok())
            .filter(|v| v.mode != Mode::Off);
        let governed = policy.and_then(|policy| match pod_input(p, &pk, policy.clone(), usage) {
            Ok(input) => Some(input),
            Err(why) => {
                plan.bad_pods.push((pk.clone(), why));
                None
            }
        });
        match governed {
            Some(input) => {
                if input.policy.mode == Mode::Auto {
                    auto_governed.insert(pk.clone());
                }
                node.pods.push(input);
            }
            None => node.ungoverned.push(ungoverned(p, &pk, usage)),
        }
    }
    for p in pods {
        let pk = key_of(p.as_ref());
        if !auto_governed.contains(&pk)
            && p.annotations().contains_key(ORIGINAL_RESOURCES_ANNOTATION)
        {
            plan.to_restore.push(pk);
        }
    }
    plan.nodes = by_node.into_values().collect();
    plan
}

/// CPU request and limit of every container in the pod spec.
pub fn container_cpu(pod: &Pod) -> Result<Vec<(String, CpuResources)>, String> {
    let mut out = vec![];
    for c in pod.spec.iter().flat_map(|s| &s.containers) {
        let get = |m: Option<
            &BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>,
        >,
                   what: &str| {
            m.and_then(|m| m.get("cpu"))
                .map(|q| {
                    parse_cpu(&q.0).map_err(|e| format!("container {} cpu {what}: {e}", c.name))
                })
                .transpose()
        };
        let r = c.resources.as_ref();
        out.push((
            c.name.clone(),
            CpuResources {
                request: get(r.and_then(|r| r.requests.as_ref()), "request")?,
                limit: get(r.and_then(|r| r.limits.as_ref()), "limit")?,
                weight: None,
            },
        ));
    }
    Ok(out)
}

fn qos(pod: &Pod, containers: &[(String, CpuResources)]) -> QosClass {
    match pod.status.as_ref().and_then(|s| s.qos_class.as_deref()) {
        Some("Guaranteed") => QosClass::Guaranteed,
        Some("BestEffort") => QosClass::BestEffort,
        Some(_) => QosClass::Burstable,
        None if containers
            .iter()
            .all(|(_, c)| c.request.is_none() && c.limit.is_none()) =>
        {
            QosClass::BestEffort
        }
        None => QosClass::Burstable,
    }
}

fn resize_state(pod: &Pod) -> ResizeState {
    let conds = pod.status.as_ref().and_then(|s| s.conditions.as_ref());
    for c in conds.into_iter().flatten() {
        if c.status != "True" {
            continue;
        }
        match (c.type_.as_str(), c.reason.as_deref()) {
            ("PodResizePending", Some("Infeasible")) => return ResizeState::Infeasible,
            ("PodResizePending", _) => return ResizeState::Deferred,
            ("PodResizeInProgress", _) => return ResizeState::InProgress,
            _ => {}
        }
    }
    ResizeState::Idle
}

fn pod_input(
    pod: &Pod,
    pk: &Key,
    policy: Arc<ValidatedSpec>,
    usage: &UsageBook,
) -> Result<PodInput, String> {
    let cpu = container_cpu(pod)?;
    let original = original_of(pod)?;
    let qos = qos(pod, &cpu);
    let containers = cpu
        .iter()
        .map(|(name, current)| ContainerInput {
            name: name.clone(),
            current: *current,
            original: original
                .as_ref()
                .and_then(|o| o.containers.get(name))
                .map(|o| (*o).into()),
            samples: usage.samples(pk, name),
            recommendation: usage.recommend(pk, name, &policy),
        })
        .collect();
    Ok(PodInput {
        name: pk.clone(),
        policy,
        qos,
        containers,
        resize: resize_state(pod),
        last_change: original.and_then(|o| o.last_change),
    })
}

fn ungoverned(pod: &Pod, pk: &Key, usage: &UsageBook) -> UngovernedPod {
    let cpu = container_cpu(pod).unwrap_or_default();
    let request = cpu.iter().filter_map(|(_, c)| c.request).sum();
    let latest: Vec<MilliCpu> = cpu
        .iter()
        .filter_map(|(name, _)| usage.latest(pk, name))
        .collect();
    UngovernedPod {
        name: pk.clone(),
        request,
        usage: (!latest.is_empty()).then(|| latest.into_iter().sum()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    pub fn mk_pod(name: &str, labels: serde_json::Value, req: &str, lim: &str) -> Arc<Pod> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": "default", "labels": labels},
                "spec": {"nodeName": "node-1", "containers": [{"name": "main",
                    "resources": {"requests": {"cpu": req}, "limits": {"cpu": lim}}}]},
                "status": {"phase": "Running", "qosClass": "Burstable"}
            }))
            .expect("pod"),
        )
    }

    pub fn mk_scaler(name: &str, app: &str, extra: serde_json::Value) -> Arc<BurstScaler> {
        let mut spec = json!({"selector": {"matchLabels": {"app": app}}, "role": "LatencySensitive",
                              "cpu": {"min": "100m", "max": "2"}, "mode": "Auto"});
        if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                s.insert(k.clone(), v.clone());
            }
        }
        Arc::new(
            serde_json::from_value(
                json!({"apiVersion": "burstscaler.dev/v1alpha1", "kind": "BurstScaler",
                "metadata": {"name": name, "namespace": "default", "generation": 3}, "spec": spec}),
            )
            .expect("scaler"),
        )
    }

    fn mk_node() -> Arc<Node> {
        Arc::new(
            serde_json::from_value(json!({"metadata": {"name": "node-1"},
                "status": {"allocatable": {"cpu": "2"}}}))
            .expect("node"),
        )
    }

    fn run(scalers: &[Arc<BurstScaler>], pods: &[Arc<Pod>], hpas: &[HpaTarget]) -> Plan {
        build(
            scalers,
            pods,
            &[mk_node()],
            hpas,
            &UsageBook::default(),
            MilliCpu(100),
        )
    }

    #[test]
    fn selected_pods_are_governed_others_count_as_ungoverned() {
        let plan = run(
            &[mk_scaler("web", "web", json!({}))],
            &[
                mk_pod("web-1", json!({"app": "web"}), "250m", "500m"),
                mk_pod("db", json!({"app": "db"}), "1", "1"),
            ],
            &[],
        );
        assert_eq!(
            plan.scalers["default/web"].pods,
            vec!["default/web-1".to_string()]
        );
        let node = &plan.nodes[0];
        assert_eq!(node.allocatable, MilliCpu(2000));
        assert_eq!(node.pods.len(), 1);
        assert_eq!(
            node.pods[0].containers[0].current,
            CpuResources::new(250, 500)
        );
        assert_eq!(node.ungoverned.len(), 1);
        assert_eq!(node.ungoverned[0].request, MilliCpu(1000));
    }

    /// Found by the bad-input corpus (issue 15): an annotation anyone may write, recording a
    /// limit of 2^64−1 millicores, was taken as the pod's original and reached the engine,
    /// whose arithmetic on millicores is only overflow-free up to 10000 cores.
    #[test]
    fn an_annotation_with_absurd_values_is_bad_pod_data_not_an_original() {
        let mut pod = (*mk_pod("web-1", json!({"app": "web"}), "250m", "500m")).clone();
        pod.metadata.annotations = Some(
            [(
                ORIGINAL_RESOURCES_ANNOTATION.to_string(),
                r#"{"containers":{"main":{"request":100,"limit":18446744073709551615}}}"#
                    .to_string(),
            )]
            .into(),
        );
        let err = original_of(&pod).expect_err("refused");
        assert!(
            err.contains("container main: limit 18446744073709551615m is above 10000 cores"),
            "{err}"
        );
        let plan = run(
            &[mk_scaler("web", "web", json!({}))],
            &[Arc::new(pod.clone())],
            &[],
        );
        assert_eq!(plan.bad_pods.len(), 1, "{:?}", plan.bad_pods);
        assert!(plan.nodes[0].pods.is_empty());
        // At the bound itself it is still an original.
        pod.metadata.annotations = Some(
            [(
                ORIGINAL_RESOURCES_ANNOTATION.to_string(),
                r#"{"containers":{"main":{"request":100,"limit":10000000}}}"#.to_string(),
            )]
            .into(),
        );
        assert!(original_of(&pod).expect("valid").is_some());
    }

    /// Within the bound the engine's arithmetic holds: originals of 10000 cores, with usage
    /// history, in both roles (above it, `decide()` overflowed, e.g. `request × limit` when
    /// scaling down and `orig × step` when releasing a throttle — a panic in debug builds).
    #[test]
    fn originals_at_the_bound_do_not_overflow_the_engine() {
        let max = crate::quantity::MAX_MILLICORES;
        let batch = json!({"role": "Batch", "cpu": {"min": "100m", "max": "2"},
            "batch": {"floor": "100m", "borrow": {"enabled": true}}});
        for (req, lim) in [(100, max), (max, max), (max, 100)] {
            for (extra, usage) in [(json!({}), 10), (json!({}), 490), (batch.clone(), 10)] {
                let mut pod = (*mk_pod("web-1", json!({"app": "web"}), "250m", "500m")).clone();
                pod.metadata.annotations = Some(
                    [(
                        ORIGINAL_RESOURCES_ANNOTATION.to_string(),
                        format!(
                            r#"{{"containers":{{"main":{{"request":{req},"limit":{lim}}}}},"lastChange":"2020-01-01T00:00:00Z"}}"#
                        ),
                    )]
                    .into(),
                );
                let mut book = UsageBook::default();
                let t0 = Timestamp::now();
                for i in 0..40 {
                    let t = t0 + jiff::SignedDuration::from_secs(15 * i);
                    book.add("default/web-1", "main", t, MilliCpu(usage), Some(3600));
                }
                let plan = build(
                    &[mk_scaler("web", "web", extra.clone())],
                    &[Arc::new(pod)],
                    &[mk_node()],
                    &[],
                    &book,
                    MilliCpu(100),
                );
                assert!(plan.bad_pods.is_empty(), "{:?}", plan.bad_pods);
                assert_eq!(plan.nodes[0].pods.len(), 1);
                let now = t0 + jiff::SignedDuration::from_secs(15 * 40);
                let d = crate::engine::decide(
                    &plan.nodes[0],
                    &crate::engine::EngineConfig::default(),
                    now,
                );
                assert_eq!(d.pods.len(), 1, "{req} {lim} {usage} {extra}");
            }
        }
    }

    #[test]
    fn two_scalers_on_one_pod_both_conflict_and_the_pod_is_left_alone() {
        let plan = run(
            &[
                mk_scaler("a", "web", json!({})),
                mk_scaler("b", "web", json!({})),
            ],
            &[mk_pod("web-1", json!({"app": "web"}), "250m", "500m")],
            &[],
        );
        for k in ["default/a", "default/b"] {
            let sp = &plan.scalers[k];
            assert!(sp.pods.is_empty());
            assert_eq!(sp.conflicts.len(), 1, "{:?}", sp.conflicts);
            assert!(sp.conflicts[0].contains("is also selected by BurstScaler"));
        }
        assert!(plan.nodes[0].pods.is_empty());
        assert_eq!(plan.nodes[0].ungoverned.len(), 1);
    }

    #[test]
    fn an_hpa_on_the_same_pods_is_a_conflict() {
        let hpa = HpaTarget {
            namespace: "default".into(),
            name: "web".into(),
            selector: Selector::try_from(
                serde_json::from_value::<
                    k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector,
                >(json!({"matchLabels": {"app": "web"}}))
                .expect("sel"),
            )
            .expect("selector"),
        };
        let plan = run(
            &[mk_scaler("web", "web", json!({}))],
            &[mk_pod("web-1", json!({"app": "web"}), "250m", "500m")],
            &[hpa],
        );
        let sp = &plan.scalers["default/web"];
        assert!(
            sp.conflicts[0].contains("HorizontalPodAutoscaler default/web"),
            "{:?}",
            sp.conflicts
        );
        assert!(plan.nodes[0].pods.is_empty());
    }

    #[test]
    fn invalid_and_off_scalers_govern_nothing() {
        let bad = mk_scaler("bad", "web", json!({"cpu": {"min": "3", "max": "2"}}));
        let off = mk_scaler("off", "db", json!({"mode": "Off"}));
        let plan = run(
            &[bad, off],
            &[
                mk_pod("web-1", json!({"app": "web"}), "250m", "500m"),
                mk_pod("db-1", json!({"app": "db"}), "250m", "500m"),
            ],
            &[],
        );
        let errs = plan.scalers["default/bad"]
            .validated
            .as_ref()
            .expect_err("invalid");
        assert_eq!(errs[0].message, crate::api::rules::CPU_MIN_LE_MAX.message);
        assert!(plan.scalers["default/bad"].pods.is_empty());
        // Off: selected (counted in status) but not handed to the engine.
        assert_eq!(
            plan.scalers["default/off"].pods,
            vec!["default/db-1".to_string()]
        );
        assert!(plan.nodes[0].pods.is_empty());
        assert_eq!(plan.nodes[0].ungoverned.len(), 2);
    }

    #[test]
    fn malformed_annotation_skips_the_pod_with_a_reason() {
        let mut pod = (*mk_pod("web-1", json!({"app": "web"}), "250m", "500m")).clone();
        pod.metadata.annotations = Some(
            [(
                ORIGINAL_RESOURCES_ANNOTATION.to_string(),
                "{not json".to_string(),
            )]
            .into(),
        );
        let plan = run(&[mk_scaler("web", "web", json!({}))], &[Arc::new(pod)], &[]);
        assert_eq!(plan.bad_pods.len(), 1);
        assert!(
            plan.bad_pods[0]
                .1
                .contains("burstscaler.dev/original-resources is not valid"),
            "{:?}",
            plan.bad_pods
        );
        assert!(plan.nodes[0].pods.is_empty());
    }

    #[test]
    fn annotated_pods_outside_any_auto_scaler_are_restored() {
        let mut pod = (*mk_pod("web-1", json!({"app": "other"}), "400m", "800m")).clone();
        let orig = OriginalResources {
            containers: [(
                "main".to_string(),
                OriginalCpu {
                    request: Some(250),
                    limit: Some(500),
                },
            )]
            .into(),
            last_change: None,
        };
        pod.metadata.annotations = Some(
            [(
                ORIGINAL_RESOURCES_ANNOTATION.to_string(),
                serde_json::to_string(&orig).expect("json"),
            )]
            .into(),
        );
        let plan = run(&[mk_scaler("web", "web", json!({}))], &[Arc::new(pod)], &[]);
        assert_eq!(plan.to_restore, vec!["default/web-1".to_string()]);
    }

    #[test]
    fn resize_conditions_are_read() {
        let mut pod = (*mk_pod("web-1", json!({"app": "web"}), "250m", "500m")).clone();
        pod.status = serde_json::from_value(json!({"phase": "Running", "qosClass": "Burstable",
            "conditions": [{"type": "PodResizePending", "status": "True", "reason": "Infeasible"}]}))
        .expect("status");
        assert_eq!(resize_state(&pod), ResizeState::Infeasible);
    }
}
