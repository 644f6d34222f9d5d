//! Status (pure): a BurstScaler's new `status` from its plan, this pass's decisions and the
//! previous status. Conditions keep their `lastTransitionTime` while their status is unchanged.

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use super::build::ScalerPlan;
use crate::api::{BurstScalerNode, BurstScalerStatus, ContainerRecommendation, LastDecision, Mode};
use crate::engine::{Action, NodeInput, PodDecision, ResizeState};

/// What the controller knows about its ability to act.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// The API server serves `pods/resize` (Kubernetes ≥ 1.33).
    pub resize: bool,
    /// `--dry-run`: decide and report, never write to pods.
    pub dry_run: bool,
}

pub const RESIZE_UNSUPPORTED: &str = "this API server has no pods/resize subresource: in-place pod resize needs Kubernetes 1.33 or newer. Decisions are reported in status and Events but not applied";

/// What the node agents report: the nodes whose agent holds its Lease, and what is in force
/// in each pod they govern (from their `BurstScalerNode` objects).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentReport {
    pub nodes: BTreeSet<String>,
    /// By `namespace/name`.
    pub pods: BTreeMap<String, AgentPod>,
}

/// One agent-governed pod: whether any of its containers is above its spec (limit or weight)
/// or below it (limit), in the cgroups.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AgentPod {
    pub raised: bool,
    pub throttled: bool,
}

impl AgentReport {
    /// From the live agent nodes and every `BurstScalerNode`; objects of nodes without a live
    /// agent are ignored (their status is the last one a gone agent could publish).
    pub fn new(live: BTreeSet<String>, objects: &[BurstScalerNode]) -> AgentReport {
        let m = |q: &Option<crate::quantity::CpuQuantity>| q.as_ref().and_then(|q| q.millis().ok());
        let mut pods = BTreeMap::new();
        for o in objects {
            if !live.contains(&o.spec.node_name) {
                continue;
            }
            for p in o.status.iter().flat_map(|s| &s.pods) {
                let mut v = AgentPod::default();
                for c in p.containers.iter().filter(|c| c.skipped.is_none()) {
                    let (spec_l, now_l) = (m(&c.spec_limit), m(&c.limit));
                    v.raised |= matches!((spec_l, now_l), (Some(s), Some(n)) if n > s)
                        || matches!((m(&c.spec_request), m(&c.weight)), (Some(r), Some(w)) if w > r);
                    v.throttled |= match (spec_l, now_l) {
                        (Some(s), Some(n)) => n < s,
                        (None, Some(_)) => true,
                        _ => false,
                    };
                }
                pods.insert(format!("{}/{}", p.namespace, p.name), v);
            }
        }
        AgentReport { nodes: live, pods }
    }
}

