//! The operator process (`burst-scaler controller`).
//!
//! This is the process shell: configuration, start-up logging and graceful shutdown. The watch /
//! decide / apply loop is built on top of it (see the project issues).

use crate::cli::ControllerArgs;
use crate::quantity::parse_cpu;

/// Runs the controller until SIGTERM or SIGINT.
pub async fn run(args: ControllerArgs) -> anyhow::Result<()> {
    let reserve =
        parse_cpu(&args.node_reserve).map_err(|e| anyhow::anyhow!("--node-reserve: {e}"))?;
    tracing::info!(
        namespaces = ?args.namespaces,
        metrics_interval = ?args.metrics_interval,
        resize_timeout = ?args.resize_timeout,
        node_reserve = %reserve,
        dry_run = args.dry_run,
        leader_election = args.leader_election,
        lease_namespace = ?args.lease_namespace,
        listen = %args.listen,
        version = env!("CARGO_PKG_VERSION"),
        "burst-scaler controller starting"
    );
    let signal = shutdown_signal().await?;
    tracing::info!(signal, "shutting down");
    Ok(())
}

/// Resolves when the process receives SIGTERM (what the kubelet sends) or SIGINT.
pub async fn shutdown_signal() -> anyhow::Result<&'static str> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    })
}
