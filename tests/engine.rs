//! Scenarios for each rule of the decision engine (see `src/engine/mod.rs`).

use burst_scaler::engine::fixtures::*;
use burst_scaler::engine::*;
use burst_scaler::quantity::MilliCpu;

const NOW: i64 = 3600;

fn now() -> jiff::Timestamp {
    at(NOW)
}

fn run(node: &NodeInput) -> NodeDecision {
    decide(node, &config(), now())
}

fn only(d: &NodeDecision, pod: &str) -> PodDecision {
    d.pods
        .iter()
        .find(|p| p.pod == pod)
        .cloned()
        .unwrap_or_else(|| panic!("no decision for {pod}: {d:#?}"))
}

fn new_limit(d: &PodDecision) -> u64 {
    d.changes[0].to.limit.expect("limit").0
}

fn new_request(d: &PodDecision) -> u64 {
    d.changes[0].to.request.expect("request").0
}

fn ls(name: &str, req: u64, limit: u64, usage: &[u64]) -> PodInput {
    pod(name, latency_policy(), req, limit, series(now(), 15, usage))
}

fn batch(name: &str, req: u64, limit: u64, usage: &[u64], floor: u64, prio: i32) -> PodInput {
    pod(
        name,
        batch_policy(floor, prio),
        req,
        limit,
        series(now(), 15, usage),
    )
}

/// A batch pod already throttled from `original` to `limit`, last changed `ago` seconds before now.
fn throttled(name: &str, original: u64, limit: u64, usage: &[u64], ago: i64) -> PodInput {
    let mut p = batch(name, 100, limit, usage, 200, 0);
    p.containers[0].original = Some(CpuResources::new(100, original));
    p.last_change = Some(at(NOW - ago));
    p
}

// --- latency-sensitive bursts ------------------------------------------------------------------

#[test]
fn burst_grows_the_limit_toward_usage_over_target() {
    let d = run(&node(4000, vec![ls("web-7f9c", 250, 500, &[300, 460])]));
    let p = only(&d, "web-7f9c");
    assert_eq!(p.action, Action::ScaleUp);
    // 460m / 60 % = 767m.
    assert_eq!(new_limit(&p), 767);
    assert_eq!(
        p.reason,
        "web-7f9c/main: cpu burst 92% of 500m limit for 1 sample → limit 767m"
    );
}

#[test]
fn burst_growth_is_bounded() {
    // (limit, usage, max step %, expected new limit, reason suffix)
    let cases: &[(u64, u64, u32, u64, &str)] = &[
        (1800, 1800, 100, 2000, "(capped by spec.cpu.max)"),
        (500, 500, 20, 600, "(capped by scaleUp.maxStepPercent)"),
        (500, 500, 100, 834, "limit 834m"),
    ];
    for &(limit, usage, step, want, suffix) in cases {
        let mut p = ls("web", limit / 2, limit, &[usage]);
        let mut policy = latency_policy();
        policy.behavior.scale_up.max_step_percent = step;
        p.policy = std::sync::Arc::new(policy);
        let d = only(&run(&node(8000, vec![p])), "web");
        assert_eq!(new_limit(&d), want, "{limit} {usage} {step}: {}", d.reason);
        assert!(d.reason.ends_with(suffix), "{}", d.reason);
    }
}

#[test]
fn burst_needs_enough_samples_and_duration() {
    // (burstSamples, scaleUp.stabilizationSeconds, samples, expect growth)
    let cases: &[(u32, u32, &[u64], bool)] = &[
        (1, 0, &[100, 450], true),
        (2, 0, &[100, 450], false),
        (2, 0, &[450, 450], true),
        (1, 30, &[100, 450, 450], false), // burst seen for 15 s only
        (1, 30, &[450, 450, 450], true),  // burst seen for 30 s
        (1, 0, &[450, 100], false),       // over: newest sample is quiet
    ];
    for &(samples, stab, usage, grows) in cases {
        let mut p = ls("web", 250, 500, usage);
        let mut policy = latency_policy();
        policy.latency.burst_samples = samples;
        policy.behavior.scale_up.stabilization_seconds = stab;
        p.policy = std::sync::Arc::new(policy);
        let d = only(&run(&node(8000, vec![p])), "web");
        assert_eq!(
            d.action == Action::ScaleUp,
            grows,
            "{samples} {stab} {usage:?}: {}",
            d.reason
        );
    }
}

