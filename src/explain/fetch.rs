//! Explain's I/O edge: reads what [`super::model`] needs from the cluster — the pod, the
//! BurstScalers of its namespace, its node's `BurstScalerNode`, the agent Lease, Events, and
//! the deciding component's `/decisions` through the API server's pod proxy — and prints the
//! explanation. Reads only; it never writes.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, anyhow};
use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams};
use kube::core::Selector;
use kube::{Client, ResourceExt};

use super::model::{self, PodExplanation, PodFacts, ScalerFacts};
use super::verdict::Verdicts;
use crate::api::{BurstScaler, BurstScalerNode, BurstScalerNodeStatus, agent_lease_name};
use crate::cli::{ExplainArgs, ExplainTarget, OutputFormat};
use crate::controller::actuate::resize_supported;
use crate::controller::agents::live_agent_nodes;

/// How long one read of a decider's `/decisions` may take.
const PROXY_TIMEOUT: Duration = Duration::from_secs(5);
/// At most this many Events of the namespace are read.
const EVENT_LIMIT: u32 = 500;
/// `explain bsc` reads the verdicts of at most this many nodes' deciders.
const MAX_DECIDER_NODES: usize = 20;

/// Runs `burst-scaler explain …` and returns what to print on stdout; warnings (what could
/// not be read) go to stderr.
pub async fn run(args: &ExplainArgs) -> anyhow::Result<String> {
    let client = Client::try_default().await.map_err(|e| {
        anyhow!("cannot reach the Kubernetes API (KUBECONFIG or in-cluster config): {e}")
    })?;
    let ns = args
        .namespace
        .clone()
        .unwrap_or_else(|| client.default_namespace().to_string());
    let mut r = Reader {
        client,
        controller_selector: args.controller_selector.clone(),
        warnings: vec![],
        now: Timestamp::now(),
    };
    let out = match &args.target {
        ExplainTarget::Pod { name } => {
            let e = r.pod(&ns, name).await?;
            match args.output {
                OutputFormat::Json => serde_json::to_string_pretty(&e)? + "\n",
                OutputFormat::Text => model::render_pod(&e, r.now),
            }
        }
        ExplainTarget::Bsc { name } => {
            let e = r.scaler(&ns, name).await?;
            match args.output {
                OutputFormat::Json => serde_json::to_string_pretty(&e)? + "\n",
                OutputFormat::Text => model::render_scaler(&e, r.now),
            }
        }
    };
    for w in &r.warnings {
        eprintln!("warning: {w}");
    }
    Ok(out)
}

struct Reader {
    client: Client,
    controller_selector: String,
    warnings: Vec<String>,
    now: Timestamp,
}

/// An API error as a user should read it: which call, and for 403/404 what it means.
fn api_error(what: &str, e: kube::Error) -> anyhow::Error {
    match &e {
        kube::Error::Api(s) if s.code == 403 => anyhow!(
            "no permission to {what}: {} (ask for get/list on it, e.g. the chart's ClusterRole)",
            s.message
        ),
        _ => anyhow!("cannot {what}: {e}"),
    }
}

fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

