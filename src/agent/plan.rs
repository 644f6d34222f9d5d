//! One agent tick, pure: this tick's cgroup readings of the node's pods → engine input → the
//! engine's decisions → the cgroup writes (and restores) to make, and what to report.
//!
//! The I/O shell ([`super::run`]) reads the cgroups, calls [`Planner::tick`], then carries out
//! [`TickPlan::writes`] in order (journal first, then [`super::cgroup::apply`]) and feeds the
//! results back with [`Planner::written`].
//!
//! What the engine is given on this path ([`crate::engine::Actuator::NodeAgent`]):
//! - `current` = what the cgroups enforce ([`super::values::in_force`]); `original` = the pod
//!   spec (the agent never changes it), so every throttle and raise is measured against it;
//! - samples every tick with node signals (usage, throttled-period share, CPU pressure);
//! - `last_change` = when this agent last changed the pod (kept in memory: after a restart
//!   every pod starts fresh — the journal's leftovers are restored first);
//! - ungoverned pods with their spec requests and their pod-level cgroup usage.
//!
//! Rules the planner adds on top of the engine (safety, whatever the engine says):
//! - only pods governed by a BurstScaler in mode `Auto` are written, and only while this agent
//!   holds its node Lease (`governing`); `Recommend` pods are decided and reported only;
//! - pods with a container pinned by the static CPU manager are left alone (reason reported);
//! - a limit is never written above `spec.cpu.max` nor, for batch, below `spec.batch.floor`
//!   ([`super::values::container_setting`]); the pod-level quota never goes below what the pod
//!   had before ([`super::values::pod_setting`]);
//! - everything this agent changed that is no longer governed in `Auto` (BurstScaler deleted,
//!   mode changed, pod out of scope, container no longer listed) is restored from the journal,
//!   and when the agent stops governing (Lease lost, shutdown) every entry is restored.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::cgroup::{Counters, CpuLimits, Layout, Setting};
use super::journal::{ContainerEntry, Journal, PodEntry, Saved};
use super::select::NodePod;
use super::signals::{Keep, SignalBook};
use super::values::{Bounds, ContainerLevel, container_setting, in_force, pod_setting};
use crate::api::{AgentDecision, GovernedContainer, GovernedPod, Mode, Role};
use crate::engine::{
    self, Action, Actuator, ContainerInput, CpuResources, EngineConfig, NodeDecision, NodeInput,
    PodInput, ResizeState, UngovernedPod,
};
use crate::quantity::{CpuQuantity, MilliCpu};

/// The node's CPU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeFacts {
    pub name: String,
    pub allocatable: MilliCpu,
    /// CPU never handed out (the agent's `--node-reserve`).
    pub reserve: MilliCpu,
}

/// One cgroup as read this tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reading {
    pub limits: CpuLimits,
    pub counters: Counters,
}

/// Cgroup readings of this tick, by cgroup path relative to the hierarchy roots. An `Err` is
/// the read error's text (the cgroup was unreadable this tick).
pub type Readings = HashMap<PathBuf, Result<Reading, String>>;

/// Everything a tick looks at.
pub struct TickInput<'a> {
    pub node: &'a NodeFacts,
    pub pods: &'a [NodePod],
    pub layout: &'a Layout,
    pub readings: &'a Readings,
    /// (pod UID, container name) pinned by the static CPU manager.
    pub pinned: &'a BTreeSet<(String, String)>,
    pub journal: &'a Journal,
    /// Whether this agent holds its node Lease: only then does it change anything.
    pub governing: bool,
    /// Whether to restore every journal entry (the agent stopped governing, or is shutting
    /// down). Implies no other writes.
    pub restore_all: bool,
    pub now: Timestamp,
    /// A monotonic clock reading (for the intervals between readings).
    pub mono: Duration,
}

