//! Reading one cgroup: cumulative [`Counters`] (what it consumed) and [`CpuLimits`] (what is
//! enforced on it now).

use std::fs;
use std::io;
use std::path::Path;

use super::convert::{Quota, weight_to_shares};
use super::layout::{Cgroup, Hierarchy};
use super::{CgroupError, ENODEV, ENOENT, EOPNOTSUPP, parse};

/// Cumulative counters of one cgroup (and its descendants) at one moment. Compare two readings
/// with [`super::delta`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// CPU time used, ns (v1 `cpuacct.usage`, v2 `usage_usec` × 1000).
    pub usage_ns: u64,
    /// CFS periods with a quota in which the group ran (`nr_periods`; 0 on v2 when the cpu
    /// controller is not enabled for the group).
    pub nr_periods: u64,
    /// Periods in which it used up its quota (`nr_throttled`).
    pub nr_throttled: u64,
    /// Time spent throttled, ns (v1 `throttled_time`, v2 `throttled_usec` × 1000).
    pub throttled_ns: u64,
    /// PSI `some total=` of this cgroup (µs), when readable: the time during which at least one
    /// of its tasks was runnable but not running (waiting for a CPU or throttled).
    pub pressure_some_us: Option<u64>,
}

/// What is enforced on a cgroup now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuLimits {
    /// The CFS quota per period, µs; `None` = unlimited (v1 `-1`, v2 `max`).
    pub quota_us: Option<u64>,
    /// The CFS period, µs.
    pub period_us: u64,
    /// v1 `cpu.shares`; on v2 converted back from `cpu.weight` with
    /// [`super::weight_to_shares`] (lossy: 1024 shares → weight 39 → 998).
    pub shares: u64,
    /// v2 only: the raw `cpu.weight` (`None` on v1). [`super::Setting::from_limits`] restores
    /// it exactly, which the lossy `shares` alone could not.
    pub weight: Option<u64>,
}

impl CpuLimits {
    pub fn quota(&self) -> Quota {
        Quota::from_us(self.quota_us)
    }
}

impl Cgroup {
    /// The cumulative counters now. Errors name the file; [`CgroupError::is_gone`] tells a
    /// removed cgroup from a real fault. A missing or unsupported `cpu.pressure` is no error,
    /// only `pressure_some_us: None`.
    pub fn counters(&self) -> Result<Counters, CgroupError> {
        let stat_file = self.stat_file();
        let stat = parse::cpu_stat(&read_text(&stat_file)?)
            .map_err(|what| CgroupError::parse(&stat_file, what))?;
        let usage_ns = match self.hierarchy() {
            Hierarchy::V1 => read_u64(&self.usage_file())?,
            Hierarchy::V2 => stat
                .usage_ns
                .ok_or_else(|| CgroupError::parse(&stat_file, "no usage_usec line"))?,
        };
        let (nr_periods, nr_throttled, throttled_ns) = match self.hierarchy() {
            Hierarchy::V1 => (
                require(stat.nr_periods, &stat_file, "nr_periods")?,
                require(stat.nr_throttled, &stat_file, "nr_throttled")?,
                require(stat.throttled_ns, &stat_file, "throttled_time")?,
            ),
            Hierarchy::V2 => (
                stat.nr_periods.unwrap_or(0),
                stat.nr_throttled.unwrap_or(0),
                stat.throttled_ns.unwrap_or(0),
            ),
        };
        Ok(Counters {
            usage_ns,
            nr_periods,
            nr_throttled,
            throttled_ns,
            pressure_some_us: self.pressure_some_us()?,
        })
    }

    /// PSI `some total=` (µs), `None` when this host or cgroup has no readable `cpu.pressure`
    /// (no unified hierarchy, the group missing there, PSI off: `ENOENT`/`ENODEV`/
    /// `EOPNOTSUPP`). Other read errors and malformed content are errors.
    pub fn pressure_some_us(&self) -> Result<Option<u64>, CgroupError> {
        let Some(file) = self.pressure_file() else {
            return Ok(None);
        };
        let text = match fs::read_to_string(&file) {
            Ok(text) => text,
            Err(e) if no_such_signal(&e) => return Ok(None),
            Err(e) => return Err(CgroupError::read(&file, e)),
        };
        parse::pressure_some_total(&text)
            .map(Some)
            .map_err(|what| CgroupError::parse(&file, what))
    }

    /// What is enforced now: quota, period, shares.
    pub fn limits(&self) -> Result<CpuLimits, CgroupError> {
        match self.hierarchy() {
            Hierarchy::V1 => {
                let quota_file = self.quota_file();
                let quota = parse::quota_v1(&read_text(&quota_file)?)
                    .map_err(|what| CgroupError::parse(&quota_file, what))?;
                Ok(CpuLimits {
                    quota_us: quota.as_us(),
                    period_us: read_u64(&self.period_file())?,
                    shares: read_u64(&self.shares_file())?,
                    weight: None,
                })
            }
            Hierarchy::V2 => {
                let max_file = self.quota_file();
                let (quota, period_us) = parse::cpu_max(&read_text(&max_file)?)
                    .map_err(|what| CgroupError::parse(&max_file, what))?;
                let weight = read_u64(&self.shares_file())?;
                Ok(CpuLimits {
                    quota_us: quota.as_us(),
                    period_us,
                    shares: weight_to_shares(weight),
                    weight: Some(weight),
                })
            }
        }
    }
}

