//! E1's tables from data, pure apart from reading files and drawing the plot: the CSV format,
//! the exclusion of disturbed builds, pooling runs over rounds and results directories,
//! efficiency against each round's unlimited baseline, bootstrap intervals, the paired
//! comparisons, the verdict on the lab's question Q2, and the scenario's preconditions.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use crate::e1_plan::{Arm, ExclusionRule, Plan};
use crate::plot::{Chart, Series, line_chart};
use crate::report::{
    CsvTable, Detected, ReportOptions, SuiteReport, SuiteTables, link_from, parse_csv,
};
use crate::stats::{BOOTSTRAP_RESAMPLES, Estimate, efficiency, median, median_ci};

pub const CSV: &str = "e1.csv";
pub const PLAN: &str = "e1-plan.json";
pub const SESSIONS: &str = "e1-sessions.csv";
pub const PLOT: &str = "e1-efficiency.png";

/// `e1.csv`: one row per finished build, appended as soon as it finishes.
pub const COLUMNS: [&str; 23] = [
    "session",
    "round",
    "profile",
    "arm",
    "repeat",
    "node_fraction",
    "quota_us",
    "burst_us",
    "cpus",
    "jobs",
    "wall_s",
    "cpu_s",
    "nr_periods",
    "nr_throttled",
    "throttled_s",
    "window_s",
    "steal_s",
    "other_cpu_s",
    "probe_ms",
    "load1_before",
    "load1_after",
    "cluster",
    "started",
];

/// `e1-sessions.csv`: one row per start of the harness on a results directory.
pub const SESSION_COLUMNS: [&str; 15] = [
    "session",
    "started",
    "command",
    "kernel",
    "commit",
    "gcc-12",
    "binutils",
    "make",
    "libc6",
    "dash",
    "zstd source",
    "cores",
    "cfs_burst_us",
    "load_at_start",
    "cluster_at_start",
];

/// Session fields that must agree over everything pooled (they move the numbers).
const MUST_AGREE: [&str; 8] = [
    "kernel",
    "gcc-12",
    "binutils",
    "make",
    "libc6",
    "zstd source",
    "cores",
    "cfs_burst_us",
];

/// Runs per point after exclusions a profile's table needs (`--min-runs` overrides it for
/// the main profile, `cli` or `small`; `full` runs once per point).
pub fn default_min_runs(profile: &str) -> u32 {
    match profile {
        "cli" => 5,
        _ => 1,
    }
}

/// One finished build.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    pub session: u32,
    pub round: u32,
    pub profile: String,
    pub arm: Arm,
    /// 0: the planned build; 1..: a repeat of a disturbed one.
    pub repeat: u32,
    pub node_fraction: f64,
    /// −1: no quota.
    pub quota_us: i64,
    pub burst_us: u64,
    /// `all`, or the cpuset's CPUs.
    pub cpus: String,
    pub jobs: u32,
    /// make's makespan.
    pub wall_s: f64,
    /// CPU time of the compile's cgroup.
    pub cpu_s: f64,
    pub nr_periods: u64,
    pub nr_throttled: u64,
    pub throttled_s: f64,
    /// The whole measured window (copying the sources, make, cleaning up).
    pub window_s: f64,
    /// Steal time of all CPUs during the window.
    pub steal_s: f64,
    /// The host's busy CPU time during the window minus the compile's CPU time.
    pub other_cpu_s: f64,
    pub probe_ms: f64,
    pub load1_before: f64,
    pub load1_after: f64,
    /// `down` or `up:<processes>`.
    pub cluster: String,
    pub started: String,
}

impl Record {
    pub fn fields(&self) -> Vec<String> {
        vec![
            self.session.to_string(),
            self.round.to_string(),
            self.profile.clone(),
            self.arm.id(),
            self.repeat.to_string(),
            format!("{:.4}", self.node_fraction),
            self.quota_us.to_string(),
            self.burst_us.to_string(),
            self.cpus.clone(),
            self.jobs.to_string(),
            format!("{:.3}", self.wall_s),
            format!("{:.3}", self.cpu_s),
            self.nr_periods.to_string(),
            self.nr_throttled.to_string(),
            format!("{:.3}", self.throttled_s),
            format!("{:.3}", self.window_s),
            format!("{:.2}", self.steal_s),
            format!("{:.2}", self.other_cpu_s),
            format!("{:.2}", self.probe_ms),
            format!("{:.2}", self.load1_before),
            format!("{:.2}", self.load1_after),
            self.cluster.clone(),
            self.started.clone(),
        ]
    }

    pub fn from_row(t: &CsvTable, row: &[String]) -> anyhow::Result<Record> {
        fn num<T: std::str::FromStr>(t: &CsvTable, row: &[String], c: &str) -> anyhow::Result<T> {
            let v = t.get(row, c);
            v.parse()
                .map_err(|_| anyhow::anyhow!("column {c}: {v:?} is not a number"))
        }
        let arm = t.get(row, "arm");
        Ok(Record {
            session: num(t, row, "session")?,
            round: num(t, row, "round")?,
            profile: t.get(row, "profile").to_string(),
            arm: Arm::parse(arm).with_context(|| format!("unknown arm {arm:?}"))?,
            repeat: num(t, row, "repeat")?,
            node_fraction: num(t, row, "node_fraction")?,
            quota_us: num(t, row, "quota_us")?,
            burst_us: num(t, row, "burst_us")?,
            cpus: t.get(row, "cpus").to_string(),
            jobs: num(t, row, "jobs")?,
            wall_s: num(t, row, "wall_s")?,
            cpu_s: num(t, row, "cpu_s")?,
            nr_periods: num(t, row, "nr_periods")?,
            nr_throttled: num(t, row, "nr_throttled")?,
            throttled_s: num(t, row, "throttled_s")?,
            window_s: num(t, row, "window_s")?,
            steal_s: num(t, row, "steal_s")?,
            other_cpu_s: num(t, row, "other_cpu_s")?,
            probe_ms: num(t, row, "probe_ms")?,
            load1_before: num(t, row, "load1_before")?,
            load1_after: num(t, row, "load1_after")?,
            cluster: t.get(row, "cluster").to_string(),
            started: t.get(row, "started").to_string(),
        })
    }
}