/// A write to one pod's cgroups (a change, or a restore).
#[derive(Debug, Clone, PartialEq)]
pub struct PodWrite {
    pub uid: String,
    /// `namespace/name`.
    pub pod: String,
    /// The governing BurstScaler's name (none for restores of pods no longer governed).
    pub scaler: Option<String>,
    /// The engine's action, or `Restore`.
    pub action: String,
    pub reason: String,
    pub pod_cgroup: PathBuf,
    /// What the pod level held before the agent first changed it (recorded in the journal
    /// before writing, if it is not there yet).
    pub pod_original: Saved,
    pub pod_setting: Setting,
    pub containers: Vec<ContainerWrite>,
    /// After this write the pod holds its original values everywhere: remove it from the
    /// journal on success.
    pub restores_pod: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ContainerWrite {
    /// The container ID (journal key).
    pub id: String,
    pub name: String,
    pub cgroup: PathBuf,
    pub original: Saved,
    pub setting: Setting,
    /// After this write the container holds its original values.
    pub restores: bool,
}

/// What a tick decided.
#[derive(Debug, Clone)]
pub struct TickPlan {
    /// The engine's decisions for the node (empty when nothing is governed).
    pub decision: NodeDecision,
    /// The writes to make, in order.
    pub writes: Vec<PodWrite>,
    /// Journal entries whose cgroups are gone (pod or container removed): drop them.
    pub gone: Vec<(String, Option<String>)>,
    /// Every governed pod, for the node's BurstScalerNode status.
    pub report: Vec<GovernedPod>,
    /// Governed containers with no fresh signal this tick.
    pub blind: Vec<String>,
    /// Changing decisions that differ from the pod's previous one (for metrics and Events:
    /// a decision repeated every tick is counted once).
    pub new_decisions: Vec<NewDecision>,
}

/// A changing decision seen for the first time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDecision {
    pub uid: String,
    pub pod: String,
    pub scaler: String,
    pub action: Action,
    pub reason: String,
    /// Whether it is to be put in force (mode Auto, governing).
    pub applies: bool,
}

/// The agent's memory between ticks.
pub struct Planner {
    pub config: EngineConfig,
    book: SignalBook,
    last_change: HashMap<String, Timestamp>,
    last_decision: HashMap<String, AgentDecision>,
}

impl Planner {
    /// A planner deciding with `config` (its `sample_interval` is the tick).
    pub fn new(config: EngineConfig) -> Planner {
        Planner {
            config,
            book: SignalBook::new(),
            last_change: HashMap::new(),
            last_decision: HashMap::new(),
        }
    }

    /// The cgroups to read this tick: every pod's pod-level cgroup, and the containers of
    /// governed pods (and of pods the journal holds).
    pub fn cgroups_to_read(
        layout: &Layout,
        pods: &[NodePod],
        journal: &Journal,
    ) -> BTreeSet<PathBuf> {
        let mut out = BTreeSet::new();
        for p in pods {
            let pod = layout.pod(p.qos, &p.uid);
            out.insert(pod.relative().to_path_buf());
            if p.governor.is_some() || journal.pods.contains_key(&p.uid) {
                for c in &p.containers {
                    if let Some(cg) =
                        c.id.as_deref()
                            .and_then(|id| layout.container(&pod, id).ok())
                    {
                        out.insert(cg.relative().to_path_buf());
                    }
                }
            }
        }
        for e in journal.pods.values() {
            out.insert(e.cgroup.clone());
            out.extend(e.containers.values().map(|c| c.cgroup.clone()));
        }
        out
    }

