//! burst-scaler's experiment harness. See `experiments/README.md`.
//!
//!   experiments run e0|e1|e2|all [--quick]   run a suite, write experiments/results/<stamp>-<suite>/
//!   experiments serve ...                    the latency-sensitive service (runs in the web image)
//!   experiments calibrate --cost-ms 2        iterations of work per request on this machine

mod cgroup;
mod cluster;
mod e0;
mod e1;
mod e2;
mod load;
mod plot;
mod report;
mod serve;
mod stats;
mod workload;

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

use crate::report::{Progress, RunDir, machine_description, update_readme};
use crate::workload::Profile;

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
    /// Throttling efficiency of the compile at 100/75/50/25 % quota, with and without burst.
    E1,
    /// Co-location: the web service under load with a spike, the compile mid-run; per arm.
    E2,
    /// E1, then E0 and E2.
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
        /// Runs per E1 point (default 3; 1 with --quick).
        #[arg(long)]
        runs: Option<usize>,
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
        Cmd::Run {
            suites,
            quick,
            runs,
            profile,
            results,
            no_readme,
            start_cluster,
            slo_ms,
        } => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?;
            let opts = RunOptions {
                quick,
                runs,
                profile,
                results,
                write_readme: !no_readme && !quick,
                start_cluster,
                slo_ms,
            };
            rt.block_on(run(suites, opts))
        }
    }
}

struct RunOptions {
    quick: bool,
    runs: Option<usize>,
    profile: Option<Profile>,
    results: PathBuf,
    write_readme: bool,
    start_cluster: bool,
    slo_ms: f64,
}

async fn run(mut suites: Vec<Suite>, o: RunOptions) -> anyhow::Result<()> {
    let RunOptions {
        quick,
        runs,
        profile,
        results,
        write_readme,
        start_cluster,
        slo_ms,
    } = o;
    if suites.contains(&Suite::All) {
        suites = vec![Suite::E0, Suite::E1, Suite::E2];
    }
    suites.sort();
    suites.dedup();
    let repo = repo_root();
    let name = suites
        .iter()
        .map(|s| format!("{s:?}").to_lowercase())
        .collect::<Vec<_>>()
        .join("-");
    let dir = RunDir::create(
        &results,
        &format!("{name}{}", if quick { "-quick" } else { "" }),
    )?;
    let progress = Progress::new();
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    progress.say(format!("results: {}", dir.path.display()));
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
        let opts = e1::Options::new(quick, runs, profile, cores());
        let (md, table) = e1::run(&repo, &dir, &opts, &progress)?;
        summary.push_str(&md);
        if write_readme {
            update_readme(&readme, "e1", &stamp(&table))?;
        }
    }
    dir.write("summary.md", &summary)?;
    if suites.contains(&Suite::E0) || suites.contains(&Suite::E2) {
        let cluster = cluster::Cluster::connect(&repo, start_cluster).await?;
        let version = cluster.server_version().await;
        let _ = writeln!(
            summary,
            "- Kubernetes: {version} (the project's local cluster, tests/cluster/kube-local)\n"
        );
        // Whatever happens (an error, Ctrl-C), the experiment namespaces go and a cluster this
        // run started is stopped again.
        let outcome = tokio::select! {
            r = cluster_suites(&cluster.client, &suites, &repo, &dir, quick, profile, slo_ms, &progress) => r,
            _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
        };
        let finished = cluster.finish().await;
        let (md, tables) = outcome?;
        finished?;
        summary.push_str(&md);
        if write_readme {
            for (key, table) in tables {
                update_readme(&readme, key, &stamp(&table))?;
            }
        }
    }
    dir.write("summary.md", &summary)?;
    progress.say(format!("done: {}", dir.file("summary.md").display()));
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn cluster_suites(
    client: &kube::Client,
    suites: &[Suite],
    repo: &std::path::Path,
    dir: &RunDir,
    quick: bool,
    profile: Option<Profile>,
    slo_ms: f64,
    progress: &Progress,
) -> anyhow::Result<(String, Vec<(&'static str, String)>)> {
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
    if suites.contains(&Suite::E2) {
        let (m, t) = e2::run(
            client,
            dir,
            &e2::Options::new(quick, profile, slo_ms, cores()),
            &images,
            progress,
        )
        .await?;
        md.push_str(&m);
        tables.push(("e2", t));
    }
    Ok((md, tables))
}
