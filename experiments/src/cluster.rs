//! The local cluster side: connecting (or starting `tests/cluster/kube-local`), the workloads'
//! Kubernetes objects, and a sampler that records, every window, each pod's phase, its CPU as
//! metrics.k8s.io reports it, and its CPU and throttling as its cgroup counts them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};
use burst_scaler::usage::PodMetrics;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v1::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{Namespace, Pod, ServiceAccount};
use kube::api::{DeleteParams, ListParams, LogParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};
use serde_json::json;
use tokio::time::Instant;

use crate::cgroup::{CpuStat, pod_cgroup};

pub const NS_PREFIX: &str = "bsc-exp-";

pub struct Cluster {
    pub client: Client,
    repo: PathBuf,
    started_here: bool,
}

fn kubeconfig_path(repo: &Path) -> Option<PathBuf> {
    if let Ok(p) = std::env::var("KUBECONFIG") {
        return Some(PathBuf::from(p));
    }
    let out = Command::new("bash")
        .arg(repo.join("tests/cluster/kube-local"))
        .arg("env")
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("export KUBECONFIG=").map(PathBuf::from))
}

async fn try_connect(repo: &Path) -> anyhow::Result<Client> {
    let path = kubeconfig_path(repo).context("no KUBECONFIG and no local cluster")?;
    let kc = Kubeconfig::read_from(&path).with_context(|| format!("read {}", path.display()))?;
    let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?;
    let client = Client::try_from(config)?;
    tokio::time::timeout(Duration::from_secs(5), client.apiserver_version())
        .await
        .context("API server timed out")??;
    Ok(client)
}

impl Cluster {
    /// Connects to the local cluster; starts it with `kube-local up` if it is down and
    /// `may_start` (and then `finish` stops it again).
    pub async fn connect(repo: &Path, may_start: bool) -> anyhow::Result<Cluster> {
        match try_connect(repo).await {
            Ok(client) => Ok(Cluster {
                client,
                repo: repo.to_path_buf(),
                started_here: false,
            }),
            Err(e) if !may_start => bail!(
                "the local cluster is not reachable ({e:#}); start it with tests/cluster/kube-local up"
            ),
            Err(_) => {
                let st = Command::new("bash")
                    .arg(repo.join("tests/cluster/kube-local"))
                    .arg("up")
                    .status()?;
                if !st.success() {
                    bail!("tests/cluster/kube-local up failed ({st})");
                }
                let client = try_connect(repo).await?;
                Ok(Cluster {
                    client,
                    repo: repo.to_path_buf(),
                    started_here: true,
                })
            }
        }
    }

    /// Removes leftover experiment namespaces; stops the cluster if this run started it.
    pub async fn finish(self) -> anyhow::Result<()> {
        delete_experiment_namespaces(&self.client, true).await?;
        if self.started_here {
            let st = Command::new("bash")
                .arg(self.repo.join("tests/cluster/kube-local"))
                .arg("down")
                .status()?;
            if !st.success() {
                bail!("tests/cluster/kube-local down failed ({st})");
            }
        }
        Ok(())
    }

    pub async fn server_version(&self) -> String {
        self.client
            .apiserver_version()
            .await
            .map(|v| v.git_version)
            .unwrap_or_else(|e| format!("unknown ({e})"))
    }
}

