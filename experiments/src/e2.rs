//! E2 — co-location. The web service (hostNetwork, 127.0.0.1, SO_REUSEPORT) under open-loop
//! load with a spike, next to the compile. Arms: the floors (service alone, compile alone), no
//! autoscaler, the stock HPA, burst-scaler, and an oracle (the best static split, set by hand).
//! Every arm runs once per round, rounds in a seeded random order (`e2_data::Plan`); each
//! finished arm run is appended to the CSVs at once, so an interrupted run resumes where it
//! stopped. Two scenarios ([`Scenario`]):
//! - **E2, starvation by shares** (the headline): the service has a small request (100m) and
//!   a limit well above its need (2 cores); the compile a larger request (1 core) and no limit,
//!   started 5 s before the spike so that it runs through it. What hurts the service is the
//!   compile's CPU shares.
//! - **E2b, limit-bound**: the HPA walkthrough's 200m/500m service and a 200m/2 compile that
//!   ends before the spike. What hurts the service is its own limit; the cost side (replicas,
//!   reserved cores) tells the arms apart.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, bail};
use kube::{Api, Client};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::cgroup::{CgroupPaths, pod_cgroup};
use crate::cluster::{self, HpaSample, PodSample, Resources, Sampler, WALKTHROUGH};
use crate::e2_data::{
    ACTUATIONS_HEADER, E2Report, PODS_HEADER, Plan, RUNS_HEADER, RunRow, WINDOWS_HEADER, read_runs,
};
use crate::load::{self, Step};
use crate::report::{
    Progress, ReportOptions, RunDir, SuiteReport, append_csv_row, append_csv_rows, opt,
};
use crate::workload::{BuildDone, Profile, parse_build_done};

/// What the scenario is about (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    Starvation,
    LimitBound,
}

