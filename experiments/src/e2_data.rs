//! E2/E2b's data, pure: the plan (rounds of arms, each round in a seeded random order, stored
//! with the run so that it resumes where it stopped), one summary row per finished arm run
//! (`<slug>-runs.csv`), and the report that pools those rows from any number of results
//! directories into the README's table — medians with bootstrap 95 % intervals — after checking
//! the scenario's preconditions.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::e2::{Arm, Scenario};
use crate::plot::{Chart, Series, line_chart};
use crate::report::{
    CsvTable, Detected, ReportOptions, SuiteReport, SuiteTables, link_from, read_csv,
};
use crate::stats::{SplitMix64, median, median_ci};

/// The columns of `<slug>-runs.csv`: one row per finished arm run.
pub const RUNS_HEADER: &[&str] = &[
    "round",
    "arm",
    "started",
    "sent",
    "errors",
    "p50_ms",
    "p95_ms",
    "p99_ms",
    "worst_window_p99_ms",
    "s_over_slo",
    "web_cpu_wait_s",
    "web_throttled_s",
    "max_web_replicas",
    "web_requested_core_s",
    "compile_s",
    "compile_wall_s",
    "compile_spike_windows",
    "spike_windows",
    "web_cpu_s",
    "compile_cpu_s",
    "first_change_s",
    "first_change",
    "first_replica_ready_s",
    "onset_s",
    "settings",
];

/// The columns of `<slug>-windows.csv` (one row per 5-s window of every arm run).
pub const WINDOWS_HEADER: &[&str] = &[
    "round",
    "arm",
    "t_s",
    "sent",
    "errors",
    "p50_ms",
    "p95_ms",
    "p99_ms",
    "max_ms",
    "web_running",
    "web_pending",
    "web_metrics_m",
    "web_cgroup_m",
    "web_throttled_ms",
    "web_cpu_wait_ms",
    "compile_metrics_m",
    "compile_cgroup_m",
    "web_limit_m",
    "web_shares",
    "compile_limit_m",
    "hpa_desired",
    "hpa_utilization_pct",
];

pub const ACTUATIONS_HEADER: &[&str] = &["round", "arm", "t_s", "pod", "action", "reason"];

pub const PODS_HEADER: &[&str] = &[
    "round",
    "arm",
    "t_s",
    "pod",
    "app",
    "phase",
    "metrics_m",
    "cgroup_m",
    "throttled_ms",
];

/// The plan of one results directory: which arms run in which round, in what order. Made once
/// (seeded) and stored as `<slug>-plan.json`; a resumed run follows it and skips what
/// `<slug>-runs.csv` already holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub scenario: String,
    pub seed: u64,
    pub quick: bool,
    /// Everything that can move a number (see `e2::Options::settings`); pooled runs must agree.
    pub settings: String,
    /// The method paragraph of the report.
    pub description: String,
    /// Arm slugs per round, in the order they run.
    pub rounds: Vec<Vec<String>>,
}

impl Plan {
    /// `rounds` rounds of `arms`, each shuffled with the seed; the floors (references, not
    /// compared arms) run in the first round only.
    pub fn new(
        scenario: Scenario,
        seed: u64,
        rounds: usize,
        arms: &[Arm],
        quick: bool,
        settings: String,
        description: String,
    ) -> Plan {
        let mut rng = SplitMix64::new(seed);
        let rounds = (0..rounds.max(1))
            .map(|r| {
                let mut v: Vec<Arm> = arms
                    .iter()
                    .copied()
                    .filter(|a| r == 0 || !a.is_floor())
                    .collect();
                rng.shuffle(&mut v);
                v.into_iter().map(|a| a.slug().to_string()).collect()
            })
            .collect();
        Plan {
            scenario: scenario.slug().to_string(),
            seed,
            quick,
            settings,
            description,
            rounds,
        }
    }

    pub fn file(slug: &str) -> String {
        format!("{slug}-plan.json")
    }

    /// (round, arm) still to run, in order, given the runs already done.
    pub fn remaining(&self, done: &BTreeSet<(u32, String)>) -> Vec<(u32, Arm)> {
        let mut out = Vec::new();
        for (i, arms) in self.rounds.iter().enumerate() {
            let round = i as u32 + 1;
            for a in arms {
                if let Some(arm) = Arm::parse(a)
                    && !done.contains(&(round, a.clone()))
                {
                    out.push((round, arm));
                }
            }
        }
        out
    }
}