/// One results directory's E1: its plan, builds and sessions.
#[derive(Clone, Debug)]
pub struct Source {
    pub name: String,
    pub plan: Plan,
    pub records: Vec<Record>,
    pub sessions: CsvTable,
    /// Lines that could not be read (a row cut short by a crash), reported with the tables.
    pub warnings: Vec<String>,
}

impl Source {
    pub fn load(dir: &Path) -> anyhow::Result<Source> {
        let read = |f: &str| {
            std::fs::read_to_string(dir.join(f))
                .with_context(|| format!("read {}", dir.join(f).display()))
        };
        let plan = read(PLAN)?;
        let csv = if dir.join(CSV).exists() {
            read(CSV)?
        } else {
            String::new()
        };
        let sessions = if dir.join(SESSIONS).exists() {
            read(SESSIONS)?
        } else {
            String::new()
        };
        let name = dir.file_name().map_or_else(
            || dir.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        Source::from_texts(&name, &plan, &csv, &sessions)
            .with_context(|| format!("E1 results in {}", dir.display()))
    }

    pub fn from_texts(name: &str, plan: &str, csv: &str, sessions: &str) -> anyhow::Result<Source> {
        let plan: Plan = serde_json::from_str(plan).context("parse e1-plan.json")?;
        plan.validate()?;
        let t = parse_csv(csv);
        if !csv.trim().is_empty() && t.header != COLUMNS {
            bail!(
                "{CSV} has the columns {:?}; this harness writes {:?}",
                t.header,
                COLUMNS
            );
        }
        let mut records = Vec::new();
        for (i, row) in t.rows.iter().enumerate() {
            records.push(
                Record::from_row(&t, row).with_context(|| format!("{CSV}, data row {}", i + 1))?,
            );
        }
        let warnings = t
            .bad_lines
            .iter()
            .map(|(n, raw)| {
                format!("{name}/{CSV} line {n} is incomplete (a build cut short by a crash?), not a run: {raw:?}")
            })
            .collect();
        Ok(Source {
            name: name.to_string(),
            plan,
            records,
            sessions: parse_csv(sessions),
            warnings,
        })
    }
}

/// A build left out of the tables, and why.
#[derive(Clone, Debug, PartialEq)]
pub struct Excluded {
    pub source: String,
    pub round: u32,
    pub profile: String,
    pub arm: Arm,
    pub repeat: u32,
    pub reason: String,
}

/// One point (profile × arm), pooled over every round of every source.
#[derive(Clone, Debug, PartialEq)]
pub struct Point {
    pub profile: String,
    pub arm: Arm,
    pub runs: usize,
    pub excluded: usize,
    pub wall: Option<Estimate>,
    pub cpu: Option<Estimate>,
    /// CPU-seconds ÷ the round's baseline CPU-seconds.
    pub cpu_ratio: Option<Estimate>,
    pub eff: Option<Estimate>,
    pub throttled_pct: Option<f64>,
    pub throttled_s: Option<f64>,
    /// CPU-seconds ÷ makespan: how many cores the build used on average.
    pub cores_used: Option<f64>,
}

/// `a` against `b`, paired by round: efficiency of a − efficiency of b, in points.
#[derive(Clone, Debug, PartialEq)]
pub struct Comparison {
    pub profile: String,
    pub a: Arm,
    pub b: Arm,
    pub question: &'static str,
    pub diff_pp: Option<Estimate>,
}

/// A precondition of the scenario and whether it holds.
#[derive(Clone, Debug, PartialEq)]
pub struct Check {
    pub what: String,
    pub problems: Vec<String>,
}

#[derive(Clone, Debug)]
pub struct Analysis {
    pub cores: u32,
    pub sources: Vec<String>,
    pub profiles: Vec<String>,
    pub points: Vec<Point>,
    pub comparisons: Vec<Comparison>,
    pub excluded: Vec<Excluded>,
    pub checks: Vec<Check>,
    pub rules: Vec<ExclusionRule>,
    pub warnings: Vec<String>,
    pub notes: Vec<String>,
    /// (source, session row as column → value).
    pub sessions: Vec<(String, BTreeMap<String, String>)>,
    pub records: usize,
    pub probe_ms: Option<(f64, f64)>,
    pub steal_s: f64,
    pub load1: Option<(f64, f64)>,
    pub cluster_up_runs: usize,
    pub first_last: Option<(String, String)>,
}

impl Analysis {
    /// The preconditions that do not hold, one line each.
    pub fn failures(&self) -> Vec<String> {
        self.checks
            .iter()
            .flat_map(|c| c.problems.iter().map(move |p| format!("{}: {p}", c.what)))
            .collect()
    }

    fn point(&self, profile: &str, arm: Arm) -> Option<&Point> {
        self.points
            .iter()
            .find(|p| p.profile == profile && p.arm == arm)
    }

    /// The profile the lab's question is answered with (cli; small for --quick; else the first).
    pub fn main_profile(&self) -> Option<&str> {
        ["cli", "small", "full"]
            .into_iter()
            .find(|p| self.profiles.iter().any(|q| q == p))
    }
}

const PROFILE_ORDER: [&str; 3] = ["cli", "full", "small"];

/// A build after exclusion, with its pairing.
struct Valid<'a> {
    source: usize,
    rec: &'a Record,
    eff: f64,
    cpu_ratio: f64,
}

/// Pools the sources' builds: excludes disturbed builds and rounds without a usable baseline,
/// pairs every build with its round's baseline, and checks the preconditions.
pub fn analyse(sources: &[Source], min_runs: Option<u32>) -> Analysis {
    analyse_with(sources, min_runs, true)
}

