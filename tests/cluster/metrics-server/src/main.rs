//! A `metrics.k8s.io/v1beta1` server for burst-scaler's local test cluster.
//!
//! It exists only because metrics-server is not packaged anywhere this project can fetch from;
//! real clusters run metrics-server. Like metrics-server it scrapes every node's kubelet Summary
//! API (through the API server's node proxy), computes CPU usage as the rate of the cumulative
//! `usageCoreNanoSeconds` between two scrapes (falling back to the kubelet's own
//! `usageNanoCores` for a container's first scrape), and serves NodeMetrics and PodMetrics
//! (get and list, per namespace and across all, with label selectors; no watch). It is
//! registered as the APIService `v1beta1.metrics.k8s.io`, so `kubectl top` and the stock HPA use
//! it. It binds to loopback and does not authenticate its callers: test clusters only.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use clap::Parser;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::ListParams;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client};
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Parser, Debug)]
struct Args {
    /// Kubeconfig with permission to list nodes/pods and use the nodes/proxy subresource.
    #[arg(long, env = "BSC_METRICS_KUBECONFIG")]
    kubeconfig: PathBuf,
    #[arg(long, env = "BSC_METRICS_LISTEN", default_value = "127.0.0.1:4443")]
    listen: SocketAddr,
    #[arg(long, env = "BSC_METRICS_TLS_CERT")]
    tls_cert: PathBuf,
    #[arg(long, env = "BSC_METRICS_TLS_KEY")]
    tls_key: PathBuf,
    /// How often the kubelets are scraped.
    #[arg(long, env = "BSC_METRICS_RESOLUTION_SECS", default_value_t = 10)]
    resolution_secs: u64,
}

/// One cumulative CPU reading.
#[derive(Clone, Copy, Debug)]
struct Cumulative {
    time: Timestamp,
    nanos: u64,
}

#[derive(Clone, Debug)]
struct Usage {
    nanocores: u64,
    memory_bytes: u64,
    time: Timestamp,
    window: Duration,
}

#[derive(Default)]
struct Store {
    nodes: BTreeMap<String, Usage>,
    /// (namespace, pod) → container → usage.
    pods: BTreeMap<(String, String), BTreeMap<String, Usage>>,
    last: HashMap<String, Cumulative>,
}

