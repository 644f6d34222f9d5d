//! E2 — co-location. The web service (hostNetwork, 127.0.0.1, SO_REUSEPORT) under open-loop
//! load with a spike, next to the compile. Arms: the floors (service alone, compile alone), no
//! autoscaler, the stock HPA, and burst-scaler. Two scenarios ([`Scenario`]):
//! - **E2, starvation by shares** (the headline): the service has a small request (100m) and
//!   a limit well above its need (2 cores); the compile a larger request (1 core) and no limit,
//!   started 5 s before the spike so that it runs through it. What hurts the service is the
//!   compile's CPU shares.
//! - **E2b, limit-bound**: the HPA walkthrough's 200m/500m service and a 200m/2 compile that
//!   ends before the spike. What hurts the service is its own limit; the cost side (replicas,
//!   reserved cores) tells the arms apart.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, bail};
use kube::{Api, Client};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::cluster::{self, HpaSample, PodSample, Resources, Sampler, WALKTHROUGH};
use crate::load::{self, Plan, Step};
use crate::plot::{Chart, Series, line_chart};
use crate::report::{Progress, RunDir, opt};
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

    fn title(self) -> &'static str {
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
}

impl Arm {
    pub const ALL: [Arm; 5] = [
        Arm::FloorService,
        Arm::FloorCompile,
        Arm::NoAutoscaler,
        Arm::Hpa,
        Arm::BurstScaler,
    ];

    pub fn slug(self) -> &'static str {
        match self {
            Arm::FloorService => "floor-service",
            Arm::FloorCompile => "floor-compile",
            Arm::NoAutoscaler => "no-autoscaler",
            Arm::Hpa => "hpa",
            Arm::BurstScaler => "burst-scaler",
        }
    }

    fn has_web(self) -> bool {
        self != Arm::FloorCompile
    }

    fn has_compile(self) -> bool {
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
}

