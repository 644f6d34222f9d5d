//! The operator (`burst-scaler controller`): watches → build (pure) → engine (pure) → apply →
//! status. A pass runs every `--metrics-interval`, and soon after any BurstScaler changes.
//!
//! - [`build`]: BurstScalers, pods, nodes, HPAs and usage → per-node engine inputs and each
//!   BurstScaler's standing (pure).
//! - [`crate::engine`]: the decisions (pure).
//! - [`actuate`]: pod writes (in-place resize, the original-resources annotation), behind the
//!   [`actuate::Actuator`] trait.
//! - [`status`]: each BurstScaler's status (pure) — written with a merge patch
//!   ([`status::status_patch`]: none when nothing changed; empty fields sent as `null`).
//! - [`metrics`]: Prometheus metrics and `/metrics`, `/livez`, `/readyz`.

pub mod actuate;
pub mod agents;
pub mod build;
pub mod metrics;
pub mod rbac;
pub mod status;
pub mod usage_book;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::autoscaling::v1::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{Node, ObjectReference, Pod};
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams};
use kube::core::Selector;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use tokio::sync::{Notify, watch};

use self::actuate::{Actuator, InPlaceResize};
use self::build::{HpaTarget, Key, Plan, key_of};
use self::metrics::Metrics;
use self::status::Capabilities;
use self::usage_book::UsageBook;
use crate::api::{BurstScaler, FINALIZER, Mode};
use crate::cli::ControllerArgs;
use crate::engine::{self, EngineConfig, NodeDecision};
use crate::explain::verdict::{DecisionBoard, Verdicts};
use crate::quantity::{MilliCpu, parse_cpu};
use crate::usage::PodMetrics;

/// Everything a pass needs, shared by the loop and the HTTP server.
pub struct Context {
    pub client: Client,
    pub args: ControllerArgs,
    pub reserve: MilliCpu,
    pub metrics: Metrics,
    pub recorder: Recorder,
    pub caps: Capabilities,
    pub actuator: InPlaceResize,
    scalers: Store<BurstScaler>,
    pods: Store<Pod>,
    nodes: Store<Node>,
    hpas: Store<HorizontalPodAutoscaler>,
    /// Whether this replica holds the leader Lease, as the lease manager last saw it (always
    /// `true` without leader election).
    leader: watch::Receiver<bool>,
    /// With leader election: the Lease object and this replica's identity, read back at the
    /// start of every pass ([`Context::confirm_lease`]).
    election: Option<Election>,
    /// Until when (Unix ms) the last read of the Lease showed this replica holding it;
    /// `i64::MIN` when it did not.
    lease_until_ms: std::sync::atomic::AtomicI64,
    /// Passes in a row in which the lease manager said this replica leads but the Lease did
    /// not: at [`LEASE_MISMATCH_EXIT`] the process exits.
    lease_mismatches: std::sync::atomic::AtomicU32,
    /// The newest pass's verdicts, served at `/decisions`.
    decisions: DecisionBoard,
}

/// The leader Lease as the controller reads it back.
pub struct Election {
    leases: Api<k8s_openapi::api::coordination::v1::Lease>,
    identity: String,
}

/// The leader Lease's name (in `--lease-namespace`).
pub const LEASE_NAME: &str = "burst-scaler";
/// A write must leave this much of the Lease's time unused: a standby takes over at the
/// expiry by its own clock, which may run ahead of ours.
pub const LEASE_MARGIN: Duration = Duration::from_secs(5);
/// Passes in a row with the lease manager and the Lease disagreeing before the process exits.
pub const LEASE_MISMATCH_EXIT: u32 = 3;

impl Context {
    /// Whether this replica may write now: without leader election always; with it only while
    /// the lease manager says it leads *and* the Lease, as last read back, names this replica
    /// and has more than [`LEASE_MARGIN`] left *now* (the clock is read at every call). Every
    /// write (pod, annotation, finalizer, status, Event) checks it just before it is sent.
    pub fn may_write(&self) -> bool {
        if self.election.is_none() {
            return true;
        }
        let until = self.lease_until_ms.load(Ordering::Relaxed);
        let margin = i64::try_from(LEASE_MARGIN.as_millis()).unwrap_or(i64::MAX);
        *self.leader.borrow() && Timestamp::now().as_millisecond() < until.saturating_sub(margin)
    }

    /// Reads the Lease back (fail closed: an error or an expired or foreign holder counts as
    /// not leading), so that a renew that silently stopped working stops writes too.
    async fn confirm_lease(&self) {
        let Some(e) = &self.election else { return };
        let until = match e.leases.get_opt(LEASE_NAME).await {
            Ok(Some(l)) => lease_expiry_for(&l, &e.identity),
            Ok(None) => None,
            Err(err) => {
                tracing::warn!(error = %err, "cannot read the leader Lease back: not writing this pass");
                None
            }
        };
        let until = until
            .map(|t| t.as_millisecond())
            .filter(|u| *u > Timestamp::now().as_millisecond())
            .unwrap_or(i64::MIN);
        self.lease_until_ms.store(until, Ordering::Relaxed);
        if until == i64::MIN && *self.leader.borrow() {
            let n = self.lease_mismatches.fetch_add(1, Ordering::Relaxed) + 1;
            tracing::warn!(identity = %e.identity, passes = n, "the lease manager says this replica leads, but the Lease does not: not writing");
        } else {
            self.lease_mismatches.store(0, Ordering::Relaxed);
        }
    }
}

/// Until when `lease` is held by `identity` (renew time + duration), if it names it.
pub fn lease_expiry_for(
    lease: &k8s_openapi::api::coordination::v1::Lease,
    identity: &str,
) -> Option<Timestamp> {
    let spec = lease.spec.as_ref()?;
    if spec.holder_identity.as_deref() != Some(identity) {
        return None;
    }
    let renewed = spec.renew_time.as_ref().or(spec.acquire_time.as_ref())?;
    let secs = i64::from(spec.lease_duration_seconds.unwrap_or(0).max(0));
    renewed
        .0
        .checked_add(jiff::SignedDuration::from_secs(secs))
        .ok()
}

