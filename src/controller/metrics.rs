//! Prometheus metrics (prefix `burst_scaler_`, no per-pod labels) and the HTTP server for
//! `/metrics`, `/livez` and `/readyz`.
//!
//! Label cardinality is bounded: `action` and `result` have fixed value sets (every one is
//! exported from the start, at 0, so that `rate()` and absence checks work before the first
//! event), and the per-BurstScaler gauges (`burst_scaler_burstscaler_*`) carry
//! `namespace` and `burstscaler`: one series set per BurstScaler, removed when it goes.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::explain::verdict::DecisionBoard;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use prometheus::core::Collector;
use prometheus::{
    Encoder, GaugeVec, Histogram, HistogramOpts, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// Every value of `burst_scaler_decisions_total`'s `action` label (the changing actions).
pub const ACTIONS: [&str; 5] = ["ScaleUp", "ScaleDown", "Throttle", "Release", "Borrow"];
/// Every value of `burst_scaler_resize_requests_total`'s `result` label.
pub const RESIZE_RESULTS: [&str; 5] = [
    "ok",
    "error",
    "not_applied",
    "infeasible",
    "deferred_timeout",
];

/// One BurstScaler's gauges at the end of a pass.
#[derive(Debug, Clone, PartialEq)]
pub struct ScalerGauges {
    pub namespace: String,
    pub name: String,
    pub managed_pods: u32,
    pub throttled_pods: u32,
    pub resized_pods: u32,
    pub ready: bool,
    /// `spec.cpu.min`, `spec.cpu.max` and the batch floor in cores; `None` while invalid.
    pub cpu: Option<(f64, f64, f64)>,
}

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
    pub scaler_managed_pods: IntGaugeVec,
    pub scaler_throttled_pods: IntGaugeVec,
    pub scaler_resized_pods: IntGaugeVec,
    pub scaler_ready: IntGaugeVec,
    /// `spec.cpu.min` / `max` / the floor, by `bound`.
    pub scaler_cpu_cores: GaugeVec,
    /// The BurstScalers (namespace, name) that have series now.
    scaler_keys: Arc<Mutex<BTreeSet<(String, String)>>>,
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
            scaler_managed_pods: IntGaugeVec::new(
                Opts::new(
                    "burst_scaler_burstscaler_managed_pods",
                    "Pods a BurstScaler selects and governs",
                ),
                &["namespace", "burstscaler"],
            )?,
            scaler_throttled_pods: IntGaugeVec::new(
                Opts::new(
                    "burst_scaler_burstscaler_throttled_pods",
                    "A BurstScaler's batch pods below their original CPU limit (resized or, through the node agent, in their cgroups)",
                ),
                &["namespace", "burstscaler"],
            )?,
            scaler_resized_pods: IntGaugeVec::new(
                Opts::new(
                    "burst_scaler_burstscaler_resized_pods",
                    "A BurstScaler's latency-sensitive pods above their original CPU (resized or, through the node agent, in their cgroups)",
                ),
                &["namespace", "burstscaler"],
            )?,
            scaler_ready: IntGaugeVec::new(
                Opts::new(
                    "burst_scaler_burstscaler_ready",
                    "1 while a BurstScaler's Ready condition is True",
                ),
                &["namespace", "burstscaler"],
            )?,
            scaler_cpu_cores: GaugeVec::new(
                Opts::new(
                    "burst_scaler_burstscaler_spec_cpu_cores",
                    "A valid BurstScaler's CPU bounds in cores, by bound (min, max, floor: the batch throttle floor, min for latency-sensitive)",
                ),
                &["namespace", "burstscaler", "bound"],
            )?,
            scaler_keys: Arc::default(),
            registry,
        };
        for a in ACTIONS {
            m.decisions.with_label_values(&[a]);
        }
        for r in RESIZE_RESULTS {
            m.resize_requests.with_label_values(&[r]);
        }
        for c in m.collectors() {
            m.registry.register(c)?;
        }
        Ok(m)
    }

    /// Sets the per-BurstScaler gauges to `rows` (this pass's BurstScalers) and removes the
    /// series of BurstScalers that are gone.
    pub fn set_scalers(&self, rows: &[ScalerGauges]) {
        let now: BTreeSet<(String, String)> = rows
            .iter()
            .map(|r| (r.namespace.clone(), r.name.clone()))
            .collect();
        let mut keys = match self.scaler_keys.lock() {
            Ok(k) => k,
            Err(poisoned) => poisoned.into_inner(),
        };
        for (ns, name) in keys.difference(&now) {
            let l = [ns.as_str(), name.as_str()];
            let _ = self.scaler_managed_pods.remove_label_values(&l);
            let _ = self.scaler_throttled_pods.remove_label_values(&l);
            let _ = self.scaler_resized_pods.remove_label_values(&l);
            let _ = self.scaler_ready.remove_label_values(&l);
            for b in ["min", "max", "floor"] {
                let _ = self.scaler_cpu_cores.remove_label_values(&[ns, name, b]);
            }
        }
        for r in rows {
            let l = [r.namespace.as_str(), r.name.as_str()];
            self.scaler_managed_pods
                .with_label_values(&l)
                .set(i64::from(r.managed_pods));
            self.scaler_throttled_pods
                .with_label_values(&l)
                .set(i64::from(r.throttled_pods));
            self.scaler_resized_pods
                .with_label_values(&l)
                .set(i64::from(r.resized_pods));
            self.scaler_ready
                .with_label_values(&l)
                .set(i64::from(r.ready));
            match r.cpu {
                Some((min, max, floor)) => {
                    for (b, v) in [("min", min), ("max", max), ("floor", floor)] {
                        self.scaler_cpu_cores
                            .with_label_values(&[&r.namespace, &r.name, b])
                            .set(v);
                    }
                }
                None => {
                    for b in ["min", "max", "floor"] {
                        let _ =
                            self.scaler_cpu_cores
                                .remove_label_values(&[&r.namespace, &r.name, b]);
                    }
                }
            }
        }
        *keys = now;
    }

    fn collectors(&self) -> Vec<Box<dyn Collector>> {
        vec![
            Box::new(self.decisions.clone()),
            Box::new(self.resize_requests.clone()),
            Box::new(self.throttled_pods.clone()),
            Box::new(self.resized_pods.clone()),
            Box::new(self.decision_pass_seconds.clone()),
            Box::new(self.reconcile_seconds.clone()),
            Box::new(self.sample_age_seconds.clone()),
            Box::new(self.leader.clone()),
            Box::new(self.invalid_burstscalers.clone()),
            Box::new(self.scaler_managed_pods.clone()),
            Box::new(self.scaler_throttled_pods.clone()),
            Box::new(self.scaler_resized_pods.clone()),
            Box::new(self.scaler_ready.clone()),
            Box::new(self.scaler_cpu_cores.clone()),
        ]
    }

    /// Every metric this exports, with its label names (histograms by their base name; a
    /// family with labels appears in `/metrics` once it has a series).
    pub fn descriptions(&self) -> Vec<(String, Vec<String>)> {
        describe(&self.collectors())
    }

    /// `/metrics` in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut buf = vec![];
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}

