//! Signals over an interval: [`delta`] between two [`Counters`] readings, and the fallback
//! pressure from per-thread run-queue wait ([`task_wait_ns`], [`task_waits`]) for hosts
//! without PSI.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::layout::Cgroup;
use super::read::{Counters, read_text};
use super::{CgroupError, ENOENT, ESRCH, parse};

/// What a cgroup did over the interval between two readings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Delta {
    /// Mean CPU usage, millicores (CPU ns ÷ wall ns × 1000, rounded).
    pub usage_millicores: u64,
    /// CFS periods with a quota in which the group ran.
    pub periods: u64,
    /// Of those, periods in which it used up its quota.
    pub throttled_periods: u64,
    /// PSI `some` as a share of wall time, 0.0–1.0: the part of the interval in which at least
    /// one task of the group was runnable but not running (waiting for a CPU, or throttled —
    /// both count). `None` when either reading lacks PSI.
    pub pressure: Option<f64>,
}

impl Delta {
    /// Throttled periods ÷ periods; `None` when no period elapsed with a quota.
    pub fn throttled_share(&self) -> Option<f64> {
        (self.periods > 0).then(|| self.throttled_periods as f64 / self.periods as f64)
    }
}

/// The signals between two readings of the same cgroup taken `wall` apart.
///
/// `None` — *no signal for this interval* — when `wall` is zero or when any counter went
/// backwards. Counters only grow while a cgroup lives; a smaller value means the directory was
/// removed and created again (a restarted container gets a new cgroup, possibly at the same
/// path on some runtimes) and the readings are of two different groups. Take the later reading
/// as the new baseline. Pressure is clamped to 1.0 (the two files are read a few µs apart from
/// the wall clock, so a fully stalled group can show a hair over 100 %).
pub fn delta(earlier: &Counters, later: &Counters, wall: Duration) -> Option<Delta> {
    let wall_ns = wall.as_nanos();
    if wall_ns == 0 {
        return None;
    }
    let usage = later.usage_ns.checked_sub(earlier.usage_ns)?;
    let periods = later.nr_periods.checked_sub(earlier.nr_periods)?;
    let throttled_periods = later.nr_throttled.checked_sub(earlier.nr_throttled)?;
    later.throttled_ns.checked_sub(earlier.throttled_ns)?;
    let pressure = match (earlier.pressure_some_us, later.pressure_some_us) {
        (Some(a), Some(b)) => Some(share(b.checked_sub(a)?, 1000, wall_ns)),
        _ => None,
    };
    let millicores = (u128::from(usage) * 1000 + wall_ns / 2) / wall_ns;
    Some(Delta {
        usage_millicores: u64::try_from(millicores).unwrap_or(u64::MAX),
        periods,
        throttled_periods,
        pressure,
    })
}

/// `amount × scale` ns as a share of `wall_ns`, clamped to 0.0–1.0.
fn share(amount: u64, scale: u128, wall_ns: u128) -> f64 {
    ((u128::from(amount) * scale) as f64 / wall_ns as f64).min(1.0)
}

/// The fallback pressure from run-queue wait, in the unit of PSI `some` (share of wall time):
/// `min(1, Σwait ÷ wall)`, where Σwait is the run-queue wait of the group's threads over the
/// interval, summed over threads ([`TaskWaits::wait_since`]).
///
/// This is an **upper bound** of PSI `some`: `some` counts each instant at which *at least
/// one* task waits once, the sum counts it once per waiting task (two tasks waiting the same
/// second give 2 s, `some` 1 s). For a group with one runnable thread the two agree. Like
/// PSI it includes time spent throttled by a quota (a throttled task is runnable, not
/// running). `None` for a zero `wall`.
pub fn wait_share(wait_ns: u64, wall: Duration) -> Option<f64> {
    let wall_ns = wall.as_nanos();
    (wall_ns > 0).then(|| share(wait_ns, 1, wall_ns))
}

/// Cumulative run-queue wait (ns) of every thread of the cgroup and of its descendants,
/// summed: `/proc/<tid>/schedstat`'s second field for each thread listed in v1 `tasks` / v2
/// `cgroup.threads` of the group and every cgroup below it (a pod's threads are in its
/// container cgroups). `proc_root` is normally `/proc`; it must be the `/proc` of the PID
/// namespace the cgroup files are read from (the agent: `hostPID` with the host's `/proc`),
/// since the kernel lists IDs as seen from the reader's namespace.
///
/// Two readings of this sum make a poor interval signal, for two reasons seen on this host:
/// the kernel credits a wait to the counter only when it *ends* (when the thread gets a CPU
/// again), so a thread starved through the whole interval adds nothing (a victim with 99.8 %
/// PSI `some` showed 16 % here); and the sum loses the wait of threads that exit. Use
/// [`task_waits`] and [`TaskWaits::wait_since`], which handle both.
pub fn task_wait_ns(cgroup: &Cgroup, proc_root: &Path) -> Result<u64, CgroupError> {
    Ok(task_waits(cgroup, proc_root)?.total())
}