/// What of a BurstScaler wakes a pass early: its generation (spec), finalizers and whether it
/// is being deleted. Status and metadata writes (the controller's own) do not.
fn wake_on(s: &BurstScaler) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    s.metadata.generation.hash(&mut h);
    s.finalizers().hash(&mut h);
    s.metadata.deletion_timestamp.is_some().hash(&mut h);
    h.finish()
}

/// Decides which BurstScaler watch events wake a pass (pure): a new or changed
/// [`wake_on`] property, a deletion, and — after a re-list — any BurstScaler that vanished
/// while the watch was down. One hash per BurstScaler, dropped with it.
#[derive(Debug, Default)]
struct WakeFilter {
    seen: std::collections::HashMap<String, u64>,
    /// Being rebuilt by a re-list (between `Init` and `InitDone`).
    relist: Option<std::collections::HashMap<String, u64>>,
}

impl WakeFilter {
    fn wakes(&mut self, ev: &watcher::Event<BurstScaler>) -> bool {
        let id = |s: &BurstScaler| s.uid().unwrap_or_else(|| key_of(s));
        match ev {
            watcher::Event::Apply(s) => {
                let h = wake_on(s);
                self.seen.insert(id(s), h) != Some(h)
            }
            watcher::Event::Delete(s) => {
                self.seen.remove(&id(s));
                true
            }
            watcher::Event::Init => {
                self.relist = Some(Default::default());
                false
            }
            watcher::Event::InitApply(s) => {
                let h = wake_on(s);
                let changed = self.seen.get(&id(s)) != Some(&h);
                self.relist
                    .get_or_insert_with(Default::default)
                    .insert(id(s), h);
                changed
            }
            watcher::Event::InitDone => {
                let new = self.relist.take().unwrap_or_default();
                let vanished = self.seen.keys().any(|k| !new.contains_key(k));
                self.seen = new;
                vanished
            }
        }
    }
}

/// Runs the controller until SIGTERM or SIGINT.
pub async fn run(args: ControllerArgs) -> anyhow::Result<()> {
    let reserve =
        parse_cpu(&args.node_reserve).map_err(|e| anyhow::anyhow!("--node-reserve: {e}"))?;
    tracing::info!(
        namespaces = ?args.namespaces,
        metrics_interval = ?args.metrics_interval,
        resize_timeout = ?args.resize_timeout,
        node_reserve = %reserve,
        dry_run = args.dry_run,
        leader_election = args.leader_election,
        lease_namespace = ?args.lease_namespace,
        listen = %args.listen,
        version = env!("CARGO_PKG_VERSION"),
        "burst-scaler controller starting"
    );
    let metrics = Metrics::new()?;
    let ready = Arc::new(AtomicBool::new(false));
    let decisions = DecisionBoard::default();
    let (stop_tx, stop_rx) = watch::channel(false);
    let http = {
        let mut rx = stop_rx.clone();
        tokio::spawn(metrics::serve(
            args.listen,
            metrics.clone(),
            ready.clone(),
            decisions.clone(),
            async move {
                let _ = rx.changed().await;
            },
        ))
    };

    let client = tokio::select! {
        c = Client::try_default() => c.map_err(|e| anyhow::anyhow!("cannot reach the Kubernetes API (in-cluster config or KUBECONFIG): {e}"))?,
        s = shutdown_signal() => { tracing::info!(signal = s?, "shutting down"); return Ok(()); }
    };
    let resize = actuate::resize_supported(&client).await.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "cannot list the core API's resources; assuming no pods/resize");
        false
    });
    if !resize {
        tracing::warn!("{}", status::RESIZE_UNSUPPORTED);
    }
    let caps = Capabilities {
        resize,
        dry_run: args.dry_run,
    };

    let (leader, election, mut lease_task) = leader_channel(&client, &args).await?;
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "burst-scaler".into(),
            instance: std::env::var("POD_NAME").ok(),
        },
    );

    let notify = Arc::new(Notify::new());
    let (scalers, w) = reflector::store();
    let n = notify.clone();
    let bsc_stream = reflector::reflector(
        w,
        watcher(
            Api::<BurstScaler>::all(client.clone()),
            watcher::Config::default(),
        )
        .default_backoff(),
    )
    // Only what a pass acts on wakes it: the spec (generation), finalizers, deletion (also
    // of a BurstScaler without finalizer) — not the controller's own status writes (the
    // store still sees every change).
    .for_each({
        let mut wake = WakeFilter::default();
        move |ev| {
            if let Ok(ev) = ev
                && wake.wakes(&ev)
            {
                n.notify_one();
            }
            futures::future::ready(())
        }
    });
    let (pods, w) = reflector::store();
    let pod_stream = drive(reflector::reflector(
        w,
        watcher(Api::<Pod>::all(client.clone()), watcher::Config::default()).default_backoff(),
    ));
    let (nodes, w) = reflector::store();
    let node_stream = drive(reflector::reflector(
        w,
        watcher(Api::<Node>::all(client.clone()), watcher::Config::default()).default_backoff(),
    ));
    let (hpas, w) = reflector::store();
    let hpa_stream = drive(reflector::reflector(
        w,
        watcher(
            Api::<HorizontalPodAutoscaler>::all(client.clone()),
            watcher::Config::default(),
        )
        .default_backoff(),
    ));
    let watches = tokio::spawn(async move {
        tokio::join!(bsc_stream, pod_stream, node_stream, hpa_stream);
    });

    let ctx = Arc::new(Context {
        actuator: InPlaceResize {
            client: client.clone(),
        },
        client,
        args,
        reserve,
        metrics,
        recorder,
        caps,
        scalers,
        pods,
        nodes,
        hpas,
        leader,
        election,
        lease_until_ms: std::sync::atomic::AtomicI64::new(i64::MIN),
        lease_mismatches: std::sync::atomic::AtomicU32::new(0),
        decisions,
    });

    let mut shutdown = Box::pin(shutdown_signal());
    let synced = async {
        ctx.scalers.wait_until_ready().await?;
        ctx.pods.wait_until_ready().await?;
        ctx.nodes.wait_until_ready().await?;
        ctx.hpas.wait_until_ready().await
    };
    tokio::select! {
        r = synced => r.map_err(|e| anyhow::anyhow!("watches ended before they synced: {e}"))?,
        s = &mut shutdown => { tracing::info!(signal = s?, "shutting down"); return finish(stop_tx, http, watches).await; }
    }
    ready.store(true, Ordering::Relaxed);
    tracing::info!(resize_supported = caps.resize, "caches synced");

    let mut state = LoopState::default();
    let mut tick = tokio::time::interval(ctx.args.metrics_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => { state.poll_due = true; }
            _ = notify.notified() => {
                // Let a burst of watch events settle into one pass.
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            s = &mut shutdown => { tracing::info!(signal = s?, "shutting down"); break; }
            r = wait_lease_task(&mut lease_task) => {
                // The renew task is gone: this replica can no longer know whether it leads.
                // Stop (Kubernetes restarts the pod, which campaigns again).
                finish(stop_tx, http, watches).await?;
                return Err(anyhow::anyhow!("leader election stopped: {r}; exiting so that the pod restarts"));
            }
        }
        pass(&ctx, &mut state).await;
        let mismatches = ctx.lease_mismatches.load(Ordering::Relaxed);
        if mismatches >= LEASE_MISMATCH_EXIT {
            finish(stop_tx, http, watches).await?;
            return Err(anyhow::anyhow!(
                "for {mismatches} passes the lease manager said this replica leads but the Lease did not: exiting so that the pod restarts and campaigns again"
            ));
        }
    }
    finish(stop_tx, http, watches).await
}

