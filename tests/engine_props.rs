//! Property tests of the engine's invariants on random nodes: bounds, QoS, capacity,
//! idempotence and no flapping.

use std::sync::Arc;

use burst_scaler::api::RequestPolicy;
use burst_scaler::engine::fixtures::*;
use burst_scaler::engine::*;
use burst_scaler::quantity::MilliCpu;
use proptest::prelude::*;

#[derive(Debug, Clone)]
struct PodSpec {
    batch: bool,
    guaranteed: bool,
    request: u64,
    limit: u64,
    floor: u64,
    priority: i32,
    target: u32,
    threshold: u32,
    limit_only: bool,
    demand: u64,
    stale: bool,
    /// Node signals (throttled ‰, pressure ‰), or none (the metrics.k8s.io path).
    signals: Option<(u16, u16)>,
    borrow: bool,
}

fn pod_spec() -> impl Strategy<Value = PodSpec> {
    (
        any::<bool>(),
        any::<bool>(),
        50u64..2000,
        0u64..100,
        -2i32..3,
        (1u32..99).prop_flat_map(|t| (Just(t), (t + 1)..=100)),
        any::<bool>(),
        0u64..3000,
        prop::bool::weighted(0.1),
        prop::option::of((0u16..=1000, 0u16..=1000)),
        any::<bool>(),
    )
        .prop_map(
            |(
                batch,
                guaranteed,
                limit,
                ratio,
                priority,
                (target, threshold),
                limit_only,
                demand,
                stale,
                signals,
                borrow,
            )| {
                let request = if guaranteed {
                    limit
                } else {
                    (limit * ratio / 100).max(1).min(limit - 1)
                };
                PodSpec {
                    batch,
                    guaranteed,
                    request,
                    limit,
                    floor: 100 + limit / 4,
                    priority,
                    target,
                    threshold,
                    limit_only,
                    demand,
                    stale,
                    signals,
                    borrow,
                }
            },
        )
}

fn build(specs: &[PodSpec], allocatable: u64, samples: usize, agent: bool) -> NodeInput {
    let now = at(3600);
    let pods = specs
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let mut policy = if s.batch {
                batch_policy(s.floor, s.priority)
            } else {
                latency_policy()
            };
            policy.min = MilliCpu(50);
            policy.max = MilliCpu(2500);
            policy.floor = MilliCpu(s.floor.max(50));
            policy.latency.target_utilization = s.target;
            policy.latency.burst_threshold = s.threshold;
            if s.limit_only {
                policy.latency.request_policy = RequestPolicy::LimitOnly;
            }
            policy.borrow.enabled = s.borrow;
            let u = s.demand.min(s.limit);
            let samples = match s.signals {
                None => series(now, 15, &vec![u; samples]),
                Some((th, pr)) => signal_series(now, 15, &vec![(u, th, pr); samples]),
            };
            let mut p = pod(&format!("p{i}"), policy, s.request, s.limit, samples);
            p.policy = Arc::new((*p.policy).clone());
            if s.guaranteed {
                p.qos = QosClass::Guaranteed;
            }
            if s.stale {
                for smp in &mut p.containers[0].samples {
                    smp.time -= jiff::SignedDuration::from_secs(120);
                }
            }
            p
        })
        .collect();
    let mut n = node(allocatable, pods);
    if agent {
        n.actuator = Actuator::NodeAgent;
    }
    n
}

/// One 15-s sample per pod (pod `p<i>` uses `demand(i)`), carrying the pod's node signals if
/// its spec has them; `window` samples are kept.
fn observe_with_signals(
    n: &mut NodeInput,
    specs: &[PodSpec],
    t: jiff::Timestamp,
    window: usize,
    demand: impl Fn(usize) -> u64,
) {
    observe(n, t, window, |pod, _| {
        demand(pod.trim_start_matches('p').parse().unwrap_or(0))
    });
    for (p, spec) in n.pods.iter_mut().zip(specs) {
        if let (Some((th, pr)), Some(last)) = (spec.signals, p.containers[0].samples.last_mut()) {
            last.signals = Some(NodeSignals {
                interval: std::time::Duration::from_secs(15),
                throttled: Some(Permille(th)),
                pressure: Some(Permille(pr)),
            });
        }
    }
}

