//! The node agent on the real local cluster, installed by the Helm chart: it changes the real
//! cgroups of real pods to what the engine decided, reports it (BurstScalerNode, Events,
//! metrics, BurstScaler status), and every change is undone by each exit — BurstScaler
//! deleted, agent killed with SIGKILL and restarted, `helm uninstall` — a throttled pod's
//! container killed mid-throttle restarts normally, and a throttled batch pod gets its CPU back
//! once the latency-sensitive pod is gone.
//!
//! One agent per node: these scenarios run one after another in a single test (two agent
//! releases on one node would be two deciders), each asserting exact cgroup values read from
//! the host.

mod support;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use burst_scaler::api::{BurstScaler, BurstScalerNode};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::DeleteParams;
use kube::runtime::wait::conditions::is_pod_running;
use serde_json::{Value, json};
use support::*;

const CHART: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/charts/burst-scaler");
const NODE: &str = "localhost";

fn helm(args: &[&str]) -> (bool, String) {
    let out = Command::new("helm")
        .args(args)
        .output()
        .expect("helm on PATH");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// A pod's cgroups on this host (cgroup v1, cgroupfs driver, containerd).
struct Cgroups {
    pod: PathBuf,
    container: PathBuf,
}

impl Cgroups {
    fn read(dir: &std::path::Path, file: &str) -> String {
        std::fs::read_to_string(dir.join(file))
            .unwrap_or_else(|e| panic!("{}/{file}: {e}", dir.display()))
            .trim()
            .to_string()
    }
    fn quota(&self) -> String {
        Self::read(&self.container, "cpu.cfs_quota_us")
    }
    fn shares(&self) -> String {
        Self::read(&self.container, "cpu.shares")
    }
    fn pod_quota(&self) -> String {
        Self::read(&self.pod, "cpu.cfs_quota_us")
    }
    fn pod_shares(&self) -> String {
        Self::read(&self.pod, "cpu.shares")
    }
}

async fn cgroups(pods: &Api<Pod>, name: &str) -> Cgroups {
    let pod = wait_for(pods, name, 120, "the pod to run", is_pod_running()).await;
    let uid = pod.metadata.uid.clone().expect("uid");
    let qos = pod
        .status
        .as_ref()
        .and_then(|s| s.qos_class.clone())
        .unwrap_or_default();
    let cid = pod
        .status
        .and_then(|s| s.container_statuses)
        .and_then(|cs| cs.into_iter().next())
        .and_then(|c| c.container_id)
        .expect("container id");
    let tier = match qos.as_str() {
        "Guaranteed" => String::new(),
        other => format!("{}/", other.to_lowercase()),
    };
    let pod_dir = PathBuf::from(format!("/sys/fs/cgroup/cpu/kubepods/{tier}pod{uid}"));
    Cgroups {
        container: pod_dir.join(cid.trim_start_matches("containerd://")),
        pod: pod_dir,
    }
}

/// A busybox pod burning `threads` CPU-bound loops (bounded: 15 minutes).
fn burner_pod(name: &str, app: &str, threads: u32, request: &str, limit: Option<&str>) -> Value {
    let mut resources = json!({"requests": {"cpu": request}});
    if let Some(l) = limit {
        resources["limits"] = json!({"cpu": l});
    }
    let loops: Vec<String> = (0..threads)
        .map(|_| "(while [ $(date +%s) -lt $end ]; do :; done) &".to_string())
        .collect();
    json!({
        "metadata": {"name": name, "labels": {"app": app}},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "containers": [{
                "name": "burn",
                "image": BUSYBOX,
                "imagePullPolicy": "Never",
                "command": ["sh", "-c", format!("end=$(( $(date +%s) + 900 )); {} wait", loops.join(" "))],
                "resources": resources
            }]
        }
    })
}

fn scaler(name: &str, app: &str, spec: Value) -> Value {
    let mut s = json!({"selector": {"matchLabels": {"app": app}}, "mode": "Auto"});
    if let (Some(s), Some(extra)) = (s.as_object_mut(), spec.as_object()) {
        for (k, v) in extra {
            s.insert(k.clone(), v.clone());
        }
    }
    json!({"apiVersion": "burstscaler.dev/v1alpha1", "kind": "BurstScaler",
           "metadata": {"name": name}, "spec": s})
}

