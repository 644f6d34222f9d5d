//! E1 — throttling efficiency. The compile alone on the host, in a cgroup of ours, at CPU quotas
//! of 100 / 75 / 50 / 25 % of the node, with and without `cpu.cfs_burst_us` (= the quota, the
//! most the kernel allows). Rounds interleave the points so slow drift spreads over all of them.
//! Efficiency = (full-node time ÷ quota fraction) ÷ measured time.

use std::fmt::Write as _;
use std::path::Path;

use crate::cgroup::{OwnedCgroup, quota_us};
use crate::plot::{Chart, Series, line_chart};
use crate::report::{Progress, RunDir};
use crate::stats::{Spread, efficiency};
use crate::workload::{Profile, build_on_host, rootfs};

pub const PERIOD_US: u64 = 100_000;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Point {
    pub fraction: f64,
    pub burst: bool,
}

pub struct Options {
    pub profile: Profile,
    pub runs: usize,
    pub points: Vec<Point>,
    pub cores: u32,
    pub jobs: u32,
}

impl Options {
    pub fn new(quick: bool, runs: Option<usize>, profile: Option<Profile>, cores: u32) -> Options {
        let p = |fraction, burst| Point { fraction, burst };
        let points = if quick {
            vec![p(1.0, false), p(0.5, false), p(0.5, true)]
        } else {
            // Burst is meaningless at 100 % (nothing unused to accumulate): measured once.
            vec![
                p(1.0, false),
                p(0.75, false),
                p(0.75, true),
                p(0.5, false),
                p(0.5, true),
                p(0.25, false),
                p(0.25, true),
            ]
        };
        Options {
            profile: profile.unwrap_or(if quick { Profile::Small } else { Profile::Cli }),
            runs: runs.unwrap_or(if quick { 1 } else { 3 }),
            points,
            cores,
            jobs: cores,
        }
    }
}

pub struct Row {
    pub point: Point,
    pub run: usize,
    pub wall_s: f64,
    pub cpu_s: f64,
    pub nr_periods: u64,
    pub nr_throttled: u64,
    pub throttled_s: f64,
    /// The machine's single-thread speed just before the build (ms for a fixed loop, best of
    /// 5): a VM's speed moves with its neighbours, and this shows by how much.
    pub probe_ms: f64,
    /// CPU time the hypervisor took from this VM during the build (/proc/stat steal), s.
    pub steal_s: f64,
}

/// Milliseconds for 2 million iterations of the web service's work loop, best of 5.
fn speed_probe_ms() -> f64 {
    (0..5)
        .map(|_| {
            let t = std::time::Instant::now();
            crate::serve::burn(2_000_000);
            t.elapsed().as_secs_f64() * 1000.0
        })
        .fold(f64::INFINITY, f64::min)
}

/// Steal time of all CPUs so far (USER_HZ = 100 ticks/s on Linux), seconds.
fn steal_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let ticks: f64 = stat
        .lines()
        .next()?
        .split_whitespace()
        .nth(8)?
        .parse()
        .ok()?;
    Some(ticks / 100.0)
}

/// Runs E1; returns the summary section (Markdown) and the README table.
pub fn run(
    repo: &Path,
    dir: &RunDir,
    opts: &Options,
    progress: &Progress,
) -> anyhow::Result<(String, String)> {
    let root = rootfs(repo)?;
    let cg = OwnedCgroup::create(&format!("burst-scaler-e1-{}", std::process::id()))?;
    progress.say(format!(
        "e1: warm-up build ({}, not measured)",
        opts.profile.name()
    ));
    cg.limit(PERIOD_US, quota_us(1.0, opts.cores, PERIOD_US), 0)?;
    build_on_host(
        &root,
        opts.profile,
        opts.jobs,
        &cg,
        &dir.file("e1-warmup.log"),
    )?;
    let mut rows = Vec::new();
    let total = opts.runs * opts.points.len();
    for run in 1..=opts.runs {
        for point in &opts.points {
            let quota = quota_us(point.fraction, opts.cores, PERIOD_US);
            cg.limit(PERIOD_US, quota, if point.burst { quota } else { 0 })?;
            let log = dir.file("e1-last-build.log");
            let probe_ms = speed_probe_ms();
            let steal_before = steal_seconds();
            let r = build_on_host(&root, opts.profile, opts.jobs, &cg, &log)?;
            let steal_s = match (steal_before, steal_seconds()) {
                (Some(a), Some(b)) => b - a,
                _ => f64::NAN,
            };
            let row = Row {
                point: *point,
                run,
                wall_s: r.wall.as_secs_f64(),
                cpu_s: r.stat.usage_ns as f64 / 1e9,
                nr_periods: r.stat.nr_periods,
                nr_throttled: r.stat.nr_throttled,
                throttled_s: r.stat.throttled_ns as f64 / 1e9,
                probe_ms,
                steal_s,
            };
            progress.say(format!(
                "e1 {}/{total}: quota {:>3.0} % burst {:<3} run {run}: {:.1} s, {:.1} CPU-s, throttled {} of {} periods",
                rows.len() + 1,
                point.fraction * 100.0,
                if point.burst { "on" } else { "off" },
                row.wall_s,
                row.cpu_s,
                row.nr_throttled,
                row.nr_periods
            ));
            rows.push(row);
        }
    }
    let _ = std::fs::remove_file(dir.file("e1-last-build.log"));
    drop(cg);
    report(dir, opts, &rows)
}

