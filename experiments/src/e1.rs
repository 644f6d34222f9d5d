//! E1 — throttling efficiency (the lab's Q2). The compile alone on the host, in a cgroup of
//! ours, under each arm of `e1_plan::Arm`: no limit (the baseline, in every round), CFS quotas
//! of 100 / 75 / 50 / 25 % of the node with and without `cpu.cfs_burst_us` (= the quota), one
//! core by cpuset, and `make -j1`. Every round runs every arm once in its own random order
//! (seeded; the plan is written before the first build); efficiency pairs each build with its
//! round's unlimited build: (baseline makespan ÷ share of the node) ÷ makespan.
//!
//! Resumable: each build appends its row to `e1.csv` when it finishes; `--resume DIR` carries
//! on with the plan in DIR (a crash loses at most the build in progress). Disturbed builds
//! (`ExclusionRule`) are repeated at the end of their round, within a budget. The tables come
//! from the CSV through `e1_analysis`, the same code `experiments report` runs.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::{Context, bail};
use clap::ValueEnum;

use crate::cgroup::{OwnedCgroup, quota_us};
use crate::e1_analysis::{self as analysis, COLUMNS, Record, SESSION_COLUMNS, Source};
use crate::e1_cgroup::{self as cg1, Cpuset};
use crate::e1_plan::{Arm, Done, Plan, next_job, nominal_build_s, remaining_secs};
use crate::host;
use crate::report::{Progress, RunDir, append_csv_row, read_csv};
use crate::workload::{Profile, build_on_host, rootfs};

pub const PERIOD_US: u64 = 100_000;

pub struct Options {
    pub quick: bool,
    pub profile: Profile,
    /// Rounds of the main profile (= runs per point before exclusions).
    pub runs: u32,
    /// Extra rounds with the `full` profile (the whole project, ≈ 3 × longer).
    pub full_rounds: u32,
    pub seed: Option<u64>,
    pub cores: u32,
}

impl Options {
    pub fn new(
        quick: bool,
        runs: Option<usize>,
        profile: Option<Profile>,
        full_rounds: Option<u32>,
        seed: Option<u64>,
        cores: u32,
    ) -> Options {
        Options {
            quick,
            profile: profile.unwrap_or(if quick { Profile::Small } else { Profile::Cli }),
            runs: runs.map_or(if quick { 1 } else { 5 }, |r| r as u32),
            full_rounds: full_rounds.unwrap_or(if quick { 0 } else { 1 }),
            seed,
            cores,
        }
    }

    pub fn plan(&self) -> Plan {
        let arms = if self.quick { Arm::quick() } else { Arm::all() };
        let mut rounds = vec![(self.profile.name().to_string(), self.runs)];
        if self.full_rounds > 0 {
            rounds.push(("full".to_string(), self.full_rounds));
        }
        let seed = self.seed.unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_secs())
        });
        Plan::new(seed, self.cores, PERIOD_US, self.quick, &arms, &rounds)
    }
}

/// The plan in words, with how long the builds still to do take (`measured`: full-node
/// makespans measured so far, by profile; nominal ones otherwise).
pub fn describe(plan: &Plan, done: &[Done], measured: &BTreeMap<String, f64>) -> String {
    let mut by_profile: BTreeMap<&str, (u32, usize)> = BTreeMap::new();
    for r in &plan.rounds {
        let e = by_profile.entry(r.profile.as_str()).or_default();
        e.0 += 1;
        e.1 = r.arms.len();
    }
    let rounds: Vec<String> = by_profile
        .iter()
        .map(|(p, (n, arms))| format!("{n} round(s) × {arms} arms of `{p}`"))
        .collect();
    let build_s = |p: &str| {
        measured
            .get(p)
            .copied()
            .unwrap_or_else(|| nominal_build_s(p))
    };
    let left = remaining_secs(plan, done, &build_s);
    let basis: Vec<String> = by_profile
        .keys()
        .map(|p| {
            format!(
                "{p} {:.0} s{}",
                build_s(p),
                if measured.contains_key(*p) {
                    " measured"
                } else {
                    " nominal"
                }
            )
        })
        .collect();
    format!(
        "{}; {} builds planned, {} done; the rest ≈ {:.0} min (full-node build: {}; ÷ share of the node; + {:.0} s each), \
         plus an unmeasured warm-up build per profile and session, plus up to {} repeats of disturbed builds; order seed {}",
        rounds.join(" + "),
        plan.planned_builds(),
        done.len(),
        left / 60.0,
        basis.join(", "),
        crate::e1_plan::OVERHEAD_S,
        plan.repeat_budget,
        plan.seed
    )
}