/// One finished arm run, as `<slug>-runs.csv` holds it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunRow {
    pub round: u32,
    pub arm: String,
    pub started: String,
    pub sent: u64,
    pub errors: u64,
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub worst_window_p99_ms: Option<f64>,
    pub s_over_slo: Option<f64>,
    pub web_cpu_wait_s: Option<f64>,
    pub web_throttled_s: Option<f64>,
    pub max_web_replicas: Option<f64>,
    pub web_requested_core_s: Option<f64>,
    pub compile_s: Option<f64>,
    pub compile_wall_s: Option<f64>,
    pub compile_spike_windows: Option<u32>,
    pub spike_windows: Option<u32>,
    pub web_cpu_s: Option<f64>,
    pub compile_cpu_s: Option<f64>,
    /// Plan-clock seconds of the first change of the web's or the compile's cgroup limits or
    /// weight (burst-scaler's actuation; the oracle's write), and what changed.
    pub first_change_s: Option<f64>,
    pub first_change: String,
    /// Plan-clock seconds at which the first web replica added during the run was Ready (HPA).
    pub first_replica_ready_s: Option<f64>,
    /// When the trouble starts on the plan clock: the compile's start (E2, starvation) or the
    /// spike's (E2b, limit-bound).
    pub onset_s: f64,
    pub settings: String,
}

fn num(v: Option<f64>, digits: usize) -> String {
    v.map(|x| format!("{x:.digits$}")).unwrap_or_default()
}

impl RunRow {
    pub fn fields(&self) -> Vec<String> {
        vec![
            self.round.to_string(),
            self.arm.clone(),
            self.started.clone(),
            self.sent.to_string(),
            self.errors.to_string(),
            num(self.p50_ms, 2),
            num(self.p95_ms, 2),
            num(self.p99_ms, 2),
            num(self.worst_window_p99_ms, 2),
            num(self.s_over_slo, 0),
            num(self.web_cpu_wait_s, 2),
            num(self.web_throttled_s, 2),
            num(self.max_web_replicas, 0),
            num(self.web_requested_core_s, 1),
            num(self.compile_s, 2),
            num(self.compile_wall_s, 2),
            self.compile_spike_windows
                .map(|v| v.to_string())
                .unwrap_or_default(),
            self.spike_windows
                .map(|v| v.to_string())
                .unwrap_or_default(),
            num(self.web_cpu_s, 2),
            num(self.compile_cpu_s, 2),
            num(self.first_change_s, 2),
            self.first_change.clone(),
            num(self.first_replica_ready_s, 2),
            num(Some(self.onset_s), 1),
            self.settings.clone(),
        ]
    }

    /// A row of `t` (whose header is [`RUNS_HEADER`]); errors name the column.
    pub fn parse(t: &CsvTable, row: &[String]) -> anyhow::Result<RunRow> {
        let f = |c: &str| -> anyhow::Result<Option<f64>> {
            let v = t.get(row, c);
            if v.is_empty() {
                return Ok(None);
            }
            v.parse::<f64>()
                .map(Some)
                .with_context(|| format!("column {c}: {v:?} is not a number"))
        };
        let int = |c: &str| -> anyhow::Result<Option<u32>> {
            let v = t.get(row, c);
            if v.is_empty() {
                return Ok(None);
            }
            v.parse::<u32>()
                .map(Some)
                .with_context(|| format!("column {c}: {v:?} is not a whole number"))
        };
        let count = |c: &str| -> anyhow::Result<u64> {
            t.get(row, c)
                .parse::<u64>()
                .with_context(|| format!("column {c}: {:?} is not a count", t.get(row, c)))
        };
        Ok(RunRow {
            round: int("round")?.context("column round is empty")?,
            arm: t.get(row, "arm").to_string(),
            started: t.get(row, "started").to_string(),
            sent: count("sent")?,
            errors: count("errors")?,
            p50_ms: f("p50_ms")?,
            p95_ms: f("p95_ms")?,
            p99_ms: f("p99_ms")?,
            worst_window_p99_ms: f("worst_window_p99_ms")?,
            s_over_slo: f("s_over_slo")?,
            web_cpu_wait_s: f("web_cpu_wait_s")?,
            web_throttled_s: f("web_throttled_s")?,
            max_web_replicas: f("max_web_replicas")?,
            web_requested_core_s: f("web_requested_core_s")?,
            compile_s: f("compile_s")?,
            compile_wall_s: f("compile_wall_s")?,
            compile_spike_windows: int("compile_spike_windows")?,
            spike_windows: int("spike_windows")?,
            web_cpu_s: f("web_cpu_s")?,
            compile_cpu_s: f("compile_cpu_s")?,
            first_change_s: f("first_change_s")?,
            first_change: t.get(row, "first_change").to_string(),
            first_replica_ready_s: f("first_replica_ready_s")?,
            onset_s: f("onset_s")?.context("column onset_s is empty")?,
            settings: t.get(row, "settings").to_string(),
        })
    }