/// Scheduler counters of every thread of the cgroup and its descendants (see
/// [`task_wait_ns`]): `/proc/<tid>/schedstat` and `/proc/<tid>/status`. Threads that exit
/// while being read are skipped.
pub fn task_waits(cgroup: &Cgroup, proc_root: &Path) -> Result<TaskWaits, CgroupError> {
    let mut threads = BTreeMap::new();
    for file in threads_files(cgroup)? {
        let text = match fs::read_to_string(&file) {
            Ok(text) => text,
            // A descendant removed while we walk: its threads are gone too.
            Err(e) if e.raw_os_error() == Some(ENOENT) && file != cgroup.threads_file() => {
                continue;
            }
            Err(e) => return Err(CgroupError::read(&file, e)),
        };
        for tid in parse::ids(&text).map_err(|what| CgroupError::parse(&file, what))? {
            if let Some(sample) = thread_sample(proc_root, tid)? {
                threads.insert(tid, sample);
            }
        }
    }
    Ok(TaskWaits(threads))
}

/// The thread-list files of a cgroup and its descendants (a depth-first walk of the cpu
/// hierarchy's directories; every subdirectory of a cgroup is a child cgroup).
fn threads_files(cgroup: &Cgroup) -> Result<Vec<PathBuf>, CgroupError> {
    let own = cgroup.threads_file();
    let Some(name) = own.file_name().map(|n| n.to_os_string()) else {
        return Ok(vec![own]);
    };
    let mut files = Vec::new();
    let mut dirs = vec![cgroup.path().to_path_buf()];
    while let Some(dir) = dirs.pop() {
        files.push(dir.join(&name));
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.raw_os_error() == Some(ENOENT) && dir != cgroup.path() => continue,
            Err(e) => return Err(CgroupError::read(&dir, e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| CgroupError::read(&dir, e))?;
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                dirs.push(entry.path());
            }
        }
    }
    Ok(files)
}

/// One thread's counters; `None` if it has exited.
fn thread_sample(proc_root: &Path, tid: u32) -> Result<Option<ThreadSample>, CgroupError> {
    let dir = proc_root.join(tid.to_string());
    let Some((run_ns, wait_ns)) = read_proc(&dir.join("schedstat"), parse::schedstat)? else {
        return Ok(None);
    };
    let Some((runnable, voluntary_switches)) = read_proc(&dir.join("status"), parse::proc_status)?
    else {
        return Ok(None);
    };
    Ok(Some(ThreadSample {
        run_ns,
        wait_ns,
        voluntary_switches,
        runnable,
    }))
}

/// Reads and parses a `/proc/<tid>/` file; `None` when the thread is gone.
fn read_proc<T>(
    file: &Path,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<Option<T>, CgroupError> {
    match read_text(file) {
        Ok(text) => parse(&text)
            .map(Some)
            .map_err(|what| CgroupError::parse(file, what)),
        Err(e) if e.is_gone() || e.errno() == Some(ESRCH) => Ok(None),
        Err(e) => Err(e),
    }
}

/// One thread's scheduler counters at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ThreadSample {
    /// Cumulative time on a CPU, ns (`schedstat` field 1).
    pub run_ns: u64,
    /// Cumulative run-queue wait, ns (`schedstat` field 2; credited when each wait ends).
    pub wait_ns: u64,
    /// `voluntary_ctxt_switches` of `status`: how often it blocked (slept, stopped).
    pub voluntary_switches: u64,
    /// `State: R` — on a CPU or queued for one.
    pub runnable: bool,
}

/// The scheduler counters of a group's threads, by thread ID, at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TaskWaits(pub BTreeMap<u32, ThreadSample>);

impl TaskWaits {
    /// The summed cumulative wait of the threads present now ([`task_wait_ns`]).
    pub fn total(&self) -> u64 {
        self.0.values().fold(0, |a, t| a.saturating_add(t.wait_ns))
    }