/// `analyse`, optionally without the exclusion rule (every build counts): for a quick run's
/// harness check on a busy machine, never for numbers.
pub fn analyse_with(sources: &[Source], min_runs: Option<u32>, apply_rule: bool) -> Analysis {
    let mut excluded = Vec::new();
    let mut valid: Vec<Valid<'_>> = Vec::new();
    let mut checks: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
    const C_RUNS: &str = "every point has enough runs after exclusions";
    const C_BASE: &str = "every round has an unlimited baseline";
    const C_LISTED: &str = "no build excluded silently";
    const C_SAME: &str = "the pooled builds share kernel, toolchain and machine";
    const C_PLAN: &str = "every build is one its plan asked for";
    for c in [C_RUNS, C_BASE, C_LISTED, C_SAME, C_PLAN] {
        checks.insert(c, Vec::new());
    }
    let cores = sources.first().map_or(0, |s| s.plan.cores);
    let mut warnings = Vec::new();
    let mut notes = Vec::new();
    for (si, s) in sources.iter().enumerate() {
        warnings.extend(s.warnings.iter().cloned());
        if s.plan.cores != cores {
            checks.entry(C_SAME).or_default().push(format!(
                "{} ran on {} cores, {} on {cores}",
                s.name, s.plan.cores, sources[0].name
            ));
        }
        if s.plan.period_us != sources[0].plan.period_us {
            checks.entry(C_SAME).or_default().push(format!(
                "{} used a {} µs CFS period, {} {} µs",
                s.name, s.plan.period_us, sources[0].name, sources[0].plan.period_us
            ));
        }
        let planned: BTreeMap<u32, (&str, Vec<&str>)> = s
            .plan
            .rounds
            .iter()
            .map(|r| {
                (
                    r.round,
                    (
                        r.profile.as_str(),
                        r.arms.iter().map(String::as_str).collect(),
                    ),
                )
            })
            .collect();
        let mut rounds: BTreeMap<u32, Vec<&Record>> = BTreeMap::new();
        for r in &s.records {
            let ok = planned.get(&r.round).is_some_and(|(profile, arms)| {
                *profile == r.profile && arms.contains(&r.arm.id().as_str())
            });
            if !ok {
                checks.entry(C_PLAN).or_default().push(format!(
                    "{}: round {} {} {} is not in its e1-plan.json",
                    s.name, r.round, r.profile, r.arm
                ));
            }
            rounds.entry(r.round).or_default().push(r);
        }
        let done: BTreeSet<(u32, Arm)> = s.records.iter().map(|r| (r.round, r.arm)).collect();
        if done.len() < s.plan.planned_builds() {
            notes.push(format!(
                "{}: {} of {} planned builds done (resume with `experiments run e1 --resume <that directory>`)",
                s.name,
                done.len(),
                s.plan.planned_builds()
            ));
        }
        for (round, recs) in rounds {
            let disturbed = |r: &Record| {
                s.plan
                    .rule
                    .disturbed(s.plan.cores, r.window_s, r.steal_s, r.other_cpu_s)
                    .filter(|_| apply_rule)
            };
            let mut exclude = |r: &Record, reason: String| {
                excluded.push(Excluded {
                    source: s.name.clone(),
                    round,
                    profile: r.profile.clone(),
                    arm: r.arm,
                    repeat: r.repeat,
                    reason,
                })
            };
            let baselines: Vec<&Record> = recs
                .iter()
                .copied()
                .filter(|r| r.arm == Arm::Unlimited)
                .collect();
            let clean_base: Vec<&Record> = baselines
                .iter()
                .copied()
                .filter(|r| disturbed(r).is_none())
                .collect();
            if baselines.is_empty() {
                checks.entry(C_BASE).or_default().push(format!(
                    "{} round {round} has no unlimited build (resume the run to finish the round)",
                    s.name
                ));
            }
            let base_wall = median(&clean_base.iter().map(|r| r.wall_s).collect::<Vec<_>>());
            let base_cpu = median(&clean_base.iter().map(|r| r.cpu_s).collect::<Vec<_>>());
            for r in recs {
                if let Some(why) = disturbed(r) {
                    exclude(r, why);
                    continue;
                }
                let (Some(bw), Some(bc)) = (base_wall, base_cpu) else {
                    exclude(
                        r,
                        if baselines.is_empty() {
                            "its round has no unlimited baseline: nothing to pair with".into()
                        } else {
                            "its round's unlimited baseline was disturbed (excluded): nothing to pair with"
                                .into()
                        },
                    );
                    continue;
                };
                valid.push(Valid {
                    source: si,
                    rec: r,
                    eff: efficiency(bw, r.arm.node_fraction(s.plan.cores), r.wall_s),
                    cpu_ratio: r.cpu_s / bc,
                });
            }
        }
    }
    let total: usize = sources.iter().map(|s| s.records.len()).sum();
    if valid.len() + excluded.len() != total {
        checks.entry(C_LISTED).or_default().push(format!(
            "{total} builds read, {} in the tables and {} listed as excluded",
            valid.len(),
            excluded.len()
        ));
    }
    // Profiles and arms: what the plans asked for.
    let mut wanted: BTreeMap<&str, BTreeSet<Arm>> = BTreeMap::new();
    for s in sources {
        for r in &s.plan.rounds {
            let e = wanted.entry(r.profile.as_str()).or_default();
            e.extend(r.arms.iter().filter_map(|a| Arm::parse(a)));
        }
    }
    // The lab's question is about a large compile: the `full` profile (the whole project) runs
    // at least once per point next to the shorter `cli` one.
    if let Some(cli) = wanted.get("cli") {
        let full = wanted.get("full").cloned().unwrap_or_default();
        let missing: Vec<String> = cli.difference(&full).map(|a| a.id()).collect();
        if !missing.is_empty() {
            checks.entry(C_RUNS).or_default().push(format!(
                "no `full` profile builds planned for {} (run `experiments run e1 --full-rounds 1`, or pool a \
                 directory that has them)",
                missing.join(", ")
            ));
        }
    }
    let profiles: Vec<String> = PROFILE_ORDER
        .iter()
        .filter(|p| wanted.contains_key(**p))
        .map(|p| p.to_string())
        .collect();
    let mut points = Vec::new();
    for profile in &profiles {
        let need = match (profile.as_str(), min_runs) {
            ("full", _) | (_, None) => default_min_runs(profile),
            (_, Some(n)) => n,
        };
        for arm in Arm::all()
            .into_iter()
            .filter(|a| wanted.get(profile.as_str()).is_some_and(|w| w.contains(a)))
        {
            let vs: Vec<&Valid<'_>> = valid
                .iter()
                .filter(|v| v.rec.profile == *profile && v.rec.arm == arm)
                .collect();
            let col = |f: &dyn Fn(&Valid<'_>) -> f64| vs.iter().map(|v| f(v)).collect::<Vec<f64>>();
            let n_excl = excluded
                .iter()
                .filter(|e| e.profile == *profile && e.arm == arm)
                .count();
            if vs.len() < need as usize {
                checks.entry(C_RUNS).or_default().push(format!(
                    "{profile} {arm}: {} run(s) after exclusions ({n_excl} excluded), needs {need}",
                    vs.len()
                ));
            }
            points.push(Point {
                profile: profile.clone(),
                arm,
                runs: vs.len(),
                excluded: n_excl,
                wall: median_ci(&col(&|v| v.rec.wall_s)),
                cpu: median_ci(&col(&|v| v.rec.cpu_s)),
                cpu_ratio: median_ci(&col(&|v| v.cpu_ratio)),
                eff: median_ci(&col(&|v| v.eff)),
                throttled_pct: median(&col(&|v| {
                    if v.rec.nr_periods == 0 {
                        f64::NAN
                    } else {
                        v.rec.nr_throttled as f64 / v.rec.nr_periods as f64 * 100.0
                    }
                })),
                throttled_s: median(&col(&|v| {
                    if v.rec.quota_us < 0 {
                        f64::NAN
                    } else {
                        v.rec.throttled_s
                    }
                })),
                cores_used: median(&col(&|v| v.rec.cpu_s / v.rec.wall_s)),
            });
        }
    }
    // Paired comparisons: per (source, round) with both arms valid.
    let q = |pct, burst| Arm::Quota { pct, burst };
    let mut pairs: Vec<(Arm, Arm, &'static str)> = vec![
        (
            Arm::Cpuset1,
            q(50, false),
            "one core (cpuset) instead of a 50 % quota",
        ),
        (Arm::Jobs1, q(50, false), "make -j1 instead of a 50 % quota"),
        (
            Arm::Jobs1,
            Arm::Cpuset1,
            "make -j1 instead of one core (cpuset)",
        ),
    ];
    for pct in [100, 75, 50, 25] {
        pairs.push((q(pct, true), q(pct, false), "cfs_burst = quota"));
    }
    let mut comparisons = Vec::new();
    for profile in &profiles {
        for (a, b, question) in &pairs {
            let mut by_round: BTreeMap<(usize, u32), (Vec<f64>, Vec<f64>)> = BTreeMap::new();
            for v in valid.iter().filter(|v| v.rec.profile == *profile) {
                let e = by_round.entry((v.source, v.rec.round)).or_default();
                if v.rec.arm == *a {
                    e.0.push(v.eff);
                } else if v.rec.arm == *b {
                    e.1.push(v.eff);
                }
            }
            let diffs: Vec<f64> = by_round
                .values()
                .filter_map(|(xa, xb)| Some((median(xa)? - median(xb)?) * 100.0))
                .collect();
            let present = |arm: &Arm| {
                wanted
                    .get(profile.as_str())
                    .is_some_and(|w| w.contains(arm))
            };
            if present(a) && present(b) {
                comparisons.push(Comparison {
                    profile: profile.clone(),
                    a: *a,
                    b: *b,
                    question,
                    diff_pp: median_ci(&diffs),
                });
            }
        }
    }
    // Sessions: versions must agree over everything pooled.
    let mut sessions = Vec::new();
    for s in sources {
        for row in &s.sessions.rows {
            let m: BTreeMap<String, String> = s
                .sessions
                .header
                .iter()
                .cloned()
                .zip(row.iter().cloned())
                .collect();
            sessions.push((s.name.clone(), m));
        }
    }
    for key in MUST_AGREE {
        let values: BTreeSet<&str> = sessions
            .iter()
            .filter_map(|(_, m)| m.get(key).map(String::as_str))
            .collect();
        if values.len() > 1 {
            checks.entry(C_SAME).or_default().push(format!(
                "{key} differs between sessions: {}",
                values.into_iter().collect::<Vec<_>>().join(" / ")
            ));
        }
    }
    let all: Vec<&Record> = sources.iter().flat_map(|s| s.records.iter()).collect();
    let probes: Vec<f64> = all
        .iter()
        .map(|r| r.probe_ms)
        .filter(|x| x.is_finite())
        .collect();
    let loads: Vec<f64> = all
        .iter()
        .flat_map(|r| [r.load1_before, r.load1_after])
        .filter(|x| x.is_finite())
        .collect();
    let minmax = |v: &[f64]| {
        (!v.is_empty()).then(|| {
            (
                v.iter().copied().fold(f64::INFINITY, f64::min),
                v.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            )
        })
    };
    let mut stamps: Vec<&str> = all.iter().map(|r| r.started.as_str()).collect();
    stamps.sort();
    let mut rules: Vec<ExclusionRule> = Vec::new();
    for s in sources {
        if !rules.contains(&s.plan.rule) {
            rules.push(s.plan.rule);
        }
    }
    Analysis {
        cores,
        sources: sources.iter().map(|s| s.name.clone()).collect(),
        profiles,
        points,
        comparisons,
        excluded,
        checks: checks
            .into_iter()
            .map(|(what, problems)| Check {
                what: what.to_string(),
                problems,
            })
            .collect(),
        rules,
        warnings,
        notes,
        sessions,
        records: total,
        probe_ms: minmax(&probes),
        steal_s: all
            .iter()
            .map(|r| r.steal_s)
            .filter(|x| x.is_finite())
            .sum(),
        load1: minmax(&loads),
        cluster_up_runs: all.iter().filter(|r| r.cluster != "down").count(),
        first_last: stamps
            .first()
            .zip(stamps.last())
            .map(|(a, b)| (a.to_string(), b.to_string())),
    }
}

fn pct(e: &Option<Estimate>) -> String {
    e.as_ref()
        .map_or("–".into(), |e| format!("{} %", e.fmt(100.0, 0)))
}

fn num(e: &Option<Estimate>, digits: usize) -> String {
    e.as_ref().map_or("–".into(), |e| e.fmt(1.0, digits))
}

fn opt(v: Option<f64>, digits: usize, unit: &str) -> String {
    v.filter(|x| x.is_finite())
        .map_or("–".into(), |x| format!("{x:.digits$}{unit}"))
}

/// The main table of one profile.
fn table(a: &Analysis, profile: &str) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "| arm | CPU given | runs (excluded) | makespan s | CPU-s ÷ baseline | **efficiency** | periods throttled | cores used |"
    );
    let _ = writeln!(t, "|---|---|---|---|---|---|---|---|");
    for p in a.points.iter().filter(|p| p.profile == profile) {
        let given = p.arm.node_fraction(a.cores) * f64::from(a.cores);
        let reference = p.arm == Arm::Unlimited && p.runs > 0;
        let eff = if reference {
            "100 % (the reference)".to_string()
        } else {
            format!("**{}**", pct(&p.eff))
        };
        let _ = writeln!(
            t,
            "| {} | {given:.2} cores | {} ({}) | {} | {} | {eff} | {} | {} |",
            p.arm.label(a.cores),
            p.runs,
            p.excluded,
            num(&p.wall, 1),
            if reference {
                "1".to_string()
            } else {
                num(&p.cpu_ratio, 2)
            },
            opt(p.throttled_pct, 0, " %"),
            opt(p.cores_used, 2, ""),
        );
    }
    t
}