    /// The arm's reaction: its first actuation (burst-scaler, oracle) or first added replica
    /// Ready (HPA), seconds after the onset (negative: before it).
    pub fn reaction_s(&self) -> Option<f64> {
        self.first_change_s
            .or(self.first_replica_ready_s)
            .map(|t| t - self.onset_s)
    }
}

/// The finished runs of `dir` (empty when it has none yet), and lines it could not read.
pub fn read_runs(dir: &Path, slug: &str) -> anyhow::Result<(Vec<RunRow>, Vec<String>)> {
    let path = dir.join(format!("{slug}-runs.csv"));
    if !path.exists() {
        return Ok((vec![], vec![]));
    }
    let t = read_csv(&path)?;
    if t.header != RUNS_HEADER {
        anyhow::bail!(
            "{} has other columns: an older format; use a new results directory",
            path.display()
        );
    }
    let mut bad: Vec<String> = t
        .bad_lines
        .iter()
        .map(|(n, raw)| format!("{}:{n}: cut or malformed row {raw:?}", path.display()))
        .collect();
    let mut rows = Vec::new();
    for (i, r) in t.rows.iter().enumerate() {
        match RunRow::parse(&t, r) {
            Ok(row) => rows.push(row),
            Err(e) => bad.push(format!("{}: row {}: {e:#}", path.display(), i + 2)),
        }
    }
    Ok((rows, bad))
}

/// `experiments report` for E2 (starvation) or E2b (limit-bound).
pub struct E2Report(pub Scenario);

pub static E2_REPORT: E2Report = E2Report(Scenario::Starvation);
pub static E2B_REPORT: E2Report = E2Report(Scenario::LimitBound);

impl SuiteReport for E2Report {
    fn key(&self) -> &'static str {
        self.0.slug()
    }

    fn detect(&self, dir: &Path) -> Detected {
        let slug = self.0.slug();
        if dir.join(format!("{slug}-runs.csv")).exists() {
            Detected::Current
        } else if dir.join(format!("{slug}-windows.csv")).exists() {
            Detected::Unusable(format!(
                "{slug} of the one-run format (no {slug}-runs.csv, no rounds): its table is in its summary.md"
            ))
        } else {
            Detected::Absent
        }
    }

    fn report(
        &self,
        dirs: &[PathBuf],
        out: &Path,
        link_base: &Path,
        opts: &ReportOptions,
    ) -> anyhow::Result<SuiteTables> {
        let slug = self.0.slug();
        let mut runs: Vec<(PathBuf, RunRow)> = Vec::new();
        let mut failures = Vec::new();
        let mut plans = Vec::new();
        for d in dirs {
            let (rows, bad) = read_runs(d, slug)?;
            failures.extend(bad);
            runs.extend(rows.into_iter().map(|r| (d.clone(), r)));
            let plan_path = d.join(Plan::file(slug));
            if let Ok(text) = std::fs::read_to_string(&plan_path) {
                let plan: Plan = serde_json::from_str(&text)
                    .with_context(|| format!("parse {}", plan_path.display()))?;
                plans.push(plan);
            }
        }
        let windows = read_windows(dirs, slug)?;
        let quick = plans.iter().any(|p| p.quick);
        let min_runs = opts
            .min_runs
            .unwrap_or(if quick { 1 } else { self.0.min_runs() });
        let rows: Vec<RunRow> = runs.iter().map(|(_, r)| r.clone()).collect();
        // The arms the plans ran (a quick plan runs some only); all of them without a plan.
        let required: Vec<Arm> = if plans.is_empty() {
            Arm::ALL.to_vec()
        } else {
            Arm::ALL
                .into_iter()
                .filter(|a| {
                    plans
                        .iter()
                        .flat_map(|p| p.rounds.iter().flatten())
                        .any(|s| s == a.slug())
                })
                .collect()
        };
        failures.extend(preconditions(self.0, &rows, &required, min_runs));
        let plots = plot(self.0, &rows, &windows, out)?;
        let table = table(&rows);
        let description = plans
            .first()
            .map(|p| p.description.clone())
            .unwrap_or_default();
        let dirs_md: Vec<String> = dirs
            .iter()
            .map(|d| {
                let n = runs.iter().filter(|(p, _)| p == d).count();
                let link = link_from(link_base, d);
                format!(
                    "[`{}`]({}) ({n} runs)",
                    d.file_name().unwrap_or_default().to_string_lossy(),
                    if link.is_empty() { ".".into() } else { link }
                )
            })
            .collect();
        let mut readme = String::new();
        let _ = writeln!(
            readme,
            "Pooled from {}; every cell is the median over the arm's runs with a bootstrap 95 % interval \
             in brackets (with this few runs per arm — the runs column — the interval is close to the runs' range). Reaction: the first change of the \
             web's or the compile's CPU limit or weight on the cgroups (burst-scaler, oracle) or the first added \
             web replica Ready (HPA), seconds after {}.\n",
            dirs_md.join(", "),
            match self.0 {
                Scenario::Starvation => "the compile pod was created (the contention's onset)",
                Scenario::LimitBound => "the spike's first request",
            }
        );
        readme.push_str(&table);
        readme.push('\n');
        for (name, file) in &plots {
            let _ = writeln!(readme, "![{name}]({})\n", link_from(link_base, file));
        }
        let mut section = format!("## {}\n\n{description}\n\n", self.0.title());
        section.push_str(&readme);
        Ok(SuiteTables {
            section,
            readme,
            failures,
        })
    }
}

