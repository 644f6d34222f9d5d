//! The agent's I/O shell: watches, the Lease, the tick loop (read cgroups → [`Planner::tick`]
//! → journal → cgroup writes), the reporter (BurstScalerNode status and Events, off the tick's
//! path so that a slow API server never delays a cgroup write), and shutdown (restore
//! everything, release the Lease).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};

use crate::explain::verdict::{DecisionBoard, Verdicts};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use tokio::sync::{mpsc, watch};

use super::cgroup::{self, Cgroup, Driver, Layout, Setting, Written};
use super::journal::{ContainerEntry, Journal, PodEntry};
use super::lease::{self, Hold, LeaseConfig};
use super::metrics::AgentMetrics;
use super::plan::{NodeFacts, Planner, PodWrite, Reading, Readings, TickInput, TickPlan};
use super::report::{self, EventLimiter};
use super::select::{self, NodePod};
use crate::api::{
    AgentInfo, BurstScaler, BurstScalerNode, BurstScalerNodeSpec, BurstScalerNodeStatus,
    agent_lease_name,
};
use crate::cli::{AgentArgs, CgroupDriverArg};
use crate::engine::EngineConfig;
use crate::quantity::{MilliCpu, parse_cpu};

/// Field manager of every write the agent makes.
pub const FIELD_MANAGER: &str = "burst-scaler-agent";

/// Something for the reporter task.
enum Report {
    Event {
        scaler: ObjectReference,
        pod: ObjectReference,
        type_: EventType,
        reason: String,
        action: String,
        note: String,
    },
}