async fn finish(
    stop: watch::Sender<bool>,
    http: tokio::task::JoinHandle<std::io::Result<()>>,
    watches: tokio::task::JoinHandle<()>,
) -> anyhow::Result<()> {
    let _ = stop.send(true);
    watches.abort();
    let _ = tokio::time::timeout(Duration::from_secs(5), http).await;
    Ok(())
}

fn drive<S: futures::Stream + Send + 'static>(
    s: S,
) -> impl std::future::Future<Output = ()> + Send {
    s.for_each(|_| futures::future::ready(()))
}

type LeaseTask =
    tokio::task::JoinHandle<kube_lease_manager::Result<kube_lease_manager::LeaseManager>>;

/// Resolves when the lease manager's task ends (never without leader election), with why.
async fn wait_lease_task(task: &mut Option<LeaseTask>) -> String {
    match task {
        None => futures::future::pending().await,
        Some(t) => {
            let why = match t.await {
                Ok(Ok(_)) => "the lease manager returned".to_string(),
                Ok(Err(e)) => format!("the lease manager failed: {e}"),
                Err(e) => format!("the lease manager task ended: {e}"),
            };
            *task = None;
            why
        }
    }
}

/// Whether this replica leads: a channel (always `true` without leader election; with it,
/// `true` only while the lease manager holds the Lease), the Lease to read back, and the
/// lease manager's task (the controller exits when it ends).
async fn leader_channel(
    client: &Client,
    args: &ControllerArgs,
) -> anyhow::Result<(watch::Receiver<bool>, Option<Election>, Option<LeaseTask>)> {
    if !args.leader_election {
        let (tx, rx) = watch::channel(true);
        std::mem::forget(tx); // keep the channel open for the life of the process
        return Ok((rx, None, None));
    }
    let namespace = args
        .lease_namespace
        .clone()
        .or_else(|| std::env::var("POD_NAMESPACE").ok())
        .unwrap_or_else(|| "default".into());
    let identity = std::env::var("POD_NAME").unwrap_or_else(|_| {
        format!(
            "burst-scaler-{}-{}",
            std::process::id(),
            Timestamp::now().as_millisecond()
        )
    });
    let manager = kube_lease_manager::LeaseManagerBuilder::new(client.clone(), LEASE_NAME)
        .with_namespace(namespace.clone())
        .with_identity(identity.clone())
        .with_duration(15)
        .with_grace(5)
        .build()
        .await
        .map_err(|e| anyhow::anyhow!("leader election in namespace {namespace}: {e}"))?;
    let (rx, task) = manager.watch().await;
    tracing::info!(%identity, %namespace, "leader election on (Lease burst-scaler)");
    let election = Election {
        leases: Api::namespaced(client.clone(), &namespace),
        identity,
    };
    Ok((rx, Some(election), Some(task)))
}

/// Resolves when the process receives SIGTERM (what the kubelet sends) or SIGINT.
pub async fn shutdown_signal() -> anyhow::Result<&'static str> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    })
}

#[derive(Default)]
struct LoopState {
    usage: UsageBook,
    poll_due: bool,
    /// Pods whose resize is deferred: since when (given up after `--resize-timeout`).
    deferred_since: BTreeMap<Key, Instant>,
    /// Pods whose resize was refused as Infeasible, already reported.
    infeasible: std::collections::BTreeSet<Key>,
    /// The recommendation half-life of each governed pod, from the last pass's plan (the
    /// usage poll runs before this pass's plan is built).
    half_lives: BTreeMap<Key, u32>,
}

fn watched(ctx: &Context, ns: &str) -> bool {
    ctx.args.namespaces.is_empty() || ctx.args.namespaces.iter().any(|n| n == ns)
}