/// What must hold before the table is believed.
pub fn preconditions(
    scenario: Scenario,
    rows: &[RunRow],
    required: &[Arm],
    min_runs: u32,
) -> Vec<String> {
    let mut out = Vec::new();
    let settings: BTreeSet<&str> = rows.iter().map(|r| r.settings.as_str()).collect();
    if settings.len() > 1 {
        out.push(format!(
            "the pooled runs were made with different settings: {}",
            settings.into_iter().collect::<Vec<_>>().join(" | ")
        ));
    }
    let mut seen = BTreeSet::new();
    for r in rows {
        if !seen.insert((r.round, r.arm.as_str(), r.started.as_str())) {
            out.push(format!(
                "round {} of {} appears twice (started {})",
                r.round, r.arm, r.started
            ));
        }
        match Arm::parse(&r.arm) {
            None => out.push(format!("unknown arm {:?} in round {}", r.arm, r.round)),
            Some(a) if a.has_web() && r.sent == 0 => {
                out.push(format!("{} round {}: no request was sent", r.arm, r.round))
            }
            Some(a) if scenario == Scenario::Starvation && a.has_web() && a.has_compile() => {
                if r.compile_spike_windows.is_none() || r.compile_spike_windows != r.spike_windows {
                    out.push(format!(
                        "{} round {}: the compile ran in {} of {} spike windows (it must run through the whole spike)",
                        r.arm,
                        r.round,
                        r.compile_spike_windows.map_or("?".into(), |v| v.to_string()),
                        r.spike_windows.map_or("?".into(), |v| v.to_string()),
                    ));
                }
            }
            Some(_) => {}
        }
    }
    for &arm in required {
        let n = rows.iter().filter(|r| r.arm == arm.slug()).count() as u32;
        let need = if arm.is_floor() { 1 } else { min_runs };
        if n < need {
            out.push(format!(
                "{}: {n} run(s), the table needs {need}",
                arm.slug()
            ));
        }
    }
    out
}

/// `median [lo–hi]` of a column over rows, or `–`.
fn cell(rows: &[&RunRow], f: impl Fn(&RunRow) -> Option<f64>, digits: usize) -> String {
    let v: Vec<f64> = rows.iter().filter_map(|r| f(r)).collect();
    median_ci(&v).map_or_else(|| "–".to_string(), |e| e.fmt(1.0, digits))
}

