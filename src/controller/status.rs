//! Status (pure): a BurstScaler's new `status` from its plan, this pass's decisions and the
//! previous status. Conditions keep their `lastTransitionTime` while their status is unchanged.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use super::build::ScalerPlan;
use crate::api::{BurstScalerStatus, ContainerRecommendation, LastDecision, Mode};
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

/// The status for `plan`'s BurstScaler.
pub fn status_for(
    plan: &ScalerPlan,
    nodes: &[NodeInput],
    decisions: &[(&str, &PodDecision)],
    previous: Option<&BurstScalerStatus>,
    caps: Capabilities,
    now: Timestamp,
) -> BurstScalerStatus {
    let mut st = BurstScalerStatus {
        observed_generation: plan.generation,
        managed_pods: plan.pods.len() as u32,
        ..BurstScalerStatus::default()
    };
    let pods = || {
        nodes
            .iter()
            .flat_map(|n| &n.pods)
            .filter(|p| plan.pods.contains(&p.name))
    };
    for p in pods() {
        let above = p
            .containers
            .iter()
            .any(|c| c.original.is_some_and(|o| c.current.limit > o.limit));
        let below = p
            .containers
            .iter()
            .any(|c| c.original.is_some_and(|o| c.current.limit < o.limit));
        st.resized_pods += u32::from(above);
        st.throttled_pods += u32::from(below);
        st.pending_resizes += u32::from(p.resize != ResizeState::Idle);
        for c in &p.containers {
            let Some(r) = c.recommendation else { continue };
            match st
                .recommendations
                .iter_mut()
                .find(|x| x.container == c.name)
            {
                Some(x) => {
                    // Across pods, recommend for the busiest.
                    if r.target.0 > x.target.millis().map(|m| m.0).unwrap_or(0) {
                        *x = recommendation(&c.name, r);
                    }
                }
                None => st.recommendations.push(recommendation(&c.name, r)),
            }
        }
    }
    st.recommendations
        .sort_by(|a, b| a.container.cmp(&b.container));

    st.last_decision = decisions
        .iter()
        .filter(|(_, d)| d.action.changes())
        .map(|(pod, d)| LastDecision {
            time: Time(now),
            action: d.action.to_string(),
            pod: pod.to_string(),
            reason: d.reason.clone(),
        })
        .next()
        .or_else(|| previous.and_then(|p| p.last_decision.clone()));

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
        (Ok(v), Capabilities { resize: false, .. }) if v.mode == Mode::Auto => cond(
            "Ready",
            false,
            "ResizeUnsupported",
            RESIZE_UNSUPPORTED.to_string(),
        ),
        (Ok(v), _) => {
            let note = if caps.dry_run && v.mode == Mode::Auto {
                " (the controller runs with --dry-run: nothing is applied)"
            } else {
                ""
            };
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

fn recommendation(container: &str, r: crate::engine::Recommendation) -> ContainerRecommendation {
    ContainerRecommendation {
        container: container.to_string(),
        target: r.target.into(),
        lower_bound: r.lower_bound.into(),
        upper_bound: r.upper_bound.into(),
    }
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
        let st = status_for(&plan(false), &[], &[], None, caps, at(0));
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
        let st = status_for(&plan(true), &[], &[], None, caps, at(0));
        let r = ready(&st);
        assert_eq!(
            (r.status.as_str(), r.reason.as_str()),
            ("False", "ResizeUnsupported")
        );
        assert!(r.message.contains("Kubernetes 1.33"));
    }

    #[test]
    fn transition_time_is_kept_while_the_status_holds() {
        let caps = Capabilities {
            resize: true,
            dry_run: false,
        };
        let first = status_for(&plan(true), &[], &[], None, caps, at(0));
        let second = status_for(&plan(true), &[], &[], Some(&first), caps, at(60));
        assert_eq!(ready(&second).last_transition_time, Time(at(0)));
        assert!(same_except_time(&first, &second));
        let third = status_for(&plan(false), &[], &[], Some(&second), caps, at(120));
        assert_eq!(ready(&third).last_transition_time, Time(at(120)));
    }
}