    /// One tick. See the module documentation.
    pub fn tick(&mut self, input: &TickInput<'_>) -> TickPlan {
        let layout = input.layout;
        let reading = |rel: &Path| -> Option<Reading> {
            input
                .readings
                .get(rel)
                .and_then(|r| r.as_ref().ok())
                .copied()
        };

        // 1. Signals.
        self.book.begin_tick();
        for p in input.pods {
            let pod_cg = layout.pod(p.qos, &p.uid);
            if let Some(r) = reading(pod_cg.relative()) {
                self.book.observe(
                    &pod_key(&p.uid),
                    r.counters,
                    input.mono,
                    input.now,
                    Keep::Latest,
                );
            }
            let Some(g) = &p.governor else { continue };
            let keep = Keep::History {
                keep: self.config.history_for(&g.policy),
                half_life: g.policy.recommendation.half_life_seconds,
            };
            for c in &p.containers {
                let Some(id) = &c.id else { continue };
                let Ok(cg) = layout.container(&pod_cg, id) else {
                    continue;
                };
                if let Some(r) = reading(cg.relative()) {
                    self.book
                        .observe(id, r.counters, input.mono, input.now, keep);
                }
            }
        }
        self.book.end_tick();

        // 2. Engine input.
        let fresh_after = input
            .now
            .checked_sub(
                jiff::SignedDuration::try_from(self.config.staleness())
                    .unwrap_or(jiff::SignedDuration::MAX),
            )
            .unwrap_or(Timestamp::MIN);
        let mut node = NodeInput {
            name: input.node.name.clone(),
            actuator: Actuator::NodeAgent,
            allocatable: input.node.allocatable,
            reserve: input.node.reserve,
            pods: vec![],
            ungoverned: vec![],
        };
        // Index into `input.pods` of each engine pod, and why governed pods are left alone.
        let mut engine_pods: Vec<usize> = vec![];
        let mut skipped: BTreeMap<usize, String> = BTreeMap::new();
        let mut blind = vec![];
        for (i, p) in input.pods.iter().enumerate() {
            let pod_cg = layout.pod(p.qos, &p.uid);
            let governed = p.governor.as_ref().filter(|g| g.policy.mode != Mode::Off);
            let pinned: Vec<&str> = p
                .containers
                .iter()
                .filter(|c| input.pinned.contains(&(p.uid.clone(), c.name.clone())))
                .map(|c| c.name.as_str())
                .collect();
            let skip = match governed {
                None => None,
                Some(_) if !pinned.is_empty() => Some(format!(
                    "{}: container {} has exclusive CPUs from the kubelet's static CPU manager: left alone",
                    p.key,
                    pinned.join(", ")
                )),
                Some(_) => match input.readings.get(pod_cg.relative()) {
                    Some(Ok(_)) => None,
                    Some(Err(e)) => Some(format!("{}: pod cgroup unreadable: {e}", p.key)),
                    None => Some(format!(
                        "{}: pod cgroup {} not found",
                        p.key,
                        pod_cg.relative().display()
                    )),
                },
            };
            let Some(g) = governed.filter(|_| skip.is_none()) else {
                if let Some(why) = skip {
                    skipped.insert(i, why);
                }
                let request = p.containers.iter().filter_map(|c| c.spec.request).sum();
                let usage = self
                    .book
                    .latest(&pod_key(&p.uid))
                    .filter(|s| s.time >= fresh_after)
                    .map(|s| s.usage);
                node.ungoverned.push(UngovernedPod {
                    name: p.key.clone(),
                    request,
                    usage,
                });
                continue;
            };
            let containers = p
                .containers
                .iter()
                .map(|c| {
                    let cg =
                        c.id.as_deref()
                            .and_then(|id| layout.container(&pod_cg, id).ok());
                    let r = cg.as_ref().and_then(|cg| reading(cg.relative()));
                    let samples =
                        c.id.as_deref()
                            .map(|id| self.book.samples(id))
                            .unwrap_or_default();
                    if g.policy.governs(&c.name)
                        && samples.last().is_none_or(|s| s.time < fresh_after)
                    {
                        blind.push(format!("{}/{}", p.key, c.name));
                    }
                    ContainerInput {
                        name: c.name.clone(),
                        current: r.map_or(c.spec, |r| in_force(c.spec, &r.limits)),
                        original: Some(c.spec),
                        recommendation: c
                            .id
                            .as_deref()
                            .and_then(|id| self.book.recommend(id, &g.policy)),
                        samples,
                    }
                })
                .collect();
            node.pods.push(PodInput {
                name: p.key.clone(),
                policy: g.policy.clone(),
                qos: p.qos,
                containers,
                resize: ResizeState::Idle,
                last_change: self.last_change.get(&p.uid).copied(),
            });
            engine_pods.push(i);
        }
        let decision = engine::decide(&node, &self.config, input.now);

        // 3. Writes: changes of Auto pods (while governing), then restores.
        let mut writes = vec![];
        let mut gone = vec![];
        let mut writing: BTreeSet<String> = BTreeSet::new();
        let mut new_decisions = vec![];
        let auto_governed: BTreeSet<&str> = if input.governing && !input.restore_all {
            engine_pods
                .iter()
                .filter_map(|&i| {
                    let p = &input.pods[i];
                    p.governor
                        .as_ref()
                        .filter(|g| g.policy.mode == Mode::Auto)
                        .map(|_| p.uid.as_str())
                })
                .collect()
        } else {
            BTreeSet::new()
        };
        for (d, &i) in decision.pods.iter().zip(&engine_pods) {
            let p = &input.pods[i];
            let Some(g) = &p.governor else { continue };
            let applies = auto_governed.contains(p.uid.as_str());
            if d.action.changes() {
                let prev = self.last_decision.get(&p.uid);
                if prev.is_none_or(|x| x.reason != d.reason || x.action != d.action.as_str()) {
                    new_decisions.push(NewDecision {
                        uid: p.uid.clone(),
                        pod: p.key.clone(),
                        scaler: g.scaler.clone(),
                        action: d.action,
                        reason: d.reason.clone(),
                        applies,
                    });
                    self.last_decision.insert(
                        p.uid.clone(),
                        AgentDecision {
                            time: Time(input.now),
                            action: d.action.to_string(),
                            applied: false,
                            reason: d.reason.clone(),
                        },
                    );
                }
            }
            if !applies {
                continue;
            }
            let changes: BTreeMap<&str, CpuResources> = d
                .changes
                .iter()
                .map(|c| (c.container.as_str(), c.to))
                .collect();
            let bounds = Bounds {
                max: g.policy.max,
                floor: (g.policy.role == Role::Batch).then_some(g.policy.floor),
            };
            if let Some(w) = pod_write(
                p,
                layout,
                input.journal.pods.get(&p.uid),
                &reading,
                |name| {
                    if !g.policy.governs(name) {
                        return Target::Original;
                    }
                    match changes.get(name) {
                        Some(to) => Target::Set(*to),
                        None => Target::Keep,
                    }
                },
                bounds,
            ) {
                let w = PodWrite {
                    scaler: Some(g.scaler.clone()),
                    action: if d.action.changes() {
                        d.action.to_string()
                    } else {
                        "Restore".to_string()
                    },
                    reason: if d.action.changes() {
                        d.reason.clone()
                    } else {
                        format!(
                            "{}: containers no longer governed restored to their spec",
                            p.key
                        )
                    },
                    ..w
                };
                writing.insert(p.uid.clone());
                writes.push(w);
            }
        }
        for (uid, entry) in &input.journal.pods {
            // Gone cgroups are dropped from the journal whoever governs the pod now.
            if reading(&entry.cgroup).is_none() {
                gone.push((uid.clone(), None));
                continue;
            }
            for (id, c) in &entry.containers {
                if reading(&c.cgroup).is_none() {
                    gone.push((uid.clone(), Some(id.clone())));
                }
            }
            if auto_governed.contains(uid.as_str()) || writing.contains(uid) {
                continue;
            }
            let mut containers = vec![];
            for (id, c) in &entry.containers {
                if reading(&c.cgroup).is_none() {
                    continue;
                }
                containers.push(ContainerWrite {
                    id: id.clone(),
                    name: c.name.clone(),
                    cgroup: c.cgroup.clone(),
                    original: c.original,
                    setting: Setting::from_limits(&c.original.into()),
                    restores: true,
                });
            }
            let scaler = input
                .pods
                .iter()
                .find(|p| &p.uid == uid)
                .and_then(|p| p.governor.as_ref())
                .map(|g| g.scaler.clone());
            let why = if input.restore_all {
                "the agent stopped governing this node"
            } else {
                "no BurstScaler in mode Auto governs it any more"
            };
            writes.push(PodWrite {
                uid: uid.clone(),
                pod: entry.pod.clone(),
                scaler,
                action: "Restore".to_string(),
                reason: format!("{}: {why}: CPU restored to its spec", entry.pod),
                pod_cgroup: entry.cgroup.clone(),
                pod_original: entry.original,
                pod_setting: Setting::from_limits(&entry.original.into()),
                containers,
                restores_pod: true,
            });
        }

        // 4. Report.
        let mut report = vec![];
        for (i, p) in input.pods.iter().enumerate() {
            let Some(g) = &p.governor else { continue };
            let pod_cg = layout.pod(p.qos, &p.uid);
            let skip_reason = skipped.get(&i);
            let containers = p
                .containers
                .iter()
                .map(|c| {
                    let r =
                        c.id.as_deref()
                            .and_then(|id| layout.container(&pod_cg, id).ok())
                            .and_then(|cg| reading(cg.relative()));
                    let force = r.map(|r| in_force(c.spec, &r.limits));
                    GovernedContainer {
                        name: c.name.clone(),
                        spec_request: c.spec.request.map(CpuQuantity::from),
                        spec_limit: c.spec.limit.map(CpuQuantity::from),
                        limit: force.and_then(|f| f.limit).map(CpuQuantity::from),
                        weight: force
                            .and_then(|f| f.effective_weight())
                            .map(CpuQuantity::from),
                        skipped: if !g.policy.governs(&c.name) {
                            Some("not listed in spec.containers".to_string())
                        } else {
                            skip_reason
                                .cloned()
                                .or_else(|| c.id.is_none().then(|| "not running".to_string()))
                        },
                    }
                })
                .collect();
            report.push(GovernedPod {
                namespace: p.namespace.clone(),
                name: p.name.clone(),
                uid: p.uid.clone(),
                burst_scaler: g.scaler.clone(),
                role: g.policy.role,
                mode: g.policy.mode,
                containers,
                last_decision: self.last_decision.get(&p.uid).cloned(),
            });
        }
        // Forget pods that left the node.
        let alive: BTreeSet<&str> = input.pods.iter().map(|p| p.uid.as_str()).collect();
        self.last_change
            .retain(|uid, _| alive.contains(uid.as_str()));
        self.last_decision
            .retain(|uid, _| alive.contains(uid.as_str()));

        TickPlan {
            decision,
            writes,
            gone,
            report,
            blind,
            new_decisions,
        }
    }

