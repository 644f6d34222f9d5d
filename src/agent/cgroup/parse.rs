//! The text formats of the cgroup and `/proc` files this module reads. Pure functions of the
//! text: each returns what the file says or, as a `String`, what is wrong with it; the caller
//! adds the path ([`super::CgroupError::Parse`]).

use super::convert::Quota;

/// The counters of a `cpu.stat` file, v1 or v2, converted to nanoseconds. A key the file does
/// not have is `None` (v1 has no usage line; v2 has the bandwidth lines only with the cpu
/// controller enabled).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuStat {
    /// v2 `usage_usec` × 1000.
    pub usage_ns: Option<u64>,
    /// `nr_periods`: enforcement periods in which the group had runnable tasks and a quota.
    pub nr_periods: Option<u64>,
    /// `nr_throttled`: periods in which the group used up its quota.
    pub nr_throttled: Option<u64>,
    /// v1 `throttled_time` (ns), or v2 `throttled_usec` × 1000.
    pub throttled_ns: Option<u64>,
}

/// Parses `cpu.stat` of either hierarchy (`key value` lines; unknown keys such as `nr_bursts`,
/// `user_usec` are ignored). A known key with a value that is not a whole number is an error.
pub fn cpu_stat(text: &str) -> Result<CpuStat, String> {
    let mut stat = CpuStat::default();
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        let Some(key) = fields.next() else { continue };
        let (slot, scale) = match key {
            "usage_usec" => (&mut stat.usage_ns, 1000),
            "nr_periods" => (&mut stat.nr_periods, 1),
            "nr_throttled" => (&mut stat.nr_throttled, 1),
            "throttled_time" => (&mut stat.throttled_ns, 1),
            "throttled_usec" => (&mut stat.throttled_ns, 1000),
            _ => continue,
        };
        let value = fields.next().unwrap_or("");
        let n: u64 = value
            .parse()
            .map_err(|_| format!("{key} is {value:?}, not a whole number"))?;
        *slot = Some(n.saturating_mul(scale));
    }
    Ok(stat)
}

/// A file holding one unsigned number (`cpuacct.usage`, `cpu.shares`, `cpu.cfs_period_us`,
/// `cpu.weight`).
pub fn single_u64(text: &str) -> Result<u64, String> {
    let t = text.trim();
    t.parse()
        .map_err(|_| format!("holds {t:?}, not a whole number"))
}

/// v1 `cpu.cfs_quota_us`: a positive number of µs, or `-1` (any negative) for unlimited.
pub fn quota_v1(text: &str) -> Result<Quota, String> {
    let t = text.trim();
    match t.parse::<i64>() {
        Ok(n) if n < 0 => Ok(Quota::Unlimited),
        Ok(n) => Ok(Quota::Limited(n.unsigned_abs())),
        Err(_) => Err(format!("holds {t:?}, not a quota (a number or -1)")),
    }
}

/// v2 `cpu.max`: `"max 100000"` or `"20000 100000"` → (quota, period µs).
pub fn cpu_max(text: &str) -> Result<(Quota, u64), String> {
    let t = text.trim();
    let bad = || format!("holds {t:?}, not \"<quota|max> <period>\"");
    let mut fields = t.split_whitespace();
    let (Some(quota), Some(period), None) = (fields.next(), fields.next(), fields.next()) else {
        return Err(bad());
    };
    let period: u64 = period.parse().map_err(|_| bad())?;
    let quota = match quota {
        "max" => Quota::Unlimited,
        n => Quota::Limited(n.parse().map_err(|_| bad())?),
    };
    Ok((quota, period))
}

/// `total=` of the `some` line of a PSI file (`cpu.pressure`): cumulative µs during which at
/// least one task was runnable but not running.
pub fn pressure_some_total(text: &str) -> Result<u64, String> {
    let line = text
        .lines()
        .find(|l| l.starts_with("some "))
        .ok_or_else(|| format!("no \"some\" line in {:?}", text.trim()))?;
    let total = line
        .split_whitespace()
        .find_map(|f| f.strip_prefix("total="))
        .ok_or_else(|| format!("no total= in {line:?}"))?;
    total
        .parse()
        .map_err(|_| format!("total={total:?} is not a whole number"))
}

/// `/proc/<tid>/schedstat` = `<ns on CPU> <ns waiting on a run queue> <timeslices>` → (run ns,
/// wait ns). The kernel adds a wait to the second field only when it ends (when the thread
/// gets a CPU again).
pub fn schedstat(text: &str) -> Result<(u64, u64), String> {
    let t = text.trim();
    let mut fields = t.split_whitespace().map(str::parse::<u64>);
    match (fields.next(), fields.next()) {
        (Some(Ok(run)), Some(Ok(wait))) => Ok((run, wait)),
        _ => Err(format!("holds {t:?}, not \"<run ns> <wait ns> <slices>\"")),
    }
}

/// The second field of `/proc/<tid>/schedstat`: cumulative run-queue wait, ns.
pub fn schedstat_wait_ns(text: &str) -> Result<u64, String> {
    schedstat(text).map(|(_, wait)| wait)
}