/// Runs the agent until SIGTERM/SIGINT; then restores every pod it changed and releases its
/// Lease.
pub async fn run(args: AgentArgs) -> anyhow::Result<()> {
    let node = args.node_name.trim().to_string();
    anyhow::ensure!(
        !node.is_empty(),
        "--node-name (BURST_SCALER_NODE_NAME) must name this node (the chart sets it from spec.nodeName)"
    );
    let reserve =
        parse_cpu(&args.node_reserve).map_err(|e| anyhow::anyhow!("--node-reserve: {e}"))?;
    let driver = match args.cgroup_driver {
        CgroupDriverArg::Cgroupfs => Driver::Cgroupfs,
        CgroupDriverArg::Systemd => Driver::Systemd,
        CgroupDriverArg::Auto => Layout::detect_driver(&args.cgroup_root).unwrap_or_else(|| {
            tracing::warn!(root = %args.cgroup_root.display(), "no kubepods cgroup found: assuming the cgroupfs driver");
            Driver::Cgroupfs
        }),
    };
    let layout = Layout::detect(&args.cgroup_root, driver)?;
    let cgroups_text = format!(
        "{:?} {:?}{}",
        layout.hierarchy(),
        layout.driver(),
        if layout.has_pressure() {
            " (CPU pressure from PSI)"
        } else if args.proc_root.is_some() {
            " (CPU pressure from /proc schedstat)"
        } else {
            " (no CPU pressure signal)"
        }
    );
    let journal_path = args.state_dir.join(format!("{node}.json"));
    let journal = load_journal(&journal_path, &node);
    tracing::info!(
        node = %node,
        cgroups = %cgroups_text,
        interval = ?args.interval,
        journal = %journal_path.display(),
        leftovers = journal.pods.len(),
        dry_run = args.dry_run,
        version = env!("CARGO_PKG_VERSION"),
        "burst-scaler agent starting"
    );

    let metrics = AgentMetrics::new()?;
    let ready = Arc::new(AtomicBool::new(false));
    let decisions = DecisionBoard::default();
    let (stop_tx, stop_rx) = watch::channel(false);
    let http = {
        let mut rx = stop_rx.clone();
        tokio::spawn(super::metrics::serve(
            args.listen,
            metrics.registry.clone(),
            ready.clone(),
            decisions.clone(),
            async move {
                let _ = rx.changed().await;
            },
        ))
    };

    let client = Client::try_default().await.map_err(|e| {
        anyhow::anyhow!(
            "cannot configure the Kubernetes client (in-cluster config or KUBECONFIG): {e}"
        )
    })?;
    let identity = std::env::var("POD_NAME")
        .unwrap_or_else(|_| format!("burst-scaler-agent-{node}-{}", std::process::id()));
    let lease_namespace = args
        .lease_namespace
        .clone()
        .or_else(|| std::env::var("POD_NAMESPACE").ok())
        .unwrap_or_else(|| "default".into());
    let lease_cfg = LeaseConfig {
        name: agent_lease_name(&node),
        identity: identity.clone(),
        duration: args.lease_duration,
        margin: Duration::from_secs(2).min(args.lease_duration / 4),
    };

    // Watches: only this node's pods and node object; every BurstScaler.
    let failing = Arc::new(Failing::default());
    let (pods, w) = reflector::store::<Pod>();
    let pod_stream = drive(
        reflector::reflector(
            w,
            watcher(
                Api::<Pod>::all(client.clone()),
                watcher::Config::default().fields(&format!("spec.nodeName={node}")),
            )
            .default_backoff(),
        ),
        "pods",
        failing.clone(),
        metrics.clone(),
    );
    let (scalers, w) = reflector::store::<BurstScaler>();
    let bsc_stream = drive(
        reflector::reflector(
            w,
            watcher(
                Api::<BurstScaler>::all(client.clone()),
                watcher::Config::default(),
            )
            .default_backoff(),
        ),
        "burstscalers",
        failing.clone(),
        metrics.clone(),
    );
    let (nodes, w) = reflector::store::<Node>();
    let node_stream = drive(
        reflector::reflector(
            w,
            watcher(
                Api::<Node>::all(client.clone()),
                watcher::Config::default().fields(&format!("metadata.name={node}")),
            )
            .default_backoff(),
        ),
        "nodes",
        failing.clone(),
        metrics.clone(),
    );
    let watches = tokio::spawn(async move {
        tokio::join!(pod_stream, bsc_stream, node_stream);
    });

    // The Lease, renewed in its own task; the tick reads the hold.
    let hold = Arc::new(Mutex::new(Hold::default()));
    let leases: Api<Lease> = Api::namespaced(client.clone(), &lease_namespace);
    let lease_task = {
        let hold = hold.clone();
        let leases = leases.clone();
        let cfg = lease_cfg.clone();
        tokio::spawn(async move {
            let every = (cfg.duration / 3).max(Duration::from_millis(500));
            loop {
                let mut h = hold.lock().map(|h| *h).unwrap_or_default();
                match lease::renew(&leases, &cfg, &mut h).await {
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, lease = %cfg.name, "cannot renew the node Lease")
                    }
                }
                if let Ok(mut g) = hold.lock() {
                    *g = h;
                }
                tokio::time::sleep(every).await;
            }
        })
    };

    // The reporter: status and Events, off the tick's path.
    let (status_tx, status_rx) = watch::channel::<Option<BurstScalerNodeStatus>>(None);
    let (event_tx, event_rx) = mpsc::channel::<Report>(256);
    let reporter = tokio::spawn(reporter(
        client.clone(),
        node.clone(),
        nodes.clone(),
        identity.clone(),
        status_rx,
        event_rx,
        args.status_interval,
        metrics.clone(),
    ));

    let info = AgentInfo {
        pod: identity.clone(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        cgroups: cgroups_text,
        interval_seconds: u32::try_from(args.interval.as_secs().max(1)).unwrap_or(u32::MAX),
    };
    let mut agent = Agent {
        args: &args,
        layout,
        journal,
        journal_path,
        planner: Planner::new(EngineConfig {
            sample_interval: args.interval,
            ..EngineConfig::default()
        }),
        node: node.clone(),
        reserve,
        pods: pods.clone(),
        scalers: scalers.clone(),
        nodes: nodes.clone(),
        metrics: metrics.clone(),
        events: EventLimiter::new(args.event_interval),
        event_tx,
        status_tx,
        info,
        started: Instant::now(),
        governed_before: false,
        last_status: None,
        pinned: BTreeSet::new(),
        pinned_read: None,
        decisions,
    };

    let mut shutdown = Box::pin(crate::controller::shutdown_signal());
    let mut tick = tokio::time::interval(args.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut synced = false;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            s = &mut shutdown => { tracing::info!(signal = s?, "shutting down: restoring every pod this agent changed"); break; }
        }
        if !synced {
            synced = pods.wait_until_ready().now_or_never_ready()
                && scalers.wait_until_ready().now_or_never_ready()
                && nodes.wait_until_ready().now_or_never_ready();
        }
        ready.store(synced && !failing.any(), Ordering::Relaxed);
        let holding = hold
            .lock()
            .map(|h| h.valid(Instant::now()))
            .unwrap_or(false);
        agent.tick(holding && synced);
    }

    // Shutdown: restore everything (a last tick that only restores), then release the Lease.
    lease_task.abort();
    if let Ok(mut h) = hold.lock() {
        h.clear();
    }
    agent.governed_before = true;
    agent.tick(false);
    if !agent.journal.is_empty() {
        tracing::error!(
            left = agent.journal.pods.len(),
            journal = %agent.journal_path.display(),
            "some pods could not be restored; the next agent start restores them from the journal"
        );
    }
    let _ = tokio::time::timeout(Duration::from_secs(3), lease::release(&leases, &lease_cfg)).await;
    // Give the reporter a moment to publish the final status.
    drop(agent);
    let _ = tokio::time::timeout(Duration::from_secs(3), reporter).await;
    let _ = stop_tx.send(true);
    watches.abort();
    let _ = tokio::time::timeout(Duration::from_secs(3), http).await;
    Ok(())
}

