//! Which nodes a live node agent governs. A node is never governed by two deciders: where an
//! agent holds its node Lease (`burst-scaler-agent-<node>`, see [`crate::api::agent_lease_name`])
//! the controller neither resizes pods nor publishes decisions for them — the agent does both.
//! Pure: the Leases and the time are passed in.

use std::collections::BTreeSet;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::coordination::v1::Lease;

/// Prefix of every agent Lease's name; the rest is the node's name.
pub const AGENT_LEASE_PREFIX: &str = "burst-scaler-agent-";

/// The nodes whose agent Lease is held and not expired at `now`. An expired Lease counts for
/// one more lease duration (`renewTime + 2 × leaseDurationSeconds`), so that clock skew between
/// the agent's node and the controller up to one lease duration cannot make both decide.
pub fn live_agent_nodes(leases: &[Lease], now: Timestamp) -> BTreeSet<String> {
    leases
        .iter()
        .filter_map(|l| {
            let node = l
                .metadata
                .name
                .as_deref()?
                .strip_prefix(AGENT_LEASE_PREFIX)?;
            let spec = l.spec.as_ref()?;
            spec.holder_identity.as_deref().filter(|h| !h.is_empty())?;
            let renewed = spec.renew_time.as_ref().or(spec.acquire_time.as_ref())?.0;
            let secs = i64::from(spec.lease_duration_seconds.unwrap_or(15).max(1));
            let until = renewed.checked_add(SignedDuration::from_secs(secs.saturating_mul(2)));
            (until.is_ok_and(|u| u > now) && !node.is_empty()).then(|| node.to_string())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::coordination::v1::LeaseSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};

    use super::*;

    fn lease(name: &str, holder: Option<&str>, renewed: i64, duration: i32) -> Lease {
        Lease {
            metadata: ObjectMeta {
                name: Some(name.to_string()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: holder.map(str::to_string),
                renew_time: Some(MicroTime(
                    Timestamp::from_second(renewed).unwrap_or(Timestamp::UNIX_EPOCH),
                )),
                lease_duration_seconds: Some(duration),
                ..LeaseSpec::default()
            }),
        }
    }

    #[test]
    fn a_held_fresh_lease_marks_its_node_and_nothing_else_does() {
        let now = Timestamp::from_second(1000).unwrap_or(Timestamp::UNIX_EPOCH);
        let leases = [
            lease("burst-scaler-agent-n1", Some("agent-a"), 995, 15),
            // Expired 20 s ago, but within the skew allowance (2 × 15 s): still counted.
            lease("burst-scaler-agent-n2", Some("agent-b"), 975, 15),
            // Expired beyond the allowance.
            lease("burst-scaler-agent-n3", Some("agent-c"), 960, 15),
            // Released (no holder).
            lease("burst-scaler-agent-n4", None, 999, 15),
            lease("burst-scaler-agent-n5", Some(""), 999, 15),
            // Not an agent Lease.
            lease("burst-scaler", Some("controller"), 999, 15),
            lease("burst-scaler-agent-", Some("x"), 999, 15),
        ];
        let live = live_agent_nodes(&leases, now);
        assert_eq!(
            live.into_iter().collect::<Vec<_>>(),
            vec!["n1".to_string(), "n2".to_string()]
        );
    }

    #[test]
    fn absurd_values_do_not_panic() {
        let now = Timestamp::from_second(1000).unwrap_or(Timestamp::UNIX_EPOCH);
        let mut l = lease("burst-scaler-agent-n1", Some("a"), 999, i32::MAX);
        assert!(live_agent_nodes(std::slice::from_ref(&l), now).contains("n1"));
        if let Some(s) = l.spec.as_mut() {
            s.lease_duration_seconds = Some(-5);
        }
        assert!(live_agent_nodes(std::slice::from_ref(&l), now).contains("n1"));
        l.spec = None;
        assert!(live_agent_nodes(&[l], now).is_empty());
    }
}
