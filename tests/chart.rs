//! The Helm chart: least-privilege RBAC that matches the code, `helm lint`/`template` with real
//! helm, and `helm install`/`uninstall` on the real local cluster.

mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use burst_scaler::agent::rbac as agent_rbac;
use burst_scaler::controller::rbac::{CLUSTER_RULES, LEASE_RULES};
use serde_json::Value;

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

fn helm(args: &[&str]) -> (bool, String) {
    let out = Command::new("helm").args(args).output().expect(
        "helm on PATH (tests/cluster/kube-local build; eval \"$(tests/cluster/kube-local env)\")",
    );
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
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