// --- latency-sensitive quiet periods -----------------------------------------------------------

/// A latency-sensitive pod grown to `limit` from 500m, changed `ago` seconds before now, with
/// `n` samples of `usage`.
fn grown(limit: u64, usage: u64, n: usize, ago: i64) -> PodInput {
    let mut p = ls("web", limit / 2, limit, &vec![usage; n]);
    p.containers[0].original = Some(CpuResources::new(250, 500));
    p.last_change = Some(at(NOW - ago));
    p
}

#[test]
fn scale_down_steps_toward_usage_after_the_window() {
    // 25 samples (360 s) at 200m: goal 334m, step 25 % of 1600m → 1200m.
    let d = only(&run(&node(8000, vec![grown(1600, 200, 25, 400)])), "web");
    assert_eq!(d.action, Action::ScaleDown);
    assert_eq!(new_limit(&d), 1200);
    assert!(
        d.reason.contains(
            "usage at most 200m (13% of 1600m limit) for 300s → limit 1200m (toward 334m"
        ),
        "{}",
        d.reason
    );
    // Near the goal, it lands on it.
    let d = only(&run(&node(8000, vec![grown(400, 200, 25, 400)])), "web");
    assert_eq!(new_limit(&d), 334);
}

#[test]
fn scale_down_waits_for_the_window() {
    // (changed ago, samples, expect scale-down)
    let cases: &[(i64, usize, bool)] = &[
        (400, 25, true),
        (100, 25, false), // changed too recently
        (400, 10, false), // history shorter than the window
    ];
    for &(ago, n, down) in cases {
        let d = only(&run(&node(8000, vec![grown(1600, 200, n, ago)])), "web");
        assert_eq!(
            d.action == Action::ScaleDown,
            down,
            "{ago} {n}: {}",
            d.reason
        );
    }
}

#[test]
fn scale_down_never_below_min_nor_the_recommendation() {
    let d = only(&run(&node(8000, vec![grown(300, 10, 25, 400)])), "web");
    assert_eq!(new_limit(&d), 250, "min: {}", d.reason);

    let mut p = grown(1000, 100, 25, 400);
    p.containers[0].recommendation = Some(Recommendation {
        lower_bound: MilliCpu(200),
        target: MilliCpu(400),
        upper_bound: MilliCpu(500),
    });
    // Recommended request 400m at the original 250m:500m ratio → limit 800m, but a
    // recommendation never holds a pod above its original limit (500m): step 25 % → 750m.
    let d = only(&run(&node(8000, vec![p.clone()])), "web");
    assert_eq!(new_limit(&d), 750, "{}", d.reason);
    assert!(d.reason.contains("recommendation 500m"), "{}", d.reason);
    // Below the original the recommendation holds: at 900m (original 250m:1000m), request
    // 150m → limit 600m; goal max(167m, 600m), step 25 % → 675m.
    p.containers[0].current = CpuResources::new(225, 900);
    p.containers[0].recommendation = Some(Recommendation {
        lower_bound: MilliCpu(100),
        target: MilliCpu(150),
        upper_bound: MilliCpu(300),
    });
    p.containers[0].original = Some(CpuResources::new(250, 1000));
    let d = only(&run(&node(8000, vec![p])), "web");
    assert_eq!(new_limit(&d), 675, "{}", d.reason);
    assert!(d.reason.contains("recommendation 600m"), "{}", d.reason);
}

// --- blind is safe -----------------------------------------------------------------------------