struct Summary {
    point: Point,
    wall: Spread,
    cpu: Spread,
    eff: Spread,
    /// CPU-seconds relative to the same round's full-node build.
    cpu_ratio: Spread,
    quota_use: Spread,
    throttled_pct: Spread,
    throttled_s: Spread,
}

fn summarize(opts: &Options, rows: &[Row]) -> (f64, Vec<Summary>) {
    let full: Vec<f64> = rows
        .iter()
        .filter(|r| r.point.fraction == 1.0 && !r.point.burst)
        .map(|r| r.wall_s)
        .collect();
    let full_node = Spread::of(&full).map_or(f64::NAN, |s| s.median);
    let full_rows = || {
        rows.iter()
            .filter(|r| r.point.fraction == 1.0 && !r.point.burst)
    };
    let full_by_round: std::collections::BTreeMap<usize, f64> =
        full_rows().map(|r| (r.run, r.wall_s)).collect();
    let full_cpu_by_round: std::collections::BTreeMap<usize, f64> =
        full_rows().map(|r| (r.run, r.cpu_s)).collect();
    let out = opts
        .points
        .iter()
        .filter_map(|p| {
            let rs: Vec<&Row> = rows.iter().filter(|r| r.point == *p).collect();
            let col = |f: &dyn Fn(&Row) -> f64| rs.iter().map(|r| f(r)).collect::<Vec<f64>>();
            Some(Summary {
                point: *p,
                wall: Spread::of(&col(&|r| r.wall_s))?,
                cpu: Spread::of(&col(&|r| r.cpu_s))?,
                // Paired: each run against the full-node run of its own round (rounds interleave
                // the points, so the machine's drift cancels out).
                eff: Spread::of(&col(&|r| {
                    efficiency(
                        full_by_round.get(&r.run).copied().unwrap_or(full_node),
                        p.fraction,
                        r.wall_s,
                    )
                }))?,
                cpu_ratio: Spread::of(&col(&|r| {
                    r.cpu_s / full_cpu_by_round.get(&r.run).copied().unwrap_or(f64::NAN)
                }))?,
                quota_use: Spread::of(&col(&|r| {
                    r.cpu_s / (p.fraction * f64::from(opts.cores) * r.wall_s)
                }))?,
                throttled_s: Spread::of(&col(&|r| r.throttled_s))?,
                throttled_pct: Spread::of(&col(&|r| {
                    if r.nr_periods == 0 {
                        0.0
                    } else {
                        r.nr_throttled as f64 / r.nr_periods as f64 * 100.0
                    }
                }))?,
            })
        })
        .collect();
    (full_node, out)
}

