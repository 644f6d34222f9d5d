//! E0 — the lab's first task: the compile as a Deployment (requests/limits as in the HPA
//! walkthrough), in three arms: no autoscaler, the stock HPA (`--cpu-percent=50 --min=1
//! --max=10`), and burst-scaler (a `Batch` BurstScaler that lets it borrow the idle node). How
//! many pods appear, how much CPU they use, and how long until the builds are done. Every
//! replica an HPA adds runs its own copy of the build: a compile is not a service, extra
//! replicas do not share its work.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use anyhow::bail;
use kube::Client;
use tokio::time::Instant;

use crate::cluster::{self, Sampler, WALKTHROUGH};
use crate::plot::{Chart, Series, line_chart};
use crate::report::{Progress, RunDir, opt};
use crate::workload::{BuildDone, Profile, parse_build_done};

pub struct Options {
    pub profile: Profile,
    pub bound: Duration,
    pub window: Duration,
    pub jobs: u32,
    /// The arms to run (`--quick`: burst-scaler's only — the smoke test checks the harness,
    /// and the HPA's code path runs in E2's smoke too).
    pub arms: Vec<Arm>,
}

impl Options {
    pub fn new(quick: bool, profile: Option<Profile>, jobs: u32) -> Options {
        Options {
            profile: profile.unwrap_or(if quick { Profile::Small } else { Profile::Cli }),
            bound: Duration::from_secs(if quick { 150 } else { 600 }),
            window: Duration::from_secs(5),
            jobs,
            arms: if quick {
                vec![Arm::BurstScaler]
            } else {
                Arm::ALL.to_vec()
            },
        }
    }
}

/// What governs the compile Deployment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arm {
    /// One replica at its walkthrough limit (500m), nothing else.
    NoAutoscaler,
    /// The lab's stock HPA: `--cpu-percent=50 --min=1 --max=10`.
    Hpa,
    /// The chart (controller + node agent) and a `Batch` BurstScaler with borrowing on: the
    /// compile may grow into the idle node (minus headroom) and gives it back under pressure.
    BurstScaler,
}

impl Arm {
    pub const ALL: [Arm; 3] = [Arm::NoAutoscaler, Arm::Hpa, Arm::BurstScaler];

    pub fn slug(self) -> &'static str {
        match self {
            Arm::NoAutoscaler => "no-autoscaler",
            Arm::Hpa => "hpa",
            Arm::BurstScaler => "burst-scaler",
        }
    }
}

struct Tick {
    t: f64,
    running: usize,
    pending: usize,
    hpa_desired: Option<i32>,
    hpa_utilization: Option<i32>,
    cpu_m: f64,
    metrics_m: f64,
    /// The first replica's container CPU limit in force (millicores; none = unlimited).
    limit_m: Option<f64>,
}

/// One arm: every sample, every pod's finished build (time on the arm's clock, the build),
/// and the CPU all replicas used.
struct ArmRun {
    arm: Arm,
    ticks: Vec<Tick>,
    pod_rows: Vec<Vec<String>>,
    builds: BTreeMap<String, (f64, BuildDone)>,
    first_pod: Option<String>,
    pods_seen: usize,
    /// Every replica present had finished its build (else: the bound was reached).
    all_done: bool,
    cpu_s: f64,
}

impl ArmRun {
    fn first_build(&self) -> Option<&(f64, BuildDone)> {
        self.first_pod.as_ref().and_then(|f| self.builds.get(f))
    }

    fn elapsed(&self) -> f64 {
        self.ticks.last().map_or(0.0, |x| x.t)
    }
}

/// The release of the burst-scaler arm.
const RELEASE: &str = "bsc-e0";

pub async fn run(
    client: &Client,
    dir: &RunDir,
    opts: &Options,
    compile_image: &str,
    progress: &Progress,
) -> anyhow::Result<(String, String)> {
    let mut runs = Vec::new();
    for &arm in &opts.arms {
        progress.say(format!("e0: arm {}", arm.slug()));
        let ns = format!("{}e0-{}", cluster::NS_PREFIX, arm.slug());
        let r = run_arm(client, arm, opts, compile_image, progress).await;
        if arm == Arm::BurstScaler
            && let Err(e) = crate::e2::uninstall(client, &ns, RELEASE, progress).await
        {
            progress.say(format!("e0: uninstalling burst-scaler: {e:#}"));
        }
        cluster::delete_experiment_namespaces(client, false).await?;
        let r = r?;
        progress.say(format!(
            "e0: arm {}: {} pods, first build done at {} s, {} of them finished{}, {:.0} CPU-s",
            arm.slug(),
            r.pods_seen,
            opt(r.first_build().map(|b| b.0), 0),
            r.builds.len(),
            if r.all_done {
                String::new()
            } else {
                format!(" (bound {:?} reached)", opts.bound)
            },
            r.cpu_s
        ));
        runs.push(r);
    }
    report(dir, opts, &runs)
}