    /// Feeds back the outcome of a write made from this tick's plan: on success the pod's
    /// `last_change` moves (only after a successful write) and its last decision is marked
    /// applied.
    pub fn written(&mut self, w: &PodWrite, ok: bool, now: Timestamp) {
        if !ok {
            return;
        }
        if w.restores_pod {
            self.last_change.remove(&w.uid);
        } else {
            self.last_change.insert(w.uid.clone(), now);
        }
        if let Some(d) = self.last_decision.get_mut(&w.uid)
            && d.reason == w.reason
        {
            d.applied = true;
        }
        if w.action == "Restore" {
            self.last_decision.insert(
                w.uid.clone(),
                AgentDecision {
                    time: Time(now),
                    action: "Restore".into(),
                    applied: true,
                    reason: w.reason.clone(),
                },
            );
        }
    }

    /// Keys held by the signal book (footprint).
    pub fn tracked(&self) -> usize {
        self.book.len()
    }
}

fn pod_key(uid: &str) -> String {
    format!("pod:{uid}")
}

/// What to put in force in one container.
enum Target {
    /// What the engine decided.
    Set(CpuResources),
    /// What is in force now.
    Keep,
    /// Its original (spec) values.
    Original,
}

/// The write that puts `target` in force in `p`'s containers, with the pod-level setting to
/// match; `None` when everything already holds those values.
fn pod_write(
    p: &NodePod,
    layout: &Layout,
    entry: Option<&PodEntry>,
    reading: &dyn Fn(&Path) -> Option<Reading>,
    target: impl Fn(&str) -> Target,
    bounds: Bounds,
) -> Option<PodWrite> {
    let pod_cg = layout.pod(p.qos, &p.uid);
    let pod_now = reading(pod_cg.relative())?;
    let pod_original: Saved = entry.map_or(pod_now.limits.into(), |e| e.original);
    let mut containers = vec![];
    let mut levels = vec![];
    let mut changed = false;
    for c in &p.containers {
        let Some(id) = &c.id else { continue };
        let Ok(cg) = layout.container(&pod_cg, id) else {
            continue;
        };
        let Some(now) = reading(cg.relative()) else {
            continue;
        };
        let original: Saved = entry
            .and_then(|e| e.containers.get(id))
            .map_or(now.limits.into(), |e: &ContainerEntry| e.original);
        let orig_limits: CpuLimits = original.into();
        let setting = match target(&c.name) {
            Target::Set(to) => container_setting(to, c.spec, bounds, now.limits.period_us),
            Target::Keep => Setting::from_limits(&now.limits),
            Target::Original => Setting::from_limits(&orig_limits),
        };
        let current = Setting::from_limits(&now.limits);
        let differs = setting.quota_us != current.quota_us || setting.shares != current.shares;
        let restores = setting.quota_us == Some(orig_limits.quota())
            && setting.shares == Some(orig_limits.shares);
        changed |= differs;
        levels.push(ContainerLevel {
            original: orig_limits,
            after: setting,
        });
        if differs || entry.is_some_and(|e| e.containers.contains_key(id)) {
            containers.push(ContainerWrite {
                id: id.clone(),
                name: c.name.clone(),
                cgroup: cg.relative().to_path_buf(),
                original,
                setting,
                restores,
            });
        }
    }
    let pod_orig_limits: CpuLimits = pod_original.into();
    let pod_set = pod_setting(&pod_orig_limits, &levels);
    let pod_current = Setting::from_limits(&pod_now.limits);
    changed |= pod_set.quota_us != pod_current.quota_us || pod_set.shares != pod_current.shares;
    if !changed {
        return None;
    }
    let restores_pod = containers.iter().all(|c| c.restores)
        && pod_set.quota_us == Some(pod_orig_limits.quota())
        && pod_set.shares == Some(pod_orig_limits.shares);
    Some(PodWrite {
        uid: p.uid.clone(),
        pod: p.key.clone(),
        scaler: None,
        action: String::new(),
        reason: String::new(),
        pod_cgroup: pod_cg.relative().to_path_buf(),
        pod_original,
        pod_setting: pod_set,
        containers,
        restores_pod,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::agent::cgroup::fixture::Tree;
    use crate::agent::cgroup::{Driver, Quota};
    use crate::agent::select::{Governor, NodeContainer};
    use crate::engine::QosClass;
    use crate::engine::fixtures::{at, batch_policy, latency_policy};

    struct World {
        _tree: Tree,
        layout: Layout,
        node: NodeFacts,
        pods: Vec<NodePod>,
        readings: Readings,
        journal: Journal,
    }

    fn limits(quota: Option<u64>, shares: u64) -> CpuLimits {
        CpuLimits {
            quota_us: quota,
            period_us: 100_000,
            shares,
            weight: None,
        }
    }

    fn counters(usage_ms: u64, periods: u64, throttled: u64, pressure_ms: u64) -> Counters {
        Counters {
            usage_ns: usage_ms * 1_000_000,
            nr_periods: periods,
            nr_throttled: throttled,
            throttled_ns: 0,
            pressure_some_us: Some(pressure_ms * 1000),
        }
    }

    impl World {
        fn new() -> World {
            let tree = Tree::hybrid_v1("plan");
            let layout = Layout::detect(tree.root(), Driver::Cgroupfs).expect("layout");
            World {
                _tree: tree,
                layout,
                node: NodeFacts {
                    name: "n1".into(),
                    allocatable: MilliCpu(2000),
                    reserve: MilliCpu(100),
                },
                pods: vec![],
                readings: Readings::new(),
                journal: Journal::new("n1"),
            }
        }

        /// A one-container Burstable pod `name` (container `main`, ID `c-<name>`) with its
        /// cgroups at the spec's values.
        fn pod(
            &mut self,
            name: &str,
            spec: CpuResources,
            policy: Option<crate::api::ValidatedSpec>,
        ) {
            let uid = format!("uid-{name}");
            let quota = spec.limit.map(|l| l.0 * 100);
            let shares = crate::agent::cgroup::shares_for(spec.request.map_or(0, |r| r.0));
            let pod = self.layout.pod(QosClass::Burstable, &uid);
            let id = format!("containerd://c{name}");
            let c = self.layout.container(&pod, &id).expect("container cgroup");
            self.readings.insert(
                pod.relative().to_path_buf(),
                Ok(Reading {
                    limits: limits(quota, shares),
                    counters: counters(0, 0, 0, 0),
                }),
            );
            self.readings.insert(
                c.relative().to_path_buf(),
                Ok(Reading {
                    limits: limits(quota, shares),
                    counters: counters(0, 0, 0, 0),
                }),
            );
            self.pods.push(NodePod {
                key: format!("default/{name}"),
                namespace: "default".into(),
                name: name.into(),
                uid,
                qos: QosClass::Burstable,
                containers: vec![NodeContainer {
                    name: "main".into(),
                    spec,
                    id: Some(id),
                }],
                governor: policy.map(|p| Governor {
                    scaler: format!("bsc-{name}"),
                    policy: Arc::new(p),
                }),
                not_governed: None,
            });
        }

        fn container_rel(&self, name: &str) -> PathBuf {
            let p = self.pods.iter().find(|p| p.name == name).expect("pod");
            let pod = self.layout.pod(p.qos, &p.uid);
            let id = p.containers[0].id.clone().expect("id");
            self.layout
                .container(&pod, &id)
                .expect("container")
                .relative()
                .to_path_buf()
        }

        fn set(&mut self, rel: &Path, limits_: CpuLimits) {
            if let Some(Ok(r)) = self.readings.get_mut(rel) {
                r.limits = limits_;
            }
        }

        fn tick(
            &self,
            planner: &mut Planner,
            t: i64,
            governing: bool,
            restore_all: bool,
        ) -> TickPlan {
            planner.tick(&TickInput {
                node: &self.node,
                pods: &self.pods,
                layout: &self.layout,
                readings: &self.readings,
                pinned: &BTreeSet::new(),
                journal: &self.journal,
                governing,
                restore_all,
                now: at(t),
                mono: Duration::from_secs(t as u64),
            })
        }
    }

    fn planner() -> Planner {
        Planner::new(EngineConfig {
            sample_interval: Duration::from_secs(1),
            ..EngineConfig::default()
        })
    }

    fn auto(mut p: crate::api::ValidatedSpec) -> crate::api::ValidatedSpec {
        p.mode = Mode::Auto;
        p
    }

    /// Journal the pod as throttled: its container at `quota`, originals from the spec.
    fn journal_throttle(w: &mut World, name: &str, quota: u64) {
        let p = w.pods.iter().find(|p| p.name == name).expect("pod").clone();
        let pod_rel = w.layout.pod(p.qos, &p.uid).relative().to_path_buf();
        let c_rel = w.container_rel(name);
        let Some(Ok(orig)) = w.readings.get(&c_rel).cloned() else {
            panic!("reading");
        };
        let Some(Ok(pod_orig)) = w.readings.get(&pod_rel).cloned() else {
            panic!("reading");
        };
        w.journal.pods.insert(
            p.uid.clone(),
            PodEntry {
                pod: p.key.clone(),
                cgroup: pod_rel,
                original: pod_orig.limits.into(),
                containers: [(
                    p.containers[0].id.clone().expect("id"),
                    ContainerEntry {
                        name: "main".into(),
                        cgroup: c_rel.clone(),
                        original: orig.limits.into(),
                    },
                )]
                .into(),
            },
        );
        w.set(&c_rel, limits(Some(quota), orig.limits.shares));
    }

    #[test]
    fn a_pod_no_longer_governed_is_restored_from_the_journal() {
        let mut w = World::new();
        w.pod("compile", CpuResources::new(500, 2000), None);
        journal_throttle(&mut w, "compile", 60_000);
        let plan = w.tick(&mut planner(), 10, true, false);
        assert_eq!(plan.writes.len(), 1, "{:?}", plan.writes);
        let r = &plan.writes[0];
        assert_eq!(r.action, "Restore");
        assert!(r.restores_pod);
        assert_eq!(
            r.containers[0].setting.quota_us,
            Some(Quota::Limited(200_000))
        );
        assert_eq!(r.pod_setting.quota_us, Some(Quota::Limited(200_000)));
    }

    #[test]
    fn without_the_lease_nothing_is_changed_and_restore_all_restores_everything() {
        let mut w = World::new();
        w.pod(
            "compile",
            CpuResources::new(500, 2000),
            Some(auto(batch_policy(400, 0))),
        );
        journal_throttle(&mut w, "compile", 60_000);
        let plan = w.tick(&mut planner(), 10, false, true);
        assert_eq!(plan.writes.len(), 1);
        assert_eq!(plan.writes[0].action, "Restore");
        assert!(plan.writes[0].restores_pod);
        assert_eq!(plan.report.len(), 1, "governed pods are still reported");
    }

    #[test]
    fn journal_entries_whose_cgroups_are_gone_are_dropped() {
        let mut w = World::new();
        w.pod("compile", CpuResources::new(500, 2000), None);
        journal_throttle(&mut w, "compile", 60_000);
        let c_rel = w.container_rel("compile");
        w.readings.remove(&c_rel);
        let plan = w.tick(&mut planner(), 10, true, false);
        assert_eq!(
            plan.gone,
            vec![(
                "uid-compile".to_string(),
                Some("containerd://ccompile".to_string())
            )]
        );
        // The pod level is still restored (it was recorded).
        assert_eq!(plan.writes.len(), 1);
        assert!(plan.writes[0].containers.is_empty());
        w.readings.clear();
        let plan = w.tick(&mut planner(), 11, true, false);
        assert_eq!(plan.gone, vec![("uid-compile".to_string(), None)]);
    }

    #[test]
    fn a_restarted_container_of_a_raised_pod_brings_the_pod_level_back() {
        // web was raised to 500m (pod level too); its container restarted: a new ID whose
        // cgroup has the spec's 200m; the old container's journal entry is gone.
        let mut w = World::new();
        let mut policy = latency_policy();
        policy.mode = Mode::Auto;
        w.pod("web", CpuResources::new(100, 200), Some(policy));
        journal_throttle(&mut w, "web", 50_000);
        let pod_rel = w
            .layout
            .pod(QosClass::Burstable, "uid-web")
            .relative()
            .to_path_buf();
        w.set(&pod_rel, limits(Some(50_000), 102));
        // The restart: the old ID's cgroup is gone, a new one holds the spec.
        let old_rel = w.container_rel("web");
        let spec_limits = limits(Some(20_000), 102);
        w.readings.remove(&old_rel);
        w.pods[0].containers[0].id = Some("containerd://cweb2".into());
        let new_rel = w.container_rel("web");
        w.readings.insert(
            new_rel,
            Ok(Reading {
                limits: spec_limits,
                counters: counters(0, 0, 0, 0),
            }),
        );
        let plan = w.tick(&mut planner(), 10, true, false);
        assert_eq!(
            plan.gone,
            vec![("uid-web".to_string(), Some("containerd://cweb".to_string()))]
        );
        assert_eq!(plan.writes.len(), 1, "{:?}", plan.writes);
        let write = &plan.writes[0];
        assert_eq!(write.pod_setting.quota_us, Some(Quota::Limited(20_000)));
        assert!(
            write.restores_pod,
            "the pod is back at its spec: journal entry dropped"
        );
    }

    #[test]
    fn recommend_pods_are_decided_and_reported_never_written() {
        let mut w = World::new();
        let mut policy = latency_policy();
        policy.mode = Mode::Recommend;
        w.pod("web", CpuResources::new(250, 500), Some(policy));
        let mut p = planner();
        for t in 0..5 {
            let c_rel = w.container_rel("web");
            if let Some(Ok(r)) = w.readings.get_mut(&c_rel) {
                r.counters = counters(500 * t as u64, 10 * t as u64, 10 * t as u64, 900 * t as u64);
            }
            let plan = w.tick(&mut p, t, true, false);
            assert!(plan.writes.is_empty(), "{:?}", plan.writes);
            assert_eq!(plan.report.len(), 1);
        }
    }

    #[test]
    fn a_pinned_pod_is_left_alone_with_a_reason() {
        let mut w = World::new();
        w.pod(
            "db",
            CpuResources::new(2000, 2000),
            Some(auto(latency_policy())),
        );
        let pinned: BTreeSet<(String, String)> =
            [("uid-db".to_string(), "main".to_string())].into();
        let plan = planner().tick(&TickInput {
            node: &w.node,
            pods: &w.pods,
            layout: &w.layout,
            readings: &w.readings,
            pinned: &pinned,
            journal: &w.journal,
            governing: true,
            restore_all: false,
            now: at(0),
            mono: Duration::ZERO,
        });
        assert!(plan.writes.is_empty());
        assert!(plan.decision.pods.is_empty(), "not handed to the engine");
        let skipped = plan.report[0].containers[0]
            .skipped
            .clone()
            .unwrap_or_default();
        assert!(skipped.contains("static CPU manager"), "{skipped}");
    }

    #[test]
    fn engine_changes_become_clamped_writes_with_the_pod_level_kept_at_or_above_its_spec() {
        let mut w = World::new();
        w.pod(
            "compile",
            CpuResources::new(500, 2000),
            Some(auto(batch_policy(400, 0))),
        );
        let p = &w.pods[0];
        let target = |_: &str| {
            Target::Set(CpuResources {
                limit: Some(MilliCpu(100)),
                ..CpuResources::new(500, 2000)
            })
        };
        let readings = w.readings.clone();
        let reading = |rel: &Path| readings.get(rel).and_then(|r| r.as_ref().ok()).copied();
        let write = pod_write(
            p,
            &w.layout,
            None,
            &reading,
            target,
            Bounds {
                max: MilliCpu(4000),
                floor: Some(MilliCpu(400)),
            },
        )
        .expect("a write");
        assert_eq!(
            write.containers[0].setting.quota_us,
            Some(Quota::Limited(40_000)),
            "never below the floor"
        );
        assert_eq!(
            write.pod_setting.quota_us,
            Some(Quota::Limited(200_000)),
            "the pod level stays at its spec"
        );
        assert!(!write.restores_pod);
    }
}
