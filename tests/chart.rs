//! The Helm chart: least-privilege RBAC that matches the code, `helm lint`/`template` with real
//! helm, and `helm install`/`uninstall` on the real local cluster; the Prometheus rules and
//! alerts (`promtool check`/`test rules`), the Grafana dashboard, and the README's metric table
//! checked against the metrics the code registers.

mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use burst_scaler::agent::rbac as agent_rbac;
use burst_scaler::controller::rbac::{CLUSTER_RULES, LEASE_RULES};
use serde_json::Value;
use support::{helm, promql};

const CHART: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/charts/burst-scaler");

type Grants = BTreeSet<(String, String, String)>;

fn grants(rules: &[(&str, &str, &[&str])]) -> Grants {
    rules
        .iter()
        .flat_map(|(g, r, verbs)| {
            verbs
                .iter()
                .map(move |v| (g.to_string(), r.to_string(), v.to_string()))
        })
        .collect()
}

/// The rules of every Role/ClusterRole in one of the chart's RBAC templates (rules are plain
/// YAML there; template lines are metadata only and are dropped before parsing).
fn chart_rules(kind: &str) -> Grants {
    template_rules("templates/rbac.yaml", kind)
}

fn template_rules(file: &str, kind: &str) -> Grants {
    let text = std::fs::read_to_string(Path::new(CHART).join(file)).expect("rbac template");
    let mut out = Grants::new();
    for doc in text.split("\n---") {
        let plain: String = doc
            .lines()
            .filter(|l| !l.contains("{{"))
            .map(|l| format!("{l}\n"))
            .collect();
        if plain.trim().is_empty() {
            continue;
        }
        let v: Value = serde_saphyr::from_str(&plain).expect("rbac yaml");
        if v["kind"] != kind {
            continue;
        }
        for rule in v["rules"].as_array().expect("rules") {
            assert!(rule.get("resourceNames").is_none() && rule.get("nonResourceURLs").is_none());
            for g in rule["apiGroups"].as_array().expect("apiGroups") {
                for r in rule["resources"].as_array().expect("resources") {
                    for verb in rule["verbs"].as_array().expect("verbs") {
                        let (g, r, verb) = (
                            g.as_str().expect("g"),
                            r.as_str().expect("r"),
                            verb.as_str().expect("v"),
                        );
                        assert!(
                            g != "*" && r != "*" && verb != "*",
                            "no wildcards in the chart's RBAC"
                        );
                        out.insert((g.into(), r.into(), verb.into()));
                    }
                }
            }
        }
    }
    out
}

#[test]
fn chart_rbac_grants_exactly_the_calls_the_controller_makes() {
    assert_eq!(chart_rules("ClusterRole"), grants(CLUSTER_RULES));
    assert_eq!(chart_rules("Role"), grants(LEASE_RULES));
    assert!(
        !chart_rules("ClusterRole")
            .iter()
            .any(|(_, r, _)| r == "secrets")
    );
}

#[test]
fn chart_rbac_grants_the_agent_exactly_its_calls_and_no_pod_writes() {
    let cluster = template_rules("templates/agent-rbac.yaml", "ClusterRole");
    assert_eq!(cluster, grants(agent_rbac::CLUSTER_RULES));
    assert_eq!(
        template_rules("templates/agent-rbac.yaml", "Role"),
        grants(agent_rbac::LEASE_RULES)
    );
    for (g, r, v) in &cluster {
        assert!(
            !(g.is_empty() && r.starts_with("pods") && v != "get" && v != "list" && v != "watch"),
            "the agent must not write pods: {g}/{r} {v}"
        );
        assert_ne!(r, "secrets");
    }
}

