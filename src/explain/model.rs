//! Explain (pure): from what the cluster holds about one pod (or one BurstScaler) — the pod,
//! the BurstScalers of its namespace, its node's `BurstScalerNode`, whether the node's agent
//! holds its Lease, the Events, and the decider's newest verdicts — who governs it, with which
//! actuator, what is in force against the spec and the originals, the last decision and what
//! would happen next. No client and no clock: [`super::fetch`] gathers the facts.

use std::collections::BTreeMap;
use std::sync::Arc;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::events::v1::Event;
use kube::ResourceExt;
use kube::core::{Selector, SelectorExt};
use serde::Serialize;

use super::verdict::{VerdictChange, Verdicts};
use crate::agent::select::node_pods;
use crate::api::{BurstScaler, BurstScalerNodeStatus, Mode, Role, validate};
use crate::controller::build::{container_cpu, original_of};
use crate::engine::CpuResources;
use crate::quantity::{CpuQuantity, MilliCpu};

/// How many Events an explanation shows (newest first).
pub const MAX_EVENTS: usize = 10;

/// Everything known about one pod.
pub struct PodFacts<'a> {
    pub pod: &'a Arc<Pod>,
    /// The BurstScalers of the pod's namespace.
    pub scalers: &'a [Arc<BurstScaler>],
    /// The status of the `BurstScalerNode` of the pod's node, if there is one.
    pub node: Option<&'a BurstScalerNodeStatus>,
    /// Whether the node's agent holds its Lease (then the agent decides the node's pods), or
    /// why that could not be read.
    pub agent_live: Result<bool, String>,
    /// Whether the API server has `pods/resize` (then the controller can resize in place), or
    /// why that could not be read.
    pub resize_supported: Result<bool, String>,
    /// Events of the pod's namespace (those about this pod are picked here).
    pub events: &'a [Event],
    /// The deciding component's newest verdicts, or why they could not be read.
    pub verdicts: Result<Verdicts, String>,
    pub now: Timestamp,
}

/// The answer to "why is my pod at 300m?" (`-o json` prints this).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PodExplanation {
    /// `namespace/name`.
    pub pod: String,
    pub uid: String,
    pub node: Option<String>,
    pub phase: Option<String>,
    /// The governing BurstScaler, when there is one.
    pub governed_by: Option<Governance>,
    /// Why no BurstScaler governs the pod (set exactly when `governedBy` is absent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_governed: Option<String>,
    pub actuator: ActuatorInfo,
    pub containers: Vec<ContainerState>,
    /// The last decision that changed (or, outside `Auto`, would have changed) the pod.
    pub last_decision: Option<DecisionInfo>,
    /// What the decider's newest pass decided for the pod: what happens next.
    pub next: Option<NextInfo>,
    /// Why `next` is absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_unavailable: Option<String>,
    /// Events about the pod, newest first (at most [`MAX_EVENTS`]).
    pub events: Vec<EventInfo>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Governance {
    pub burst_scaler: String,
    pub role: Role,
    pub mode: Mode,
    /// The BurstScaler's `Ready` condition: `True`/`False`, with its message.
    pub ready: Option<String>,
}

/// Which component puts decisions in force for the pod.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ActuatorInfo {
    /// `NodeAgent` (cgroups), `InPlaceResize` (the controller, `pods/resize`), `None`, or
    /// `Unknown` (what decides it could not be read).
    pub kind: String,
    pub detail: String,
    /// Whether decisions are put in force: mode `Auto`, an actuator that can act, and its
    /// decider acting now (not `--dry-run`, leading / holding its Lease). `null`: unknown.
    pub applies: Option<bool>,
}

/// One container: its spec, the originals burst-scaler recorded, what is in force.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerState {
    pub name: String,
    pub governed: bool,
    pub spec: Cpu,
    /// The resources recorded before burst-scaler's first change of the pod spec (controller).
    pub original: Option<Cpu>,
    /// In force: the cgroup's limit and weight (agent) or the pod spec (controller).
    pub in_force: Option<Cpu>,
    /// `throttled`, `raised`, `at spec`, `unknown` or `left alone: …`.
    pub state: String,
}