/// One pass: usage → plan → decisions → writes → status.
async fn pass(ctx: &Context, state: &mut LoopState) {
    let started = Instant::now();
    let now = Timestamp::now();
    if state.poll_due {
        state.poll_due = false;
        if let Some(list) = poll_usage(ctx).await {
            record_usage(&mut state.usage, &list, |pod| {
                state.half_lives.get(pod).copied()
            });
        }
    }
    let scalers: Vec<Arc<BurstScaler>> = ctx
        .scalers
        .state()
        .into_iter()
        .filter(|s| watched(ctx, &s.namespace().unwrap_or_default()))
        .collect();
    let pods = ctx.pods.state();
    let nodes = ctx.nodes.state();
    let hpas = hpa_targets(ctx).await;
    let plan = build::build(&scalers, &pods, &nodes, &hpas, &state.usage, ctx.reserve);
    state.half_lives = half_lives(&plan);
    state
        .usage
        .retain_pods(|p| pods.iter().any(|x| key_of(x.as_ref()) == p));

    let config = EngineConfig {
        sample_interval: ctx.args.metrics_interval,
        ..EngineConfig::default()
    };
    let t = Instant::now();
    let decisions: Vec<NodeDecision> = plan
        .nodes
        .iter()
        .map(|n| engine::decide(n, &config, now))
        .collect();
    ctx.metrics
        .decision_pass_seconds
        .observe(t.elapsed().as_secs_f64());
    if let Some(newest) = state.usage.newest() {
        ctx.metrics
            .sample_age_seconds
            .set(now.duration_since(newest).as_secs());
    }

    ctx.confirm_lease().await;
    let may_write = ctx.may_write();
    ctx.metrics.leader.set(i64::from(may_write));
    // Nodes a live node agent governs: not decided here (one decider per node). Unknown (the
    // Leases cannot be read): nothing is resized this pass.
    let agent_nodes = live_agents(ctx, now).await;
    let decided: Vec<NodeDecision> = decisions
        .iter()
        .filter(|nd| !agent_nodes.as_ref().is_some_and(|a| a.contains(&nd.node)))
        .cloned()
        .collect();
    ctx.decisions.set(Verdicts::new(
        "controller",
        &std::env::var("POD_NAME").unwrap_or_else(|_| "burst-scaler".into()),
        now,
        may_write && !ctx.caps.dry_run && ctx.caps.resize && agent_nodes.is_some(),
        &decided,
    ));
    for (key, why) in &plan.bad_pods {
        tracing::warn!(pod = %key, "{why}");
        let note = format!("{key}: {why}");
        warn_owner(
            ctx,
            &plan,
            &scalers,
            &pods,
            key,
            ("BadPodData", "Skip"),
            note,
        )
        .await;
    }

    // Decisions: Events in Recommend and Auto; writes in Auto.
    for nd in &decisions {
        if agent_nodes.as_ref().is_some_and(|a| a.contains(&nd.node)) {
            continue;
        }
        for d in &nd.pods {
            if !d.action.changes() {
                continue;
            }
            if may_write {
                // Counted by the leader only: two replicas do not double the rate.
                ctx.metrics
                    .decisions
                    .with_label_values(&[d.action.as_str()])
                    .inc();
            }
            let Some(sk) = plan.owner.get(&d.pod) else {
                continue;
            };
            let Some(scaler) = scalers.iter().find(|s| &key_of(s.as_ref()) == sk) else {
                continue;
            };
            let mode = plan.scalers.get(sk).and_then(|s| s.mode());
            let apply = mode == Some(Mode::Auto)
                && !ctx.caps.dry_run
                && ctx.caps.resize
                && may_write
                && agent_nodes.is_some();
            let (reason, note) = if apply {
                match change_pod(ctx, &pods, &d.pod, &d.changes, now).await {
                    Ok(()) => {
                        ctx.metrics.resize_requests.with_label_values(&["ok"]).inc();
                        (d.action.to_string(), d.reason.clone())
                    }
                    Err(e) => {
                        ctx.metrics
                            .resize_requests
                            .with_label_values(&["error"])
                            .inc();
                        tracing::warn!(pod = %d.pod, error = %e, "resize failed");
                        ("ResizeFailed".to_string(), format!("{}: {e}", d.reason))
                    }
                }
            } else {
                if mode == Some(Mode::Auto) && may_write {
                    ctx.metrics
                        .resize_requests
                        .with_label_values(&["not_applied"])
                        .inc();
                }
                (format!("Recommend{}", d.action), d.reason.clone())
            };
            publish(
                ctx,
                scaler,
                EventType::Normal,
                &reason,
                d.action.as_str(),
                note,
                pod_ref(&pods, &d.pod),
            )
            .await;
        }
    }

    // Deferred resizes: report and give up after the timeout.
    track_deferred(ctx, state, &plan, &pods, &scalers).await;

    if may_write && !ctx.caps.dry_run {
        finalizers(ctx, &plan, &scalers, &pods).await;
        for pk in &plan.to_restore {
            let pod = pods.iter().find(|p| &key_of(p.as_ref()) == pk);
            if let Some(p) = pod.filter(|p| watched(ctx, &p.namespace().unwrap_or_default())) {
                restore(ctx, p, &scalers).await;
            }
        }
    }

    let report = agent_report(ctx, agent_nodes.clone().unwrap_or_default()).await;
    // Only what this controller decided: on agent nodes the agent's decisions stand.
    write_status(ctx, &plan, &decided, &scalers, &report, now).await;
    ctx.metrics.invalid_burstscalers.set(
        plan.scalers
            .values()
            .filter(|s| s.validated.is_err())
            .count() as i64,
    );
    ctx.metrics
        .reconcile_seconds
        .observe(started.elapsed().as_secs_f64());
}