#[test]
#[ignore = "needs helm (tests/cluster/kube-local build; eval \"$(tests/cluster/kube-local env)\")"]
fn helm_lint_and_template_pass_with_defaults_and_with_every_option_on() {
    let all_on = format!("{CHART}/ci/all-on-values.yaml");
    for extra in [vec![], vec!["-f", all_on.as_str()]] {
        let mut args = vec!["lint", "--strict", CHART];
        args.extend(&extra);
        let (ok, out) = helm(&args);
        assert!(ok, "helm lint {extra:?}: {out}");
        let mut args = vec!["template", "burst-scaler", CHART, "--namespace", "ops"];
        args.extend(&extra);
        let (ok, out) = helm(&args);
        assert!(ok, "helm template {extra:?}: {out}");
    }
    // Everything on: the optional objects appear, leader election is switched on, and the
    // hardened pod settings are kept.
    let (_, out) = helm(&["template", "burst-scaler", CHART, "-f", &all_on]);
    for want in [
        "kind: ServiceMonitor",
        "kind: NetworkPolicy",
        "kind: PodDisruptionBudget",
        "hostNetwork: true",
        "name: BURST_SCALER_LEADER_ELECTION\n              value: \"true\"",
        "readOnlyRootFilesystem: true",
        "runAsNonRoot: true",
        "type: RuntimeDefault",
        "allowPrivilegeEscalation: false",
        "- ALL",
    ] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }
    let (_, out) = helm(&["template", "burst-scaler", CHART]);
    assert!(
        !out.contains("kind: ServiceMonitor") && !out.contains("hostNetwork"),
        "{out}"
    );
}

#[test]
#[ignore = "needs helm (tests/cluster/kube-local build; eval \"$(tests/cluster/kube-local env)\")"]
fn values_that_break_the_schema_are_rejected_with_a_clear_message() {
    let (ok, out) = helm(&[
        "template",
        "x",
        CHART,
        "-f",
        &format!("{CHART}/ci/bad-values.yaml"),
    ]);
    assert!(!ok);
    assert!(
        out.contains("/controller/logFormat") && out.contains("'text', 'json'"),
        "{out}"
    );
    assert!(out.contains("/controller/metricsInterval"), "{out}");
    let (ok, out) = helm(&["template", "x", CHART, "--set", "replicaCount=0"]);
    assert!(!ok && out.contains("/replicaCount"), "{out}");
}

#[tokio::test]
#[ignore = "needs the local cluster and the controller image (tests/run builds both)"]
async fn helm_install_runs_the_controller_and_uninstall_leaves_only_the_crds() {
    use burst_scaler::api::BurstScaler;
    use k8s_openapi::api::apps::v1::Deployment;
    use kube::api::Api;
    use support::*;

    let ns = TestNs::new("helm").await;
    install_crd(&ns.client).await;
    let release = format!("bsc-{}", &ns.name[ns.name.len() - 4..]);
    let (ok, out) = helm(&[
        // Helm 4 installs crds/ with server-side apply, which Kubernetes 1.20 refuses for the
        // CRD's `x-kubernetes-validations` (a 1.25 field): on this cluster the CRD is
        // installed beforehand (as on any pre-1.25 cluster) and helm skips it.
        "install",
        "--skip-crds",
        &release,
        CHART,
        "--namespace",
        &ns.name,
        "-f",
        &format!("{CHART}/ci/local-cluster-values.yaml"),
        "--wait",
        "--timeout",
        "180s",
        // Only this test's namespace: other tests run their own controllers meanwhile.
        "--set",
        &format!("controller.watchNamespaces={{{}}}", ns.name),
    ]);
    assert!(ok, "helm install: {out}");
    let deploys: Api<Deployment> = ns.api();
    let d = deploys
        .get(&format!("{release}-burst-scaler"))
        .await
        .expect("deployment");
    assert_eq!(d.status.and_then(|s| s.ready_replicas), Some(1));

    // It reconciles a sample BurstScaler: status is set.
    let mut sample: Value = serde_saphyr::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/crds/examples/web-latency-sensitive.yaml"
        ))
        .expect("sample"),
    )
    .expect("yaml");
    sample["metadata"]["namespace"] = Value::String(ns.name.clone());
    ns.create::<BurstScaler>(sample).await;
    let scalers: Api<BurstScaler> = ns.api();
    let ready = eventually(90, "status on the sample BurstScaler", || {
        let scalers = scalers.clone();
        async move {
            let s = scalers.get("web").await.ok()?.status?;
            s.conditions.into_iter().find(|c| c.type_ == "Ready")
        }
    })
    .await;
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("True", "Valid"),
        "{}",
        ready.message
    );
    scalers
        .delete("web", &Default::default())
        .await
        .expect("delete sample");

    let (ok, out) = helm(&[
        "uninstall",
        &release,
        "--namespace",
        &ns.name,
        "--wait",
        "--timeout",
        "120s",
    ]);
    assert!(ok, "helm uninstall: {out}");
    // Nothing of the release is left, cluster-wide or in its namespace, once the garbage
    // collector has removed what the Deployment owned (ReplicaSet, pods); the CRD stays.
    let selector = format!("app.kubernetes.io/instance={release}");
    let leftovers = || {
        let out = Command::new("kubectl")
            .args([
                "get",
                "deployments,replicasets,pods,services,serviceaccounts,roles,rolebindings,clusterroles,clusterrolebindings",
                "--all-namespaces",
                "-l",
                &selector,
                "-o",
                "name",
            ])
            .output()
            .expect("kubectl");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let mut left = leftovers();
    for _ in 0..90 {
        if left.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        left = leftovers();
    }
    assert!(left.is_empty(), "left behind 90 s after uninstall: {left}");
    let crd = Command::new("kubectl")
        .args(["get", "crd", "burstscalers.burstscaler.dev"])
        .status()
        .expect("kubectl");
    assert!(crd.success(), "the CRD stays (Helm never deletes crds/)");
}

