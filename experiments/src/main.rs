//! burst-scaler's experiment harness. See `experiments/README.md`.
//!
//!   experiments run e0|e1|e2|all [--quick]   run a suite, write experiments/results/<stamp>-<suite>/
//!   experiments run e1|e2|e2b --resume DIR   carry on with an interrupted run in DIR
//!   experiments report [DIR...]              regenerate the README tables and plots from the CSVs
//!   experiments serve ...                    the latency-sensitive service (runs in the web image)
//!   experiments calibrate --cost-ms 2        iterations of work per request on this machine

mod agent;
mod cgroup;
mod cluster;
mod e0;
mod e1;
mod e1_analysis;
mod e1_cgroup;
mod e1_plan;
mod e2;
mod e2_data;
mod host;
mod load;
mod plot;
mod report;
mod serve;
mod stats;
mod workload;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

use crate::report::{
    Progress, ReportOptions, RunDir, SuiteReport, machine_description, report_command,
    update_readme,
};
use crate::workload::Profile;

/// The suites whose tables `experiments report` regenerates from their CSVs. E0 and the
/// agent's join by implementing `report::SuiteReport`.
fn reporters() -> Vec<&'static dyn SuiteReport> {
    vec![
        &e1_analysis::E1Report,
        &e2_data::E2_REPORT,
        &e2_data::E2B_REPORT,
    ]
}

#[derive(Parser)]
#[command(
    name = "experiments",
    about = "burst-scaler's experiments on real workloads, real cgroups and the local cluster"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
enum Suite {
    /// The lab's first task: the compile as a Deployment under the stock HPA.
    E0,
    /// Throttling efficiency (Q2): unlimited baseline, quotas 100/75/50/25 % ± cfs_burst,
    /// one core by cpuset, make -j1; rounds in random order.
    E1,
    /// Co-location, starvation by CPU shares: the web service (small request, high limit)
    /// under load with a spike, an unlimited compile with a larger request running through it.
    E2,
    /// Co-location, limit-bound: the walkthrough's 200m/500m service and a compile that ends
    /// before the spike; the cost side (replicas, reserved cores) tells the arms apart.
    E2b,
    /// The node agent's own CPU and RSS with 100 governed pods, and its reaction time from
    /// starvation onset to the weight and the batch quota written.
    Agent,
    /// E1, then E0, E2, E2b and the agent's.
    All,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run experiments and write their results.
    Run {
        #[arg(value_enum, required = true)]
        suites: Vec<Suite>,
        /// Smoke-test sizes (a ≈7 s compile, one run, short load): checks the harness, not the numbers.
        #[arg(long, env = "BSC_EXP_QUICK")]
        quick: bool,
        /// Rounds = runs per point (E1, before exclusions) or per compared arm (E2: default 5,
        /// E2b: 3, E1: 5; 1 with --quick).
        #[arg(long)]
        runs: Option<usize>,
        /// E1: rounds of the `full` profile after the main ones (≈ 30 min each; default 1, 0
        /// with --quick).
        #[arg(long)]
        full_rounds: Option<u32>,
        /// Seed of the rounds' random order (default: the time; stored in e1-plan.json and
        /// e2-plan.json/e2b-plan.json).
        #[arg(long)]
        seed: Option<u64>,
        /// Carry on with the run in this results directory (E1, E2 and E2b continue their
        /// plans where they stopped; E0 and the agent's start again).
        #[arg(long)]
        resume: Option<PathBuf>,
        /// Print E1's plan and how long it takes, run nothing.
        #[arg(long)]
        dry_run: bool,
        /// What to compile (default cli; small with --quick).
        #[arg(long, value_enum)]
        profile: Option<Profile>,
        /// Where result directories go.
        #[arg(long, env = "BSC_EXP_RESULTS", default_value_os_t = default_results())]
        results: PathBuf,
        /// Do not write the numbers into experiments/README.md (always off with --quick).
        #[arg(long)]
        no_readme: bool,
        /// Start the local cluster if it is down (and stop it afterwards).
        #[arg(long, env = "BSC_EXP_START_CLUSTER", default_value_t = true, action = clap::ArgAction::Set)]
        start_cluster: bool,
        /// E2's latency objective: p99 per 5-s window, milliseconds.
        #[arg(long, default_value_t = 50.0)]
        slo_ms: f64,
    },
    /// Regenerate the README tables and plots from the results' CSVs, checking each scenario's
    /// preconditions (any failing: an error, README untouched).
    Report {
        /// Results directories to pool (default: every non-quick one under --results).
        dirs: Vec<PathBuf>,
        /// Only this suite (default: every suite with a report).
        #[arg(long, value_enum)]
        suite: Option<Suite>,
        /// Runs each point needs after exclusions (default: E1 5 for `cli`, 1 for `full`).
        #[arg(long)]
        min_runs: Option<u32>,
        /// Where the pooled sections and plots go (default: <results>/pooled, or the quick
        /// directory given).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Do not rewrite experiments/README.md.
        #[arg(long)]
        no_readme: bool,
        #[arg(long, env = "BSC_EXP_RESULTS", default_value_os_t = default_results())]
        results: PathBuf,
    },
    /// The latency-sensitive service (what the web image runs).
    Serve {
        #[arg(long, default_value = "127.0.0.1:18080")]
        addr: SocketAddr,
        /// Iterations of work per request (see `calibrate`).
        #[arg(long)]
        work_iters: u64,
        #[arg(long, default_value_t = 4)]
        workers: usize,
    },
    /// Print how many work iterations cost the given time on this machine (run it idle).
    Calibrate {
        #[arg(long, default_value_t = 2.0)]
        cost_ms: f64,
    },
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default()
}