impl Reader {
    async fn pod(&mut self, ns: &str, name: &str) -> anyhow::Result<PodExplanation> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        let pod = pods
            .get_opt(name)
            .await
            .map_err(|e| api_error(&format!("get pod {ns}/{name}"), e))?
            .ok_or_else(|| anyhow!("pod {ns}/{name} not found"))?;
        let pod = Arc::new(pod);
        let scalers = self.scalers(ns).await?;
        let events = self.events(ns).await;
        let resize = self.resize().await;
        let mut deciders = Deciders {
            // One pod: ask the decider for its verdict only.
            only: Some(format!("{ns}/{name}")),
            ..Deciders::default()
        };
        Ok(self
            .explain(&pod, &scalers, &events, &resize, &mut deciders)
            .await)
    }

    async fn scaler(&mut self, ns: &str, name: &str) -> anyhow::Result<model::ScalerExplanation> {
        let api: Api<BurstScaler> = Api::namespaced(self.client.clone(), ns);
        let scaler = match api.get_opt(name).await {
            Ok(Some(s)) => Arc::new(s),
            Ok(None) => return Err(anyhow!("BurstScaler {ns}/{name} not found")),
            Err(e) if is_not_found(&e) => return Err(no_crd()),
            Err(e) => return Err(api_error(&format!("get BurstScaler {ns}/{name}"), e)),
        };
        let scalers = self.scalers(ns).await?;
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        let selector = Selector::try_from(scaler.spec.selector.clone()).ok();
        let selected: Vec<Arc<Pod>> = match &selector {
            Some(sel) if !sel.selects_all() => pods
                .list(&ListParams::default().labels_from(sel))
                .await
                .map_err(|e| api_error(&format!("list pods in namespace {ns}"), e))?
                .items
                .into_iter()
                .map(Arc::new)
                .collect(),
            _ => vec![],
        };
        let events = self.events(ns).await;
        let resize = self.resize().await;
        let mut deciders = Deciders::default();
        let mut explained = vec![];
        for p in &selected {
            explained.push(
                self.explain(p, &scalers, &events, &resize, &mut deciders)
                    .await,
            );
        }
        Ok(model::explain_scaler(&ScalerFacts {
            scaler: &scaler,
            pods: explained,
            events: &events,
        }))
    }

    async fn explain(
        &mut self,
        pod: &Arc<Pod>,
        scalers: &[Arc<BurstScaler>],
        events: &[Event],
        resize: &Result<bool, String>,
        deciders: &mut Deciders,
    ) -> PodExplanation {
        let node = pod.spec.as_ref().and_then(|s| s.node_name.clone());
        let (status, agent) = match &node {
            Some(n) => deciders.node(self, n).await,
            None => (None, Ok(None)),
        };
        let verdicts = match (&node, &agent) {
            (None, _) => Err("the pod is not on a node".to_string()),
            (Some(n), Ok(Some(_))) => deciders.agent_verdicts(self, n).await,
            (Some(_), Ok(None)) => deciders.controller_verdicts(self).await,
            (Some(_), Err(why)) => Err(format!("who decides is unknown: {why}")),
        };
        model::explain_pod(&PodFacts {
            pod,
            scalers,
            node: status.as_ref(),
            agent_live: agent.as_ref().map(Option::is_some).map_err(Clone::clone),
            resize_supported: resize.clone(),
            events,
            verdicts,
            now: self.now,
        })
    }

    async fn scalers(&mut self, ns: &str) -> anyhow::Result<Vec<Arc<BurstScaler>>> {
        let api: Api<BurstScaler> = Api::namespaced(self.client.clone(), ns);
        match api.list(&ListParams::default()).await {
            Ok(l) => Ok(l.items.into_iter().map(Arc::new).collect()),
            Err(e) if is_not_found(&e) => Err(no_crd()),
            Err(e) => Err(api_error(
                &format!("list BurstScalers in namespace {ns}"),
                e,
            )),
        }
    }

    async fn events(&mut self, ns: &str) -> Vec<Event> {
        let api: Api<Event> = Api::namespaced(self.client.clone(), ns);
        match api.list(&ListParams::default().limit(EVENT_LIMIT)).await {
            Ok(l) => {
                if l.metadata
                    .continue_
                    .as_deref()
                    .is_some_and(|c| !c.is_empty())
                {
                    self.warnings.push(format!(
                        "namespace {ns} has more than {EVENT_LIMIT} Events: only the first {EVENT_LIMIT} were searched for this pod's"
                    ));
                }
                l.items
            }
            Err(e) => {
                self.warnings.push(format!(
                    "Events of namespace {ns} not shown: {}",
                    api_error("list events.k8s.io Events", e)
                ));
                vec![]
            }
        }
    }

    async fn resize(&mut self) -> Result<bool, String> {
        resize_supported(&self.client)
            .await
            .map_err(|e| format!("cannot list the core API's resources: {e}"))
    }

    /// The deciding component's `/decisions` for the pods of `node` (or all), via the pod
    /// proxy of the API server.
    async fn decisions(
        &self,
        pod: &Pod,
        default_port: u16,
        only: Option<&str>,
    ) -> Result<Verdicts, String> {
        let ns = pod.namespace().unwrap_or_default();
        let name = pod.name_any();
        let port = listen_port(pod).unwrap_or(default_port);
        let mut path = format!("/api/v1/namespaces/{ns}/pods/{name}:{port}/proxy/decisions");
        if let Some(key) = only {
            // Namespaces and pod names are DNS labels: only the `/` needs escaping.
            path.push_str(&format!("?pod={}", key.replace('/', "%2F")));
        }
        let req = http::Request::get(&path)
            .body(Vec::new())
            .map_err(|e| format!("{path}: {e}"))?;
        let text = tokio::time::timeout(PROXY_TIMEOUT, self.client.request_text(req))
            .await
            .map_err(|_| format!("{ns}/{name}'s /decisions did not answer within 5 s"))?
            .map_err(|e| match &e {
                kube::Error::Api(s) if s.code == 403 => format!(
                    "no permission to read {ns}/{name}'s /decisions (needs get on pods/proxy): {}",
                    s.message
                ),
                _ => format!("cannot read {ns}/{name}'s /decisions through the API server: {e}"),
            })?;
        let v: Verdicts = serde_json::from_str(&text)
            .with_context(|| format!("{ns}/{name}'s /decisions is not what this version reads"))
            .map_err(|e| format!("{e:#}"))?;
        if v.decider.is_empty() {
            return Err(format!(
                "{ns}/{name}:{port}/decisions did not answer as a burst-scaler decider (wrong port?)"
            ));
        }
        Ok(v)
    }
}

