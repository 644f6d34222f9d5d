//! E1's cgroup needs beyond `cgroup.rs`: no quota at all (−1), a one-core cpuset for the
//! compile, and cleaning up after an E1 that was killed (its build may still be running in its
//! cgroup, and must not run next to ours).
//!
//! The cpuset arm: `workload::build_on_host` starts the build from the calling thread, and a
//! child inherits the cpuset of the thread that forks it (cgroup v1 membership is per thread).
//! So the harness's own thread enters the one-core cpuset just for the build
//! ([`Cpuset::enter`]) and goes back afterwards; it only waits meanwhile.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::cgroup::{CPU_ROOT, CPUACCT_ROOT, OwnedCgroup};

pub const CPUSET_ROOT: &str = "/sys/fs/cgroup/cpuset";
/// Our cgroups are `burst-scaler-e1-<pid of the harness>` in each hierarchy.
pub const PREFIX: &str = "burst-scaler-e1-";

pub fn name_for(pid: u32) -> String {
    format!("{PREFIX}{pid}")
}

fn write(path: &Path, value: &str) -> anyhow::Result<()> {
    fs::write(path, value).with_context(|| format!("write {value} to {}", path.display()))
}

/// No CFS limit: period 100 ms, quota −1, burst 0.
pub fn set_unlimited(cg: &OwnedCgroup, period_us: u64) -> anyhow::Result<()> {
    let dir = &cg.paths.cpu;
    if dir.join("cpu.cfs_burst_us").exists() {
        write(&dir.join("cpu.cfs_burst_us"), "0")?;
    }
    write(&dir.join("cpu.cfs_period_us"), &period_us.to_string())?;
    write(&dir.join("cpu.cfs_quota_us"), "-1")
}

/// The current quota (−1: none), to check what a build ran under.
pub fn quota_us(cg: &OwnedCgroup) -> anyhow::Result<i64> {
    let p = cg.paths.cpu.join("cpu.cfs_quota_us");
    let t = fs::read_to_string(&p).with_context(|| format!("read {}", p.display()))?;
    t.trim()
        .parse()
        .with_context(|| format!("{} is not a number: {t:?}", p.display()))
}

/// This thread's id (`/proc/thread-self` → `PID/task/TID`).
fn thread_id() -> anyhow::Result<String> {
    let link = fs::read_link("/proc/thread-self").context("read /proc/thread-self")?;
    link.file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .context("/proc/thread-self has no thread id")
}

/// This thread's cpuset directory (from `/proc/thread-self/cgroup`).
pub fn current_cpuset() -> anyhow::Result<PathBuf> {
    let text =
        fs::read_to_string("/proc/thread-self/cgroup").context("read /proc/thread-self/cgroup")?;
    parse_cpuset_line(&text)
        .map(|rel| Path::new(CPUSET_ROOT).join(rel.trim_start_matches('/')))
        .context("this thread is in no cpuset cgroup (is cgroup v1 cpuset mounted?)")
}

/// The cpuset path in a `/proc/*/cgroup` text (`3:cpuset:/a/b` → `/a/b`).
pub fn parse_cpuset_line(text: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let mut it = l.splitn(3, ':');
        let (_, ctrls, path) = (it.next()?, it.next()?, it.next()?);
        ctrls
            .split(',')
            .any(|c| c == "cpuset")
            .then(|| path.to_string())
    })
}

/// A cpuset cgroup of ours holding `cpus` (removed on drop).
pub struct Cpuset {
    pub dir: PathBuf,
}

impl Cpuset {
    pub fn create(name: &str, cpus: &str) -> anyhow::Result<Cpuset> {
        let root = Path::new(CPUSET_ROOT);
        if !root.join("cpuset.cpus").exists() {
            bail!("cgroup v1 cpuset controller not found at {CPUSET_ROOT}");
        }
        let dir = root.join(name);
        fs::create_dir_all(&dir)
            .with_context(|| format!("mkdir {} (run as root)", dir.display()))?;
        // A v1 cpuset takes no task before it has CPUs and memory nodes.
        let mems = fs::read_to_string(root.join("cpuset.mems")).context("read cpuset.mems")?;
        write(&dir.join("cpuset.mems"), mems.trim())?;
        write(&dir.join("cpuset.cpus"), cpus)?;
        Ok(Cpuset { dir })
    }