/// Whether the store has synced, without waiting.
trait NowOrNever {
    fn now_or_never_ready(self) -> bool;
}

impl<F: std::future::Future> NowOrNever for F {
    fn now_or_never_ready(self) -> bool {
        futures::FutureExt::now_or_never(self).is_some()
    }
}

/// Which watches are failing right now (readiness).
#[derive(Default)]
struct Failing(Mutex<BTreeSet<&'static str>>);

impl Failing {
    fn set(&self, what: &'static str, failing: bool) {
        if let Ok(mut s) = self.0.lock() {
            if failing {
                s.insert(what);
            } else {
                s.remove(what);
            }
        }
    }
    fn any(&self) -> bool {
        self.0.lock().map(|s| !s.is_empty()).unwrap_or(true)
    }
}

fn drive<S, T>(
    s: S,
    what: &'static str,
    failing: Arc<Failing>,
    metrics: AgentMetrics,
) -> impl std::future::Future<Output = ()> + Send
where
    S: futures::Stream<Item = Result<T, watcher::Error>> + Send + 'static,
{
    s.for_each(move |ev| {
        match ev {
            Ok(_) => failing.set(what, false),
            Err(e) => {
                failing.set(what, true);
                metrics.watch_errors.with_label_values(&[what]).inc();
                tracing::warn!(resource = what, error = %e, "watch error (retrying with backoff)");
            }
        }
        futures::future::ready(())
    })
}

fn load_journal(path: &Path, node: &str) -> Journal {
    match Journal::load(path, node) {
        Ok(j) => j,
        Err(e) => {
            let aside = path.with_extension(format!("corrupt-{}", Timestamp::now().as_second()));
            tracing::error!(error = %e, moved_to = %aside.display(), "cannot read the journal: starting with an empty one (changes it recorded cannot be restored automatically)");
            let _ = std::fs::rename(path, &aside);
            Journal::new(node)
        }
    }
}

struct Agent<'a> {
    args: &'a AgentArgs,
    layout: Layout,
    journal: Journal,
    journal_path: PathBuf,
    planner: Planner,
    node: String,
    reserve: MilliCpu,
    pods: Store<Pod>,
    scalers: Store<BurstScaler>,
    nodes: Store<Node>,
    metrics: AgentMetrics,
    events: EventLimiter,
    event_tx: mpsc::Sender<Report>,
    status_tx: watch::Sender<Option<BurstScalerNodeStatus>>,
    info: AgentInfo,
    started: Instant,
    /// Whether this process ever governed (then losing the Lease restores at once).
    governed_before: bool,
    last_status: Option<BurstScalerNodeStatus>,
    pinned: BTreeSet<(String, String)>,
    pinned_read: Option<Instant>,
    /// The newest tick's verdicts, served at `/decisions`.
    decisions: DecisionBoard,
}

