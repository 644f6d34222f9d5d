//! The agent's Prometheus metrics (prefix `burst_scaler_agent_`, no per-pod labels) and its
//! HTTP server: `/metrics`, `/livez`, `/readyz` (ready once its watches synced and while none
//! is failing).
//!
//! One agent exports one node's series: the node is the scrape target's identity, attached by
//! the scrape (the chart's PodMonitor relabels the pod's node name to `node`), so no series
//! carries a node label of its own. Every label has a fixed value set, all exported from the
//! start at 0.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::explain::verdict::DecisionBoard;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use prometheus::core::Collector;
use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};

/// Every value of `burst_scaler_agent_decisions_total`'s `action` label.
pub const ACTIONS: [&str; 5] = crate::controller::metrics::ACTIONS;
/// Every value of `burst_scaler_agent_watch_errors_total`'s `resource` label.
pub const WATCHED: [&str; 3] = ["pods", "burstscalers", "nodes"];

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
        for c in m.collectors() {
            m.registry.register(c)?;
        }
        for a in ACTIONS {
            m.decisions.with_label_values(&[a]);
        }
        for kind in ["change", "restore"] {
            for result in ["ok", "error"] {
                m.writes.with_label_values(&[kind, result]);
            }
        }
        for r in WATCHED {
            m.watch_errors.with_label_values(&[r]);
        }
        for r in ["ok", "error"] {
            m.status_writes.with_label_values(&[r]);
        }
        Ok(m)
    }

    fn collectors(&self) -> Vec<Box<dyn Collector>> {
        vec![
            Box::new(self.decisions.clone()),
            Box::new(self.writes.clone()),
            Box::new(self.write_errors.clone()),
            Box::new(self.loop_seconds.clone()),
            Box::new(self.signal_age_seconds.clone()),
            Box::new(self.blind_containers.clone()),
            Box::new(self.governed_pods.clone()),
            Box::new(self.throttled_pods.clone()),
            Box::new(self.raised_pods.clone()),
            Box::new(self.governing.clone()),
            Box::new(self.watch_errors.clone()),
            Box::new(self.events_dropped.clone()),
            Box::new(self.status_writes.clone()),
        ]
    }

    /// Every metric this exports, with its label names (histograms by their base name).
    pub fn descriptions(&self) -> Vec<(String, Vec<String>)> {
        crate::controller::metrics::describe(&self.collectors())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_labelled_series_is_exported_at_zero_from_the_start() {
        let m = AgentMetrics::new().expect("metrics");
        let text = render(&m.registry);
        let mut want: Vec<String> = ACTIONS
            .iter()
            .map(|a| format!("burst_scaler_agent_decisions_total{{action=\"{a}\"}} 0"))
            .collect();
        want.extend(
            WATCHED
                .iter()
                .map(|r| format!("burst_scaler_agent_watch_errors_total{{resource=\"{r}\"}} 0")),
        );
        want.push(
            r#"burst_scaler_agent_cgroup_writes_total{kind="restore",result="error"} 0"#.into(),
        );
        want.push(r#"burst_scaler_agent_status_writes_total{result="ok"} 0"#.into());
        for w in want {
            assert!(text.contains(&w), "{w} in\n{text}");
        }
        // Every family is in the exposition and described (no node label: the scrape adds it).
        let d = m.descriptions();
        assert_eq!(d.len(), 13);
        assert!(
            d.iter()
                .all(|(_, labels)| !labels.iter().any(|l| l == "node"))
        );
        for (name, _) in d {
            assert!(text.contains(&format!("# TYPE {name} ")), "{name}");
        }
    }
}