impl Scenario {
    /// The prefix of its files, namespaces and README block.
    pub fn slug(self) -> &'static str {
        match self {
            Scenario::Starvation => "e2",
            Scenario::LimitBound => "e2b",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Scenario::Starvation => "E2 — co-location: starvation by CPU shares",
            Scenario::LimitBound => "E2b — co-location: the service bound by its own limit",
        }
    }

    fn web(self) -> Resources {
        match self {
            Scenario::Starvation => Resources {
                request: "100m",
                limit: Some("2"),
            },
            Scenario::LimitBound => WALKTHROUGH,
        }
    }

    /// Runs per compared arm the README's table needs (the headline more than the rest).
    pub fn min_runs(self) -> u32 {
        match self {
            Scenario::Starvation => 5,
            Scenario::LimitBound => 3,
        }
    }

    /// When the trouble starts: the compile's start (starvation), the spike's (limit-bound).
    fn onset(self, opts: &Options) -> Duration {
        match self {
            Scenario::Starvation => opts.compile_at,
            Scenario::LimitBound => opts.spike_from,
        }
    }

    /// The compile pod: a batch pod that may use the whole node — unlimited under starvation
    /// (the node agent imposes a quota when it must), a 2-core limit in E2b.
    fn compile(self) -> Resources {
        match self {
            Scenario::Starvation => Resources {
                request: "1",
                limit: None,
            },
            Scenario::LimitBound => Resources {
                request: "200m",
                limit: Some("2"),
            },
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arm {
    FloorService,
    FloorCompile,
    NoAutoscaler,
    Hpa,
    BurstScaler,
    /// The best static split a vertical scaler could reach, set by the harness on the cgroups
    /// when the compile starts: the web's weight and quota at its BurstScaler's maximum
    /// (2 cores), the compile untouched (CFS then gives the web what it asks for and the
    /// compile the rest, nothing idle).
    Oracle,
}

impl Arm {
    /// Table order.
    pub const ALL: [Arm; 6] = [
        Arm::FloorService,
        Arm::FloorCompile,
        Arm::NoAutoscaler,
        Arm::Hpa,
        Arm::BurstScaler,
        Arm::Oracle,
    ];

    pub fn parse(s: &str) -> Option<Arm> {
        Arm::ALL.into_iter().find(|a| a.slug() == s)
    }

    /// A reference (one part alone), not an arm to compare: run in the first round only.
    pub fn is_floor(self) -> bool {
        matches!(self, Arm::FloorService | Arm::FloorCompile)
    }

    pub fn slug(self) -> &'static str {
        match self {
            Arm::FloorService => "floor-service",
            Arm::FloorCompile => "floor-compile",
            Arm::NoAutoscaler => "no-autoscaler",
            Arm::Hpa => "hpa",
            Arm::BurstScaler => "burst-scaler",
            Arm::Oracle => "oracle",
        }
    }

    pub fn has_web(self) -> bool {
        self != Arm::FloorCompile
    }

    pub fn has_compile(self) -> bool {
        self != Arm::FloorService
    }
}

#[derive(Clone, Debug)]
pub struct Options {
    pub scenario: Scenario,
    pub profile: Profile,
    pub addr: SocketAddr,
    pub duration: Duration,
    pub base_rate: f64,
    pub spike_rate: f64,
    pub spike_from: Duration,
    pub spike_len: Duration,
    pub compile_at: Duration,
    pub cost: Duration,
    pub timeout: Duration,
    pub window: Duration,
    pub slo_p99_ms: f64,
    pub compile_bound: Duration,
    pub jobs: u32,
    pub quick: bool,
    /// Rounds (runs per compared arm).
    pub rounds: usize,
    /// Seed of the rounds' order.
    pub seed: u64,
    /// The arms of a round (the floors run in the first round only).
    pub arms: Vec<Arm>,
}

impl Options {
    pub fn new(
        scenario: Scenario,
        quick: bool,
        profile: Option<Profile>,
        slo_p99_ms: f64,
        jobs: u32,
        rounds: Option<usize>,
        seed: Option<u64>,
    ) -> Options {
        let s = Duration::from_secs;
        // Quick: the spike fills exactly one window, which the small build covers.
        let spike_from = if quick { s(10) } else { s(60) };
        Options {
            scenario,
            // Starvation: the whole build (≈ 40–80 s alone, depending on the day), so that it
            // runs through the spike even when the machine is fast; E2b: the command-line tool
            // (≈ 13–30 s), which ends before the spike.
            profile: profile.unwrap_or(match (scenario, quick) {
                (_, true) => Profile::Small,
                (Scenario::Starvation, false) => Profile::Full,
                (Scenario::LimitBound, false) => Profile::Cli,
            }),
            addr: SocketAddr::from(([127, 0, 0, 1], 18080)),
            duration: if quick { s(30) } else { s(150) },
            base_rate: 100.0,
            spike_rate: 300.0,
            spike_from,
            spike_len: if quick { s(5) } else { s(20) },
            // Starvation: shortly before the spike, so that the build (longer
            // next to the service) runs through it; E2b: well before, as the first run had it.
            compile_at: match (scenario, quick) {
                (Scenario::Starvation, true) => s(8),
                (Scenario::Starvation, false) => spike_from - s(5),
                (Scenario::LimitBound, true) => s(4),
                (Scenario::LimitBound, false) => s(30),
            },
            cost: Duration::from_millis(2),
            timeout: s(1),
            window: s(5),
            slo_p99_ms,
            compile_bound: if quick { s(180) } else { s(600) },
            jobs,
            quick,
            rounds: rounds.unwrap_or(if quick {
                1
            } else {
                scenario.min_runs() as usize
            }),
            seed: seed.unwrap_or_else(|| jiff::Timestamp::now().as_second().unsigned_abs()),
            // The smoke test checks the harness: the compared arms of the headline, and only
            // burst-scaler's (the one with its own code path) in E2b.
            arms: match (scenario, quick) {
                (_, false) => Arm::ALL.to_vec(),
                (Scenario::Starvation, true) => {
                    vec![Arm::NoAutoscaler, Arm::Hpa, Arm::BurstScaler, Arm::Oracle]
                }
                (Scenario::LimitBound, true) => vec![Arm::BurstScaler],
            },
        }
    }

    /// Everything that can move a number, as `key=value` words: runs pooled by the report
    /// must agree on it.
    pub fn settings(&self) -> String {
        format!(
            "scenario={} quick={} profile={} jobs={} web={} compile={} load_s={} base_rate={} \
             spike_rate={} spike_from_s={} spike_len_s={} compile_at_s={} cost_ms={} timeout_s={} \
             window_s={} slo_ms={} {}",
            self.scenario.slug(),
            self.quick,
            self.profile.make_command(self.jobs).replace(' ', "_"),
            self.jobs,
            self.scenario.web().show().replace(' ', ""),
            self.scenario.compile().show().replace(' ', ""),
            self.duration.as_secs(),
            self.base_rate,
            self.spike_rate,
            self.spike_from.as_secs(),
            self.spike_len.as_secs(),
            self.compile_at.as_secs(),
            self.cost.as_millis(),
            self.timeout.as_secs(),
            self.window.as_secs(),
            self.slo_p99_ms,
            engine_defaults(),
        )
    }

    /// The method paragraph of the report.
    pub fn description(&self, iters: u64) -> String {
        format!(
            "Web service: `experiments serve` on 127.0.0.1:{} (hostNetwork, SO_REUSEPORT, 4 threads), {iters} iterations ≈ {:?} of CPU \
             per request (calibrated when the plan was made), requests/limits {}. Open-loop load from the host: {}/s for {:?}, {}/s from {:?} for \
             {:?}; latency from the intended send time, timeout {:?} (a timed-out request counts as {:?} in the percentiles and as an error). \
             Compile: zstd `{}` in a pod (requests/limits {}) created at {:?} (at 0 s for the compile floor). HPA: autoscaling/v1, 50 % CPU, \
             1–10 replicas. burst-scaler: the chart (controller + node agent), web `LatencySensitive` (cpu {}–2), compile `Batch` (floor 500m), \
             both `Auto`. Oracle: when the compile is created the harness sets the web's pod and container cgroups to `cpu.shares` 2048 and a \
             2-core quota (its BurstScaler's maximum) and leaves the compile alone. SLO: p99 ≤ {} ms and ≤ 1 % errors in every {:?} window. \
             \"Web waited for CPU\" is PSI `some` of the web pods' cgroups (time some web task was runnable but not running; it includes \
             time throttled, shown apart); \"requested core-s\" sums the running web pods' CPU requests over the run. Arms run once per \
             round in a random order (seed in `{}-plan.json`); the floors in the first round only.",
            self.addr.port(),
            self.cost,
            self.scenario.web().show(),
            self.base_rate,
            self.duration,
            self.spike_rate,
            self.spike_from,
            self.spike_len,
            self.timeout,
            self.timeout,
            self.profile.make_command(self.jobs),
            self.scenario.compile().show(),
            self.compile_at,
            self.scenario.web().request,
            self.slo_p99_ms,
            self.window,
            self.scenario.slug(),
        )
    }

    fn plan(&self) -> load::Plan {
        load::Plan {
            steps: vec![
                Step {
                    from: Duration::ZERO,
                    rate: self.base_rate,
                },
                Step {
                    from: self.spike_from,
                    rate: self.spike_rate,
                },
                Step {
                    from: self.spike_from + self.spike_len,
                    rate: self.base_rate,
                },
            ],
            duration: self.duration,
            timeout: self.timeout,
            window: self.window,
            max_in_flight: 2000,
        }
    }
}

/// One 5-second window of one arm.
#[derive(Clone, Debug, Default)]
pub struct WindowRow {
    pub t: f64,
    pub sent: u64,
    pub errors: u64,
    pub p50: Option<f64>,
    pub p95: Option<f64>,
    pub p99: Option<f64>,
    pub max: Option<f64>,
    pub web_running: usize,
    pub web_pending: usize,
    pub web_metrics_m: f64,
    pub web_cgroup_m: f64,
    pub web_throttled_ms: f64,
    /// Time some web task waited for a CPU (PSI `some`, summed over replicas), ms.
    pub web_pressure_ms: f64,
    pub compile_metrics_m: f64,
    pub compile_cgroup_m: f64,
    /// What the cgroups enforce at the window's end (summed over web replicas): CPU limits
    /// (millicores; none = unlimited) and shares.
    pub web_limit_m: Option<f64>,
    pub web_shares: Option<u64>,
    pub compile_limit_m: Option<f64>,
    pub hpa_desired: Option<i32>,
    pub hpa_utilization: Option<i32>,
}

pub struct ArmResult {
    pub arm: Arm,
    pub windows: Vec<WindowRow>,
    pub pods: Vec<PodSample>,
    pub total_p: [Option<f64>; 3],
    pub sent: u64,
    pub errors: u64,
    pub build: Option<BuildDone>,
    pub build_wall_s: Option<f64>,
    /// CPU-seconds per app (web, compile) from the pod cgroups, over the arm.
    pub cpu_s: BTreeMap<String, f64>,
    /// burst-scaler's Events (seconds from the arm's start, pod, action, reason).
    pub actuations: Vec<(f64, String, String, String)>,
    /// The first change of the web's or the compile's cgroup limit or weight: (plan-clock
    /// seconds, what changed).
    pub first_change: Option<(f64, String)>,
    /// Plan-clock seconds at which the first web replica added during the run was Ready.
    pub first_replica_ready_s: Option<f64>,
}

impl ArmResult {
    #[cfg(test)]
    fn empty(arm: Arm) -> ArmResult {
        ArmResult {
            arm,
            windows: vec![],
            pods: vec![],
            total_p: [None; 3],
            sent: 0,
            errors: 0,
            build: None,
            build_wall_s: None,
            cpu_s: BTreeMap::new(),
            actuations: vec![],
            first_change: None,
            first_replica_ready_s: None,
        }
    }

    /// The run's summary row (`<slug>-runs.csv`).
    pub fn run_row(&self, opts: &Options, round: u32, started: String) -> RunRow {
        let ws = opts.window.as_secs_f64();
        let web = self.arm.has_web();
        let compile = self.arm.has_compile();
        let worst = self
            .windows
            .iter()
            .filter_map(|w| w.p99)
            .fold(None, |a: Option<f64>, p| Some(a.map_or(p, |a| a.max(p))));
        let request = crate::cgroup::millicores(opts.scenario.web().request).unwrap_or(0.0);
        let (ran, spike) = self.compile_in_spike(opts);
        RunRow {
            round,
            arm: self.arm.slug().to_string(),
            started,
            sent: self.sent,
            errors: self.errors,
            p50_ms: self.total_p[0],
            p95_ms: self.total_p[1],
            p99_ms: self.total_p[2],
            worst_window_p99_ms: worst,
            s_over_slo: web.then(|| self.seconds_over_slo(opts.slo_p99_ms, ws)),
            web_cpu_wait_s: web
                .then(|| self.windows.iter().map(|w| w.web_pressure_ms).sum::<f64>() / 1000.0),
            web_throttled_s: web
                .then(|| self.windows.iter().map(|w| w.web_throttled_ms).sum::<f64>() / 1000.0),
            max_web_replicas: web.then(|| self.max_replicas() as f64),
            web_requested_core_s: web.then(|| {
                self.windows
                    .iter()
                    .map(|w| w.web_running as f64 * request / 1000.0 * ws)
                    .sum()
            }),
            compile_s: self.build.map(|b| b.ms as f64 / 1000.0),
            compile_wall_s: self.build_wall_s,
            compile_spike_windows: (web && compile).then_some(ran as u32),
            spike_windows: (web && compile).then_some(spike as u32),
            web_cpu_s: web.then(|| self.cpu_seconds("web")),
            compile_cpu_s: compile.then(|| self.cpu_seconds("compile")),
            first_change_s: self.first_change.as_ref().map(|c| c.0),
            first_change: self
                .first_change
                .as_ref()
                .map(|c| c.1.clone())
                .unwrap_or_default(),
            first_replica_ready_s: self.first_replica_ready_s,
            onset_s: opts.scenario.onset(opts).as_secs_f64(),
            settings: opts.settings(),
        }
    }

    /// Seconds of windows that broke the SLO: p99 above the bound, or more than 1 % errors.
    pub fn seconds_over_slo(&self, slo_p99_ms: f64, window_s: f64) -> f64 {
        self.windows
            .iter()
            .filter(|w| w.sent > 0)
            .filter(|w| w.p99.is_none_or(|p| p > slo_p99_ms) || w.errors * 100 > w.sent)
            .count() as f64
            * window_s
    }

    fn max_replicas(&self) -> usize {
        self.windows
            .iter()
            .map(|w| w.web_running)
            .max()
            .unwrap_or(0)
    }

    /// (windows of the spike in which the compile used ≥ 100m, windows of the spike).
    fn compile_in_spike(&self, opts: &Options) -> (usize, usize) {
        let from = opts.spike_from.as_secs_f64();
        let to = (opts.spike_from + opts.spike_len).as_secs_f64();
        let ws = opts.window.as_secs_f64();
        let spike: Vec<&WindowRow> = self
            .windows
            .iter()
            .filter(|w| w.t < to && w.t + ws > from)
            .collect();
        let ran = spike.iter().filter(|w| w.compile_cgroup_m >= 100.0).count();
        (ran, spike.len())
    }

    fn cpu_seconds(&self, app: &str) -> f64 {
        self.cpu_s.get(app).copied().unwrap_or(0.0)
    }
}

pub async fn run(
    client: &Client,
    dir: &RunDir,
    opts: &Options,
    images: &(String, String),
    progress: &Progress,
) -> anyhow::Result<String> {
    let iters = crate::serve::calibrate(opts.cost);
    let slug = opts.scenario.slug();
    progress.say(format!(
        "{slug}: {} iterations ≈ {:?} of work per request on this machine (idle)",
        iters, opts.cost
    ));
    let plan = load_or_make_plan(dir, opts, iters)?;
    let (done, bad) = read_runs(&dir.path, slug)?;
    for b in bad {
        progress.say(format!("{slug}: warning: {b}"));
    }
    let done: BTreeSet<(u32, String)> = done.into_iter().map(|r| (r.round, r.arm)).collect();
    let todo = plan.remaining(&done);
    progress.say(format!(
        "{slug}: plan: {} round(s), seed {}; {} arm run(s) done, {} to go (≈ {} min)",
        plan.rounds.len(),
        plan.seed,
        done.len(),
        todo.len(),
        todo.len() as u64 * (opts.duration.as_secs() + 30) / 60
    ));
    for (round, arm) in todo {
        progress.say(format!("{slug}: round {round}, arm {}", arm.slug()));
        let started = jiff::Zoned::now()
            .strftime("%Y-%m-%dT%H:%M:%S%z")
            .to_string();
        let r = run_arm(client, arm, opts, images, iters, progress).await;
        if arm == Arm::BurstScaler {
            let ns = format!("{}{slug}-{}", cluster::NS_PREFIX, arm.slug());
            if let Err(e) = uninstall_burst_scaler(client, &ns, progress).await {
                progress.say(format!("{slug}: uninstalling burst-scaler: {e}"));
            }
        }
        cluster::delete_experiment_namespaces(client, false).await?;
        wait_port_free(opts.addr).await?;
        let r = r?;
        let row = r.run_row(opts, round, started);
        progress.say(format!(
            "{slug}: round {round}, arm {}: p99 {} ms, errors {}/{}, {} s over SLO, compile {} s, first change {}",
            arm.slug(),
            opt(r.total_p[2], 1),
            r.errors,
            r.sent,
            opt(row.s_over_slo, 0),
            opt(row.compile_s, 1),
            match row.first_change_s {
                Some(t) => format!("at {t:.1} s ({})", row.first_change),
                None => "none".into(),
            }
        ));
        append_arm(dir, slug, round, &r)?;
        // The summary row last: a crash before it repeats the whole arm run on resume.
        append_csv_row(
            &dir.file(&format!("{slug}-runs.csv")),
            RUNS_HEADER,
            &row.fields(),
        )?;
    }
    let tables = E2Report(opts.scenario).report(
        std::slice::from_ref(&dir.path),
        &dir.path,
        &dir.path,
        &ReportOptions::default(),
    )?;
    let mut md = tables.section;
    if !tables.failures.is_empty() {
        let _ = writeln!(md, "\nPreconditions that do not hold in this directory:\n");
        for f in &tables.failures {
            let _ = writeln!(md, "- {f}");
            progress.say(format!("{slug}: precondition not met: {f}"));
        }
    }
    Ok(md)
}

/// The plan stored in `dir`, or a new one (written before the first arm runs).
fn load_or_make_plan(dir: &RunDir, opts: &Options, iters: u64) -> anyhow::Result<Plan> {
    let slug = opts.scenario.slug();
    let path = dir.file(&Plan::file(slug));
    if path.exists() {
        let text =
            std::fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))?;
        let plan: Plan =
            serde_json::from_str(&text).with_context(|| format!("parse {}", path.display()))?;
        if plan.settings != opts.settings() {
            bail!(
                "{} was made with other settings ({}) than this run's ({}): resume with the same \
                 flags, or start a new results directory",
                path.display(),
                plan.settings,
                opts.settings()
            );
        }
        return Ok(plan);
    }
    let plan = Plan::new(
        opts.scenario,
        opts.seed,
        opts.rounds,
        &opts.arms,
        opts.quick,
        opts.settings(),
        opts.description(iters),
    );
    dir.write(&Plan::file(slug), &serde_json::to_string_pretty(&plan)?)?;
    Ok(plan)
}