impl Agent<'_> {
    fn tick(&mut self, holding: bool) {
        let t = Instant::now();
        let now = Timestamp::now();
        let governing = holding && !self.args.dry_run;
        self.governed_before |= holding;
        // Not holding: restore what we changed once we held it before, or once any previous
        // holder's Lease has run out (a crashed agent's leftovers, the API server unreachable).
        let restore_all = !holding
            && (self.governed_before || self.started.elapsed() >= self.args.lease_duration)
            || (holding && self.args.dry_run);
        self.metrics.governing.set(i64::from(governing));

        let all_pods = self.pods.state();
        let all_scalers = self.scalers.state();
        let node_pods = select::node_pods(&all_pods, &all_scalers, &self.node);
        let allocatable = self
            .nodes
            .get(&reflector::ObjectRef::new(&self.node))
            .and_then(|n| n.status.clone())
            .and_then(|s| s.allocatable)
            .and_then(|a| a.get("cpu").and_then(|q| parse_cpu(&q.0).ok()));
        // Without the node's allocatable CPU nothing can be decided safely: only restores.
        let governing = governing && allocatable.is_some();
        self.refresh_pinned();

        let to_read = Planner::cgroups_to_read(&self.layout, &node_pods, &self.journal);
        let readings = read_all(&self.layout, &to_read);
        let facts = NodeFacts {
            name: self.node.clone(),
            allocatable: allocatable.unwrap_or(MilliCpu::ZERO),
            reserve: self.reserve,
        };
        let plan = self.planner.tick(&TickInput {
            node: &facts,
            pods: &node_pods,
            layout: &self.layout,
            readings: &readings,
            pinned: &self.pinned,
            journal: &self.journal,
            governing: governing && !restore_all,
            restore_all: restore_all || !governing,
            now,
            mono: t.duration_since(self.started),
        });
        self.decisions.set(Verdicts::new(
            "agent",
            &self.info.pod,
            now,
            governing && !restore_all,
            std::slice::from_ref(&plan.decision),
        ));
        let writes_allowed = governing || restore_all;
        self.carry_out(&plan, &node_pods, writes_allowed, now);
        self.publish(plan, &node_pods, holding, now);
        self.metrics.loop_seconds.observe(t.elapsed().as_secs_f64());
    }

    /// Re-reads the CPU manager checkpoint every 10 s.
    fn refresh_pinned(&mut self) {
        if self
            .pinned_read
            .is_some_and(|t| t.elapsed() < Duration::from_secs(10))
        {
            return;
        }
        self.pinned_read = Some(Instant::now());
        match cgroup::pinned_containers(&self.args.cpu_manager_state) {
            Ok(p) => self.pinned = p,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the CPU manager state: treating every container of a Guaranteed pod with integer CPUs as pinned is not possible; keeping the last known set")
            }
        }
    }

    fn carry_out(&mut self, plan: &TickPlan, pods: &[NodePod], allowed: bool, now: Timestamp) {
        let mut journal_dirty = false;
        for (uid, container) in &plan.gone {
            match container {
                None => journal_dirty |= self.journal.pods.remove(uid).is_some(),
                Some(id) => {
                    if let Some(p) = self.journal.pods.get_mut(uid) {
                        journal_dirty |= p.containers.remove(id).is_some();
                    }
                }
            }
        }
        if !allowed {
            if journal_dirty {
                self.save_journal();
            }
            return;
        }
        for w in &plan.writes {
            let kind = if w.action == "Restore" {
                "restore"
            } else {
                "change"
            };
            if kind == "change" && self.record(w) {
                // Write-ahead: the originals are on disk before the first write.
                if !self.save_journal() {
                    self.metrics
                        .writes
                        .with_label_values(&[kind, "error"])
                        .inc();
                    continue;
                }
            }
            let pod_cg = Cgroup::at(&self.layout, &w.pod_cgroup);
            let containers: Vec<(Cgroup, Setting)> = w
                .containers
                .iter()
                .map(|c| (Cgroup::at(&self.layout, &c.cgroup), c.setting))
                .collect();
            let refs: Vec<(&Cgroup, Setting)> = containers.iter().map(|(c, s)| (c, *s)).collect();
            let result = cgroup::apply(&pod_cg, &w.pod_setting, &refs);
            let ok = match &result {
                Ok(applied) => {
                    tracing::info!(pod = %w.pod, action = %w.action, files = applied.written.len(), "{}", w.reason);
                    true
                }
                Err(e) => {
                    self.metrics.write_errors.inc();
                    let rolled_back = rollback(e.written());
                    tracing::warn!(pod = %w.pod, action = %w.action, error = %e, rolled_back, "cgroup write failed");
                    if e.is_gone() {
                        // The pod or container went away while we wrote: nothing to keep.
                        self.journal.pods.remove(&w.uid);
                        journal_dirty = true;
                    }
                    false
                }
            };
            self.metrics
                .writes
                .with_label_values(&[kind, if ok { "ok" } else { "error" }])
                .inc();
            if ok {
                if w.restores_pod {
                    journal_dirty |= self.journal.pods.remove(&w.uid).is_some();
                } else if let Some(entry) = self.journal.pods.get_mut(&w.uid) {
                    for c in w.containers.iter().filter(|c| c.restores) {
                        journal_dirty |= entry.containers.remove(&c.id).is_some();
                    }
                }
            }
            self.planner.written(w, ok, now);
            let (type_, reason, note) = match &result {
                Ok(_) => (EventType::Normal, w.action.clone(), w.reason.clone()),
                Err(e) => (
                    EventType::Warning,
                    "CgroupWriteFailed".to_string(),
                    format!("{}: {e}", w.reason),
                ),
            };
            let target = EventTarget {
                uid: &w.uid,
                pod: &w.pod,
                scaler: w.scaler.as_deref(),
                action: &w.action,
            };
            self.event(pods, target, type_, reason, note);
        }
        if journal_dirty {
            self.save_journal();
        }
    }

    /// Adds the write's originals to the journal where missing; true when it changed.
    fn record(&mut self, w: &PodWrite) -> bool {
        let entry = self.journal.pods.entry(w.uid.clone());
        let mut changed = matches!(entry, std::collections::btree_map::Entry::Vacant(_));
        let e = entry.or_insert_with(|| PodEntry {
            pod: w.pod.clone(),
            cgroup: w.pod_cgroup.clone(),
            original: w.pod_original,
            containers: Default::default(),
        });
        for c in &w.containers {
            if !e.containers.contains_key(&c.id) {
                e.containers.insert(
                    c.id.clone(),
                    ContainerEntry {
                        name: c.name.clone(),
                        cgroup: c.cgroup.clone(),
                        original: c.original,
                    },
                );
                changed = true;
            }
        }
        changed
    }

    fn save_journal(&mut self) -> bool {
        match self.journal.save(&self.journal_path) {
            Ok(()) => true,
            Err(e) => {
                tracing::error!(error = %e, "cannot save the journal: no cgroup is changed until it can be saved");
                false
            }
        }
    }

    fn event(
        &mut self,
        pods: &[NodePod],
        w: EventTarget<'_>,
        type_: EventType,
        reason: String,
        note: String,
    ) {
        let Some(scaler_name) = w.scaler else { return };
        let Some(p) = pods.iter().find(|p| p.uid == w.uid) else {
            return;
        };
        let Some(scaler) = self
            .scalers
            .get(&reflector::ObjectRef::new(scaler_name).within(&p.namespace))
        else {
            return;
        };
        if !self.events.allow(w.pod, &reason, Instant::now()) {
            self.metrics.events_dropped.inc();
            return;
        }
        let pod_ref = ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Pod".into()),
            namespace: Some(p.namespace.clone()),
            name: Some(p.name.clone()),
            uid: Some(p.uid.clone()),
            ..ObjectReference::default()
        };
        let report = Report::Event {
            scaler: scaler.object_ref(&()),
            pod: pod_ref,
            type_,
            action: w.action.to_string(),
            reason,
            note,
        };
        if self.event_tx.try_send(report).is_err() {
            self.metrics.events_dropped.inc();
        }
    }

    fn publish(&mut self, plan: TickPlan, pods: &[NodePod], holding: bool, now: Timestamp) {
        for d in &plan.new_decisions {
            self.metrics
                .decisions
                .with_label_values(&[d.action.as_str()])
                .inc();
            if !d.applies {
                // Recommend (or not governing): say what would have been done.
                let target = EventTarget {
                    uid: &d.uid,
                    pod: &d.pod,
                    scaler: Some(&d.scaler),
                    action: d.action.as_str(),
                };
                self.event(
                    pods,
                    target,
                    EventType::Normal,
                    format!("Recommend{}", d.action),
                    d.reason.clone(),
                );
            }
        }
        self.metrics.blind_containers.set(plan.blind.len() as i64);
        let status = report::node_status(
            self.info.clone(),
            plan.report,
            &plan.blind,
            holding,
            self.last_status.as_ref(),
            now,
        );
        self.metrics
            .governed_pods
            .set(i64::from(status.governed_pods));
        self.metrics
            .throttled_pods
            .set(i64::from(status.throttled_pods));
        self.metrics.raised_pods.set(i64::from(status.raised_pods));
        if self.last_status.as_ref() != Some(&status) {
            self.last_status = Some(status.clone());
            let _ = self.status_tx.send(Some(status));
        }
        self.events.retain(|k| pods.iter().any(|p| p.key == k));
    }
}

