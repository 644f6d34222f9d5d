//! cgroup v1 on the host: a CPU-limited group for the compile (E1), and reading the kubelet's
//! pod cgroups (E0/E2). Quota, period and burst are written to `cpu.*`; usage comes from
//! `cpuacct.usage` (a separate hierarchy here, co-mounted as `cpu,cpuacct` elsewhere).

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use burst_scaler::agent::cgroup::parse;

pub const CPU_ROOT: &str = "/sys/fs/cgroup/cpu";
pub const CPUACCT_ROOT: &str = "/sys/fs/cgroup/cpuacct";
pub const UNIFIED_ROOT: &str = "/sys/fs/cgroup/unified";

/// Counters of one cgroup at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuStat {
    pub usage_ns: u64,
    pub nr_periods: u64,
    pub nr_throttled: u64,
    pub throttled_ns: u64,
}

impl CpuStat {
    pub fn since(&self, earlier: &CpuStat) -> CpuStat {
        CpuStat {
            usage_ns: self.usage_ns.saturating_sub(earlier.usage_ns),
            nr_periods: self.nr_periods.saturating_sub(earlier.nr_periods),
            nr_throttled: self.nr_throttled.saturating_sub(earlier.nr_throttled),
            throttled_ns: self.throttled_ns.saturating_sub(earlier.throttled_ns),
        }
    }
}

/// Parses `cpu.stat` (`nr_periods N`, `nr_throttled N`, `throttled_time NS`, ...; v2's
/// `throttled_usec` too) with the agent's parser; a key the file lacks is 0, and so is
/// everything if the file is not `cpu.stat` at all.
pub fn parse_cpu_stat(text: &str, usage_ns: u64) -> CpuStat {
    let s = parse::cpu_stat(text).unwrap_or_default();
    CpuStat {
        usage_ns,
        nr_periods: s.nr_periods.unwrap_or(0),
        nr_throttled: s.nr_throttled.unwrap_or(0),
        throttled_ns: s.throttled_ns.unwrap_or(0),
    }
}

fn read_u64(path: &Path) -> anyhow::Result<u64> {
    let text = fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
    parse::single_u64(&text).map_err(|what| anyhow::anyhow!("{}: {what}", path.display()))
}

/// Where a cgroup's `cpu.*` and `cpuacct.*` files are (the same directory when co-mounted).
#[derive(Clone, Debug)]
pub struct CgroupPaths {
    pub cpu: PathBuf,
    pub cpuacct: PathBuf,
}

impl CgroupPaths {
    /// `rel` below both hierarchies (e.g. `kubepods/burstable/pod<UID>`).
    pub fn at(rel: &str) -> CgroupPaths {
        let cpu = Path::new(CPU_ROOT).join(rel);
        let cpuacct = if cpu.join("cpuacct.usage").exists() {
            cpu.clone()
        } else {
            Path::new(CPUACCT_ROOT).join(rel)
        };
        CgroupPaths { cpu, cpuacct }
    }

    pub fn exists(&self) -> bool {
        self.cpu.join("cpu.stat").exists()
    }

    /// A child cgroup (a container's, below its pod's).
    pub fn child(&self, name: &str) -> CgroupPaths {
        CgroupPaths {
            cpu: self.cpu.join(name),
            cpuacct: self.cpuacct.join(name),
        }
    }

    /// What the cgroup enforces now: its CPU limit in millicores (`None`: no quota) and its
    /// `cpu.shares`.
    pub fn limits(&self) -> anyhow::Result<(Option<f64>, u64)> {
        let text = fs::read_to_string(self.cpu.join("cpu.cfs_quota_us"))
            .with_context(|| format!("read {}", self.cpu.join("cpu.cfs_quota_us").display()))?;
        let quota: i64 = text.trim().parse().context("cpu.cfs_quota_us")?;
        let period = read_u64(&self.cpu.join("cpu.cfs_period_us"))?;
        let shares = read_u64(&self.cpu.join("cpu.shares"))?;
        let limit = (quota > 0 && period > 0).then(|| quota as f64 * 1000.0 / period as f64);
        Ok((limit, shares))
    }

    /// PSI `some` total (µs) of this cgroup's twin in the unified hierarchy
    /// (`/sys/fs/cgroup/unified/<same path>/cpu.pressure`; hybrid hosts like this one), if any.
    pub fn pressure_some_us(&self) -> Option<u64> {
        let rel = self.cpu.strip_prefix(CPU_ROOT).ok()?;
        let text =
            fs::read_to_string(Path::new(UNIFIED_ROOT).join(rel).join("cpu.pressure")).ok()?;
        parse::pressure_some_total(&text).ok()
    }

    pub fn stat(&self) -> anyhow::Result<CpuStat> {
        let usage = read_u64(&self.cpuacct.join("cpuacct.usage"))?;
        let text = fs::read_to_string(self.cpu.join("cpu.stat"))
            .with_context(|| format!("read {}", self.cpu.join("cpu.stat").display()))?;
        Ok(parse_cpu_stat(&text, usage))
    }
}

