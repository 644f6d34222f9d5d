//! Pure mapping between the engine's CPU values and cgroup settings, and the agent's safety
//! rules for what it writes.
//!
//! - [`in_force`]: what a container's cgroup enforces, as the engine's [`CpuResources`]
//!   (the spec's request; the limit from the quota; the weight from the shares, `None` while
//!   they are what the kubelet gives the request).
//! - [`container_setting`]: the engine's output for a container as a cgroup [`Setting`],
//!   clamped by [`Bounds`] (never above `spec.cpu.max`, never a batch limit below its floor).
//! - [`pod_setting`]: the pod-level setting that goes with the containers' settings: the quota
//!   never below what the pod had before the agent changed it (the spec's: a runtime restarting
//!   a container writes the spec's quota into the new container cgroup, which the kernel
//!   refuses above a lower pod-level quota), raised when the containers together need more;
//!   the shares moved by exactly the containers' weight changes.

use super::cgroup::{
    CpuLimits, MAX_SHARES, MIN_SHARES, Quota, Setting, millicores_for_quota, quota_for, shares_for,
};
use crate::engine::CpuResources;
use crate::quantity::MilliCpu;

/// What a container's cgroup enforces, in the engine's terms. `spec` is the container's CPU in
/// the pod spec (which the agent never changes).
pub fn in_force(spec: CpuResources, limits: &CpuLimits) -> CpuResources {
    let period = limits.period_us;
    let limit = match limits.quota_us {
        None => None,
        Some(q) => match spec.limit {
            Some(l) if q == quota_for(l.0, period) => Some(l),
            _ => Some(MilliCpu(millicores_for_quota(q, period).max(1))),
        },
    };
    let spec_shares = shares_for(spec.request.map_or(0, |r| r.0));
    let weight = if limits.shares == spec_shares {
        None
    } else {
        Some(MilliCpu(millicores_for_shares(limits.shares)))
    };
    CpuResources {
        request: spec.request,
        limit,
        weight,
    }
}

/// The request (millicores) whose kubelet shares are `shares`: the smallest `m` with
/// `shares_for(m) == shares` when there is one (so that [`shares_for`] of the result gives the
/// shares back), rounded up otherwise.
pub fn millicores_for_shares(shares: u64) -> u64 {
    let m = (shares * 1000).div_ceil(1024);
    if shares_for(m) == shares {
        // Walk down to the smallest request giving these shares.
        let mut low = m;
        while low > 0 && shares_for(low - 1) == shares {
            low -= 1;
        }
        low
    } else {
        m
    }
}

/// The bounds the agent enforces on its own writes, whatever the engine says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// `spec.cpu.max`: no limit or weight above it.
    pub max: MilliCpu,
    /// For batch pods, `spec.batch.floor`: no limit below it.
    pub floor: Option<MilliCpu>,
}

/// The cgroup setting for a container that should enforce `to`. `spec` is its CPU in the pod
/// spec: a weight following the request gives the kubelet's shares for the spec's request,
/// so that an unchanged weight writes exactly what the kubelet wrote. A limit is clamped to
/// `[floor, max]` — but never raised by the floor above the spec's own limit, and never cut
/// below the spec by `max` (the spec's values are always allowed: they are what restore writes).
pub fn container_setting(
    to: CpuResources,
    spec: CpuResources,
    bounds: Bounds,
    period_us: u64,
) -> Setting {
    let quota = match to.limit {
        None => Quota::Unlimited,
        Some(l) => {
            let mut l = l;
            if let Some(floor) = bounds.floor {
                l = l.max(floor.min(spec.limit.unwrap_or(floor)));
            }
            let ceiling = bounds.max.max(spec.limit.unwrap_or(MilliCpu::ZERO));
            l = l.min(ceiling).max(MilliCpu(1));
            Quota::Limited(quota_for(l.0, period_us))
        }
    };
    let shares = match to.weight {
        None => shares_for(to.request.or(spec.request).map_or(0, |r| r.0)),
        Some(w) => {
            let ceiling = bounds.max.max(spec.request.unwrap_or(MilliCpu::ZERO));
            shares_for(w.min(ceiling).0)
        }
    };
    Setting {
        quota_us: Some(quota),
        shares: Some(shares),
        weight: None,
    }
}