/// The nodes whose agent holds its Lease ([`agents::live_agent_nodes`]); `None` when the
/// Leases cannot be read.
async fn live_agents(ctx: &Context, now: Timestamp) -> Option<std::collections::BTreeSet<String>> {
    let ns = ctx
        .args
        .agent_namespace
        .clone()
        .or_else(|| std::env::var("POD_NAMESPACE").ok())
        .unwrap_or_else(|| "default".into());
    let api: Api<k8s_openapi::api::coordination::v1::Lease> =
        Api::namespaced(ctx.client.clone(), &ns);
    match api.list(&ListParams::default()).await {
        Ok(l) => Some(agents::live_agent_nodes(&l.items, now)),
        Err(e) => {
            tracing::warn!(namespace = %ns, error = %e, "cannot read the node agents' Leases: no resize this pass (a node must never have two deciders)");
            None
        }
    }
}

/// What the live agents report in their `BurstScalerNode` objects (nothing when they cannot
/// be read: the counts then leave agent-governed pods out, and the log says why).
async fn agent_report(
    ctx: &Context,
    live: std::collections::BTreeSet<String>,
) -> status::AgentReport {
    if live.is_empty() {
        return status::AgentReport::default();
    }
    let api: Api<crate::api::BurstScalerNode> = Api::all(ctx.client.clone());
    match api.list(&ListParams::default()).await {
        Ok(l) => status::AgentReport::new(live, &l.items),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read BurstScalerNode objects: agent-governed pods are not counted in status");
            status::AgentReport {
                nodes: live,
                pods: Default::default(),
            }
        }
    }
}

fn pod_ref(pods: &[Arc<Pod>], key: &str) -> Option<ObjectReference> {
    pods.iter()
        .find(|p| key_of(p.as_ref()) == key)
        .map(|p| p.object_ref(&()))
}

/// A Warning Event on the BurstScaler that governs pod `key`, related to the pod.
/// `what` is the Event's (reason, action).
async fn warn_owner(
    ctx: &Context,
    plan: &Plan,
    scalers: &[Arc<BurstScaler>],
    pods: &[Arc<Pod>],
    key: &str,
    what: (&str, &str),
    note: String,
) {
    let owner = plan
        .owner
        .get(key)
        .and_then(|sk| scalers.iter().find(|s| &key_of(s.as_ref()) == sk));
    if let Some(s) = owner {
        let (reason, action) = what;
        publish(
            ctx,
            s,
            EventType::Warning,
            reason,
            action,
            note,
            pod_ref(pods, key),
        )
        .await;
    }
}

async fn publish(
    ctx: &Context,
    scaler: &BurstScaler,
    type_: EventType,
    reason: &str,
    action: &str,
    note: String,
    related: Option<ObjectReference>,
) {
    if !ctx.may_write() {
        // A standby decides and serves /decisions, but only the leader publishes.
        return;
    }
    let ev = Event {
        type_,
        reason: reason.to_string(),
        note: Some(note.chars().take(1000).collect()),
        action: action.to_string(),
        secondary: related,
    };
    if let Err(e) = ctx.recorder.publish(&ev, &scaler.object_ref(&())).await {
        tracing::warn!(error = %e, "cannot publish an Event");
    }
}

/// Reads every pod's usage from metrics.k8s.io (`None` when it cannot be read).
async fn poll_usage(ctx: &Context) -> Option<Vec<PodMetrics>> {
    let api: Api<PodMetrics> = Api::all(ctx.client.clone());
    match api.list(&ListParams::default()).await {
        Ok(l) => Some(l.items),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read metrics.k8s.io pod metrics; decisions hold (blind is safe)");
            None
        }
    }
}

/// Each governed pod's `spec.recommendation.halfLifeSeconds` (from the policy in force).
fn half_lives(plan: &Plan) -> BTreeMap<Key, u32> {
    plan.nodes
        .iter()
        .flat_map(|n| &n.pods)
        .map(|p| (p.name.clone(), p.policy.recommendation.half_life_seconds))
        .collect()
}

/// Puts the usage read into the book, each pod's histogram decaying with `half_life(pod)`
/// (`None`: not governed, see [`UsageBook::add`]).
fn record_usage(
    book: &mut UsageBook,
    list: &[PodMetrics],
    half_life: impl Fn(&str) -> Option<u32>,
) {
    for m in list {
        let key = key_of(m);
        let Some(time) = m.timestamp.as_ref().map(|t| t.0) else {
            continue;
        };
        let half_life = half_life(&key);
        for c in &m.containers {
            match c.cpu() {
                Ok(Some(cpu)) => book.add(&key, &c.name, time, cpu, half_life),
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(pod = %key, container = %c.name, error = %e, "unreadable CPU usage")
                }
            }
        }
    }
}

/// HPAs that scale on CPU, with the pods their targets select.
async fn hpa_targets(ctx: &Context) -> Vec<HpaTarget> {
    let mut out = vec![];
    for h in ctx.hpas.state() {
        let Some(spec) = &h.spec else { continue };
        if spec.target_cpu_utilization_percentage.is_none() {
            continue;
        }
        let ns = h.namespace().unwrap_or_default();
        let t = &spec.scale_target_ref;
        let (group, version) = match t
            .api_version
            .as_deref()
            .unwrap_or("apps/v1")
            .split_once('/')
        {
            Some((g, v)) => (g.to_string(), v.to_string()),
            None => (String::new(), t.api_version.clone().unwrap_or_default()),
        };
        let gvk = GroupVersionKind::gvk(&group, &version, &t.kind);
        let plural = format!("{}s", t.kind.to_lowercase());
        let ar = ApiResource::from_gvk_with_plural(&gvk, &plural);
        let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), &ns, &ar);
        let Ok(obj) = api.get(&t.name).await else {
            continue;
        };
        let sel = obj.data.pointer("/spec/selector").cloned().and_then(|v| {
            serde_json::from_value::<k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector>(
                v,
            )
            .ok()
        });
        if let Some(selector) = sel.and_then(|s| Selector::try_from(s).ok()) {
            out.push(HpaTarget {
                namespace: ns,
                name: h.name_any(),
                selector,
            });
        }
    }
    out
}