fn check_invariants(n: &NodeInput, d: &NodeDecision) -> Result<(), TestCaseError> {
    let capacity = n.allocatable.saturating_sub(n.reserve);
    let mut grew = false;
    let mut ls_limits = MilliCpu::ZERO;
    let mut floors = MilliCpu::ZERO;
    for (p, dec) in n.pods.iter().zip(&d.pods) {
        prop_assert_eq!(&p.name, &dec.pod);
        let c = &p.containers[0];
        let cur = c.current.limit.expect("limit");
        let orig = c.original();
        let new = dec.changes.first().map(|ch| ch.to).unwrap_or(c.current);
        let new_limit = new.limit.expect("limit");
        let new_req = new.request.expect("request");
        // QoS: Guaranteed stays request = limit; Burstable stays request < limit. (The node
        // agent never writes the spec: a throttled batch pod keeps its request, its shares.)
        let spec_untouched =
            n.actuator == Actuator::NodeAgent && p.role() == burst_scaler::api::Role::Batch;
        match p.qos {
            _ if spec_untouched => prop_assert_eq!(new.request, c.current.request),
            QosClass::Guaranteed => prop_assert_eq!(new_req, new_limit),
            _ => prop_assert!(new_req < new_limit, "{} {:?}", dec.reason, new),
        }
        prop_assert!(new_req >= MilliCpu(1));
        let pol = &p.policy;
        // A weight is never above the limit, and only the node agent has one.
        if let Some(w) = new.weight {
            prop_assert!(
                w <= new_limit,
                "weight {} above limit {}: {}",
                w,
                new_limit,
                dec.reason
            );
            prop_assert_eq!(n.actuator, Actuator::NodeAgent);
        }
        match p.role() {
            burst_scaler::api::Role::LatencySensitive => {
                if new_limit > cur {
                    grew = true;
                    prop_assert!(new_limit <= pol.max, "above max: {}", dec.reason);
                    prop_assert_eq!(dec.action, Action::ScaleUp);
                }
                if new_limit < cur {
                    prop_assert!(new_limit >= pol.min, "below min: {}", dec.reason);
                    prop_assert!(!c.samples.is_empty());
                }
                ls_limits += new_limit;
            }
            burst_scaler::api::Role::Batch => {
                prop_assert!(
                    new_limit >= pol.floor.min(cur),
                    "below floor: {}",
                    dec.reason
                );
                let ceiling = if pol.borrow.enabled {
                    pol.max.max(cur)
                } else {
                    orig.limit.expect("limit").max(cur)
                };
                prop_assert!(
                    new_limit <= ceiling,
                    "above original (or max when borrowing): {}",
                    dec.reason
                );
                floors += new_limit.min(pol.floor);
            }
        }
        if dec.action.changes() {
            prop_assert!(!dec.reason.is_empty());
            prop_assert!(
                dec.reason.contains(&p.name),
                "reason names the pod: {}",
                dec.reason
            );
        }
    }
    if grew {
        prop_assert!(
            ls_limits + floors <= capacity,
            "promised {} + floors {} > capacity {}: {}",
            ls_limits,
            floors,
            capacity,
            d.summary
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn bounds_qos_and_capacity_hold(specs in prop::collection::vec(pod_spec(), 1..8), alloc in 1000u64..8000, agent in any::<bool>()) {
        let n = build(&specs, alloc, 30, agent);
        let d = decide(&n, &config(), at(3600));
        check_invariants(&n, &d)?;
    }

    #[test]
    fn applying_a_decision_then_deciding_again_changes_nothing(
        specs in prop::collection::vec(pod_spec(), 1..8), alloc in 1000u64..8000, agent in any::<bool>(),
    ) {
        let now = at(3600);
        let mut n = build(&specs, alloc, 30, agent);
        let d = decide(&n, &config(), now);
        apply(&mut n, &d, now);
        let again = decide(&n, &config(), now);
        for p in &again.pods {
            prop_assert!(!p.action.changes(), "second pass changed {}: {}\n{}", p.pod, p.reason, again.summary);
        }
    }

    #[test]
    fn steady_demand_stops_acting(specs in prop::collection::vec(pod_spec(), 1..6), alloc in 1000u64..8000, agent in any::<bool>()) {
        // Constant demand, one pass every 15 s for 90 minutes: after convergence nothing moves,
        // and no pod goes back and forth.
        let mut n = build(&specs, alloc, 0, agent);
        for s in &mut n.pods { s.containers[0].samples.clear(); }
        let demand: Vec<u64> = specs.iter().map(|s| s.demand).collect();
        let mut history: Vec<Vec<Action>> = vec![vec![]; specs.len()];
        let passes = 360;
        let mut last_change = 0;
        for pass in 0..passes {
            let t = at(pass * 15);
            observe_with_signals(&mut n, &specs, t, 60, |i| demand[i]);
            let d = decide(&n, &config(), t);
            check_invariants(&n, &d)?;
            for (i, p) in d.pods.iter().enumerate() {
                if p.action.changes() {
                    history[i].push(p.action);
                    last_change = pass;
                }
            }
            apply(&mut n, &d, t);
        }
        prop_assert!(last_change < passes - 40, "still acting at pass {}: {:?}", last_change, history);
        for h in &history {
            let ups = h.iter().filter(|a| matches!(a, Action::ScaleUp | Action::Release | Action::Borrow)).count();
            let downs = h.iter().filter(|a| matches!(a, Action::ScaleDown | Action::Throttle)).count();
            // A direction reversal may happen once (e.g. a burst grows a pod, the window then
            // trims the overshoot); repeated reversals are flapping.
            let reversals = h.windows(2).filter(|w| {
                let up = |a: &Action| matches!(a, Action::ScaleUp | Action::Release | Action::Borrow);
                up(&w[0]) != up(&w[1])
            }).count();
            prop_assert!(reversals <= 2, "flapping: {:?} (ups {}, downs {})", h, ups, downs);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// A source may keep only `EngineConfig::history_for` of samples (the node agent does, to
    /// bound its memory): every decision is the same as with the whole history.
    #[test]
    fn history_beyond_history_for_changes_no_decision(
        specs in prop::collection::vec(pod_spec(), 1..5),
        alloc in 1000u64..6000,
        agent in any::<bool>(),
        phases in prop::collection::vec(prop::collection::vec(0u64..3000, 5), 3..6),
        down_window in prop::sample::select(vec![30u32, 120, 300, 900]),
    ) {
        let cfg = config();
        let mut full = build(&specs, alloc, 0, agent);
        for p in &mut full.pods {
            p.containers[0].samples.clear();
            let mut policy = (*p.policy).clone();
            policy.behavior.scale_down.stabilization_seconds = down_window;
            p.policy = Arc::new(policy);
        }
        let mut trimmed = full.clone();
        for pass in 0..240u64 {
            let t = at(pass as i64 * 15);
            let phase = &phases[(pass as usize / 40) % phases.len()];
            for n in [&mut full, &mut trimmed] {
                observe_with_signals(n, &specs, t, usize::MAX, |i| phase[i % phase.len()]);
            }
            for p in &mut trimmed.pods {
                let keep = cfg.history_for(&p.policy);
                let from = t - jiff::SignedDuration::try_from(keep).unwrap_or(jiff::SignedDuration::MAX);
                for c in &mut p.containers {
                    c.samples.retain(|s| s.time >= from);
                }
            }
            let a = decide(&full, &cfg, t);
            let b = decide(&trimmed, &cfg, t);
            for (x, y) in a.pods.iter().zip(&b.pods) {
                prop_assert_eq!(
                    (x.action, &x.changes), (y.action, &y.changes),
                    "pass {}: {} decided differently with trimmed history:\nfull: {}\ntrimmed: {}", pass, x.pod, x.reason, y.reason
                );
            }
            apply(&mut full, &a, t);
            apply(&mut trimmed, &b, t);
        }
    }
}
