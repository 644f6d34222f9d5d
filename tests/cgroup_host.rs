//! `burst_scaler::agent::cgroup` on this host's real cgroups: cgroup v1 `cpu`, `cpuacct` and
//! `cpuset` mounts plus the unified hierarchy at `/sys/fs/cgroup/unified` for PSI.
//!
//! Every test works in scratch cgroups `bsc-test-<pid>-<n>` it creates at the top of each
//! hierarchy and removes in a guard, pass or fail — never under `kubepods`. CPU burners are
//! `sh` busy loops started under `timeout 60`, in their own process group, killed by the guard.
//! The tests that load the CPU hold one lock (2 cores; other suites run afterwards), and their
//! top scratch group gets the largest `cpu.shares` (262144) so that host load (each task in the
//! root group weighs 1024) cannot distort the values asserted on.
//!
//! Run as root: `cargo test --test cgroup_host -- --include-ignored` (`tests/run` does).

use std::fs;
use std::io::Write as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::thread::sleep;
use std::time::{Duration, Instant};

use burst_scaler::agent::cgroup::{
    Applied, Cgroup, CgroupError, Delta, Driver, Hierarchy, Layout, Quota, Setting, apply, delta,
    task_waits, wait_share,
};

const ROOT: &str = "/sys/fs/cgroup";
const PROC: &str = "/proc";

/// Held by every test that runs burners.
static CPU: Mutex<()> = Mutex::new(());
static NEXT: AtomicU32 = AtomicU32::new(0);

fn cpu_lock() -> MutexGuard<'static, ()> {
    CPU.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The host's layout, or `None` (with a note) when this is not root on a cgroup v1 host.
fn host() -> Option<Layout> {
    let uid = fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:").map(|r| r.trim().to_string()))
        })
        .unwrap_or_default();
    if !uid.starts_with("0\t") && uid != "0" && !uid.starts_with("0 ") {
        eprintln!("skipped: needs root (Uid: {uid})");
        return None;
    }
    if !Path::new(ROOT).join("cpu/cpu.cfs_quota_us").is_file() {
        eprintln!("skipped: no cgroup v1 cpu controller at {ROOT}/cpu");
        return None;
    }
    Some(Layout::detect(Path::new(ROOT), Driver::Cgroupfs).expect("detect the host's layout"))
}

/// A busy loop in its own process group, placed in cgroups before it starts spinning.
struct Burner {
    child: Child,
}

impl Burner {
    /// Starts `sh`, waiting on stdin; writes its PID into each `cgroup.procs` given; then lets
    /// it `exec timeout 60 sh -c 'while :; do :; done'` (same PID, so the loop starts inside).
    fn start(procs_files: &[PathBuf]) -> Burner {
        let child = Command::new("sh")
            .arg("-c")
            .arg("read go && exec timeout 60 sh -c 'while :; do :; done'")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("spawn sh");
        let pid = child.id().to_string();
        let mut burner = Burner { child };
        for file in procs_files {
            fs::write(file, &pid)
                .unwrap_or_else(|e| panic!("move {pid} to {}: {e}", file.display()));
        }
        let mut stdin = burner.child.stdin.take().expect("stdin");
        stdin.write_all(b"go\n").expect("start the burner");
        burner
    }
}