/// Who an Event is about.
#[derive(Clone, Copy)]
struct EventTarget<'a> {
    uid: &'a str,
    pod: &'a str,
    scaler: Option<&'a str>,
    action: &'a str,
}

/// Reads every cgroup in `rels`; a cgroup that is gone is left out, other errors are kept.
fn read_all(layout: &Layout, rels: &BTreeSet<PathBuf>) -> Readings {
    let mut out = Readings::new();
    for rel in rels {
        let cg = Cgroup::at(layout, rel);
        let r = cg.limits().and_then(|limits| {
            Ok(Reading {
                limits,
                counters: cg.counters()?,
            })
        });
        match r {
            Ok(r) => {
                out.insert(rel.clone(), Ok(r));
            }
            Err(e) if e.is_gone() => {}
            Err(e) => {
                out.insert(rel.clone(), Err(e.to_string()));
            }
        }
    }
    out
}

/// Puts back what a failed [`cgroup::apply`] had written, newest first (the reverse order is
/// valid for the kernel whenever the forward order was). Returns whether every file was put
/// back.
fn rollback(written: &[Written]) -> bool {
    let mut ok = true;
    for w in written.iter().rev() {
        if let Err(e) = std::fs::write(&w.file, &w.before) {
            tracing::error!(file = %w.file.display(), value = %w.before, error = %e, "rollback failed");
            ok = false;
        }
    }
    ok
}

