//! The node agent's own cost and its reaction time, on the local cluster with the chart's
//! DaemonSet (issue 12's performance goals: < 1 % of a core and < 30 MiB with 100 governed
//! pods; ≤ 1.5 s from starvation onset to the batch quota at a 1 s loop).
//!
//! - **Footprint**: N idle busybox pods (half latency-sensitive, half batch, all `Auto`) on the
//!   node; after a warm-up long enough for the agent's signal book to fill to what the default
//!   policies keep ([`burst_scaler::engine::EngineConfig::history_for`]), the agent container's
//!   `cpuacct.usage` and its process' RSS are read every second for the measuring window.
//! - **Reaction**: per trial, a fresh latency-sensitive pod (one busy thread, request 100m,
//!   limit 1500m: 102 shares) and then a fresh batch pod (four busy threads, request 1, limit 2:
//!   1024 shares) on this 2-core node. From the batch pod's creation on, the harness polls,
//!   every 10 ms, the service container's
//!   PSI (`cpu.pressure` in the unified hierarchy), its `cpu.shares` and the batch container's
//!   `cpu.cfs_quota_us`: onset = the first 100 ms in which the service's tasks waited ≥ 10 % of
//!   the time (the engine's default `cpuPressurePercent`), then the times the weight and the
//!   quota were written, as the kernel's files show them. The service's BurstScaler sets
//!   `yieldPressurePercent` to 10 % too, so that the quota follows whatever pressure the
//!   raised weight leaves (by default, 40 %).

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::{Api, Client};
use serde_json::json;
use tokio::time::Instant;

use crate::cgroup::{CgroupPaths, pod_cgroup};
use crate::cluster;
use crate::report::{Progress, RunDir, opt};
use crate::stats::median;

const RELEASE: &str = "bsc-agent";
const BUSYBOX: &str = "burst-scaler.local/busybox:1";
/// Busy threads of the reaction trials' batch pod.
const COMPILE_THREADS: u32 = 4;

#[derive(Clone, Debug)]
pub struct Options {
    pub quick: bool,
    /// Governed pods for the footprint.
    pub pods: usize,
    pub warmup: Duration,
    pub measure: Duration,
    pub trials: usize,
    /// `latencySensitive.signals.forSeconds` values for the reaction trials.
    pub for_seconds: Vec<u32>,
}

impl Options {
    pub fn new(quick: bool) -> Options {
        let s = Duration::from_secs;
        if quick {
            Options {
                quick,
                pods: 10,
                warmup: s(10),
                measure: s(15),
                trials: 1,
                for_seconds: vec![3],
            }
        } else {
            Options {
                quick,
                pods: 100,
                // The default policies keep 300 s + 3 s of samples (scale-down window): the
                // book is full after that.
                warmup: s(330),
                measure: s(120),
                trials: 5,
                for_seconds: vec![3, 1],
            }
        }
    }
}

/// One second of the footprint window.
#[derive(Debug, Clone, Copy)]
struct FootRow {
    t: f64,
    cpu_ms: f64,
    rss_kib: u64,
}

/// One reaction trial (seconds from the onset; `None`: not within the trial's bound).
#[derive(Debug, Clone, Copy)]
struct Trial {
    for_seconds: u32,
    trial: usize,
    /// Onset after the batch pod was created (`None`: the service was never starved).
    onset_after_create: Option<f64>,
    weight: Option<f64>,
    quota: Option<f64>,
    quota_value: Option<i64>,
}

pub async fn run(
    client: &Client,
    dir: &RunDir,
    opts: &Options,
    progress: &Progress,
) -> anyhow::Result<(String, String)> {
    let ns = cluster::namespace(client, "agent").await?;
    progress.say(format!("agent: installing the chart into {ns}"));
    crate::e2::install_chart(client, &ns, RELEASE).await?;
    let outcome = measure(client, &ns, dir, opts, progress).await;
    if let Err(e) = crate::e2::uninstall(client, &ns, RELEASE, progress).await {
        progress.say(format!("agent: uninstalling burst-scaler: {e}"));
    }
    cluster::delete_experiment_namespaces(client, false).await?;
    let (foot, trials) = outcome?;
    report(opts, &foot, &trials)
}