async fn run_arm(
    client: &Client,
    arm: Arm,
    opts: &Options,
    compile_image: &str,
    progress: &Progress,
) -> anyhow::Result<ArmRun> {
    let ns = cluster::namespace(client, &format!("e0-{}", arm.slug())).await?;
    if arm == Arm::BurstScaler {
        progress.say("e0: burst-scaler: installing the chart (controller + node agent)");
        crate::e2::install_chart(client, &ns, RELEASE).await?;
        crate::e2::create_scalers(
            client,
            &ns,
            &[(
                "compile",
                serde_json::json!({"selector": {"matchLabels": {"app": "compile"}}, "role": "Batch",
                    "cpu": {"min": "100m", "max": "2"}, "batch": {"floor": "200m", "borrow": {"enabled": true}},
                    "mode": "Auto"}),
            )],
        )
        .await?;
    }
    let script = opts.profile.pod_script(opts.jobs);
    cluster::create_deployment(
        client,
        &ns,
        "compile",
        compile_image,
        vec!["/bin/sh".into(), "-c".into(), script],
        WALKTHROUGH,
        false,
    )
    .await?;
    if arm == Arm::Hpa {
        cluster::create_hpa(client, &ns, "compile", 50, 1, 10).await?;
    }
    let t0 = Instant::now();
    let mut sampler = Sampler::new(client.clone(), &ns);
    let mut run = ArmRun {
        arm,
        ticks: Vec::new(),
        pod_rows: Vec::new(),
        builds: BTreeMap::new(),
        first_pod: None,
        pods_seen: 0,
        all_done: false,
        cpu_s: 0.0,
    };
    let mut seen: BTreeMap<String, f64> = BTreeMap::new();
    let ws = opts.window.as_secs_f64();
    let mut k = 0u32;
    loop {
        tokio::time::sleep_until(t0 + opts.window * k).await;
        let t = f64::from(k) * ws;
        k += 1;
        let (pods, hpa) = sampler.sample(t).await?;
        let pods: Vec<_> = pods.into_iter().filter(|p| p.app == "compile").collect();
        let mut tick = Tick {
            t,
            running: 0,
            pending: 0,
            hpa_desired: None,
            hpa_utilization: None,
            cpu_m: 0.0,
            metrics_m: 0.0,
            limit_m: None,
        };
        for p in &pods {
            seen.entry(p.pod.clone()).or_insert(t);
            if run.first_pod.is_none() {
                run.first_pod = Some(p.pod.clone());
            }
            match p.phase.as_str() {
                "Running" => tick.running += 1,
                "Pending" => tick.pending += 1,
                _ => {}
            }
            if run.first_pod.as_deref() == Some(p.pod.as_str()) {
                tick.limit_m = p.limit_m;
            }
            tick.cpu_m += p.cgroup_m.unwrap_or(0.0);
            tick.metrics_m += p.metrics_m.unwrap_or(0.0);
            if p.phase == "Running"
                && !run.builds.contains_key(&p.pod)
                && let Some(b) = cluster::pod_logs(client, &ns, &p.pod)
                    .await
                    .as_deref()
                    .and_then(parse_build_done)
            {
                if b.rc != 0 {
                    bail!("the compile in {} failed (make exit {})", p.pod, b.rc);
                }
                progress.say(format!(
                    "e0: {}: {} finished its build at {t:.0} s ({:.1} s inside the container)",
                    arm.slug(),
                    p.pod,
                    b.ms as f64 / 1000.0
                ));
                run.builds.insert(p.pod.clone(), (t, b));
            }
            run.pod_rows.push(vec![
                arm.slug().to_string(),
                format!("{t:.0}"),
                p.pod.clone(),
                p.phase.clone(),
                opt(p.metrics_m, 0),
                opt(p.cgroup_m, 0),
                opt(p.throttled_ms, 1),
                opt(p.limit_m, 0),
            ]);
        }
        if let Some(h) = hpa.first() {
            tick.hpa_desired = Some(h.desired);
            tick.hpa_utilization = h.utilization;
        }
        if k % 6 == 1 {
            progress.say(format!(
                "e0: {}: {t:.0} s: {} running, {} pending, HPA wants {}, CPU {:.2} cores",
                arm.slug(),
                tick.running,
                tick.pending,
                opt(tick.hpa_desired.map(f64::from), 0),
                tick.cpu_m / 1000.0
            ));
        }
        let pending = tick.pending;
        run.ticks.push(tick);
        // Until every replica there is has finished its own build (an HPA's extra replicas
        // each compile the whole project again), or the bound.
        if !pods.is_empty() && pending == 0 && pods.iter().all(|p| run.builds.contains_key(&p.pod))
        {
            run.all_done = true;
            break;
        }
        if t0.elapsed() > opts.bound {
            break;
        }
    }
    run.pods_seen = seen.len();
    run.cpu_s = sampler
        .cpu_seconds_by_app()
        .get("compile")
        .copied()
        .unwrap_or(0.0);
    Ok(run)
}