const RULES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/charts/burst-scaler/files/rules.yaml"
);
const RULES_TEST: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/charts/burst-scaler/files/rules_test.yaml"
);
const DASHBOARD: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/charts/burst-scaler/files/dashboard.json"
);

fn rules() -> Value {
    serde_saphyr::from_str(&std::fs::read_to_string(RULES).expect("rules.yaml")).expect("yaml")
}

fn dashboard() -> Value {
    serde_json::from_str(&std::fs::read_to_string(DASHBOARD).expect("dashboard.json"))
        .expect("the dashboard is JSON")
}

/// Each rendered document of `helm template` output, parsed.
fn documents(out: &str) -> Vec<Value> {
    out.split("\n---")
        .filter(|d| d.lines().any(|l| l.starts_with("kind:")))
        .map(|d| serde_saphyr::from_str(d).unwrap_or_else(|e| panic!("{e}: {d}")))
        .collect()
}

fn kind<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

#[test]
#[ignore = "needs helm (tests/cluster/kube-local build; eval \"$(tests/cluster/kube-local env)\")"]
fn the_chart_renders_the_rules_and_the_dashboard_on_and_off() {
    // Off by default: neither object, nor the agent's PodMonitor.
    let (ok, out) = helm(&["template", "bsc", CHART, "--namespace", "ops"]);
    assert!(ok, "{out}");
    let docs = documents(&out);
    for k in ["PrometheusRule", "PodMonitor", "ConfigMap"] {
        assert!(kind(&docs, k).is_empty(), "{k} rendered by default");
    }
    // The metrics Service selects the controller's pods only (the agent's share the chart's
    // selector labels and listen on another port).
    let svc = kind(&docs, "Service")[0];
    assert_eq!(
        svc["spec"]["selector"]["app.kubernetes.io/component"],
        "controller"
    );
    let deploy = kind(&docs, "Deployment")[0];
    assert_eq!(
        deploy["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"],
        "controller"
    );

    // On (ci/all-on-values.yaml): the PrometheusRule is files/rules.yaml, but for the `for:`
    // and labels the values override; the dashboard ConfigMap carries the sidecar label and
    // exactly files/dashboard.json.
    let all_on = format!("{CHART}/ci/all-on-values.yaml");
    let (ok, out) = helm(&[
        "template",
        "bsc",
        CHART,
        "--namespace",
        "ops",
        "-f",
        &all_on,
    ]);
    assert!(ok, "{out}");
    let docs = documents(&out);
    let rule = kind(&docs, "PrometheusRule");
    assert_eq!(rule.len(), 1, "one PrometheusRule");
    let rule = rule[0];
    assert_eq!(rule["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(rule["metadata"]["namespace"], "ops");
    assert_eq!(rule["metadata"]["labels"]["release"], "prometheus");
    let mut want = rules();
    for g in want["groups"].as_array_mut().expect("groups") {
        for r in g["rules"].as_array_mut().expect("rules") {
            match r["alert"].as_str() {
                Some("BurstScalerInvalidSpec") => r["for"] = "1m".into(),
                Some("BurstScalerAgentBlind") => r["for"] = "30m".into(),
                _ => {}
            }
            if r.get("alert").is_some() {
                r["labels"]["team"] = "platform".into();
            }
        }
    }
    assert_eq!(rule["spec"], want, "the PrometheusRule is files/rules.yaml");

    let cms = kind(&docs, "ConfigMap");
    assert_eq!(cms.len(), 1, "one dashboard ConfigMap");
    let cm = cms[0];
    assert_eq!(cm["metadata"]["namespace"], "monitoring");
    assert_eq!(cm["metadata"]["labels"]["grafana_dashboard"], "1");
    assert_eq!(
        cm["metadata"]["annotations"]["grafana_folder"],
        "burst-scaler"
    );
    let json: Value = serde_json::from_str(
        cm["data"]["burst-scaler.json"]
            .as_str()
            .expect("the dashboard"),
    )
    .expect("the ConfigMap's dashboard is JSON");
    assert_eq!(json, dashboard());

    let pm = kind(&docs, "PodMonitor");
    assert_eq!(pm.len(), 1, "the agent's PodMonitor");
    let endpoint = &pm[0]["spec"]["podMetricsEndpoints"][0];
    assert_eq!(endpoint["relabelings"][0]["targetLabel"], "node");
    assert_eq!(
        endpoint["relabelings"][0]["sourceLabels"][0],
        "__meta_kubernetes_pod_node_name"
    );
    let sm = kind(&docs, "ServiceMonitor")[0];
    assert_eq!(sm["spec"]["endpoints"][0]["honorLabels"], true);

    // A `for:` override naming no alert is refused, and so is a malformed duration.
    let (ok, out) = helm(&[
        "template",
        "bsc",
        CHART,
        "--set",
        "prometheusRule.enabled=true",
        "--set",
        "prometheusRule.alertFor.BurstScalerTypo=1m",
    ]);
    assert!(
        !ok && out.contains("prometheusRule.alertFor.BurstScalerTypo: no such alert"),
        "{out}"
    );
    let (ok, out) = helm(&[
        "template",
        "bsc",
        CHART,
        "--set",
        "prometheusRule.alertFor.BurstScalerNotReady=soon",
    ]);
    assert!(
        !ok && out.contains("/prometheusRule/alertFor/BurstScalerNotReady"),
        "{out}"
    );
}

/// promtool from Debian's `prometheus` package (`tests/run` installs it). Missing: `None`
/// (the caller skips) unless under CI (`CI` or `BURST_SCALER_REQUIRE_PROMTOOL` set), where
/// the test fails.
fn promtool() -> Option<&'static str> {
    let found = Command::new("promtool")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if found {
        return Some("promtool");
    }
    let required = ["CI", "BURST_SCALER_REQUIRE_PROMTOOL"]
        .iter()
        .any(|v| std::env::var(v).is_ok_and(|v| !v.is_empty()));
    assert!(
        !required,
        "promtool is required here (CI): apt-get install prometheus"
    );
    eprintln!("SKIPPED: promtool not found (apt-get install prometheus); tests/run installs it");
    None
}

#[test]
fn promtool_checks_the_rules_and_their_unit_tests_pass() {
    let Some(promtool) = promtool() else {
        return;
    };
    let out = Command::new(promtool)
        .args(["check", "rules", RULES])
        .output()
        .expect("promtool");
    assert!(
        out.status.success(),
        "promtool check rules: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(promtool)
        .args(["test", "rules", RULES_TEST])
        .output()
        .expect("promtool");
    assert!(
        out.status.success(),
        "promtool test rules: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn every_alert_has_a_unit_test_that_fires_it_and_one_that_keeps_it_silent() {
    let tests: Value =
        serde_saphyr::from_str(&std::fs::read_to_string(RULES_TEST).expect("rules_test.yaml"))
            .expect("yaml");
    let cases: Vec<&Value> = tests["tests"]
        .as_array()
        .expect("tests")
        .iter()
        .flat_map(|t| t["alert_rule_test"].as_array().into_iter().flatten())
        .collect();
    for g in rules()["groups"].as_array().expect("groups") {
        for r in g["rules"].as_array().expect("rules") {
            let Some(alert) = r["alert"].as_str() else {
                continue;
            };
            let mine: Vec<_> = cases.iter().filter(|c| c["alertname"] == alert).collect();
            let fires = mine
                .iter()
                .any(|c| c["exp_alerts"].as_array().is_some_and(|a| !a.is_empty()));
            let silent = mine
                .iter()
                .any(|c| c["exp_alerts"].as_array().is_some_and(|a| a.is_empty()));
            assert!(fires && silent, "{alert}: fires {fires}, silent {silent}");
            for key in ["summary", "description"] {
                assert!(
                    r["annotations"][key].as_str().is_some_and(|s| s.len() > 10),
                    "{alert} has no {key}"
                );
            }
            assert!(r["labels"]["severity"].is_string(), "{alert}: severity");
        }
    }
}

#[test]
fn the_rules_refer_only_to_metrics_the_code_registers() {
    let registered = promql::registered();
    let mut problems = vec![];
    let mut used = 0;
    for g in rules()["groups"].as_array().expect("groups") {
        for r in g["rules"].as_array().expect("rules") {
            let expr = r["expr"].as_str().expect("expr");
            used += promql::selectors(expr).len();
            problems.extend(promql::check(&registered, expr));
        }
    }
    assert!(used > 10, "the rules select metrics");
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn the_dashboard_lints_every_panel_titled_with_a_datasource_and_queries_of_real_metrics() {
    let d = dashboard();
    let registered = promql::registered();
    assert!(d["title"].is_string() && d["uid"].is_string());
    let vars = d["templating"]["list"].as_array().expect("templating");
    let ds_var = vars
        .iter()
        .find(|v| v["type"] == "datasource")
        .expect("a datasource variable");
    assert_eq!(ds_var["query"], "prometheus");
    let ds_ref = format!("${{{}}}", ds_var["name"].as_str().expect("name"));
    let mut problems = vec![];
    for v in vars.iter().filter(|v| v["type"] == "query") {
        let q = v["query"]["query"].as_str().expect("variable query");
        problems.extend(promql::check(&registered, q));
    }
    let panels = d["panels"].as_array().expect("panels");
    let mut used = BTreeSet::new();
    let mut ids = BTreeSet::new();
    for p in panels {
        let title = p["title"].as_str().unwrap_or_default();
        if title.is_empty() {
            problems.push(format!("a panel without a title: {p}"));
        }
        assert!(ids.insert(p["id"].as_i64().expect("id")), "duplicate id");
        if p["type"] == "row" {
            continue;
        }
        if p["datasource"]["type"] != "prometheus" || p["datasource"]["uid"] != ds_ref.as_str() {
            problems.push(format!("{title}: datasource {}", p["datasource"]));
        }
        let targets = p["targets"].as_array().cloned().unwrap_or_default();
        if targets.is_empty() {
            problems.push(format!("{title}: no targets"));
        }
        for t in targets {
            let Some(expr) = t["expr"].as_str() else {
                problems.push(format!("{title}: a target without expr"));
                continue;
            };
            let sel = promql::selectors(expr);
            if sel.is_empty() {
                problems.push(format!("{title}: {expr:?} selects no burst-scaler metric"));
            }
            for (name, _) in sel {
                if let Some((base, _)) = promql::family(&registered, &name) {
                    used.insert(base.clone());
                }
            }
            problems.extend(
                promql::check(&registered, expr)
                    .into_iter()
                    .map(|p| format!("{title}: {p}")),
            );
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
    // Every metric is on the dashboard but the ones only alerts need.
    let unused: Vec<_> = registered
        .keys()
        .filter(|k| !used.contains(*k) && k.as_str() != "burst_scaler_agent_events_dropped_total")
        .collect();
    assert!(unused.is_empty(), "not on the dashboard: {unused:?}");
}

#[test]
fn the_readme_documents_every_metric_with_its_type_and_labels() {
    use prometheus::proto::MetricType;
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).expect("README");
    // Rows of the metric tables: | `name` | type | labels | meaning |
    let mut documented = std::collections::BTreeMap::new();
    for line in readme.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if cells.len() < 5 || !cells[1].starts_with("`burst_scaler_") {
            continue;
        }
        let name = cells[1].trim_matches('`').to_string();
        let labels: Vec<String> = cells[3]
            .split(',')
            .filter_map(|l| {
                let l = l.trim();
                let l = l.split_whitespace().next()?;
                l.starts_with('`').then(|| l.trim_matches('`').to_string())
            })
            .collect();
        assert!(
            documented
                .insert(name.clone(), (cells[2].to_string(), labels))
                .is_none(),
            "{name} documented twice"
        );
    }
    // Types from the registries (every family exported: one BurstScaler set).
    let c = burst_scaler::controller::metrics::Metrics::new().expect("metrics");
    c.set_scalers(&[burst_scaler::controller::metrics::ScalerGauges {
        namespace: "ns".into(),
        name: "x".into(),
        managed_pods: 0,
        throttled_pods: 0,
        resized_pods: 0,
        ready: true,
        cpu: Some((0.1, 1.0, 0.1)),
    }]);
    let a = burst_scaler::agent::metrics::AgentMetrics::new().expect("agent metrics");
    let mut types = std::collections::BTreeMap::new();
    for mf in c.registry.gather().into_iter().chain(a.registry.gather()) {
        let t = match mf.get_field_type() {
            MetricType::COUNTER => "counter",
            MetricType::GAUGE => "gauge",
            MetricType::HISTOGRAM => "histogram",
            other => panic!("{other:?}"),
        };
        types.insert(mf.name().to_string(), t);
    }
    let registered = promql::registered();
    assert_eq!(
        documented.keys().collect::<Vec<_>>(),
        registered.keys().collect::<Vec<_>>(),
        "the README's metric tables list exactly the registered metrics"
    );
    for (name, labels) in &registered {
        let (t, doc_labels) = &documented[name];
        assert_eq!(t, types[name.as_str()], "{name}: type");
        let mut want = labels.clone();
        want.sort();
        let mut got = doc_labels.clone();
        got.sort();
        assert_eq!(got, want, "{name}: labels");
        // Conventions: counters end in _total, durations/ages are in seconds, no pod labels.
        assert_eq!(
            types[name.as_str()] == "counter",
            name.ends_with("_total"),
            "{name}"
        );
        assert!(
            !labels
                .iter()
                .any(|l| ["pod", "uid", "pod_uid", "container"].contains(&l.as_str())),
            "{name}: unbounded label"
        );
        if name.contains("_duration") || name.contains("_age_") {
            assert!(name.ends_with("_seconds"), "{name}: base unit");
        }
    }
}

#[test]
#[ignore = "needs helm (tests/cluster/kube-local build; eval \"$(tests/cluster/kube-local env)\")"]
fn the_network_policy_opens_both_metrics_ports_and_takes_extra_peers() {
    let (ok, out) = helm(&[
        "template",
        "bsc",
        CHART,
        "--set",
        "networkPolicy.enabled=true",
        "--set",
        "networkPolicy.extraFrom[0].ipBlock.cidr=10.1.0.0/24",
    ]);
    assert!(ok, "{out}");
    let docs = documents(&out);
    let np = kind(&docs, "NetworkPolicy")[0];
    let rule = &np["spec"]["ingress"][0];
    let ports: Vec<i64> = rule["ports"]
        .as_array()
        .expect("ports")
        .iter()
        .filter_map(|p| p["port"].as_i64())
        .collect();
    assert_eq!(
        ports,
        [8080, 8081],
        "the controller's and the agent's: {np:#?}"
    );
    assert_eq!(rule["from"][1]["ipBlock"]["cidr"], "10.1.0.0/24", "{np:#?}");
    // Without the agent, only the controller's port.
    let (ok, out) = helm(&[
        "template",
        "bsc",
        CHART,
        "--set",
        "networkPolicy.enabled=true",
        "--set",
        "agent.enabled=false",
    ]);
    assert!(ok, "{out}");
    let docs = documents(&out);
    let ports = kind(&docs, "NetworkPolicy")[0]["spec"]["ingress"][0]["ports"].clone();
    assert_eq!(ports.as_array().map(Vec::len), Some(1), "{ports:#?}");
}