fn no_crd() -> anyhow::Error {
    anyhow!(
        "the BurstScaler CRD (burstscalers.burstscaler.dev) is not installed on this cluster: no pod is governed (install it with the chart or `kubectl apply -f crds/`)"
    )
}

/// The port a burst-scaler pod serves `/metrics` and `/decisions` on: its `BURST_SCALER_LISTEN`
/// environment variable or `--listen` argument, as the chart sets them.
pub fn listen_port(pod: &Pod) -> Option<u16> {
    let containers = pod.spec.as_ref().map(|s| s.containers.as_slice())?;
    let port = |v: &str| v.rsplit(':').next().and_then(|p| p.parse().ok());
    containers.iter().find_map(|c| {
        let env = c
            .env
            .iter()
            .flatten()
            .find(|e| e.name == "BURST_SCALER_LISTEN")
            .and_then(|e| e.value.as_deref())
            .and_then(port);
        let args: Vec<&str> = c.args.iter().flatten().map(String::as_str).collect();
        let arg = args.iter().enumerate().find_map(|(i, a)| {
            a.strip_prefix("--listen=")
                .or_else(|| {
                    (*a == "--listen")
                        .then(|| args.get(i + 1).copied())
                        .flatten()
                })
                .and_then(port)
        });
        arg.or(env)
    })
}

/// A node's BurstScalerNode status and its live agent's pod (`namespace`, `name`), or why the
/// agent's Lease could not be read.
type NodeFacts = (
    Option<BurstScalerNodeStatus>,
    Result<Option<(String, String)>, String>,
);

/// What was read per node and per decider, so that `explain bsc` reads each once.
#[derive(Default)]
struct Deciders {
    /// Ask the deciders for this pod's verdict only (`explain pod`).
    only: Option<String>,
    nodes: BTreeMap<String, NodeFacts>,
    agent: BTreeMap<String, Result<Verdicts, String>>,
    controller: Option<Result<Verdicts, String>>,
}

impl Deciders {
    async fn node(&mut self, r: &mut Reader, node: &str) -> NodeFacts {
        if let Some(v) = self.nodes.get(node) {
            return v.clone();
        }
        let status = match Api::<BurstScalerNode>::all(r.client.clone())
            .get_opt(node)
            .await
        {
            Ok(o) => o.and_then(|o| o.status),
            Err(e) => {
                r.warnings.push(format!(
                    "BurstScalerNode {node} not read: {}",
                    api_error("get burstscalernodes", e)
                ));
                None
            }
        };
        let lease = agent_lease_name(node);
        let leases: Api<Lease> = Api::all(r.client.clone());
        let agent = match leases
            .list(&ListParams::default().fields(&format!("metadata.name={lease}")))
            .await
        {
            Ok(l) => Ok(l
                .items
                .iter()
                .find(|l| live_agent_nodes(std::slice::from_ref(l), r.now).contains(node))
                .and_then(|l| {
                    let holder = l.spec.as_ref()?.holder_identity.clone()?;
                    Some((l.namespace().unwrap_or_default(), holder))
                })),
            Err(e) => Err(format!(
                "the node agent's Lease {lease} could not be read: {}",
                api_error("list leases in all namespaces", e)
            )),
        };
        self.nodes
            .insert(node.to_string(), (status.clone(), agent.clone()));
        (status, agent)
    }