#[allow(clippy::too_many_arguments)]
async fn reporter(
    client: Client,
    node: String,
    nodes: Store<Node>,
    identity: String,
    mut status_rx: watch::Receiver<Option<BurstScalerNodeStatus>>,
    mut event_rx: mpsc::Receiver<Report>,
    min_interval: Duration,
    metrics: AgentMetrics,
) {
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "burst-scaler-agent".into(),
            instance: Some(identity),
        },
    );
    let api: Api<BurstScalerNode> = Api::all(client);
    let mut created = false;
    let mut last_write: Option<Instant> = None;
    let mut pending = false;
    let mut status_open = true;
    loop {
        let wait = match (pending, last_write) {
            (true, Some(t)) => min_interval.saturating_sub(t.elapsed()),
            (true, None) => Duration::ZERO,
            (false, _) => Duration::from_secs(3600),
        };
        tokio::select! {
            changed = status_rx.changed(), if status_open => {
                if changed.is_err() { status_open = false; }
                pending = true;
                continue;
            }
            ev = event_rx.recv() => {
                let Some(Report::Event { scaler, pod, type_, reason, action, note }) = ev else {
                    // The agent is gone: publish the last status once more and stop.
                    if pending {
                        let status = status_rx.borrow().clone();
                        if let Some(s) = status {
                            let _ = write_status(&api, &node, &nodes, &mut created, s, &metrics).await;
                        }
                    }
                    return;
                };
                let ev = Event {
                    type_,
                    reason,
                    note: Some(note.chars().take(1000).collect()),
                    action,
                    secondary: Some(pod),
                };
                if let Err(e) = tokio::time::timeout(Duration::from_secs(5), recorder.publish(&ev, &scaler)).await.unwrap_or_else(|_| Err(kube::Error::Service("timed out".into()))) {
                    tracing::warn!(error = %e, "cannot publish an Event");
                }
            }
            _ = tokio::time::sleep(wait), if pending => {
                let status = status_rx.borrow().clone();
                if let Some(s) = status {
                    if write_status(&api, &node, &nodes, &mut created, s, &metrics).await {
                        pending = false;
                        last_write = Some(Instant::now());
                    } else {
                        last_write = Some(Instant::now());
                    }
                } else {
                    pending = false;
                }
            }
        }
    }
}