/// Deletes every `bsc-exp-*` namespace and its pods, and waits until the kubelet has stopped
/// every pod (so nothing of one arm runs into the next). With `wait_gone`, also waits until the
/// namespaces themselves are gone (their finalization is slow on 1.20, and only a rerun that
/// creates the same names needs it).
pub async fn delete_experiment_namespaces(client: &Client, wait_gone: bool) -> anyhow::Result<()> {
    let nss: Api<Namespace> = Api::all(client.clone());
    let mine: Vec<String> = nss
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter_map(|n| n.metadata.name)
        .filter(|n| n.starts_with(NS_PREFIX))
        .collect();
    // A burst-scaler chart left in one (a run interrupted or crashed in its arm) goes first, its
    // BurstScalers before it, so that nothing stays throttled or stuck on a finalizer.
    for n in &mine {
        if let Err(e) = crate::e2::uninstall_releases(client, n).await {
            eprintln!("cleaning up {n}: {e:#}");
        }
    }
    let quick = DeleteParams {
        grace_period_seconds: Some(1),
        ..DeleteParams::default()
    };
    for n in &mine {
        let _ = nss.delete(n, &quick).await;
        // A terminating namespace admits no new pods; delete the existing ones now rather than
        // when the namespace controller gets to them.
        let _ = Api::<Pod>::namespaced(client.clone(), n)
            .delete_collection(&quick, &ListParams::default())
            .await;
    }
    let deadline = Instant::now() + Duration::from_secs(180);
    for n in &mine {
        let pods: Api<Pod> = Api::namespaced(client.clone(), n);
        loop {
            let pods_left = pods
                .list(&ListParams::default())
                .await
                .map(|l| l.items.len())
                .unwrap_or(0);
            let ns_left = wait_gone && nss.get_opt(n).await?.is_some();
            if pods_left == 0 && !ns_left {
                break;
            }
            if Instant::now() > deadline {
                bail!("namespace {n} ({pods_left} pods left) was not cleaned up within 180 s");
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    Ok(())
}

/// A fresh namespace `bsc-exp-<name>` whose default service account exists.
pub async fn namespace(client: &Client, name: &str) -> anyhow::Result<String> {
    let ns = format!("{NS_PREFIX}{name}");
    let nss: Api<Namespace> = Api::all(client.clone());
    let obj: Namespace = serde_json::from_value(
        json!({"metadata": {"name": ns, "labels": {"app.kubernetes.io/part-of": "burst-scaler-experiments"}}}),
    )?;
    // The same arm twice in a row (the last of one round, the first of the next) finds its
    // namespace still terminating: wait for it to go (bounded), then create it.
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        match nss.create(&PostParams::default(), &obj).await {
            Ok(_) => break,
            Err(kube::Error::Api(e)) if e.code == 409 && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(e) => return Err(e).with_context(|| format!("create namespace {ns}")),
        }
    }
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), &ns);
    let deadline = Instant::now() + Duration::from_secs(60);
    while sas.get_opt("default").await?.is_none() {
        if Instant::now() > deadline {
            bail!("service account default did not appear in {ns}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(ns)
}

/// CPU request/limit as the lab's HPA walkthrough sets them (php-apache: 200m / 500m).
#[derive(Clone, Copy, Debug)]
pub struct Resources {
    pub request: &'static str,
    /// `None`: no CPU limit.
    pub limit: Option<&'static str>,
}

impl Resources {
    /// `request/limit` for the reports (`none` for no limit).
    pub fn show(&self) -> String {
        format!("{}/{}", self.request, self.limit.unwrap_or("none"))
    }
}

pub const WALKTHROUGH: Resources = Resources {
    request: "200m",
    limit: Some("500m"),
};

fn pod_spec(
    image: &str,
    command: Vec<String>,
    res: Resources,
    host_network: bool,
) -> serde_json::Value {
    json!({
        "hostNetwork": host_network,
        "automountServiceAccountToken": false,
        "terminationGracePeriodSeconds": 1,
        "containers": [{
            "name": "main",
            "image": image,
            "imagePullPolicy": "Never",
            "command": command,
            "resources": match res.limit {
                Some(limit) => json!({"requests": {"cpu": res.request}, "limits": {"cpu": limit}}),
                None => json!({"requests": {"cpu": res.request}}),
            },
        }],
    })
}

pub async fn create_deployment(
    client: &Client,
    ns: &str,
    app: &str,
    image: &str,
    command: Vec<String>,
    res: Resources,
    host_network: bool,
) -> anyhow::Result<()> {
    let d: Deployment = serde_json::from_value(json!({
        "metadata": {"name": app, "labels": {"app": app}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": app}},
            "template": {"metadata": {"labels": {"app": app}}, "spec": pod_spec(image, command, res, host_network)},
        },
    }))?;
    Api::<Deployment>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &d)
        .await
        .with_context(|| format!("create deployment {app}"))?;
    Ok(())
}

pub async fn create_pod(
    client: &Client,
    ns: &str,
    app: &str,
    image: &str,
    command: Vec<String>,
    res: Resources,
) -> anyhow::Result<()> {
    let mut spec = pod_spec(image, command, res, false);
    spec["restartPolicy"] = json!("Never");
    let p: Pod = serde_json::from_value(
        json!({"metadata": {"name": app, "labels": {"app": app}}, "spec": spec}),
    )?;
    Api::<Pod>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &p)
        .await
        .with_context(|| format!("create pod {app}"))?;
    Ok(())
}

/// The stock HPA as `kubectl autoscale deployment NAME --cpu-percent=50 --min=1 --max=10` made
/// it (autoscaling/v1: what a 1.20 API server accepts from that command's era).
pub async fn create_hpa(
    client: &Client,
    ns: &str,
    target: &str,
    cpu_percent: i32,
    min: i32,
    max: i32,
) -> anyhow::Result<()> {
    let h: HorizontalPodAutoscaler = serde_json::from_value(json!({
        "metadata": {"name": target},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target},
            "minReplicas": min, "maxReplicas": max, "targetCPUUtilizationPercentage": cpu_percent,
        },
    }))?;
    Api::<HorizontalPodAutoscaler>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &h)
        .await
        .context("create HPA")?;
    Ok(())
}