/// Request, limit and weight, as `/decisions` writes them.
pub use super::verdict::CpuView as Cpu;

/// A decision as its decider recorded it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DecisionInfo {
    /// `agent` (the `BurstScalerNode`'s pod entry) or `controller` (the BurstScaler's status).
    pub source: String,
    pub time: Timestamp,
    pub action: String,
    /// Whether it was put in force (unknown for the controller's status).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub applied: Option<bool>,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NextInfo {
    pub decider: String,
    pub instance: String,
    pub time: Option<Timestamp>,
    pub action: String,
    pub reason: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<VerdictChange>,
    /// The node's accounting behind the decision.
    pub node_summary: String,
    /// Whether the decider puts decisions in force now.
    pub acting: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventInfo {
    pub time: Option<Timestamp>,
    #[serde(rename = "type")]
    pub type_: String,
    pub reason: String,
    pub note: String,
    pub reporter: String,
    pub count: i32,
}

/// Explains one pod.
pub fn explain_pod(f: &PodFacts<'_>) -> PodExplanation {
    let pod = f.pod.as_ref();
    let ns = pod.namespace().unwrap_or_default();
    let key = format!("{ns}/{}", pod.name_any());
    let uid = pod.uid().unwrap_or_default();
    let node = pod.spec.as_ref().and_then(|s| s.node_name.clone());
    let phase = pod.status.as_ref().and_then(|s| s.phase.clone());
    let scalers: Vec<Arc<BurstScaler>> = f
        .scalers
        .iter()
        .filter(|s| s.namespace().as_deref() == Some(ns.as_str()))
        .cloned()
        .collect();

    // 1. Who governs it: the agent's and the controller's rule (one valid BurstScaler of the
    //    namespace selects it, not being deleted, mode not Off; the pod Running).
    let np = node
        .as_deref()
        .and_then(|n| node_pods(std::slice::from_ref(f.pod), &scalers, n).pop());
    let agent_live = matches!(f.agent_live, Ok(true));
    let mut governor = np.as_ref().and_then(|p| p.governor.clone());
    // Where the controller decides, it also leaves alone pods an HPA scales on CPU: its
    // BurstScaler's Conflict condition names them.
    let mut hpa_conflict = None;
    if !agent_live && let Some(g) = &governor {
        let needle = format!("pod {key} ");
        hpa_conflict = scalers
            .iter()
            .find(|s| s.name_any() == g.scaler)
            .and_then(|s| s.status.as_ref())
            .and_then(|st| {
                st.conditions
                    .iter()
                    .find(|c| c.type_ == "Conflict" && c.status == "True")
            })
            .and_then(|c| {
                c.message
                    .split("; ")
                    .find(|m| m.starts_with(&needle) && m.contains("HorizontalPodAutoscaler"))
                    .map(|m| format!("BurstScaler {}'s Conflict condition: {m}", g.scaler))
            });
        if hpa_conflict.is_some() {
            governor = None;
        }
    }
    let governed_by = governor.as_ref().map(|g| Governance {
        burst_scaler: g.scaler.clone(),
        role: g.policy.role,
        mode: g.policy.mode,
        ready: scalers
            .iter()
            .find(|s| s.name_any() == g.scaler)
            .and_then(|s| s.status.as_ref())
            .and_then(|st| st.conditions.iter().find(|c| c.type_ == "Ready"))
            .map(|c| format!("{}: {}", c.status, c.message)),
    });
    let not_governed = match (&governor, &np) {
        (Some(_), _) => None,
        (None, _) if hpa_conflict.is_some() => hpa_conflict,
        (None, Some(p)) => Some(
            p.not_governed
                .clone()
                .unwrap_or_else(|| why_unselected(pod, &scalers)),
        ),
        (None, None) => Some(not_running(pod, node.is_some(), phase.as_deref())),
    };

    // 2. The actuator.
    let mode = governor.as_ref().map(|g| g.policy.mode);
    let agent = f.node.and_then(|s| s.agent.as_ref());
    let node_name = node.clone().unwrap_or_default();
    let (kind, detail, can_act) = if let Err(why) = &f.agent_live {
        (
            "Unknown",
            format!("unknown: cannot tell whether a node agent governs node {node_name}: {why}"),
            false,
        )
    } else if agent_live {
        let detail = match agent {
            Some(a) => format!(
                "the node agent {} on node {node_name} (cgroups, every {} s; burst-scaler {}, {})",
                a.pod, a.interval_seconds, a.version, a.cgroups
            ),
            None => format!(
                "the node agent on node {node_name} (it holds its Lease but has not reported yet)"
            ),
        };
        ("NodeAgent", detail, true)
    } else if let Err(why) = &f.resize_supported {
        (
            "Unknown",
            format!(
                "unknown: no node agent holds node {node_name}'s Lease, and whether this API server has pods/resize could not be read: {why}"
            ),
            false,
        )
    } else if matches!(f.resize_supported, Ok(true)) {
        (
            "InPlaceResize",
            format!(
                "the controller, by in-place resize (pods/resize): no node agent holds node {node_name}'s Lease"
            ),
            true,
        )
    } else {
        (
            "None",
            format!(
                "nothing can act: no node agent holds node {node_name}'s Lease and this API server has no pods/resize (Kubernetes < 1.33), so decisions are only reported"
            ),
            false,
        )
    };
    let acting = f.verdicts.as_ref().ok().map(|v| v.acting);
    let applies = if mode != Some(Mode::Auto) {
        Some(false)
    } else if kind == "Unknown" {
        None
    } else if !can_act {
        Some(false)
    } else {
        acting
    };
    let actuator = ActuatorInfo {
        kind: kind.to_string(),
        detail,
        applies,
    };

    // 3. Containers: spec, originals, in force.
    let agent_pod = f
        .node
        .and_then(|s| s.pods.iter().find(|p| p.uid == uid && !uid.is_empty()));
    let originals = original_of(pod).ok().flatten();
    let spec = container_cpu(pod).unwrap_or_default();
    let containers = spec
        .iter()
        .map(|(name, res)| {
            let governed = governor.as_ref().is_some_and(|g| g.policy.governs(name));
            let original = originals
                .as_ref()
                .and_then(|o| o.containers.get(name))
                .map(|o| Cpu::from(CpuResources::from(*o)));
            let (in_force, state) = if agent_live {
                match agent_pod.and_then(|p| p.containers.iter().find(|c| &c.name == name)) {
                    Some(c) => {
                        let state = match &c.skipped {
                            Some(why) => format!("left alone: {why}"),
                            None => agent_state(res, c.limit.as_ref(), c.weight.as_ref()),
                        };
                        (
                            Some(Cpu {
                                request: c.spec_request.clone(),
                                limit: c.limit.clone(),
                                weight: c.weight.clone(),
                            }),
                            state,
                        )
                    }
                    None if governed => (None, "unknown: the agent has not reported it".into()),
                    None => (None, "at spec (not governed)".into()),
                }
            } else {
                let orig = originals.as_ref().and_then(|o| o.containers.get(name));
                (
                    Some(Cpu::from(*res)),
                    spec_state(res, orig.map(|o| o.limit)),
                )
            };
            ContainerState {
                name: name.clone(),
                governed,
                spec: Cpu::from(CpuResources {
                    weight: None,
                    ..*res
                }),
                original,
                in_force,
                state,
            }
        })
        .collect();

    // 4. The last decision, from the decider's own record.
    let last_decision = if agent_live {
        agent_pod
            .and_then(|p| p.last_decision.as_ref())
            .map(|d| DecisionInfo {
                source: "agent".into(),
                time: d.time.0,
                action: d.action.clone(),
                applied: Some(d.applied),
                reason: d.reason.clone(),
            })
    } else {
        governor.as_ref().and_then(|g| {
            scalers
                .iter()
                .find(|s| s.name_any() == g.scaler)
                .and_then(|s| s.status.as_ref())
                .and_then(|st| st.last_decision.as_ref())
                .filter(|d| d.pod == key || d.pod == pod.name_any())
                .map(|d| DecisionInfo {
                    source: "controller".into(),
                    time: d.time.0,
                    action: d.action.clone(),
                    applied: None,
                    reason: d.reason.clone(),
                })
        })
    };

    // 5. Next: the decider's newest verdict for the pod.
    let (next, next_unavailable) = match &f.verdicts {
        _ if governor.is_none() => (None, Some("the pod is not governed".to_string())),
        Ok(v) => match v.pod(&key) {
            Some((n, p)) => (
                Some(NextInfo {
                    decider: v.decider.clone(),
                    instance: v.instance.clone(),
                    time: v.time,
                    action: p.action.clone(),
                    reason: p.reason.clone(),
                    changes: p.changes.clone(),
                    node_summary: n.summary.clone(),
                    acting: v.acting,
                }),
                None,
            ),
            None => (
                None,
                Some(format!(
                    "the {} {} did not decide this pod in its newest pass{}",
                    v.decider,
                    v.instance,
                    v.time.map(|t| format!(" (at {t})")).unwrap_or_default()
                )),
            ),
        },
        Err(why) => (None, Some(why.clone())),
    };

    PodExplanation {
        pod: key,
        uid: uid.clone(),
        node,
        phase,
        governed_by,
        not_governed,
        actuator,
        containers,
        last_decision,
        next,
        next_unavailable,
        events: pod_events(f.events, &uid),
    }
}