impl Drop for Burner {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Scratch cgroups `bsc-test-<pid>-<n>/...` in the cpu, cpuacct and unified hierarchies (and
/// cpuset when pinned), removed on drop after the burners are killed.
struct Scratch {
    layout: Layout,
    top: String,
    dirs: Vec<PathBuf>,
    burners: Vec<Burner>,
    cpuset: Option<PathBuf>,
}

impl Scratch {
    fn new(layout: &Layout) -> Scratch {
        sweep_stale(layout);
        let top = format!(
            "bsc-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let mut s = Scratch {
            layout: layout.clone(),
            top,
            dirs: Vec::new(),
            burners: Vec::new(),
            cpuset: None,
        };
        let top = s.group("");
        fs::write(top.path().join("cpu.shares"), "262144").expect("boost the scratch group");
        s
    }

    fn hierarchies(&self) -> Vec<PathBuf> {
        let mut roots = vec![
            self.layout.cpu_root().to_path_buf(),
            self.layout.cpuacct_root().to_path_buf(),
        ];
        roots.extend(self.layout.unified_root().map(Path::to_path_buf));
        roots.dedup();
        roots
    }

    /// Creates `<top>/<rel>` in every hierarchy.
    fn group(&mut self, rel: &str) -> Cgroup {
        let rel = Path::new(&self.top).join(rel);
        for root in self.hierarchies() {
            let dir = root.join(&rel);
            if !dir.is_dir() {
                fs::create_dir(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
                self.dirs.push(dir);
            }
        }
        Cgroup::at(&self.layout, rel)
    }

    /// Creates the top group in the cpuset hierarchy on the host's last CPU only.
    fn pin_to_last_cpu(&mut self) -> String {
        let root = Path::new(ROOT).join("cpuset");
        let cpus = fs::read_to_string(root.join("cpuset.effective_cpus")).expect("cpuset cpus");
        let last = cpus
            .trim()
            .rsplit([',', '-'])
            .next()
            .expect("a CPU")
            .to_string();
        let mems = fs::read_to_string(root.join("cpuset.effective_mems")).expect("cpuset mems");
        let first_mem = mems
            .trim()
            .split([',', '-'])
            .next()
            .expect("a node")
            .to_string();
        let dir = root.join(&self.top);
        fs::create_dir(&dir).expect("mkdir cpuset group");
        self.dirs.push(dir.clone());
        fs::write(dir.join("cpuset.cpus"), &last).expect("set cpuset.cpus");
        fs::write(dir.join("cpuset.mems"), &first_mem).expect("set cpuset.mems");
        self.cpuset = Some(dir);
        last
    }

    /// Starts a burner inside `group` (in every hierarchy, and the pinned cpuset if any).
    fn burn_in(&mut self, group: &Cgroup) {
        let rel = group.relative();
        let mut files: Vec<PathBuf> = self
            .hierarchies()
            .iter()
            .map(|root| root.join(rel).join("cgroup.procs"))
            .collect();
        files.extend(self.cpuset.as_ref().map(|d| d.join("cgroup.procs")));
        self.burners.push(Burner::start(&files));
    }

    fn stop_burners(&mut self) {
        self.burners.clear();
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        self.burners.clear();
        for dir in self.dirs.iter().rev() {
            remove_cgroup(dir);
        }
    }
}

/// `rmdir`, retried while the killed tasks are still being reaped (`EBUSY`).
fn remove_cgroup(dir: &Path) {
    for _ in 0..150 {
        match fs::remove_dir(dir) {
            Ok(()) => return,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(_) => sleep(Duration::from_millis(20)),
        }
    }
    if let Err(e) = fs::remove_dir(dir) {
        eprintln!("could not remove scratch cgroup {}: {e}", dir.display());
    }
}

/// Removes scratch groups left by an earlier test process that was killed (its PID is gone).
fn sweep_stale(layout: &Layout) {
    let mut roots = vec![
        layout.cpu_root().to_path_buf(),
        layout.cpuacct_root().to_path_buf(),
        Path::new(ROOT).join("cpuset"),
    ];
    roots.extend(layout.unified_root().map(Path::to_path_buf));
    for root in roots {
        let Ok(entries) = fs::read_dir(&root) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            let Some(pid) = name
                .strip_prefix("bsc-test-")
                .and_then(|rest| rest.split('-').next())
            else {
                continue;
            };
            if Path::new(PROC).join(pid).exists() {
                continue;
            }
            let mut dirs = vec![entry.path()];
            let mut i = 0;
            while i < dirs.len() {
                if let Ok(children) = fs::read_dir(&dirs[i]) {
                    dirs.extend(children.flatten().map(|c| c.path()).filter(|p| p.is_dir()));
                }
                i += 1;
            }
            for dir in dirs.iter().rev() {
                let _ = fs::remove_dir(dir);
            }
        }
    }
}

/// Counters and per-thread waits of `group` over `secs` of wall time.
struct Measured {
    delta: Delta,
    wait_share: f64,
}

fn measure(group: &Cgroup, secs: f64) -> Measured {
    let proc_root = Path::new(PROC);
    let w0 = task_waits(group, proc_root).expect("task waits");
    let tw0 = Instant::now();
    let c0 = group.counters().expect("counters");
    let t0 = Instant::now();
    sleep(Duration::from_secs_f64(secs));
    let c1 = group.counters().expect("counters");
    let wall = t0.elapsed();
    let w1 = task_waits(group, proc_root).expect("task waits");
    let wait_wall = tw0.elapsed();
    let delta = delta(&c0, &c1, wall).expect("counters only grow while the group lives");
    let plain = wait_share(w1.total().saturating_sub(w0.total()), wait_wall).unwrap_or(0.0);
    let wait_share = wait_share(w1.wait_since(&w0, wait_wall), wait_wall).expect("non-zero wall");
    eprintln!(
        "{}: {:?} wait_share={wait_share:.3} (plain schedstat sum {plain:.3}) wall={wall:?} \
         throttled {} ms",
        group.relative().display(),
        delta,
        c1.throttled_ns.saturating_sub(c0.throttled_ns) / 1_000_000
    );
    Measured { delta, wait_share }
}

fn settle() {
    sleep(Duration::from_millis(300));
}

#[test]
#[ignore = "needs root and cgroup v1 at /sys/fs/cgroup/cpu (tests/run runs it)"]
fn detects_the_hybrid_host() {
    let Some(layout) = host() else { return };
    assert_eq!(layout.hierarchy(), Hierarchy::V1);
    assert_eq!(layout.cpu_root(), Path::new("/sys/fs/cgroup/cpu"));
    assert_eq!(layout.cpuacct_root(), Path::new("/sys/fs/cgroup/cpuacct"));
    assert_eq!(
        layout.unified_root(),
        Some(Path::new("/sys/fs/cgroup/unified"))
    );
    assert!(layout.has_pressure(), "this kernel has PSI");
}

/// (1) The signal reader: usage with and without a quota, throttling, and pressure (PSI and the
/// schedstat fallback) of a throttled group.
#[test]
#[ignore = "needs root and cgroup v1 at /sys/fs/cgroup/cpu (tests/run runs it)"]
fn reads_usage_and_throttling_of_a_burner() {
    let Some(layout) = host() else { return };
    let _cpu = cpu_lock();
    let mut scratch = Scratch::new(&layout);

    // A burner without a quota: one busy thread uses up to one core. The scratch group's
    // weight (262144) against root-group tasks (1024 each) keeps it above 500m on a busy host.
    let free = scratch.group("free");
    let idle = free.counters().expect("counters of an empty group");
    assert_eq!(idle.usage_ns, 0, "a new group has used nothing");
    scratch.burn_in(&free);
    settle();
    let m = measure(&free, 2.0);
    assert!(
        (500..=1050).contains(&m.delta.usage_millicores),
        "one busy thread: {:?}",
        m.delta
    );
    assert_eq!(m.delta.periods, 0, "no quota, no CFS periods counted");
    assert_eq!(m.delta.throttled_periods, 0);
    scratch.stop_burners();

    // Quota 20 ms per 100 ms: exactly 200m allowed; the busy loop uses up its quota in every
    // period. 3 s ≈ 30 periods; the bounds allow one period of slack at each edge of the
    // interval plus timer slack, and some loss to competitors.
    let capped = scratch.group("capped");
    fs::write(capped.path().join("cpu.cfs_quota_us"), "20000").expect("set the quota");
    let limits = capped.limits().expect("limits");
    assert_eq!(limits.quota_us, Some(20_000));
    assert_eq!(limits.period_us, 100_000);
    scratch.burn_in(&capped);
    settle();
    let m = measure(&capped, 3.0);
    let d = m.delta;
    assert!(
        (150..=230).contains(&d.usage_millicores),
        "quota 20/100 ms: {d:?}"
    );
    assert!(
        (25..=35).contains(&d.periods),
        "3 s of 100 ms periods: {d:?}"
    );
    let share = d.throttled_share().expect("periods elapsed");
    assert!(share >= 0.8, "throttled in (nearly) every period: {d:?}");
    // The burner is runnable all the time and runs ~20 % of it: PSI `some` counts the
    // throttled ~80 % (a throttled task is runnable, not running), and so does run-queue wait.
    let pressure = d.pressure.expect("PSI from the unified hierarchy");
    assert!(
        pressure >= 0.5,
        "throttling shows as CPU pressure: {pressure:.3}"
    );
    assert!(
        m.wait_share >= 0.5,
        "throttling shows as run-queue wait: {:.3}",
        m.wait_share
    );
}

/// (1) Pressure rises when a burner is starved: the victim (shares 2) and three burners (shares
/// 1024) pinned to one CPU, against the victim alone on that CPU.
#[test]
#[ignore = "needs root and cgroup v1 at /sys/fs/cgroup/cpu (tests/run runs it)"]
fn pressure_rises_when_a_burner_is_starved() {
    let Some(layout) = host() else { return };
    let _cpu = cpu_lock();
    let mut scratch = Scratch::new(&layout);
    let cpu = scratch.pin_to_last_cpu();
    let victim = scratch.group("victim");
    let hogs = scratch.group("hogs");
    fs::write(victim.path().join("cpu.shares"), "2").expect("victim shares");
    fs::write(hogs.path().join("cpu.shares"), "1024").expect("hog shares");

    // Alone on CPU `cpu`, in the boosted scratch group: it runs nearly all the time.
    scratch.burn_in(&victim);
    settle();
    let alone = measure(&victim, 2.0);

    // Three hogs with 512× its weight: it gets ~2/1026 of the CPU and waits the rest.
    for _ in 0..3 {
        scratch.burn_in(&hogs);
    }
    settle();
    let starved = measure(&victim, 2.0);
    let hogs_used = measure(&hogs, 1.0);

    eprintln!(
        "CPU {cpu}: victim alone {:?} wait {:.3}; starved {:?} wait {:.3}; hogs {:?}",
        alone.delta, alone.wait_share, starved.delta, starved.wait_share, hogs_used.delta
    );
    assert!(
        alone.delta.usage_millicores >= 500,
        "alone it runs: {:?}",
        alone.delta
    );
    assert!(
        starved.delta.usage_millicores <= 100,
        "starved it barely runs: {:?}",
        starved.delta
    );
    let p_alone = alone.delta.pressure.expect("PSI");
    let p_starved = starved.delta.pressure.expect("PSI");
    assert!(p_alone <= 0.3, "alone: little pressure, {p_alone:.3}");
    assert!(
        p_starved >= 0.8,
        "starved: waiting nearly always, {p_starved:.3}"
    );
    assert!(p_starved - p_alone >= 0.5, "{p_alone:.3} → {p_starved:.3}");
    assert!(
        alone.wait_share <= 0.3,
        "alone: little wait, {:.3}",
        alone.wait_share
    );
    assert!(
        starved.wait_share >= 0.8,
        "starved: waiting nearly always, {:.3}",
        starved.wait_share
    );
    // One thread: the schedstat fallback and PSI `some` measure the same thing.
    assert!(
        (starved.wait_share - p_starved).abs() <= 0.15,
        "one thread: wait {:.3} ≈ PSI {p_starved:.3}",
        starved.wait_share
    );
}

fn quota(us: u64) -> Setting {
    Setting {
        quota_us: Some(Quota::Limited(us)),
        ..Setting::default()
    }
}

fn raw(group: &Cgroup, file: &str) -> String {
    fs::read_to_string(group.path().join(file))
        .unwrap_or_else(|e| panic!("read {}/{file}: {e}", group.path().display()))
        .trim()
        .to_string()
}

fn set(group: &Cgroup, file: &str, value: &str) {
    fs::write(group.path().join(file), value)
        .unwrap_or_else(|e| panic!("write {value} to {}/{file}: {e}", group.path().display()));
}

fn quota_of(group: &Cgroup) -> Option<u64> {
    group.limits().expect("limits").quota_us
}

fn written_files(applied: &Applied) -> Vec<(PathBuf, String)> {
    applied
        .written
        .iter()
        .map(|w| (w.file.clone(), w.after.clone()))
        .collect()
}

/// A pod-level group with containers as the kubelet sets them up (pod first, then children).
fn pod_with_containers(scratch: &mut Scratch, containers: &[(&str, &str, &str)]) -> Cgroup {
    let pod = scratch.group("pod");
    let total: i64 = containers
        .iter()
        .map(|(_, q, _)| q.parse::<i64>().expect("quota").max(0))
        .sum();
    set(&pod, "cpu.cfs_quota_us", &total.to_string());
    for (name, q, shares) in containers {
        let c = scratch.group(&format!("pod/{name}"));
        set(&c, "cpu.cfs_quota_us", q);
        set(&c, "cpu.shares", shares);
    }
    pod
}

/// (2) The writer: the kernel's ordering rule, `apply` in the right order both ways with
/// read-back, and a failure that stops, reports the file, and keeps what was written.
#[test]
#[ignore = "needs root and cgroup v1 at /sys/fs/cgroup/cpu (tests/run runs it)"]
fn apply_writes_in_the_order_the_kernel_accepts() {
    let Some(layout) = host() else { return };
    let mut scratch = Scratch::new(&layout);
    let pod = pod_with_containers(
        &mut scratch,
        &[
            ("c1", "20000", "102"),
            ("c2", "30000", "410"),
            ("c3", "10000", "102"),
        ],
    );
    let (c1, c2, c3) = (pod.child("c1"), pod.child("c2"), pod.child("c3"));
    assert_eq!(raw(&pod, "cpu.cfs_quota_us"), "60000");

    // The kernel rule (v1): a child above its parent, or a parent below a child → EINVAL.
    let e = fs::write(c1.quota_file(), "80000").expect_err("child above parent");
    assert_eq!(e.raw_os_error(), Some(22), "EINVAL: {e}");
    let e = fs::write(pod.quota_file(), "10000").expect_err("parent below child");
    assert_eq!(e.raw_os_error(), Some(22), "EINVAL: {e}");
    // Unlimited children under a limited parent are fine (they inherit the parent's limit).
    set(&c3, "cpu.cfs_quota_us", "-1");
    set(&c3, "cpu.cfs_quota_us", "10000");
    assert_eq!(quota_of(&c1), Some(20_000));
    assert_eq!(quota_of(&pod), Some(60_000));

    // `apply` with only the container raised (the pod left as is) runs into the same rule: the
    // error names the file and errno, and nothing was written.
    let e = apply(&pod, &Setting::default(), &[(&c1, quota(80_000))]).expect_err("EINVAL");
    let text = e.to_string();
    eprintln!("{text}");
    assert!(
        text.starts_with(&format!("write 80000 to {}: ", c1.quota_file().display())),
        "{text}"
    );
    assert!(text.contains("Invalid argument (EINVAL)"), "{text}");
    assert!(text.contains("nothing had been written"), "{text}");
    assert_eq!(e.errno(), Some(22));
    assert!(e.written().is_empty());

    // Grow: the pod level first, then the containers; every file read back.
    let grown = apply(
        &pod,
        &quota(150_000),
        &[(&c1, quota(80_000)), (&c2, quota(60_000))],
    )
    .expect("grow");
    assert_eq!(
        written_files(&grown),
        [
            (pod.quota_file(), "150000".to_string()),
            (c1.quota_file(), "80000".to_string()),
            (c2.quota_file(), "60000".to_string()),
        ]
    );
    assert_eq!(grown.written[0].before, "60000");
    assert_eq!(
        (quota_of(&pod), quota_of(&c1), quota_of(&c2)),
        (Some(150_000), Some(80_000), Some(60_000))
    );

    // Shrink: the containers first, the pod level last.
    let shrunk = apply(
        &pod,
        &Setting {
            quota_us: Some(Quota::Limited(30_000)),
            shares: Some(307),
            weight: None,
        },
        &[(&c1, quota(10_000)), (&c2, quota(20_000))],
    )
    .expect("shrink");
    assert_eq!(
        written_files(&shrunk),
        [
            (c1.quota_file(), "10000".to_string()),
            (c2.quota_file(), "20000".to_string()),
            (pod.quota_file(), "30000".to_string()),
            (pod.shares_file(), "307".to_string()),
        ]
    );
    assert_eq!(
        (quota_of(&pod), quota_of(&c1), quota_of(&c2)),
        (Some(30_000), Some(10_000), Some(20_000))
    );

    // A failure half-way: the pod grows to 60 ms, c1 to 50 ms, c2 asks for 70 ms (> the pod's
    // 60 ms: EINVAL). The pod and c1 keep their new values (reported, not rolled back), c2 and
    // c3 are untouched.
    let e = apply(
        &pod,
        &quota(60_000),
        &[
            (&c1, quota(50_000)),
            (&c2, quota(70_000)),
            (&c3, quota(5_000)),
        ],
    )
    .expect_err("c2 above the pod");
    let text = e.to_string();
    eprintln!("{text}");
    assert!(
        text.starts_with(&format!("write 70000 to {}: ", c2.quota_file().display())),
        "{text}"
    );
    assert!(text.contains("(EINVAL)"), "{text}");
    let in_force: Vec<(PathBuf, String)> = e
        .written()
        .iter()
        .map(|w| (w.file.clone(), w.after.clone()))
        .collect();
    assert_eq!(
        in_force,
        [
            (pod.quota_file(), "60000".to_string()),
            (c1.quota_file(), "50000".to_string()),
        ]
    );
    assert_eq!(
        (quota_of(&pod), quota_of(&c1), quota_of(&c2), quota_of(&c3)),
        (Some(60_000), Some(50_000), Some(20_000), Some(10_000))
    );

    // A removed container cgroup: found while reading the current values, before any write.
    fs::remove_dir(c3.path()).expect("rmdir c3 (no tasks)");
    let e = apply(
        &pod,
        &quota(90_000),
        &[(&c1, quota(40_000)), (&c3, quota(30_000))],
    )
    .expect_err("c3 gone");
    let text = e.to_string();
    eprintln!("{text}");
    assert!(e.is_gone(), "{text}");
    assert!(
        text.contains(&c3.quota_file().display().to_string()),
        "{text}"
    );
    assert!(e.written().is_empty());
    assert_eq!(
        (quota_of(&pod), quota_of(&c1)),
        (Some(60_000), Some(50_000))
    );

    // Why shares are validated before writing: the kernel clamps silently (1 → 2).
    set(&c1, "cpu.shares", "1");
    assert_eq!(raw(&c1, "cpu.shares"), "2");
    let e = apply(
        &pod,
        &Setting::default(),
        &[(
            &c1,
            Setting {
                shares: Some(1),
                ..Setting::default()
            },
        )],
    )
    .expect_err("refused");
    assert!(e.to_string().contains("refusing to write 1"), "{e}");
}

/// (3) Restore: throttle a pod (pod level, containers, the pause container), then apply the
/// settings read before; every file holds exactly its original text again.
#[test]
#[ignore = "needs root and cgroup v1 at /sys/fs/cgroup/cpu (tests/run runs it)"]
fn restore_puts_back_the_exact_files() {
    let Some(layout) = host() else { return };
    let mut scratch = Scratch::new(&layout);
    // As the kubelet: limits 500m + 200m, requests 500m + 100m, pause unlimited with 2 shares.
    let pod = pod_with_containers(
        &mut scratch,
        &[
            ("app", "50000", "512"),
            ("side", "20000", "102"),
            ("pause", "-1", "2"),
        ],
    );
    set(&pod, "cpu.shares", "614");
    let groups = [
        pod.clone(),
        pod.child("app"),
        pod.child("side"),
        pod.child("pause"),
    ];
    let files = ["cpu.cfs_quota_us", "cpu.cfs_period_us", "cpu.shares"];
    let snapshot = || -> Vec<String> {
        groups
            .iter()
            .flat_map(|g| {
                files
                    .iter()
                    .map(move |f| format!("{}/{f}={}", g.relative().display(), raw(g, f)))
            })
            .collect()
    };
    let original_files = snapshot();
    let original: Vec<Setting> = groups
        .iter()
        .map(|g| Setting::from_limits(&g.limits().expect("limits")))
        .collect();
    assert_eq!(original[3].quota_us, Some(Quota::Unlimited));

    // Throttle: pod to 300m, app to 200m with fewer shares, side to 100m, pause capped.
    let throttled = apply(
        &pod,
        &quota(30_000),
        &[
            (
                &groups[1],
                Setting {
                    quota_us: Some(Quota::Limited(20_000)),
                    shares: Some(256),
                    weight: None,
                },
            ),
            (&groups[2], quota(10_000)),
            (&groups[3], quota(1_000)),
        ],
    )
    .expect("throttle");
    assert_eq!(throttled.written.len(), 5);
    assert_ne!(snapshot(), original_files);

    // Restore: the pod level grows back first, then the containers.
    let restored = apply(
        &pod,
        &original[0],
        &[
            (&groups[1], original[1]),
            (&groups[2], original[2]),
            (&groups[3], original[3]),
        ],
    )
    .expect("restore");
    assert_eq!(restored.written[0].file, pod.quota_file());
    assert_eq!(snapshot(), original_files);
    // Restoring again changes nothing.
    let again = apply(
        &pod,
        &original[0],
        &[(&groups[1], original[1]), (&groups[3], original[3])],
    )
    .expect("no-op");
    assert!(again.written.is_empty(), "{:?}", again.written);
}

/// Errors on the real host name the file and the errno.
#[test]
#[ignore = "needs root and cgroup v1 at /sys/fs/cgroup/cpu (tests/run runs it)"]
fn reading_a_removed_group_is_a_gone_error() {
    let Some(layout) = host() else { return };
    let mut scratch = Scratch::new(&layout);
    let g = scratch.group("short-lived");
    assert!(g.exists());
    let before = g.counters().expect("counters");
    assert_eq!(
        before.pressure_some_us,
        Some(0),
        "a new group has no pressure yet"
    );
    for root in scratch.hierarchies() {
        fs::remove_dir(root.join(g.relative())).expect("rmdir");
    }
    assert!(!g.exists());
    let e: CgroupError = g.counters().expect_err("gone");
    assert!(e.is_gone(), "{e}");
    assert!(
        e.to_string().contains(&g.path().display().to_string()),
        "{e}"
    );
    let e = g.limits().expect_err("gone");
    assert!(e.is_gone(), "{e}");
}
