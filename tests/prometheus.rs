//! A real Prometheus (Debian's `prometheus` package) scraping the controller and the node agent
//! that the Helm chart installs on the local cluster: every documented series exists with its
//! documented labels, the shipped recording rules (charts/burst-scaler/files/rules.yaml, as the
//! chart's PrometheusRule renders it) load and evaluate, no alert fires while all is well, and
//! the invalid-spec alerts fire for an invalid BurstScaler that the 1.20 API server accepts
//! (it has no CEL) — and resolve once it is gone.
//!
//! Prometheus listens on 127.0.0.1 (a free port) with its own temporary data directory and is
//! stopped by PID when the test ends, pass or fail. On the local cluster the chart runs both
//! components with hostNetwork, so they are scraped on 127.0.0.1 (the ports of
//! `ci/local-cluster-values.yaml`). The agent's target gets the `node` label the chart's
//! PodMonitor would give it.

mod support;

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use burst_scaler::api::BurstScaler;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::DeleteParams;
use kube::runtime::wait::conditions::is_pod_running;
use serde_json::{Value, json};
use support::*;

const CHART: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/charts/burst-scaler");
const LOCAL_VALUES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/charts/burst-scaler/ci/local-cluster-values.yaml"
);
const NODE: &str = "localhost";
/// `for:` of every alert in this test: long enough to pass through `pending`, short enough for
/// a quick test (the shipped defaults are minutes).
const ALERT_FOR: &str = "5s";

/// A port of `ci/local-cluster-values.yaml` (the chart's components listen on it on the host).
fn local_port(key: &str) -> u16 {
    let v: Value = serde_saphyr::from_str(
        &std::fs::read_to_string(LOCAL_VALUES).expect("local-cluster values"),
    )
    .expect("yaml");
    let p = match key {
        "controller" => &v["metrics"]["port"],
        _ => &v["agent"]["metricsPort"],
    };
    let port = p.as_u64().expect("a port in local-cluster-values.yaml");
    u16::try_from(port).expect("port")
}

/// A Prometheus process on 127.0.0.1; SIGTERM (then SIGKILL) by PID and its data directory
/// removed when dropped.
struct Prometheus {
    child: Child,
    dir: PathBuf,
    port: u16,
}