async fn measure(
    client: &Client,
    ns: &str,
    dir: &RunDir,
    opts: &Options,
    progress: &Progress,
) -> anyhow::Result<(Vec<FootRow>, Vec<Trial>)> {
    let agent = agent_process(client, ns).await?;
    crate::e2::create_scalers(
        client,
        ns,
        &[
            (
                "svc",
                json!({"selector": {"matchLabels": {"role": "svc"}}, "role": "LatencySensitive",
                    "cpu": {"min": "5m", "max": "200m"}, "mode": "Auto"}),
            ),
            (
                "batch",
                json!({"selector": {"matchLabels": {"role": "batch"}}, "role": "Batch",
                    "cpu": {"min": "5m", "max": "200m"}, "batch": {"floor": "5m"}, "mode": "Auto"}),
            ),
        ],
    )
    .await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    progress.say(format!("agent: footprint: {} governed pods", opts.pods));
    for i in 0..opts.pods {
        let role = if i % 2 == 0 { "svc" } else { "batch" };
        pods.create(
            &PostParams::default(),
            &pod(
                &format!("fp-{i:03}"),
                role,
                "5m",
                "100m",
                // Idle, bounded: exits after an hour.
                "exec sleep 3600",
            )?,
        )
        .await
        .with_context(|| format!("create pod fp-{i:03}"))?;
    }
    wait_running(
        &pods,
        "role in (svc,batch)",
        opts.pods,
        Duration::from_secs(600),
    )
    .await?;
    progress.say(format!(
        "agent: all {} pods run; warming up {} s (the agent's signal book fills)",
        opts.pods,
        opts.warmup.as_secs()
    ));
    tokio::time::sleep(opts.warmup).await;
    let foot = footprint(&agent, opts.measure).await?;
    dir.write("agent-footprint.csv", &foot_csv(&foot))?;
    let _ = pods
        .delete_collection(&now(), &ListParams::default().labels("role in (svc,batch)"))
        .await;
    wait_gone(&pods, "role in (svc,batch)").await?;

    let api: Api<burst_scaler::api::BurstScaler> = Api::namespaced(client.clone(), ns);
    let _ = api
        .delete_collection(&DeleteParams::default(), &ListParams::default())
        .await;
    let mut trials = vec![];
    for &fs in &opts.for_seconds {
        wait_no_scalers(&api).await?;
        crate::e2::create_scalers(
            client,
            ns,
            &[
                (
                    "api",
                    json!({"selector": {"matchLabels": {"role": "api"}}, "role": "LatencySensitive",
                        "cpu": {"min": "100m", "max": "1500m"}, "mode": "Auto",
                        // yieldPressurePercent at cpuPressurePercent: the trial times the
                        // whole chain (weight, then quota) whatever pressure the raised weight
                        // leaves the one busy thread.
                        "latencySensitive": {"signals": {"forSeconds": fs, "yieldPressurePercent": 10}}}),
                ),
                (
                    "compile",
                    json!({"selector": {"matchLabels": {"role": "compile"}}, "role": "Batch",
                        "cpu": {"min": "100m", "max": "2"}, "batch": {"floor": "600m"}, "mode": "Auto"}),
                ),
            ],
        )
        .await?;
        for trial in 0..opts.trials {
            let t = reaction_trial(&pods, fs, trial).await?;
            progress.say(format!(
                "agent: forSeconds {fs}, trial {trial}: weight +{} s, quota +{} s after onset",
                opt(t.weight, 2),
                opt(t.quota, 2)
            ));
            trials.push(t);
            dir.write("agent-reaction.csv", &trial_csv(&trials))?;
        }
        let _ = api
            .delete_collection(&DeleteParams::default(), &ListParams::default())
            .await;
    }
    Ok((foot, trials))
}

fn now() -> DeleteParams {
    DeleteParams {
        grace_period_seconds: Some(0),
        ..DeleteParams::default()
    }
}

fn pod(name: &str, role: &str, request: &str, limit: &str, script: &str) -> anyhow::Result<Pod> {
    Ok(serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"role": role}},
        "spec": {
            "automountServiceAccountToken": false,
            "terminationGracePeriodSeconds": 0,
            "restartPolicy": "Never",
            "containers": [{
                "name": "main",
                "image": BUSYBOX,
                "imagePullPolicy": "Never",
                "command": ["sh", "-c", script],
                "resources": {"requests": {"cpu": request}, "limits": {"cpu": limit}},
            }],
        },
    }))?)
}

/// `threads` busy loops, each bounded to 120 s.
fn burn(threads: u32) -> String {
    let one = "end=$(( $(date +%s) + 120 )); while [ $(date +%s) -lt $end ]; do :; done";
    let mut s = String::new();
    for _ in 0..threads {
        let _ = write!(s, "( {one} ) & ");
    }
    s.push_str("wait");
    s
}