type Shared = Arc<RwLock<Store>>;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Summary {
    node: SummaryNode,
    #[serde(default)]
    pods: Vec<SummaryPod>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SummaryNode {
    node_name: String,
    cpu: Option<Cpu>,
    memory: Option<Memory>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SummaryPod {
    pod_ref: PodRef,
    #[serde(default)]
    containers: Vec<SummaryContainer>,
}

#[derive(Deserialize)]
struct PodRef {
    name: String,
    namespace: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SummaryContainer {
    name: String,
    cpu: Option<Cpu>,
    memory: Option<Memory>,
}

#[derive(Deserialize, Clone)]
#[serde(rename_all = "camelCase")]
struct Cpu {
    time: Timestamp,
    usage_nano_cores: Option<u64>,
    usage_core_nano_seconds: Option<u64>,
}

#[derive(Deserialize, Clone)]
#[serde(rename_all = "camelCase")]
struct Memory {
    working_set_bytes: Option<u64>,
}

fn rate(
    store: &mut Store,
    key: String,
    cpu: &Cpu,
    resolution: Duration,
) -> Option<(u64, Duration)> {
    let now = Cumulative {
        time: cpu.time,
        nanos: cpu.usage_core_nano_seconds?,
    };
    let prev = store.last.insert(key, now);
    match prev {
        Some(p) if now.time > p.time && now.nanos >= p.nanos => {
            let dt = now.time.duration_since(p.time);
            let secs = dt.as_secs_f64();
            let window = Duration::try_from(dt).unwrap_or(resolution);
            Some((((now.nanos - p.nanos) as f64 / secs) as u64, window))
        }
        Some(p) if now.time == p.time => None, // the kubelet has not refreshed; keep the old value
        _ => cpu.usage_nano_cores.map(|n| (n, resolution)),
    }
}

async fn scrape(client: &Client, store: &Shared, resolution: Duration) -> anyhow::Result<()> {
    let nodes: Api<Node> = Api::all(client.clone());
    let mut seen = std::collections::BTreeSet::new();
    for node in nodes.list(&ListParams::default()).await? {
        let Some(name) = node.metadata.name else {
            continue;
        };
        let req = http::Request::get(format!("/api/v1/nodes/{name}/proxy/stats/summary"))
            .body(Vec::new())?;
        let text = client.request_text(req).await?;
        let summary: Summary = serde_json::from_str(&text)?;
        let mut s = store
            .write()
            .map_err(|_| anyhow::anyhow!("store lock poisoned"))?;
        if let Some(cpu) = &summary.node.cpu
            && let Some((nanocores, window)) = rate(&mut s, format!("node/{name}"), cpu, resolution)
        {
            let memory_bytes = summary
                .node
                .memory
                .as_ref()
                .and_then(|m| m.working_set_bytes)
                .unwrap_or(0);
            s.nodes.insert(
                summary.node.node_name.clone(),
                Usage {
                    nanocores,
                    memory_bytes,
                    time: cpu.time,
                    window,
                },
            );
        }
        for pod in &summary.pods {
            let key = (pod.pod_ref.namespace.clone(), pod.pod_ref.name.clone());
            seen.insert(key.clone());
            for c in &pod.containers {
                let Some(cpu) = &c.cpu else { continue };
                let ckey = format!("{}/{}/{}", key.0, key.1, c.name);
                if let Some((nanocores, window)) = rate(&mut s, ckey, cpu, resolution) {
                    let memory_bytes = c
                        .memory
                        .as_ref()
                        .and_then(|m| m.working_set_bytes)
                        .unwrap_or(0);
                    s.pods.entry(key.clone()).or_default().insert(
                        c.name.clone(),
                        Usage {
                            nanocores,
                            memory_bytes,
                            time: cpu.time,
                            window,
                        },
                    );
                }
            }
        }
    }
    let mut s = store
        .write()
        .map_err(|_| anyhow::anyhow!("store lock poisoned"))?;
    s.pods.retain(|k, _| seen.contains(k));
    s.last.retain(|k, _| {
        let mut parts = k.splitn(3, '/');
        match (parts.next(), parts.next()) {
            (Some("node"), _) => true,
            (Some(ns), Some(pod)) => seen.contains(&(ns.to_string(), pod.to_string())),
            _ => false,
        }
    });
    Ok(())
}

fn usage_json(u: &Usage) -> Value {
    json!({"cpu": format!("{}n", u.nanocores), "memory": format!("{}Ki", u.memory_bytes / 1024)})
}

fn window(u: &Usage) -> String {
    format!("{}s", u.window.as_secs().max(1))
}

fn status(code: StatusCode, reason: &str, message: String) -> Response {
    (
        code,
        Json(
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                    "message": message, "reason": reason, "code": code.as_u16()}),
        ),
    )
        .into_response()
}

#[derive(Clone)]
struct App {
    store: Shared,
    client: Client,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Selector {
    label_selector: Option<String>,
}

async fn resources() -> Json<Value> {
    Json(json!({
        "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "metrics.k8s.io/v1beta1",
        "resources": [
            {"name": "nodes", "singularName": "", "namespaced": false, "kind": "NodeMetrics", "verbs": ["get", "list"]},
            {"name": "pods", "singularName": "", "namespaced": true, "kind": "PodMetrics", "verbs": ["get", "list"]}
        ]
    }))
}

fn node_item(name: &str, u: &Usage) -> Value {
    json!({"metadata": {"name": name, "creationTimestamp": Timestamp::now().to_string()},
           "timestamp": u.time.to_string(), "window": window(u), "usage": usage_json(u)})
}

async fn list_nodes(State(app): State<App>, Query(q): Query<Selector>) -> Response {
    let allowed = match &q.label_selector {
        Some(sel) => {
            let api: Api<Node> = Api::all(app.client.clone());
            match api.list(&ListParams::default().labels(sel)).await {
                Ok(l) => Some(
                    l.items
                        .into_iter()
                        .filter_map(|n| n.metadata.name)
                        .collect::<Vec<_>>(),
                ),
                Err(e) => return status(StatusCode::BAD_REQUEST, "BadRequest", e.to_string()),
            }
        }
        None => None,
    };
    let s = app.store.read().unwrap_or_else(|e| e.into_inner());
    let items: Vec<Value> = s
        .nodes
        .iter()
        .filter(|(n, _)| allowed.as_ref().is_none_or(|a| a.contains(n)))
        .map(|(n, u)| node_item(n, u))
        .collect();
    Json(json!({"kind": "NodeMetricsList", "apiVersion": "metrics.k8s.io/v1beta1", "metadata": {}, "items": items}))
        .into_response()
}

async fn get_node(State(app): State<App>, Path(name): Path<String>) -> Response {
    let s = app.store.read().unwrap_or_else(|e| e.into_inner());
    match s.nodes.get(&name) {
        Some(u) => {
            let mut v = node_item(&name, u);
            v["kind"] = json!("NodeMetrics");
            v["apiVersion"] = json!("metrics.k8s.io/v1beta1");
            Json(v).into_response()
        }
        None => status(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("nodemetrics.metrics.k8s.io \"{name}\" not found"),
        ),
    }
}

fn pod_item(
    ns: &str,
    name: &str,
    labels: Option<&BTreeMap<String, String>>,
    cs: &BTreeMap<String, Usage>,
) -> Value {
    let first = cs.values().next();
    json!({
        "metadata": {"name": name, "namespace": ns, "creationTimestamp": Timestamp::now().to_string(),
                     "labels": labels.cloned().unwrap_or_default()},
        "timestamp": first.map(|u| u.time.to_string()),
        "window": first.map(window),
        "containers": cs.iter().map(|(c, u)| json!({"name": c, "usage": usage_json(u)})).collect::<Vec<_>>(),
    })
}

async fn pods_in(
    app: &App,
    ns: Option<&str>,
    selector: Option<&str>,
) -> Result<Vec<Value>, Response> {
    let api: Api<Pod> = match ns {
        Some(ns) => Api::namespaced(app.client.clone(), ns),
        None => Api::all(app.client.clone()),
    };
    let lp = match selector {
        Some(sel) => ListParams::default().labels(sel),
        None => ListParams::default(),
    };
    let pods = api
        .list(&lp)
        .await
        .map_err(|e| status(StatusCode::BAD_REQUEST, "BadRequest", e.to_string()))?;
    let s = app.store.read().unwrap_or_else(|e| e.into_inner());
    Ok(pods
        .items
        .iter()
        .filter_map(|p| {
            let ns = p.metadata.namespace.clone()?;
            let name = p.metadata.name.clone()?;
            let cs = s.pods.get(&(ns.clone(), name.clone()))?;
            Some(pod_item(&ns, &name, p.metadata.labels.as_ref(), cs))
        })
        .collect())
}

fn pod_list(items: Vec<Value>) -> Response {
    Json(json!({"kind": "PodMetricsList", "apiVersion": "metrics.k8s.io/v1beta1", "metadata": {}, "items": items}))
        .into_response()
}

async fn list_all_pods(State(app): State<App>, Query(q): Query<Selector>) -> Response {
    match pods_in(&app, None, q.label_selector.as_deref()).await {
        Ok(items) => pod_list(items),
        Err(r) => r,
    }
}

async fn list_ns_pods(
    State(app): State<App>,
    Path(ns): Path<String>,
    Query(q): Query<Selector>,
) -> Response {
    match pods_in(&app, Some(&ns), q.label_selector.as_deref()).await {
        Ok(items) => pod_list(items),
        Err(r) => r,
    }
}

async fn get_pod(State(app): State<App>, Path((ns, name)): Path<(String, String)>) -> Response {
    let items = match pods_in(&app, Some(&ns), None).await {
        Ok(items) => items,
        Err(r) => return r,
    };
    match items
        .into_iter()
        .find(|v| v["metadata"]["name"] == name.as_str())
    {
        Some(mut v) => {
            v["kind"] = json!("PodMetrics");
            v["apiVersion"] = json!("metrics.k8s.io/v1beta1");
            Json(v).into_response()
        }
        None => status(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("podmetrics.metrics.k8s.io \"{name}\" not found"),
        ),
    }
}

async fn not_found(uri: axum::http::Uri) -> Response {
    status(
        StatusCode::NOT_FOUND,
        "NotFound",
        format!("the server could not find {}", uri.path()),
    )
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    rustls::crypto::ring::default_provider()
        .install_default()
        .map_err(|_| anyhow::anyhow!("a rustls crypto provider is already installed"))?;
    let kubeconfig = Kubeconfig::read_from(&args.kubeconfig)?;
    let config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
    let client = Client::try_from(config)?;
    let store: Shared = Arc::default();
    let resolution = Duration::from_secs(args.resolution_secs.max(1));

    let (c, s) = (client.clone(), store.clone());
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(resolution);
        loop {
            tick.tick().await;
            if let Err(e) = scrape(&c, &s, resolution).await {
                tracing::warn!(error = %e, "scrape failed");
            }
        }
    });

    let app = App { store, client };
    let base = "/apis/metrics.k8s.io/v1beta1";
    let router = Router::new()
        .route(base, get(resources))
        .route(&format!("{base}/nodes"), get(list_nodes))
        .route(&format!("{base}/nodes/{{name}}"), get(get_node))
        .route(&format!("{base}/pods"), get(list_all_pods))
        .route(&format!("{base}/namespaces/{{ns}}/pods"), get(list_ns_pods))
        .route(
            &format!("{base}/namespaces/{{ns}}/pods/{{name}}"),
            get(get_pod),
        )
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(|| async { "ok" }))
        .route("/livez", get(|| async { "ok" }))
        .fallback(not_found)
        .with_state(app);

    let tls =
        axum_server::tls_rustls::RustlsConfig::from_pem_file(&args.tls_cert, &args.tls_key).await?;
    let handle = axum_server::Handle::new();
    let h = handle.clone();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        h.graceful_shutdown(Some(Duration::from_secs(2)));
    });
    let term = handle.clone();
    tokio::spawn(async move {
        if let Ok(mut sig) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            sig.recv().await;
            term.graceful_shutdown(Some(Duration::from_secs(2)));
        }
    });
    tracing::info!(listen = %args.listen, "metrics.k8s.io server for the local test cluster");
    axum_server::bind_rustls(args.listen, tls)
        .handle(handle)
        .serve(router.into_make_service())
        .await?;
    Ok(())
}