fn report(dir: &RunDir, opts: &Options, rows: &[Row]) -> anyhow::Result<(String, String)> {
    let csv: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                format!("{:.2}", r.point.fraction),
                r.point.burst.to_string(),
                r.run.to_string(),
                format!("{:.3}", r.wall_s),
                format!("{:.3}", r.cpu_s),
                r.nr_periods.to_string(),
                r.nr_throttled.to_string(),
                format!("{:.3}", r.throttled_s),
                format!("{:.2}", r.probe_ms),
                format!("{:.2}", r.steal_s),
            ]
        })
        .collect();
    dir.csv(
        "e1.csv",
        &[
            "quota_fraction",
            "burst",
            "run",
            "wall_s",
            "cpu_s",
            "nr_periods",
            "nr_throttled",
            "throttled_s",
            "probe_ms",
            "steal_s",
        ],
        &csv,
    )?;
    let (full_node, sums) = summarize(opts, rows);
    let mut table = String::new();
    let _ = writeln!(
        table,
        "| quota (of {} CPUs) | cfs_burst | makespan s, median (min–max) | CPU-s, median (min–max) | CPU-s ÷ full-node CPU-s | efficiency, median (min–max) | quota used | periods throttled | throttled s |",
        opts.cores
    );
    let _ = writeln!(table, "|---|---|---|---|---|---|---|---|---|");
    for s in &sums {
        let _ = writeln!(
            table,
            "| {:.0} % | {} | {:.1} ({:.1}–{:.1}) | {:.1} ({:.1}–{:.1}) | {:.2} | **{:.0} %** ({:.0}–{:.0} %) | {:.0} % | {:.0} % | {:.1} |",
            s.point.fraction * 100.0,
            if s.point.burst { "= quota" } else { "off" },
            s.wall.median,
            s.wall.min,
            s.wall.max,
            s.cpu.median,
            s.cpu.min,
            s.cpu.max,
            s.cpu_ratio.median,
            s.eff.median * 100.0,
            s.eff.min * 100.0,
            s.eff.max * 100.0,
            s.quota_use.median * 100.0,
            s.throttled_pct.median,
            s.throttled_s.median,
        );
    }
    let noise = sums.iter().map(|s| s.wall.noise_pct()).fold(0.0, f64::max);
    let probe = Spread::of(&rows.iter().map(|r| r.probe_ms).collect::<Vec<_>>());
    let mut md = String::new();
    let _ = writeln!(md, "## E1 — throttling efficiency\n");
    let _ = writeln!(
        md,
        "Compile: zstd `{}` (profile `{}`) in a chroot of the compile image's root filesystem, \
         in a host cgroup v1 with `cpu.cfs_period_us` = {PERIOD_US}; {} run(s) per point, rounds interleaved. \
         Full-node makespan (100 %, median): **{full_node:.1} s**. Largest run-to-run spread (half range ÷ median): {noise:.1} %.\n",
        opts.profile.make_command(opts.jobs),
        opts.profile.name(),
        opts.runs
    );
    md.push_str(&table);
    let _ = writeln!(
        md,
        "\nEfficiency = (full-node makespan ÷ quota fraction) ÷ makespan, each run against the full-node run of its own \
         round: 100 % means the compile lost exactly the CPU taken away and nothing more. \"Quota used\" = CPU-seconds ÷ \
         (quota × makespan). Machine speed before each build (a fixed single-thread loop, best of 5): {:.1}–{:.1} ms \
         ({:.0} % range); steal time during all builds: {:.1} s.\n\n![efficiency](e1-efficiency.png)\n",
        probe.map_or(f64::NAN, |p| p.min),
        probe.map_or(f64::NAN, |p| p.max),
        probe.map_or(f64::NAN, |p| (p.max - p.min) / p.min * 100.0),
        rows.iter()
            .map(|r| r.steal_s)
            .filter(|s| s.is_finite())
            .sum::<f64>(),
    );
    let series = |burst: bool| {
        let pts: Vec<&Summary> = sums
            .iter()
            .filter(|s| s.point.burst == burst || s.point.fraction == 1.0)
            .collect();
        let mut s = Series::new(
            if burst {
                "cfs_burst_us = quota"
            } else {
                "no burst"
            },
            pts.iter()
                .map(|s| (s.point.fraction * 100.0, s.eff.median * 100.0))
                .collect(),
        );
        s.bars = pts
            .iter()
            .map(|s| {
                (
                    s.point.fraction * 100.0,
                    s.eff.min * 100.0,
                    s.eff.max * 100.0,
                )
            })
            .collect();
        s
    };
    line_chart(
        &dir.file("e1-efficiency.png"),
        &Chart {
            title: "E1: compile efficiency under a CPU quota (median, min–max)",
            x_label: "quota, % of the node",
            y_label: "efficiency, %",
            log_y: false,
            reference: Some((90.0, "90 % goal")),
        },
        &[series(false), series(true)],
    )?;
    Ok((md, table))
}