/// From `/proc/<tid>/status`: whether the thread is runnable (`State: R`, on a CPU or queued
/// for one) and its `voluntary_ctxt_switches` (times it blocked or stopped).
pub fn proc_status(text: &str) -> Result<(bool, u64), String> {
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .map(str::trim)
            .ok_or_else(|| format!("no {key} line"))
    };
    let runnable = field("State:")?.starts_with('R');
    let switches = field("voluntary_ctxt_switches:")?;
    let switches = switches
        .parse()
        .map_err(|_| format!("voluntary_ctxt_switches {switches:?} is not a whole number"))?;
    Ok((runnable, switches))
}

/// A list of process or thread IDs, one a line (`tasks`, `cgroup.procs`, `cgroup.threads`).
pub fn ids(text: &str) -> Result<Vec<u32>, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| l.parse().map_err(|_| format!("{l:?} is not a task ID")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_stat_v1_as_on_this_host() {
        let s = cpu_stat(
            "nr_periods 50\nnr_throttled 49\nthrottled_time 3422806155\nnr_bursts 0\nburst_time 0\n",
        )
        .expect("parses");
        assert_eq!(
            s,
            CpuStat {
                usage_ns: None,
                nr_periods: Some(50),
                nr_throttled: Some(49),
                throttled_ns: Some(3_422_806_155),
            }
        );
    }

    #[test]
    fn cpu_stat_v2_with_and_without_the_controller() {
        let full = "usage_usec 1015638\nuser_usec 1015638\nsystem_usec 0\nnice_usec 0\n\
                    nr_periods 7\nnr_throttled 3\nthrottled_usec 1234\nnr_bursts 0\nburst_usec 0\n";
        let s = cpu_stat(full).expect("parses");
        assert_eq!(s.usage_ns, Some(1_015_638_000));
        assert_eq!(s.nr_periods, Some(7));
        assert_eq!(s.nr_throttled, Some(3));
        assert_eq!(s.throttled_ns, Some(1_234_000));
        let core = cpu_stat("usage_usec 5\nuser_usec 5\nsystem_usec 0\n").expect("parses");
        assert_eq!(core.usage_ns, Some(5000));
        assert_eq!(core.nr_periods, None);
    }

    #[test]
    fn cpu_stat_rejects_a_bad_number() {
        let e = cpu_stat("nr_periods x\n").expect_err("bad");
        assert!(e.contains("nr_periods"), "{e}");
        assert!(cpu_stat("nr_throttled\n").is_err());
        assert_eq!(cpu_stat("").expect("empty is fine"), CpuStat::default());
    }

    #[test]
    fn quotas_and_cpu_max() {
        assert_eq!(quota_v1("-1\n"), Ok(Quota::Unlimited));
        assert_eq!(quota_v1("20000\n"), Ok(Quota::Limited(20_000)));
        assert!(quota_v1("max").is_err());
        assert_eq!(cpu_max("max 100000\n"), Ok((Quota::Unlimited, 100_000)));
        assert_eq!(
            cpu_max("20000 100000\n"),
            Ok((Quota::Limited(20_000), 100_000))
        );
        for bad in ["", "max", "20000 100000 1", "x 100000", "max y"] {
            assert!(cpu_max(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn pressure_and_schedstat() {
        let psi = "some avg10=25.88 avg60=5.05 avg300=1.06 total=3634433\n\
                   full avg10=25.88 avg60=5.05 avg300=1.06 total=3634433\n";
        assert_eq!(pressure_some_total(psi), Ok(3_634_433));
        assert!(pressure_some_total("full avg10=0.00 total=1\n").is_err());
        assert!(pressure_some_total("some avg10=0.00\n").is_err());
        assert_eq!(
            schedstat_wait_ns("1017088019 3949240502 225\n"),
            Ok(3_949_240_502)
        );
        assert_eq!(
            schedstat("1017088019 3949240502 225\n"),
            Ok((1_017_088_019, 3_949_240_502))
        );
        assert!(schedstat_wait_ns("1017088019\n").is_err());
        assert!(schedstat("x 1 2\n").is_err());
    }

    #[test]
    fn proc_status_state_and_switches() {
        let text = "Name:\tsh\nState:\tR (running)\nTgid:\t1\n\
                    voluntary_ctxt_switches:\t0\nnonvoluntary_ctxt_switches:\t3\n";
        assert_eq!(proc_status(text), Ok((true, 0)));
        let text = "State:\tS (sleeping)\nvoluntary_ctxt_switches:\t330\n";
        assert_eq!(proc_status(text), Ok((false, 330)));
        assert!(proc_status("State:\tR (running)\n").is_err());
        assert!(proc_status("voluntary_ctxt_switches:\t1\n").is_err());
        assert!(proc_status("State:\tR\nvoluntary_ctxt_switches:\tx\n").is_err());
    }

    #[test]
    fn id_lists() {
        assert_eq!(ids("1\n22\n\n333\n"), Ok(vec![1, 22, 333]));
        assert_eq!(ids(""), Ok(vec![]));
        assert!(ids("1\nx\n").is_err());
    }

    #[test]
    fn single_numbers() {
        assert_eq!(single_u64("1024\n"), Ok(1024));
        assert!(single_u64("-1").is_err());
    }
}