    /// The run-queue wait accumulated over the `wall` since `earlier`, summed over the threads
    /// present now, each thread counted at most `wall`:
    /// - a thread that was runnable at the earlier reading and has not blocked since (same
    ///   voluntary switch count) never left the run queue: it ran or waited the whole
    ///   interval, so its wait is `wall − Δrun` — including a wait still in progress, which
    ///   the kernel's counter has not credited yet. It errs high by the time the thread was on
    ///   a CPU that the hypervisor stole or interrupts used (run time excludes both; 0–6 % of
    ///   wall for a busy loop on this project's VM, where PSI showed 0.3 %);
    /// - any other thread seen then: the growth of its wait counter (waits that ended in the
    ///   interval; may include the part of a wait before the interval, or miss one in
    ///   progress);
    /// - a thread born since (or a reused ID, whose counters went down): its whole wait.
    ///
    /// Threads that exited in between are lost (an underestimate, never a jump).
    pub fn wait_since(&self, earlier: &TaskWaits, wall: Duration) -> u64 {
        let wall_ns = u64::try_from(wall.as_nanos()).unwrap_or(u64::MAX);
        self.0.iter().fold(0u64, |sum, (tid, now)| {
            let wait = match earlier.0.get(tid) {
                Some(then) if then.run_ns <= now.run_ns && then.wait_ns <= now.wait_ns => {
                    if then.runnable && then.voluntary_switches == now.voluntary_switches {
                        wall_ns.saturating_sub(now.run_ns - then.run_ns)
                    } else {
                        now.wait_ns - then.wait_ns
                    }
                }
                _ => now.wait_ns,
            };
            sum.saturating_add(wait.min(wall_ns))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixture::Tree;
    use super::super::layout::{Driver, Layout};
    use super::*;

    fn counters(usage_ns: u64, periods: u64, throttled: u64, psi: Option<u64>) -> Counters {
        Counters {
            usage_ns,
            nr_periods: periods,
            nr_throttled: throttled,
            throttled_ns: throttled * 1_000_000,
            pressure_some_us: psi,
        }
    }

    #[test]
    fn delta_over_two_seconds() {
        let a = counters(1_000_000_000, 100, 10, Some(5_000_000));
        let b = counters(1_400_000_000, 120, 29, Some(6_500_000));
        let d = delta(&a, &b, Duration::from_secs(2)).expect("signal");
        assert_eq!(d.usage_millicores, 200);
        assert_eq!(d.periods, 20);
        assert_eq!(d.throttled_periods, 19);
        assert_eq!(d.pressure, Some(0.75));
        assert_eq!(d.throttled_share(), Some(0.95));
    }

    #[test]
    fn delta_without_signal() {
        let a = counters(1_000, 1, 0, Some(10));
        let b = counters(2_000, 1, 0, None);
        let d = delta(&a, &b, Duration::from_millis(1)).expect("signal");
        assert_eq!(d.pressure, None, "a reading without PSI");
        assert_eq!(d.throttled_share(), None, "no period elapsed");
        assert_eq!(d.usage_millicores, 1, "1 µs of CPU in 1 ms");
        assert_eq!(delta(&a, &b, Duration::ZERO), None, "zero wall");
        // Restarted container: every counter smaller.
        let restarted = counters(10, 0, 0, Some(1));
        assert_eq!(delta(&a, &restarted, Duration::from_secs(1)), None);
        // One counter reset is enough.
        let psi_reset = counters(5_000, 2, 0, Some(1));
        assert_eq!(delta(&a, &psi_reset, Duration::from_secs(1)), None);
        let periods_reset = counters(5_000, 0, 0, Some(20));
        assert_eq!(delta(&a, &periods_reset, Duration::from_secs(1)), None);
    }

    #[test]
    fn pressure_is_clamped() {
        let a = counters(0, 0, 0, Some(0));
        let b = counters(0, 0, 0, Some(1_000_500));
        let d = delta(&a, &b, Duration::from_secs(1)).expect("signal");
        assert_eq!(d.pressure, Some(1.0));
        assert_eq!(wait_share(3_000_000_000, Duration::from_secs(1)), Some(1.0));
        assert_eq!(wait_share(250_000_000, Duration::from_secs(1)), Some(0.25));
        assert_eq!(wait_share(1, Duration::ZERO), None);
    }

    fn thread(t: &Tree, tid: u32, run: u64, wait: u64, state: &str, switches: u64) {
        t.file(
            &format!("proc/{tid}/schedstat"),
            &format!("{run} {wait} 3\n"),
        );
        t.file(
            &format!("proc/{tid}/status"),
            &format!(
                "Name:\tx\nState:\t{state}\nvoluntary_ctxt_switches:\t{switches}\n\
                 nonvoluntary_ctxt_switches:\t9\n"
            ),
        );
    }

    #[test]
    fn task_waits_walk_the_subtree() {
        let t = Tree::hybrid_v1("waits");
        t.v1_group("pod", "-1", 2, 0);
        t.v1_group("pod/c1", "20000", 102, 0);
        t.v1_group("pod/c2", "-1", 2, 0);
        t.file("cpu/pod/tasks", "");
        t.file("cpu/pod/c1/tasks", "100\n101\n");
        t.file("cpu/pod/c2/tasks", "200\n999\n");
        thread(&t, 100, 5, 1000, "S (sleeping)", 7);
        thread(&t, 101, 5, 2000, "S (sleeping)", 7);
        thread(&t, 200, 5, 30000, "S (sleeping)", 7);
        // 999 has exited: no /proc entry.
        let l = Layout::detect(t.root(), Driver::Cgroupfs).expect("detects");
        let proc_root = t.root().join("proc");
        let pod = Cgroup::at(&l, "pod");
        assert_eq!(task_wait_ns(&pod, &proc_root).expect("reads"), 33_000);
        let c1 = Cgroup::at(&l, "pod/c1");
        assert_eq!(task_wait_ns(&c1, &proc_root).expect("reads"), 3000);

        let before = task_waits(&pod, &proc_root).expect("reads");
        thread(&t, 100, 9, 1500, "S (sleeping)", 8);
        thread(&t, 101, 1, 700, "S (sleeping)", 1); // a reused ID
        t.file("cpu/pod/c2/tasks", "300\n"); // 200 exited, 300 born
        thread(&t, 300, 5, 40, "R (running)", 0);
        let after = task_waits(&pod, &proc_root).expect("reads");
        let wall = Duration::from_secs(1);
        assert_eq!(after.wait_since(&before, wall), 500 + 700 + 40);
        assert!(after.total() < before.total(), "the plain sum went down");
        assert_eq!(
            after.wait_since(&before, Duration::from_nanos(600)),
            500 + 600 + 40
        );

        t.file("proc/100/schedstat", "garbage\n");
        let e = task_wait_ns(&pod, &proc_root).expect_err("bad schedstat");
        assert!(e.to_string().contains("proc/100/schedstat"), "{e}");
        let gone = Cgroup::at(&l, "nope");
        let e = task_wait_ns(&gone, &proc_root).expect_err("gone");
        assert!(e.is_gone(), "{e}");
    }

    #[test]
    fn a_thread_that_never_left_the_run_queue_waited_the_rest_of_the_interval() {
        let t = Tree::hybrid_v1("waits-starved");
        t.v1_group("g", "-1", 2, 0);
        t.file("cpu/g/tasks", "10\n11\n");
        // 10: runnable, starved; 11: runnable, then it slept in between (a switch).
        thread(&t, 10, 1_000_000, 5_000_000, "R (running)", 4);
        thread(&t, 11, 1_000_000, 5_000_000, "R (running)", 4);
        let l = Layout::detect(t.root(), Driver::Cgroupfs).expect("detects");
        let proc_root = t.root().join("proc");
        let g = Cgroup::at(&l, "g");
        let before = task_waits(&g, &proc_root).expect("reads");
        // 2 s later: 10 ran 4 ms, and its wait counter has not moved (still waiting);
        // 11 ran 4 ms and slept once; its counter credits 300 ms.
        thread(&t, 10, 5_000_000, 5_000_000, "R (running)", 4);
        thread(&t, 11, 5_000_000, 305_000_000, "S (sleeping)", 5);
        let after = task_waits(&g, &proc_root).expect("reads");
        let wall = Duration::from_secs(2);
        assert_eq!(
            after.wait_since(&before, wall),
            (2_000_000_000 - 4_000_000) + 300_000_000
        );
        assert_eq!(
            after.total(),
            310_000_000,
            "the plain counters saw no wait for 10"
        );
    }

    #[test]
    fn task_waits_on_v2() {
        let t = Tree::v2("waits-v2");
        t.v2_group("a", "max 100000", 100);
        t.v2_group("a/b", "max 100000", 100);
        t.file("a/cgroup.threads", "7\n");
        t.file("a/b/cgroup.threads", "8\n");
        thread(&t, 7, 1, 10, "S (sleeping)", 1);
        thread(&t, 8, 1, 20, "S (sleeping)", 1);
        let l = Layout::detect(t.root(), Driver::Systemd).expect("detects");
        let a = Cgroup::at(&l, "a");
        assert_eq!(task_wait_ns(&a, &t.root().join("proc")).expect("reads"), 30);
    }
}