/// Whether the plan in `dir` (if any) is a `--quick` one.
pub fn plan_is_quick(dir: &std::path::Path) -> bool {
    [Scenario::Starvation, Scenario::LimitBound]
        .iter()
        .any(|s| {
            std::fs::read_to_string(dir.join(Plan::file(s.slug())))
                .ok()
                .and_then(|t| serde_json::from_str::<Plan>(&t).ok())
                .is_some_and(|p| p.quick)
        })
}

// ---- The burst-scaler arm -------------------------------------------------------------------
// The chart (controller + node agent, the project's image) installed into the arm's namespace,
// a BurstScaler for `web` (LatencySensitive, Auto) and one for `compile` (Batch, Auto), then the
// same load plan as every arm. What burst-scaler did is recorded twice: the pod cgroups' limits
// and shares in every window (ground truth, `e2-windows.csv`), and the agent's Events with
// their reasons (`e2-actuations.csv`). The chart is uninstalled afterwards, which restores
// every pod.

/// The release of the burst-scaler arm.
const RELEASE: &str = "bsc-e2";

fn repo() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_else(|| std::path::PathBuf::from("."))
}

/// `helm`, from PATH or from the local cluster's tool cache.
fn helm() -> std::process::Command {
    let cached = std::env::var("HOME")
        .map(|h| std::path::PathBuf::from(h).join(".cache/burst-scaler/tools/bin/helm"))
        .ok()
        .filter(|p| p.exists());
    std::process::Command::new(cached.unwrap_or_else(|| "helm".into()))
}