/// Waits until `f` holds for the pod's cgroups, failing with what they held last.
async fn until(secs: u64, what: &str, cg: &Cgroups, f: impl Fn(&Cgroups) -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if f(cg) {
            return;
        }
        if tokio::time::Instant::now() > deadline {
            panic!(
                "timed out after {secs}s waiting for {what}: container quota {} shares {}, pod quota {} shares {}",
                cg.quota(),
                cg.shares(),
                cg.pod_quota(),
                cg.pod_shares()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Runs `kubectl burstscaler ARGS` (this build's binary, linked as the kubectl plugin
/// `kubectl-burstscaler`): (success, stdout, stderr).
fn kubectl_plugin(args: &[&str], kubeconfig: Option<&std::path::Path>) -> (bool, String, String) {
    let dir = std::env::temp_dir().join(format!("bs-plugin-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let link = dir.join("kubectl-burstscaler");
    if !link.exists() {
        std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_burst-scaler"), &link).expect("plugin link");
    }
    let path = format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut cmd = Command::new("kubectl");
    cmd.arg("burstscaler").args(args).env("PATH", path);
    if let Some(k) = kubeconfig {
        cmd.env("KUBECONFIG", k);
    }
    let out = cmd.output().expect("kubectl");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn explain_json(ns: &str, pod: &str) -> Value {
    let (ok, out, err) = kubectl_plugin(&["explain", "pod", pod, "-n", ns, "-o", "json"], None);
    assert!(ok, "explain pod {pod}: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("explain -o json is JSON ({e}): {out}"))
}

async fn explain_checks(ns: &str, nodes: &Api<BurstScalerNode>) {
    // The throttled compile: governed through the agent, 600m in force, and `-o json`'s last
    // decision is the agent's own record (read before and after, so that a decision taken in
    // between cannot make the comparison flaky).
    let recorded = || async {
        let st = nodes.get(NODE).await.ok()?.status?;
        let p = st
            .pods
            .into_iter()
            .find(|p| p.name == "compile" && p.namespace == ns)?;
        serde_json::to_value(p.last_decision?).ok()
    };
    let mut compared = false;
    for _ in 0..5 {
        let before = recorded().await;
        let e = explain_json(ns, "compile");
        let after = recorded().await;
        assert_eq!(e["governedBy"]["burstScaler"], "compile", "{e:#}");
        assert_eq!(e["actuator"]["kind"], "NodeAgent", "{e:#}");
        assert_eq!(e["actuator"]["applies"], true, "{e:#}");
        assert_eq!(e["containers"][0]["inForce"]["limit"], "600m", "{e:#}");
        let state = e["containers"][0]["state"].as_str().unwrap_or_default();
        assert!(state.starts_with("throttled"), "{e:#}");
        assert_eq!(
            e["next"]["decider"], "agent",
            "the agent's verdict, read through the pod proxy: {e:#}"
        );
        assert!(
            e["next"]["reason"].as_str().is_some_and(|r| !r.is_empty()),
            "{e:#}"
        );
        if before.is_some() && before == after {
            let d = before.unwrap_or_default();
            let mine = &e["lastDecision"];
            for f in ["time", "action", "applied", "reason"] {
                assert_eq!(
                    mine[f], d[f],
                    "lastDecision.{f}: explain {mine:#} vs the agent's {d:#}"
                );
            }
            assert_eq!(mine["source"], "agent");
            compared = true;
            break;
        }
    }
    assert!(
        compared,
        "the agent's last decision for the compile never held still for one explain"
    );

    // The raised service, in text.
    let (ok, text, err) = kubectl_plugin(&["explain", "pod", "api", "-n", ns], None);
    assert!(ok, "explain pod api: {err}");
    eprintln!("kubectl burstscaler explain pod api:\n{text}");
    for want in [
        "Governed by: BurstScaler api (LatencySensitive, mode Auto",
        "the node agent",
        "raised",
        "Last decision (agent,",
        "Next (agent ",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }

    // An ungoverned pod: the agent's own.
    let (ok, agents, err) = {
        let out = Command::new("kubectl")
            .args([
                "-n",
                ns,
                "get",
                "pods",
                "-l",
                "app.kubernetes.io/component=agent",
                "-o",
                "name",
            ])
            .output()
            .expect("kubectl");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    assert!(ok, "{err}");
    let agent = agents
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("pod/"))
        .expect("the agent pod");
    let e = explain_json(ns, agent);
    assert!(e["governedBy"].is_null(), "{e:#}");
    let why = e["notGoverned"].as_str().unwrap_or_default();
    assert!(
        why.contains(&format!("no BurstScaler in namespace {ns} selects it")),
        "{e:#}"
    );

    // The BurstScaler view lists its throttled pod.
    let (ok, text, err) = kubectl_plugin(&["explain", "bsc", "compile", "-n", ns], None);
    assert!(ok, "explain bsc compile: {err}");
    eprintln!("kubectl burstscaler explain bsc compile:\n{text}");
    assert!(
        text.contains(&format!("{ns}/compile")) && text.contains("throttled"),
        "{text}"
    );

    // Errors: an unknown pod, a pod in a namespace without BurstScalers, no permission.
    let (ok, _, err) = kubectl_plugin(&["explain", "pod", "nope", "-n", ns], None);
    assert!(
        !ok && err.contains(&format!("pod {ns}/nope not found")),
        "{err}"
    );
    let (ok, _, err) = kubectl_plugin(&["explain", "bsc", "nope", "-n", ns], None);
    assert!(
        !ok && err.contains(&format!("BurstScaler {ns}/nope not found")),
        "{err}"
    );
    let out = Command::new("kubectl")
        .args([
            "config",
            "view",
            "--raw",
            "--flatten",
            "--minify",
            "-o",
            "json",
        ])
        .output()
        .expect("kubectl config view");
    let mut cfg: Value = serde_json::from_slice(&out.stdout).expect("kubeconfig json");
    if let Some(users) = cfg["users"].as_array_mut() {
        for u in users {
            u["user"]["as"] = json!("system:serviceaccount:default:nobody");
        }
    }
    let nobody = std::env::temp_dir().join(format!("bs-nobody-{}.kubeconfig", std::process::id()));
    std::fs::write(&nobody, cfg.to_string()).expect("write kubeconfig");
    let (ok, _, err) = kubectl_plugin(&["explain", "pod", "compile", "-n", ns], Some(&nobody));
    let _ = std::fs::remove_file(&nobody);
    assert!(
        !ok && err.contains(&format!("no permission to get pod {ns}/compile")),
        "{err}"
    );
}

fn agent_pids() -> Vec<String> {
    let out = Command::new("pgrep")
        .args(["-f", "^/burst-scaler agent"])
        .output()
        .expect("pgrep");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// Pass or fail: uninstall the release, then drop the BurstScalers' finalizers (the
/// controller that would release them is gone) so that the namespace can be deleted.
struct Cleanup {
    namespace: String,
    release: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = helm(&[
            "uninstall",
            &self.release,
            "--namespace",
            &self.namespace,
            "--wait",
        ]);
        let list = Command::new("kubectl")
            .args(["-n", &self.namespace, "get", "burstscalers", "-o", "name"])
            .output();
        if let Ok(list) = list {
            for name in String::from_utf8_lossy(&list.stdout).split_whitespace() {
                let _ = Command::new("kubectl")
                    .args([
                        "-n",
                        &self.namespace,
                        "patch",
                        name,
                        "--type",
                        "merge",
                        "-p",
                    ])
                    .arg(r#"{"metadata":{"finalizers":null}}"#)
                    .output();
            }
        }
    }
}

#[tokio::test]
#[ignore = "needs the local cluster, root and the controller image (tests/run builds both)"]
async fn the_agent_changes_real_cgroups_and_every_exit_restores_them() {
    let ns = TestNs::new("agent").await;
    install_crd(&ns.client).await;
    let release = format!("bsa-{}", &ns.name[ns.name.len() - 4..]);
    let _cleanup = Cleanup {
        namespace: ns.name.clone(),
        release: release.clone(),
    };
    let install = |extra: &[&str]| {
        let mut args = vec![
            "upgrade",
            "--install",
            "--skip-crds",
            release.as_str(),
            CHART,
            "--namespace",
            ns.name.as_str(),
            "-f",
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/charts/burst-scaler/ci/local-cluster-values.yaml"
            ),
            "--wait",
            "--timeout",
            "180s",
        ];
        args.extend_from_slice(extra);
        helm(&args)
    };
    let watch_ns = format!("controller.watchNamespaces={{{}}}", ns.name);
    let (ok, out) = install(&["--set", &watch_ns]);
    assert!(ok, "helm install: {out}");

    let pods: Api<Pod> = ns.api();
    let scalers: Api<BurstScaler> = ns.api();

    // --- 1. A throttled latency-sensitive pod's quota is raised (to spec.cpu.max exactly): a
    //        busy loop limited to 200m uses all of it, so one burst sample takes it toward
    //        usage ÷ 60 % = 333m, capped by cpu.max at 300m.
    ns.create::<Pod>(burner_pod("web", "web", 1, "100m", Some("200m")))
        .await;
    let web = cgroups(&pods, "web").await;
    assert_eq!(
        web.quota(),
        "20000",
        "the spec's limit before the agent acts"
    );
    ns.create::<BurstScaler>(scaler(
        "web",
        "web",
        json!({"role": "LatencySensitive", "cpu": {"min": "100m", "max": "300m"}}),
    ))
    .await;
    until(60, "the web quota raised to cpu.max (300m)", &web, |c| {
        c.quota() == "30000"
    })
    .await;
    assert_eq!(
        web.pod_quota(),
        "30000",
        "the pod level was raised first, to what its container needs"
    );
    // The node's BurstScalerNode says so.
    let nodes: Api<BurstScalerNode> = Api::all(ns.client.clone());
    let bscn = eventually(30, "the BurstScalerNode to show web raised", || {
        let nodes = nodes.clone();
        let ns = ns.name.clone();
        async move {
            let st = nodes.get(NODE).await.ok()?.status?;
            let p = st
                .pods
                .iter()
                .find(|p| p.name == "web" && p.namespace == ns)?;
            (p.containers[0].limit.as_ref()?.to_string() == "300m").then_some(st)
        }
    })
    .await;
    assert!(bscn.raised_pods >= 1);

    // Deleting the BurstScaler restores the spec.
    scalers
        .delete("web", &DeleteParams::default())
        .await
        .expect("delete web scaler");
    until(60, "web restored to its spec (200m)", &web, |c| {
        c.quota() == "20000" && c.pod_quota() == "20000"
    })
    .await;

    // --- 1b. SIGKILL the agent while web is raised, and delete the BurstScaler while it is
    //         down: the restarted agent restores the spec from its journal on the host.
    ns.create::<BurstScaler>(scaler(
        "web",
        "web",
        json!({"role": "LatencySensitive", "cpu": {"min": "100m", "max": "300m"}}),
    ))
    .await;
    until(60, "web raised again", &web, |c| c.quota() == "30000").await;
    let before = agent_pids();
    assert_eq!(
        before.len(),
        1,
        "one agent process on this node: {before:?}"
    );
    let _ = Command::new("kill").args(["-9", &before[0]]).status();
    scalers
        .delete("web", &DeleteParams::default())
        .await
        .expect("delete web scaler");
    until(120, "web restored by the restarted agent", &web, |c| {
        c.quota() == "20000" && c.pod_quota() == "20000"
    })
    .await;
    let after = agent_pids();
    assert!(
        after.len() == 1 && after != before,
        "the agent was restarted: {before:?} → {after:?}"
    );
    pods.delete("web", &DeleteParams::default().grace_period(0))
        .await
        .expect("delete web");

    // --- 2. Starvation by CPU shares (the headline case): a latency-sensitive pod with a
    //        small request (100m: 102 shares) and a large limit next to a compile with a
    //        large request (1 core: 1024 shares) and 2 threads. The service's one thread
    //        waits for a CPU (PSI) without ever reaching its limit. The agent first raises its
    //        weight to its limit (1500m: 1536 shares), limit and request unchanged; when the
    //        pressure persists, the compile yields to its floor (the node: 2 cores − 100m
    //        reserve − others − 1500m for the service < 600m). The raised weight leaves the
    //        one busy thread below the default yieldPressurePercent (40 %), so its BurstScaler
    //        sets it to 10 %: this test is about the agent's writes and restores, the
    //        threshold is the engine's (tests/engine_signals.rs).
    ns.create::<Pod>(burner_pod("api", "api", 1, "100m", Some("1500m")))
        .await;
    ns.create::<Pod>(burner_pod("compile", "compile", 2, "1", Some("2")))
        .await;
    let api = cgroups(&pods, "api").await;
    let compile = cgroups(&pods, "compile").await;
    assert_eq!(
        api.shares(),
        "102",
        "the spec's shares before the agent acts"
    );
    let api_pod_shares: u64 = api.pod_shares().parse().expect("pod shares");
    ns.create::<BurstScaler>(scaler(
        "api",
        "api",
        json!({"role": "LatencySensitive", "cpu": {"min": "100m", "max": "1500m"},
               "latencySensitive": {"signals": {"yieldPressurePercent": 10}}}),
    ))
    .await;
    ns.create::<BurstScaler>(scaler(
        "compile",
        "compile",
        json!({"role": "Batch", "cpu": {"min": "100m", "max": "2"}, "batch": {"floor": "600m"}}),
    ))
    .await;
    until(
        60,
        "the starved service's weight raised to its limit",
        &api,
        |c| c.shares() == "1536",
    )
    .await;
    assert_eq!(api.quota(), "150000", "the weight raise leaves the limit");
    assert_eq!(
        api.pod_shares(),
        (api_pod_shares + 1536 - 102).to_string(),
        "the pod level's shares moved by the container's change"
    );
    until(
        90,
        "the compile throttled to its floor (600m)",
        &compile,
        |c| c.quota() == "60000",
    )
    .await;
    assert_eq!(
        compile.pod_quota(),
        "200000",
        "the pod level stays at the spec"
    );
    assert_eq!(api.quota(), "150000");
    // The controller folds what the agent did into the BurstScalers' status: `kubectl get bsc`
    // counts the throttled compile and the raised service, and Auto is Ready through the agent
    // on this 1.20 cluster (no pods/resize).
    for (name, what) in [("compile", "throttled"), ("api", "resized")] {
        let st = eventually(
            60,
            &format!("BurstScaler {name} status to count it {what}"),
            || {
                let scalers = scalers.clone();
                async move {
                    let st = scalers.get(name).await.ok()?.status?;
                    let n = if what == "throttled" {
                        st.throttled_pods
                    } else {
                        st.resized_pods
                    };
                    (n == 1).then_some(st)
                }
            },
        )
        .await;
        let ready = st
            .conditions
            .iter()
            .find(|c| c.type_ == "Ready")
            .expect("Ready condition");
        assert_eq!(ready.status, "True", "{name}: {ready:?}");
        assert!(
            ready.message.contains("1 through the node agent"),
            "{name}: {}",
            ready.message
        );
    }

    // `kubectl burstscaler explain` (the binary as a kubectl plugin) on the throttled compile,
    // the raised service and an ungoverned pod (the agent's own), and its errors.
    explain_checks(&ns.name, &nodes).await;

    // --- 3. The throttled container killed mid-throttle restarts normally (the runtime writes
    //        the spec's quota into the new cgroup; the pod level allows it).
    // The container's init (its shell: PID 1 in its namespace); killing one of its loops
    // would not end the container.
    let pid = std::fs::read_to_string(compile.container.join("tasks"))
        .expect("tasks")
        .lines()
        .find(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/status"))
                .ok()
                .and_then(|st| {
                    st.lines()
                        .find(|l| l.starts_with("NSpid:"))
                        .and_then(|l| l.split_whitespace().last().map(|v| v == "1"))
                })
                .unwrap_or(false)
        })
        .map(str::to_string)
        .expect("the container's init process");
    let _ = Command::new("kill").args(["-9", &pid]).status();
    let restarted = eventually(90, "the compile container to restart and run", || {
        let pods = pods.clone();
        async move {
            let p = pods.get("compile").await.ok()?;
            let cs = p.status?.container_statuses?.into_iter().next()?;
            (cs.restart_count >= 1 && cs.state.as_ref()?.running.is_some()).then_some(cs)
        }
    })
    .await;
    assert!(restarted.ready || restarted.started.unwrap_or(false) || restarted.restart_count >= 1);
    let compile = cgroups(&pods, "compile").await;
    until(60, "the restarted compile throttled again", &compile, |c| {
        c.quota() == "60000"
    })
    .await;

    // --- 3b. The pressure gone (the service deleted), the compile's CPU is given back, step
    //         by step, to its spec's 2 cores.
    pods.delete("api", &DeleteParams::default().grace_period(0))
        .await
        .expect("delete api");
    until(
        60,
        "the compile given its CPU back (2 cores)",
        &compile,
        |c| c.quota() == "200000",
    )
    .await;
    assert_eq!(compile.pod_quota(), "200000");

    // A new service pod starves again: weight raised, compile throttled again — held when the
    // chart is uninstalled below.
    ns.create::<Pod>(burner_pod("api2", "api", 1, "100m", Some("1500m")))
        .await;
    let api2 = cgroups(&pods, "api2").await;
    until(60, "the new service's weight raised", &api2, |c| {
        c.shares() == "1536"
    })
    .await;
    until(90, "the compile throttled again", &compile, |c| {
        c.quota() == "60000"
    })
    .await;

    // --- 4. helm uninstall (SIGTERM) restores everything it holds.
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
    until(
        60,
        "the compile restored by the agent's SIGTERM",
        &compile,
        |c| c.quota() == "200000" && c.pod_quota() == "200000",
    )
    .await;
    until(
        30,
        "the service's weight restored by the SIGTERM",
        &api2,
        |c| c.shares() == "102" && c.quota() == "150000",
    )
    .await;
    eventually(60, "the agent process to exit", || async {
        agent_pids().is_empty().then_some(())
    })
    .await;
}