async fn wait_running(
    pods: &Api<Pod>,
    selector: &str,
    n: usize,
    within: Duration,
) -> anyhow::Result<Vec<Pod>> {
    let deadline = Instant::now() + within;
    loop {
        let list = pods.list(&ListParams::default().labels(selector)).await?;
        let running: Vec<Pod> = list
            .items
            .into_iter()
            .filter(|p| {
                p.status.as_ref().is_some_and(|s| {
                    s.container_statuses
                        .iter()
                        .flatten()
                        .all(|c| c.state.as_ref().is_some_and(|s| s.running.is_some()))
                        && s.container_statuses.as_ref().is_some_and(|c| !c.is_empty())
                })
            })
            .collect();
        if running.len() >= n {
            return Ok(running);
        }
        if Instant::now() > deadline {
            bail!(
                "only {} of {n} pods ({selector}) running after {} s",
                running.len(),
                within.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn wait_gone(pods: &Api<Pod>, selector: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(180);
    while !pods
        .list(&ListParams::default().labels(selector))
        .await?
        .items
        .is_empty()
    {
        if Instant::now() > deadline {
            bail!("pods ({selector}) still there 180 s after deletion");
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    Ok(())
}

async fn wait_no_scalers(api: &Api<burst_scaler::api::BurstScaler>) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !api.list(&ListParams::default()).await?.items.is_empty() {
        if Instant::now() > deadline {
            bail!("BurstScalers still there 60 s after deletion");
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    Ok(())
}

/// A container's cgroups: (cpu/cpuacct, unified).
fn container_cgroups(pod: &Pod, container: &str) -> anyhow::Result<(CgroupPaths, PathBuf)> {
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let id = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.name == container))
        .and_then(|c| c.container_id.clone())
        .context("no container ID yet")?;
    let id = id.rsplit("://").next().unwrap_or_default().to_string();
    let pod_cg = pod_cgroup(&uid).with_context(|| format!("no pod cgroup for pod {uid}"))?;
    let rel = pod_cg
        .cpu
        .strip_prefix(crate::cgroup::CPU_ROOT)
        .map(PathBuf::from)
        .unwrap_or_default();
    let unified = PathBuf::from("/sys/fs/cgroup/unified").join(rel).join(&id);
    Ok((pod_cg.child(&id), unified))
}

/// The agent container's cgroup and its main process.
struct AgentProcess {
    cgroup: CgroupPaths,
    pid: u32,
}

async fn agent_process(client: &Client, ns: &str) -> anyhow::Result<AgentProcess> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let p = wait_running(
        &pods,
        "app.kubernetes.io/component=agent",
        1,
        Duration::from_secs(120),
    )
    .await?
    .into_iter()
    .next()
    .context("no agent pod")?;
    let (cgroup, _) = container_cgroups(&p, "agent")?;
    let procs = std::fs::read_to_string(cgroup.cpu.join("cgroup.procs"))
        .with_context(|| format!("read {}", cgroup.cpu.display()))?;
    let pid = procs
        .lines()
        .filter_map(|l| l.trim().parse::<u32>().ok())
        .min()
        .context("the agent's cgroup has no process")?;
    Ok(AgentProcess { cgroup, pid })
}

fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("read /proc/{pid}/status (did the agent restart?)"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("no VmRSS")
}

async fn footprint(agent: &AgentProcess, window: Duration) -> anyhow::Result<Vec<FootRow>> {
    let start = Instant::now();
    let mut last = agent.cgroup.stat()?.usage_ns;
    let mut last_t = start;
    let mut rows = vec![];
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    while start.elapsed() < window {
        tick.tick().await;
        let usage = agent.cgroup.stat()?.usage_ns;
        let now = Instant::now();
        let wall = now.duration_since(last_t).as_secs_f64();
        rows.push(FootRow {
            t: now.duration_since(start).as_secs_f64(),
            cpu_ms: usage.saturating_sub(last) as f64 / 1e6 / wall,
            rss_kib: rss_kib(agent.pid)?,
        });
        last = usage;
        last_t = now;
    }
    Ok(rows)
}

fn read_i64(p: &std::path::Path) -> Option<i64> {
    std::fs::read_to_string(p).ok()?.trim().parse().ok()
}

/// `some total` (µs) of a `cpu.pressure` file.
fn pressure_us(p: &std::path::Path) -> Option<u64> {
    let text = std::fs::read_to_string(p).ok()?;
    burst_scaler::agent::cgroup::parse::pressure_some_total(&text).ok()
}

async fn reaction_trial(pods: &Api<Pod>, fs: u32, trial: usize) -> anyhow::Result<Trial> {
    let api_name = format!("api-{fs}-{trial}");
    let compile_name = format!("compile-{fs}-{trial}");
    pods.create(
        &PostParams::default(),
        &pod(&api_name, "api", "100m", "1500m", &burn(1))?,
    )
    .await?;
    let api_pod = wait_running(pods, "role=api", 1, Duration::from_secs(120))
        .await?
        .into_iter()
        .next()
        .context("api pod")?;
    let (api_cg, api_unified) = container_cgroups(&api_pod, "main")?;
    // Alone on the node: the agent sees it, nothing presses it.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let shares0 = read_i64(&api_cg.cpu.join("cpu.shares")).unwrap_or(0);
    // Four busy threads (a `make -j4`): both CPUs stay busy with compile threads wherever the
    // scheduler puts them, so the service is starved from the start (with two, placement
    // decided whether it was, and onsets came and went).
    pods.create(
        &PostParams::default(),
        &pod(&compile_name, "compile", "1", "2", &burn(COMPILE_THREADS))?,
    )
    .await?;
    // The compile's container cgroup is looked up while the service's signals are already
    // polled (its container ID comes from the API, later than the container starts).
    let lookup = {
        let pods = pods.clone();
        tokio::spawn(async move {
            let p = wait_running(&pods, "role=compile", 1, Duration::from_secs(120))
                .await?
                .into_iter()
                .next()
                .context("compile pod")?;
            container_cgroups(&p, "main").map(|(cg, _)| cg)
        })
    };
    let mut lookup = Some(lookup);

    // Poll every 10 ms for up to 30 s.
    let began = Instant::now();
    let mut compile_cg: Option<CgroupPaths> = None;
    let mut onset: Option<Instant> = None;
    let mut weight: Option<Instant> = None;
    let mut quota: Option<(Instant, i64)> = None;
    let mut psi: std::collections::VecDeque<(Instant, u64)> = Default::default();
    while began.elapsed() < Duration::from_secs(30) && (quota.is_none() || weight.is_none()) {
        let now = Instant::now();
        if lookup.as_ref().is_some_and(|l| l.is_finished())
            && let Some(l) = lookup.take()
        {
            compile_cg = Some(l.await??);
        }
        if let Some(p) = pressure_us(&api_unified.join("cpu.pressure")) {
            psi.push_back((now, p));
            // The window starts at the newest reading at least 100 ms old (a poll can stall
            // for longer than that on a starved node).
            let old_enough = |t: &Instant| now.duration_since(*t) >= Duration::from_millis(100);
            while psi.get(1).is_some_and(|(t, _)| old_enough(t)) {
                psi.pop_front();
            }
            if onset.is_none()
                && let Some((t0, p0)) = psi.front().filter(|(t, _)| old_enough(t))
            {
                let span = now.duration_since(*t0).as_micros() as u64;
                if p.saturating_sub(*p0) * 10 >= span {
                    onset = Some(*t0);
                }
            }
        }
        if weight.is_none() && read_i64(&api_cg.cpu.join("cpu.shares")) != Some(shares0) {
            weight = Some(now);
        }
        // The spec's 2 cores, or no quota yet: anything else is the agent's.
        if let Some(q) = compile_cg
            .as_ref()
            .and_then(|cg| read_i64(&cg.cpu.join("cpu.cfs_quota_us")))
            && q > 0
            && q < 200_000
        {
            quota = Some((now, q));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    if let Some(l) = lookup {
        l.abort();
    }
    let _ = pods
        .delete_collection(
            &now(),
            &ListParams::default().labels("role in (api,compile)"),
        )
        .await;
    wait_gone(pods, "role in (api,compile)").await?;
    // No onset: the service was never starved in 30 s — a trial without anything to react to
    // (reported as such, not as a miss of the agent).
    let since = |t: Instant| {
        let o = onset?;
        Some(if t >= o {
            t.duration_since(o).as_secs_f64()
        } else {
            -o.duration_since(t).as_secs_f64()
        })
    };
    Ok(Trial {
        for_seconds: fs,
        trial,
        onset_after_create: onset.map(|o| o.duration_since(began).as_secs_f64()),
        weight: weight.and_then(since),
        quota: quota.and_then(|(t, _)| since(t)),
        quota_value: quota.map(|(_, q)| q),
    })
}

fn foot_csv(rows: &[FootRow]) -> String {
    let mut s = "t_s,agent_cpu_millicores,agent_rss_kib\n".to_string();
    for r in rows {
        let _ = writeln!(s, "{:.1},{:.2},{}", r.t, r.cpu_ms, r.rss_kib);
    }
    s
}

fn trial_csv(rows: &[Trial]) -> String {
    let mut s =
        "for_seconds,trial,onset_after_batch_created_s,weight_after_onset_s,quota_after_onset_s,quota_us\n"
            .to_string();
    for r in rows {
        let _ = writeln!(
            s,
            "{},{},{},{},{},{}",
            r.for_seconds,
            r.trial,
            r.onset_after_create
                .map_or(String::new(), |v| format!("{v:.3}")),
            r.weight.map_or(String::new(), |v| format!("{v:.3}")),
            r.quota.map_or(String::new(), |v| format!("{v:.3}")),
            r.quota_value.map_or(String::new(), |v| v.to_string()),
        );
    }
    s
}

fn report(opts: &Options, foot: &[FootRow], trials: &[Trial]) -> anyhow::Result<(String, String)> {
    let cpu: Vec<f64> = foot.iter().map(|r| r.cpu_ms).collect();
    let mean_cpu = cpu.iter().sum::<f64>() / cpu.len().max(1) as f64;
    let rss_max = foot.iter().map(|r| r.rss_kib).max().unwrap_or(0);
    let rss_end = foot.last().map_or(0, |r| r.rss_kib);
    let mut t = String::new();
    let _ = writeln!(
        t,
        "| node agent, {} governed pods ({} s measured after {} s of warm-up) | measured | goal |\n|---|---|---|",
        opts.pods,
        opts.measure.as_secs(),
        opts.warmup.as_secs()
    );
    let _ = writeln!(
        t,
        "| CPU, mean (p99 of 1-s readings) | **{:.1} m** = {:.2} % of a core ({:.1} m) | < 1 % of a core |",
        mean_cpu,
        mean_cpu / 10.0,
        highest(&cpu, 0.99).unwrap_or(f64::NAN)
    );
    let _ = writeln!(
        t,
        "| RSS, at the end (max) | **{:.1} MiB** ({:.1} MiB) | < 30 MiB |",
        rss_end as f64 / 1024.0,
        rss_max as f64 / 1024.0
    );
    let _ = writeln!(
        t,
        "\n| `forSeconds` | trials | onset → weight written, median (max) | onset → batch quota written, median (max) | goal |\n|---|---|---|---|---|"
    );
    for &fs in &opts.for_seconds {
        let all: Vec<&Trial> = trials.iter().filter(|r| r.for_seconds == fs).collect();
        let unstarved = all
            .iter()
            .filter(|r| r.onset_after_create.is_none())
            .count();
        let rows: Vec<&Trial> = all
            .into_iter()
            .filter(|r| r.onset_after_create.is_some())
            .collect();
        let col = |pick: fn(&Trial) -> Option<f64>| {
            let v: Vec<f64> = rows.iter().filter_map(|r| pick(r)).collect();
            let missing = rows.len() - v.len();
            format!(
                "{} s ({} s){}",
                opt(median(&v), 2),
                opt(v.iter().copied().reduce(f64::max), 2),
                if missing > 0 {
                    format!(", {missing} never")
                } else {
                    String::new()
                }
            )
        };
        let _ = writeln!(
            t,
            "| {fs} | {}{} | {} | {} | ≤ 1.5 s |",
            rows.len(),
            if unstarved > 0 {
                format!(" (+{unstarved} never starved)")
            } else {
                String::new()
            },
            col(|r| r.weight),
            col(|r| r.quota)
        );
    }
    let mut md = String::new();
    let _ = writeln!(
        md,
        "\n## Node agent: cost and reaction time{}\n",
        if opts.quick { " (quick)" } else { "" }
    );
    md.push_str(&t);
    md.push_str("\nData: `agent-footprint.csv`, `agent-reaction.csv`.\n");
    Ok((md, t))
}

/// The value below which `q` of `values` lie (nearest rank).
fn highest(values: &[f64], q: f64) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    v.sort_by(f64::total_cmp);
    let i = ((v.len() as f64 * q).ceil() as usize).checked_sub(1)?;
    v.get(i.min(v.len().saturating_sub(1))).copied()
}
