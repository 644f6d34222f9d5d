//! Value mapping, exactly as the kubelet does it, so that what the agent writes is what the
//! kubelet would have written for the same CPU request and limit.
//!
//! Sources (Kubernetes v1.20.2, the version of the project's test cluster; unchanged since):
//! - `pkg/kubelet/cm/helpers_linux.go`: `MilliCPUToQuota`, `MilliCPUToShares` (pod level;
//!   `pkg/kubelet/kuberuntime/helpers_linux.go` has the same formulas for containers).
//! - `pkg/kubelet/cm/cgroup_manager_linux.go` `getCpuWeight` (1.20) and
//!   `CpuSharesToCpuWeight`/`CpuWeightToCpuShares` (later `pkg/kubelet/cm/util`
//!   `CPUSharesToCPUWeight`/`CPUWeightToCPUShares`): the linear mapping of KEP-2254.
//!
//! Container-level `cpu.weight` on cgroup v2 is written by the OCI runtime, not the kubelet:
//! runc ≥ 1.3.2 and crun ≥ 1.23 use a different, log-quadratic mapping
//! (`⌈10^((L² + 125·L)/612 − 7/34)⌉`, `L = log2(shares)`; 1024 → 100 instead of 39). A
//! container's shares read back from such a runtime's weight with [`weight_to_shares`] are
//! therefore not its request; compare weights with weights.

/// Smallest and largest `cpu.shares` the kernel accepts (it clamps, silently, outside).
pub const MIN_SHARES: u64 = 2;
pub const MAX_SHARES: u64 = 262_144;
/// `cpu.weight` range (cgroup v2).
pub const MIN_WEIGHT: u64 = 1;
pub const MAX_WEIGHT: u64 = 10_000;
/// The kubelet's CFS period (100 ms) unless the `CPUCFSQuotaPeriod` feature gate changes it.
pub const DEFAULT_PERIOD_US: u64 = 100_000;
/// The smallest quota the kernel accepts, and the kubelet's floor (`MinQuotaPeriod`).
pub const MIN_QUOTA_US: u64 = 1000;

const SHARES_PER_CPU: u64 = 1024;
const MILLI_PER_CPU: u64 = 1000;

/// A CFS quota: µs per period, or none.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Quota {
    Limited(u64),
    Unlimited,
}

impl Quota {
    /// `None` = unlimited, as in [`super::CpuLimits::quota_us`].
    pub fn from_us(us: Option<u64>) -> Quota {
        us.map_or(Quota::Unlimited, Quota::Limited)
    }

    pub fn as_us(self) -> Option<u64> {
        match self {
            Quota::Limited(us) => Some(us),
            Quota::Unlimited => None,
        }
    }

    /// The text of v1 `cpu.cfs_quota_us`: `"20000"` or `"-1"`.
    pub fn v1_text(self) -> String {
        match self {
            Quota::Limited(us) => us.to_string(),
            Quota::Unlimited => "-1".to_string(),
        }
    }

    /// True when `self` lets the group use more CPU than `other` (unlimited is the most).
    pub fn exceeds(self, other: Quota) -> bool {
        match (self, other) {
            (Quota::Unlimited, Quota::Unlimited) => false,
            (Quota::Unlimited, Quota::Limited(_)) => true,
            (Quota::Limited(_), Quota::Unlimited) => false,
            (Quota::Limited(a), Quota::Limited(b)) => a > b,
        }
    }
}

/// The CFS quota for a CPU limit of `millicores` in a period of `period_us` — the kubelet's
/// `MilliCPUToQuota`: `millicores × period ÷ 1000` (integer division), at least
/// [`MIN_QUOTA_US`]. A limit of 0 gives 0: the kubelet writes no quota then (the container is
/// unlimited) — use [`Quota::Unlimited`] for it, never `Limited(0)`.
pub fn quota_for(millicores: u64, period_us: u64) -> u64 {
    if millicores == 0 {
        return 0;
    }
    (millicores.saturating_mul(period_us) / MILLI_PER_CPU).max(MIN_QUOTA_US)
}

/// The CPU limit a quota stands for, in millicores (`quota × 1000 ÷ period`, rounded down — the
/// inverse of [`quota_for`] for every quota it produces above the floor).
pub fn millicores_for_quota(quota_us: u64, period_us: u64) -> u64 {
    if period_us == 0 {
        return 0;
    }
    quota_us.saturating_mul(MILLI_PER_CPU) / period_us
}

/// `cpu.shares` for a CPU request of `millicores` — the kubelet's `MilliCPUToShares`:
/// `millicores × 1024 ÷ 1000` (integer division), clamped to 2..=262 144; a request of 0 gives 2
/// (BestEffort pods, the pause container).
pub fn shares_for(millicores: u64) -> u64 {
    (millicores.saturating_mul(SHARES_PER_CPU) / MILLI_PER_CPU).clamp(MIN_SHARES, MAX_SHARES)
}

