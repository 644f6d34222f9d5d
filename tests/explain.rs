//! `burst-scaler explain` (pure part): from cluster facts to the explanation a user reads —
//! who governs a pod and why not, which actuator, what is in force against the spec and the
//! originals, the decider's last decision and its current verdict, and the pod's Events.
//! The same on the real cluster: `tests/agent_cluster.rs`.

use std::sync::Arc;

use burst_scaler::api::{BurstScaler, BurstScalerNodeStatus};
use burst_scaler::engine::{Action, ContainerChange, CpuResources, NodeDecision, PodDecision};
use burst_scaler::explain::model::{
    PodFacts, ScalerFacts, explain_pod, explain_scaler, render_pod, render_scaler,
};
use burst_scaler::explain::verdict::Verdicts;
use burst_scaler::quantity::MilliCpu;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::events::v1::Event;
use serde_json::{Value, json};

fn t(s: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + s).expect("time")
}

fn pod(name: &str, app: &str, req: &str, lim: &str, annotations: Value) -> Arc<Pod> {
    Arc::new(
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "ns", "uid": format!("uid-{name}"),
                         "labels": {"app": app}, "annotations": annotations},
            "spec": {"nodeName": "node-1", "containers": [{"name": "main",
                "resources": {"requests": {"cpu": req}, "limits": {"cpu": lim}}}]},
            "status": {"phase": "Running", "qosClass": "Burstable"}
        }))
        .expect("pod"),
    )
}

fn scaler(name: &str, app: &str, spec: Value, status: Value) -> Arc<BurstScaler> {
    let mut s = json!({"selector": {"matchLabels": {"app": app}}, "cpu": {"min": "100m", "max": "2"},
                       "mode": "Auto"});
    if let (Some(o), Some(e)) = (s.as_object_mut(), spec.as_object()) {
        o.extend(e.clone());
    }
    Arc::new(
        serde_json::from_value(json!({
            "apiVersion": "burstscaler.dev/v1alpha1", "kind": "BurstScaler",
            "metadata": {"name": name, "namespace": "ns", "uid": format!("uid-bsc-{name}")},
            "spec": s, "status": status
        }))
        .expect("scaler"),
    )
}

fn batch(name: &str, app: &str) -> Arc<BurstScaler> {
    scaler(
        name,
        app,
        json!({"role": "Batch", "batch": {"floor": "600m"}}),
        json!({"conditions": [{"type": "Ready", "status": "True", "reason": "Ready",
            "message": "governs 1 pod (1 through the node agent)", "lastTransitionTime": "2027-01-15T08:00:00Z"}]}),
    )
}

/// The node's BurstScalerNode status: the agent holds `compile` at 600m of its 2-core limit.
fn node_status() -> BurstScalerNodeStatus {
    serde_json::from_value(json!({
        "agent": {"pod": "bs-agent-x", "version": "0.1.0", "cgroups": "v1 cgroupfs", "intervalSeconds": 1},
        "governedPods": 1, "throttledPods": 1, "raisedPods": 0,
        "pods": [{"namespace": "ns", "name": "compile", "uid": "uid-compile", "burstScaler": "compile",
                  "role": "Batch", "mode": "Auto",
                  "containers": [{"name": "main", "specRequest": "1", "specLimit": "2", "limit": "600m", "weight": "1"}],
                  "lastDecision": {"time": "2027-01-15T08:00:10Z", "action": "Throttle", "applied": true,
                                   "reason": "ns/web's CPU pressure 52% ≥ 40% for 3 s → limit 600m (floor)"}}]
    }))
    .expect("node status")
}

fn verdicts(pod: &str, action: Action, reason: &str, changes: Vec<ContainerChange>) -> Verdicts {
    Verdicts::new(
        "agent",
        "bs-agent-x",
        t(100),
        true,
        &[NodeDecision {
            node: "node-1".into(),
            pods: vec![PodDecision {
                pod: pod.into(),
                action,
                changes,
                reason: reason.into(),
            }],
            summary: "allocatable 2000m, reserve 100m".into(),
        }],
    )
}