async fn run_helm(args: Vec<String>) -> anyhow::Result<()> {
    let shown = args.join(" ");
    let out = tokio::task::spawn_blocking(move || helm().args(&args).output())
        .await?
        .context("run helm")?;
    if !out.status.success() {
        bail!(
            "helm {shown}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// Builds (cached) and imports the controller/agent image, installs the chart into `ns`
/// governing only `ns`, and creates the two BurstScalers.
async fn install_burst_scaler(client: &Client, ns: &str, scenario: Scenario) -> anyhow::Result<()> {
    install_chart(client, ns, RELEASE).await?;
    create_scalers(
        client,
        ns,
        &[
            (
                "web",
                serde_json::json!({"selector": {"matchLabels": {"app": "web"}}, "role": "LatencySensitive",
                    "cpu": {"min": scenario.web().request, "max": "2"}, "mode": "Auto"}),
            ),
            (
                "compile",
                serde_json::json!({"selector": {"matchLabels": {"app": "compile"}}, "role": "Batch",
                    "cpu": {"min": "100m", "max": "2"}, "batch": {"floor": "500m"}, "mode": "Auto"}),
            ),
        ],
    )
    .await
}

/// Builds (cached) and imports the controller/agent image and installs the chart as `release`
/// into `ns`, governing only `ns` (CRDs from the Rust types, metrics ports off the E2 service's).
pub(crate) async fn install_chart(client: &Client, ns: &str, release: &str) -> anyhow::Result<()> {
    let root = repo();
    let build = root.join("tests/cluster/build-controller-image");
    let st = tokio::task::spawn_blocking(move || {
        std::process::Command::new("bash")
            .arg(build)
            .stdout(std::process::Stdio::null())
            .status()
    })
    .await?
    .context("tests/cluster/build-controller-image")?;
    if !st.success() {
        bail!("tests/cluster/build-controller-image failed ({st})");
    }
    ensure_crds(client).await?;
    let chart = root.join("charts/burst-scaler");
    let values = chart.join("ci/local-cluster-values.yaml");
    run_helm(vec![
        "upgrade".into(),
        "--install".into(),
        "--skip-crds".into(),
        release.into(),
        chart.display().to_string(),
        "--namespace".into(),
        ns.into(),
        "-f".into(),
        values.display().to_string(),
        "--set".into(),
        format!("controller.watchNamespaces={{{ns}}}"),
        // The service listens on 18080 (hostNetwork): the controller's and agent's metrics
        // ports move out of its way.
        "--set".into(),
        "metrics.port=18090".into(),
        "--set".into(),
        "agent.metricsPort=18091".into(),
        "--wait".into(),
        "--timeout".into(),
        "180s".into(),
    ])
    .await?;
    Ok(())
}

/// Creates BurstScalers (name, spec) in `ns`.
pub(crate) async fn create_scalers(
    client: &Client,
    ns: &str,
    scalers: &[(&str, serde_json::Value)],
) -> anyhow::Result<()> {
    let api: Api<burst_scaler::api::BurstScaler> = Api::namespaced(client.clone(), ns);
    for (name, spec) in scalers {
        let obj: burst_scaler::api::BurstScaler = serde_json::from_value(serde_json::json!({
            "apiVersion": "burstscaler.dev/v1alpha1", "kind": "BurstScaler",
            "metadata": {"name": name}, "spec": spec,
        }))?;
        api.create(&kube::api::PostParams::default(), &obj)
            .await
            .with_context(|| format!("create BurstScaler {name}"))?;
    }
    Ok(())
}

/// Deletes the BurstScalers while the controller still runs (it restores their pods and
/// removes its finalizer), then uninstalls the chart (the agent restores everything it holds
/// on SIGTERM). A BurstScaler still there after 60 s has its finalizer removed, with a
/// warning, so that the namespace can go.
async fn uninstall_burst_scaler(
    client: &Client,
    ns: &str,
    progress: &Progress,
) -> anyhow::Result<()> {
    uninstall(client, ns, RELEASE, progress).await
}

/// [`uninstall_burst_scaler`] for any release: every BurstScaler of `ns` first, then the chart.
pub(crate) async fn uninstall(
    client: &Client,
    ns: &str,
    release: &str,
    progress: &Progress,
) -> anyhow::Result<()> {
    let api: Api<burst_scaler::api::BurstScaler> = Api::namespaced(client.clone(), ns);
    let _ = api
        .delete_collection(
            &kube::api::DeleteParams::default(),
            &kube::api::ListParams::default(),
        )
        .await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let left = api.list(&kube::api::ListParams::default()).await?.items;
        if left.is_empty() {
            break;
        }
        if Instant::now() > deadline {
            for b in left {
                let name = b.metadata.name.unwrap_or_default();
                progress.say(format!(
                    "warning: BurstScaler {ns}/{name} still there 60 s after deletion: removing its finalizer"
                ));
                drop_finalizers(&api, &name).await;
            }
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    run_helm(vec![
        "uninstall".into(),
        release.into(),
        "--namespace".into(),
        ns.into(),
        "--wait".into(),
        "--timeout".into(),
        "120s".into(),
    ])
    .await
}

/// Uninstalls every Helm release in `ns` ([`uninstall`]: its BurstScalers first); BurstScalers
/// left without a release (their controller gone) lose their finalizer, so the namespace can go.
pub(crate) async fn uninstall_releases(client: &Client, ns: &str) -> anyhow::Result<()> {
    let args = vec![
        "list".to_string(),
        "-q".into(),
        "--namespace".into(),
        ns.into(),
    ];
    let out = tokio::task::spawn_blocking(move || helm().args(&args).output())
        .await?
        .context("run helm list")?;
    if !out.status.success() {
        bail!(
            "helm list -n {ns}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let progress = Progress::new();
    for release in String::from_utf8_lossy(&out.stdout).split_whitespace() {
        progress.say(format!("{ns}: uninstalling the leftover release {release}"));
        uninstall(client, ns, release, &progress).await?;
    }
    let api: Api<burst_scaler::api::BurstScaler> = Api::namespaced(client.clone(), ns);
    let left = match api.list(&kube::api::ListParams::default()).await {
        Ok(l) => l.items,
        // No CRD yet: nothing to clean.
        Err(_) => vec![],
    };
    for b in left {
        let name = b.metadata.name.unwrap_or_default();
        progress.say(format!(
            "{ns}: BurstScaler {name} has no controller left: removing its finalizer"
        ));
        let _ = api.delete(&name, &kube::api::DeleteParams::default()).await;
        drop_finalizers(&api, &name).await;
    }
    Ok(())
}

/// Removes a BurstScaler's finalizers (its controller is gone or stuck), best effort.
async fn drop_finalizers(api: &Api<burst_scaler::api::BurstScaler>, name: &str) {
    let patch = serde_json::json!({"metadata": {"finalizers": null}});
    let _ = api
        .patch(
            name,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(patch),
        )
        .await;
}

/// Installs (or updates) burst-scaler's CRDs from the Rust types, as the README's
/// `--skip-crds` install does: Helm's own CRD install cannot update them on a 1.20 API server
/// (its server-side apply refuses the `x-kubernetes-validations` fields 1.20 does not know).
async fn ensure_crds(client: &Client) -> anyhow::Result<()> {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in burst_scaler::crdgen::crds() {
        let name = crd.metadata.name.clone().unwrap_or_default();
        match api.get_opt(&name).await? {
            None => {
                api.create(&kube::api::PostParams::default(), &crd)
                    .await
                    .with_context(|| format!("create CRD {name}"))?;
            }
            Some(old) => {
                let mut crd = crd.clone();
                crd.metadata.resource_version = old.metadata.resource_version;
                api.replace(&name, &kube::api::PostParams::default(), &crd)
                    .await
                    .with_context(|| format!("update CRD {name}"))?;
            }
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let est = api
                .get_opt(&name)
                .await?
                .and_then(|c| c.status)
                .is_some_and(|s| {
                    s.conditions
                        .unwrap_or_default()
                        .iter()
                        .any(|c| c.type_ == "Established" && c.status == "True")
                });
            if est {
                break;
            }
            if Instant::now() > deadline {
                bail!("CRD {name} not established after 30 s");
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
    Ok(())
}

/// The burst-scaler Events of the arm: (seconds from `start`, pod, action, reason).
async fn actuations(
    client: &Client,
    ns: &str,
    start: jiff::Timestamp,
) -> Vec<(f64, String, String, String)> {
    let api: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), ns);
    let Ok(list) = api.list(&kube::api::ListParams::default()).await else {
        return vec![];
    };
    let mut out: Vec<_> = list
        .items
        .into_iter()
        .filter(|e| {
            e.reporting_controller
                .as_deref()
                .is_some_and(|c| c.contains("burst-scaler"))
        })
        .map(|e| {
            let at = e
                .event_time
                .as_ref()
                .map(|t| t.0)
                .or_else(|| e.deprecated_last_timestamp.as_ref().map(|t| t.0))
                .unwrap_or(start);
            (
                at.duration_since(start).as_secs_f64(),
                e.related.and_then(|r| r.name).unwrap_or_default(),
                e.reason.unwrap_or_default(),
                e.note.unwrap_or_default(),
            )
        })
        .collect();
    out.sort_by(|a, b| a.0.total_cmp(&b.0));
    out
}

/// The oracle's static split, written at `at` (the compile's creation): every running web
/// pod's pod and container cgroups get `cpu.shares` 2048 and a 2-core quota (pod level first:
/// a child's quota may not exceed its parent's). The compile is left alone.
async fn oracle_split(client: &Client, ns: &str, at: Instant) -> anyhow::Result<()> {
    tokio::time::sleep_until(at).await;
    let pods = Api::<k8s_openapi::api::core::v1::Pod>::namespaced(client.clone(), ns)
        .list(&kube::api::ListParams::default().labels("app=web"))
        .await?;
    let mut set = 0;
    for (uid, container) in pods.items.iter().filter_map(cluster::pod_and_container) {
        let Some(pod) = pod_cgroup(&uid) else {
            continue;
        };
        for cg in [pod.clone(), pod.child(&container)] {
            write_cpu(&cg, 2048, 200_000)?;
        }
        set += 1;
    }
    if set == 0 {
        bail!("oracle: no running web pod's cgroup found in {ns}");
    }
    Ok(())
}

fn write_cpu(cg: &CgroupPaths, shares: u64, quota_us: i64) -> anyhow::Result<()> {
    for (file, value) in [
        ("cpu.cfs_period_us", "100000".to_string()),
        ("cpu.cfs_quota_us", quota_us.to_string()),
        ("cpu.shares", shares.to_string()),
    ] {
        let path = cg.cpu.join(file);
        std::fs::write(&path, &value)
            .with_context(|| format!("oracle: write {value} to {}", path.display()))?;
    }
    Ok(())
}

/// A container [`watch_first_change`] follows: its label, cgroup, and limits when first seen.
type Watched = (String, CgroupPaths, (Option<f64>, u64));

/// Watches the cgroups of the web pods that run at the start and of the compile every 100 ms
/// (the pod list every second) until told to stop; returns the first change of a container's
/// CPU limit or weight (plan-clock seconds, what changed): burst-scaler's first actuation, the
/// oracle's write. New replicas start with their spec and are not changes.
async fn watch_first_change(
    client: Client,
    ns: String,
    t0: Instant,
    mut stop: watch::Receiver<bool>,
) -> Option<(f64, String)> {
    let api = Api::<k8s_openapi::api::core::v1::Pod>::namespaced(client, &ns);
    // Container ID → (label, cgroup, its limits when first seen).
    let mut watched: BTreeMap<String, Watched> = BTreeMap::new();
    let mut web_listed = false;
    let mut next_list = Instant::now();
    let show = |l: &(Option<f64>, u64)| {
        format!(
            "limit {}, shares {}",
            l.0.map_or("none".to_string(), |m| format!("{m:.0}m")),
            l.1
        )
    };
    loop {
        if Instant::now() >= next_list {
            if let Ok(list) = api.list(&kube::api::ListParams::default()).await {
                for p in &list.items {
                    let app = cluster::app_of(p);
                    let wanted = app == "compile" || (app == "web" && !web_listed);
                    let Some((uid, id)) = cluster::pod_and_container(p).filter(|_| wanted) else {
                        continue;
                    };
                    if watched.contains_key(&id) {
                        continue;
                    }
                    let Some(cg) = pod_cgroup(&uid).map(|pc| pc.child(&id)) else {
                        continue;
                    };
                    if let Ok(l) = cg.limits() {
                        let name = p.metadata.name.clone().unwrap_or_default();
                        watched.insert(id, (format!("{app} ({name})"), cg, l));
                    }
                }
                web_listed = web_listed || watched.values().any(|w| w.0.starts_with("web"));
            }
            next_list = Instant::now() + Duration::from_secs(1);
        }
        for (label, cg, first) in watched.values() {
            if let Ok(now) = cg.limits()
                && now != *first
            {
                return Some((
                    t0.elapsed().as_secs_f64(),
                    format!("{label}: {} → {}", show(first), show(&now)),
                ));
            }
        }
        tokio::select! {
            _ = stop.changed() => return None,
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
    }
}

/// Plan-clock seconds at which the first web replica created after `start` became Ready.
async fn first_added_replica_ready(
    client: &Client,
    ns: &str,
    start: jiff::Timestamp,
) -> Option<f64> {
    let pods = Api::<k8s_openapi::api::core::v1::Pod>::namespaced(client.clone(), ns)
        .list(&kube::api::ListParams::default().labels("app=web"))
        .await
        .ok()?;
    pods.items
        .iter()
        .filter(|p| {
            p.metadata
                .creation_timestamp
                .as_ref()
                .is_some_and(|c| c.0 > start)
        })
        .filter_map(|p| {
            p.status
                .as_ref()?
                .conditions
                .as_ref()?
                .iter()
                .find(|c| c.type_ == "Ready" && c.status == "True")?
                .last_transition_time
                .as_ref()
                .map(|t| t.0.duration_since(start).as_secs_f64())
        })
        .min_by(f64::total_cmp)
}

async fn wait_port_free(addr: SocketAddr) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while cluster::port_in_use(addr).await {
        if Instant::now() > deadline {
            bail!("{addr} still answers 60 s after the arm's namespace was deleted");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Ok(())
}

async fn run_arm(
    client: &Client,
    arm: Arm,
    opts: &Options,
    images: &(String, String),
    iters: u64,
    progress: &Progress,
) -> anyhow::Result<ArmResult> {
    let (compile_image, web_image) = images;
    if cluster::port_in_use(opts.addr).await {
        bail!(
            "something already listens on {}: stop it, the load would go to it",
            opts.addr
        );
    }
    let slug = opts.scenario.slug();
    let ns = cluster::namespace(client, &format!("{slug}-{}", arm.slug())).await?;
    if arm == Arm::BurstScaler {
        progress.say(format!(
            "{slug}: burst-scaler: installing the chart (controller + node agent)"
        ));
        install_burst_scaler(client, &ns, opts.scenario).await?;
    }
    if arm.has_web() {
        let cmd = vec![
            "/usr/local/bin/experiments".to_string(),
            "serve".into(),
            "--addr".into(),
            opts.addr.to_string(),
            "--work-iters".into(),
            iters.to_string(),
            "--workers".into(),
            "4".into(),
        ];
        cluster::create_deployment(
            client,
            &ns,
            "web",
            web_image,
            cmd,
            opts.scenario.web(),
            true,
        )
        .await?;
        if arm == Arm::Hpa {
            cluster::create_hpa(client, &ns, "web", 50, 1, 10).await?;
        }
        cluster::wait_http(opts.addr, Duration::from_secs(90)).await?;
        // Let the kubelet take its first CPU samples (metrics.k8s.io needs two).
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    let t0 = Instant::now();
    // The same instant on the wall clock, for the Events' times (t = seconds of the load plan).
    let wall_start = jiff::Timestamp::now();
    let (stop_tx, stop_rx) = watch::channel(false);
    let sampler = tokio::spawn(sample_loop(
        client.clone(),
        ns.clone(),
        t0,
        opts.window,
        stop_rx.clone(),
    ));
    let watcher = tokio::spawn(watch_first_change(client.clone(), ns.clone(), t0, stop_rx));
    let oracle = (arm == Arm::Oracle).then(|| {
        let (client, ns) = (client.clone(), ns.clone());
        let at = t0 + opts.compile_at;
        tokio::spawn(async move { oracle_split(&client, &ns, at).await })
    });
    let compile = arm.has_compile().then(|| {
        let client = client.clone();
        let ns = ns.clone();
        let image = compile_image.clone();
        let at = if arm == Arm::FloorCompile {
            Duration::ZERO
        } else {
            opts.compile_at
        };
        let script = opts.profile.pod_script(opts.jobs);
        let bound = opts.compile_bound;
        let res = opts.scenario.compile();
        tokio::spawn(
            async move { compile_task(client, ns, image, script, res, t0 + at, bound).await },
        )
    });
    let report = if arm.has_web() {
        progress.say(format!(
            "{slug}: {}: load {:?} at {}/s, spike {}/s from {:?} for {:?}",
            arm.slug(),
            opts.duration,
            opts.base_rate,
            opts.spike_rate,
            opts.spike_from,
            opts.spike_len
        ));
        Some(load::run(opts.addr, &opts.plan()).await?)
    } else {
        None
    };
    let (build, build_wall_s) = match compile {
        Some(task) => {
            progress.say(format!("{slug}: {}: waiting for the compile", arm.slug()));
            let (b, wall) = task.await??;
            (Some(b), Some(wall))
        }
        None => (None, None),
    };
    if let Some(task) = oracle {
        task.await??;
    }
    let first_replica_ready_s = if arm.has_web() {
        first_added_replica_ready(client, &ns, wall_start).await
    } else {
        None
    };
    let _ = stop_tx.send(true);
    let (pods, hpa, cpu_s) = sampler.await?;
    let first_change = watcher.await?;
    let mut windows = Vec::new();
    let n = match &report {
        Some(r) => r.windows.len(),
        None => pods
            .iter()
            .map(|p| (p.t / opts.window.as_secs_f64()) as usize)
            .max()
            .unwrap_or(0),
    };
    for i in 0..n {
        let t = i as f64 * opts.window.as_secs_f64();
        let mut w = WindowRow {
            t,
            ..WindowRow::default()
        };
        if let Some(lw) = report.as_ref().and_then(|r| r.windows.get(i)) {
            w.sent = lw.sent;
            w.errors = lw.errors;
            w.p50 = lw.percentile_ms(0.50);
            w.p95 = lw.percentile_ms(0.95);
            w.p99 = lw.percentile_ms(0.99);
            w.max = lw.percentile_ms(1.0);
        }
        // The sample taken at the end of the window holds the window's cgroup CPU.
        let end = t + opts.window.as_secs_f64();
        for p in pods.iter().filter(|p| (p.t - end).abs() < 0.01) {
            let web = p.app == "web";
            if web {
                match p.phase.as_str() {
                    "Running" => w.web_running += 1,
                    "Pending" => w.web_pending += 1,
                    _ => {}
                }
                w.web_metrics_m += p.metrics_m.unwrap_or(0.0);
                w.web_cgroup_m += p.cgroup_m.unwrap_or(0.0);
                w.web_throttled_ms += p.throttled_ms.unwrap_or(0.0);
                w.web_pressure_ms += p.pressure_ms.unwrap_or(0.0);
                if p.phase == "Running" {
                    if let Some(l) = p.limit_m {
                        *w.web_limit_m.get_or_insert(0.0) += l;
                    }
                    if let Some(sh) = p.shares {
                        *w.web_shares.get_or_insert(0) += sh;
                    }
                }
            } else if p.app == "compile" {
                // (Not the burst-scaler arm's own controller and agent pods.)
                w.compile_metrics_m += p.metrics_m.unwrap_or(0.0);
                w.compile_cgroup_m += p.cgroup_m.unwrap_or(0.0);
                if p.phase == "Running" {
                    w.compile_limit_m = p.limit_m;
                }
            }
        }
        if let Some(h) = hpa.iter().find(|h| (h.t - end).abs() < 0.01) {
            w.hpa_desired = Some(h.desired);
            w.hpa_utilization = h.utilization;
        }
        windows.push(w);
    }
    let total_p = match &report {
        Some(r) if !r.total.is_empty() => {
            [0.5, 0.95, 0.99].map(|q| Some(r.total.value_at_quantile(q) as f64 / 1000.0))
        }
        _ => [None; 3],
    };
    Ok(ArmResult {
        arm,
        first_change,
        first_replica_ready_s,
        windows,
        pods,
        total_p,
        sent: report.as_ref().map_or(0, |r| r.sent),
        errors: report.as_ref().map_or(0, |r| r.errors),
        build,
        build_wall_s,
        cpu_s,
        actuations: if arm == Arm::BurstScaler {
            actuations(client, &ns, wall_start).await
        } else {
            vec![]
        },
    })
}

/// Samples every window until told to stop, then once more (so the cgroup totals include
/// everything up to the end). Returns the samples and each app's CPU-seconds.
async fn sample_loop(
    client: Client,
    ns: String,
    t0: Instant,
    window: Duration,
    mut stop: watch::Receiver<bool>,
) -> (Vec<PodSample>, Vec<HpaSample>, BTreeMap<String, f64>) {
    let mut sampler = Sampler::new(client, &ns);
    let (mut pods, mut hpa) = (Vec::new(), Vec::new());
    for k in 0u32.. {
        let stopped = tokio::select! {
            _ = stop.changed() => true,
            _ = tokio::time::sleep_until(t0 + window * k) => false,
        };
        // The final sample falls between windows: it only completes the totals.
        let t = if stopped {
            t0.elapsed().as_secs_f64() + 0.5
        } else {
            f64::from(k) * window.as_secs_f64()
        };
        match sampler.sample(t).await {
            Ok((p, h)) if !stopped => {
                pods.extend(p);
                hpa.extend(h);
            }
            Ok(_) => {}
            Err(e) => eprintln!("sample at {t:.0} s: {e:#}"),
        }
        if stopped {
            break;
        }
    }
    let cpu = sampler.cpu_seconds_by_app();
    (pods, hpa, cpu)
}

/// Creates the compile pod at `at`, then waits for its `BSC-BUILD-DONE` line. Returns the
/// build and the seconds from creation to done.
async fn compile_task(
    client: Client,
    ns: String,
    image: String,
    script: String,
    res: Resources,
    at: Instant,
    bound: Duration,
) -> anyhow::Result<(BuildDone, f64)> {
    tokio::time::sleep_until(at).await;
    let created = Instant::now();
    cluster::create_pod(
        &client,
        &ns,
        "compile",
        &image,
        vec!["/bin/sh".into(), "-c".into(), script],
        res,
    )
    .await?;
    loop {
        if let Some(b) = cluster::pod_logs(&client, &ns, "compile")
            .await
            .as_deref()
            .and_then(parse_build_done)
        {
            if b.rc != 0 {
                bail!(
                    "the compile failed (make exit {}); see `kubectl -n {ns} logs compile`",
                    b.rc
                );
            }
            return Ok((b, created.elapsed().as_secs_f64()));
        }
        if created.elapsed() > bound {
            bail!("the compile did not finish within {bound:?}");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Appends one arm run's windows, pod samples and Events to the scenario's CSVs.
fn append_arm(dir: &RunDir, slug: &str, round: u32, r: &ArmResult) -> anyhow::Result<()> {
    let f = |v: Option<f64>| opt(v, 2);
    let head = |rest: Vec<String>| {
        let mut v = vec![round.to_string(), r.arm.slug().to_string()];
        v.extend(rest);
        v
    };
    let windows: Vec<Vec<String>> = r
        .windows
        .iter()
        .map(|w| {
            head(vec![
                format!("{:.0}", w.t),
                w.sent.to_string(),
                w.errors.to_string(),
                f(w.p50),
                f(w.p95),
                f(w.p99),
                f(w.max),
                w.web_running.to_string(),
                w.web_pending.to_string(),
                format!("{:.0}", w.web_metrics_m),
                format!("{:.0}", w.web_cgroup_m),
                format!("{:.1}", w.web_throttled_ms),
                format!("{:.1}", w.web_pressure_ms),
                format!("{:.0}", w.compile_metrics_m),
                format!("{:.0}", w.compile_cgroup_m),
                w.web_limit_m.map(|v| format!("{v:.0}")).unwrap_or_default(),
                w.web_shares.map(|v| v.to_string()).unwrap_or_default(),
                w.compile_limit_m
                    .map(|v| format!("{v:.0}"))
                    .unwrap_or_default(),
                w.hpa_desired.map(|d| d.to_string()).unwrap_or_default(),
                w.hpa_utilization.map(|d| d.to_string()).unwrap_or_default(),
            ])
        })
        .collect();
    append_csv_rows(
        &dir.file(&format!("{slug}-windows.csv")),
        WINDOWS_HEADER,
        &windows,
    )?;
    let acts: Vec<Vec<String>> = r
        .actuations
        .iter()
        .map(|(t, pod, action, reason)| {
            head(vec![
                format!("{t:.1}"),
                pod.clone(),
                action.clone(),
                reason.clone(),
            ])
        })
        .collect();
    append_csv_rows(
        &dir.file(&format!("{slug}-actuations.csv")),
        ACTUATIONS_HEADER,
        &acts,
    )?;
    let pods: Vec<Vec<String>> = r
        .pods
        .iter()
        .map(|p| {
            head(vec![
                format!("{:.0}", p.t),
                p.pod.clone(),
                p.app.clone(),
                p.phase.clone(),
                opt(p.metrics_m, 0),
                opt(p.cgroup_m, 0),
                opt(p.throttled_ms, 1),
            ])
        })
        .collect();
    append_csv_rows(&dir.file(&format!("{slug}-pods.csv")), PODS_HEADER, &pods)
}

/// The engine's default node-signal thresholds, which the arms' BurstScalers do not spell out:
/// runs made with other defaults are a different configuration and are not pooled.
fn engine_defaults() -> String {
    let s = burst_scaler::api::SignalPolicy::default();
    format!(
        "signals=pressure{}/yield{}/throttled{}/for{}s",
        s.cpu_pressure_percent, s.yield_pressure_percent, s.throttled_percent, s.for_seconds
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(sent: u64, errors: u64, p99: Option<f64>) -> WindowRow {
        WindowRow {
            sent,
            errors,
            p99,
            ..WindowRow::default()
        }
    }

    #[test]
    fn slo_counts_slow_and_failing_windows() {
        let mut r = ArmResult::empty(Arm::Hpa);
        r.windows = vec![
            w(500, 0, Some(3.0)),
            w(500, 0, Some(80.0)),
            w(500, 6, Some(3.0)),
            w(500, 5, Some(3.0)),
            w(0, 0, None),
            w(500, 500, None),
        ];
        // Slow window, >1 % errors, all-failed window; exactly 1 % and idle windows are fine.
        assert_eq!(r.seconds_over_slo(50.0, 5.0), 15.0);
    }

    #[test]
    fn the_plan_has_a_spike() {
        let o = Options::new(Scenario::Starvation, true, None, 50.0, 2, None, Some(1));
        let s = o.plan().schedule();
        let per_s = |a: u64, b: u64| {
            s.iter()
                .filter(|t| **t >= Duration::from_secs(a) && **t < Duration::from_secs(b))
                .count() as f64
                / (b - a) as f64
        };
        assert!((per_s(0, 10) - o.base_rate).abs() < 1.0);
        assert!((per_s(10, 15) - o.spike_rate).abs() < 1.0);
    }
}
