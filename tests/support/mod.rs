//! Support for integration tests on the local cluster (`tests/cluster/kube-local up`).
//!
//! Tests that need it are `#[ignore = "needs the local cluster"]`; `tests/run` starts the
//! cluster, runs them with `--include-ignored` and stops it. Each test gets its own namespace,
//! deleted when the [`TestNs`] is dropped, pass or fail.
#![allow(dead_code)]

pub mod promql;

use std::fmt::Debug;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{DeleteParams, PostParams};
use kube::runtime::wait::{Condition, await_condition};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;

pub const BUSYBOX: &str = "burst-scaler.local/busybox:1";

/// Runs real helm (`tests/cluster/kube-local env` puts it on PATH): (success, stdout+stderr).
pub fn helm(args: &[&str]) -> (bool, String) {
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

/// A client for the cluster named by `KUBECONFIG`, and a fresh namespace.
pub struct TestNs {
    pub client: Client,
    pub name: String,
}

impl TestNs {
    pub async fn new(prefix: &str) -> TestNs {
        let client = Client::try_default()
            .await
            .expect("no cluster: start it with `tests/cluster/kube-local up` and set KUBECONFIG (see `kube-local env`)");
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let name = format!(
            "t-{prefix}-{:x}{:x}",
            std::process::id() % 4096,
            nanos % 65536
        );
        let ns: Namespace = serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "labels": {"burstscaler.dev/test": "true"}}
        }))
        .expect("namespace");
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .expect("create namespace");
        // Pods are refused until the namespace's default service account has its token
        // (Kubernetes 1.20 still uses token secrets).
        let sa: Api<k8s_openapi::api::core::v1::ServiceAccount> =
            Api::namespaced(client.clone(), &name);
        for _ in 0..60 {
            let ready = sa.get_opt("default").await.ok().flatten();
            if ready.is_some_and(|sa| sa.secrets.is_some_and(|s| !s.is_empty())) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        TestNs { client, name }
    }

    pub fn api<K>(&self) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        Api::namespaced(self.client.clone(), &self.name)
    }

    /// Creates an object from JSON in this namespace.
    pub async fn create<K>(&self, value: serde_json::Value) -> K
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + DeserializeOwned
            + serde::Serialize
            + Debug,
    {
        let obj: K = serde_json::from_value(value).expect("object");
        self.api::<K>()
            .create(&PostParams::default(), &obj)
            .await
            .expect("create")
    }
}

impl Drop for TestNs {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop cannot await: delete from a helper thread with its own runtime and its own
        // client (the test's client is driven by the test's runtime, blocked here).
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            if let Ok(rt) = rt {
                rt.block_on(async move {
                    let Ok(client) = Client::try_default().await else {
                        return;
                    };
                    let _ = Api::<Namespace>::all(client)
                        .delete(&name, &DeleteParams::background().grace_period(0))
                        .await;
                });
            }
        })
        .join();
    }
}

/// Waits for `cond` on object `name`, failing the test with `what` after `secs` seconds.
pub async fn wait_for<K>(
    api: &Api<K>,
    name: &str,
    secs: u64,
    what: &str,
    cond: impl Condition<K>,
) -> K
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
{
    match tokio::time::timeout(
        Duration::from_secs(secs),
        await_condition(api.clone(), name, cond),
    )
    .await
    {
        Ok(Ok(Some(obj))) => obj,
        Ok(Ok(None)) => panic!("{name} was deleted while waiting for {what}"),
        Ok(Err(e)) => panic!("watch failed while waiting for {what}: {e}"),
        Err(_) => panic!("timed out after {secs}s waiting for {what} on {name}"),
    }
}

/// Polls `f` every second until it returns `Some`, failing after `secs` seconds.
pub async fn eventually<T, F, Fut>(secs: u64, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {secs}s waiting for {what}");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// A busybox pod spec that burns one CPU-bound loop, with the given CPU request and limit.
pub fn burner(
    name: &str,
    labels: serde_json::Value,
    request: &str,
    limit: &str,
) -> serde_json::Value {
    serde_json::json!({
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "containers": [{
                "name": "burn",
                "image": BUSYBOX,
                "imagePullPolicy": "Never",
                // Bounded: stops by itself after 10 minutes.
                "command": ["sh", "-c", "end=$(( $(date +%s) + 600 )); while [ $(date +%s) -lt $end ]; do :; done"],
                "resources": {"requests": {"cpu": request}, "limits": {"cpu": limit}}
            }]
        }
    })
}