/// Records the originals, then resizes.
async fn change_pod(
    ctx: &Context,
    pods: &[Arc<Pod>],
    key: &str,
    changes: &[crate::engine::ContainerChange],
    now: Timestamp,
) -> Result<(), actuate::ActuateError> {
    let pod = pods
        .iter()
        .find(|p| key_of(p.as_ref()) == key)
        .ok_or_else(|| actuate::ActuateError::Gone(key.to_string()))?;
    if !ctx.may_write() {
        return Err(actuate::ActuateError::NotLeader);
    }
    actuate::record_change(&ctx.client, pod, now).await?;
    if !ctx.may_write() {
        return Err(actuate::ActuateError::NotLeader);
    }
    let ns = pod.namespace().unwrap_or_default();
    ctx.actuator.resize(&ns, &pod.name_any(), changes).await
}

/// Brings a pod back to its recorded resources and removes the annotation.
async fn restore(ctx: &Context, pod: &Pod, scalers: &[Arc<BurstScaler>]) -> bool {
    let key = key_of(pod);
    if !ctx.may_write() {
        return false;
    }
    let changes = match actuate::restore_changes(pod) {
        Ok(c) => c,
        Err(why) => {
            tracing::warn!(pod = %key, "{why}");
            return false;
        }
    };
    if !changes.is_empty() {
        if !ctx.caps.resize {
            tracing::warn!(pod = %key, "cannot restore: {}", status::RESIZE_UNSUPPORTED);
            return false;
        }
        let ns = pod.namespace().unwrap_or_default();
        if let Err(e) = ctx.actuator.resize(&ns, &pod.name_any(), &changes).await {
            tracing::warn!(pod = %key, error = %e, "restore failed");
            ctx.metrics
                .resize_requests
                .with_label_values(&["error"])
                .inc();
            return false;
        }
        ctx.metrics.resize_requests.with_label_values(&["ok"]).inc();
    }
    let ns = pod.namespace().unwrap_or_default();
    if !ctx.may_write() {
        return false;
    }
    if let Err(e) = actuate::annotate(&ctx.client, &ns, &pod.name_any(), None).await {
        tracing::warn!(pod = %key, error = %e, "cannot remove the annotation");
        return false;
    }
    let note = format!("{key}: restored the CPU it had before burst-scaler changed it");
    tracing::info!("{note}");
    let owner = scalers.iter().find(|s| {
        s.namespace() == pod.namespace()
            && Selector::try_from(s.spec.selector.clone()).is_ok_and(|sel| {
                use kube::core::SelectorExt;
                sel.matches(pod.labels())
            })
    });
    if let Some(s) = owner {
        publish(
            ctx,
            s,
            EventType::Normal,
            "Restore",
            "Restore",
            note,
            Some(pod.object_ref(&())),
        )
        .await;
    }
    true
}

/// Adds the finalizer to `Auto` BurstScalers; on deletion restores their pods, then removes it.
async fn finalizers(ctx: &Context, plan: &Plan, scalers: &[Arc<BurstScaler>], pods: &[Arc<Pod>]) {
    for s in scalers {
        if !ctx.may_write() {
            return;
        }
        let key = key_of(s.as_ref());
        let has = s.finalizers().iter().any(|f| f == FINALIZER);
        let ns = s.namespace().unwrap_or_default();
        let api: Api<BurstScaler> = Api::namespaced(ctx.client.clone(), &ns);
        let deleting = s.metadata.deletion_timestamp.is_some();
        let auto = plan.scalers.get(&key).and_then(|p| p.mode()) == Some(Mode::Auto);
        if !deleting && auto && !has {
            let mut f = s.finalizers().to_vec();
            f.push(FINALIZER.to_string());
            let patch = serde_json::json!({"metadata": {"finalizers": f, "resourceVersion": s.resource_version()}});
            if let Err(e) = api
                .patch(&s.name_any(), &PatchParams::default(), &Patch::Merge(patch))
                .await
            {
                tracing::warn!(burstscaler = %key, error = %e, "cannot add the finalizer");
            }
        }
        if deleting && has {
            // Its pods: those it selects that carry the annotation.
            let sel = Selector::try_from(s.spec.selector.clone()).ok();
            let mut all_restored = true;
            for p in pods
                .iter()
                .filter(|p| p.namespace().as_deref() == Some(ns.as_str()))
            {
                let selected = sel.as_ref().is_some_and(|sel| {
                    use kube::core::SelectorExt;
                    !sel.selects_all() && sel.matches(p.labels())
                });
                if selected
                    && p.annotations()
                        .contains_key(crate::api::ORIGINAL_RESOURCES_ANNOTATION)
                {
                    all_restored &= restore(ctx, p, scalers).await;
                }
            }
            if all_restored && ctx.may_write() {
                let f: Vec<String> = s
                    .finalizers()
                    .iter()
                    .filter(|f| *f != FINALIZER)
                    .cloned()
                    .collect();
                let patch = serde_json::json!({"metadata": {"finalizers": f, "resourceVersion": s.resource_version()}});
                match api
                    .patch(&s.name_any(), &PatchParams::default(), &Patch::Merge(patch))
                    .await
                {
                    Ok(_) => {
                        tracing::info!(burstscaler = %key, "every pod restored; finalizer removed")
                    }
                    Err(e) => {
                        tracing::warn!(burstscaler = %key, error = %e, "cannot remove the finalizer")
                    }
                }
            }
        }
    }
}