#[test]
fn stale_metrics_never_shrink_a_latency_sensitive_pod() {
    let mut p = grown(1600, 100, 25, 4000);
    // Newest sample 31 s old: stale (2 × 15 s).
    for s in &mut p.containers[0].samples {
        s.time -= jiff::SignedDuration::from_secs(31);
    }
    let d = only(&run(&node(8000, vec![p])), "web");
    assert_eq!(d.action, Action::None);
    assert!(
        d.reason
            .contains("no fresh usage sample: holding limit 1600m"),
        "{}",
        d.reason
    );
}

#[test]
fn stale_metrics_never_tighten_a_throttle() {
    let mut b = batch("compile", 100, 1800, &[1800], 200, 0);
    b.containers[0].samples.clear();
    let d = run(&node(2000, vec![ls("web", 250, 500, &[500]), b]));
    let c = only(&d, "compile");
    assert_eq!(c.action, Action::None, "{}", c.reason);
    assert!(
        c.reason.contains("no throttle is tightened"),
        "{}",
        c.reason
    );
}

#[test]
fn throttles_are_released_after_metrics_have_been_missing_too_long() {
    // Throttled 1000m (original 2000m), newest sample 301 s old, node otherwise quiet but with a
    // bursting web pod (pressure): the blind pod is still released, step by step.
    let mut b = throttled("compile", 2000, 1000, &[900], 400);
    b.containers[0].samples[0].time = at(NOW - 301);
    let d = run(&node(2000, vec![ls("web", 250, 500, &[500]), b]));
    let c = only(&d, "compile");
    assert_eq!(c.action, Action::Release, "{}", c.reason);
    assert_eq!(new_limit(&c), 1200);
    assert!(
        c.reason.contains("no usage for 301s (release after 300s)"),
        "{}",
        c.reason
    );
}

// --- capacity and batch arbitration ------------------------------------------------------------

#[test]
fn growth_is_bounded_by_what_the_node_can_give_after_batch_floors() {
    // 2000m node, 100m reserve. Batch floor 500m, web limit 500m: 900m can still be promised.
    // Web wants 834m (+334m): granted. Batch yields: web needs 834m, so batch gets 1066m.
    let d = run(&node(
        2000,
        vec![
            ls("web", 250, 500, &[500]),
            batch("compile", 100, 1500, &[1400], 500, 0),
        ],
    ));
    assert_eq!(new_limit(&only(&d, "web")), 834);
    let c = only(&d, "compile");
    assert_eq!(c.action, Action::Throttle);
    assert_eq!(new_limit(&c), 1066);
    assert!(
        c.reason.starts_with("compile/main: throttled 1500m → 1066m (floor 500m, priority 0): latency-sensitive pods need 834m"),
        "{}",
        c.reason
    );

    // With a 1200m floor only 200m is left to promise: growth is cut to 700m.
    let d = run(&node(
        2000,
        vec![
            ls("web", 250, 500, &[500]),
            batch("compile", 100, 1500, &[1400], 1200, 0),
        ],
    ));
    let w = only(&d, "web");
    assert_eq!(new_limit(&w), 700, "{}", w.reason);
    assert!(w.reason.contains("capped by node capacity"), "{}", w.reason);

    // Nothing left at all: no growth, and the reason says why.
    let d = run(&node(
        2000,
        vec![
            ls("web", 250, 500, &[500]),
            batch("compile", 100, 1400, &[1400], 1400, 0),
        ],
    ));
    let w = only(&d, "web");
    assert_eq!(w.action, Action::None);
    assert!(
        w.reason.contains("the node has no CPU to give"),
        "{}",
        w.reason
    );
}

#[test]
fn ungoverned_pods_count_against_capacity() {
    let mut n = node(
        2000,
        vec![
            ls("web", 250, 500, &[500]),
            batch("compile", 100, 1000, &[900], 500, 0),
        ],
    );
    n.ungoverned.push(UngovernedPod {
        name: "kube-system/coredns".into(),
        request: MilliCpu(100),
        usage: Some(MilliCpu(300)),
    });
    // Promise room: 1900 - 300 (others) - 500 (floor) - 500 (web) = 600 → web can have 834m.
    let d = decide(&n, &config(), now());
    assert_eq!(new_limit(&only(&d, "web")), 834);
    // Batch allowance: 1900 - 300 - 834 = 766.
    assert_eq!(new_limit(&only(&d, "compile")), 766);
    assert!(d.summary.contains("others 300m"), "{}", d.summary);
}

