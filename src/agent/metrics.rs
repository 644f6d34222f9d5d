//! The agent's Prometheus metrics (prefix `burst_scaler_agent_`, no per-pod labels) and its
//! HTTP server: `/metrics`, `/livez`, `/readyz` (ready once its watches synced and while none
//! is failing).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::explain::verdict::DecisionBoard;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};

#[derive(Clone)]
pub struct AgentMetrics {
    pub registry: Registry,
    /// Changing decisions of the engine, by action (every mode).
    pub decisions: IntCounterVec,
    /// Pod writes (a pod's pod-level and container cgroups), by kind and result.
    pub writes: IntCounterVec,
    /// Failed cgroup writes.
    pub write_errors: IntCounter,
    pub loop_seconds: Histogram,
    /// Age of the oldest newest-sample among governed containers.
    pub signal_age_seconds: prometheus::Gauge,
    pub blind_containers: IntGauge,
    pub governed_pods: IntGauge,
    pub throttled_pods: IntGauge,
    pub raised_pods: IntGauge,
    /// 1 while the agent holds its node Lease (and may change cgroups).
    pub governing: IntGauge,
    pub watch_errors: IntCounterVec,
    pub events_dropped: IntCounter,
    pub status_writes: IntCounterVec,
}

impl AgentMetrics {
    pub fn new() -> Result<AgentMetrics, prometheus::Error> {
        let m = AgentMetrics {
            registry: Registry::new(),
            decisions: IntCounterVec::new(
                Opts::new(
                    "burst_scaler_agent_decisions_total",
                    "Engine decisions that change a pod, by action (counted in every mode)",
                ),
                &["action"],
            )?,
            writes: IntCounterVec::new(
                Opts::new(
                    "burst_scaler_agent_cgroup_writes_total",
                    "Writes of a pod's cgroups, by kind (change, restore) and result (ok, error)",
                ),
                &["kind", "result"],
            )?,
            write_errors: IntCounter::new(
                "burst_scaler_agent_cgroup_write_errors_total",
                "Pod cgroup writes the kernel refused or that read back differently",
            )?,
            loop_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "burst_scaler_agent_loop_duration_seconds",
                    "Time of one agent tick: read cgroups, decide, write",
                )
                .buckets(vec![
                    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0,
                ]),
            )?,
            signal_age_seconds: prometheus::Gauge::new(
                "burst_scaler_agent_signal_age_seconds",
                "Age of the stalest newest sample among governed containers",
            )?,
            blind_containers: IntGauge::new(
                "burst_scaler_agent_blind_containers",
                "Governed containers without a fresh signal",
            )?,
            governed_pods: IntGauge::new(
                "burst_scaler_agent_governed_pods",
                "Pods of this node governed by a BurstScaler (Recommend or Auto)",
            )?,
            throttled_pods: IntGauge::new(
                "burst_scaler_agent_throttled_pods",
                "Pods whose CPU in force is below their spec",
            )?,
            raised_pods: IntGauge::new(
                "burst_scaler_agent_raised_pods",
                "Pods whose CPU limit or weight in force is above their spec",
            )?,
            governing: IntGauge::new(
                "burst_scaler_agent_governing",
                "1 while the agent holds its node Lease and may change cgroups",
            )?,
            watch_errors: IntCounterVec::new(
                Opts::new(
                    "burst_scaler_agent_watch_errors_total",
                    "Errors of the agent's watches, by resource",
                ),
                &["resource"],
            )?,
            events_dropped: IntCounter::new(
                "burst_scaler_agent_events_dropped_total",
                "Events not published because of the per-pod rate limit",
            )?,
            status_writes: IntCounterVec::new(
                Opts::new(
                    "burst_scaler_agent_status_writes_total",
                    "Writes of the node's BurstScalerNode object, by result",
                ),
                &["result"],
            )?,
        };
        m.registry.register(Box::new(m.decisions.clone()))?;
        m.registry.register(Box::new(m.writes.clone()))?;
        m.registry.register(Box::new(m.write_errors.clone()))?;
        m.registry.register(Box::new(m.loop_seconds.clone()))?;
        m.registry
            .register(Box::new(m.signal_age_seconds.clone()))?;
        m.registry.register(Box::new(m.blind_containers.clone()))?;
        m.registry.register(Box::new(m.governed_pods.clone()))?;
        m.registry.register(Box::new(m.throttled_pods.clone()))?;
        m.registry.register(Box::new(m.raised_pods.clone()))?;
        m.registry.register(Box::new(m.governing.clone()))?;
        m.registry.register(Box::new(m.watch_errors.clone()))?;
        m.registry.register(Box::new(m.events_dropped.clone()))?;
        m.registry.register(Box::new(m.status_writes.clone()))?;
        Ok(m)
    }
}

/// Renders a registry in the Prometheus text format.
pub fn render(registry: &Registry) -> String {
    let mut buf = vec![];
    let _ = TextEncoder::new().encode(&registry.gather(), &mut buf);
    String::from_utf8(buf).unwrap_or_default()
}

#[derive(Clone)]
struct Http {
    registry: Registry,
    ready: Arc<AtomicBool>,
    decisions: DecisionBoard,
}

/// Serves `/metrics` (from `registry`), `/livez` and `/readyz` (from `ready`) until
/// `shutdown` resolves.
pub async fn serve(
    addr: SocketAddr,
    registry: Registry,
    ready: Arc<AtomicBool>,
    decisions: DecisionBoard,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = Router::new()
        .route(
            "/decisions",
            get(
                |State(h): State<Http>,
                 Query(q): Query<std::collections::HashMap<String, String>>| async move {
                    crate::controller::metrics::decisions_route(&h.decisions, &q).await
                },
            ),
        )
        .route(
            "/metrics",
            get(|State(h): State<Http>| async move { render(&h.registry) }),
        )
        .route("/livez", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(|State(h): State<Http>| async move {
                if h.ready.load(Ordering::Relaxed) {
                    (StatusCode::OK, "ok")
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, "not ready")
                }
            }),
        )
        .with_state(Http {
            registry,
            ready,
            decisions,
        });
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(addr = %listener.local_addr()?, "serving /metrics, /livez, /readyz, /decisions");
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}