/// The pooled table: one row per arm, in [`Arm::ALL`]'s order.
pub fn table(rows: &[RunRow]) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "| arm | runs | s over SLO | p99 ms | worst 5-s p99 ms | errors % | web waited for CPU s (throttled s) | max web replicas | web requested core-s | compile makespan s | compile in spike windows | reaction s | web CPU-s | compile CPU-s |"
    );
    let _ = writeln!(
        t,
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    );
    for arm in Arm::ALL {
        let rs: Vec<&RunRow> = rows.iter().filter(|r| r.arm == arm.slug()).collect();
        if rs.is_empty() {
            continue;
        }
        let web = arm.has_web();
        let w = |s: String| if web { s } else { "–".into() };
        let spike: Vec<String> = rs
            .iter()
            .filter_map(|r| Some(format!("{}/{}", r.compile_spike_windows?, r.spike_windows?)))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let _ = writeln!(
            t,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            arm.slug(),
            rs.len(),
            w(cell(&rs, |r| r.s_over_slo, 0)),
            w(cell(&rs, |r| r.p99_ms, 1)),
            w(cell(&rs, |r| r.worst_window_p99_ms, 1)),
            w(cell(
                &rs,
                |r| (r.sent > 0).then(|| r.errors as f64 * 100.0 / r.sent as f64),
                2
            )),
            w(format!(
                "{} ({})",
                cell(&rs, |r| r.web_cpu_wait_s, 1),
                cell(&rs, |r| r.web_throttled_s, 1)
            )),
            w(cell(&rs, |r| r.max_web_replicas, 0)),
            w(cell(&rs, |r| r.web_requested_core_s, 0)),
            if arm.has_compile() {
                cell(&rs, |r| r.compile_s, 1)
            } else {
                "–".into()
            },
            if web && arm.has_compile() && !spike.is_empty() {
                spike.join(", ")
            } else {
                "–".into()
            },
            cell(&rs, RunRow::reaction_s, 1),
            w(cell(&rs, |r| r.web_cpu_s, 1)),
            if arm.has_compile() {
                cell(&rs, |r| r.compile_cpu_s, 1)
            } else {
                "–".into()
            },
        );
    }
    t
}

/// The windows of every run: (arm, t) → values per run, for the plots.
struct WindowPoint {
    arm: String,
    t: f64,
    p99: Option<f64>,
    error_pct: Option<f64>,
    replicas: Option<f64>,
    compile_m: Option<f64>,
}

fn read_windows(dirs: &[PathBuf], slug: &str) -> anyhow::Result<Vec<WindowPoint>> {
    let mut out = Vec::new();
    for d in dirs {
        let path = d.join(format!("{slug}-windows.csv"));
        if !path.exists() {
            continue;
        }
        let t = read_csv(&path)?;
        if t.header != WINDOWS_HEADER {
            anyhow::bail!("{} has other columns: an older format", path.display());
        }
        for r in &t.rows {
            let f = |c: &str| t.get(r, c).parse::<f64>().ok();
            let sent = f("sent").unwrap_or(0.0);
            out.push(WindowPoint {
                arm: t.get(r, "arm").to_string(),
                t: f("t_s").unwrap_or(0.0),
                p99: f("p99_ms"),
                error_pct: (sent > 0.0).then(|| f("errors").unwrap_or(0.0) * 100.0 / sent),
                replicas: f("web_running").filter(|_| sent > 0.0),
                compile_m: f("compile_cgroup_m"),
            });
        }
    }
    Ok(out)
}

/// Per arm, the median over runs of a window value at each window start.
fn median_series(points: &[WindowPoint], f: impl Fn(&WindowPoint) -> Option<f64>) -> Vec<Series> {
    let mut out = Vec::new();
    for arm in Arm::ALL {
        let mut by_t: BTreeMap<i64, Vec<f64>> = BTreeMap::new();
        for p in points.iter().filter(|p| p.arm == arm.slug()) {
            if let Some(v) = f(p) {
                by_t.entry(p.t.round() as i64).or_default().push(v);
            }
        }
        if by_t.is_empty() {
            continue;
        }
        let pts = by_t
            .into_iter()
            .filter_map(|(t, v)| median(&v).map(|m| (t as f64, m)))
            .collect();
        out.push(Series::new(arm.slug(), pts));
    }
    out
}

/// (file suffix, title, y label, log y, reference line, series).
type ChartSpec<'a> = (
    &'a str,
    String,
    &'a str,
    bool,
    Option<(f64, &'a str)>,
    Vec<Series>,
);