/// What the numbers say about Q2, by the criteria stated in `experiments/README.md`.
fn verdict(a: &Analysis, profile: &str) -> String {
    let mut v = String::new();
    for p in a
        .points
        .iter()
        .filter(|p| p.profile == profile && p.arm != Arm::Unlimited)
    {
        let Some(e) = p.eff else {
            let _ = writeln!(v, "- {}: no runs.", p.arm.label(a.cores));
            continue;
        };
        let collapse = if e.n < 2 {
            "one run only: no interval, no verdict"
        } else if e.lo > 0.70 {
            "the fall to 70 % is ruled out (lower bound above 70 %)"
        } else if e.hi < 0.70 {
            "the fall to 70 % is confirmed (upper bound below 70 %)"
        } else {
            "not decided: the interval contains 70 %"
        };
        let expected = if e.n < 2 {
            ""
        } else if e.lo >= 0.89 {
            "; at least the lab's expected 89 %"
        } else if e.hi < 0.89 {
            "; below the lab's expected 89 %"
        } else {
            "; consistent with the lab's expected 89 %"
        };
        let free = if e.n >= 2 && e.lo <= 1.0 && e.hi >= 1.0 {
            "; no cost beyond the CPU taken away is resolved (the interval contains 100 %)"
        } else {
            ""
        };
        let _ = writeln!(
            v,
            "- {}: efficiency {}: {collapse}{expected}{free}.",
            p.arm.label(a.cores),
            pct(&p.eff)
        );
    }
    v
}