#[test]
fn who_yields_first() {
    // Web bursts to 834m on a 2000m node: batch must fit in 1066m.
    // (pods: name, limit, usage, floor, priority) → expected new limits.
    type Case = (
        &'static [(&'static str, u64, u64, u64, i32)],
        &'static [(&'static str, u64)],
    );
    let cases: &[Case] = &[
        // Lower priority yields first.
        (
            &[("a", 800, 700, 200, 5), ("b", 800, 700, 200, 0)],
            &[("a", 800), ("b", 266)],
        ),
        // Same priority: the one using the most yields first.
        (
            &[("a", 800, 600, 200, 0), ("b", 800, 700, 200, 0)],
            &[("a", 800), ("b", 266)],
        ),
        // Floors are never crossed: the next one yields the rest.
        (
            &[("a", 800, 700, 400, 0), ("b", 800, 600, 200, 0)],
            &[("a", 400), ("b", 666)],
        ),
    ];
    for (pods, want) in cases {
        let mut all = vec![ls("web", 250, 500, &[500])];
        for &(name, limit, usage, floor, prio) in pods.iter() {
            all.push(batch(name, 100, limit, &[usage], floor, prio));
        }
        let d = run(&node(2000, all));
        for &(name, limit) in want.iter() {
            let p = only(&d, name);
            let got = if p.action.changes() {
                new_limit(&p)
            } else {
                800
            };
            assert_eq!(got, limit, "{name} in {pods:?}: {}", p.reason);
        }
    }
}

#[test]
fn release_gives_cpu_back_gradually_when_pressure_is_gone() {
    // Web quiet and at its original limit: no pressure. 10 % of 2000m per step.
    let d = run(&node(
        2000,
        vec![
            ls("web", 250, 500, &[100]),
            throttled("compile", 2000, 1000, &[1000], 60),
        ],
    ));
    let c = only(&d, "compile");
    assert_eq!(c.action, Action::Release);
    assert_eq!(new_limit(&c), 1200);
    assert_eq!(
        c.reason,
        "compile/main: no latency-sensitive pressure on the node → limit 1000m → 1200m (original 2000m)"
    );
    // Never past the original.
    let d = run(&node(
        2000,
        vec![throttled("compile", 2000, 1900, &[1000], 60)],
    ));
    assert_eq!(new_limit(&only(&d, "compile")), 2000);
    // Paced: not again within one sampling interval.
    let d = run(&node(
        2000,
        vec![throttled("compile", 2000, 1000, &[1000], 5)],
    ));
    assert_eq!(only(&d, "compile").action, Action::None);
}

#[test]
fn under_pressure_release_stays_within_the_allowance() {
    // Web at spec.cpu.max (500m) and throttled in 40 % of its periods for 45 s: pressure, it
    // needs its whole limit. Allowance for batch: 1900 - 500 = 1400; no contention (500m +
    // 700m used). Batch at 1000m may get 200m (one step) back.
    let mut policy = latency_policy();
    policy.max = MilliCpu(500);
    let web = pod(
        "web",
        policy,
        250,
        500,
        signal_series(now(), 15, &[(450, 400, 400); 3]),
    );
    let d = run(&node(
        2000,
        vec![web.clone(), throttled("compile", 2000, 1000, &[700], 60)],
    ));
    let c = only(&d, "compile");
    assert_eq!(new_limit(&c), 1200, "{}", c.reason);
    // At the allowance: held.
    let d = run(&node(
        2000,
        vec![web, throttled("compile", 2000, 1400, &[700], 60)],
    ));
    assert_eq!(only(&d, "compile").action, Action::None);
}

// --- what cannot be governed -------------------------------------------------------------------