fn event(uid_related: &str, reason: &str, secs: i64) -> Event {
    serde_json::from_value(json!({
        "metadata": {"name": format!("e-{reason}-{secs}"), "namespace": "ns"},
        "eventTime": t(secs).to_string(),
        "type": "Normal", "reason": reason, "note": format!("{reason} note"), "action": reason,
        "reportingController": "burst-scaler-agent", "reportingInstance": "bs-agent-x",
        "regarding": {"kind": "BurstScaler", "name": "compile", "namespace": "ns", "uid": "uid-bsc-compile"},
        "related": {"kind": "Pod", "name": "x", "namespace": "ns", "uid": uid_related}
    }))
    .expect("event")
}

fn facts<'a>(
    p: &'a Arc<Pod>,
    scalers: &'a [Arc<BurstScaler>],
    node: Option<&'a BurstScalerNodeStatus>,
    events: &'a [Event],
    verdicts: Result<Verdicts, String>,
) -> PodFacts<'a> {
    PodFacts {
        pod: p,
        scalers,
        node,
        agent_live: Ok(node.is_some()),
        resize_supported: Ok(false),
        events,
        verdicts,
        now: t(130),
    }
}

#[test]
fn a_throttled_batch_pod_shows_its_limit_in_force_the_agents_last_decision_and_what_comes_next() {
    let compile = pod("compile", "compile", "1", "2", json!({}));
    let scalers = [batch("compile", "compile")];
    let status = node_status();
    let events = [
        event("uid-compile", "Throttle", 10),
        event("uid-other", "Release", 20),
        event("uid-compile", "RecommendRelease", 30),
    ];
    let next = verdicts(
        "ns/compile",
        Action::None,
        "ns/web's CPU pressure 45% ≥ 40%: batch pods stay throttled",
        vec![],
    );
    let e = explain_pod(&facts(&compile, &scalers, Some(&status), &events, Ok(next)));

    let g = e.governed_by.as_ref().expect("governed");
    assert_eq!(g.burst_scaler, "compile");
    assert!(e.not_governed.is_none());
    assert_eq!(e.actuator.kind, "NodeAgent");
    assert_eq!(
        e.actuator.applies,
        Some(true),
        "Auto through a live, acting agent applies"
    );
    assert!(
        e.actuator.detail.contains("bs-agent-x"),
        "{}",
        e.actuator.detail
    );
    let c = &e.containers[0];
    assert_eq!(
        c.in_force
            .as_ref()
            .and_then(|f| f.limit.as_ref())
            .map(ToString::to_string),
        Some("600m".into())
    );
    assert!(
        c.state
            .starts_with("throttled: limit 600m below the spec's 2000m"),
        "{}",
        c.state
    );
    // The last decision is the agent's record, field for field.
    let last = e.last_decision.as_ref().expect("last decision");
    let recorded = status.pods[0].last_decision.as_ref().expect("recorded");
    assert_eq!(
        (
            last.source.as_str(),
            last.time,
            last.action.as_str(),
            last.applied,
            last.reason.as_str()
        ),
        (
            "agent",
            recorded.time.0,
            recorded.action.as_str(),
            Some(recorded.applied),
            recorded.reason.as_str()
        )
    );
    let n = e.next.as_ref().expect("next");
    assert_eq!(n.action, "None");
    assert!(n.reason.contains("stay throttled"));
    assert_eq!(n.node_summary, "allocatable 2000m, reserve 100m");
    // Only the pod's own Events, newest first.
    let reasons: Vec<&str> = e.events.iter().map(|e| e.reason.as_str()).collect();
    assert_eq!(reasons, ["RecommendRelease", "Throttle"]);

    let text = render_pod(&e, t(130));
    for want in [
        "Governed by: BurstScaler compile (Batch, mode Auto, Ready=True",
        "limit 600m, weight 1",
        "Last decision (agent,",
        "Throttle, applied",
        "Next (agent bs-agent-x, 30s ago): None",
        "RecommendRelease",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
}

#[test]
fn an_ungoverned_pod_says_which_burstscalers_exist_and_what_they_select() {
    let lone = pod("lone", "lone", "100m", "200m", json!({}));
    let scalers = [batch("compile", "compile")];
    let e = explain_pod(&facts(&lone, &scalers, None, &[], Err("unused".into())));
    assert!(e.governed_by.is_none());
    let why = e.not_governed.as_deref().expect("why");
    assert!(
        why.contains("no BurstScaler in namespace ns selects it")
            && why.contains("app=lone")
            && why.contains("compile (app=compile)"),
        "{why}"
    );
    assert_eq!(
        e.next_unavailable.as_deref(),
        Some("the pod is not governed")
    );
    assert!(e.next.is_none() && e.last_decision.is_none());
    let text = render_pod(&e, t(130));
    assert!(
        text.contains("Governed by: nothing: no BurstScaler"),
        "{text}"
    );
    assert!(!text.contains("Next"), "{text}");
}

#[test]
fn two_burstscalers_mode_off_a_pending_pod_and_an_invalid_burstscaler_each_say_why() {
    let p = pod("web", "web", "100m", "200m", json!({}));
    let ls = |n: &str, mode: &str| {
        scaler(
            n,
            "web",
            json!({"role": "LatencySensitive", "mode": mode}),
            json!({}),
        )
    };
    let why = |scalers: &[Arc<BurstScaler>], p: &Arc<Pod>| {
        explain_pod(&facts(p, scalers, None, &[], Err("-".into())))
            .not_governed
            .unwrap_or_default()
    };
    let two = why(&[ls("a", "Auto"), ls("b", "Auto")], &p);
    assert!(two.contains("selected by BurstScalers a, b"), "{two}");
    let off = why(&[ls("a", "Off")], &p);
    assert!(
        off.contains("BurstScaler a selects it in mode Off"),
        "{off}"
    );
    let invalid = scaler(
        "bad",
        "web",
        json!({"role": "LatencySensitive", "cpu": {"min": "2", "max": "1500m"}}),
        json!({}),
    );
    let bad = why(&[invalid], &p);
    assert!(
        bad.contains("BurstScaler bad is invalid") && bad.contains("spec.cpu"),
        "{bad}"
    );
    let mut pending = (*p).clone();
    if let Some(s) = pending.status.as_mut() {
        s.phase = Some("Pending".into());
    }
    let pending = why(&[ls("a", "Auto")], &Arc::new(pending));
    assert!(
        pending.contains("the pod is Pending: burst-scaler governs only Running pods"),
        "{pending}"
    );
}

#[test]
fn without_an_agent_the_pod_spec_is_compared_with_the_recorded_originals() {
    // The controller resized it (pods/resize) from 500m to 800m and recorded the original.
    let orig = json!({"containers": {"main": {"request": 250, "limit": 500}}, "lastChange": t(50).to_string()});
    let web = pod(
        "web",
        "web",
        "250m",
        "800m",
        json!({"burstscaler.dev/original-resources": orig.to_string()}),
    );
    let scalers = [scaler(
        "web",
        "web",
        json!({"role": "LatencySensitive"}),
        json!({"lastDecision": {"time": t(50).to_string(), "action": "ScaleUp", "pod": "ns/web",
                                "reason": "burst 95% of 500m"}}),
    )];
    let mut f = facts(&web, &scalers, None, &[], Err("no controller pod".into()));
    f.resize_supported = Ok(true);
    let e = explain_pod(&f);
    assert_eq!(e.actuator.kind, "InPlaceResize");
    let c = &e.containers[0];
    assert_eq!(
        c.original
            .as_ref()
            .and_then(|o| o.limit.as_ref())
            .map(ToString::to_string),
        Some("500m".into())
    );
    assert!(
        c.state
            .starts_with("raised: limit 800m above the original 500m"),
        "{}",
        c.state
    );
    let last = e
        .last_decision
        .as_ref()
        .expect("from the BurstScaler's status");
    assert_eq!(
        (last.source.as_str(), last.action.as_str()),
        ("controller", "ScaleUp")
    );
    assert_eq!(e.next_unavailable.as_deref(), Some("no controller pod"));

    // Neither an agent nor pods/resize: it says nothing can act.
    f.resize_supported = Ok(false);
    let e = explain_pod(&f);
    assert_eq!(e.actuator.kind, "None");
    assert_eq!(e.actuator.applies, Some(false));
    assert!(render_pod(&e, t(130)).contains("decisions are reported, not applied"));
}

#[test]
fn a_verdict_with_changes_prints_them_and_a_decider_that_skipped_the_pod_says_so() {
    let compile = pod("compile", "compile", "1", "2", json!({}));
    let scalers = [batch("compile", "compile")];
    let status = node_status();
    let change = ContainerChange {
        container: "main".into(),
        from: CpuResources {
            limit: Some(MilliCpu(600)),
            ..CpuResources::new(1000, 2000)
        },
        to: CpuResources {
            limit: Some(MilliCpu(900)),
            ..CpuResources::new(1000, 2000)
        },
    };
    let v = verdicts("ns/compile", Action::Release, "pressure gone", vec![change]);
    let e = explain_pod(&facts(&compile, &scalers, Some(&status), &[], Ok(v)));
    let text = render_pod(&e, t(130));
    assert!(
        text.contains("main: request 1000m, limit 600m → request 1000m, limit 900m"),
        "{text}"
    );
    let other = verdicts("ns/else", Action::None, "-", vec![]);
    let e = explain_pod(&facts(&compile, &scalers, Some(&status), &[], Ok(other)));
    assert!(
        e.next_unavailable
            .as_deref()
            .is_some_and(|w| w.contains("did not decide this pod in its newest pass")),
        "{:?}",
        e.next_unavailable
    );
}

#[test]
fn explain_bsc_lists_every_selected_pod_with_its_state_and_the_validation_errors() {
    let compile = pod("compile", "compile", "1", "2", json!({}));
    let bsc = batch("compile", "compile");
    let scalers = [bsc.clone()];
    let status = node_status();
    let next = verdicts("ns/compile", Action::None, "hold", vec![]);
    let e = explain_pod(&facts(&compile, &scalers, Some(&status), &[], Ok(next)));
    let s = explain_scaler(&ScalerFacts {
        scaler: &bsc,
        pods: vec![e],
        events: &[],
    });
    assert!(s.invalid.is_empty());
    assert_eq!(s.pods.len(), 1);
    assert!(s.pods[0].governed);
    assert_eq!(s.pods[0].last_action.as_deref(), Some("Throttle"));
    assert_eq!(s.pods[0].next_action.as_deref(), Some("None"));
    let text = render_scaler(&s, t(130));
    assert!(
        text.contains("ns/compile") && text.contains("Throttle / None"),
        "{text}"
    );

    let bad = scaler(
        "bad",
        "x",
        json!({"role": "Batch", "cpu": {"min": "2", "max": "1500m"}, "batch": {"floor": "100m"}}),
        json!({}),
    );
    let s = explain_scaler(&ScalerFacts {
        scaler: &bad,
        pods: vec![],
        events: &[],
    });
    assert!(
        s.invalid.iter().any(|i| i.contains("spec.cpu")),
        "{:?}",
        s.invalid
    );
    assert!(render_scaler(&s, t(130)).contains("Selected pods: none"));
}

#[test]
fn absurd_facts_do_not_panic() {
    // A pod without node, uid, containers or status; a BurstScalerNode entry with garbage
    // quantities; events without times.
    let bare: Arc<Pod> = Arc::new(
        serde_json::from_value(json!({"metadata": {"name": "x", "namespace": "ns"}})).expect("pod"),
    );
    let scalers = [batch("compile", "compile")];
    let e = explain_pod(&facts(&bare, &scalers, None, &[], Err("-".into())));
    assert!(e.not_governed.is_some());
    let _ = render_pod(&e, t(0));

    let mut status = node_status();
    status.pods[0].containers[0].limit = Some(burst_scaler::quantity::CpuQuantity::new("lots"));
    let compile = pod("compile", "compile", "1", "2", json!({}));
    let ev: Event = serde_json::from_value(json!({"metadata": {"name": "e"},
        "related": {"uid": "uid-compile"}}))
    .expect("event");
    let e = explain_pod(&facts(
        &compile,
        &scalers,
        Some(&status),
        &[ev],
        Err("-".into()),
    ));
    assert_eq!(e.events.len(), 1);
    let _ = render_pod(&e, t(-5));
}

#[test]
fn a_raised_weight_says_what_is_above_the_spec() {
    let api = pod("compile", "compile", "100m", "1500m", json!({}));
    let scalers = [batch("compile", "compile")];
    let mut status = node_status();
    let c = &mut status.pods[0].containers[0];
    c.spec_request = Some(burst_scaler::quantity::CpuQuantity::new("100m"));
    c.spec_limit = Some(burst_scaler::quantity::CpuQuantity::new("1500m"));
    c.limit = Some(burst_scaler::quantity::CpuQuantity::new("1500m"));
    c.weight = Some(burst_scaler::quantity::CpuQuantity::new("1500m"));
    let e = explain_pod(&facts(&api, &scalers, Some(&status), &[], Err("-".into())));
    assert_eq!(
        e.containers[0].state,
        "raised: weight 1500m above the request 100m"
    );
}

#[test]
fn an_hpa_conflict_the_decider_not_acting_and_unreadable_facts_are_said_as_such() {
    // Where the controller decides, a pod an HPA scales on CPU is left alone: the BurstScaler's
    // Conflict condition names it.
    let web = pod("web", "web", "100m", "500m", json!({}));
    let conflict = scaler(
        "web",
        "web",
        json!({"role": "LatencySensitive"}),
        json!({"conditions": [{"type": "Conflict", "status": "True", "reason": "HorizontalPodAutoscaler",
            "message": "pod ns/other is also selected by BurstScaler x: the pod is left alone; pod ns/web is scaled on CPU by HorizontalPodAutoscaler ns/web: the pod is left alone (resizing it would move the HPA's utilization)",
            "lastTransitionTime": "2027-01-15T08:00:00Z"}]}),
    );
    let scalers = [conflict];
    let mut f = facts(&web, &scalers, None, &[], Err("-".into()));
    f.resize_supported = Ok(true);
    let e = explain_pod(&f);
    assert!(e.governed_by.is_none());
    let why = e.not_governed.as_deref().unwrap_or_default();
    assert!(
        why.contains("pod ns/web is scaled on CPU by HorizontalPodAutoscaler ns/web")
            && !why.contains("ns/other"),
        "{why}"
    );

    // An Auto pod on an agent node whose agent is not acting (dry-run or not holding its
    // Lease): reported, not applied.
    let compile = pod("compile", "compile", "1", "2", json!({}));
    let scalers = [batch("compile", "compile")];
    let status = node_status();
    let mut v = verdicts("ns/compile", Action::None, "hold", vec![]);
    v.acting = false;
    let e = explain_pod(&facts(&compile, &scalers, Some(&status), &[], Ok(v)));
    assert_eq!(e.actuator.applies, Some(false));
    assert!(
        render_pod(&e, t(130)).contains("its decider is not acting now"),
        "{}",
        render_pod(&e, t(130))
    );
    // Its verdicts unreadable: whether it applies is unknown, not "yes".
    let e = explain_pod(&facts(
        &compile,
        &scalers,
        Some(&status),
        &[],
        Err("no permission to read pods/proxy".into()),
    ));
    assert_eq!(e.actuator.applies, None);
    assert_eq!(
        e.next_unavailable.as_deref(),
        Some("no permission to read pods/proxy")
    );

    // The agent Lease unreadable: the actuator is unknown, never guessed.
    let mut f = facts(&compile, &scalers, Some(&status), &[], Err("-".into()));
    f.agent_live = Err("no permission to list leases".into());
    let e = explain_pod(&f);
    assert_eq!(e.actuator.kind, "Unknown");
    assert!(e.actuator.detail.contains("no permission to list leases"));
    assert_eq!(e.actuator.applies, None);
    // So is pods/resize, where no agent holds the node.
    let mut f = facts(&compile, &scalers, None, &[], Err("-".into()));
    f.resize_supported = Err("discovery failed".into());
    assert_eq!(explain_pod(&f).actuator.kind, "Unknown");
}