/// The state of a container the agent governs, from its spec and its cgroup's values.
fn agent_state(
    spec: &CpuResources,
    limit: Option<&CpuQuantity>,
    weight: Option<&CpuQuantity>,
) -> String {
    let m = |q: Option<&CpuQuantity>| q.and_then(|q| q.millis().ok());
    let (limit, weight) = (m(limit), m(weight));
    let below = match (spec.limit, limit) {
        (Some(s), Some(n)) => n < s,
        (None, Some(_)) => true,
        _ => false,
    };
    let mut above = vec![];
    match (spec.limit, limit) {
        (Some(s), Some(n)) if n > s => above.push(format!("limit {n} above the spec's {s}")),
        (Some(s), None) => above.push(format!("limit unlimited above the spec's {s}")),
        _ => {}
    }
    if let (Some(r), Some(w)) = (spec.request, weight)
        && w > r
    {
        above.push(format!("weight {w} above the request {r}"));
    }
    if below {
        format!(
            "throttled: limit {} below the spec's {}",
            show(limit),
            show(spec.limit)
        )
    } else if !above.is_empty() {
        format!("raised: {}", above.join(", "))
    } else {
        "at spec".into()
    }
}

/// The state of a container the controller governs: its pod spec against the originals.
fn spec_state(spec: &CpuResources, original_limit: Option<Option<u64>>) -> String {
    let Some(orig) = original_limit else {
        return "at spec (never changed by burst-scaler)".into();
    };
    let orig = orig.map(MilliCpu);
    match (orig, spec.limit) {
        (Some(o), Some(n)) if n < o => format!("throttled: limit {n} below the original {o}"),
        (Some(o), Some(n)) if n > o => format!("raised: limit {n} above the original {o}"),
        (None, Some(n)) => format!("throttled: limit {n}, the original was unlimited"),
        _ => "at the original".into(),
    }
}