fn plot(
    scenario: Scenario,
    rows: &[RunRow],
    windows: &[WindowPoint],
    out: &Path,
) -> anyhow::Result<Vec<(String, PathBuf)>> {
    let slug = scenario.slug();
    let Some(settings) = rows.first().map(|r| r.settings.clone()) else {
        return Ok(vec![]);
    };
    let spans_owned = scenario_spans(&settings, rows);
    let spans: Vec<(f64, f64, &str)> = spans_owned
        .iter()
        .map(|(a, b, l)| (*a, *b, l.as_str()))
        .collect();
    let up = slug.to_uppercase();
    let mut files = Vec::new();
    let slo = settings_value(&settings, "slo_ms");
    let charts: [ChartSpec; 4] = [
        (
            "p99",
            format!("{up}: web p99 per 5-s window (median over runs; timeouts count as 1 s)"),
            "p99, ms (log)",
            true,
            slo.map(|s| (s, "SLO")),
            median_series(windows, |w| w.p99),
        ),
        (
            "errors",
            format!("{up}: web errors per 5-s window (median over runs)"),
            "errors, % of requests",
            false,
            None,
            median_series(windows, |w| w.error_pct),
        ),
        (
            "replicas",
            format!("{up}: running web replicas (median over runs)"),
            "replicas",
            false,
            None,
            median_series(windows, |w| w.replicas),
        ),
        (
            "compile-cpu",
            format!("{up}: the compile's CPU per 5-s window (median over runs)"),
            "millicores",
            false,
            None,
            median_series(windows, |w| w.compile_m),
        ),
    ];
    for (name, title, y, log, reference, series) in charts {
        let file = out.join(format!("{slug}-{name}.png"));
        line_chart(
            &file,
            &Chart {
                title: &title,
                x_label: "time on the load plan, s",
                y_label: y,
                log_y: log,
                reference,
                spans: &spans,
            },
            &series,
        )?;
        files.push((name.to_string(), file));
    }
    Ok(files)
}

/// `key=value` from the settings string.
fn settings_value(settings: &str, key: &str) -> Option<f64> {
    settings
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
        .and_then(|v| v.parse().ok())
}