impl Options {
    pub fn new(
        scenario: Scenario,
        quick: bool,
        profile: Option<Profile>,
        slo_p99_ms: f64,
        jobs: u32,
    ) -> Options {
        let s = Duration::from_secs;
        let spike_from = if quick { s(12) } else { s(60) };
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
            spike_len: if quick { s(6) } else { s(20) },
            // Starvation: shortly before the spike, so that the build (longer
            // next to the service) runs through it; E2b: well before, as the first run had it.
            compile_at: match (scenario, quick) {
                (Scenario::Starvation, true) => s(10),
                (Scenario::Starvation, false) => spike_from - s(5),
                (Scenario::LimitBound, true) => s(6),
                (Scenario::LimitBound, false) => s(30),
            },
            cost: Duration::from_millis(2),
            timeout: s(1),
            window: s(5),
            slo_p99_ms,
            compile_bound: if quick { s(180) } else { s(600) },
            jobs,
        }
    }

    fn plan(&self) -> Plan {
        Plan {
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
    pub skipped: Option<String>,
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
}

impl ArmResult {
    #[cfg(test)]
    fn skipped(arm: Arm, why: String) -> ArmResult {
        ArmResult {
            arm,
            skipped: Some(why),
            windows: vec![],
            pods: vec![],
            total_p: [None; 3],
            sent: 0,
            errors: 0,
            build: None,
            build_wall_s: None,
            cpu_s: BTreeMap::new(),
            actuations: vec![],
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
) -> anyhow::Result<(String, String)> {
    let iters = crate::serve::calibrate(opts.cost);
    let slug = opts.scenario.slug();
    progress.say(format!(
        "{slug}: {} iterations ≈ {:?} of work per request on this machine (idle)",
        iters, opts.cost
    ));
    let mut results = Vec::new();
    for arm in Arm::ALL {
        progress.say(format!("{slug}: arm {}", arm.slug()));
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
        if let Some(why) = &r.skipped {
            progress.say(format!("{slug}: arm {} skipped: {why}", arm.slug()));
        } else {
            progress.say(format!(
                "{slug}: arm {}: p99 {} ms, errors {}/{}, {} s over SLO, compile {} s",
                arm.slug(),
                opt(r.total_p[2], 1),
                r.errors,
                r.sent,
                r.seconds_over_slo(opts.slo_p99_ms, opts.window.as_secs_f64()),
                opt(r.build.map(|b| b.ms as f64 / 1000.0), 1)
            ));
        }
        results.push(r);
    }
    report(dir, opts, iters, &results)
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
                let patch = serde_json::json!({"metadata": {"finalizers": null}});
                let _ = api
                    .patch(
                        &name,
                        &kube::api::PatchParams::default(),
                        &kube::api::Patch::Merge(patch),
                    )
                    .await;
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
        stop_rx,
    ));
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
    let _ = stop_tx.send(true);
    let (pods, hpa, cpu_s) = sampler.await?;
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
        skipped: None,
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

fn report(
    dir: &RunDir,
    opts: &Options,
    iters: u64,
    results: &[ArmResult],
) -> anyhow::Result<(String, String)> {
    let ws = opts.window.as_secs_f64();
    let slug = opts.scenario.slug();
    let f = |v: Option<f64>| opt(v, 2);
    let mut rows = Vec::new();
    for r in results {
        for w in &r.windows {
            rows.push(vec![
                r.arm.slug().to_string(),
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
            ]);
        }
    }
    dir.csv(
        &format!("{slug}-windows.csv"),
        &[
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
        ],
        &rows,
    )?;
    let act_rows: Vec<Vec<String>> = results
        .iter()
        .flat_map(|r| {
            r.actuations.iter().map(|(t, pod, action, reason)| {
                vec![
                    r.arm.slug().to_string(),
                    format!("{t:.1}"),
                    pod.clone(),
                    action.clone(),
                    reason.clone(),
                ]
            })
        })
        .collect();
    dir.csv(
        &format!("{slug}-actuations.csv"),
        &["arm", "t_s", "pod", "action", "reason"],
        &act_rows,
    )?;
    let pod_rows: Vec<Vec<String>> = results
        .iter()
        .flat_map(|r| {
            r.pods.iter().map(|p| {
                vec![
                    r.arm.slug().to_string(),
                    format!("{:.0}", p.t),
                    p.pod.clone(),
                    p.app.clone(),
                    p.phase.clone(),
                    opt(p.metrics_m, 0),
                    opt(p.cgroup_m, 0),
                    opt(p.throttled_ms, 1),
                ]
            })
        })
        .collect();
    dir.csv(
        &format!("{slug}-pods.csv"),
        &[
            "arm",
            "t_s",
            "pod",
            "app",
            "phase",
            "metrics_m",
            "cgroup_m",
            "throttled_ms",
        ],
        &pod_rows,
    )?;

    let mut table = String::new();
    let _ = writeln!(
        table,
        "| arm | p50 ms | p95 ms | p99 ms | worst 5-s p99 ms | errors | s over SLO | web waited for CPU s (throttled s) | max web replicas | web requested core-s | compile makespan s (pod created → done) | compile ran in spike windows | web CPU-s | compile CPU-s |"
    );
    let _ = writeln!(
        table,
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    );
    for r in results {
        if let Some(why) = &r.skipped {
            let _ = writeln!(table, "| {} | skipped: {why} ||||||||||||| ", r.arm.slug());
            continue;
        }
        let worst = r
            .windows
            .iter()
            .filter_map(|w| w.p99)
            .fold(None, |a: Option<f64>, p| Some(a.map_or(p, |a| a.max(p))));
        let web = r.arm.has_web();
        let waited: f64 = r.windows.iter().map(|w| w.web_pressure_ms).sum::<f64>() / 1000.0;
        let throttled: f64 = r.windows.iter().map(|w| w.web_throttled_ms).sum::<f64>() / 1000.0;
        let request = crate::cgroup::millicores(opts.scenario.web().request).unwrap_or(0.0);
        let reserved: f64 = r
            .windows
            .iter()
            .map(|w| w.web_running as f64 * request / 1000.0 * ws)
            .sum();
        let (ran, spike) = r.compile_in_spike(opts);
        let _ = writeln!(
            table,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.arm.slug(),
            opt(r.total_p[0], 1),
            opt(r.total_p[1], 1),
            opt(r.total_p[2], 1),
            opt(worst, 1),
            if web {
                format!("{} / {}", r.errors, r.sent)
            } else {
                "–".into()
            },
            if web {
                format!("{:.0}", r.seconds_over_slo(opts.slo_p99_ms, ws))
            } else {
                "–".into()
            },
            if web {
                format!("{waited:.1} ({throttled:.1})")
            } else {
                "–".into()
            },
            if web {
                r.max_replicas().to_string()
            } else {
                "–".into()
            },
            if web {
                format!("{reserved:.0}")
            } else {
                "–".into()
            },
            match (r.build, r.build_wall_s) {
                (Some(b), Some(w)) => format!("{:.1} ({w:.1})", b.ms as f64 / 1000.0),
                _ => "–".into(),
            },
            if r.arm.has_compile() && web {
                format!("{ran} of {spike}")
            } else {
                "–".into()
            },
            if web {
                format!("{:.1}", r.cpu_seconds("web"))
            } else {
                "–".into()
            },
            if r.arm.has_compile() {
                format!("{:.1}", r.cpu_seconds("compile"))
            } else {
                "–".into()
            },
        );
    }
    let mut md = String::new();
    let _ = writeln!(md, "## {}\n", opts.scenario.title());
    let _ = writeln!(
        md,
        "Web service: `experiments serve` on 127.0.0.1:{} (hostNetwork, SO_REUSEPORT, 4 threads), {iters} iterations ≈ {:?} of CPU \
         per request, requests/limits {}. Open-loop load from the host: {}/s for {:?}, {}/s from {:?} for \
         {:?}; latency from the intended send time, timeout {:?}. Compile: zstd `{}` in a pod (requests/limits {}) started at {:?} \
         (at 0 s for the compile floor). HPA: autoscaling/v1, 50 % CPU, 1–10 replicas. burst-scaler: the chart (controller + node \
         agent), web `LatencySensitive` (cpu {}–2), compile `Batch` (floor 500m), both `Auto`. SLO: p99 ≤ {} ms and ≤ 1 % errors in every {:?} \
         window. \"Web waited for CPU\" is PSI `some` of the web pods' cgroups (time some web task was runnable but not running; \
         it includes time throttled, shown apart); \"requested core-s\" sums the running web pods' CPU requests over the run.\n",
        opts.addr.port(),
        opts.cost,
        opts.scenario.web().show(),
        opts.base_rate,
        opts.duration,
        opts.spike_rate,
        opts.spike_from,
        opts.spike_len,
        opts.timeout,
        opts.profile.make_command(opts.jobs),
        opts.scenario.compile().show(),
        opts.compile_at,
        opts.scenario.web().request,
        opts.slo_p99_ms,
        opts.window
    );
    md.push_str(&table);
    let _ = writeln!(
        md,
        "\n![p99 per window]({slug}-p99.png)\n\n![web replicas]({slug}-replicas.png)\n"
    );
    let active: Vec<&ArmResult> = results.iter().filter(|r| r.skipped.is_none()).collect();
    let web_arms: Vec<&&ArmResult> = active.iter().filter(|r| r.arm.has_web()).collect();
    let ser = |r: &ArmResult, f: &dyn Fn(&WindowRow) -> Option<f64>| {
        Series::new(
            r.arm.slug(),
            r.windows
                .iter()
                .filter_map(|w| f(w).map(|v| (w.t, v)))
                .collect(),
        )
    };
    line_chart(
        &dir.file(&format!("{slug}-p99.png")),
        &Chart {
            title: &format!("{}: web p99 latency per 5-s window", slug.to_uppercase()),
            x_label: "time, s",
            y_label: "p99, ms (log)",
            log_y: true,
            reference: Some((opts.slo_p99_ms, "SLO")),
        },
        &web_arms
            .iter()
            .map(|r| ser(r, &|w| w.p99))
            .collect::<Vec<_>>(),
    )?;
    line_chart(
        &dir.file(&format!("{slug}-replicas.png")),
        &Chart {
            title: &format!("{}: running web replicas", slug.to_uppercase()),
            x_label: "time, s",
            y_label: "replicas",
            log_y: false,
            reference: None,
        },
        &web_arms
            .iter()
            .map(|r| ser(r, &|w| Some(w.web_running as f64)))
            .collect::<Vec<_>>(),
    )?;
    for r in &web_arms {
        let name = format!("{slug}-latency-{}.png", r.arm.slug());
        let title = format!(
            "{} {}: latency percentiles per 5-s window",
            slug.to_uppercase(),
            r.arm.slug()
        );
        line_chart(
            &dir.file(&name),
            &Chart {
                title: &title,
                x_label: "time, s",
                y_label: "ms (log)",
                log_y: true,
                reference: Some((opts.slo_p99_ms, "SLO")),
            },
            &[
                Series::new(
                    "p50",
                    r.windows
                        .iter()
                        .filter_map(|w| w.p50.map(|v| (w.t, v)))
                        .collect(),
                ),
                Series::new(
                    "p95",
                    r.windows
                        .iter()
                        .filter_map(|w| w.p95.map(|v| (w.t, v)))
                        .collect(),
                ),
                Series::new(
                    "p99",
                    r.windows
                        .iter()
                        .filter_map(|w| w.p99.map(|v| (w.t, v)))
                        .collect(),
                ),
            ],
        )?;
        let _ = writeln!(md, "![{}]({name})\n", r.arm.slug());
    }
    Ok((md, table))
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
        let mut r = ArmResult::skipped(Arm::Hpa, String::new());
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
        let o = Options::new(Scenario::Starvation, true, None, 50.0, 2);
        let s = o.plan().schedule();
        let per_s = |a: u64, b: u64| {
            s.iter()
                .filter(|t| **t >= Duration::from_secs(a) && **t < Duration::from_secs(b))
                .count() as f64
                / (b - a) as f64
        };
        assert!((per_s(0, 12) - o.base_rate).abs() < 1.0);
        assert!((per_s(12, 18) - o.spike_rate).abs() < 1.0);
    }
}