async fn track_deferred(
    ctx: &Context,
    state: &mut LoopState,
    plan: &Plan,
    pods: &[Arc<Pod>],
    scalers: &[Arc<BurstScaler>],
) {
    if !ctx.may_write() {
        // A standby keeps no "already reported" state for Events it could not publish.
        return;
    }
    let in_state = |state: crate::engine::ResizeState| -> Vec<&Key> {
        plan.nodes
            .iter()
            .flat_map(|n| &n.pods)
            .filter(|p| p.resize == state)
            .map(|p| &p.name)
            .collect()
    };
    let deferred = in_state(crate::engine::ResizeState::Deferred);
    state.deferred_since.retain(|k, _| deferred.contains(&k));
    // Infeasible: never retried by the kubelet nor by the engine; reported once.
    let infeasible = in_state(crate::engine::ResizeState::Infeasible);
    state.infeasible.retain(|k| infeasible.contains(&k));
    for k in infeasible {
        if state.infeasible.insert(k.clone()) {
            ctx.metrics
                .resize_requests
                .with_label_values(&["infeasible"])
                .inc();
            let note = format!(
                "{k}: the node can never fit the requested resize (Infeasible); not retried"
            );
            warn_owner(
                ctx,
                plan,
                scalers,
                pods,
                k,
                ("ResizeInfeasible", "Resize"),
                note,
            )
            .await;
        }
    }
    for k in deferred {
        let since = *state
            .deferred_since
            .entry(k.clone())
            .or_insert_with(Instant::now);
        if since.elapsed() >= ctx.args.resize_timeout {
            state.deferred_since.insert(k.clone(), Instant::now());
            ctx.metrics
                .resize_requests
                .with_label_values(&["deferred_timeout"])
                .inc();
            let note = format!(
                "{k}: resize still Deferred after {}s: the node has no room for it",
                ctx.args.resize_timeout.as_secs()
            );
            warn_owner(
                ctx,
                plan,
                scalers,
                pods,
                k,
                ("ResizeDeferredTimeout", "Resize"),
                note,
            )
            .await;
        }
    }
}