fn no_such_signal(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(ENOENT) | Some(ENODEV) | Some(EOPNOTSUPP)
    ) || e.kind() == io::ErrorKind::NotFound
}

fn require(v: Option<u64>, file: &Path, key: &str) -> Result<u64, CgroupError> {
    v.ok_or_else(|| CgroupError::parse(file, format!("no {key} line")))
}

pub(super) fn read_text(path: &Path) -> Result<String, CgroupError> {
    fs::read_to_string(path).map_err(|e| CgroupError::read(path, e))
}

pub(super) fn read_u64(path: &Path) -> Result<u64, CgroupError> {
    parse::single_u64(&read_text(path)?).map_err(|what| CgroupError::parse(path, what))
}

#[cfg(test)]
mod tests {
    use super::super::fixture::{Tree, psi};
    use super::super::layout::{Driver, Layout};
    use super::*;

    #[test]
    fn v1_hybrid_counters_and_limits() {
        let t = Tree::hybrid_v1("read-v1");
        t.v1_group("g", "20000", 102, 987_654_321);
        let l = Layout::detect(t.root(), Driver::Cgroupfs).expect("detects");
        let g = Cgroup::at(&l, "g");
        assert!(g.exists());
        // No unified/g yet: no pressure, no error.
        let c = g.counters().expect("reads");
        assert_eq!(
            c,
            Counters {
                usage_ns: 987_654_321,
                nr_periods: 10,
                nr_throttled: 4,
                throttled_ns: 123_456,
                pressure_some_us: None,
            }
        );
        t.file("unified/g/cpu.pressure", &psi(5555));
        assert_eq!(g.counters().expect("reads").pressure_some_us, Some(5555));
        assert_eq!(
            g.limits().expect("reads"),
            CpuLimits {
                quota_us: Some(20_000),
                period_us: 100_000,
                shares: 102,
                weight: None,
            }
        );
        t.file("cpu/g/cpu.cfs_quota_us", "-1\n");
        assert_eq!(g.limits().expect("reads").quota_us, None);
        assert_eq!(g.limits().expect("reads").quota(), Quota::Unlimited);
    }

    #[test]
    fn v2_counters_and_limits() {
        let t = Tree::v2("read-v2");
        t.v2_group("kubepods.slice/p.slice", "50000 100000", 39);
        let l = Layout::detect(t.root(), Driver::Systemd).expect("detects");
        let g = Cgroup::at(&l, "kubepods.slice/p.slice");
        assert_eq!(
            g.counters().expect("reads"),
            Counters {
                usage_ns: 2_500_000,
                nr_periods: 8,
                nr_throttled: 2,
                throttled_ns: 700_000,
                pressure_some_us: Some(4242),
            }
        );
        assert_eq!(
            g.limits().expect("reads"),
            CpuLimits {
                quota_us: Some(50_000),
                period_us: 100_000,
                shares: 998,
                weight: Some(39),
            }
        );
        // Without the cpu controller, v2 cpu.stat has only the usage lines.
        t.file("kubepods.slice/p.slice/cpu.stat", "usage_usec 7\n");
        let c = g.counters().expect("reads");
        assert_eq!((c.usage_ns, c.nr_periods, c.nr_throttled), (7000, 0, 0));
    }

    #[test]
    fn errors_name_the_file() {
        let t = Tree::hybrid_v1("read-errors");
        t.v1_group("g", "abc", 102, 1);
        let l = Layout::detect(t.root(), Driver::Cgroupfs).expect("detects");
        let g = Cgroup::at(&l, "g");
        let e = g.limits().expect_err("bad quota");
        assert!(e.to_string().contains("cpu/g/cpu.cfs_quota_us"), "{e}");
        assert!(e.to_string().contains("\"abc\""), "{e}");

        t.file("cpu/g/cpu.stat", "nr_periods 1\n");
        let e = g.counters().expect_err("short cpu.stat");
        assert!(
            e.to_string()
                .contains("cpu/g/cpu.stat: no nr_throttled line"),
            "{e}"
        );

        t.file("unified/g/cpu.pressure", "garbage\n");
        let e = g.pressure_some_us().expect_err("bad psi");
        assert!(e.to_string().contains("unified/g/cpu.pressure"), "{e}");

        let gone = Cgroup::at(&l, "gone");
        assert!(!gone.exists());
        let e = gone.counters().expect_err("gone");
        assert!(e.is_gone(), "{e}");
        assert_eq!(e.errno(), Some(ENOENT));
        let text = e.to_string();
        assert!(text.contains("cpu/gone/cpu.stat"), "{text}");
        assert!(text.contains("(ENOENT)"), "{text}");
        assert!(text.contains("the cgroup or task is gone"), "{text}");
    }
}