/// The status for `plan`'s BurstScaler.
pub fn status_for(
    plan: &ScalerPlan,
    nodes: &[NodeInput],
    decisions: &[(&str, &PodDecision)],
    previous: Option<&BurstScalerStatus>,
    caps: Capabilities,
    agents: &AgentReport,
    now: Timestamp,
) -> BurstScalerStatus {
    let mut st = BurstScalerStatus {
        observed_generation: plan.generation,
        managed_pods: plan.pods.len() as u32,
        ..BurstScalerStatus::default()
    };
    let on_agent = |pod: &str| {
        nodes
            .iter()
            .any(|n| agents.nodes.contains(&n.name) && n.pods.iter().any(|p| p.name == pod))
    };
    let pods = || {
        nodes
            .iter()
            .flat_map(|n| &n.pods)
            .filter(|p| plan.pods.contains(&p.name))
    };
    let through_agent = plan.pods.iter().filter(|p| on_agent(p)).count();
    // Per container name, across pods, the busiest pod's recommendation: the largest target,
    // ties broken by the bounds so that the order pods are listed in does not matter.
    let mut recommendations: BTreeMap<&str, crate::engine::Recommendation> = BTreeMap::new();
    let rank = |r: &crate::engine::Recommendation| (r.target, r.upper_bound, r.lower_bound);
    for p in pods() {
        let agent =
            on_agent(&p.name).then(|| agents.pods.get(&p.name).copied().unwrap_or_default());
        let above = agent.map_or_else(
            || {
                p.containers
                    .iter()
                    .any(|c| c.original.is_some_and(|o| c.current.limit > o.limit))
            },
            |a| a.raised,
        );
        let below = agent.map_or_else(
            || {
                p.containers
                    .iter()
                    .any(|c| c.original.is_some_and(|o| c.current.limit < o.limit))
            },
            |a| a.throttled,
        );
        st.resized_pods += u32::from(above);
        st.throttled_pods += u32::from(below);
        st.pending_resizes += u32::from(p.resize != ResizeState::Idle);
        for c in &p.containers {
            let Some(r) = c.recommendation else { continue };
            let best = recommendations.entry(c.name.as_str()).or_insert(r);
            if rank(&r) > rank(best) {
                *best = r;
            }
        }
    }
    st.recommendations = recommendations
        .into_iter()
        .map(|(name, r)| recommendation(name, r))
        .collect();

    st.last_decision = last_decision(
        decisions,
        previous.and_then(|p| p.last_decision.as_ref()),
        now,
    );

    let prev = |t: &str| previous.and_then(|p| p.conditions.iter().find(|c| c.type_ == t));
    let cond = |t: &str, ok: bool, reason: &str, message: String| {
        let status = if ok { "True" } else { "False" }.to_string();
        let since = prev(t)
            .filter(|c| c.status == status)
            .map(|c| c.last_transition_time.clone())
            .unwrap_or(Time(now));
        Condition {
            type_: t.to_string(),
            status,
            reason: reason.to_string(),
            message,
            last_transition_time: since,
            observed_generation: plan.generation,
        }
    };
    let ready = match (&plan.validated, caps) {
        (Err(errs), _) => cond(
            "Ready",
            false,
            "InvalidSpec",
            errs.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
        ),
        (Ok(v), Capabilities { resize: false, .. })
            if v.mode == Mode::Auto
                && (through_agent < plan.pods.len() || agents.nodes.is_empty()) =>
        {
            let uncovered = plan.pods.len() - through_agent;
            cond(
                "Ready",
                false,
                "ResizeUnsupported",
                if agents.nodes.is_empty() {
                    format!(
                        "{RESIZE_UNSUPPORTED}, and no node agent holds its node's Lease (install the chart with agent.enabled)"
                    )
                } else {
                    format!(
                        "{RESIZE_UNSUPPORTED}; {uncovered} of {} pods are on nodes without a live node agent",
                        plan.pods.len()
                    )
                },
            )
        }
        (Ok(v), _) => {
            let mut note = if caps.dry_run && v.mode == Mode::Auto {
                " (the controller runs with --dry-run: nothing is applied)".to_string()
            } else {
                String::new()
            };
            if through_agent > 0 {
                note.push_str(&format!(", {through_agent} through the node agent"));
            }
            cond(
                "Ready",
                true,
                "Valid",
                format!(
                    "governing {} pods in mode {:?}{note}",
                    plan.pods.len(),
                    v.mode
                ),
            )
        }
    };
    let acting = st.resized_pods + st.throttled_pods + st.pending_resizes > 0;
    let active = cond(
        "Active",
        acting,
        if acting { "Acting" } else { "Idle" },
        format!(
            "{} resized, {} throttled, {} resizes pending",
            st.resized_pods, st.throttled_pods, st.pending_resizes
        ),
    );
    let conflict = if plan.conflicts.is_empty() {
        cond(
            "Conflict",
            false,
            "NoConflict",
            "no other BurstScaler or HPA governs these pods".into(),
        )
    } else {
        let reason = if plan
            .conflicts
            .iter()
            .any(|c| c.contains("HorizontalPodAutoscaler"))
        {
            "HorizontalPodAutoscaler"
        } else {
            "OverlappingBurstScaler"
        };
        cond("Conflict", true, reason, plan.conflicts.join("; "))
    };
    st.conditions = vec![ready, active, conflict];
    st
}

/// The decision to report: the previous one, time included, while this pass repeats it (same
/// pod, action and reason — the reason carries the values); otherwise the first of this pass's
/// changes in pod order (not in the order the watch cache lists pods), stamped `now`; the
/// previous one when this pass changes nothing.
fn last_decision(
    decisions: &[(&str, &PodDecision)],
    previous: Option<&LastDecision>,
    now: Timestamp,
) -> Option<LastDecision> {
    let changes = || decisions.iter().filter(|(_, d)| d.action.changes());
    let repeated = |p: &LastDecision| {
        changes()
            .any(|(pod, d)| p.pod == *pod && p.action == d.action.as_str() && p.reason == d.reason)
    };
    if let Some(p) = previous.filter(|p| repeated(p)) {
        return Some(p.clone());
    }
    changes()
        .min_by(|(a, x), (b, y)| {
            (a, x.action.as_str(), &x.reason).cmp(&(b, y.action.as_str(), &y.reason))
        })
        .map(|(pod, d)| LastDecision {
            time: Time(now),
            action: d.action.to_string(),
            pod: pod.to_string(),
            reason: d.reason.clone(),
        })
        .or_else(|| previous.cloned())
}