fn default_results() -> PathBuf {
    repo_root().join("experiments/results")
}

fn cores() -> u32 {
    std::thread::available_parallelism()
        .map(|n| n.get() as u32)
        .unwrap_or(1)
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Serve {
            addr,
            work_iters,
            workers,
        } => serve::serve(addr, work_iters, workers),
        Cmd::Calibrate { cost_ms } => {
            println!(
                "{}",
                serve::calibrate(Duration::from_secs_f64(cost_ms / 1000.0))
            );
            Ok(())
        }
        Cmd::Report {
            dirs,
            suite,
            min_runs,
            out,
            no_readme,
            results,
        } => {
            let all = reporters();
            let chosen: Vec<&dyn SuiteReport> = match suite {
                None | Some(Suite::All) => all,
                Some(s) => {
                    let key = format!("{s:?}").to_lowercase();
                    let v: Vec<&dyn SuiteReport> =
                        all.into_iter().filter(|r| r.key() == key).collect();
                    if v.is_empty() {
                        anyhow::bail!(
                            "{key} has no report from data yet: its tables are written by `experiments run {key}`"
                        );
                    }
                    v
                }
            };
            let readme = repo_root().join("experiments/README.md");
            report_command(
                &chosen,
                &dirs,
                &results,
                out.as_deref(),
                (!no_readme).then_some(readme.as_path()),
                &ReportOptions { min_runs },
            )?;
            Ok(())
        }
        Cmd::Run {
            suites,
            quick,
            runs,
            full_rounds,
            seed,
            resume,
            dry_run,
            profile,
            results,
            no_readme,
            start_cluster,
            slo_ms,
        } => {
            if dry_run {
                let opts = e1::Options::new(quick, runs, profile, full_rounds, seed, cores());
                println!(
                    "e1 plan: {}",
                    e1::describe(&opts.plan(), &[], &BTreeMap::new())
                );
                return Ok(());
            }
            // A resumed run is what its plan says it is.
            let quick = quick
                || resume
                    .as_deref()
                    .is_some_and(|d| e1::plan_is_quick(d) || e2::plan_is_quick(d));
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?;
            let opts = RunOptions {
                quick,
                runs,
                full_rounds,
                seed,
                resume,
                profile,
                results,
                write_readme: !no_readme && !quick,
                start_cluster,
                slo_ms,
            };
            let r = rt.block_on(run(suites, opts));
            // A build E1 was waiting for when interrupted has been killed; don't wait long.
            rt.shutdown_timeout(Duration::from_secs(15));
            r
        }
    }
}

struct RunOptions {
    quick: bool,
    runs: Option<usize>,
    full_rounds: Option<u32>,
    seed: Option<u64>,
    resume: Option<PathBuf>,
    profile: Option<Profile>,
    results: PathBuf,
    write_readme: bool,
    start_cluster: bool,
    slo_ms: f64,
}