    async fn agent_verdicts(&mut self, r: &mut Reader, node: &str) -> Result<Verdicts, String> {
        if let Some(v) = self.agent.get(node) {
            return v.clone();
        }
        let v = if self.agent.len() >= MAX_DECIDER_NODES {
            Err(format!(
                "verdicts are read for at most {MAX_DECIDER_NODES} nodes: explain this pod alone"
            ))
        } else {
            match self
                .nodes
                .get(node)
                .and_then(|(_, a)| a.clone().ok().flatten())
            {
                None => Err(format!("no live agent on node {node}")),
                Some((ns, name)) => {
                    let pods: Api<Pod> = Api::namespaced(r.client.clone(), &ns);
                    match pods.get_opt(&name).await {
                        Ok(Some(p)) => r.decisions(&p, 8081, self.only.as_deref()).await,
                        Ok(None) => Err(format!(
                            "the agent pod {ns}/{name} holding node {node}'s Lease is not found"
                        )),
                        Err(e) => Err(api_error(&format!("get pod {ns}/{name}"), e).to_string()),
                    }
                }
            }
        };
        self.agent.insert(node.to_string(), v.clone());
        v
    }

    async fn controller_verdicts(&mut self, r: &mut Reader) -> Result<Verdicts, String> {
        if let Some(v) = &self.controller {
            return v.clone();
        }
        let pods: Api<Pod> = Api::all(r.client.clone());
        let v = match pods
            .list(&ListParams::default().labels(&r.controller_selector))
            .await
        {
            Err(e) => Err(api_error("list the controller's pods", e).to_string()),
            Ok(l) => {
                let running: Vec<&Pod> = l
                    .items
                    .iter()
                    .filter(|p| {
                        p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
                    })
                    .take(5)
                    .collect();
                let mut first: Option<Result<Verdicts, String>> = None;
                let mut acting = None;
                for p in running {
                    let v = r.decisions(p, 8080, self.only.as_deref()).await;
                    if v.as_ref().is_ok_and(|v| v.acting) {
                        acting = Some(v);
                        break;
                    }
                    if first.as_ref().is_none_or(|f| f.is_err()) {
                        first = Some(v);
                    }
                }
                acting.or(first).unwrap_or_else(|| {
                    Err(format!(
                        "no Running burst-scaler controller pod found (label selector {})",
                        r.controller_selector
                    ))
                })
            }
        };
        self.controller = Some(v.clone());
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(env: Option<&str>, args: &[&str]) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "a", "namespace": "n"},
            "spec": {"containers": [{
                "name": "c",
                "args": args,
                "env": env.map(|v| vec![serde_json::json!({"name": "BURST_SCALER_LISTEN", "value": v})]).unwrap_or_default(),
            }]}
        }))
        .expect("pod")
    }

    #[test]
    fn the_listen_port_comes_from_the_flag_or_the_environment() {
        assert_eq!(
            listen_port(&pod(Some("0.0.0.0:8081"), &["agent"])),
            Some(8081)
        );
        assert_eq!(
            listen_port(&pod(
                Some("0.0.0.0:8081"),
                &["agent", "--listen", "[::]:9000"]
            )),
            Some(9000)
        );
        assert_eq!(
            listen_port(&pod(None, &["--listen=127.0.0.1:7000"])),
            Some(7000)
        );
        assert_eq!(listen_port(&pod(Some("nonsense"), &[])), None);
        assert_eq!(listen_port(&pod(None, &[])), None);
    }
}