pub async fn pod_logs(client: &Client, ns: &str, pod: &str) -> Option<String> {
    Api::<Pod>::namespaced(client.clone(), ns)
        .logs(pod, &LogParams::default())
        .await
        .ok()
}

/// A pod's `app` label ("" without one).
pub fn app_of(p: &Pod) -> String {
    p.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get("app").cloned())
        .unwrap_or_default()
}

/// A pod's UID and its first container's ID (what its cgroups are named after).
pub fn pod_and_container(p: &Pod) -> Option<(String, String)> {
    let uid = p.metadata.uid.clone()?;
    let id = p
        .status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .first()?
        .container_id
        .as_deref()?
        .split("://")
        .nth(1)?
        .to_string();
    Some((uid, id))
}

/// One pod at one sample.
#[derive(Clone, Debug)]
pub struct PodSample {
    pub t: f64,
    pub pod: String,
    pub app: String,
    pub phase: String,
    /// metrics.k8s.io (what the HPA sees; lags by its window).
    pub metrics_m: Option<f64>,
    /// The pod cgroup's CPU over the last window, in millicores.
    pub cgroup_m: Option<f64>,
    /// Time the pod cgroup spent throttled in the last window, ms.
    pub throttled_ms: Option<f64>,
    /// Time in the last window in which some task of the pod waited for a CPU (PSI `some` of
    /// the pod's cgroup in the unified hierarchy, which includes time throttled), ms.
    pub pressure_ms: Option<f64>,
    /// What the (first) container's cgroup enforces at the sample: its CPU limit (millicores;
    /// `None` when unlimited or unreadable) and its `cpu.shares` — the ground truth of every
    /// actuation.
    pub limit_m: Option<f64>,
    pub shares: Option<u64>,
}

#[derive(Clone, Debug)]
pub struct HpaSample {
    pub t: f64,
    pub desired: i32,
    pub utilization: Option<i32>,
}

/// Samples one namespace every `window`.
pub struct Sampler {
    client: Client,
    ns: String,
    /// Per pod UID: its app, and its cgroup counters at the last sample.
    last: BTreeMap<String, (String, Instant, CpuStat)>,
    /// Per pod UID: its PSI `some` total (µs) at the last sample.
    last_pressure: BTreeMap<String, u64>,
    /// Per pod UID: CPU already used before the first sample (pods that ran before it).
    baseline: BTreeMap<String, u64>,
    samples: u64,
}

impl Sampler {
    pub fn new(client: Client, ns: &str) -> Sampler {
        Sampler {
            client,
            ns: ns.to_string(),
            last: BTreeMap::new(),
            last_pressure: BTreeMap::new(),
            baseline: BTreeMap::new(),
            samples: 0,
        }
    }

    /// CPU-seconds each app's pods used from their start to their last sample (the pod
    /// cgroups' own totals: nothing is lost between windows).
    pub fn cpu_seconds_by_app(&self) -> BTreeMap<String, f64> {
        let mut out = BTreeMap::new();
        for (uid, (app, _, stat)) in &self.last {
            let before = self.baseline.get(uid).copied().unwrap_or(0);
            *out.entry(app.clone()).or_insert(0.0) +=
                stat.usage_ns.saturating_sub(before) as f64 / 1e9;
        }
        out
    }