/// One container of a pod, for the pod-level setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContainerLevel {
    /// What its cgroup had before the agent first changed it (its spec's values).
    pub original: CpuLimits,
    /// What it will have after this write.
    pub after: Setting,
}

/// The pod-level setting for a pod whose containers will have `containers[].after`. `original`
/// is what the pod-level cgroup had before the agent first changed the pod.
///
/// - Quota: unlimited stays unlimited. Otherwise the original quota plus every container's
///   *increase* over its own original (in the pod's period): a container grown by 500m gets
///   500m more room at the pod level, whatever else the pod holds (sidecars, init-container
///   headroom the kubelet included); a throttled container leaves the pod level at its original
///   (never below the spec: a restarting container needs its spec's quota to fit under it).
/// - Shares: the original shares plus the containers' share changes (kept within the kernel's
///   range), so that restoring every container restores the pod level exactly.
pub fn pod_setting(original: &CpuLimits, containers: &[ContainerLevel]) -> Setting {
    let quota = match original.quota() {
        Quota::Unlimited => Quota::Unlimited,
        Quota::Limited(orig) => {
            let mut extra: u64 = 0;
            for c in containers {
                let (Quota::Limited(before), Quota::Limited(after)) = (
                    c.original.quota(),
                    c.after.quota_us.unwrap_or(c.original.quota()),
                ) else {
                    // Unlimited before (the pod level already caps it) or after (capped by the
                    // pod level): no room to add.
                    continue;
                };
                let grow = after.saturating_sub(before);
                // In the pod's period (the kubelet uses one period for both).
                let grow =
                    if c.original.period_us == original.period_us || c.original.period_us == 0 {
                        grow
                    } else {
                        grow.saturating_mul(original.period_us) / c.original.period_us
                    };
                extra = extra.saturating_add(grow);
            }
            Quota::Limited(orig.saturating_add(extra))
        }
    };
    let mut shares = i128::from(original.shares);
    for c in containers {
        let after = c.after.shares.unwrap_or(c.original.shares);
        shares += i128::from(after) - i128::from(c.original.shares);
    }
    let shares = u64::try_from(shares.clamp(i128::from(MIN_SHARES), i128::from(MAX_SHARES)))
        .unwrap_or(MIN_SHARES);
    Setting {
        quota_us: Some(quota),
        shares: Some(shares),
        weight: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(quota: Option<u64>, shares: u64) -> CpuLimits {
        CpuLimits {
            quota_us: quota,
            period_us: 100_000,
            shares,
            weight: None,
        }
    }

    #[test]
    fn what_the_kubelet_wrote_reads_as_the_spec() {
        // request 100m / limit 200m: quota 20000, shares 102 (FACTS.md).
        let spec = CpuResources::new(100, 200);
        assert_eq!(in_force(spec, &limits(Some(20_000), 102)), spec);
        let unlimited = CpuResources {
            limit: None,
            ..CpuResources::new(500, 0)
        };
        assert_eq!(in_force(unlimited, &limits(None, 512)), unlimited);
    }

    #[test]
    fn changed_values_read_as_limit_and_weight() {
        let spec = CpuResources::new(100, 1000);
        let got = in_force(spec, &limits(Some(40_000), 1024));
        assert_eq!(got.limit, Some(MilliCpu(400)));
        assert_eq!(got.weight, Some(MilliCpu(1000)));
        assert_eq!(got.request, Some(MilliCpu(100)));
        // A quota imposed on an unlimited container.
        let unlimited = CpuResources {
            limit: None,
            ..CpuResources::new(500, 0)
        };
        assert_eq!(
            in_force(unlimited, &limits(Some(150_000), 512)).limit,
            Some(MilliCpu(1500))
        );
    }

    #[test]
    fn shares_round_trip_through_millicores() {
        for m in [1u64, 2, 99, 100, 101, 250, 999, 1000, 1500, 4000, 255_999] {
            let s = shares_for(m);
            assert_eq!(shares_for(millicores_for_shares(s)), s, "m={m}");
        }
        for s in [2u64, 3, 102, 1024, 1025, 262_144] {
            assert_eq!(shares_for(millicores_for_shares(s)), s, "s={s}");
        }
    }

    #[test]
    fn unchanged_output_writes_exactly_what_the_kubelet_wrote() {
        let spec = CpuResources::new(100, 200);
        let s = container_setting(
            spec,
            spec,
            Bounds {
                max: MilliCpu(2000),
                floor: None,
            },
            100_000,
        );
        assert_eq!(s.quota_us, Some(Quota::Limited(20_000)));
        assert_eq!(s.shares, Some(102));
    }

    #[test]
    fn the_floor_and_max_hold_whatever_the_engine_says() {
        let spec = CpuResources::new(500, 2000);
        let b = Bounds {
            max: MilliCpu(3000),
            floor: Some(MilliCpu(400)),
        };
        let low = CpuResources {
            limit: Some(MilliCpu(100)),
            ..spec
        };
        assert_eq!(
            container_setting(low, spec, b, 100_000).quota_us,
            Some(Quota::Limited(40_000))
        );
        let high = CpuResources {
            limit: Some(MilliCpu(9000)),
            weight: Some(MilliCpu(9000)),
            ..spec
        };
        let s = container_setting(high, spec, b, 100_000);
        assert_eq!(s.quota_us, Some(Quota::Limited(300_000)));
        assert_eq!(s.shares, Some(shares_for(3000)));
        // The spec's own values are always allowed (restore), even outside the bounds.
        let tight = Bounds {
            max: MilliCpu(1000),
            floor: Some(MilliCpu(3000)),
        };
        let s = container_setting(spec, spec, tight, 100_000);
        assert_eq!(s.quota_us, Some(Quota::Limited(200_000)));
    }

    #[test]
    fn pod_quota_never_goes_below_the_original_and_grows_with_its_containers() {
        let pod = limits(Some(120_000), 614); // two containers 1000m + 200m, requests 500m + 100m
        let web = limits(Some(100_000), 512);
        let side = limits(Some(20_000), 102);
        let throttled = pod_setting(
            &pod,
            &[
                ContainerLevel {
                    original: web,
                    after: Setting {
                        quota_us: Some(Quota::Limited(30_000)),
                        shares: Some(512),
                        weight: None,
                    },
                },
                ContainerLevel {
                    original: side,
                    after: Setting::from_limits(&side),
                },
            ],
        );
        assert_eq!(throttled.quota_us, Some(Quota::Limited(120_000)));
        assert_eq!(throttled.shares, Some(614));
        let grown = pod_setting(
            &pod,
            &[
                ContainerLevel {
                    original: web,
                    after: Setting {
                        quota_us: Some(Quota::Limited(250_000)),
                        shares: Some(1024),
                        weight: None,
                    },
                },
                ContainerLevel {
                    original: side,
                    after: Setting::from_limits(&side),
                },
            ],
        );
        // 1000m → 2500m: the pod level grows by the same 1500m.
        assert_eq!(grown.quota_us, Some(Quota::Limited(270_000)));
        assert_eq!(grown.shares, Some(614 + 512));
    }

    #[test]
    fn a_grown_container_gets_its_increase_at_the_pod_level_beside_a_sidecar() {
        // web 1000m + an unlisted sidecar 400m: the pod level holds 1400m.
        let pod = limits(Some(140_000), 614);
        let web = limits(Some(100_000), 512);
        let s = pod_setting(
            &pod,
            &[ContainerLevel {
                original: web,
                after: Setting {
                    quota_us: Some(Quota::Limited(250_000)),
                    shares: Some(512),
                    weight: None,
                },
            }],
        );
        assert_eq!(s.quota_us, Some(Quota::Limited(290_000)));
    }

    #[test]
    fn an_unlimited_pod_stays_unlimited() {
        let pod = limits(None, 512);
        let c = limits(None, 512);
        let s = pod_setting(
            &pod,
            &[ContainerLevel {
                original: c,
                after: Setting {
                    quota_us: Some(Quota::Limited(50_000)),
                    shares: Some(512),
                    weight: None,
                },
            }],
        );
        assert_eq!(s.quota_us, Some(Quota::Unlimited));
    }
}