/// Server-side applies the node's BurstScalerNode (created once, owned by the Node so that it
/// is garbage-collected with it) and its status.
async fn write_status(
    api: &Api<BurstScalerNode>,
    node: &str,
    nodes: &Store<Node>,
    created: &mut bool,
    status: BurstScalerNodeStatus,
    metrics: &AgentMetrics,
) -> bool {
    let pp = PatchParams::apply(FIELD_MANAGER).force();
    let timeout = Duration::from_secs(5);
    if !*created {
        let owner = nodes.get(&reflector::ObjectRef::new(node)).and_then(|n| {
            Some(OwnerReference {
                api_version: "v1".into(),
                kind: "Node".into(),
                name: n.name_any(),
                uid: n.uid()?,
                ..OwnerReference::default()
            })
        });
        let mut obj = BurstScalerNode::new(
            node,
            BurstScalerNodeSpec {
                node_name: node.to_string(),
            },
        );
        obj.metadata.owner_references = owner.map(|o| vec![o]);
        let mut value = serde_json::to_value(&obj).unwrap_or_default();
        if let Some(m) = value.as_object_mut() {
            m.remove("status");
        }
        match tokio::time::timeout(timeout, api.patch(node, &pp, &Patch::Apply(value))).await {
            Ok(Ok(_)) => *created = true,
            Ok(Err(e)) => {
                metrics.status_writes.with_label_values(&["error"]).inc();
                tracing::warn!(error = %e, "cannot create the node's BurstScalerNode");
                return false;
            }
            Err(_) => {
                metrics.status_writes.with_label_values(&["error"]).inc();
                return false;
            }
        }
    }
    let body = serde_json::json!({
        "apiVersion": "burstscaler.dev/v1alpha1",
        "kind": "BurstScalerNode",
        "metadata": {"name": node},
        "status": status,
    });
    match tokio::time::timeout(timeout, api.patch_status(node, &pp, &Patch::Apply(body))).await {
        Ok(Ok(_)) => {
            metrics.status_writes.with_label_values(&["ok"]).inc();
            true
        }
        Ok(Err(e)) => {
            if matches!(&e, kube::Error::Api(s) if s.code == 404) {
                *created = false;
            }
            metrics.status_writes.with_label_values(&["error"]).inc();
            tracing::warn!(error = %e, "cannot write the node's BurstScalerNode status");
            false
        }
        Err(_) => {
            metrics.status_writes.with_label_values(&["error"]).inc();
            false
        }
    }
}