/// v1 shares → v2 `cpu.weight`, the kubelet's `CpuSharesToCpuWeight`:
/// `1 + (shares − 2) × 9999 ÷ 262142`. Shares outside 2..=262 144 are clamped first (the Go
/// code would underflow below 2; 1.20's `getCpuWeight` caps at 262 144).
pub fn shares_to_weight(shares: u64) -> u64 {
    let s = shares.clamp(MIN_SHARES, MAX_SHARES);
    1 + (s - MIN_SHARES) * 9999 / (MAX_SHARES - MIN_SHARES)
}

/// v2 `cpu.weight` → v1 shares, the kubelet's `CpuWeightToCpuShares`:
/// `2 + (weight − 1) × 262142 ÷ 9999`, weight clamped to 1..=10 000 first. Lossy both ways
/// (two integer divisions): `weight_to_shares(shares_to_weight(1024))` is 998, and
/// `shares_to_weight(weight_to_shares(w))` is `w − 1` for every weight but 1 and 10 000 — which
/// is why [`super::CpuLimits`] and [`super::Setting`] also carry the raw weight on v2.
pub fn weight_to_shares(weight: u64) -> u64 {
    let w = weight.clamp(MIN_WEIGHT, MAX_WEIGHT);
    MIN_SHARES + (w - MIN_WEIGHT) * (MAX_SHARES - MIN_SHARES) / 9999
}

/// The text of v2 `cpu.max` for a quota and period: `"max 100000"` / `"20000 100000"`.
pub fn cpu_max_text(quota: Quota, period_us: u64) -> String {
    match quota {
        Quota::Limited(us) => format!("{us} {period_us}"),
        Quota::Unlimited => format!("max {period_us}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quota_matches_kubelet() {
        // The cases of kubelet's helpers_linux_test.go (TestMilliCPUToQuota), period 100 ms.
        let p = DEFAULT_PERIOD_US;
        assert_eq!(quota_for(0, p), 0);
        assert_eq!(quota_for(5, p), 1000);
        assert_eq!(quota_for(9, p), 1000);
        assert_eq!(quota_for(10, p), 1000);
        assert_eq!(quota_for(200, p), 20_000);
        assert_eq!(quota_for(500, p), 50_000);
        assert_eq!(quota_for(1000, p), 100_000);
        assert_eq!(quota_for(1500, p), 150_000);
        // Other periods (CPUCFSQuotaPeriod): 5 ms period.
        assert_eq!(quota_for(200, 5000), 1000);
        assert_eq!(quota_for(1500, 5000), 7500);
        assert_eq!(millicores_for_quota(20_000, p), 200);
        assert_eq!(millicores_for_quota(150_000, p), 1500);
        assert_eq!(millicores_for_quota(1, 0), 0);
        for m in [10, 11, 99, 101, 250, 999, 1234, 64_000] {
            assert_eq!(millicores_for_quota(quota_for(m, p), p), m, "{m}m");
        }
    }

    #[test]
    fn shares_match_kubelet() {
        // FACTS: request 100m → 102 shares on the test cluster.
        assert_eq!(shares_for(0), 2);
        assert_eq!(shares_for(1), 2);
        assert_eq!(shares_for(2), 2);
        assert_eq!(shares_for(100), 102);
        assert_eq!(shares_for(500), 512);
        assert_eq!(shares_for(1000), 1024);
        assert_eq!(shares_for(256_000), 262_144);
        assert_eq!(shares_for(300_000), 262_144);
    }

    #[test]
    fn weights_match_kubelet() {
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(102), 4);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(262_144), 10_000);
        assert_eq!(shares_to_weight(0), 1, "clamped, not underflowing");
        assert_eq!(shares_to_weight(1 << 20), 10_000);
        assert_eq!(weight_to_shares(1), 2);
        assert_eq!(weight_to_shares(39), 998);
        assert_eq!(weight_to_shares(100), 2597);
        assert_eq!(weight_to_shares(10_000), 262_144);
        assert_eq!(weight_to_shares(0), 2);
        // The kubelet's two formulas do not round-trip (both divisions round down).
        assert_eq!(shares_to_weight(weight_to_shares(1)), 1);
        assert_eq!(shares_to_weight(weight_to_shares(20)), 19);
        assert_eq!(shares_to_weight(weight_to_shares(10_000)), 10_000);
        for w in 2..MAX_WEIGHT {
            assert_eq!(shares_to_weight(weight_to_shares(w)), w - 1, "weight {w}");
        }
    }

    #[test]
    fn quota_text() {
        assert_eq!(cpu_max_text(Quota::Unlimited, 100_000), "max 100000");
        assert_eq!(
            cpu_max_text(Quota::Limited(20_000), 100_000),
            "20000 100000"
        );
        assert_eq!(Quota::Unlimited.v1_text(), "-1");
        assert_eq!(Quota::Limited(20_000).v1_text(), "20000");
        assert_eq!(Quota::from_us(None), Quota::Unlimited);
        assert_eq!(Quota::from_us(Some(5)).as_us(), Some(5));
        assert!(Quota::Unlimited.exceeds(Quota::Limited(u64::MAX)));
        assert!(Quota::Limited(2).exceeds(Quota::Limited(1)));
        assert!(!Quota::Limited(1).exceeds(Quota::Limited(1)));
        assert!(!Quota::Limited(1).exceeds(Quota::Unlimited));
        assert!(!Quota::Unlimited.exceeds(Quota::Unlimited));
    }
}