async fn write_status(
    ctx: &Context,
    plan: &Plan,
    decisions: &[NodeDecision],
    scalers: &[Arc<BurstScaler>],
    agents: &status::AgentReport,
    now: Timestamp,
) {
    let mut throttled = 0;
    let mut resized = 0;
    let mut gauges = Vec::with_capacity(scalers.len());
    for s in scalers {
        let key = key_of(s.as_ref());
        let Some(sp) = plan.scalers.get(&key) else {
            continue;
        };
        let mine: Vec<(&str, &crate::engine::PodDecision)> = decisions
            .iter()
            .flat_map(|n| &n.pods)
            .filter(|d| sp.pods.contains(&d.pod))
            .map(|d| (d.pod.as_str(), d))
            .collect();
        let new = status::status_for(
            sp,
            &plan.nodes,
            &mine,
            s.status.as_ref(),
            ctx.caps,
            agents,
            now,
        );
        throttled += i64::from(new.throttled_pods);
        resized += i64::from(new.resized_pods);
        gauges.push(metrics::ScalerGauges {
            namespace: s.namespace().unwrap_or_default(),
            name: s.name_any(),
            managed_pods: new.managed_pods,
            throttled_pods: new.throttled_pods,
            resized_pods: new.resized_pods,
            ready: new
                .conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True"),
            cpu: sp.validated.as_ref().ok().map(|v| {
                let cores = |m: crate::quantity::MilliCpu| m.0 as f64 / 1000.0;
                (cores(v.min), cores(v.max), cores(v.floor))
            }),
        });
        // Identical (but for condition transition times) → no write.
        let patch = match status::status_patch(s.status.as_ref(), &new) {
            Ok(Some(p)) => p,
            Ok(None) => continue,
            Err(e) => {
                tracing::warn!(burstscaler = %key, error = %e, "cannot serialize status");
                continue;
            }
        };
        if !ctx.may_write() {
            continue;
        }
        let api: Api<BurstScaler> =
            Api::namespaced(ctx.client.clone(), &s.namespace().unwrap_or_default());
        if let Err(e) = api
            .patch_status(&s.name_any(), &PatchParams::default(), &Patch::Merge(patch))
            .await
        {
            tracing::warn!(burstscaler = %key, error = %e, "cannot write status");
        }
    }
    ctx.metrics.throttled_pods.set(throttled);
    ctx.metrics.resized_pods.set(resized);
    ctx.metrics.set_scalers(&gauges);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::fixtures::at;
    use crate::usage::ContainerMetrics;
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
    use serde_json::json;

    fn scaler(recommendation: serde_json::Value) -> Arc<BurstScaler> {
        Arc::new(
            serde_json::from_value(json!({
                "apiVersion": "burstscaler.dev/v1alpha1", "kind": "BurstScaler",
                "metadata": {"name": "web", "namespace": "default", "generation": 1},
                "spec": {"selector": {"matchLabels": {"app": "web"}}, "role": "LatencySensitive",
                         "cpu": {"min": "100m", "max": "2"}, "mode": "Recommend",
                         "recommendation": recommendation}}))
            .expect("scaler"),
        )
    }

    fn pod(name: &str, app: &str) -> Arc<Pod> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": "default", "labels": {"app": app}},
                "spec": {"nodeName": "node-1", "containers": [{"name": "main",
                    "resources": {"requests": {"cpu": "500m"}, "limits": {"cpu": "2"}}}]},
                "status": {"phase": "Running", "qosClass": "Burstable"}}))
            .expect("pod"),
        )
    }

    fn plan(scaler: &Arc<BurstScaler>, book: &UsageBook) -> Plan {
        let node: Arc<Node> = Arc::new(
            serde_json::from_value(
                json!({"metadata": {"name": "node-1"}, "status": {"allocatable": {"cpu": "4"}}}),
            )
            .expect("node"),
        );
        let pods = [pod("web-1", "web"), pod("other", "other")];
        build::build(
            std::slice::from_ref(scaler),
            &pods,
            &[node],
            &[],
            book,
            MilliCpu(100),
        )
    }

    /// One metrics.k8s.io reading of both pods' `main` container.
    fn reading(secs: i64, cpu: &str) -> Vec<PodMetrics> {
        ["web-1", "other"]
            .into_iter()
            .map(|name| PodMetrics {
                metadata: ObjectMeta {
                    name: Some(name.into()),
                    namespace: Some("default".into()),
                    ..ObjectMeta::default()
                },
                timestamp: Some(Time(at(secs))),
                window: None,
                containers: vec![ContainerMetrics {
                    name: "main".into(),
                    usage: [("cpu".to_string(), Quantity(cpu.into()))].into(),
                }],
            })
            .collect()
    }

    fn target(plan: &Plan, pod: &str) -> Option<MilliCpu> {
        plan.nodes
            .iter()
            .flat_map(|n| &n.pods)
            .find(|p| p.name == pod)
            .and_then(|p| p.containers.first())
            .and_then(|c| c.recommendation)
            .map(|r| r.target)
    }

    #[test]
    fn the_usage_histogram_decays_with_the_burstscalers_half_life() {
        let mut book = UsageBook::default();
        // Default half-life (1 h): 30 busy samples, then 29 quiet ones 15 s apart.
        let s = scaler(json!({}));
        let mut lives = half_lives(&plan(&s, &book));
        assert_eq!(lives.get("default/web-1"), Some(&3600));
        assert_eq!(lives.get("default/other"), None, "not governed");
        for i in 0..59 {
            let cpu = if i < 30 { "1" } else { "100m" };
            record_usage(&mut book, &reading(i * 15, cpu), |p| lives.get(p).copied());
        }
        let busy = target(&plan(&s, &book), "default/web-1").expect("recommendation");
        assert!(busy >= MilliCpu(1000), "{busy}");
        // The spec now says 60 s: the next reading decays the old busy samples (≥ 7 min old)
        // to almost nothing, as `replay` would with this spec.
        let s = scaler(json!({"halfLifeSeconds": 60}));
        lives = half_lives(&plan(&s, &book));
        assert_eq!(lives.get("default/web-1"), Some(&60));
        record_usage(&mut book, &reading(59 * 15, "100m"), |p| {
            lives.get(p).copied()
        });
        let quiet = target(&plan(&s, &book), "default/web-1").expect("recommendation");
        assert!(quiet < MilliCpu(200), "{quiet}");
    }

    #[test]
    fn only_spec_finalizer_and_deletion_changes_wake_a_pass() {
        let s = scaler(json!({}));
        let base = wake_on(&s);
        let mut status_only = (*s).clone();
        status_only.status = Some(crate::api::BurstScalerStatus {
            managed_pods: 3,
            ..Default::default()
        });
        status_only.metadata.resource_version = Some("99".into());
        status_only.metadata.managed_fields = None;
        assert_eq!(
            wake_on(&status_only),
            base,
            "its own status write wakes nothing"
        );
        let mut spec = (*s).clone();
        spec.metadata.generation = Some(2);
        assert_ne!(wake_on(&spec), base);
        let mut fin = (*s).clone();
        fin.metadata.finalizers = Some(vec![FINALIZER.into()]);
        assert_ne!(wake_on(&fin), base);
        let mut del = (*s).clone();
        del.metadata.deletion_timestamp = Some(Time(at(5)));
        assert_ne!(wake_on(&del), base);
    }

    #[test]
    fn a_deletion_a_vanished_burstscaler_and_spec_changes_wake_but_status_writes_do_not() {
        use kube::runtime::watcher::Event as E;
        let s = (*scaler(json!({}))).clone();
        let mut f = WakeFilter::default();
        assert!(f.wakes(&E::Apply(s.clone())), "a new BurstScaler");
        let mut st = s.clone();
        st.status = Some(crate::api::BurstScalerStatus {
            managed_pods: 1,
            ..Default::default()
        });
        assert!(!f.wakes(&E::Apply(st.clone())), "its own status write");
        let mut spec = st.clone();
        spec.metadata.generation = Some(9);
        assert!(f.wakes(&E::Apply(spec.clone())));
        // No finalizer, no deletion timestamp: a plain delete still wakes.
        assert!(f.wakes(&E::Delete(spec.clone())));
        assert!(f.seen.is_empty(), "nothing kept for a deleted BurstScaler");
        // A re-list: unchanged objects do not wake, one that vanished meanwhile does.
        assert!(f.wakes(&E::Apply(spec.clone())));
        let mut other = s.clone();
        other.metadata.name = Some("other".into());
        assert!(f.wakes(&E::Apply(other)));
        assert!(!f.wakes(&E::Init));
        assert!(!f.wakes(&E::InitApply(spec.clone())));
        assert!(
            f.wakes(&E::InitDone),
            "'other' vanished while the watch was down"
        );
        assert!(!f.wakes(&E::Init));
        assert!(!f.wakes(&E::InitApply(spec)));
        assert!(!f.wakes(&E::InitDone), "nothing changed");
    }

    #[test]
    fn the_lease_counts_only_when_this_replica_holds_it_unexpired() {
        use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
        let lease = |holder: Option<&str>, renewed: i64, secs: Option<i32>| Lease {
            metadata: ObjectMeta::default(),
            spec: Some(LeaseSpec {
                holder_identity: holder.map(str::to_string),
                renew_time: Some(MicroTime(at(renewed))),
                lease_duration_seconds: secs,
                ..LeaseSpec::default()
            }),
        };
        let now = at(100);
        let held =
            |l: &Lease, id: &str, now: Timestamp| lease_expiry_for(l, id).is_some_and(|u| u > now);
        assert!(held(&lease(Some("me"), 95, Some(15)), "me", now));
        assert!(
            !held(&lease(Some("me"), 80, Some(15)), "me", now),
            "expired"
        );
        assert!(!held(&lease(Some("other"), 99, Some(15)), "me", now));
        assert!(!held(&lease(None, 99, Some(15)), "me", now));
        assert!(
            !held(&lease(Some("me"), 99, None), "me", now),
            "no duration: expired"
        );
        assert!(!held(&lease(Some("me"), 99, Some(-5)), "me", now));
        assert!(held(&lease(Some("me"), 99, Some(i32::MAX)), "me", now));
        let empty = Lease {
            metadata: ObjectMeta::default(),
            spec: None,
        };
        assert!(!held(&empty, "me", now));
    }
}