fn show(m: Option<MilliCpu>) -> String {
    m.map(|m| m.to_string())
        .unwrap_or_else(|| "unlimited".into())
}

/// Why no BurstScaler of the namespace selects the pod.
fn why_unselected(pod: &Pod, scalers: &[Arc<BurstScaler>]) -> String {
    let ns = pod.namespace().unwrap_or_default();
    let mut matching = vec![];
    let mut others = vec![];
    for s in scalers {
        let sel = Selector::try_from(s.spec.selector.clone());
        let selects = sel
            .as_ref()
            .is_ok_and(|sel| !sel.selects_all() && sel.matches(pod.labels()));
        if selects {
            matching.push(s);
        } else {
            others.push(format!("{} ({})", s.name_any(), selector_text(s)));
        }
    }
    if let Some(s) = matching
        .iter()
        .find(|s| s.metadata.deletion_timestamp.is_some())
    {
        return format!(
            "BurstScaler {} selects it but is being deleted: what it changed is being restored",
            s.name_any()
        );
    }
    if let Some(s) = matching
        .iter()
        .find(|s| validate(&s.spec).is_ok_and(|v| v.mode == Mode::Off))
    {
        return format!(
            "BurstScaler {} selects it in mode Off: status only, the pod is never changed",
            s.name_any()
        );
    }
    if others.is_empty() {
        format!("no BurstScaler in namespace {ns}")
    } else {
        format!(
            "no BurstScaler in namespace {ns} selects it (its labels: {}; BurstScalers there: {})",
            labels_text(pod),
            others.join(", ")
        )
    }
}

