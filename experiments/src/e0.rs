//! E0 — the lab's first task: the compile as a Deployment (requests/limits as in the HPA
//! walkthrough) under the stock HPA (`--cpu-percent=50 --min=1 --max=10`). How many pods
//! appear, how much CPU they use, and how long until the build is done. Every replica an HPA
//! adds runs its own copy of the build: a compile is not a service, extra replicas do not share
//! its work.

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
}

impl Options {
    pub fn new(quick: bool, profile: Option<Profile>, jobs: u32) -> Options {
        Options {
            profile: profile.unwrap_or(if quick { Profile::Small } else { Profile::Cli }),
            bound: Duration::from_secs(if quick { 150 } else { 600 }),
            window: Duration::from_secs(5),
            jobs,
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
}

pub async fn run(
    client: &Client,
    dir: &RunDir,
    opts: &Options,
    compile_image: &str,
    progress: &Progress,
) -> anyhow::Result<(String, String)> {
    let ns = cluster::namespace(client, "e0").await?;
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
    cluster::create_hpa(client, &ns, "compile", 50, 1, 10).await?;
    let t0 = Instant::now();
    let mut sampler = Sampler::new(client.clone(), &ns);
    let mut ticks = Vec::new();
    let mut pod_rows = Vec::new();
    let mut builds: BTreeMap<String, (f64, BuildDone)> = BTreeMap::new();
    let mut first_pod: Option<String> = None;
    let mut seen: BTreeMap<String, f64> = BTreeMap::new();
    let ws = opts.window.as_secs_f64();
    let mut k = 0u32;
    let finished = loop {
        tokio::time::sleep_until(t0 + opts.window * k).await;
        let t = f64::from(k) * ws;
        k += 1;
        let (pods, hpa) = sampler.sample(t).await?;
        let mut tick = Tick {
            t,
            running: 0,
            pending: 0,
            hpa_desired: None,
            hpa_utilization: None,
            cpu_m: 0.0,
            metrics_m: 0.0,
        };
        for p in &pods {
            seen.entry(p.pod.clone()).or_insert(t);
            if first_pod.is_none() {
                first_pod = Some(p.pod.clone());
            }
            match p.phase.as_str() {
                "Running" => tick.running += 1,
                "Pending" => tick.pending += 1,
                _ => {}
            }
            tick.cpu_m += p.cgroup_m.unwrap_or(0.0);
            tick.metrics_m += p.metrics_m.unwrap_or(0.0);
            if p.phase == "Running"
                && !builds.contains_key(&p.pod)
                && let Some(b) = cluster::pod_logs(client, &ns, &p.pod)
                    .await
                    .as_deref()
                    .and_then(parse_build_done)
            {
                if b.rc != 0 {
                    bail!("the compile in {} failed (make exit {})", p.pod, b.rc);
                }
                progress.say(format!(
                    "e0: {} finished its build at {t:.0} s ({:.1} s inside the container)",
                    p.pod,
                    b.ms as f64 / 1000.0
                ));
                builds.insert(p.pod.clone(), (t, b));
            }
            pod_rows.push(vec![
                format!("{t:.0}"),
                p.pod.clone(),
                p.phase.clone(),
                opt(p.metrics_m, 0),
                opt(p.cgroup_m, 0),
                opt(p.throttled_ms, 1),
            ]);
        }
        if let Some(h) = hpa.first() {
            tick.hpa_desired = Some(h.desired);
            tick.hpa_utilization = h.utilization;
        }
        if k % 6 == 1 {
            progress.say(format!(
                "e0: {t:.0} s: {} running, {} pending, HPA wants {}, CPU {:.2} cores",
                tick.running,
                tick.pending,
                opt(tick.hpa_desired.map(f64::from), 0),
                tick.cpu_m / 1000.0
            ));
        }
        ticks.push(tick);
        if first_pod.as_ref().is_some_and(|f| builds.contains_key(f)) {
            break true;
        }
        if t0.elapsed() > opts.bound {
            break false;
        }
    };
    let cpu_by_app = sampler.cpu_seconds_by_app();
    cluster::delete_experiment_namespaces(client, false).await?;

    dir.csv(
        "e0-timeline.csv",
        &[
            "t_s",
            "pods_running",
            "pods_pending",
            "hpa_desired",
            "hpa_utilization_pct",
            "cgroup_cpu_m",
            "metrics_cpu_m",
        ],
        &ticks
            .iter()
            .map(|x| {
                vec![
                    format!("{:.0}", x.t),
                    x.running.to_string(),
                    x.pending.to_string(),
                    x.hpa_desired.map(|d| d.to_string()).unwrap_or_default(),
                    x.hpa_utilization.map(|d| d.to_string()).unwrap_or_default(),
                    format!("{:.0}", x.cpu_m),
                    format!("{:.0}", x.metrics_m),
                ]
            })
            .collect::<Vec<_>>(),
    )?;
    dir.csv(
        "e0-pods.csv",
        &[
            "t_s",
            "pod",
            "phase",
            "metrics_m",
            "cgroup_m",
            "throttled_ms",
        ],
        &pod_rows,
    )?;
    line_chart(
        &dir.file("e0-replicas.png"),
        &Chart {
            title: "E0: the compile under the stock HPA",
            x_label: "time, s",
            y_label: "pods / cores",
            log_y: false,
            reference: None,
            spans: &[],
        },
        &[
            Series::new(
                "pods running",
                ticks.iter().map(|x| (x.t, x.running as f64)).collect(),
            ),
            Series::new(
                "pods pending",
                ticks.iter().map(|x| (x.t, x.pending as f64)).collect(),
            ),
            Series::new(
                "HPA desired",
                ticks
                    .iter()
                    .filter_map(|x| x.hpa_desired.map(|d| (x.t, f64::from(d))))
                    .collect(),
            ),
            Series::new(
                "CPU used, cores (cgroups)",
                ticks.iter().map(|x| (x.t, x.cpu_m / 1000.0)).collect(),
            ),
        ],
    )?;

    let max_running = ticks.iter().map(|x| x.running).max().unwrap_or(0);
    let max_pending = ticks.iter().map(|x| x.pending).max().unwrap_or(0);
    let cpu_s = cpu_by_app.get("compile").copied().unwrap_or(0.0);
    let first = first_pod.as_ref().and_then(|f| builds.get(f));
    let elapsed = ticks.last().map_or(0.0, |x| x.t);
    let mut table = String::new();
    let _ = writeln!(
        table,
        "| pods that appeared | max running | max pending | first build done after s | its build s (in container) | CPU-s used by all replicas until then | mean cores |"
    );
    let _ = writeln!(table, "|---|---|---|---|---|---|---|");
    let _ = writeln!(
        table,
        "| {} | {max_running} | {max_pending} | {} | {} | {cpu_s:.0} | {:.2} |",
        seen.len(),
        if finished {
            format!("{:.0}", first.map_or(elapsed, |(t, _)| *t))
        } else {
            format!("not within {:?}", opts.bound)
        },
        opt(first.map(|(_, b)| b.ms as f64 / 1000.0), 1),
        if elapsed > 0.0 { cpu_s / elapsed } else { 0.0 },
    );
    let mut md = String::new();
    let _ = writeln!(md, "## E0 — the compile under the stock HPA\n");
    let _ = writeln!(
        md,
        "Deployment `compile` (zstd `{}`, requests/limits {} as in the HPA walkthrough) with an autoscaling/v1 HPA \
         (50 % CPU, 1–10 replicas), sampled every {:?} until the first replica's build finished (bound {:?}). Every replica \
         compiles the whole project again: replicas do not share a build. Builds finished by other replicas in that time: {}.\n",
        opts.profile.make_command(opts.jobs),
        WALKTHROUGH.show(),
        opts.window,
        opts.bound,
        builds.len().saturating_sub(usize::from(first.is_some())),
    );
    md.push_str(&table);
    let _ = writeln!(md, "\n![E0](e0-replicas.png)\n");
    Ok((md, table))
}