fn comparisons(a: &Analysis, profile: &str) -> String {
    let mut t = String::new();
    let cs: Vec<&Comparison> = a
        .comparisons
        .iter()
        .filter(|c| c.profile == profile)
        .collect();
    if cs.is_empty() {
        return t;
    }
    let _ = writeln!(
        t,
        "| comparison (paired by round) | question | rounds | Δ efficiency, points | reading |"
    );
    let _ = writeln!(t, "|---|---|---|---|---|");
    for c in cs {
        let (n, d, reading) = match c.diff_pp {
            None => (0, "–".to_string(), "no round has both".to_string()),
            Some(e) => {
                let reading = if e.n < 2 {
                    "one round: no interval".to_string()
                } else if e.lo > 0.0 {
                    format!("{} is better", c.a.id())
                } else if e.hi < 0.0 {
                    format!("{} is better", c.b.id())
                } else {
                    "no difference resolved".to_string()
                };
                (e.n, e.fmt(1.0, 1), reading)
            }
        };
        let _ = writeln!(
            t,
            "| {} − {} | {} | {n} | {d} | {reading} |",
            c.a.id(),
            c.b.id(),
            c.question
        );
    }
    t
}

fn exclusions(a: &Analysis) -> String {
    let mut t = String::new();
    for r in &a.rules {
        let _ = writeln!(
            t,
            "Exclusion rule (fixed before the run, stored in its `e1-plan.json`): {}.\n",
            r.describe()
        );
    }
    if a.excluded.is_empty() {
        let _ = writeln!(t, "Excluded builds: none.");
        return t;
    }
    let _ = writeln!(
        t,
        "Excluded builds ({} of {}):\n",
        a.excluded.len(),
        a.records
    );
    let _ = writeln!(t, "| run | round | profile | arm | attempt | reason |");
    let _ = writeln!(t, "|---|---|---|---|---|---|");
    for e in &a.excluded {
        let _ = writeln!(
            t,
            "| {} | {} | {} | {} | {} | {} |",
            e.source,
            e.round,
            e.profile,
            e.arm,
            e.repeat + 1,
            e.reason
        );
    }
    t
}

fn checks(a: &Analysis) -> String {
    let mut t = String::new();
    for c in &a.checks {
        if c.problems.is_empty() {
            let _ = writeln!(t, "- ✓ {}", c.what);
        } else {
            let _ = writeln!(t, "- ✗ **{}**: {}", c.what, c.problems.join("; "));
        }
    }
    t
}

fn profile_title(profile: &str, a: &Analysis) -> String {
    let jobs = a.cores;
    match profile {
        "cli" => format!("profile `cli` (`make -j{jobs} -C programs zstd`)"),
        "full" => format!("profile `full` (`make -j{jobs}`: static and shared library, programs)"),
        _ => "profile `small` (`--quick`: the decompression-only library; not numbers to quote)"
            .to_string(),
    }
}

fn intervals_note() -> String {
    format!(
        "Medians over runs with 95 % intervals `[lo–hi]` (percentile bootstrap of the median, {BOOTSTRAP_RESAMPLES} \
         resamples, fixed seed: the tables regenerate identically; with 5 runs the interval is close to the runs' \
         range). Efficiency = (the round's unlimited makespan ÷ the share of the node given) ÷ makespan; CPU-s ÷ \
         baseline likewise per round. \"Cores used\" = CPU-s ÷ makespan."
    )
}