impl Prometheus {
    /// Starts Prometheus with `rules` as its rule file and the configuration `config` makes
    /// for that file's path.
    fn start(rules: &str, config: impl FnOnce(&Path) -> String) -> Prometheus {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("free port");
        let dir =
            std::env::temp_dir().join(format!("bsc-prometheus-{}-{port}", std::process::id()));
        std::fs::create_dir_all(dir.join("data")).expect("prometheus dir");
        std::fs::write(dir.join("rules.yaml"), rules).expect("rules");
        std::fs::write(dir.join("prometheus.yml"), config(&dir.join("rules.yaml")))
            .expect("config");
        let log = std::fs::File::create(dir.join("prometheus.log")).expect("log");
        let child = Command::new("prometheus")
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--storage.tsdb.retention.time=1h")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("prometheus on PATH (Debian's `prometheus` package: tests/run installs it)");
        Prometheus { child, dir, port }
    }

    fn get(&self, path: &str, params: &[(&str, &str)]) -> Option<Value> {
        let mut cmd = Command::new("curl");
        cmd.args(["-sf", "--max-time", "5", "-G"]);
        for (k, v) in params {
            cmd.args(["--data-urlencode", &format!("{k}={v}")]);
        }
        let out = cmd
            .arg(format!("http://127.0.0.1:{}{path}", self.port))
            .output()
            .ok()?;
        if !out.status.success() {
            return None;
        }
        serde_json::from_slice(&out.stdout).ok()
    }

    /// The result vector of an instant query (`None` when the query fails).
    fn query(&self, q: &str) -> Option<Vec<Value>> {
        let v = self.get("/api/v1/query", &[("query", q)])?;
        (v["status"] == "success").then(|| v["data"]["result"].as_array().cloned())?
    }

    /// Each series' labels for an instant query.
    fn series(&self, q: &str) -> Vec<BTreeMap<String, String>> {
        self.query(q)
            .unwrap_or_default()
            .iter()
            .map(|r| {
                r["metric"]
                    .as_object()
                    .map(|m| {
                        m.iter()
                            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                            .collect()
                    })
                    .unwrap_or_default()
            })
            .collect()
    }

    /// Active alerts (pending and firing), as (name, state, labels).
    fn alerts(&self) -> Option<Vec<(String, String, Value)>> {
        let v = self.get("/api/v1/alerts", &[])?;
        Some(
            v["data"]["alerts"]
                .as_array()?
                .iter()
                .map(|a| {
                    (
                        a["labels"]["alertname"]
                            .as_str()
                            .unwrap_or_default()
                            .to_string(),
                        a["state"].as_str().unwrap_or_default().to_string(),
                        a["labels"].clone(),
                    )
                })
                .collect(),
        )
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `helm uninstall` of the release, pass or fail (declared after [`DropFinalizers`]: the
/// release goes first, then the finalizers it would have removed).
struct Release {
    name: String,
    namespace: String,
}

impl Drop for Release {
    fn drop(&mut self) {
        let _ = helm(&[
            "uninstall",
            &self.name,
            "--namespace",
            &self.namespace,
            "--wait",
            "--timeout",
            "120s",
        ]);
    }
}

/// burst-scaler agent DaemonSets of other releases (one agent per node: wait for them to go).
fn other_agents() -> Vec<String> {
    let out = Command::new("kubectl")
        .args([
            "get",
            "ds",
            "-A",
            "-l",
            "app.kubernetes.io/name=burst-scaler,app.kubernetes.io/component=agent",
            "-o",
            "name",
        ])
        .output()
        .expect("kubectl");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

fn promtool(args: &[&str]) {
    let out = Command::new("promtool")
        .args(args)
        .output()
        .expect("promtool on PATH (Debian's `prometheus` package: tests/run installs it)");
    assert!(
        out.status.success(),
        "promtool {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The chart's PrometheusRule (every alert's `for:` set to [`ALERT_FOR`]) as a Prometheus
/// rule file, and the alert names.
fn rendered_rules() -> (String, Vec<String>) {
    let file: Value = serde_saphyr::from_str(
        &std::fs::read_to_string(format!("{CHART}/files/rules.yaml")).expect("rules.yaml"),
    )
    .expect("yaml");
    let alerts: Vec<String> = file["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .flat_map(|g| g["rules"].as_array().into_iter().flatten())
        .filter_map(|r| r["alert"].as_str().map(str::to_string))
        .collect();
    let mut args = vec![
        "template".to_string(),
        "bsc".into(),
        CHART.into(),
        "--show-only".into(),
        "templates/prometheusrule.yaml".into(),
        "--set".into(),
        "prometheusRule.enabled=true".into(),
    ];
    for a in &alerts {
        args.push("--set".into());
        args.push(format!("prometheusRule.alertFor.{a}={ALERT_FOR}"));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (ok, out) = helm(&args);
    assert!(ok, "helm template the PrometheusRule: {out}");
    let doc: Value = serde_saphyr::from_str(
        out.split("\n---")
            .find(|d| d.contains("kind: PrometheusRule"))
            .expect("a PrometheusRule"),
    )
    .expect("yaml");
    // JSON is YAML: Prometheus reads the spec as a rule file.
    (
        serde_json::to_string_pretty(&doc["spec"]).expect("json"),
        alerts,
    )
}

fn rules_in_file() -> usize {
    let file: Value = serde_saphyr::from_str(
        &std::fs::read_to_string(format!("{CHART}/files/rules.yaml")).expect("rules.yaml"),
    )
    .expect("yaml");
    file["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .map(|g| g["rules"].as_array().map_or(0, Vec::len))
        .sum()
}

fn config(controller: u16, agent: u16, rules: &Path) -> String {
    format!(
        r#"global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files: ["{rules}"]
scrape_configs:
  - job_name: burst-scaler
    honor_labels: true
    static_configs: [{{targets: ["127.0.0.1:{controller}"]}}]
  - job_name: burst-scaler-agent
    static_configs: [{{targets: ["127.0.0.1:{agent}"], labels: {{node: {NODE}}}}}]
"#,
        rules = rules.display()
    )
}

#[tokio::test]
#[ignore = "needs the local cluster, root, the controller image and Debian's prometheus (tests/run provides all)"]
async fn a_real_prometheus_scrapes_both_components_evaluates_the_rules_and_alerts_on_an_invalid_burstscaler()
 {
    let t0 = Instant::now();
    // One agent per node: wait (bounded) for another release's agent to go.
    eventually(600, "other burst-scaler agent DaemonSets to go", || async {
        let others = other_agents();
        if !others.is_empty() {
            eprintln!("waiting for {others:?}");
        }
        others.is_empty().then_some(())
    })
    .await;

    let ns = TestNs::new("prom").await;
    install_crd(&ns.client).await;
    let _finalizers = DropFinalizers(ns.name.clone());
    let release = Release {
        name: format!("bsp-{}", &ns.name[ns.name.len() - 4..]),
        namespace: ns.name.clone(),
    };
    let tag = std::env::var("BSC_TEST_IMAGE_TAG").unwrap_or_else(|_| "dev".into());
    let watch_ns = format!("controller.watchNamespaces={{{}}}", ns.name);
    let image_tag = format!("image.tag={tag}");
    let (ok, out) = helm(&[
        "upgrade",
        "--install",
        "--skip-crds",
        &release.name,
        CHART,
        "--namespace",
        &ns.name,
        "-f",
        LOCAL_VALUES,
        "--set",
        &watch_ns,
        "--set",
        &image_tag,
        "--wait",
        "--timeout",
        "180s",
    ]);
    assert!(ok, "helm install: {out}");
    eprintln!("[{:>5.1}s] chart installed", t0.elapsed().as_secs_f64());

    // The shipped rules: the file as promtool sees it, and as the chart renders it.
    let (rules, alert_names) = rendered_rules();
    promtool(&["check", "rules", &format!("{CHART}/files/rules.yaml")]);
    let rules_path = std::env::temp_dir().join(format!("bsc-rules-{}.json", ns.name));
    std::fs::write(&rules_path, &rules).expect("rules");
    promtool(&["check", "rules", &rules_path.display().to_string()]);
    let _ = std::fs::remove_file(&rules_path);

    let (cport, aport) = (local_port("controller"), local_port("agent"));
    let prom = Prometheus::start(&rules, |rules| config(cport, aport, rules));
    eventually(60, "Prometheus ready", || async {
        let out = Command::new("curl")
            .args(["-sf", "--max-time", "2"])
            .arg(format!("http://127.0.0.1:{}/-/ready", prom.port))
            .output()
            .ok()?;
        out.status.success().then_some(())
    })
    .await;

    // Both targets up.
    let targets = eventually(60, "both targets up", || async {
        let t = prom.get("/api/v1/targets", &[])?;
        let active = t["data"]["activeTargets"].as_array()?.clone();
        (active.len() == 2 && active.iter().all(|t| t["health"] == "up")).then_some(active)
    })
    .await;
    eprintln!(
        "[{:>5.1}s] targets up: {:?}",
        t0.elapsed().as_secs_f64(),
        targets
            .iter()
            .map(|t| t["scrapeUrl"].as_str().unwrap_or_default())
            .collect::<Vec<_>>()
    );
    // All rules loaded, none failing.
    let groups = prom.get("/api/v1/rules", &[]).expect("rules API");
    let loaded: Vec<&Value> = groups["data"]["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .flat_map(|g| g["rules"].as_array().into_iter().flatten())
        .collect();
    let in_file = rules_in_file();
    assert_eq!(loaded.len(), in_file, "every rule of rules.yaml is loaded");
    for r in &loaded {
        assert_eq!(r["health"], "ok", "{r}");
    }

    // All is well: a valid BurstScaler (Recommend: this test is about observing) with a pod.
    ns.create::<Pod>(json!({
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "web", "image": BUSYBOX, "imagePullPolicy": "Never",
                "command": ["sh", "-c", "sleep 900"],
                "resources": {"requests": {"cpu": "50m"}, "limits": {"cpu": "200m"}}}]
        }
    }))
    .await;
    ns.create::<BurstScaler>(json!({
        "apiVersion": "burstscaler.dev/v1alpha1", "kind": "BurstScaler",
        "metadata": {"name": "web"},
        "spec": {"selector": {"matchLabels": {"app": "web"}}, "role": "LatencySensitive",
                 "cpu": {"min": "50m", "max": "300m"}, "mode": "Recommend"}
    }))
    .await;
    let scalers: Api<BurstScaler> = ns.api();
    eventually(90, "BurstScaler web Ready with its pod", || {
        let scalers = scalers.clone();
        async move {
            let s = scalers.get("web").await.ok()?;
            let ready = condition(&s, "Ready")?;
            (ready.0 == "True" && s.status?.managed_pods == 1).then_some(())
        }
    })
    .await;

    // Every metric the code registers (the README's table: tests/chart.rs) is there, with its
    // labels; the per-BurstScaler ones for this BurstScaler.
    let registered = promql::registered();
    let missing = eventually(60, "every documented series in Prometheus", || {
        let prom = &prom;
        let registered = &registered;
        let ns = ns.name.clone();
        async move {
            let mut missing = vec![];
            for (name, labels) in registered {
                // A histogram is found by its buckets.
                let q = if name.starts_with("burst_scaler_burstscaler_") {
                    format!("{name}{{namespace=\"{ns}\",burstscaler=\"web\"}}")
                } else {
                    format!("{{__name__=~\"{name}|{name}_bucket\"}}")
                };
                let series = prom.series(&q);
                let job = if name.starts_with("burst_scaler_agent_") {
                    "burst-scaler-agent"
                } else {
                    "burst-scaler"
                };
                let ok = !series.is_empty()
                    && series.iter().all(|s| {
                        labels.iter().all(|l| s.contains_key(l))
                            && s.get("job").map(String::as_str) == Some(job)
                            && (job != "burst-scaler-agent"
                                || s.get("node").map(String::as_str) == Some(NODE))
                    });
                if !ok {
                    missing.push(format!("{q}: {series:?}"));
                }
            }
            missing.is_empty().then_some(missing)
        }
    })
    .await;
    assert!(missing.is_empty());
    // The fixed label sets are complete from the start.
    let actions: Vec<String> = prom
        .series("burst_scaler_agent_decisions_total")
        .iter()
        .filter_map(|s| s.get("action").cloned())
        .collect();
    assert_eq!(actions.len(), 5, "{actions:?}");
    let bounds = prom.series(&format!(
        "burst_scaler_burstscaler_spec_cpu_cores{{namespace=\"{}\",burstscaler=\"web\"}}",
        ns.name
    ));
    assert_eq!(bounds.len(), 3, "min, max, floor: {bounds:?}");
    eprintln!(
        "[{:>5.1}s] all {} metrics present with their labels",
        t0.elapsed().as_secs_f64(),
        registered.len()
    );

    // The recording rules evaluate.
    let recorded = eventually(60, "the recording rules to produce series", || async {
        let p99 = prom.query(&format!(
            "node:burst_scaler_agent_loop_duration_seconds:p99_5m{{node=\"{NODE}\"}}"
        ))?;
        let decisions = prom.query(&format!(
            "node_action:burst_scaler_agent_decisions:rate5m{{node=\"{NODE}\"}}"
        ))?;
        let ratio = prom.query(&format!(
            "namespace_burstscaler:burst_scaler_burstscaler_throttled_pods:ratio{{namespace=\"{}\"}}",
            ns.name
        ))?;
        let ctl = prom.query("action:burst_scaler_decisions:rate5m")?;
        let value = |r: &Value| {
            r["value"][1]
                .as_str()
                .and_then(|v| v.parse::<f64>().ok())
                .filter(|v| v.is_finite())
        };
        let p99 = value(p99.first()?)?;
        (decisions.len() == 5 && ctl.len() == 5 && value(ratio.first()?) == Some(0.0))
            .then_some(p99)
    })
    .await;
    assert!(
        recorded > 0.0 && recorded <= 1.0,
        "agent tick p99 {recorded}s"
    );

    // Silent while all is well: no alert pending or firing for 15 s (every `for:` is 5 s),
    // once the pod runs and the agent has its signal (a container is blind, and held, until
    // its first samples).
    let pods: Api<Pod> = ns.api();
    wait_for(&pods, "web", 120, "the pod to run", is_pod_running()).await;
    eventually(
        60,
        "the agent to govern the pod with a fresh signal",
        || async {
            let governed = prom.query(&format!(
                "burst_scaler_agent_governed_pods{{node=\"{NODE}\"}} >= 1"
            ))?;
            let blind = prom.query(&format!(
                "burst_scaler_agent_blind_containers{{node=\"{NODE}\"}} == 0"
            ))?;
            (!governed.is_empty() && !blind.is_empty()).then_some(())
        },
    )
    .await;
    let quiet_from = eventually(60, "no alerts while all is well", || async {
        prom.alerts()?.is_empty().then_some(Instant::now())
    })
    .await;
    while quiet_from.elapsed() < Duration::from_secs(15) {
        let alerts = prom.alerts().expect("alerts API");
        assert!(alerts.is_empty(), "alerts while all is well: {alerts:?}");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    eprintln!(
        "[{:>5.1}s] no alert for 15 s while all is well",
        t0.elapsed().as_secs_f64()
    );

    // Provoked: an invalid BurstScaler (cpu.min above cpu.max) that the 1.20 API server
    // stores (no CEL); the controller reports it InvalidSpec → both invalid-spec alerts fire,
    // naming it, and nothing else does.
    ns.create::<BurstScaler>(json!({
        "apiVersion": "burstscaler.dev/v1alpha1", "kind": "BurstScaler",
        "metadata": {"name": "bad"},
        "spec": {"selector": {"matchLabels": {"app": "nothing"}}, "role": "LatencySensitive",
                 "cpu": {"min": "2", "max": "1"}}
    }))
    .await;
    let firing = eventually(90, "the invalid-spec alerts to fire", || async {
        let alerts = prom.alerts()?;
        let firing: Vec<String> = alerts
            .iter()
            .filter(|(_, state, _)| state == "firing")
            .map(|(n, _, _)| n.clone())
            .collect();
        (firing.contains(&"BurstScalerInvalidSpec".to_string())
            && firing.contains(&"BurstScalerNotReady".to_string()))
        .then_some(alerts)
    })
    .await;
    for (name, _, labels) in &firing {
        assert!(
            ["BurstScalerInvalidSpec", "BurstScalerNotReady"].contains(&name.as_str()),
            "only the invalid-spec alerts fire: {firing:?}"
        );
        if name == "BurstScalerNotReady" {
            assert_eq!(labels["burstscaler"], "bad", "{labels}");
            assert_eq!(labels["namespace"], ns.name.as_str(), "{labels}");
        }
    }
    let bad = scalers.get("bad").await.expect("bad");
    let ready = condition(&bad, "Ready").expect("Ready");
    assert_eq!(
        (ready.0.as_str(), ready.1.as_str()),
        ("False", "InvalidSpec")
    );
    eprintln!(
        "[{:>5.1}s] invalid BurstScaler: {:?} firing",
        t0.elapsed().as_secs_f64(),
        firing.iter().map(|a| &a.0).collect::<Vec<_>>()
    );

    // Fixed: the alerts resolve and its series go.
    scalers
        .delete("bad", &DeleteParams::default())
        .await
        .expect("delete bad");
    eventually(60, "the alerts to resolve", || async {
        prom.alerts()?.is_empty().then_some(())
    })
    .await;
    eventually(30, "the deleted BurstScaler's series to go", || async {
        let q = format!(
            "burst_scaler_burstscaler_ready{{namespace=\"{}\",burstscaler=\"bad\"}}",
            ns.name
        );
        prom.query(&q)?.is_empty().then_some(())
    })
    .await;
    assert_eq!(alert_names.len(), 12, "{alert_names:?}");
    let log = prom.log();
    assert!(
        !log.contains("level=error"),
        "Prometheus logged errors:\n{log}"
    );
    eprintln!("[{:>5.1}s] done", t0.elapsed().as_secs_f64());
    drop(prom);
    drop(release);
}