fn not_running(pod: &Pod, scheduled: bool, phase: Option<&str>) -> String {
    if pod.metadata.deletion_timestamp.is_some() {
        "the pod is being deleted: burst-scaler governs only Running pods".into()
    } else if !scheduled {
        "the pod is not scheduled to a node yet: burst-scaler governs only Running pods".into()
    } else {
        format!(
            "the pod is {}: burst-scaler governs only Running pods",
            phase.unwrap_or("in no phase yet")
        )
    }
}

fn selector_text(s: &BurstScaler) -> String {
    let mut parts: Vec<String> = s
        .spec
        .selector
        .match_labels
        .iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    for e in s.spec.selector.match_expressions.iter().flatten() {
        parts.push(format!(
            "{} {} ({})",
            e.key,
            e.operator,
            e.values
                .iter()
                .flatten()
                .cloned()
                .collect::<Vec<_>>()
                .join(",")
        ));
    }
    if parts.is_empty() {
        "empty selector: selects nothing".into()
    } else {
        parts.join(",")
    }
}

fn labels_text(pod: &Pod) -> String {
    let l = pod.labels();
    if l.is_empty() {
        "none".into()
    } else {
        l.iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// The Events about pod `uid` (regarding it, or related to it: burst-scaler's Events regard
/// the BurstScaler and name the pod as related), newest first.
pub fn pod_events(events: &[Event], uid: &str) -> Vec<EventInfo> {
    if uid.is_empty() {
        return vec![];
    }
    let about = |e: &Event| {
        [e.regarding.as_ref(), e.related.as_ref()]
            .into_iter()
            .flatten()
            .any(|r| r.uid.as_deref() == Some(uid))
    };
    let mut out: Vec<EventInfo> = events.iter().filter(|e| about(e)).map(event_info).collect();
    out.sort_by_key(|e| std::cmp::Reverse(e.time));
    out.truncate(MAX_EVENTS);
    out
}

fn event_info(e: &Event) -> EventInfo {
    let time = e
        .series
        .as_ref()
        .map(|s| s.last_observed_time.0)
        .or_else(|| e.event_time.as_ref().map(|t| t.0))
        .or_else(|| e.deprecated_last_timestamp.as_ref().map(|t| t.0))
        .or_else(|| e.metadata.creation_timestamp.as_ref().map(|t| t.0));
    EventInfo {
        time,
        type_: e.type_.clone().unwrap_or_default(),
        reason: e.reason.clone().unwrap_or_default(),
        note: e.note.clone().unwrap_or_default(),
        reporter: e.reporting_controller.clone().unwrap_or_default(),
        count: e
            .series
            .as_ref()
            .map(|s| s.count)
            .or(e.deprecated_count)
            .unwrap_or(1),
    }
}

/// Everything known about one BurstScaler.
pub struct ScalerFacts<'a> {
    pub scaler: &'a Arc<BurstScaler>,
    /// Pod explanations of the pods of its namespace that it selects.
    pub pods: Vec<PodExplanation>,
    /// Events of its namespace.
    pub events: &'a [Event],
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScalerExplanation {
    /// `namespace/name`.
    pub burst_scaler: String,
    pub role: Role,
    pub mode: Mode,
    pub selector: String,
    /// `validate()`'s errors (a 1.20 API server accepts what CEL would refuse).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub invalid: Vec<String>,
    /// Conditions as `Type=Status: message`.
    pub conditions: Vec<String>,
    pub managed_pods: u32,
    pub resized_pods: u32,
    pub throttled_pods: u32,
    pub recommendations: Vec<String>,
    pub last_decision: Option<DecisionInfo>,
    pub pods: Vec<ScalerPod>,
    pub events: Vec<EventInfo>,
}

/// One selected pod, in a line.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScalerPod {
    pub pod: String,
    pub node: Option<String>,
    /// Governed by this BurstScaler (else `notGoverned` says why).
    pub governed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_governed: Option<String>,
    pub actuator: String,
    /// Per container: `name: state`.
    pub containers: Vec<String>,
    pub last_action: Option<String>,
    pub next_action: Option<String>,
}

/// Explains one BurstScaler.
pub fn explain_scaler(f: &ScalerFacts<'_>) -> ScalerExplanation {
    let s = f.scaler.as_ref();
    let name = s.name_any();
    let key = format!("{}/{name}", s.namespace().unwrap_or_default());
    let status = s.status.clone().unwrap_or_default();
    let invalid = validate(&s.spec)
        .err()
        .unwrap_or_default()
        .iter()
        .map(ToString::to_string)
        .collect();
    let pods = f
        .pods
        .iter()
        .map(|p| {
            let governed = p
                .governed_by
                .as_ref()
                .is_some_and(|g| g.burst_scaler == name);
            ScalerPod {
                pod: p.pod.clone(),
                node: p.node.clone(),
                governed,
                not_governed: (!governed).then(|| {
                    p.not_governed.clone().unwrap_or_else(|| {
                        p.governed_by
                            .as_ref()
                            .map(|g| format!("governed by BurstScaler {}", g.burst_scaler))
                            .unwrap_or_default()
                    })
                }),
                actuator: p.actuator.kind.clone(),
                containers: p
                    .containers
                    .iter()
                    .filter(|c| c.governed || !governed)
                    .map(|c| format!("{}: {}", c.name, c.state))
                    .collect(),
                last_action: p.last_decision.as_ref().map(|d| d.action.clone()),
                next_action: p.next.as_ref().map(|n| n.action.clone()),
            }
        })
        .collect();
    let uid = s.uid().unwrap_or_default();
    ScalerExplanation {
        burst_scaler: key,
        role: s.spec.role,
        mode: s.spec.mode,
        selector: selector_text(s),
        invalid,
        conditions: status
            .conditions
            .iter()
            .map(|c| format!("{}={}: {}", c.type_, c.status, c.message))
            .collect(),
        managed_pods: status.managed_pods,
        resized_pods: status.resized_pods,
        throttled_pods: status.throttled_pods,
        recommendations: status
            .recommendations
            .iter()
            .map(|r| {
                format!(
                    "{}: target {} (bounds {}–{})",
                    r.container, r.target, r.lower_bound, r.upper_bound
                )
            })
            .collect(),
        last_decision: status.last_decision.as_ref().map(|d| DecisionInfo {
            source: "controller".into(),
            time: d.time.0,
            action: d.action.clone(),
            applied: None,
            reason: format!("{}: {}", d.pod, d.reason),
        }),
        pods,
        events: pod_events(f.events, &uid),
    }
}

/// Text output of `explain pod`.
pub fn render_pod(e: &PodExplanation, now: Timestamp) -> String {
    let mut out = String::new();
    let mut line = |k: &str, v: String| out.push_str(&format!("{k:<13}{v}\n"));
    line(
        "Pod:",
        format!(
            "{} (node {}, {})",
            e.pod,
            e.node.as_deref().unwrap_or("none"),
            e.phase.as_deref().unwrap_or("no phase")
        ),
    );
    match (&e.governed_by, &e.not_governed) {
        (Some(g), _) => line(
            "Governed by:",
            format!(
                "BurstScaler {} ({:?}, mode {:?}{})",
                g.burst_scaler,
                g.role,
                g.mode,
                g.ready
                    .as_deref()
                    .map(|r| format!(", Ready={r}"))
                    .unwrap_or_default()
            ),
        ),
        (None, why) => line(
            "Governed by:",
            format!("nothing: {}", why.as_deref().unwrap_or("unknown")),
        ),
    }
    line(
        "Actuator:",
        format!(
            "{}{}",
            e.actuator.detail,
            match (&e.governed_by, e.actuator.applies) {
                (None, _) => "",
                (Some(_), Some(true)) => "; decisions are applied",
                (Some(g), Some(false))
                    if g.mode == Mode::Auto
                        && matches!(e.actuator.kind.as_str(), "NodeAgent" | "InPlaceResize") =>
                    "; decisions are reported, not applied: its decider is not acting now (--dry-run, not the leader, or not holding its Lease)",
                (Some(_), Some(false)) => "; decisions are reported, not applied",
                (Some(_), None) => {
                    "; whether decisions are applied is unknown (the decider could not be read)"
                }
            }
        ),
    );
    out.push_str("CPU:\n");
    let rows: Vec<[String; 5]> = e
        .containers
        .iter()
        .map(|c| {
            let q = |q: &Option<CpuQuantity>| {
                q.as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_else(|| "-".into())
            };
            let spec = format!("{}/{}", q(&c.spec.request), q(&c.spec.limit));
            let orig = c
                .original
                .as_ref()
                .map(|o| format!("{}/{}", q(&o.request), q(&o.limit)))
                .unwrap_or_else(|| "-".into());
            let now = c
                .in_force
                .as_ref()
                .map(|n| {
                    let limit = n
                        .limit
                        .as_ref()
                        .map(ToString::to_string)
                        .unwrap_or_else(|| "unlimited".into());
                    match &n.weight {
                        Some(w) => format!("limit {limit}, weight {w}"),
                        None => format!("limit {limit}"),
                    }
                })
                .unwrap_or_else(|| "-".into());
            [c.name.clone(), spec, orig, now, c.state.clone()]
        })
        .collect();
    out.push_str(&table(
        &["CONTAINER", "SPEC REQ/LIM", "ORIGINAL", "IN FORCE", "STATE"],
        &rows,
    ));
    match &e.last_decision {
        Some(d) => out.push_str(&format!(
            "Last decision ({}, {} ago): {}{}\n  {}\n",
            d.source,
            ago(d.time, now),
            d.action,
            match d.applied {
                Some(true) => ", applied",
                Some(false) => ", not applied",
                None => "",
            },
            d.reason
        )),
        None if e.governed_by.is_some() => out.push_str("Last decision: none recorded\n"),
        None => {}
    }
    match (&e.next, &e.next_unavailable) {
        (Some(n), _) => {
            out.push_str(&format!(
                "Next ({} {}, {}): {}\n  {}\n",
                n.decider,
                n.instance,
                n.time
                    .map(|t| format!("{} ago", ago(t, now)))
                    .unwrap_or_else(|| "no pass yet".into()),
                n.action,
                n.reason
            ));
            for c in &n.changes {
                out.push_str(&format!(
                    "  {}: {} → {}\n",
                    c.container,
                    cpu_text(&c.from),
                    cpu_text(&c.to)
                ));
            }
            if !n.node_summary.is_empty() {
                out.push_str(&format!("  node: {}\n", n.node_summary));
            }
        }
        (None, Some(why)) if e.governed_by.is_some() => {
            out.push_str(&format!("Next: unknown ({why})\n"))
        }
        _ => {}
    }
    events_text(&mut out, &e.events, now);
    out
}

/// Text output of `explain bsc`.
pub fn render_scaler(e: &ScalerExplanation, now: Timestamp) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "BurstScaler: {} ({:?}, mode {:?}, selector {})\n",
        e.burst_scaler, e.role, e.mode, e.selector
    ));
    for i in &e.invalid {
        out.push_str(&format!("Invalid:     {i}\n"));
    }
    for c in &e.conditions {
        out.push_str(&format!("Condition:   {c}\n"));
    }
    out.push_str(&format!(
        "Pods:        {} managed, {} resized, {} throttled\n",
        e.managed_pods, e.resized_pods, e.throttled_pods
    ));
    for r in &e.recommendations {
        out.push_str(&format!("Recommends:  {r}\n"));
    }
    if let Some(d) = &e.last_decision {
        out.push_str(&format!(
            "Last decision ({} ago): {} {}\n",
            ago(d.time, now),
            d.action,
            d.reason
        ));
    }
    if e.pods.is_empty() {
        out.push_str("Selected pods: none\n");
    } else {
        let rows: Vec<[String; 5]> = e
            .pods
            .iter()
            .map(|p| {
                [
                    p.pod.clone(),
                    p.node.clone().unwrap_or_else(|| "-".into()),
                    if p.governed {
                        p.actuator.clone()
                    } else {
                        format!("not governed: {}", p.not_governed.as_deref().unwrap_or(""))
                    },
                    p.containers.join("; "),
                    format!(
                        "{} / {}",
                        p.last_action.as_deref().unwrap_or("-"),
                        p.next_action.as_deref().unwrap_or("-")
                    ),
                ]
            })
            .collect();
        out.push_str(&table(
            &["POD", "NODE", "ACTUATOR", "CPU", "LAST / NEXT"],
            &rows,
        ));
    }
    events_text(&mut out, &e.events, now);
    out
}