/// The tables: (full section for summary.md / the pooled report, README block).
pub fn render(a: &Analysis, plot: Option<&str>, section_link: Option<&str>) -> (String, String) {
    let mut body = String::new();
    let _ = writeln!(body, "{}\n", intervals_note());
    for profile in &a.profiles {
        let _ = writeln!(body, "**{}**\n", profile_title(profile, a));
        body.push_str(&table(a, profile));
        body.push('\n');
        let v = verdict(a, profile);
        if !v.is_empty() {
            let _ = writeln!(body, "Q2, by the criteria above:\n\n{v}");
        }
        let c = comparisons(a, profile);
        if !c.is_empty() {
            let _ = writeln!(
                body,
                "How to take the CPU away (efficiency differences):\n\n{c}"
            );
        }
    }
    body.push_str(&exclusions(a));
    body.push('\n');
    let mut readme = body.clone();
    let _ = writeln!(readme, "Preconditions:\n\n{}", checks(a));
    let _ = writeln!(
        readme,
        "Data: {} build(s) from {}{}. Regenerate: `cargo run --release -p experiments -- report`{}{}.",
        a.records,
        a.sources
            .iter()
            .map(|s| format!("`results/{s}`"))
            .collect::<Vec<_>>()
            .join(", "),
        a.first_last
            .as_ref()
            .map_or(String::new(), |(f, l)| format!(
                ", {} – {}",
                f.get(..10).unwrap_or(f),
                l.get(..10).unwrap_or(l)
            )),
        section_link.map_or(String::new(), |l| format!(
            "; details, sessions and versions: [{l}]({l})"
        )),
        plot.map_or(String::new(), |p| format!("; plot: [{p}]({p})")),
    );
    let mut section = String::new();
    let _ = writeln!(section, "## E1 — throttling efficiency\n");
    section.push_str(&body);
    let _ = writeln!(section, "Preconditions:\n\n{}", checks(a));
    for n in &a.notes {
        let _ = writeln!(section, "- note: {n}");
    }
    for w in &a.warnings {
        let _ = writeln!(section, "- warning: {w}");
    }
    let _ = writeln!(
        section,
        "\nSources: {}. Machine speed before each build (a fixed single-thread loop, best of 5): {}. \
         Steal time during all builds: {:.1} s. Load average (1 min) before/after builds: {}. \
         Builds with Kubernetes processes on the host: {} of {}.\n",
        a.sources.join(", "),
        a.probe_ms.map_or("–".into(), |(lo, hi)| format!(
            "{lo:.2}–{hi:.2} ms ({:.0} % range)",
            (hi - lo) / lo * 100.0
        )),
        a.steal_s,
        a.load1
            .map_or("–".into(), |(lo, hi)| format!("{lo:.2}–{hi:.2}")),
        a.cluster_up_runs,
        a.records
    );
    if !a.sessions.is_empty() {
        let _ = writeln!(
            section,
            "Sessions (every start of the harness on these results):\n"
        );
        let _ = writeln!(section, "| run | {} |", SESSION_COLUMNS.join(" | "));
        let _ = writeln!(section, "|---|{}", "---|".repeat(SESSION_COLUMNS.len()));
        for (src, m) in &a.sessions {
            let cells: Vec<String> = SESSION_COLUMNS
                .iter()
                .map(|c| m.get(*c).map_or("–".into(), |v| v.replace('|', "\\|")))
                .collect();
            let _ = writeln!(section, "| {src} | {} |", cells.join(" | "));
        }
        section.push('\n');
    }
    if let Some(p) = plot {
        let _ = writeln!(section, "![efficiency]({p})\n");
    }
    (section, readme)
}

/// Efficiency against the share of the node, the main profile, with the intervals.
pub fn plot(a: &Analysis, path: &Path) -> anyhow::Result<()> {
    let Some(profile) = a.main_profile() else {
        return Ok(());
    };
    let series_of = |name: &str, arms: &[(Arm, f64)]| {
        let pts: Vec<(&Point, f64)> = arms
            .iter()
            .filter_map(|(arm, x)| Some((a.point(profile, *arm)?, *x)))
            .filter(|(p, _)| p.eff.is_some())
            .collect();
        let mut s = Series::new(
            name,
            pts.iter()
                .filter_map(|(p, x)| Some((*x, p.eff?.median * 100.0)))
                .collect(),
        );
        s.bars = pts
            .iter()
            .filter_map(|(p, x)| p.eff.map(|e| (*x, e.lo * 100.0, e.hi * 100.0)))
            .collect();
        s
    };
    let quota = |burst| -> Vec<(Arm, f64)> {
        [25u32, 50, 75, 100]
            .iter()
            .map(|&pct| (Arm::Quota { pct, burst }, f64::from(pct)))
            .collect()
    };
    let half = 100.0 / f64::from(a.cores.max(1));
    let series = vec![
        series_of("CFS quota", &quota(false)),
        series_of("CFS quota + cfs_burst = quota", &quota(true)),
        series_of(
            "cpuset: 1 core (drawn 1.5 left)",
            &[(Arm::Cpuset1, half - 1.5)],
        ),
        series_of("make -j1 (drawn 1.5 right)", &[(Arm::Jobs1, half + 1.5)]),
        Series::new("lab's expectation 89 %", vec![(20.0, 89.0), (100.0, 89.0)]),
    ];
    line_chart(
        path,
        &Chart {
            title: "E1: compile efficiency vs. the CPU given (median, 95 % bootstrap interval)",
            x_label: "CPU given, % of the node",
            y_label: "efficiency vs. the unlimited baseline, %",
            log_y: false,
            reference: Some((70.0, "feared 70 %")),
            spans: &[],
        },
        &series,
    )
}

/// Loads, analyses, plots (into `out`) and renders E1 results of `dirs`.
pub fn tables_for(
    dirs: &[PathBuf],
    out: &Path,
    link_base: &Path,
    min_runs: Option<u32>,
) -> anyhow::Result<SuiteTables> {
    let sources = dirs
        .iter()
        .map(|d| Source::load(d))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let a = analyse(&sources, min_runs);
    let png = out.join(PLOT);
    plot(&a, &png)?;
    let plot_link = link_from(link_base, &png);
    let section_link = link_from(link_base, &out.join("e1.md"));
    let (mut section, readme) = render(&a, Some(&plot_link), Some(&section_link));
    if sources.iter().any(|s| s.plan.quick) && !a.excluded.is_empty() {
        let all = analyse_with(&sources, min_runs, false);
        for profile in &all.profiles {
            let _ = writeln!(
                section,
                "Every build, the excluded ones included ({profile}; a quick run's check of the harness \
                 on a busy machine, not numbers to quote):\n\n{}",
                table(&all, profile)
            );
        }
    }
    Ok(SuiteTables {
        section,
        readme,
        failures: a.failures(),
    })
}

/// E1 for `experiments report`.
pub struct E1Report;