fn recommendation(container: &str, r: crate::engine::Recommendation) -> ContainerRecommendation {
    ContainerRecommendation {
        container: container.to_string(),
        target: r.target.into(),
        lower_bound: r.lower_bound.into(),
        upper_bound: r.upper_bound.into(),
    }
}

/// The `status` fields a merge patch must spell out as `null` when they are empty: serde skips
/// them then, and a merge patch that omits a field keeps the old value (stale
/// recommendations, conditions or decisions would stay forever).
const CLEARABLE: [&str; 4] = [
    "observedGeneration",
    "conditions",
    "recommendations",
    "lastDecision",
];

/// The merge patch body that makes the stored status `new`, or `None` when nothing but
/// condition transition times would change (no write). Every field of `new` is in the patch;
/// empty ones are `null`, which removes them.
pub fn status_patch(
    old: Option<&BurstScalerStatus>,
    new: &BurstScalerStatus,
) -> Result<Option<serde_json::Value>, serde_json::Error> {
    if old.is_some_and(|old| same_except_time(old, new)) {
        return Ok(None);
    }
    let mut status = serde_json::to_value(new)?;
    if let Some(fields) = status.as_object_mut() {
        for f in CLEARABLE {
            fields.entry(f).or_insert(serde_json::Value::Null);
        }
    }
    Ok(Some(serde_json::json!({ "status": status })))
}

/// True when only timestamps would change: no need to write.
pub fn same_except_time(a: &BurstScalerStatus, b: &BurstScalerStatus) -> bool {
    let strip = |s: &BurstScalerStatus| {
        let mut s = s.clone();
        for c in &mut s.conditions {
            c.last_transition_time = Time(Timestamp::UNIX_EPOCH);
        }
        s
    };
    strip(a) == strip(b)
}