fn profile_of(name: &str) -> anyhow::Result<Profile> {
    Profile::from_str(name, true).map_err(|e| anyhow::anyhow!("profile {name:?}: {e}"))
}

fn write_plan(dir: &RunDir, plan: &Plan) -> anyhow::Result<()> {
    let tmp = dir.file("e1-plan.json.tmp");
    std::fs::write(&tmp, serde_json::to_string_pretty(plan)? + "\n")
        .with_context(|| format!("write {}", tmp.display()))?;
    std::fs::rename(&tmp, dir.file(analysis::PLAN)).context("rename e1-plan.json")
}

/// The plan of `dir` if it has one (resume), else a new one from `opts`, written.
fn plan_for(dir: &RunDir, opts: &Options, progress: &Progress) -> anyhow::Result<Plan> {
    let path = dir.file(analysis::PLAN);
    if path.exists() {
        let text =
            std::fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))?;
        let plan: Plan = serde_json::from_str(&text).context("parse e1-plan.json")?;
        plan.validate()?;
        if plan.cores != opts.cores {
            bail!(
                "{} was planned for {} cores; this machine has {}",
                path.display(),
                plan.cores,
                opts.cores
            );
        }
        progress.say(format!(
            "e1: resuming the plan in {} (its settings win over this command's)",
            path.display()
        ));
        Ok(plan)
    } else {
        let plan = opts.plan();
        write_plan(dir, &plan)?;
        Ok(plan)
    }
}

fn done_of(plan: &Plan, records: &[Record]) -> Vec<Done> {
    records
        .iter()
        .map(|r| Done {
            round: r.round,
            arm: r.arm,
            disturbed: plan
                .rule
                .disturbed(plan.cores, r.window_s, r.steal_s, r.other_cpu_s)
                .is_some(),
        })
        .collect()
}

/// Whether the E1 plan in `dir` is a `--quick` one (a resumed run keeps its plan's kind).
pub fn plan_is_quick(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join(analysis::PLAN))
        .ok()
        .and_then(|t| serde_json::from_str::<Plan>(&t).ok())
        .is_some_and(|p| p.quick)
}

/// Waits (≤ 5 s) until the cgroup's processes are gone, so that dropping it can remove it: a
/// killed build's children are reaped by init a moment after the build itself.
struct EmptiedOnDrop<'a>(&'a OwnedCgroup);