impl SuiteReport for E1Report {
    fn key(&self) -> &'static str {
        "e1"
    }

    fn detect(&self, dir: &Path) -> Detected {
        if dir.join(PLAN).exists() {
            Detected::Current
        } else if dir.join(CSV).exists() {
            Detected::Unusable(
                "E1 of the first design (no e1-plan.json, no unlimited baseline): its builds cannot be \
                 paired with an unlimited build of their round"
                    .into(),
            )
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
        tables_for(dirs, out, link_base, opts.min_runs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::to_csv;

    fn rec(round: u32, arm: Arm, wall: f64, steal: f64) -> Record {
        let frac = arm.node_fraction(2);
        Record {
            session: 1,
            round,
            profile: "cli".into(),
            arm,
            repeat: 0,
            node_fraction: frac,
            quota_us: match arm {
                Arm::Quota { pct, .. } => i64::from(pct) * 2000,
                _ => -1,
            },
            burst_us: 0,
            cpus: if arm == Arm::Cpuset1 { "1" } else { "all" }.into(),
            jobs: arm.jobs(2),
            wall_s: wall,
            cpu_s: 50.0 + f64::from(round) * 0.1,
            nr_periods: if matches!(arm, Arm::Quota { .. }) {
                500
            } else {
                0
            },
            nr_throttled: if matches!(arm, Arm::Quota { .. }) {
                490
            } else {
                0
            },
            throttled_s: 10.0,
            window_s: wall + 1.0,
            steal_s: steal,
            other_cpu_s: 0.2,
            probe_ms: 6.5,
            load1_before: 0.1,
            load1_after: 1.9,
            cluster: "down".into(),
            started: format!("2026-11-24T10:{round:02}:00+00:00"),
        }
    }

    const Q50: Arm = Arm::Quota {
        pct: 50,
        burst: false,
    };

    /// A small fixture: 5 rounds of unlimited / quota-50 / cpuset-1, as CSV text.
    fn fixture() -> (String, String, String) {
        let plan = Plan::new(
            9,
            2,
            100_000,
            false,
            &[Arm::Unlimited, Q50, Arm::Cpuset1],
            &[("cli".to_string(), 5), ("full".to_string(), 1)],
        );
        let mut rows = Vec::new();
        for round in 1..=5u32 {
            let jitter = f64::from(round) * 0.2;
            rows.push(rec(round, Arm::Unlimited, 26.0 + jitter, 0.1));
            // Round 3's quota build is disturbed (steal 9 s of 2 × 58 s) and repeated.
            rows.push(rec(
                round,
                Q50,
                55.0 + jitter,
                if round == 3 { 9.0 } else { 0.1 },
            ));
            if round == 3 {
                let mut again = rec(round, Q50, 55.5, 0.1);
                again.repeat = 1;
                rows.push(again);
            }
            rows.push(rec(round, Arm::Cpuset1, 53.0 + jitter, 0.1));
        }
        for (arm, wall) in [(Arm::Unlimited, 80.0), (Q50, 166.0), (Arm::Cpuset1, 161.0)] {
            let mut r = rec(6, arm, wall, 0.2);
            r.profile = "full".into();
            r.cpu_s = 155.0;
            rows.push(r);
        }
        let csv = to_csv(
            &COLUMNS,
            &rows.iter().map(Record::fields).collect::<Vec<_>>(),
        );
        let sessions = to_csv(
            &SESSION_COLUMNS,
            &[SESSION_COLUMNS
                .iter()
                .map(|c| match *c {
                    "session" => "1".to_string(),
                    "kernel" => "6.18.44".to_string(),
                    "gcc-12" => "12.2.0-14+deb12u1".to_string(),
                    "command" => "experiments run e1, with a comma".to_string(),
                    _ => "x".to_string(),
                })
                .collect()],
        );
        (
            serde_json::to_string_pretty(&plan).expect("plan"),
            csv,
            sessions,
        )
    }

    fn source(name: &str) -> Source {
        let (plan, csv, sessions) = fixture();
        Source::from_texts(name, &plan, &csv, &sessions).expect("fixture parses")
    }

    #[test]
    fn records_round_trip_through_csv() {
        let r = rec(2, Arm::Jobs1, 51.25, f64::NAN);
        let text = to_csv(&COLUMNS, &[r.fields()]);
        let t = parse_csv(&text);
        let back = Record::from_row(&t, &t.rows[0]).expect("parse");
        assert_eq!(back.arm, Arm::Jobs1);
        assert_eq!(back.wall_s, 51.25);
        assert!(back.steal_s.is_nan());
        assert_eq!(back.quota_us, -1);
    }

    #[test]
    fn pools_excludes_pairs_and_checks() {
        let a = analyse(&[source("20261124-100000-e1")], None);
        // The disturbed build is excluded, listed with its reason, and its repeat counts.
        assert_eq!(a.excluded.len(), 1);
        assert_eq!(a.excluded[0].arm, Q50);
        assert_eq!(a.excluded[0].round, 3);
        assert!(
            a.excluded[0].reason.starts_with("steal 9.0 s"),
            "{:?}",
            a.excluded
        );
        let q = a.point("cli", Q50).expect("quota point");
        assert_eq!((q.runs, q.excluded), (5, 1));
        // Efficiency per round: (26 + j) / 0.5 / (55 + j) ≈ 0.946..0.948; round 3 repeat 52.4/55.5.
        let e = q.eff.expect("efficiency");
        assert!((e.median - (26.6 / 0.5 / 55.6)).abs() < 0.01, "{e:?}");
        assert!(e.lo <= e.median && e.median <= e.hi && e.hi < 1.0);
        let base = a.point("cli", Arm::Unlimited).expect("baseline");
        assert!((base.eff.expect("eff").median - 1.0).abs() < 1e-12);
        assert_eq!(a.failures(), Vec::<String>::new(), "{:?}", a.checks);
        // cpuset beats the quota in every round here: the paired interval is above 0.
        let c = a
            .comparisons
            .iter()
            .find(|c| c.a == Arm::Cpuset1 && c.b == Q50)
            .expect("comparison");
        let d = c.diff_pp.expect("diff");
        assert_eq!(d.n, 5);
        assert!(d.lo > 0.0, "{d:?}");
        // Same data, same tables: the bootstrap is seeded.
        let again = analyse(&[source("20261124-100000-e1")], None);
        assert_eq!(render(&a, None, None), render(&again, None, None));
    }

    #[test]
    fn pooling_two_directories_counts_every_run() {
        let a = analyse(&[source("run-a"), source("run-b")], Some(10));
        let q = a.point("cli", Q50).expect("point");
        assert_eq!((q.runs, q.excluded), (10, 2));
        assert_eq!(a.records, 38);
        assert!(a.failures().is_empty(), "{:?}", a.failures());
        assert_eq!(a.sessions.len(), 2);
    }

    #[test]
    fn preconditions_fail_loudly() {
        let (plan, csv, sessions) = fixture();
        // Drop round 2's baseline, and every build of round 4 but the baseline.
        let mut lines: Vec<&str> = csv.lines().collect();
        lines.retain(|l| {
            !(l.starts_with("1,2,cli,unlimited,")
                || (l.starts_with("1,4,") && !l.starts_with("1,4,cli,unlimited,")))
        });
        let csv = lines.join("\n") + "\n";
        let s = Source::from_texts("cut", &plan, &csv, &sessions).expect("parses");
        let a = analyse(&[s], None);
        let f = a.failures().join("\n");
        assert!(f.contains("cut round 2 has no unlimited build"), "{f}");
        assert!(
            f.contains("cli quota-50: 3 run(s) after exclusions (2 excluded), needs 5"),
            "{f}"
        );
        // Round 2's other builds are excluded with the reason, not dropped.
        assert!(
            a.excluded
                .iter()
                .any(|e| e.round == 2 && e.reason.contains("no unlimited baseline"))
        );
        // A disturbed baseline excludes its round.
        let (plan, csv, sessions) = fixture();
        let csv = csv.replace(
            &rec(1, Arm::Unlimited, 26.2, 0.1).fields().join(","),
            &rec(1, Arm::Unlimited, 26.2, 5.0).fields().join(","),
        );
        let a = analyse(
            &[Source::from_texts("d", &plan, &csv, &sessions).expect("parses")],
            Some(4),
        );
        assert_eq!(a.excluded.iter().filter(|e| e.round == 1).count(), 3);
        assert!(
            a.excluded
                .iter()
                .any(|e| e.reason.contains("baseline was disturbed"))
        );
        assert!(a.failures().is_empty(), "{:?}", a.failures());
        // Without the `full` profile the scenario is incomplete.
        let plan_cli = Plan::new(
            9,
            2,
            100_000,
            false,
            &[Arm::Unlimited, Q50, Arm::Cpuset1],
            &[("cli".to_string(), 5)],
        );
        let (_, csv, sessions) = fixture();
        let csv: String = csv
            .lines()
            .filter(|l| !l.contains(",full,"))
            .map(|l| format!("{l}\n"))
            .collect();
        let s = Source::from_texts(
            "nofull",
            &serde_json::to_string(&plan_cli).expect("plan"),
            &csv,
            &sessions,
        )
        .expect("parses");
        let f = analyse(&[s], None).failures().join("\n");
        assert!(
            f.contains("no `full` profile builds planned for unlimited, quota-50, cpuset-1"),
            "{f}"
        );
        // Versions that differ between pooled sessions.
        let (plan, csv, sessions) = fixture();
        let other = Source::from_texts("k", &plan, &csv, &sessions.replace("6.18.44", "6.19.1"))
            .expect("parses");
        let a = analyse(&[source("j"), other], None);
        assert!(
            a.failures()
                .iter()
                .any(|f| f.contains("kernel differs between sessions: 6.18.44 / 6.19.1"))
        );
    }

    #[test]
    fn renders_the_tables_from_a_fixture() {
        let a = analyse(&[source("20261124-100000-e1")], None);
        let (section, readme) = render(&a, Some("e1-efficiency.png"), Some("e1.md"));
        assert!(readme.contains("| arm | CPU given | runs (excluded) |"));
        assert!(
            readme.contains("| CFS quota 50 % | 1.00 cores | 5 (1) |"),
            "{readme}"
        );
        assert!(readme.contains("| unlimited (quota −1), make -j2 | 2.00 cores | 5 (0) |"));
        assert!(readme.contains("| cpuset: 1 core, make -j2 | 1.00 cores | 5 (0) |"));
        assert!(readme.contains("the fall to 70 % is ruled out"));
        assert!(
            readme.contains(
                "| cpuset-1 − quota-50 | one core (cpuset) instead of a 50 % quota | 5 |"
            )
        );
        assert!(readme.contains("cpuset-1 is better"));
        assert!(readme.contains("| 20261124-100000-e1 | 3 | cli | quota-50 | 1 | steal 9.0 s"));
        assert!(readme.contains("- ✓ every round has an unlimited baseline"));
        assert!(
            readme
                .contains("19 build(s) from `results/20261124-100000-e1`, 2026-11-24 – 2026-11-24")
        );
        assert!(readme.contains("**profile `full`"));
        // Full profile: one run per point, so no interval and no verdict.
        assert!(
            readme.contains("| CFS quota 50 % | 1.00 cores | 1 (0) | 166.0 |"),
            "{readme}"
        );
        assert!(readme.contains("one run only: no interval, no verdict"));
        assert!(section.starts_with("## E1 — throttling efficiency"));
        assert!(section.contains("experiments run e1, with a comma"));
        assert!(section.contains("![efficiency](e1-efficiency.png)"));
    }

    #[test]
    fn reads_a_results_directory_and_rejects_the_old_format() {
        let dir = std::env::temp_dir().join(format!("bsc-e1-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(
            dir.join(CSV),
            "quota_fraction,burst,run,wall_s\n1.00,false,1,26.1\n",
        )
        .expect("write");
        assert!(matches!(E1Report.detect(&dir), Detected::Unusable(_)));
        let (plan, csv, sessions) = fixture();
        std::fs::write(dir.join(PLAN), plan).expect("write");
        assert!(Source::load(&dir).is_err(), "old columns are refused");
        std::fs::write(dir.join(CSV), csv + "1,6,cli,unl").expect("write");
        std::fs::write(dir.join(SESSIONS), sessions).expect("write");
        assert_eq!(E1Report.detect(&dir), Detected::Current);
        let s = Source::load(&dir).expect("loads");
        assert_eq!(s.records.len(), 19);
        assert_eq!(s.warnings.len(), 1, "the cut line is reported");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