    /// Moves the calling thread into this cpuset until the guard is left (or dropped).
    pub fn enter(&self) -> anyhow::Result<CpusetGuard> {
        let tid = thread_id()?;
        let back = current_cpuset()?;
        write(&self.dir.join("tasks"), &tid)?;
        Ok(CpusetGuard {
            tid,
            back,
            left: false,
        })
    }
}

impl Drop for Cpuset {
    fn drop(&mut self) {
        let _ = fs::remove_dir(&self.dir);
    }
}

/// The calling thread, inside a [`Cpuset`]; [`CpusetGuard::leave`] puts it back.
pub struct CpusetGuard {
    tid: String,
    back: PathBuf,
    left: bool,
}

impl CpusetGuard {
    pub fn leave(mut self) -> anyhow::Result<()> {
        self.left = true;
        write(&self.back.join("tasks"), &self.tid)
    }
}

impl Drop for CpusetGuard {
    fn drop(&mut self) {
        if !self.left {
            let _ = fs::write(self.back.join("tasks"), &self.tid);
        }
    }
}

fn pids_in(dir: &Path) -> Vec<String> {
    fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// SIGKILLs every process in our E1 cgroups of harness `pid` (the build in progress) and waits
/// (≤ 10 s) until they are gone. Returns how many processes were killed.
pub fn kill_builds(pid: u32) -> usize {
    let name = name_for(pid);
    let dirs: Vec<PathBuf> = [CPU_ROOT, CPUACCT_ROOT, CPUSET_ROOT]
        .iter()
        .map(|r| Path::new(r).join(&name))
        .collect();
    kill_in(&dirs)
}

fn kill_in(dirs: &[PathBuf]) -> usize {
    let mut killed = 0;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut pids: Vec<String> = dirs.iter().flat_map(|d| pids_in(d)).collect();
        pids.sort();
        pids.dedup();
        // Never ourselves (the harness thread may sit in the cpuset).
        let me = std::process::id().to_string();
        pids.retain(|p| *p != me);
        if pids.is_empty() || Instant::now() > deadline {
            return killed;
        }
        killed += pids.len();
        let _ = Command::new("kill").arg("-KILL").args(&pids).status();
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn alive_harness(pid: &str) -> bool {
    fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "experiments")
}

/// Removes the cgroups of E1 harnesses that are gone (killed, or a session that ended),
/// killing builds still running in them. Fails if another E1 harness is running: two would
/// disturb each other's numbers (and share the build tree). Returns what was cleaned.
pub fn cleanup_stale() -> anyhow::Result<Vec<String>> {
    let me = std::process::id().to_string();
    let mut cleaned = Vec::new();
    let mut stale: Vec<String> = Vec::new();
    for root in [CPU_ROOT, CPUACCT_ROOT, CPUSET_ROOT] {
        let Ok(entries) = fs::read_dir(root) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(pid) = name.strip_prefix(PREFIX) else {
                continue;
            };
            if pid == me {
                continue;
            }
            if alive_harness(pid) {
                bail!(
                    "another E1 is running (pid {pid}, cgroup {}): two would disturb each other; wait for it or stop it",
                    e.path().display()
                );
            }
            if !stale.contains(&name) {
                stale.push(name);
            }
        }
    }
    for name in stale {
        let dirs: Vec<PathBuf> = [CPU_ROOT, CPUACCT_ROOT, CPUSET_ROOT]
            .iter()
            .map(|r| Path::new(r).join(&name))
            .filter(|d| d.exists())
            .collect();
        let killed = kill_in(&dirs);
        for d in &dirs {
            fs::remove_dir(d).with_context(|| format!("rmdir stale cgroup {}", d.display()))?;
        }
        cleaned.push(format!(
            "{name} (a killed E1's cgroup; {killed} leftover build process(es) killed)"
        ));
    }
    Ok(cleaned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_cpuset_line() {
        let t = "9:name=systemd:/\n3:cpuset:/burst-scaler-e1-5\n2:cpu,cpuacct:/x\n0::/\n";
        assert_eq!(parse_cpuset_line(t).as_deref(), Some("/burst-scaler-e1-5"));
        assert_eq!(parse_cpuset_line("1:cpu:/\n0::/\n"), None);
        assert_eq!(name_for(42), "burst-scaler-e1-42");
    }
}
