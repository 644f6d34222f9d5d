//! The local cluster is real: pods run in cgroups, usage flows through metrics.k8s.io, and the
//! stock HPA works. Run with `tests/run` (or `cargo test --test cluster -- --include-ignored`
//! with KUBECONFIG from `tests/cluster/kube-local env`).

mod support;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v1::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::runtime::wait::conditions::is_pod_running;
use support::*;

use burst_scaler::quantity::MilliCpu;
use burst_scaler::usage::PodMetrics;

#[tokio::test]
#[ignore = "needs the local cluster (tests/cluster/kube-local up)"]
async fn pod_limit_becomes_the_containers_cfs_quota() {
    let ns = TestNs::new("quota").await;
    let pods: Api<Pod> = ns.api();
    ns.create::<Pod>(burner(
        "burn",
        serde_json::json!({"app": "burn"}),
        "100m",
        "200m",
    ))
    .await;
    let pod = wait_for(&pods, "burn", 90, "the pod to run", is_pod_running()).await;
    let uid = pod.metadata.uid.expect("uid");
    let cid = pod
        .status
        .and_then(|s| s.container_statuses)
        .and_then(|cs| cs.into_iter().next())
        .and_then(|c| c.container_id)
        .expect("container id");
    let cid = cid.trim_start_matches("containerd://");
    let dir = format!("/sys/fs/cgroup/cpu/kubepods/burstable/pod{uid}/{cid}");
    let read = |f: &str| {
        std::fs::read_to_string(format!("{dir}/{f}"))
            .unwrap_or_else(|e| panic!("{dir}/{f}: {e}"))
            .trim()
            .to_string()
    };
    // 200m of a 100 ms period = 20 ms.
    assert_eq!(read("cpu.cfs_period_us"), "100000");
    assert_eq!(read("cpu.cfs_quota_us"), "20000");
    // 100m request = 102 shares (1024 per core).
    assert_eq!(read("cpu.shares"), "102");
}

#[tokio::test]
#[ignore = "needs the local cluster (tests/cluster/kube-local up)"]
async fn usage_of_a_busy_pod_is_read_through_metrics_k8s_io() {
    let ns = TestNs::new("usage").await;
    let pods: Api<Pod> = ns.api();
    ns.create::<Pod>(burner(
        "burn",
        serde_json::json!({"app": "burn"}),
        "100m",
        "300m",
    ))
    .await;
    wait_for(&pods, "burn", 90, "the pod to run", is_pod_running()).await;
    // The same typed API the controller uses.
    let metrics: Api<PodMetrics> = ns.api();
    let usage = eventually(120, "non-zero CPU usage in PodMetrics", || {
        let metrics = metrics.clone();
        async move {
            let m = metrics.get_opt("burn").await.ok().flatten()?;
            let cpu = m
                .containers
                .iter()
                .find(|c| c.name == "burn")?
                .cpu()
                .ok()
                .flatten()?;
            (cpu > MilliCpu(50)).then_some(cpu)
        }
    })
    .await;
    // It burns as much as its 300m limit allows.
    assert!(usage <= MilliCpu(330), "usage {usage} above the 300m limit");
    // List with a label selector, as the controller does.
    let listed = metrics
        .list(&kube::api::ListParams::default().labels("app=burn"))
        .await
        .expect("list");
    assert_eq!(listed.items.len(), 1);
    let none = metrics
        .list(&kube::api::ListParams::default().labels("app=other"))
        .await
        .expect("list");
    assert!(none.items.is_empty());
}

#[tokio::test]
#[ignore = "needs the local cluster (tests/cluster/kube-local up)"]
async fn stock_hpa_reports_utilization_and_scales_a_loaded_deployment() {
    let ns = TestNs::new("hpa").await;
    let mut template = burner("x", serde_json::json!({"app": "burn"}), "100m", "200m");
    template["metadata"] = serde_json::json!({"labels": {"app": "burn"}});
    ns.create::<Deployment>(serde_json::json!({
        "metadata": {"name": "burn"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "burn"}}, "template": template}
    }))
    .await;
    // What `kubectl autoscale deployment burn --cpu-percent=50 --min=1 --max=3` creates.
    ns.create::<HorizontalPodAutoscaler>(serde_json::json!({
        "metadata": {"name": "burn"},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "burn"},
            "minReplicas": 1, "maxReplicas": 3, "targetCPUUtilizationPercentage": 50
        }
    }))
    .await;
    let hpas: Api<HorizontalPodAutoscaler> = ns.api();
    let (utilization, desired) = eventually(240, "the HPA to see load and scale up", || {
        let hpas = hpas.clone();
        async move {
            let s = hpas.get("burn").await.ok()?.status?;
            let u = s.current_cpu_utilization_percentage?;
            (s.desired_replicas > 1).then_some((u, s.desired_replicas))
        }
    })
    .await;
    // One pod burning its 200m limit against a 100m request: ~200 %.
    assert!(utilization > 100, "utilization {utilization}%");
    assert!(desired > 1);
    let deploys: Api<Deployment> = ns.api();
    let replicas = eventually(60, "the deployment to be scaled", || {
        let deploys = deploys.clone();
        async move {
            let r = deploys.get("burn").await.ok()?.spec?.replicas?;
            (r > 1).then_some(r)
        }
    })
    .await;
    assert!(replicas > 1);
}