/// The spike and the compile's median running period, for shading the plots.
fn scenario_spans(settings: &str, rows: &[RunRow]) -> Vec<(f64, f64, String)> {
    let mut v = Vec::new();
    if let (Some(a), Some(l)) = (
        settings_value(settings, "spike_from_s"),
        settings_value(settings, "spike_len_s"),
    ) {
        v.push((a, a + l, "spike".to_string()));
    }
    if let Some(at) = settings_value(settings, "compile_at_s") {
        let walls: Vec<f64> = rows
            .iter()
            .filter(|r| Arm::parse(&r.arm).is_some_and(|a| a.has_web() && a.has_compile()))
            .filter_map(|r| r.compile_wall_s)
            .collect();
        if let Some(m) = median(&walls) {
            v.push((at, at + m, "compile (median)".to_string()));
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::parse_csv;
    use crate::report::to_csv;

    fn row(round: u32, arm: Arm, over: f64, spike: (u32, u32)) -> RunRow {
        RunRow {
            round,
            arm: arm.slug().into(),
            started: format!("t{round}"),
            sent: if arm.has_web() { 100 } else { 0 },
            s_over_slo: Some(over),
            compile_spike_windows: Some(spike.0),
            spike_windows: Some(spike.1),
            onset_s: 55.0,
            settings: "slo_ms=50".into(),
            ..RunRow::default()
        }
    }

    #[test]
    fn the_plan_shuffles_each_round_keeps_floors_in_the_first_and_resumes() {
        let p = Plan::new(
            Scenario::Starvation,
            7,
            3,
            &Arm::ALL,
            false,
            "s".into(),
            "d".into(),
        );
        assert_eq!(p.rounds.len(), 3);
        assert_eq!(p.rounds[0].len(), Arm::ALL.len());
        for r in &p.rounds[1..] {
            assert_eq!(r.len(), Arm::ALL.iter().filter(|a| !a.is_floor()).count());
            assert!(!r.iter().any(|a| a.starts_with("floor")));
        }
        // Seeded: the same plan again; another seed, another order somewhere.
        let again = Plan::new(
            Scenario::Starvation,
            7,
            3,
            &Arm::ALL,
            false,
            "s".into(),
            "d".into(),
        );
        assert_eq!(p, again);
        let other = Plan::new(
            Scenario::Starvation,
            8,
            3,
            &Arm::ALL,
            false,
            "s".into(),
            "d".into(),
        );
        assert_ne!(p.rounds, other.rounds);
        // Resume: what is done is skipped, the rest keeps its order.
        let all = p.remaining(&BTreeSet::new());
        assert_eq!(all.len(), p.rounds.iter().map(Vec::len).sum::<usize>());
        let done: BTreeSet<(u32, String)> = all[..4]
            .iter()
            .map(|(r, a)| (*r, a.slug().to_string()))
            .collect();
        assert_eq!(p.remaining(&done), all[4..].to_vec());
    }

    #[test]
    fn run_rows_round_trip_through_the_csv() {
        let mut r = row(2, Arm::BurstScaler, 5.0, (4, 4));
        r.p99_ms = Some(158.25);
        r.first_change_s = Some(58.5);
        r.first_change = "web shares 102 → 2048, quota none".into();
        r.settings = "slo_ms=50 profile=full, quoted".into();
        let text = to_csv(RUNS_HEADER, &[r.fields()]);
        let t = parse_csv(&text);
        let back = RunRow::parse(&t, &t.rows[0]).expect("row");
        assert_eq!(back, r);
        assert_eq!(back.reaction_s(), Some(3.5));
    }

    #[test]
    fn a_bad_number_names_its_column() {
        let mut f = row(1, Arm::Hpa, 0.0, (4, 4)).fields();
        f[7] = "fast".into();
        let t = parse_csv(&to_csv(RUNS_HEADER, &[f]));
        let e = RunRow::parse(&t, &t.rows[0]).expect_err("bad number");
        assert!(format!("{e:#}").contains("p99_ms"), "{e:#}");
    }

    #[test]
    fn preconditions_catch_missing_runs_no_overlap_and_mixed_settings() {
        let mut rows = Vec::new();
        for round in 1..=5 {
            for arm in Arm::ALL {
                if arm.is_floor() && round > 1 {
                    continue;
                }
                rows.push(row(round, arm, 0.0, (4, 4)));
            }
        }
        assert!(preconditions(Scenario::Starvation, &rows, &Arm::ALL, 5).is_empty());
        // One run less of an arm.
        let fewer: Vec<RunRow> = rows
            .iter()
            .filter(|r| !(r.arm == "oracle" && r.round == 3))
            .cloned()
            .collect();
        let f = preconditions(Scenario::Starvation, &fewer, &Arm::ALL, 5);
        assert!(f.iter().any(|m| m.contains("oracle: 4 run(s)")), "{f:?}");
        // A compile that ended before the spike does in E2, not in E2b.
        let mut no_overlap = rows.clone();
        no_overlap[2].compile_spike_windows = Some(1);
        let f = preconditions(Scenario::Starvation, &no_overlap, &Arm::ALL, 5);
        assert!(
            f.iter().any(|m| m.contains("1 of 4 spike windows")),
            "{f:?}"
        );
        assert!(preconditions(Scenario::LimitBound, &no_overlap, &Arm::ALL, 5).is_empty());
        // A quick plan that ran burst-scaler only needs only that.
        let one: Vec<RunRow> = rows
            .iter()
            .filter(|r| r.arm == "burst-scaler" && r.round == 1)
            .cloned()
            .collect();
        assert!(preconditions(Scenario::LimitBound, &one, &[Arm::BurstScaler], 1).is_empty());
        // Runs of another configuration are not pooled silently.
        let mut mixed = rows.clone();
        mixed[0].settings = "slo_ms=100".into();
        let f = preconditions(Scenario::Starvation, &mixed, &Arm::ALL, 5);
        assert!(f.iter().any(|m| m.contains("different settings")), "{f:?}");
        // The same run twice.
        let mut dup = rows.clone();
        dup.push(rows[3].clone());
        assert!(!preconditions(Scenario::Starvation, &dup, &Arm::ALL, 5).is_empty());
    }

    #[test]
    fn the_table_has_one_row_per_arm_with_medians() {
        let rows: Vec<RunRow> = (1..=5)
            .map(|i| row(i, Arm::Hpa, f64::from(i) * 5.0, (4, 4)))
            .collect();
        let t = table(&rows);
        let line = t
            .lines()
            .find(|l| l.starts_with("| hpa "))
            .expect("hpa row");
        assert!(line.starts_with("| hpa | 5 | 15 ["), "{line}");
        assert_eq!(t.lines().count(), 3);
    }
}
