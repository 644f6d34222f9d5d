//! The agent's per-node Lease (`coordination.k8s.io/v1`, named
//! [`crate::api::agent_lease_name`] in the agent's namespace): one decider per node.
//!
//! The agent changes cgroups only while it holds the Lease *and* its own clock says the hold
//! has not run out: [`Hold::valid`] is the local deadline `start of the last successful renew
//! + leaseDurationSeconds − margin`, measured on a monotonic clock, so an agent that cannot
//! reach the API server stops governing before anyone else may take the Lease — it never
//! relies on a renew failure being noticed. Renews use optimistic concurrency (replace with the
//! read `resourceVersion`), so two agents cannot both think they took it.
//!
//! [`step`] (pure) says what to do with the Lease as read; [`renew`] does it.

use std::time::{Duration, Instant};

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::Api;
use kube::api::PostParams;

/// What to do with the Lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// No Lease yet: create it, held by us.
    Create,
    /// We hold it: renew.
    Renew,
    /// Free (no holder) or expired: take it over.
    Take,
    /// Someone else holds it, unexpired: wait.
    Wait,
}

/// The decision for `lease` as read at `now`, for `identity`.
pub fn step(lease: Option<&Lease>, identity: &str, now: Timestamp) -> Step {
    let Some(lease) = lease else {
        return Step::Create;
    };
    let spec = lease.spec.as_ref();
    let holder = spec
        .and_then(|s| s.holder_identity.as_deref())
        .filter(|h| !h.is_empty());
    match holder {
        None => Step::Take,
        Some(h) if h == identity => Step::Renew,
        Some(_) if expired(spec, now) => Step::Take,
        Some(_) => Step::Wait,
    }
}

/// True when the holder's hold has run out at `now` (no renew time counts as expired).
pub fn expired(spec: Option<&LeaseSpec>, now: Timestamp) -> bool {
    let Some(spec) = spec else { return true };
    let Some(renew) = spec.renew_time.as_ref().map(|t| t.0) else {
        return true;
    };
    let secs = i64::from(spec.lease_duration_seconds.unwrap_or(0).max(0));
    renew
        .checked_add(jiff::SignedDuration::from_secs(secs))
        .is_ok_and(|until| until <= now)
}

/// The agent's view of its hold.
#[derive(Debug, Clone, Copy, Default)]
pub struct Hold {
    /// Until when (monotonic) this agent may govern.
    until: Option<Instant>,
}

impl Hold {
    /// Whether the hold is valid at `now`.
    pub fn valid(&self, now: Instant) -> bool {
        self.until.is_some_and(|u| now < u)
    }

    pub fn clear(&mut self) {
        self.until = None;
    }
}

/// The Lease's parameters.
#[derive(Debug, Clone)]
pub struct LeaseConfig {
    pub name: String,
    pub identity: String,
    pub duration: Duration,
    /// Subtracted from the duration for the local deadline (clock skew, request latency).
    pub margin: Duration,
}

/// One acquire-or-renew round. On success with the Lease ours, `hold` is extended to
/// `started + duration − margin` (`started` = before the request was sent). Any error, a
/// conflict, or someone else's unexpired Lease leaves `hold` as it was: it runs out by itself.
pub async fn renew(
    api: &Api<Lease>,
    cfg: &LeaseConfig,
    hold: &mut Hold,
) -> Result<bool, kube::Error> {
    let started = Instant::now();
    let now = Timestamp::now();
    let current = api.get_opt(&cfg.name).await?;
    let secs = i32::try_from(cfg.duration.as_secs()).unwrap_or(i32::MAX);
    let ours = |acquire: Option<MicroTime>, transitions: Option<i32>| LeaseSpec {
        holder_identity: Some(cfg.identity.clone()),
        lease_duration_seconds: Some(secs),
        acquire_time: acquire.or(Some(MicroTime(now))),
        renew_time: Some(MicroTime(now)),
        lease_transitions: transitions,
        ..LeaseSpec::default()
    };
    let result = match step(current.as_ref(), &cfg.identity, now) {
        Step::Wait => return Ok(false),
        Step::Create => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(cfg.name.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(ours(None, Some(0))),
            };
            api.create(&PostParams::default(), &lease).await
        }
        Step::Renew | Step::Take => {
            let Some(mut lease) = current else {
                return Ok(false);
            };
            let old = lease.spec.clone().unwrap_or_default();
            let renewing = old.holder_identity.as_deref() == Some(cfg.identity.as_str());
            lease.spec = Some(if renewing {
                ours(old.acquire_time, old.lease_transitions)
            } else {
                ours(
                    None,
                    Some(old.lease_transitions.unwrap_or(0).saturating_add(1)),
                )
            });
            api.replace(&cfg.name, &PostParams::default(), &lease).await
        }
    };
    match result {
        Ok(_) => {
            hold.until = started.checked_add(cfg.duration.saturating_sub(cfg.margin));
            Ok(true)
        }
        // Someone else wrote it in between: not ours this round.
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}

/// Gives the Lease up (clears the holder) if we hold it, so that a successor need not wait for
/// it to expire.
pub async fn release(api: &Api<Lease>, cfg: &LeaseConfig) -> Result<(), kube::Error> {
    let Some(mut lease) = api.get_opt(&cfg.name).await? else {
        return Ok(());
    };
    let ours = lease
        .spec
        .as_ref()
        .and_then(|s| s.holder_identity.as_deref())
        == Some(cfg.identity.as_str());
    if !ours {
        return Ok(());
    }
    if let Some(spec) = lease.spec.as_mut() {
        spec.holder_identity = None;
        spec.acquire_time = None;
        spec.renew_time = None;
    }
    api.replace(&cfg.name, &PostParams::default(), &lease)
        .await
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::fixtures::at;

    fn lease(holder: Option<&str>, renew: Option<i64>, secs: i32) -> Lease {
        Lease {
            metadata: ObjectMeta::default(),
            spec: Some(LeaseSpec {
                holder_identity: holder.map(str::to_string),
                renew_time: renew.map(|s| MicroTime(at(s))),
                lease_duration_seconds: Some(secs),
                ..LeaseSpec::default()
            }),
        }
    }

    #[test]
    fn one_holder_at_a_time() {
        assert_eq!(step(None, "me", at(0)), Step::Create);
        assert_eq!(step(Some(&lease(None, None, 15)), "me", at(0)), Step::Take);
        assert_eq!(
            step(Some(&lease(Some("me"), Some(0), 15)), "me", at(100)),
            Step::Renew
        );
        assert_eq!(
            step(Some(&lease(Some("other"), Some(0), 15)), "me", at(14)),
            Step::Wait
        );
        assert_eq!(
            step(Some(&lease(Some("other"), Some(0), 15)), "me", at(15)),
            Step::Take
        );
        assert_eq!(
            step(Some(&lease(Some("other"), None, 15)), "me", at(0)),
            Step::Take
        );
    }

    #[test]
    fn a_hold_runs_out_by_itself() {
        let mut h = Hold::default();
        let now = Instant::now();
        assert!(!h.valid(now));
        h.until = now.checked_add(Duration::from_secs(10));
        assert!(h.valid(now));
        assert!(!h.valid(now + Duration::from_secs(10)));
        h.clear();
        assert!(!h.valid(now));
    }
}