/// A CPU quantity (`"100m"`, `"2"`, `"1.5"`) in millicores.
pub fn millicores(q: &str) -> Option<f64> {
    match q.strip_suffix('m') {
        Some(m) => m.parse().ok(),
        None => q.parse::<f64>().ok().map(|c| c * 1000.0),
    }
}

/// The quota for `fraction` of `cores` CPUs per `period_us` (kubelet's formula: limit × period).
pub fn quota_us(fraction: f64, cores: u32, period_us: u64) -> u64 {
    (fraction * f64::from(cores) * period_us as f64).round() as u64
}

/// A cgroup this process created (removed on drop, after its processes are gone).
pub struct OwnedCgroup {
    pub paths: CgroupPaths,
}

impl OwnedCgroup {
    pub fn create(rel: &str) -> anyhow::Result<OwnedCgroup> {
        if !Path::new(CPU_ROOT).join("cpu.cfs_quota_us").exists() {
            bail!("cgroup v1 cpu controller not found at {CPU_ROOT} (E1 needs real cgroups v1)");
        }
        let paths = CgroupPaths::at(rel);
        for dir in [&paths.cpu, &paths.cpuacct] {
            fs::create_dir_all(dir)
                .with_context(|| format!("mkdir {} (run as root)", dir.display()))?;
        }
        Ok(OwnedCgroup { paths })
    }

    /// Sets `cpu.cfs_period_us`, `cpu.cfs_quota_us` and (if the kernel has it) `cpu.cfs_burst_us`.
    pub fn limit(&self, period_us: u64, quota_us: u64, burst_us: u64) -> anyhow::Result<()> {
        let w = |file: &str, v: u64| {
            let p = self.paths.cpu.join(file);
            fs::write(&p, v.to_string()).with_context(|| format!("write {v} to {}", p.display()))
        };
        let has_burst = self.paths.cpu.join("cpu.cfs_burst_us").exists();
        // The kernel refuses a burst above the quota: clear it before changing the quota.
        if has_burst {
            w("cpu.cfs_burst_us", 0)?;
        }
        w("cpu.cfs_period_us", period_us)?;
        w("cpu.cfs_quota_us", quota_us)?;
        if has_burst {
            w("cpu.cfs_burst_us", burst_us)?;
        } else if burst_us > 0 {
            bail!("this kernel has no cpu.cfs_burst_us (Linux >= 5.14 with CONFIG_CFS_BANDWIDTH)");
        }
        Ok(())
    }

    /// `sh -c` prefix that moves the shell into this cgroup and then execs the command.
    pub fn join_script(&self) -> String {
        let mut dirs = vec![self.paths.cpu.clone()];
        if self.paths.cpuacct != self.paths.cpu {
            dirs.push(self.paths.cpuacct.clone());
        }
        dirs.iter()
            .map(|d| format!("echo $$ > '{}/cgroup.procs' && ", d.display()))
            .collect()
    }
}

impl Drop for OwnedCgroup {
    fn drop(&mut self) {
        let _ = fs::remove_dir(&self.paths.cpu);
        if self.paths.cpuacct != self.paths.cpu {
            let _ = fs::remove_dir(&self.paths.cpuacct);
        }
    }
}

/// The kubelet's pod-level cgroup of a pod (cgroupfs driver), whichever QoS tier holds it.
pub fn pod_cgroup(uid: &str) -> Option<CgroupPaths> {
    ["kubepods", "kubepods/burstable", "kubepods/besteffort"]
        .iter()
        .map(|tier| CgroupPaths::at(&format!("{tier}/pod{uid}")))
        .find(CgroupPaths::exists)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cpu_stat() {
        let s = parse_cpu_stat(
            "nr_periods 120\nnr_throttled 31\nthrottled_time 812345678\nnr_bursts 2\n",
            9,
        );
        assert_eq!(
            s,
            CpuStat {
                usage_ns: 9,
                nr_periods: 120,
                nr_throttled: 31,
                throttled_ns: 812_345_678
            }
        );
        let d = s.since(&CpuStat {
            usage_ns: 4,
            nr_periods: 100,
            nr_throttled: 30,
            throttled_ns: 12_345_678,
        });
        assert_eq!(
            d,
            CpuStat {
                usage_ns: 5,
                nr_periods: 20,
                nr_throttled: 1,
                throttled_ns: 800_000_000
            }
        );
    }

    #[test]
    fn quota_matches_kubelet() {
        // kubelet: a 200m limit is 20 000 µs per 100 000 µs period.
        assert_eq!(quota_us(0.1, 2, 100_000), 20_000);
        assert_eq!(quota_us(0.75, 2, 100_000), 150_000);
        assert_eq!(quota_us(1.0, 2, 100_000), 200_000);
    }
}