fn report(dir: &RunDir, opts: &Options, runs: &[ArmRun]) -> anyhow::Result<(String, String)> {
    dir.csv(
        "e0-timeline.csv",
        &[
            "arm",
            "t_s",
            "pods_running",
            "pods_pending",
            "hpa_desired",
            "hpa_utilization_pct",
            "cgroup_cpu_m",
            "metrics_cpu_m",
            "first_pod_limit_m",
        ],
        &runs
            .iter()
            .flat_map(|r| {
                r.ticks.iter().map(|x| {
                    vec![
                        r.arm.slug().to_string(),
                        format!("{:.0}", x.t),
                        x.running.to_string(),
                        x.pending.to_string(),
                        x.hpa_desired.map(|d| d.to_string()).unwrap_or_default(),
                        x.hpa_utilization.map(|d| d.to_string()).unwrap_or_default(),
                        format!("{:.0}", x.cpu_m),
                        format!("{:.0}", x.metrics_m),
                        opt(x.limit_m, 0),
                    ]
                })
            })
            .collect::<Vec<_>>(),
    )?;
    dir.csv(
        "e0-pods.csv",
        &[
            "arm",
            "t_s",
            "pod",
            "phase",
            "metrics_m",
            "cgroup_m",
            "throttled_ms",
            "limit_m",
        ],
        &runs
            .iter()
            .flat_map(|r| r.pod_rows.iter().cloned())
            .collect::<Vec<_>>(),
    )?;
    let series = |f: &dyn Fn(&Tick) -> Option<f64>| -> Vec<Series> {
        runs.iter()
            .map(|r| {
                Series::new(
                    r.arm.slug(),
                    r.ticks
                        .iter()
                        .filter_map(|x| f(x).map(|v| (x.t, v)))
                        .collect(),
                )
            })
            .collect()
    };
    for (file, title, y, f) in [
        (
            "e0-replicas.png",
            "E0: compile replicas running",
            "pods",
            &(|x: &Tick| Some(x.running as f64)) as &dyn Fn(&Tick) -> Option<f64>,
        ),
        (
            "e0-cpu.png",
            "E0: CPU used by all compile replicas (cgroups)",
            "cores",
            &|x: &Tick| Some(x.cpu_m / 1000.0),
        ),
    ] {
        line_chart(
            &dir.file(file),
            &Chart {
                title,
                x_label: "time, s",
                y_label: y,
                log_y: false,
                reference: None,
                spans: &[],
            },
            &series(f),
        )?;
    }

    let mut table = String::new();
    let _ = writeln!(
        table,
        "| arm | pods that appeared | max running | first build done after s | its build s (in container) | builds finished | all done after s | CPU-s used by all replicas | CPU-s per finished build |"
    );
    let _ = writeln!(table, "|---|---|---|---|---|---|---|---|---|");
    for r in runs {
        let max_running = r.ticks.iter().map(|x| x.running).max().unwrap_or(0);
        let first = r.first_build();
        let _ = writeln!(
            table,
            "| {} | {} | {max_running} | {} | {} | {} | {} | {:.0} | {} |",
            r.arm.slug(),
            r.pods_seen,
            first.map_or_else(
                || format!("not within {:?}", opts.bound),
                |(t, _)| format!("{t:.0}")
            ),
            opt(first.map(|(_, b)| b.ms as f64 / 1000.0), 1),
            r.builds.len(),
            if r.all_done {
                format!("{:.0}", r.elapsed())
            } else {
                format!("not within {:?}", opts.bound)
            },
            r.cpu_s,
            if r.builds.is_empty() {
                "–".into()
            } else {
                format!("{:.0}", r.cpu_s / r.builds.len() as f64)
            },
        );
    }
    let mut md = String::new();
    let _ = writeln!(
        md,
        "## E0 — the compile under the stock HPA, no autoscaler, burst-scaler\n"
    );
    let _ = writeln!(
        md,
        "Deployment `compile` (zstd `{}`, requests/limits {} as in the HPA walkthrough), sampled every {:?} until every \
         replica present had finished its build (bound {:?}), one run per arm. Arms: no autoscaler; an autoscaling/v1 HPA \
         (50 % CPU, 1–10 replicas) — every replica it adds compiles the whole project again, replicas do not share a \
         build; burst-scaler — the chart and a `Batch` BurstScaler (floor 200m, max 2, `borrow.enabled`), which lets the \
         compile grow into the idle node. CPU-s from the pod cgroups, all replicas, until the end of the arm.\n",
        opts.profile.make_command(opts.jobs),
        WALKTHROUGH.show(),
        opts.window,
        opts.bound,
    );
    md.push_str(&table);
    let _ = writeln!(
        md,
        "\n![E0 replicas](e0-replicas.png)\n\n![E0 CPU](e0-cpu.png)\n"
    );
    Ok((md, table))
}
