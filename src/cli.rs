//! Command-line interface. Every flag can also be set by an environment variable
//! `BURST_SCALER_<FLAG>` (flags win over the environment).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "burst-scaler",
    version,
    about = "CPU autoscaler for nodes shared by bursty batch work and latency-sensitive services"
)]
pub struct Cli {
    #[command(flatten)]
    pub log: LogArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print every CRD of the project as YAML (what `crds/` holds).
    Crd,
    /// Run the operator.
    Controller(ControllerArgs),
    /// Run the node agent: govern this node's pods through their cgroups (a DaemonSet).
    Agent(AgentArgs),
    /// Feed a recorded usage trace through the decision engine and print the decisions.
    Replay(ReplayArgs),
    /// Say why a pod has the CPU it has, or what a BurstScaler does: who governs it, what is
    /// in force, the last decision and what happens next (read-only). Also runs as the
    /// kubectl plugin `kubectl burstscaler` (a copy or link of this binary named
    /// `kubectl-burstscaler` on the PATH).
    Explain(ExplainArgs),
}

#[derive(Debug, Args, Clone)]
pub struct ExplainArgs {
    #[command(subcommand)]
    pub target: ExplainTarget,
    /// Namespace (default: the kubeconfig context's).
    #[arg(
        short = 'n',
        long,
        global = true,
        env = "BURST_SCALER_EXPLAIN_NAMESPACE"
    )]
    pub namespace: Option<String>,
    /// Output format (`json`: the whole explanation, for scripts).
    #[arg(short = 'o', long, global = true, env = "BURST_SCALER_EXPLAIN_OUTPUT", value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
    /// Label selector of the controller's pods (their `/decisions` say what happens next on
    /// nodes without a node agent).
    #[arg(
        long,
        global = true,
        env = "BURST_SCALER_EXPLAIN_CONTROLLER_SELECTOR",
        default_value = "app.kubernetes.io/name=burst-scaler,app.kubernetes.io/component!=agent"
    )]
    pub controller_selector: String,
}