/// Name and label names of every metric of `collectors`.
pub fn describe(collectors: &[Box<dyn Collector>]) -> Vec<(String, Vec<String>)> {
    collectors
        .iter()
        .flat_map(|c| c.desc())
        .map(|d| (d.fq_name.clone(), d.variable_labels.clone()))
        .collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, throttled: u32) -> ScalerGauges {
        ScalerGauges {
            namespace: "ns".into(),
            name: name.into(),
            managed_pods: 2,
            throttled_pods: throttled,
            resized_pods: 0,
            ready: true,
            cpu: Some((0.1, 2.0, 0.5)),
        }
    }

    #[test]
    fn labelled_counters_are_exported_at_zero_from_the_start() {
        let m = Metrics::new().expect("metrics");
        let text = m.render();
        for a in ACTIONS {
            assert!(
                text.contains(&format!("burst_scaler_decisions_total{{action=\"{a}\"}} 0")),
                "{text}"
            );
        }
        for r in RESIZE_RESULTS {
            assert!(
                text.contains(&format!(
                    "burst_scaler_resize_requests_total{{result=\"{r}\"}} 0"
                )),
                "{text}"
            );
        }
    }

    #[test]
    fn a_burstscaler_that_is_gone_loses_its_series() {
        let m = Metrics::new().expect("metrics");
        m.set_scalers(&[row("a", 1), row("b", 0)]);
        let text = m.render();
        assert!(
            text.contains(
                r#"burst_scaler_burstscaler_throttled_pods{burstscaler="a",namespace="ns"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains(
                r#"burst_scaler_burstscaler_spec_cpu_cores{bound="floor",burstscaler="b",namespace="ns"} 0.5"#
            ),
            "{text}"
        );
        let mut invalid = row("a", 0);
        invalid.cpu = None;
        invalid.ready = false;
        m.set_scalers(&[invalid]);
        let text = m.render();
        assert!(!text.contains(r#"burstscaler="b""#), "{text}");
        assert!(
            text.contains(r#"burst_scaler_burstscaler_ready{burstscaler="a",namespace="ns"} 0"#),
            "{text}"
        );
        assert!(
            !text.contains("burst_scaler_burstscaler_spec_cpu_cores{"),
            "{text}"
        );
    }

    #[test]
    fn descriptions_name_every_family_with_its_labels() {
        let d = Metrics::new().expect("metrics").descriptions();
        assert!(d.contains(&(
            "burst_scaler_burstscaler_spec_cpu_cores".to_string(),
            vec!["namespace".into(), "burstscaler".into(), "bound".into()]
        )));
        assert_eq!(d.len(), 14);
    }
}