    pub async fn sample(&mut self, t: f64) -> anyhow::Result<(Vec<PodSample>, Vec<HpaSample>)> {
        let pods = Api::<Pod>::namespaced(self.client.clone(), &self.ns)
            .list(&ListParams::default())
            .await?;
        let metrics: BTreeMap<String, f64> =
            match Api::<PodMetrics>::namespaced(self.client.clone(), &self.ns)
                .list(&ListParams::default())
                .await
            {
                Ok(list) => list
                    .items
                    .into_iter()
                    .filter_map(|m| {
                        let cpu: u64 = m
                            .containers
                            .iter()
                            .filter_map(|c| c.cpu().ok().flatten())
                            .map(|c| c.0)
                            .sum();
                        Some((m.metadata.name?, cpu as f64))
                    })
                    .collect(),
                Err(_) => BTreeMap::new(),
            };
        let now = Instant::now();
        let mut out = Vec::new();
        for p in pods.items {
            let name = p.metadata.name.clone().unwrap_or_default();
            let uid = p.metadata.uid.clone().unwrap_or_default();
            let app = app_of(&p);
            let phase = p
                .status
                .as_ref()
                .and_then(|s| s.phase.clone())
                .unwrap_or_default();
            let (mut cgroup_m, mut throttled_ms) = (None, None);
            // The container's cgroup (the node agent throttles there; the pod level keeps the
            // spec's quota so that a restarted container can start).
            let limits = pod_cgroup(&uid)
                .zip(pod_and_container(&p).map(|(_, id)| id))
                .and_then(|(pc, id)| pc.child(&id).limits().ok());
            let mut pressure_ms = None;
            if let Some(total) = pod_cgroup(&uid).and_then(|c| c.pressure_some_us()) {
                if let Some(prev) = self.last_pressure.get(&uid) {
                    pressure_ms = Some(total.saturating_sub(*prev) as f64 / 1000.0);
                }
                self.last_pressure.insert(uid.clone(), total);
            }
            if let Some(stat) = pod_cgroup(&uid).and_then(|c| c.stat().ok()) {
                if let Some((_, then, prev)) = self.last.get(&uid) {
                    let secs = now.duration_since(*then).as_secs_f64();
                    let d = stat.since(prev);
                    if secs > 0.0 {
                        cgroup_m = Some(d.usage_ns as f64 / 1e6 / secs);
                        throttled_ms = Some(d.throttled_ns as f64 / 1e6);
                    }
                }
                if self.samples == 0 {
                    self.baseline.insert(uid.clone(), stat.usage_ns);
                }
                self.last.insert(uid, (app.clone(), now, stat));
            }
            out.push(PodSample {
                t,
                metrics_m: metrics.get(&name).copied(),
                pod: name,
                app,
                phase,
                cgroup_m,
                throttled_ms,
                pressure_ms,
                limit_m: limits.and_then(|l| l.0),
                shares: limits.map(|l| l.1),
            });
        }
        let hpas = Api::<HorizontalPodAutoscaler>::namespaced(self.client.clone(), &self.ns)
            .list(&ListParams::default())
            .await?;
        let hpa = hpas
            .items
            .into_iter()
            .map(|h| HpaSample {
                t,
                desired: h.status.as_ref().map_or(0, |s| s.desired_replicas),
                utilization: h.status.and_then(|s| s.current_cpu_utilization_percentage),
            })
            .collect();
        self.samples += 1;
        Ok((out, hpa))
    }
}

/// Waits until something answers `GET /healthz` on `addr`.
pub async fn wait_http(addr: std::net::SocketAddr, within: Duration) -> anyhow::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let deadline = Instant::now() + within;
    loop {
        if let Ok(Ok(mut s)) =
            tokio::time::timeout(Duration::from_secs(1), tokio::net::TcpStream::connect(addr)).await
        {
            let _ = s
                .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
                .await;
            let mut buf = Vec::new();
            if tokio::time::timeout(Duration::from_secs(2), s.read_to_end(&mut buf))
                .await
                .is_ok()
                && buf.starts_with(b"HTTP/1.1 200")
            {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            bail!("nothing answered on {addr} within {within:?}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// True if something accepts connections on `addr` (a leftover server would take our load).
pub async fn port_in_use(addr: std::net::SocketAddr) -> bool {
    matches!(
        tokio::time::timeout(Duration::from_secs(1), tokio::net::TcpStream::connect(addr)).await,
        Ok(Ok(_))
    )
}