#[derive(Debug, Subcommand, Clone)]
pub enum ExplainTarget {
    /// One pod: who governs it, with which actuator, its CPU in force against its spec and
    /// originals, the last decision and the decider's current verdict, its Events.
    Pod { name: String },
    /// One BurstScaler: validity, conditions, recommendations and every pod it selects.
    #[command(visible_alias = "burstscaler")]
    Bsc { name: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct LogArgs {
    /// Log filter, in tracing's env-filter syntax (e.g. `info,burst_scaler=debug`).
    #[arg(long, global = true, env = "BURST_SCALER_LOG", default_value = "info")]
    pub log: String,
    /// Log output format.
    #[arg(long, global = true, env = "BURST_SCALER_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

#[derive(Debug, Args, Clone)]
pub struct ControllerArgs {
    /// Namespaces to watch (comma-separated). Empty: all namespaces.
    #[arg(long, env = "BURST_SCALER_NAMESPACES", value_delimiter = ',')]
    pub namespaces: Vec<String>,
    /// How often to read pod usage from metrics.k8s.io.
    #[arg(long, env = "BURST_SCALER_METRICS_INTERVAL", value_parser = parse_duration, default_value = "15s")]
    pub metrics_interval: Duration,
    /// How long a Deferred resize is retried before it is reported as failed.
    #[arg(long, env = "BURST_SCALER_RESIZE_TIMEOUT", value_parser = parse_duration, default_value = "5m")]
    pub resize_timeout: Duration,
    /// CPU kept free on every node, never handed to latency-sensitive pods (millicores or cores).
    #[arg(long, env = "BURST_SCALER_NODE_RESERVE", default_value = "100m")]
    pub node_reserve: String,
    /// Decide and report, but never change a pod (as if every BurstScaler were in Recommend).
    #[arg(long, env = "BURST_SCALER_DRY_RUN")]
    pub dry_run: bool,
    /// Only write while holding the leader Lease (needed with more than one replica).
    #[arg(long, env = "BURST_SCALER_LEADER_ELECTION")]
    pub leader_election: bool,
    /// Namespace of the leader Lease (default: the pod's namespace, else `default`).
    #[arg(long, env = "BURST_SCALER_LEASE_NAMESPACE")]
    pub lease_namespace: Option<String>,
    /// Namespace of the node agents' Leases (default: the pod's namespace, else `default`, as
    /// the agents'). On a node whose agent holds its Lease the controller does not decide.
    #[arg(long, env = "BURST_SCALER_AGENT_NAMESPACE")]
    pub agent_namespace: Option<String>,
    /// Address of the HTTP server for /metrics, /livez and /readyz.
    #[arg(long, env = "BURST_SCALER_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,
}

#[derive(Debug, Args, Clone)]
pub struct AgentArgs {
    /// The node this agent governs (the chart sets it from `spec.nodeName`).
    #[arg(long, env = "BURST_SCALER_NODE_NAME")]
    pub node_name: String,
    /// How often to read the cgroups, decide and act.
    #[arg(long, env = "BURST_SCALER_INTERVAL", value_parser = parse_duration, default_value = "1s")]
    pub interval: Duration,
    /// CPU kept free on the node, never handed out (millicores or cores).
    #[arg(long, env = "BURST_SCALER_NODE_RESERVE", default_value = "100m")]
    pub node_reserve: String,
    /// Where the host's cgroup hierarchies are mounted in the agent's container.
    #[arg(
        long,
        env = "BURST_SCALER_CGROUP_ROOT",
        default_value = "/sys/fs/cgroup"
    )]
    pub cgroup_root: PathBuf,
    /// The kubelet's cgroup driver (`auto`: from the cgroups the kubelet created).
    #[arg(long, env = "BURST_SCALER_CGROUP_DRIVER", value_enum, default_value_t = CgroupDriverArg::Auto)]
    pub cgroup_driver: CgroupDriverArg,
    /// Directory on the host (a hostPath) for the agent's journal of what it changed, so that
    /// every change can be undone after a crash, even without the API server.
    #[arg(
        long,
        env = "BURST_SCALER_STATE_DIR",
        default_value = "/var/lib/burst-scaler/agent"
    )]
    pub state_dir: PathBuf,
    /// The kubelet's CPU manager checkpoint (containers pinned to exclusive CPUs are left
    /// alone). A missing file means no pinned containers.
    #[arg(
        long,
        env = "BURST_SCALER_CPU_MANAGER_STATE",
        default_value = "/var/lib/kubelet/cpu_manager_state"
    )]
    pub cpu_manager_state: PathBuf,
    /// The host's /proc, for the run-queue-wait fallback where PSI is unavailable (needs
    /// hostPID). Unset: no fallback (CPU pressure unknown without PSI).
    #[arg(long, env = "BURST_SCALER_PROC_ROOT")]
    pub proc_root: Option<PathBuf>,
    /// Namespace of the agent's per-node Lease (default: the pod's namespace, else `default`).
    #[arg(long, env = "BURST_SCALER_LEASE_NAMESPACE")]
    pub lease_namespace: Option<String>,
    /// How long a Lease hold lasts without renewal. Also how long the agent keeps its changes
    /// when it cannot reach the API server: after that it restores every pod's spec values.
    #[arg(long, env = "BURST_SCALER_LEASE_DURATION", value_parser = parse_duration, default_value = "15s")]
    pub lease_duration: Duration,
    /// Least time between two writes of the node's BurstScalerNode object (changes are
    /// coalesced; nothing is written while nothing changes).
    #[arg(long, env = "BURST_SCALER_STATUS_INTERVAL", value_parser = parse_duration, default_value = "5s")]
    pub status_interval: Duration,
    /// Least time between two Events of the same action for one pod.
    #[arg(long, env = "BURST_SCALER_EVENT_INTERVAL", value_parser = parse_duration, default_value = "30s")]
    pub event_interval: Duration,
    /// Decide and report, but never write a cgroup (as if every BurstScaler were in Recommend).
    #[arg(long, env = "BURST_SCALER_DRY_RUN")]
    pub dry_run: bool,
    /// Address of the HTTP server for /metrics, /livez and /readyz.
    #[arg(long, env = "BURST_SCALER_LISTEN", default_value = "0.0.0.0:8081")]
    pub listen: SocketAddr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CgroupDriverArg {
    Auto,
    Cgroupfs,
    Systemd,
}

#[derive(Debug, Args, Clone)]
pub struct ReplayArgs {
    /// The trace file (JSON, see `burst-scaler replay --help` and the README).
    pub trace: PathBuf,
    /// Output format.
    #[arg(long, env = "BURST_SCALER_REPLAY_FORMAT", value_enum, default_value_t = ReplayFormat::Text)]
    pub format: ReplayFormat,
    /// Also print passes that decided nothing.
    #[arg(long, env = "BURST_SCALER_REPLAY_VERBOSE")]
    pub verbose: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReplayFormat {
    Text,
    Json,
}

/// Parses `15s`, `500ms`, `5m`, `1h` or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: u64 = n
        .parse()
        .map_err(|_| format!("{s:?} is not a duration: write e.g. 15s, 500ms, 5m or 1h"))?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "" | "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n * 60),
        "h" => Duration::from_secs(n * 3600),
        other => {
            return Err(format!(
                "{other:?} is not a duration unit: use ms, s, m or h"
            ));
        }
    };
    if d.is_zero() {
        return Err(format!("{s:?}: the duration must be greater than zero"));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("15s"), Ok(Duration::from_secs(15)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("5d").expect_err("unit").contains("unit"));
        assert!(parse_duration("abc").is_err());
    }

    #[test]
    fn cli_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