/// Whether the pod decision deserves an Event (it changes the pod).
pub fn is_event_worthy(d: &PodDecision) -> bool {
    d.action.changes() || d.action == Action::Skip
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::fixtures::at;
    use serde_json::json;
    use std::sync::Arc;

    fn plan(valid: bool) -> ScalerPlan {
        let spec: crate::api::BurstScalerSpec = serde_json::from_value(serde_json::json!({
            "selector": {"matchLabels": {"app": "web"}}, "role": "LatencySensitive",
            "cpu": {"min": if valid {"100m"} else {"3"}, "max": "2"}, "mode": "Auto"}))
        .expect("spec");
        ScalerPlan {
            key: "default/web".into(),
            generation: Some(4),
            validated: crate::api::validate(&spec).map(Arc::new),
            pods: vec![],
            conflicts: vec![],
            deleting: false,
        }
    }

    fn ready(st: &BurstScalerStatus) -> &Condition {
        st.conditions
            .iter()
            .find(|c| c.type_ == "Ready")
            .expect("Ready")
    }

    #[test]
    fn invalid_spec_is_reported_with_the_validation_message() {
        let caps = Capabilities {
            resize: true,
            dry_run: false,
        };
        let st = status_for(
            &plan(false),
            &[],
            &[],
            None,
            caps,
            &AgentReport::default(),
            at(0),
        );
        let r = ready(&st);
        assert_eq!(
            (r.status.as_str(), r.reason.as_str()),
            ("False", "InvalidSpec")
        );
        assert_eq!(
            r.message,
            format!("spec.cpu: {}", crate::api::rules::CPU_MIN_LE_MAX.message)
        );
        assert_eq!(st.observed_generation, Some(4));
    }

    #[test]
    fn auto_without_resize_is_not_ready_and_says_what_is_needed() {
        let caps = Capabilities {
            resize: false,
            dry_run: false,
        };
        let st = status_for(
            &plan(true),
            &[],
            &[],
            None,
            caps,
            &AgentReport::default(),
            at(0),
        );
        let r = ready(&st);
        assert_eq!(
            (r.status.as_str(), r.reason.as_str()),
            ("False", "ResizeUnsupported")
        );
        assert!(r.message.contains("Kubernetes 1.33"));
    }

    #[test]
    fn pods_on_nodes_with_a_live_agent_make_auto_ready_and_count_what_the_agent_did() {
        use crate::engine::fixtures::{latency_policy, node, pod, series};
        let caps = Capabilities {
            resize: false,
            dry_run: false,
        };
        let mut p = plan(true);
        p.pods = vec!["default/web-1".into(), "default/web-2".into()];
        let mut n1 = node(
            2000,
            vec![pod(
                "default/web-1",
                latency_policy(),
                100,
                500,
                series(at(0), 15, &[1]),
            )],
        );
        n1.name = "n1".into();
        let mut n2 = node(
            2000,
            vec![pod(
                "default/web-2",
                latency_policy(),
                100,
                500,
                series(at(0), 15, &[1]),
            )],
        );
        n2.name = "n2".into();
        let bscn: BurstScalerNode = serde_json::from_value(serde_json::json!({
            "apiVersion": "burstscaler.dev/v1alpha1", "kind": "BurstScalerNode",
            "metadata": {"name": "n1"}, "spec": {"nodeName": "n1"},
            "status": {"governedPods": 1, "throttledPods": 0, "raisedPods": 1, "pods": [{
                "namespace": "default", "name": "web-1", "uid": "u1", "burstScaler": "web",
                "role": "LatencySensitive", "mode": "Auto",
                "containers": [{"name": "main", "specRequest": "100m", "specLimit": "500m",
                                "limit": "500m", "weight": "500m"}]}]}
        }))
        .expect("bscn");
        let nodes = [n1, n2];
        // Only n1 has a live agent: one pod uncovered → still ResizeUnsupported, saying so.
        let agents = AgentReport::new(["n1".to_string()].into(), std::slice::from_ref(&bscn));
        let st = status_for(&p, &nodes, &[], None, caps, &agents, at(0));
        assert_eq!(ready(&st).reason, "ResizeUnsupported");
        assert!(
            ready(&st)
                .message
                .contains("1 of 2 pods are on nodes without a live node agent"),
            "{}",
            ready(&st).message
        );
        // The weight raise on n1 counts as resized.
        assert_eq!(st.resized_pods, 1);
        // Both nodes live: Ready, through the agent.
        let agents = AgentReport::new(["n1".to_string(), "n2".to_string()].into(), &[bscn]);
        let st = status_for(&p, &nodes, &[], None, caps, &agents, at(0));
        assert_eq!(
            (ready(&st).status.as_str(), ready(&st).reason.as_str()),
            ("True", "Valid")
        );
        assert!(
            ready(&st).message.contains("2 through the node agent"),
            "{}",
            ready(&st).message
        );
    }

    #[test]
    fn transition_time_is_kept_while_the_status_holds() {
        let caps = Capabilities {
            resize: true,
            dry_run: false,
        };
        let first = status_for(
            &plan(true),
            &[],
            &[],
            None,
            caps,
            &AgentReport::default(),
            at(0),
        );
        let second = status_for(
            &plan(true),
            &[],
            &[],
            Some(&first),
            caps,
            &AgentReport::default(),
            at(60),
        );
        assert_eq!(ready(&second).last_transition_time, Time(at(0)));
        assert!(same_except_time(&first, &second));
        let third = status_for(
            &plan(false),
            &[],
            &[],
            Some(&second),
            caps,
            &AgentReport::default(),
            at(120),
        );
        assert_eq!(ready(&third).last_transition_time, Time(at(120)));
    }

    const CAPS: Capabilities = Capabilities {
        resize: true,
        dry_run: false,
    };

    fn decision(pod: &str, action: Action, reason: &str) -> PodDecision {
        PodDecision {
            pod: pod.into(),
            action,
            changes: vec![],
            reason: reason.into(),
        }
    }

    /// What the watch cache holds after the status was written: the JSON round trip (times in
    /// whole seconds, as Kubernetes stores them).
    fn stored(st: &BurstScalerStatus) -> BurstScalerStatus {
        serde_json::from_value(serde_json::to_value(st).expect("serialize")).expect("deserialize")
    }

    /// `at(secs)` and a quarter second: a clock reading with sub-second digits.
    fn at_frac(secs: i64) -> Timestamp {
        at(secs)
            .checked_add(jiff::SignedDuration::from_millis(250))
            .expect("time")
    }

    fn web_plan() -> ScalerPlan {
        let mut p = plan(true);
        p.pods = vec!["default/web-1".into(), "default/web-2".into()];
        p
    }

    #[test]
    fn a_repeated_decision_keeps_last_decision_and_the_status_needs_no_write() {
        let up = decision(
            "default/web-1",
            Action::ScaleUp,
            "burst 92% of 500m → limit 800m",
        );
        let first = status_for(
            &web_plan(),
            &[],
            &[("default/web-1", &up)],
            None,
            CAPS,
            &AgentReport::default(),
            at_frac(0),
        );
        let prev = stored(&first);
        // The same decision a pass later (as in Recommend, where it is never applied): the
        // status is identical, time included, and nothing is written.
        let again = up.clone();
        let second = status_for(
            &web_plan(),
            &[],
            &[("default/web-1", &again)],
            Some(&prev),
            CAPS,
            &AgentReport::default(),
            at_frac(60),
        );
        assert_eq!(second, prev);
        assert_eq!(
            second.last_decision.as_ref().map(|d| &d.time),
            Some(&Time(at(0)))
        );
        assert_eq!(status_patch(Some(&prev), &second).expect("patch"), None);
        // New values are a new decision: new time, and a write.
        let more = decision(
            "default/web-1",
            Action::ScaleUp,
            "burst 95% of 800m → limit 1200m",
        );
        let third = status_for(
            &web_plan(),
            &[],
            &[("default/web-1", &more)],
            Some(&prev),
            CAPS,
            &AgentReport::default(),
            at_frac(120),
        );
        let d = third.last_decision.as_ref().expect("decision");
        assert_eq!(
            (d.time.clone(), d.reason.as_str()),
            (Time(at_frac(120)), more.reason.as_str())
        );
        let patch = status_patch(Some(&prev), &third)
            .expect("patch")
            .expect("a write");
        assert_eq!(
            patch["status"]["lastDecision"]["reason"],
            json!(more.reason)
        );
        // Another action on the same pod with the same reason text is a new decision too.
        let down = decision("default/web-1", Action::ScaleDown, &more.reason);
        let fourth = status_for(
            &web_plan(),
            &[],
            &[("default/web-1", &down)],
            Some(&stored(&third)),
            CAPS,
            &AgentReport::default(),
            at_frac(180),
        );
        assert_eq!(
            fourth.last_decision.map(|d| (d.action, d.time)),
            Some(("ScaleDown".to_string(), Time(at_frac(180))))
        );
    }

    #[test]
    fn with_several_pods_deciding_last_decision_does_not_depend_on_their_order() {
        let a = decision("default/web-1", Action::ScaleUp, "a");
        let b = decision("default/web-2", Action::ScaleUp, "b");
        let run = |ds: &[(&str, &PodDecision)], prev: Option<&BurstScalerStatus>, now| {
            status_for(
                &web_plan(),
                &[],
                ds,
                prev,
                CAPS,
                &AgentReport::default(),
                now,
            )
        };
        let first = stored(&run(
            &[("default/web-2", &b), ("default/web-1", &a)],
            None,
            at(0),
        ));
        assert_eq!(
            first.last_decision.as_ref().map(|d| d.pod.as_str()),
            Some("default/web-1")
        );
        // The watch cache lists the pods in another order: both repeat, nothing changes.
        let second = run(
            &[("default/web-1", &a), ("default/web-2", &b)],
            Some(&first),
            at(60),
        );
        assert_eq!(second, first);
        // web-1 goes quiet while web-2 repeats: the decision in force, web-2's, is reported
        // (once: it then holds while web-2 repeats it).
        let none = decision("default/web-1", Action::None, "quiet");
        let third = stored(&run(
            &[("default/web-1", &none), ("default/web-2", &b)],
            Some(&second),
            at(120),
        ));
        assert_eq!(
            third.last_decision.as_ref().map(|d| d.pod.as_str()),
            Some("default/web-2")
        );
        let fourth = run(
            &[("default/web-1", &none), ("default/web-2", &b)],
            Some(&third),
            at(180),
        );
        assert_eq!(fourth, third);
        // A pass without changes keeps the previous decision.
        let fifth = run(&[("default/web-1", &none)], Some(&third), at(240));
        assert_eq!(fifth, third);
    }

    #[test]
    fn recommendations_do_not_depend_on_the_order_pods_are_listed_in() {
        use crate::engine::Recommendation;
        use crate::engine::fixtures::{latency_policy, node, pod};
        use crate::quantity::MilliCpu;
        let with = |name: &str, lower: u64, upper: u64| {
            let mut p = pod(name, latency_policy(), 500, 1000, vec![]);
            for c in &mut p.containers {
                c.recommendation = Some(Recommendation {
                    lower_bound: MilliCpu(lower),
                    target: MilliCpu(400),
                    upper_bound: MilliCpu(upper),
                });
            }
            p
        };
        let one = [node(
            4000,
            vec![
                with("default/web-1", 100, 600),
                with("default/web-2", 300, 900),
            ],
        )];
        let other = [node(
            4000,
            vec![
                with("default/web-2", 300, 900),
                with("default/web-1", 100, 600),
            ],
        )];
        let st = |nodes: &[NodeInput]| {
            status_for(
                &web_plan(),
                nodes,
                &[],
                None,
                CAPS,
                &AgentReport::default(),
                at(0),
            )
        };
        assert_eq!(st(&one).recommendations, st(&other).recommendations);
        let r = &st(&one).recommendations;
        assert_eq!(r.len(), 1);
        assert_eq!(
            (
                r[0].lower_bound.0.as_str(),
                r[0].target.0.as_str(),
                r[0].upper_bound.0.as_str()
            ),
            ("300m", "400m", "900m")
        );
    }

    /// RFC 7386 JSON merge patch, as the API server applies `Patch::Merge`.
    fn merge(target: &mut serde_json::Value, patch: &serde_json::Value) {
        let Some(fields) = patch.as_object() else {
            *target = patch.clone();
            return;
        };
        if !target.is_object() {
            *target = json!({});
        }
        if let Some(t) = target.as_object_mut() {
            for (k, v) in fields {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(serde_json::Value::Null), v);
                }
            }
        }
    }

    #[test]
    fn the_patch_clears_stale_recommendations_and_the_stored_status_becomes_the_new_one() {
        use crate::quantity::CpuQuantity;
        // Stored: a recommendation for a container that no pod has any more, and a decision.
        let mut old = status_for(
            &web_plan(),
            &[],
            &[(
                "default/web-1",
                &decision("default/web-1", Action::ScaleUp, "burst"),
            )],
            None,
            CAPS,
            &AgentReport::default(),
            at(0),
        );
        old.recommendations = vec![ContainerRecommendation {
            container: "gone".into(),
            target: CpuQuantity::new("400m"),
            lower_bound: CpuQuantity::new("200m"),
            upper_bound: CpuQuantity::new("800m"),
        }];
        let old = stored(&old);
        let new = status_for(
            &web_plan(),
            &[],
            &[],
            Some(&old),
            CAPS,
            &AgentReport::default(),
            at(60),
        );
        assert!(new.recommendations.is_empty());
        let patch = status_patch(Some(&old), &new)
            .expect("patch")
            .expect("a write");
        // What is sent: the empty list is spelled out as null (omitting it would keep it).
        assert_eq!(patch.pointer("/status/recommendations"), Some(&json!(null)));
        // What the API server then stores is exactly the new status.
        let mut object = json!({"metadata": {"name": "web"}, "status": old});
        merge(&mut object, &patch);
        assert_eq!(object.pointer("/status/recommendations"), None);
        let after: BurstScalerStatus =
            serde_json::from_value(object["status"].clone()).expect("status");
        assert_eq!(after, stored(&new));
        // ... so the next pass writes nothing.
        let next = status_for(
            &web_plan(),
            &[],
            &[],
            Some(&after),
            CAPS,
            &AgentReport::default(),
            at(120),
        );
        assert_eq!(status_patch(Some(&after), &next).expect("patch"), None);
    }

    #[test]
    fn the_patch_names_every_status_field_so_none_can_go_stale() {
        // Every field of the schema, even for the emptiest status: a field serde skips and
        // CLEARABLE forgets would never be cleared.
        let schema =
            serde_json::to_value(schemars::schema_for!(BurstScalerStatus)).expect("schema");
        let mut fields: Vec<&String> = schema["properties"]
            .as_object()
            .expect("properties")
            .keys()
            .collect();
        fields.sort();
        let patch = status_patch(None, &BurstScalerStatus::default())
            .expect("patch")
            .expect("a write");
        let mut sent: Vec<&String> = patch["status"]
            .as_object()
            .expect("status")
            .keys()
            .collect();
        sent.sort();
        assert_eq!(sent, fields);
        for f in CLEARABLE {
            assert_eq!(patch["status"][f], json!(null), "{f}");
        }
    }
}
