//! What the agent reports (pure): its node's `BurstScalerNode` status, and the per-pod rate
//! limit of its Events.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::api::{AgentInfo, BurstScalerNodeStatus, GovernedContainer, GovernedPod};
use crate::quantity::{CpuQuantity, MilliCpu};

fn millis(q: &Option<CpuQuantity>) -> Option<MilliCpu> {
    q.as_ref().and_then(|q| q.millis().ok())
}

/// A container whose CPU in force is below its spec (a lower limit, or a limit where the spec
/// has none).
pub fn throttled(c: &GovernedContainer) -> bool {
    match (millis(&c.limit), millis(&c.spec_limit)) {
        (Some(l), Some(s)) => l < s,
        (Some(_), None) => true,
        _ => false,
    }
}

/// A container whose limit or weight in force is above its spec.
pub fn raised(c: &GovernedContainer) -> bool {
    let limit = match (millis(&c.limit), millis(&c.spec_limit)) {
        (Some(l), Some(s)) => l > s,
        (None, Some(_)) => true,
        _ => false,
    };
    let weight = match (millis(&c.weight), millis(&c.spec_request)) {
        (Some(w), Some(r)) => w > r,
        (Some(w), None) => w > MilliCpu::ZERO,
        _ => false,
    };
    limit || weight
}

/// The node's status. Conditions keep their `lastTransitionTime` from `previous` while their
/// status does not change, so an unchanged node gives an identical status (no write).
pub fn node_status(
    agent: AgentInfo,
    pods: Vec<GovernedPod>,
    blind: &[String],
    governing: bool,
    previous: Option<&BurstScalerNodeStatus>,
    now: Timestamp,
) -> BurstScalerNodeStatus {
    let throttled_pods = pods
        .iter()
        .filter(|p| p.containers.iter().any(throttled))
        .count() as u32;
    let raised_pods = pods
        .iter()
        .filter(|p| p.containers.iter().any(raised))
        .count() as u32;
    let cond = |type_: &str, ok: bool, reason: &str, message: String| {
        let status = if ok { "True" } else { "False" };
        let since = previous
            .and_then(|p| p.conditions.iter().find(|c| c.type_ == type_))
            .filter(|c| c.status == status)
            .map_or(Time(now), |c| c.last_transition_time.clone());
        Condition {
            type_: type_.to_string(),
            status: status.to_string(),
            reason: reason.to_string(),
            message,
            last_transition_time: since,
            observed_generation: None,
        }
    };
    let mut blind_list: Vec<&str> = blind.iter().map(String::as_str).take(10).collect();
    if blind.len() > 10 {
        blind_list.push("…");
    }
    let conditions = vec![
        if governing {
            cond(
                "Ready",
                true,
                "Governing",
                "the agent holds the node's Lease and governs its pods' cgroups".into(),
            )
        } else {
            cond(
                "Ready",
                false,
                "NotGoverning",
                "the agent does not hold the node's Lease: it changes nothing (what it changed is restored)".into(),
            )
        },
        if blind.is_empty() {
            cond(
                "Blind",
                false,
                "SignalsFresh",
                "every governed container has a fresh signal".into(),
            )
        } else {
            cond(
                "Blind",
                true,
                "NoFreshSignal",
                format!(
                    "{} governed container(s) without a fresh signal: {} (no LS pod is shrunk and no throttle tightened for them)",
                    blind.len(),
                    blind_list.join(", ")
                ),
            )
        },
    ];
    BurstScalerNodeStatus {
        agent: Some(agent),
        conditions,
        governed_pods: pods.len() as u32,
        throttled_pods,
        raised_pods,
        pods,
    }
}

/// At most one Event per pod per `interval`, except that a different action than the pod's
/// last published one always goes through (a throttle is never hidden behind a release).
#[derive(Debug)]
pub struct EventLimiter {
    interval: Duration,
    last: HashMap<String, (Instant, String)>,
}

impl EventLimiter {
    pub fn new(interval: Duration) -> EventLimiter {
        EventLimiter {
            interval,
            last: HashMap::new(),
        }
    }

    /// Whether an Event for `pod` with `action` may be published at `now` (and records it).
    pub fn allow(&mut self, pod: &str, action: &str, now: Instant) -> bool {
        if let Some((t, a)) = self.last.get(pod)
            && a == action
            && now.duration_since(*t) < self.interval
        {
            return false;
        }
        self.last.insert(pod.to_string(), (now, action.to_string()));
        true
    }

    /// Forgets pods for which `keep` is false.
    pub fn retain(&mut self, keep: impl Fn(&str) -> bool) {
        self.last.retain(|k, _| keep(k));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::fixtures::at;

    fn container(
        spec_req: &str,
        spec_lim: Option<&str>,
        lim: Option<&str>,
        w: &str,
    ) -> GovernedContainer {
        GovernedContainer {
            name: "c".into(),
            spec_request: Some(CpuQuantity::new(spec_req)),
            spec_limit: spec_lim.map(CpuQuantity::new),
            limit: lim.map(CpuQuantity::new),
            weight: Some(CpuQuantity::new(w)),
            skipped: None,
        }
    }

    #[test]
    fn throttled_and_raised_compare_in_force_with_spec() {
        assert!(throttled(&container(
            "500m",
            Some("2"),
            Some("800m"),
            "500m"
        )));
        assert!(throttled(&container("500m", None, Some("800m"), "500m")));
        assert!(!throttled(&container("500m", None, None, "500m")));
        assert!(raised(&container("100m", Some("1"), Some("1500m"), "100m")));
        assert!(raised(&container("100m", Some("1"), Some("1"), "1")));
        assert!(!raised(&container("100m", Some("1"), Some("1"), "100m")));
    }

    #[test]
    fn an_unchanged_node_gives_an_identical_status() {
        let info = AgentInfo {
            pod: "agent-x".into(),
            version: "0".into(),
            cgroups: "v1".into(),
            interval_seconds: 1,
        };
        let a = node_status(info.clone(), vec![], &[], true, None, at(0));
        let b = node_status(info.clone(), vec![], &[], true, Some(&a), at(100));
        assert_eq!(a, b);
        let c = node_status(info, vec![], &["ns/p/c".into()], true, Some(&b), at(200));
        let blind = c
            .conditions
            .iter()
            .find(|c| c.type_ == "Blind")
            .expect("blind");
        assert_eq!(blind.status, "True");
        assert_eq!(blind.last_transition_time, Time(at(200)));
    }

    #[test]
    fn events_are_rate_limited_per_pod_but_a_new_action_passes() {
        let mut l = EventLimiter::new(Duration::from_secs(30));
        let t = Instant::now();
        assert!(l.allow("p", "Throttle", t));
        assert!(!l.allow("p", "Throttle", t + Duration::from_secs(5)));
        assert!(l.allow("q", "Throttle", t + Duration::from_secs(5)));
        assert!(l.allow("p", "Release", t + Duration::from_secs(6)));
        assert!(l.allow("p", "Release", t + Duration::from_secs(40)));
    }
}