fn events_text(out: &mut String, events: &[EventInfo], now: Timestamp) {
    if events.is_empty() {
        out.push_str("Events: none\n");
        return;
    }
    out.push_str("Events (newest first):\n");
    let rows: Vec<[String; 5]> = events
        .iter()
        .map(|e| {
            [
                e.time.map(|t| ago(t, now)).unwrap_or_else(|| "?".into()),
                e.type_.clone(),
                e.reason.clone(),
                if e.count > 1 {
                    format!("×{}", e.count)
                } else {
                    String::new()
                },
                e.note.clone(),
            ]
        })
        .collect();
    out.push_str(&table(&["AGE", "TYPE", "REASON", "", "NOTE"], &rows));
}

fn cpu_text(c: &super::verdict::CpuView) -> String {
    let mut parts = vec![];
    if let Some(r) = &c.request {
        parts.push(format!("request {r}"));
    }
    parts.push(format!(
        "limit {}",
        c.limit
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_else(|| "unlimited".into())
    ));
    if let Some(w) = &c.weight {
        parts.push(format!("weight {w}"));
    }
    parts.join(", ")
}

/// A duration in its largest whole unit: `35s`, `4m`, `2h`, `3d`.
pub fn ago(t: Timestamp, now: Timestamp) -> String {
    let s = now.duration_since(t).as_secs().max(0);
    match s {
        0..=119 => format!("{s}s"),
        120..=7199 => format!("{}m", s / 60),
        7200..=172_799 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

/// Columns padded to their widest cell (two spaces apart), two-space indented.
fn table<const N: usize>(header: &[&str; N], rows: &[[String; N]]) -> String {
    let mut width: BTreeMap<usize, usize> = BTreeMap::new();
    for (i, h) in header.iter().enumerate() {
        width.insert(i, h.chars().count());
    }
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            let w = width.entry(i).or_default();
            *w = (*w).max(c.chars().count());
        }
    }
    let fmt_row = |cells: Vec<&str>| {
        let mut s = String::from("  ");
        for (i, c) in cells.iter().enumerate() {
            let w = width.get(&i).copied().unwrap_or(0);
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(c);
                s.push_str(&" ".repeat(w - c.chars().count() + 2));
            }
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = fmt_row(header.to_vec());
    for r in rows {
        out.push_str(&fmt_row(r.iter().map(String::as_str).collect()));
    }
    out
}
