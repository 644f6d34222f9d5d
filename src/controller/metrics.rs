//! Prometheus metrics (prefix `burst_scaler_`, no per-pod labels) and the HTTP server for
//! `/metrics`, `/livez` and `/readyz`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::explain::verdict::DecisionBoard;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};

#[derive(Clone)]
pub struct Metrics {
    pub registry: Registry,
    pub decisions: IntCounterVec,
    pub resize_requests: IntCounterVec,
    pub throttled_pods: IntGauge,
    pub resized_pods: IntGauge,
    pub decision_pass_seconds: Histogram,
    pub reconcile_seconds: Histogram,
    pub sample_age_seconds: IntGauge,
    pub leader: IntGauge,
    pub invalid_burstscalers: IntGauge,
}

impl Metrics {
    pub fn new() -> Result<Metrics, prometheus::Error> {
        let registry = Registry::new();
        let m = Metrics {
            decisions: IntCounterVec::new(
                Opts::new(
                    "burst_scaler_decisions_total",
                    "Pod decisions that change a pod, by action (counted in every mode)",
                ),
                &["action"],
            )?,
            resize_requests: IntCounterVec::new(
                Opts::new(
                    "burst_scaler_resize_requests_total",
                    "Pod changes requested, by result",
                ),
                &["result"],
            )?,
            throttled_pods: IntGauge::new(
                "burst_scaler_throttled_pods",
                "Batch pods below their original CPU limit",
            )?,
            resized_pods: IntGauge::new(
                "burst_scaler_resized_pods",
                "Latency-sensitive pods above their original CPU limit",
            )?,
            decision_pass_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "burst_scaler_decision_pass_duration_seconds",
                    "Time of one engine pass over all nodes",
                )
                .buckets(vec![0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0]),
            )?,
            reconcile_seconds: Histogram::with_opts(HistogramOpts::new(
                "burst_scaler_reconcile_duration_seconds",
                "Time of one whole reconcile pass (metrics, decisions, writes, status)",
            ))?,
            sample_age_seconds: IntGauge::new(
                "burst_scaler_metrics_sample_age_seconds",
                "Age of the newest metrics.k8s.io sample at the last pass",
            )?,
            leader: IntGauge::new("burst_scaler_leader", "1 while this replica may write")?,
            invalid_burstscalers: IntGauge::new(
                "burst_scaler_invalid_burstscalers",
                "BurstScalers failing validation",
            )?,
            registry,
        };
        m.registry.register(Box::new(m.decisions.clone()))?;
        m.registry.register(Box::new(m.resize_requests.clone()))?;
        m.registry.register(Box::new(m.throttled_pods.clone()))?;
        m.registry.register(Box::new(m.resized_pods.clone()))?;
        m.registry
            .register(Box::new(m.decision_pass_seconds.clone()))?;
        m.registry.register(Box::new(m.reconcile_seconds.clone()))?;
        m.registry
            .register(Box::new(m.sample_age_seconds.clone()))?;
        m.registry.register(Box::new(m.leader.clone()))?;
        m.registry
            .register(Box::new(m.invalid_burstscalers.clone()))?;
        Ok(m)
    }

    pub fn render(&self) -> String {
        let mut buf = vec![];
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}

#[derive(Clone)]
struct Http {
    metrics: Metrics,
    ready: Arc<AtomicBool>,
    decisions: DecisionBoard,
}

/// `/decisions` (`?pod=namespace/name` for one pod): the newest pass's verdicts, JSON; 503
/// before the first pass. Shared by the controller's and the agent's servers.
pub async fn decisions_route(
    board: &DecisionBoard,
    query: &std::collections::HashMap<String, String>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    match board.json(query.get("pod").map(String::as_str)) {
        Some(body) => (
            StatusCode::OK,
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response(),
        None => (StatusCode::SERVICE_UNAVAILABLE, "no decision pass yet").into_response(),
    }
}

/// Serves until `shutdown` resolves.
pub async fn serve(
    addr: SocketAddr,
    metrics: Metrics,
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
                    decisions_route(&h.decisions, &q).await
                },
            ),
        )
        .route(
            "/metrics",
            get(|State(h): State<Http>| async move { h.metrics.render() }),
        )
        .route("/livez", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(|State(h): State<Http>| async move {
                if h.ready.load(Ordering::Relaxed) {
                    (StatusCode::OK, "ok")
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, "caches not synced")
                }
            }),
        )
        .with_state(Http {
            metrics,
            ready,
            decisions,
        });
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(addr = %listener.local_addr()?, "serving /metrics, /livez, /readyz, /decisions");
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}