/// Installs (or updates) every CRD of the project from the Rust types and waits until each is
/// served.
pub async fn install_crd(client: &kube::Client) {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in burst_scaler::crdgen::crds() {
        let name = crd.metadata.name.clone().expect("a CRD has a name");
        // Tests run in parallel and all install them: create, or replace the current version,
        // retrying when another test got there first.
        for attempt in 0.. {
            let result = match crds.get_opt(&name).await.expect("get crd") {
                None => crds.create(&PostParams::default(), &crd).await,
                Some(old) => {
                    let mut crd = crd.clone();
                    crd.metadata.resource_version = old.metadata.resource_version;
                    crds.replace(&name, &PostParams::default(), &crd).await
                }
            };
            match result {
                Ok(_) => break,
                Err(kube::Error::Api(s)) if (s.code == 409 || s.code == 404) && attempt < 10 => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("install crd {name}: {e}"),
            }
        }
        wait_for(
            &crds,
            &name,
            30,
            "the CRD to be established",
            |o: Option<&CustomResourceDefinition>| {
                o.and_then(|c| c.status.as_ref())
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|cs| {
                        cs.iter()
                            .any(|c| c.type_ == "Established" && c.status == "True")
                    })
            },
        )
        .await;
    }
}

/// A controller process; stopped with SIGTERM when dropped.
pub struct Controller {
    pub child: Child,
    pub port: u16,
}

impl Controller {
    /// `burst-scaler controller` scoped to `ns`, `/metrics` and probes on a free loopback
    /// port, its log under the temp directory as `bsc-controller-{ns}-{identity}.log`.
    pub fn start(ns: &str, extra: &[&str], identity: &str) -> Controller {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("free port");
        let log = std::fs::File::create(
            std::env::temp_dir().join(format!("bsc-controller-{ns}-{identity}.log")),
        )
        .expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_burst-scaler"))
            .args(["controller", "--namespaces", ns, "--metrics-interval", "5s"])
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(extra)
            .env("POD_NAME", identity)
            .env("BURST_SCALER_LOG", "info,burst_scaler=debug")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start controller");
        Controller { child, port }
    }

    pub async fn metrics(&self) -> Option<String> {
        self.get("/metrics").await
    }

    /// The body of `GET path` on its HTTP server, when it answers 2xx.
    pub async fn get(&self, path: &str) -> Option<String> {
        let out = Command::new("curl")
            .args([
                "-sf",
                "--max-time",
                "3",
                &format!("http://127.0.0.1:{}{path}", self.port),
            ])
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    pub async fn metric(&self, name: &str) -> Option<f64> {
        let text = self.metrics().await?;
        text.lines()
            .filter(|l| l.starts_with(name))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .reduce(|a, b| a + b)
    }

    /// `/readyz` answers 200.
    pub fn ready(&self) -> bool {
        Command::new("curl")
            .args([
                "-sf",
                "--max-time",
                "3",
                &format!("http://127.0.0.1:{}/readyz", self.port),
            ])
            .status()
            .is_ok_and(|s| s.success())
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        for _ in 0..50 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// BurstScalers in mode `Auto` get the controller's finalizer; once the test's controller is
/// stopped nothing would remove it and the namespace would stay `Terminating`: dropping this
/// removes the finalizers of every BurstScaler in the namespace, pass or fail. Declare it
/// before the [`Controller`] (locals drop in reverse order: the controller stops first).
pub struct DropFinalizers(pub String);

impl Drop for DropFinalizers {
    fn drop(&mut self) {
        let Ok(out) = Command::new("kubectl")
            .args(["get", "burstscalers", "-n", &self.0, "-o", "name"])
            .output()
        else {
            return;
        };
        for obj in String::from_utf8_lossy(&out.stdout).lines() {
            let _ = Command::new("kubectl")
                .args(["patch", "-n", &self.0, obj, "--type=merge"])
                .args(["-p", r#"{"metadata":{"finalizers":null}}"#])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// A BurstScaler's condition of type `t`: (status, reason, message).
pub fn condition(s: &burst_scaler::api::BurstScaler, t: &str) -> Option<(String, String, String)> {
    s.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == t)
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

/// The value of a `# KEY: value` header line at the top of a test case file (quotes around
/// the value dropped).
pub fn header(text: &str, key: &str) -> Option<String> {
    text.lines()
        .take_while(|l| l.starts_with('#'))
        .find_map(|l| l.strip_prefix(&format!("# {key}: ")))
        .map(|v| {
            let v = v.trim();
            match v.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
                Some(inner) => inner.to_string(),
                None => v.to_string(),
            }
        })
}