#[test]
fn pods_that_cannot_be_governed_are_skipped_with_a_reason() {
    let mut be = ls("besteffort", 250, 500, &[500]);
    be.qos = QosClass::BestEffort;
    let mut nolimit = ls("nolimit", 250, 500, &[500]);
    nolimit.containers[0].current.limit = None;
    let mut other = ls("sidecar-only", 250, 500, &[500]);
    let mut policy = latency_policy();
    policy.containers = vec!["web".into()];
    other.policy = std::sync::Arc::new(policy);
    let d = run(&node(8000, vec![be, nolimit, other]));
    let want = [
        ("besteffort", "BestEffort pod cannot be governed"),
        ("nolimit", "no governed container has a CPU limit (main)"),
        (
            "sidecar-only",
            "none of its containers is named in spec.containers",
        ),
    ];
    for (pod, msg) in want {
        let p = only(&d, pod);
        assert_eq!(p.action, Action::Skip);
        assert!(p.reason.contains(msg), "{}", p.reason);
    }
}

#[test]
fn outstanding_resizes_are_waited_for() {
    for (state, msg) in [
        (
            ResizeState::InProgress,
            "waiting for the resize in progress",
        ),
        (ResizeState::Deferred, "waiting for the deferred resize"),
        (
            ResizeState::Infeasible,
            "Infeasible on this node; not retried",
        ),
    ] {
        let mut p = ls("web", 250, 500, &[500]);
        p.resize = state;
        let d = only(&run(&node(8000, vec![p])), "web");
        assert_eq!(d.action, Action::None);
        assert!(d.reason.contains(msg), "{}", d.reason);
    }
}

// --- requests and QoS --------------------------------------------------------------------------

#[test]
fn requests_follow_the_policy_and_qos_is_kept() {
    // Guaranteed: request = limit.
    let d = only(&run(&node(8000, vec![ls("g", 500, 500, &[500])])), "g");
    assert_eq!((new_request(&d), new_limit(&d)), (834, 834));
    // Burstable, KeepRatio: 250:500 → 417:834.
    let d = only(&run(&node(8000, vec![ls("b", 250, 500, &[500])])), "b");
    assert_eq!((new_request(&d), new_limit(&d)), (417, 834));
    // Burstable, LimitOnly: request unchanged.
    let mut p = ls("l", 250, 500, &[500]);
    let mut policy = latency_policy();
    policy.latency.request_policy = burst_scaler::api::RequestPolicy::LimitOnly;
    p.policy = std::sync::Arc::new(policy);
    let d = only(&run(&node(8000, vec![p])), "l");
    assert_eq!((new_request(&d), new_limit(&d)), (250, 834));
    // Batch with request above the new limit: request lowered, kept below the limit.
    let d = run(&node(
        2000,
        vec![
            ls("web", 250, 500, &[500]),
            batch("compile", 1200, 1500, &[1400], 500, 0),
        ],
    ));
    let c = only(&d, "compile");
    assert_eq!((new_request(&c), new_limit(&c)), (1065, 1066));
}

// --- stability ---------------------------------------------------------------------------------

#[test]
fn steady_demand_converges_then_stops() {
    // Web wants 1000m, compile wants everything; 15 s passes for an hour.
    let mut n = node(
        2000,
        vec![
            ls("web", 250, 500, &[]),
            batch("compile", 100, 1800, &[], 300, 0),
        ],
    );
    let mut actions = vec![];
    for pass in 0..240 {
        let t = at(pass * 15);
        observe(
            &mut n,
            t,
            60,
            |pod, _| if pod == "web" { 1000 } else { 2000 },
        );
        let d = decide(&n, &config(), t);
        for p in &d.pods {
            if p.action.changes() {
                actions.push((pass, p.pod.clone(), p.action));
            }
        }
        apply(&mut n, &d, t);
    }
    assert!(!actions.is_empty());
    let last = actions.last().map(|a| a.0).unwrap_or(0);
    assert!(last < 10, "still acting after {last} passes: {actions:?}");
    let web = &n.pods[0].containers[0].current;
    // Settled below the burst threshold: 1000m < 85 % of the limit.
    let limit = web.limit.expect("limit").0;
    assert!(1000 * 100 < limit * 85, "web limit {web:?}");
}