impl Drop for EmptiedOnDrop<'_> {
    fn drop(&mut self) {
        let procs = self.0.paths.cpu.join("cgroup.procs");
        let deadline = Instant::now() + std::time::Duration::from_secs(5);
        while Instant::now() < deadline
            && std::fs::read_to_string(&procs).is_ok_and(|t| !t.trim().is_empty())
        {
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
}

/// What E1 produced: its summary section and the preconditions that do not hold.
pub struct Outcome {
    pub section: String,
    pub failures: Vec<String>,
}

/// Runs (or resumes) E1 in `dir`; stops before the next build once `stop` is set.
pub fn run(
    repo: &Path,
    dir: &RunDir,
    opts: &Options,
    progress: &Progress,
    stop: &AtomicBool,
    command: &str,
) -> anyhow::Result<Outcome> {
    let plan = plan_for(dir, opts, progress)?;
    let records = if dir.file(analysis::CSV).exists() {
        let s = Source::load(&dir.path)?;
        for w in &s.warnings {
            progress.say(format!("e1: warning: {w}"));
        }
        s.records
    } else {
        Vec::new()
    };
    let mut done = done_of(&plan, &records);
    let mut measured: BTreeMap<String, f64> = BTreeMap::new();
    progress.say(format!("e1 plan: {}", describe(&plan, &done, &measured)));
    progress.say(format!("e1 exclusion rule: {}", plan.rule.describe()));
    if next_job(&plan, &done).is_some() {
        build_all(
            repo,
            dir,
            &plan,
            &mut done,
            &mut measured,
            progress,
            stop,
            command,
        )?;
    } else {
        progress.say("e1: every planned build is done");
    }
    let tables = analysis::tables_for(std::slice::from_ref(&dir.path), &dir.path, &dir.path, None)?;
    Ok(Outcome {
        section: tables.section,
        failures: tables.failures,
    })
}

#[allow(clippy::too_many_arguments)]
fn build_all(
    repo: &Path,
    dir: &RunDir,
    plan: &Plan,
    done: &mut Vec<Done>,
    measured: &mut BTreeMap<String, f64>,
    progress: &Progress,
    stop: &AtomicBool,
    command: &str,
) -> anyhow::Result<()> {
    for c in cg1::cleanup_stale()? {
        progress.say(format!("e1: removed {c}"));
    }
    let root = rootfs(repo)?;
    // This session: everything that can move a number.
    let sessions_path = dir.file(analysis::SESSIONS);
    let session = if sessions_path.exists() {
        let t = read_csv(&sessions_path)?;
        t.rows
            .iter()
            .filter_map(|r| t.get(r, "session").parse::<u32>().ok())
            .max()
            .unwrap_or(0)
            + 1
    } else {
        1
    };
    let toolchain = host::toolchain(&root);
    let tool = |k: &str| {
        toolchain
            .iter()
            .find(|(n, _)| n == k)
            .map_or("unknown".to_string(), |(_, v)| v.clone())
    };
    let session_row: Vec<String> = SESSION_COLUMNS
        .iter()
        .map(|c| match *c {
            "session" => session.to_string(),
            "started" => now(),
            "command" => command.to_string(),
            "kernel" => host::kernel(),
            "commit" => host::commit(repo),
            "cores" => plan.cores.to_string(),
            "cfs_burst_us" => if Path::new(crate::cgroup::CPU_ROOT)
                .join("cpu.cfs_burst_us")
                .exists()
            {
                "yes"
            } else {
                "no"
            }
            .to_string(),
            "load_at_start" => host::loadavg_text(),
            "cluster_at_start" => host::cluster_state(),
            other => tool(other),
        })
        .collect();
    append_csv_row(&sessions_path, &SESSION_COLUMNS, &session_row)?;
    progress.say(format!(
        "e1 session {session}: kernel {}, gcc-12 {}, {}, cluster {}",
        host::kernel(),
        tool("gcc-12"),
        tool("zstd source"),
        host::cluster_state()
    ));

    let name = cg1::name_for(std::process::id());
    let cg = OwnedCgroup::create(&name)?;
    let uses_cpuset = plan
        .rounds
        .iter()
        .any(|r| r.arms.iter().any(|a| a == &Arm::Cpuset1.id()));
    let cpuset = if uses_cpuset {
        Some(Cpuset::create(&name, &plan.cpuset_cpu.to_string())?)
    } else {
        None
    };
    // Dropped first (declared last): the cgroups are empty before they are removed.
    let _emptied = EmptiedOnDrop(&cg);
    let home = cg1::current_cpuset()?;
    let log = dir.file("e1-last-build.log");
    // One unmeasured warm-up build per profile and session (caches, the first build's costs).
    let mut warmed: Vec<String> = Vec::new();
    while let Some(job) = next_job(plan, done) {
        if stop.load(Ordering::SeqCst) {
            bail!("interrupted before the next build");
        }
        if !warmed.contains(&job.profile) {
            progress.say(format!(
                "e1: warm-up build (`{}`, unlimited, not measured)",
                job.profile
            ));
            cg1::set_unlimited(&cg, plan.period_us)?;
            let warm = build_on_host(
                &root,
                profile_of(&job.profile)?,
                plan.cores,
                &cg,
                &dir.file(&format!("e1-warmup-{}.log", job.profile)),
            )?;
            warmed.push(job.profile.clone());
            measured.insert(job.profile.clone(), warm.wall.as_secs_f64());
            progress.say(format!(
                "e1: warm-up {:.1} s; plan: {}",
                warm.wall.as_secs_f64(),
                describe(plan, done, measured)
            ));
            if stop.load(Ordering::SeqCst) {
                bail!("interrupted before the next build");
            }
        }
        let profile = profile_of(&job.profile)?;
        let jobs = job.arm.jobs(plan.cores);
        let (quota, burst) = match job.arm {
            Arm::Quota { pct, burst } => {
                let q = quota_us(f64::from(pct) / 100.0, plan.cores, plan.period_us);
                cg.limit(plan.period_us, q, if burst { q } else { 0 })?;
                (q as i64, if burst { q } else { 0 })
            }
            Arm::Unlimited | Arm::Cpuset1 | Arm::Jobs1 => {
                cg1::set_unlimited(&cg, plan.period_us)?;
                (-1, 0)
            }
        };
        if cg1::quota_us(&cg)? != quota {
            bail!("the cgroup's quota is not the {quota} µs just written");
        }
        if cg1::current_cpuset()? != home {
            bail!("the harness thread is not in its own cpuset any more: refusing to build");
        }
        let probe_ms = host::speed_probe_ms();
        let load_before = host::loadavg().map_or(f64::NAN, |l| l[0]);
        let cluster = host::cluster_state();
        let started = now();
        let before = host::cpu_times();
        let t = Instant::now();
        let (result, left) = match (&cpuset, job.arm) {
            (Some(cs), Arm::Cpuset1) => {
                let guard = cs.enter()?;
                let r = build_on_host(&root, profile, jobs, &cg, &log);
                (r, guard.leave())
            }
            _ => (build_on_host(&root, profile, jobs, &cg, &log), Ok(())),
        };
        left.context("leave the cpuset")?;
        let r = result?;
        let window_s = t.elapsed().as_secs_f64();
        let after = host::cpu_times();
        let load_after = host::loadavg().map_or(f64::NAN, |l| l[0]);
        let cpu_s = r.stat.usage_ns as f64 / 1e9;
        let (steal_s, other_cpu_s) = match (before, after) {
            (Some(b), Some(a)) => (
                a.steal_s - b.steal_s,
                (a.busy_s - b.busy_s - cpu_s).max(0.0),
            ),
            _ => (f64::NAN, f64::NAN),
        };
        let rec = Record {
            session,
            round: job.round,
            profile: job.profile.clone(),
            arm: job.arm,
            repeat: job.repeat,
            node_fraction: job.arm.node_fraction(plan.cores),
            quota_us: quota,
            burst_us: burst,
            cpus: match job.arm {
                Arm::Cpuset1 => plan.cpuset_cpu.to_string(),
                _ => "all".into(),
            },
            jobs,
            wall_s: r.wall.as_secs_f64(),
            cpu_s,
            nr_periods: r.stat.nr_periods,
            nr_throttled: r.stat.nr_throttled,
            throttled_s: r.stat.throttled_ns as f64 / 1e9,
            window_s,
            steal_s,
            other_cpu_s,
            probe_ms,
            load1_before: load_before,
            load1_after: load_after,
            cluster,
            started,
        };
        append_csv_row(&dir.file(analysis::CSV), &COLUMNS, &rec.fields())?;
        let disturbed = plan
            .rule
            .disturbed(plan.cores, window_s, steal_s, other_cpu_s);
        done.push(Done {
            round: job.round,
            arm: job.arm,
            disturbed: disturbed.is_some(),
        });
        if job.arm == Arm::Unlimited {
            measured.insert(job.profile.clone(), rec.wall_s);
        }
        let build_s = |p: &str| {
            measured
                .get(p)
                .copied()
                .unwrap_or_else(|| nominal_build_s(p))
        };
        let mut line = format!(
            "e1 {}/{} round {} {:<15}{}: {:.1} s, {:.1} CPU-s, throttled {}/{} periods; steal {:.1} s, others {:.1} CPU-s",
            done.len(),
            plan.planned_builds() + done.len().saturating_sub(distinct(done)),
            job.round,
            job.arm.id(),
            if job.repeat > 0 {
                format!(" (repeat {})", job.repeat)
            } else {
                String::new()
            },
            rec.wall_s,
            rec.cpu_s,
            rec.nr_throttled,
            rec.nr_periods,
            steal_s,
            other_cpu_s
        );
        if let Some(why) = disturbed {
            let _ = write!(line, " — DISTURBED, will not count: {why}");
        }
        let _ = write!(
            line,
            "; ≈ {} min left",
            (remaining_secs(plan, done, &build_s) / 60.0)
                .round()
                .max(0.0) as u64
        );
        progress.say(line);
    }
    let _ = std::fs::remove_file(&log);
    Ok(())
}

fn distinct(done: &[Done]) -> usize {
    let set: std::collections::BTreeSet<(u32, Arm)> =
        done.iter().map(|d| (d.round, d.arm)).collect();
    set.len()
}

fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}