/// Waits for SIGINT or SIGTERM (once E1 has handled SIGTERM, the process no longer dies of it,
/// so the cluster suites watch for it too); says which.
async fn interrupted() -> &'static str {
    let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate());
    let sigterm = async {
        match term {
            Ok(mut t) => {
                t.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        Ok(()) = tokio::signal::ctrl_c() => "SIGINT",
        () = sigterm => "SIGTERM",
    }
}

/// Runs E1 on a blocking thread; SIGINT or SIGTERM stops it: the build in progress is killed
/// (lost), everything finished is already in e1.csv.
async fn run_e1(
    repo: &Path,
    dir: &Arc<RunDir>,
    opts: e1::Options,
    progress: &Arc<Progress>,
    command: &str,
) -> anyhow::Result<e1::Outcome> {
    let stop = Arc::new(AtomicBool::new(false));
    let task = {
        let (repo, dir, progress, stop, command) = (
            repo.to_path_buf(),
            Arc::clone(dir),
            Arc::clone(progress),
            Arc::clone(&stop),
            command.to_string(),
        );
        tokio::task::spawn_blocking(move || e1::run(&repo, &dir, &opts, &progress, &stop, &command))
    };
    let signal = tokio::select! {
        r = task => return r?,
        s = interrupted() => s,
    };
    stop.store(true, Ordering::SeqCst);
    let mut killed = e1_cgroup::kill_builds(std::process::id());
    // A build that was just starting may join its cgroup a moment later.
    tokio::time::sleep(Duration::from_secs(1)).await;
    killed += e1_cgroup::kill_builds(std::process::id());
    anyhow::bail!(
        "E1 interrupted ({signal}; {killed} build process(es) killed). Finished builds are in {}; \
         carry on with: experiments run e1 --resume {}",
        dir.file(e1_analysis::CSV).display(),
        dir.path.display()
    )
}

async fn run(mut suites: Vec<Suite>, o: RunOptions) -> anyhow::Result<()> {
    let RunOptions {
        quick,
        runs,
        full_rounds,
        seed,
        resume,
        profile,
        results,
        write_readme,
        start_cluster,
        slo_ms,
    } = o;
    if suites.contains(&Suite::All) {
        suites = vec![Suite::E0, Suite::E1, Suite::E2, Suite::E2b, Suite::Agent];
    }
    suites.sort();
    suites.dedup();
    let repo = repo_root();
    let name = suites
        .iter()
        .map(|s| format!("{s:?}").to_lowercase())
        .collect::<Vec<_>>()
        .join("-");
    let dir = Arc::new(match &resume {
        Some(path) => RunDir::open(path)?,
        None => RunDir::create(
            &results,
            &format!("{name}{}", if quick { "-quick" } else { "" }),
        )?,
    });
    let progress = Arc::new(Progress::with_log(&dir.file("progress.log"))?);
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    progress.say(format!("results: {}", dir.path.display()));
    let mut deferred: Vec<String> = Vec::new();
    let mut summary = String::new();
    let _ = writeln!(
        summary,
        "# burst-scaler experiments: {name}{}\n",
        if quick {
            " (quick: smoke-test sizes, not numbers to quote)"
        } else {
            ""
        }
    );
    let _ = writeln!(
        summary,
        "- command: `{command}`\n- started: {}",
        jiff::Zoned::now().strftime("%Y-%m-%d %H:%M:%S %Z")
    );
    summary.push_str(&machine_description(&repo));
    summary.push('\n');
    let readme = repo.join("experiments/README.md");
    let stamp = |table: &str| {
        format!(
            "{table}\nMeasured {} with `{command}` → `{}`.\n",
            jiff::Zoned::now().strftime("%Y-%m-%d"),
            dir.path.strip_prefix(&repo).unwrap_or(&dir.path).display()
        )
    };
    // E1 runs on the host, before anything starts the cluster (an idle control plane is noise).
    if suites.contains(&Suite::E1) {
        let opts = e1::Options::new(quick, runs, profile, full_rounds, seed, cores());
        let outcome = run_e1(&repo, &dir, opts, &progress, &command).await?;
        summary.push_str(&outcome.section);
        for f in &outcome.failures {
            progress.say(format!(
                "e1: precondition {}: {f}",
                if quick {
                    "not met (quick run: reported, not enforced)"
                } else {
                    "FAILED"
                }
            ));
        }
        if !quick && !outcome.failures.is_empty() {
            deferred.push(format!(
                "e1: {} precondition(s) do not hold in {} (see summary.md)",
                outcome.failures.len(),
                dir.path.display()
            ));
        }
        if write_readme && outcome.failures.is_empty() {
            // The README's table pools every E1 result directory, through the same code as
            // `experiments report`.
            if let Err(e) = report_command(
                &[&e1_analysis::E1Report],
                &[],
                &results,
                None,
                Some(readme.as_path()),
                &ReportOptions::default(),
            ) {
                deferred.push(format!("e1: README not rewritten: {e:#}"));
            }
        }
    }
    dir.write("summary.md", &summary)?;
    if suites
        .iter()
        .any(|s| matches!(s, Suite::E0 | Suite::E2 | Suite::E2b | Suite::Agent))
    {
        let cluster = cluster::Cluster::connect(&repo, start_cluster).await?;
        let version = cluster.server_version().await;
        let _ = writeln!(
            summary,
            "- Kubernetes: {version} (the project's local cluster, tests/cluster/kube-local); its processes at the start:\n{}",
            host::cluster_settings()
        );
        if let Ok(root) = workload::rootfs(&repo) {
            let tools: Vec<String> = host::toolchain(&root)
                .into_iter()
                .map(|(p, v)| format!("{p} {v}"))
                .collect();
            let _ = writeln!(
                summary,
                "- compile toolchain (Debian packages in the compile image): {}\n",
                tools.join(", ")
            );
        }
        // Whatever happens (an error, Ctrl-C), the experiment namespaces go and a cluster this
        // run started is stopped again.
        let args = SuiteArgs {
            quick,
            profile,
            slo_ms,
            runs,
            seed,
        };
        let outcome = tokio::select! {
            r = cluster_suites(&cluster.client, &suites, &repo, &dir, &args, &progress) => r,
            s = interrupted() => Err(anyhow::anyhow!("interrupted ({s})")),
        };
        let finished = cluster.finish().await;
        let (md, tables) = outcome?;
        finished?;
        summary.push_str(&md);
        if write_readme {
            for (key, table) in tables {
                update_readme(&readme, key, &stamp(&table))?;
            }
            // E2 and E2b: the README's tables pool every results directory in the current
            // format, through the same code as `experiments report`.
            for (suite, reporter) in [
                (Suite::E2, &e2_data::E2_REPORT as &dyn SuiteReport),
                (Suite::E2b, &e2_data::E2B_REPORT),
            ] {
                if suites.contains(&suite)
                    && let Err(e) = report_command(
                        &[reporter],
                        &[],
                        &results,
                        None,
                        Some(readme.as_path()),
                        &ReportOptions::default(),
                    )
                {
                    deferred.push(format!("{}: README not rewritten: {e:#}", reporter.key()));
                }
            }
        }
    }
    let _ = writeln!(
        summary,
        "\n- finished: {}; load average at the end: {}; Kubernetes processes on the host at the end: {}",
        jiff::Zoned::now().strftime("%Y-%m-%d %H:%M:%S %Z"),
        host::loadavg_text(),
        host::cluster_state()
    );
    dir.write("summary.md", &summary)?;
    progress.say(format!("done: {}", dir.file("summary.md").display()));
    if !deferred.is_empty() {
        anyhow::bail!("{}", deferred.join("\n"));
    }
    Ok(())
}

/// The run's flags the cluster suites read.
#[derive(Clone, Copy)]
struct SuiteArgs {
    quick: bool,
    profile: Option<Profile>,
    slo_ms: f64,
    runs: Option<usize>,
    seed: Option<u64>,
}

/// Runs the cluster suites; returns their Markdown and the README blocks written from this run
/// alone (E0, the agent's; E2 and E2b pool their directories instead).
async fn cluster_suites(
    client: &kube::Client,
    suites: &[Suite],
    repo: &std::path::Path,
    dir: &RunDir,
    a: &SuiteArgs,
    progress: &Progress,
) -> anyhow::Result<(String, Vec<(&'static str, String)>)> {
    let SuiteArgs {
        quick,
        profile,
        slo_ms,
        runs,
        seed,
    } = *a;
    cluster::delete_experiment_namespaces(client, true).await?;
    progress.say("building/importing the compile and web images (cached)");
    let repo = repo.to_path_buf();
    let images = tokio::task::spawn_blocking(move || workload::images(&repo)).await??;
    let mut md = String::new();
    let mut tables = Vec::new();
    if suites.contains(&Suite::E0) {
        let (m, t) = e0::run(
            client,
            dir,
            &e0::Options::new(quick, profile, cores()),
            &images.0,
            progress,
        )
        .await?;
        md.push_str(&m);
        tables.push(("e0", t));
    }
    for (suite, scenario) in [
        (Suite::E2, e2::Scenario::Starvation),
        (Suite::E2b, e2::Scenario::LimitBound),
    ] {
        if suites.contains(&suite) {
            let m = e2::run(
                client,
                dir,
                &e2::Options::new(scenario, quick, profile, slo_ms, cores(), runs, seed),
                &images,
                progress,
            )
            .await?;
            md.push_str(&m);
        }
    }
    if suites.contains(&Suite::Agent) {
        let (m, t) = agent::run(client, dir, &agent::Options::new(quick), progress).await?;
        md.push_str(&m);
        tables.push(("agent", t));
    }
    Ok((md, tables))
}
